//! The layer, its service and the request → event mapping.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use audit_core::event::{Action, ActorType, EventDraft, RequestInfo, Severity};
use http::request::Parts;
use http::{Request, Response, StatusCode};

/// What to do when an event cannot be accepted by the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Serve the request anyway; the miss is counted and logged.
    #[default]
    Open,
    /// Answer 503 instead: no request is served unaudited.
    Closed,
}

/// Who made a request, as an application knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// Kind of actor (`anonymous` when the credentials could not be verified).
    pub actor_type: ActorType,
    /// Their id.
    pub actor_id: Option<String>,
    /// Their email.
    pub actor_email: Option<String>,
    /// The organization whose log receives the event (else the default organization).
    pub organization_id: Option<String>,
    /// Their session.
    pub session_id: Option<String>,
}

impl UserInfo {
    /// An unauthenticated or unverifiable caller.
    pub fn anonymous() -> UserInfo {
        UserInfo {
            actor_type: ActorType::Anonymous,
            actor_id: None,
            actor_email: None,
            organization_id: None,
            session_id: None,
        }
    }
}

/// Tells the layer who made a request (from its head only).
pub trait UserExtractor: Send + Sync + 'static {
    /// The caller of this request.
    fn extract(&self, parts: &Parts) -> UserInfo;
}

impl<F: Fn(&Parts) -> UserInfo + Send + Sync + 'static> UserExtractor for F {
    fn extract(&self, parts: &Parts) -> UserInfo {
        self(parts)
    }
}

type RouteOf = dyn Fn(&Parts) -> Option<String> + Send + Sync;
type PeerOf = dyn Fn(&Parts) -> Option<IpAddr> + Send + Sync;

struct Config {
    audit: audit_service::AuditService,
    capture_api_access: bool,
    exclude_exact: Vec<String>,
    exclude_prefixes: Vec<String>,
    users: Arc<dyn UserExtractor>,
    route_of: Option<Arc<RouteOf>>,
    peer_of: Option<Arc<PeerOf>>,
    trusted_proxies: Vec<IpAddr>,
    policy: FailurePolicy,
    record_route_only: bool,
    durable_prefixes: Vec<String>,
    default_organization: String,
    producer_id: String,
    producer_sequences: Mutex<HashMap<String, u64>>,
    missed: AtomicU64,
}

/// The tower layer. Cheap to clone.
#[derive(Clone)]
pub struct AuditLayer {
    config: Arc<Config>,
}

impl std::fmt::Debug for AuditLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLayer").field("producer_id", &self.config.producer_id).finish_non_exhaustive()
    }
}

impl AuditLayer {
    /// A layer capturing into `audit`; events whose user has no organization
    /// go to the service's system organization.
    pub fn new(audit: audit_service::AuditService) -> AuditLayer {
        let default_organization = audit.config().system_organization.clone();
        AuditLayer {
            config: Arc::new(Config {
                audit,
                capture_api_access: true,
                exclude_exact: Vec::new(),
                exclude_prefixes: Vec::new(),
                users: Arc::new(|_: &Parts| UserInfo::anonymous()),
                route_of: None,
                peer_of: None,
                trusted_proxies: Vec::new(),
                policy: FailurePolicy::Open,
                record_route_only: false,
                durable_prefixes: Vec::new(),
                default_organization,
                // One producer per process start: a restart is a new producer,
                // so its numbering starting again at 0 is no gap.
                producer_id: format!("audit-layer:{}", uuid::Uuid::now_v7()),
                producer_sequences: Mutex::new(HashMap::new()),
                missed: AtomicU64::new(0),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::get_mut(&mut self.config).expect("configure the layer before cloning it"));
        self
    }

    /// Whether to record requests at all (`AUDIT_CAPTURE_API_ACCESS`).
    pub fn capture_api_access(self, on: bool) -> Self {
        self.edit(|c| c.capture_api_access = on)
    }

    /// Paths never recorded: exact, or a prefix when ending in `*` (`/static/*`).
    pub fn exclude_paths<I: IntoIterator<Item = S>, S: Into<String>>(self, paths: I) -> Self {
        self.edit(|c| {
            for p in paths {
                let p: String = p.into();
                match p.strip_suffix('*') {
                    Some(prefix) => c.exclude_prefixes.push(prefix.to_owned()),
                    None => c.exclude_exact.push(p),
                }
            }
        })
    }

    /// Who the caller is (default: everyone is `anonymous`).
    pub fn user_extractor(self, users: impl UserExtractor) -> Self {
        self.edit(|c| c.users = Arc::new(users))
    }

    /// The matched route template of a request (e.g. axum's `MatchedPath`).
    pub fn route_of(self, f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        self.edit(|c| c.route_of = Some(Arc::new(f)))
    }

    /// The connection's peer address (e.g. axum's `ConnectInfo`).
    pub fn peer_of(self, f: impl Fn(&Parts) -> Option<IpAddr> + Send + Sync + 'static) -> Self {
        self.edit(|c| c.peer_of = Some(Arc::new(f)))
    }

    /// Proxies whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(self, proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        self.edit(|c| c.trusted_proxies = proxies.into_iter().collect())
    }

    /// The failure policy (default `Open`).
    pub fn failure_policy(self, policy: FailurePolicy) -> Self {
        self.edit(|c| c.policy = policy)
    }

    /// Record the matched route instead of the raw path (for applications
    /// that put secrets in paths).
    pub fn record_route_only(self, on: bool) -> Self {
        self.edit(|c| c.record_route_only = on)
    }

    /// Requests under these path prefixes answer only once their event is
    /// durable (sensible for state-changing routes).
    pub fn durable_paths<I: IntoIterator<Item = S>, S: Into<String>>(self, prefixes: I) -> Self {
        self.edit(|c| c.durable_prefixes.extend(prefixes.into_iter().map(Into::into)))
    }

    /// This layer's producer id (events carry it with a per-organization sequence).
    pub fn producer_id(&self) -> &str {
        &self.config.producer_id
    }

    /// Requests served whose event could not be captured (open policy).
    pub fn missed(&self) -> u64 {
        self.config.missed.load(Ordering::Relaxed)
    }
}

impl<S> tower::Layer<S> for AuditLayer {
    type Service = AuditService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuditService { inner, config: Arc::clone(&self.config) }
    }
}

