//! Times of the search APIs: the `start`/`end` parameters (RFC 3339, integer epoch nanoseconds,
//! or a duration meaning "that long before now") and the RFC 3339 rendering of nanosecond
//! timestamps. No date crate is needed for UTC civil dates; this is the days-from-civil
//! arithmetic (Howard Hinnant's) and nothing more.
//!
//! It must never guess a unit: a bare integer is always nanoseconds, as InfluxDB's default
//! precision is, and anything else that is not RFC 3339 or a unit-suffixed duration is refused.

use crate::calendar::{civil_from_days, days_from_civil};

use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::parse_duration;

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Why a time parameter was refused; the message names the parameter and the forms accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid {parameter} {value:?}: use RFC 3339 (2026-11-21T12:00:00Z), integer epoch nanoseconds, or a duration before now (15m, 1h, 2d)"
)]
pub struct TimeParamError {
    pub parameter: &'static str,
    pub value: String,
}

/// Parses a `start`/`end` value into epoch nanoseconds. `now_ns` anchors relative durations.
pub fn parse_time_param(
    parameter: &'static str,
    value: &str,
    now_ns: i64,
) -> Result<i64, TimeParamError> {
    let refuse = || TimeParamError {
        parameter,
        value: value.to_owned(),
    };
    let text = value.trim();
    if text.is_empty() {
        return Err(refuse());
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().map_err(|_| refuse());
    }
    if let Some(ns) = parse_rfc3339(text) {
        return Ok(ns);
    }
    let ago = parse_duration(text).map_err(|_| refuse())?;
    let ago = i64::try_from(ago.as_nanos()).map_err(|_| refuse())?;
    Ok(now_ns.saturating_sub(ago))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (`t`/`z` and a space separator too) into
/// epoch nanoseconds. `None` for anything else, including out-of-range fields.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut pos = 19;
    let mut fraction_ns: i64 = 0;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            if pos - start < 9 {
                fraction_ns = fraction_ns * 10 + i64::from(b[pos] - b'0');
            }
            pos += 1;
        }
        let digits = pos - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..9 {
            fraction_ns *= 10;
        }
    }
    let offset_seconds = match b.get(pos..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let minutes = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'+' { offset } else { -offset }
        }
        _ => return None,
    };
    let seconds =
        days_from_civil(year, month, day) * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second
            - offset_seconds;
    seconds
        .checked_mul(NANOS_PER_SECOND)?
        .checked_add(fraction_ns)
}

/// `2026-11-21T12:00:00.123456789Z`: always nine fraction digits, so the strings sort as the
/// times do.
pub fn format_rfc3339_nanos(ns: i64) -> String {
    let seconds = ns.div_euclid(NANOS_PER_SECOND);
    let fraction = ns.rem_euclid(NANOS_PER_SECOND);
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:09}Z",
        of_day / 3600,
        (of_day / 60) % 60,
        of_day % 60
    )
}

/// A nanosecond duration for people: `850ns`, `12.5µs`, `3.2ms`, `1.234s`, `2m3.5s`.
pub fn format_duration_ns(ns: i64) -> String {
    let abs = ns.unsigned_abs();
    let sign = if ns < 0 { "-" } else { "" };
    let text = if abs < 1_000 {
        format!("{abs}ns")
    } else if abs < 1_000_000 {
        format!("{}µs", trim_decimal(abs as f64 / 1e3))
    } else if abs < 1_000_000_000 {
        format!("{}ms", trim_decimal(abs as f64 / 1e6))
    } else if abs < 60_000_000_000 {
        format!("{}s", trim_decimal(abs as f64 / 1e9))
    } else {
        let minutes = abs / 60_000_000_000;
        let rest = abs % 60_000_000_000;
        format!("{minutes}m{}s", trim_decimal(rest as f64 / 1e9))
    };
    format!("{sign}{text}")
}

fn trim_decimal(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_through_nanoseconds() {
        for ns in [
            0,
            1_465_839_830_100_400_200,
            1_795_000_000_123_456_789,
            -1,
            951_782_400_000_000_000, // 2000-02-29
        ] {
            let text = format_rfc3339_nanos(ns);
            assert_eq!(parse_rfc3339(&text), Some(ns), "{text}");
        }
        assert_eq!(
            format_rfc3339_nanos(1_465_839_830_100_400_200),
            "2016-06-13T17:43:50.100400200Z"
        );
        assert_eq!(format_rfc3339_nanos(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn offsets_and_short_fractions_are_understood() {
        let utc = parse_rfc3339("2026-11-21T12:00:00Z");
        assert_eq!(parse_rfc3339("2026-11-21T13:30:00+01:30"), utc);
        assert_eq!(parse_rfc3339("2026-11-21 07:00:00-05:00"), utc);
        assert_eq!(
            parse_rfc3339("2026-11-21T12:00:00.5Z"),
            utc.map(|t| t + 500_000_000)
        );
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-21T12:00:00",
            "2026-11-21T12:00:00.Z",
            "2026-11-21T24:00:00Z",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn time_parameters_take_three_forms_and_name_themselves_when_wrong() {
        let now = 10 * 3_600 * NANOS_PER_SECOND;
        assert_eq!(parse_time_param("start", "123", now), Ok(123));
        assert_eq!(parse_time_param("start", "-5", now), Ok(-5));
        assert_eq!(
            parse_time_param("start", "1h", now),
            Ok(9 * 3_600 * NANOS_PER_SECOND)
        );
        assert_eq!(
            parse_time_param("end", "1970-01-01T00:00:01Z", now),
            Ok(NANOS_PER_SECOND)
        );
        let error = parse_time_param("start", "12 o'clock", now).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid start \"12 o'clock\"")
        );
        assert!(parse_time_param("end", "", now).is_err());
        assert!(parse_time_param("end", "1.5", now).is_err());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration_ns(850), "850ns");
        assert_eq!(format_duration_ns(12_500), "12.5µs");
        assert_eq!(format_duration_ns(3_200_000), "3.2ms");
        assert_eq!(format_duration_ns(1_234_000_000), "1.234s");
        assert_eq!(format_duration_ns(123_500_000_000), "2m3.5s");
        assert_eq!(format_duration_ns(0), "0ns");
    }
}
