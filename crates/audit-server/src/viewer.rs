//! Viewer tokens (SPEC §17): short-lived, read-only tokens for one
//! organization, minted by an admin for the embeddable console.
//!
//! A viewer token is `agtv_<JWT>`: HS256 over claims naming the
//! organization, the expiry, an optional pinned filter, whether exports are
//! allowed and the origins that may frame the embedded console. Nothing is
//! stored per token: the server checks the signature with a secret kept in
//! `<data dir>/viewer.key` (32 random bytes, 0600, made on first use), so a
//! token works until it expires — which is why its lifetime is short (15
//! minutes by default, a day at most).
//!
//! Beside the token, minting returns an *embed path*,
//! `/console/embed/<view>`, where `<view>` is a second JWT of another
//! audience carrying only the frame origins and the expiry: it lets the
//! server answer the embed page with the right `frame-ancestors` without
//! the secret token ever being sent in a URL, and is useless as a bearer
//! token.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use audit_core::filter::AuditEventFilter;
use audit_storage::whole_file::{Created, create_whole};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};

/// Prefix of a viewer token (API keys start with `agta_`).
pub const TOKEN_PREFIX: &str = "agtv_";
/// Lifetime of a token when none is asked for, in seconds.
pub const DEFAULT_TTL_SECONDS: u64 = 15 * 60;
/// The longest lifetime a token may have, in seconds.
pub const MAX_TTL_SECONDS: u64 = 24 * 60 * 60;

const ISSUER: &str = "agenttrace-audit";
const API_AUDIENCE: &str = "viewer-api";
const EMBED_AUDIENCE: &str = "viewer-embed";

/// The §8 filters a token may be pinned to: equality conditions on the
/// event (a time window or an e-mail address would not belong in a token
/// that travels through a customer's front end).
pub const PINNABLE: &[&str] = &[
    "project_id",
    "event_category",
    "event_type",
    "action",
    "severity",
    "actor_type",
    "actor_id",
    "resource_type",
    "resource_id",
];

/// What a valid viewer token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerGrant {
    /// The token's id (recorded as the actor of its reads).
    pub id: String,
    /// The one organization it reads.
    pub organization_id: String,
    /// Seconds since the Unix epoch at which it stops working.
    pub expires_at: u64,
    /// Conditions every event it sees must meet (parameter → value).
    pub pinned: BTreeMap<String, String>,
    /// Whether it may export.
    pub export: bool,
    /// Origins that may frame the embedded console.
    pub frame_ancestors: Vec<String>,
}

impl ViewerGrant {
    /// The pinned conditions as a filter of its organization.
    pub fn pin_filter(&self) -> Result<AuditEventFilter, ApiError> {
        let p: std::collections::HashMap<String, String> = self.pinned.clone().into_iter().collect();
        let mut filter = crate::routes::params::conditions_from(&p)?;
        filter.organization_id = self.organization_id.clone();
        Ok(filter)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ApiClaims {
    iss: String,
    aud: String,
    jti: String,
    iat: u64,
    exp: u64,
    org: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pin: BTreeMap<String, String>,
    export: bool,
    frame: Vec<String>,
    /// The key that minted it.
    by: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct EmbedClaims {
    iss: String,
    aud: String,
    jti: String,
    exp: u64,
    frame: Vec<String>,
}

/// A request to mint a token (the body of `POST /v1/viewer-tokens`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    /// The organization (the admin token's own when omitted).
    pub organization_id: Option<String>,
    /// Lifetime in seconds: 1 to 86400, default 900.
    pub ttl_seconds: Option<u64>,
    /// §8 conditions every event the token sees must meet, e.g. `{"project_id": "p-1"}`.
    #[serde(default)]
    pub filter: BTreeMap<String, String>,
    /// Whether the token may export (default false).
    #[serde(default)]
    pub export: bool,
    /// Origins allowed to frame `/console/embed` (e.g. `https://app.example.com`); none: it cannot be framed.
    #[serde(default)]
    pub frame_ancestors: Vec<String>,
}

/// A minted token (the answer of `POST /v1/viewer-tokens`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Minted {
    /// The token's id.
    pub id: String,
    /// The bearer token, shown once.
    pub token: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
    /// The embeddable console for it: load it in an iframe of an allowed
    /// origin and hand the token over with `postMessage` (or in the URL
    /// fragment, `#token=…`, which never reaches a server).
    pub embed_path: String,
    /// The organization.
    pub organization_id: String,
    /// The pinned conditions.
    pub filter: BTreeMap<String, String>,
    /// Whether it may export.
    pub export: bool,
    /// Who may frame it.
    pub frame_ancestors: Vec<String>,
}

/// The signing secret of viewer tokens, read or made on first use.
#[derive(Debug)]
pub(crate) struct ViewerKeys {
    path: PathBuf,
    secret: OnceLock<Vec<u8>>,
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(ErrorCode::Internal, "the viewer-token key is unavailable", e)
}

impl ViewerKeys {
    pub(crate) fn new(data_dir: &Path) -> ViewerKeys {
        ViewerKeys { path: data_dir.join("viewer.key"), secret: OnceLock::new() }
    }

