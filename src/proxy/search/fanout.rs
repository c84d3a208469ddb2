//! Asking the shard groups: one InfluxQL request per group to every reachable replica at once
//! (to the first that answers, in order, for a `replicated` group), each answer parsed into rows
//! with their tags told apart from their fields. The union and the deduplication happen in the
//! caller, which knows the order it needs.
//!
//! It must never pass a group off as answered when none of its replicas answered: such a group
//! is reported as unreachable so the answer can say it is partial.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::backend::client::QueryRequest;
use crate::protocol::point::OwnedFieldValue;
use crate::replication::pipeline::{ReadReplica, replicas_worth_asking};

/// One point as a backend stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub time: i64,
    pub tags: BTreeMap<String, String>,
    pub fields: BTreeMap<String, OwnedFieldValue>,
}

impl Row {
    /// Replicas and groups hold the same point as the same series (tags) at the same time.
    pub fn same_point(&self, other: &Row) -> bool {
        self.time == other.time && self.tags == other.tags
    }
}

/// What to ask one group.
pub struct GroupRequest {
    pub group: String,
    /// `true`: the backend replicates itself; one answer is the whole group.
    pub replicated: bool,
    pub replicas: Vec<ReadReplica>,
    pub statement: String,
}

/// Why a replica gave no usable answer.
#[derive(Debug, Clone)]
pub enum ReplicaFailure {
    /// Not reached, timed out, 5xx: another replica may answer for it.
    Unreachable { replica: String, message: String },
    /// It answered with an error about the statement (4xx, a statement error).
    Refused { replica: String, message: String },
}

/// One group's answers: the parsed results of every replica that answered, and why the others
/// did not.
pub struct GroupAnswer {
    pub group: String,
    pub answers: Vec<Vec<StatementResult>>,
    pub failures: Vec<ReplicaFailure>,
}

impl GroupAnswer {
    /// No replica answered and at least one refused the statement: a fault to report, not a
    /// partial answer.
    pub fn refusal(&self) -> Option<String> {
        if !self.answers.is_empty() {
            return None;
        }
        self.failures.iter().find_map(|failure| match failure {
            ReplicaFailure::Refused { replica, message } => Some(format!(
                "group {:?} replica {replica:?}: {message}",
                self.group
            )),
            ReplicaFailure::Unreachable { .. } => None,
        })
    }
}

/// One statement's result as InfluxDB 1.x shapes it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StatementResult {
    #[serde(default)]
    pub series: Vec<Series>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Series {
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub values: Vec<Vec<Value>>,
}

#[derive(Deserialize)]
struct QueryBody {
    #[serde(default)]
    results: Vec<StatementResult>,
    #[serde(default)]
    error: Option<String>,
}

/// Asks every group at once; answers come back in the order of `requests`.
pub async fn ask_groups(
    requests: Vec<GroupRequest>,
    client_database: &str,
    request_id: &str,
) -> Vec<GroupAnswer> {
    let mut tasks = JoinSet::new();
    let count = requests.len();
    for (position, request) in requests.into_iter().enumerate() {
        let database = client_database.to_owned();
        let request_id = request_id.to_owned();
        tasks.spawn(async move { (position, ask_group(request, &database, &request_id).await) });
    }
    let mut answers: Vec<Option<GroupAnswer>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((position, answer)) = joined
            && let Some(slot) = answers.get_mut(position)
        {
            *slot = Some(answer);
        }
    }
    answers.into_iter().flatten().collect()
}

async fn ask_group(request: GroupRequest, database: &str, request_id: &str) -> GroupAnswer {
    let GroupRequest {
        group,
        replicated,
        replicas,
        statement,
    } = request;
    let chosen = replicas_worth_asking(replicas);
    let mut answer = GroupAnswer {
        group,
        answers: Vec::new(),
        failures: Vec::new(),
    };
    if replicated {
        for replica in chosen {
            match ask_replica(replica, statement.clone(), database, request_id).await {
                Ok(results) => {
                    answer.answers.push(results);
                    break;
                }
                Err(failure) => answer.failures.push(failure),
            }
        }
        return answer;
    }
    let mut tasks = JoinSet::new();
    for replica in chosen {
        let statement = statement.clone();
        let database = database.to_owned();
        let request_id = request_id.to_owned();
        tasks.spawn(async move { ask_replica(replica, statement, &database, &request_id).await });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(results)) => answer.answers.push(results),
            Ok(Err(failure)) => answer.failures.push(failure),
            Err(error) => answer.failures.push(ReplicaFailure::Unreachable {
                replica: "?".to_owned(),
                message: format!("the query task failed: {error}"),
            }),
        }
    }
    answer
}

