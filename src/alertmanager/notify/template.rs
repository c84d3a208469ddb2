//! The small template language of email subjects and bodies and chat messages:
//! `{{ labels.host }}`, `{{ value }}`, `{{ status | upper }}`, `{{ range alerts }}...{{ end }}`,
//! `{{ if firing }}...{{ else }}...{{ end }}`. Templates are parsed once, at config load, so a
//! typo is refused with the key and the position instead of surfacing at 3 a.m. in a blank mail.
//!
//! It must never fail at render time: every name was checked at parse time, and a label or
//! annotation the alert does not carry renders as the empty string.
//!
//! Names (inside `range alerts`, the alert names refer to the current alert; outside, to the
//! first alert of the notification, so one-alert notifications need no `range`):
//! - notification: `status` (outside range), `receiver`, `group_key`, `group_labels`,
//!   `group_labels.NAME`, `common_labels(.NAME)`, `common_annotations(.NAME)`, `alert_count`,
//!   `firing_count`, `resolved_count`, `firing`, `resolved`, `external_url`, `id`;
//! - alert: `status`, `name`, `index`, `host`, `source`, `severity`, `value`, `at`,
//!   `fingerprint`, `starts_at`, `ends_at`, `delivery`, `labels`, `labels.NAME`,
//!   `annotations`, `annotations.NAME`.
//!
//! A map (`labels`) renders as `name=value, name=value`; `group_labels` renders as its values
//! joined by spaces (Alertmanager's default subject does the same). Filters: `upper`, `lower`,
//! `trim`. A condition is true when its value renders non-empty and is not `0` or `false`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Notification, NotificationStatus, NotifiedAlert};
use crate::calendar::rfc3339_ms;

/// Default email subject: `[FIRING:2] HighMem cluster1` / `[RESOLVED] HighMem cluster1`.
pub const DEFAULT_SUBJECT: &str =
    "[{{ if firing }}FIRING:{{ firing_count }}{{ else }}RESOLVED{{ end }}] {{ group_labels }}";

/// Default email body: one paragraph per alert.
pub const DEFAULT_BODY: &str = "{{ range alerts }}[{{ status | upper }}] {{ name }} on {{ host }} ({{ index }})\n\
{{ if annotations.summary }}{{ annotations.summary }}\n{{ end }}\
value: {{ value }}\n\
severity: {{ severity }}\n\
started: {{ starts_at }}\n\
{{ if ends_at }}ended: {{ ends_at }}\n{{ end }}\
labels: {{ labels }}\n\
\n{{ end }}";

/// Default chat text: the subject line, then one line per alert.
pub const DEFAULT_CHAT_TEXT: &str = "*[{{ if firing }}FIRING:{{ firing_count }}{{ else }}RESOLVED{{ end }}] {{ group_labels }}*\n\
{{ range alerts }}{{ status | upper }} {{ name }} on {{ host }}: {{ if annotations.summary }}{{ annotations.summary }}{{ else }}value {{ value }}{{ end }}\n{{ end }}";

