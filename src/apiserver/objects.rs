//! Small helpers over objects as JSON values, shared by the request pipeline.

use serde_json::{Map, Value};

pub fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = Value::Object(Map::new());
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn namespace(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or_default()
}

pub fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or_default()
}

pub fn resource_version(obj: &Value) -> Option<&str> {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .filter(|s| !s.is_empty())
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    string_list(&obj["metadata"]["finalizers"])
}

pub fn string_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
}

/// RFC 3339 with seconds, as metav1.Time serializes.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Reads a simple dotted path (`.spec.replicas`).
pub fn at_path<'a>(obj: &'a Value, path: &str) -> &'a Value {
    path.trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
        .fold(obj, |v, part| &v[part])
}

/// Writes a simple dotted path, creating objects on the way.
pub fn set_path(obj: &mut Value, path: &str, value: Value) {
    let mut v = obj;
    for part in path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
    {
        if !v.is_object() {
            *v = Value::Object(Map::new());
        }
        v = v
            .as_object_mut()
            .expect("just made an object")
            .entry(part.to_string())
            .or_insert(Value::Null);
    }
    *v = value;
}

/// The object without the parts that do not count as a change of its spec: metadata,
/// and status when the status lives behind a subresource.
pub fn spec_part(obj: &Value, has_status: bool) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        if has_status {
            m.remove("status");
        }
    }
    v
}

/// Equal apart from resourceVersion and managedFields timestamps: a write that
/// changes nothing else is not a change. The volatile fields are taken out for the
/// comparison and put back, so nothing is cloned.
pub fn same_content(a: &mut Value, b: &mut Value) -> bool {
    let saved_a = take_volatile(a);
    let saved_b = take_volatile(b);
    let same = a == b;
    restore_volatile(a, saved_a);
    restore_volatile(b, saved_b);
    same
}

type Volatile = (Option<Value>, Vec<Option<Value>>);

fn take_volatile(v: &mut Value) -> Volatile {
    let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) else {
        return (None, Vec::new());
    };
    let rv = m.remove("resourceVersion");
    let times = match m.get_mut("managedFields") {
        Some(Value::Array(entries)) => entries
            .iter_mut()
            .map(|e| e.as_object_mut().and_then(|e| e.remove("time")))
            .collect(),
        _ => Vec::new(),
    };
    (rv, times)
}

fn restore_volatile(v: &mut Value, (rv, times): Volatile) {
    let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
        for (e, t) in entries.iter_mut().zip(times) {
            if let (Some(e), Some(t)) = (e.as_object_mut(), t) {
                e.insert("time".into(), t);
            }
        }
    }
    if let Some(rv) = rv {
        m.insert("resourceVersion".into(), rv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_read_and_write() {
        let mut o = json!({"spec": {}});
        set_path(&mut o, ".spec.replicas", json!(3));
        set_path(&mut o, ".status.replicas", json!(2));
        assert_eq!(at_path(&o, ".spec.replicas"), &json!(3));
        assert_eq!(at_path(&o, ".status.replicas"), &json!(2));
        assert!(at_path(&o, ".status.missing").is_null());
    }

    #[test]
    fn volatile_fields_do_not_count_as_changes() {
        let mut a = json!({"metadata": {"resourceVersion": "1", "managedFields": [{"manager": "m", "time": "t1"}]}, "spec": 1});
        let mut b = json!({"metadata": {"resourceVersion": "2", "managedFields": [{"manager": "m", "time": "t2"}]}, "spec": 1});
        let before = a.clone();
        assert!(same_content(&mut a, &mut b));
        assert_eq!(a, before, "the volatile fields are put back");
        assert!(!same_content(
            &mut a,
            &mut json!({"metadata": {}, "spec": 2})
        ));
    }
}
