//! Reading the RFC 3339 timestamps clients send to the alert APIs (`Z` or an offset, any
//! fraction) as milliseconds since the Unix epoch; writing them is `calendar::rfc3339_ms`.
//!
//! It must never panic on client text: every malformed timestamp is an `Err`, and times before
//! the epoch are refused rather than wrapped.

use crate::calendar::days_from_civil;

/// Parses RFC 3339 (`Z` or a `±HH:MM` offset, any number of fraction digits) into milliseconds
/// since the epoch. Go's zero time (`0001-01-01T00:00:00Z`, what Alertmanager clients send for
/// "unset") and anything before the epoch are refused: callers treat the field as absent.
pub fn parse_rfc3339_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not an RFC 3339 time such as 2026-11-21T12:00:00.000Z");
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return Err(bad());
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = text.get(range).ok_or_else(bad)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse::<i64>().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let mut scaled = 0i64;
        for (position, digit) in fraction.bytes().take(3).enumerate() {
            if position < digits {
                scaled = scaled * 10 + i64::from(digit - b'0');
            }
        }
        for _ in digits.min(3)..3 {
            scaled *= 10;
        }
        millis = scaled;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && &rest[3..4] == ":" =>
        {
            let hours = rest[1..3].parse::<i64>().map_err(|_| bad())?;
            let minutes = rest[4..6].parse::<i64>().map_err(|_| bad())?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (hours * 60 + minutes)
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    let total =
        ((days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60) * 1000)
            + millis;
    u64::try_from(total).map_err(|_| format!("{text:?} is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_offsets() {
        let ms = parse_rfc3339_ms("2026-11-21T12:00:00.000Z").unwrap();
        assert_eq!(crate::calendar::rfc3339_ms(ms), "2026-11-21T12:00:00.000Z");
        assert_eq!(parse_rfc3339_ms("2026-11-21T13:00:00+01:00").unwrap(), ms);
        assert_eq!(
            parse_rfc3339_ms("2026-11-21T12:00:00.123456789Z").unwrap(),
            ms + 123
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-21T12:00:00.5Z").unwrap(),
            ms + 500
        );
        assert_eq!(crate::calendar::rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T00:00:00Z")
                .map(crate::calendar::rfc3339_ms)
                .unwrap(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn refuses_garbage_and_go_zero_time() {
        for text in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-21 12:00",
            "0001-01-01T00:00:00Z",
            "2026-11-21T12:00:00.Z",
        ] {
            assert!(parse_rfc3339_ms(text).is_err(), "{text}");
        }
    }
}
