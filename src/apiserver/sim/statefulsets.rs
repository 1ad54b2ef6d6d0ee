//! The StatefulSet controller: Pods `<name>-<ordinal>` with stable hostnames under
//! the governing Service (`spec.hostname`, `spec.subdomain`), created in order
//! (OrderedReady: ordinal i+1 only once i is Running and Ready; Parallel: all at
//! once), removed highest ordinal first, and replaced highest first when the
//! template changes (RollingUpdate). Revisions are the `controller-revision-hash`
//! label; the status counts pods per revision as the real controller does.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::cache::Family;
use super::client::{Client, Kind, Outcome};
use super::hash::template_hash;
use super::meta;
use super::pods::{self, Availability, PodName};
use crate::apiserver::controllers::Follower;
use crate::apiserver::objects;
use crate::apiserver::resources::State;
use crate::apiserver::store::{EventType, GroupResource};

const REVISION_LABEL: &str = "controller-revision-hash";
const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

pub(crate) struct StatefulSetController {
    family: Family,
}

impl Default for StatefulSetController {
    fn default() -> Self {
        StatefulSetController {
            family: Family::new(("apps", "statefulsets", "StatefulSet"), ("", "pods")),
        }
    }
}

impl Follower for StatefulSetController {
    fn observe(&mut self, gr: &GroupResource, namespace: &str, kind: EventType, object: &[u8]) {
        self.family.observe(gr, namespace, kind, object);
    }

    fn reconcile(&mut self, state: &State) {
        let client = Client::new(state, "kube-controller-manager");
        for key in self.family.queue.take() {
            let Some(sts) = self.family.owners.get(&key) else {
                continue;
            };
            if objects::is_deleting(sts) {
                continue;
            }
            let selector = meta::selector(&sts["spec"]["selector"]);
            let orphans: Vec<&Value> =
                meta::orphans(selector, self.family.dependents.in_namespace(&key.0))
                    .into_iter()
                    .filter(|p| ordinal(sts, p).is_some())
                    .collect();
            let retry = if orphans.is_empty() {
                let members = members(sts, self.family.dependents.in_namespace(&key.0));
                sync(&client, sts, &members)
            } else {
                // The adopted pods come back as changes, and this sync with them.
                client.adopt(
                    Kind::Pod,
                    &orphans,
                    meta::controller_ref_to(sts, "apps/v1", "StatefulSet"),
                )
            };
            if retry {
                self.family.queue.retry(key);
            }
        }
    }

    fn wants_retry(&self) -> bool {
        self.family.queue.has_retries()
    }
}

/// The ordinal of a pod named as a member of the set (`<set>-<ordinal>`).
fn ordinal(sts: &Value, pod: &Value) -> Option<i64> {
    let rest = objects::name(pod).strip_prefix(objects::name(sts))?;
    rest.strip_prefix('-')?.parse().ok()
}

/// The set's pods by ordinal.
fn members<'a>(
    sts: &Value,
    candidates: impl Iterator<Item = &'a Value>,
) -> BTreeMap<i64, &'a Value> {
    candidates
        .filter(|p| meta::controlled_by(p, sts))
        .filter_map(|p| Some((ordinal(sts, p)?, p)))
        .collect()
}

/// One sync; true when something should be retried.
fn sync(client: &Client, sts: &Value, members: &BTreeMap<i64, &Value>) -> bool {
    let update_revision = revision_name(sts);
    let mut retry = false;
    let plan = plan(&Spec::of(sts), &update_revision, members);
    for ordinal in plan.create {
        let pod = new_pod(sts, ordinal, &update_revision);
        retry |= matches!(
            client.create(Kind::Pod, objects::namespace(sts), pod),
            Outcome::Retry
        );
    }
    for pod in plan.delete {
        retry |= matches!(client.delete(Kind::Pod, pod), Outcome::Retry);
    }
    let (status, soon) =
        stateful_set_status(sts, members, &update_revision, jiff::Timestamp::now());
    if status != sts["status"] {
        retry |= matches!(
            client.put_status(Kind::StatefulSet, sts, status),
            Outcome::Retry
        );
    }
    retry || soon
}

/// `<name>-<hash of the template>`, the name of the set's current revision.
fn revision_name(sts: &Value) -> String {
    let collisions = sts["status"]["collisionCount"].as_u64().map(|c| c as u32);
    format!(
        "{}-{}",
        objects::name(sts),
        template_hash(&sts["spec"]["template"], collisions)
    )
}

/// What a sync needs to know of the spec.
struct Spec {
    replicas: i64,
    start: i64,
    parallel: bool,
    /// The lowest ordinal a rolling update replaces; `None` for OnDelete.
    partition: Option<i64>,
}

impl Spec {
    fn of(sts: &Value) -> Spec {
        let spec = &sts["spec"];
        let rolling = spec["updateStrategy"]["type"]
            .as_str()
            .unwrap_or("RollingUpdate")
            == "RollingUpdate";
        Spec {
            replicas: spec["replicas"].as_i64().unwrap_or(1).max(0),
            start: spec["ordinals"]["start"].as_i64().unwrap_or(0).max(0),
            parallel: spec["podManagementPolicy"] == "Parallel",
            partition: rolling.then(|| {
                spec["updateStrategy"]["rollingUpdate"]["partition"]
                    .as_i64()
                    .unwrap_or(0)
            }),
        }
    }
}

