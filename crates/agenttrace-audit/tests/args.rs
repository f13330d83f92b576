//! Arguments a user can get wrong, through the real binary: one clear line
//! and exit 2, never a panic.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_agenttrace-audit");

#[test]
fn a_time_that_is_not_one_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for value in ["ü", "7ü", "soon"] {
        for args in [
            vec!["verify", "--org", "o", "--since", value],
            vec!["export", "--org", "o", "--format", "jsonl", "--until", value],
        ] {
            let out = Command::new(BIN).arg("--data-dir").arg(dir.path()).args(&args).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line: {err}");
            assert!(err.contains("is not a time"), "{args:?}: {err}");
        }
    }
}

#[test]
fn verify_of_a_log_that_does_not_exist_cannot_pass() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // An empty file, not /dev/null: a sandbox may give /dev/null content.
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, b"").unwrap();
    let ingest = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["ingest", "--org", "real", "-"])
        .stdin(std::fs::File::open(&empty).unwrap())
        .output()
        .unwrap();
    assert_eq!(ingest.status.code(), Some(0), "{}", String::from_utf8_lossy(&ingest.stderr));
    // A typo in --org, or in --data-dir: exit 2, one line naming what is missing.
    for (data_dir, org) in [(data.as_path(), "no-such-org"), (std::path::Path::new("/nonexistent"), "x")] {
        let out = Command::new(BIN).arg("--data-dir").arg(data_dir).args(["verify", "--org", org]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{org}: {err}");
        assert!(err.contains(&format!("no log for organization {org}")), "{err}");
    }
    assert!(!std::path::Path::new("/nonexistent").try_exists().unwrap(), "a read creates nothing");
}
