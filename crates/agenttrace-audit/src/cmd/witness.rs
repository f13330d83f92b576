//! `witness --state DIR --log-key VKEY… [--name NAME] [--listen ADDR]`: a
//! minimal C2SP tlog-witness (c2sp.org/tlog-witness) that a customer or an
//! auditor runs, with its own key and state, so that a log rolled back or
//! showing different trees to different parties is caught by a party the
//! log's operator does not control.
//!
//! `POST /add-checkpoint` takes `old <size>`, the consistency proof lines
//! (base64), a blank line and the signed checkpoint. The witness cosigns
//! (C2SP tlog-cosignature v1) only a checkpoint signed by a trusted log key
//! and consistent with the last one it cosigned for that origin; it
//! answers 404 for an unknown origin, 403 for no valid log signature, 400
//! for a malformed request, 409 with `text/x.tlog.size` when `old` is not
//! the size it holds (or the same size with another root), and 422 when the
//! proof does not verify. The state (per origin: the last cosigned
//! checkpoint) is checked and replaced under one lock and made durable
//! before the answer.
//!
//! A trusted log key named `N` vouches for the origin `N` and for
//! `N/<organization>` (a deployment signs each organization's log under
//! `<AUDIT_LOG_ORIGIN>/<organization>` with one key: trust
//! `agenttrace-audit keys public` without `--org`, or each organization's key).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use audit_core::Hash;
use audit_core::cosign::{CosignerKey, split_note};
use audit_core::note::{Checkpoint, VerifierKey};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::exit;

/// Largest request body (63 proof lines and a checkpoint with a few signatures).
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directory of the witness's key (`witness.key`, made at first start, 0600) and state.
    #[arg(long)]
    state: PathBuf,
    /// A log's verifier key (C2SP vkey, type 0x01) whose checkpoints to cosign; repeatable.
    #[arg(long = "log-key", required = true)]
    log_keys: Vec<String>,
    /// The witness's name (key name of its cosignatures) when its key is made.
    #[arg(long, default_value = "agenttrace-witness.local")]
    name: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7380")]
    listen: std::net::SocketAddr,
}

struct Witness {
    key: CosignerKey,
    logs: Vec<VerifierKey>,
    state: PathBuf,
    /// Held from reading an origin's state until the new one is durable.
    lock: tokio::sync::Mutex<()>,
}

fn answer(status: StatusCode, text: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text.into()).into_response()
}

impl Witness {
    /// The trusted key for `origin`, under that name.
    fn log_key(&self, origin: &str) -> Option<VerifierKey> {
        self.logs.iter().find_map(|k| {
            if k.name() == origin {
                Some(k.clone())
            } else if origin.strip_prefix(k.name()).is_some_and(|rest| rest.starts_with('/')) {
                k.renamed(origin).ok()
            } else {
                None
            }
        })
    }

    fn state_file(&self, origin: &str) -> PathBuf {
        self.state.join("logs").join(Hash::of(origin.as_bytes()).to_hex())
    }

