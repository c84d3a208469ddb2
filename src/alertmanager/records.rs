//! The binary encoding of the pipeline's per-fingerprint and per-group records (store formats 2
//! and 3, described in [`super::store`]): length-prefixed, LEB128 integers, no field names, so a
//! record is a fraction of its JSON size and encodes without a serializer in the way.
//!
//! It must never decode bytes into a record it does not fully understand: a short buffer, an
//! unknown tag, invalid UTF-8 or trailing bytes are a [`DecodeError`], never a guess. Changing a
//! layout here means a new store format number and a migration in the store.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::alert::Alert;
use super::grouping::Group;
use super::issued::IssuedAlert;
use super::notify::{Notification, NotificationStatus, NotifiedAlert};
use super::occurrences::Sightings;
use super::pipeline::{AlertRecord, AlertState};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(&'static str);

/// One alert's membership in a waiting group, kept in the alert's record so that adding an
/// alert to a group rewrites neither the group nor its other alerts. A reference whose group
/// (key and sequence number) is no longer stored is stale and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRef {
    pub group_key: String,
    pub group_seq: u64,
    pub delivery: u32,
    pub starts_at_ms: u64,
}

/// Everything stored for one fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub struct FingerprintRecord {
    pub record: Option<AlertRecord>,
    pub issued: Option<IssuedAlert>,
    pub pending: Vec<PendingRef>,
}

// ------------------------------------------------------------------ primitives

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u64(&mut self, mut value: u64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    fn u32(&mut self, value: u32) {
        self.u64(u64::from(value));
    }

    fn len(&mut self, len: usize) {
        self.u64(len as u64);
    }

    fn str(&mut self, value: &str) {
        self.len(value.len());
        self.0.extend_from_slice(value.as_bytes());
    }

    fn flag(&mut self, present: bool) {
        self.0.push(u8::from(present));
    }

    fn opt_u64(&mut self, value: Option<u64>) {
        self.flag(value.is_some());
        if let Some(value) = value {
            self.u64(value);
        }
    }

    fn opt_str(&mut self, value: Option<&str>) {
        self.flag(value.is_some());
        if let Some(value) = value {
            self.str(value);
        }
    }

    fn map(&mut self, map: &BTreeMap<String, String>) {
        self.len(map.len());
        for (name, value) in map {
            self.str(name);
            self.str(value);
        }
    }

    fn strs(&mut self, values: &[String]) {
        self.len(values.len());
        for value in values {
            self.str(value);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&first, rest) = self.0.split_first().ok_or(DecodeError("truncated"))?;
        self.0 = rest;
        Ok(first)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError("integer too long"))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.u64()?).map_err(|_| DecodeError("integer out of range"))
    }

    fn len(&mut self) -> Result<usize, DecodeError> {
        let len = usize::try_from(self.u64()?).map_err(|_| DecodeError("length out of range"))?;
        // Every element takes at least one byte: a length beyond the rest is corruption, and
        // must not become a huge allocation.
        if len > self.0.len() {
            return Err(DecodeError("length beyond the record"));
        }
        Ok(len)
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.0.len() {
            return Err(DecodeError("truncated"));
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn str(&mut self) -> Result<String, DecodeError> {
        let len = self.len()?;
        let bytes = self.bytes(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError("invalid UTF-8"))
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError("invalid presence flag")),
        }
    }

    fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        Ok(if self.flag()? {
            Some(self.u64()?)
        } else {
            None
        })
    }

    fn opt_str(&mut self) -> Result<Option<String>, DecodeError> {
        Ok(if self.flag()? {
            Some(self.str()?)
        } else {
            None
        })
    }

    fn map(&mut self) -> Result<BTreeMap<String, String>, DecodeError> {
        let len = self.len()?;
        let mut map = BTreeMap::new();
        for _ in 0..len {
            let name = self.str()?;
            let value = self.str()?;
            map.insert(name, value);
        }
        Ok(map)
    }

    fn strs(&mut self) -> Result<Vec<String>, DecodeError> {
        let len = self.len()?;
        (0..len).map(|_| self.str()).collect()
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("trailing bytes"))
        }
    }
}

