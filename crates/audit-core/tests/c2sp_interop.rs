//! Our C2SP signed notes, checkpoints and RFC 6962/9162 proofs against
//! independent implementations: Cloudflare's `signed_note` (a port of Go's
//! `golang.org/x/mod/sumdb/note`) opens what we sign — checkpoints and prune
//! records — and we open what it signs, both agreeing on the published
//! example key; its `tlog_tiles` (a port of Go's `sumdb/tlog`) checks every
//! inclusion and consistency proof we make and parses our checkpoints.

use audit_core::Hash;
use audit_core::note::{Checkpoint, SignerKey, VerifierKey, open, sign};
use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};

/// The example key pair of the Go `note` package's documentation (also in
/// the `signed_note` crate's docs): a published test vector.
const GO_DOC_SIGNER: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_DOC_VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

fn theirs_open(note: &str, vkey: &str) -> Vec<u8> {
    let verifier = StandardVerifier::new(vkey).expect("their parser takes our verifier key");
    let list = VerifierList::new(vec![Box::new(verifier)]);
    let parsed = Note::from_bytes(note.as_bytes()).expect("their parser takes our note");
    let (verified, _) = parsed.verify(&list).expect("their verifier accepts our signature");
    assert_eq!(verified.len(), 1);
    parsed.text().to_vec()
}

#[test]
fn the_published_example_key_reads_the_same_in_both() {
    let ours = SignerKey::parse(GO_DOC_SIGNER).unwrap();
    assert_eq!(ours.verifier().to_string(), GO_DOC_VERIFIER);
    assert_eq!(ours.to_private_string(), GO_DOC_SIGNER);
    let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    let note = sign(text, &ours).unwrap();
    assert_eq!(theirs_open(&note, GO_DOC_VERIFIER), text.as_bytes());
}

#[test]
fn they_open_our_checkpoints_and_we_open_theirs() {
    let signer = SignerKey::from_seed("audit.example/org-1", [42; 32]).unwrap();
    let checkpoint = Checkpoint { origin: "audit.example/org-1".into(), size: 1234, root: Hash::of(b"a tree head") };
    let note = sign(&checkpoint.to_text(), &signer).unwrap();
    let text = theirs_open(&note, &signer.verifier().to_string());
    assert_eq!(Checkpoint::parse(std::str::from_utf8(&text).unwrap()).unwrap(), checkpoint);

    // A note they sign with our key opens with our verifier.
    let theirs = StandardSigner::new(&signer.to_private_string()).expect("they take our private key form");
    let mut note = Note::new(checkpoint.to_text().as_bytes(), &[]).unwrap();
    note.add_sigs(&[&theirs]).unwrap();
    let bytes = String::from_utf8(note.to_bytes()).unwrap();
    let key = VerifierKey::parse(&signer.verifier().to_string()).unwrap();
    assert_eq!(open(&bytes, &key).unwrap(), checkpoint.to_text());

    // A signature by another key is refused by both.
    let other = SignerKey::from_seed("audit.example/org-1", [7; 32]).unwrap();
    let forged = sign(&checkpoint.to_text(), &other).unwrap();
    assert!(open(&forged, &key).is_err());
    let verifier = StandardVerifier::new(&signer.verifier().to_string()).unwrap();
    let parsed = Note::from_bytes(forged.as_bytes()).unwrap();
    assert!(parsed.verify(&VerifierList::new(vec![Box::new(verifier)])).is_err());
}

#[test]
fn they_open_our_prune_records() {
    let signer = SignerKey::from_seed("audit.example/org-1", [3; 32]).unwrap();
    let hashes: Vec<u8> = (0..4u8).flat_map(|n| [n; 32]).collect();
    let mut tree = audit_core::merkle::Frontier::new();
    for h in hashes.chunks_exact(32) {
        tree.push(audit_core::merkle::leaf_hash(h));
    }
    let record = audit_core::prune::PruneRecord {
        origin: "audit.example/org-1".into(),
        first_kept: 4,
        root: tree.root(),
        last_hash: Hash::from_bytes([3; 32]),
        last_timestamp: audit_core::Timestamp::parse_rfc3339("2019-01-01T00:00:00Z").unwrap(),
        hashes: Hash::of(&hashes),
        pruned_at: audit_core::Timestamp::parse_rfc3339("2026-12-06T00:00:00Z").unwrap(),
    };
    let note = sign(&record.to_text(), &signer).unwrap();
    let text = theirs_open(&note, &signer.verifier().to_string());
    assert_eq!(audit_core::prune::PruneRecord::parse(std::str::from_utf8(&text).unwrap()).unwrap(), record);
}

