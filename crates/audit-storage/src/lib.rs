//! # audit-storage
//!
//! Where logs live. Storage is the source of truth: the index, the service's
//! caches and every report are derived from what is here.
//!
//! A log is a series of **chunks** (segment files locally, objects on S3),
//! each named by the sequence of its first event, each holding stored lines
//! (one canonical event per line, `\n`-terminated). The trait is append-only
//! by construction: there is no call that rewrites or deletes an event.
//!
//! ```text
//! LogStore::open_writer(org) ── takes the fence (one writer per log), recovers the tail
//!     └─▶ LogWriter::append(batch)  ── returns only once the batch is durable
//! LogStore::chunks(org) / read_chunk(...)  ── readers: verify, export, index
//! ```

mod error;
pub mod local;
pub mod org_dir;
#[cfg(feature = "testing")]
pub mod test_suite;
pub mod whole_file;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use audit_core::tiles::TileId;
use audit_core::{Hash, Timestamp};

pub use error::{StorageError, StorageErrorKind};

/// A contiguous piece of one log: a segment file or an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Chunk {
    /// Sequence of the first event it holds.
    pub first_sequence: u64,
    /// Its name within the log (file name or object key), for reports.
    pub name: String,
}

/// Where a log ends: what the next appended event links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    /// Sequence the next event gets.
    pub next_sequence: u64,
    /// Hash the next event's `previous_hash` must carry.
    pub last_hash: Hash,
    /// Timestamp of the last event (the next may not be earlier).
    pub last_timestamp: Option<Timestamp>,
}

impl Tail {
    /// The tail of an empty log.
    pub const GENESIS: Tail = Tail { next_sequence: 0, last_hash: Hash::GENESIS, last_timestamp: None };
}

/// The tail a log has when `bytes` (whole `\n`-terminated stored lines,
/// the first at `first_sequence`) is its last chunk; `None` when the chunk
/// is empty. The tail is trusted only when the last line is a well-formed,
/// correctly hashed event at the position the chunk implies; anything else
/// is [`StorageErrorKind::Unexpected`] naming `place`.
pub fn tail_of_chunk(first_sequence: u64, bytes: &[u8], place: &str) -> Result<Option<Tail>, StorageError> {
    use audit_core::stored::{StoredEvent, hash_line};
    let Some(body) = bytes.strip_suffix(b"\n") else {
        return if bytes.is_empty() {
            Ok(None)
        } else {
            Err(StorageError::new(StorageErrorKind::Unexpected, format!("{place}: the last line is not terminated")))
        };
    };
    let lines = memchr::memchr_iter(b'\n', bytes).count() as u64;
    let last_line = &body[memchr::memrchr(b'\n', body).map_or(0, |i| i + 1)..];
    let unexpected = |why: String| {
        StorageError::new(
            StorageErrorKind::Unexpected,
            format!("{place}: {why}; refusing to append until an operator has run verify"),
        )
    };
    let event = StoredEvent::parse_line(last_line)
        .map_err(|e| unexpected(format!("the last line is not a valid stored event ({e})")))?;
    match hash_line(last_line) {
        Some((computed, claimed)) if computed == claimed => {}
        _ => return Err(unexpected("the last event does not match its hash".into())),
    }
    let expected = first_sequence + lines - 1;
    if event.sequence != expected {
        return Err(unexpected(format!(
            "the last event has sequence {} but its position implies {expected}",
            event.sequence
        )));
    }
    Ok(Some(Tail { next_sequence: event.sequence + 1, last_hash: event.hash, last_timestamp: Some(event.timestamp) }))
}

/// What opening a writer found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Where the log ends.
    pub tail: Tail,
    /// Bytes of a torn, never-acknowledged last line that were cut.
    pub torn_bytes_removed: u64,
}

/// Events ready to append: stored lines, each ending in `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Sequence of the first line.
    pub first_sequence: u64,
    /// Number of lines.
    pub count: u64,
    /// The lines.
    pub bytes: Vec<u8>,
}

/// Where an appended batch landed: the chunk holding it (a batch never
/// spans two) and the byte offset of its first line there. The indexer
/// uses it to index a batch from the worker's own bytes instead of reading
/// them back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The chunk the batch was appended to.
    pub chunk: Chunk,
    /// Byte offset of the batch's first line in that chunk.
    pub offset: u64,
}

/// What retention removed from the start of a log, as the store keeps it
/// for ever: the newest signed prune record and the hashes (32 raw bytes
/// each, in sequence order) of every removed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Events `0..first_kept` were removed.
    pub first_kept: u64,
    /// The newest prune record (a signed note).
    pub record: Vec<u8>,
    /// The removed events' hashes, `first_kept` × 32 bytes when whole.
    pub hashes: Vec<u8>,
}