// ------------------------------------------------------------------ records

fn write_alert(w: &mut Writer<'_>, alert: &Alert) {
    w.str(&alert.name);
    w.str(&alert.index);
    w.str(&alert.host);
    w.str(&alert.source);
    w.str(&alert.severity);
    w.map(&alert.labels);
    w.map(&alert.annotations);
    w.flag(alert.value.is_some());
    if let Some(value) = alert.value {
        w.0.extend_from_slice(&value.to_le_bytes());
    }
    w.str(&alert.at);
    w.str(&alert.fingerprint);
}

fn read_alert(r: &mut Reader<'_>) -> Result<Alert, DecodeError> {
    Ok(Alert {
        name: r.str()?,
        index: r.str()?,
        host: r.str()?,
        source: r.str()?,
        severity: r.str()?,
        labels: r.map()?,
        annotations: r.map()?,
        value: if r.flag()? {
            let bytes: [u8; 8] = r
                .bytes(8)?
                .try_into()
                .map_err(|_| DecodeError("truncated"))?;
            Some(f64::from_le_bytes(bytes))
        } else {
            None
        },
        at: r.str()?,
        fingerprint: r.str()?,
    })
}

fn write_state(w: &mut Writer<'_>, state: &AlertState) {
    match state {
        AlertState::Ignored { by } => {
            w.0.push(0);
            w.strs(by);
        }
        AlertState::Waiting { seen, needed } => {
            w.0.push(1);
            w.u32(*seen);
            w.u32(*needed);
        }
        AlertState::Due { delivery } => {
            w.0.push(2);
            w.u32(*delivery);
        }
        AlertState::Suppressed { until_ms } => {
            w.0.push(3);
            w.u64(*until_ms);
        }
        AlertState::Unrouted => w.0.push(4),
        AlertState::Resolved => w.0.push(5),
    }
}

fn read_state(r: &mut Reader<'_>) -> Result<AlertState, DecodeError> {
    Ok(match r.byte()? {
        0 => AlertState::Ignored { by: r.strs()? },
        1 => AlertState::Waiting {
            seen: r.u32()?,
            needed: r.u32()?,
        },
        2 => AlertState::Due { delivery: r.u32()? },
        3 => AlertState::Suppressed { until_ms: r.u64()? },
        4 => AlertState::Unrouted,
        5 => AlertState::Resolved,
        _ => return Err(DecodeError("unknown alert state")),
    })
}

/// The alert content of a fingerprint: the alert as last persisted and, when its IssuedAlerts
/// entry holds a different sighting, that one too. Kept apart from the small state record
/// because it changes far less often than the state.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertContent {
    pub alert: Arc<Alert>,
    pub issued_alert: Option<Arc<Alert>>,
}

/// Encodes the content record of a fingerprint (`alert` is the alert record's, else the
/// issued alert's).
pub fn encode_content(out: &mut Vec<u8>, alert: &Alert, issued_alert: Option<&Alert>) {
    let mut w = Writer(out);
    write_alert(&mut w, alert);
    // The same shared alert (the common case) is equal without comparing its strings.
    let differs = issued_alert.filter(|issued| !std::ptr::eq(*issued, alert) && *issued != alert);
    w.flag(differs.is_some());
    if let Some(issued) = differs {
        write_alert(&mut w, issued);
    }
}

pub fn decode_content(bytes: &[u8]) -> Result<AlertContent, DecodeError> {
    let mut r = Reader(bytes);
    let alert = Arc::new(read_alert(&mut r)?);
    let issued_alert = if r.flag()? {
        Some(Arc::new(read_alert(&mut r)?))
    } else {
        None
    };
    r.finish()?;
    Ok(AlertContent {
        alert,
        issued_alert,
    })
}

