//! Human-readable durations ("150ms", "10s", "5m", "1h30m", "7d") and byte sizes ("32MiB", 1048576)
//! as they appear in config files. It must never accept a bare number as a duration: a plain `10`
//! could mean seconds or milliseconds, and guessing wrong silently changes an alerting window.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is empty.
    #[error("empty duration: expected e.g. \"150ms\", \"10s\", \"5m\", \"1h30m\"")]
    Empty,
    /// The text is not a sequence of `<integer><unit>` parts.
    #[error(
        "invalid duration {0:?}: expected integers with units ms, s, m, h, d or w, e.g. \"150ms\", \"10m\", \"1h30m\""
    )]
    Invalid(String),
    /// The value does not fit a `Duration`.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
];

/// Parses `<integer><unit>` parts, summed: `"150ms"`, `"10s"`, `"1h30m"`, `"7d"`. Units: `ms`, `s`,
/// `m`, `h`, `d`, `w`. Millisecond resolution; no fractions, no bare numbers, no spaces.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let invalid = || DurationError::Invalid(text.to_owned());
    let overflow = || DurationError::Overflow(text.to_owned());
    let bytes = text.as_bytes();
    let mut total_ms: u64 = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        let digits_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == digits_start {
            return Err(invalid());
        }
        let number: u64 = text[digits_start..pos].parse().map_err(|_| overflow())?;
        let unit_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &text[unit_start..pos];
        let &(_, factor) = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .ok_or_else(invalid)?;
        let part = number.checked_mul(factor).ok_or_else(overflow)?;
        total_ms = total_ms.checked_add(part).ok_or_else(overflow)?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Renders a duration the way [`parse_duration`] reads it, largest units first: `1h30m`, `150ms`,
/// `0s`. Sub-millisecond parts are dropped (config durations have millisecond resolution).
pub fn format_duration(duration: Duration) -> String {
    let mut remaining = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if remaining == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for &(name, factor) in UNITS.iter().rev() {
        if remaining >= factor {
            out.push_str(&(remaining / factor).to_string());
            out.push_str(name);
            remaining %= factor;
        }
    }
    out
}

/// A [`Duration`] written in a config file as a human string such as `"10m"` (see
/// [`parse_duration`]). Serialises back to the same notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Builds from milliseconds (for defaults).
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    /// Builds from seconds (for defaults).
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// The duration itself.
    pub const fn get(self) -> Duration {
        self.0
    }

    /// True for `0s`/`0ms`.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = DurationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_duration(text).map(Self)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"150ms\", \"10s\", \"5m\" or \"1h30m\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
                parse_duration(text).map(HumanDuration).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

/// Why a byte size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ByteSizeError {
    /// Not `<integer>[unit]`.
    #[error(
        "invalid byte size {0:?}: expected an integer with an optional unit B, KB, MB, GB, KiB, MiB or GiB, e.g. \"32MiB\""
    )]
    Invalid(String),
    /// Does not fit in 64 bits.
    #[error("byte size {0:?} is too large")]
    Overflow(String),
}

/// Parses `"1048576"`, `"512KiB"`, `"32MiB"`, `"1GiB"`, `"10MB"` (decimal units are powers of 1000,
/// binary units powers of 1024; case-insensitive; an optional space before the unit).
pub fn parse_byte_size(text: &str) -> Result<u64, ByteSizeError> {
    let invalid = || ByteSizeError::Invalid(text.to_owned());
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits_end == 0 {
        return Err(invalid());
    }
    let number: u64 = text[..digits_end]
        .parse()
        .map_err(|_| ByteSizeError::Overflow(text.to_owned()))?;
    let unit = text[digits_end..].trim_start().to_ascii_lowercase();
    let factor: u64 = match unit.as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| ByteSizeError::Overflow(text.to_owned()))
}

/// A byte count written as an integer or a string with a unit (`32MiB`). Serialises as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` mebibytes (for defaults).
    pub const fn mib(n: u64) -> Self {
        Self(n << 20)
    }

    /// The byte count.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
            if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
                return write!(f, "{}{unit}", bytes >> shift);
            }
        }
        write!(f, "{bytes}B")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size such as 1048576 or \"32MiB\"")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(value))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ByteSize, E> {
                u64::try_from(value)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("byte size {value} is negative")))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                parse_byte_size(text).map(ByteSize).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_every_unit() {
        assert_eq!(parse_duration("150ms"), Ok(Duration::from_millis(150)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1w"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_without_units_or_with_junk_are_refused() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        for bad in ["10", "m", "1.5h", "10 s", "5mins", "-1s", "1h 30m", "ms10"] {
            assert_eq!(
                parse_duration(bad),
                Err(DurationError::Invalid(bad.to_owned())),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_duration("99999999999999999999w"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn durations_format_back_to_what_they_parse_from() {
        for text in [
            "150ms",
            "10s",
            "5m",
            "1h30m",
            "2d",
            "1w",
            "1d1h1m1s1ms",
            "0s",
        ] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(format_duration(parsed), text);
        }
    }

    #[test]
    fn byte_sizes_parse_decimal_and_binary_units() {
        assert_eq!(parse_byte_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_byte_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_byte_size("32 mib"), Ok(32 << 20));
        assert_eq!(parse_byte_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_byte_size("1GiB"), Ok(1 << 30));
        assert!(parse_byte_size("MiB").is_err());
        assert!(parse_byte_size("12 parsecs").is_err());
        assert_eq!(ByteSize::mib(32).to_string(), "32MiB");
    }
}
