//! Local storage: one directory per organization, JSON Lines segment files.
//! (Over 500 lines on purpose: the writer's durability steps — append,
//! fsync, cut back, roll over, seal — read in order in one place.)
//!
//! ```text
//! <root>/logs/<encoded organization id>/
//!     .lock                          exclusive lock of the one writer (holds its pid)
//!     00000000000000000000.jsonl     segment: first sequence, 20 digits
//!     00000000000000052311.jsonl     the active segment (the last one)
//!     checkpoints/, pruned/          signed checkpoints and witnesses' cosignatures; retention's records and kept hashes
//!     tile/<L>/<N>[.p/<W>]           the Merkle tree as C2SP tlog-tiles (write-once, 0400)
//!     tile/entries/<N>[.p/<W>]       the leaf inputs (event hashes) as entry bundles
//! ```
//!
//! Durability: a batch is written with one `write`, then `fdatasync`; a new
//! segment's directory entry is fsync'd before anything in it is
//! acknowledged. A sealed segment (every one but the last) is made
//! read-only. On a failed write or sync the segment is cut back to its last
//! durable length and the next batch starts a new segment; if even the cut
//! fails, the writer is poisoned.
//!
//! Recovery on open: a partial last line (crash mid-write, never
//! acknowledged) is cut and reported; anything else unexpected is an error.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use audit_core::tiles::TileId;

use crate::{
    Batch, Chunk, LogStore, LogWriter, Placement, Pruned, Recovery, StorageError, StorageErrorKind, Tail, org_dir,
};

/// Segments roll over once they reach this size (a batch never straddles two).
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

const SEGMENT_SUFFIX: &str = ".jsonl";
const LOCK_FILE: &str = ".lock";
const CHECKPOINT_DIR: &str = "checkpoints";
const CHECKPOINT_SUFFIX: &str = ".note";
/// A witness's cosignature of a checkpoint: `<size>.<witness key id>.cosig`.
const COSIGNATURE_SUFFIX: &str = ".cosig";
/// Prune records and the hashes of removed events, kept for ever.
const PRUNED_DIR: &str = "pruned";
/// The Merkle tree as C2SP tlog-tiles (`tile/<L>/…`, `tile/entries/…`).
const TILE_DIR: &str = "tile";
const PRUNE_RECORD_SUFFIX: &str = ".prune";
const PRUNED_HASHES_SUFFIX: &str = ".hashes";

/// Creates `dir/name` holding `bytes` (0400) unless it exists (the first
/// one stands), whole and durably: see [`crate::whole_file`]. Readers list
/// by suffix, so a crash's leftover temporary file is never read.
async fn write_once(dir: PathBuf, name: String, bytes: Vec<u8>) -> Result<(), StorageError> {
    blocking(move || {
        create_dir_durably(&dir)?;
        let path = dir.join(&name);
        crate::whole_file::create_whole(&path, &bytes, 0o400)
            .map_err(|e| StorageError::io(format!("cannot write {}", path.display()), e))?;
        Ok(())
    })
    .await
}

