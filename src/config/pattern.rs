//! Index selectors as written in config: an exact index name, a glob (`cluster*`, `eu-?`), a
//! regular expression between slashes (`/^eu-(west|east)$/`), or `*` for every index. Used by the
//! shard map (`indexes:`) and by token grants (`write:`/`read:`). It must never treat a name as a
//! pattern by accident: only `*`, `?` and surrounding slashes make one.

use regex::bytes::Regex;

/// How an index selector was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorKind {
    /// A literal index name.
    Exact(String),
    /// A pattern, with the anchored regex it compiles to.
    Pattern {
        /// The text as written in the config.
        source: String,
        /// The regular expression it stands for (globs are anchored: they match the whole name).
        regex: String,
    },
    /// `*`: every index.
    Any,
}

/// Why a selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Empty text.
    #[error("empty index name or pattern")]
    Empty,
    /// `/.../` whose body does not compile.
    #[error("invalid regular expression {pattern:?}: {reason}")]
    BadRegex {
        /// The text as written.
        pattern: String,
        /// The regex crate's explanation, first line.
        reason: String,
    },
}

/// Classifies and checks a selector. Globs: `*` is any run of characters, `?` exactly one, all
/// else literal, matching the whole index. Regex: `/body/`, searched unanchored in the index
/// (write `^...$` to anchor), `regex` crate syntax.
pub fn parse_selector(text: &str) -> Result<SelectorKind, PatternError> {
    if text.is_empty() {
        return Err(PatternError::Empty);
    }
    if text == "*" {
        return Ok(SelectorKind::Any);
    }
    let regex = if text.len() >= 2 && text.starts_with('/') && text.ends_with('/') {
        text[1..text.len() - 1].to_owned()
    } else if text.contains(['*', '?']) {
        glob_to_regex(text)
    } else {
        return Ok(SelectorKind::Exact(text.to_owned()));
    };
    Regex::new(&regex).map_err(|error| PatternError::BadRegex {
        pattern: text.to_owned(),
        reason: first_line(&error.to_string()),
    })?;
    Ok(SelectorKind::Pattern {
        source: text.to_owned(),
        regex,
    })
}

fn glob_to_regex(glob: &str) -> String {
    let mut regex = String::from("^");
    let mut literal = String::new();
    for c in glob.chars() {
        if c == '*' || c == '?' {
            regex.push_str(&regex::escape(&literal));
            literal.clear();
            regex.push_str(if c == '*' { "(?s:.*)" } else { "(?s:.)" });
        } else {
            literal.push(c);
        }
    }
    regex.push_str(&regex::escape(&literal));
    regex.push('$');
    regex
}

fn first_line(text: &str) -> String {
    // The regex crate's errors draw a caret diagram over several lines; the last non-empty line
    // says what is wrong, which is what fits in a one-line config error.
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(selector: &str, index: &str) -> bool {
        match parse_selector(selector).unwrap() {
            SelectorKind::Exact(name) => name == index,
            SelectorKind::Any => true,
            SelectorKind::Pattern { regex, .. } => {
                Regex::new(&regex).unwrap().is_match(index.as_bytes())
            }
        }
    }

    #[test]
    fn globs_match_the_whole_name() {
        assert!(matches("cluster*", "cluster1"));
        assert!(matches("cluster*", "cluster"));
        assert!(!matches("cluster*", "mycluster1"));
        assert!(matches("eu-?", "eu-1"));
        assert!(!matches("eu-?", "eu-12"));
        assert!(matches("a.b*", "a.bc"));
        assert!(!matches("a.b*", "axbc"));
    }

    #[test]
    fn regexes_are_searched_unless_anchored() {
        assert!(matches("/eu-/", "prod-eu-1"));
        assert!(!matches("/^eu-/", "prod-eu-1"));
        assert!(matches("/^eu-(west|east)$/", "eu-west"));
    }

    #[test]
    fn plain_names_and_any() {
        assert_eq!(
            parse_selector("cluster1"),
            Ok(SelectorKind::Exact("cluster1".into()))
        );
        assert_eq!(parse_selector("/"), Ok(SelectorKind::Exact("/".into())));
        assert_eq!(parse_selector("*"), Ok(SelectorKind::Any));
        assert_eq!(parse_selector(""), Err(PatternError::Empty));
        assert!(matches!(
            parse_selector("/(/"),
            Err(PatternError::BadRegex { .. })
        ));
    }
}
