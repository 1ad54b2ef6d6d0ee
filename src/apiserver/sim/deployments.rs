//! The Deployment controller: one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>`, carrying the hash as the `pod-template-hash`
//! label on itself and its pods. A template change makes a new ReplicaSet; the old
//! ones are scaled to zero once the new one is fully available (`RollingUpdate`,
//! simplified to "surge all, then drop the old") or at once (`Recreate`). The status
//! counts and the `Available` / `Progressing` conditions are written as the real
//! controller writes them, so `kubectl rollout status` works.

use serde_json::{json, Map, Value};

use super::cache::Family;
use super::client::{Client, Kind, Outcome};
use super::hash::template_hash;
use super::meta;
use crate::apiserver::controllers::Follower;
use crate::apiserver::objects::{self, now};
use crate::apiserver::resources::State;
use crate::apiserver::store::{EventType, GroupResource};

const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

pub(crate) struct DeploymentController {
    family: Family,
}

impl Default for DeploymentController {
    fn default() -> Self {
        DeploymentController {
            family: Family::new(
                ("apps", "deployments", "Deployment"),
                ("apps", "replicasets"),
            ),
        }
    }
}

impl Follower for DeploymentController {
    fn observe(&mut self, gr: &GroupResource, namespace: &str, kind: EventType, object: &[u8]) {
        self.family.observe(gr, namespace, kind, object);
    }

