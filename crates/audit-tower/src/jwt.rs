//! A ready user extractor for bearer JWTs (HS256 or RS256). A missing,
//! expired, forged or otherwise unverifiable token makes the caller
//! `anonymous`; it never fails the request by itself.

use audit_core::event::ActorType;
use http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;

use crate::layer::{UserExtractor, UserInfo};

/// Verifies `Authorization: Bearer <jwt>` and reads the caller from its claims:
/// `sub` (or `user_id`) → actor id, `email`, `organization_id` (or `org_id`),
/// `session_id` (or `sid`).
#[derive(Clone)]
pub struct JwtUserExtractor {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtUserExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtUserExtractor").field("algorithms", &self.validation.algorithms).finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    user_id: Option<String>,
    email: Option<String>,
    organization_id: Option<String>,
    org_id: Option<String>,
    session_id: Option<String>,
    sid: Option<String>,
}

impl JwtUserExtractor {
    /// HMAC-SHA256 tokens signed with `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        JwtUserExtractor { key: DecodingKey::from_secret(secret), validation: Validation::new(Algorithm::HS256) }
    }

    /// RSA-SHA256 tokens, verified with a PEM public key.
    pub fn rs256(public_key_pem: &[u8]) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(JwtUserExtractor {
            key: DecodingKey::from_rsa_pem(public_key_pem)?,
            validation: Validation::new(Algorithm::RS256),
        })
    }

    /// Require this issuer (`iss`).
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.validation.set_issuer(&[issuer]);
        self
    }

    /// Require this audience (`aud`).
    pub fn audience(mut self, audience: &str) -> Self {
        self.validation.set_audience(&[audience]);
        self
    }
}

impl UserExtractor for JwtUserExtractor {
    fn extract(&self, parts: &Parts) -> UserInfo {
        let token = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = token else { return UserInfo::anonymous() };
        match decode::<Claims>(token.trim(), &self.key, &self.validation) {
            Ok(data) => {
                let c = data.claims;
                UserInfo {
                    actor_type: ActorType::User,
                    actor_id: c.sub.or(c.user_id),
                    actor_email: c.email,
                    organization_id: c.organization_id.or(c.org_id),
                    session_id: c.session_id.or(c.sid),
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "unverifiable bearer token: the caller is anonymous");
                UserInfo::anonymous()
            }
        }
    }
}
