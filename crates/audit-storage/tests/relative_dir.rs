//! A store under a relative data directory that does not exist yet (as
//! `make_log --data-dir m1` or a library user's `LocalStore::new("data")`
//! gives it). Its own test binary: it changes the process's working
//! directory, which no other test may share.

use std::sync::Arc;

use audit_core::Timestamp;
use audit_core::sample::sample_log;
use audit_storage::local::LocalStore;
use audit_storage::{Batch, LogStore};

#[tokio::test]
async fn a_relative_data_directory_is_created_in_the_working_directory() {
    let work = tempfile::tempdir().unwrap();
    std::env::set_current_dir(work.path()).unwrap();
    let store = LocalStore::new("data");
    let lines = sample_log("acme", 3, Timestamp::from_micros(1_764_000_000_000_000));
    let mut bytes = Vec::new();
    for l in &lines {
        bytes.extend_from_slice(l);
        bytes.push(b'\n');
    }
    let mut writer = store.open_writer("acme").await.expect("the writer opens under ./data");
    writer.append(Arc::new(Batch { first_sequence: 0, count: 3, bytes: bytes.clone() })).await.unwrap();
    drop(writer);
    let chunks = store.chunks("acme").await.unwrap();
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    let stored = LocalStore::new(work.path().join("data")).read_chunk("acme", &chunks[0]).await.unwrap();
    assert_eq!(stored, bytes, "the events are under the working directory's data/");
}
