//! Splits one write request's body into one durable-log record per shard group: every line is
//! parsed, checked against the caller's grants, routed by its index tag, stamped with the receive
//! time when it has no timestamp, and gathered into its group's record: runs of consecutive lines
//! are kept as slices of the body (copied once, by the log's append), only stamped or rescaled
//! lines are written anew.
//!
//! Lines are forwarded byte for byte (only a missing timestamp is appended, and `m`/`h`
//! timestamps are rewritten in seconds so that every backend dialect can take them). It must
//! never put a line it could not parse, route or authorise into a record.

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use crate::protocol::{
    Classifier, Kind, ParseError, ParseErrorKind, Precision, lines, write_timestamp,
};
use crate::shard::{AccessError, Action, GroupId, Principal, RouteError, ShardMap};

use super::envelope::{BatchHeader, EnvelopeError, set_line_count};

/// Everything the split needs besides the body.
pub struct SplitContext<'a> {
    pub map: &'a ShardMap,
    pub principal: Principal,
    pub classifier: &'a Classifier,
    /// The precision the client wrote its timestamps in.
    pub precision: Precision,
    /// The receive time in `precision`, given to lines without a timestamp.
    pub now: i64,
    pub database: &'a str,
    pub retention_policy: &'a str,
    pub request_id: &'a str,
    /// `limits.max_line_bytes`: longer lines are refused like unparsable ones.
    pub max_line_bytes: usize,
}

/// One group's share of the request: a complete log record (header and lines), as the pieces
/// the log appends back to back.
#[derive(Debug)]
pub struct GroupRecord<'body> {
    pub group: GroupId,
    header: Vec<u8>,
    runs: Vec<Run>,
    /// Lines the proxy rewrote (stamped with the receive time, rescaled), and newlines the body
    /// lacked.
    written: Vec<u8>,
    body: &'body [u8],
    pub lines: usize,
    len: usize,
}

/// A byte range of the body or of `GroupRecord::written`.
#[derive(Debug, Clone, Copy)]
enum Run {
    Body(usize, usize),
    Written(usize, usize),
}

impl<'body> GroupRecord<'body> {
    fn new(group: GroupId, header: Vec<u8>, body: &'body [u8]) -> Self {
        let len = header.len();
        GroupRecord {
            group,
            header,
            runs: Vec::new(),
            written: Vec::new(),
            body,
            lines: 0,
            len,
        }
    }

    /// Bytes of the whole record.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The record's pieces in order: the header, then the lines.
    pub fn parts(&self) -> Vec<&[u8]> {
        let mut parts = Vec::with_capacity(self.runs.len() + 1);
        parts.push(&self.header[..]);
        for run in &self.runs {
            parts.push(match *run {
                Run::Body(start, end) => &self.body[start..end],
                Run::Written(start, end) => &self.written[start..end],
            });
        }
        parts
    }

    /// The record as one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut record = Vec::with_capacity(self.len);
        for part in self.parts() {
            record.extend_from_slice(part);
        }
        record
    }

    /// Adds a body range, extending the last run when it continues it.
    fn push_body(&mut self, start: usize, end: usize) {
        self.len += end - start;
        if let Some(Run::Body(_, last_end)) = self.runs.last_mut() {
            if *last_end == start {
                *last_end = end;
                return;
            }
        }
        self.runs.push(Run::Body(start, end));
    }

    /// Adds bytes written by `write` into `written`, extending the last run when it can.
    fn push_written(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.written.len();
        write(&mut self.written);
        let end = self.written.len();
        self.len += end - start;
        if let Some(Run::Written(_, last_end)) = self.runs.last_mut() {
            if *last_end == start {
                *last_end = end;
                return;
            }
        }
        self.runs.push(Run::Written(start, end));
    }
}

