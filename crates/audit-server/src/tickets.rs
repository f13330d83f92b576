//! Single-use download links for the console's exports.
//!
//! A browser can stream a download to disk only by navigating to it, and a
//! navigation carries no `Authorization` header. Rather than put a token in
//! a URL, the console asks for a link (`POST /v1/export-links`, with its
//! token): a random id, good once, for one minute, bound to the principal
//! and the export it was checked for. Links live in this process's memory:
//! behind a load balancer, the download must reach the instance that made
//! the link (sticky sessions), or the client falls back to a plain
//! authenticated `GET /v1/export`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};

/// How long a link stays good.
pub(crate) const LINK_LIFETIME: Duration = Duration::from_secs(60);
/// Links outstanding at once; more are refused (503) until some are used or expire.
const MAX_OUTSTANDING: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Tickets {
    open: Mutex<HashMap<String, Ticket>>,
}

#[derive(Debug)]
struct Ticket {
    principal: Principal,
    query: String,
    expires: Instant,
}

impl Tickets {
    /// A new link id for `principal` to run the export `query`.
    pub(crate) fn issue(&self, principal: Principal, query: String) -> Result<String, ApiError> {
        let mut id = [0u8; 24];
        getrandom::getrandom(&mut id)
            .map_err(|e| ApiError::internal(ErrorCode::Internal, "no randomness for a download link", e))?;
        let id = hex::encode(id);
        let now = Instant::now();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, t| t.expires > now);
        if open.len() >= MAX_OUTSTANDING {
            return Err(ApiError::new(ErrorCode::Overloaded, "too many download links are outstanding; retry later"));
        }
        open.insert(id.clone(), Ticket { principal, query, expires: now + LINK_LIFETIME });
        Ok(id)
    }

    /// The principal and export of a link, which is used up by this call.
    pub(crate) fn take(&self, id: &str) -> Option<(Principal, String)> {
        let ticket = self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(id)?;
        (ticket.expires > Instant::now()).then_some((ticket.principal, ticket.query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_works_once() {
        let tickets = Tickets::default();
        let principal = Principal { key_id: None, organization_id: Some("o".into()), scopes: vec![], viewer: None };
        let id = tickets.issue(principal.clone(), "format=csv".into()).unwrap();
        assert_eq!(tickets.take(&id), Some((principal, "format=csv".to_owned())));
        assert_eq!(tickets.take(&id), None);
        assert_eq!(tickets.take("not-a-link"), None);
    }
}
