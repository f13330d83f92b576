//! # audit-storage-s3
//!
//! Organization logs in an S3 bucket (or any S3 API with Object Lock).
//! (Over 500 lines: the store, its conditional-write fence and the
//! settling of uncertain writes share one retry loop; the retry policy and
//! the key layout are the first candidates to move out.)
//!
//! ```text
//! <prefix>logs/<org>/<first sequence, 20 digits>.jsonl        one committed batch
//! <prefix>logs/<org>/checkpoints/<size, 20 digits>.note       one signed checkpoint
//! <prefix>logs/<org>/checkpoints/<size>.<key id>.cosig        a witness's cosignature of it
//! <prefix>retention/<org>/<first kept, 20 digits>.prune        a signed prune record (SPEC §15)
//! <prefix>retention/<org>/<first kept, 20 digits>.hashes       the hashes of the events it covers
//! <prefix>tiles/<org>/tile/<L>/<N>[.p/<W>], tile/entries/…      the Merkle tree as C2SP tlog-tiles
//! ```
//!
//! Retention never deletes here: objects are kept by Object Lock until their
//! retain-until date and removed after it by a bucket lifecycle rule on
//! `logs/`. The service writes a prune record (outside `logs/`, so the rule
//! never touches it) once a log's oldest objects are past retention; from
//! then on the objects it covers are left out of the log's chunks whether
//! the rule has removed them yet or not, and their delete markers are
//! expected, not evidence.
//!
//! Every object is written once, with `If-None-Match: *` and (when the bucket
//! has Object Lock, which is required unless explicitly waived) retention
//! mode COMPLIANCE until commit time + the retention period. The
//! conditional write is the fence between writers (SPEC §4): a batch's key
//! is the sequence right after the previous object's last event, so two
//! writers that read the same tail race for the same key and exactly one
//! wins; the loser gets [`StorageErrorKind::Conflict`] and must re-read the
//! tail. A writer paused for an hour that wakes up still names the key it
//! read, finds it taken, and loses: it cannot fork the chain.
//!
//! A PUT whose outcome is unknown (timeout, connection reset) is resolved by
//! reading the key back — our bytes there mean success, other bytes mean
//! another writer won — and never by writing different bytes under another
//! key. Reads go by object version: the version that holds a key's events is
//! the first one written, which Object Lock keeps; delete markers and extra
//! versions cannot hide or replace it, and `LogStore::unexpected_versions`
//! reports them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use audit_core::tiles::TileId;
use audit_storage::org_dir;
use audit_storage::{Batch, Chunk, LogStore, LogWriter, Placement, Recovery, StorageError, StorageErrorKind, Tail};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Region, timeout::TimeoutConfig};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockEnabled, ObjectLockMode, ServerSideEncryption};

type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

/// How an S3 backend is set up (`AUDIT_S3_*`).
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The bucket (`AUDIT_S3_BUCKET`).
    pub bucket: String,
    /// Its region (`AUDIT_S3_REGION`; else the AWS chain's, else us-east-1).
    pub region: Option<String>,
    /// An S3-compatible endpoint (`AUDIT_S3_ENDPOINT`); path-style addressing.
    pub endpoint: Option<String>,
    /// Key prefix for everything this deployment writes (`AUDIT_S3_PREFIX`).
    pub prefix: String,
    /// Object Lock retention of each object, in days (`AUDIT_RETENTION_DAYS`).
    pub retention_days: u32,
    /// Refuse a bucket without Object Lock (`AUDIT_S3_REQUIRE_OBJECT_LOCK`, default true).
    pub require_object_lock: bool,
    /// How long an append keeps retrying through an outage before the batch
    /// fails (nothing of it acknowledged).
    pub append_deadline: Duration,
    /// A static access key id and secret; `None` (the default) uses the
    /// standard AWS chain (environment, profile, SSO, instance role).
    pub credentials: Option<(String, String)>,
    /// Server-side encryption every object is written with
    /// (`AUDIT_S3_SSE`, `AUDIT_S3_KMS_KEY_ID`); `None` leaves it to the
    /// bucket's default encryption.
    pub sse: Option<Sse>,
}

/// Server-side encryption of the objects (encryption at rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    /// `AES256`: keys managed by S3 (SSE-S3).
    Aes256,
    /// `aws:kms`: a KMS key (SSE-KMS); `None` is the account's AWS-managed
    /// `aws/s3` key.
    Kms(Option<String>),
}