/// A template that does not parse, with the byte offset where the problem starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template error at character {position}: {message}")]
pub struct TemplateError {
    /// 1-based character position in the template text.
    pub position: usize,
    pub message: String,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Value(Expr),
    RangeAlerts(Vec<Node>),
    If {
        condition: Expr,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Expr {
    name: Var,
    filters: Vec<Filter>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Filter {
    Upper,
    Lower,
    Trim,
}

#[derive(Debug, Clone, PartialEq)]
enum MapName {
    Labels,
    Annotations,
    GroupLabels,
    CommonLabels,
    CommonAnnotations,
}

#[derive(Debug, Clone, PartialEq)]
enum Var {
    Status,
    Receiver,
    GroupKey,
    AlertCount,
    FiringCount,
    ResolvedCount,
    Firing,
    Resolved,
    ExternalUrl,
    Id,
    AlertName,
    Index,
    Host,
    Source,
    Severity,
    Value,
    At,
    Fingerprint,
    StartsAt,
    EndsAt,
    Delivery,
    Map(MapName),
    MapEntry(MapName, String),
}

const NAMES: &str = "status, receiver, group_key, group_labels, common_labels, common_annotations, \
alert_count, firing_count, resolved_count, firing, resolved, external_url, id, name, index, host, \
source, severity, value, at, fingerprint, starts_at, ends_at, delivery, labels, annotations \
(maps also as labels.NAME)";

fn parse_name(text: &str) -> Option<Var> {
    if let Some((map, key)) = text.split_once('.') {
        let map = parse_map(map)?;
        let valid_key = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
        return valid_key.then(|| Var::MapEntry(map, key.to_owned()));
    }
    if let Some(map) = parse_map(text) {
        return Some(Var::Map(map));
    }
    Some(match text {
        "status" => Var::Status,
        "receiver" => Var::Receiver,
        "group_key" => Var::GroupKey,
        "alert_count" => Var::AlertCount,
        "firing_count" => Var::FiringCount,
        "resolved_count" => Var::ResolvedCount,
        "firing" => Var::Firing,
        "resolved" => Var::Resolved,
        "external_url" => Var::ExternalUrl,
        "id" => Var::Id,
        "name" => Var::AlertName,
        "index" => Var::Index,
        "host" => Var::Host,
        "source" => Var::Source,
        "severity" => Var::Severity,
        "value" => Var::Value,
        "at" => Var::At,
        "fingerprint" => Var::Fingerprint,
        "starts_at" => Var::StartsAt,
        "ends_at" => Var::EndsAt,
        "delivery" => Var::Delivery,
        _ => return None,
    })
}

fn parse_map(text: &str) -> Option<MapName> {
    Some(match text {
        "labels" => MapName::Labels,
        "annotations" => MapName::Annotations,
        "group_labels" => MapName::GroupLabels,
        "common_labels" => MapName::CommonLabels,
        "common_annotations" => MapName::CommonAnnotations,
        _ => return None,
    })
}

/// One `{{ ... }}` tag or the text between tags.
enum Token<'a> {
    Text(&'a str),
    Tag { body: &'a str, position: usize },
}

fn tokenize(source: &str) -> Result<Vec<Token<'_>>, TemplateError> {
    let mut tokens = Vec::new();
    let mut rest = source;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            tokens.push(Token::Text(&rest[..open]));
        }
        let position = char_position(source, offset + open);
        let after_open = &rest[open + 2..];
        let close = after_open.find("}}").ok_or_else(|| TemplateError {
            position,
            message: "`{{` is never closed by `}}`".to_owned(),
        })?;
        tokens.push(Token::Tag {
            body: after_open[..close].trim(),
            position,
        });
        let consumed = open + 2 + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        tokens.push(Token::Text(rest));
    }
    Ok(tokens)
}

fn char_position(source: &str, byte_offset: usize) -> usize {
    source[..byte_offset].chars().count() + 1
}

/// What ended a block during parsing.
enum BlockEnd {
    Eof,
    End,
    Else,
}

struct Parser<'a> {
    tokens: std::iter::Peekable<std::vec::IntoIter<Token<'a>>>,
}

impl Parser<'_> {
    fn block(
        &mut self,
        in_range: bool,
        opened_at: Option<(usize, &str)>,
    ) -> Result<(Vec<Node>, BlockEnd, usize), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(token) = self.tokens.next() {
            let (body, position) = match token {
                Token::Text(text) => {
                    nodes.push(Node::Text(text.to_owned()));
                    continue;
                }
                Token::Tag { body, position } => (body, position),
            };
            let mut words = body.split_whitespace();
            match words.next() {
                None => {
                    return Err(TemplateError {
                        position,
                        message: "empty `{{ }}`".to_owned(),
                    });
                }
                Some("end") => {
                    return match opened_at {
                        Some(_) => Ok((nodes, BlockEnd::End, position)),
                        None => Err(TemplateError {
                            position,
                            message: "`{{ end }}` without an open `range` or `if`".to_owned(),
                        }),
                    };
                }
                Some("else") => {
                    return match opened_at {
                        Some((_, "if")) => Ok((nodes, BlockEnd::Else, position)),
                        _ => Err(TemplateError {
                            position,
                            message: "`{{ else }}` outside an `{{ if }}`".to_owned(),
                        }),
                    };
                }
                Some("range") => {
                    let over: Vec<&str> = words.collect();
                    if over != ["alerts"] {
                        return Err(TemplateError {
                            position,
                            message: format!(
                                "`range` goes over `alerts` only; got `{{{{ {body} }}}}`"
                            ),
                        });
                    }
                    if in_range {
                        return Err(TemplateError {
                            position,
                            message: "`range alerts` cannot be nested".to_owned(),
                        });
                    }
                    let (inner, end, _) = self.block(true, Some((position, "range")))?;
                    if !matches!(end, BlockEnd::End) {
                        return Err(unclosed(position, "range"));
                    }
                    nodes.push(Node::RangeAlerts(inner));
                }
                Some("if") => {
                    let condition_text = body["if".len()..].trim();
                    let condition = parse_expr(condition_text, position)?;
                    let (then, end, _) = self.block(in_range, Some((position, "if")))?;
                    let otherwise = match end {
                        BlockEnd::End => Vec::new(),
                        BlockEnd::Else => {
                            let (otherwise, end, _) =
                                self.block(in_range, Some((position, "else")))?;
                            if !matches!(end, BlockEnd::End) {
                                return Err(unclosed(position, "if"));
                            }
                            otherwise
                        }
                        BlockEnd::Eof => return Err(unclosed(position, "if")),
                    };
                    nodes.push(Node::If {
                        condition,
                        then,
                        otherwise,
                    });
                }
                Some(_) => nodes.push(Node::Value(parse_expr(body, position)?)),
            }
        }
        match opened_at {
            Some((position, keyword)) => Err(unclosed(position, keyword)),
            None => Ok((nodes, BlockEnd::Eof, 0)),
        }
    }
}

