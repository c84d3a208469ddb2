//! The `monitor-alert-manager` config file: listen address, state directory, suppression
//! durations, receivers and routes, plus the label matcher syntax routes use. It must never
//! accept a route to a receiver that does not exist, or a receiver that cannot deliver anywhere.

use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::api::check_http_url;
use super::error::{ConfigError, Problems};
use super::load::{parse_validated, read_config};
use super::locate::KeyPath;
use super::units::HumanDuration;
use crate::alertmanager::notify::template::Template;

/// N sightings within a window before an alert is delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OccurrencesConfig {
    /// Sightings needed. Default 1 (deliver on first sight).
    pub count: u32,
    /// Window the sightings must fall in. Default 5m.
    pub window: HumanDuration,
}

impl Default for OccurrencesConfig {
    fn default() -> Self {
        Self {
            count: 1,
            window: HumanDuration::from_secs(300),
        }
    }
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (local relays and test sinks only).
    None,
    /// Upgrade with STARTTLS (default).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// Email delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Recipients. At least one.
    pub to: Vec<String>,
    /// Sender address.
    pub from: String,
    /// SMTP server `host:port`.
    pub smarthost: String,
    /// SMTP user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `none`, `starttls` (default) or `tls`.
    #[serde(default)]
    pub tls: SmtpTls,
    /// Accept a certificate that does not verify (self-signed internal relays). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls_insecure_skip_verify: bool,
    /// Name sent in EHLO. Default: this machine's hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello_name: Option<String>,
    /// Connection and command timeout. Default 10s.
    #[serde(default = "default_notify_timeout")]
    pub timeout: HumanDuration,
    /// Subject template (see notify/template.rs). Default `[FIRING:2] HighMem cluster1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Body template. Default: one paragraph per alert with summary, value and labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Webhook delivery (Alertmanager-compatible JSON body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Target URL.
    pub url: String,
    /// Sent as `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    /// Request timeout. Default 10s.
    #[serde(default = "default_notify_timeout")]
    pub timeout: HumanDuration,
}

/// Chat delivery (Slack incoming-webhook format; Mattermost and others accept it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Incoming webhook URL.
    pub url: String,
    /// Channel override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Message text template. Default: the subject line, then one line per alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Request timeout. Default 10s.
    #[serde(default = "default_notify_timeout")]
    pub timeout: HumanDuration,
}

fn default_notify_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

/// A named destination: any combination of email, webhook and chat, at least one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Name routes refer to.
    pub name: String,
    /// Email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailConfig>,
    /// Webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
    /// Chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatConfig>,
    /// At most `count` messages per `per` on each channel of this receiver; more wait their
    /// turn in the outbox (they are delayed, never dropped). Default: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
}

/// A token bucket: bursts of up to `count`, refilled at `count` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Messages per period. At least 1.
    pub count: u32,
    /// The period, e.g. `1m`.
    pub per: HumanDuration,
}

/// Label matchers -> receiver. Routes are tried in order; the first match delivers unless it says
/// `continue: true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver name.
    pub receiver: String,
    /// Alertmanager matcher syntax: `severity="critical"`, `index=~"eu-.*"`, `host!="h1"`,
    /// `alertname!~"Test.*"`. All must match. Empty: matches every alert.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Keep trying later routes after this one matched. Default false.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Labels alerts are grouped by for one notification. Default `[alertname, index]`.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    /// Wait before the first notification of a new group. Default: the top-level `group_wait`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_wait: Option<HumanDuration>,
    /// Sightings needed before delivery for alerts this route matches. Default: the top-level
    /// `occurrences`. When several routes match, the first one that sets it decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrences: Option<OccurrencesConfig>,
}

fn default_group_by() -> Vec<String> {
    vec!["alertname".to_owned(), "index".to_owned()]
}

/// Outbox retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// First retry delay. Default 1s.
    pub retry_backoff_min: HumanDuration,
    /// Retry delay cap (honours `Retry-After`). Default 5m.
    pub retry_backoff_max: HumanDuration,
    /// After this long undelivered, a notification goes to the dead letter. Default 24h.
    pub give_up_after: HumanDuration,
    /// A refusal that retrying will not cure (HTTP 4xx other than 408/429, SMTP 5xx) is tried
    /// this many times in all, then dead-lettered. Default 3.
    pub permanent_failure_attempts: u32,
    /// How long the notification log remembers a delivered id (a re-enqueued duplicate within
    /// this window is not sent again). At least `give_up_after`. Default 7d.
    pub log_retention: HumanDuration,
    /// A busy channel records this many deliveries in one durable commit (and always before it
    /// waits). A crash before the record re-sends them after restart with the same id; 1 records
    /// each delivery before the next is sent (one fsync per notification). Default 32.
    pub record_batch: u32,
    /// Deliveries are recorded at the latest this long after the first of a batch. Default 50ms.
    pub record_within: HumanDuration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            retry_backoff_min: HumanDuration::from_secs(1),
            retry_backoff_max: HumanDuration::from_secs(300),
            give_up_after: HumanDuration::from_secs(86_400),
            permanent_failure_attempts: 3,
            log_retention: HumanDuration::from_secs(7 * 86_400),
            record_batch: 32,
            record_within: HumanDuration::from_millis(50),
        }
    }
}