async fn ask_replica(
    replica: ReadReplica,
    statement: String,
    client_database: &str,
    request_id: &str,
) -> Result<Vec<StatementResult>, ReplicaFailure> {
    let database = replica.config.backend_database(client_database);
    let mut results = query_replica(&replica, &statement, Some(database), request_id).await?;
    if is_bare_not_executed(&results) && database_is_missing(&replica, database, request_id).await {
        return Ok(Vec::new());
    }
    for result in &mut results {
        // A replica that never received a line of this database has nothing to add; that is
        // an empty answer, not a failure.
        if result
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("database not found"))
        {
            *result = StatementResult::default();
        }
    }
    if let Some(error) = results.iter().find_map(|r| r.error.clone()) {
        return Err(ReplicaFailure::Refused {
            replica: replica.id.clone(),
            message: error,
        });
    }
    Ok(results)
}

/// InfluxDB 1.x answers several statements on a database it does not have with one result, a
/// bare "not executed": the "database not found" it gives a single statement is lost.
fn is_bare_not_executed(results: &[StatementResult]) -> bool {
    matches!(results, [only] if only.error.as_deref() == Some("not executed"))
}

/// Whether the replica lacks `database` (`SHOW DATABASES`). Unknown (it cannot be asked) counts
/// as present, so that the original refusal stands.
async fn database_is_missing(replica: &ReadReplica, database: &str, request_id: &str) -> bool {
    match query_replica(replica, "SHOW DATABASES", None, request_id).await {
        Ok(results) => results.first().is_some_and(|result| {
            result.error.is_none()
                && !column_values(result, "name")
                    .iter()
                    .any(|name| name == database)
        }),
        Err(_) => false,
    }
}

/// One query to one replica: its statements' results, or why there are none (unreachable; an
/// answer that is not InfluxDB query JSON, carries a top-level error or is not a 2xx).
async fn query_replica(
    replica: &ReadReplica,
    statement: &str,
    database: Option<&str>,
    request_id: &str,
) -> Result<Vec<StatementResult>, ReplicaFailure> {
    let request = QueryRequest {
        statement,
        database,
        epoch: Some("ns"),
        ..QueryRequest::default()
    };
    let answer = replica
        .client
        .query(&request, request_id)
        .await
        .map_err(|error| ReplicaFailure::Unreachable {
            replica: replica.id.clone(),
            message: error.to_string(),
        })?;
    let refused = |message: String| ReplicaFailure::Refused {
        replica: replica.id.clone(),
        message,
    };
    let body: QueryBody = serde_json::from_slice(&answer.body).map_err(|error| {
        refused(format!(
            "answered {} with a body that is not InfluxDB query JSON: {error}",
            answer.status
        ))
    })?;
    if let Some(error) = body.error {
        return Err(refused(error));
    }
    if !(200..300).contains(&answer.status) {
        return Err(refused(format!("answered {}", answer.status)));
    }
    Ok(body.results)
}

/// The first column of every row of every series of a result (`SHOW TAG KEYS`: the keys;
/// `SHOW TAG VALUES`: the column named `value`).
pub fn column_values(result: &StatementResult, column: &str) -> Vec<String> {
    let mut out = Vec::new();
    for series in &result.series {
        let Some(position) = series.columns.iter().position(|c| c == column) else {
            continue;
        };
        for row in &series.values {
            if let Some(text) = row.get(position).and_then(Value::as_str) {
                out.push(text.to_owned());
            }
        }
    }
    out
}

