//! Streaming an export as an HTTP body with flat memory.
//!
//! The export writes through `std::io::Write`; it runs on a blocking thread
//! and hands 256 KiB chunks through a bounded channel (four chunks) to the
//! response body, so a slow client slows the export instead of growing
//! memory. If the export fails midway the body ends early and the error is
//! logged (the status line has already been sent).

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use audit_core::filter::AuditEventFilter;
use audit_service::ExportFormat;
use axum::body::{Body, Bytes};

use crate::AppState;

const CHUNK: usize = 256 * 1024;

struct ChunkWriter {
    tx: SyncSender<Bytes>,
    buf: Vec<u8>,
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
            self.tx
                .send(chunk)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))?;
        }
        Ok(())
    }
}

/// Who exported what: recorded as `audit_log.exported` once the export
/// has ended, with the number of events it sent.
pub(crate) struct ReadRecord {
    pub(crate) principal: crate::auth::Principal,
    pub(crate) details: audit_core::json::Object,
}

/// A response body that streams the export of `filter` in `format`.
pub(crate) fn export_body(state: AppState, filter: AuditEventFilter, format: ExportFormat, record: ReadRecord) -> Body {
    streamed(move |out, handle| {
        let result = handle.block_on(state.service().export_events(&filter, format, out));
        let result = finish(&filter, result.map_err(|e| e.to_string()), out);
        handle.block_on(record_export(&state, &filter, record, result));
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
    streamed(move |out, handle| {
        let store = std::sync::Arc::clone(state.service().store());
        let result =
            handle.block_on(audit_service::export_evidence(store.as_ref(), &filter, key.as_ref(), out, &mut |_| {}));
        let result = finish(&filter, result.map(|s| s.events).map_err(|e| e.to_string()), out);
        handle.block_on(record_export(&state, &filter, record, result));
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
    let ReadRecord { principal, mut details } = record;
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
}

/// Runs `write` on a blocking thread and streams what it writes.
fn streamed(write: impl FnOnce(&mut ChunkWriter, &tokio::runtime::Handle) + Send + 'static) -> Body {
    let (tx, rx) = sync_channel::<Bytes>(4);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter { tx, buf: Vec::with_capacity(CHUNK) };
        write(&mut out, &handle);
    });
    let rx: Arc<Mutex<Receiver<Bytes>>> = Arc::new(Mutex::new(rx));
    let stream = futures_util::stream::unfold(rx, |rx| async move {
        let next = {
            let rx = Arc::clone(&rx);
            tokio::task::spawn_blocking(move || rx.lock().unwrap_or_else(|p| p.into_inner()).recv().ok())
                .await
                .ok()
                .flatten()
        };
        next.map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    Body::from_stream(stream)
}