impl Sse {
    /// `AES256`, or `aws:kms` with an optional key id.
    pub fn parse(mode: &str, kms_key_id: Option<String>) -> Result<Sse, String> {
        match (mode, kms_key_id) {
            ("AES256", None) => Ok(Sse::Aes256),
            ("AES256", Some(_)) => Err("a KMS key id goes with aws:kms, not AES256".into()),
            ("aws:kms", key) => Ok(Sse::Kms(key)),
            (other, _) => Err(format!("{other:?} is not a server-side encryption (AES256 or aws:kms)")),
        }
    }
}

impl S3Config {
    /// Settings for `bucket` with the defaults: 2555 days (7 years) of
    /// COMPLIANCE retention, Object Lock required, 30 s of retries.
    pub fn new(bucket: impl Into<String>) -> S3Config {
        S3Config {
            bucket: bucket.into(),
            region: None,
            endpoint: None,
            prefix: String::new(),
            retention_days: 2555,
            require_object_lock: true,
            append_deadline: Duration::from_secs(30),
            credentials: None,
            sse: None,
        }
    }
}

/// A log store in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    bucket: String,
    prefix: String,
    retention: Duration,
    object_lock: bool,
    append_deadline: Duration,
    sse: Option<Sse>,
    /// What listing found so far, per organization: objects are never
    /// removed (Object Lock), so later listings only ask for newer keys.
    listings: Mutex<HashMap<String, Listing>>,
    /// Per log: where retention cut it (0: never), and when that was read.
    cuts: Mutex<HashMap<String, (u64, std::time::Instant)>>,
}

/// How long a log's cut is trusted before the prune records are listed again.
const CUT_REFRESH: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default)]
struct Listing {
    chunks: Vec<Chunk>,
    /// Chunk name → the version that holds it (the first written).
    versions: HashMap<String, String>,
}

const CHUNK_SUFFIX: &str = ".jsonl";
const RETENTION_DIR: &str = "retention/";
/// Where tiles live (see [`S3Store::tile_key`]).
const TILES_DIR: &str = "tiles/";
/// Tile PUTs in flight at once when a checkpoint writes many.
const TILE_WRITES_AT_ONCE: usize = 16;
const PRUNE_RECORD_SUFFIX: &str = ".prune";
const PRUNED_HASHES_SUFFIX: &str = ".hashes";
const CHECKPOINT_DIR: &str = "checkpoints/";
/// A witness's cosignature of a checkpoint: `<size>.<witness key id>.cosig`.
const COSIGNATURE_SUFFIX: &str = ".cosig";
const CHECKPOINT_SUFFIX: &str = ".note";
/// Merkle frontiers, written beside checkpoints before the tree was kept as
/// tiles; old ones are still recognised when retention removes them.
const FRONTIER_SUFFIX: &str = ".frontier";

fn chunk_name(first_sequence: u64) -> String {
    format!("{first_sequence:020}{CHUNK_SUFFIX}")
}

fn parse_numbered(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// What a failed S3 call means for the caller.
#[derive(Debug)]
enum Failure {
    /// 412: `If-None-Match` found the key taken.
    Taken,
    /// 404: no such key.
    Missing,
    /// 409 (a concurrent conditional write), 429, 5xx, timeouts, dropped
    /// connections: worth retrying; for a write, the outcome is unknown.
    Transient(String),
    /// Anything else (credentials, permissions, a bad request).
    Permanent(String),
}

fn classify<E>(e: SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = match &e {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        _ => None,
    };
    let code = e.code().map(str::to_owned);
    let why = brief(&e);
    match (&e, status) {
        (_, Some(412)) => Failure::Taken,
        (_, Some(404)) => Failure::Missing,
        _ if code.as_deref() == Some("NoSuchKey") => Failure::Missing,
        (_, Some(409 | 429 | 500..=599)) => Failure::Transient(why),
        (SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_), _) => {
            Failure::Transient(why)
        }
        _ => Failure::Permanent(why),
    }
}

/// An SDK error as one short sentence: the service's code and message
/// (`NoSuchBucket: The specified bucket does not exist`) rather than the
/// SDK's debug dump of the whole response; for failures without a service
/// answer (connection refused, timeouts), the error chain, each cause once.
fn brief<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let (Some(code), message) = (e.code(), e.message()) {
        return match message {
            Some(m) => format!("{code}: {m}"),
            None => code.to_owned(),
        };
    }
    let mut out = String::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

fn io_error(what: impl std::fmt::Display, why: impl std::fmt::Display) -> StorageError {
    StorageError::new(StorageErrorKind::Io, format!("{what}: {why}"))
}

/// How a write-once object ended up.
#[derive(Debug, PartialEq, Eq)]
enum Created {
    /// Our bytes are there (written now, or found there after an uncertain attempt).
    Ours,
    /// Another writer's bytes are there.
    Theirs,
}

