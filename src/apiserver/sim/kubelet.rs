//! The kubelets of all simulated nodes: a Pod bound to a node starts at once. It
//! gets an address per family from the node's pod CIDRs (held until the Pod is
//! gone), and a status as a kubelet reports it: phase Running, the pod conditions,
//! container statuses with IDs and start times, and the QoS class.
//!
//! Readiness is the fault-injection knob: a Pod annotated
//! `clusterset.io/ready: "false"` runs but is not Ready (its Ready and
//! ContainersReady conditions are False and its containers report `ready: false`,
//! as when a readiness probe fails), so it stays out of ready endpoints; removing
//! the annotation makes it Ready again.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Value};

use super::cache::{Objects, Queue};
use super::client::{Client, Kind, Outcome};
use super::hash::digest;
use super::{conditions, meta, pods};
use crate::apiserver::controllers::Follower;
use crate::apiserver::ipalloc::IpRange;
use crate::apiserver::objects::{self, now};
use crate::apiserver::resources::State;
use crate::apiserver::store::{EventType, GroupResource, ObjectKey};
use crate::quantity;

/// Set to "false" on a Pod to make it Running but not Ready.
pub const READY_ANNOTATION: &str = "clusterset.io/ready";

#[derive(Default)]
pub(crate) struct Kubelet {
    nodes: BTreeMap<String, NodeNetwork>,
    pods: Objects,
    /// Addresses held by each pod, by pod UID.
    held: HashMap<String, Held>,
    queue: Queue<ObjectKey>,
}

/// What a kubelet knows of its node's network.
struct NodeNetwork {
    host_ips: Vec<String>,
    pod_cidrs: Vec<IpNet>,
    /// One per pod CIDR, primary family first.
    ranges: Vec<IpRange>,
}

struct Held {
    node: String,
    ips: Vec<IpAddr>,
}

impl Follower for Kubelet {
    fn observe(&mut self, gr: &GroupResource, namespace: &str, kind: EventType, object: &[u8]) {
        if !gr.group.is_empty() {
            return;
        }
        match gr.resource.as_str() {
            "nodes" => self.observe_node(kind, object),
            "pods" => {
                let Some(change) = self.pods.apply(namespace, kind, object) else {
                    return;
                };
                if kind == EventType::Deleted {
                    if let Some(old) = change.old {
                        self.release(objects::uid(&old));
                    }
                } else {
                    self.queue.add(change.key);
                }
            }
            _ => {}
        }
    }

    fn reconcile(&mut self, state: &State) {
        let keys = self.queue.take();
        let client = Client::new(state, "kubelet");
        // Addresses pods already hold are claimed before any is handed out, so a
        // restarted kubelet never gives a second pod the same address.
        for key in &keys {
            self.claim_held(key);
        }
        for key in keys {
            if matches!(self.sync_pod(&client, &key), Outcome::Retry) {
                self.queue.retry(key);
            }
        }
    }

    fn wants_retry(&self) -> bool {
        self.queue.has_retries()
    }
}

impl Kubelet {
    fn observe_node(&mut self, kind: EventType, object: &[u8]) {
        let Ok(node) = serde_json::from_slice::<Value>(object) else {
            return;
        };
        let name = objects::name(&node).to_string();
        if kind == EventType::Deleted {
            self.nodes.remove(&name);
            return;
        }
        let host_ips = internal_ips(&node);
        let pod_cidrs: Vec<IpNet> = objects::string_list(&node["spec"]["podCIDRs"])
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect();
        let unchanged = self
            .nodes
            .get(&name)
            .is_some_and(|n| n.host_ips == host_ips && n.pod_cidrs == pod_cidrs);
        if unchanged {
            return;
        }
        // New ranges: the pods there claim their addresses again.
        self.held.retain(|_, h| h.node != name);
        let ranges = pod_cidrs.iter().copied().map(IpRange::new).collect();
        self.nodes.insert(
            name.clone(),
            NodeNetwork {
                host_ips,
                pod_cidrs,
                ranges,
            },
        );
        for (key, pod) in self.pods.iter() {
            if pods::node_name(pod) == name {
                self.queue.add(key.clone());
            }
        }
    }

