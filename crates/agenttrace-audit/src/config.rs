//! Configuration (SPEC §12): command-line flag, then environment, then
//! `--config FILE` (TOML), then default. An invalid value is an error that
//! names the variable.
//!
//! Why not clap's `env` attribute: it covers two of the four layers (flag,
//! environment) and knows nothing of the TOML file, so the precedence would
//! be split between clap and this module, and error messages could no
//! longer name the layer a bad value came from. `pick` keeps all four in
//! one place.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use audit_service::{AuditConfig, FullQueuePolicy};
use serde::Deserialize;

/// The TOML file: the same settings as the `AUDIT_*` variables, lowercase,
/// without the prefix (`batch_size = 100`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    listen: Option<String>,
    storage_backend: Option<String>,
    storage_path: Option<PathBuf>,
    batch_size: Option<toml::Value>,
    batch_interval: Option<toml::Value>,
    enable_deduplication: Option<toml::Value>,
    deduplication_window: Option<toml::Value>,
    queue_capacity: Option<toml::Value>,
    full_queue_policy: Option<String>,
    index_url: Option<String>,
    index_ca_file: Option<String>,
    system_organization: Option<String>,
    metrics_listen: Option<String>,
    retention_days: Option<toml::Value>,
    retention_floor_days: Option<toml::Value>,
    prune_schedule: Option<String>,
    capture_api_access: Option<toml::Value>,
    s3_bucket: Option<String>,
    s3_region: Option<String>,
    s3_endpoint: Option<String>,
    s3_prefix: Option<String>,
    s3_require_object_lock: Option<toml::Value>,
    s3_sse: Option<String>,
    s3_kms_key_id: Option<String>,
    worker_idle_timeout: Option<toml::Value>,
    max_open_logs: Option<toml::Value>,
    checkpoint_mirror: Option<String>,
    signing_key_file: Option<PathBuf>,
    log_origin: Option<String>,
    checkpoint_interval: Option<toml::Value>,
    public_tiles: Option<toml::Value>,
    witnesses: Option<String>,
    failure_policy: Option<String>,
    max_connections: Option<toml::Value>,
    header_timeout: Option<toml::Value>,
    body_timeout: Option<toml::Value>,
    export_stall_timeout: Option<toml::Value>,
    rate_limit: Option<toml::Value>,
    max_in_flight: Option<toml::Value>,
    max_exports: Option<toml::Value>,
    verify_schedule: Option<String>,
    verify_full_schedule: Option<String>,
    alert_webhook_url: Option<String>,
    alert_webhook_secret: Option<String>,
    alert_webhook_attempts: Option<toml::Value>,
    alert_webhook_timeout: Option<toml::Value>,
    personal_data_protection: Option<toml::Value>,
    personal_paths: Option<String>,
    key_store_path: Option<PathBuf>,
    key_store_url: Option<String>,
    key_store_schema: Option<String>,
    master_key_file: Option<PathBuf>,
    kms_key_id: Option<String>,
    kms_endpoint: Option<String>,
    kms_region: Option<String>,
}

impl FileConfig {
    pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else { return Ok(FileConfig::default()) };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("--config: cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("--config {}", path.display()))
    }
}

/// Every `AUDIT_*` variable the binary reads (and the ones its tests use).
const KNOWN_VARIABLES: &[&str] = &[
    "AUDIT_LISTEN",
    "AUDIT_STORAGE_BACKEND",
    "AUDIT_STORAGE_PATH",
    "AUDIT_S3_BUCKET",
    "AUDIT_S3_REGION",
    "AUDIT_S3_ENDPOINT",
    "AUDIT_S3_PREFIX",
    "AUDIT_S3_REQUIRE_OBJECT_LOCK",
    "AUDIT_S3_SSE",
    "AUDIT_S3_KMS_KEY_ID",
    "AUDIT_RETENTION_DAYS",
    "AUDIT_RETENTION_FLOOR_DAYS",
    "AUDIT_PRUNE_SCHEDULE",
    "AUDIT_INDEX_URL",
    "AUDIT_INDEX_CA_FILE",
    "AUDIT_BATCH_SIZE",
    "AUDIT_BATCH_INTERVAL",
    "AUDIT_ENABLE_DEDUPLICATION",
    "AUDIT_DEDUPLICATION_WINDOW",
    "AUDIT_QUEUE_CAPACITY",
    "AUDIT_FULL_QUEUE_POLICY",
    "AUDIT_SYSTEM_ORGANIZATION",
    "AUDIT_METRICS_LISTEN",
    "AUDIT_LOG_ORIGIN",
    "AUDIT_SIGNING_KEY_FILE",
    "AUDIT_CHECKPOINT_INTERVAL",
    "AUDIT_CHECKPOINT_MIRROR",
    "AUDIT_CAPTURE_API_ACCESS",
    "AUDIT_FAILURE_POLICY",
    "AUDIT_WORKER_IDLE_TIMEOUT",
    "AUDIT_MAX_OPEN_LOGS",
    "AUDIT_MAX_CONNECTIONS",
    "AUDIT_HEADER_TIMEOUT",
    "AUDIT_BODY_TIMEOUT",
    "AUDIT_EXPORT_STALL_TIMEOUT",
    "AUDIT_RATE_LIMIT",
    "AUDIT_MAX_IN_FLIGHT",
    "AUDIT_MAX_EXPORTS",
    "AUDIT_PUBLIC_TILES",
    "AUDIT_WITNESSES",
    "AUDIT_WITNESS_QUORUM",
    "AUDIT_VERIFY_SCHEDULE",
    "AUDIT_VERIFY_FULL_SCHEDULE",
    "AUDIT_ALERT_WEBHOOK_URL",
    "AUDIT_ALERT_WEBHOOK_SECRET",
    "AUDIT_ALERT_WEBHOOK_ATTEMPTS",
    "AUDIT_ALERT_WEBHOOK_TIMEOUT",
    "AUDIT_PERSONAL_DATA_PROTECTION",
    "AUDIT_PERSONAL_PATHS",
    "AUDIT_KEY_STORE_PATH",
    "AUDIT_KEY_STORE_URL",
    "AUDIT_KEY_STORE_SCHEMA",
    "AUDIT_MASTER_KEY_FILE",
    "AUDIT_KMS_KEY_ID",
    "AUDIT_KMS_ENDPOINT",
    "AUDIT_KMS_REGION",
    "AUDIT_LOG",
    "AUDIT_REQUIRE_SERVICES",
];

