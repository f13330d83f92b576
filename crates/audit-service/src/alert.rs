//! Alerts (issue 14): when a log fails verification, refuses appends
//! (poisoned), or loses accepted events, someone must be told — not only a
//! line in a log file. Each alert is an `error` log line with structured
//! fields and, when configured, a webhook `POST`: a canonical JSON body
//! signed with HMAC-SHA256 (`X-AgentTrace-Signature: sha256=<hex>`),
//! retried with exponential backoff. Every delivery's outcome is itself
//! recorded in the system organization's log (`audit_log.alert_delivered`
//! or `audit_log.alert_failed`), so a missed alert is visible in the audit
//! trail.

use std::time::Duration;

use audit_core::event::Action;
use audit_core::json::{Object, Value};
use hmac::{Hmac, Mac};

use crate::service::AuditService;

/// Where alerts go.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The receiver (`AUDIT_ALERT_WEBHOOK_URL`).
    pub url: String,
    /// The HMAC key of the signature header (`AUDIT_ALERT_WEBHOOK_SECRET`);
    /// `None`: unsigned.
    pub secret: Option<String>,
    /// Attempts per alert, at least 1 (`AUDIT_ALERT_WEBHOOK_ATTEMPTS`, 5).
    pub attempts: u32,
    /// How long one attempt may take (`AUDIT_ALERT_WEBHOOK_TIMEOUT`, 10 s).
    pub attempt_timeout: Duration,
    /// The wait before the second attempt; doubled each time after.
    pub first_backoff: Duration,
}

impl WebhookConfig {
    /// A webhook to `url` with the defaults: 5 attempts, 10 s each, 1 s
    /// before the first retry.
    pub fn new(url: impl Into<String>) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            secret: None,
            attempts: 5,
            attempt_timeout: Duration::from_secs(10),
            first_backoff: Duration::from_secs(1),
        }
    }
}

/// What went wrong, for the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// A verification found the log invalid.
    VerificationFailed,
    /// A log refuses appends (storage is not what the service wrote).
    LogPoisoned,
    /// Accepted events were lost (storage failures, a full queue).
    EventsDropped,
    /// A witness holds a larger tree of a log than its newest checkpoint, or
    /// another tree of the same size: a rollback or a fork.
    WitnessFork,
}

impl AlertKind {
    /// The `kind` member of the body.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::VerificationFailed => "verification_failed",
            AlertKind::LogPoisoned => "log_poisoned",
            AlertKind::EventsDropped => "events_dropped",
            AlertKind::WitnessFork => "witness_fork",
        }
    }
}

/// The `X-AgentTrace-Signature` value of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// An alert on its way from where it was noticed (a worker, the service)
/// to the task that delivers it.
pub(crate) type Raised = (AlertKind, String, String);

impl AuditService {
    /// Raises an alert about `organization_id`: an error log line now, and
    /// the webhook (if configured) in the background, its outcome recorded
    /// in the system log.
    pub fn alert(&self, kind: AlertKind, organization_id: &str, detail: &str) {
        tracing::error!(alert = kind.as_str(), organization_id, detail, "ALERT");
        let Some(webhook) = self.shared.alerts.clone() else { return };
        let mut body = Object::new();
        body.insert("kind", Value::String(kind.as_str().into()));
        body.insert("organization_id", Value::String(organization_id.into()));
        body.insert("detail", Value::String(detail.into()));
        body.insert("at", Value::String(self.shared.clock.now().to_string()));
        body.insert("instance", Value::String(self.shared.instance.clone()));
        let body = audit_core::canonical::to_canonical(&Value::Object(body));
        let service = self.clone();
        let organization_id = organization_id.to_owned();
        tokio::spawn(async move {
            let outcome = deliver(&webhook, &body).await;
            let mut metadata = Object::new();
            metadata.insert("alert", Value::String(kind.as_str().into()));
            metadata.insert("organization_id", Value::String(organization_id));
            metadata.insert("attempts", Value::Number(f64::from(outcome.attempts)));
            let event_type = match &outcome.error {
                None => "audit_log.alert_delivered",
                Some(why) => {
                    tracing::error!(alert = kind.as_str(), error = why.as_str(), "the alert webhook was not reached");
                    metadata.insert("error", Value::String(why.clone()));
                    "audit_log.alert_failed"
                }
            };
            let record = service.system_event(event_type, Action::Execute, metadata);
            if let Err(e) = service.capture_durable(record).await {
                tracing::error!(error = %e, "cannot record the outcome of an alert");
            }
        });
    }
}

/// Delivers the alerts raised where no service handle is at hand (log
/// workers), until the service stops.
pub(crate) async fn run(service: AuditService, mut raised: tokio::sync::mpsc::UnboundedReceiver<Raised>) {
    loop {
        tokio::select! {
            got = raised.recv() => match got {
                Some((kind, organization_id, detail)) => service.alert(kind, &organization_id, &detail),
                None => return,
            },
            // The service holds the sender: notice its stop by looking.
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if !service.is_running() {
                    return;
                }
            }
        }
    }
}

/// How a delivery went.
struct Delivery {
    attempts: u32,
    error: Option<String>,
}

/// POSTs `body` until a 2xx answer, at most `attempts` times, waiting
/// `first_backoff`, then twice as long, … between attempts.
async fn deliver(webhook: &WebhookConfig, body: &[u8]) -> Delivery {
    let client = match reqwest::Client::builder().timeout(webhook.attempt_timeout).build() {
        Ok(c) => c,
        Err(e) => return Delivery { attempts: 0, error: Some(format!("cannot build an HTTP client: {e}")) },
    };
    let mut backoff = webhook.first_backoff;
    let mut last_error = String::new();
    let attempts = webhook.attempts.max(1);
    for attempt in 1..=attempts {
        let mut request = client.post(&webhook.url).header("Content-Type", "application/json").body(body.to_vec());
        if let Some(secret) = &webhook.secret {
            request = request.header("X-AgentTrace-Signature", signature(secret, body));
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => return Delivery { attempts: attempt, error: None },
            Ok(response) => last_error = format!("the receiver answered {}", response.status()),
            Err(e) if e.is_timeout() => last_error = format!("no answer within {:?}", webhook.attempt_timeout),
            Err(e) => last_error = format!("cannot reach the receiver: {e}"),
        }
        if attempt < attempts {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    Delivery { attempts, error: Some(last_error) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body_in_hex() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
