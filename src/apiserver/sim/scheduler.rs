//! The scheduler: every Pending pod without a node is bound to a Ready node with
//! room for its requests; when no node fits, the pod says why in its
//! `PodScheduled=False` condition (reason `Unschedulable`), and is tried again
//! whenever a node or a pod changes, which is when room can appear.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::cache::Objects;
use super::client::{Client, Kind, Outcome};
use super::conditions;
use super::pods;
use crate::apiserver::controllers::Follower;
use crate::apiserver::objects::now;
use crate::apiserver::resources::State;
use crate::apiserver::store::{EventType, GroupResource, ObjectKey};
use crate::quantity;

#[derive(Default)]
pub(crate) struct Scheduler {
    nodes: Objects,
    pods: Objects,
    /// Pods waiting for a node.
    pending: BTreeSet<ObjectKey>,
    /// Something changed that may let a pending pod fit.
    changed: bool,
    retry: bool,
}

impl Follower for Scheduler {
    fn observe(&mut self, gr: &GroupResource, namespace: &str, kind: EventType, object: &[u8]) {
        if !gr.group.is_empty() {
            return;
        }
        match gr.resource.as_str() {
            "nodes" => {
                self.nodes.apply(namespace, kind, object);
            }
            "pods" => {
                let Some(change) = self.pods.apply(namespace, kind, object) else {
                    return;
                };
                match self.pods.get(&change.key) {
                    Some(pod) if waits_for_node(pod) => self.pending.insert(change.key),
                    _ => self.pending.remove(&change.key),
                };
            }
            _ => return,
        }
        self.changed = true;
    }

    fn reconcile(&mut self, state: &State) {
        let look = std::mem::take(&mut self.changed) | std::mem::take(&mut self.retry);
        if !look || self.pending.is_empty() {
            return;
        }
        let client = Client::new(state, "kube-scheduler");
        let mut rooms = rooms(&self.nodes, &self.pods);
        let mut retry = false;
        for pod in self.queue() {
            retry |= matches!(schedule(&client, pod, &mut rooms), Outcome::Retry);
        }
        self.retry = retry;
    }

    fn wants_retry(&self) -> bool {
        self.retry
    }
}

impl Scheduler {
    /// Pending pods in the order they are scheduled: oldest first.
    fn queue(&self) -> Vec<&Value> {
        let mut queue: Vec<&Value> = self
            .pending
            .iter()
            .filter_map(|k| self.pods.get(k))
            .collect();
        queue.sort_by_key(|p| {
            p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
        });
        queue
    }
}

/// Binds `pod` to the best node with room, or records why there is none.
fn schedule(client: &Client, pod: &Value, rooms: &mut [Room]) -> Outcome {
    let needs = pod_requests(pod);
    match place(rooms, pod, &needs) {
        Ok(i) => {
            let outcome = bind(client, pod, &rooms[i].name);
            if matches!(outcome, Outcome::Done(_)) {
                rooms[i].requested.add(&needs);
            }
            outcome
        }
        Err(message) => mark_unschedulable(client, pod, &message),
    }
}

fn waits_for_node(pod: &Value) -> bool {
    pods::node_name(pod).is_empty()
        && pods::is_active(pod)
        && pod["spec"]["schedulerName"]
            .as_str()
            .is_none_or(|s| s == "default-scheduler")
}

/// What the binding subresource does: the node goes into the spec, and the pod is
/// marked scheduled.
fn bind(client: &Client, pod: &Value, node: &str) -> Outcome {
    let bound = match client.patch(Kind::Pod, pod, json!({"spec": {"nodeName": node}})) {
        Outcome::Done(bound) => bound,
        other => return other,
    };
    let status = with_scheduled(&bound["status"], "True", "", "");
    client.put_status(Kind::Pod, &bound, status)
}

fn mark_unschedulable(client: &Client, pod: &Value, message: &str) -> Outcome {
    let status = with_scheduled(&pod["status"], "False", "Unschedulable", message);
    if status == pod["status"] {
        return Outcome::Dropped;
    }
    client.put_status(Kind::Pod, pod, status)
}

/// The status with its PodScheduled condition set (in place, or appended).
fn with_scheduled(status: &Value, value: &str, reason: &str, message: &str) -> Value {
    let mut status = status.clone();
    let previous = conditions::find(&status["conditions"], "PodScheduled");
    let c = conditions::condition(previous, "PodScheduled", value, reason, message, &now());
    let list = status["conditions"].as_array().cloned().unwrap_or_default();
    let mut replaced = false;
    let mut list: Vec<Value> = list
        .into_iter()
        .map(|old| {
            if old["type"] != "PodScheduled" {
                return old;
            }
            replaced = true;
            c.clone()
        })
        .collect();
    if !replaced {
        list.push(c);
    }
    status["conditions"] = Value::Array(list);
    status
}

/// CPU (millicores), memory (bytes) and a pod count.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Resources {
    cpu: i64,
    memory: i64,
    pods: i64,
}

impl Resources {
    fn add(&mut self, other: &Resources) {
        self.cpu += other.cpu;
        self.memory += other.memory;
        self.pods += other.pods;
    }

