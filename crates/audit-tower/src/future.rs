//! The response future: polls the application's future, then finishes the
//! request's event (status, duration, severity) and hands it to the audit
//! service — without a boxed future in the common cases (a queue slot is
//! free; a durable path waits on its receipt's channel directly).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use audit_core::event::{EventDraft, Severity};
use audit_service::{CaptureError, PendingReceipt, Reservation};
use http::{Response, StatusCode};
use pin_project_lite::pin_project;

use crate::layer::{FailurePolicy, Settings, Shared};

/// What the future needs to finish a request's event.
pub(crate) struct Finish {
    pub(crate) settings: Arc<Settings>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) draft: EventDraft,
    pub(crate) started: Instant,
    pub(crate) durable: bool,
    /// The queue slot the closed policy reserved before the handler ran.
    pub(crate) reservation: Option<Reservation>,
}

/// A capture that must wait for room in the queue (open policy, queue full
/// under backpressure) or report a refusal: the rare path, boxed.
type SlowCapture = Pin<Box<dyn Future<Output = Result<(), CaptureError>> + Send>>;

pin_project! {
    /// The future of [`crate::AuditMiddleware`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        // Not audited (excluded path, capture off).
        Passthrough { #[pin] inner: F },
        // Closed policy without room: 503, the handler never runs.
        Refused,
        // The handler is running.
        Running { #[pin] inner: F, finish: Option<Finish> },
        // A durable path: the response waits for the event's receipt.
        Durable { receipt: PendingReceipt, response: Option<Response<B>>, finish: Option<Finish> },
        // Waiting for room in the queue (or recording a refusal).
        Slow { capture: SlowCapture, response: Option<Response<B>>, finish: Option<Finish> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn passthrough(inner: F) -> Self {
        ResponseFuture { state: State::Passthrough { inner } }
    }
    pub(crate) fn refused() -> Self {
        ResponseFuture { state: State::Refused }
    }
    pub(crate) fn running(inner: F, finish: Finish) -> Self {
        ResponseFuture { state: State::Running { inner, finish: Some(finish) } }
    }
}

impl<F: std::fmt::Debug, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

fn unavailable<B: Default>() -> Response<B> {
    let mut r = Response::new(B::default());
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    r
}

impl Finish {
    /// The event, completed with what the response says.
    fn complete(&mut self, status: StatusCode) -> EventDraft {
        let mut draft = std::mem::take(&mut self.draft);
        // Refused credentials are security events (SPEC §3).
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            draft.severity = Some(Severity::Critical);
        }
        if let Some(r) = draft.request.as_mut() {
            r.status = Some(status.as_u16());
            r.duration_ms = Some((self.started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0);
        }
        draft
    }

    /// A request whose event could not be taken: counted, logged, and per
    /// policy served (open) or answered 503 (closed).
    fn missed<B: Default>(&self, error: &CaptureError, response: Response<B>) -> Response<B> {
        self.shared.missed.fetch_add(1, Ordering::Relaxed);
        let path = self.draft.request.as_ref().and_then(|r| r.path.as_deref()).unwrap_or("");
        tracing::error!(error = %error, path, "request not audited");
        match self.settings.policy {
            FailurePolicy::Open => response,
            // Only a durable path can get here under the closed policy (its
            // write failed after the handler ran): the action is not on record.
            FailurePolicy::Closed => unavailable(),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Passthrough { inner } => return inner.poll(cx),
                StateProj::Refused => return Poll::Ready(Ok(unavailable())),
                StateProj::Running { inner, finish } => {
                    let response = ready!(inner.poll(cx))?;
                    let mut finish = finish.take().expect("polled after completion");
                    let draft = finish.complete(response.status());
                    let audit = &finish.settings.audit;
                    // A reserved slot, or a free one now: queued without waiting.
                    let reservation = finish.reservation.take().or_else(|| audit.try_reserve().ok());
                    match (reservation, finish.durable) {
                        (Some(r), false) => {
                            return Poll::Ready(Ok(match r.capture(draft) {
                                Ok(_) => response,
                                Err(e) => finish.missed(&e, response),
                            }));
                        }
                        (Some(r), true) => match r.submit_durable(draft) {
                            Ok(receipt) => State::Durable { receipt, response: Some(response), finish: Some(finish) },
                            Err(e) => return Poll::Ready(Ok(finish.missed(&e, response))),
                        },
                        (None, durable) => {
                            let audit = audit.clone();
                            let capture: SlowCapture = Box::pin(async move {
                                if durable {
                                    audit.capture_durable(draft).await.map(drop)
                                } else {
                                    audit.capture(draft).await.map(drop)
                                }
                            });
                            State::Slow { capture, response: Some(response), finish: Some(finish) }
                        }
                    }
                }
                StateProj::Durable { receipt, response, finish } => {
                    let outcome = ready!(Pin::new(receipt).poll(cx));
                    let response = response.take().expect("polled after completion");
                    let finish = finish.take().expect("polled after completion");
                    return Poll::Ready(Ok(match outcome {
                        Ok(_) => response,
                        Err(e) => finish.missed(&e, response),
                    }));
                }
                StateProj::Slow { capture, response, finish } => {
                    let outcome = ready!(capture.as_mut().poll(cx));
                    let response = response.take().expect("polled after completion");
                    let finish = finish.take().expect("polled after completion");
                    return Poll::Ready(Ok(match outcome {
                        Ok(()) => response,
                        Err(e) => finish.missed(&e, response),
                    }));
                }
            };
            state.set(next);
        }
    }
}
