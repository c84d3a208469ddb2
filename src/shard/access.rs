//! Who may write and read which index: tokens from the config, each with `write`/`read` index
//! selectors and an `admin` flag, or open access when no token is configured. Also extracts the
//! token from the ways InfluxDB clients send credentials. It must never grant by default when
//! tokens are configured, and never put a token's secret in an error or a log.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine;
use regex::bytes::RegexSet;

use crate::config::{ApiConfig, KeyPath, Problems, SelectorKind, TokenConfig, parse_selector};

/// What a request wants to do with an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Write lines.
    Write,
    /// Query.
    Read,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Write => "write",
            Action::Read => "read",
        })
    }
}

/// Why a request was not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// Tokens are configured and none was sent (401).
    #[error("authorization failed: a token is required (Authorization: Token <token>)")]
    MissingToken,
    /// The token sent is not configured (401).
    #[error("authorization failed: unknown token")]
    UnknownToken,
    /// The credentials could not be read (401).
    #[error("authorization failed: {0}")]
    Malformed(String),
    /// The token may not do this to this index (403).
    #[error("forbidden: this token may not {action} index {index:?}")]
    Forbidden {
        /// The index.
        index: String,
        /// What was attempted.
        action: Action,
    },
    /// The token is not an admin token (403).
    #[error("forbidden: this token is not an admin token")]
    NotAdmin,
}

impl AccessError {
    /// 401 for credential problems, 403 for a known token without the right.
    pub fn http_status(&self) -> u16 {
        match self {
            AccessError::MissingToken | AccessError::UnknownToken | AccessError::Malformed(_) => {
                401
            }
            AccessError::Forbidden { .. } | AccessError::NotAdmin => 403,
        }
    }
}

/// A compiled set of index selectors.
#[derive(Debug, Default)]
struct IndexSet {
    any: bool,
    exact: HashSet<Box<[u8]>>,
    patterns: Option<RegexSet>,
}

impl IndexSet {
    fn compile(selectors: &[String], path: &KeyPath, problems: &mut Problems) -> Self {
        let mut set = IndexSet::default();
        let mut regexes = Vec::new();
        for (position, selector) in selectors.iter().enumerate() {
            match parse_selector(selector) {
                Ok(SelectorKind::Any) => set.any = true,
                Ok(SelectorKind::Exact(name)) => {
                    set.exact.insert(name.into_bytes().into_boxed_slice());
                }
                Ok(SelectorKind::Pattern { regex, .. }) => regexes.push(regex),
                Err(error) => problems.push(&path.index(position), error.to_string()),
            }
        }
        if !regexes.is_empty() {
            match RegexSet::new(&regexes) {
                Ok(patterns) => set.patterns = Some(patterns),
                Err(error) => {
                    problems.push(path, format!("patterns do not compile together: {error}"))
                }
            }
        }
        set
    }

    fn contains(&self, index: &[u8]) -> bool {
        self.any
            || self.exact.contains(index)
            || self.patterns.as_ref().is_some_and(|p| p.is_match(index))
    }
}

/// What one token may do.
#[derive(Debug)]
pub struct Grants {
    name: Option<String>,
    write: IndexSet,
    read: IndexSet,
    admin: bool,
}

impl Grants {
    /// The token's configured label (for logs and metrics).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether it may write `index`.
    pub fn can_write(&self, index: &[u8]) -> bool {
        self.write.contains(index)
    }

    /// Whether it may read `index`.
    pub fn can_read(&self, index: &[u8]) -> bool {
        self.read.contains(index)
    }

    /// Whether it may change the shard map and reload.
    pub fn is_admin(&self) -> bool {
        self.admin
    }
}

/// Who a request is, once authenticated. Owned (the grants are shared), so a request keeps it
/// without holding on to the access table it came from.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Open access: everything is allowed.
    Open,
    /// A configured token.
    Token(Arc<Grants>),
}

impl Principal {
    /// Checks one action on one index.
    pub fn check(&self, action: Action, index: &[u8]) -> Result<(), AccessError> {
        let allowed = match self {
            Principal::Open => true,
            Principal::Token(grants) => match action {
                Action::Write => grants.can_write(index),
                Action::Read => grants.can_read(index),
            },
        };
        if allowed {
            Ok(())
        } else {
            Err(AccessError::Forbidden {
                index: String::from_utf8_lossy(index).into_owned(),
                action,
            })
        }
    }

    /// May it use the admin API (shard map, reload)?
    pub fn check_admin(&self) -> Result<(), AccessError> {
        match self {
            Principal::Open => Ok(()),
            Principal::Token(grants) if grants.admin => Ok(()),
            Principal::Token(_) => Err(AccessError::NotAdmin),
        }
    }

