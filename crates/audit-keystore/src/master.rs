//! The master key file (`AUDIT_MASTER_KEY_FILE`): one line,
//! `agenttrace-master-key-v1:<base64 of 32 bytes>`, mode 0600.
//!
//! On the embedded default a missing file is created at first start (like
//! the checkpoint signing key), so the zero-configuration run works; an
//! unreadable or malformed file is an error naming the path — never a
//! silent fallback to storing personal data in the clear.

use std::path::Path;

use audit_core::personal::MasterKey;
use audit_storage::whole_file::{Created, create_whole};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::KeyStoreError;

const PREFIX: &str = "agenttrace-master-key-v1:";

/// Reads the master key at `path`.
pub fn read(path: &Path) -> Result<MasterKey, KeyStoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        KeyStoreError::MasterKey(format!("AUDIT_MASTER_KEY_FILE {}: cannot read it: {e}", path.display()))
    })?;
    let bytes = text
        .trim()
        .strip_prefix(PREFIX)
        .and_then(|b64| STANDARD.decode(b64).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            KeyStoreError::MasterKey(format!(
                "AUDIT_MASTER_KEY_FILE {}: not a master key (expected one line `{PREFIX}<base64 of 32 bytes>`)",
                path.display()
            ))
        })?;
    Ok(MasterKey::from_bytes(bytes))
}

/// Reads the master key at `path`, creating it (32 random bytes, mode
/// 0600) when missing. The file is written whole or not at all, and a
/// concurrent creator's file wins (`audit_storage::whole_file`): a crash
/// or a second process starting beside this one never sees a partial key.
/// `true` with the key when this call created it.
pub fn read_or_create(path: &Path) -> Result<(MasterKey, bool), KeyStoreError> {
    let bytes: [u8; 32] = crate::random()?;
    let line = format!("{PREFIX}{}\n", STANDARD.encode(bytes));
    match create_whole(path, line.as_bytes(), 0o600) {
        Ok(Created::Written) => Ok((MasterKey::from_bytes(bytes), true)),
        Ok(Created::AlreadyThere) => read(path).map(|k| (k, false)),
        Err(e) => {
            Err(KeyStoreError::MasterKey(format!("AUDIT_MASTER_KEY_FILE {}: cannot create it: {e}", path.display())))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_missing_key_is_created_once_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (first, created) = read_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (again, created) = read_or_create(&path).unwrap();
        assert!(!created);
        let id = audit_core::personal::KeyId::from_bytes([1; 16]);
        let data = audit_core::personal::DataKey::from_bytes([2; 32]);
        assert_eq!(again.unwrap(&first.wrap(&data, id, [3; 12]), id), Some(data), "the same key");
    }

    #[test]
    fn processes_starting_together_all_get_the_one_key_never_a_partial_file() {
        // Created in place and then written, a second starter could read
        // the file empty and refuse to start ("not a master key").
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("master.key");
            let results: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..6).map(|_| s.spawn(|| read_or_create(&path))).collect();
                handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
            });
            assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1, "one creator");
            let id = audit_core::personal::KeyId::from_bytes([1; 16]);
            let data = audit_core::personal::DataKey::from_bytes([2; 32]);
            let wrapped = results[0].0.wrap(&data, id, [3; 12]);
            assert!(results.iter().all(|(key, _)| key.unwrap(&wrapped, id) == Some(data.clone())), "the same key");
        }
    }

    #[test]
    fn a_malformed_or_unreadable_key_is_an_error_naming_the_variable_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, "not a key\n").unwrap();
        let err = read_or_create(&path).unwrap_err().to_string();
        assert!(
            err.contains("AUDIT_MASTER_KEY_FILE") && err.contains("master.key") && err.contains("not a master key"),
            "{err}"
        );
        let err = read(&dir.path().join("missing.key")).unwrap_err().to_string();
        assert!(err.contains("cannot read it"), "{err}");
        std::fs::write(&path, format!("{PREFIX}{}\n", STANDARD.encode([0u8; 31]))).unwrap();
        assert!(read(&path).is_err(), "31 bytes are not a key");
    }
}