/// Warnings for `AUDIT_*` variables nobody reads (a typo silently ignored
/// would leave a default in force), each naming the closest known one.
pub(crate) fn unknown_variables() -> Vec<String> {
    let mut out = Vec::new();
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("AUDIT_") || name.starts_with("AUDIT_TEST_") || KNOWN_VARIABLES.contains(&name) {
            continue;
        }
        let closest = KNOWN_VARIABLES
            .iter()
            .min_by_key(|known| strsim::levenshtein(name, known))
            .filter(|known| strsim::levenshtein(name, known) <= 4);
        out.push(match closest {
            Some(known) => format!("warning: {name} is not a setting and is ignored (did you mean {known}?)"),
            None => format!("warning: {name} is not a setting and is ignored"),
        });
    }
    out.sort();
    out
}

/// One setting's raw text and where it came from (for error messages).
fn pick(flag: Option<String>, env: &str, file: Option<String>, file_key: &str) -> Option<(String, String)> {
    if let Some(v) = flag {
        return Some((v, format!("--{}", file_key.replace('_', "-"))));
    }
    if let Ok(v) = std::env::var(env) {
        return Some((v, env.to_owned()));
    }
    file.map(|v| (v, format!("{file_key} (config file)")))
}

fn toml_text(v: Option<toml::Value>) -> Option<String> {
    v.map(|v| match v {
        toml::Value::String(s) => s,
        other => other.to_string(),
    })
}

fn parse<T: std::str::FromStr>(got: Option<(String, String)>, what: &str) -> anyhow::Result<Option<T>> {
    match got {
        None => Ok(None),
        Some((v, source)) => {
            v.trim().parse::<T>().map(Some).map_err(|_| anyhow::anyhow!("{source}: {v:?} is not {what}"))
        }
    }
}

fn parse_bool(got: Option<(String, String)>) -> anyhow::Result<Option<bool>> {
    match got {
        None => Ok(None),
        Some((v, source)) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Some(true)),
            "false" | "0" | "no" | "off" => Ok(Some(false)),
            _ => bail!("{source}: {v:?} is not a boolean (true or false)"),
        },
    }
}

fn parse_seconds(got: Option<(String, String)>, allow_zero: bool) -> anyhow::Result<Option<Duration>> {
    let source = got.as_ref().map(|(_, s)| s.clone());
    match parse::<f64>(got, "a number of seconds")? {
        None => Ok(None),
        Some(s) if s.is_finite() && (s > 0.0 || (allow_zero && s == 0.0)) => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => bail!("{}: {s} is not a positive number of seconds", source.unwrap_or_default()),
    }
}

/// Where the data directory is: flag, `AUDIT_STORAGE_PATH`, config file, `./audit_logs`.
pub(crate) fn data_dir(flag: Option<PathBuf>, file: &FileConfig) -> PathBuf {
    flag.or_else(|| std::env::var_os("AUDIT_STORAGE_PATH").map(PathBuf::from))
        .or_else(|| file.storage_path.clone())
        .unwrap_or_else(|| PathBuf::from("./audit_logs"))
}

/// Where the log is kept (`AUDIT_STORAGE_BACKEND`).
#[derive(Debug, Clone)]
pub(crate) enum StorageChoice {
    /// Segment files in the data directory.
    Local,
    /// Objects in an S3 bucket with Object Lock.
    S3(S3Settings),
}

/// The S3 backend's settings (`AUDIT_S3_*`, `AUDIT_RETENTION_DAYS`).
#[derive(Debug, Clone)]
pub(crate) struct S3Settings {
    pub(crate) bucket: String,
    pub(crate) region: Option<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) prefix: String,
    pub(crate) retention_days: u32,
    pub(crate) require_object_lock: bool,
    /// Server-side encryption (`AUDIT_S3_SSE`: `AES256` or `aws:kms`) and
    /// the KMS key (`AUDIT_S3_KMS_KEY_ID`), checked at load.
    pub(crate) sse: Option<(String, Option<String>)>,
}

/// Where the query index is (`AUDIT_INDEX_URL`).
#[derive(Debug, Clone)]
pub(crate) enum IndexChoice {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database: its URL, and the CA that signs its TLS
    /// certificate (`AUDIT_INDEX_CA_FILE`; with `sslmode=require`).
    Postgres(String, Option<PathBuf>),
}

