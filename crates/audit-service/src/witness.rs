//! Submitting checkpoints to witnesses (c2sp.org/tlog-witness): after each
//! checkpoint, every configured witness is sent `add-checkpoint` with the
//! consistency proof from the size it last cosigned; its cosignature
//! (c2sp.org/tlog-cosignature v1), checked with its key, is stored beside
//! the checkpoint and served appended to it.
//!
//! One background task does it, newest checkpoint per organization first
//! (older ones waiting are skipped): a witness that is down, slow or
//! answers garbage delays only its own cosignatures, never ingest or
//! checkpoints. A witness answering 409 says which size it holds; the
//! submission is retried once from there. A witness holding a *larger* size
//! than the checkpoint has seen another, longer tree for this origin: the
//! log was rolled back or shows different trees to different parties —
//! logged as an error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use audit_core::cosign::{CosignerVerifier, split_note};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::sync::mpsc;

use crate::shared::Shared;

/// A witness: where to submit, and its cosigning key.
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    /// The submission prefix: `add-checkpoint` is posted to `<url>/add-checkpoint`.
    pub url: String,
    /// Its cosignature/v1 verifier key.
    pub key: CosignerVerifier,
}

impl WitnessConfig {
    /// Parses `<url> <vkey>` (one `AUDIT_WITNESSES` entry).
    pub fn parse(entry: &str) -> Result<WitnessConfig, String> {
        let (url, key) = entry
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{entry:?}: expected `<url> <vkey>`"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{url:?} is not an http(s) URL"));
        }
        let key = CosignerVerifier::parse(key.trim()).map_err(|e| format!("{key:?}: {e}"))?;
        Ok(WitnessConfig { url: url.trim_end_matches('/').to_owned(), key })
    }
}

/// What a witness last did with one organization's checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessStatus {
    /// The witness's name.
    pub name: String,
    /// The largest checkpoint size it cosigned (as far as this instance saw).
    pub cosigned_size: Option<u64>,
    /// Why the last submission failed, if it did.
    pub last_error: Option<String>,
    /// Set when the witness holds a larger tree, or another tree of the
    /// same size: the log was rolled back or forked (an alert was raised).
    pub fork: Option<String>,
}

/// A checkpoint to submit: organization, size, the signed note.
pub(crate) type Submission = (String, u64, String);

/// Runs until the service's sender is dropped.
pub(crate) async fn run(
    shared: Arc<Shared>,
    witnesses: Vec<WitnessConfig>,
    mut rx: mpsc::UnboundedReceiver<Submission>,
) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot make an HTTP client for witnesses");
            return;
        }
    };
    // Per (witness, organization): the size it holds.
    let mut held: HashMap<(usize, String), u64> = HashMap::new();
    while let Some(first) = rx.recv().await {
        let mut newest: HashMap<String, (u64, String)> = HashMap::new();
        let mut take = |(org, size, note): Submission| {
            if newest.get(&org).is_none_or(|(s, _)| *s < size) {
                newest.insert(org, (size, note));
            }
        };
        take(first);
        while let Ok(more) = rx.try_recv() {
            take(more);
        }
        for (org, (size, note)) in newest {
            for (i, witness) in witnesses.iter().enumerate() {
                let old = held.get(&(i, org.clone())).copied().unwrap_or(0);
                let outcome = submit(&shared, &client, witness, &org, size, &note, old).await;
                if let Some(now) = outcome.holds {
                    held.insert((i, org.clone()), now);
                }
                if let Some(fork) = &outcome.fork {
                    shared.raise(crate::alert::AlertKind::WitnessFork, &org, fork);
                }
                let mut all = shared.witness_status.lock().unwrap_or_else(|p| p.into_inner());
                let list = all.entry(org.clone()).or_default();
                let status = match list.iter_mut().find(|s| s.name == witness.key.name()) {
                    Some(s) => s,
                    None => {
                        list.push(WitnessStatus {
                            name: witness.key.name().to_owned(),
                            cosigned_size: None,
                            last_error: None,
                            fork: None,
                        });
                        list.last_mut().expect("just pushed")
                    }
                };
                if outcome.cosigned {
                    status.cosigned_size = Some(size);
                }
                status.last_error = outcome.error;
                if outcome.fork.is_some() {
                    status.fork = outcome.fork;
                }
            }
        }
    }
}