    fn secret(&self) -> Result<&[u8], ApiError> {
        if let Some(s) = self.secret.get() {
            return Ok(s);
        }
        let secret = match fs::read_to_string(&self.path) {
            Ok(text) => hex::decode(text.trim()).map_err(|e| unavailable(format!("{}: {e}", self.path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.create()?,
            Err(e) => return Err(unavailable(format!("{}: {e}", self.path.display()))),
        };
        if secret.len() < 32 {
            return Err(unavailable(format!("{} holds fewer than 32 bytes", self.path.display())));
        }
        Ok(self.secret.get_or_init(|| secret))
    }

    /// Makes the key file, whole (`audit_storage::whole_file`); if another
    /// process made it first, reads theirs.
    fn create(&self) -> Result<Vec<u8>, ApiError> {
        let mut secret = vec![0u8; 32];
        getrandom::getrandom(&mut secret).map_err(unavailable)?;
        match create_whole(&self.path, hex::encode(&secret).as_bytes(), 0o600) {
            Ok(Created::Written) => Ok(secret),
            Ok(Created::AlreadyThere) => {
                let text = fs::read_to_string(&self.path).map_err(unavailable)?;
                hex::decode(text.trim()).map_err(unavailable)
            }
            Err(e) => Err(unavailable(format!("{}: {e}", self.path.display()))),
        }
    }

    /// Mints a token for `organization_id` as asked; `by` is the minting key.
    pub(crate) fn mint(&self, organization_id: &str, by: &str, ask: &MintRequest) -> Result<Minted, ApiError> {
        let ttl = ask.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        if !(1..=MAX_TTL_SECONDS).contains(&ttl) {
            return Err(ApiError::field(
                ErrorCode::InvalidParameter,
                "ttl_seconds",
                format!("must be between 1 and {MAX_TTL_SECONDS}"),
            ));
        }
        let mut pin = BTreeMap::new();
        for (name, value) in &ask.filter {
            if !PINNABLE.contains(&name.as_str()) {
                return Err(ApiError::field(
                    ErrorCode::InvalidParameter,
                    format!("filter.{name}"),
                    format!("cannot be pinned; pinnable: {}", PINNABLE.join(", ")),
                ));
            }
            pin.insert(name.clone(), value.clone());
        }
        // The same parsing as a query's, so a pin is a valid §8 condition.
        let grant = ViewerGrant {
            id: String::new(),
            organization_id: organization_id.to_owned(),
            expires_at: 0,
            pinned: pin.clone(),
            export: ask.export,
            frame_ancestors: Vec::new(),
        };
        grant.pin_filter().map_err(|e| ApiError { field: e.field.map(|f| format!("filter.{f}")), ..e })?;
        let mut frame = Vec::new();
        for (i, origin) in ask.frame_ancestors.iter().enumerate() {
            frame.push(
                check_origin(origin).map_err(|why| {
                    ApiError::field(ErrorCode::InvalidParameter, format!("frame_ancestors[{i}]"), why)
                })?,
            );
        }
        let mut id = [0u8; 8];
        getrandom::getrandom(&mut id).map_err(unavailable)?;
        let id = hex::encode(id);
        let now = now_seconds();
        let exp = now + ttl;
        let key = EncodingKey::from_secret(self.secret()?);
        let header = Header::new(Algorithm::HS256);
        let claims = ApiClaims {
            iss: ISSUER.into(),
            aud: API_AUDIENCE.into(),
            jti: id.clone(),
            iat: now,
            exp,
            org: organization_id.to_owned(),
            pin: pin.clone(),
            export: ask.export,
            frame: frame.clone(),
            by: by.to_owned(),
        };
        let token = jsonwebtoken::encode(&header, &claims, &key).map_err(unavailable)?;
        let view =
            EmbedClaims { iss: ISSUER.into(), aud: EMBED_AUDIENCE.into(), jti: id.clone(), exp, frame: frame.clone() };
        let view = jsonwebtoken::encode(&header, &view, &key).map_err(unavailable)?;
        Ok(Minted {
            id,
            token: format!("{TOKEN_PREFIX}{token}"),
            expires_at: audit_core::Timestamp::from_micros(exp as i64 * 1_000_000).to_string(),
            embed_path: format!("/console/embed/{view}"),
            organization_id: organization_id.to_owned(),
            filter: pin,
            export: ask.export,
            frame_ancestors: frame,
        })
    }

    /// The grant of a viewer token (without its `agtv_` prefix), or why not.
    pub(crate) fn check(&self, token: &str) -> Result<ViewerGrant, ApiError> {
        let claims: ApiClaims = self.decode(token, API_AUDIENCE)?;
        Ok(ViewerGrant {
            id: claims.jti,
            organization_id: claims.org,
            expires_at: claims.exp,
            pinned: claims.pin,
            export: claims.export,
            frame_ancestors: claims.frame,
        })
    }

    /// The frame origins of an embed path's `<view>`, or why not.
    pub(crate) fn embed_origins(&self, view: &str) -> Result<Vec<String>, ApiError> {
        let claims: EmbedClaims = self.decode(view, EMBED_AUDIENCE)?;
        // Signed by us, but checked again: they go into a header.
        claims.frame.iter().map(|o| check_origin(o).map_err(|e| ApiError::new(ErrorCode::Unauthorized, e))).collect()
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, token: &str, audience: &str) -> Result<T, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        let key = DecodingKey::from_secret(self.secret()?);
        jsonwebtoken::decode::<T>(token, &key, &validation).map(|d| d.claims).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "the viewer token has expired",
                _ => "a valid bearer token is required",
            };
            ApiError::new(ErrorCode::Unauthorized, why)
        })
    }
}

