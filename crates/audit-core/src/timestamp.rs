//! Timestamps: microseconds since the Unix epoch, written as RFC 3339 UTC
//! with exactly six fractional digits and `Z` (`2026-11-28T06:46:34.123456Z`).

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// An instant with microsecond precision. Ordered; the log never lets its
/// timestamps decrease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A text that is not an RFC 3339 date-time we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 date-time (e.g. 2026-11-28T06:46:34.123456Z): {0}")]
pub struct TimestampParseError(String);

impl Timestamp {
    /// From microseconds since 1970-01-01T00:00:00Z.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since 1970-01-01T00:00:00Z.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (floor).
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// This instant moved by `micros` (saturating).
    pub fn add_micros(self, micros: i64) -> Self {
        Timestamp(self.0.saturating_add(micros))
    }

    /// Parses any RFC 3339 date-time (any offset, any number of fractional
    /// digits) and normalises it to UTC; digits past the microsecond are
    /// truncated (toward the past).
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimestampParseError> {
        let dt = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| TimestampParseError(e.to_string()))?;
        let nanos = dt.unix_timestamp_nanos();
        let micros = nanos.div_euclid(1_000);
        i64::try_from(micros)
            .map(Timestamp)
            .map_err(|_| TimestampParseError("out of range".into()))
    }

    /// Parses the stored form only: UTC, exactly six fractional digits, `Z`.
    pub fn parse_stored(text: &str) -> Result<Self, TimestampParseError> {
        let ts = Self::parse_rfc3339(text)?;
        if ts.to_string() != text {
            return Err(TimestampParseError(format!(
                "{text:?} is not in the stored form {ts}"
            )));
        }
        Ok(ts)
    }

    fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .to_offset(UtcOffset::UTC)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dt = self.to_datetime();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.microsecond()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_six_digits_and_z() {
        let ts = Timestamp::parse_rfc3339("2026-11-28T06:46:34.123456Z").unwrap();
        assert_eq!(ts.to_string(), "2026-11-28T06:46:34.123456Z");
        assert_eq!(
            Timestamp::from_micros(0).to_string(),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn normalises_offsets_and_truncates_nanoseconds() {
        let ts = Timestamp::parse_rfc3339("2026-11-28T07:46:34.1234569+01:00").unwrap();
        assert_eq!(ts.to_string(), "2026-11-28T06:46:34.123456Z");
        let ts = Timestamp::parse_rfc3339("2026-11-28T06:46:34Z").unwrap();
        assert_eq!(ts.to_string(), "2026-11-28T06:46:34.000000Z");
    }

    #[test]
    fn stored_form_is_strict() {
        assert!(Timestamp::parse_stored("2026-11-28T06:46:34.123456Z").is_ok());
        assert!(Timestamp::parse_stored("2026-11-28T06:46:34.123Z").is_err());
        assert!(Timestamp::parse_stored("2026-11-28T07:46:34.123456+01:00").is_err());
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }
}
