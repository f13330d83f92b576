//! The v1 handlers, one module per resource. Each one: authenticate, check
//! the scope, resolve the organization (another organization is a 404), do
//! the work through the service, answer a typed body (`crate::body`). Reads
//! of the log are themselves audited.

pub(crate) mod console;
pub(crate) mod events;
pub(crate) mod export;
pub(crate) mod health;
pub(crate) mod integrity;
pub(crate) mod params;
pub(crate) mod retention;
pub(crate) mod subjects;
pub(crate) mod tiles;

/// Most events in one request.
pub const MAX_BATCH_EVENTS: usize = 1000;
/// Largest request body.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
