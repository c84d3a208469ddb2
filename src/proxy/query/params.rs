//! The parameters of a `/query` request as InfluxDB reads them: form body values first, then the
//! URL's, the first of each name winning (Go's `FormValue`). It never accepts a chunk size of 0.

use serde_json::Value;

/// Rows per chunk of a `chunked=true` answer when the client gives no `chunk_size` (InfluxDB's
/// default).
pub(super) const DEFAULT_CHUNK_ROWS: usize = 10_000;

/// The request's parameters (URL, then form body, which wins as in InfluxDB).
#[derive(Debug, Default)]
pub(super) struct QueryParams {
    pub(super) q: String,
    pub(super) db: Option<String>,
    pub(super) rp: Option<String>,
    pub(super) epoch: Option<String>,
    pub(super) chunked: bool,
    pub(super) chunk_size: Option<usize>,
    pub(super) params: Option<String>,
    pub(super) index: Option<String>,
    pub(super) pretty: bool,
    pub(super) password: Option<String>,
}

impl QueryParams {
    pub(super) fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, String> {
        let mut p = QueryParams::default();
        let mut seen = std::collections::HashSet::new();
        for (key, value) in pairs {
            if !seen.insert(key.clone()) {
                continue;
            }
            let non_empty = (!value.is_empty()).then(|| value.clone());
            match key.as_str() {
                "q" => p.q = value,
                "db" => p.db = non_empty,
                "rp" => p.rp = non_empty,
                "epoch" => p.epoch = non_empty,
                "chunked" => p.chunked = value == "true",
                "chunk_size" => {
                    p.chunk_size = match value.parse::<usize>() {
                        Ok(0) | Err(_) if !value.is_empty() => {
                            return Err(format!("invalid chunk_size {value:?}"));
                        }
                        Ok(n) => Some(n),
                        Err(_) => None,
                    }
                }
                "params" => p.params = non_empty,
                "index" => p.index = non_empty,
                "pretty" => p.pretty = value == "true",
                "p" => p.password = non_empty,
                _ => {}
            }
        }
        Ok(p)
    }

    pub(super) fn params_json(&self) -> Result<Option<Value>, String> {
        match &self.params {
            None => Ok(None),
            Some(text) => serde_json::from_str::<Value>(text)
                .map(Some)
                .map_err(|e| format!("error parsing query parameters: {e}")),
        }
    }
}
