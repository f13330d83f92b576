//! An axum hello-world, with or without `AuditLayer`, for measuring the
//! middleware's overhead under `wrk` (see `bench/http.sh`).
//!
//! `hello --port 18181 --audit on|off --data-dir DIR`

use std::net::SocketAddr;
use std::sync::Arc;

use audit_service::{AuditConfig, AuditService};
use audit_storage::local::LocalStore;
use audit_tower::AuditLayer;
use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath};
use axum::routing::get;

#[tokio::main]
async fn main() {
    let port = audit_bench::arg("--port", 18181) as u16;
    let audit_on = audit_bench::arg_str("--audit").as_deref() == Some("on");
    let data_dir = audit_bench::arg_str("--data-dir").unwrap_or_else(|| "/tmp/hello-audit".into());
    let mut app = Router::new().route("/hello/{name}", get(|| async { "hello" }));
    let audit = if audit_on {
        let audit = AuditService::start(Arc::new(LocalStore::new(&data_dir)), AuditConfig::default()).await;
        app = app.layer(
            AuditLayer::new(audit.clone())
                .route_of(|p| p.extensions.get::<MatchedPath>().map(|m| m.as_str().to_owned()))
                .peer_of(|p| p.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())),
        );
        Some(audit)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .unwrap();
    if let Some(a) = audit {
        a.stop().await;
        eprintln!("audited {:?}", a.health().counters.committed);
    }
}