fn unclosed(position: usize, keyword: &str) -> TemplateError {
    TemplateError {
        position,
        message: format!("`{{{{ {keyword} }}}}` is never closed by `{{{{ end }}}}`"),
    }
}

fn parse_expr(text: &str, position: usize) -> Result<Expr, TemplateError> {
    let mut parts = text.split('|').map(str::trim);
    let name_text = parts.next().unwrap_or_default();
    if name_text.is_empty() {
        return Err(TemplateError {
            position,
            message: "expected a name".to_owned(),
        });
    }
    let name = parse_name(name_text).ok_or_else(|| TemplateError {
        position,
        message: format!("unknown name `{name_text}` (known: {NAMES})"),
    })?;
    let filters = parts
        .map(|filter| match filter {
            "upper" => Ok(Filter::Upper),
            "lower" => Ok(Filter::Lower),
            "trim" => Ok(Filter::Trim),
            other => Err(TemplateError {
                position,
                message: format!("unknown filter `{other}` (known: upper, lower, trim)"),
            }),
        })
        .collect::<Result<_, _>>()?;
    Ok(Expr { name, filters })
}

/// What a template is rendered against.
pub struct RenderContext<'a> {
    pub notification: &'a Notification,
    /// Base URL of this alert manager (`externalURL`).
    pub external_url: &'a str,
}

impl Template {
    /// Parses a template; every name and filter is checked here.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let tokens = tokenize(source)?;
        let mut parser = Parser {
            tokens: tokens.into_iter().peekable(),
        };
        let (nodes, _, _) = parser.block(false, None)?;
        Ok(Template { nodes })
    }

    /// Renders against a notification. Never fails.
    pub fn render(&self, context: &RenderContext<'_>) -> String {
        let derived = Derived::of(context.notification);
        let mut out = String::new();
        let first = context.notification.alerts.first();
        render_nodes(&self.nodes, context, &derived, first, false, &mut out);
        out
    }
}

/// Values computed once per render.
struct Derived {
    common_labels: BTreeMap<String, String>,
    common_annotations: BTreeMap<String, String>,
    firing_count: usize,
}

impl Derived {
    fn of(notification: &Notification) -> Derived {
        Derived {
            common_labels: common(notification.alerts.iter().map(|a| &a.alert.labels)),
            common_annotations: common(notification.alerts.iter().map(|a| &a.alert.annotations)),
            firing_count: notification
                .alerts
                .iter()
                .filter(|a| a.status == NotificationStatus::Firing)
                .count(),
        }
    }
}

/// The name/value pairs every map holds identically (Alertmanager's commonLabels).
pub fn common<'a>(
    mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut shared = first.clone();
    for map in maps {
        shared.retain(|name, value| map.get(name) == Some(value));
    }
    shared
}