/// Encodes the state record of one fingerprint: everything but the alert content.
pub fn encode_fingerprint(
    out: &mut Vec<u8>,
    record: Option<&AlertRecord>,
    issued: Option<&IssuedAlert>,
    pending: &[PendingRef],
) {
    let mut w = Writer(out);
    w.flag(record.is_some());
    if let Some(record) = record {
        w.u64(record.first_seen_ms);
        w.u64(record.last_seen_ms);
        w.opt_u64(record.ends_at_ms);
        w.len(record.sightings.0.len());
        for &at in &record.sightings.0 {
            w.u64(at);
        }
        write_state(&mut w, &record.state);
        w.strs(&record.receivers);
    }
    w.flag(issued.is_some());
    if let Some(issued) = issued {
        w.u64(issued.first_delivered_ms);
        w.u64(issued.last_delivered_ms);
        w.u64(issued.last_seen_ms);
        w.u32(issued.deliveries);
        w.opt_u64(issued.success_withheld_since_ms);
    }
    w.len(pending.len());
    for reference in pending {
        w.str(&reference.group_key);
        w.u64(reference.group_seq);
        w.u32(reference.delivery);
        w.u64(reference.starts_at_ms);
    }
}

/// Decodes the state record of `fingerprint` with its content record.
pub fn decode_fingerprint(
    fingerprint: &str,
    bytes: &[u8],
    content: Option<&AlertContent>,
) -> Result<FingerprintRecord, DecodeError> {
    let mut r = Reader(bytes);
    let record = if r.flag()? {
        let alert = content
            .map(|c| Arc::clone(&c.alert))
            .ok_or(DecodeError("alert record without its content record"))?;
        let first_seen_ms = r.u64()?;
        let last_seen_ms = r.u64()?;
        let ends_at_ms = r.opt_u64()?;
        let count = r.len()?;
        let sightings = (0..count).map(|_| r.u64()).collect::<Result<_, _>>()?;
        Some(AlertRecord {
            alert,
            first_seen_ms,
            last_seen_ms,
            ends_at_ms,
            sightings: Sightings(sightings),
            state: read_state(&mut r)?,
            receivers: r.strs()?,
        })
    } else {
        None
    };
    let issued = if r.flag()? {
        let alert = content
            .map(|c| Arc::clone(c.issued_alert.as_ref().unwrap_or(&c.alert)))
            .ok_or(DecodeError("issued alert without its content record"))?;
        Some(IssuedAlert {
            fingerprint: fingerprint.to_owned(),
            alert,
            first_delivered_ms: r.u64()?,
            last_delivered_ms: r.u64()?,
            last_seen_ms: r.u64()?,
            deliveries: r.u32()?,
            success_withheld_since_ms: r.opt_u64()?,
        })
    } else {
        None
    };
    let count = r.len()?;
    let mut pending = Vec::with_capacity(count);
    for _ in 0..count {
        pending.push(PendingRef {
            group_key: r.str()?,
            group_seq: r.u64()?,
            delivery: r.u32()?,
            starts_at_ms: r.u64()?,
        });
    }
    r.finish()?;
    Ok(FingerprintRecord {
        record,
        issued,
        pending,
    })
}

/// Encodes the format 3 state record of the fingerprint at a slot: the fingerprint, then the
/// state record of [`encode_fingerprint`].
pub fn encode_slot_state(
    out: &mut Vec<u8>,
    fingerprint: &str,
    record: Option<&AlertRecord>,
    issued: Option<&IssuedAlert>,
    pending: &[PendingRef],
) {
    Writer(out).str(fingerprint);
    encode_fingerprint(out, record, issued, pending);
}

/// Decodes a format 3 state record with the content record of the same slot.
pub fn decode_slot_state(
    bytes: &[u8],
    content: Option<&AlertContent>,
) -> Result<(String, FingerprintRecord), DecodeError> {
    let mut r = Reader(bytes);
    let fingerprint = r.str()?;
    let record = decode_fingerprint(&fingerprint, r.0, content)?;
    Ok((fingerprint, record))
}

/// Encodes a group's header: everything but its alerts (they point at it, see [`PendingRef`]).
pub fn encode_group_header(group: &Group) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut w = Writer(&mut out);
    w.u64(group.seq);
    w.str(&group.key);
    w.str(&group.receiver);
    w.map(&group.labels);
    w.u64(group.created_ms);
    w.u64(group.due_ms);
    w.opt_str(group.request_id.as_deref());
    out
}

