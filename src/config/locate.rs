//! Key paths (`groups.g1.replicas[2].url`) and finding the line where a key path sits in a YAML
//! file, so that semantic errors point at a line the way syntax errors do. The scanner follows
//! block indentation (mappings, sequences, `- key:` items, block scalars, flow collections on
//! their line); it must never fail or guess a deeper line than it can prove: when it cannot follow
//! the path (anchors, multi-line flow) it answers the line of the deepest key it did find.

use std::fmt;

/// One step of a key path: a mapping key or a sequence position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// A mapping key.
    Key(String),
    /// A zero-based sequence position.
    Index(usize),
}

/// The path of a value inside a config document, rendered as `groups.g1.replicas[2].url`. Keys
/// that contain `.`, `[`, `]`, `"`, `/`, `*`, spaces or are empty are rendered quoted
/// (`indexes."eu-*"`), so the rendering is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct KeyPath(Vec<PathSegment>);

impl KeyPath {
    /// The document root (renders as an empty string).
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path extended by a mapping key.
    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Key(key.to_owned()));
        Self(segments)
    }

    /// This path extended by a sequence position.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Index(index));
        Self(segments)
    }

    /// Reads the dotted form serde_yaml_ng uses in its messages (`groups.g1.replicas[0]`, `.` for
    /// the root). Best effort: a key containing `.` or `[` is split wrongly, which only costs
    /// precision in the line found for it.
    pub fn parse_dotted(text: &str) -> Self {
        let mut path = Self::root();
        if text == "." || text.is_empty() {
            return path;
        }
        for piece in text.split('.') {
            let (key, mut rest) = match piece.find('[') {
                Some(bracket) => (&piece[..bracket], &piece[bracket..]),
                None => (piece, ""),
            };
            if !key.is_empty() {
                path = path.key(key);
            }
            while let Some(inner) = rest.strip_prefix('[') {
                let Some(close) = inner.find(']') else { break };
                match inner[..close].parse() {
                    Ok(index) => path = path.index(index),
                    Err(_) => path = path.key(&inner[..close]),
                }
                rest = &inner[close + 1..];
            }
        }
        path
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }

    /// True for the document root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

