//! Status conditions: finding them and keeping their timestamps honest.

use serde_json::{json, Map, Value};

/// The condition of type `type_` in `conditions` (a status's `conditions` list).
pub fn find<'a>(conditions: &'a Value, type_: &str) -> Option<&'a Value> {
    conditions.as_array()?.iter().find(|c| c["type"] == type_)
}

pub fn is_true(conditions: &Value, type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c["status"] == "True")
}

/// A condition with `lastTransitionTime` carried over from `previous` while the
/// status stays the same, as every controller and the kubelet do. `reason` and
/// `message` are left out when empty.
pub fn condition(
    previous: Option<&Value>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) -> Value {
    let mut c = Map::new();
    c.insert("type".into(), json!(type_));
    c.insert("status".into(), json!(status));
    let since = previous
        .filter(|p| p["status"] == status)
        .and_then(|p| p.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    c.insert("lastTransitionTime".into(), since);
    if !reason.is_empty() {
        c.insert("reason".into(), json!(reason));
    }
    if !message.is_empty() {
        c.insert("message".into(), json!(message));
    }
    Value::Object(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let old = json!({"type": "Ready", "status": "True", "lastTransitionTime": "t0"});
        let same = condition(Some(&old), "Ready", "True", "", "", "t1");
        assert_eq!(same["lastTransitionTime"], "t0");
        assert!(same.get("reason").is_none());
        let flipped = condition(Some(&old), "Ready", "False", "R", "m", "t1");
        assert_eq!(flipped["lastTransitionTime"], "t1");
        assert_eq!(flipped["reason"], "R");
        assert!(is_true(&json!([old]), "Ready"));
    }
}