/// The middleware service.
#[derive(Clone)]
pub struct AuditService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> std::fmt::Debug for AuditService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditService").finish_non_exhaustive()
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

/// A value from a request, made storable whatever the client sent: control
/// characters and bidirectional overrides become visible `\u{…}` escapes
/// (no log injection, no text that reads differently from what it is), and
/// a value over `limit` bytes is cut at a character boundary, its member
/// named in `cut` (stored as `request.truncated`). An audit layer must not
/// be evadable by input size or content.
fn fit(name: &'static str, value: &str, limit: usize, cut: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(value.len().min(limit));
    let mut utf8 = [0u8; 4];
    for c in value.chars() {
        let escaped;
        let piece: &str = if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
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

impl Config {
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

    fn next_producer_sequence(&self, org: &str) -> u64 {
        let mut seqs = self.producer_sequences.lock().unwrap_or_else(|p| p.into_inner());
        let n = seqs.entry(org.to_owned()).or_insert(0);
        let out = *n;
        *n += 1;
        out
    }

    fn draft(&self, parts: &Parts, status: StatusCode, started: Instant) -> EventDraft {
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
            value.map(|v| fit(name, &v, limit, &mut cut)).filter(|v| !v.is_empty())
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
        let producer_sequence = self.next_producer_sequence(&organization_id);
        cut.dedup();
        EventDraft {
            organization_id,
            event_type: "api.request".into(),
            action: Some(action),
            // Refused credentials are security events (SPEC §3).
            severity: matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN).then_some(Severity::Critical),
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
                status: Some(status.as_u16()),
                duration_ms: Some((started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0),
                request_id,
                truncated: (!cut.is_empty()).then_some(cut),
            }),
            producer_id: Some(self.producer_id.clone()),
            producer_sequence: Some(producer_sequence),
            ..Default::default()
        }
    }
}

fn unavailable<B: Default>() -> Response<B> {
    let mut r = Response::new(B::default());
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    r
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for AuditService<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = Arc::clone(&self.config);
        // Take the ready inner service; leave a fresh clone for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !config.capture_api_access || config.excluded(req.uri().path()) {
            return Box::pin(inner.call(req));
        }
        // Closed policy: the decision comes before the handler runs. A queue
        // slot is reserved now, so that the event can always be queued once
        // the response is known; without one the request is not served.
        let reservation = match config.policy {
            FailurePolicy::Open => None,
            FailurePolicy::Closed => match config.audit.try_reserve() {
                Ok(r) => Some(r),
                Err(e) => {
                    config.missed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "audit log unavailable: refusing the request (closed failure policy)");
                    return Box::pin(async { Ok(unavailable()) });
                }
            },
        };
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        // The head is kept for the event; the body goes on untouched.
        let head = {
            let mut b = Request::builder().method(parts.method.clone()).uri(parts.uri.clone()).version(parts.version);
            if let Some(h) = b.headers_mut() {
                *h = parts.headers.clone();
            }
            let (mut head, ()) = b.body(()).expect("a copy of a valid head").into_parts();
            head.extensions = parts.extensions.clone();
            head
        };
        let req = Request::from_parts(parts, body);
        Box::pin(async move {
            let response = inner.call(req).await?;
            let draft = config.draft(&head, response.status(), started);
            let durable = config.durable_prefixes.iter().any(|p| head.uri.path().starts_with(p.as_str()));
            let captured = match (reservation, durable) {
                (Some(r), true) => match r.submit_durable(draft) {
                    Ok(pending) => pending.wait().await.map(drop),
                    Err(e) => Err(e),
                },
                (Some(r), false) => r.capture(draft).map(drop),
                (None, true) => config.audit.capture_durable(draft).await.map(drop),
                (None, false) => config.audit.capture(draft).await.map(drop),
            };
            match captured {
                Ok(()) => Ok(response),
                Err(e) => {
                    config.missed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, path = head.uri.path(), "request not audited");
                    match config.policy {
                        FailurePolicy::Open => Ok(response),
                        // Only a durable path can get here (its write failed after
                        // the handler ran): the client is told the action is not on record.
                        FailurePolicy::Closed => Ok(unavailable()),
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
