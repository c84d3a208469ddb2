//! What every handler shares: the live configuration, shard map, access table, the write
//! pipeline and the metrics. Handlers take snapshots at the start of a request and keep them to
//! the end, so a reload never changes a request half-way.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{ApiConfig, load_api_config};
use crate::protocol::Classifier;
use crate::replication::pipeline::Pipeline;
use axum::http::{HeaderMap, header};

use crate::shard::{Access, AccessError, Principal, ReloadOutcome, ShardMapStore, Shared};
use crate::telemetry::metrics::ApiMetrics;

pub struct AppState {
    /// The file the config came from, for reloads (absent in tests that build configs inline).
    pub config_path: Option<PathBuf>,
    pub config: Shared<ApiConfig>,
    pub shardmap: ShardMapStore,
    pub access: Shared<Access>,
    pub pipeline: Arc<Pipeline>,
    pub metrics: Arc<ApiMetrics>,
    /// Fixed at start: the index tag and measurement names decide where data went, so changing
    /// them needs a restart.
    pub classifier: Classifier,
    /// Rules, host registry, outbox and derived metrics (issue 5).
    pub rules: Arc<crate::rules::RulesRuntime>,
}

impl AppState {
    /// Who is asking, from the request's `Authorization` header or its `p` (password)
    /// parameter, against the access table of this moment. Every endpoint that checks access
    /// starts here.
    pub fn identify(
        &self,
        headers: &HeaderMap,
        password: Option<&str>,
    ) -> Result<Principal, AccessError> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.access.snapshot().identify(authorization, password)
    }

    /// Re-reads the config file and applies what can change at run time: the shard map
    /// (unless changed through the API since; see `ShardMapStore`), tokens and limits.
    pub fn reload(&self) -> Result<String, String> {
        let Some(path) = &self.config_path else {
            return Err("no config file to reload from".to_owned());
        };
        let new = load_api_config(path).map_err(|e| e.to_string())?;
        // A bad rules file refuses the whole reload: the running rules stay in place.
        let rules = self.rules.prepare(&new).map_err(|e| e.to_string())?;
        let access = Access::from_config(&new).map_err(|e| e.to_string())?;
        let outcome = self.shardmap.reload(&new).map_err(|e| e.to_string())?;
        self.pipeline
            .apply_map(&self.shardmap.snapshot())
            .map_err(|e| e.to_string())?;
        let old = self.config.snapshot();
        let needs_restart = old.restart_required(&new);
        self.access.swap(Arc::new(access));
        self.config.swap(Arc::new(new));
        let rule_count = self.rules.apply(rules).map_err(|e| e.to_string())?;
        let map = match outcome {
            ReloadOutcome::Unchanged(map) => {
                format!("shard map unchanged (version {})", map.version())
            }
            ReloadOutcome::Replaced(map) => {
                format!("shard map replaced (now version {})", map.version())
            }
        };
        let mut message = format!("reloaded {}: {map}; {rule_count} rules", path.display());
        if !needs_restart.is_empty() {
            message.push_str(&format!(
                "; these keys changed but take effect only after a restart: {}",
                needs_restart.join(", ")
            ));
        }
        Ok(message)
    }
}