/// Writes tiles under the log directory `root` at their C2SP paths: each
/// to a temporary name, the file system flushed, then renamed into place
/// and flushed again — so a crash leaves a tile whole or absent, and a
/// group of tiles costs two flushes (`syncfs`) instead of one `fdatasync`
/// and one directory sync per file: a checkpoint after a busy interval
/// writes thousands of tiles. An existing tile is left as it is.
fn write_tiles(root: &Path, tiles: &[(TileId, Vec<u8>)]) -> Result<(), StorageError> {
    let mut staged = Vec::new();
    for (id, content) in tiles {
        let path = root.join(id.path());
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { continue };
        match path.try_exists() {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => return Err(StorageError::io(format!("cannot stat {}", path.display()), e)),
        }
        create_dir_durably(dir)?;
        let temporary = dir.join(format!(".{}.tmp", name.to_string_lossy()));
        // A leftover of a crash (read-only, so it cannot be opened for writing).
        let _ = fs::remove_file(&temporary);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&temporary)
            .map_err(|e| StorageError::io(format!("cannot create {}", temporary.display()), e))?;
        file.write_all(content).map_err(|e| StorageError::io(format!("cannot write {}", temporary.display()), e))?;
        staged.push((file, temporary, path));
    }
    let Some((first, _, _)) = staged.first() else { return Ok(()) };
    let flush = |what: &str| {
        rustix::fs::syncfs(first)
            .map_err(|e| StorageError::io(format!("cannot flush {what} under {}", root.display()), e.into()))
    };
    flush("tiles")?;
    for (_, temporary, path) in &staged {
        fs::rename(temporary, path).map_err(|e| StorageError::io(format!("cannot rename to {}", path.display()), e))?;
    }
    flush("tile names")?;
    // A full tile supersedes the partial ones at its place (C2SP lets a log
    // delete them; readers fall back to the full tile), so a log
    // checkpointed every second does not keep a partial tile per level
    // per second for ever.
    for (id, _) in tiles.iter().filter(|(id, _)| id.is_full()) {
        let partials = root.join(format!("{}.p", id.path()));
        match fs::remove_dir_all(&partials) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %partials.display(), error = %e, "cannot remove superseded partial tiles"),
        }
    }
    Ok(())
}

/// Local directory storage.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    segment_bytes: u64,
}

impl LocalStore {
    /// Storage under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into(), segment_bytes: DEFAULT_SEGMENT_BYTES }
    }

    /// Rolls segments over at `bytes` instead of the default 64 MiB.
    pub fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(1);
        self
    }

    /// The directory holding `organization_id`'s log.
    pub fn log_dir(&self, organization_id: &str) -> PathBuf {
        self.root.join("logs").join(org_dir::encode(organization_id))
    }

    fn list_chunks(dir: &Path) -> Result<Vec<Chunk>, StorageError> {
        let mut chunks = Vec::new();
        for name in entry_names(dir)? {
            if name == LOCK_FILE || name == CHECKPOINT_DIR || name == PRUNED_DIR || name == TILE_DIR {
                continue;
            }
            match parse_segment_name(&name) {
                Some(first_sequence) => chunks.push(Chunk { first_sequence, name }),
                None => {
                    return Err(StorageError::new(
                        StorageErrorKind::Unexpected,
                        format!("unexpected file {} in log directory {}", name, dir.display()),
                    ));
                }
            }
        }
        chunks.sort();
        Ok(chunks)
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::new(StorageErrorKind::Io, format!("storage task failed: {e}")))?
}

/// The names in a directory; none when it does not exist (yet).
fn entry_names(dir: &Path) -> Result<Vec<String>, StorageError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io(format!("cannot list {}", dir.display()), e)),
    };
    entries
        .map(|entry| {
            entry
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .map_err(|e| StorageError::io(format!("cannot list {}", dir.display()), e))
        })
        .collect()
}

fn segment_name(first_sequence: u64) -> String {
    format!("{first_sequence:020}{SEGMENT_SUFFIX}")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

fn fsync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_data())
        .map_err(|e| StorageError::io(format!("cannot fsync directory {}", dir.display()), e))
}

/// Creates `dir` and any missing parents, fsyncing each parent whose
/// entries changed so the new directories survive power loss.
fn create_dir_durably(dir: &Path) -> Result<(), StorageError> {
    // The last parent of a relative path is the empty path: the working
    // directory, which exists (creating "" would fail with NotFound).
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    match dir.try_exists() {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(e) => {
            return Err(StorageError::io(format!("cannot stat {}", dir.display()), e));
        }
    }
    if let Some(parent) = dir.parent() {
        create_dir_durably(parent)?;
    }
    // Only the service's own user reads the log (it holds personal data).
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => {
            return Err(StorageError::io(format!("cannot create {}", dir.display()), e));
        }
    }
    match dir.parent() {
        Some(parent) if parent.as_os_str().is_empty() => fsync_dir(Path::new(".")),
        Some(parent) => fsync_dir(parent),
        None => Ok(()),
    }
}

