//! The tokens of InfluxQL as nom 8 parsers over `&str`: blanks and comments, keywords,
//! identifiers (bare and double-quoted), string literals, numbers, durations, regexes and bound
//! parameters. Each parser skips the blanks before its token, so the grammar in `parser.rs`
//! reads as a sequence of tokens. It must never accept a reserved keyword as a bare identifier
//! (that is how `SELECT x FROM` stays unambiguous) and never unescape differently from InfluxDB.

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while, take_while1};
use nom::character::complete::{char, digit1, satisfy};
use nom::combinator::{opt, recognize};
use nom::error::{ErrorKind, ParseError};
use nom::sequence::pair;
use nom::{IResult, Parser};

/// A parse failure: where it happened and what was expected there.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError<'a> {
    pub input: &'a str,
    pub expected: &'static str,
}

impl<'a> ParseError<&'a str> for SyntaxError<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        SyntaxError {
            input,
            expected: "",
        }
    }

    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }

    /// Of two alternatives, the one that got further explains the failure best.
    fn or(self, other: Self) -> Self {
        if other.input.len() < self.input.len() {
            other
        } else if self.input.len() < other.input.len() || self.expected.is_empty() {
            if self.input.len() == other.input.len() && !other.expected.is_empty() {
                other
            } else {
                self
            }
        } else {
            self
        }
    }
}

pub type PResult<'a, T> = IResult<&'a str, T, SyntaxError<'a>>;

/// Fails at `input` saying `expected`.
pub fn fail<'a, T>(input: &'a str, expected: &'static str) -> PResult<'a, T> {
    Err(nom::Err::Error(SyntaxError { input, expected }))
}

/// Runs `parser` and, when it fails without consuming anything meaningful, names what was
/// expected.
pub fn expect<'a, T>(
    mut parser: impl Parser<&'a str, Output = T, Error = SyntaxError<'a>>,
    expected: &'static str,
) -> impl FnMut(&'a str) -> PResult<'a, T> {
    move |input: &'a str| match parser.parse(input) {
        Err(nom::Err::Error(mut e)) => {
            let start = skip_blanks(input);
            if e.expected.is_empty() || e.input.len() >= start.len() {
                e.expected = expected;
                e.input = start;
            }
            Err(nom::Err::Error(e))
        }
        other => other,
    }
}

/// Blanks and comments (`-- ...` to end of line, `/* ... */`).
pub fn skip_blanks(mut input: &str) -> &str {
    loop {
        let trimmed = input.trim_start();
        if let Some(rest) = trimmed.strip_prefix("--") {
            input = rest.find('\n').map_or("", |at| &rest[at + 1..]);
        } else if let Some(rest) = trimmed.strip_prefix("/*") {
            input = rest.find("*/").map_or("", |at| &rest[at + 2..]);
        } else {
            return trimmed;
        }
    }
}

pub fn ws(input: &str) -> PResult<'_, ()> {
    Ok((skip_blanks(input), ()))
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A keyword, case-insensitively, not followed by an identifier character.
pub fn keyword<'a>(word: &'static str) -> impl FnMut(&'a str) -> PResult<'a, &'a str> {
    move |input: &'a str| {
        let start = skip_blanks(input);
        let result: PResult<'a, &'a str> = tag_no_case(word).parse(start);
        match result {
            Ok((rest, matched)) if !rest.starts_with(is_ident_char) => Ok((rest, matched)),
            _ => fail(start, word),
        }
    }
}

/// A punctuation symbol such as `(`, `,`, `=~`.
pub fn symbol<'a>(text: &'static str) -> impl FnMut(&'a str) -> PResult<'a, &'a str> {
    move |input: &'a str| {
        let start = skip_blanks(input);
        match tag::<_, _, SyntaxError<'a>>(text).parse(start) {
            Ok(ok) => Ok(ok),
            Err(_) => fail(start, text),
        }
    }
}