    /// May it read every index (a query or search that names none)?
    pub fn reads_everything(&self) -> bool {
        match self {
            Principal::Open => true,
            Principal::Token(grants) => grants.read.any,
        }
    }

    /// The token label for logs (`open` in open mode, `token` for an unnamed token).
    pub fn label(&self) -> &str {
        match self {
            Principal::Open => "open",
            Principal::Token(grants) => grants.name().unwrap_or("token"),
        }
    }
}

/// The access table built from the config's `tokens`. Open when no token is configured.
#[derive(Debug)]
pub struct Access {
    tokens: HashMap<String, Arc<Grants>>,
}

impl Access {
    /// Builds the table (the config is expected to be validated; problems are reported anyway).
    pub fn from_config(config: &ApiConfig) -> Result<Self, Problems> {
        Self::from_tokens(&config.tokens)
    }

    /// Builds the table from token entries.
    pub fn from_tokens(tokens: &[TokenConfig]) -> Result<Self, Problems> {
        let mut problems = Problems::default();
        let mut table = HashMap::with_capacity(tokens.len());
        for (position, token) in tokens.iter().enumerate() {
            let path = KeyPath::root().key("tokens").index(position);
            let grants = Grants {
                name: token.name.clone(),
                write: IndexSet::compile(&token.write, &path.key("write"), &mut problems),
                read: IndexSet::compile(&token.read, &path.key("read"), &mut problems),
                admin: token.admin,
            };
            if token.token.is_empty() {
                problems.push(&path.key("token"), "must not be empty");
            } else if table
                .insert(token.token.clone(), Arc::new(grants))
                .is_some()
            {
                problems.push(&path.key("token"), "duplicate token");
            }
        }
        problems.into_result()?;
        Ok(Self { tokens: table })
    }

    /// Open access (no tokens).
    pub fn open() -> Self {
        Self {
            tokens: HashMap::new(),
        }
    }

    /// True when every request is allowed everything.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Identifies the caller from the token it sent (see [`extract_token`]).
    pub fn authenticate(&self, token: Option<&str>) -> Result<Principal, AccessError> {
        if self.is_open() {
            return Ok(Principal::Open);
        }
        let token = token.ok_or(AccessError::MissingToken)?;
        self.tokens
            .get(token)
            .map(|grants| Principal::Token(Arc::clone(grants)))
            .ok_or(AccessError::UnknownToken)
    }

    /// Identifies a request from its credentials as clients send them: the `Authorization`
    /// header's value if any, else the `p` (password) parameter. See [`extract_token`].
    pub fn identify(
        &self,
        authorization: Option<&str>,
        password: Option<&str>,
    ) -> Result<Principal, AccessError> {
        let token = extract_token(authorization, password)?;
        self.authenticate(token.as_deref())
    }

    /// May this token write `index`?
    pub fn check_write(&self, token: Option<&str>, index: &[u8]) -> Result<(), AccessError> {
        self.authenticate(token)?.check(Action::Write, index)
    }

    /// May this token read `index`?
    pub fn check_read(&self, token: Option<&str>, index: &[u8]) -> Result<(), AccessError> {
        self.authenticate(token)?.check(Action::Read, index)
    }

    /// May this token use the admin API (shard map, reload)?
    pub fn check_admin(&self, token: Option<&str>) -> Result<(), AccessError> {
        self.authenticate(token)?.check_admin()
    }
}

/// The token a request carries, from the `Authorization` header value if present, else from the
/// `p` query parameter (InfluxDB v1 `u`/`p`; the user name is ignored). Header schemes: `Token`,
/// `Bearer` (InfluxDB v2 and most clients) and `Basic` (the password is the token). Empty values
/// count as absent.
pub fn extract_token<'a>(
    authorization: Option<&'a str>,
    password_param: Option<&'a str>,
) -> Result<Option<Cow<'a, str>>, AccessError> {
    let Some(header) = authorization.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(password_param.filter(|p| !p.is_empty()).map(Cow::Borrowed));
    };
    let (scheme, credentials) = header.split_once(' ').unwrap_or((header, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
        return Ok((!credentials.is_empty()).then_some(Cow::Borrowed(credentials)));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .map_err(|_| {
                AccessError::Malformed("Basic credentials are not valid base64".to_owned())
            })?;
        let text = String::from_utf8(decoded)
            .map_err(|_| AccessError::Malformed("Basic credentials are not UTF-8".to_owned()))?;
        let (_, password) = text
            .split_once(':')
            .ok_or_else(|| AccessError::Malformed("Basic credentials lack a ':'".to_owned()))?;
        return Ok((!password.is_empty()).then(|| Cow::Owned(password.to_owned())));
    }
    Err(AccessError::Malformed(format!(
        "unsupported authorization scheme {scheme:?} (use Token, Bearer or Basic)"
    )))
}
