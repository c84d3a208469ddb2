//! Classification of a parsed line as metric, log or tracelog by its measurement, plus the
//! tag keys that carry the routing index and the trace id.
//!
//! Must never look at anything but the (unescaped) measurement: it runs once per line on the
//! hot path and must not allocate.

/// What a line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Metric,
    Log,
    Tracelog,
}

impl Kind {
    /// `metric`, `log` or `tracelog`, for logs, metrics labels and lint output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Metric => "metric",
            Kind::Log => "log",
            Kind::Tracelog => "tracelog",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The configurable names the parser classifies and indexes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classifier {
    /// Tag key whose value picks the shard group (default `index`).
    pub index_tag: Vec<u8>,
    /// Measurement of log lines (default `log`).
    pub log_measurement: Vec<u8>,
    /// Measurement of tracelog lines (default `tracelog`).
    pub tracelog_measurement: Vec<u8>,
    /// Tag key of the trace id (default `traceid`).
    pub trace_id_tag: Vec<u8>,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier {
            index_tag: b"index".to_vec(),
            log_measurement: b"log".to_vec(),
            tracelog_measurement: b"tracelog".to_vec(),
            trace_id_tag: b"traceid".to_vec(),
        }
    }
}

impl Classifier {
    /// Classifier with a custom index tag key and the default measurement names.
    pub fn with_index_tag(index_tag: &str) -> Self {
        Classifier {
            index_tag: index_tag.as_bytes().to_vec(),
            ..Classifier::default()
        }
    }

    pub fn classify(&self, measurement_unescaped: &[u8]) -> Kind {
        if measurement_unescaped == self.log_measurement.as_slice() {
            Kind::Log
        } else if measurement_unescaped == self.tracelog_measurement.as_slice() {
            Kind::Tracelog
        } else {
            Kind::Metric
        }
    }
}
