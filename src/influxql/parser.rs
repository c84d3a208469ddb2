//! The InfluxQL grammar (the subset in `ast.rs`) over the tokens of `lexer.rs`. Errors are worded
//! as InfluxDB words them (`error parsing query: found X, expected Y at line L, char C`). It never
//! guesses: text it cannot read is an error, except whole statements of kinds it does not model,
//! which become [`Statement::Other`] for the planner to judge.

use nom::Parser;
use nom::branch::alt;
use nom::combinator::{cut, map, opt};
use nom::multi::separated_list1;
use nom::sequence::preceded;

use super::ast::*;
use super::lexer::{
    PResult, any_word, bound_parameter, describe_found, duration_literal, expect, fail, identifier,
    keyword, number_literal, regex_literal, skip_blanks, string_literal, symbol, unsigned,
};

/// A query that does not parse, with InfluxDB's wording.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("error parsing query: {message}")]
pub struct ParseError {
    pub message: String,
}

/// Parses `;`-separated statements. An empty query is an error, as in InfluxDB.
pub fn parse_query(query: &str) -> Result<Vec<Statement>, ParseError> {
    let mut statements = Vec::new();
    let mut rest = query;
    loop {
        rest = skip_blanks(rest);
        while let Some(after) = rest.strip_prefix(';') {
            rest = skip_blanks(after);
        }
        if rest.is_empty() {
            break;
        }
        match statement(rest) {
            Ok((after, parsed)) => {
                let after = skip_blanks(after);
                if !after.is_empty() && !after.starts_with(';') {
                    return Err(error_at(query, after, ";"));
                }
                statements.push(parsed);
                rest = after;
            }
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
                return Err(error_at(query, e.input, e.expected));
            }
            Err(nom::Err::Incomplete(_)) => return Err(error_at(query, "", "")),
        }
    }
    if statements.is_empty() {
        return Err(ParseError {
            message: "found EOF, expected SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL at line 1, char 1".to_owned(),
        });
    }
    Ok(statements)
}

fn error_at(query: &str, at: &str, expected: &str) -> ParseError {
    let offset = query.len().saturating_sub(at.len());
    let before = &query[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    // InfluxDB places EOF one character past the end.
    let column = if skip_blanks(at).is_empty() {
        column + 1
    } else {
        column
    };
    let expected = if expected.is_empty() {
        "a valid statement"
    } else {
        expected
    };
    ParseError {
        message: format!(
            "found {}, expected {expected} at line {line}, char {column}",
            describe_found(at)
        ),
    }
}

fn statement(input: &str) -> PResult<'_, Statement> {
    let start = skip_blanks(input);
    let Ok((_, first)) = any_word(start) else {
        return fail(
            start,
            "SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL",
        );
    };
    match first.to_ascii_uppercase().as_str() {
        "SELECT" => map(select, |s| Statement::Select(Box::new(s))).parse(start),
        "SHOW" => show(start),
        "CREATE" | "DROP" | "ALTER" | "DELETE" => ddl_or_other(start),
        "EXPLAIN" | "GRANT" | "REVOKE" | "SET" | "KILL" => other(start),
        _ => fail(
            start,
            "SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL",
        ),
    }
}

/// The text up to the next `;` outside quotes, as a statement we forward without modelling.
fn raw_text(input: &str) -> (&str, &str) {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (at, c) in input.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, ';') => return (&input[at..], input[..at].trim_end()),
            _ => {}
        }
    }
    ("", input.trim_end())
}

fn other(input: &str) -> PResult<'_, Statement> {
    let (rest, text) = raw_text(input);
    Ok((rest, Statement::Other(text.to_owned())))
}