/// Why a single line was left out; the others are still stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    Parse(ParseError),
    UnknownIndex {
        line: usize,
        index: String,
        snippet: String,
    },
    MissingIndex {
        line: usize,
        index_tag: String,
        snippet: String,
    },
}

impl LineError {
    /// InfluxDB's wording (`unable to parse '...': reason`), with the line number.
    pub fn message(&self) -> String {
        match self {
            LineError::Parse(e) => e.to_string(),
            LineError::UnknownIndex {
                line,
                index,
                snippet,
            } => format!(
                "unable to parse '{snippet}': unknown index {index:?}: no shard group is configured for it and there is no default_group (line {line})"
            ),
            LineError::MissingIndex {
                line,
                index_tag,
                snippet,
            } => format!(
                "unable to parse '{snippet}': missing tag {index_tag:?}, which picks the shard group, and there is no default_group (line {line})"
            ),
        }
    }
}

/// What the split produced.
#[derive(Debug, Default)]
pub struct SplitOutcome<'body> {
    /// Non-empty records, in group order.
    pub records: Vec<GroupRecord<'body>>,
    /// Accepted lines by kind: metric, log, tracelog.
    pub accepted: [u64; 3],
    /// The distinct `(index, host)` of the accepted lines (unescaped; lines without a `host` tag
    /// or without an index are not in it): what the host registry is fed with. Deduplicated by
    /// a 64-bit fingerprint of the pair as written (see `host_fingerprint`).
    pub hosts: Vec<(String, String)>,
    pub errors: Vec<LineError>,
}

impl SplitOutcome<'_> {
    pub fn accepted_lines(&self) -> u64 {
        self.accepted.iter().sum()
    }
}

/// Why the whole request is refused (nothing of it may be stored).
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error(transparent)]
    Forbidden(AccessError),
    #[error(transparent)]
    Header(#[from] EnvelopeError),
}

const SNIPPET_BYTES: usize = 128;

/// Splits `body` by group under `ctx`. A forbidden index refuses the whole request, so a token
/// can never get part of a batch into an index it may not write.
pub fn split_by_group<'body>(
    body: &'body [u8],
    ctx: &SplitContext<'_>,
) -> Result<SplitOutcome<'body>, SplitError> {
    split_by_group_observed(body, ctx, &mut |_| {})
}

