//! Derived metrics: log lines counted per (index, source, host, level) per interval, and per
//! trace id and source the time between its first and last tracelog line. They are produced on
//! the evaluation thread as line protocol and handed to the proxy, which writes them through the
//! same group split and durable log as client writes (so they are replicated like everything
//! else).
//!
//! Tag values are copied as written (already escaped for a tag), so the lines produced are
//! always valid. A count is written one interval after its interval ended, so late lines of up to
//! one interval are included; a line later than that for an interval already written makes a new
//! partial point that overwrites the first (a backfill of old logs is counted per batch, not in
//! total). It must never hold more than `max_traces` traces nor one counter per key and
//! interval; a trace that exceeds the cap is not measured and is counted.

use std::collections::HashMap;

use crate::protocol::{Kind, Line, write_timestamp};

use super::settings::{DerivedSettings, LogCountSettings, TraceDurationSettings};

/// Lines to write back into one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedBatch {
    pub database: String,
    pub retention_policy: String,
    /// Newline-terminated line protocol, nanosecond timestamps.
    pub body: Vec<u8>,
    pub lines: usize,
}

/// Where the source lines were written.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub database: &'a str,
    pub retention_policy: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Destination {
    database: String,
    retention_policy: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CountKey {
    destination: Destination,
    /// `index=..,source=..,host=..,level=..` as escaped tag pairs (absent tags left out).
    tags: Vec<u8>,
    interval_start_ns: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TraceKey {
    destination: Destination,
    tags: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    first_ns: i64,
    last_ns: i64,
    lines: u64,
    last_seen_ms: u64,
}

/// The derived-metrics state.
#[derive(Debug)]
pub struct Derived {
    counts: Option<(LogCountSettings, HashMap<CountKey, u64>)>,
    traces: Option<(TraceDurationSettings, HashMap<TraceKey, Span>)>,
    index_tag: Vec<u8>,
    trace_id_tag: Vec<u8>,
    /// Traces not measured because of the cap (since the last take).
    pub refused: u64,
}

impl Derived {
    pub fn new(
        settings: &DerivedSettings,
        classifier: &crate::protocol::Classifier,
    ) -> Option<Derived> {
        if settings.log_counts.is_none() && settings.trace_durations.is_none() {
            return None;
        }
        Some(Derived {
            counts: settings.log_counts.clone().map(|s| (s, HashMap::new())),
            traces: settings
                .trace_durations
                .clone()
                .map(|s| (s, HashMap::new())),
            index_tag: classifier.index_tag.clone(),
            trace_id_tag: classifier.trace_id_tag.clone(),
            refused: 0,
        })
    }

    /// Takes one accepted line into account.
    /// `receive_nanos` stands for the timestamp of a line that has none (the write path stamps
    /// such lines with it).
    pub fn observe(
        &mut self,
        line: &Line<'_>,
        target: Target<'_>,
        now_ms: u64,
        receive_nanos: Option<i64>,
    ) {
        let Some(nanos) = line.timestamp_nanos().or(receive_nanos) else {
            return;
        };
        match line.kind() {
            Kind::Log => {
                let Some((settings, counts)) = &mut self.counts else {
                    return;
                };
                let interval = settings.interval.get().as_nanos() as i64;
                let mut tags = Vec::with_capacity(64);
                push_tag(&mut tags, &self.index_tag, line);
                push_tag(&mut tags, b"source", line);
                push_tag(&mut tags, b"host", line);
                push_tag(&mut tags, settings.level_tag.as_bytes(), line);
                let key = CountKey {
                    destination: destination(target),
                    tags,
                    interval_start_ns: nanos - nanos.rem_euclid(interval.max(1)),
                };
                *counts.entry(key).or_insert(0) += 1;
            }
            Kind::Tracelog => {
                let Some((settings, traces)) = &mut self.traces else {
                    return;
                };
                if line.tag(&self.trace_id_tag).is_none() {
                    return;
                }
                let mut tags = Vec::with_capacity(64);
                push_tag(&mut tags, &self.index_tag, line);
                push_tag(&mut tags, b"source", line);
                push_tag(&mut tags, &self.trace_id_tag, line);
                let key = TraceKey {
                    destination: destination(target),
                    tags,
                };
                let full = traces.len() >= settings.max_traces;
                match traces.get_mut(&key) {
                    Some(span) => {
                        span.first_ns = span.first_ns.min(nanos);
                        span.last_ns = span.last_ns.max(nanos);
                        span.lines += 1;
                        span.last_seen_ms = now_ms;
                    }
                    None if full => self.refused += 1,
                    None => {
                        traces.insert(
                            key,
                            Span {
                                first_ns: nanos,
                                last_ns: nanos,
                                lines: 1,
                                last_seen_ms: now_ms,
                            },
                        );
                    }
                }
            }
            Kind::Metric => {}
        }
    }

    /// Adds what `other` (one evaluation's accumulator, same settings) counted.
    pub fn merge(&mut self, other: Derived) {
        self.refused += other.refused;
        if let (Some((_, counts)), Some((_, more))) = (&mut self.counts, other.counts) {
            for (key, n) in more {
                *counts.entry(key).or_insert(0) += n;
            }
        }
        if let (Some((settings, traces)), Some((_, more))) = (&mut self.traces, other.traces) {
            for (key, span) in more {
                let full = traces.len() >= settings.max_traces;
                match traces.get_mut(&key) {
                    Some(held) => {
                        held.first_ns = held.first_ns.min(span.first_ns);
                        held.last_ns = held.last_ns.max(span.last_ns);
                        held.lines += span.lines;
                        held.last_seen_ms = held.last_seen_ms.max(span.last_seen_ms);
                    }
                    None if full => self.refused += 1,
                    None => {
                        traces.insert(key, span);
                    }
                }
            }
        }
    }

    /// The lines due at `now_ms`: log counts every interval (all intervals seen so far), traces
    /// idle for `idle`. With `everything`, all that is held (shutdown).
    pub fn take_due(&mut self, now_ms: u64, everything: bool) -> Vec<DerivedBatch> {
        let mut by_destination: HashMap<Destination, DerivedBatch> = HashMap::new();
        let mut out = |destination: Destination, line: Vec<u8>| {
            let batch = by_destination
                .entry(destination.clone())
                .or_insert_with(|| DerivedBatch {
                    database: destination.database,
                    retention_policy: destination.retention_policy,
                    body: Vec::new(),
                    lines: 0,
                });
            batch.body.extend_from_slice(&line);
            batch.lines += 1;
        };
        if let Some((settings, counts)) = &mut self.counts {
            // An interval is written once it ended one interval ago (late lines get that long),
            // so a point is written once, complete, and not overwritten by a partial count.
            let interval_ns = settings.interval.get().as_nanos() as i64;
            let now_ns = i64::try_from(now_ms)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000);
            let due: Vec<CountKey> = counts
                .keys()
                .filter(|key| everything || key.interval_start_ns + 2 * interval_ns <= now_ns)
                .cloned()
                .collect();
            for key in due {
                let Some(count) = counts.remove(&key) else {
                    continue;
                };
                let mut line = Vec::with_capacity(96);
                line.extend_from_slice(settings.measurement.as_bytes());
                line.extend_from_slice(&key.tags);
                line.extend_from_slice(format!(" count={count}i").as_bytes());
                let mut with_ts = Vec::with_capacity(line.len() + 24);
                write_timestamp(&line, key.interval_start_ns, &mut with_ts);
                out(key.destination, with_ts);
            }
        }
        if let Some((settings, traces)) = &mut self.traces {
            let idle_ms = settings.idle.get().as_millis() as u64;
            let due: Vec<TraceKey> = traces
                .iter()
                .filter(|(_, span)| everything || now_ms >= span.last_seen_ms + idle_ms)
                .map(|(key, _)| key.clone())
                .collect();
            for key in due {
                let Some(span) = traces.remove(&key) else {
                    continue;
                };
                let duration_ms = (span.last_ns - span.first_ns) as f64 / 1e6;
                let mut line = Vec::with_capacity(128);
                line.extend_from_slice(settings.measurement.as_bytes());
                line.extend_from_slice(&key.tags);
                line.extend_from_slice(
                    format!(" duration_ms={duration_ms:?},lines={}i", span.lines).as_bytes(),
                );
                let mut with_ts = Vec::with_capacity(line.len() + 24);
                write_timestamp(&line, span.first_ns, &mut with_ts);
                out(key.destination, with_ts);
            }
        }
        let mut batches: Vec<DerivedBatch> = by_destination.into_values().collect();
        batches.sort_by(|a, b| a.database.cmp(&b.database));
        batches
    }
}

fn destination(target: Target<'_>) -> Destination {
    Destination {
        database: target.database.to_owned(),
        retention_policy: target.retention_policy.to_owned(),
    }
}

/// Appends `,key=value` with the value as written in the line (escaped for a tag already).
fn push_tag(out: &mut Vec<u8>, key: &[u8], line: &Line<'_>) {
    if let Some(value) = line.tag(key) {
        out.push(b',');
        out.extend_from_slice(key);
        out.push(b'=');
        out.extend_from_slice(value.raw());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Classifier, Precision, lines};

    #[test]
    fn counts_logs_and_measures_traces() {
        let settings = DerivedSettings {
            log_counts: Some(LogCountSettings::default()),
            trace_durations: Some(TraceDurationSettings::default()),
        };
        let classifier = Classifier::default();
        let mut derived = Derived::new(&settings, &classifier).unwrap();
        let body = b"log,index=c1,source=api,host=h1,level=error msg=\"a\" 60000000001\n\
log,index=c1,source=api,host=h1,level=error msg=\"b\" 60000000002\n\
log,index=c1,source=api,host=h1,level=info msg=\"c\" 60000000003\n\
tracelog,index=c1,source=api,traceid=t1 msg=\"s\" 1000000000\n\
tracelog,index=c1,source=api,traceid=t1 msg=\"e\" 1250000000\n";
        let target = Target {
            database: "db",
            retention_policy: "",
        };
        for line in lines(body, &classifier).with_precision(Precision::Nanosecond) {
            derived.observe(&line.unwrap(), target, 1000, None);
        }
        assert!(
            derived
                .take_due(1001, false)
                .iter()
                .all(|b| !String::from_utf8_lossy(&b.body).contains("trace_duration"))
        );
        // The trace is idle for 30s: written. The minute of the logs (data time 60s..120s) is
        // written one minute after it ended.
        let batches = derived.take_due(1000 + 31_000, false);
        assert_eq!(
            std::str::from_utf8(&batches[0].body).unwrap(),
            "trace_duration,index=c1,source=api,traceid=t1 duration_ms=250.0,lines=2i 1000000000\n"
        );
        assert!(derived.take_due(179_999, false).is_empty());
        let batches = derived.take_due(180_000, false);
        assert_eq!(batches.len(), 1);
        let mut text: Vec<&str> = std::str::from_utf8(&batches[0].body)
            .unwrap()
            .lines()
            .collect();
        text.sort();
        assert_eq!(
            text,
            vec![
                "log_count,index=c1,source=api,host=h1,level=error count=2i 60000000000",
                "log_count,index=c1,source=api,host=h1,level=info count=1i 60000000000",
            ]
        );
    }
}