fn ddl_or_other(input: &str) -> PResult<'_, Statement> {
    let (rest, text) = raw_text(input);
    let kinds: [(&[&'static str], DdlKind); 8] = [
        (&["CREATE", "DATABASE"], DdlKind::CreateDatabase),
        (&["DROP", "DATABASE"], DdlKind::DropDatabase),
        (
            &["CREATE", "RETENTION", "POLICY"],
            DdlKind::CreateRetentionPolicy,
        ),
        (
            &["ALTER", "RETENTION", "POLICY"],
            DdlKind::AlterRetentionPolicy,
        ),
        (
            &["DROP", "RETENTION", "POLICY"],
            DdlKind::DropRetentionPolicy,
        ),
        (&["DROP", "MEASUREMENT"], DdlKind::DropMeasurement),
        (&["DROP", "SERIES"], DdlKind::DropSeries),
        (&["DELETE"], DdlKind::Delete),
    ];
    for (words, kind) in kinds {
        let Some(after) = words
            .iter()
            .try_fold(text, |at, word| keyword(word)(at).ok().map(|(r, _)| r))
        else {
            continue;
        };
        let (database_span, database) = match kind {
            DdlKind::CreateDatabase | DdlKind::DropDatabase => {
                let (after_name, name) = expect(identifier, "identifier")(after)?;
                let start = text.len() - skip_blanks(after).len();
                let end = text.len() - after_name.len();
                (Some((start, end)), Some(name))
            }
            DdlKind::CreateRetentionPolicy
            | DdlKind::AlterRetentionPolicy
            | DdlKind::DropRetentionPolicy => {
                let (after_rp, _) = expect(identifier, "identifier")(after)?;
                let (after_on, _) = keyword("ON")(after_rp)?;
                let (after_db, name) = expect(identifier, "identifier")(after_on)?;
                let start = text.len() - skip_blanks(after_on).len();
                let end = text.len() - after_db.len();
                (Some((start, end)), Some(name))
            }
            _ => (None, None),
        };
        return Ok((
            rest,
            Statement::Ddl(Ddl {
                kind,
                text: text.to_owned(),
                database_span,
                database,
            }),
        ));
    }
    Ok((rest, Statement::Other(text.to_owned())))
}

fn select(input: &str) -> PResult<'_, Select> {
    let (input, _) = keyword("SELECT")(input)?;
    let (input, fields) = expect(
        separated_list1(symbol(","), field),
        "identifier, string, number, bool",
    )(input)?;
    let (input, into) = opt(preceded(keyword("INTO"), cut(into_target))).parse(input)?;
    let (input, _) = expect(keyword("FROM"), "FROM")(input)?;
    let (input, sources) = sources(input)?;
    let (input, condition) = opt(preceded(keyword("WHERE"), cut(expr))).parse(input)?;
    let mut select = Select {
        fields,
        into,
        sources,
        condition,
        dimensions: Vec::new(),
        fill: None,
        order_desc: false,
        limit: None,
        offset: None,
        slimit: None,
        soffset: None,
        timezone: None,
    };
    let mut input = input;
    if let Ok((rest, _)) = (keyword("GROUP"), keyword("BY")).parse(input) {
        let (rest, dimensions) = cut(expect(
            separated_list1(symbol(","), dimension),
            "identifier, string, number, bool",
        ))
        .parse(rest)?;
        select.dimensions = dimensions;
        input = rest;
    }
    if let Ok((rest, _)) = keyword("FILL")(input) {
        let (rest, fill) = fill_option(rest)?;
        select.fill = Some(fill);
        input = rest;
    }
    if let Ok((rest, _)) = (keyword("ORDER"), keyword("BY")).parse(input) {
        let (rest, word) = expect(any_word, "time")(rest)?;
        if !word.eq_ignore_ascii_case("time") {
            return fail(skip_blanks(rest), "time");
        }
        let (rest, direction) = opt(alt((keyword("ASC"), keyword("DESC")))).parse(rest)?;
        select.order_desc = direction.is_some_and(|d| d.eq_ignore_ascii_case("DESC"));
        input = rest;
    }
    let (input, limit) =
        opt(preceded(keyword("LIMIT"), cut(expect(unsigned, "integer")))).parse(input)?;
    let (input, offset) = opt(preceded(
        keyword("OFFSET"),
        cut(expect(unsigned, "integer")),
    ))
    .parse(input)?;
    let (input, slimit) = opt(preceded(
        keyword("SLIMIT"),
        cut(expect(unsigned, "integer")),
    ))
    .parse(input)?;
    let (input, soffset) = opt(preceded(
        keyword("SOFFSET"),
        cut(expect(unsigned, "integer")),
    ))
    .parse(input)?;
    select.limit = limit;
    select.offset = offset;
    select.slimit = slimit;
    select.soffset = soffset;
    let mut input = input;
    if let Ok((rest, word)) = any_word(input)
        && word.eq_ignore_ascii_case("tz")
    {
        let (rest, _) = symbol("(")(rest)?;
        let (rest, zone) = expect(string_literal, "string")(rest)?;
        let (rest, _) = symbol(")")(rest)?;
        select.timezone = Some(zone);
        input = rest;
    }
    Ok((input, select))
}