/// Decodes a group header; its alerts are empty until the pending references are attached.
pub fn decode_group_header(bytes: &[u8]) -> Result<Group, DecodeError> {
    let mut r = Reader(bytes);
    let group = Group {
        seq: r.u64()?,
        key: r.str()?,
        receiver: r.str()?,
        labels: r.map()?,
        created_ms: r.u64()?,
        due_ms: r.u64()?,
        alerts: BTreeMap::new(),
        request_id: r.opt_str()?,
    };
    r.finish()?;
    Ok(group)
}

// ------------------------------------------------------------------ outbox records

/// The first byte of a binary owed outbox record. A JSON record (what builds before it wrote)
/// starts with `{`, so both are told apart by their first byte.
pub const OWED_BINARY_V1: u8 = 0x01;

/// The fields of an owed outbox record besides its notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedFields {
    pub enqueued_at_ms: u64,
    pub attempts: u32,
    pub permanent_failures: u32,
    pub next_attempt_ms: u64,
    pub last_error: Option<String>,
}

fn write_notification(w: &mut Writer<'_>, notification: &Notification) {
    w.str(&notification.id);
    w.str(&notification.receiver);
    w.str(&notification.group_key);
    w.map(&notification.group_labels);
    write_status(w, notification.status);
    w.len(notification.alerts.len());
    for notified in &notification.alerts {
        write_alert(w, &notified.alert);
        write_status(w, notified.status);
        w.u64(notified.starts_at_ms);
        w.opt_u64(notified.ends_at_ms);
        w.u32(notified.delivery);
    }
    w.u64(notification.created_at_ms);
    w.opt_str(notification.request_id.as_deref());
}

fn write_status(w: &mut Writer<'_>, status: NotificationStatus) {
    w.0.push(match status {
        NotificationStatus::Firing => 0,
        NotificationStatus::Resolved => 1,
    });
}

fn read_status(r: &mut Reader<'_>) -> Result<NotificationStatus, DecodeError> {
    match r.byte()? {
        0 => Ok(NotificationStatus::Firing),
        1 => Ok(NotificationStatus::Resolved),
        _ => Err(DecodeError("unknown notification status")),
    }
}

fn read_notification(r: &mut Reader<'_>) -> Result<Notification, DecodeError> {
    let id = r.str()?;
    let receiver = r.str()?;
    let group_key = r.str()?;
    let group_labels = r.map()?;
    let status = read_status(r)?;
    let count = r.len()?;
    let mut alerts = Vec::with_capacity(count);
    for _ in 0..count {
        alerts.push(NotifiedAlert {
            alert: Arc::new(read_alert(r)?),
            status: read_status(r)?,
            starts_at_ms: r.u64()?,
            ends_at_ms: r.opt_u64()?,
            delivery: r.u32()?,
        });
    }
    Ok(Notification {
        id,
        receiver,
        group_key,
        group_labels,
        status,
        alerts,
        created_at_ms: r.u64()?,
        request_id: r.opt_str()?,
    })
}

/// Encodes an owed outbox record (binary, [`OWED_BINARY_V1`]) from a borrowed notification, so
/// staging a notification does not copy it first.
pub fn encode_owed(out: &mut Vec<u8>, notification: &Notification, fields: &OwedFields) {
    out.push(OWED_BINARY_V1);
    let mut w = Writer(out);
    w.u64(fields.enqueued_at_ms);
    w.u32(fields.attempts);
    w.u32(fields.permanent_failures);
    w.u64(fields.next_attempt_ms);
    w.opt_str(fields.last_error.as_deref());
    write_notification(&mut w, notification);
}

