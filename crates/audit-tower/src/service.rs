//! The middleware service: takes what the event needs from the request
//! head (before the handler runs, without cloning the head), then hands
//! the inner future to [`ResponseFuture`], which finishes the event when
//! the response head is ready.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Instant;

use audit_core::event::{Action, EventDraft, RequestInfo};
use http::request::Parts;
use http::{Request, Response};

use crate::future::{Finish, ResponseFuture};
use crate::layer::{FailurePolicy, Settings, Shared};

/// The middleware service [`crate::AuditLayer`] wraps around an application.
#[derive(Clone)]
pub struct AuditMiddleware<S> {
    inner: S,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for AuditMiddleware<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditMiddleware").field("producer_id", &self.shared.producer_id).finish_non_exhaustive()
    }
}

impl<S> AuditMiddleware<S> {
    pub(crate) fn new(inner: S, settings: Arc<Settings>, shared: Arc<Shared>) -> Self {
        AuditMiddleware { inner, settings, shared }
    }
}

/// Query parameters whose values are never recorded.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "key",
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "signature",
    "sig",
    "auth",
    "authorization",
    "session",
    "code",
];

/// True for the characters [`fit`] writes as visible escapes.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A value from a request, made storable whatever the client sent: control
/// characters and bidirectional overrides become visible `\u{…}` escapes
/// (no log injection, no text that reads differently from what it is), and
/// a value over `limit` bytes is cut at a character boundary, its member
/// named in `cut` (stored as `request.truncated`). An audit layer must not
/// be evadable by input size or content.
fn fit(name: &'static str, value: String, limit: usize, cut: &mut Vec<String>) -> String {
    // The usual value (short, printable) is kept as it is, without a copy.
    if value.len() <= limit && !value.chars().any(needs_escape) {
        return value;
    }
    let mut out = String::with_capacity(value.len().min(limit));
    let mut utf8 = [0u8; 4];
    for c in value.chars() {
        let escaped;
        let piece: &str = if needs_escape(c) {
            escaped = format!("\\u{{{:04x}}}", c as u32);
            &escaped
        } else {
            c.encode_utf8(&mut utf8)
        };
        if out.len() + piece.len() > limit {
            cut.push(name.to_owned());
            return out;
        }
        out.push_str(piece);
    }
    out
}

