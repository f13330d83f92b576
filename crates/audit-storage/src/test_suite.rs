//! The conformance suite every [`LogStore`] backend passes (feature
//! `testing`): run it from the backend's own tests with a [`Harness`] that
//! makes fresh, empty stores. Each check panics with what went wrong.
//!
//! ```text
//! fence            two writers never both append at one position
//! recovery         a reopened writer resumes at the stored tail
//! placements       each append says where its batch landed, as listed and read back
//! torn_tail        a partial last line is cut on open (where a crash can leave one)
//! checkpoints      write-once checkpoints; the newest is found
//! whole_checkpoints a reader beside the writer never sees a checkpoint half-written
//! chunk_reads      read_chunk_at by first sequence, read_ranges, read_chunk_from, windows
//! versions         an untouched log has no unexpected versions
//! tiles            write-once tiles; partial widths; the narrowest tile that serves
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use audit_core::Timestamp;
use audit_core::sample::sample_log;

use crate::{Batch, LogStore, StorageErrorKind};

/// What the suite needs from a backend's tests.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new, empty store (its own directory or bucket).
    async fn fresh(&self) -> Arc<dyn LogStore>;

    /// Leaves a partial line after the log's last complete one, as a crash
    /// mid-write would; `false` when the backend cannot have one (objects
    /// written whole), and the torn-tail check is then skipped.
    async fn tear_tail(&self, store: &dyn LogStore, organization_id: &str, partial: &[u8]) -> bool;
}

const ORG: &str = "Suite:Org-1";

fn start() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-28T00:00:00Z").expect("a valid time")
}

/// Lines `from..to` of `log` as one batch.
fn batch(log: &[Vec<u8>], from: usize, to: usize) -> Arc<Batch> {
    let mut bytes = Vec::new();
    for l in &log[from..to] {
        bytes.extend_from_slice(l);
        bytes.push(b'\n');
    }
    Arc::new(Batch { first_sequence: from as u64, count: (to - from) as u64, bytes })
}

/// Every check, in turn.
pub async fn run_all(h: &dyn Harness) {
    fence(h).await;
    recovery(h).await;
    placements(h).await;
    torn_tail(h).await;
    checkpoints(h).await;
    whole_checkpoints(h).await;
    chunk_reads(h).await;
    versions(h).await;
    tiles(h).await;
}

/// Two writers on one log never both append at the same position: the
/// second either cannot open (a lock) or loses its conditional write.
pub async fn fence(h: &dyn Harness) {
    let store = h.fresh().await;
    let log = sample_log(ORG, 4, start());
    // Other events at the same positions (what a forking writer would write).
    let fork = sample_log(ORG, 4, start().add_micros(1_000_000));
    let mut first = store.open_writer(ORG).await.expect("the first writer opens");
    match store.open_writer(ORG).await {
        Err(e) => assert_eq!(e.kind, StorageErrorKind::Locked, "a refused second writer says Locked: {e}"),
        Ok(mut second) => {
            first.append(batch(&log, 0, 2)).await.expect("the first writer appends");
            let lost = second.append(batch(&fork, 0, 2)).await.expect_err("the stale writer must not append");
            assert_eq!(lost.kind, StorageErrorKind::Conflict, "{lost}");
        }
    }
    // Another organization is independent of this log's fence.
    store.open_writer("suite-other").await.expect("another organization's writer opens");
}

/// Each append says where its batch landed: a chunk the store lists, and
/// the offset at which reading that chunk gives back the batch's bytes
/// (the indexer indexes from there without reading storage). A reopened
/// writer goes on from the right place too.
pub async fn placements(h: &dyn Harness) {
    let store = h.fresh().await;
    let log = sample_log(ORG, 9, start());
    let mut landed = Vec::new();
    for (from, to) in [(0, 3), (3, 4), (4, 7)] {
        let mut w = store.open_writer(ORG).await.expect("opens");
        let b = batch(&log, from, to);
        landed.push((w.append(Arc::clone(&b)).await.expect("appends"), b));
    }
    let chunks = store.chunks(ORG).await.expect("lists");
    for (placement, b) in &landed {
        assert!(chunks.contains(&placement.chunk), "{placement:?} names a listed chunk ({chunks:?})");
        assert!(placement.chunk.first_sequence <= b.first_sequence, "{placement:?} starts after its batch");
        let read = store.read_chunk_from(ORG, &placement.chunk, placement.offset).await.expect("reads");
        assert!(
            read.starts_with(&b.bytes),
            "the chunk at the placement {placement:?} holds the batch from sequence {}",
            b.first_sequence
        );
    }
    let (first, _) = &landed[0];
    assert_eq!((first.chunk.first_sequence, first.offset), (0, 0), "the first batch opens the log");
}