/// Decodes a binary owed outbox record (the caller reads JSON ones, which start with `{`).
pub fn decode_owed(bytes: &[u8]) -> Result<(Notification, OwedFields), DecodeError> {
    let mut r = Reader(bytes);
    if r.byte()? != OWED_BINARY_V1 {
        return Err(DecodeError("unknown outbox record version"));
    }
    let fields = OwedFields {
        enqueued_at_ms: r.u64()?,
        attempts: r.u32()?,
        permanent_failures: r.u32()?,
        next_attempt_ms: r.u64()?,
        last_error: r.opt_str()?,
    };
    let notification = read_notification(&mut r)?;
    r.finish()?;
    Ok((notification, fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(annotation: &str) -> Alert {
        let mut alert = Alert {
            name: "HighMem".into(),
            index: "c1".into(),
            host: "h1".into(),
            source: String::new(),
            severity: "warning".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::from([("summary".to_owned(), annotation.to_owned())]),
            value: Some(93.5),
            at: "2026-11-21T12:00:00.000Z".into(),
            fingerprint: String::new(),
        };
        alert.complete_labels();
        alert.fingerprint = alert.computed_fingerprint();
        alert
    }

    fn record() -> AlertRecord {
        AlertRecord {
            alert: Arc::new(alert("mem 93.5")),
            first_seen_ms: 1,
            last_seen_ms: 300_000_000_000,
            ends_at_ms: Some(7),
            sightings: Sightings(vec![1, 2, u64::MAX]),
            state: AlertState::Ignored {
                by: vec!["r1".into(), "ré2".into()],
            },
            receivers: vec!["hook".into()],
        }
    }

    fn issued(alert: Alert) -> IssuedAlert {
        IssuedAlert {
            fingerprint: alert.fingerprint.clone(),
            alert: Arc::new(alert),
            first_delivered_ms: 10,
            last_delivered_ms: 20,
            last_seen_ms: 30,
            deliveries: 2,
            success_withheld_since_ms: Some(40),
        }
    }

    fn round_trip(
        record: Option<&AlertRecord>,
        issued: Option<&IssuedAlert>,
        pending: &[PendingRef],
    ) -> Result<FingerprintRecord, DecodeError> {
        let mut content = Vec::new();
        let alert = record.map(|r| &*r.alert).or(issued.map(|i| &*i.alert));
        let content = alert.map(|alert| {
            encode_content(&mut content, alert, issued.map(|i| &*i.alert));
            decode_content(&content).unwrap()
        });
        let mut bytes = Vec::new();
        encode_fingerprint(&mut bytes, record, issued, pending);
        let fingerprint = alert.map_or("", |a| a.fingerprint.as_str());
        decode_fingerprint(fingerprint, &bytes, content.as_ref())
    }

    #[test]
    fn fingerprint_records_round_trip() {
        let pending = vec![PendingRef {
            group_key: "0/hook:{alertname=\"HighMem\"}".into(),
            group_seq: 99,
            delivery: 3,
            starts_at_ms: 12,
        }];
        let same = issued(Alert::clone(&record().alert));
        let other = issued(alert("mem 99"));
        for (record, issued) in [
            (Some(record()), Some(same)),
            (Some(record()), Some(other.clone())),
            (Some(record()), None),
            (None, Some(other)),
            (None, None),
        ] {
            let decoded = round_trip(record.as_ref(), issued.as_ref(), &pending).unwrap();
            assert_eq!(decoded.record, record);
            assert_eq!(decoded.issued, issued);
            assert_eq!(decoded.pending, pending);
        }
    }

    #[test]
    fn slot_state_records_carry_their_fingerprint_and_refuse_every_cut() {
        let record = record();
        let issued = issued(Alert::clone(&record.alert));
        let mut content_bytes = Vec::new();
        encode_content(&mut content_bytes, &record.alert, Some(&issued.alert));
        let content = decode_content(&content_bytes).unwrap();
        let mut bytes = Vec::new();
        encode_slot_state(
            &mut bytes,
            "0fa1b9fea54b6750",
            Some(&record),
            Some(&issued),
            &[],
        );
        let (fingerprint, decoded) = decode_slot_state(&bytes, Some(&content)).unwrap();
        assert_eq!(fingerprint, "0fa1b9fea54b6750");
        assert_eq!(decoded.record.as_ref(), Some(&record));
        assert_eq!(decoded.issued.map(|i| i.deliveries), Some(2));
        for cut in 0..bytes.len() {
            assert!(
                decode_slot_state(&bytes[..cut], Some(&content)).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_an_error() {
        let mut bytes = Vec::new();
        let issued = issued(alert("x"));
        encode_fingerprint(&mut bytes, Some(&record()), Some(&issued), &[]);
        let mut content_bytes = Vec::new();
        encode_content(&mut content_bytes, &record().alert, Some(&issued.alert));
        let content = decode_content(&content_bytes).unwrap();
        assert_eq!(content.issued_alert.as_ref(), Some(&issued.alert));
        for cut in 0..bytes.len() {
            assert!(
                decode_fingerprint("f", &bytes[..cut], Some(&content)).is_err(),
                "cut at {cut}"
            );
        }
        for cut in 0..content_bytes.len() {
            assert!(
                decode_content(&content_bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        assert!(
            decode_fingerprint("f", &bytes, None).is_err(),
            "state without content"
        );
        bytes.push(0);
        assert!(decode_fingerprint("f", &bytes, Some(&content)).is_err());
        assert!(
            decode_content(b"{\"alert\": {}}").is_err(),
            "JSON is not format 2"
        );
    }

    #[test]
    fn group_headers_round_trip_without_their_alerts() {
        let group = Group {
            seq: 5,
            key: "0/hook:{}".into(),
            receiver: "hook".into(),
            labels: BTreeMap::from([("alertname".to_owned(), "X".to_owned())]),
            created_ms: 1,
            due_ms: 101,
            alerts: BTreeMap::new(),
            request_id: Some("rid".into()),
        };
        let bytes = encode_group_header(&group);
        assert_eq!(decode_group_header(&bytes).unwrap(), group);
        assert!(decode_group_header(&bytes[..bytes.len() - 1]).is_err());
    }

    fn notification() -> Notification {
        Notification {
            id: "0123456789abcdef".into(),
            receiver: "hook".into(),
            group_key: "0/hook:{alertname=\"HighMem\"}".into(),
            group_labels: BTreeMap::from([("alertname".to_owned(), "HighMem".to_owned())]),
            status: NotificationStatus::Firing,
            alerts: vec![
                NotifiedAlert {
                    alert: Arc::new(alert("mem 93.5")),
                    status: NotificationStatus::Firing,
                    starts_at_ms: 5,
                    ends_at_ms: None,
                    delivery: 1,
                },
                NotifiedAlert {
                    alert: Arc::new(alert("mé 99")),
                    status: NotificationStatus::Resolved,
                    starts_at_ms: u64::MAX,
                    ends_at_ms: Some(9),
                    delivery: 7,
                },
            ],
            created_at_ms: 1_700_000_000_000,
            request_id: Some("req-1".into()),
        }
    }

    #[test]
    fn owed_records_round_trip_and_refuse_damage() {
        let fields = OwedFields {
            enqueued_at_ms: 1,
            attempts: 2,
            permanent_failures: 1,
            next_attempt_ms: 1_700_000_000_123,
            last_error: Some("HTTP 503".into()),
        };
        let mut bytes = Vec::new();
        encode_owed(&mut bytes, &notification(), &fields);
        assert_eq!(bytes[0], OWED_BINARY_V1);
        assert_eq!(
            decode_owed(&bytes).unwrap(),
            (notification(), fields.clone())
        );
        let empty = Notification {
            alerts: Vec::new(),
            request_id: None,
            ..notification()
        };
        let plain = OwedFields {
            last_error: None,
            ..fields
        };
        let mut other = Vec::new();
        encode_owed(&mut other, &empty, &plain);
        assert_eq!(decode_owed(&other).unwrap(), (empty, plain));
        for cut in 0..bytes.len() {
            assert!(decode_owed(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_owed(&trailing).is_err());
        let mut version = bytes.clone();
        version[0] = 0x02;
        assert!(decode_owed(&version).is_err(), "unknown version");
        assert!(decode_owed(b"{\"notification\": {}}").is_err());
    }
}