/// A store of organization logs.
#[async_trait]
pub trait LogStore: Send + Sync + Debug {
    /// Takes the fence for `organization_id`'s log (fails with
    /// [`StorageErrorKind::Locked`] while another writer holds it) and
    /// recovers its tail.
    async fn open_writer(&self, organization_id: &str) -> Result<Box<dyn LogWriter>, StorageError>;

    /// Organizations that have a log.
    async fn organizations(&self) -> Result<Vec<String>, StorageError>;

    /// The chunks of a log in sequence order (empty for an unknown organization).
    async fn chunks(&self, organization_id: &str) -> Result<Vec<Chunk>, StorageError>;

    /// The bytes of one chunk, as stored.
    async fn read_chunk(&self, organization_id: &str, chunk: &Chunk) -> Result<Vec<u8>, StorageError>;

    /// The bytes of one chunk, into `buf` (replacing its contents). Readers
    /// of whole logs reuse one buffer so that its memory is touched once.
    async fn read_chunk_into(
        &self,
        organization_id: &str,
        chunk: &Chunk,
        buf: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        *buf = self.read_chunk(organization_id, chunk).await?;
        Ok(())
    }

    /// Up to `len` bytes of a chunk from `offset`, into `buf` (replacing its
    /// contents): fewer at the chunk's end, none past it. Readers that must
    /// keep memory flat whatever the chunk's size (exports) walk a chunk
    /// window by window.
    async fn read_chunk_window(
        &self,
        organization_id: &str,
        chunk: &Chunk,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        let all = self.read_chunk(organization_id, chunk).await?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(all.len());
        buf.clear();
        buf.extend_from_slice(&all[start..all.len().min(start.saturating_add(len))]);
        Ok(())
    }

    /// The bytes of a chunk from `offset` to its current end (for readers
    /// that follow a growing log, such as the indexer).
    async fn read_chunk_from(
        &self,
        organization_id: &str,
        chunk: &Chunk,
        offset: u64,
    ) -> Result<Vec<u8>, StorageError> {
        let all = self.read_chunk(organization_id, chunk).await?;
        Ok(all.get(offset as usize..).unwrap_or_default().to_vec())
    }

    /// The bytes of the chunk that starts at `first_sequence`, if there is
    /// one (for a writer following other writers of a shared log: one
    /// request per chunk on object stores, no listing).
    async fn read_chunk_at(&self, organization_id: &str, first_sequence: u64) -> Result<Option<Vec<u8>>, StorageError> {
        let chunks = self.chunks(organization_id).await?;
        match chunks.iter().find(|c| c.first_sequence == first_sequence) {
            Some(chunk) => self.read_chunk(organization_id, chunk).await.map(Some),
            None => Ok(None),
        }
    }

    /// Stores a signed checkpoint of `organization_id`'s log at `size`
    /// (write-once: an existing checkpoint of that size is never replaced).
    async fn put_checkpoint(&self, organization_id: &str, size: u64, note: &[u8]) -> Result<(), StorageError>;

    /// The newest stored checkpoint (largest size), if any.
    async fn latest_checkpoint(&self, organization_id: &str) -> Result<Option<(u64, Vec<u8>)>, StorageError>;

    /// Evidence that something tried to hide or replace part of the log
    /// behind the store's own rules, one sentence each (S3: delete markers
    /// and extra versions under a log's keys; Object Lock protects
    /// versions, not key names). Stores that cannot have any say none.
    async fn unexpected_versions(&self, organization_id: &str) -> Result<Vec<String>, StorageError>;

    /// What retention removed from the start of the log, if anything.
    async fn pruned(&self, organization_id: &str) -> Result<Option<Pruned>, StorageError> {
        let _ = organization_id;
        Ok(None)
    }

    /// Where retention cut the log: the first sequence still kept (0 when
    /// never pruned). Cheap, unlike [`LogStore::pruned`]: no hashes read.
    async fn prune_cut(&self, organization_id: &str) -> Result<u64, StorageError> {
        Ok(self.pruned(organization_id).await?.map_or(0, |p| p.first_kept))
    }

    /// Retention (SPEC §15), the one exception to append-only: stores the
    /// signed prune `record` and the hashes of the events it removes
    /// (`removed_hashes`: those of events from the previous cut up to
    /// `first_kept`), durably and write-once, and only then removes the
    /// chunks that lie wholly before `first_kept`. The caller has checked
    /// that those chunks are sealed, verified and past retention; the
    /// newest chunk is never removed. Stores that cannot remove chunks
    /// (S3 Object Lock: a lifecycle rule does) refuse.
    async fn prune(
        &self,
        organization_id: &str,
        first_kept: u64,
        removed_hashes: &[u8],
        record: &[u8],
    ) -> Result<(), StorageError> {
        let _ = (organization_id, first_kept, removed_hashes, record);
        Err(StorageError::new(
            StorageErrorKind::Unexpected,
            "this store does not remove events (see its retention rule)",
        ))
    }