/// A writer reopened after appends resumes at the stored tail.
pub async fn recovery(h: &dyn Harness) {
    let store = h.fresh().await;
    let log = sample_log(ORG, 6, start());
    {
        let mut w = store.open_writer(ORG).await.expect("opens");
        assert_eq!(w.recovery().tail.next_sequence, 0, "an empty log starts at 0");
        w.append(batch(&log, 0, 3)).await.expect("appends");
        w.append(batch(&log, 3, 6)).await.expect("appends");
    }
    let w = store.open_writer(ORG).await.expect("reopens");
    let last = audit_core::stored::StoredEvent::parse_line(&log[5]).expect("sample lines parse");
    assert_eq!(w.recovery().tail.next_sequence, 6);
    assert_eq!(w.recovery().tail.last_hash, last.hash);
    assert_eq!(w.recovery().torn_bytes_removed, 0);
    let mut all = Vec::new();
    for c in store.chunks(ORG).await.expect("lists") {
        all.extend(store.read_chunk(ORG, &c).await.expect("reads"));
    }
    let expected: Vec<u8> = log.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
    assert_eq!(all, expected, "storage holds exactly the appended lines, in order");
    assert!(store.organizations().await.expect("lists").contains(&ORG.to_owned()));
}

/// A partial last line is cut when the next writer opens, and only it.
pub async fn torn_tail(h: &dyn Harness) {
    let store = h.fresh().await;
    let log = sample_log(ORG, 5, start());
    {
        let mut w = store.open_writer(ORG).await.expect("opens");
        w.append(batch(&log, 0, 4)).await.expect("appends");
    }
    if !h.tear_tail(store.as_ref(), ORG, &log[4][..60]).await {
        return;
    }
    let mut w = store.open_writer(ORG).await.expect("a torn tail is not a reason to refuse");
    assert_eq!(w.recovery().torn_bytes_removed, 60);
    assert_eq!(w.recovery().tail.next_sequence, 4);
    w.append(batch(&log, 4, 5)).await.expect("appends after the cut");
}

/// Checkpoints are write-once; the newest is found.
pub async fn checkpoints(h: &dyn Harness) {
    let store = h.fresh().await;
    assert_eq!(store.latest_checkpoint(ORG).await.expect("reads"), None);
    store.put_checkpoint(ORG, 3, b"note at 3").await.expect("stores");
    store.put_checkpoint(ORG, 12, b"note at 12").await.expect("stores");
    store.put_checkpoint(ORG, 7, b"note at 7").await.expect("stores");
    // Writing a size again never replaces what is stored.
    let _ = store.put_checkpoint(ORG, 12, b"forged note").await;
    assert_eq!(store.latest_checkpoint(ORG).await.expect("reads"), Some((12, b"note at 12".to_vec())));
    // Witnesses' cosignatures: one per witness key, beside the checkpoint.
    store.put_cosignature(ORG, 12, 0xabcd_0001, b"line 1\n").await.expect("stores");
    store.put_cosignature(ORG, 12, 0xabcd_0002, b"line 2\n").await.expect("stores");
    let _ = store.put_cosignature(ORG, 12, 0xabcd_0001, b"forged\n").await;
    store.put_cosignature(ORG, 120, 0xabcd_0001, b"another size\n").await.expect("stores");
    let mut lines = store.cosignatures(ORG, 12).await.expect("lists");
    lines.sort();
    assert_eq!(lines, [b"line 1\n".to_vec(), b"line 2\n".to_vec()]);
    assert_eq!(store.cosignatures(ORG, 7).await.expect("lists"), Vec::<Vec<u8>>::new());
    assert_eq!(
        store.latest_checkpoint(ORG).await.expect("reads"),
        Some((12, b"note at 12".to_vec())),
        "cosignatures are not checkpoints"
    );
}

/// A verification reads the newest checkpoint while the service writes the
/// next ones: every read is a whole note, never an empty or cut one (which
/// verification would report as a malformed, so tampered, checkpoint).
pub async fn whole_checkpoints(h: &dyn Harness) {
    const NOTES: u64 = 40;
    // Large enough that writing one takes a while for a reader to fall into.
    let note = |size: u64| vec![b'a' + (size % 26) as u8; 256 * 1024];
    let store = h.fresh().await;
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for size in 1..=NOTES {
                store.put_checkpoint(ORG, size, &note(size)).await.expect("stores");
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        if let Some((size, bytes)) = store.latest_checkpoint(ORG).await.expect("reads") {
            assert!(bytes == note(size), "checkpoint {size} read with {} of {} bytes", bytes.len(), note(size).len());
            reads += 1;
        }
        tokio::task::yield_now().await;
    }
    writer.await.expect("the writer finishes");
    assert_eq!(store.latest_checkpoint(ORG).await.expect("reads"), Some((NOTES, note(NOTES))));
    assert!(reads > 0, "the reader ran beside the writer");
}

