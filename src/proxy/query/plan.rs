//! Planning a statement before any replica is asked: which groups (index parameter or condition),
//! whether the token may read them, and how the answer will be merged. Everything that cannot be
//! answered exactly is refused here, so no replica is ever asked a question whose answers the
//! proxy could not combine.

use axum::http::StatusCode;
use serde_json::Value;

use crate::influxql::ast::{BinaryOp, Ddl, Expr, Select, Show, ShowKind, Source, Statement};
use crate::influxql::index::{IndexSelection, index_selection};
use crate::influxql::merge::{self, AggregatePlan, Window};
use crate::influxql::render::render_select;
use crate::shard::{AccessError, Action, Principal, ShardMap};

use super::params::QueryParams;

/// How one statement is answered.
pub(super) enum Plan {
    Raw {
        /// What replicas are asked when several answer (LIMIT+OFFSET, no OFFSET).
        select: Box<Select>,
        /// The statement as the client meant it, for a group with a single replica.
        original: Box<Select>,
        window: Window,
        groups: Vec<String>,
    },
    AggregateOne {
        select: Box<Select>,
        group: String,
    },
    AggregateMany {
        plan: Box<AggregatePlan>,
        groups: Vec<String>,
    },
    Show {
        original: Box<Show>,
        replica_show: Box<Show>,
        groups: Vec<String>,
    },
    Ddl(Ddl),
    PassThrough {
        text: String,
        group: String,
    },
}

impl Plan {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Plan::Raw { .. } => "select_raw",
            Plan::AggregateOne { .. } | Plan::AggregateMany { .. } => "select_aggregate",
            Plan::Show { .. } => "show",
            Plan::Ddl(_) => "ddl",
            Plan::PassThrough { .. } => "other",
        }
    }
}

/// A refusal before any backend is asked.
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    pub(super) message: String,
}

impl Refusal {
    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub(super) fn access(error: &AccessError) -> Self {
        Refusal {
            status: StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::FORBIDDEN),
            message: error.to_string(),
        }
    }
}

pub(super) struct Planner<'a> {
    pub(super) map: &'a ShardMap,
    pub(super) index_tag: &'a str,
    pub(super) params: &'a QueryParams,
    pub(super) bound: Option<&'a Value>,
    pub(super) principal: &'a Principal,
}

pub(super) fn index_condition(index_tag: &str, index: &str) -> Expr {
    Expr::Binary {
        op: BinaryOp::Eq,
        lhs: Box::new(Expr::VarRef {
            name: index_tag.to_owned(),
            cast: None,
        }),
        rhs: Box::new(Expr::String(index.to_owned())),
    }
}

/// `index_tag = 'index' AND (condition)`.
pub(super) fn and_index(condition: Option<Expr>, index_tag: &str, index: &str) -> Expr {
    let narrowing = index_condition(index_tag, index);
    match condition {
        None => narrowing,
        Some(existing) => Expr::Binary {
            op: BinaryOp::And,
            lhs: Box::new(narrowing),
            rhs: Box::new(Expr::Paren(Box::new(existing))),
        },
    }
}

