use proptest::prelude::*;

use super::*;

fn h(hex: &str) -> Hash {
    Hash::from_hex(hex).unwrap()
}

// Known-answer data transcribed from transparency-dev/merkle:
// testonly/constants.go (LeafInputs, RootHashes) and proof/verify_test.go
// (inclusionProofs, consistencyProofs), which are the RFC 6962 test vectors.
const LEAF_INPUTS: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (leaf number counted from 1, tree size, proof)
fn inclusion_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (3, 3, vec![h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
        (
            2,
            5,
            vec![
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
    ]
}

fn consistency_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            5,
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
        (
            6,
            7,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
    ]
}

fn leaves() -> Vec<Hash> {
    LEAF_INPUTS.iter().map(|i| leaf_hash(&hex::decode(i).unwrap())).collect()
}

#[test]
fn roots_match_the_rfc6962_vectors_by_recursion_and_by_frontier() {
    let leaves = leaves();
    let mut frontier = Frontier::new();
    assert_eq!(frontier.root(), h(ROOTS[0]));
    for n in 1..=8 {
        assert_eq!(root(&leaves[..n]), h(ROOTS[n]), "size {n}");
        frontier.push(leaves[n - 1]);
        assert_eq!((frontier.size(), frontier.root()), (n as u64, h(ROOTS[n])), "frontier size {n}");
    }
}

#[test]
fn inclusion_proofs_match_the_vectors_and_verify() {
    let leaves = leaves();
    for (leaf, size, proof) in inclusion_vectors() {
        let (i, n) = ((leaf - 1) as usize, size as usize);
        assert_eq!(inclusion_proof(&leaves[..n], i).unwrap(), proof, "leaf {leaf} of {size}");
        verify_inclusion(leaf - 1, size, &leaves[i], &proof, &h(ROOTS[n])).unwrap();
    }
}

#[test]
fn consistency_proofs_match_the_vectors_and_verify() {
    let leaves = leaves();
    for (size1, size2, proof) in consistency_vectors() {
        assert_eq!(consistency_proof(&leaves[..size2 as usize], size1 as usize).unwrap(), proof, "{size1} → {size2}");
        verify_consistency(size1, size2, &proof, &h(ROOTS[size1 as usize]), &h(ROOTS[size2 as usize])).unwrap();
    }
}

/// Forgeries modelled on transparency-dev/merkle's corrupted probes: wrong
/// index, wrong size, wrong leaf or root, extra or missing or altered hashes.
#[test]
fn forged_inclusion_proofs_are_rejected() {
    let leaves = leaves();
    let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
    for (leaf, size, proof) in inclusion_vectors().into_iter().filter(|(_, _, p)| !p.is_empty()) {
        let (i, r) = (leaf - 1, h(ROOTS[size as usize]));
        let l = leaves[i as usize];
        let mut probes: Vec<(u64, u64, Hash, Vec<Hash>, Hash)> = vec![
            (i.wrapping_sub(1), size, l, proof.clone(), r),
            (i + 1, size, l, proof.clone(), r),
            (i ^ 2, size, l, proof.clone(), r),
            (i, size * 2, l, proof.clone(), r),
            (i, size / 2, l, proof.clone(), r),
            (i, size, some, proof.clone(), r),
            (i, size, l, proof.clone(), empty_root()),
            (i, size, l, proof.clone(), some),
            (i, size, l, [proof.clone(), vec![r]].concat(), r),
            (i, size, l, [vec![r], proof.clone()].concat(), r),
            (i, size, l, proof[..proof.len() - 1].to_vec(), r),
        ];
        if proof.len() > 1 {
            probes.push((i, size, l, [vec![proof[0], some], proof[1..].to_vec()].concat(), r));
        }
        for k in 0..proof.len() {
            let mut p = proof.clone();
            let mut bytes = *p[k].as_bytes();
            bytes[0] ^= 8;
            p[k] = Hash::from_bytes(bytes);
            probes.push((i, size, l, p, r));
        }
        for (n, (pi, ps, pl, pp, pr)) in probes.into_iter().enumerate() {
            assert!(verify_inclusion(pi, ps, &pl, &pp, &pr).is_err(), "probe {n} of leaf {leaf}/{size} verified");
        }
    }
    // A one-leaf tree: the root is the leaf and the proof is empty.
    let one = leaf_hash(b"data");
    assert!(verify_inclusion(0, 1, &one, &[], &one).is_ok());
    assert!(verify_inclusion(0, 1, &one, &[], &some).is_err());
    assert!(verify_inclusion(0, 0, &one, &[], &one).is_err());
    assert!(verify_inclusion(2, 1, &one, &[], &one).is_err());
}

#[test]
fn forged_consistency_proofs_are_rejected() {
    let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
    for (size1, size2, proof) in consistency_vectors().into_iter().filter(|(_, _, p)| !p.is_empty()) {
        let (r1, r2) = (h(ROOTS[size1 as usize]), h(ROOTS[size2 as usize]));
        let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
            (size1 - 1, size2, r1, r2, proof.clone()),
            (size1 + 1, size2, r1, r2, proof.clone()),
            (size1 ^ 2, size2, r1, r2, proof.clone()),
            (size1, size2 * 2, r1, r2, proof.clone()),
            (size1, size2 / 2, r1, r2, proof.clone()),
            (size1, size2, some, r2, proof.clone()),
            (size1, size2, r1, some, proof.clone()),
            (size1, size2, r2, r1, proof.clone()),
            (size1, size2, r1, r2, vec![]),
            (size1, size2, r1, r2, [proof.clone(), vec![r1]].concat()),
            (size1, size2, r1, r2, [proof.clone(), vec![r2]].concat()),
            (size1, size2, r1, r2, [vec![r1], proof.clone()].concat()),
            (size1, size2, r1, r2, [vec![r2], proof.clone()].concat()),
            (size1, size2, r1, r2, [vec![proof[0]], proof.clone()].concat()),
            (size1, size2, r1, r2, proof[..proof.len() - 1].to_vec()),
        ];
        for k in 0..proof.len() {
            let mut p = proof.clone();
            let mut bytes = *p[k].as_bytes();
            bytes[0] ^= 16;
            p[k] = Hash::from_bytes(bytes);
            probes.push((size1, size2, r1, r2, p));
        }
        for (n, (s1, s2, a, b, p)) in probes.into_iter().enumerate() {
            assert!(verify_consistency(s1, s2, &p, &a, &b).is_err(), "probe {n} of {size1}→{size2} verified");
        }
    }
    // Trivial cases (transparency-dev/merkle TestVerifyConsistency).
    let (a, b) = (some, empty_root());
    assert!(verify_consistency(0, 0, &[], &a, &a).is_ok());
    assert!(verify_consistency(0, 1, &[], &a, &b).is_ok());
    assert!(verify_consistency(1, 1, &[], &b, &b).is_ok());
    assert!(verify_consistency(1, 1, &[], &a, &b).is_err());
    assert!(verify_consistency(1, 0, &[], &a, &b).is_err());
    assert!(verify_consistency(1, 2, &[], &a, &b).is_err());
    assert!(verify_consistency(0, 1, &[b], &b, &b).is_err());
    assert!(verify_consistency(1, 1, &[b], &b, &b).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Every leaf of every tree size up to 300 proves its inclusion; every
    /// prefix proves its consistency; the frontier agrees with the recursion.
    #[test]
    fn proofs_round_trip_for_every_size(size in 1usize..300, seed in any::<u64>()) {
        let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&(seed ^ i as u64).to_be_bytes())).collect();
        let full = root(&leaves);
        let mut frontier = Frontier::new();
        leaves.iter().for_each(|l| frontier.push(*l));
        prop_assert_eq!(frontier.root(), full);
        for i in 0..size {
            let proof = inclusion_proof(&leaves, i).unwrap();
            prop_assert!(verify_inclusion(i as u64, size as u64, &leaves[i], &proof, &full).is_ok());
            prop_assert!(verify_inclusion(i as u64, size as u64, &leaves[(i + 1) % size], &proof, &full).is_err() || size == 1);
        }
        for m in 0..=size {
            let proof = consistency_proof(&leaves, m).unwrap();
            prop_assert!(verify_consistency(m as u64, size as u64, &proof, &root(&leaves[..m]), &full).is_ok(), "{} → {}", m, size);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// The block-cached tree gives exactly the proofs and roots of the plain
    /// recursion, across block boundaries and odd sizes.
    #[test]
    fn proof_tree_agrees_with_the_plain_recursion(size in 1usize..1300, picks in proptest::collection::vec(0usize..1300, 6)) {
        let leaves: Vec<Hash> = (0..size as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let tree = ProofTree::new(&leaves);
        proptest::prop_assert_eq!(tree.root(), root(&leaves));
        for p in picks {
            let i = p % size;
            proptest::prop_assert_eq!(tree.inclusion_proof(i).unwrap(), inclusion_proof(&leaves, i).unwrap());
            proptest::prop_assert_eq!(tree.consistency_proof(i + 1).unwrap(), consistency_proof(&leaves, i + 1).unwrap());
            proptest::prop_assert_eq!(tree.root_at(i + 1), root(&leaves[..i + 1]));
            let proof = tree.inclusion_proof(i).unwrap();
            proptest::prop_assert!(verify_inclusion(i as u64, size as u64, &leaves[i], &proof, &tree.root()).is_ok());
        }
        proptest::prop_assert_eq!(tree.inclusion_proof(size), Err(ProofError::IndexOutOfRange));
    }
}

#[test]
fn a_frontier_rebuilt_from_its_peaks_keeps_growing_the_same_tree() {
    let leaves: Vec<Hash> = (0..77u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let mut whole = Frontier::new();
    let mut resumed = None;
    for (i, leaf) in leaves.iter().enumerate() {
        if i == 45 {
            resumed = Frontier::from_peaks(whole.size(), whole.peaks().to_vec());
        }
        whole.push(*leaf);
        if let Some(r) = resumed.as_mut() {
            r.push(*leaf);
        }
    }
    let resumed = resumed.unwrap();
    assert_eq!(resumed.root(), root(&leaves));
    assert_eq!(resumed, whole);
    assert_eq!(Frontier::from_peaks(44, whole.peaks().to_vec()), None, "44 has three set bits, 77 has four");
}