/// The whole `monitor-alert-manager` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertManagerConfig {
    /// Address to listen on. Default `127.0.0.1:9193`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Embedded store. Default `./data/alert-manager`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// monitor-api base URLs asked about host liveness. Default none (then no Success messages
    /// are ever sent: silence is not recovery).
    #[serde(default)]
    pub monitor_api: Vec<String>,
    /// A delivered alert is suppressed until this passes, then delivered again. Default 1h.
    #[serde(default = "default_reissue")]
    pub reissue_duration: HumanDuration,
    /// An issued alert not seen for this long on an Active host gets a Success message. Default 10m.
    #[serde(default = "default_success")]
    pub success_duration: HumanDuration,
    /// Sightings needed before delivery.
    #[serde(default)]
    pub occurrences: OccurrencesConfig,
    /// Wait before the first notification of a new group. Default 30s.
    #[serde(default = "default_group_wait")]
    pub group_wait: HumanDuration,
    /// This alert manager's URL as people reach it, sent as `externalURL` in webhooks.
    /// Default `http://` + `listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    /// Destinations.
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// Label matchers -> receivers, tried in order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Receiver for alerts no route matches. Default none: such alerts are logged and counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_receiver: Option<String>,
    /// Delivery retries.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// How long a host-liveness answer from monitor-api is reused. Default 10s.
    #[serde(default = "default_host_cache_ttl")]
    pub host_cache_ttl: HumanDuration,
    /// How often issued alerts are checked for SuccessDuration. Default 1s.
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval: HumanDuration,
    /// An alert sent without an end (`/api/v1/alerts`, or a v2 alert without `endsAt`) is shown
    /// as active this long after its last sighting. Default 5m, as Alertmanager.
    #[serde(default = "default_resolve_timeout")]
    pub resolve_timeout: HumanDuration,
    /// An alert record (not issued) not seen for this long is forgotten. Default 24h.
    #[serde(default = "default_alert_retention")]
    pub alert_retention: HumanDuration,
    /// Log level (tracing filter syntax); `MONITOR_LOG` overrides. Default `info`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

fn default_host_cache_ttl() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_sweep_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_resolve_timeout() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_alert_retention() -> HumanDuration {
    HumanDuration::from_secs(86_400)
}
fn default_log_level() -> String {
    "info".to_owned()
}

fn default_listen() -> String {
    "127.0.0.1:9193".to_owned()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./data/alert-manager")
}
fn default_reissue() -> HumanDuration {
    HumanDuration::from_secs(3600)
}
fn default_success() -> HumanDuration {
    HumanDuration::from_secs(600)
}
fn default_group_wait() -> HumanDuration {
    HumanDuration::from_secs(30)
}

impl AlertManagerConfig {
    /// Parses and validates YAML text; `file` names the source in errors.
    pub fn from_yaml_str(source: &str, file: &str) -> Result<Self, ConfigError> {
        parse_validated(source, file, Self::validate)
    }

