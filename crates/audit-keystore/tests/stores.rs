//! The key store conformance suite on SQLite (a real file) and PostgreSQL
//! (a fresh schema on the test server; skipped with a printed reason when
//! there is none, unless AUDIT_REQUIRE_SERVICES=1).

use std::sync::Arc;

use audit_core::personal::{MasterKey, Subject};
use audit_keystore::postgres::PostgresSubjectKeys;
use audit_keystore::sqlite::SqliteSubjectKeys;
use audit_keystore::{SubjectKeys, suite};

#[tokio::test]
async fn the_sqlite_store_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    suite::run_all(|master| {
        let keys_dir = keys_dir.clone();
        async move { SqliteSubjectKeys::open(&keys_dir, master).map(|s| Arc::new(s) as Arc<dyn SubjectKeys>) }
    })
    .await;
}

#[tokio::test]
async fn the_postgres_store_passes_the_suite() {
    // A schema of the store's own, named for .ci/run's clean-up of test schemas.
    if audit_testkit::fresh_postgres_schema("the_postgres_store_passes_the_suite").await.is_none() {
        return;
    }
    let url = audit_testkit::postgres_url();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let schema = format!("{}keys_{}_{nanos}", audit_testkit::TEST_SCHEMA_PREFIX, std::process::id());
    suite::run_all(|master| {
        let (url, schema) = (url.clone(), schema.clone());
        async move {
            PostgresSubjectKeys::connect(&url, &schema, master).await.map(|s| Arc::new(s) as Arc<dyn SubjectKeys>)
        }
    })
    .await;
}

#[tokio::test]
async fn a_destroyed_key_and_every_subject_name_are_absent_from_the_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteSubjectKeys::open(&dir.path().join("keys"), MasterKey::from_bytes([1; 32])).unwrap();
    let ada = Subject::Email("ada.lovelace@example.com".into());
    let (id, _) = store.key_for("org-1", &ada).await.unwrap();
    let (kept, _) = store.key_for("org-1", &Subject::Email("grace.hopper@example.com".into())).await.unwrap();
    let file = || std::fs::read(store.path()).unwrap();
    let contains = |haystack: &[u8], needle: &str| haystack.windows(needle.len()).any(|w| w == needle.as_bytes());
    let before = file();
    assert!(contains(&before, &id.to_string()), "the key's row is in the file");
    assert!(!contains(&before, "ada.lovelace") && !contains(&before, "grace.hopper"), "no subject name is stored");

    assert!(store.destroy("org-1", &ada).await.unwrap());
    let after = file();
    assert!(!contains(&after, &id.to_string()), "the destroyed key's row is gone from the file's bytes");
    assert!(contains(&after, &kept.to_string()), "the other subject's key stays");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(store.path()).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}
