//! The InfluxQL the search APIs send to backends, built from user input that is only ever
//! placed inside quoted identifiers, string literals or regex literals, each escaped by the
//! rules of InfluxDB 1.x's scanner. Times are integers the proxy parsed itself.
//!
//! It must never paste user text into a statement unescaped: a quote, backslash, slash or
//! newline in a parameter is matched literally, never interpreted.

use std::fmt::Write as _;

/// Identifiers and string literals are escaped by the query path's renderer (one set of rules
/// for every statement the proxy sends).
pub use crate::influxql::render::{quote_ident as quote_identifier, quote_string};

/// `/…/` matching `text` literally anywhere. RE2's metacharacters are backslash-escaped (only
/// those: older Go releases refuse escapes of other characters such as `\_`); backslash, slash
/// and control characters become `\x{..}`. Backslash and slash never appear raw because the
/// InfluxQL regex scanner reads `\/` as a slash even after another backslash, so `\\/` (a
/// literal backslash, then the closing delimiter) would not end the literal where it should.
pub fn literal_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('/');
    for c in text.chars() {
        if c == '/' || c == '\\' || c.is_control() {
            let _ = write!(out, "\\x{{{:x}}}", u32::from(c));
        } else if matches!(
            c,
            '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$'
        ) {
            out.push('\\');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out.push('/');
    out
}

/// One condition of a WHERE clause.
#[derive(Debug, Clone)]
pub enum Condition {
    /// `"key" = 'value'` (a tag or a string field).
    Equals(String, String),
    /// `("key" = 'a' OR "key" = 'b' …)`; an empty list matches nothing.
    OneOf(String, Vec<String>),
    /// `"key" =~ /literal/`.
    Contains(String, String),
    /// `time >= ns`.
    From(i64),
    /// `time <= ns`.
    Until(i64),
}

impl Condition {
    fn render(&self, out: &mut String) {
        match self {
            Condition::Equals(key, value) => {
                let _ = write!(out, "{} = {}", quote_identifier(key), quote_string(value));
            }
            Condition::OneOf(key, values) => {
                if values.is_empty() {
                    // No value: a condition no point satisfies.
                    out.push_str("time < 0 AND time > 0");
                    return;
                }
                out.push('(');
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" OR ");
                    }
                    let _ = write!(out, "{} = {}", quote_identifier(key), quote_string(value));
                }
                out.push(')');
            }
            Condition::Contains(key, text) => {
                let _ = write!(out, "{} =~ {}", quote_identifier(key), literal_regex(text));
            }
            Condition::From(ns) => {
                let _ = write!(out, "time >= {ns}");
            }
            Condition::Until(ns) => {
                let _ = write!(out, "time <= {ns}");
            }
        }
    }
}

/// Newest or oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// `SHOW TAG KEYS FROM m; SHOW FIELD KEYS FROM m; SELECT * FROM m WHERE … ORDER BY time … LIMIT n`:
/// the key statements say which columns are tags and what type each field has, which the
/// SELECT's flat rows do not.
pub fn search_statements(
    measurement: &str,
    conditions: &[Condition],
    order: Order,
    limit: usize,
) -> String {
    let from = quote_identifier(measurement);
    let mut q =
        format!("SHOW TAG KEYS FROM {from}; SHOW FIELD KEYS FROM {from}; SELECT * FROM {from}");
    for (i, condition) in conditions.iter().enumerate() {
        q.push_str(if i == 0 { " WHERE " } else { " AND " });
        condition.render(&mut q);
    }
    let _ = write!(
        q,
        " ORDER BY time {} LIMIT {limit}",
        match order {
            Order::Ascending => "ASC",
            Order::Descending => "DESC",
        }
    );
    q
}

/// `SHOW TAG VALUES FROM m WITH KEY = "tag"`: the indexes a group holds, for tokens that may
/// read only some.
pub fn tag_values_statement(measurement: &str, tag: &str) -> String {
    format!(
        "SHOW TAG VALUES FROM {} WITH KEY = {}",
        quote_identifier(measurement),
        quote_identifier(tag)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_backslashes_stay_inside_their_literal() {
        assert_eq!(quote_string(r"it's \ ok"), r"'it\'s \\ ok'");
        assert_eq!(quote_string("a\nb"), r"'a\nb'");
        assert_eq!(quote_identifier(r#"we"ird\"#), r#""we\"ird\\""#);
        assert_eq!(
            quote_string(r"x' OR 1=1 --"),
            r"'x\' OR 1=1 --'",
            "the quote is escaped, the rest stays literal text"
        );
    }

    #[test]
    fn contains_becomes_a_literal_regex() {
        assert_eq!(literal_regex("a.b"), r"/a\.b/");
        assert_eq!(literal_regex("/etc/passwd"), r"/\x{2f}etc\x{2f}passwd/");
        assert_eq!(literal_regex(r"C:\x"), r"/C:\x{5c}x/");
        assert_eq!(literal_regex("tab\there"), r"/tab\x{9}here/");
        assert_eq!(literal_regex("(a|b)*"), r"/\(a\|b\)\*/");
        assert_eq!(literal_regex("héllo wörld"), "/héllo wörld/");
    }

    #[test]
    fn statements_carry_every_condition() {
        let q = search_statements(
            "log",
            &[
                Condition::From(10),
                Condition::Until(20),
                Condition::Equals("host".into(), "h'1".into()),
                Condition::OneOf("index".into(), vec!["a".into(), "b".into()]),
                Condition::Contains("msg".into(), "x/y".into()),
            ],
            Order::Descending,
            100,
        );
        assert_eq!(
            q,
            r#"SHOW TAG KEYS FROM "log"; SHOW FIELD KEYS FROM "log"; SELECT * FROM "log" WHERE time >= 10 AND time <= 20 AND "host" = 'h\'1' AND ("index" = 'a' OR "index" = 'b') AND "msg" =~ /x\x{2f}y/ ORDER BY time DESC LIMIT 100"#
        );
        let none = search_statements(
            "log",
            &[Condition::OneOf("index".into(), vec![])],
            Order::Ascending,
            1,
        );
        assert!(none.contains("WHERE time < 0 AND time > 0 ORDER BY time ASC LIMIT 1"));
    }
}
