//! Files written once and whole: checkpoints, prune records and
//! cosignatures in a log's directory, and the key files a deployment
//! creates at first start (master key, checkpoint signing key, viewer
//! secret).
//!
//! Such a file appears whole or not at all. It is written under a hidden
//! temporary name in the same directory, synced, then hard-linked to its
//! name — a link, unlike a rename, never replaces a file that is there, so
//! the first writer's file stands — and the directory is synced. Created
//! in place and then written, a reader beside the writer could read it
//! empty or cut short, and a crash between create and write would leave a
//! partial file that every later start would keep (or refuse to start on).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// What [`create_whole`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// This call wrote the file.
    Written,
    /// A file of that name was already there and was left as it is.
    AlreadyThere,
}

/// Creates `path` holding `bytes`, with permission bits `mode`, unless a
/// file of that name exists; durably (data and directory entry synced).
/// The directory must exist. Readers that list the directory must skip
/// names starting with `.`: a crash can leave a temporary file behind.
pub fn create_whole(path: &Path, bytes: &[u8], mode: u32) -> io::Result<Created> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} names no file", path.display())));
    };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    if path.try_exists()? {
        return Ok(Created::AlreadyThere);
    }
    // Unique within the machine: two writers of the same name (a CLI
    // command beside the server, two threads) never share a temporary file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let temporary = dir.join(format!(".{}.{}-{n}.tmp", name.to_string_lossy(), std::process::id()));
    let linked = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_data()))
        .and_then(|()| match fs::hard_link(&temporary, path) {
            Ok(()) => Ok(Created::Written),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Created::AlreadyThere),
            Err(e) => Err(e),
        });
    let _ = fs::remove_file(&temporary);
    let created = linked?;
    File::open(dir).and_then(|d| d.sync_data())?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_first_write_stands_with_its_mode_and_no_temporary_file_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        assert_eq!(create_whole(&path, b"first\n", 0o600).unwrap(), Created::Written);
        assert_eq!(create_whole(&path, b"second\n", 0o600).unwrap(), Created::AlreadyThere);
        assert_eq!(fs::read(&path).unwrap(), b"first\n");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["key"], "only the file itself");
    }

    #[test]
    fn concurrent_creators_agree_on_one_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let contents: Vec<Vec<u8>> = (0..8u8).map(|i| vec![b'a' + i; 64 * 1024]).collect();
        let written = std::thread::scope(|s| {
            let handles: Vec<_> = contents.iter().map(|c| s.spawn(|| create_whole(&path, c, 0o400).unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).filter(|c| *c == Created::Written).count()
        });
        assert_eq!(written, 1, "exactly one creator wrote it");
        assert!(contents.contains(&fs::read(&path).unwrap()), "the file is one creator's bytes, whole");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let err = create_whole(&dir.path().join("absent/key"), b"x", 0o600).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
