//! Time formatting as InfluxDB's Go code does it: RFC 3339 with nanoseconds and trailing zeros
//! trimmed (`time.RFC3339Nano`), and epoch integers in a unit. It never rounds a timestamp.

use crate::calendar::civil_from_days;

/// `2026-11-21T12:00:00.5Z` for nanoseconds since the epoch (UTC).
pub fn format_rfc3339_nanos(nanos: i64) -> String {
    let seconds = nanos.div_euclid(1_000_000_000);
    let fraction = nanos.rem_euclid(1_000_000_000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        (of_day / 60) % 60,
        of_day % 60
    );
    if fraction != 0 {
        let digits = format!("{fraction:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Nanoseconds to an integer count of `unit` (Go's integer division truncates toward zero).
pub fn scale_epoch(nanos: i64, unit: i64) -> i64 {
    if unit <= 1 { nanos } else { nanos / unit }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_like_go() {
        assert_eq!(format_rfc3339_nanos(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339_nanos(1_700_000_000_500_000_000),
            "2023-11-14T22:13:20.5Z"
        );
        assert_eq!(format_rfc3339_nanos(1), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(format_rfc3339_nanos(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(
            format_rfc3339_nanos(951_782_400_000_000_000),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn epoch_units() {
        assert_eq!(scale_epoch(1_999_999_999, 1_000_000_000), 1);
        assert_eq!(scale_epoch(5, 1), 5);
    }
}
