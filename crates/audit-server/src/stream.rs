//! Streaming an export as an HTTP body with flat memory.
//!
//! The export writes through `std::io::Write` on one blocking thread and
//! hands 64 KiB chunks through a bounded tokio channel (four chunks) to the
//! response body, so a slow client slows the export instead of growing
//! memory. If the export fails midway, the body ends with an error: the
//! transfer is aborted (no final chunk), so the client sees a broken
//! download, never a `200` that looks complete. The error is logged.

use std::future::Future;
use std::io::Write;

use audit_core::filter::AuditEventFilter;
use audit_service::ExportFormat;
use axum::body::{Body, Bytes};

use crate::AppState;

/// Bytes per body chunk; with the channel's four, and the export's read
/// window, one export holds well under 1 MiB whatever the client's speed.
const CHUNK: usize = 64 * 1024;

/// Sends into the body's channel from the export's blocking thread, waiting
/// (parked, no spinning) while the client is slow, at most `patience`
/// (a client that stopped reading is given up: the export's thread and
/// buffers are freed and the client sees a broken transfer). The export runs inside `Handle::block_on`, where
/// tokio's own `blocking_send` refuses to block, so this polls the send
/// future with a waker that unparks this thread.
fn send_from_thread(
    tx: &tokio::sync::mpsc::Sender<Piece>,
    piece: Piece,
    patience: std::time::Duration,
) -> Result<(), ()> {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut send = std::pin::pin!(tx.send(piece));
    let deadline = std::time::Instant::now() + patience;
    loop {
        match send.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(result) => return result.map_err(drop),
            std::task::Poll::Pending => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    tracing::warn!("an export client stopped reading; giving up on it");
                    return Err(());
                }
                std::thread::park_timeout(left);
            }
        }
    }
}

/// One piece of the body: a chunk, or the error that ends it early.
type Piece = Result<Bytes, std::io::Error>;

struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Piece>,
    buf: Vec<u8>,
    /// How long a stalled client is waited for.
    patience: std::time::Duration,
}

impl ChunkWriter {
    fn new(tx: tokio::sync::mpsc::Sender<Piece>, patience: std::time::Duration) -> ChunkWriter {
        ChunkWriter { tx, buf: Vec::with_capacity(CHUNK), patience }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
            send_from_thread(&self.tx, Ok(chunk), self.patience).map_err(|()| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away or stopped reading")
            })?;
        }
        Ok(())
    }
}

/// Who exported what: recorded as `audit_log.exported` once the export
/// has ended, with the number of events it sent.
pub(crate) struct ReadRecord {
    pub(crate) principal: crate::auth::Principal,
    pub(crate) details: audit_core::json::Object,
    /// The export's slot (`AUDIT_MAX_EXPORTS`), freed when the body ends.
    pub(crate) slot: tokio::sync::OwnedSemaphorePermit,
}

/// A response body that streams the export of `filter` in `format`.
pub(crate) fn export_body(state: AppState, filter: AuditEventFilter, format: ExportFormat, record: ReadRecord) -> Body {
    streamed(state.export_patience(), move |out, handle| {
        let result = handle.block_on(state.service().export_events(&filter, format, out));
        let result = finish(&filter, result.map_err(|e| e.to_string()), out);
        handle.block_on(record_export(&state, &filter, record, result.clone()));
        result.map(drop)
    })
}

/// A response body that streams an evidence bundle of `filter` (the
/// checkpoint's signature checked with `key` first, when there is one).
pub(crate) fn evidence_body(
    state: AppState,
    filter: AuditEventFilter,
    key: Option<audit_core::note::VerifierKey>,
    record: ReadRecord,
) -> Body {
    streamed(state.export_patience(), move |out, handle| {
        let store = std::sync::Arc::clone(state.service().store());
        let protection = state.service().protection().map(|p| p.as_ref());
        let result = handle.block_on(audit_service::export_evidence(
            store.as_ref(),
            &filter,
            key.as_ref(),
            out,
            protection,
            &mut |_| {},
        ));
        let result = finish(&filter, result.map(|s| s.events).map_err(|e| e.to_string()), out);
        handle.block_on(record_export(&state, &filter, record, result.clone()));
        result.map(drop)
    })
}

fn finish(filter: &AuditEventFilter, result: Result<u64, String>, out: &mut ChunkWriter) -> Result<u64, String> {
    let result = result.and_then(|n| out.flush().map(|()| n).map_err(|e| e.to_string()));
    match &result {
        Ok(n) => metrics::counter!("audit_exported_events_total").increment(*n),
        Err(e) => tracing::warn!(organization_id = %filter.organization_id, error = %e, "export ended early"),
    }
    result
}

async fn record_export(state: &AppState, filter: &AuditEventFilter, record: ReadRecord, result: Result<u64, String>) {
    use audit_core::json::Value;
    // The slot is held until the record is written: a stopping server
    // waits for every slot (AppState::exports_finished) before it stops
    // the service, so no export goes unrecorded.
    let ReadRecord { principal, mut details, slot } = record;
    match result {
        Ok(n) => details.insert("result_count", Value::Number(n as f64)),
        Err(e) => {
            details.insert("outcome", Value::String("failure".into()));
            details.insert("error", Value::String(e));
        }
    }
    state
        .record_read(
            &principal,
            &filter.organization_id,
            "audit_log.exported",
            audit_core::event::Action::Export,
            details,
        )
        .await;
    drop(slot);
}

/// Runs `write` on a blocking thread and streams what it writes; an error
/// it returns aborts the body.
fn streamed(
    patience: std::time::Duration,
    write: impl FnOnce(&mut ChunkWriter, &tokio::runtime::Handle) -> Result<(), String> + Send + 'static,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(4);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter::new(tx.clone(), patience);
        if let Err(e) = write(&mut out, &handle) {
            // The status line is gone already: ending the body with an error
            // makes the server abort the transfer instead of completing it.
            let _ = send_from_thread(&tx, Err(std::io::Error::other(format!("the export failed: {e}"))), patience);
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|piece| (piece, rx)) });
    Body::from_stream(stream)
}