/// An origin as CSP `frame-ancestors` takes it: `https://host[:port]`, or
/// `http://` for a loopback host (development). Nothing else reaches the
/// header: no paths, wildcards, quotes or spaces.
pub(crate) fn check_origin(origin: &str) -> Result<String, String> {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = origin.split_once("://").ok_or("must be an origin such as https://app.example.com")?;
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or("has an unclosed [")?;
            if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                return Err("has a malformed IPv6 address".into());
            }
            (&rest[..addr.len() + 2], after.strip_prefix(':').map_or(Some(after), Some))
        }
        None => match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    let port_ok = match port {
        None | Some("") if !rest.contains(':') || rest.ends_with(']') => true,
        Some(p) => !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()),
        None => true,
    };
    let host_ok = host.starts_with('[')
        || (!host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
    if !port_ok || !host_ok {
        return Err("must be scheme://host[:port] with no path, wildcard or spaces".into());
    }
    let loopback = host == "localhost" || host == "[::1]" || host.starts_with("127.");
    match scheme {
        "https" => Ok(origin),
        "http" if loopback => Ok(origin),
        "http" => Err("must use https (http only for localhost)".into()),
        _ => Err("must be an https origin".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_before_they_reach_a_header() {
        for (given, want) in [
            ("https://app.example.com", "https://app.example.com"),
            ("https://App.Example.com:8443/", "https://app.example.com:8443"),
            ("http://127.0.0.1:4000", "http://127.0.0.1:4000"),
            ("http://localhost", "http://localhost"),
        ] {
            assert_eq!(check_origin(given).as_deref(), Ok(want), "{given}");
        }
        for bad in [
            "app.example.com",
            "http://app.example.com",
            "https://*.example.com",
            "https://a.example.com/path",
            "https://a.example.com 'unsafe-inline'",
            "https://a.example.com;script-src",
            "javascript://x",
            "https://",
            "https://a.example:port",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_carry_their_grant_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ViewerKeys::new(dir.path());
        let ask = MintRequest {
            filter: [("project_id".to_owned(), "p-1".to_owned())].into(),
            frame_ancestors: vec!["https://app.example.com".into()],
            ..Default::default()
        };
        let minted = keys.mint("org-1", "k1", &ask).unwrap();
        let token = minted.token.strip_prefix(TOKEN_PREFIX).unwrap();
        let grant = keys.check(token).unwrap();
        assert_eq!(grant.organization_id, "org-1");
        assert_eq!(grant.pinned.get("project_id").map(String::as_str), Some("p-1"));
        assert!(!grant.export);
        // The embed path's view is not a bearer token, and the other way round.
        let view = minted.embed_path.strip_prefix("/console/embed/").unwrap();
        assert!(keys.check(view).is_err());
        assert!(keys.embed_origins(token).is_err());
        assert_eq!(keys.embed_origins(view).unwrap(), vec!["https://app.example.com"]);
        // Another data directory's key does not accept it.
        let other = tempfile::tempdir().unwrap();
        assert!(ViewerKeys::new(other.path()).check(token).is_err());
        // A second reader of the same directory does.
        assert!(ViewerKeys::new(dir.path()).check(token).is_ok());
        let bad = MintRequest { filter: [("actor_email".to_owned(), "a@b".to_owned())].into(), ..Default::default() };
        assert_eq!(keys.mint("org-1", "k1", &bad).unwrap_err().field.as_deref(), Some("filter.actor_email"));
        let bad = MintRequest { filter: [("severity".to_owned(), "loud".to_owned())].into(), ..Default::default() };
        assert_eq!(keys.mint("org-1", "k1", &bad).unwrap_err().field.as_deref(), Some("filter.severity"));
        let bad = MintRequest { ttl_seconds: Some(MAX_TTL_SECONDS + 1), ..Default::default() };
        assert_eq!(keys.mint("org-1", "k1", &bad).unwrap_err().field.as_deref(), Some("ttl_seconds"));
    }
}