/// Parses the rows of a `SHOW TAG KEYS; SHOW FIELD KEYS; SELECT *` answer.
pub fn rows_of(results: &[StatementResult]) -> Vec<Row> {
    let [tag_keys, field_keys, select, ..] = results else {
        return Vec::new();
    };
    let tags: HashSet<String> = column_values(tag_keys, "tagKey").into_iter().collect();
    let mut field_types: HashMap<String, String> = HashMap::new();
    for series in &field_keys.series {
        for row in &series.values {
            if let (Some(Value::String(key)), Some(Value::String(kind))) = (row.first(), row.get(1))
            {
                field_types.insert(key.clone(), kind.clone());
            }
        }
    }
    let mut rows = Vec::new();
    for series in &select.series {
        let Some(time_column) = series.columns.iter().position(|c| c == "time") else {
            continue;
        };
        for values in &series.values {
            let Some(time) = values.get(time_column).and_then(Value::as_i64) else {
                continue;
            };
            let mut row = Row {
                time,
                tags: BTreeMap::new(),
                fields: BTreeMap::new(),
            };
            for (column, value) in series.columns.iter().zip(values) {
                if column == "time" || value.is_null() {
                    continue;
                }
                if tags.contains(column) {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    row.tags.insert(column.clone(), text);
                } else if let Some(field) =
                    field_value(value, field_types.get(column).map(String::as_str))
                {
                    row.fields.insert(column.clone(), field);
                }
            }
            rows.push(row);
        }
    }
    rows
}

/// A JSON value as the field type `SHOW FIELD KEYS` names; by its JSON shape when the type is
/// unknown or does not fit (a field with several types across shards).
fn field_value(value: &Value, kind: Option<&str>) -> Option<OwnedFieldValue> {
    let typed = match kind {
        Some("integer") => value.as_i64().map(OwnedFieldValue::Integer),
        Some("unsigned") => value.as_u64().map(OwnedFieldValue::Unsigned),
        Some("float") => value.as_f64().map(OwnedFieldValue::Float),
        Some("string") => value
            .as_str()
            .map(|s| OwnedFieldValue::String(s.to_owned())),
        Some("boolean") => value.as_bool().map(OwnedFieldValue::Boolean),
        _ => None,
    };
    typed.or_else(|| match value {
        Value::Bool(b) => Some(OwnedFieldValue::Boolean(*b)),
        Value::String(s) => Some(OwnedFieldValue::String(s.clone())),
        Value::Number(n) => n.as_f64().map(OwnedFieldValue::Float),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(text: &str) -> Vec<StatementResult> {
        let body: QueryBody = serde_json::from_str(text).unwrap();
        body.results
    }

    #[test]
    fn tags_and_typed_fields_are_told_apart() {
        let answer = results(
            r#"{"results":[
            {"statement_id":0,"series":[{"name":"log","columns":["tagKey"],"values":[["host"],["index"]]}]},
            {"statement_id":1,"series":[{"name":"log","columns":["fieldKey","fieldType"],"values":[["code","integer"],["msg","string"],["ratio","float"]]}]},
            {"statement_id":2,"series":[{"name":"log","columns":["time","code","host","index","msg","ratio"],
              "values":[[1795000000123456789,7,"h1","a","hello",1],[5,null,null,"b","x",null]]}]}]}"#,
        );
        let rows = rows_of(&answer);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].time, 1_795_000_000_123_456_789);
        assert_eq!(rows[0].tags["host"], "h1");
        assert_eq!(rows[0].fields["code"], OwnedFieldValue::Integer(7));
        assert_eq!(rows[0].fields["ratio"], OwnedFieldValue::Float(1.0));
        assert_eq!(
            rows[0].fields["msg"],
            OwnedFieldValue::String("hello".into())
        );
        assert!(!rows[1].tags.contains_key("host"), "nulls are absent");
        assert!(rows[0].same_point(&rows[0].clone()));
        assert!(!rows[0].same_point(&rows[1]));
    }

    #[test]
    fn an_empty_or_short_answer_has_no_rows() {
        assert!(
            rows_of(&results(
                r#"{"results":[{"statement_id":0},{"statement_id":1},{"statement_id":2}]}"#
            ))
            .is_empty()
        );
        assert!(rows_of(&[]).is_empty());
    }
}
