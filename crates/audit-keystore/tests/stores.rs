//! The key store conformance suite on SQLite (a real file) and PostgreSQL
//! (a fresh schema on the test server; skipped with a printed reason when
//! there is none, unless AUDIT_REQUIRE_SERVICES=1).

use std::sync::Arc;

use audit_core::personal::{MasterKey, Subject};
use audit_keystore::kms::{KmsConfig, KmsWrapper};
use audit_keystore::postgres::PostgresSubjectKeys;
use audit_keystore::sqlite::SqliteSubjectKeys;
use audit_keystore::{KeyWrapper, LocalMaster, SubjectKeys, suite};

fn local(byte: u8) -> Arc<dyn KeyWrapper> {
    Arc::new(LocalMaster(MasterKey::from_bytes([byte; 32])))
}

/// The suite on a SQLite store in a fresh directory, with `master` and
/// `other` as its master key and the one it must refuse.
async fn sqlite_suite(master: Arc<dyn KeyWrapper>, other: Arc<dyn KeyWrapper>) {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    suite::run_all(
        |wrapper| {
            let keys_dir = keys_dir.clone();
            async move { SqliteSubjectKeys::open(&keys_dir, wrapper).await.map(|s| Arc::new(s) as Arc<dyn SubjectKeys>) }
        },
        master,
        other,
    )
    .await;
}

#[tokio::test]
async fn the_sqlite_store_passes_the_suite() {
    sqlite_suite(local(11), local(12)).await;
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
    suite::run_all(
        |wrapper| {
            let (url, schema) = (url.clone(), schema.clone());
            async move {
                PostgresSubjectKeys::connect(&url, &schema, wrapper).await.map(|s| Arc::new(s) as Arc<dyn SubjectKeys>)
            }
        },
        local(11),
        local(12),
    )
    .await;
}

/// A KMS key on the test S3 endpoint's moto server (moto serves KMS too),
/// or `None` after a printed skip when there is none.
async fn moto_kms_key(test: &str) -> Option<KmsConfig> {
    let endpoint = audit_testkit::s3_endpoint();
    let (id, secret) = audit_testkit::S3_TEST_CREDENTIALS;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(&endpoint)
        .region(aws_sdk_kms::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kms::config::Credentials::new(id, secret, None, None, "test"))
        .build();
    match aws_sdk_kms::Client::from_conf(config).create_key().send().await {
        Ok(out) => Some(KmsConfig {
            key_id: out.key_metadata?.key_id,
            endpoint: Some(endpoint),
            region: Some("us-east-1".into()),
            credentials: Some((id.into(), secret.into())),
        }),
        Err(e) => {
            audit_testkit::missing_service(test, &format!("no KMS at {endpoint} (moto_server): {e}"));
            None
        }
    }
}

#[tokio::test]
async fn the_sqlite_store_passes_the_suite_with_kms_as_the_master_key() {
    let test = "the_sqlite_store_passes_the_suite_with_kms_as_the_master_key";
    let (Some(first), Some(second)) = (moto_kms_key(test).await, moto_kms_key(test).await) else { return };
    let first: Arc<dyn KeyWrapper> = Arc::new(KmsWrapper::connect(first).await.unwrap());
    let second: Arc<dyn KeyWrapper> = Arc::new(KmsWrapper::connect(second).await.unwrap());
    sqlite_suite(first, second).await;
}

#[tokio::test]
async fn a_kms_key_that_does_not_exist_is_refused_at_start_naming_it() {
    let Some(mut config) = moto_kms_key("a_kms_key_that_does_not_exist_is_refused_at_start_naming_it").await else {
        return;
    };
    config.key_id = "00000000-0000-0000-0000-000000000000".into();
    let err = KmsWrapper::connect(config).await.unwrap_err().to_string();
    assert!(err.contains("AUDIT_KMS_KEY_ID 00000000-0000-0000-0000-000000000000"), "{err}");
}

#[tokio::test]
async fn a_destroyed_key_and_every_subject_name_are_absent_from_the_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteSubjectKeys::open(&dir.path().join("keys"), local(1)).await.unwrap();
    let ada = Subject::Email("ada.lovelace@example.com".into());
    let (id, _) = store.key_for("org-1", &ada).await.unwrap();
    let (kept, _) = store.key_for("org-1", &Subject::Email("grace.hopper@example.com".into())).await.unwrap();
    let file = || std::fs::read(store.path()).unwrap();
    let contains = |haystack: &[u8], needle: &str| haystack.windows(needle.len()).any(|w| w == needle.as_bytes());
    let before = file();
    assert!(contains(&before, &id.to_string()), "the key's row is in the file");
    assert!(!contains(&before, "ada.lovelace") && !contains(&before, "grace.hopper"), "no subject name is stored");

    assert_eq!(store.destroy("org-1", &ada).await.unwrap(), Some(id));
    let after = file();
    assert!(!contains(&after, &id.to_string()), "the destroyed key's row is gone from the file's bytes");
    assert!(contains(&after, &kept.to_string()), "the other subject's key stays");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(store.path()).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}
