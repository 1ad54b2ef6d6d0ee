//! The ReplicaSet controller: keeps `spec.replicas` Pods, named `<rs>-<5 random
//! characters>`, made from the template and controlled by the ReplicaSet; removes
//! the least useful pods first when there are too many; reports replicas, ready,
//! available and fully labeled counts in the status.

use std::cmp::Reverse;

use serde_json::{json, Value};

use super::cache::Family;
use super::client::{Client, Kind, Outcome};
use super::meta;
use super::pods::{self, Availability, PodName};
use crate::apiserver::controllers::Follower;
use crate::apiserver::objects;
use crate::apiserver::resources::State;
use crate::apiserver::store::{EventType, GroupResource};

pub(crate) struct ReplicaSetController {
    family: Family,
}

impl Default for ReplicaSetController {
    fn default() -> Self {
        ReplicaSetController {
            family: Family::new(("apps", "replicasets", "ReplicaSet"), ("", "pods")),
        }
    }
}

impl Follower for ReplicaSetController {
    fn observe(&mut self, gr: &GroupResource, namespace: &str, kind: EventType, object: &[u8]) {
        self.family.observe(gr, namespace, kind, object);
    }

    fn reconcile(&mut self, state: &State) {
        let client = Client::new(state, "kube-controller-manager");
        for key in self.family.queue.take() {
            if let Some(rs) = self.family.owners.get(&key) {
                if self.sync(&client, rs) {
                    self.family.queue.retry(key);
                }
            }
        }
    }

    fn wants_retry(&self) -> bool {
        self.family.queue.has_retries()
    }
}

impl ReplicaSetController {
    /// Brings one ReplicaSet's pods and status up to date; true to look again soon.
    fn sync(&self, client: &Client, rs: &Value) -> bool {
        if objects::is_deleting(rs) {
            return false;
        }
        let in_namespace = || self.family.dependents.in_namespace(objects::namespace(rs));
        let orphans = meta::orphans(meta::selector(&rs["spec"]["selector"]), in_namespace());
        if !orphans.is_empty() {
            // The adopted pods come back as changes, and this sync with them.
            return client.adopt(
                Kind::Pod,
                &orphans,
                meta::controller_ref_to(rs, "apps/v1", "ReplicaSet"),
            );
        }
        let active: Vec<&Value> = in_namespace()
            .filter(|p| meta::controlled_by(p, rs) && pods::is_active(p))
            .collect();
        let mut retry = scale(client, rs, &active);
        let (status, soon) = replica_set_status(rs, &active, jiff::Timestamp::now());
        if status != rs["status"] {
            retry |= matches!(
                client.put_status(Kind::ReplicaSet, rs, status),
                Outcome::Retry
            );
        }
        retry || soon
    }
}

/// Creates or deletes pods until there are `spec.replicas`; true to retry.
fn scale(client: &Client, rs: &Value, active: &[&Value]) -> bool {
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    if active.len() < want {
        return create_pods(client, rs, want - active.len());
    }
    let extra = condemned(active.to_vec(), active.len() - want);
    extra.into_iter().fold(false, |retry, pod| {
        retry | matches!(client.delete(Kind::Pod, pod), Outcome::Retry)
    })
}

/// Creates `n` pods from the ReplicaSet's template; true if one should be retried.
fn create_pods(client: &Client, rs: &Value, n: usize) -> bool {
    let owner = meta::controller_ref_to(rs, "apps/v1", "ReplicaSet");
    let prefix = format!("{}-", objects::name(rs));
    let mut retry = false;
    for _ in 0..n {
        let pod = pods::from_template(
            &rs["spec"]["template"],
            PodName::Generate(prefix.clone()),
            owner.clone(),
        );
        retry |= matches!(
            client.create(Kind::Pod, objects::namespace(rs), pod),
            Outcome::Retry
        );
    }
    retry
}