#[derive(Debug, Default)]
struct Plan<'a> {
    create: Vec<i64>,
    delete: Vec<&'a Value>,
}

fn healthy(pod: &Value) -> bool {
    pods::is_running_and_ready(pod) && !pods::is_deleting(pod)
}

/// What to create and delete now, as `updateStatefulSet` decides it: missing
/// replicas first, then condemned pods (beyond the replica count) from the
/// highest ordinal, then pods of an old revision from the highest ordinal. In
/// OrderedReady mode one step at a time, each waiting for every pod to be healthy.
fn plan<'a>(spec: &Spec, update_revision: &str, members: &BTreeMap<i64, &'a Value>) -> Plan<'a> {
    let mut plan = Plan::default();
    let ordered = !spec.parallel;
    let range = spec.start..spec.start + spec.replicas;
    for ordinal in range.clone() {
        match members.get(&ordinal) {
            None => {
                plan.create.push(ordinal);
                if ordered {
                    return plan;
                }
            }
            Some(pod) if ordered && !healthy(pod) => return plan,
            Some(_) => {}
        }
    }
    let first_unhealthy = members
        .values()
        .find(|p| !healthy(p))
        .map(|p| objects::uid(p));
    for (_, pod) in members.iter().rev().filter(|(o, _)| !range.contains(o)) {
        if pods::is_deleting(pod) {
            if ordered {
                return plan;
            }
            continue;
        }
        if ordered && !healthy(pod) && first_unhealthy != Some(objects::uid(pod)) {
            return plan;
        }
        plan.delete.push(pod);
        if ordered {
            return plan;
        }
    }
    if !plan.delete.is_empty() || !plan.create.is_empty() {
        return plan;
    }
    let Some(partition) = spec.partition else {
        return plan;
    };
    for ordinal in range.rev().filter(|o| *o - spec.start >= partition) {
        let Some(pod) = members.get(&ordinal) else {
            continue;
        };
        if meta::label(pod, REVISION_LABEL) != Some(update_revision) && !pods::is_deleting(pod) {
            plan.delete.push(pod);
            return plan;
        }
        if !healthy(pod) {
            return plan;
        }
    }
    plan
}

/// Pod `<set>-<ordinal>` of the given revision.
fn new_pod(sts: &Value, ordinal: i64, revision: &str) -> Value {
    let set = objects::name(sts);
    let name = format!("{set}-{ordinal}");
    let owner = meta::controller_ref_to(sts, "apps/v1", "StatefulSet");
    let mut pod = pods::from_template(
        &sts["spec"]["template"],
        PodName::Exact(name.clone()),
        owner,
    );
    let labels = &mut pod["metadata"]["labels"];
    labels[POD_NAME_LABEL] = json!(name);
    labels[POD_INDEX_LABEL] = json!(ordinal.to_string());
    labels[REVISION_LABEL] = json!(revision);
    pod["spec"]["hostname"] = json!(name);
    if let Some(service) = sts["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        pod["spec"]["subdomain"] = json!(service);
    }
    add_claim_volumes(sts, &mut pod, &name);
    pod
}

/// A volume per claim template, naming the claim `<template>-<pod>` as the real
/// controller does (the claims themselves are not simulated).
fn add_claim_volumes(sts: &Value, pod: &mut Value, pod_name: &str) {
    let Some(templates) = sts["spec"]["volumeClaimTemplates"].as_array() else {
        return;
    };
    let mut volumes = pod["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for t in templates {
        let claim = objects::name(t);
        if volumes.iter().any(|v| v["name"] == claim) {
            continue;
        }
        let claim_name = format!("{claim}-{pod_name}");
        volumes.push(json!({"name": claim, "persistentVolumeClaim": {"claimName": claim_name}}));
    }
    pod["spec"]["volumes"] = Value::Array(volumes);
}