/// Words InfluxQL reserves: they are identifiers only when double-quoted.
const RESERVED: &[&str] = &[
    "ALL",
    "ALTER",
    "ANALYZE",
    "ANY",
    "AS",
    "ASC",
    "BEGIN",
    "BY",
    "CARDINALITY",
    "CREATE",
    "CONTINUOUS",
    "DATABASE",
    "DATABASES",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DESTINATIONS",
    "DIAGNOSTICS",
    "DISTINCT",
    "DROP",
    "DURATION",
    "END",
    "EVERY",
    "EXACT",
    "EXPLAIN",
    "FIELD",
    "FOR",
    "FROM",
    "GRANT",
    "GRANTS",
    "GROUP",
    "GROUPS",
    "IN",
    "INF",
    "INSERT",
    "INTO",
    "KEY",
    "KEYS",
    "KILL",
    "LIMIT",
    "MEASUREMENT",
    "MEASUREMENTS",
    "NAME",
    "OFFSET",
    "ON",
    "ORDER",
    "PASSWORD",
    "POLICY",
    "POLICIES",
    "PRIVILEGES",
    "QUERIES",
    "QUERY",
    "READ",
    "REPLICATION",
    "RESAMPLE",
    "RETENTION",
    "REVOKE",
    "SELECT",
    "SERIES",
    "SET",
    "SHARD",
    "SHARDS",
    "SLIMIT",
    "SOFFSET",
    "STATS",
    "SUBSCRIPTION",
    "SUBSCRIPTIONS",
    "TAG",
    "TO",
    "USER",
    "USERS",
    "VALUES",
    "WHERE",
    "WITH",
    "WRITE",
    "AND",
    "OR",
    "FILL",
];

pub fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

fn bare_word(input: &str) -> PResult<'_, &str> {
    recognize(pair(satisfy(is_ident_start), take_while(is_ident_char))).parse(input)
}

/// A bare word that is not reserved, or a double-quoted identifier (unescaped).
pub fn identifier(input: &str) -> PResult<'_, String> {
    let start = skip_blanks(input);
    if start.starts_with('"') {
        return quoted(start, '"');
    }
    match bare_word(start) {
        Ok((rest, word)) if !is_reserved(word) => Ok((rest, word.to_owned())),
        _ => fail(start, "identifier"),
    }
}

/// Any bare word including reserved ones (function names, `time`, `fill` arguments).
pub fn any_word(input: &str) -> PResult<'_, &str> {
    let start = skip_blanks(input);
    bare_word(start).or_else(|_: nom::Err<SyntaxError<'_>>| fail(start, "identifier"))
}

/// `'...'` with `\'` and `\\` escapes (InfluxQL keeps other backslashes as they are).
pub fn string_literal(input: &str) -> PResult<'_, String> {
    let start = skip_blanks(input);
    if !start.starts_with('\'') {
        return fail(start, "string");
    }
    quoted(start, '\'')
}

fn quoted(input: &str, quote: char) -> PResult<'_, String> {
    let mut out = String::new();
    let mut chars = input.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some((_, next)) if next == quote || next == '\\' => out.push(next),
                Some((_, 'n')) => out.push('\n'),
                Some((_, next)) => {
                    out.push('\\');
                    out.push(next);
                }
                None => break,
            }
        } else if c == quote {
            return Ok((&input[at + c.len_utf8()..], out));
        } else if c == '\n' && quote == '\'' {
            break;
        } else {
            out.push(c);
        }
    }
    fail(input, "closing quote")
}

/// `/.../` with `\/` meaning a slash; the pattern is kept as written otherwise.
pub fn regex_literal(input: &str) -> PResult<'_, String> {
    let start = skip_blanks(input);
    if !start.starts_with('/') {
        return fail(start, "regex");
    }
    let mut out = String::new();
    let mut chars = start.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, next)) => {
                    out.push('\\');
                    out.push(next);
                }
                None => break,
            },
            '/' => return Ok((&start[at + 1..], out)),
            '\n' => break,
            _ => out.push(c),
        }
    }
    fail(start, "closing / of the regex")
}

/// An unsigned integer.
pub fn unsigned(input: &str) -> PResult<'_, u64> {
    let start = skip_blanks(input);
    let (rest, digits) = digit1(start)?;
    match digits.parse::<u64>() {
        Ok(n) if !rest.starts_with(is_ident_char) => Ok((rest, n)),
        _ => fail(start, "integer"),
    }
}