/// The `n` pods to delete on scale-down, as `controller.ActivePods` ranks them:
/// unscheduled before scheduled, pending before running, not ready before ready,
/// ready for less time before longer, more restarts first, newer before older.
fn condemned(mut pods: Vec<&Value>, n: usize) -> Vec<&Value> {
    let phase = |p: &Value| match p["status"]["phase"].as_str() {
        Some("Pending") => 0,
        Some("Running") => 2,
        _ => 1,
    };
    let restarts = |p: &Value| {
        p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["restartCount"].as_i64())
            .max()
            .unwrap_or(0)
    };
    pods.sort_by_key(|p| {
        (
            !pods::node_name(p).is_empty(),
            phase(p),
            pods::is_ready(p),
            Reverse(pods::ready_since(p).map(String::from)),
            Reverse(restarts(p)),
            Reverse(
                p["metadata"]["creationTimestamp"]
                    .as_str()
                    .map(String::from),
            ),
            Reverse(objects::name(p).to_string()),
        )
    });
    pods.truncate(n);
    pods
}

/// The ReplicaSet's status from its active pods; true when a pod will become
/// available with time alone (minReadySeconds), so the status needs another look.
fn replica_set_status(rs: &Value, active: &[&Value], now: jiff::Timestamp) -> (Value, bool) {
    let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let template_labels = rs["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            template_labels
                .iter()
                .all(|(k, v)| meta::labels(p).get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| pods::is_ready(p)).count();
    let availability: Vec<Availability> = active
        .iter()
        .map(|p| pods::availability(p, min_ready, now))
        .collect();
    let available = availability
        .iter()
        .filter(|a| **a == Availability::Available)
        .count();
    let mut status = json!({"replicas": active.len()});
    meta::set_nonzero(&mut status, "fullyLabeledReplicas", fully_labeled as i64);
    meta::set_nonzero(&mut status, "readyReplicas", ready as i64);
    meta::set_nonzero(&mut status, "availableReplicas", available as i64);
    meta::set_nonzero(&mut status, "observedGeneration", meta::generation(rs));
    if let Some(c) = rs["status"].get("conditions") {
        status["conditions"] = c.clone();
    }
    (status, availability.contains(&Availability::Soon))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::typed;

    fn pod(name: &str, node: &str, ready: bool, created: &str) -> Value {
        json!({
            "metadata": {"name": name, "creationTimestamp": created, "labels": {"app": "web", "pod-template-hash": "h"}},
            "spec": {"nodeName": node},
            "status": {"phase": if node.is_empty() { "Pending" } else { "Running" },
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": created}]},
        })
    }

    #[test]
    fn scale_down_removes_unscheduled_then_unready_then_newest() {
        let pods = [
            pod("old-ready", "n1", true, "2026-01-01T00:00:00Z"),
            pod("new-ready", "n1", true, "2026-01-01T00:00:09Z"),
            pod("unready", "n2", false, "2026-01-01T00:00:00Z"),
            pod("unscheduled", "", false, "2026-01-01T00:00:00Z"),
        ];
        let names: Vec<&str> = condemned(pods.iter().collect(), 3)
            .into_iter()
            .map(objects::name)
            .collect();
        assert_eq!(names, ["unscheduled", "unready", "new-ready"]);
    }

    #[test]
    fn status_counts_ready_and_available_pods() {
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-h", "generation": 2},
            "spec": {"replicas": 3, "minReadySeconds": 10, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "h"}}, "spec": {"containers": []}}},
        });
        let pods = [
            pod("a", "n1", true, "2026-01-01T00:00:00Z"),
            pod("b", "n1", true, "2026-01-01T00:00:55Z"),
            pod("c", "n1", false, "2026-01-01T00:00:00Z"),
        ];
        let active: Vec<&Value> = pods.iter().collect();
        let now = "2026-01-01T00:01:00Z".parse().unwrap();
        let (status, soon) = replica_set_status(&rs, &active, now);
        assert_eq!(
            status,
            json!({"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 2, "availableReplicas": 1, "observedGeneration": 2})
        );
        assert!(soon, "b becomes available in 5 seconds");
        let mut stored = rs.clone();
        stored["status"] = status;
        let decoded = typed::decode("apps", "ReplicaSet", &stored)
            .unwrap()
            .unwrap();
        assert_eq!(decoded.object, stored);
    }
}