impl Planner<'_> {
    pub(super) fn plan(&self, statement: Statement) -> Result<Plan, Refusal> {
        match statement {
            Statement::Select(select) => self.plan_select(*select),
            Statement::Show(show) => self.plan_show(show),
            Statement::Ddl(ddl) => {
                self.principal
                    .check_admin()
                    .map_err(|e| Refusal::access(&e))?;
                Ok(Plan::Ddl(ddl))
            }
            Statement::Other(text) => {
                self.principal
                    .check_admin()
                    .map_err(|e| Refusal::access(&e))?;
                match self.map.groups() {
                    [group] if group.replicated || group.replicas.len() == 1 => {
                        Ok(Plan::PassThrough {
                            text,
                            group: group.name.clone(),
                        })
                    }
                    _ => Err(Refusal::bad_request(format!(
                        "statement not supported through monitor-api with several shard groups or replicas (its answer could not be merged correctly): {text}"
                    ))),
                }
            }
        }
    }

    /// The groups a condition (plus the `index` parameter) reaches, with access checked.
    pub(super) fn groups_for(&self, condition: Option<&Expr>) -> Result<Vec<String>, Refusal> {
        let selection = match &self.params.index {
            Some(index) => Some(IndexSelection {
                names: vec![index.clone()],
                regexes: Vec::new(),
            }),
            None => index_selection(condition, self.index_tag, self.bound),
        };
        let everything = || self.map.groups().iter().map(|g| g.name.clone()).collect();
        let Some(selection) = selection else {
            if !self.principal.reads_everything() {
                return Err(Refusal {
                    status: StatusCode::FORBIDDEN,
                    message: format!(
                        "this token may read only some indexes: name one with the index parameter or WHERE \"{}\" = '...'",
                        self.index_tag
                    ),
                });
            }
            return Ok(everything());
        };
        for name in &selection.names {
            self.principal
                .check(Action::Read, name.as_bytes())
                .map_err(|e| Refusal::access(&e))?;
        }
        let mut groups: Vec<String> = Vec::new();
        let mut add = |name: &str| {
            if !groups.iter().any(|g| g == name) {
                groups.push(name.to_owned());
            }
        };
        for name in &selection.names {
            // An index no group takes has no data: it narrows to nothing.
            if let Ok(group) = self.map.route_group(name.as_bytes()) {
                add(&group.name);
            }
        }
        if !selection.regexes.is_empty() {
            if !self.principal.reads_everything() {
                return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                message: "this token may read only some indexes: a regex on the index tag needs read access to every index; name them".to_owned(),
                });
            }
            let doc = self.map.doc();
            let only_exact = doc.default_group.is_none()
                && doc.indexes.keys().all(|k| {
                    matches!(
                        crate::config::parse_selector(k),
                        Ok(crate::config::SelectorKind::Exact(_))
                    )
                });
            if !only_exact {
                return Ok(everything());
            }
            for pattern in &selection.regexes {
                let regex = regex::Regex::new(pattern).map_err(|e| {
                    Refusal::bad_request(format!("invalid regex /{pattern}/ on the index tag: {e}"))
                })?;
                for (index, group) in doc.indexes.iter() {
                    if regex.is_match(index) {
                        add(group);
                    }
                }
            }
        }
        Ok(groups)
    }

    pub(super) fn plan_select(&self, mut select: Select) -> Result<Plan, Refusal> {
        if select
            .sources
            .iter()
            .any(|s| matches!(s, Source::Subquery(_)))
        {
            return self.single_backend_or(
                render_select(&select, &|db: &str| db.to_owned()),
                "subqueries are not merged across shard groups or replicas",
            );
        }
        if select.into.is_some() {
            return self.single_backend_or(
                render_select(&select, &|db: &str| db.to_owned()),
                "SELECT INTO is not supported through monitor-api with several shard groups or replicas",
            );
        }
        let groups = self.groups_for(select.condition.as_ref())?;
        if let Some(index) = &self.params.index {
            select.condition = Some(and_index(select.condition.take(), self.index_tag, index));
        }
        if !select.is_aggregate() {
            let window = Window::of(&select);
            return Ok(Plan::Raw {
                select: Box::new(merge::replica_select(&select)),
                original: Box::new(select),
                window,
                groups,
            });
        }
        if groups.len() <= 1 {
            let Some(group) = groups.into_iter().next() else {
                // No group holds the index: an empty answer, from no replica.
                return Ok(Plan::Raw {
                    window: Window::of(&select),
                    original: Box::new(select.clone()),
                    select: Box::new(select),
                    groups: Vec::new(),
                });
            };
            return Ok(Plan::AggregateOne {
                select: Box::new(select),
                group,
            });
        }
        let plan = merge::aggregate::plan(&select).map_err(|e| Refusal::bad_request(e.0))?;
        Ok(Plan::AggregateMany {
            plan: Box::new(plan),
            groups,
        })
    }

    pub(super) fn single_backend_or(&self, text: String, why: &str) -> Result<Plan, Refusal> {
        match self.map.groups() {
            [group] if group.replicated || group.replicas.len() == 1 => Ok(Plan::PassThrough {
                text,
                group: group.name.clone(),
            }),
            _ => Err(Refusal::bad_request(why)),
        }
    }

    pub(super) fn plan_show(&self, mut show: Show) -> Result<Plan, Refusal> {
        let groups = match show.kind {
            // Schema of the databases themselves: every group, no index involved.
            ShowKind::Databases | ShowKind::RetentionPolicies => {
                self.map.groups().iter().map(|g| g.name.clone()).collect()
            }
            _ => {
                let groups = self.groups_for(show.condition.as_ref())?;
                if let Some(index) = &self.params.index
                    && show.kind != ShowKind::FieldKeys
                {
                    show.condition = Some(and_index(show.condition.take(), self.index_tag, index));
                }
                groups
            }
        };
        Ok(Plan::Show {
            replica_show: Box::new(merge::replica_show(&show)),
            original: Box::new(show),
            groups,
        })
    }
}