fn render_nodes(
    nodes: &[Node],
    context: &RenderContext<'_>,
    derived: &Derived,
    alert: Option<&NotifiedAlert>,
    in_range: bool,
    out: &mut String,
) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Value(expr) => out.push_str(&evaluate(expr, context, derived, alert, in_range)),
            Node::RangeAlerts(inner) => {
                for each in &context.notification.alerts {
                    render_nodes(inner, context, derived, Some(each), true, out);
                }
            }
            Node::If {
                condition,
                then,
                otherwise,
            } => {
                let value = evaluate(condition, context, derived, alert, in_range);
                let truthy = !value.is_empty() && value != "0" && value != "false";
                let branch = if truthy { then } else { otherwise };
                render_nodes(branch, context, derived, alert, in_range, out);
            }
        }
    }
}

fn status_word(status: NotificationStatus) -> &'static str {
    match status {
        NotificationStatus::Firing => "firing",
        NotificationStatus::Resolved => "resolved",
    }
}

/// A float as people write it: `93`, `93.5`, never `93.0`.
pub fn format_value(value: f64) -> String {
    format!("{value}")
}

fn join_map(map: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (position, (name, value)) in map.iter().enumerate() {
        if position > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{name}={value}");
    }
    out
}

fn evaluate(
    expr: &Expr,
    context: &RenderContext<'_>,
    derived: &Derived,
    alert: Option<&NotifiedAlert>,
    in_range: bool,
) -> String {
    let notification = context.notification;
    let alert_field = |pick: &dyn Fn(&NotifiedAlert) -> String| alert.map(pick).unwrap_or_default();
    let map_of = |map: &MapName| -> Option<&BTreeMap<String, String>> {
        match map {
            MapName::Labels => alert.map(|a| &a.alert.labels),
            MapName::Annotations => alert.map(|a| &a.alert.annotations),
            MapName::GroupLabels => Some(&notification.group_labels),
            MapName::CommonLabels => Some(&derived.common_labels),
            MapName::CommonAnnotations => Some(&derived.common_annotations),
        }
    };
    let raw = match &expr.name {
        Var::Status if in_range => alert_field(&|a| status_word(a.status).to_owned()),
        Var::Status => status_word(notification.status).to_owned(),
        Var::Receiver => notification.receiver.clone(),
        Var::GroupKey => notification.group_key.clone(),
        Var::AlertCount => notification.alerts.len().to_string(),
        Var::FiringCount => derived.firing_count.to_string(),
        Var::ResolvedCount => (notification.alerts.len() - derived.firing_count).to_string(),
        Var::Firing => (notification.status == NotificationStatus::Firing).to_string(),
        Var::Resolved => (notification.status == NotificationStatus::Resolved).to_string(),
        Var::ExternalUrl => context.external_url.to_owned(),
        Var::Id => notification.id.clone(),
        Var::AlertName => alert_field(&|a| a.alert.name.clone()),
        Var::Index => alert_field(&|a| a.alert.index.clone()),
        Var::Host => alert_field(&|a| a.alert.host.clone()),
        Var::Source => alert_field(&|a| a.alert.source.clone()),
        Var::Severity => alert_field(&|a| a.alert.severity.clone()),
        Var::Value => alert_field(&|a| a.alert.value.map(format_value).unwrap_or_default()),
        Var::At => alert_field(&|a| a.alert.at.clone()),
        Var::Fingerprint => alert_field(&|a| a.alert.fingerprint.clone()),
        Var::StartsAt => alert_field(&|a| rfc3339_ms(a.starts_at_ms)),
        Var::EndsAt => alert_field(&|a| a.ends_at_ms.map(rfc3339_ms).unwrap_or_default()),
        Var::Delivery => alert_field(&|a| a.delivery.to_string()),
        Var::Map(MapName::GroupLabels) => notification
            .group_labels
            .values()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        Var::Map(map) => map_of(map).map(join_map).unwrap_or_default(),
        Var::MapEntry(map, key) => map_of(map)
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default(),
    };
    expr.filters.iter().fold(raw, |value, filter| match filter {
        Filter::Upper => value.to_uppercase(),
        Filter::Lower => value.to_lowercase(),
        Filter::Trim => value.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alertmanager::alert::Alert;

    fn alert(host: &str, value: f64, status: NotificationStatus) -> NotifiedAlert {
        let mut alert = Alert {
            name: "HighMem".into(),
            index: "cluster1".into(),
            host: host.into(),
            source: "api".into(),
            severity: "warning".into(),
            labels: BTreeMap::new(),
            annotations: [("summary".to_owned(), format!("mem used {value} on {host}"))].into(),
            value: Some(value),
            at: "2026-11-21T12:00:00.000Z".into(),
            fingerprint: String::new(),
        };
        alert.complete_labels();
        alert.fingerprint = alert.computed_fingerprint();
        NotifiedAlert {
            alert: std::sync::Arc::new(alert),
            status,
            starts_at_ms: 1_795_262_400_000,
            ends_at_ms: None,
            delivery: 1,
        }
    }

    fn notification(alerts: Vec<NotifiedAlert>) -> Notification {
        let status = if alerts
            .iter()
            .any(|a| a.status == NotificationStatus::Firing)
        {
            NotificationStatus::Firing
        } else {
            NotificationStatus::Resolved
        };
        Notification {
            id: "n1".into(),
            receiver: "ops".into(),
            group_key: "{}:{alertname=\"HighMem\",index=\"cluster1\"}".into(),
            group_labels: [
                ("alertname".to_owned(), "HighMem".to_owned()),
                ("index".to_owned(), "cluster1".to_owned()),
            ]
            .into(),
            status,
            alerts,
            created_at_ms: 0,
            request_id: None,
        }
    }

    fn render(source: &str, n: &Notification) -> String {
        Template::parse(source).unwrap().render(&RenderContext {
            notification: n,
            external_url: "http://am",
        })
    }

    #[test]
    fn default_subject_counts_firing_alerts() {
        let firing = notification(vec![
            alert("host1", 93.0, NotificationStatus::Firing),
            alert("host2", 95.5, NotificationStatus::Firing),
        ]);
        assert_eq!(
            render(DEFAULT_SUBJECT, &firing),
            "[FIRING:2] HighMem cluster1"
        );
        let resolved = notification(vec![alert("host1", 93.0, NotificationStatus::Resolved)]);
        assert_eq!(
            render(DEFAULT_SUBJECT, &resolved),
            "[RESOLVED] HighMem cluster1"
        );
    }

    #[test]
    fn names_outside_range_refer_to_the_first_alert() {
        let n = notification(vec![
            alert("host1", 93.0, NotificationStatus::Firing),
            alert("host2", 95.5, NotificationStatus::Firing),
        ]);
        assert_eq!(
            render(
                "{{labels.host}} {{ value }} {{ status|upper }} {{ labels.nope }}.",
                &n
            ),
            "host1 93 FIRING ."
        );
        assert_eq!(
            render("{{ range alerts }}{{ host }}={{ value }};{{ end }}", &n),
            "host1=93;host2=95.5;"
        );
        assert_eq!(
            render("{{ common_labels }}", &n),
            "alertname=HighMem, index=cluster1, severity=warning, source=api"
        );
    }

    #[test]
    fn conditions_and_else() {
        let n = notification(vec![alert("host1", 93.0, NotificationStatus::Resolved)]);
        assert_eq!(
            render(
                "{{ if firing }}F{{ else }}R{{ if ends_at }}x{{ end }}{{ end }}",
                &n
            ),
            "R"
        );
    }

    #[test]
    fn errors_name_the_problem_and_position() {
        let error = Template::parse("Host {{ lables.host }}").unwrap_err();
        assert_eq!(error.position, 6);
        assert!(
            error.message.contains("unknown name `lables.host`"),
            "{error}"
        );
        let error = Template::parse("{{ value | shout }}").unwrap_err();
        assert!(error.message.contains("unknown filter `shout`"), "{error}");
        let error = Template::parse("a {{ range alerts }}b").unwrap_err();
        assert!(error.message.contains("never closed"), "{error}");
        let error = Template::parse("a {{ value").unwrap_err();
        assert!(error.message.contains("never closed by `}}`"), "{error}");
        let error = Template::parse("{{ end }}").unwrap_err();
        assert!(error.message.contains("without an open"), "{error}");
        assert!(Template::parse("{{ range hosts }}{{ end }}").is_err());
        assert!(Template::parse(DEFAULT_BODY).is_ok());
        assert!(Template::parse(DEFAULT_CHAT_TEXT).is_ok());
    }
}