impl S3Store {
    /// Connects with the standard AWS credential chain and checks the
    /// bucket: it must have Object Lock enabled unless
    /// `require_object_lock` is false (then objects carry no retention, and
    /// a warning says so).
    pub async fn connect(config: S3Config) -> Result<S3Store, StorageError> {
        // rustls with ring: no C toolchain beyond what ring needs, no OpenSSL.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(20))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http).timeout_config(timeouts);
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some((id, secret)) = &config.credentials {
            loader =
                loader.credentials_provider(aws_sdk_s3::config::Credentials::new(id, secret, None, None, "static"));
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared);
        if shared.region().is_none() {
            builder = builder.region(Region::new("us-east-1"));
        }
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        let client = Client::from_conf(builder.build());
        let bucket = config.bucket.clone();
        let object_lock = match client.get_object_lock_configuration().bucket(&bucket).send().await {
            Ok(out) => {
                out.object_lock_configuration().and_then(|c| c.object_lock_enabled())
                    == Some(&ObjectLockEnabled::Enabled)
            }
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => false,
            Err(e) => {
                return Err(io_error(
                    format!("cannot read the Object Lock configuration of bucket {bucket}"),
                    brief(&e),
                ));
            }
        };
        if !object_lock {
            if config.require_object_lock {
                return Err(StorageError::new(
                    StorageErrorKind::Unexpected,
                    format!(
                        "bucket {bucket} does not have Object Lock enabled, so stored events could be deleted or overwritten; \
                         create it with Object Lock (README, Production) or set AUDIT_S3_REQUIRE_OBJECT_LOCK=false to run without"
                    ),
                ));
            }
            tracing::warn!(bucket, "bucket has no Object Lock: objects are written without retention");
        }
        if config.sse.is_none() {
            match client.get_bucket_encryption().bucket(&bucket).send().await {
                Ok(out) if out.server_side_encryption_configuration().is_some_and(|c| !c.rules().is_empty()) => {}
                Ok(_) => tracing::warn!(
                    bucket,
                    "bucket has no default encryption and AUDIT_S3_SSE is not set: objects are written unencrypted"
                ),
                Err(e) if e.code() == Some("ServerSideEncryptionConfigurationNotFoundError") => {
                    tracing::warn!(
                        bucket,
                        "bucket has no default encryption and AUDIT_S3_SSE is not set: objects are written unencrypted"
                    );
                }
                Err(e) => {
                    tracing::warn!(bucket, error = %brief(&e), "cannot read the bucket's default encryption; set AUDIT_S3_SSE to be sure objects are encrypted")
                }
            }
        }
        let mut prefix = config.prefix.trim_start_matches('/').to_owned();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(S3Store {
            inner: Arc::new(Inner {
                client,
                bucket,
                prefix,
                retention: Duration::from_secs(u64::from(config.retention_days) * 86_400),
                object_lock,
                append_deadline: config.append_deadline,
                sse: config.sse,
                listings: Mutex::new(HashMap::new()),
                cuts: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Whether objects are written with COMPLIANCE retention.
    pub fn object_lock(&self) -> bool {
        self.inner.object_lock
    }

    /// The key of a chunk or checkpoint `name` in `organization_id`'s log.
    pub fn key(&self, organization_id: &str, name: &str) -> String {
        format!("{}{name}", self.log_prefix(organization_id))
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// The SDK client (tests inspect retention and try forbidden calls with it).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    fn retention_prefix(&self, organization_id: &str) -> String {
        format!("{}{RETENTION_DIR}{}/", self.inner.prefix, org_dir::encode(organization_id))
    }

    /// The cuts of `organization_id`'s log (the `first_kept` of each prune
    /// record), oldest first.
    async fn list_cuts(&self, organization_id: &str) -> Result<Vec<u64>, StorageError> {
        let prefix = self.retention_prefix(organization_id);
        let mut pages =
            self.inner.client.list_objects_v2().bucket(&self.inner.bucket).prefix(&prefix).into_paginator().send();
        let mut cuts = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| io_error(format!("cannot list {prefix}"), brief(&e)))?;
            for object in page.contents() {
                let name = object.key().and_then(|k| k.strip_prefix(&prefix)).unwrap_or_default();
                if let Some(cut) = parse_numbered(name, PRUNE_RECORD_SUFFIX) {
                    cuts.push(cut);
                }
            }
        }
        cuts.sort_unstable();
        Ok(cuts)
    }

    /// Where retention cut the log (0: never), re-read at most every minute.
    async fn cut(&self, organization_id: &str) -> Result<u64, StorageError> {
        let cached = self.inner.cuts.lock().unwrap_or_else(|p| p.into_inner()).get(organization_id).copied();
        if let Some((cut, at)) = cached
            && at.elapsed() < CUT_REFRESH
        {
            return Ok(cut);
        }
        let cut = self.list_cuts(organization_id).await?.last().copied().unwrap_or(0);
        self.inner
            .cuts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(organization_id.to_owned(), (cut, std::time::Instant::now()));
        Ok(cut)
    }

    /// The key of a tile: `<prefix>tiles/<org>/<C2SP tile path>`, outside
    /// `logs/` so that a retention lifecycle rule never removes tiles
    /// (C2SP: a pruned log denies old tiles, it does not delete them).
    fn tile_key(&self, organization_id: &str, tile: &TileId) -> String {
        format!("{}{TILES_DIR}{}/{}", self.inner.prefix, org_dir::encode(organization_id), tile.path())
    }

    fn log_prefix(&self, organization_id: &str) -> String {
        format!("{}logs/{}/", self.inner.prefix, org_dir::encode(organization_id))
    }

    /// Brings `organization_id`'s listing up to date (only keys after the
    /// last one known are asked for) and returns it.
    async fn refresh(&self, organization_id: &str) -> Result<Listing, StorageError> {
        let prefix = self.log_prefix(organization_id);
        let mut listing = self.lock_listings().get(organization_id).cloned().unwrap_or_default();
        let after = listing.chunks.last().map(|c| format!("{prefix}{}", c.name));
        let mut new: Vec<(String, String)> = Vec::new();
        self.for_each_version_page(&prefix, Some("/"), after, |out| {
            // Versions come newest first within a key: the last one seen is the first written.
            for v in out.versions() {
                let (Some(key), Some(version)) = (v.key(), v.version_id()) else { continue };
                let Some(name) = key.strip_prefix(&prefix) else { continue };
                match new.last_mut() {
                    Some((n, ver)) if n == name => *ver = version.to_owned(),
                    _ => new.push((name.to_owned(), version.to_owned())),
                }
            }
        })
        .await?;
        for (name, version) in new {
            let Some(first_sequence) = parse_numbered(&name, CHUNK_SUFFIX) else {
                tracing::warn!(organization_id, name, "ignoring an object that is not a log chunk");
                continue;
            };
            listing.versions.insert(name.clone(), version);
            listing.chunks.push(Chunk { first_sequence, name });
        }
        self.lock_listings().insert(organization_id.to_owned(), listing.clone());
        Ok(listing)
    }

    /// Lists object versions under `prefix` (keys after `after_key`), one
    /// page at a time.
    async fn for_each_version_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        after_key: Option<String>,
        mut page: impl FnMut(&aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput),
    ) -> Result<(), StorageError> {
        let (mut key_marker, mut version_marker) = (after_key, None::<String>);
        loop {
            let out = self
                .inner
                .client
                .list_object_versions()
                .bucket(&self.inner.bucket)
                .prefix(prefix)
                .set_delimiter(delimiter.map(str::to_owned))
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| io_error(format!("cannot list versions under {prefix}"), brief(&e)))?;
            page(&out);
            if out.is_truncated() != Some(true) {
                return Ok(());
            }
            key_marker = out.next_key_marker().map(str::to_owned);
            version_marker = out.next_version_id_marker().map(str::to_owned);
        }
    }

    /// A chunk's bytes (or a byte range of them), at the version the
    /// listing recorded: a later object under the same name is not the log.
    async fn read_version(
        &self,
        organization_id: &str,
        chunk: &Chunk,
        range: Option<String>,
    ) -> Result<Vec<u8>, StorageError> {
        let known = |store: &S3Store| {
            store.lock_listings().get(organization_id).and_then(|l| l.versions.get(&chunk.name).cloned())
        };
        let version = match known(self) {
            Some(v) => v,
            None => {
                self.refresh(organization_id).await?;
                known(self).ok_or_else(|| {
                    StorageError::new(
                        StorageErrorKind::Unexpected,
                        format!("{} is not in the log of {organization_id}", chunk.name),
                    )
                })?
            }
        };
        let key = self.key(organization_id, &chunk.name);
        match self.get_range(&key, Some(&version), range).await {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(StorageError::new(
                StorageErrorKind::Unexpected,
                format!("version {version} of {key} is gone although Object Lock should keep it"),
            )),
            Err(f) => Err(io_error(format!("cannot read {key}"), format!("{f:?}"))),
        }
    }

    fn lock_listings(&self) -> std::sync::MutexGuard<'_, HashMap<String, Listing>> {
        self.inner.listings.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn get(&self, key: &str, version: Option<&str>) -> Result<Option<Vec<u8>>, Failure> {
        self.get_range(key, version, None).await
    }

    /// The object at `key` (a version of it), or an HTTP byte range of it
    /// (`bytes=first-last`); a range starting past the end is empty.
    async fn get_range(
        &self,
        key: &str,
        version: Option<&str>,
        range: Option<String>,
    ) -> Result<Option<Vec<u8>>, Failure> {
        let ranged = range.is_some();
        let out = self
            .inner
            .client
            .get_object()
            .bucket(&self.inner.bucket)
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .set_range(range)
            .send()
            .await;
        if ranged
            && let Err(SdkError::ServiceError(e)) = &out
            && e.raw().status().as_u16() == 416
        {
            return Ok(Some(Vec::new()));
        }
        match out {
            Ok(out) => match out.body.collect().await {
                Ok(data) => Ok(Some(data.into_bytes().to_vec())),
                Err(e) => Err(Failure::Transient(format!("reading the body of {key}: {e}"))),
            },
            Err(e) => match classify(e) {
                Failure::Missing => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<(), Failure> {
        let mut put = self
            .inner
            .client
            .put_object()
            .bucket(&self.inner.bucket)
            .key(key)
            .body(ByteStream::from(bytes.to_vec()))
            .if_none_match("*");
        match &self.inner.sse {
            None => {}
            Some(Sse::Aes256) => put = put.server_side_encryption(ServerSideEncryption::Aes256),
            Some(Sse::Kms(key)) => {
                put = put.server_side_encryption(ServerSideEncryption::AwsKms).set_ssekms_key_id(key.clone());
            }
        }
        if self.inner.object_lock {
            let until = SystemTime::now() + self.inner.retention;
            let secs = until.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            put = put
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(DateTime::from_secs(secs as i64));
        }
        put.send().await.map(drop).map_err(classify)
    }

    /// Writes `bytes` at `key` unless the key exists, retrying transient
    /// failures with exponential backoff and jitter until the append
    /// deadline. An attempt whose outcome is unknown is settled by reading
    /// the key back before anything is written again.
    async fn create_once(&self, key: &str, bytes: &[u8]) -> Result<Created, StorageError> {
        let deadline = tokio::time::Instant::now() + self.inner.append_deadline;
        let mut backoff = Duration::from_millis(50);
        let mut last_error = String::new();
        let mut must_read_back = false;
        loop {
            if must_read_back {
                match self.get(key, None).await {
                    Ok(Some(existing)) if existing == bytes => return Ok(Created::Ours),
                    Ok(Some(_)) => return Ok(Created::Theirs),
                    Ok(None) => must_read_back = false,
                    Err(Failure::Permanent(why)) => return Err(io_error(format!("cannot read back {key}"), why)),
                    Err(Failure::Transient(why)) => last_error = why,
                    Err(other) => last_error = format!("{other:?}"),
                }
            }
            if !must_read_back {
                match self.put_if_absent(key, bytes).await {
                    Ok(()) => return Ok(Created::Ours),
                    Err(Failure::Taken) => must_read_back = true,
                    Err(Failure::Transient(why)) => {
                        last_error = why;
                        must_read_back = true;
                    }
                    Err(Failure::Permanent(why)) => return Err(io_error(format!("cannot write {key}"), why)),
                    Err(Failure::Missing) => {
                        return Err(io_error(format!("cannot write {key}"), "the bucket is missing"));
                    }
                }
                // A 412 is settled by the read at the top of the loop at once.
                if must_read_back && last_error.is_empty() {
                    continue;
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(io_error(
                    format!("S3 did not accept {key} within {:?}", self.inner.append_deadline),
                    if last_error.is_empty() { "no answer".to_owned() } else { last_error },
                ));
            }
            let jitter = Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64));
            tokio::time::sleep((backoff / 2 + jitter).min(deadline - now)).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            last_error.clear();
        }
    }

    async fn list_checkpoints(&self, organization_id: &str, after: Option<u64>) -> Result<Option<u64>, StorageError> {
        let prefix = format!("{}{CHECKPOINT_DIR}", self.log_prefix(organization_id));
        let mut pages = self
            .inner
            .client
            .list_objects_v2()
            .bucket(&self.inner.bucket)
            .prefix(&prefix)
            .set_start_after(after.map(|size| format!("{prefix}{size:020}{CHECKPOINT_SUFFIX}")))
            .into_paginator()
            .send();
        let mut newest = None;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| io_error(format!("cannot list checkpoints under {prefix}"), brief(&e)))?;
            for object in page.contents() {
                let name = object.key().and_then(|k| k.strip_prefix(&prefix)).unwrap_or_default();
                if let Some(size) = parse_numbered(name, CHECKPOINT_SUFFIX) {
                    newest = newest.max(Some(size));
                }
            }
        }
        Ok(newest)
    }
}

#[async_trait]
impl LogStore for S3Store {
    async fn open_writer(&self, organization_id: &str) -> Result<Box<dyn LogWriter>, StorageError> {
        let listing = self.refresh(organization_id).await?;
        let mut tail = Tail::GENESIS;
        if let Some(last) = listing.chunks.last() {
            let bytes = self.read_chunk(organization_id, last).await?;
            let place = format!("s3://{}/{}", self.inner.bucket, self.key(organization_id, &last.name));
            tail = audit_storage::tail_of_chunk(last.first_sequence, &bytes, &place)?.ok_or_else(|| {
                StorageError::new(StorageErrorKind::Unexpected, format!("{place} is empty; no batch object is"))
            })?;
        }
        Ok(Box::new(S3Writer {
            store: self.clone(),
            organization_id: organization_id.to_owned(),
            recovery: Recovery { tail, torn_bytes_removed: 0 },
            tail,
            stale: None,
        }))
    }

