//! Writes the syntax tree back as InfluxQL text for the replicas. Identifiers are always
//! double-quoted and literals escaped, so a rendered statement reads back to the same tree; it
//! never changes a number's text (an integer stays an integer). Database names in sources go
//! through a mapping so each replica gets its own name.

use std::fmt::Write;

use super::ast::*;

/// Maps the client's database name to a replica's.
pub type DatabaseMap<'a> = &'a dyn Fn(&str) -> String;

/// `"name"`: the scanner's identifier rules (`\"` and `\\` escape; a newline ends the token, so
/// it is written as the two characters `\n`, which the scanner refuses rather than misreads).
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `'text'`: the scanner's string rules (`\\`, `\'` and `\n` are the escapes it reads back to
/// the character; a raw newline would end the literal).
pub fn quote_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn quote_regex(pattern: &str) -> String {
    format!("/{}/", pattern.replace('/', "\\/"))
}

pub fn render_expr(expr: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, expr);
    out
}

fn write_expr(out: &mut String, expr: &Expr) {
    match expr {
        Expr::VarRef { name, cast } => {
            out.push_str(&quote_ident(name));
            if let Some(cast) = cast {
                let _ = write!(out, "::{cast}");
            }
        }
        Expr::Wildcard { cast } => {
            out.push('*');
            if let Some(cast) = cast {
                let _ = write!(out, "::{cast}");
            }
        }
        Expr::Call { name, args } => {
            out.push_str(name);
            out.push('(');
            for (i, arg) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, arg);
            }
            out.push(')');
        }
        Expr::Number { text, .. } => out.push_str(text),
        Expr::String(text) => out.push_str(&quote_string(text)),
        Expr::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
        Expr::Duration(text) => out.push_str(text),
        Expr::Regex(pattern) => out.push_str(&quote_regex(pattern)),
        Expr::BoundParameter(name) => {
            out.push('$');
            out.push_str(&quote_ident(name));
        }
        Expr::Binary { op, lhs, rhs } => {
            write_expr(out, lhs);
            let _ = write!(out, " {} ", op.as_str());
            write_expr(out, rhs);
        }
        Expr::Paren(inner) => {
            out.push('(');
            write_expr(out, inner);
            out.push(')');
        }
    }
}

fn write_sources(out: &mut String, sources: &[Source], map_db: DatabaseMap<'_>) {
    for (i, source) in sources.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match source {
            Source::Measurement {
                database,
                retention_policy,
                name,
            } => {
                if let Some(db) = database {
                    out.push_str(&quote_ident(&map_db(db)));
                    out.push('.');
                    if let Some(rp) = retention_policy {
                        out.push_str(&quote_ident(rp));
                    }
                    out.push('.');
                } else if let Some(rp) = retention_policy {
                    out.push_str(&quote_ident(rp));
                    out.push('.');
                }
                match name {
                    MeasurementName::Name(n) => out.push_str(&quote_ident(n)),
                    MeasurementName::Regex(r) => out.push_str(&quote_regex(r)),
                }
            }
            Source::Subquery(inner) => {
                out.push('(');
                out.push_str(&render_select(inner, map_db));
                out.push(')');
            }
        }
    }
}

pub fn render_select(select: &Select, map_db: DatabaseMap<'_>) -> String {
    let mut out = String::from("SELECT ");
    for (i, field) in select.fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_expr(&mut out, &field.expr);
        if let Some(alias) = &field.alias {
            out.push_str(" AS ");
            out.push_str(&quote_ident(alias));
        }
    }
    if let Some(into) = &select.into {
        out.push_str(" INTO ");
        out.push_str(into);
    }
    out.push_str(" FROM ");
    write_sources(&mut out, &select.sources, map_db);
    if let Some(condition) = &select.condition {
        out.push_str(" WHERE ");
        write_expr(&mut out, condition);
    }
    if !select.dimensions.is_empty() {
        out.push_str(" GROUP BY ");
        for (i, dimension) in select.dimensions.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match dimension {
                Dimension::Time { interval, offset } => {
                    let _ = write!(out, "time({interval}");
                    if let Some(offset) = offset {
                        out.push_str(", ");
                        write_expr(&mut out, offset);
                    }
                    out.push(')');
                }
                Dimension::Tag(name) => out.push_str(&quote_ident(name)),
                Dimension::Regex(pattern) => out.push_str(&quote_regex(pattern)),
                Dimension::Wildcard => out.push('*'),
            }
        }
    }
    if let Some(fill) = &select.fill {
        out.push_str(" fill(");
        match fill {
            Fill::Null => out.push_str("null"),
            Fill::None => out.push_str("none"),
            Fill::Previous => out.push_str("previous"),
            Fill::Linear => out.push_str("linear"),
            Fill::Number(n) => out.push_str(n),
        }
        out.push(')');
    }
    if select.order_desc {
        out.push_str(" ORDER BY time DESC");
    }
    for (word, value) in [
        ("LIMIT", select.limit),
        ("OFFSET", select.offset),
        ("SLIMIT", select.slimit),
        ("SOFFSET", select.soffset),
    ] {
        if let Some(value) = value {
            let _ = write!(out, " {word} {value}");
        }
    }
    if let Some(zone) = &select.timezone {
        let _ = write!(out, " tz({})", quote_string(zone));
    }
    out
}

