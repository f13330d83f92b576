use std::collections::HashMap;

use super::*;
use crate::merkle::{ProofTree, leaf_hash, root};

fn event_hash(i: u64) -> Hash {
    Hash::of(&i.to_be_bytes())
}

/// Every tile (full and the partials of `size`) of a tree of `size` events.
fn all_tiles(size: u64) -> (TileBuilder, HashMap<TileId, Vec<u8>>) {
    let mut b = TileBuilder::new();
    let mut tiles = HashMap::new();
    for i in 0..size {
        b.push(&event_hash(i));
        tiles.extend(b.take_full());
    }
    tiles.extend(b.partials());
    (b, tiles)
}

fn leaves(size: u64) -> Vec<Hash> {
    (0..size).map(|i| leaf_hash(event_hash(i).as_bytes())).collect()
}

#[test]
fn paths_follow_the_spec_example_and_round_trip() {
    // c2sp.org/tlog-tiles: "index 1234067 will be encoded as x001/x234/067".
    let t = TileId::full(TileKind::Hashes(0), 1_234_067);
    assert_eq!(t.path(), "tile/0/x001/x234/067");
    let p = TileId { kind: TileKind::Entries, index: 5, width: 17 };
    assert_eq!(p.path(), "tile/entries/005.p/17");
    assert_eq!(TileId::full(TileKind::Hashes(2), 1000).path(), "tile/2/x001/000");
    for id in
        [t, p, TileId::full(TileKind::Hashes(63), u64::MAX), TileId { kind: TileKind::Hashes(1), index: 0, width: 1 }]
    {
        assert_eq!(TileId::parse(&id.path()), Ok(id), "{}", id.path());
    }
}