/// [`split_by_group`], showing `observe` every accepted line as it is parsed (the rules
/// engine's hook: it sees each line once, without a copy or a second parse).
pub fn split_by_group_observed<'body>(
    body: &'body [u8],
    ctx: &SplitContext<'_>,
    observe: &mut dyn FnMut(&crate::protocol::Line<'body>),
) -> Result<SplitOutcome<'body>, SplitError> {
    let header = BatchHeader {
        database: ctx.database.to_owned(),
        retention_policy: ctx.retention_policy.to_owned(),
        precision: stored_precision(ctx.precision),
        request_id: ctx.request_id.to_owned(),
    };
    let mut records: Vec<Option<GroupRecord>> = Vec::new();
    records.resize_with(ctx.map.groups().len(), || None);
    let mut outcome = SplitOutcome::default();
    let index_tag = &ctx.classifier.index_tag;
    let open = matches!(ctx.principal, Principal::Open);
    // A request carries few distinct indexes (agents send runs of one): the last few indexes
    // seen (as written) and their groups answer most lines without hashing, routing or checking
    // grants again.
    let mut recent_routes = RecentRoutes::default();
    // Distinct (index, host) pairs by a 64-bit fingerprint: no byte comparison per line. A
    // collision (odds ~ pairs² / 2^65 per request) only leaves that host's touch to its next
    // request.
    let mut hosts_seen: HashSet<u64, BuildHasherDefault<IdentityHasher>> = HashSet::default();

    for parsed in lines(body, ctx.classifier).with_precision(ctx.precision) {
        let line = match parsed {
            Ok(line) if line.raw().len() > ctx.max_line_bytes => {
                let limit = ctx.max_line_bytes;
                outcome.errors.push(LineError::Parse(ParseError::new(
                    line.number(),
                    limit + 1,
                    ParseErrorKind::LineTooLong(limit),
                    line.raw(),
                )));
                continue;
            }
            Ok(line) => line,
            Err(error) => {
                outcome.errors.push(LineError::Parse(error));
                continue;
            }
        };
        let written_index = line.index().map(|i| i.raw());
        let cached = written_index.and_then(|written| recent_routes.get(written));
        let index: Option<Cow<'_, [u8]>> = match cached {
            Some(_) => None,
            None => line.index().map(|i| i.unescaped()),
        };
        let routed = match (cached, index.as_deref()) {
            (Some(group), _) => Ok(group),
            (None, Some(index)) => {
                if !open {
                    ctx.principal
                        .check(Action::Write, index)
                        .map_err(SplitError::Forbidden)?;
                }
                ctx.map
                    .route(index)
                    .map_err(|RouteError::UnknownIndex(name)| LineError::UnknownIndex {
                        line: line.number(),
                        index: name,
                        snippet: snippet(line.raw()),
                    })
            }
            (None, None) => ctx
                .map
                .default_group()
                .ok_or_else(|| LineError::MissingIndex {
                    line: line.number(),
                    index_tag: String::from_utf8_lossy(index_tag).into_owned(),
                    snippet: snippet(line.raw()),
                }),
        };
        let group = match routed {
            Ok(group) => group,
            Err(error) => {
                outcome.errors.push(error);
                continue;
            }
        };
        if cached.is_none()
            && let Some(written) = written_index
        {
            recent_routes.insert(written, group);
        }
        let slot = &mut records[group.index()];
        let record = match slot {
            Some(record) => record,
            None => {
                let mut bytes = Vec::with_capacity(64);
                header.encode_into(&mut bytes)?;
                slot.insert(GroupRecord::new(group, bytes, body))
            }
        };
        append_line(record, &line, ctx);
        record.lines += 1;
        observe(&line);
        if let (Some(index), Some(host)) = (line.index(), line.host())
            && hosts_seen.insert(host_fingerprint(index.raw(), host.raw()))
        {
            outcome
                .hosts
                .push((index.as_str().into_owned(), host.as_str().into_owned()));
        }
        outcome.accepted[kind_slot(line.kind())] += 1;
    }
    outcome.records = records.into_iter().flatten().collect();
    for record in &mut outcome.records {
        set_line_count(&mut record.header, record.lines as u32);
    }
    Ok(outcome)
}

/// One (index, host) pair as 64 bits, the index and host as written.
fn host_fingerprint(index: &[u8], host: &[u8]) -> u64 {
    // 0xff is not in UTF-8: "ab"+"c" and "a"+"bc" differ.
    let len = index.len() + 1 + host.len();
    let mut pair = [0u8; 128];
    if len <= pair.len() {
        pair[..index.len()].copy_from_slice(index);
        pair[index.len()] = 0xff;
        pair[index.len() + 1..len].copy_from_slice(host);
        return xxhash_rust::xxh3::xxh3_64(&pair[..len]);
    }
    let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
    hasher.update(index);
    hasher.update(&[0xff]);
    hasher.update(host);
    hasher.digest()
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8) | u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// The groups of the last `RECENT_ROUTES` distinct indexes of a request, oldest replaced first.
const RECENT_ROUTES: usize = 8;