    fn max(&mut self, other: &Resources) {
        self.cpu = self.cpu.max(other.cpu);
        self.memory = self.memory.max(other.memory);
    }

    /// A resource list (`requests`, `allocatable`).
    fn of(list: &Value) -> Resources {
        let get = |name: &str, parse: fn(&str) -> Option<i64>| {
            list[name].as_str().and_then(parse).unwrap_or(0)
        };
        Resources {
            cpu: get("cpu", quantity::millis),
            memory: get("memory", quantity::units),
            pods: get("pods", quantity::units),
        }
    }
}

/// A container's requests; a limit without a request counts as the request, as
/// the API server's defaulting makes it.
fn container_requests(c: &Value) -> Resources {
    let mut list = c["resources"]["limits"].clone();
    if let Some(requests) = c["resources"]["requests"].as_object() {
        for (k, v) in requests {
            list[k] = v.clone();
        }
    }
    Resources::of(&list)
}

/// What the pod asks of a node: its containers and sidecars together, or its
/// largest init container if that is more, plus the pod overhead.
fn pod_requests(pod: &Value) -> Resources {
    let spec = &pod["spec"];
    let mut running = Resources::default();
    for c in spec["containers"].as_array().into_iter().flatten() {
        running.add(&container_requests(c));
    }
    let mut init = Resources::default();
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        if c["restartPolicy"] == "Always" {
            running.add(&container_requests(c));
        } else {
            init.max(&container_requests(c));
        }
    }
    running.max(&init);
    running.add(&Resources::of(&spec["overhead"]));
    running.pods = 1;
    running
}

/// One node as the scheduler sees it.
#[derive(Debug)]
struct Room {
    name: String,
    labels: Value,
    /// The node's NoSchedule/NoExecute taints, NotReady counting as one.
    taints: Vec<Value>,
    unschedulable: bool,
    allocatable: Resources,
    requested: Resources,
}

fn rooms(nodes: &Objects, all_pods: &Objects) -> Vec<Room> {
    let mut requested: BTreeMap<&str, Resources> = BTreeMap::new();
    for pod in all_pods.values().filter(|p| !pods::is_terminal(p)) {
        let node = pods::node_name(pod);
        if !node.is_empty() {
            requested.entry(node).or_default().add(&pod_requests(pod));
        }
    }
    nodes
        .values()
        .map(|n| {
            let name = crate::apiserver::objects::name(n).to_string();
            Room {
                requested: requested.get(name.as_str()).copied().unwrap_or_default(),
                labels: n["metadata"]["labels"].clone(),
                taints: taints(n),
                unschedulable: n["spec"]["unschedulable"] == true,
                allocatable: Resources::of(&n["status"]["allocatable"]),
                name,
            }
        })
        .collect()
}

fn taints(node: &Value) -> Vec<Value> {
    let mut taints: Vec<Value> = node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["effect"] == "NoSchedule" || t["effect"] == "NoExecute")
        .cloned()
        .collect();
    if !conditions::is_true(&node["status"]["conditions"], "Ready") {
        taints.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}));
    }
    taints
}

/// `Toleration.ToleratesTaint`.
fn tolerates(tolerations: &Value, taint: &Value) -> bool {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    tolerations.as_array().into_iter().flatten().any(|t| {
        let (effect, key) = (text(&t["effect"]), text(&t["key"]));
        let effect_ok = effect.is_empty() || effect == text(&taint["effect"]);
        let key_ok = key.is_empty() || key == text(&taint["key"]);
        let value_ok = match t["operator"].as_str() {
            None | Some("" | "Equal") => text(&t["value"]) == text(&taint["value"]),
            Some("Exists") => true,
            Some(_) => false,
        };
        effect_ok && key_ok && value_ok
    })
}

/// Why `pod` does not fit on `room`, in the scheduler's words; empty when it fits.
/// Like the scheduler's filter plugins, the first failing check decides, except
/// that resource shortages are reported together.
fn misfits(room: &Room, pod: &Value, needs: &Resources) -> Vec<String> {
    if room.unschedulable {
        return vec!["node(s) were unschedulable".into()];
    }
    let tolerations = &pod["spec"]["tolerations"];
    if let Some(t) = room.taints.iter().find(|t| !tolerates(tolerations, t)) {
        let (key, value) = (
            t["key"].as_str().unwrap_or_default(),
            t["value"].as_str().unwrap_or_default(),
        );
        return vec![format!("node(s) had untolerated taint {{{key}: {value}}}")];
    }
    let selector = pod["spec"]["nodeSelector"].as_object();
    if selector.is_some_and(|s| s.iter().any(|(k, v)| room.labels.get(k) != Some(v))) {
        return vec!["node(s) didn't match Pod's node affinity/selector".into()];
    }
    let free = |total: i64, used: i64| total - used;
    let mut out = Vec::new();
    if room.requested.pods + 1 > room.allocatable.pods {
        out.push("Too many pods".into());
    }
    if needs.cpu > 0 && needs.cpu > free(room.allocatable.cpu, room.requested.cpu) {
        out.push("Insufficient cpu".into());
    }
    if needs.memory > 0 && needs.memory > free(room.allocatable.memory, room.requested.memory) {
        out.push("Insufficient memory".into());
    }
    out
}