pub fn render_show(show: &Show, map_db: DatabaseMap<'_>) -> String {
    let mut out = format!("SHOW {}", show.kind.as_str());
    if let Some(db) = &show.on {
        out.push_str(" ON ");
        out.push_str(&quote_ident(&map_db(db)));
    }
    if !show.sources.is_empty() {
        out.push_str(" FROM ");
        write_sources(&mut out, &show.sources, map_db);
    }
    match &show.with {
        Some(WithClause::Measurement { op, value }) => {
            let _ = write!(out, " WITH MEASUREMENT {} ", op.as_str());
            write_expr(&mut out, value);
        }
        Some(WithClause::Key {
            op,
            values,
            in_list,
        }) => {
            if *in_list {
                out.push_str(" WITH KEY IN (");
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_expr(&mut out, value);
                }
                out.push(')');
            } else {
                let _ = write!(out, " WITH KEY {} ", op.as_str());
                if let Some(value) = values.first() {
                    write_expr(&mut out, value);
                }
            }
        }
        None => {}
    }
    if let Some(condition) = &show.condition {
        out.push_str(" WHERE ");
        write_expr(&mut out, condition);
    }
    for (word, value) in [("LIMIT", show.limit), ("OFFSET", show.offset)] {
        if let Some(value) = value {
            let _ = write!(out, " {word} {value}");
        }
    }
    out
}

/// A DDL statement with its database name mapped for one replica.
pub fn render_ddl(ddl: &Ddl, map_db: DatabaseMap<'_>) -> String {
    match (&ddl.database_span, &ddl.database) {
        (Some((start, end)), Some(db)) => format!(
            "{}{}{}",
            &ddl.text[..*start],
            quote_ident(&map_db(db)),
            &ddl.text[*end..]
        ),
        _ => ddl.text.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::influxql::parser::parse_query;

    fn same(q: &str) -> String {
        let id = |db: &str| db.to_owned();
        let statements = parse_query(q).unwrap();
        let text = match &statements[0] {
            Statement::Select(s) => render_select(s, &id),
            Statement::Show(s) => render_show(s, &id),
            Statement::Ddl(d) => render_ddl(d, &id),
            Statement::Other(t) => t.clone(),
        };
        // Rendering is a fixed point: parse(render(x)) == x.
        let again = parse_query(&text).unwrap();
        assert_eq!(again, statements, "{text}");
        text
    }

    #[test]
    fn rendering_reads_back_to_the_same_tree() {
        assert_eq!(
            same("select mean(value) as m from cpu where host =~ /a\\/b/ and time > now() - 1h group by time(1m), host fill(none) order by time desc limit 5"),
            "SELECT mean(\"value\") AS \"m\" FROM \"cpu\" WHERE \"host\" =~ /a\\/b/ AND time > now() - 1h GROUP BY time(1m), \"host\" fill(none) ORDER BY time DESC LIMIT 5"
                .replace("time >", "\"time\" >")
        );
        same("SELECT * FROM mydb..cpu WHERE x = 'it\\'s' AND y >= -1.5e3 OR z = true");
        same(
            "SHOW TAG VALUES ON db FROM cpu WITH KEY IN (host, region) WHERE index = 'a' LIMIT 3 OFFSET 1",
        );
        same("SHOW MEASUREMENTS WITH MEASUREMENT =~ /cp.*/");
        same("SELECT count(distinct(host)) FROM cpu");
    }

    #[test]
    fn ddl_maps_the_database() {
        let statements = parse_query("DROP DATABASE mydb").unwrap();
        let Statement::Ddl(ddl) = &statements[0] else {
            panic!()
        };
        assert_eq!(
            render_ddl(ddl, &|db: &str| format!("{db}_r1")),
            "DROP DATABASE \"mydb_r1\""
        );
    }
}