#[derive(Default)]
struct RecentRoutes<'body> {
    entries: [Option<(&'body [u8], GroupId)>; RECENT_ROUTES],
    next: usize,
}

impl<'body> RecentRoutes<'body> {
    fn get(&self, written_index: &[u8]) -> Option<GroupId> {
        self.entries
            .iter()
            .flatten()
            // Indexes often differ only in their last byte (`eu-1`, `eu-2`): check it first.
            .find(|(index, _)| index.last() == written_index.last() && *index == written_index)
            .map(|&(_, group)| group)
    }

    fn insert(&mut self, written_index: &'body [u8], group: GroupId) {
        self.entries[self.next] = Some((written_index, group));
        self.next = (self.next + 1) % RECENT_ROUTES;
    }
}

fn append_line(
    record: &mut GroupRecord<'_>,
    line: &crate::protocol::Line<'_>,
    ctx: &SplitContext<'_>,
) {
    let scale = minutes_or_hours_scale(ctx.precision);
    match (line.timestamp(), scale) {
        (Some(_), None) => {
            let raw = line.raw();
            // `raw` borrows from the body the record was created with.
            let start = raw.as_ptr() as usize - record.body.as_ptr() as usize;
            let end = start + raw.len();
            if record.body.get(end) == Some(&b'\n') {
                record.push_body(start, end + 1);
            } else {
                record.push_body(start, end);
                record.push_written(|out| out.push(b'\n'));
            }
        }
        // The parser range-checked the timestamp in nanoseconds, so seconds cannot overflow.
        (Some(ts), Some(scale)) => {
            record.push_written(|out| write_timestamp(line.without_timestamp(), ts * scale, out))
        }
        (None, None) => record.push_written(|out| write_timestamp(line.raw(), ctx.now, out)),
        (None, Some(scale)) => {
            record.push_written(|out| write_timestamp(line.raw(), ctx.now * scale, out))
        }
    }
}

/// `m` and `h` are stored as seconds: the v2 dialect has no such precisions.
fn stored_precision(precision: Precision) -> Precision {
    match precision {
        Precision::Minute | Precision::Hour => Precision::Second,
        other => other,
    }
}

fn minutes_or_hours_scale(precision: Precision) -> Option<i64> {
    match precision {
        Precision::Minute => Some(60),
        Precision::Hour => Some(3600),
        _ => None,
    }
}

fn kind_slot(kind: Kind) -> usize {
    match kind {
        Kind::Metric => 0,
        Kind::Log => 1,
        Kind::Tracelog => 2,
    }
}

fn snippet(raw: &[u8]) -> String {
    let cut = raw.len().min(SNIPPET_BYTES);
    let mut text = String::from_utf8_lossy(&raw[..cut]).into_owned();
    if raw.len() > cut {
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiConfig;
    use crate::replication::envelope::decode;
    use crate::shard::Access;

    const CONFIG: &str = r#"
groups:
  g1:
    replicas: [{url: "http://127.0.0.1:1"}, {url: "http://127.0.0.1:2"}]
  g2:
    replicas: [{url: "http://127.0.0.1:3"}, {url: "http://127.0.0.1:4"}]
indexes:
  cluster1: g1
  "eu-*": g2
open_access: true
"#;

    fn map(extra: &str) -> ShardMap {
        let config = ApiConfig::from_yaml_str(&format!("{CONFIG}{extra}"), "test.yaml").unwrap();
        ShardMap::from_config(&config, 1).unwrap()
    }

    fn ctx<'a>(
        map: &'a ShardMap,
        classifier: &'a Classifier,
        precision: Precision,
    ) -> SplitContext<'a> {
        SplitContext {
            map,
            principal: Principal::Open,
            classifier,
            precision,
            now: 1_700_000_000,
            database: "db",
            retention_policy: "",
            request_id: "req",
            max_line_bytes: 1 << 20,
        }
    }

    #[test]
    fn lines_longer_than_max_line_bytes_are_refused_by_number() {
        let map = map("");
        let classifier = Classifier::default();
        let long = format!("mem,index=cluster1 used=2,pad=\"{}\" 2\n", "x".repeat(100));
        let body = format!("mem,index=cluster1 used=1 1\n{long}mem,index=cluster1 used=3 3\n");
        let mut context = ctx(&map, &classifier, Precision::Nanosecond);
        context.max_line_bytes = 64;
        let outcome = split_by_group(body.as_bytes(), &context).unwrap();
        assert_eq!(outcome.accepted_lines(), 2);
        let messages: Vec<String> = outcome.errors.iter().map(LineError::message).collect();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].contains("line longer than 64 bytes (line 2,"),
            "{}",
            messages[0]
        );
        let g1_bytes = outcome.records[0].to_vec();
        let g1 = decode(&g1_bytes).unwrap();
        assert_eq!(
            g1.lines,
            b"mem,index=cluster1 used=1 1\nmem,index=cluster1 used=3 3\n"
        );
    }

    #[test]
    fn lines_go_to_their_groups_and_missing_timestamps_get_the_receive_time() {
        let map = map("");
        let classifier = Classifier::default();
        let body = b"mem,index=cluster1,host=h used=1 10\nlog,index=eu-west,host=h msg=\"hi\"\nmem,index=cluster1 used=2 20\n";
        let outcome = split_by_group(body, &ctx(&map, &classifier, Precision::Second)).unwrap();
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        assert_eq!(outcome.accepted, [2, 1, 0]);
        assert_eq!(outcome.records.len(), 2);
        let g1_bytes = outcome.records[0].to_vec();
        let g1 = decode(&g1_bytes).unwrap();
        assert_eq!(
            g1.lines,
            b"mem,index=cluster1,host=h used=1 10\nmem,index=cluster1 used=2 20\n"
        );
        assert_eq!(g1.precision, Precision::Second);
        let g2_bytes = outcome.records[1].to_vec();
        let g2 = decode(&g2_bytes).unwrap();
        assert_eq!(
            g2.lines,
            b"log,index=eu-west,host=h msg=\"hi\" 1700000000\n"
        );
    }

    #[test]
    fn records_gather_body_runs_and_written_lines_in_line_order() {
        let map = map("");
        let classifier = Classifier::default();
        // Comments, blank lines, CRLF, lines of another group, stamped lines and a last line
        // without newline between runs of the body.
        let body = b"# comment\nmem,index=cluster1 used=1 1\nmem,index=cluster1 used=2 2\n\nlog,index=eu-west msg=\"x\" 3\nmem,index=cluster1 used=3\nmem,index=cluster1 used=4 4\r\nmem,index=cluster1 used=5 5\nmem,index=cluster1 used=6 6";
        let outcome = split_by_group(body, &ctx(&map, &classifier, Precision::Second)).unwrap();
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let record = &outcome.records[0];
        let bytes = record.to_vec();
        assert_eq!(record.len(), bytes.len());
        assert_eq!(
            decode(&bytes).unwrap().lines,
            b"mem,index=cluster1 used=1 1\nmem,index=cluster1 used=2 2\nmem,index=cluster1 used=3 1700000000\nmem,index=cluster1 used=4 4\nmem,index=cluster1 used=5 5\nmem,index=cluster1 used=6 6\n"
        );
        // Header, lines 1-2 as one run, the stamped line, line 4, lines 5-6 as one run, and the
        // missing final newline.
        assert!(record.parts().len() <= 7, "{}", record.parts().len());
    }

    #[test]
    fn more_indexes_than_the_route_cache_holds_still_route_every_line() {
        let map = map("");
        let classifier = Classifier::default();
        let mut body = String::new();
        for round in 0..3 {
            for i in 0..12 {
                body.push_str(&format!("mem,index=eu-{i} used={round} 1\n"));
                body.push_str(&format!("mem,index=cluster1 used={round} 1\n"));
            }
        }
        body.push_str("mem,index=unknown used=1 1\n");
        let outcome = split_by_group(
            body.as_bytes(),
            &ctx(&map, &classifier, Precision::Nanosecond),
        )
        .unwrap();
        let lines: Vec<(String, usize)> = outcome
            .records
            .iter()
            .map(|r| (map.group(r.group).name.clone(), r.lines))
            .collect();
        assert_eq!(lines, [("g1".to_owned(), 36), ("g2".to_owned(), 36)]);
        assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    }

    #[test]
    fn distinct_hosts_of_accepted_lines_are_collected_unescaped() {
        let map = map("");
        let classifier = Classifier::default();
        let body = b"mem,index=cluster1,host=h1 used=1 1\nmem,index=cluster1,host=h1 used=2 2\nmem,index=eu-west,host=h\\ 2 used=1 1\nmem,index=cluster1 used=1 1\nmem,index=nowhere,host=h9 used=1 1\nmem,host=h1,index=cluster1 used=3 3\n";
        let outcome = split_by_group(body, &ctx(&map, &classifier, Precision::Nanosecond)).unwrap();
        assert_eq!(
            outcome.hosts,
            [
                ("cluster1".to_owned(), "h1".to_owned()),
                ("eu-west".to_owned(), "h 2".to_owned()),
            ]
        );
    }

    #[test]
    fn bad_lines_are_reported_by_number_and_the_good_ones_kept() {
        let map = map("");
        let classifier = Classifier::default();
        let body = b"mem,index=cluster1 used=1 1\nmem,index=nowhere used=1 1\nmem,host=x used=1 1\nmem,index=cluster1 used= 1\n";
        let outcome = split_by_group(body, &ctx(&map, &classifier, Precision::Nanosecond)).unwrap();
        assert_eq!(outcome.accepted_lines(), 1);
        let messages: Vec<String> = outcome.errors.iter().map(LineError::message).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(
            messages[0].contains("unknown index \"nowhere\"") && messages[0].ends_with("(line 2)"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].contains("missing tag \"index\"") && messages[1].ends_with("(line 3)"),
            "{}",
            messages[1]
        );
        assert!(messages[2].contains("line 4"), "{}", messages[2]);
    }

    #[test]
    fn a_default_group_takes_unknown_and_unindexed_lines() {
        let map = map("default_group: g2\n");
        let classifier = Classifier::default();
        let body = b"mem,index=nowhere used=1 1\nmem,host=x used=1 1\n";
        let outcome = split_by_group(body, &ctx(&map, &classifier, Precision::Nanosecond)).unwrap();
        assert!(outcome.errors.is_empty());
        assert_eq!(outcome.records.len(), 1);
        assert_eq!(map.group(outcome.records[0].group).name, "g2");
    }

    #[test]
    fn minute_timestamps_are_stored_in_seconds() {
        let map = map("");
        let classifier = Classifier::default();
        let outcome = split_by_group(
            b"m,index=cluster1 f=1 3\nm,index=cluster1 f=2\n",
            &ctx(&map, &classifier, Precision::Minute),
        )
        .unwrap();
        let record_bytes = outcome.records[0].to_vec();
        let record = decode(&record_bytes).unwrap();
        assert_eq!(record.precision, Precision::Second);
        assert_eq!(
            record.lines,
            b"m,index=cluster1 f=1 180\nm,index=cluster1 f=2 102000000000\n"
        );
    }

    #[test]
    fn a_forbidden_index_refuses_the_whole_request() {
        let config = ApiConfig::from_yaml_str(
            &CONFIG.replace(
                "open_access: true",
                "tokens: [{token: s3cret, write: [cluster1]}]",
            ),
            "t.yaml",
        )
        .unwrap();
        let map = ShardMap::from_config(&config, 1).unwrap();
        let access = Access::from_config(&config).unwrap();
        let principal = access.authenticate(Some("s3cret")).unwrap();
        let classifier = Classifier::default();
        let mut context = ctx(&map, &classifier, Precision::Nanosecond);
        context.principal = principal;
        let err =
            split_by_group(b"m,index=cluster1 f=1 1\nm,index=eu-x f=1 1\n", &context).unwrap_err();
        assert!(err.to_string().contains("eu-x"), "{err}");
    }
}
