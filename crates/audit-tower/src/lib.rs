//! # audit-tower
//!
//! `AuditLayer`: tower middleware that records one `api.request` event per
//! HTTP request of any tower/axum application (the seed's FastAPI
//! middleware). It reads only the request head (never bodies), redacts
//! secrets from the query string, and captures the event when the response
//! head is ready, with its status and duration.
//!
//! ```text
//! request ─▶ excluded? ─▶ (closed policy: reserve a queue slot, else 503 without
//!            running the handler)
//!         ─▶ from the head (service.rs): actor (UserExtractor), client IP (peer, or
//!            X-Forwarded-For behind trusted proxies), method, path|route, user agent,
//!            request id, producer id + sequence; values cut and escaped to fit
//!         ─▶ inner service ─▶ response (future.rs): status, duration ─▶ capture
//!            (durable paths answer once the receipt arrives)
//! ```
//!
//! ```no_run
//! # async fn demo(audit: audit_service::AuditService) {
//! use audit_tower::{AuditLayer, FailurePolicy};
//! let app: axum::Router = axum::Router::new()
//!     .route("/v1/traces/{id}", axum::routing::get(|| async { "trace" }))
//!     .layer(
//!         AuditLayer::new(audit)
//!             .exclude_paths(["/health", "/metrics"])
//!             .route_of(|parts| parts.extensions.get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_owned()))
//!             .peer_of(|parts| parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip()))
//!             .failure_policy(FailurePolicy::Open),
//!     );
//! # }
//! ```

mod future;
mod jwt;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use jwt::JwtUserExtractor;
pub use layer::{AuditLayer, FailurePolicy, UserExtractor, UserInfo};
pub use service::AuditMiddleware;