    /// Stores a witness's cosignature (one C2SP note signature line) of
    /// the checkpoint of `size`, write-once per witness key id.
    async fn put_cosignature(
        &self,
        organization_id: &str,
        size: u64,
        witness_key_id: u32,
        line: &[u8],
    ) -> Result<(), StorageError> {
        let _ = (organization_id, size, witness_key_id, line);
        Err(StorageError::new(StorageErrorKind::Unexpected, "this store does not keep cosignatures"))
    }

    /// The cosignature lines stored for the checkpoint of `size`.
    async fn cosignatures(&self, organization_id: &str, size: u64) -> Result<Vec<Vec<u8>>, StorageError> {
        let _ = (organization_id, size);
        Ok(Vec::new())
    }

    /// Stores tiles of the log's Merkle tree (C2SP tlog-tiles, see
    /// `audit_core::tiles`), durably and write-once: a tile path names one
    /// content for ever, so an existing tile is left as it is. Tiles are
    /// derived from the log and checked by `verify`. Stores without tiles
    /// refuse.
    async fn put_tiles(&self, organization_id: &str, tiles: &[(TileId, Vec<u8>)]) -> Result<(), StorageError> {
        let _ = (organization_id, tiles);
        Err(StorageError::new(StorageErrorKind::Unexpected, "this store does not keep tiles"))
    }

    /// The stored tile `tile` (exactly that width), if any.
    async fn tile(&self, organization_id: &str, tile: &TileId) -> Result<Option<Vec<u8>>, StorageError> {
        let _ = (organization_id, tile);
        Ok(None)
    }

    /// The widths of the partial tiles stored at `tile`'s level and index.
    async fn partial_tile_widths(&self, organization_id: &str, tile: &TileId) -> Result<Vec<u16>, StorageError> {
        let _ = (organization_id, tile);
        Ok(Vec::new())
    }

    /// A stored tile at `tile`'s level and index holding at least its
    /// hashes: the tile itself, the full tile, or the narrowest wider
    /// partial one (tiles only grow to the right, so any of them serves).
    async fn tile_at_least(
        &self,
        organization_id: &str,
        tile: &TileId,
    ) -> Result<Option<(TileId, Vec<u8>)>, StorageError> {
        if let Some(content) = self.tile(organization_id, tile).await? {
            return Ok(Some((*tile, content)));
        }
        if tile.is_full() {
            return Ok(None);
        }
        let full = tile.as_full();
        if let Some(content) = self.tile(organization_id, &full).await? {
            return Ok(Some((full, content)));
        }
        let mut widths = self.partial_tile_widths(organization_id, tile).await?;
        widths.sort_unstable();
        for width in widths.into_iter().filter(|w| *w > tile.width) {
            let wider = TileId { width, ..*tile };
            if let Some(content) = self.tile(organization_id, &wider).await? {
                return Ok(Some((wider, content)));
            }
        }
        Ok(None)
    }

    /// Several `(offset, length)` ranges of one chunk (for fetching query results).
    async fn read_ranges(
        &self,
        organization_id: &str,
        chunk: &Chunk,
        ranges: &[(u64, u64)],
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let all = self.read_chunk(organization_id, chunk).await?;
        ranges
            .iter()
            .map(|&(offset, len)| {
                all.get(offset as usize..(offset + len) as usize).map(<[u8]>::to_vec).ok_or_else(|| {
                    StorageError::new(
                        StorageErrorKind::Unexpected,
                        format!("{} is shorter than {}", chunk.name, offset + len),
                    )
                })
            })
            .collect()
    }
}

/// The one writer of a log. Dropping it releases the fence.
#[async_trait]
pub trait LogWriter: Send + Sync + Debug {
    /// What opening found.
    fn recovery(&self) -> &Recovery;

    /// Appends a batch; `Ok` means every line is on stable storage. On
    /// `Err`, no line of the batch counts as written (the writer has cut
    /// back whatever reached the file), or the writer is poisoned and
    /// refuses further appends. `Ok` says where the batch landed.
    async fn append(&mut self, batch: Arc<Batch>) -> Result<Placement, StorageError>;

    /// After a [`StorageErrorKind::Conflict`], continues from `tail`: the
    /// caller has read the other writers' events up to there. The next
    /// append is still fenced, so a tail that is already old again only
    /// costs another conflict. Stores with an exclusive fence never
    /// conflict and refuse this.
    fn resume_at(&mut self, tail: Tail) -> Result<(), StorageError> {
        let _ = tail;
        Err(StorageError::new(StorageErrorKind::Unexpected, "this store's writer cannot be repositioned"))
    }
}
