//! Who is calling: a bearer token scoped to one organization, or (only with
//! `--no-auth` on loopback) a development principal that may do anything.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::keys::Scope;

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key id (`None` without authentication).
    pub key_id: Option<String>,
    /// The organization the token is bound to (`None`: any, development only).
    pub organization_id: Option<String>,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// For a viewer token: what it grants (its pinned filter narrows every read).
    pub viewer: Option<std::sync::Arc<crate::viewer::ViewerGrant>>,
}

impl Principal {
    /// Refuses a route the principal has no scope for (`admin` has all).
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin) {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Forbidden, format!("this token lacks the {} scope", scope.as_str())))
        }
    }

    /// The organization a request is about. A token never reaches another
    /// organization: naming one is answered as if it did not exist (404).
    pub fn organization(&self, requested: Option<&str>) -> Result<String, ApiError> {
        match (&self.organization_id, requested) {
            (Some(own), Some(asked)) if own != asked => Err(ApiError::new(ErrorCode::NotFound, "not found")),
            (Some(own), _) => Ok(own.clone()),
            (None, Some(asked)) if audit_core::event::is_valid_tenant_id(asked) => Ok(asked.to_owned()),
            (None, Some(_)) => {
                Err(ApiError::field(ErrorCode::InvalidParameter, "organization_id", "is not a valid organization id"))
            }
            (None, None) => {
                Err(ApiError::field(ErrorCode::InvalidParameter, "organization_id", "is required without a token"))
            }
        }
    }

    /// Refuses viewer tokens (routes that would show more than their pin allows).
    pub fn refuse_viewer(&self) -> Result<(), ApiError> {
        match self.viewer {
            Some(_) => Err(ApiError::new(ErrorCode::Forbidden, "viewer tokens cannot use this route")),
            None => Ok(()),
        }
    }

    /// Whether a viewer token's pin lets this principal see `event`.
    pub fn may_see(&self, event: &audit_core::stored::StoredEvent) -> Result<bool, ApiError> {
        match &self.viewer {
            Some(grant) => Ok(grant.pin_filter()?.matches(event)),
            None => Ok(true),
        }
    }

    /// The actor recorded for this caller's own reads of the log.
    pub fn actor_id(&self) -> String {
        if let Some(grant) = &self.viewer {
            return format!("viewer_token:{}", grant.id);
        }
        self.key_id.clone().map_or_else(|| "anonymous".into(), |k| format!("api_key:{k}"))
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if state.no_auth() {
            // Without tokens, a web page the user visits could reach this
            // server through a DNS name rebound to 127.0.0.1: answer only
            // requests addressed to a loopback name or address.
            let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
            if !is_loopback_host(host) {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "without authentication (--no-auth) only requests to localhost or a loopback address are answered",
                ));
            }
            return Ok(Principal { key_id: None, organization_id: None, scopes: Scope::ALL.to_vec(), viewer: None });
        }
        let unauthorized = || ApiError::new(ErrorCode::Unauthorized, "a valid bearer token is required");
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(unauthorized)?;
        let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).ok_or_else(unauthorized)?;
        if let Some(viewer) = token.trim().strip_prefix(crate::viewer::TOKEN_PREFIX) {
            let grant = state.viewer_keys().check(viewer)?;
            state.charge(&format!("viewer:{}", grant.id))?;
            let mut scopes = vec![Scope::Read];
            if grant.export {
                scopes.push(Scope::Export);
            }
            return Ok(Principal {
                key_id: None,
                organization_id: Some(grant.organization_id.clone()),
                scopes,
                viewer: Some(std::sync::Arc::new(grant)),
            });
        }
        let key = state.keys().authenticate(token.trim()).ok_or_else(unauthorized)?;
        state.charge(&key.id)?;
        Ok(Principal {
            key_id: Some(key.id),
            organization_id: Some(key.organization_id),
            scopes: key.scopes.into_iter().collect(),
            viewer: None,
        })
    }
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host
            .rsplit_once(':')
            .map_or(host, |(name, port)| if port.chars().all(|c| c.is_ascii_digit()) { name } else { host }),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_hosts_pass_without_authentication() {
        for ok in ["localhost", "localhost:8080", "127.0.0.1:8080", "127.5.5.5", "[::1]:8080", "[::1]", "LOCALHOST"] {
            assert!(super::is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "10.0.0.1:80",
            "[::2]:8080",
            "localhost.evil",
        ] {
            assert!(!super::is_loopback_host(bad), "{bad}");
        }
    }
}