    fn release(&mut self, uid: &str) {
        let Some(held) = self.held.remove(uid) else {
            return;
        };
        if let Some(node) = self.nodes.get_mut(&held.node) {
            for ip in held.ips {
                node.ranges.iter_mut().for_each(|r| r.release(ip));
            }
        }
    }

    /// Records the addresses a pod already has in its status.
    fn claim_held(&mut self, key: &ObjectKey) {
        let Some(pod) = self.pods.get(key) else {
            return;
        };
        let uid = objects::uid(pod);
        let ips: Vec<IpAddr> = pods::ips(pod)
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        if ips.is_empty() || pod["spec"]["hostNetwork"] == true || self.held.contains_key(uid) {
            return;
        }
        let node_name = pods::node_name(pod);
        let Some(node) = self.nodes.get_mut(node_name) else {
            return;
        };
        for ip in &ips {
            let range = node.ranges.iter_mut().find(|r| r.cidr.contains(ip));
            if let Some(Err(e)) = range.map(|r| r.claim(*ip)) {
                tracing::warn!(pod = objects::name(pod), error = %e, "pod address already taken");
            }
        }
        let held = Held {
            node: node_name.to_string(),
            ips,
        };
        self.held.insert(uid.to_string(), held);
    }

    /// The pod's addresses: those it holds, or new ones from its node's ranges.
    fn addresses(&mut self, pod: &Value) -> Option<Vec<String>> {
        let node_name = pods::node_name(pod);
        let node = self.nodes.get_mut(node_name)?;
        if pod["spec"]["hostNetwork"] == true {
            return Some(node.host_ips.clone());
        }
        let uid = objects::uid(pod);
        if let Some(held) = self.held.get(uid) {
            return Some(held.ips.iter().map(ToString::to_string).collect());
        }
        let ips = allocate(&mut node.ranges)?;
        let strings = ips.iter().map(ToString::to_string).collect();
        let held = Held {
            node: node_name.to_string(),
            ips,
        };
        self.held.insert(uid.to_string(), held);
        Some(strings)
    }

    fn sync_pod(&mut self, client: &Client, key: &ObjectKey) -> Outcome {
        let Some(pod) = self.pods.get(key).cloned() else {
            return Outcome::Dropped;
        };
        if pods::node_name(&pod).is_empty() || !pods::is_active(&pod) {
            return Outcome::Dropped;
        }
        let Some(ips) = self.addresses(&pod) else {
            return Outcome::Dropped;
        };
        let host_ips = &self.nodes[pods::node_name(&pod)].host_ips;
        let status = pod_status(&pod, host_ips, &ips, &now());
        if status == pod["status"] {
            return Outcome::Dropped;
        }
        client.put_status(Kind::Pod, &pod, status)
    }
}

/// One address per range, or none at all when a range is full.
fn allocate(ranges: &mut [IpRange]) -> Option<Vec<IpAddr>> {
    if ranges.is_empty() {
        return None;
    }
    let mut ips = Vec::new();
    for i in 0..ranges.len() {
        match ranges[i].allocate() {
            Some(ip) => ips.push(ip),
            None => {
                for (r, ip) in ranges.iter_mut().zip(&ips) {
                    r.release(*ip);
                }
                tracing::warn!(range = %ranges[i].cidr, "node pod CIDR is full");
                return None;
            }
        }
    }
    Some(ips)
}

fn internal_ips(node: &Value) -> Vec<String> {
    node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == "InternalIP")
        .filter_map(|a| a["address"].as_str().map(String::from))
        .collect()
}

fn ip_list(ips: &[String]) -> Value {
    ips.iter().map(|ip| json!({ "ip": ip })).collect()
}