    /// Every semantic problem with its key path.
    pub fn validate(&self) -> Result<(), Problems> {
        let root = KeyPath::root();
        let mut problems = Problems::default();
        let listen_ok = self
            .listen
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !listen_ok {
            problems.push(
                &root.key("listen"),
                format!(
                    "expected \"host:port\", e.g. \"127.0.0.1:9193\"; got {:?}",
                    self.listen
                ),
            );
        }
        if self.data_dir.as_os_str().is_empty() {
            problems.push(&root.key("data_dir"), "must not be empty");
        }
        for (position, url) in self.monitor_api.iter().enumerate() {
            if let Err(message) = check_http_url(url) {
                problems.push(&root.key("monitor_api").index(position), message);
            }
        }
        for (key, value) in [
            ("reissue_duration", self.reissue_duration),
            ("success_duration", self.success_duration),
            ("sweep_interval", self.sweep_interval),
            ("resolve_timeout", self.resolve_timeout),
            ("alert_retention", self.alert_retention),
        ] {
            if value.is_zero() {
                problems.push(&root.key(key), "must be longer than 0s");
            }
        }
        check_occurrences(&self.occurrences, &root.key("occurrences"), &mut problems);
        for (position, receiver) in self.receivers.iter().enumerate() {
            validate_receiver(
                receiver,
                &self.receivers[..position],
                &root.key("receivers").index(position),
                &mut problems,
            );
        }
        let known = || {
            self.receivers
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (position, route) in self.routes.iter().enumerate() {
            let path = root.key("routes").index(position);
            if !self.receivers.iter().any(|r| r.name == route.receiver) {
                problems.push(
                    &path.key("receiver"),
                    format!(
                        "unknown receiver {:?} (receivers: {})",
                        route.receiver,
                        known()
                    ),
                );
            }
            for (item, matcher) in route.matchers.iter().enumerate() {
                if let Err(error) = Matcher::parse(matcher) {
                    problems.push(&path.key("matchers").index(item), error.to_string());
                }
            }
            if let Some(occurrences) = &route.occurrences {
                check_occurrences(occurrences, &path.key("occurrences"), &mut problems);
            }
        }
        if let Some(name) = &self.default_receiver
            && !self.receivers.iter().any(|r| &r.name == name)
        {
            problems.push(
                &root.key("default_receiver"),
                format!("unknown receiver {name:?} (receivers: {})", known()),
            );
        }
        problems.require_at_least(
            &root.key("outbox").key("retry_backoff_max"),
            self.outbox.retry_backoff_max,
            "outbox.retry_backoff_min",
            self.outbox.retry_backoff_min,
        );
        if let Some(url) = &self.external_url
            && let Err(message) = check_http_url(url)
        {
            problems.push(&root.key("external_url"), message);
        }
        if self.outbox.permanent_failure_attempts == 0 {
            problems.push(
                &root.key("outbox").key("permanent_failure_attempts"),
                "must be at least 1",
            );
        }
        if self.outbox.record_batch == 0 {
            problems.push(
                &root.key("outbox").key("record_batch"),
                "must be at least 1 (1 records every delivery before the next is sent)",
            );
        }
        problems.require_at_least(
            &root.key("outbox").key("log_retention"),
            self.outbox.log_retention,
            "outbox.give_up_after",
            self.outbox.give_up_after,
        );
        problems.into_result()
    }

    /// The URL sent as `externalURL` and offered to templates.
    pub fn external_url(&self) -> String {
        self.external_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

fn check_occurrences(occurrences: &OccurrencesConfig, path: &KeyPath, problems: &mut Problems) {
    if occurrences.count == 0 {
        problems.push(&path.key("count"), "must be at least 1");
    }
    if occurrences.window.is_zero() {
        problems.push(&path.key("window"), "must be longer than 0s");
    }
}

fn check_template(source: Option<&str>, path: &KeyPath, problems: &mut Problems) {
    if let Some(source) = source
        && let Err(error) = Template::parse(source)
    {
        problems.push(path, error.to_string());
    }
}

fn validate_receiver(
    receiver: &ReceiverConfig,
    earlier: &[ReceiverConfig],
    path: &KeyPath,
    problems: &mut Problems,
) {
    if receiver.name.is_empty() {
        problems.push(&path.key("name"), "must not be empty");
    } else if let Some(first) = earlier.iter().position(|r| r.name == receiver.name) {
        problems.push(
            &path.key("name"),
            format!("duplicate of receivers[{first}].name {:?}", receiver.name),
        );
    }
    if receiver.email.is_none() && receiver.webhook.is_none() && receiver.chat.is_none() {
        problems.push(
            path,
            "delivers nowhere: give it `email`, `webhook` or `chat`",
        );
    }
    if let Some(email) = &receiver.email {
        let path = path.key("email");
        if email.to.is_empty() {
            problems.push(&path.key("to"), "needs at least one address");
        }
        for (position, address) in email.to.iter().enumerate() {
            if !looks_like_address(address) {
                problems.push(
                    &path.key("to").index(position),
                    format!("not an email address: {address:?}"),
                );
            }
        }
        if !looks_like_address(&email.from) {
            problems.push(
                &path.key("from"),
                format!("not an email address: {:?}", email.from),
            );
        }
        let smarthost_ok = email
            .smarthost
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !smarthost_ok {
            problems.push(
                &path.key("smarthost"),
                format!("expected \"host:port\"; got {:?}", email.smarthost),
            );
        }
        if email.password.is_some() && email.username.is_none() {
            problems.push(&path.key("password"), "`password` needs `username`");
        }
        if email.username.is_some() && email.password.is_none() {
            problems.push(&path.key("username"), "`username` needs `password`");
        }
        check_template(email.subject.as_deref(), &path.key("subject"), problems);
        check_template(email.body.as_deref(), &path.key("body"), problems);
    }
    if let Some(chat) = &receiver.chat {
        check_template(
            chat.text.as_deref(),
            &path.key("chat").key("text"),
            problems,
        );
    }
    if let Some(limit) = &receiver.rate_limit {
        if limit.count == 0 {
            problems.push(&path.key("rate_limit").key("count"), "must be at least 1");
        }
        if limit.per.is_zero() {
            problems.push(&path.key("rate_limit").key("per"), "must be longer than 0s");
        }
    }
    if let Some(webhook) = &receiver.webhook
        && let Err(message) = check_http_url(&webhook.url)
    {
        problems.push(&path.key("webhook").key("url"), message);
    }
    if let Some(chat) = &receiver.chat
        && let Err(message) = check_http_url(&chat.url)
    {
        problems.push(&path.key("chat").key("url"), message);
    }
}

fn looks_like_address(address: &str) -> bool {
    // Full RFC 5322 parsing is the mailer's job; this catches a missing or doubled `@`.
    let address = address
        .rsplit_once('<')
        .map_or(address, |(_, rest)| rest.trim_end_matches('>'));
    matches!(address.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
}

/// How a matcher compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (anchored regex)
    Regex,
    /// `!~`
    NotRegex,
}

/// One parsed label matcher, Alertmanager syntax: `name="value"`, `name!=value`, `name=~"re"`,
/// `name!~"re"`. Regexes are anchored (match the whole value), as in Alertmanager. A missing label
/// compares as the empty string.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Comparison.
    pub op: MatchOp,
    /// Value or regex source.
    pub value: String,
    regex: Option<Regex>,
}

/// A matcher that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    /// No operator or no label name.
    #[error(
        "invalid matcher {0:?}: expected name=\"value\", name!=\"value\", name=~\"regex\" or name!~\"regex\""
    )]
    Syntax(String),
    /// The regex does not compile.
    #[error("invalid matcher {matcher:?}: bad regex: {reason}")]
    BadRegex {
        /// The matcher text.
        matcher: String,
        /// Why.
        reason: String,
    },
}

