//! Reading back RFC 3339 timestamps with milliseconds in UTC (`2026-11-21T12:00:00.000Z`), the
//! form `calendar::rfc3339_ms` writes for the alert wire shape and the hosts API. Pure arithmetic on the proleptic Gregorian calendar (no
//! time zone database): it must never depend on the local time zone.

use crate::calendar::days_from_civil;

/// Parses what [`crate::calendar::rfc3339_ms`] writes (also without milliseconds); None for anything else.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.ends_with('Z') {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let millis = match text.get(19..text.len() - 1)? {
        "" => 0,
        fraction => {
            let digits = fraction.strip_prefix('.')?;
            let padded = format!("{digits:0<3}");
            padded.get(..3)?.parse::<i64>().ok()?
        }
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    u64::try_from(secs * 1000 + millis).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::rfc3339_ms;

    #[test]
    fn formats_and_parses_back() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // 2026-11-21T12:00:00.123Z
        let ms = 1_795_262_400_123;
        assert_eq!(rfc3339_ms(ms), "2026-11-21T12:00:00.123Z");
        assert_eq!(parse_rfc3339_ms("2026-11-21T12:00:00.123Z"), Some(ms));
        assert_eq!(parse_rfc3339_ms("2026-11-21T12:00:00Z"), Some(ms - 123));
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T00:00:00.000Z")
                .map(rfc3339_ms)
                .as_deref(),
            Some("2024-02-29T00:00:00.000Z")
        );
        assert_eq!(parse_rfc3339_ms("garbage"), None);
    }
}