fn needs_quotes(key: &str) -> bool {
    key.is_empty()
        || key.chars().any(|c| {
            matches!(
                c,
                '.' | '[' | ']' | '"' | '/' | '*' | '?' | ' ' | '\t' | ':'
            )
        })
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(key) => {
                    if position > 0 {
                        f.write_str(".")?;
                    }
                    if needs_quotes(key) {
                        write!(f, "{key:?}")?;
                    } else {
                        f.write_str(key)?;
                    }
                }
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
enum Node {
    Map(Vec<(String, Located)>),
    Seq(Vec<Located>),
    Leaf,
}

#[derive(Debug)]
struct Located {
    line: usize,
    node: Node,
}

#[derive(Debug, Clone)]
struct Line {
    number: usize,
    indent: usize,
    text: String,
}

/// The block structure of a YAML document with the line of every key and sequence item.
#[derive(Debug)]
pub struct SourceMap {
    root: Node,
}

impl SourceMap {
    /// Scans `source`. Never fails: text it cannot follow becomes leaves.
    pub fn new(source: &str) -> Self {
        let lines = source
            .trim_start_matches('\u{feff}')
            .lines()
            .enumerate()
            .filter_map(|(position, raw)| {
                let indent = raw.len() - raw.trim_start_matches(' ').len();
                let text = strip_comment(&raw[indent..]).trim_end().to_owned();
                let is_marker = text == "---" || text == "..." || text.starts_with('%');
                (!text.is_empty() && !is_marker).then_some(Line {
                    number: position + 1,
                    indent,
                    text,
                })
            })
            .collect();
        let mut scanner = Scanner { lines, pos: 0 };
        let root = scanner.block(0);
        Self { root }
    }

    /// The 1-based line of the deepest segment of `path` found in the file, or `None` when not
    /// even the first segment is there.
    pub fn line_of(&self, path: &KeyPath) -> Option<usize> {
        self.walk(path).1
    }

    /// How many leading segments of `path` exist in the file.
    pub fn depth_found(&self, path: &KeyPath) -> usize {
        self.walk(path).0
    }

    fn walk(&self, path: &KeyPath) -> (usize, Option<usize>) {
        let mut node = &self.root;
        let mut best = None;
        let mut depth = 0;
        for segment in path.segments() {
            let found = match (node, segment) {
                (Node::Map(entries), PathSegment::Key(key)) => {
                    entries.iter().rev().find(|(k, _)| k == key).map(|(_, e)| e)
                }
                (Node::Seq(items), PathSegment::Index(index)) => items.get(*index),
                _ => None,
            };
            match found {
                Some(located) => {
                    best = Some(located.line);
                    node = &located.node;
                    depth += 1;
                }
                None => break,
            }
        }
        (depth, best)
    }
}

struct Scanner {
    lines: Vec<Line>,
    pos: usize,
}

impl Scanner {
    fn peek(&self) -> Option<&Line> {
        self.lines.get(self.pos)
    }

    /// The block node starting at the current line, if it is indented at least `min_indent`.
    fn block(&mut self, min_indent: usize) -> Node {
        let Some(line) = self.peek() else {
            return Node::Leaf;
        };
        if line.indent < min_indent {
            return Node::Leaf;
        }
        let indent = line.indent;
        if is_sequence_item(&line.text) {
            self.sequence(indent)
        } else if split_key(&line.text).is_some() {
            self.mapping(indent)
        } else {
            let text = line.text.clone();
            self.pos += 1;
            self.skip_value(&text, indent.saturating_sub(1));
            Node::Leaf
        }
    }

    fn sequence(&mut self, indent: usize) -> Node {
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent != indent || !is_sequence_item(&line.text) {
                break;
            }
            let number = line.number;
            let after_dash = &line.text[1..];
            let rest = after_dash.trim_start();
            let rest_column = indent + 1 + (after_dash.len() - rest.len());
            let node = if rest.is_empty() {
                self.pos += 1;
                self.block(indent + 1)
            } else if is_sequence_item(rest) || split_key(rest).is_some() {
                // `- key: v` opens a mapping whose keys sit at the column after the dash.
                let rest = rest.to_owned();
                self.lines[self.pos] = Line {
                    number,
                    indent: rest_column,
                    text: rest,
                };
                self.block(rest_column)
            } else {
                let rest = rest.to_owned();
                self.pos += 1;
                self.skip_value(&rest, indent);
                Node::Leaf
            };
            items.push(Located { line: number, node });
        }
        Node::Seq(items)
    }

    fn mapping(&mut self, indent: usize) -> Node {
        let mut entries = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent != indent {
                break;
            }
            let Some((key, rest)) = split_key(&line.text) else {
                break;
            };
            let number = line.number;
            let rest = strip_properties(rest).to_owned();
            self.pos += 1;
            let node = if rest.is_empty() {
                match self.peek() {
                    Some(next) if next.indent > indent => self.block(indent + 1),
                    // YAML lets a sequence under a key sit at the key's own indentation.
                    Some(next) if next.indent == indent && is_sequence_item(&next.text) => {
                        self.sequence(indent)
                    }
                    _ => Node::Leaf,
                }
            } else {
                self.skip_value(&rest, indent);
                Node::Leaf
            };
            entries.push((key, Located { line: number, node }));
        }
        Node::Map(entries)
    }

    /// Skips the continuation lines of a value that began on the previous line: the rest of an
    /// unbalanced flow collection, a block scalar's body, a multi-line plain scalar.
    fn skip_value(&mut self, first: &str, parent_indent: usize) {
        if first.starts_with('[') || first.starts_with('{') {
            let mut depth = flow_depth_change(first);
            while depth > 0 {
                let Some(line) = self.peek() else { return };
                depth += flow_depth_change(&line.text);
                self.pos += 1;
            }
        }
        while let Some(line) = self.peek() {
            if line.indent <= parent_indent {
                break;
            }
            self.pos += 1;
        }
    }
}

fn is_sequence_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// Drops anchors (`&a`) and tags (`!t`) in front of a value; what is left is the value itself.
fn strip_properties(mut rest: &str) -> &str {
    while rest.starts_with('&') || rest.starts_with('!') {
        rest = match rest.find(' ') {
            Some(end) => rest[end..].trim_start(),
            None => "",
        };
    }
    rest
}

/// Splits `key: value` into the unquoted key and the value text; `None` if the line is not a
/// mapping entry.
fn split_key(text: &str) -> Option<(String, &str)> {
    if is_sequence_item(text) || text.starts_with(['[', '{', '|', '>', '*']) {
        return None;
    }
    let (key, after_key) =
        if let Some(quote) = text.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let (key, consumed) = unquote(text, quote)?;
            (key, text[consumed..].trim_start())
        } else {
            let colon = find_mapping_colon(text)?;
            (text[..colon].trim_end().to_owned(), &text[colon..])
        };
    let value = after_key.strip_prefix(':')?;
    if !value.is_empty() && !value.starts_with([' ', '\t']) {
        return None;
    }
    Some((key, value.trim()))
}

fn find_mapping_colon(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find(|&i| {
        bytes[i] == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' ' || bytes[i + 1] == b'\t')
    })
}

/// Reads a quoted scalar at the start of `text`; returns its value and the bytes consumed.
fn unquote(text: &str, quote: char) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((position, c)) = chars.next() {
        if c == quote {
            if quote == '\'' && chars.peek().map(|(_, next)| *next) == Some('\'') {
                chars.next();
                value.push('\'');
                continue;
            }
            return Some((value, position + c.len_utf8()));
        }
        if c == '\\' && quote == '"' {
            let (_, escaped) = chars.next()?;
            value.push(match escaped {
                'n' => '\n',
                't' => '\t',
                '0' => '\0',
                other => other,
            });
            continue;
        }
        value.push(c);
    }
    None
}

