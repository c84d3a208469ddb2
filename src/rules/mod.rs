//! Alert rules evaluated on the ingest path, their bounded window buffer, the outbox that sends
//! fired alerts to the alert managers, the host registry and the derived metrics (issue 5).
//!
//! - [`config`]: the rules file and its validation; [`settings`]: the api config's `rules:` and
//!   `derived:` sections.
//! - [`engine`]: compiled rules (indexed by measurement, keywords in one automaton) and the
//!   evaluation of a line; [`window`]: per-series 1-minute buckets and the windowed formulas.
//! - [`runtime`]: the evaluation thread fed by the write path; [`outbox`]: delivery;
//!   [`hosts`]: the host registry; [`derived`]: metrics computed from logs and tracelogs.
//!
//! It must never block or slow the write path beyond one channel send per request, and never
//! hold memory beyond its configured caps.

pub mod config;
pub mod derived;
pub mod engine;
pub mod hosts;
pub mod outbox;
pub mod runtime;
pub mod settings;
pub mod template;
pub mod time;
pub mod window;

pub use config::{RuleConfig, RuleKind, RulesFile, load_rules_file};
pub use engine::{EngineLimits, EvalContext, RuleSet};
pub use hosts::{HostEntry, HostRegistry};
pub use runtime::{RulesError, RulesRuntime};
pub use settings::{DerivedSettings, RulesSettings};
pub use window::Budget;
