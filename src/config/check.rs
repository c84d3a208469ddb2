//! `monitorctl check-config`: tells which program a config file is for (or takes the caller's
//! word for it), loads it with that program's loader and returns the warnings an operator should
//! read. It must never call a file valid that the program itself would refuse: it runs the very
//! same loaders.

use std::fmt;
use std::path::Path;

use super::alert::AlertManagerConfig;
use super::api::ApiConfig;
use super::error::ConfigError;
use super::load::read_config;

/// Which program a config file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// `monitor-api` (has `groups`).
    Api,
    /// `monitor-alert-manager` (has `receivers`, `routes`, `monitor_api` or a suppression key).
    AlertManager,
    /// A `rules_file` (has `rules`), checked by the rules engine's loader.
    Rules,
}

impl fmt::Display for ConfigKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigKind::Api => "monitor-api",
            ConfigKind::AlertManager => "monitor-alert-manager",
            ConfigKind::Rules => "rules",
        })
    }
}

/// The outcome of a successful check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// What the file was checked as.
    pub kind: ConfigKind,
    /// Allowed but noteworthy (e.g. open access on a public address).
    pub warnings: Vec<String>,
}

const ALERT_MANAGER_KEYS: &[&str] = &[
    "receivers",
    "routes",
    "monitor_api",
    "reissue_duration",
    "success_duration",
    "occurrences",
    "default_receiver",
];

/// Checks a config file as `kind`, or as whatever its top-level keys say it is.
pub fn check_config_file(
    path: impl AsRef<Path>,
    kind: Option<ConfigKind>,
) -> Result<CheckReport, ConfigError> {
    let (source, file) = read_config(path.as_ref())?;
    let kind = match kind {
        Some(kind) => kind,
        None => detect_kind(&source, &file)?,
    };
    let warnings = match kind {
        ConfigKind::Api => ApiConfig::from_yaml_str(&source, &file)?.warnings(),
        ConfigKind::AlertManager => {
            let config = AlertManagerConfig::from_yaml_str(&source, &file)?;
            if config.monitor_api.is_empty() {
                vec!["monitor_api is empty: host liveness is unknown, so no Success message will ever be sent".to_owned()]
            } else {
                Vec::new()
            }
        }
        ConfigKind::Rules => {
            // The rules engine's own loader: every rule checked as `monitor-api` would.
            crate::rules::RulesFile::from_yaml_str(&source, &file)?;
            Vec::new()
        }
    };
    Ok(CheckReport { kind, warnings })
}

fn detect_kind(source: &str, file: &str) -> Result<ConfigKind, ConfigError> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(source)
        .map_err(|error| ConfigError::from_yaml(file, source, &error))?;
    let has = |key: &str| value.get(key).is_some();
    if has("groups") {
        Ok(ConfigKind::Api)
    } else if has("rules") {
        Ok(ConfigKind::Rules)
    } else if ALERT_MANAGER_KEYS.iter().any(|key| has(key)) {
        Ok(ConfigKind::AlertManager)
    } else {
        Err(ConfigError::Syntax {
            file: file.to_owned(),
            line: None,
            column: None,
            message:
                "cannot tell which program this config is for: a monitor-api config has `groups`, \
                      an alert manager config has `receivers`/`routes`, a rules file has `rules`"
                    .to_owned(),
        })
    }
}