/// The units InfluxQL durations take, longest first so `ms` wins over `m`.
const DURATION_UNITS: &[&str] = &["ns", "ms", "u", "µ", "s", "m", "h", "d", "w"];

/// `10s`, `1h30m`: kept as written.
pub fn duration_literal(input: &str) -> PResult<'_, String> {
    let start = skip_blanks(input);
    let mut rest = start;
    let mut parts = 0;
    // `5min` stops at `in`, which the identifier check below refuses.
    while let Ok((after_digits, _)) = digit1::<_, SyntaxError<'_>>(rest) {
        let Some(unit) = DURATION_UNITS.iter().find(|u| after_digits.starts_with(*u)) else {
            break;
        };
        rest = &after_digits[unit.len()..];
        parts += 1;
    }
    if parts == 0 || rest.starts_with(is_ident_char) {
        return fail(start, "duration");
    }
    Ok((rest, start[..start.len() - rest.len()].to_owned()))
}

/// A number as written (`1`, `-2.5`, `1e9`); the boolean says whether it is an integer.
pub fn number_literal(input: &str) -> PResult<'_, (String, bool)> {
    let start = skip_blanks(input);
    let result: PResult<'_, &str> = recognize((
        opt(char('-')),
        alt((
            recognize((
                digit1,
                opt(pair(char('.'), take_while(|c: char| c.is_ascii_digit()))),
            )),
            recognize(pair(char('.'), digit1)),
        )),
        opt((
            alt((char('e'), char('E'))),
            opt(alt((char('+'), char('-')))),
            digit1,
        )),
    ))
    .parse(start);
    match result {
        Ok((rest, text)) if !rest.starts_with(is_ident_char) => {
            let integer = !text.contains(['.', 'e', 'E']);
            Ok((rest, (text.to_owned(), integer)))
        }
        _ => fail(start, "number"),
    }
}

/// `$name` (bound parameter).
pub fn bound_parameter(input: &str) -> PResult<'_, String> {
    let start = skip_blanks(input);
    let Some(rest) = start.strip_prefix('$') else {
        return fail(start, "bound parameter");
    };
    if rest.starts_with('"') {
        return quoted(rest, '"');
    }
    let (rest, name) = take_while1(is_ident_char).parse(rest)?;
    Ok((rest, name.to_owned()))
}

/// What the failure points at, for `found X`: the next token as InfluxDB would name it.
pub fn describe_found(input: &str) -> String {
    let start = skip_blanks(input);
    if start.is_empty() {
        return "EOF".to_owned();
    }
    if let Ok((_, word)) = bare_word(start) {
        return word.to_owned();
    }
    if let Ok((_, (number, _))) = number_literal(start) {
        return number;
    }
    start.chars().next().map(String::from).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_bare_quoted_and_reserved() {
        assert_eq!(identifier(" cpu x").unwrap(), (" x", "cpu".to_owned()));
        assert_eq!(
            identifier(r#""my \"m\"" "#).unwrap(),
            (" ", r#"my "m""#.to_owned())
        );
        assert!(identifier("FROM").is_err());
        assert_eq!(identifier(r#""from""#).unwrap().1, "from");
    }

    #[test]
    fn literals() {
        assert_eq!(string_literal(r"'it\'s'").unwrap().1, "it's");
        assert_eq!(
            regex_literal(r"/a\/b.*/ ").unwrap(),
            (" ", "a/b.*".to_owned())
        );
        assert_eq!(
            duration_literal("1h30m)").unwrap(),
            (")", "1h30m".to_owned())
        );
        assert_eq!(duration_literal("10ms").unwrap().1, "10ms");
        assert!(duration_literal("10").is_err());
        assert_eq!(
            number_literal("-2.5 ").unwrap().1,
            ("-2.5".to_owned(), false)
        );
        assert_eq!(number_literal("42").unwrap().1, ("42".to_owned(), true));
        assert_eq!(bound_parameter("$host").unwrap().1, "host");
    }

    #[test]
    fn keywords_are_whole_words() {
        assert!(keyword("LIMIT")(" limit 10").is_ok());
        assert!(keyword("LIMIT")(" limited").is_err());
        assert_eq!(skip_blanks(" -- c\n /* x */ SELECT"), "SELECT");
    }
}
