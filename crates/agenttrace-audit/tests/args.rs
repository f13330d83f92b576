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
