//! The layer: its settings and builder, and the types applications plug in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use audit_core::event::ActorType;
use http::request::Parts;

use crate::service::AuditMiddleware;

/// What to do when an event cannot be accepted by the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Serve the request anyway; the miss is counted and logged.
    #[default]
    Open,
    /// Reserve room in the audit queue before the handler runs, and answer
    /// 503 without running it when there is none: no request is served
    /// unaudited.
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

pub(crate) type RouteOf = dyn Fn(&Parts) -> Option<String> + Send + Sync;
pub(crate) type PeerOf = dyn Fn(&Parts) -> Option<IpAddr> + Send + Sync;

/// What the layer was configured with: plain data, cloned on write by the
/// builder methods (so their order never matters and nothing can panic).
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) audit: audit_service::AuditService,
    pub(crate) capture_api_access: bool,
    pub(crate) exclude_exact: Vec<String>,
    pub(crate) exclude_prefixes: Vec<String>,
    pub(crate) users: Arc<dyn UserExtractor>,
    pub(crate) route_of: Option<Arc<RouteOf>>,
    pub(crate) peer_of: Option<Arc<PeerOf>>,
    pub(crate) trusted_proxies: Vec<IpAddr>,
    pub(crate) policy: FailurePolicy,
    pub(crate) record_route_only: bool,
    pub(crate) durable_prefixes: Vec<String>,
    pub(crate) default_organization: String,
}

/// What the layer's services share while running: the producer numbering
/// and the count of missed requests (one per layer, whatever its clones).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) producer_id: String,
    producer_sequences: Mutex<HashMap<String, u64>>,
    pub(crate) missed: AtomicU64,
}

impl Shared {
    /// The next number of this producer's sequence for `org` (0, 1, 2, …).
    pub(crate) fn next_producer_sequence(&self, org: &str) -> u64 {
        let mut seqs = self.producer_sequences.lock().unwrap_or_else(|p| p.into_inner());
        let n = match seqs.get_mut(org) {
            Some(n) => n,
            None => seqs.entry(org.to_owned()).or_insert(0),
        };
        let out = *n;
        *n += 1;
        out
    }
}

/// The tower layer. Cheap to clone.
#[derive(Clone)]
pub struct AuditLayer {
    settings: Arc<Settings>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuditLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLayer").field("producer_id", &self.shared.producer_id).finish_non_exhaustive()
    }
}

impl AuditLayer {
    /// A layer capturing into `audit`; events whose user has no organization
    /// go to the service's system organization.
    pub fn new(audit: audit_service::AuditService) -> AuditLayer {
        let default_organization = audit.config().system_organization.clone();
        AuditLayer {
            settings: Arc::new(Settings {
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
            }),
            shared: Arc::new(Shared {
                // One producer per process start: a restart is a new producer,
                // so its numbering starting again at 0 is no gap.
                producer_id: format!("audit-layer:{}", uuid::Uuid::now_v7()),
                producer_sequences: Mutex::new(HashMap::new()),
                missed: AtomicU64::new(0),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(Arc::make_mut(&mut self.settings));
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
        &self.shared.producer_id
    }

    /// Requests served whose event could not be captured (open policy), or
    /// refused for want of room (closed policy).
    pub fn missed(&self) -> u64 {
        self.shared.missed.load(Ordering::Relaxed)
    }
}

impl<S> tower::Layer<S> for AuditLayer {
    type Service = AuditMiddleware<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuditMiddleware::new(inner, Arc::clone(&self.settings), Arc::clone(&self.shared))
    }
}