/// The status the kubelet reports for a running pod. What it reported before
/// (start times, container IDs, transition times) is kept, so looking again
/// changes nothing.
pub fn pod_status(pod: &Value, host_ips: &[String], pod_ips: &[String], now: &str) -> Value {
    let current = &pod["status"];
    let ready = meta::annotation(pod, READY_ANNOTATION) != Some("false");
    let spec = &pod["spec"];
    let containers = container_statuses(spec, &current["containerStatuses"], ready, now);
    let mut status = json!({
        "phase": "Running",
        "conditions": pod_conditions(spec, &current["conditions"], ready, now),
        "startTime": current["startTime"].as_str().unwrap_or(now),
        "containerStatuses": containers,
        "qosClass": qos_class(spec),
    });
    for (one, all, ips) in [
        ("hostIP", "hostIPs", host_ips),
        ("podIP", "podIPs", pod_ips),
    ] {
        if let Some(first) = ips.first() {
            status[one] = json!(first);
            status[all] = ip_list(ips);
        }
    }
    if spec["initContainers"]
        .as_array()
        .is_some_and(|c| !c.is_empty())
    {
        status["initContainerStatuses"] =
            init_container_statuses(spec, &current["initContainerStatuses"], now);
    }
    status
}

fn pod_conditions(spec: &Value, current: &Value, ready: bool, now: &str) -> Value {
    let names = spec["containers"].as_array().into_iter().flatten();
    let unready: Vec<&str> = names
        .filter(|_| !ready)
        .filter_map(|c| c["name"].as_str())
        .collect();
    let message = format!("containers with unready status: [{}]", unready.join(" "));
    let set = |type_: &str, ok: bool| {
        let (status, reason, message) = if ok {
            ("True", "", "")
        } else {
            ("False", "ContainersNotReady", message.as_str())
        };
        let previous = conditions::find(current, type_);
        conditions::condition(previous, type_, status, reason, message, now)
    };
    json!([
        set("PodReadyToStartContainers", true),
        set("Initialized", true),
        set("Ready", ready),
        set("ContainersReady", ready),
        set("PodScheduled", true),
    ])
}

fn container_statuses(spec: &Value, current: &Value, ready: bool, now: &str) -> Value {
    spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| container_status(c, previous_status(current, c), Run::Running { ready }, now))
        .collect()
}

/// Init containers have completed, except sidecars (restartPolicy Always), which
/// keep running.
fn init_container_statuses(spec: &Value, current: &Value, now: &str) -> Value {
    spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let run = if c["restartPolicy"] == "Always" {
                Run::Running { ready: true }
            } else {
                Run::Completed
            };
            container_status(c, previous_status(current, c), run, now)
        })
        .collect()
}

fn previous_status<'a>(current: &'a Value, container: &Value) -> Option<&'a Value> {
    current
        .as_array()?
        .iter()
        .find(|s| s["name"] == container["name"])
}

enum Run {
    Running { ready: bool },
    Completed,
}

/// A container's status. A container whose image changed was restarted: new ID,
/// one more restart.
fn container_status(c: &Value, previous: Option<&Value>, run: Run, now: &str) -> Value {
    let image = full_image(c["image"].as_str().unwrap_or_default());
    let same = previous.filter(|p| p["image"] == image.as_str());
    let restarts = match (previous, same) {
        (Some(p), None) => p["restartCount"].as_i64().unwrap_or(0) + 1,
        (Some(p), Some(_)) => p["restartCount"].as_i64().unwrap_or(0),
        (None, _) => 0,
    };
    let id = same
        .and_then(|p| p["containerID"].as_str().map(String::from))
        .unwrap_or_else(new_container_id);
    let kept = |state: &str, field: &str| {
        same.and_then(|p| p["state"][state][field].as_str())
            .unwrap_or(now)
            .to_string()
    };
    let (state, ready, started) = match run {
        Run::Running { ready } => (
            json!({"running": {"startedAt": kept("running", "startedAt")}}),
            ready,
            true,
        ),
        Run::Completed => {
            let state = json!({"terminated": {
                "exitCode": 0, "reason": "Completed", "containerID": id,
                "startedAt": kept("terminated", "startedAt"),
                "finishedAt": kept("terminated", "finishedAt"),
            }});
            (state, true, false)
        }
    };
    json!({
        "name": c["name"],
        "image": image,
        "imageID": image_id(&image),
        "containerID": id,
        "ready": ready,
        "started": started,
        "restartCount": restarts,
        "state": state,
        "lastState": {},
    })
}

