//! The checks every key store passes, run by each backend's tests. Each
//! panics with what went wrong.

use std::future::Future;
use std::sync::Arc;

use audit_core::personal::Subject;

use crate::{KeyStoreError, KeyWrapper, SubjectKeys};

fn email(e: &str) -> Subject {
    Subject::Email(e.to_owned())
}

/// Every check. `open` opens the same store (same database, same
/// directory) with the wrapper it is given, as often as asked; `master`
/// is the store's master key, `other` another one it must refuse.
pub async fn run_all<F, Fut>(open: F, master: Arc<dyn KeyWrapper>, other: Arc<dyn KeyWrapper>)
where
    F: Fn(Arc<dyn KeyWrapper>) -> Fut,
    Fut: Future<Output = Result<Arc<dyn SubjectKeys>, KeyStoreError>>,
{
    let store = open(Arc::clone(&master)).await.expect("the store opens");

    // One key per subject and organization, stable, found by its id.
    let (id, key) = store.key_for("org-1", &email("ada@example.com")).await.unwrap();
    assert_eq!(store.key_for("org-1", &email("ada@example.com")).await.unwrap(), (id, key.clone()), "stable");
    assert_eq!(store.key_by_id("org-1", id).await.unwrap(), Some(key.clone()), "found by id");
    assert_eq!(store.key_by_id("org-2", id).await.unwrap(), None, "ids belong to their organization");
    let (other_org, _) = store.key_for("org-2", &email("ada@example.com")).await.unwrap();
    assert_ne!(other_org, id, "the same person in another organization has another key");
    let (bob, _) = store.key_for("org-1", &Subject::User("u-7".into())).await.unwrap();
    assert_ne!(bob, id);

    // Racing callers for a new subject get one key.
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.key_for("org-1", &email("new@example.com")).await.unwrap() })
        })
        .collect();
    let mut ids = Vec::new();
    for r in racers {
        ids.push(r.await.unwrap().0);
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "racing callers agree: {ids:?}");

    // Many at once (one transaction for the new ones): existing keys as
    // they are, new ones stable, repeats within the call agree.
    let many = [email("new@example.com"), email("b1@example.com"), email("b2@example.com"), email("b1@example.com")];
    let keys = store.keys_for("org-1", &many).await.unwrap();
    assert_eq!(keys.len(), 4);
    assert_eq!(keys[0].0, ids[0], "an existing subject keeps its key");
    assert_eq!(keys[1], keys[3], "a subject named twice gets one key");
    assert_ne!(keys[1].0, keys[2].0);
    assert_eq!(store.key_for("org-1", &email("b2@example.com")).await.unwrap(), keys[2].clone(), "stored");

    // Holds: organization-wide or per subject, by token; lifted once.
    let hold = store.place_hold("org-1", Some(&email("b1@example.com")), "case 1").await.unwrap();
    assert!(store.hold_on("org-1", &email("b1@example.com")).await.unwrap().is_some());
    assert!(store.hold_on("org-1", &email("b2@example.com")).await.unwrap().is_none(), "only that subject");
    let everything = store.place_hold("org-2", None, "audit").await.unwrap();
    assert!(store.hold_on("org-2", &email("anyone@example.com")).await.unwrap().is_some(), "organization-wide");
    assert_eq!(store.holds("org-1").await.unwrap(), vec![hold.clone()]);
    assert_eq!(store.lift_hold("org-1", &hold.id).await.unwrap(), Some(hold.clone()));
    assert_eq!(store.lift_hold("org-1", &hold.id).await.unwrap(), None, "lifted once");
    assert_eq!(store.lift_hold("org-1", &everything.id).await.unwrap(), None, "holds belong to their organization");
    assert!(store.lift_hold("org-2", &everything.id).await.unwrap().is_some());

    // Erasure: the key is gone, twice is a no-op, an unknown subject too.
    assert_eq!(store.destroy("org-1", &email("ada@example.com")).await.unwrap(), Some(id), "names the key destroyed");
    assert_eq!(store.key_by_id("org-1", id).await.unwrap(), None, "a destroyed key is not found");
    assert_eq!(store.destroy("org-1", &email("ada@example.com")).await.unwrap(), None, "erasing twice");
    assert_eq!(store.destroy("org-1", &email("nobody@example.com")).await.unwrap(), None, "an unknown subject");
    assert!(store.key_by_id("org-2", other_org).await.unwrap().is_some(), "other organizations keep theirs");
    let (fresh, _) = store.key_for("org-1", &email("ada@example.com")).await.unwrap();
    assert_ne!(fresh, id, "a subject seen again after erasure gets a new key");

    // Reopened with the same master key: everything is there, the same
    // blind key; with another: refused, naming the master key.
    let token = store.keyring().blind().token("o", "f", "v");
    drop(store);
    let again = open(master).await.expect("reopens");
    assert!(again.key_by_id("org-1", bob).await.unwrap().is_some());
    assert_eq!(again.keyring().blind().token("o", "f", "v"), token, "the same blind key");
    // (A local key cannot unwrap: WrongMasterKey. A KMS key may instead be
    // denied the other key's ciphertexts, as moto answers: refused too.)
    match open(other).await {
        Err(e @ (KeyStoreError::WrongMasterKey(_) | KeyStoreError::MasterKey(_))) => {
            let text = e.to_string();
            assert!(text.contains("AUDIT_MASTER_KEY_FILE") || text.contains("AUDIT_KMS_KEY_ID"), "{text}");
        }
        other => panic!("another master key must be refused, got {other:?}"),
    }
}