/// The path with secret query values replaced by `[redacted]`. Names are
/// percent-decoded (and `+` read as a space) before they are compared, so
/// `%74oken=…` is a `token` too.
fn redacted_path(uri: &http::Uri) -> String {
    let path = uri.path().to_owned();
    let Some(query) = uri.query() else { return path };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (k, _) = pair.split_once('=').unwrap_or((pair, ""));
            let plus_as_space = k.replace('+', " ");
            let decoded = percent_encoding::percent_decode_str(&plus_as_space).decode_utf8_lossy();
            let key = decoded.trim().to_ascii_lowercase();
            if SECRET_PARAMS.contains(&key.as_str())
                || key.ends_with("_token")
                || key.ends_with("secret")
                || key.ends_with("password")
            {
                format!("{k}=[redacted]")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

impl Settings {
    fn excluded(&self, path: &str) -> bool {
        self.exclude_exact.iter().any(|p| p == path)
            || self.exclude_prefixes.iter().any(|p| path.starts_with(p.as_str()))
    }

    /// The client: the peer, unless the peer is a trusted proxy; then
    /// `X-Forwarded-For` right to left, skipping trusted proxies.
    fn client_ip(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = self.peer_of.as_ref().and_then(|f| f(parts));
        match peer {
            Some(p) if self.trusted_proxies.contains(&p) => {
                let chain: Vec<IpAddr> = parts
                    .headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .filter_map(|s| s.trim().parse().ok())
                    .collect();
                chain.into_iter().rev().find(|ip| !self.trusted_proxies.contains(ip)).or(Some(p))
            }
            other => other,
        }
    }

    /// The event of a request, from its head, before the handler runs;
    /// status, duration and severity are filled in by [`Finish`].
    fn draft(&self, shared: &Shared, parts: &Parts) -> EventDraft {
        let limits = self.audit.config().limits;
        let mut cut = Vec::new();
        let user = self.users.extract(parts);
        let organization_id = user
            .organization_id
            .clone()
            .filter(|o| audit_core::event::is_valid_tenant_id(o))
            .unwrap_or_else(|| self.default_organization.clone());
        let action = match parts.method.as_str() {
            "GET" | "HEAD" | "OPTIONS" => Action::Read,
            "POST" => Action::Create,
            "PUT" | "PATCH" => Action::Update,
            "DELETE" => Action::Delete,
            _ => Action::Other,
        };
        let mut fit_opt = |name: &'static str, value: Option<String>, limit: usize| {
            value.map(|v| fit(name, v, limit, &mut cut)).filter(|v| !v.is_empty())
        };
        let route = fit_opt("request.route", self.route_of.as_ref().and_then(|f| f(parts)), limits.user_agent_bytes);
        let path = if self.record_route_only { None } else { Some(redacted_path(&parts.uri)) };
        let path = fit_opt("request.path", path, limits.user_agent_bytes);
        let header = |name: &str| parts.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let user_agent = fit_opt("user_agent", header("user-agent"), limits.user_agent_bytes);
        let request_id = fit_opt("request.request_id", header("x-request-id"), limits.id_bytes);
        let method = fit_opt("request.method", Some(parts.method.as_str().to_owned()), limits.id_bytes);
        let actor_id = fit_opt("actor_id", user.actor_id, limits.id_bytes);
        let actor_email = fit_opt("actor_email", user.actor_email, limits.email_bytes);
        let session_id = fit_opt("session_id", user.session_id, limits.id_bytes);
        let resource_id = fit_opt("resource_id", route.clone(), limits.id_bytes);
        let producer_sequence = shared.next_producer_sequence(&organization_id);
        cut.dedup();
        EventDraft {
            organization_id,
            event_type: "api.request".into(),
            action: Some(action),
            actor_type: Some(user.actor_type),
            actor_id,
            actor_email,
            actor_ip: self.client_ip(parts).map(|ip| ip.to_string()),
            user_agent,
            session_id,
            resource_type: resource_id.as_ref().map(|_| "http_route".to_owned()),
            resource_id,
            request: Some(RequestInfo {
                method,
                path: path.or_else(|| route.clone()),
                route,
                request_id,
                truncated: (!cut.is_empty()).then_some(cut),
                ..RequestInfo::default()
            }),
            producer_id: Some(shared.producer_id.clone()),
            producer_sequence: Some(producer_sequence),
            ..Default::default()
        }
    }
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for AuditMiddleware<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let settings = &self.settings;
        if !settings.capture_api_access || settings.excluded(req.uri().path()) {
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        // Closed policy: the decision comes before the handler runs. A queue
        // slot is reserved now, so that the event can always be queued once
        // the response is known; without one the request is not served.
        let reservation = match settings.policy {
            FailurePolicy::Open => None,
            FailurePolicy::Closed => match settings.audit.try_reserve() {
                Ok(r) => Some(r),
                Err(e) => {
                    self.shared.missed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "audit log unavailable: refusing the request (closed failure policy)");
                    return ResponseFuture::refused();
                }
            },
        };
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let draft = settings.draft(&self.shared, &parts);
        let durable = settings.durable_prefixes.iter().any(|p| parts.uri.path().starts_with(p.as_str()));
        let finish = Finish {
            settings: Arc::clone(&self.settings),
            shared: Arc::clone(&self.shared),
            draft,
            started,
            durable,
            reservation,
        };
        ResponseFuture::running(self.inner.call(Request::from_parts(parts, body)), finish)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_kept_escaped_or_cut_and_a_cut_is_named() {
        let mut cut = Vec::new();
        assert_eq!(fit("a", "Mozilla/5.0 (X11) ü".into(), 64, &mut cut), "Mozilla/5.0 (X11) ü");
        assert_eq!(fit("b", "x\u{1b}[31m\u{202e}y".into(), 64, &mut cut), "x\\u{001b}[31m\\u{202e}y");
        assert!(cut.is_empty(), "{cut:?}");
        // A cut never splits a character or an escape.
        assert_eq!(fit("c", "abcü".into(), 4, &mut cut), "abc");
        assert_eq!(fit("d", "ab\ncd".into(), 8, &mut cut), "ab");
        assert_eq!(cut, ["c", "d"]);
    }

    #[test]
    fn secrets_in_query_strings_are_redacted() {
        let uri: http::Uri = "/cb?code=abc&state=xyz&api_key=k1&Access_Token=t&page=2&client_secret=s".parse().unwrap();
        assert_eq!(
            redacted_path(&uri),
            "/cb?code=[redacted]&state=xyz&api_key=[redacted]&Access_Token=[redacted]&page=2&client_secret=[redacted]"
        );
        assert_eq!(redacted_path(&"/plain".parse().unwrap()), "/plain");
    }
}