/// Reads by first sequence, by ranges, and from an offset agree with the chunk.
pub async fn chunk_reads(h: &dyn Harness) {
    let store = h.fresh().await;
    let log = sample_log(ORG, 6, start());
    {
        let mut w = store.open_writer(ORG).await.expect("opens");
        w.append(batch(&log, 0, 2)).await.expect("appends");
        w.append(batch(&log, 2, 6)).await.expect("appends");
    }
    let chunks = store.chunks(ORG).await.expect("lists");
    assert!(!chunks.is_empty());
    for c in &chunks {
        let bytes = store.read_chunk(ORG, c).await.expect("reads");
        let at = store.read_chunk_at(ORG, c.first_sequence).await.expect("reads");
        assert_eq!(at.as_deref(), Some(bytes.as_slice()), "read_chunk_at({}) is chunk {}", c.first_sequence, c.name);
        let ranges = [(0, 10), (5, 20), (bytes.len() as u64 - 7, 7)];
        let got = store.read_ranges(ORG, c, &ranges).await.expect("reads ranges");
        for ((offset, len), piece) in ranges.iter().zip(&got) {
            assert_eq!(piece.as_slice(), &bytes[*offset as usize..(*offset + *len) as usize]);
        }
        let from = store.read_chunk_from(ORG, c, 11).await.expect("reads from an offset");
        assert_eq!(from.as_slice(), &bytes[11..]);
        // Windows: whole ones, one cut by the chunk's end, one past it.
        let mut window = vec![0xAA; 3];
        let len = bytes.len() as u64;
        for (offset, want) in
            [(0, 0..17), (3, 3..20), (len - 5, bytes.len() - 5..bytes.len()), (len, 0..0), (len + 9, 0..0)]
        {
            store.read_chunk_window(ORG, c, offset, 17, &mut window).await.expect("reads a window");
            assert_eq!(window.as_slice(), &bytes[want], "window of 17 at {offset} of {}", c.name);
        }
    }
    assert_eq!(store.read_chunk_at(ORG, 6).await.expect("reads"), None, "no chunk starts past the end");
    assert_eq!(store.chunks("suite-nobody").await.expect("lists"), Vec::new(), "an unknown log has no chunks");
}

/// An untouched log shows no evidence of hidden or replaced parts.
pub async fn versions(h: &dyn Harness) {
    let store = h.fresh().await;
    let log = sample_log(ORG, 3, start());
    let mut w = store.open_writer(ORG).await.expect("opens");
    w.append(batch(&log, 0, 3)).await.expect("appends");
    store.put_checkpoint(ORG, 3, b"note").await.expect("stores");
    assert_eq!(store.unexpected_versions(ORG).await.expect("lists"), Vec::<String>::new());
}

/// Tiles are stored write-once at their C2SP paths; a partial tile is
/// served by itself, the full tile, or the narrowest wider partial one.
pub async fn tiles(h: &dyn Harness) {
    use audit_core::tiles::{TileId, TileKind};
    let store = h.fresh().await;
    let level0 = |index, width| TileId { kind: TileKind::Hashes(0), index, width };
    let content = |t: &TileId, byte: u8| vec![byte; t.content_len()];
    let (p3, p9, full1) = (level0(2, 3), level0(2, 9), TileId::full(TileKind::Hashes(0), 1));
    let bundle = TileId { kind: TileKind::Entries, index: 1234, width: 200 };
    let tiles =
        vec![(p3, content(&p3, 3)), (p9, content(&p9, 9)), (full1, content(&full1, 1)), (bundle, content(&bundle, 7))];
    store.put_tiles(ORG, &tiles).await.expect("stores tiles");
    for (id, bytes) in &tiles {
        assert_eq!(store.tile(ORG, id).await.expect("reads").as_ref(), Some(bytes), "{id}");
    }
    // Write-once: the first content of a path stands.
    store.put_tiles(ORG, &[(p3, content(&p3, 0xee))]).await.expect("an existing tile is not an error");
    assert_eq!(store.tile(ORG, &p3).await.expect("reads"), Some(content(&p3, 3)));
    assert_eq!(store.tile(ORG, &level0(2, 4)).await.expect("reads"), None);
    let mut widths = store.partial_tile_widths(ORG, &level0(2, 1)).await.expect("lists");
    widths.sort_unstable();
    assert_eq!(widths, [3, 9]);
    assert_eq!(store.partial_tile_widths(ORG, &level0(5, 1)).await.expect("lists"), Vec::<u16>::new());
    // Width 5 is served by the tile of width 9; width 2 by 3; width 10 by nothing.
    assert_eq!(store.tile_at_least(ORG, &level0(2, 5)).await.expect("reads").map(|(t, _)| t), Some(p9));
    assert_eq!(store.tile_at_least(ORG, &level0(2, 2)).await.expect("reads").map(|(t, _)| t), Some(p3));
    assert_eq!(store.tile_at_least(ORG, &level0(2, 10)).await.expect("reads"), None);
    assert_eq!(store.tile_at_least(ORG, &level0(1, 40)).await.expect("reads").map(|(t, _)| t), Some(full1));
    // Once the full tile of a place is stored, a partial one is served by it.
    let full2 = TileId::full(TileKind::Hashes(0), 2);
    store.put_tiles(ORG, &[(full2, content(&full2, 2))]).await.expect("stores the full tile");
    assert_eq!(store.tile_at_least(ORG, &level0(2, 7)).await.expect("reads").map(|(t, _)| t), Some(full2));
    // Tiles are not chunks of the log.
    assert_eq!(store.chunks(ORG).await.expect("lists"), Vec::new());
}
