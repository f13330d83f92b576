//! Signed notes and checkpoints (C2SP signed-note, tlog-checkpoint): any
//! text is opened and parsed without a panic, and no text opens under a key
//! unless it carries that key's valid signature — which random input cannot.
#![no_main]

use std::sync::LazyLock;

use audit_core::note::{Checkpoint, SignerKey, VerifierKey, open, sign};
use libfuzzer_sys::fuzz_target;

static SIGNER: LazyLock<SignerKey> =
    LazyLock::new(|| SignerKey::from_seed("fuzz.example/log", [7; 32]).expect("a valid signer name"));
static VERIFIER: LazyLock<VerifierKey> = LazyLock::new(|| SIGNER.verifier());

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = VerifierKey::parse(text);
    let _ = SignerKey::parse(text);
    if let Ok(checkpoint) = Checkpoint::parse(text) {
        // A parsed checkpoint signs and opens back to the same body.
        if let Ok(note) = sign(text, &SIGNER) {
            assert_eq!(open(&note, &VERIFIER).ok(), Some(text));
            let _ = checkpoint;
        }
    }
    assert!(open(text, &VERIFIER).is_err(), "random text never carries our signature");
});