/// The data directory and the storage and index every command uses.
#[derive(Debug, Clone)]
pub(crate) struct Backends {
    /// Keys, the signing key and (for local storage) the log and index.
    pub(crate) data_dir: PathBuf,
    pub(crate) storage: StorageChoice,
    pub(crate) index: IndexChoice,
    /// Where checkpoints are published outside the store (`AUDIT_CHECKPOINT_MIRROR`).
    pub(crate) mirror: Option<StorageChoiceAt>,
    /// The checkpoint origin prefix (`AUDIT_LOG_ORIGIN`).
    pub(crate) origin: String,
    /// The signing key's file (`AUDIT_SIGNING_KEY_FILE`; default in the data directory).
    pub(crate) signing_key_file: Option<PathBuf>,
    /// Checkpoints at most this often (`AUDIT_CHECKPOINT_INTERVAL`).
    pub(crate) checkpoint_interval: Duration,
    /// Personal data protection (`AUDIT_PERSONAL_DATA_PROTECTION`, on by
    /// default); `None` when off.
    pub(crate) personal: Option<PersonalSettings>,
    /// Days events are kept (`AUDIT_RETENTION_DAYS`), and the shortest
    /// period an organization may set (`AUDIT_RETENTION_FLOOR_DAYS`; on S3
    /// never below the Object Lock period).
    pub(crate) retention_days: u32,
    pub(crate) retention_floor_days: u32,
}

impl Backends {
    /// The retention policy: periods per organization kept in the data directory.
    pub(crate) fn retention_policy(&self) -> anyhow::Result<audit_server::RetentionPolicy> {
        audit_server::RetentionPolicy::load(
            self.data_dir.join("retention.json"),
            self.retention_days,
            self.retention_floor_days,
        )
        .map_err(|e| anyhow::anyhow!(e))
    }
}

/// Where subject keys are kept and what wraps them (SPEC §9).
#[derive(Debug, Clone)]
pub(crate) struct PersonalSettings {
    /// Configured personal paths (`AUDIT_PERSONAL_PATHS`).
    pub(crate) paths: Vec<audit_core::personal::PersonalPath>,
    pub(crate) store: KeyStoreChoice,
    pub(crate) master: MasterChoice,
}

/// The key store.
#[derive(Debug, Clone)]
pub(crate) enum KeyStoreChoice {
    /// SQLite in its own directory (`AUDIT_KEY_STORE_PATH`, default: the
    /// data directory's name with `-keys`, beside it, never inside it).
    Sqlite(PathBuf),
    /// PostgreSQL (`AUDIT_KEY_STORE_URL`) and the schema of its tables
    /// (`AUDIT_KEY_STORE_SCHEMA`, default `audit_keys`).
    Postgres(String, String),
}

/// What wraps subject keys.
#[derive(Debug, Clone)]
pub(crate) enum MasterChoice {
    /// A key file; `create` when it is the embedded default's own path
    /// (made at first start), never when the operator named it.
    File { path: PathBuf, create: bool },
    /// A KMS key (`AUDIT_KMS_KEY_ID`).
    Kms { key_id: String, endpoint: Option<String>, region: Option<String> },
}

/// A checkpoint mirror: a directory, or a bucket reached with the `AUDIT_S3_*` settings.
#[derive(Debug, Clone)]
pub(crate) enum StorageChoiceAt {
    Dir(PathBuf),
    S3(S3Settings),
}

impl Backends {
    /// Where the log is, for people (no secrets: URLs lose their user info).
    pub(crate) fn describe_storage(&self) -> String {
        match &self.storage {
            StorageChoice::Local => self.data_dir.join("logs").display().to_string(),
            StorageChoice::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        }
    }

    /// Where personal data's keys are, for people (no secrets).
    pub(crate) fn describe_personal(&self) -> String {
        match &self.personal {
            None => "stored as sent (AUDIT_PERSONAL_DATA_PROTECTION=off)".to_owned(),
            Some(p) => match &p.store {
                KeyStoreChoice::Sqlite(dir) => format!("sealed, keys in {}", dir.display()),
                KeyStoreChoice::Postgres(url, schema) => {
                    format!("sealed, keys in {} schema {schema}", url_for_people(url))
                }
            },
        }
    }

    /// Where the index is, for people (the password of a URL is not shown).
    pub(crate) fn describe_index(&self) -> String {
        match &self.index {
            IndexChoice::Sqlite(path) => path.display().to_string(),
            IndexChoice::Postgres(url, _) => url_for_people(url),
        }
    }
}

/// A database URL without its user, password or parameters.
fn url_for_people(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{}", host.split('?').next().unwrap_or(host))
}

/// The default retention: 7 years, as the seed recommends.
const DEFAULT_RETENTION_DAYS: u32 = 2555;

/// The shortest retention an organization may set by default: a year, what
/// SOC 2 auditors commonly expect (HIPAA asks six: raise it).
const DEFAULT_RETENTION_FLOOR_DAYS: u32 = 365;

