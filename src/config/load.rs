//! The steps every config loader shares: read the file (naming it in the error), parse the YAML,
//! run the type's semantic checks and give each problem its line. It must never hand back a value
//! whose checks failed, nor a problem without the file it came from.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::error::{ConfigError, Problems};

/// The text of a config file and its name as errors should show it.
pub(crate) fn read_config(path: &Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => Ok((source, file)),
        Err(source) => Err(ConfigError::Read { file, source }),
    }
}

/// Parses YAML text as `T`, then runs `validate` on it; `file` names the source in errors and
/// each problem is given its line in `source`.
pub(crate) fn parse_validated<T: DeserializeOwned>(
    source: &str,
    file: &str,
    validate: impl FnOnce(&T) -> Result<(), Problems>,
) -> Result<T, ConfigError> {
    let config: T = serde_yaml_ng::from_str(source)
        .map_err(|error| ConfigError::from_yaml(file, source, &error))?;
    validate(&config).map_err(|problems| ConfigError::Invalid {
        file: file.to_owned(),
        problems: problems.locate(source),
    })?;
    Ok(config)
}
