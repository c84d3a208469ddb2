//! The syntax tree of the InfluxQL subset the proxy understands. It holds what the merger must
//! reason about (fields, sources, condition, grouping, ordering, limits) and nothing it does not;
//! it never stores a value the renderer could not write back as InfluxDB reads it.

/// One statement of a `q` parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Select(Box<Select>),
    Show(Show),
    /// A statement that changes schema on every replica (databases, retention policies,
    /// measurements, series). Forwarded as written, with its database name mapped per replica.
    Ddl(Ddl),
    /// A statement the proxy does not model (users, grants, queries, ...): forwarded only where
    /// that is provably correct.
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub fields: Vec<Field>,
    pub into: Option<String>,
    pub sources: Vec<Source>,
    pub condition: Option<Expr>,
    pub dimensions: Vec<Dimension>,
    pub fill: Option<Fill>,
    pub order_desc: bool,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub slimit: Option<u64>,
    pub soffset: Option<u64>,
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub expr: Expr,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Measurement {
        database: Option<String>,
        retention_policy: Option<String>,
        name: MeasurementName,
    },
    Subquery(Box<Select>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum MeasurementName {
    Name(String),
    Regex(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Dimension {
    Time {
        interval: String,
        offset: Option<Expr>,
    },
    Tag(String),
    Regex(String),
    Wildcard,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fill {
    Null,
    None,
    Previous,
    Linear,
    Number(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    BitXor,
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    EqRegex,
    NeqRegex,
    And,
    Or,
}

impl BinaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::BitAnd => "&",
            BinaryOp::BitOr => "|",
            BinaryOp::BitXor => "^",
            BinaryOp::Eq => "=",
            BinaryOp::Neq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Lte => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Gte => ">=",
            BinaryOp::EqRegex => "=~",
            BinaryOp::NeqRegex => "!~",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A field or tag, optionally typed (`"host"::tag`).
    VarRef {
        name: String,
        cast: Option<String>,
    },
    /// `*`, optionally typed (`*::field`).
    Wildcard {
        cast: Option<String>,
    },
    /// A function call (`mean(x)`, `now()`, `percentile(x, 95)`).
    Call {
        name: String,
        args: Vec<Expr>,
    },
    /// A number as written; `integer` when it has no point or exponent.
    Number {
        text: String,
        integer: bool,
    },
    String(String),
    Bool(bool),
    Duration(String),
    Regex(String),
    BoundParameter(String),
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Paren(Box<Expr>),
}

/// Functions of one row (math, `now()`): a raw SELECT may use them and stays mergeable as raw.
const ROW_WISE_FUNCTIONS: &[&str] = &[
    "now", "abs", "acos", "asin", "atan", "atan2", "ceil", "cos", "exp", "floor", "ln", "log",
    "log2", "log10", "pow", "round", "sin", "sqrt", "tan",
];

impl Expr {
    /// Whether this expression contains a function call that aggregates or selects points.
    pub fn has_aggregate(&self) -> bool {
        match self {
            Expr::Call { name, args } => {
                let row_wise = ROW_WISE_FUNCTIONS
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(name));
                !row_wise || args.iter().any(Expr::has_aggregate)
            }
            Expr::Binary { lhs, rhs, .. } => lhs.has_aggregate() || rhs.has_aggregate(),
            Expr::Paren(inner) => inner.has_aggregate(),
            _ => false,
        }
    }
}

impl Select {
    /// Aggregate or selector query (as opposed to raw points).
    pub fn is_aggregate(&self) -> bool {
        self.fields.iter().any(|f| f.expr.has_aggregate())
    }

    /// The `GROUP BY time(...)` interval, if any.
    pub fn time_interval(&self) -> Option<&str> {
        self.dimensions.iter().find_map(|d| match d {
            Dimension::Time { interval, .. } => Some(interval.as_str()),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowKind {
    Databases,
    RetentionPolicies,
    Measurements,
    TagKeys,
    TagValues,
    FieldKeys,
    Series,
}

impl ShowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ShowKind::Databases => "DATABASES",
            ShowKind::RetentionPolicies => "RETENTION POLICIES",
            ShowKind::Measurements => "MEASUREMENTS",
            ShowKind::TagKeys => "TAG KEYS",
            ShowKind::TagValues => "TAG VALUES",
            ShowKind::FieldKeys => "FIELD KEYS",
            ShowKind::Series => "SERIES",
        }
    }
}

/// `WITH MEASUREMENT ...` or `WITH KEY ...`.
#[derive(Debug, Clone, PartialEq)]
pub enum WithClause {
    Measurement {
        op: BinaryOp,
        value: Expr,
    },
    /// `WITH KEY = "k"`, `!=`, `=~ /re/`, `!~`, `IN ("a", "b")` (op `Eq` with several values).
    Key {
        op: BinaryOp,
        values: Vec<Expr>,
        in_list: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Show {
    pub kind: ShowKind,
    pub on: Option<String>,
    pub sources: Vec<Source>,
    pub with: Option<WithClause>,
    pub condition: Option<Expr>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdlKind {
    CreateDatabase,
    DropDatabase,
    CreateRetentionPolicy,
    AlterRetentionPolicy,
    DropRetentionPolicy,
    DropMeasurement,
    DropSeries,
    Delete,
}

/// A schema-changing statement: its text, and where the database name sits in it (so each
/// replica gets its own mapped name).
#[derive(Debug, Clone, PartialEq)]
pub struct Ddl {
    pub kind: DdlKind,
    pub text: String,
    /// Byte range of the database name (as written, quoted or not) in `text`.
    pub database_span: Option<(usize, usize)>,
    pub database: Option<String>,
}