impl Backends {
    pub(crate) fn load(data_dir_flag: Option<PathBuf>, file: &FileConfig) -> anyhow::Result<Backends> {
        let data_dir = data_dir(data_dir_flag, file);
        let retention_days: u32 = parse(
            pick(None, "AUDIT_RETENTION_DAYS", toml_text(file.retention_days.clone()), "retention_days"),
            "a whole number of days",
        )?
        .unwrap_or(DEFAULT_RETENTION_DAYS);
        if retention_days == 0 {
            bail!("AUDIT_RETENTION_DAYS: must be at least 1");
        }
        let floor: u32 = parse(
            pick(
                None,
                "AUDIT_RETENTION_FLOOR_DAYS",
                toml_text(file.retention_floor_days.clone()),
                "retention_floor_days",
            ),
            "a whole number of days",
        )?
        .unwrap_or(DEFAULT_RETENTION_FLOOR_DAYS);
        if floor == 0 {
            bail!("AUDIT_RETENTION_FLOOR_DAYS: must be at least 1");
        }

        let s3_for = |bucket: String, prefix: Option<String>| -> anyhow::Result<S3Settings> {
            Ok(S3Settings {
                bucket,
                region: pick(None, "AUDIT_S3_REGION", file.s3_region.clone(), "s3_region").map(|(v, _)| v),
                endpoint: pick(None, "AUDIT_S3_ENDPOINT", file.s3_endpoint.clone(), "s3_endpoint").map(|(v, _)| v),
                prefix: prefix.unwrap_or_default(),
                retention_days,
                require_object_lock: parse_bool(pick(
                    None,
                    "AUDIT_S3_REQUIRE_OBJECT_LOCK",
                    toml_text(file.s3_require_object_lock.clone()),
                    "s3_require_object_lock",
                ))?
                .unwrap_or(true),
                sse: {
                    let mode = pick(None, "AUDIT_S3_SSE", file.s3_sse.clone(), "s3_sse");
                    let key = pick(None, "AUDIT_S3_KMS_KEY_ID", file.s3_kms_key_id.clone(), "s3_kms_key_id");
                    match (mode, key) {
                        (None, None) => None,
                        (None, Some((_, source))) => bail!("{source} needs AUDIT_S3_SSE=aws:kms"),
                        (Some((mode, source)), key) => {
                            let key = key.map(|(k, _)| k);
                            match (mode.as_str(), &key) {
                                ("AES256", None) | ("aws:kms", _) => Some((mode, key)),
                                ("AES256", Some(_)) => {
                                    bail!("AUDIT_S3_KMS_KEY_ID goes with AUDIT_S3_SSE=aws:kms, not AES256")
                                }
                                _ => bail!("{source}: {mode:?} is not a server-side encryption (AES256 or aws:kms)"),
                            }
                        }
                    }
                },
            })
        };
        let storage = match pick(None, "AUDIT_STORAGE_BACKEND", file.storage_backend.clone(), "storage_backend") {
            None => StorageChoice::Local,
            Some((v, _)) if v.eq_ignore_ascii_case("local") => StorageChoice::Local,
            Some((v, _)) if v.eq_ignore_ascii_case("s3") => {
                let bucket = pick(None, "AUDIT_S3_BUCKET", file.s3_bucket.clone(), "s3_bucket")
                    .map(|(v, _)| v)
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| anyhow::anyhow!("AUDIT_STORAGE_BACKEND=s3 needs AUDIT_S3_BUCKET"))?;
                let prefix = pick(None, "AUDIT_S3_PREFIX", file.s3_prefix.clone(), "s3_prefix").map(|(v, _)| v);
                StorageChoice::S3(s3_for(bucket, prefix)?)
            }
            Some((v, source)) => bail!("{source}: {v:?} is not a storage backend (local or s3)"),
        };
        let mirror = match pick(None, "AUDIT_CHECKPOINT_MIRROR", file.checkpoint_mirror.clone(), "checkpoint_mirror") {
            None => None,
            Some((v, source)) if v.trim().is_empty() => bail!("{source}: empty"),
            Some((v, source)) => match v.strip_prefix("s3://") {
                Some(rest) => {
                    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                    if bucket.is_empty() {
                        bail!("{source}: {v:?} names no bucket (s3://BUCKET/PREFIX)");
                    }
                    Some(StorageChoiceAt::S3(s3_for(bucket.to_owned(), Some(prefix.to_owned()))?))
                }
                None => Some(StorageChoiceAt::Dir(PathBuf::from(v))),
            },
        };
        let origin = match pick(None, "AUDIT_LOG_ORIGIN", file.log_origin.clone(), "log_origin") {
            Some((v, source)) => {
                crate::signing::check_origin(&v, &source)?;
                v
            }
            None => crate::signing::DEFAULT_ORIGIN.to_owned(),
        };
        let signing_key_file = pick(
            None,
            "AUDIT_SIGNING_KEY_FILE",
            file.signing_key_file.as_ref().map(|p| p.display().to_string()),
            "signing_key_file",
        )
        .map(|(v, _)| PathBuf::from(v));
        let checkpoint_interval = parse_seconds(
            pick(None, "AUDIT_CHECKPOINT_INTERVAL", toml_text(file.checkpoint_interval.clone()), "checkpoint_interval"),
            false,
        )?
        .unwrap_or(Duration::from_secs(1));
        let index = match pick(None, "AUDIT_INDEX_URL", file.index_url.clone(), "index_url") {
            None => IndexChoice::Sqlite(data_dir.join("index.sqlite3")),
            Some((v, _)) if v.starts_with("sqlite://") => IndexChoice::Sqlite(PathBuf::from(&v["sqlite://".len()..])),
            Some((v, _)) if v.starts_with("postgres://") || v.starts_with("postgresql://") => {
                let ca = pick(None, "AUDIT_INDEX_CA_FILE", file.index_ca_file.clone(), "index_ca_file");
                IndexChoice::Postgres(v, ca.map(|(path, _)| PathBuf::from(path)))
            }
            Some((v, source)) => bail!("{source}: {v:?} is not an index URL (sqlite://PATH or postgres://...)"),
        };
        let personal = personal_settings(&data_dir, file)?;
        // On S3 the Object Lock period is a floor of its own: no object can go sooner.
        let retention_floor_days = match &storage {
            StorageChoice::S3(_) => floor.max(retention_days),
            StorageChoice::Local => floor,
        };
        Ok(Backends {
            data_dir,
            storage,
            index,
            mirror,
            origin,
            signing_key_file,
            checkpoint_interval,
            personal,
            retention_days,
            retention_floor_days,
        })
    }
}