/// The status from the set's pods; true when one becomes available with time.
fn stateful_set_status(
    sts: &Value,
    members: &BTreeMap<i64, &Value>,
    update_revision: &str,
    now: jiff::Timestamp,
) -> (Value, bool) {
    let live: Vec<&Value> = members
        .values()
        .copied()
        .filter(|p| !pods::is_deleting(p))
        .collect();
    let min_ready = sts["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let availability: Vec<Availability> = live
        .iter()
        .map(|p| {
            if pods::is_running_and_ready(p) {
                pods::availability(p, min_ready, now)
            } else {
                Availability::Unavailable
            }
        })
        .collect();
    let current_revision = sts["status"]["currentRevision"]
        .as_str()
        .unwrap_or(update_revision)
        .to_string();
    let at = |rev: &str| {
        live.iter()
            .filter(|p| meta::label(p, REVISION_LABEL) == Some(rev))
            .count() as i64
    };
    let replicas = live.len() as i64;
    let ready = live
        .iter()
        .filter(|p| pods::is_running_and_ready(p))
        .count() as i64;
    let updated = at(update_revision);
    let rolling = sts["spec"]["updateStrategy"]["type"]
        .as_str()
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    // `completeRollingUpdate`: once every pod is updated and ready, the update
    // revision becomes the current one.
    let current_revision = if rolling && updated == replicas && ready == replicas {
        update_revision.to_string()
    } else {
        current_revision
    };
    let mut status = json!({
        "replicas": replicas,
        "availableReplicas": availability.iter().filter(|a| **a == Availability::Available).count(),
        "currentRevision": current_revision,
        "updateRevision": update_revision,
        "collisionCount": sts["status"]["collisionCount"].as_i64().unwrap_or(0),
    });
    meta::set_nonzero(&mut status, "observedGeneration", meta::generation(sts));
    meta::set_nonzero(&mut status, "readyReplicas", ready);
    meta::set_nonzero(&mut status, "currentReplicas", at(&current_revision));
    meta::set_nonzero(&mut status, "updatedReplicas", updated);
    (status, availability.contains(&Availability::Soon))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::typed;

    fn sts(replicas: i64, policy: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default", "uid": "s1", "generation": 1},
            "spec": {"replicas": replicas, "serviceName": "web", "podManagementPolicy": policy,
                "selector": {"matchLabels": {"app": "web"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        })
    }

    fn member(set: &Value, ordinal: i64, ready: bool, revision: &str) -> Value {
        let mut p = new_pod(set, ordinal, revision);
        p["metadata"]["uid"] = json!(format!("p{ordinal}"));
        p["status"] = json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        p
    }

    fn by_ordinal(pods: &[Value]) -> BTreeMap<i64, &Value> {
        pods.iter()
            .enumerate()
            .map(|(i, p)| (i as i64, p))
            .collect()
    }

    #[test]
    fn pods_have_stable_names_hostnames_and_labels() {
        let set = sts(3, "OrderedReady");
        let pod = new_pod(&set, 2, "web-abc");
        assert_eq!(objects::name(&pod), "web-2");
        assert_eq!(pod["spec"]["hostname"], "web-2");
        assert_eq!(pod["spec"]["subdomain"], "web");
        assert_eq!(pod["metadata"]["labels"][POD_NAME_LABEL], "web-2");
        assert_eq!(pod["metadata"]["labels"][POD_INDEX_LABEL], "2");
        assert_eq!(pod["metadata"]["labels"][REVISION_LABEL], "web-abc");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
        assert_eq!(
            pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "data-web-2"
        );
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time_and_parallel_all() {
        let set = sts(3, "OrderedReady");
        let pods = [member(&set, 0, false, "r")];
        let p = plan(&Spec::of(&set), "r", &by_ordinal(&pods));
        assert!(p.create.is_empty(), "waits for web-0 to be ready");
        let pods = [member(&set, 0, true, "r")];
        assert_eq!(plan(&Spec::of(&set), "r", &by_ordinal(&pods)).create, [1]);
        let parallel = sts(3, "Parallel");
        assert_eq!(
            plan(&Spec::of(&parallel), "r", &BTreeMap::new()).create,
            [0, 1, 2]
        );
    }

    #[test]
    fn scale_down_and_updates_go_from_the_highest_ordinal() {
        let set = sts(1, "OrderedReady");
        let pods: Vec<Value> = (0..3).map(|i| member(&set, i, true, "r")).collect();
        let p = plan(&Spec::of(&set), "r", &by_ordinal(&pods));
        assert_eq!(
            p.delete
                .iter()
                .map(|p| objects::name(p))
                .collect::<Vec<_>>(),
            ["web-2"]
        );
        let set = sts(3, "OrderedReady");
        let p = plan(&Spec::of(&set), "new", &by_ordinal(&pods));
        assert_eq!(
            p.delete
                .iter()
                .map(|p| objects::name(p))
                .collect::<Vec<_>>(),
            ["web-2"]
        );
        let parallel = sts(1, "Parallel");
        assert_eq!(
            plan(&Spec::of(&parallel), "r", &by_ordinal(&pods))
                .delete
                .len(),
            2
        );
    }

    #[test]
    fn status_counts_and_completes_the_revision() {
        let set = sts(2, "OrderedReady");
        let pods = [
            member(&set, 0, true, "web-r"),
            member(&set, 1, true, "web-r"),
        ];
        let (status, soon) =
            stateful_set_status(&set, &by_ordinal(&pods), "web-r", jiff::Timestamp::now());
        assert!(!soon);
        assert_eq!(
            status,
            json!({"replicas": 2, "availableReplicas": 2, "currentRevision": "web-r", "updateRevision": "web-r",
            "collisionCount": 0, "observedGeneration": 1, "readyReplicas": 2, "currentReplicas": 2, "updatedReplicas": 2})
        );
        let mut stored = set.clone();
        stored["status"] = status.clone();
        let decoded = typed::decode("apps", "StatefulSet", &stored)
            .unwrap()
            .unwrap();
        assert_eq!(decoded.object["status"], status, "stored as built");
    }
}
