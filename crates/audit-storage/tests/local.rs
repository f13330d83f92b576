//! The local backend on real files: durability layout, the fence, recovery.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use audit_core::Timestamp;
use audit_core::sample::sample_log;
use audit_storage::local::LocalStore;
use audit_storage::{Batch, LogStore, StorageErrorKind};

const ORG: &str = "Org:1";

fn start() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-28T00:00:00Z").unwrap()
}

/// Lines `from..to` of a sample log as one batch.
fn batch(lines: &[Vec<u8>], from: usize, to: usize) -> Arc<Batch> {
    let mut bytes = Vec::new();
    for l in &lines[from..to] {
        bytes.extend_from_slice(l);
        bytes.push(b'\n');
    }
    Arc::new(Batch { first_sequence: from as u64, count: (to - from) as u64, bytes })
}

#[tokio::test]
async fn appends_roll_over_into_sealed_segments_named_by_first_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).with_segment_bytes(2_000);
    let log = sample_log(ORG, 30, start());
    let mut w = store.open_writer(ORG).await.unwrap();
    for (from, to) in [(0, 5), (5, 10), (10, 20), (20, 30)] {
        w.append(batch(&log, from, to)).await.unwrap();
    }
    let chunks = store.chunks(ORG).await.unwrap();
    assert!(chunks.len() > 1, "{chunks:?}");
    assert_eq!(chunks[0].name, "00000000000000000000.jsonl");
    let mut all = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let path = store.log_dir(ORG).join(&c.name);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        if i + 1 < chunks.len() {
            assert_eq!(mode, 0o400, "sealed segment {} must be read-only, by its owner only", c.name);
        } else {
            assert_eq!(mode, 0o600, "the active segment stays writable, by its owner only");
        }
        all.extend(store.read_chunk(ORG, c).await.unwrap());
    }
    let expected: Vec<u8> = log.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
    assert_eq!(all, expected, "storage holds exactly the appended lines, in order");
    let dir_mode = std::fs::metadata(store.log_dir(ORG)).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700, "log directories are the service's alone");
    // Case-insensitive file systems: the directory name has no upper case.
    assert_eq!(store.log_dir(ORG).file_name().unwrap(), "%4Frg%3A1");
    assert_eq!(store.organizations().await.unwrap(), vec![ORG.to_string()]);
}

#[tokio::test]
async fn one_writer_per_log_and_reopen_recovers_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let log = sample_log(ORG, 10, start());
    let mut w = store.open_writer(ORG).await.unwrap();
    w.append(batch(&log, 0, 10)).await.unwrap();

    let second = store.open_writer(ORG).await.unwrap_err();
    assert_eq!(second.kind, StorageErrorKind::Locked);
    assert!(second.to_string().contains(&format!("locked by process {}", std::process::id())), "{second}");
    // Another organization is independent.
    store.open_writer("org-2").await.unwrap();

    drop(w);
    let w = store.open_writer(ORG).await.unwrap();
    let last = audit_core::stored::StoredEvent::parse_line(&log[9]).unwrap();
    assert_eq!(w.recovery().tail.next_sequence, 10);
    assert_eq!(w.recovery().tail.last_hash, last.hash);
    assert_eq!(w.recovery().torn_bytes_removed, 0);
}

#[tokio::test]
async fn a_torn_tail_is_cut_on_open_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let log = sample_log(ORG, 6, start());
    let mut w = store.open_writer(ORG).await.unwrap();
    w.append(batch(&log, 0, 5)).await.unwrap();
    drop(w);
    // A crash mid-write leaves half of event 5 without its newline.
    let path = store.log_dir(ORG).join("00000000000000000000.jsonl");
    let before = std::fs::read(&path).unwrap();
    let mut torn = before.clone();
    torn.extend_from_slice(&log[5][..100]);
    std::fs::write(&path, &torn).unwrap();

    let mut w = store.open_writer(ORG).await.unwrap();
    assert_eq!(w.recovery().torn_bytes_removed, 100);
    assert_eq!(w.recovery().tail.next_sequence, 5);
    assert_eq!(std::fs::read(&path).unwrap(), before, "only the torn bytes were removed");
    w.append(batch(&log, 5, 6)).await.unwrap();
}

