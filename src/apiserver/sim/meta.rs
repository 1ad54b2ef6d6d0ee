//! Reading the metadata controllers care about: labels, owners, selectors.

use serde_json::{json, Value};

use crate::apiserver::objects;
use crate::apiserver::resources::label_selector_string;
use crate::apiserver::selectors::LabelSelector;
use crate::apiserver::store::ObjectKey;

pub fn key(obj: &Value) -> ObjectKey {
    (
        objects::namespace(obj).to_string(),
        objects::name(obj).to_string(),
    )
}

pub fn labels(obj: &Value) -> &Value {
    &obj["metadata"]["labels"]
}

pub fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    labels(obj)[key].as_str()
}

pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

pub fn generation(obj: &Value) -> i64 {
    obj["metadata"]["generation"].as_i64().unwrap_or(0)
}

/// The ownerReference that marks the object's managing controller.
pub fn controller_ref(obj: &Value) -> Option<&Value> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
}

/// The owners (of `kind`, among `owners`) to look at when `dependent` changes: its
/// controller, or, for an orphan, every owner whose selector selects it, since
/// one of them may adopt it.
pub fn owners_to_sync<'a>(
    dependent: &Value,
    kind: &str,
    owners: impl Iterator<Item = &'a Value>,
) -> Vec<String> {
    if let Some(r) = controller_ref(dependent) {
        let name = r["name"].as_str().filter(|_| r["kind"] == kind);
        return name.map(String::from).into_iter().collect();
    }
    owners
        .filter(|o| selector(&o["spec"]["selector"]).is_some_and(|s| s.matches(labels(dependent))))
        .map(|o| objects::name(o).to_string())
        .collect()
}

/// Whether `owner` is the object's managing controller.
pub fn controlled_by(obj: &Value, owner: &Value) -> bool {
    controller_ref(obj).is_some_and(|r| r["uid"] == owner["metadata"]["uid"])
}

/// The ownerReference a controller puts on what it creates (`NewControllerRef`).
pub fn controller_ref_to(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": objects::name(owner),
        "uid": objects::uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// What a controller adopts (`ControllerRefManager.ClaimObject`): objects without a
/// controller that its selector selects, left behind by an orphaning delete of a
/// predecessor. `None` selects nothing.
pub fn orphans<'a>(
    selector: Option<LabelSelector>,
    candidates: impl Iterator<Item = &'a Value>,
) -> Vec<&'a Value> {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    candidates
        .filter(|o| controller_ref(o).is_none() && !objects::is_deleting(o))
        .filter(|o| selector.matches(labels(o)))
        .collect()
}

/// A `LabelSelector` object (matchLabels, matchExpressions); `None` when it
/// cannot be parsed, which selects nothing.
pub fn selector(sel: &Value) -> Option<LabelSelector> {
    LabelSelector::parse(&label_selector_string(sel)).ok()
}

/// A Service's `selector` map; `None` when it is missing or empty (a Service
/// without a selector has its endpoints managed by someone else).
pub fn map_selector(map: &Value) -> Option<LabelSelector> {
    let map = map.as_object().filter(|m| !m.is_empty())?;
    selector(&json!({ "matchLabels": map }))
}

/// A status field that Go omits when zero (`omitempty`).
pub fn set_nonzero(status: &mut Value, field: &str, n: i64) {
    if n != 0 {
        status[field] = json!(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_references() {
        let owner = json!({"metadata": {"name": "web", "uid": "u1"}});
        let r = controller_ref_to(&owner, "apps/v1", "ReplicaSet");
        let pod = json!({"metadata": {"ownerReferences": [{"kind": "Other", "uid": "x"}, r]}});
        assert!(controlled_by(&pod, &owner));
        assert_eq!(controller_ref(&pod).unwrap()["name"], "web");
    }

    #[test]
    fn changes_go_to_the_controller_or_to_owners_that_may_adopt() {
        let rs = json!({"metadata": {"name": "web-1"}, "spec": {"selector": {"matchLabels": {"app": "web"}}}});
        let other = json!({"metadata": {"name": "db-1"}, "spec": {"selector": {"matchLabels": {"app": "db"}}}});
        let owned = json!({"metadata": {"labels": {"app": "web"}, "ownerReferences": [{"kind": "ReplicaSet", "name": "x", "controller": true}]}});
        let sync = |dep: &Value| owners_to_sync(dep, "ReplicaSet", [&rs, &other].into_iter());
        assert_eq!(sync(&owned), ["x"]);
        assert_eq!(
            sync(&json!({"metadata": {"labels": {"app": "web"}}})),
            ["web-1"]
        );
        let foreign = json!({"metadata": {"ownerReferences": [{"kind": "Job", "name": "j", "controller": true}]}});
        assert!(sync(&foreign).is_empty());
    }

    #[test]
    fn orphans_are_objects_without_a_controller_that_match() {
        let sel = selector(&json!({"matchLabels": {"app": "web"}}));
        let owned = json!({"metadata": {"labels": {"app": "web"}, "ownerReferences": [{"uid": "x", "controller": true}]}});
        let orphan =
            json!({"metadata": {"labels": {"app": "web"}, "ownerReferences": [{"uid": "y"}]}});
        let other = json!({"metadata": {"labels": {"app": "db"}}});
        let found = orphans(sel, [&owned, &orphan, &other].into_iter());
        assert_eq!(found, [&orphan]);
        assert!(orphans(None, [&orphan].into_iter()).is_empty());
    }

    #[test]
    fn service_selectors() {
        let s = map_selector(&json!({"app": "web"})).unwrap();
        assert!(s.matches(&json!({"app": "web", "x": "y"})));
        assert!(!s.matches(&json!({"app": "db"})));
        assert!(map_selector(&json!({})).is_none());
        assert!(map_selector(&Value::Null).is_none());
    }
}