/// Our Merkle proofs and checkpoint text against Cloudflare's `tlog_tiles`
/// (a port of Go's `golang.org/x/mod/sumdb/tlog`): it checks every
/// inclusion and consistency proof we make, and parses our checkpoints.
#[test]
fn tlog_tiles_checks_our_proofs_and_reads_our_checkpoints() {
    use tlog_tiles::tlog::{Hash as TlogHash, check_record, check_tree, record_hash};
    let entries: Vec<[u8; 32]> = (0..37u8).map(|n| *Hash::of(&[n]).as_bytes()).collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| audit_core::merkle::leaf_hash(e)).collect();
    let tree = audit_core::merkle::ProofTree::new(&leaves);
    let theirs = |h: &Hash| TlogHash(*h.as_bytes());
    for size in [1usize, 2, 3, 7, 8, 13, 32, 37] {
        let root = tree.root_at(size);
        let prefix = audit_core::merkle::ProofTree::new(&leaves[..size]);
        for (index, entry) in entries.iter().enumerate().take(size) {
            let proof: Vec<TlogHash> = prefix.inclusion_proof(index).unwrap().iter().map(theirs).collect();
            check_record(&proof, size as u64, theirs(&root), index as u64, record_hash(entry))
                .unwrap_or_else(|e| panic!("inclusion of {index} in {size}: {e:?}"));
        }
        for first in 1..size {
            let proof: Vec<TlogHash> = prefix.consistency_proof(first).unwrap().iter().map(theirs).collect();
            check_tree(&proof, size as u64, theirs(&root), first as u64, theirs(&tree.root_at(first)))
                .unwrap_or_else(|e| panic!("consistency {first} -> {size}: {e:?}"));
        }
    }
    let checkpoint = Checkpoint { origin: "audit.example/org-1".into(), size: 37, root: tree.root() };
    let parsed = tlog_tiles::checkpoint::Checkpoint::from_bytes(checkpoint.to_text().as_bytes()).unwrap();
    assert_eq!((parsed.origin(), parsed.size(), parsed.hash().0), ("audit.example/org-1", 37, *tree.root().as_bytes()));
}

/// Our tiles, read through `tlog_tiles`' own tile reader (Go's
/// `sumdb/tlog.TileHashReader`): it authenticates every tile it loads
/// against the tree head, computes the same root, and proves and checks
/// inclusion and consistency from our tiles alone. Its paths are Go's
/// sumdb form (`tile/8/<L>/…`, height in the path); C2SP drops the height,
/// so ours must be its paths without `8/`.
#[test]
fn tlog_tiles_reads_our_tiles_and_proves_from_them() {
    use std::collections::HashMap;

    use audit_core::tiles::{TileBuilder, TileId};
    use tlog_tiles::tlog::{
        Hash as TlogHash, check_record, check_tree, prove_record, prove_tree, record_hash, tree_hash,
    };
    use tlog_tiles::{Tile, TileHashReader, TileReader};

    struct OurTiles(HashMap<String, Vec<u8>>);
    impl TileReader for OurTiles {
        fn height(&self) -> u8 {
            8
        }
        fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::tlog::Error> {
            Ok(tiles
                .iter()
                .map(|t| {
                    let path = t.path().replacen("tile/8/", "tile/", 1);
                    let id = TileId::parse(&path).unwrap_or_else(|e| panic!("their path {path}: {e}"));
                    assert_eq!(id.path(), path);
                    self.0.get(&path).unwrap_or_else(|| panic!("they asked for {path}, which we did not write")).clone()
                })
                .collect())
        }
        fn save_tiles(&self, _: &[Tile], _: &[Vec<u8>]) {}
    }

    let size = 65_536 + 300;
    let event = |i: u64| Hash::of(&i.to_le_bytes());
    let mut builder = TileBuilder::new();
    let mut tiles = HashMap::new();
    let mut checkpoints = Vec::new();
    for i in 0..size {
        builder.push(&event(i));
        tiles.extend(builder.take_full().into_iter().map(|(id, c)| (id.path(), c)));
        if [1000, 65_536, size].contains(&(i + 1)) {
            // A checkpoint at this size: its partial tiles are written too.
            tiles.extend(builder.partials().into_iter().map(|(id, c)| (id.path(), c)));
            checkpoints.push((i + 1, builder.root()));
        }
    }
    let reader = OurTiles(tiles);
    for &(n, root) in &checkpoints {
        let th = TlogHash(*root.as_bytes());
        let hashes = TileHashReader::new(n, th, &reader);
        assert_eq!(tree_hash(n, &hashes).unwrap(), th, "size {n}");
        for index in [0, 1, 255, 256, n / 2, n - 1] {
            let proof = prove_record(n, index, &hashes).unwrap();
            check_record(&proof, n, th, index, record_hash(event(index).as_bytes())).unwrap();
        }
        for &(m, old_root) in checkpoints.iter().filter(|(m, _)| *m <= n) {
            let proof = prove_tree(n, m, &hashes).unwrap();
            check_tree(&proof, n, th, m, TlogHash(*old_root.as_bytes())).unwrap();
        }
    }
}

/// A checkpoint carrying a witness's cosignature (C2SP tlog-cosignature
/// v1, type 0x04) still opens with the log's key in their verifier, which
/// ignores the line of a key it was not given, as the signed-note spec
/// requires; and ours reads the cosignature on the note they parsed.
#[test]
fn they_open_cosigned_checkpoints_with_the_logs_key() {
    use audit_core::cosign::CosignerKey;
    let log = SignerKey::from_seed("audit.example/org-1", [42; 32]).unwrap();
    let checkpoint = Checkpoint { origin: "audit.example/org-1".into(), size: 77, root: Hash::of(b"a tree head") };
    let witness = CosignerKey::from_seed("witness.example/w1", [43; 32]).unwrap();
    let cosigned = format!(
        "{}{}",
        sign(&checkpoint.to_text(), &log).unwrap(),
        witness.cosign(&checkpoint.to_text(), 1_700_000_000)
    );
    assert_eq!(theirs_open(&cosigned, &log.verifier().to_string()), checkpoint.to_text().as_bytes());
    let parsed = Note::from_bytes(cosigned.as_bytes()).expect("their parser takes a cosigned note");
    assert_eq!(parsed.text(), checkpoint.to_text().as_bytes());
    assert_eq!(witness.verifier().cosigned_at(&cosigned), Some(1_700_000_000));
}
