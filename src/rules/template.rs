//! Annotation templates (`"mem {{ value }} > {{ threshold }} on {{ host }}"`): parsed once when
//! the rules load, rendered only when a rule fires. Unknown variables are refused at load time,
//! so rendering never fails; a variable the line lacks renders as the empty string.

/// A variable a template may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    Name,
    Index,
    Host,
    Source,
    Value,
    Threshold,
    Field,
    Measurement,
    Msg,
    Severity,
    RequestId,
    Tag(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Var(Var),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Segment>);

/// What a rendering can read.
pub trait Vars {
    /// The value of `var`, or None (rendered empty).
    fn get(&self, var: &Var) -> Option<String>;
}

impl Template {
    /// Parses `{{ var }}` placeholders; everything else is literal.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                segments.push(Segment::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("unclosed {{{{ in {text:?}"))?;
            let name = after[..close].trim();
            segments.push(Segment::Var(parse_var(name)?));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_owned()));
        }
        Ok(Template(segments))
    }

    pub fn render(&self, vars: &dyn Vars) -> String {
        let mut out = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Var(var) => {
                    if let Some(value) = vars.get(var) {
                        out.push_str(&value);
                    }
                }
            }
        }
        out
    }
}

fn parse_var(name: &str) -> Result<Var, String> {
    Ok(match name {
        "name" | "alertname" => Var::Name,
        "index" => Var::Index,
        "host" => Var::Host,
        "source" => Var::Source,
        "value" => Var::Value,
        "threshold" => Var::Threshold,
        "field" => Var::Field,
        "measurement" => Var::Measurement,
        "msg" => Var::Msg,
        "severity" => Var::Severity,
        "request_id" => Var::RequestId,
        other => match other.strip_prefix("tags.") {
            Some(tag) if !tag.is_empty() => Var::Tag(tag.to_owned()),
            _ => {
                return Err(format!(
                    "unknown template variable {other:?}: use name, index, host, source, value, threshold, field, measurement, msg, severity, request_id or tags.KEY"
                ));
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Vars for Fixed {
        fn get(&self, var: &Var) -> Option<String> {
            match var {
                Var::Host => Some("host1".into()),
                Var::Value => Some("93".into()),
                Var::Tag(t) if t == "dc" => Some("eu".into()),
                _ => None,
            }
        }
    }

    #[test]
    fn renders_variables_and_leaves_missing_ones_empty() {
        let t =
            Template::parse("used {{ value }} on {{host}} in {{ tags.dc }}{{ source }}!").unwrap();
        assert_eq!(t.render(&Fixed), "used 93 on host1 in eu!");
    }

    #[test]
    fn refuses_unknown_and_unclosed() {
        assert!(Template::parse("{{ nope }}").unwrap_err().contains("nope"));
        assert!(Template::parse("{{ host").is_err());
    }
}