#[async_trait]
impl LogStore for LocalStore {
    async fn open_writer(&self, organization_id: &str) -> Result<Box<dyn LogWriter>, StorageError> {
        let dir = self.log_dir(organization_id);
        let segment_bytes = self.segment_bytes;
        let org = organization_id.to_owned();
        let writer = tokio::task::spawn_blocking(move || LocalWriter::open(dir, org, segment_bytes))
            .await
            .map_err(|e| StorageError::new(StorageErrorKind::Io, format!("writer task failed: {e}")))??;
        Ok(Box::new(writer))
    }

    async fn organizations(&self) -> Result<Vec<String>, StorageError> {
        let logs = self.root.join("logs");
        tokio::task::spawn_blocking(move || {
            let mut orgs = Vec::new();
            for name in entry_names(&logs)? {
                match org_dir::decode(&name) {
                    Some(org) => orgs.push(org),
                    None => tracing::warn!(name, "ignoring a directory that is not an encoded organization id"),
                }
            }
            orgs.sort();
            Ok(orgs)
        })
        .await
        .map_err(|e| StorageError::new(StorageErrorKind::Io, format!("listing task failed: {e}")))?
    }

    async fn chunks(&self, organization_id: &str) -> Result<Vec<Chunk>, StorageError> {
        let dir = self.log_dir(organization_id);
        tokio::task::spawn_blocking(move || Self::list_chunks(&dir))
            .await
            .map_err(|e| StorageError::new(StorageErrorKind::Io, format!("listing task failed: {e}")))?
    }

    async fn read_chunk(&self, organization_id: &str, chunk: &Chunk) -> Result<Vec<u8>, StorageError> {
        let mut buf = Vec::new();
        self.read_chunk_into(organization_id, chunk, &mut buf).await?;
        Ok(buf)
    }

    async fn put_checkpoint(&self, organization_id: &str, size: u64, note: &[u8]) -> Result<(), StorageError> {
        let dir = self.log_dir(organization_id).join(CHECKPOINT_DIR);
        write_once(dir, format!("{size:020}{CHECKPOINT_SUFFIX}"), note.to_vec()).await
    }

    async fn pruned(&self, organization_id: &str) -> Result<Option<Pruned>, StorageError> {
        let dir = self.log_dir(organization_id).join(PRUNED_DIR);
        blocking(move || {
            // Each prune wrote `<first_kept>.hashes` (the events since the
            // previous cut) and `<first_kept>.prune`; the pieces in order
            // are every removed event's hash.
            let mut cuts: Vec<u64> =
                entry_names(&dir)?.iter().filter_map(|n| n.strip_suffix(PRUNE_RECORD_SUFFIX)?.parse().ok()).collect();
            cuts.sort_unstable();
            let Some(&first_kept) = cuts.last() else { return Ok(None) };
            let read = |name: String| {
                let path = dir.join(name);
                fs::read(&path).map_err(|e| StorageError::io(format!("cannot read {}", path.display()), e))
            };
            let mut hashes = Vec::with_capacity(usize::try_from(first_kept.saturating_mul(32)).unwrap_or(0));
            for cut in &cuts {
                hashes.extend(read(format!("{cut:020}{PRUNED_HASHES_SUFFIX}"))?);
            }
            let record = read(format!("{first_kept:020}{PRUNE_RECORD_SUFFIX}"))?;
            Ok(Some(Pruned { first_kept, record, hashes }))
        })
        .await
    }

    async fn prune_cut(&self, organization_id: &str) -> Result<u64, StorageError> {
        let dir = self.log_dir(organization_id).join(PRUNED_DIR);
        blocking(move || {
            Ok(entry_names(&dir)?
                .iter()
                .filter_map(|n| n.strip_suffix(PRUNE_RECORD_SUFFIX)?.parse().ok())
                .max()
                .unwrap_or(0))
        })
        .await
    }