    async fn organizations(&self) -> Result<Vec<String>, StorageError> {
        let prefix = format!("{}logs/", self.inner.prefix);
        let mut pages = self
            .inner
            .client
            .list_objects_v2()
            .bucket(&self.inner.bucket)
            .prefix(&prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| io_error(format!("cannot list {prefix}"), brief(&e)))?;
            for p in page.common_prefixes() {
                let dir = p.prefix().and_then(|p| p.strip_prefix(&prefix)).and_then(|p| p.strip_suffix('/'));
                if let Some(org) = dir.and_then(org_dir::decode) {
                    out.push(org);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Versions under a log's keys that should not exist: Object Lock
    /// protects versions, not key names, so a delete marker or a second
    /// version under a key is evidence of an attempt to hide or replace an
    /// object (reported by verify as `unexpected_object_version`).
    async fn unexpected_versions(&self, organization_id: &str) -> Result<Vec<String>, StorageError> {
        let prefix = self.log_prefix(organization_id);
        let cut = self.cut(organization_id).await?;
        // A lifecycle rule removes what a prune record covers: batches and
        // checkpoints before the cut.
        let covered = |key: &str| {
            let name = key.strip_prefix(&prefix).unwrap_or_default();
            let numbered = parse_numbered(name, CHUNK_SUFFIX).or_else(|| {
                let name = name.strip_prefix(CHECKPOINT_DIR)?;
                parse_numbered(name, CHECKPOINT_SUFFIX).or_else(|| parse_numbered(name, FRONTIER_SUFFIX))
            });
            numbered.is_some_and(|n| n < cut)
        };
        let mut versions: HashMap<String, usize> = HashMap::new();
        let mut found = Vec::new();
        self.for_each_version_page(&prefix, None, None, |out| {
            for v in out.versions() {
                *versions.entry(v.key().unwrap_or_default().to_owned()).or_default() += 1;
            }
            for m in out.delete_markers().iter().filter(|m| !covered(m.key().unwrap_or_default())) {
                found.push(format!(
                    "{} has a delete marker (version {})",
                    m.key().unwrap_or_default(),
                    m.version_id().unwrap_or("?")
                ));
            }
        })
        .await?;
        let mut extra: Vec<_> = versions.into_iter().filter(|(_, n)| *n > 1).collect();
        extra.sort();
        found.extend(extra.into_iter().map(|(key, n)| format!("{key} has {n} versions; only the first is the log's")));
        Ok(found)
    }

    async fn chunks(&self, organization_id: &str) -> Result<Vec<Chunk>, StorageError> {
        let chunks = self.refresh(organization_id).await?.chunks;
        // Batches a prune record covers are no longer the log's, whether the
        // lifecycle rule removed them yet or not.
        let cut = self.cut(organization_id).await?;
        let first = chunks.partition_point(|c| c.first_sequence < cut);
        Ok(chunks[first..].to_vec())
    }

    async fn pruned(&self, organization_id: &str) -> Result<Option<audit_storage::Pruned>, StorageError> {
        let cuts = self.list_cuts(organization_id).await?;
        let Some(&first_kept) = cuts.last() else { return Ok(None) };
        let prefix = self.retention_prefix(organization_id);
        let read = |name: String| {
            let key = format!("{prefix}{name}");
            async move {
                match self.get(&key, None).await {
                    Ok(Some(bytes)) => Ok(bytes),
                    Ok(None) => {
                        Err(StorageError::new(StorageErrorKind::Unexpected, format!("{key} was listed but is gone")))
                    }
                    Err(f) => Err(io_error(format!("cannot read {key}"), format!("{f:?}"))),
                }
            }
        };
        let mut hashes = Vec::new();
        for cut in &cuts {
            hashes.extend(read(format!("{cut:020}{PRUNED_HASHES_SUFFIX}")).await?);
        }
        let record = read(format!("{first_kept:020}{PRUNE_RECORD_SUFFIX}")).await?;
        Ok(Some(audit_storage::Pruned { first_kept, record, hashes }))
    }

    async fn prune_cut(&self, organization_id: &str) -> Result<u64, StorageError> {
        self.cut(organization_id).await
    }

    /// Stores the record and the hashes (write-once, hashes first); removes
    /// nothing: the bucket's lifecycle rule does, once Object Lock allows.
    async fn prune(
        &self,
        organization_id: &str,
        first_kept: u64,
        removed_hashes: &[u8],
        record: &[u8],
    ) -> Result<(), StorageError> {
        let prefix = self.retention_prefix(organization_id);
        self.create_once(&format!("{prefix}{first_kept:020}{PRUNED_HASHES_SUFFIX}"), removed_hashes).await?;
        self.create_once(&format!("{prefix}{first_kept:020}{PRUNE_RECORD_SUFFIX}"), record).await?;
        self.inner.cuts.lock().unwrap_or_else(|p| p.into_inner()).remove(organization_id);
        Ok(())
    }

    async fn read_chunk(&self, organization_id: &str, chunk: &Chunk) -> Result<Vec<u8>, StorageError> {
        self.read_version(organization_id, chunk, None).await
    }

    async fn read_chunk_window(
        &self,
        organization_id: &str,
        chunk: &Chunk,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        buf.clear();
        if len > 0 {
            let range = format!("bytes={offset}-{}", offset + len as u64 - 1);
            *buf = self.read_version(organization_id, chunk, Some(range)).await?;
        }
        Ok(())
    }

    async fn read_chunk_at(&self, organization_id: &str, first_sequence: u64) -> Result<Option<Vec<u8>>, StorageError> {
        let key = self.key(organization_id, &chunk_name(first_sequence));
        self.get(&key, None).await.map_err(|f| io_error(format!("cannot read {key}"), format!("{f:?}")))
    }

    async fn put_cosignature(
        &self,
        organization_id: &str,
        size: u64,
        witness_key_id: u32,
        line: &[u8],
    ) -> Result<(), StorageError> {
        let key =
            self.key(organization_id, &format!("{CHECKPOINT_DIR}{size:020}.{witness_key_id:08x}{COSIGNATURE_SUFFIX}"));
        self.create_once(&key, line).await.map(drop)
    }

    async fn cosignatures(&self, organization_id: &str, size: u64) -> Result<Vec<Vec<u8>>, StorageError> {
        let prefix = self.key(organization_id, &format!("{CHECKPOINT_DIR}{size:020}."));
        let mut pages =
            self.inner.client.list_objects_v2().bucket(&self.inner.bucket).prefix(&prefix).into_paginator().send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| io_error(format!("cannot list {prefix}"), brief(&e)))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter(|k| k.ends_with(COSIGNATURE_SUFFIX))
                    .map(str::to_owned),
            );
        }
        let mut out = Vec::new();
        for key in keys {
            if let Some(line) =
                self.get(&key, None).await.map_err(|f| io_error(format!("cannot read {key}"), format!("{f:?}")))?
            {
                out.push(line);
            }
        }
        Ok(out)
    }