#[tokio::test]
async fn anything_else_unexpected_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let log = sample_log(ORG, 4, start());
    let mut w = store.open_writer(ORG).await.unwrap();
    w.append(batch(&log, 0, 4)).await.unwrap();
    drop(w);
    let path = store.log_dir(ORG).join("00000000000000000000.jsonl");
    let good = std::fs::read(&path).unwrap();

    // A complete but altered last line is not a torn tail: refuse, do not repair.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 10] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let err = store.open_writer(ORG).await.unwrap_err();
    assert_eq!(err.kind, StorageErrorKind::Unexpected, "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bad, "nothing was repaired");

    // A stray file in the log directory.
    std::fs::write(&path, &good).unwrap();
    std::fs::write(store.log_dir(ORG).join("notes.txt"), b"hi").unwrap();
    let err = store.open_writer(ORG).await.unwrap_err();
    assert_eq!(err.kind, StorageErrorKind::Unexpected);
    assert!(err.to_string().contains("notes.txt"), "{err}");
}

/// The backend conformance suite over real files. Each fresh store gets its
/// own directory; the newest is remembered to tear its tail.
struct Local {
    root: tempfile::TempDir,
    newest: std::sync::Mutex<Option<std::path::PathBuf>>,
}

#[async_trait::async_trait]
impl audit_storage::test_suite::Harness for Local {
    async fn fresh(&self) -> Arc<dyn LogStore> {
        let dir = tempfile::tempdir_in(self.root.path()).unwrap().keep();
        *self.newest.lock().unwrap() = Some(dir.clone());
        Arc::new(LocalStore::new(dir))
    }
    async fn tear_tail(&self, store: &dyn LogStore, org: &str, partial: &[u8]) -> bool {
        let last = store.chunks(org).await.unwrap().pop().unwrap();
        let dir = self.newest.lock().unwrap().clone().unwrap();
        let path = LocalStore::new(dir).log_dir(org).join(&last.name);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(partial);
        std::fs::write(&path, bytes).unwrap();
        true
    }
}

#[tokio::test]
async fn the_local_backend_passes_the_conformance_suite() {
    let harness = Local { root: tempfile::tempdir().unwrap(), newest: std::sync::Mutex::new(None) };
    audit_storage::test_suite::run_all(&harness).await;
}

/// A crash while a checkpoint was written leaves at most a hidden temporary
/// file: it is never read as the checkpoint, and the checkpoint is written
/// whole when the service writes it again.
#[tokio::test]
async fn a_checkpoint_cut_short_by_a_crash_is_neither_read_nor_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    store.put_checkpoint(ORG, 3, b"note at 3\n").await.unwrap();
    let checkpoints = store.log_dir(ORG).join("checkpoints");
    std::fs::write(checkpoints.join(".00000000000000000009.note.4242-0.tmp"), b"note a").unwrap();
    assert_eq!(store.latest_checkpoint(ORG).await.unwrap(), Some((3, b"note at 3\n".to_vec())));
    store.put_checkpoint(ORG, 9, b"note at 9\n").await.unwrap();
    assert_eq!(store.latest_checkpoint(ORG).await.unwrap(), Some((9, b"note at 9\n".to_vec())));
    let note = checkpoints.join("00000000000000000009.note");
    assert_eq!(std::fs::metadata(&note).unwrap().permissions().mode() & 0o777, 0o400, "written once, read-only");
    // No temporary file of this process is left behind.
    let names: Vec<String> =
        std::fs::read_dir(&checkpoints).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(!names.iter().any(|n| n.contains(&format!(".{}-", std::process::id()))), "{names:?}");
}