fn into_target(input: &str) -> PResult<'_, String> {
    let start = skip_blanks(input);
    let (rest, _) = measurement_source(start)?;
    Ok((rest, start[..start.len() - rest.len()].to_owned()))
}

fn field(input: &str) -> PResult<'_, Field> {
    let (input, expr) = expr(input)?;
    let (input, alias) = opt(preceded(
        keyword("AS"),
        cut(expect(identifier, "identifier")),
    ))
    .parse(input)?;
    Ok((input, Field { expr, alias }))
}

fn sources(input: &str) -> PResult<'_, Vec<Source>> {
    expect(separated_list1(symbol(","), source), "identifier")(input)
}

fn source(input: &str) -> PResult<'_, Source> {
    if let Ok((rest, _)) = symbol("(")(input) {
        let (rest, inner) = select(rest)?;
        let (rest, _) = expect(symbol(")"), ")")(rest)?;
        return Ok((rest, Source::Subquery(Box::new(inner))));
    }
    measurement_source(input)
}

fn measurement_name(input: &str) -> PResult<'_, MeasurementName> {
    alt((
        map(regex_literal, MeasurementName::Regex),
        map(identifier, MeasurementName::Name),
    ))
    .parse(input)
}

/// `m`, `/re/`, `rp.m`, `db.rp.m`, `db..m`.
fn measurement_source(input: &str) -> PResult<'_, Source> {
    let start = skip_blanks(input);
    let (rest, first) = expect(measurement_name, "identifier")(start)?;
    let MeasurementName::Name(first_name) = &first else {
        return Ok((rest, measurement(None, None, first)));
    };
    let Some(rest2) = rest.strip_prefix('.') else {
        return Ok((rest, measurement(None, None, first)));
    };
    if let Some(rest3) = rest2.strip_prefix('.') {
        let (rest4, name) = expect(measurement_name, "identifier")(rest3)?;
        return Ok((rest4, measurement(Some(first_name.clone()), None, name)));
    }
    let (rest3, second) = expect(measurement_name, "identifier")(rest2)?;
    let MeasurementName::Name(second_name) = &second else {
        return Ok((rest3, measurement(None, Some(first_name.clone()), second)));
    };
    if let Some(rest4) = rest3.strip_prefix('.') {
        let (rest5, third) = expect(measurement_name, "identifier")(rest4)?;
        return Ok((
            rest5,
            measurement(Some(first_name.clone()), Some(second_name.clone()), third),
        ));
    }
    Ok((rest3, measurement(None, Some(first_name.clone()), second)))
}

fn measurement(database: Option<String>, rp: Option<String>, name: MeasurementName) -> Source {
    Source::Measurement {
        database,
        retention_policy: rp,
        name,
    }
}

fn dimension(input: &str) -> PResult<'_, Dimension> {
    if let Ok((rest, _)) = symbol("*")(input) {
        return Ok((rest, Dimension::Wildcard));
    }
    if let Ok((rest, regex)) = regex_literal(input) {
        return Ok((rest, Dimension::Regex(regex)));
    }
    if let Ok((rest, word)) = any_word(input)
        && word.eq_ignore_ascii_case("time")
        && let Ok((rest, _)) = symbol("(")(rest)
    {
        let (rest, interval) = expect(duration_literal, "duration")(rest)?;
        let (rest, offset) = opt(preceded(symbol(","), expr)).parse(rest)?;
        let (rest, _) = expect(symbol(")"), ")")(rest)?;
        return Ok((rest, Dimension::Time { interval, offset }));
    }
    let (rest, name) = identifier(input)?;
    let (rest, _) = opt(preceded(symbol("::"), any_word)).parse(rest)?;
    Ok((rest, Dimension::Tag(name)))
}

fn fill_option(input: &str) -> PResult<'_, Fill> {
    let (input, _) = expect(symbol("("), "(")(input)?;
    let (input, fill) = if let Ok((rest, (number, _))) = number_literal(input) {
        (rest, Fill::Number(number))
    } else {
        let (rest, word) = expect(any_word, "null, none, previous, linear or a number")(input)?;
        let fill = match word.to_ascii_lowercase().as_str() {
            "null" => Fill::Null,
            "none" => Fill::None,
            "previous" => Fill::Previous,
            "linear" => Fill::Linear,
            _ => {
                return fail(
                    skip_blanks(input),
                    "null, none, previous, linear or a number",
                );
            }
        };
        (rest, fill)
    };
    let (input, _) = expect(symbol(")"), ")")(input)?;
    Ok((input, fill))
}

