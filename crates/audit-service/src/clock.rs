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

/// A clock that stays where it is set: for tests and for writing logs "as
/// of" another time (a benchmark's or a migration's).
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock reading `micros` since the Unix epoch.
    pub fn at_micros(micros: i64) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(micros))
    }

    /// Sets it to `micros` since the Unix epoch.
    pub fn set_micros(&self, micros: i64) {
        self.0.store(micros, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves it by `micros` (negative: back).
    pub fn advance_micros(&self, micros: i64) {
        self.0.fetch_add(micros, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}