    async fn put_tiles(&self, organization_id: &str, tiles: &[(TileId, Vec<u8>)]) -> Result<(), StorageError> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};

        // Write-once like every object here; a tile path names one content,
        // so a tile already there (another instance, an earlier attempt) stands.
        type Write<'a> =
            std::pin::Pin<Box<dyn std::future::Future<Output = Result<Created, StorageError>> + Send + 'a>>;
        let mut writes: Vec<Write<'_>> = Vec::with_capacity(tiles.len());
        for (id, content) in tiles {
            let key = self.tile_key(organization_id, id);
            writes.push(Box::pin(async move { self.create_once(&key, content).await }));
        }
        stream::iter(writes).buffer_unordered(TILE_WRITES_AT_ONCE).map_ok(drop).try_collect::<Vec<()>>().await.map(drop)
    }

    async fn tile(&self, organization_id: &str, tile: &TileId) -> Result<Option<Vec<u8>>, StorageError> {
        let key = self.tile_key(organization_id, tile);
        self.get(&key, None).await.map_err(|f| io_error(format!("cannot read {key}"), format!("{f:?}")))
    }

    async fn partial_tile_widths(&self, organization_id: &str, tile: &TileId) -> Result<Vec<u16>, StorageError> {
        let prefix = format!("{}.p/", self.tile_key(organization_id, &tile.as_full()));
        let mut pages =
            self.inner.client.list_objects_v2().bucket(&self.inner.bucket).prefix(&prefix).into_paginator().send();
        let mut widths = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| io_error(format!("cannot list {prefix}"), brief(&e)))?;
            widths.extend(page.contents().iter().filter_map(|o| o.key()?.strip_prefix(&prefix)?.parse::<u16>().ok()));
        }
        Ok(widths)
    }

    async fn put_checkpoint(&self, organization_id: &str, size: u64, note: &[u8]) -> Result<(), StorageError> {
        let key = self.key(organization_id, &format!("{CHECKPOINT_DIR}{size:020}{CHECKPOINT_SUFFIX}"));
        // Write-once: the first checkpoint of a size stands (another instance
        // signing the same tree with the same key writes the same bytes).
        self.create_once(&key, note).await.map(drop)
    }

    async fn latest_checkpoint(&self, organization_id: &str) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        // Checkpoints are listed in size order and there is one per interval,
        // so listing them all would grow with the log's age. Search back from
        // the start of the newest chunk in growing steps instead.
        let near = self.refresh(organization_id).await?.chunks.last().map_or(0, |c| c.first_sequence);
        let mut step = 4096u64;
        let newest = loop {
            let after = near.checked_sub(step);
            if let Some(size) = self.list_checkpoints(organization_id, after).await? {
                break Some(size);
            }
            if after.is_none() {
                break None;
            }
            step = step.saturating_mul(16);
        };
        let Some(size) = newest else { return Ok(None) };
        let key = self.key(organization_id, &format!("{CHECKPOINT_DIR}{size:020}{CHECKPOINT_SUFFIX}"));
        match self.get(&key, None).await {
            Ok(Some(bytes)) => Ok(Some((size, bytes))),
            Ok(None) => Err(StorageError::new(StorageErrorKind::Unexpected, format!("{key} was listed but is gone"))),
            Err(f) => Err(io_error(format!("cannot read {key}"), format!("{f:?}"))),
        }
    }
}