fn show(input: &str) -> PResult<'_, Statement> {
    let statement_start = input;
    let (after_show, _) = keyword("SHOW")(input)?;
    let kinds: [(&[&'static str], ShowKind); 7] = [
        (&["DATABASES"], ShowKind::Databases),
        (&["RETENTION", "POLICIES"], ShowKind::RetentionPolicies),
        (&["MEASUREMENTS"], ShowKind::Measurements),
        (&["TAG", "KEYS"], ShowKind::TagKeys),
        (&["TAG", "VALUES"], ShowKind::TagValues),
        (&["FIELD", "KEYS"], ShowKind::FieldKeys),
        (&["SERIES"], ShowKind::Series),
    ];
    let found = kinds.iter().find_map(|(words, kind)| {
        words
            .iter()
            .try_fold(after_show, |at, word| {
                keyword(word)(at).ok().map(|(r, _)| r)
            })
            .map(|rest| (rest, *kind))
    });
    let Some((mut input, kind)) = found else {
        return other(input);
    };
    // `SHOW SERIES CARDINALITY`, `SHOW MEASUREMENT EXACT CARDINALITY`...: not modelled.
    if keyword("CARDINALITY")(input).is_ok() || keyword("EXACT")(input).is_ok() {
        return other(statement_start);
    }
    let mut show = Show {
        kind,
        on: None,
        sources: Vec::new(),
        with: None,
        condition: None,
        limit: None,
        offset: None,
    };
    if let Ok((rest, _)) = keyword("ON")(input) {
        let (rest, db) = expect(identifier, "identifier")(rest)?;
        show.on = Some(db);
        input = rest;
    }
    if matches!(
        kind,
        ShowKind::TagKeys | ShowKind::TagValues | ShowKind::FieldKeys | ShowKind::Series
    ) && let Ok((rest, _)) = keyword("FROM")(input)
    {
        let (rest, sources) = sources(rest)?;
        show.sources = sources;
        input = rest;
    }
    if let Ok((rest, _)) = keyword("WITH")(input) {
        let (rest, with) = with_clause(rest, kind)?;
        show.with = Some(with);
        input = rest;
    } else if kind == ShowKind::TagValues {
        return fail(skip_blanks(input), "WITH");
    }
    if let Ok((rest, _)) = keyword("WHERE")(input) {
        let (rest, condition) = cut(expr).parse(rest)?;
        show.condition = Some(condition);
        input = rest;
    }
    let (input, limit) =
        opt(preceded(keyword("LIMIT"), cut(expect(unsigned, "integer")))).parse(input)?;
    let (input, offset) = opt(preceded(
        keyword("OFFSET"),
        cut(expect(unsigned, "integer")),
    ))
    .parse(input)?;
    show.limit = limit;
    show.offset = offset;
    Ok((input, Statement::Show(show)))
}

fn with_clause(input: &str, kind: ShowKind) -> PResult<'_, WithClause> {
    if kind == ShowKind::Measurements {
        let (rest, _) = expect(keyword("MEASUREMENT"), "MEASUREMENT")(input)?;
        let (rest, op) = expect(
            alt((
                map(symbol("=~"), |_| BinaryOp::EqRegex),
                map(symbol("="), |_| BinaryOp::Eq),
            )),
            "= or =~",
        )(rest)?;
        let (rest, value) = alt((
            map(regex_literal, Expr::Regex),
            map(identifier, |name| Expr::VarRef { name, cast: None }),
        ))
        .parse(rest)?;
        return Ok((rest, WithClause::Measurement { op, value }));
    }
    let (rest, _) = expect(keyword("KEY"), "KEY")(input)?;
    if let Ok((rest, _)) = keyword("IN")(rest) {
        let (rest, _) = expect(symbol("("), "(")(rest)?;
        let (rest, names) = separated_list1(symbol(","), identifier).parse(rest)?;
        let (rest, _) = expect(symbol(")"), ")")(rest)?;
        let values = names
            .into_iter()
            .map(|name| Expr::VarRef { name, cast: None })
            .collect();
        return Ok((
            rest,
            WithClause::Key {
                op: BinaryOp::Eq,
                values,
                in_list: true,
            },
        ));
    }
    let (rest, op) = expect(
        alt((
            map(symbol("=~"), |_| BinaryOp::EqRegex),
            map(symbol("!~"), |_| BinaryOp::NeqRegex),
            map(symbol("!="), |_| BinaryOp::Neq),
            map(symbol("<>"), |_| BinaryOp::Neq),
            map(symbol("="), |_| BinaryOp::Eq),
        )),
        "=, !=, =~, !~ or IN",
    )(rest)?;
    let (rest, value) = alt((
        map(regex_literal, Expr::Regex),
        map(identifier, |name| Expr::VarRef { name, cast: None }),
    ))
    .parse(rest)?;
    Ok((
        rest,
        WithClause::Key {
            op,
            values: vec![value],
            in_list: false,
        },
    ))
}