/// The node for `pod`: among those it fits, the least loaded; otherwise the
/// message the scheduler gives (`0/3 nodes are available: 3 Insufficient cpu.`).
fn place(rooms: &[Room], pod: &Value, needs: &Resources) -> Result<usize, String> {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(i64, i64, usize)> = None;
    for (i, room) in rooms.iter().enumerate() {
        let misfits = misfits(room, pod, needs);
        if misfits.is_empty() {
            let score = (load(room, needs), room.requested.pods, i);
            if best.is_none_or(|b| score < b) {
                best = Some(score);
            }
        }
        for r in misfits {
            *reasons.entry(r).or_default() += 1;
        }
    }
    match best {
        Some((_, _, i)) => Ok(i),
        None => Err(unschedulable_message(rooms.len(), &reasons)),
    }
}

/// How full the node would be with the pod: CPU and memory shares, in permille.
fn load(room: &Room, needs: &Resources) -> i64 {
    let share = |used: i64, total: i64| if total > 0 { used * 1000 / total } else { 1000 };
    share(room.requested.cpu + needs.cpu, room.allocatable.cpu)
        + share(
            room.requested.memory + needs.memory,
            room.allocatable.memory,
        )
}

/// The FitError message: every reason with its node count, sorted as text.
fn unschedulable_message(nodes: usize, reasons: &BTreeMap<String, usize>) -> String {
    if nodes == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!("0/{nodes} nodes are available: {}.", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str, cpu: &str, used_cpu: i64, pods: i64) -> Room {
        Room {
            name: name.into(),
            labels: json!({"zone": "a"}),
            taints: Vec::new(),
            unschedulable: false,
            allocatable: Resources::of(&json!({"cpu": cpu, "memory": "16Gi", "pods": "3"})),
            requested: Resources {
                cpu: used_cpu,
                memory: 0,
                pods,
            },
        }
    }

    fn pod_asking(cpu: &str) -> Value {
        json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": cpu}}},
            {"name": "b", "resources": {"limits": {"memory": "1Gi"}}},
        ]}})
    }

    #[test]
    fn requests_add_up_containers_and_take_the_largest_init_container() {
        let mut pod = pod_asking("500m");
        pod["spec"]["initContainers"] =
            json!([{"name": "i", "resources": {"requests": {"cpu": "2"}}}]);
        let r = pod_requests(&pod);
        assert_eq!((r.cpu, r.memory, r.pods), (2000, 1 << 30, 1));
        assert_eq!(pod_requests(&pod_asking("250m")).cpu, 250);
    }

    #[test]
    fn the_least_loaded_node_that_fits_wins() {
        let rooms = [
            room("a", "4", 3500, 1),
            room("b", "4", 1000, 1),
            room("c", "4", 0, 3),
        ];
        let pod = pod_asking("1");
        assert_eq!(place(&rooms, &pod, &pod_requests(&pod)), Ok(1));
    }

    #[test]
    fn no_room_is_explained_per_reason() {
        let rooms = [
            room("a", "4", 0, 0),
            room("b", "4", 0, 0),
            room("c", "2", 0, 3),
        ];
        let pod = pod_asking("8");
        let err = place(&rooms, &pod, &pod_requests(&pod)).unwrap_err();
        assert_eq!(
            err,
            "0/3 nodes are available: 1 Too many pods, 3 Insufficient cpu."
        );
        let mut pinned = pod_asking("1");
        pinned["spec"]["nodeSelector"] = json!({"zone": "b"});
        let err = place(&rooms[..1], &pinned, &pod_requests(&pinned)).unwrap_err();
        assert_eq!(
            err,
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        );
    }

    #[test]
    fn taints_need_tolerations() {
        let mut r = room("a", "4", 0, 0);
        r.taints = vec![json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"})];
        let mut pod = pod_asking("1");
        let needs = pod_requests(&pod);
        assert_eq!(
            misfits(&r, &pod, &needs),
            ["node(s) had untolerated taint {dedicated: db}"]
        );
        pod["spec"]["tolerations"] =
            json!([{"key": "dedicated", "operator": "Equal", "value": "db"}]);
        assert!(misfits(&r, &pod, &needs).is_empty());
        pod["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        assert!(misfits(&r, &pod, &needs).is_empty());
    }

    #[test]
    fn scheduled_condition_replaces_the_previous_one() {
        let status = json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "m", "lastTransitionTime": "t0"}]});
        let again = with_scheduled(&status, "False", "Unschedulable", "m");
        assert_eq!(again, status, "no change, no write");
        let bound = with_scheduled(&status, "True", "", "");
        let c = &bound["conditions"][0];
        assert_eq!(
            (c["status"].as_str(), c.get("reason")),
            (Some("True"), None)
        );
        assert_eq!(bound["conditions"].as_array().unwrap().len(), 1);
    }
}
