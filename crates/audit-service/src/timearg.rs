//! Time arguments, the same for the CLI's `--since`/`--until` and the API's
//! `start_time`/`end_time`: RFC 3339, a date (`2026-11-01`, midnight UTC), or a
//! duration back from now (`7d`, `24h`, `30m`, `90s`, `1h 30m`: anything
//! `humantime` reads).

use audit_core::Timestamp;

/// Parses a `--since`/`--until` value relative to `now`.
pub fn parse(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Ok(ts) = Timestamp::parse_rfc3339(text) {
        return Ok(ts);
    }
    if text.len() == 10
        && let Ok(ts) = Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z"))
    {
        return Ok(ts);
    }
    match humantime::parse_duration(text.trim()) {
        Ok(d) => {
            let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
            Ok(now.add_micros(-micros))
        }
        Err(_) => Err(format!(
            "{text:?} is not a time: use RFC 3339 (2026-11-28T06:00:00Z), a date (2026-11-28) or a duration (7d, 24h, 30m)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_three_forms() {
        let now = Timestamp::parse_rfc3339("2026-11-28T12:00:00Z").unwrap();
        assert_eq!(parse("7d", now).unwrap().to_string(), "2026-11-21T12:00:00.000000Z");
        assert_eq!(parse("30m", now).unwrap().to_string(), "2026-11-28T11:30:00.000000Z");
        assert_eq!(parse("2026-11-01", now).unwrap().to_string(), "2026-11-01T00:00:00.000000Z");
        assert_eq!(parse("2026-11-01T05:00:00+01:00", now).unwrap().to_string(), "2026-11-01T04:00:00.000000Z");
        assert!(parse("soon", now).is_err());
        assert!(parse("7x", now).is_err());
        // Not ASCII, not a panic.
        assert!(parse("ü", now).is_err());
        assert!(parse("7ü", now).is_err());
        assert_eq!(parse("1h 30m", now).unwrap().to_string(), "2026-11-28T10:30:00.000000Z");
    }
}