/// What one submission came to.
#[derive(Debug, Default)]
struct Outcome {
    /// The size the witness holds afterwards, when known.
    holds: Option<u64>,
    /// It cosigned the checkpoint.
    cosigned: bool,
    /// Why it did not.
    error: Option<String>,
    /// It holds a larger or another tree: what it said.
    fork: Option<String>,
}

fn failed(why: impl Into<String>) -> Outcome {
    Outcome { error: Some(why.into()), ..Outcome::default() }
}

/// One submission (with one retry after a 409).
async fn submit(
    shared: &Shared,
    client: &reqwest::Client,
    witness: &WitnessConfig,
    org: &str,
    size: u64,
    note: &str,
    mut old: u64,
) -> Outcome {
    let name = witness.key.name();
    for _ in 0..2 {
        let proof = if old == 0 || old >= size {
            Vec::new()
        } else {
            match crate::proofs::consistency_proof(shared.store.as_ref(), org, old, size).await {
                Ok(p) => p.proof,
                Err(e) => {
                    tracing::warn!(witness = name, organization_id = org, error = %e, "no consistency proof for a witness");
                    return failed(format!("no consistency proof from {old}: {e}"));
                }
            }
        };
        let mut body = format!("old {old}\n");
        for h in &proof {
            body.push_str(&B64.encode(h.as_bytes()));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        let response = match client.post(format!("{}/add-checkpoint", witness.url)).body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(witness = name, organization_id = org, error = %e, "a witness did not answer; next checkpoint retries");
                return failed(format!("no answer: {e}"));
            }
        };
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        match status {
            200 => {
                let Some((checkpoint_text, _)) = split_note(note) else { return failed("not a signed note") };
                let Some(line) = text.lines().find(|l| witness.key.check_line(checkpoint_text, l).is_some()) else {
                    tracing::warn!(
                        witness = name,
                        organization_id = org,
                        "a witness answered without a valid cosignature"
                    );
                    return failed("the answer holds no valid cosignature by its key");
                };
                if let Err(e) =
                    shared.store.put_cosignature(org, size, witness.key.id(), format!("{line}\n").as_bytes()).await
                {
                    tracing::error!(witness = name, organization_id = org, error = %e, "cannot store a cosignature");
                }
                return Outcome { holds: Some(size), cosigned: true, ..Outcome::default() };
            }
            409 => {
                let Some(theirs) = text.trim().parse::<u64>().ok() else {
                    tracing::warn!(witness = name, organization_id = org, "a witness's 409 did not say its size");
                    return failed("a 409 without a size");
                };
                if theirs > size {
                    tracing::error!(
                        witness = name,
                        organization_id = org,
                        witness_size = theirs,
                        size,
                        "a witness holds a larger tree of this log than its newest checkpoint: the log was rolled back or shows different trees (run verify)"
                    );
                    // Another instance may have checkpointed (and submitted) a larger tree since.
                    if let Ok(Some((newest, _))) = shared.store.latest_checkpoint(org).await
                        && newest >= theirs
                    {
                        return Outcome { holds: Some(theirs), ..Outcome::default() };
                    }
                    let fork = format!(
                        "witness {name} holds a tree of {theirs} events; the newest checkpoint has {size}: the log was rolled back or shows different trees"
                    );
                    return Outcome { holds: Some(theirs), fork: Some(fork), ..Outcome::default() };
                }
                if theirs == old {
                    // Same size, another root: a split view.
                    tracing::error!(
                        witness = name,
                        organization_id = org,
                        size = theirs,
                        "a witness holds another tree of this size"
                    );
                    let fork = format!("witness {name} holds another tree of {theirs} events than the log's");
                    return Outcome { holds: Some(theirs), fork: Some(fork), ..Outcome::default() };
                }
                old = theirs;
            }
            _ => {
                tracing::warn!(witness = name, organization_id = org, status, answer = %text.trim(), "a witness refused a checkpoint");
                return failed(format!("HTTP {status}: {}", text.trim()));
            }
        }
    }
    failed(format!("the witness still holds another size than {old}"))
}