fn new_container_id() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("containerd://{a}{b}")
}

/// An image reference as the runtime reports it: registry, repository and tag
/// spelled out (`nginx` → `docker.io/library/nginx:latest`).
fn full_image(image: &str) -> String {
    let first = image.split('/').next().unwrap_or_default();
    let has_registry =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = match (has_registry, image.contains('/')) {
        (true, _) => image.to_string(),
        (false, true) => format!("docker.io/{image}"),
        (false, false) => format!("docker.io/library/{image}"),
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') && !last.contains('@') {
        full.push_str(":latest");
    }
    full
}

/// `<repository>@sha256:<digest>`, the digest made up but stable.
fn image_id(full: &str) -> String {
    if full.contains('@') {
        return full.to_string();
    }
    let (repo, _tag) = full.rsplit_once(':').unwrap_or((full, ""));
    format!("{repo}@sha256:{}", digest(full))
}

/// Guaranteed when every container's CPU and memory limits equal its requests,
/// BestEffort when nothing asks for either, Burstable otherwise.
fn qos_class(spec: &Value) -> &'static str {
    let containers = ["containers", "initContainers"]
        .iter()
        .flat_map(|list| spec[*list].as_array().into_iter().flatten());
    let (mut any, mut guaranteed) = (false, true);
    for c in containers {
        for r in ["cpu", "memory"] {
            let request = c["resources"]["requests"][r].as_str();
            let limit = c["resources"]["limits"][r].as_str();
            any |= request.is_some() || limit.is_some();
            guaranteed &= limit
                .is_some_and(|l| request.is_none_or(|q| quantity::parse(q) == quantity::parse(l)));
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::typed;

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {
                "nodeName": "n1",
                "initContainers": [{"name": "setup", "image": "busybox"}],
                "containers": [
                    {"name": "web", "image": "nginx:1.25", "resources": {"requests": {"cpu": "1"}}},
                    {"name": "proxy", "image": "ghcr.io/envoy/envoy:v1"},
                ],
            },
        })
    }

    #[test]
    fn a_running_pod_reports_what_a_kubelet_reports() {
        let mut p = pod();
        let (t0, t1) = ("2026-01-01T00:00:00Z", "2026-01-01T00:00:09Z");
        let status = pod_status(
            &p,
            &["172.18.0.2".into()],
            &["10.244.0.5".into(), "fd00::5".into()],
            t0,
        );
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "10.244.0.5");
        assert_eq!(status["podIPs"][1]["ip"], "fd00::5");
        assert_eq!(status["hostIPs"][0]["ip"], "172.18.0.2");
        assert_eq!(status["qosClass"], "Burstable");
        let types: Vec<&str> = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled"
            ]
        );
        assert!(conditions::is_true(&status["conditions"], "Ready"));
        let web = &status["containerStatuses"][0];
        assert_eq!(web["image"], "docker.io/library/nginx:1.25");
        assert!(web["imageID"]
            .as_str()
            .unwrap()
            .starts_with("docker.io/library/nginx@sha256:"));
        assert!(web["containerID"]
            .as_str()
            .unwrap()
            .starts_with("containerd://"));
        assert_eq!(
            status["containerStatuses"][1]["image"],
            "ghcr.io/envoy/envoy:v1"
        );
        assert_eq!(
            status["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        // Stored as written (nothing the Pod type would drop), and stable.
        p["status"] = status;
        let decoded = typed::decode("", "Pod", &p).unwrap().unwrap();
        assert!(decoded.unknown.is_empty(), "{:?}", decoded.unknown);
        assert_eq!(decoded.object, p);
        let again = pod_status(
            &p,
            &["172.18.0.2".into()],
            &["10.244.0.5".into(), "fd00::5".into()],
            t1,
        );
        assert_eq!(again, p["status"]);
    }

    #[test]
    fn the_ready_annotation_makes_a_pod_unready_and_back() {
        let mut p = pod();
        p["status"] = pod_status(&p, &["h".into()], &["10.0.0.1".into()], "t0");
        p["metadata"]["annotations"] = json!({READY_ANNOTATION: "false"});
        let unready = pod_status(&p, &["h".into()], &["10.0.0.1".into()], "t1");
        let c = conditions::find(&unready["conditions"], "Ready").unwrap();
        assert_eq!(c["status"], "False");
        assert_eq!(c["reason"], "ContainersNotReady");
        assert_eq!(c["message"], "containers with unready status: [web proxy]");
        assert_eq!(c["lastTransitionTime"], "t1");
        assert_eq!(unready["containerStatuses"][0]["ready"], false);
        assert_eq!(unready["containerStatuses"][0]["started"], true);
        assert_eq!(unready["phase"], "Running");
        p["status"] = unready;
        p["metadata"]["annotations"] = json!({});
        let back = pod_status(&p, &["h".into()], &["10.0.0.1".into()], "t2");
        assert!(conditions::is_true(&back["conditions"], "Ready"));
        assert_eq!(
            back["containerStatuses"][0]["containerID"],
            p["status"]["containerStatuses"][0]["containerID"]
        );
    }

    #[test]
    fn a_new_image_restarts_the_container() {
        let mut p = pod();
        p["status"] = pod_status(&p, &["h".into()], &["10.0.0.1".into()], "t0");
        p["spec"]["containers"][0]["image"] = json!("nginx:1.26");
        let s = pod_status(&p, &["h".into()], &["10.0.0.1".into()], "t1");
        assert_eq!(s["containerStatuses"][0]["restartCount"], 1);
        assert_ne!(
            s["containerStatuses"][0]["containerID"],
            p["status"]["containerStatuses"][0]["containerID"]
        );
        assert_eq!(s["containerStatuses"][1]["restartCount"], 0);
    }

    #[test]
    fn qos_classes() {
        let spec = |res: Value| json!({"containers": [{"name": "c", "resources": res}]});
        assert_eq!(qos_class(&spec(json!({}))), "BestEffort");
        let limits = json!({"limits": {"cpu": "1", "memory": "1Gi"}});
        assert_eq!(qos_class(&spec(limits)), "Guaranteed");
        let both = json!({"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}});
        assert_eq!(qos_class(&spec(both)), "Guaranteed");
        assert_eq!(
            qos_class(&spec(json!({"requests": {"cpu": "1"}}))),
            "Burstable"
        );
    }

    #[test]
    fn addresses_are_unique_per_range_and_come_back() {
        let mut ranges = vec![
            IpRange::new("10.244.1.0/29".parse().unwrap()),
            IpRange::new("fd00:0:0:1::/125".parse().unwrap()),
        ];
        let a = allocate(&mut ranges).unwrap();
        let b = allocate(&mut ranges).unwrap();
        assert_eq!(a.len(), 2);
        assert_ne!(a, b);
        assert!(ranges[0].cidr.contains(&a[0]) && ranges[1].cidr.contains(&a[1]));
        // A full range hands out nothing, and takes back what it took from others.
        let mut rest = Vec::new();
        while let Some(ips) = allocate(&mut ranges) {
            rest.push(ips);
        }
        assert_eq!(rest.len(), 3, "10.244.1.2-6 minus two: .7 is broadcast");
        ranges[0].release(a[0]);
        assert_eq!(allocate(&mut ranges).unwrap()[0], a[0]);
    }

    #[test]
    fn image_names_are_spelled_out() {
        assert_eq!(full_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(full_image("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(
            full_image("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            image_id("registry.k8s.io/pause@sha256:abc"),
            "registry.k8s.io/pause@sha256:abc"
        );
    }
}
