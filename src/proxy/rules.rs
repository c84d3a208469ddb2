//! `GET /api/v1/rules` (each rule with its state: times fired, last fired, series tracked) and
//! the task that writes derived metrics back through the normal write path: the same group
//! split and durable-log append a client write takes, so derived lines are routed, replicated
//! and retried like any other. It must never let derived lines bypass the durable log, and never
//! wait for replicas (a derived write is consistency `any`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::protocol::Precision;
use crate::replication::batcher::{SplitContext, split_by_group};
use crate::rules::derived::DerivedBatch;
use crate::shard::Principal;
use crate::telemetry::RequestId;

use super::response::json;
use super::state::AppState;

pub async fn list_rules(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let rid = RequestId::from_headers(&headers).as_str().to_owned();
    let rules = state.rules.rules();
    json(
        StatusCode::OK,
        &json!({
            "rules": rules.report(),
            "buffer_bytes": state.metrics.rules.buffer_bytes.get(),
            "outbox_queued": state.rules.outbox().queued(),
        }),
        &rid,
    )
}

/// Starts the writer of derived metrics (once; later calls do nothing).
pub fn spawn_derived_writer(state: Arc<AppState>) {
    let Some(mut receiver) = state.rules.take_derived_receiver() else {
        return;
    };
    tokio::spawn(async move {
        while let Some(batch) = receiver.recv().await {
            let lines = batch.lines as u64;
            match write_derived(&state, &batch).await {
                Ok(()) => {
                    state.metrics.rules.derived_lines.inc_by(lines);
                }
                Err(message) => {
                    state.metrics.rules.derived_dropped.inc_by(lines);
                    tracing::warn!(database = %batch.database, lines, "derived metrics not written: {message}");
                }
            }
        }
    });
}

async fn write_derived(state: &AppState, batch: &DerivedBatch) -> Result<(), String> {
    let config = state.config.snapshot();
    let map = state.shardmap.snapshot();
    let request_id = RequestId::generate();
    let context = SplitContext {
        map: &map,
        principal: Principal::Open,
        classifier: &state.classifier,
        precision: Precision::Nanosecond,
        now: Precision::Nanosecond.now(),
        database: &batch.database,
        retention_policy: &batch.retention_policy,
        request_id: request_id.as_str(),
        max_line_bytes: usize::try_from(config.limits.max_line_bytes.get()).unwrap_or(usize::MAX),
    };
    let outcome = split_by_group(&batch.body, &context).map_err(|e| e.to_string())?;
    if let Some(error) = outcome.errors.first() {
        return Err(error.message());
    }
    for record in &outcome.records {
        let group = map.group(record.group);
        let runtime = state
            .pipeline
            .group(&group.name)
            .ok_or_else(|| format!("shard group {:?} is not running", group.name))?;
        runtime
            .check_room(record.len())
            .map_err(|e| e.to_string())?;
        runtime
            .append(&record.parts())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