    async fn prune(
        &self,
        organization_id: &str,
        first_kept: u64,
        removed_hashes: &[u8],
        record: &[u8],
    ) -> Result<(), StorageError> {
        let log = self.log_dir(organization_id);
        let dir = log.join(PRUNED_DIR);
        // The hashes first, then the record that binds them: a record is
        // never without its hashes.
        write_once(dir.clone(), format!("{first_kept:020}{PRUNED_HASHES_SUFFIX}"), removed_hashes.to_vec()).await?;
        write_once(dir, format!("{first_kept:020}{PRUNE_RECORD_SUFFIX}"), record.to_vec()).await?;
        blocking(move || {
            let chunks = Self::list_chunks(&log)?;
            for (i, chunk) in chunks.iter().enumerate() {
                // Wholly before the cut: the next chunk starts at or before it.
                let Some(next) = chunks.get(i + 1) else { break };
                if next.first_sequence > first_kept {
                    break;
                }
                let path = log.join(&chunk.name);
                fs::remove_file(&path).map_err(|e| StorageError::io(format!("cannot remove {}", path.display()), e))?;
            }
            fsync_dir(&log)
        })
        .await
    }

    async fn put_cosignature(
        &self,
        organization_id: &str,
        size: u64,
        witness_key_id: u32,
        line: &[u8],
    ) -> Result<(), StorageError> {
        let dir = self.log_dir(organization_id).join(CHECKPOINT_DIR);
        write_once(dir, format!("{size:020}.{witness_key_id:08x}{COSIGNATURE_SUFFIX}"), line.to_vec()).await
    }

    async fn cosignatures(&self, organization_id: &str, size: u64) -> Result<Vec<Vec<u8>>, StorageError> {
        let dir = self.log_dir(organization_id).join(CHECKPOINT_DIR);
        let prefix = format!("{size:020}.");
        blocking(move || {
            let names = match fs::read_dir(&dir) {
                Ok(_) => entry_names(&dir)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(StorageError::io(format!("cannot list {}", dir.display()), e)),
            };
            let mut out = Vec::new();
            for name in names.iter().filter(|n| n.starts_with(&prefix) && n.ends_with(COSIGNATURE_SUFFIX)) {
                let path = dir.join(name);
                out.push(fs::read(&path).map_err(|e| StorageError::io(format!("cannot read {}", path.display()), e))?);
            }
            Ok(out)
        })
        .await
    }

    async fn put_tiles(&self, organization_id: &str, tiles: &[(TileId, Vec<u8>)]) -> Result<(), StorageError> {
        let root = self.log_dir(organization_id);
        let tiles = tiles.to_vec();
        blocking(move || {
            // In groups, so a checkpoint after a long interval does not hold
            // thousands of files open.
            for group in tiles.chunks(256) {
                write_tiles(&root, group)?;
            }
            Ok(())
        })
        .await
    }

