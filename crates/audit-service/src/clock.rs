//! Time is injected so that tests can control it.

use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};

use audit_core::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_micros() as i64,
            Err(before) => -(before.duration().as_micros() as i64),
        };
        Timestamp::from_micros(micros)
    }
}