    /// The last checkpoint cosigned for `origin` (its text), if any.
    fn last(&self, origin: &str) -> std::io::Result<Option<Checkpoint>> {
        match std::fs::read_to_string(self.state_file(origin)) {
            Ok(text) => Checkpoint::parse(&text)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces `origin`'s state durably: temporary file, sync, rename, sync.
    fn save(&self, cp: &Checkpoint) -> std::io::Result<()> {
        let path = self.state_file(&cp.origin);
        let dir = path.parent().expect("a state directory");
        std::fs::create_dir_all(dir)?;
        let temporary = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
        f.write_all(cp.to_text().as_bytes())?;
        f.sync_data()?;
        std::fs::rename(&temporary, &path)?;
        std::fs::File::open(dir)?.sync_data()
    }

    async fn add_checkpoint(&self, body: &[u8]) -> Response {
        let Ok(body) = std::str::from_utf8(body) else { return answer(StatusCode::BAD_REQUEST, "not UTF-8\n") };
        let Some((old_line, rest)) = body.split_once('\n') else {
            return answer(StatusCode::BAD_REQUEST, "no old size line\n");
        };
        let old = match old_line.strip_prefix("old ") {
            Some(n) if n == "0" || (!n.starts_with('0') && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) => {
                match n.parse::<u64>() {
                    Ok(n) => n,
                    Err(_) => return answer(StatusCode::BAD_REQUEST, "the old size is too large\n"),
                }
            }
            _ => return answer(StatusCode::BAD_REQUEST, "the first line must be `old <size>`\n"),
        };
        let mut proof = Vec::new();
        let mut rest = rest;
        loop {
            let Some((line, after)) = rest.split_once('\n') else {
                return answer(StatusCode::BAD_REQUEST, "no blank line before the checkpoint\n");
            };
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == 63 {
                return answer(StatusCode::BAD_REQUEST, "more than 63 proof lines\n");
            }
            match B64.decode(line).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                Some(h) => proof.push(Hash::from_bytes(h)),
                None => return answer(StatusCode::BAD_REQUEST, "a proof line is not a base64 hash\n"),
            }
        }
        let note = rest;
        let Some((text, _)) = split_note(note) else { return answer(StatusCode::BAD_REQUEST, "not a signed note\n") };
        let Ok(checkpoint) = Checkpoint::parse(text) else {
            return answer(StatusCode::BAD_REQUEST, "not a checkpoint\n");
        };
        let Some(key) = self.log_key(&checkpoint.origin) else {
            return answer(StatusCode::NOT_FOUND, format!("unknown log origin {}\n", checkpoint.origin));
        };
        if audit_core::note::open(note, &key).is_err() {
            return answer(StatusCode::FORBIDDEN, "no valid signature by the log's key\n");
        }
        if old > checkpoint.size {
            return answer(StatusCode::BAD_REQUEST, "the old size is larger than the checkpoint's\n");
        }
        let _held = self.lock.lock().await;
        let last = match self.last(&checkpoint.origin) {
            Ok(last) => last,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the witness state");
                return answer(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the witness state\n");
            }
        };
        let held = last.as_ref().map_or(0, |c| c.size);
        let conflict = || {
            (StatusCode::CONFLICT, [(header::CONTENT_TYPE, "text/x.tlog.size")], format!("{held}\n")).into_response()
        };
        if old != held {
            return conflict();
        }
        match &last {
            None if !proof.is_empty() => {
                return answer(StatusCode::BAD_REQUEST, "the proof must be empty from size 0\n");
            }
            Some(last) if last.size == checkpoint.size && last.root != checkpoint.root => {
                tracing::warn!(origin = %checkpoint.origin, size = last.size, "two roots for one size: a split view");
                return conflict();
            }
            Some(last)
                if last.size < checkpoint.size
                    && audit_core::merkle::verify_consistency(
                        last.size,
                        checkpoint.size,
                        &proof,
                        &last.root,
                        &checkpoint.root,
                    )
                    .is_err() =>
            {
                tracing::warn!(origin = %checkpoint.origin, from = last.size, to = checkpoint.size, "an inconsistent checkpoint");
                return answer(StatusCode::UNPROCESSABLE_ENTITY, "the consistency proof does not verify\n");
            }
            _ => {}
        }
        if let Err(e) = self.save(&checkpoint) {
            tracing::error!(error = %e, "cannot save the witness state");
            return answer(StatusCode::INTERNAL_SERVER_ERROR, "cannot save the witness state\n");
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        answer(StatusCode::OK, self.key.cosign(text, now))
    }
}

async fn post_add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    w.add_checkpoint(&body).await
}

/// The witness's key, made with mode 0600 at first start.
fn witness_key(state: &Path, name: &str) -> anyhow::Result<CosignerKey> {
    let path = state.join("witness.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => CosignerKey::parse(&text).with_context(|| format!("the witness key {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            audit_server::keys::private_dir(state)?;
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for a witness key: {e}"))?;
            let key = CosignerKey::from_seed(name, seed)?;
            match crate::signing::write_private_key(&path, &key.to_private_string())? {
                audit_storage::whole_file::Created::Written => Ok(key),
                // Another process made it first: theirs stands.
                audit_storage::whole_file::Created::AlreadyThere => witness_key(state, name),
            }
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<u8> {
    let logs = args
        .log_keys
        .iter()
        .map(|k| VerifierKey::parse(k).with_context(|| format!("--log-key {k}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let key = witness_key(&args.state, &args.name)?;
    let vkey = key.verifier().to_string();
    std::fs::write(args.state.join("witness.vkey"), format!("{vkey}\n"))?;
    eprintln!("witness {vkey} listening on {}", args.listen);
    let witness = Arc::new(Witness { key, logs, state: args.state, lock: tokio::sync::Mutex::new(()) });
    let app = axum::Router::new()
        .route("/add-checkpoint", axum::routing::post(post_add_checkpoint))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(witness);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(exit::OK)
}
