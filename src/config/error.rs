//! Config errors that name the file, the line and the key path, e.g.
//! `config/monitor-api.yaml:14: groups.g1.replicas[1].url: invalid URL "htp:/x": ...`. It must
//! never report a problem without the key it is about, nor stop at the first of several problems.

use std::fmt;

use super::locate::{KeyPath, SourceMap};

/// One semantic problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key the problem is about.
    pub path: KeyPath,
    /// 1-based line in the source file, when the problem came from a file and the key was found.
    pub line: Option<usize>,
    /// What is wrong and, where it helps, what would be right.
    pub message: String,
}

impl Problem {
    /// A problem at `path`, not yet located in a file.
    pub fn new(path: KeyPath, message: impl Into<String>) -> Self {
        Self {
            path,
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    /// `path: message` (the file and line are added by [`ConfigError`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Problems found by validation, in the order of the document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Records a problem at `path`.
    pub fn push(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.0.push(Problem::new(path.clone(), message));
    }

    /// Records "must be at least `minimum_key` (`minimum`)" at `path` when `value` is below
    /// `minimum`; `minimum_key` is the other key as the operator writes it
    /// (`sender.retry_backoff_min`).
    pub fn require_at_least<T: PartialOrd + fmt::Display>(
        &mut self,
        path: &KeyPath,
        value: T,
        minimum_key: &str,
        minimum: T,
    ) {
        if value < minimum {
            self.push(path, format!("must be at least {minimum_key} ({minimum})"));
        }
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when empty, else the problems.
    pub fn into_result(self) -> Result<(), Problems> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Fills in the line of every problem from the source text it was found in.
    pub fn locate(mut self, source: &str) -> Self {
        let map = SourceMap::new(source);
        for problem in &mut self.0 {
            problem.line = map.line_of(&problem.path);
        }
        // Reported in file order, so a reader can fix them top to bottom.
        self.0
            .sort_by_key(|problem| problem.line.unwrap_or(usize::MAX));
        self
    }
}

impl fmt::Display for Problems {
    /// One `path: message` per line, without file names (for API answers such as a refused PUT).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, problem) in self.0.iter().enumerate() {
            if position > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{file}: cannot read config file: {source}")]
    Read {
        /// The file as given.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Malformed YAML, a wrong type, an unknown or missing key: the parser's message with its
    /// line and column (1-based) when it knows them.
    #[error("{}", render_syntax(.file, *.line, *.column, .message))]
    Syntax {
        /// The file as given.
        file: String,
        /// 1-based line.
        line: Option<usize>,
        /// 1-based column.
        column: Option<usize>,
        /// The parser's message, prefixed by the key path where it knows one.
        message: String,
    },
    /// Well-formed but wrong: every problem with its line and key path, one per line.
    #[error("{}", render_invalid(.file, .problems))]
    Invalid {
        /// The file as given.
        file: String,
        /// Everything found wrong.
        problems: Problems,
    },
}

impl ConfigError {
    /// Converts a `serde_yaml_ng` error, moving its location in front as `file:line:column:`.
    pub(crate) fn from_yaml(file: &str, source: &str, error: &serde_yaml_ng::Error) -> Self {
        let mut message = error.to_string();
        let (mut line, mut column) = match error.location() {
            Some(location) => {
                let suffix = format!(" at line {} column {}", location.line(), location.column());
                if let Some(start) = message.find(&suffix) {
                    message.replace_range(start..start + suffix.len(), "");
                }
                (Some(location.line()), Some(location.column()))
            }
            None => (None, None),
        };
        // serde_yaml_ng places a duplicate-key error at the start of the mapping; point at the
        // repeated key instead, which is the line to fix.
        if let Some(duplicate_line) = duplicate_key_line(&message, source) {
            line = Some(duplicate_line);
            column = None;
        }
        ConfigError::Syntax {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    }

    /// The problems of an `Invalid` error (empty for the other kinds).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => &problems.0,
            _ => &[],
        }
    }
}

fn duplicate_key_line(message: &str, source: &str) -> Option<usize> {
    // Two spellings: our ordered maps say `duplicate key "k"`, serde's derive `duplicate field `k``.
    let (start, key) = if let Some(start) = message.find("duplicate key \"") {
        let quoted = message[start + "duplicate key \"".len()..].strip_suffix('"')?;
        (start, quoted.replace("\\\"", "\"").replace("\\\\", "\\"))
    } else {
        let start = message.find("duplicate field `")?;
        let name = message[start + "duplicate field `".len()..].strip_suffix('`')?;
        (start, name.to_owned())
    };
    let map_path = message[..start].strip_suffix(": ").unwrap_or("");
    let path = KeyPath::parse_dotted(map_path).key(&key);
    let full_depth = path.segments().len();
    let map = SourceMap::new(source);
    // Only trust a line found for the key itself, not for one of its parents.
    (map.depth_found(&path) == full_depth)
        .then(|| map.line_of(&path))
        .flatten()
}

fn render_syntax(file: &str, line: Option<usize>, column: Option<usize>, message: &str) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("{file}:{line}:{column}: {message}"),
        (Some(line), None) => format!("{file}:{line}: {message}"),
        _ => format!("{file}: {message}"),
    }
}

fn render_invalid(file: &str, problems: &Problems) -> String {
    problems
        .0
        .iter()
        .map(|problem| match problem.line {
            Some(line) => format!("{file}:{line}: {problem}"),
            None => format!("{file}: {problem}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