/// Expressions by precedence: OR < AND < comparisons < `+ - | ^` < `* / % &` < unary.
pub fn expr(input: &str) -> PResult<'_, Expr> {
    binary_level(input, 0)
}

const LEVELS: &[&[(&str, BinaryOp)]] = &[
    &[("OR", BinaryOp::Or)],
    &[("AND", BinaryOp::And)],
    &[
        ("=~", BinaryOp::EqRegex),
        ("!~", BinaryOp::NeqRegex),
        ("!=", BinaryOp::Neq),
        ("<>", BinaryOp::Neq),
        ("<=", BinaryOp::Lte),
        (">=", BinaryOp::Gte),
        ("=", BinaryOp::Eq),
        ("<", BinaryOp::Lt),
        (">", BinaryOp::Gt),
    ],
    &[
        ("+", BinaryOp::Add),
        ("-", BinaryOp::Sub),
        ("|", BinaryOp::BitOr),
        ("^", BinaryOp::BitXor),
    ],
    &[
        ("*", BinaryOp::Mul),
        ("/", BinaryOp::Div),
        ("%", BinaryOp::Mod),
        ("&", BinaryOp::BitAnd),
    ],
];

fn operator(input: &str, level: usize) -> Option<(&str, BinaryOp)> {
    for (text, op) in LEVELS[level] {
        let matched = if text.chars().all(|c| c.is_ascii_alphabetic()) {
            keyword(text)(input).ok().map(|(rest, _)| rest)
        } else {
            symbol(text)(input).ok().map(|(rest, _)| rest)
        };
        if let Some(rest) = matched {
            return Some((rest, *op));
        }
    }
    None
}

fn binary_level(input: &str, level: usize) -> PResult<'_, Expr> {
    if level == LEVELS.len() {
        return unary(input);
    }
    let (mut input, mut lhs) = binary_level(input, level + 1)?;
    while let Some((rest, op)) = operator(input, level) {
        let (rest, rhs) = if matches!(op, BinaryOp::EqRegex | BinaryOp::NeqRegex) {
            expect(
                alt((
                    map(regex_literal, Expr::Regex),
                    map(bound_parameter, Expr::BoundParameter),
                )),
                "regex",
            )(rest)?
        } else {
            binary_level(rest, level + 1)?
        };
        lhs = Expr::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        };
        input = rest;
    }
    Ok((input, lhs))
}

fn unary(input: &str) -> PResult<'_, Expr> {
    let start = skip_blanks(input);
    if let Ok((rest, _)) = symbol("(")(start) {
        let (rest, inner) = expr(rest)?;
        let (rest, _) = expect(symbol(")"), ")")(rest)?;
        return Ok((rest, Expr::Paren(Box::new(inner))));
    }
    if let Ok((rest, _)) = symbol("*")(start) {
        let (rest, cast) = opt(preceded(symbol("::"), any_word)).parse(rest)?;
        return Ok((
            rest,
            Expr::Wildcard {
                cast: cast.map(str::to_owned),
            },
        ));
    }
    if let Ok((rest, duration)) = duration_literal(start) {
        return Ok((rest, Expr::Duration(duration)));
    }
    if let Ok((rest, (text, integer))) = number_literal(start) {
        return Ok((rest, Expr::Number { text, integer }));
    }
    if let Ok((rest, text)) = string_literal(start) {
        return Ok((rest, Expr::String(text)));
    }
    if start.starts_with('\'') {
        return fail(start, "closing quote");
    }
    if let Ok((rest, name)) = bound_parameter(start) {
        return Ok((rest, Expr::BoundParameter(name)));
    }
    if start.starts_with('/') {
        let (rest, regex) = regex_literal(start)?;
        return Ok((rest, Expr::Regex(regex)));
    }
    if let Ok((rest, word)) = any_word(start) {
        if word.eq_ignore_ascii_case("true") {
            return Ok((rest, Expr::Bool(true)));
        }
        if word.eq_ignore_ascii_case("false") {
            return Ok((rest, Expr::Bool(false)));
        }
        if let Ok((args_start, _)) = symbol("(")(rest) {
            if let Ok((after, _)) = symbol(")")(args_start) {
                return Ok((
                    after,
                    Expr::Call {
                        name: word.to_owned(),
                        args: Vec::new(),
                    },
                ));
            }
            let (after, args) = separated_list1(symbol(","), call_argument).parse(args_start)?;
            let (after, _) = expect(symbol(")"), ")")(after)?;
            return Ok((
                after,
                Expr::Call {
                    name: word.to_owned(),
                    args,
                },
            ));
        }
    }
    let (rest, name) = expect(identifier, "identifier, string, number, bool")(start)?;
    let (rest, cast) = opt(preceded(symbol("::"), any_word)).parse(rest)?;
    Ok((
        rest,
        Expr::VarRef {
            name,
            cast: cast.map(str::to_owned),
        },
    ))
}