    async fn tile(&self, organization_id: &str, tile: &TileId) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.log_dir(organization_id).join(tile.path());
        blocking(move || match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(format!("cannot read {}", path.display()), e)),
        })
        .await
    }

    async fn partial_tile_widths(&self, organization_id: &str, tile: &TileId) -> Result<Vec<u16>, StorageError> {
        // `tile/0/x001/234.p/17`: the widths are the names in `…/234.p/`.
        let full = tile.as_full().path();
        let dir = self.log_dir(organization_id).join(format!("{full}.p"));
        blocking(move || match fs::read_dir(&dir) {
            Ok(_) => Ok(entry_names(&dir)?.iter().filter_map(|n| n.parse().ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(StorageError::io(format!("cannot list {}", dir.display()), e)),
        })
        .await
    }

    async fn unexpected_versions(&self, _organization_id: &str) -> Result<Vec<String>, StorageError> {
        // Files have no versions: a replaced file is caught by verification itself.
        Ok(Vec::new())
    }

    async fn latest_checkpoint(&self, organization_id: &str) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let dir = self.log_dir(organization_id).join(CHECKPOINT_DIR);
        blocking(move || {
            let newest = entry_names(&dir)?
                .into_iter()
                .filter_map(|n| {
                    let digits = n.strip_suffix(CHECKPOINT_SUFFIX)?;
                    (digits.len() == 20).then(|| digits.parse::<u64>().ok().map(|s| (s, n.clone()))).flatten()
                })
                .max();
            match newest {
                None => Ok(None),
                Some((size, name)) => {
                    let path = dir.join(name);
                    let bytes =
                        fs::read(&path).map_err(|e| StorageError::io(format!("cannot read {}", path.display()), e))?;
                    Ok(Some((size, bytes)))
                }
            }
        })
        .await
    }

    async fn read_chunk_from(
        &self,
        organization_id: &str,
        chunk: &Chunk,
        offset: u64,
    ) -> Result<Vec<u8>, StorageError> {
        let path = self.log_dir(organization_id).join(&chunk.name);
        blocking(move || {
            let mut file =
                File::open(&path).map_err(|e| StorageError::io(format!("cannot open {}", path.display()), e))?;
            let mut out = Vec::new();
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_to_end(&mut out))
                .map_err(|e| StorageError::io(format!("cannot read {}", path.display()), e))?;
            Ok(out)
        })
        .await
    }

    async fn read_ranges(
        &self,
        organization_id: &str,
        chunk: &Chunk,
        ranges: &[(u64, u64)],
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let path = self.log_dir(organization_id).join(&chunk.name);
        let ranges = ranges.to_vec();
        blocking(move || {
            let file = File::open(&path).map_err(|e| StorageError::io(format!("cannot open {}", path.display()), e))?;
            ranges
                .into_iter()
                .map(|(offset, len)| {
                    let mut buf = vec![0; len as usize];
                    file.read_exact_at(&mut buf, offset).map_err(|e| {
                        StorageError::io(format!("cannot read {len} bytes at {offset} of {}", path.display()), e)
                    })?;
                    Ok(buf)
                })
                .collect()
        })
        .await
    }

    async fn read_chunk_window(
        &self,
        organization_id: &str,
        chunk: &Chunk,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        let path = self.log_dir(organization_id).join(&chunk.name);
        let mut owned = std::mem::take(buf);
        let (owned, result) = tokio::task::spawn_blocking(move || {
            owned.clear();
            owned.resize(len, 0);
            let result = File::open(&path)
                .and_then(|file| {
                    // Fill the window unless the file ends first.
                    let mut filled = 0;
                    while filled < len {
                        match file.read_at(&mut owned[filled..], offset + filled as u64) {
                            Ok(0) => break,
                            Ok(n) => filled += n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(filled)
                })
                .map(|filled| owned.truncate(filled))
                .map_err(|e| StorageError::io(format!("cannot read {} at {offset}", path.display()), e));
            (owned, result)
        })
        .await
        .map_err(|e| StorageError::new(StorageErrorKind::Io, format!("read task failed: {e}")))?;
        *buf = owned;
        result
    }

    async fn read_chunk_into(
        &self,
        organization_id: &str,
        chunk: &Chunk,
        buf: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        let path = self.log_dir(organization_id).join(&chunk.name);
        let mut owned = std::mem::take(buf);
        owned.clear();
        let (owned, result) = tokio::task::spawn_blocking(move || {
            let result = File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut owned))
                .map(drop)
                .map_err(|e| StorageError::io(format!("cannot read {}", path.display()), e));
            (owned, result)
        })
        .await
        .map_err(|e| StorageError::new(StorageErrorKind::Io, format!("read task failed: {e}")))?;
        *buf = owned;
        result
    }
}

/// The writer of one local log. Holds the directory's lock until dropped.
#[derive(Debug)]
pub struct LocalWriter {
    recovery: Recovery,
    inner: Arc<Mutex<WriterState>>,
}

#[derive(Debug)]
struct WriterState {
    dir: PathBuf,
    organization_id: String,
    segment_bytes: u64,
    /// Held for the writer's lifetime: the fence.
    _lock: File,
    /// The segment being appended to, with its durable length.
    active: Option<(File, PathBuf, u64)>,
    /// After a failed write the next batch goes to a fresh segment.
    must_roll_over: bool,
    poisoned: Option<String>,
}