/// A writer of one log on S3. It holds no lock: the conditional write of
/// each batch is the fence.
#[derive(Debug)]
struct S3Writer {
    store: S3Store,
    organization_id: String,
    recovery: Recovery,
    tail: Tail,
    /// Set once another writer has won a key: this writer's tail is old.
    stale: Option<String>,
}

#[async_trait]
impl LogWriter for S3Writer {
    fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    fn resume_at(&mut self, tail: Tail) -> Result<(), StorageError> {
        if tail.next_sequence < self.tail.next_sequence {
            return Err(StorageError::new(
                StorageErrorKind::Unexpected,
                format!("cannot resume at {} behind the tail {}", tail.next_sequence, self.tail.next_sequence),
            ));
        }
        self.tail = tail;
        self.stale = None;
        Ok(())
    }

    async fn append(&mut self, batch: Arc<Batch>) -> Result<Placement, StorageError> {
        if let Some(why) = &self.stale {
            return Err(StorageError::new(StorageErrorKind::Conflict, why.clone()));
        }
        if batch.first_sequence != self.tail.next_sequence {
            return Err(StorageError::new(
                StorageErrorKind::Unexpected,
                format!(
                    "a batch at sequence {} does not follow the tail {}",
                    batch.first_sequence, self.tail.next_sequence
                ),
            ));
        }
        let key = self.store.key(&self.organization_id, &chunk_name(batch.first_sequence));
        match self.store.create_once(&key, &batch.bytes).await? {
            Created::Ours => {
                let tail = audit_storage::tail_of_chunk(batch.first_sequence, &batch.bytes, &key)?;
                self.tail = tail.unwrap_or(self.tail);
                let name = chunk_name(batch.first_sequence);
                Ok(Placement { chunk: Chunk { first_sequence: batch.first_sequence, name }, offset: 0 })
            }
            Created::Theirs => {
                let why = format!(
                    "another writer stored sequence {} of {} first; nothing of this batch was stored",
                    batch.first_sequence, self.organization_id
                );
                self.stale = Some(why.clone());
                Err(StorageError::new(StorageErrorKind::Conflict, why))
            }
        }
    }
}
