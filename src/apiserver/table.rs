//! Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for on `get`.

use serde_json::{json, Value};

use super::registry::{CellSource, Column, ResourceType};

/// What each row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Result<Self, String> {
        match s {
            None | Some("") | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("None") => Ok(IncludeObject::None),
            Some("Object") => Ok(IncludeObject::Object),
            Some(other) => Err(format!("unrecognized includeObject value: {other:?}")),
        }
    }
}

/// A Table of `objects`; `headers` false leaves out the column definitions, as watch
/// events after the first do.
pub fn table(
    rt: &ResourceType,
    version: &str,
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
    headers: bool,
) -> Value {
    let columns = rt
        .version(version)
        .map(|v| v.columns.as_slice())
        .unwrap_or_default();
    let rows: Vec<Value> = objects.iter().map(|o| row(columns, o, include)).collect();
    let definitions: Vec<Value> = if headers {
        columns.iter().map(definition).collect()
    } else {
        Vec::new()
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

fn definition(c: &Column) -> Value {
    // Dates are sent already formatted as an age, so kubectl sees a string column.
    let type_ = if c.type_ == "date" {
        "string"
    } else {
        c.type_.as_str()
    };
    json!({"name": c.name, "type": type_, "format": c.format, "description": c.description, "priority": c.priority})
}

fn row(columns: &[Column], obj: &Value, include: IncludeObject) -> Value {
    let cells: Vec<Value> = columns.iter().map(|c| cell(c, obj)).collect();
    let mut row = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => row["object"] = partial_metadata(obj),
        IncludeObject::Object => row["object"] = obj.clone(),
    }
    row
}

/// The object reduced to its metadata, as `as=PartialObjectMetadata` serves it.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

fn cell(c: &Column, obj: &Value) -> Value {
    let v = match &c.source {
        CellSource::Computed(f) => f(obj),
        CellSource::JsonPath(p) => {
            let found = json_path(obj, p);
            match found.len() {
                0 => Value::Null,
                1 => found[0].clone(),
                _ => Value::Array(found.into_iter().cloned().collect()),
            }
        }
    };
    match (c.type_.as_str(), &v) {
        ("date", Value::String(s)) => json!(age_of(s)),
        (_, Value::Null) => Value::Null,
        ("string", Value::String(_)) => v,
        ("string", other) => json!(other.to_string()),
        _ => v,
    }
}

/// A JSONPath subset: `.a.b`, `.a[0]`, `.a[*].b`, `.a[?(@.k=="v")].b`.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut current = vec![obj];
    for step in steps(path) {
        current = current
            .into_iter()
            .flat_map(|v| apply_step(v, &step))
            .collect();
    }
    current.into_iter().filter(|v| !v.is_null()).collect()
}

enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(String, String),
}

fn steps(path: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut rest = path.trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']').unwrap_or(inner.len());
            let sel = &inner[..end];
            out.push(bracket(sel));
            rest = inner
                .get(end + 1..)
                .unwrap_or_default()
                .trim_start_matches('.');
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Step::Field(rest[..end].to_string()));
            rest = rest[end..].trim_start_matches('.');
        }
    }
    out
}

fn bracket(sel: &str) -> Step {
    if sel == "*" {
        return Step::All;
    }
    if let Ok(i) = sel.parse() {
        return Step::Index(i);
    }
    let cond = sel.trim_start_matches("?(").trim_end_matches(')');
    let (lhs, rhs) = cond.split_once("==").unwrap_or((cond, ""));
    Step::Filter(
        lhs.trim().trim_start_matches("@.").to_string(),
        rhs.trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_string(),
    )
}

fn apply_step<'a>(v: &'a Value, step: &Step) -> Vec<&'a Value> {
    match step {
        Step::Field(f) => v.get(f).into_iter().collect(),
        Step::Index(i) => v.get(*i).into_iter().collect(),
        Step::All => v.as_array().map(|a| a.iter().collect()).unwrap_or_default(),
        Step::Filter(field, want) => v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|item| scalar_text(&item[field.as_str()]) == *want)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// A scalar as a filter compares it: strings bare, anything else as JSON.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How long ago an RFC 3339 time was, the way kubectl prints ages.
pub fn age_of(timestamp: &str) -> String {
    match timestamp.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        Err(_) => "<invalid>".into(),
    }
}

/// apimachinery's duration.HumanDuration.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    let with = |big: i64, unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    match s {
        s if s < 120 => format!("{s}s"),
        _ if m < 10 => with(m, "m", s % 60, "s"),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => with(h, "h", m % 60, "m"),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => with(d, "d", h % 24, "h"),
        _ if h < 24 * 365 * 2 => format!("{d}d"),
        _ if h < 24 * 365 * 8 => with(d / 365, "y", d % 365, "d"),
        _ => format!("{}y", d / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (50 * 3600, "2d2h"),
            (20 * 86400, "20d"),
            (800 * 86400, "2y70d"),
        ];
        for (s, want) in cases {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn json_path_subset() {
        let o = json!({"spec": {"ips": ["10.0.0.1"], "ports": [{"port": 80}, {"port": 443}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Valid", "status": "False"}]}});
        assert_eq!(json_path(&o, ".spec.ips"), [&json!(["10.0.0.1"])]);
        assert_eq!(json_path(&o, ".spec.ports[1].port"), [&json!(443)]);
        assert_eq!(json_path(&o, ".spec.ports[*].port").len(), 2);
        assert_eq!(
            json_path(&o, r#".status.conditions[?(@.type=="Valid")].status"#),
            [&json!("False")]
        );
        assert!(json_path(&o, ".spec.missing").is_empty());
    }
}