impl LocalWriter {
    fn open(dir: PathBuf, organization_id: String, segment_bytes: u64) -> Result<LocalWriter, StorageError> {
        create_dir_durably(&dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| StorageError::io(format!("cannot open {}", lock_path.display()), e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() { String::from("another process") } else { format!("process {holder}") };
                return Err(StorageError::new(
                    StorageErrorKind::Locked,
                    format!(
                        "the log of organization {organization_id} in {} is locked by {who}; only one writer may append to a log",
                        dir.display()
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(StorageError::io(format!("cannot lock {}", lock_path.display()), e));
            }
        }
        lock.set_len(0)
            .and_then(|()| lock.write_all(std::process::id().to_string().as_bytes()))
            .map_err(|e| StorageError::io(format!("cannot write {}", lock_path.display()), e))?;

        let chunks = LocalStore::list_chunks(&dir)?;
        let mut recovery = Recovery { tail: Tail::GENESIS, torn_bytes_removed: 0 };
        let mut active = None;
        if let Some(last) = chunks.last() {
            // Segments before the last are sealed; finish a rollover a crash interrupted.
            for sealed in &chunks[..chunks.len() - 1] {
                seal(&dir.join(&sealed.name))?;
            }
            let path = dir.join(&last.name);
            let (file, len, torn) = cut_torn_tail(&path)?;
            recovery.torn_bytes_removed = torn;
            active = Some((file, path, len));
            recovery.tail = find_tail(&dir, &chunks)?;
        }
        if recovery.torn_bytes_removed > 0 {
            tracing::warn!(
                organization_id,
                bytes = recovery.torn_bytes_removed,
                "cut a torn, never-acknowledged partial line at the end of the log"
            );
        }
        let state = WriterState {
            dir,
            organization_id,
            segment_bytes,
            _lock: lock,
            active,
            must_roll_over: false,
            poisoned: None,
        };
        Ok(LocalWriter { recovery, inner: Arc::new(Mutex::new(state)) })
    }
}

fn seal(path: &Path) -> Result<(), StorageError> {
    let meta = fs::metadata(path).map_err(|e| StorageError::io(format!("cannot stat {}", path.display()), e))?;
    if !meta.permissions().readonly() {
        fs::set_permissions(path, fs::Permissions::from_mode(0o400))
            .map_err(|e| StorageError::io(format!("cannot seal {}", path.display()), e))?;
    }
    Ok(())
}

/// Opens the active segment, cutting a partial last line. Returns the file,
/// its length after the cut, and how many bytes were cut.
fn cut_torn_tail(path: &Path) -> Result<(File, u64, u64), StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| StorageError::io(format!("cannot open {}", path.display()), e))?;
    let bytes = fs::read(path).map_err(|e| StorageError::io(format!("cannot read {}", path.display()), e))?;
    let keep = match bytes.last() {
        None | Some(b'\n') => bytes.len(),
        Some(_) => memchr::memrchr(b'\n', &bytes).map_or(0, |i| i + 1),
    };
    let torn = (bytes.len() - keep) as u64;
    if torn > 0 {
        file.set_len(keep as u64)
            .and_then(|()| file.sync_data())
            .map_err(|e| StorageError::io(format!("cannot cut the torn tail of {}", path.display()), e))?;
    }
    Ok((file, keep as u64, torn))
}

/// Reads the last event of the log and checks it agrees with the segment
/// names: the tail is trusted only when it is a well-formed, correctly hashed
/// event at the position its segment implies.
fn find_tail(dir: &Path, chunks: &[Chunk]) -> Result<Tail, StorageError> {
    for chunk in chunks.iter().rev() {
        let path = dir.join(&chunk.name);
        let bytes = fs::read(&path).map_err(|e| StorageError::io(format!("cannot read {}", path.display()), e))?;
        if let Some(tail) = crate::tail_of_chunk(chunk.first_sequence, &bytes, &path.display().to_string())? {
            return Ok(tail);
        }
    }
    match chunks.first() {
        Some(c) if c.first_sequence != 0 => Err(StorageError::new(
            StorageErrorKind::Unexpected,
            format!("{}: the log's only segments are empty but do not start at sequence 0", dir.display()),
        )),
        _ => Ok(Tail::GENESIS),
    }
}

impl WriterState {
    fn roll_over(&mut self, first_sequence: u64) -> Result<(), StorageError> {
        let path = self.dir.join(segment_name(first_sequence));
        let mut options = OpenOptions::new();
        options.read(true).append(true).mode(0o600);
        let file = match options.clone().create_new(true).open(&path) {
            // A rollover that failed after creating the file (e.g. at the
            // directory fsync) left it empty: take it over, never anything else.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match fs::metadata(&path) {
                Ok(meta) if meta.len() == 0 => options.open(&path),
                _ => Err(e),
            },
            other => other,
        }
        .map_err(|e| StorageError::io(format!("cannot create segment {}", path.display()), e))?;
        fsync_dir(&self.dir)?;
        if let Some((_, old, _)) = self.active.take() {
            seal(&old)?;
        }
        self.active = Some((file, path, 0));
        self.must_roll_over = false;
        Ok(())
    }

