//! Timestamp precisions of the v1 (`precision=n|ns|u|µ|us|ms|s|m|h`) and v2
//! (`precision=ns|us|ms|s`) write APIs, conversions to and from nanoseconds within InfluxDB's
//! time range, and stamping lines that arrived without a timestamp.
//!
//! Must never overflow silently: every conversion that cannot be represented returns `None`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Smallest timestamp InfluxDB 1.x stores, in nanoseconds (`models.MinNanoTime`).
pub const MIN_NANOS: i64 = i64::MIN + 2;
/// Largest timestamp InfluxDB 1.x stores, in nanoseconds (`models.MaxNanoTime`).
pub const MAX_NANOS: i64 = i64::MAX - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    #[default]
    Nanosecond,
    Microsecond,
    Millisecond,
    Second,
    Minute,
    Hour,
}

impl Precision {
    /// Parses the v1 `precision` parameter: `n|ns|u|µ|us|ms|s|m|h`; empty means nanoseconds.
    pub fn from_v1(s: &str) -> Option<Precision> {
        Some(match s {
            "" | "n" | "ns" => Precision::Nanosecond,
            "u" | "µ" | "us" => Precision::Microsecond,
            "ms" => Precision::Millisecond,
            "s" => Precision::Second,
            "m" => Precision::Minute,
            "h" => Precision::Hour,
            _ => return None,
        })
    }

    /// Parses the v2 `precision` parameter: `ns|us|ms|s`; empty means nanoseconds.
    pub fn from_v2(s: &str) -> Option<Precision> {
        Some(match s {
            "" | "ns" => Precision::Nanosecond,
            "us" => Precision::Microsecond,
            "ms" => Precision::Millisecond,
            "s" => Precision::Second,
            _ => return None,
        })
    }

    /// The v1 spelling (`n` is written `ns`), as a backend understands it.
    pub fn as_v1(self) -> &'static str {
        match self {
            Precision::Nanosecond => "ns",
            Precision::Microsecond => "u",
            Precision::Millisecond => "ms",
            Precision::Second => "s",
            Precision::Minute => "m",
            Precision::Hour => "h",
        }
    }

    pub fn nanos_per_unit(self) -> i64 {
        match self {
            Precision::Nanosecond => 1,
            Precision::Microsecond => 1_000,
            Precision::Millisecond => 1_000_000,
            Precision::Second => 1_000_000_000,
            Precision::Minute => 60_000_000_000,
            Precision::Hour => 3_600_000_000_000,
        }
    }

    /// `ts` (in this precision) as nanoseconds; `None` on overflow or outside
    /// [`MIN_NANOS`]..=[`MAX_NANOS`].
    pub fn to_nanos(self, ts: i64) -> Option<i64> {
        let ns = ts.checked_mul(self.nanos_per_unit())?;
        (MIN_NANOS..=MAX_NANOS).contains(&ns).then_some(ns)
    }

    /// Nanoseconds in this precision, truncating toward negative infinity like InfluxDB.
    pub fn from_nanos(self, ns: i64) -> i64 {
        ns.div_euclid(self.nanos_per_unit())
    }

    /// The current time in this precision.
    pub fn now(self) -> i64 {
        let ns = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(MAX_NANOS),
            Err(e) => i64::try_from(e.duration().as_nanos()).map_or(MIN_NANOS, |n| -n),
        };
        self.from_nanos(ns)
    }
}

/// Appends `line_without_ts`, a space, `ts` and a newline to `out`: how the write path stamps
/// a line that arrived without a timestamp with the receive time (in the request's precision).
pub fn write_timestamp(line_without_ts: &[u8], ts: i64, out: &mut Vec<u8>) {
    out.reserve(line_without_ts.len() + 22);
    out.extend_from_slice(line_without_ts);
    out.push(b' ');
    write_i64(ts, out);
    out.push(b'\n');
}

/// Appends the decimal form of `v` without going through `fmt`.
pub fn write_i64(v: i64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        assert_eq!(Precision::from_v1("n"), Some(Precision::Nanosecond));
        assert_eq!(Precision::from_v1("µ"), Some(Precision::Microsecond));
        assert_eq!(Precision::from_v1("h"), Some(Precision::Hour));
        assert_eq!(Precision::from_v2("m"), None);
        assert_eq!(Precision::from_v2("us"), Some(Precision::Microsecond));
        assert_eq!(Precision::from_v1("x"), None);
    }

    #[test]
    fn range_and_overflow() {
        assert_eq!(Precision::Nanosecond.to_nanos(i64::MAX), None);
        assert_eq!(Precision::Nanosecond.to_nanos(MAX_NANOS), Some(MAX_NANOS));
        assert_eq!(Precision::Nanosecond.to_nanos(i64::MIN + 1), None);
        assert_eq!(Precision::Minute.to_nanos(153_722_867_280_912_930), None);
        assert_eq!(Precision::Second.to_nanos(-2), Some(-2_000_000_000));
        assert_eq!(
            Precision::Hour.to_nanos(2_562_047),
            Some(2_562_047 * 3_600_000_000_000)
        );
    }

    #[test]
    fn from_nanos_floors() {
        assert_eq!(Precision::Second.from_nanos(1_999_999_999), 1);
        assert_eq!(Precision::Second.from_nanos(-1), -1);
    }

    #[test]
    fn stamping() {
        let mut out = Vec::new();
        write_timestamp(b"m f=1", -42, &mut out);
        write_timestamp(b"m f=2", i64::MIN, &mut out);
        assert_eq!(out, b"m f=1 -42\nm f=2 -9223372036854775808\n");
        assert!(Precision::Second.now() > 1_600_000_000);
    }
}