/// A call argument: `distinct(x)` and `count(distinct x)` forms, or any expression.
fn call_argument(input: &str) -> PResult<'_, Expr> {
    if let Ok((rest, _)) = keyword("DISTINCT")(input)
        && symbol("(")(rest).is_err()
        && let Ok((rest, inner)) = unary(rest)
    {
        return Ok((
            rest,
            Expr::Call {
                name: "distinct".to_owned(),
                args: vec![inner],
            },
        ));
    }
    expr(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(q: &str) -> Statement {
        let mut statements = parse_query(q).unwrap();
        assert_eq!(statements.len(), 1, "{q}");
        statements.remove(0)
    }

    #[test]
    fn select_with_every_clause() {
        let Statement::Select(s) = one(
            "SELECT mean(\"value\") AS m, max(v) FROM db.rp.cpu, mem WHERE \"index\" = 'c1' AND time > now() - 1h GROUP BY time(1m), host fill(0) ORDER BY time DESC LIMIT 10 OFFSET 2 SLIMIT 3 SOFFSET 1",
        ) else {
            panic!()
        };
        assert_eq!(s.fields.len(), 2);
        assert_eq!(s.fields[0].alias.as_deref(), Some("m"));
        assert_eq!(s.sources.len(), 2);
        assert_eq!(s.time_interval(), Some("1m"));
        assert_eq!(s.fill, Some(Fill::Number("0".into())));
        assert!(s.order_desc);
        assert_eq!(
            (s.limit, s.offset, s.slimit, s.soffset),
            (Some(10), Some(2), Some(3), Some(1))
        );
        assert!(s.is_aggregate());
    }

    #[test]
    fn several_statements_and_show() {
        let statements =
            parse_query("SHOW DATABASES; SHOW TAG VALUES FROM cpu WITH KEY = host WHERE index = 'a' LIMIT 5;SELECT * FROM cpu").unwrap();
        assert_eq!(statements.len(), 3);
        let Statement::Show(show) = &statements[1] else {
            panic!()
        };
        assert_eq!(show.kind, ShowKind::TagValues);
        assert_eq!(show.limit, Some(5));
    }

    #[test]
    fn ddl_database_span() {
        let Statement::Ddl(ddl) =
            one("CREATE RETENTION POLICY \"rp1\" ON \"mydb\" DURATION 1d REPLICATION 1")
        else {
            panic!()
        };
        let (start, end) = ddl.database_span.unwrap();
        assert_eq!(&ddl.text[start..end], "\"mydb\"");
        assert_eq!(ddl.database.as_deref(), Some("mydb"));
    }

    #[test]
    fn errors_are_worded_as_influxdb_words_them() {
        let error = parse_query("SELECT FROM cpu").unwrap_err();
        assert_eq!(
            error.to_string(),
            "error parsing query: found FROM, expected identifier, string, number, bool at line 1, char 8"
        );
        let error = parse_query("SELEC * FROM cpu").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("error parsing query: found SELEC, expected SELECT"),
            "{error}"
        );
        assert!(parse_query("SELECT * FROM cpu WHERE").is_err());
        assert!(parse_query("SELECT * FROM cpu LIMIT x").is_err());
        assert!(parse_query("").is_err());
    }
}