    fn reconcile(&mut self, state: &State) {
        let client = Client::new(state, "kube-controller-manager");
        for key in self.family.queue.take() {
            let Some(d) = self.family.owners.get(&key) else {
                continue;
            };
            if objects::is_deleting(d) {
                continue;
            }
            let selector = meta::selector(&d["spec"]["selector"]);
            let orphans = meta::orphans(selector, self.family.dependents.in_namespace(&key.0));
            let retry = if orphans.is_empty() {
                let sets: Vec<&Value> = self
                    .family
                    .dependents
                    .in_namespace(&key.0)
                    .filter(|rs| meta::controlled_by(rs, d))
                    .collect();
                Rollout::new(&client, d, sets).run()
            } else {
                // The adopted ReplicaSets come back as changes, and this sync with them.
                client.adopt(
                    Kind::ReplicaSet,
                    &orphans,
                    meta::controller_ref_to(d, "apps/v1", "Deployment"),
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

/// One sync of one Deployment.
struct Rollout<'a> {
    client: &'a Client<'a>,
    d: &'a Value,
    /// The ReplicaSet of the current template, if it exists yet.
    new: Option<&'a Value>,
    old: Vec<&'a Value>,
    hash: String,
    retry: bool,
}

impl<'a> Rollout<'a> {
    fn new(client: &'a Client<'a>, d: &'a Value, sets: Vec<&'a Value>) -> Self {
        let collisions = d["status"]["collisionCount"].as_u64().map(|c| c as u32);
        let hash = template_hash(&d["spec"]["template"], collisions);
        let (new, old): (Vec<&Value>, Vec<&Value>) = sets
            .into_iter()
            .partition(|rs| meta::label(rs, HASH_LABEL) == Some(hash.as_str()));
        Rollout {
            client,
            d,
            new: new.into_iter().next(),
            old,
            hash,
            retry: false,
        }
    }

    /// Returns true when something should be retried.
    fn run(mut self) -> bool {
        let paused = self.d["spec"]["paused"] == true;
        let mut created = None;
        if !paused {
            created = self.sync_new_replica_set();
            self.scale_down_old();
        }
        let d = self.annotate_revision();
        let status = deployment_status(&d, self.new, &self.all(), created.as_deref(), &now());
        if status != d["status"] {
            self.note(self.client.put_status(Kind::Deployment, &d, status.clone()));
        }
        if !paused && is_complete(&d, &status) {
            self.clean_up_history();
        }
        self.retry
    }

    fn note(&mut self, outcome: Outcome) -> Option<Value> {
        self.retry |= matches!(outcome, Outcome::Retry);
        outcome.done()
    }

    fn all(&self) -> Vec<&'a Value> {
        self.new
            .iter()
            .copied()
            .chain(self.old.iter().copied())
            .collect()
    }

    fn desired(&self) -> i64 {
        self.d["spec"]["replicas"].as_i64().unwrap_or(1)
    }

    fn recreate(&self) -> bool {
        self.d["spec"]["strategy"]["type"] == "Recreate"
    }

    /// How many replicas the new ReplicaSet should have now: all of them, except
    /// that `Recreate` waits until the old pods are gone.
    fn new_target(&self) -> i64 {
        let old_pods: i64 = self
            .old
            .iter()
            .map(|rs| rs["status"]["replicas"].as_i64().unwrap_or(0) + replicas(rs))
            .sum();
        if self.recreate() && old_pods > 0 {
            0
        } else {
            self.desired()
        }
    }

    /// The revision the new ReplicaSet should carry: one more than any old one.
    fn next_revision(&self) -> i64 {
        self.old.iter().map(|rs| revision(rs)).max().unwrap_or(0) + 1
    }

    /// Creates or scales the new ReplicaSet; the name of a created one.
    fn sync_new_replica_set(&mut self) -> Option<String> {
        let target = self.new_target();
        let max = target + max_surge(self.d);
        let Some(rs) = self.new else {
            let rs = new_replica_set(self.d, &self.hash, target, self.next_revision(), max);
            let name = objects::name(&rs).to_string();
            let created = self
                .client
                .create(Kind::ReplicaSet, objects::namespace(self.d), rs);
            return self.note(created).map(|_| name);
        };
        // Newer than every old one: a template that comes back (a rollback) takes
        // the next revision, as `SetNewReplicaSetAnnotations` does.
        let rev = revision(rs).max(self.next_revision());
        let annotations = json!({REVISION: rev.to_string(), DESIRED_REPLICAS: self.desired().to_string(), MAX_REPLICAS: max.to_string()});
        let same = replicas(rs) == target
            && annotations
                .as_object()
                .into_iter()
                .flatten()
                .all(|(k, v)| rs["metadata"]["annotations"][k] == *v);
        if !same {
            let patch =
                json!({"metadata": {"annotations": annotations}, "spec": {"replicas": target}});
            let outcome = self.client.patch(Kind::ReplicaSet, rs, patch);
            self.note(outcome);
        }
        None
    }

    /// Old ReplicaSets go to zero once the new one is fully available, or at once
    /// with `Recreate`.
    fn scale_down_old(&mut self) {
        let new_available = self.new.map_or(0, |rs| {
            rs["status"]["availableReplicas"].as_i64().unwrap_or(0)
        });
        let done = self.new.is_some() && new_available >= self.desired();
        if !(done || self.recreate()) {
            return;
        }
        for rs in self.old.clone() {
            if replicas(rs) > 0 {
                let outcome =
                    self.client
                        .patch(Kind::ReplicaSet, rs, json!({"spec": {"replicas": 0}}));
                self.note(outcome);
            }
        }
    }

    /// The Deployment carries the revision of its new ReplicaSet; returns the
    /// Deployment as it is now.
    fn annotate_revision(&mut self) -> Value {
        let Some(rev) = self.new.and_then(|rs| meta::annotation(rs, REVISION)) else {
            return self.d.clone();
        };
        if meta::annotation(self.d, REVISION) == Some(rev) {
            return self.d.clone();
        }
        let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
        let outcome = self.client.patch(Kind::Deployment, self.d, patch);
        self.note(outcome).unwrap_or_else(|| self.d.clone())
    }

    /// Old ReplicaSets beyond `revisionHistoryLimit` go, oldest first.
    fn clean_up_history(&mut self) {
        let limit = self.d["spec"]["revisionHistoryLimit"]
            .as_i64()
            .unwrap_or(10)
            .max(0) as usize;
        let mut idle: Vec<&Value> = self
            .old
            .iter()
            .copied()
            .filter(|rs| replicas(rs) == 0 && rs["status"]["replicas"].as_i64().unwrap_or(0) == 0)
            .filter(|rs| !objects::is_deleting(rs))
            .collect();
        if idle.len() <= limit {
            return;
        }
        idle.sort_by_key(|rs| revision(rs));
        for rs in &idle[..idle.len() - limit] {
            let outcome = self.client.delete(Kind::ReplicaSet, rs);
            self.note(outcome);
        }
    }
}

fn replicas(rs: &Value) -> i64 {
    rs["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn revision(rs: &Value) -> i64 {
    meta::annotation(rs, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSet for the Deployment's current template.
fn new_replica_set(d: &Value, hash: &str, replicas: i64, revision: i64, max: i64) -> Value {
    let mut template = d["spec"]["template"].clone();
    template["metadata"]["labels"][HASH_LABEL] = json!(hash);
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"][HASH_LABEL] = json!(hash);
    let mut annotations = copied_annotations(d);
    annotations.insert(REVISION.into(), json!(revision.to_string()));
    annotations.insert(
        DESIRED_REPLICAS.into(),
        json!(d["spec"]["replicas"].as_i64().unwrap_or(1).to_string()),
    );
    annotations.insert(MAX_REPLICAS.into(), json!(max.to_string()));
    let mut spec = json!({"replicas": replicas, "selector": selector, "template": template});
    if let Some(m) = d["spec"].get("minReadySeconds") {
        spec["minReadySeconds"] = m.clone();
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{hash}", objects::name(d)),
            "labels": template["metadata"]["labels"],
            "annotations": annotations,
            "ownerReferences": [meta::controller_ref_to(d, "apps/v1", "Deployment")],
        },
        "spec": spec,
    })
}

/// The Deployment's annotations a new ReplicaSet inherits (`kubernetes.io/change-cause`
/// and the like), without those that describe the Deployment itself.
fn copied_annotations(d: &Value) -> Map<String, Value> {
    let skip = [
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        DESIRED_REPLICAS,
        MAX_REPLICAS,
    ];
    d["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `maxSurge` / `maxUnavailable`: a number, or a percentage of `total` rounded up
/// (surge) or down (unavailable).
fn scaled(v: &Value, default: &str, total: i64, round_up: bool) -> i64 {
    let v = if v.is_null() {
        json!(default)
    } else {
        v.clone()
    };
    match (v.as_i64(), v.as_str().and_then(|s| s.strip_suffix('%'))) {
        (Some(n), _) => n,
        (None, Some(pct)) => {
            let pct: i64 = pct.parse().unwrap_or(0);
            let scaled = pct * total;
            if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            }
        }
        _ => 0,
    }
}

/// `ResolveFenceposts`: surge and unavailability of a rolling update (never both 0).
fn fenceposts(d: &Value) -> (i64, i64) {
    if d["spec"]["strategy"]["type"] == "Recreate" {
        return (0, 0);
    }
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let ru = &d["spec"]["strategy"]["rollingUpdate"];
    let surge = scaled(&ru["maxSurge"], "25%", desired, true);
    let unavailable = scaled(&ru["maxUnavailable"], "25%", desired, false);
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

fn max_surge(d: &Value) -> i64 {
    fenceposts(d).0
}

fn max_unavailable(d: &Value) -> i64 {
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    fenceposts(d).1.min(desired)
}

/// `DeploymentComplete`: every replica updated and available, none left over.
fn is_complete(d: &Value, status: &Value) -> bool {
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let n = |f: &str| status[f].as_i64().unwrap_or(0);
    n("updatedReplicas") == desired
        && n("replicas") == desired
        && n("availableReplicas") == desired
        && n("observedGeneration") >= meta::generation(d)
}

/// `DeploymentProgressing`: more updated, ready or available pods, or fewer old
/// ones, than the status says.
fn is_progressing(old: &Value, new: &Value) -> bool {
    let n = |s: &Value, f: &str| s[f].as_i64().unwrap_or(0);
    let old_pods = |s: &Value| n(s, "replicas") - n(s, "updatedReplicas");
    n(new, "updatedReplicas") > n(old, "updatedReplicas")
        || old_pods(new) < old_pods(old)
        || n(new, "readyReplicas") > n(old, "readyReplicas")
        || n(new, "availableReplicas") > n(old, "availableReplicas")
}

/// The Deployment's status: counts summed over its ReplicaSets and the
/// conditions the real controller keeps.
fn deployment_status(
    d: &Value,
    new: Option<&Value>,
    all: &[&Value],
    created: Option<&str>,
    now: &str,
) -> Value {
    let sum = |f: &str| {
        all.iter()
            .map(|rs| rs["status"][f].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let available = sum("availableReplicas");
    let mut status = Value::Object(Map::new());
    meta::set_nonzero(&mut status, "observedGeneration", meta::generation(d));
    meta::set_nonzero(&mut status, "replicas", sum("replicas"));
    meta::set_nonzero(
        &mut status,
        "updatedReplicas",
        new.map_or(0, |rs| rs["status"]["replicas"].as_i64().unwrap_or(0)),
    );
    meta::set_nonzero(&mut status, "readyReplicas", sum("readyReplicas"));
    meta::set_nonzero(&mut status, "availableReplicas", available);
    meta::set_nonzero(
        &mut status,
        "unavailableReplicas",
        (desired - available).max(0),
    );
    if let Some(c) = d["status"].get("collisionCount") {
        status["collisionCount"] = c.clone();
    }
    let mut conds = d["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (ok, reason, message) = if available >= desired - max_unavailable(d) {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    set_condition(&mut conds, "Available", ok, reason, message, now);
    progress(d, &mut conds, &status, new, created, now);
    status["conditions"] = Value::Array(conds);
    status
}

/// The Progressing condition, as `syncRolloutStatus` and `getNewReplicaSet` set it.
fn progress(
    d: &Value,
    conds: &mut Vec<Value>,
    status: &Value,
    new: Option<&Value>,
    created: Option<&str>,
    now: &str,
) {
    let current = conds.iter().find(|c| c["type"] == "Progressing").cloned();
    if d["spec"]["paused"] == true {
        set_condition(
            conds,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            now,
        );
        return;
    }
    if current
        .as_ref()
        .is_some_and(|c| c["reason"] == "DeploymentPaused")
    {
        set_condition(
            conds,
            "Progressing",
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed",
            now,
        );
    }
    if let Some(name) = created {
        let message = format!("Created new replica set \"{name}\"");
        set_condition(
            conds,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            &message,
            now,
        );
        return;
    }
    let Some(rs) = new else {
        return;
    };
    let name = objects::name(rs);
    if current.is_none() {
        let message = format!("Found new replica set \"{name}\"");
        set_condition(
            conds,
            "Progressing",
            "True",
            "FoundNewReplicaSet",
            &message,
            now,
        );
    }
    let n = |f: &str| status[f].as_i64().unwrap_or(0);
    let settled = n("replicas") == n("updatedReplicas")
        && current
            .as_ref()
            .is_some_and(|c| c["reason"] == "NewReplicaSetAvailable");
    if settled {
        return;
    }
    if is_complete(d, status) {
        let message = format!("ReplicaSet \"{name}\" has successfully progressed.");
        set_condition(
            conds,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &message,
            now,
        );
    } else if is_progressing(&d["status"], status) {
        // Progress refreshes lastUpdateTime even when the reason stays the same.
        let since = current
            .filter(|c| c["status"] == "True")
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now));
        conds.retain(|c| c["type"] != "Progressing");
        let message = format!("ReplicaSet \"{name}\" is progressing.");
        let mut c = deployment_condition("Progressing", "True", "ReplicaSetUpdated", &message, now);
        c["lastTransitionTime"] = since;
        conds.push(c);
    }
}

fn deployment_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) -> Value {
    json!({
        "type": type_, "status": status, "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": now,
    })
}

/// `SetDeploymentCondition`: nothing changes while status and reason stay; the
/// transition time stays while the status does; a changed condition moves to the end.
fn set_condition(
    conds: &mut Vec<Value>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    let current = conds.iter().find(|c| c["type"] == type_).cloned();
    let mut c = deployment_condition(type_, status, reason, message, now);
    if let Some(cur) = current {
        if cur["status"] == status && cur["reason"] == reason {
            return;
        }
        if cur["status"] == status {
            c["lastTransitionTime"] = cur["lastTransitionTime"].clone();
        }
    }
    conds.retain(|c| c["type"] != type_);
    conds.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::sim::conditions;
    use crate::apiserver::typed;

    fn deployment(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d1", "generation": 1,
                "annotations": {"kubernetes.io/change-cause": "first", REVISION: "1"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        })
    }

    fn rs_with(status: Value) -> Value {
        json!({"metadata": {"name": "web-abc"}, "status": status})
    }

    #[test]
    fn replica_sets_carry_the_hash_revision_and_owner() {
        let d = deployment(4);
        let rs = new_replica_set(&d, "abc", 4, 2, 5);
        assert_eq!(rs["metadata"]["name"], "web-abc");
        assert_eq!(
            rs["metadata"]["labels"],
            json!({"app": "web", HASH_LABEL: "abc"})
        );
        assert_eq!(rs["spec"]["selector"]["matchLabels"][HASH_LABEL], "abc");
        assert_eq!(
            rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL],
            "abc"
        );
        let a = &rs["metadata"]["annotations"];
        assert_eq!(
            (a[REVISION].as_str(), a[MAX_REPLICAS].as_str()),
            (Some("2"), Some("5"))
        );
        assert_eq!(a["kubernetes.io/change-cause"], "first");
        assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
        assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
    }

    #[test]
    fn fenceposts_round_like_kubernetes() {
        let mut d = deployment(10);
        assert_eq!(fenceposts(&d), (3, 2));
        d["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 0, "maxUnavailable": "0%"});
        assert_eq!(fenceposts(&d), (0, 1));
        d["spec"]["strategy"] = json!({"type": "Recreate"});
        assert_eq!(max_unavailable(&d), 0);
    }

    #[test]
    fn a_finished_rollout_reads_as_successfully_progressed() {
        let d = deployment(2);
        let rs = rs_with(json!({"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}));
        let (t1, t2) = ("2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z");
        let s1 = deployment_status(&d, Some(&rs), &[&rs], None, t1);
        assert_eq!(
            (
                s1["replicas"].as_i64(),
                s1["updatedReplicas"].as_i64(),
                s1["availableReplicas"].as_i64()
            ),
            (Some(2), Some(2), Some(2))
        );
        assert!(s1.get("unavailableReplicas").is_none(), "zero is left out");
        let types: Vec<&str> = s1["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["Available", "Progressing"]);
        let p = conditions::find(&s1["conditions"], "Progressing").unwrap();
        assert_eq!(p["reason"], "NewReplicaSetAvailable");
        assert_eq!(
            p["message"],
            "ReplicaSet \"web-abc\" has successfully progressed."
        );
        // Looking again changes nothing.
        let mut d2 = d.clone();
        d2["status"] = s1.clone();
        assert_eq!(deployment_status(&d2, Some(&rs), &[&rs], None, t2), s1);
        let decoded = typed::decode("apps", "Deployment", &d2).unwrap().unwrap();
        assert_eq!(decoded.object, d2);
    }

    #[test]
    fn progress_updates_the_condition_and_keeps_its_transition_time() {
        let mut d = deployment(3);
        let rs = rs_with(json!({"replicas": 1}));
        let created = deployment_status(&d, None, &[], Some("web-abc"), "t0");
        let p = conditions::find(&created["conditions"], "Progressing").unwrap();
        assert_eq!(p["reason"], "NewReplicaSetCreated");
        assert_eq!(
            conditions::find(&created["conditions"], "Available").unwrap()["status"],
            "False"
        );
        d["status"] = created;
        let moving = deployment_status(&d, Some(&rs), &[&rs], None, "t1");
        let p = conditions::find(&moving["conditions"], "Progressing").unwrap();
        assert_eq!(
            (
                p["reason"].as_str(),
                p["lastTransitionTime"].as_str(),
                p["lastUpdateTime"].as_str()
            ),
            (Some("ReplicaSetUpdated"), Some("t0"), Some("t1"))
        );
    }
}