/// Removes a `# comment` (a `#` at the start or after whitespace, outside quotes).
fn strip_comment(text: &str) -> &str {
    let mut in_single = false;
    let mut in_double = false;
    let mut previous_blank = true;
    let mut escaped = false;
    for (position, c) in text.char_indices() {
        if in_double {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_double = false;
            }
        } else if in_single {
            if c == '\'' {
                in_single = false;
            }
        } else if c == '#' && previous_blank {
            return &text[..position];
        } else if c == '"' && previous_blank_or_flow(text, position) {
            in_double = true;
        } else if c == '\'' && previous_blank_or_flow(text, position) {
            in_single = true;
        }
        previous_blank = c == ' ' || c == '\t';
    }
    text
}

/// A quote opens a quoted scalar only where a scalar can start, not inside a word (`it's`).
fn previous_blank_or_flow(text: &str, position: usize) -> bool {
    text[..position]
        .chars()
        .next_back()
        .is_none_or(|c| matches!(c, ' ' | '\t' | '[' | '{' | ',' | ':' | '-'))
}

fn flow_depth_change(text: &str) -> i64 {
    let mut depth = 0;
    let mut in_single = false;
    let mut in_double = false;
    for c in text.chars() {
        match c {
            '"' if !in_single => in_double = !in_double,
            '\'' if !in_double => in_single = !in_single,
            '[' | '{' if !in_single && !in_double => depth += 1,
            ']' | '}' if !in_single && !in_double => depth -= 1,
            _ => {}
        }
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# comment
listen: "127.0.0.1:8186"   # trailing
groups:
  g1:
    replicas:
      - url: "http://127.0.0.1:18086"
      - url: "http://127.0.0.1:18087"
        dialect: v2
      -
        url: http://127.0.0.1:18088
    replicated: false
  "g.2":
    replicas: [{url: "http://a"}, {url: "http://b"}]
indexes:
  cluster1: g1
  "/^eu-.*/": g1
notes: |
  text: that looks like a key
  - and an item
tokens:
- token: abc
  write: ["*"]
- token: def
occurrences: { count: 1, window: "5m" }
"#;

    fn line(path: KeyPath) -> Option<usize> {
        SourceMap::new(SAMPLE).line_of(&path)
    }

    #[test]
    fn finds_keys_items_and_nested_items() {
        let g1 = KeyPath::root().key("groups").key("g1");
        assert_eq!(line(KeyPath::root().key("listen")), Some(2));
        assert_eq!(line(g1.clone()), Some(4));
        assert_eq!(line(g1.key("replicas").index(0).key("url")), Some(6));
        assert_eq!(line(g1.key("replicas").index(1).key("dialect")), Some(8));
        assert_eq!(line(g1.key("replicas").index(2)), Some(9));
        assert_eq!(line(g1.key("replicas").index(2).key("url")), Some(10));
        assert_eq!(line(g1.key("replicated")), Some(11));
        assert_eq!(
            line(KeyPath::root().key("indexes").key("/^eu-.*/")),
            Some(16)
        );
        assert_eq!(
            line(KeyPath::root().key("tokens").index(1).key("token")),
            Some(23)
        );
        assert_eq!(
            line(KeyPath::root().key("tokens").index(0).key("write").index(0)),
            Some(22)
        );
    }

    #[test]
    fn flow_collections_and_block_scalars_answer_their_key_line() {
        let g2 = KeyPath::root().key("groups").key("g.2");
        assert_eq!(line(g2.key("replicas").index(1).key("url")), Some(13));
        assert_eq!(line(KeyPath::root().key("notes")), Some(17));
        assert_eq!(line(KeyPath::root().key("tokens")), Some(20));
        assert_eq!(
            line(KeyPath::root().key("occurrences").key("window")),
            Some(24)
        );
    }

    #[test]
    fn missing_keys_fall_back_to_the_deepest_found() {
        let g1 = KeyPath::root().key("groups").key("g1");
        assert_eq!(line(g1.key("nope").key("deeper")), Some(4));
        assert_eq!(line(KeyPath::root().key("absent")), None);
    }

    #[test]
    fn serde_dotted_paths_parse_back() {
        let path = KeyPath::parse_dotted("groups.g1.replicas[2].url");
        assert_eq!(
            path,
            KeyPath::root()
                .key("groups")
                .key("g1")
                .key("replicas")
                .index(2)
                .key("url")
        );
        assert_eq!(KeyPath::parse_dotted("."), KeyPath::root());
        assert_eq!(
            KeyPath::parse_dotted("a[0][1]"),
            KeyPath::root().key("a").index(0).index(1)
        );
    }

    #[test]
    fn paths_render_with_quotes_where_needed() {
        let path = KeyPath::root().key("indexes").key("eu-*");
        assert_eq!(path.to_string(), "indexes.\"eu-*\"");
        let path = KeyPath::root()
            .key("groups")
            .key("g1")
            .key("replicas")
            .index(2)
            .key("url");
        assert_eq!(path.to_string(), "groups.g1.replicas[2].url");
    }
}
