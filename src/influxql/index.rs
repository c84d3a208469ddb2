//! Which indexes a statement reads, from its `WHERE` clause: `"index" = 'x'`, `'x' = "index"`,
//! `"index" =~ /re/`, and ORs of those, found among the top-level AND terms. It never narrows
//! wrongly: anything it cannot read (a NOT-like operator, an OR mixing other conditions) means
//! "no narrowing", and the statement goes to every group.

use serde_json::Value;

use super::ast::{BinaryOp, Expr};

/// The indexes a condition restricts a statement to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndexSelection {
    pub names: Vec<String>,
    pub regexes: Vec<String>,
}

fn strip_parens(mut expr: &Expr) -> &Expr {
    while let Expr::Paren(inner) = expr {
        expr = inner;
    }
    expr
}

fn conjuncts<'a>(expr: &'a Expr, out: &mut Vec<&'a Expr>) {
    match strip_parens(expr) {
        Expr::Binary {
            op: BinaryOp::And,
            lhs,
            rhs,
        } => {
            conjuncts(lhs, out);
            conjuncts(rhs, out);
        }
        other => out.push(other),
    }
}

fn is_index_ref(expr: &Expr, index_tag: &str) -> bool {
    matches!(strip_parens(expr), Expr::VarRef { name, cast } if name == index_tag && cast.as_deref().is_none_or(|c| c.eq_ignore_ascii_case("tag")))
}

fn literal_text(expr: &Expr, params: Option<&Value>) -> Option<String> {
    match strip_parens(expr) {
        Expr::String(s) => Some(s.clone()),
        Expr::BoundParameter(name) => params
            .and_then(|p| p.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

fn regex_text(expr: &Expr, params: Option<&Value>) -> Option<String> {
    match strip_parens(expr) {
        Expr::Regex(r) => Some(r.clone()),
        Expr::BoundParameter(name) => params
            .and_then(|p| p.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

/// The selection one term makes, if it is an index condition (or an OR of them).
fn term_selection(term: &Expr, index_tag: &str, params: Option<&Value>) -> Option<IndexSelection> {
    let Expr::Binary { op, lhs, rhs } = strip_parens(term) else {
        return None;
    };
    match op {
        BinaryOp::Or => {
            let mut left = term_selection(lhs, index_tag, params)?;
            let right = term_selection(rhs, index_tag, params)?;
            left.names.extend(right.names);
            left.regexes.extend(right.regexes);
            Some(left)
        }
        BinaryOp::Eq => {
            let name = if is_index_ref(lhs, index_tag) {
                literal_text(rhs, params)?
            } else if is_index_ref(rhs, index_tag) {
                literal_text(lhs, params)?
            } else {
                return None;
            };
            Some(IndexSelection {
                names: vec![name],
                regexes: Vec::new(),
            })
        }
        BinaryOp::EqRegex if is_index_ref(lhs, index_tag) => Some(IndexSelection {
            names: Vec::new(),
            regexes: vec![regex_text(rhs, params)?],
        }),
        _ => None,
    }
}

/// The indexes `condition` restricts to, or `None` when it does not restrict them.
pub fn index_selection(
    condition: Option<&Expr>,
    index_tag: &str,
    params: Option<&Value>,
) -> Option<IndexSelection> {
    let mut terms = Vec::new();
    conjuncts(condition?, &mut terms);
    terms
        .into_iter()
        .find_map(|term| term_selection(term, index_tag, params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::influxql::ast::Statement;
    use crate::influxql::parser::parse_query;

    fn selection(q: &str) -> Option<IndexSelection> {
        let Statement::Select(s) = parse_query(q).unwrap().remove(0) else {
            panic!()
        };
        index_selection(s.condition.as_ref(), "index", None)
    }

    #[test]
    fn finds_index_conditions() {
        assert_eq!(
            selection("SELECT * FROM cpu WHERE time > now() - 1h AND \"index\" = 'c1'")
                .unwrap()
                .names,
            vec!["c1"]
        );
        assert_eq!(
            selection("SELECT * FROM cpu WHERE (index = 'a' OR index = 'b') AND host = 'h'")
                .unwrap()
                .names,
            vec!["a", "b"]
        );
        assert_eq!(
            selection("SELECT * FROM cpu WHERE index =~ /^c/")
                .unwrap()
                .regexes,
            vec!["^c"]
        );
        assert_eq!(
            selection("SELECT * FROM cpu WHERE index = 'a' OR host = 'h'"),
            None
        );
        assert_eq!(selection("SELECT * FROM cpu WHERE index != 'a'"), None);
        assert_eq!(selection("SELECT * FROM cpu"), None);
    }
}
