//! Backslash escaping of line-protocol tokens: lazy unescaping of borrowed tokens and escaping
//! for serialisation.
//!
//! The unescaping rules are InfluxDB 1.x's (the backend stores what it unescapes), see
//! `proto-spec/README.md`. Must never allocate for a token without escapes.

use std::borrow::Cow;

/// Which escaping rules apply to a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// `\,`, `\ ` and (as InfluxDB 1.x unescapes them) `\=` and `\"`.
    Measurement,
    /// Tag keys and tag values: `\,`, `\=` and `\ `.
    Tag,
    /// Field keys: `\,`, `\=`, `\ ` and (as InfluxDB 1.x unescapes it) `\"`.
    FieldKey,
    /// String field values (without the quotes): `\\` and `\"`; any other backslash is literal.
    StringField,
}

impl Context {
    #[inline]
    pub(crate) fn is_escapable(self, b: u8) -> bool {
        match self {
            Context::Measurement => matches!(b, b',' | b' ' | b'=' | b'"'),
            Context::Tag => matches!(b, b',' | b'=' | b' '),
            Context::FieldKey => matches!(b, b',' | b'=' | b' ' | b'"'),
            Context::StringField => matches!(b, b'\\' | b'"'),
        }
    }

    /// Whether a backslash followed by `next` hides `next` from the search for the token's end.
    /// InfluxDB 1.x scans the field section in pairs (a backslash hides whatever byte follows,
    /// so `a\\ b` ends after the second backslash), but the measurement and the tags byte by
    /// byte (a separator is hidden when the byte before it is a backslash, so `a\\ b` is one
    /// token). Control characters are never hidden: they end the token, and the line is refused.
    #[inline(always)]
    pub(crate) fn hides(self, next: u8) -> bool {
        match self {
            Context::FieldKey | Context::StringField => next >= 0x20 && next != 0x7f,
            _ => self.is_escapable(next),
        }
    }
}

/// A key, tag value, measurement or string field as it appears in the body, plus whether it
/// contains backslash escapes. Always valid UTF-8 once the line was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Escaped<'a> {
    raw: &'a [u8],
    escaped: bool,
    context: Context,
}

impl<'a> Escaped<'a> {
    /// Wraps raw token bytes; `has_escapes` may be a conservative "contains a backslash".
    pub fn new(raw: &'a [u8], context: Context) -> Self {
        Escaped {
            raw,
            escaped: memchr::memchr(b'\\', raw).is_some(),
            context,
        }
    }

    #[inline]
    pub(crate) fn from_parts(raw: &'a [u8], escaped: bool, context: Context) -> Self {
        Escaped {
            raw,
            escaped,
            context,
        }
    }

    /// Bytes as written, escapes included.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether the token contains a backslash (an escape may follow it).
    #[inline]
    pub fn has_escapes(&self) -> bool {
        self.escaped
    }

    pub fn context(&self) -> Context {
        self.context
    }

    /// The token with escapes removed; borrowed when there is nothing to remove.
    #[inline]
    pub fn unescaped(&self) -> Cow<'a, [u8]> {
        if !self.escaped {
            return Cow::Borrowed(self.raw);
        }
        unescape(self.raw, self.context)
    }

    /// Same as [`Escaped::unescaped`], as text. Accepted lines are valid UTF-8; anything else is
    /// replaced with U+FFFD rather than failing.
    pub fn as_str(&self) -> Cow<'a, str> {
        match self.unescaped() {
            Cow::Borrowed(b) => String::from_utf8_lossy(b),
            Cow::Owned(v) => match String::from_utf8(v) {
                Ok(s) => Cow::Owned(s),
                Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
            },
        }
    }

    /// Compares the unescaped token with `other` without allocating.
    #[inline]
    pub fn eq_unescaped(&self, other: &[u8]) -> bool {
        if !self.escaped {
            return self.raw == other;
        }
        eq_unescaped_slow(self.raw, self.context, other)
    }
}

fn eq_unescaped_slow(raw: &[u8], context: Context, other: &[u8]) -> bool {
    let mut rest = other;
    let mut i = 0;
    while i < raw.len() {
        let mut b = raw[i];
        if b == b'\\' && i + 1 < raw.len() && context.is_escapable(raw[i + 1]) {
            i += 1;
            b = raw[i];
        }
        match rest.split_first() {
            Some((&o, tail)) if o == b => rest = tail,
            _ => return false,
        }
        i += 1;
    }
    rest.is_empty()
}

fn unescape(raw: &[u8], context: Context) -> Cow<'_, [u8]> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'\\' && i + 1 < raw.len() && context.is_escapable(raw[i + 1]) {
            out.push(raw[i + 1]);
            i += 2;
        } else {
            out.push(b);
            i += 1;
        }
    }
    if out.len() == raw.len() {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(out)
    }
}

fn escape_with(s: &str, out: &mut Vec<u8>, needs: impl Fn(u8) -> bool) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len());
    for &b in bytes {
        if needs(b) {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// Escapes a measurement name (`,`, space and `=`, which InfluxDB 1.x unescapes).
pub fn escape_measurement(s: &str, out: &mut Vec<u8>) {
    escape_with(s, out, |b| matches!(b, b',' | b' ' | b'='))
}

/// Escapes a tag key or tag value (`,`, `=` and space).
pub fn escape_key(s: &str, out: &mut Vec<u8>) {
    escape_with(s, out, |b| matches!(b, b',' | b'=' | b' '))
}

/// Escapes a field key (`,`, `=`, space and `"`, which InfluxDB 1.x unescapes in field keys).
pub fn escape_field_key(s: &str, out: &mut Vec<u8>) {
    escape_with(s, out, |b| matches!(b, b',' | b'=' | b' ' | b'"'))
}

/// Escapes a string field value (`\` and `"`), without the surrounding quotes.
pub fn escape_string_field(s: &str, out: &mut Vec<u8>) {
    escape_with(s, out, |b| matches!(b, b'\\' | b'"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_without_escapes() {
        let e = Escaped::new(b"cpu", Context::Measurement);
        assert!(matches!(e.unescaped(), Cow::Borrowed(b"cpu")));
    }

    #[test]
    fn tag_escapes_and_literal_backslash() {
        let e = Escaped::new(br"a\,b\=c\ d\x", Context::Tag);
        assert_eq!(&*e.unescaped(), br"a,b=c d\x");
        assert!(e.eq_unescaped(br"a,b=c d\x"));
        assert!(!e.eq_unescaped(br"a,b=c d\"));
    }

    #[test]
    fn double_backslash_before_comma_keeps_one() {
        let e = Escaped::new(br"a\\,b", Context::Tag);
        assert_eq!(&*e.unescaped(), br"a\,b");
    }

    #[test]
    fn string_field_rules_are_influxdb_1x() {
        let e = Escaped::new(br#"a\"b\\c\nd"#, Context::StringField);
        assert_eq!(&*e.unescaped(), br#"a"b\c\nd"#);
    }

    #[test]
    fn escaping_round_trips() {
        let mut out = Vec::new();
        escape_key("a b,c=d", &mut out);
        assert_eq!(out, br"a\ b\,c\=d");
        out.clear();
        escape_string_field(r#"say "hi" \o/"#, &mut out);
        assert_eq!(out, br#"say \"hi\" \\o/"#);
        out.clear();
        escape_measurement("m 1,2=3", &mut out);
        assert_eq!(out, br"m\ 1\,2\=3");
        out.clear();
        escape_field_key(r#"a"b"#, &mut out);
        assert_eq!(out, br#"a\"b"#);
    }
}