#[test]
fn malformed_paths_are_refused() {
    for bad in [
        "",
        "tile/",
        "tile/0",
        "tile/00/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/0/01",
        "tile/0/0001",
        "tile/0/x000/001",
        "tile/0/001/002",
        "tile/0/y001/002",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/07",
        "tile/0/000.p/",
        "tile/0/000.p/x",
        "tile/data/000",
        "tile/entries/000.p/300",
        "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
        "tiles/0/000",
        "tile/0/000/",
    ] {
        assert!(TileId::parse(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn a_tree_of_70000_has_the_tiles_the_spec_lists() {
    // c2sp.org/tlog-tiles: "a tree of size 70,000 will be represented by 273
    // full level 0 tiles, one partial level 0 tile of width 112, one full
    // level 1 tile, one partial level 1 tile of width 17, and one partial
    // level 2 tile of width 1."
    let (_, tiles) = all_tiles(70_000);
    let count = |kind, full: bool| tiles.keys().filter(|t| t.kind == kind && t.is_full() == full).count();
    assert_eq!(count(TileKind::Hashes(0), true), 273);
    assert_eq!(count(TileKind::Entries, true), 273);
    assert_eq!(count(TileKind::Hashes(1), true), 1);
    assert_eq!(count(TileKind::Hashes(2), true), 0);
    let partial = |kind| tiles.keys().find(|t| t.kind == kind && !t.is_full()).map(|t| (t.index, t.width));
    assert_eq!(partial(TileKind::Hashes(0)), Some((273, 112)));
    assert_eq!(partial(TileKind::Entries), Some((273, 112)));
    assert_eq!(partial(TileKind::Hashes(1)), Some((1, 17)));
    assert_eq!(partial(TileKind::Hashes(2)), Some((0, 1)));
    assert_eq!(tiles.len(), 273 * 2 + 1 + 4);
    // "a tree of size 256 will be represented by a full level 0 tile and a
    // partial level 1 tile of width 1."
    let (_, tiles) = all_tiles(256);
    let mut ids: Vec<String> = tiles.keys().map(TileId::path).collect();
    ids.sort();
    assert_eq!(ids, ["tile/0/000", "tile/1/000.p/1", "tile/entries/000"]);
}

#[test]
fn tile_hashes_are_the_subtree_hashes_the_spec_defines() {
    let size = 256 * 256 + 300;
    let (b, tiles) = all_tiles(size);
    let leaves = leaves(size);
    // Level 1, hash i: MTH(D[i*256 : (i+1)*256]).
    let level1 = &tiles[&TileId::full(TileKind::Hashes(1), 0)];
    for i in [0usize, 1, 17, 255] {
        assert_eq!(level1[i * 32..(i + 1) * 32], *root(&leaves[i * 256..(i + 1) * 256]).as_bytes());
    }
    // Level 2's partial tile of width 1: the first 65,536 leaves.
    let level2 = &tiles[&TileId { kind: TileKind::Hashes(2), index: 0, width: 1 }];
    assert_eq!(level2[..], *root(&leaves[..65_536]).as_bytes());
    // An entry: length 32, big-endian, then the event hash.
    let entries = &tiles[&TileId::full(TileKind::Entries, 3)];
    assert_eq!(entries[..2], [0, 32]);
    assert_eq!(entries[2..34], *event_hash(3 * 256).as_bytes());
    assert_eq!(b.root(), root(&leaves));
}

#[test]
fn the_builder_root_is_the_tree_root_at_every_size() {
    let mut b = TileBuilder::new();
    let mut all = Vec::new();
    assert_eq!(b.root(), empty_root());
    for i in 0..1100u64 {
        b.push(&event_hash(i));
        all.push(leaf_hash(event_hash(i).as_bytes()));
        assert_eq!(b.root(), root(&all), "size {}", i + 1);
    }
}

#[test]
fn resuming_from_the_partial_tiles_continues_the_same_tree() {
    for size in [0u64, 1, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 70_000] {
        let (b, tiles) = all_tiles(size);
        let contents: Vec<Vec<u8>> = TileBuilder::resume_tiles(size).iter().map(|id| tiles[id].clone()).collect();
        let mut resumed = TileBuilder::resume(size, &contents).expect("resume");
        assert_eq!(resumed.root(), b.root(), "size {size}");
        let mut straight = b;
        for i in size..size + 600 {
            straight.push(&event_hash(i));
            resumed.push(&event_hash(i));
        }
        assert_eq!(resumed.take_full(), straight.take_full(), "size {size}");
        assert_eq!(resumed.partials(), straight.partials());
        assert_eq!(resumed.root(), straight.root());
    }
}

#[test]
fn resuming_refuses_tiles_that_do_not_fit() {
    let (_, tiles) = all_tiles(300);
    let ids = TileBuilder::resume_tiles(300);
    let mut contents: Vec<Vec<u8>> = ids.iter().map(|id| tiles[id].clone()).collect();
    assert!(TileBuilder::resume(300, &contents[..1]).is_err(), "a tile left out");
    contents[0][40] ^= 1; // an entry no longer hashes to its leaf
    assert!(TileBuilder::resume(300, &contents).is_err());
    contents[0].pop();
    assert!(TileBuilder::resume(300, &contents).is_err(), "a short bundle");
}

/// The tiles `needed` lists, each as the tree has it or, for a partial
/// one, as its wider or full form if that is what a store holds.
fn tree_tiles(size: u64, needed: &[TileId], store: &HashMap<TileId, Vec<u8>>) -> TreeTiles {
    let mut t = TreeTiles::new(size);
    for id in needed {
        let (found, content) = store.get_key_value(id).or_else(|| store.get_key_value(&id.as_full())).expect("stored");
        t.insert(*found, content).expect("insert");
    }
    t
}

#[test]
fn proofs_from_tiles_equal_proofs_from_all_leaves() {
    let big = 65_536 + 257;
    let (_, store) = all_tiles(big);
    let all = leaves(big);
    for size in [1u64, 2, 3, 255, 256, 257, 1000, 65_536, big] {
        // Tiles of the bigger tree serve the smaller one (they only grow).
        let tree = ProofTree::new(&all[..size as usize]);
        for index in [0, 1, size / 3, size / 2, size.saturating_sub(257), size - 1] {
            if index >= size {
                continue;
            }
            let needed = TreeTiles::new(size).needed_for_inclusion(index).unwrap();
            assert!(needed.len() <= 8, "{} tiles for one proof", needed.len());
            let tiles = tree_tiles(size, &needed, &store);
            assert_eq!(tiles.inclusion_proof(index).unwrap(), tree.inclusion_proof(index as usize).unwrap());
            assert_eq!(tiles.leaf(index).unwrap(), all[index as usize]);
            assert_eq!(tiles.root_at(size).unwrap(), tree.root());
        }
        for first in [0u64, 1, size / 2, size.saturating_sub(1), size] {
            let needed = TreeTiles::new(size).needed_for_consistency(first).unwrap();
            let tiles = tree_tiles(size, &needed, &store);
            assert_eq!(tiles.consistency_proof(first).unwrap(), tree.consistency_proof(first as usize).unwrap());
            assert_eq!(tiles.root_at(first).unwrap(), tree.root_at(first as usize));
        }
    }
}

#[test]
fn a_missing_or_short_tile_is_an_error_not_a_wrong_proof() {
    let (_, store) = all_tiles(1000);
    let needed = TreeTiles::new(1000).needed_for_inclusion(5).unwrap();
    let mut tiles = tree_tiles(1000, &needed[1..], &store);
    assert!(matches!(tiles.inclusion_proof(5), Err(TileError::Missing(_))));
    let first = needed[0];
    let content = &store[&first];
    // A narrower tile of the same position than the tree needs.
    let narrow = TileId { width: 1, ..first };
    tiles.insert(narrow, &content[..32]).unwrap();
    assert!(tiles.inclusion_proof(5).is_err());
    assert!(tiles.insert(first, &content[..content.len() - 1]).is_err());
    assert!(TreeTiles::new(1000).needed_for_inclusion(1000).is_err());
    assert!(TreeTiles::new(1000).needed_for_consistency(1001).is_err());
}

#[test]
fn tiles_are_authenticated_up_to_the_signed_root() {
    let size = 65_536 + 700;
    let (b, mut store) = all_tiles(size);
    let t = TreeTiles::new(size);
    let needed = t.with_ancestors(t.needed_for_inclusion(300).unwrap());
    assert!(needed.contains(&TileId::full(TileKind::Hashes(0), 1)));
    assert!(needed.contains(&TileId::full(TileKind::Hashes(1), 0)), "{needed:?}");
    let tiles = tree_tiles(size, &needed, &store);
    tiles.authenticate(&b.root()).unwrap();
    assert!(tiles.authenticate(&Hash::of(b"another root")).is_err());
    // An interior tile altered, its length kept: caught by its parent.
    store.get_mut(&TileId::full(TileKind::Hashes(0), 1)).unwrap()[7] ^= 1;
    let tiles = tree_tiles(size, &needed, &store);
    let refused = tiles.authenticate(&b.root()).unwrap_err();
    assert!(refused.to_string().contains("tile/0/001"), "{refused}");
}
