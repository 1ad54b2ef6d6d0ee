//! What controllers ask of a Pod, and Pods made from a template.

use serde_json::{json, Map, Value};

use super::conditions;
use crate::apiserver::objects;

pub fn is_ready(pod: &Value) -> bool {
    conditions::is_true(&pod["status"]["conditions"], "Ready")
}

/// Succeeded or Failed: done for good.
pub fn is_terminal(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

pub fn is_deleting(pod: &Value) -> bool {
    objects::is_deleting(pod)
}

/// Counts towards a controller's replicas: neither finished nor going away.
pub fn is_active(pod: &Value) -> bool {
    !is_terminal(pod) && !is_deleting(pod)
}

pub fn is_running_and_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && is_ready(pod)
}

pub fn node_name(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or_default()
}

/// The pod's addresses, primary first.
pub fn ips(pod: &Value) -> Vec<String> {
    let listed: Vec<String> = pod["status"]["podIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["ip"].as_str().map(String::from))
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    pod["status"]["podIP"]
        .as_str()
        .filter(|ip| !ip.is_empty())
        .map(|ip| vec![ip.to_string()])
        .unwrap_or_default()
}

/// When the pod last became Ready, if it is.
pub fn ready_since(pod: &Value) -> Option<&str> {
    conditions::find(&pod["status"]["conditions"], "Ready")
        .filter(|c| c["status"] == "True")
        .and_then(|c| c["lastTransitionTime"].as_str())
}

/// Whether a pod counts as available to its controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    Unavailable,
    /// Ready, but not yet for `minReadySeconds`: look again later.
    Soon,
    Available,
}

/// Available once Ready for `min_ready_seconds`, as of `now`.
pub fn availability(pod: &Value, min_ready_seconds: i64, now: jiff::Timestamp) -> Availability {
    let Some(since) = ready_since(pod) else {
        return Availability::Unavailable;
    };
    if min_ready_seconds <= 0 {
        return Availability::Available;
    }
    let Ok(since) = since.parse::<jiff::Timestamp>() else {
        return Availability::Available;
    };
    if since + jiff::SignedDuration::from_secs(min_ready_seconds) <= now {
        Availability::Available
    } else {
        Availability::Soon
    }
}

/// A Pod from a workload's template, as `controller.GetPodFromTemplate` makes it:
/// the template's labels, annotations and finalizers, its spec, and a controller
/// reference to the owner. `name` is either a full name or a generateName prefix.
pub fn from_template(template: &Value, name: PodName, owner_ref: Value) -> Value {
    let mut meta = Map::new();
    match name {
        PodName::Exact(n) => meta.insert("name".into(), json!(n)),
        PodName::Generate(prefix) => meta.insert("generateName".into(), json!(prefix)),
    };
    for field in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template["metadata"].get(field).filter(|v| !v.is_null()) {
            meta.insert(field.into(), v.clone());
        }
    }
    meta.insert("ownerReferences".into(), json!([owner_ref]));
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template["spec"].clone(),
    })
}

pub enum PodName {
    Exact(String),
    Generate(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_and_availability() {
        let pod = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        assert!(is_running_and_ready(&pod));
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let at = |secs, now| availability(&pod, secs, t(now));
        assert_eq!(at(0, "2026-01-01T00:00:00Z"), Availability::Available);
        assert_eq!(at(10, "2026-01-01T00:00:05Z"), Availability::Soon);
        assert_eq!(at(10, "2026-01-01T00:00:10Z"), Availability::Available);
        let never = availability(&json!({}), 0, t("2026-01-01T00:00:00Z"));
        assert_eq!(never, Availability::Unavailable);
    }

    #[test]
    fn pods_from_templates_carry_labels_and_owner() {
        let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}});
        let owner =
            json!({"kind": "ReplicaSet", "name": "web-abc", "uid": "u", "controller": true});
        let pod = from_template(&template, PodName::Generate("web-abc-".into()), owner);
        assert_eq!(pod["metadata"]["generateName"], "web-abc-");
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "u");
        assert_eq!(pod["spec"]["containers"][0]["name"], "c");
        assert_eq!(ips(&json!({"status": {"podIP": "10.0.0.1"}})), ["10.0.0.1"]);
    }
}