impl Matcher {
    /// A matcher from its parts (the JSON shapes of ignore rules and silences); regexes are
    /// compiled and anchored as in [`Matcher::parse`].
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, MatcherError> {
        let written = format!("{name}{}{value:?}", op.as_str());
        Self::from_parts(name, op, value.to_owned(), &written)
    }

    /// Parses one matcher.
    pub fn parse(text: &str) -> Result<Self, MatcherError> {
        let syntax = || MatcherError::Syntax(text.to_owned());
        let op_start = text.find(['=', '!']).ok_or_else(syntax)?;
        let name = text[..op_start].trim();
        let rest = &text[op_start..];
        let (op, value) = if let Some(value) = rest.strip_prefix("=~") {
            (MatchOp::Regex, value)
        } else if let Some(value) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, value)
        } else if let Some(value) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, value)
        } else if let Some(value) = rest.strip_prefix('=') {
            (MatchOp::Equal, value)
        } else {
            return Err(syntax());
        };
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(inner) => inner
                .strip_suffix('"')
                .ok_or_else(syntax)?
                .replace("\\\"", "\""),
            None => value.to_owned(),
        };
        Self::from_parts(name, op, value, text)
    }

    /// Checks the label name and compiles an anchored regex for `=~`/`!~`; errors quote
    /// `written`, the matcher as the operator gave it.
    fn from_parts(
        name: &str,
        op: MatchOp,
        value: String,
        written: &str,
    ) -> Result<Self, MatcherError> {
        let valid_name =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(MatcherError::Syntax(written.to_owned()));
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(Regex::new(&format!("^(?:{value})$")).map_err(|error| {
                    MatcherError::BadRegex {
                        matcher: written.to_owned(),
                        reason: error
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or_default()
                            .trim()
                            .to_owned(),
                    }
                })?)
            }
            _ => None,
        };
        Ok(Self {
            name: name.to_owned(),
            op,
            value,
            regex,
        })
    }

    /// Whether a label value (None when the alert lacks the label) satisfies the matcher.
    pub fn matches(&self, label_value: Option<&str>) -> bool {
        let value = label_value.unwrap_or("");
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(regex)) => regex.is_match(value),
            (MatchOp::NotRegex, Some(regex)) => !regex.is_match(value),
            _ => false,
        }
    }
}

impl MatchOp {
    /// The operator as written: `=`, `!=`, `=~`, `!~`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }

    /// The operator from its written form.
    pub fn from_str_op(text: &str) -> Option<Self> {
        match text {
            "=" => Some(MatchOp::Equal),
            "!=" => Some(MatchOp::NotEqual),
            "=~" => Some(MatchOp::Regex),
            "!~" => Some(MatchOp::NotRegex),
            _ => None,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

/// Loads and validates a `monitor-alert-manager` config file.
pub fn load_alert_manager_config(
    path: impl AsRef<Path>,
) -> Result<AlertManagerConfig, ConfigError> {
    let (source, file) = read_config(path.as_ref())?;
    AlertManagerConfig::from_yaml_str(&source, &file)
}