    fn append(&mut self, batch: &Batch) -> Result<Placement, StorageError> {
        if let Some(why) = &self.poisoned {
            return Err(StorageError::new(StorageErrorKind::Poisoned, why.clone()));
        }
        let needs_new = match &self.active {
            None => true,
            Some((_, _, len)) => self.must_roll_over || (*len > 0 && *len >= self.segment_bytes),
        };
        if needs_new {
            // An empty active segment (fresh log, or a new segment whose first
            // batch failed) is reused rather than leaving an empty file behind.
            let reusable = matches!(&self.active, Some((_, p, 0)) if parse_segment_name(&p.file_name().unwrap_or_default().to_string_lossy()) == Some(batch.first_sequence));
            if !reusable {
                self.roll_over(batch.first_sequence)?;
            }
        }
        let (file, path, durable_len) = self.active.as_mut().expect("an active segment after rollover");
        let result = file.write_all(&batch.bytes).and_then(|()| file.sync_data());
        match result {
            Ok(()) => {
                let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
                let first_sequence = parse_segment_name(&name).ok_or_else(|| {
                    StorageError::new(StorageErrorKind::Unexpected, format!("segment {} is misnamed", path.display()))
                })?;
                let placement = Placement { chunk: Chunk { first_sequence, name }, offset: *durable_len };
                *durable_len += batch.bytes.len() as u64;
                Ok(placement)
            }
            Err(e) => {
                // The kernel may have dropped the dirty pages already: never
                // retry the sync. Cut back to what is known durable and move
                // on to a new segment for the next batch.
                let cut = file.set_len(*durable_len).and_then(|()| file.sync_data());
                let failure =
                    StorageError::io(format!("cannot append {} events to {}", batch.count, path.display()), e);
                match cut {
                    Ok(()) => {
                        self.must_roll_over = true;
                        Err(failure)
                    }
                    Err(cut_err) => {
                        let why = format!(
                            "log of {} is unsafe to append to: a failed append to {} could not be cut back ({cut_err}); restart after fixing storage",
                            self.organization_id,
                            path.display()
                        );
                        tracing::error!(organization_id = %self.organization_id, %cut_err, "poisoning writer");
                        self.poisoned = Some(why);
                        Err(failure)
                    }
                }
            }
        }
    }
}

#[async_trait]
impl LogWriter for LocalWriter {
    fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    async fn append(&mut self, batch: Arc<Batch>) -> Result<Placement, StorageError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut state = inner.lock().unwrap_or_else(|poison| poison.into_inner());
            state.append(&batch)
        })
        .await
        .map_err(|e| StorageError::new(StorageErrorKind::Io, format!("append task failed: {e}")))?
    }
}
