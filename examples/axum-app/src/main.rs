//! The seed's "Integration with FastAPI Application", in axum.
//!
//! `cargo run -p axum-app-example` then `curl -X DELETE localhost:3000/projects/p1/traces/t1`;
//! every request is recorded as `api.request` by `AuditLayer`, and the
//! deletion also as `trace.deleted` by `AuditHelper`, in `./example_audit_logs`.

use std::net::SocketAddr;
use std::sync::Arc;

use audit_core::json::{Object, Value};
use audit_index::sqlite::SqliteIndex;
use audit_service::{Actor, AuditConfig, AuditHelper, AuditService};
use audit_storage::local::LocalStore;
use audit_tower::{AuditLayer, FailurePolicy, JwtUserExtractor};
use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};

#[derive(Clone)]
struct AppState {
    helper: AuditHelper,
}

async fn delete_trace(State(state): State<AppState>, Path((project, trace)): Path<(String, String)>) -> StatusCode {
    let mut trace_data = Object::new();
    trace_data.insert("name", Value::String("Important Trace".into()));
    let actor = Actor::user("user-001", Some("user@example.com"));
    match state.helper.log_trace_deleted("org-123", &project, &trace, trace_data, None, &actor).await {
        Ok(_) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Startup: initialize the audit system (the seed's lifespan).
    let data_dir = std::path::PathBuf::from("./example_audit_logs");
    std::fs::create_dir_all(&data_dir)?;
    let audit = AuditService::builder(Arc::new(LocalStore::new(&data_dir)))
        .config(AuditConfig {
            batch_size: 100,
            batch_interval: std::time::Duration::from_secs(5),
            ..AuditConfig::default()
        })
        .index(Arc::new(SqliteIndex::open(&data_dir.join("index.sqlite3"))?))
        .start()
        .await;

    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/projects/{project}/traces/{trace}", delete(delete_trace))
        .with_state(AppState { helper: AuditHelper::new(audit.clone()) })
        .layer(
            AuditLayer::new(audit.clone())
                .exclude_paths(["/health", "/metrics"])
                .route_of(|p| p.extensions.get::<MatchedPath>().map(|m| m.as_str().to_owned()))
                .peer_of(|p| p.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
                .user_extractor(JwtUserExtractor::hs256(b"your-secret"))
                .durable_paths(["/projects"])
                .failure_policy(FailurePolicy::Open),
        );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    eprintln!("example app on http://127.0.0.1:3000");
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;

    // Shutdown: stop the audit service (flushes everything queued).
    audit.stop().await;
    Ok(())
}