/// `AUDIT_PERSONAL_DATA_PROTECTION` and the key store settings.
fn personal_settings(data_dir: &Path, file: &FileConfig) -> anyhow::Result<Option<PersonalSettings>> {
    let on = parse_bool(pick(
        None,
        "AUDIT_PERSONAL_DATA_PROTECTION",
        toml_text(file.personal_data_protection.clone()),
        "personal_data_protection",
    ))?
    .unwrap_or(true);
    if !on {
        return Ok(None);
    }
    let mut paths = Vec::new();
    if let Some((list, source)) = pick(None, "AUDIT_PERSONAL_PATHS", file.personal_paths.clone(), "personal_paths") {
        for item in list.split(',').filter(|p| !p.trim().is_empty()) {
            let path = audit_core::personal::PersonalPath::parse(item).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    let store_dir = pick(
        None,
        "AUDIT_KEY_STORE_PATH",
        file.key_store_path.as_ref().map(|p| p.display().to_string()),
        "key_store_path",
    )
    .map(|(v, _)| PathBuf::from(v))
    .map_or_else(|| default_key_store_dir(data_dir), Ok)?;
    let store = match pick(None, "AUDIT_KEY_STORE_URL", file.key_store_url.clone(), "key_store_url") {
        None => KeyStoreChoice::Sqlite(store_dir.clone()),
        Some((v, _)) if v.starts_with("postgres://") || v.starts_with("postgresql://") => {
            let schema = pick(None, "AUDIT_KEY_STORE_SCHEMA", file.key_store_schema.clone(), "key_store_schema")
                .map_or_else(|| "audit_keys".to_owned(), |(v, _)| v);
            KeyStoreChoice::Postgres(v, schema)
        }
        Some((v, source)) => bail!("{source}: {v:?} is not a PostgreSQL URL (postgres://...)"),
    };
    let kms = pick(None, "AUDIT_KMS_KEY_ID", file.kms_key_id.clone(), "kms_key_id");
    let named_file = pick(
        None,
        "AUDIT_MASTER_KEY_FILE",
        file.master_key_file.as_ref().map(|p| p.display().to_string()),
        "master_key_file",
    );
    let master = match (kms, named_file) {
        (Some(_), Some(_)) => bail!("AUDIT_KMS_KEY_ID and AUDIT_MASTER_KEY_FILE: set one master key, not both"),
        (Some((key_id, _)), None) => MasterChoice::Kms {
            key_id,
            endpoint: pick(None, "AUDIT_KMS_ENDPOINT", file.kms_endpoint.clone(), "kms_endpoint").map(|(v, _)| v),
            region: pick(None, "AUDIT_KMS_REGION", file.kms_region.clone(), "kms_region").map(|(v, _)| v),
        },
        (None, Some((path, _))) => MasterChoice::File { path: PathBuf::from(path), create: false },
        (None, None) => match &store {
            KeyStoreChoice::Sqlite(dir) => MasterChoice::File { path: dir.join("master.key"), create: true },
            // Instances sharing a database must share its master key: a
            // key made locally by each would lock the others out.
            KeyStoreChoice::Postgres(..) => {
                bail!(
                    "AUDIT_KEY_STORE_URL needs AUDIT_MASTER_KEY_FILE or AUDIT_KMS_KEY_ID (the master key every instance shares)"
                )
            }
        },
    };
    Ok(Some(PersonalSettings { paths, store, master }))
}

/// The embedded key store's default directory: beside the data directory,
/// never inside it (a copy of the log must not carry its keys).
/// A data directory named `.` or `..` is resolved first; one with no
/// parent (`/`) has no "beside" and needs `AUDIT_KEY_STORE_PATH`.
pub(crate) fn default_key_store_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let resolved;
    let data_dir = match data_dir.file_name() {
        Some(_) => data_dir,
        None => {
            resolved = std::path::absolute(data_dir)
                .and_then(|p| if p.try_exists()? { std::fs::canonicalize(p) } else { Ok(p) })
                .with_context(|| format!("cannot resolve the data directory {}", data_dir.display()))?;
            &resolved
        }
    };
    let (Some(name), Some(_)) = (data_dir.file_name(), data_dir.parent()) else {
        bail!(
            "the data directory {} has no parent to keep the key store beside it: set AUDIT_KEY_STORE_PATH",
            data_dir.display()
        );
    };
    Ok(data_dir.with_file_name(format!("{}-keys", name.to_string_lossy())))
}

/// How events are batched, deduplicated and queued (`AUDIT_BATCH_*`,
/// `AUDIT_*DEDUPLICATION*`, `AUDIT_QUEUE_CAPACITY`, …): the same for `serve`
/// and for the commands that write (`ingest`). Lifecycle events are off;
/// `serve` turns them on.
pub(crate) fn service_config(file: &FileConfig) -> anyhow::Result<AuditConfig> {
    let defaults = AuditConfig::default();
    let batch_size: usize =
        parse(pick(None, "AUDIT_BATCH_SIZE", toml_text(file.batch_size.clone()), "batch_size"), "a whole number")?
            .unwrap_or(defaults.batch_size);
    if batch_size == 0 {
        bail!("AUDIT_BATCH_SIZE: must be at least 1");
    }
    let queue_capacity: usize = parse(
        pick(None, "AUDIT_QUEUE_CAPACITY", toml_text(file.queue_capacity.clone()), "queue_capacity"),
        "a whole number",
    )?
    .unwrap_or(defaults.queue_capacity);
    if queue_capacity == 0 {
        bail!("AUDIT_QUEUE_CAPACITY: must be at least 1");
    }
    let full_queue_policy =
        match pick(None, "AUDIT_FULL_QUEUE_POLICY", file.full_queue_policy.clone(), "full_queue_policy") {
            None => FullQueuePolicy::Backpressure,
            Some((v, _)) if v.eq_ignore_ascii_case("backpressure") => FullQueuePolicy::Backpressure,
            Some((v, _)) if v.eq_ignore_ascii_case("reject") => FullQueuePolicy::Reject,
            Some((v, source)) => bail!("{source}: {v:?} is not a queue policy (backpressure or reject)"),
        };
    let system_organization =
        pick(None, "AUDIT_SYSTEM_ORGANIZATION", file.system_organization.clone(), "system_organization")
            .map(|(v, source)| {
                if audit_core::event::is_valid_tenant_id(&v) {
                    Ok(v)
                } else {
                    Err(anyhow::anyhow!("{source}: {v:?} is not a valid organization id"))
                }
            })
            .transpose()?
            .unwrap_or(defaults.system_organization.clone());
    // AuditLayer's settings, for applications that embed it: checked here
    // (a bad value is an error wherever it is read); `serve` says it ignores them.
    parse_bool(pick(
        None,
        "AUDIT_CAPTURE_API_ACCESS",
        toml_text(file.capture_api_access.clone()),
        "capture_api_access",
    ))?;
    if let Some((v, source)) = pick(None, "AUDIT_FAILURE_POLICY", file.failure_policy.clone(), "failure_policy")
        && !["open", "closed"].contains(&v.to_ascii_lowercase().as_str())
    {
        bail!("{source}: {v:?} is not a failure policy (open or closed)");
    }
    Ok(AuditConfig {
        batch_size,
        batch_interval: parse_seconds(
            pick(None, "AUDIT_BATCH_INTERVAL", toml_text(file.batch_interval.clone()), "batch_interval"),
            false,
        )?
        .unwrap_or(defaults.batch_interval),
        enable_deduplication: parse_bool(pick(
            None,
            "AUDIT_ENABLE_DEDUPLICATION",
            toml_text(file.enable_deduplication.clone()),
            "enable_deduplication",
        ))?
        .unwrap_or(defaults.enable_deduplication),
        deduplication_window: parse_seconds(
            pick(
                None,
                "AUDIT_DEDUPLICATION_WINDOW",
                toml_text(file.deduplication_window.clone()),
                "deduplication_window",
            ),
            true,
        )?
        .unwrap_or(defaults.deduplication_window),
        queue_capacity,
        full_queue_policy,
        system_organization,
        worker_idle_timeout: parse_seconds(
            pick(None, "AUDIT_WORKER_IDLE_TIMEOUT", toml_text(file.worker_idle_timeout.clone()), "worker_idle_timeout"),
            false,
        )?
        .unwrap_or(defaults.worker_idle_timeout),
        ..defaults
    })
}

/// Everything `serve` runs with, validated.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) listen: SocketAddr,
    pub(crate) metrics_listen: Option<SocketAddr>,
    pub(crate) backends: Backends,
    pub(crate) service: AuditConfig,
    /// `AUDIT_MAX_OPEN_LOGS` when given (else derived from the open-file limit).
    pub(crate) max_open_logs: Option<usize>,
    /// `AUDIT_MAX_CONNECTIONS` when given (else derived from the open-file limit).
    pub(crate) max_connections: Option<usize>,
    /// `AUDIT_HEADER_TIMEOUT`: time to receive a request head (and keep-alive idle time).
    pub(crate) header_timeout: Duration,
    /// `AUDIT_BODY_TIMEOUT`: time to receive a request body.
    pub(crate) body_timeout: Duration,
    /// `AUDIT_EXPORT_STALL_TIMEOUT`: how long an export waits for a client that stopped reading.
    pub(crate) export_stall_timeout: Duration,
    /// `AUDIT_RATE_LIMIT`: requests per second per token (0: unlimited).
    pub(crate) rate_limit: u32,
    /// `AUDIT_MAX_IN_FLIGHT`: API requests running at once.
    pub(crate) max_in_flight: usize,
    /// `AUDIT_MAX_EXPORTS`: exports streaming at once.
    pub(crate) max_exports: usize,
    /// `AUDIT_VERIFY_SCHEDULE` and `AUDIT_VERIFY_FULL_SCHEDULE`: when every
    /// log is verified, incrementally and whole.
    pub(crate) verification: audit_server::VerificationPlan,
    /// `AUDIT_PRUNE_SCHEDULE`: when retention runs (none: `off`).
    pub(crate) prune_schedule: Option<audit_server::VerifySchedule>,
    /// `AUDIT_ALERT_WEBHOOK_*`: where alerts are posted (none: logged only).
    pub(crate) alerts: Option<audit_service::WebhookConfig>,
    /// `AUDIT_PUBLIC_TILES`: the tlog-tiles API without a token.
    pub(crate) public_tiles: bool,
    /// `AUDIT_WITNESSES`: where checkpoints are submitted for cosigning.
    pub(crate) witnesses: Vec<audit_service::WitnessConfig>,
}

