//! `serve`: the HTTP service (SPEC §11) on `--listen` with `--data-dir`.

use anyhow::{Context, bail};
use audit_server::{AppState, app, metrics_app};
use audit_service::AuditService;

use crate::config::{FileConfig, Flags, Settings};
use crate::exit;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on (default 127.0.0.1:8080; or AUDIT_LISTEN).
    #[arg(long)]
    listen: Option<String>,
    /// Accept every request without a token, with every scope. Development
    /// only: refused unless the listen address is loopback.
    #[arg(long)]
    no_auth: bool,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    eprintln!("shutting down: no new requests; flushing every queued event");
}

/// Takes `<data dir>/serve.lock` for this process (holding its pid), or
/// fails naming the process that holds it.
fn lock_data_dir(data_dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join("serve.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() { "another process".to_owned() } else { format!("process {holder}") };
            bail!("data directory {} is in use by {who}", data_dir.display());
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

/// Raises this process's soft limit on open files to its hard limit (as Go
/// and many servers do: the soft limit of a login shell is often 1024) and
/// returns the limit in force.
fn raise_file_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(cur), max) = (limit.current, limit.maximum)
        && max.is_none_or(|m| m > cur)
    {
        // Some kernels refuse "unlimited" for files: cap at what they allow.
        limit.current = Some(max.unwrap_or(1 << 20).min(1 << 20));
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit.current = getrlimit(Resource::Nofile).current;
        }
    }
    limit.current.unwrap_or(1 << 20)
}

/// Logs open for writing at once, from the open-file limit: each takes ~3
/// descriptors, and half the limit is left for connections, reads, the
/// index and the mirror (docs/PRODUCTION.md).
pub(crate) fn open_logs_for(file_limit: u64) -> usize {
    usize::try_from(file_limit / 6).unwrap_or(usize::MAX).clamp(4, 4096)
}

pub(crate) async fn run(data_dir: Option<std::path::PathBuf>, file: FileConfig, args: Args) -> anyhow::Result<u8> {
    let mut settings = Settings::load(Flags { listen: args.listen, data_dir }, file)?;
    let file_limit = raise_file_limit();
    if settings.max_open_logs.is_none() {
        settings.service.max_open_logs = open_logs_for(file_limit);
    }
    // A quarter of the open-file limit for connections (the logs take half).
    let max_connections = settings
        .max_connections
        .unwrap_or_else(|| usize::try_from(file_limit / 4).unwrap_or(usize::MAX).clamp(16, 16_384));
    let limits = audit_server::ConnectionLimits {
        max_connections,
        header_timeout: settings.header_timeout,
        ..audit_server::ConnectionLimits::default()
    };
    if args.no_auth && !settings.listen.ip().is_loopback() {
        bail!(
            "--no-auth is refused on {}: it is only allowed on a loopback address (127.0.0.1 or ::1)",
            settings.listen
        );
    }
    let data_dir = settings.backends.data_dir.clone();
    audit_server::keys::private_dir(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    // Held until the process exits: a second serve here would start
    // "healthy" and refuse every write; it is refused at once instead.
    let _data_dir_lock = lock_data_dir(&data_dir)?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&data_dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "warning: data directory {} has mode {mode:o}: other users can read the log, keys and index (chmod 700 it)",
                data_dir.display()
            );
        }
    }
    let store = super::open_store(&settings.backends).await?;
    let index = super::open_index(&settings.backends).await?;
    // Before anything is accepted: a missing, unreadable or wrong master key
    // stops the start here, naming the setting.
    let protection = super::open_protection(&settings.backends).await?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot start the metrics recorder")?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let metrics_listener = match settings.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("AUDIT_METRICS_LISTEN: cannot listen on {addr}"))?,
        ),
        None => None,
    };
    let checkpoints = crate::signing::checkpoint_config(&settings.backends).await?;
    if checkpoints.mirror.is_none() {
        eprintln!(
            "warning: no AUDIT_CHECKPOINT_MIRROR: checkpoints are kept only beside the log, so restoring an old copy of the whole store cannot be detected"
        );
    }
    let signer = checkpoints.signer.clone();
    let origin = checkpoints.origin.clone();
    // What the key file holds before the service (and its hold on the
    // system log) starts is not a change; whatever changes later, the server
    // records — or the CLI did, while it could still write the system log.
    let keys = audit_server::KeyStore::open(&data_dir);
    keys.poll_changes();
    let mut builder = AuditService::builder(store)
        .config(settings.service)
        .index(index)
        .checkpoints(checkpoints)
        .witnesses(settings.witnesses.clone());
    if let Some(p) = protection.clone() {
        builder = builder.protection(p);
    }
    if let Some(webhook) = settings.alerts.clone() {
        builder = builder.alerts(webhook);
    }
    let service = builder.start().await;
    let state = AppState::new(service.clone(), &data_dir, args.no_auth, Some(metrics))
        .with_keys(keys)
        .with_body_timeout(settings.body_timeout)
        .with_export_stall_timeout(settings.export_stall_timeout)
        .with_public_tiles(settings.public_tiles)
        .with_rate_limit(settings.rate_limit)
        .with_max_in_flight(settings.max_in_flight)
        .with_max_exports(settings.max_exports)
        .with_checkpoint_key(signer, origin)
        .with_retention(std::sync::Arc::new(settings.backends.retention_policy()?));
    state.spawn_key_auditor();
    if let Some(schedule) = &settings.prune_schedule {
        // Local logs lose their old segments; on S3 a prune record is
        // written and the bucket's lifecycle rule removes the objects.
        state.spawn_pruning(schedule.clone());
    }
    if settings.verification.incremental.is_some() || settings.verification.full.is_some() {
        state.spawn_scheduled_verification(settings.verification.clone());
    }
    if let Some(l) = metrics_listener {
        let m = metrics_app(state.clone());
        eprintln!("metrics on http://{}/metrics", l.local_addr()?);
        tokio::spawn(async move { axum::serve(l, m).await });
    }
    let router = app(state.clone(), settings.metrics_listen.is_none());
    eprintln!(
        "agenttrace-audit listening on http://{} (log: {}; index: {}; personal data: {}{})",
        listener.local_addr()?,
        settings.backends.describe_storage(),
        settings.backends.describe_index(),
        settings.backends.describe_personal(),
        if args.no_auth { "; NO AUTHENTICATION" } else { "" }
    );
    let served = audit_server::serve(listener, router, limits, shutdown_signal()).await;
    // Exports cut short by the stop end with a broken transfer; wait until
    // they are recorded before the service stops taking events.
    if !state.exports_finished(settings.export_stall_timeout + std::time::Duration::from_secs(5)).await {
        eprintln!("warning: an export was still running at stop; its record may be missing");
    }
    service.stop().await;
    served.context("the server failed")?;
    eprintln!("stopped");
    Ok(exit::OK)
}
