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
        let dt = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| TimestampParseError(e.to_string()))?;
        let nanos = dt.unix_timestamp_nanos();
        let micros = nanos.div_euclid(1_000);
        i64::try_from(micros).map(Timestamp).map_err(|_| TimestampParseError("out of range".into()))
    }

    /// Parses the stored form only: UTC, exactly six fractional digits, `Z`.
    ///
    /// Hot in verification, so it reads the fixed layout directly instead of
    /// going through a general RFC 3339 parser.
    pub fn parse_stored(text: &str) -> Result<Self, TimestampParseError> {
        let not_stored =
            || TimestampParseError(format!("{text:?} is not in the stored form YYYY-MM-DDTHH:MM:SS.ffffffZ"));
        let b = text.as_bytes();
        if b.len() != 27
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'.'
            || b[26] != b'Z'
        {
            return Err(not_stored());
        }
        let num = |from: usize, to: usize| -> Option<i64> {
            b[from..to].iter().try_fold(0i64, |acc, c| c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0')))
        };
        let field = |from, to| num(from, to).ok_or_else(not_stored);
        let (year, month, day) = (field(0, 4)?, field(5, 7)?, field(8, 10)?);
        let (hour, minute, second, micros) = (field(11, 13)?, field(14, 16)?, field(17, 19)?, field(20, 26)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(not_stored());
        }
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
        Ok(Timestamp(secs * 1_000_000 + micros))
    }

    /// Appends the stored form (as [`fmt::Display`] writes it) to `out`.
    /// Hot in sealing and CSV export, so it writes the digits directly.
    pub fn write_to(self, out: &mut Vec<u8>) {
        match self.stored_form() {
            Some(text) => out.extend_from_slice(&text),
            None => out.extend_from_slice(self.fmt_by_time().as_bytes()),
        }
    }

    /// The stored form's 27 bytes, for the years 0000–9999 (every instant
    /// a log can hold is far inside them); `None` outside.
    fn stored_form(self) -> Option<[u8; 27]> {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        if !(0..=9999).contains(&year) {
            return None;
        }
        let in_day = secs.rem_euclid(86_400);
        let mut b = *b"0000-00-00T00:00:00.000000Z";
        let mut digits = |at: usize, width: usize, mut n: i64| {
            for digit in b[at..at + width].iter_mut().rev() {
                *digit = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        digits(0, 4, year);
        digits(5, 2, month);
        digits(8, 2, day);
        digits(11, 2, in_day / 3600);
        digits(14, 2, in_day / 60 % 60);
        digits(17, 2, in_day % 60);
        digits(20, 6, micros);
        Some(b)
    }

    /// The stored form through the `time` crate, for any year.
    fn fmt_by_time(self) -> String {
        let dt = self.to_datetime();
        format!(
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

    fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .to_offset(UtcOffset::UTC)
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number since 1970-01-01 (the
/// inverse of [`days_from_civil`], from the same source).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.stored_form() {
            // The stored form is ASCII.
            Some(text) => f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?),
            None => f.write_str(&self.fmt_by_time()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_six_digits_and_z() {
        let ts = Timestamp::parse_rfc3339("2026-11-28T06:46:34.123456Z").unwrap();
        assert_eq!(ts.to_string(), "2026-11-28T06:46:34.123456Z");
        assert_eq!(Timestamp::from_micros(0).to_string(), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn normalises_offsets_and_truncates_nanoseconds() {
        let ts = Timestamp::parse_rfc3339("2026-11-28T07:46:34.1234569+01:00").unwrap();
        assert_eq!(ts.to_string(), "2026-11-28T06:46:34.123456Z");
        let ts = Timestamp::parse_rfc3339("2026-11-28T06:46:34Z").unwrap();
        assert_eq!(ts.to_string(), "2026-11-28T06:46:34.000000Z");
    }

    /// The fixed-layout parser accepts exactly what the general parser
    /// accepts and prints back unchanged.
    #[test]
    fn fast_stored_parser_matches_the_general_one() {
        let slow = |t: &str| Timestamp::parse_rfc3339(t).ok().filter(|ts| ts.to_string() == t);
        let mut cases = vec![
            "2026-02-29T00:00:00.000000Z".to_owned(),
            "2024-02-29T23:59:59.999999Z".into(),
            "1970-01-01T00:00:00.000000Z".into(),
            "1969-12-31T23:59:59.999999Z".into(),
            "2000-02-29T12:00:00.000000Z".into(),
            "1900-02-29T12:00:00.000000Z".into(),
            "2026-11-31T00:00:00.000000Z".into(),
            "2026-12-31T23:59:60.000000Z".into(),
            "2026-13-01T00:00:00.000000Z".into(),
            "2026-00-01T00:00:00.000000Z".into(),
            "2026-01-00T00:00:00.000000Z".into(),
            "2026-01-01T24:00:00.000000Z".into(),
            "2026-01-01t00:00:00.000000Z".into(),
            "2026-01-01T00:00:00.000000z".into(),
            "2026-01-01T00:00:00.00000+Z".into(),
            "0001-01-01T00:00:00.000000Z".into(),
            "9999-12-31T23:59:59.999999Z".into(),
        ];
        // Every day boundary of four years, including a leap year.
        for day in 0..(4 * 366) {
            cases.push(Timestamp::from_micros(1_704_067_200_000_000 + day * 86_400_000_000 - 1).to_string());
        }
        for c in &cases {
            assert_eq!(Timestamp::parse_stored(c).ok(), slow(c), "{c}");
        }
    }

    /// The direct writer prints what the `time` crate prints, across the
    /// years it covers and at both of their edges, and reads back.
    #[test]
    fn written_directly_as_the_time_crate_writes_it() {
        let year_0 = -62_167_219_200_000_000i64; // 0000-01-01T00:00:00Z
        let year_10000 = 253_402_300_800_000_000i64; // 10000-01-01T00:00:00Z
        let mut instants = vec![year_0, year_0 - 1, year_10000 - 1, year_10000, 0, -1, 1];
        // A fixed linear-congruential walk: reproducible, spread over the range.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..100_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            instants.push(year_0 + (x % (year_10000 - year_0) as u64) as i64);
        }
        for micros in instants {
            let t = Timestamp::from_micros(micros);
            let mut direct = Vec::new();
            t.write_to(&mut direct);
            let direct = String::from_utf8(direct).unwrap();
            assert_eq!(direct, t.fmt_by_time(), "{micros}");
            assert_eq!(t.to_string(), direct);
            if (year_0..year_10000).contains(&micros) {
                assert_eq!(Timestamp::parse_stored(&direct), Ok(t), "{direct}");
            } else {
                assert!(t.stored_form().is_none(), "{direct}");
            }
        }
    }

    #[test]
    fn stored_form_is_strict() {
        assert!(Timestamp::parse_stored("2026-11-28T06:46:34.123456Z").is_ok());
        assert!(Timestamp::parse_stored("2026-11-28T06:46:34.123Z").is_err());
        assert!(Timestamp::parse_stored("2026-11-28T07:46:34.123456+01:00").is_err());
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }
}