/// Flags of `serve` that are also settings.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    pub(crate) listen: Option<String>,
    pub(crate) data_dir: Option<PathBuf>,
}

impl Settings {
    pub(crate) fn load(flags: Flags, file: FileConfig) -> anyhow::Result<Settings> {
        let backends = Backends::load(flags.data_dir, &file)?;
        let listen: SocketAddr = parse(
            pick(flags.listen, "AUDIT_LISTEN", file.listen.clone(), "listen"),
            "a socket address (127.0.0.1:8080)",
        )?
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let metrics_listen = parse(
            pick(None, "AUDIT_METRICS_LISTEN", file.metrics_listen.clone(), "metrics_listen"),
            "a socket address",
        )?;
        let mut service = AuditConfig { record_lifecycle: true, ..service_config(&file)? };
        for (variable, key, what) in [
            ("AUDIT_CAPTURE_API_ACCESS", file.capture_api_access.is_some(), "AuditLayer's request capture"),
            (
                "AUDIT_FAILURE_POLICY",
                file.failure_policy.is_some(),
                "AuditLayer's failure policy (the service's own is AUDIT_FULL_QUEUE_POLICY)",
            ),
        ] {
            if key || std::env::var_os(variable).is_some() {
                eprintln!("note: {variable} sets {what} in applications that embed it; serve does not use it");
            }
        }
        let max_open_logs: Option<usize> = parse(
            pick(None, "AUDIT_MAX_OPEN_LOGS", toml_text(file.max_open_logs.clone()), "max_open_logs"),
            "a whole number",
        )?;
        if let Some(n) = max_open_logs {
            if n == 0 {
                bail!("AUDIT_MAX_OPEN_LOGS: must be at least 1");
            }
            service.max_open_logs = n;
        }
        let max_connections: Option<usize> = parse(
            pick(None, "AUDIT_MAX_CONNECTIONS", toml_text(file.max_connections.clone()), "max_connections"),
            "a whole number",
        )?;
        if max_connections == Some(0) {
            bail!("AUDIT_MAX_CONNECTIONS: must be at least 1");
        }
        let header_timeout = parse_seconds(
            pick(None, "AUDIT_HEADER_TIMEOUT", toml_text(file.header_timeout.clone()), "header_timeout"),
            false,
        )?
        .unwrap_or(Duration::from_secs(10));
        let body_timeout = parse_seconds(
            pick(None, "AUDIT_BODY_TIMEOUT", toml_text(file.body_timeout.clone()), "body_timeout"),
            false,
        )?
        .unwrap_or(Duration::from_secs(30));
        let export_stall_timeout = parse_seconds(
            pick(
                None,
                "AUDIT_EXPORT_STALL_TIMEOUT",
                toml_text(file.export_stall_timeout.clone()),
                "export_stall_timeout",
            ),
            false,
        )?
        .unwrap_or(Duration::from_secs(60));
        let rate_limit: u32 = parse(
            pick(None, "AUDIT_RATE_LIMIT", toml_text(file.rate_limit.clone()), "rate_limit"),
            "a whole number of requests per second",
        )?
        .unwrap_or(1000);
        let max_in_flight: usize = parse(
            pick(None, "AUDIT_MAX_IN_FLIGHT", toml_text(file.max_in_flight.clone()), "max_in_flight"),
            "a whole number",
        )?
        .unwrap_or(audit_server::DEFAULT_MAX_IN_FLIGHT);
        if max_in_flight == 0 {
            bail!("AUDIT_MAX_IN_FLIGHT: must be at least 1");
        }
        let max_exports: usize = parse(
            pick(None, "AUDIT_MAX_EXPORTS", toml_text(file.max_exports.clone()), "max_exports"),
            "a whole number",
        )?
        .unwrap_or(audit_server::DEFAULT_MAX_EXPORTS);
        if max_exports == 0 {
            bail!("AUDIT_MAX_EXPORTS: must be at least 1");
        }
        let public_tiles =
            parse_bool(pick(None, "AUDIT_PUBLIC_TILES", toml_text(file.public_tiles.clone()), "public_tiles"))?
                .unwrap_or(false);
        let witnesses = match pick(None, "AUDIT_WITNESSES", file.witnesses.clone(), "witnesses") {
            None => Vec::new(),
            Some((list, source)) => list
                .split(',')
                .filter(|e| !e.trim().is_empty())
                .map(|e| audit_service::WitnessConfig::parse(e).map_err(|why| anyhow::anyhow!("{source}: {why}")))
                .collect::<anyhow::Result<Vec<_>>>()?,
        };
        let alerts = match pick(None, "AUDIT_ALERT_WEBHOOK_URL", file.alert_webhook_url.clone(), "alert_webhook_url") {
            None => None,
            Some((url, source)) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    bail!("{source}: {url:?} is not an http(s) URL");
                }
                let mut webhook = audit_service::WebhookConfig::new(url);
                webhook.secret =
                    pick(None, "AUDIT_ALERT_WEBHOOK_SECRET", file.alert_webhook_secret.clone(), "alert_webhook_secret")
                        .map(|(v, _)| v);
                if webhook.secret.is_none() {
                    eprintln!("warning: AUDIT_ALERT_WEBHOOK_SECRET is not set: alerts are posted unsigned");
                }
                let attempts: Option<u32> = parse(
                    pick(
                        None,
                        "AUDIT_ALERT_WEBHOOK_ATTEMPTS",
                        toml_text(file.alert_webhook_attempts.clone()),
                        "alert_webhook_attempts",
                    ),
                    "a whole number",
                )?;
                match attempts {
                    Some(0) => bail!("AUDIT_ALERT_WEBHOOK_ATTEMPTS: must be at least 1"),
                    Some(n) => webhook.attempts = n,
                    None => {}
                }
                if let Some(t) = parse_seconds(
                    pick(
                        None,
                        "AUDIT_ALERT_WEBHOOK_TIMEOUT",
                        toml_text(file.alert_webhook_timeout.clone()),
                        "alert_webhook_timeout",
                    ),
                    false,
                )? {
                    webhook.attempt_timeout = t;
                    // Retries back off from a tenth of an attempt's time (1 s by default).
                    webhook.first_backoff = (t / 10).max(Duration::from_millis(100));
                }
                Some(webhook)
            }
        };
        let schedule =
            |var: &'static str, key: &'static str, given: Option<String>, default: audit_server::VerifySchedule| {
                Ok::<_, anyhow::Error>(match pick(None, var, given, key) {
                    None => Some(default),
                    Some((v, _)) if v.trim().eq_ignore_ascii_case("off") => None,
                    Some((v, source)) => Some(audit_server::VerifySchedule::parse(v.trim()).map_err(|e| {
                        anyhow::anyhow!("{source}: {v:?} is not a cron schedule ({e}); e.g. \"0 2 * * *\", or off")
                    })?),
                })
            };
        let daily = audit_server::VerifySchedule::parse("0 2 * * *").map_err(|e| anyhow::anyhow!(e))?;
        let verification = audit_server::VerificationPlan {
            incremental: schedule("AUDIT_VERIFY_SCHEDULE", "verify_schedule", file.verify_schedule.clone(), daily)?,
            full: schedule(
                "AUDIT_VERIFY_FULL_SCHEDULE",
                "verify_full_schedule",
                file.verify_full_schedule.clone(),
                audit_server::VerifySchedule::weekly(),
            )?,
        };
        let prune_schedule = schedule(
            "AUDIT_PRUNE_SCHEDULE",
            "prune_schedule",
            file.prune_schedule.clone(),
            audit_server::VerifySchedule::parse("0 1 * * *").map_err(|e| anyhow::anyhow!(e))?,
        )?;
        Ok(Settings {
            verification,
            prune_schedule,
            alerts,
            public_tiles,
            witnesses,
            listen,
            metrics_listen,
            backends,
            service,
            max_open_logs,
            max_connections,
            header_timeout,
            body_timeout,
            export_stall_timeout,
            rate_limit,
            max_in_flight,
            max_exports,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_store_is_beside_the_data_directory_never_inside() {
        assert_eq!(default_key_store_dir(Path::new("./audit_logs")).unwrap(), PathBuf::from("./audit_logs-keys"));
        assert_eq!(default_key_store_dir(Path::new("/srv/audit")).unwrap(), PathBuf::from("/srv/audit-keys"));
        let here = std::env::current_dir().unwrap();
        let dot = default_key_store_dir(Path::new(".")).unwrap();
        assert!(
            !dot.starts_with(std::fs::canonicalize(&here).unwrap()),
            "{} is inside {}",
            dot.display(),
            here.display()
        );
        assert!(default_key_store_dir(Path::new("/")).unwrap_err().to_string().contains("AUDIT_KEY_STORE_PATH"));
    }

    #[test]
    fn the_start_line_never_shows_a_database_password() {
        let b = Backends {
            data_dir: PathBuf::from("/data"),
            storage: StorageChoice::S3(S3Settings {
                bucket: "audit-logs".into(),
                region: None,
                endpoint: None,
                prefix: "prod/".into(),
                retention_days: 2555,
                require_object_lock: true,
                sse: None,
            }),
            index: IndexChoice::Postgres("postgres://audit:s3cret@db.internal:5432/audit?sslmode=disable".into(), None),
            mirror: None,
            origin: crate::signing::DEFAULT_ORIGIN.into(),
            personal: None,
            signing_key_file: None,
            checkpoint_interval: Duration::from_secs(1),
            retention_days: 2555,
            retention_floor_days: 2555,
        };
        assert_eq!(b.describe_storage(), "s3://audit-logs/prod/");
        assert_eq!(b.describe_index(), "postgres://db.internal:5432/audit");
        let local =
            Backends { storage: StorageChoice::Local, index: IndexChoice::Sqlite("/data/i.sqlite3".into()), ..b };
        assert_eq!(
            (local.describe_storage().as_str(), local.describe_index().as_str()),
            ("/data/logs", "/data/i.sqlite3")
        );
    }
}
