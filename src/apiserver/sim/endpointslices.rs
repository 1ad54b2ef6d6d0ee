//! The EndpointSlice controller: for every Service with a selector, one set of
//! EndpointSlices per IP family of the Service, listing the selected pods that have
//! an address, with their readiness, node, hostname and the Service's ports
//! resolved against the pod's container ports. Slices are reconciled the way
//! kube-controller-manager's reconciler does it: existing slices are updated in
//! place, new endpoints fill the fullest slices first, at most 100 endpoints per
//! slice, a placeholder slice when there is nothing to list, and a write only when
//! a slice would change.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::cache::{Objects, Queue};
use super::client::{Client, Kind, Outcome};
use super::{meta, pods};
use crate::apiserver::controllers::Follower;
use crate::apiserver::ipalloc::family_of;
use crate::apiserver::objects;
use crate::apiserver::resources::{State, Subresource};
use crate::apiserver::store::{EventType, GroupResource, ObjectKey};

const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
const HEADLESS: &str = "service.kubernetes.io/headless";
const ZONE: &str = "topology.kubernetes.io/zone";
/// kube-controller-manager's `--max-endpoints-per-slice` default.
const MAX_ENDPOINTS: usize = 100;

#[derive(Default)]
pub(crate) struct EndpointSliceController {
    services: Objects,
    pods: Objects,
    slices: Objects,
    /// The names of this controller's slices, by Service: a Service's sync must not
    /// scan every slice of its namespace (imported ones included).
    slices_of: BTreeMap<ObjectKey, std::collections::BTreeSet<String>>,
    /// Known nodes and their zones: pods on unknown nodes are left out.
    nodes: BTreeMap<String, Option<String>>,
    queue: Queue<ObjectKey>,
}

impl Follower for EndpointSliceController {
    fn observe(&mut self, gr: &GroupResource, namespace: &str, kind: EventType, object: &[u8]) {
        match (gr.group.as_str(), gr.resource.as_str()) {
            ("", "services") => {
                if let Some(change) = self.services.apply(namespace, kind, object) {
                    self.queue.add(change.key);
                }
            }
            ("", "pods") => self.observe_pod(namespace, kind, object),
            ("discovery.k8s.io", "endpointslices") => {
                let Some(change) = self.slices.apply(namespace, kind, object) else {
                    return;
                };
                let name = change.key.1.clone();
                if let Some(service) = change.old.as_ref().and_then(managed_slice_of) {
                    let key = (namespace.to_string(), service.to_string());
                    if let Some(names) = self.slices_of.get_mut(&key) {
                        names.remove(&name);
                        if names.is_empty() {
                            self.slices_of.remove(&key);
                        }
                    }
                    self.queue.add(key);
                }
                if let Some(service) = self.slices.get(&change.key).and_then(managed_slice_of) {
                    let key = (namespace.to_string(), service.to_string());
                    self.slices_of.entry(key.clone()).or_default().insert(name);
                    self.queue.add(key);
                }
            }
            ("", "nodes") => self.observe_node(kind, object),
            _ => {}
        }
    }

    fn reconcile(&mut self, state: &State) {
        let client = Client::new(state, "kube-controller-manager");
        for key in self.queue.take() {
            if self.sync(&client, &key) {
                self.queue.retry(key);
            }
        }
    }

    fn wants_retry(&self) -> bool {
        self.queue.has_retries()
    }
}

impl EndpointSliceController {
    /// A pod matters to the Services that select it before or after the change.
    fn observe_pod(&mut self, namespace: &str, kind: EventType, object: &[u8]) {
        let Some(change) = self.pods.apply(namespace, kind, object) else {
            return;
        };
        let new = self.pods.get(&change.key);
        let label_sets: Vec<&Value> = [change.old.as_ref(), new]
            .into_iter()
            .flatten()
            .map(meta::labels)
            .collect();
        for svc in self.services.in_namespace(namespace) {
            let Some(selector) = meta::map_selector(&svc["spec"]["selector"]) else {
                continue;
            };
            if label_sets.iter().any(|l| selector.matches(l)) {
                self.queue.add(meta::key(svc));
            }
        }
    }

    /// Pods on unknown nodes are left out and zones come from nodes: a node
    /// appearing, going or moving zone sends every Service for another look.
    fn observe_node(&mut self, kind: EventType, object: &[u8]) {
        let Ok(node) = serde_json::from_slice::<Value>(object) else {
            return;
        };
        let name = objects::name(&node).to_string();
        let before = self.nodes.get(&name).cloned();
        let after = match kind {
            EventType::Deleted => None,
            _ => Some(meta::label(&node, ZONE).map(String::from)),
        };
        if before == after {
            return;
        }
        match after {
            Some(zone) => self.nodes.insert(name, zone),
            None => self.nodes.remove(&name),
        };
        for (key, _) in self.services.iter() {
            self.queue.add(key.clone());
        }
    }

    /// Brings one Service's slices up to date; true to retry.
    fn sync(&self, client: &Client, key: &ObjectKey) -> bool {
        // A Service that is gone takes its slices along through their owner reference.
        let Some(svc) = self.services.get(key) else {
            return false;
        };
        let existing: Vec<&Value> = self
            .slices_of
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|name| self.slices.get(&(key.0.clone(), name.clone())))
            .collect();
        let selector = meta::map_selector(&svc["spec"]["selector"])
            .filter(|_| svc["spec"]["type"] != "ExternalName");
        let plan = match selector {
            None => SlicePlan {
                delete: existing.into_iter().cloned().collect(),
                ..Default::default()
            },
            Some(selector) => {
                let selected: Vec<&Value> = self
                    .pods
                    .in_namespace(&key.0)
                    .filter(|p| selector.matches(meta::labels(p)))
                    .collect();
                plan_service(svc, &selected, &self.nodes, &existing, MAX_ENDPOINTS)
            }
        };
        plan.execute(client, &key.0)
    }
}

/// The Service a slice was made for, when this controller made it.
fn managed_slice_of(slice: &Value) -> Option<&str> {
    (meta::label(slice, MANAGED_BY) == Some(CONTROLLER_NAME))
        .then(|| meta::label(slice, SERVICE_NAME))
        .flatten()
}

/// Writes that bring a Service's slices to where they should be.
#[derive(Debug, Default)]
struct SlicePlan {
    create: Vec<Value>,
    update: Vec<Value>,
    delete: Vec<Value>,
}

impl SlicePlan {
    /// Creates and updates before deletes, as the real controller orders them, so
    /// endpoints never vanish in between.
    fn execute(self, client: &Client, ns: &str) -> bool {
        let outcomes = self
            .create
            .into_iter()
            .map(|s| client.create(Kind::EndpointSlice, ns, s))
            .chain(
                self.update
                    .into_iter()
                    .map(|s| client.update(Kind::EndpointSlice, s, Subresource::Main)),
            )
            .chain(
                self.delete
                    .iter()
                    .map(|s| client.delete(Kind::EndpointSlice, s)),
            );
        let mut retry = false;
        for outcome in outcomes {
            retry |= matches!(outcome, Outcome::Retry);
        }
        retry
    }

    fn merge(&mut self, other: SlicePlan) {
        self.create.extend(other.create);
        self.update.extend(other.update);
        self.delete.extend(other.delete);
    }
}

/// The address types of a Service: its IP families, else the family of its
/// cluster IP, else (headless, not yet defaulted) both.
fn address_types(svc: &Value) -> Vec<&'static str> {
    let families: Vec<&'static str> = objects::string_list(&svc["spec"]["ipFamilies"])
        .iter()
        .filter_map(|f| ["IPv4", "IPv6"].into_iter().find(|t| t == f))
        .collect();
    if !families.is_empty() {
        return families;
    }
    match svc["spec"]["clusterIP"]
        .as_str()
        .and_then(|ip| ip.parse::<IpAddr>().ok())
    {
        Some(ip) => vec![family_of(&ip)],
        None => vec!["IPv4", "IPv6"],
    }
}

/// Everything to write for one Service.
fn plan_service(
    svc: &Value,
    selected: &[&Value],
    nodes: &BTreeMap<String, Option<String>>,
    existing: &[&Value],
    max: usize,
) -> SlicePlan {
    let types = address_types(svc);
    let mut plan = SlicePlan::default();
    for slice in existing {
        if !types.iter().any(|t| slice["addressType"] == *t) {
            plan.delete.push((*slice).clone());
        }
    }
    for address_type in types {
        let mine: Vec<&Value> = existing
            .iter()
            .copied()
            .filter(|s| s["addressType"] == address_type)
            .collect();
        let desired = desired_endpoints(svc, selected, nodes, address_type);
        plan.merge(plan_address_type(svc, address_type, mine, desired, max));
    }
    reuse_deleted_slices(svc, &mut plan);
    plan
}

/// The endpoints a Service should have of one address type, grouped by the ports
/// they resolve to (pods can name their ports differently), by endpoint identity.
type Desired = BTreeMap<PortKey, (Vec<Value>, BTreeMap<String, Value>)>;
type PortKey = Vec<(String, i64, String, String)>;

fn desired_endpoints(
    svc: &Value,
    selected: &[&Value],
    nodes: &BTreeMap<String, Option<String>>,
    address_type: &str,
) -> Desired {
    let mut desired = Desired::new();
    let publish_not_ready = svc["spec"]["publishNotReadyAddresses"] == true;
    for pod in selected {
        if pods::is_terminal(pod) || pods::ips(pod).is_empty() {
            continue;
        }
        let ports = endpoint_ports(svc, pod);
        let group = desired
            .entry(port_key(&ports))
            .or_insert_with(|| (ports, BTreeMap::new()));
        let zone = match nodes.get(pods::node_name(pod)) {
            Some(zone) => zone.as_deref(),
            None if publish_not_ready => None,
            None => continue,
        };
        if let Some(ep) = endpoint(svc, pod, address_type, zone) {
            group.1.insert(endpoint_id(&ep), ep);
        }
    }
    desired
}

/// The slices of one address type: each port group reconciled on its own; slices
/// of port groups no longer wanted go; a placeholder when nothing else is left.
fn plan_address_type(
    svc: &Value,
    address_type: &str,
    mine: Vec<&Value>,
    desired: Desired,
    max: usize,
) -> SlicePlan {
    let mut plan = SlicePlan::default();
    let mut by_ports: BTreeMap<PortKey, Vec<&Value>> = BTreeMap::new();
    for slice in &mine {
        if meta::controlled_by(slice, svc) {
            let ports = slice["ports"].as_array().cloned().unwrap_or_default();
            by_ports.entry(port_key(&ports)).or_default().push(slice);
        } else {
            plan.delete.push((*slice).clone());
        }
    }
    for (key, (ports, endpoints)) in desired {
        let existing = by_ports.remove(&key).unwrap_or_default();
        let group = plan_port_group(svc, address_type, &ports, existing, endpoints, max);
        plan.merge(group);
    }
    plan.delete
        .extend(by_ports.into_values().flatten().cloned());
    if plan.delete.len() == mine.len() && plan.create.is_empty() {
        keep_or_make_placeholder(svc, address_type, &mut plan);
    }
    plan
}

/// With no slices left of an address type, one empty slice stands in for them;
/// an existing empty one is kept rather than deleted and made again.
fn keep_or_make_placeholder(svc: &Value, address_type: &str, plan: &mut SlicePlan) {
    let placeholder = new_slice(svc, address_type, &[], Vec::new());
    let is_placeholder = |s: &Value| {
        meta::controlled_by(s, svc)
            && s["endpoints"].as_array().is_none_or(Vec::is_empty)
            && s["ports"].as_array().is_none_or(Vec::is_empty)
    };
    if plan.delete.len() == 1 && is_placeholder(&plan.delete[0]) {
        let kept = plan.delete.pop().expect("checked above");
        if meta::labels(&kept) != meta::labels(&placeholder) {
            plan.update.push(with_labels(kept, svc));
        }
        return;
    }
    plan.create.push(placeholder);
}

/// `reconcileByPortMapping`: keeps the endpoints existing slices already hold
/// (updated where they changed), drops those no longer wanted, then places the new
/// ones: into slices being updated anyway (fullest first), then into the unchanged
/// slice they fit best, then into new slices.
fn plan_port_group(
    svc: &Value,
    address_type: &str,
    ports: &[Value],
    existing: Vec<&Value>,
    mut wanted: BTreeMap<String, Value>,
    max: usize,
) -> SlicePlan {
    let mut plan = SlicePlan::default();
    let mut updated: Vec<Value> = Vec::new();
    let mut unchanged: Vec<&Value> = Vec::new();
    let labels = slice_labels(svc);
    for slice in existing {
        let had = slice["endpoints"].as_array().cloned().unwrap_or_default();
        let kept: Vec<Value> = had
            .iter()
            .filter_map(|ep| wanted.remove(&endpoint_id(ep)))
            .collect();
        let changed = kept.len() != had.len() || kept.iter().zip(&had).any(|(k, h)| k != h);
        if changed && kept.is_empty() {
            plan.delete.push(slice.clone());
        } else if changed || *meta::labels(slice) != labels {
            let mut s = with_labels(slice.clone(), svc);
            s["endpoints"] = Value::Array(kept);
            updated.push(s);
        } else {
            unchanged.push(slice);
        }
    }
    updated.sort_by_key(|s| Reverse(endpoint_count(s)));
    for slice in &mut updated {
        fill(slice, &mut wanted, max);
    }
    while !wanted.is_empty() {
        let target = (wanted.len() < max)
            .then(|| slice_to_fill(&unchanged, wanted.len(), max))
            .flatten();
        let mut slice = match target {
            Some(i) => unchanged.remove(i).clone(),
            None => new_slice(svc, address_type, ports, Vec::new()),
        };
        fill(&mut slice, &mut wanted, max);
        if objects::name(&slice).is_empty() {
            plan.create.push(slice);
        } else {
            updated.push(slice);
        }
    }
    plan.update.extend(updated);
    plan
}

/// Moves endpoints from `wanted` into `slice` until it holds `max`.
fn fill(slice: &mut Value, wanted: &mut BTreeMap<String, Value>, max: usize) {
    let mut endpoints = slice["endpoints"].as_array().cloned().unwrap_or_default();
    while endpoints.len() < max {
        let Some((_, ep)) = wanted.pop_first() else {
            break;
        };
        endpoints.push(ep);
    }
    slice["endpoints"] = Value::Array(endpoints);
}

fn endpoint_count(slice: &Value) -> usize {
    slice["endpoints"].as_array().map_or(0, Vec::len)
}

/// `getSliceToFill`: the unchanged slice that `n` more endpoints fill most closely.
fn slice_to_fill(slices: &[&Value], n: usize, max: usize) -> Option<usize> {
    slices
        .iter()
        .enumerate()
        .filter(|(_, s)| endpoint_count(s) + n <= max)
        .min_by_key(|(_, s)| max - (endpoint_count(s) + n))
        .map(|(i, _)| i)
}

/// Finalizing: a slice about to be created takes the place of one about to be
/// deleted (same address type, same owner), so the change is one update.
fn reuse_deleted_slices(svc: &Value, plan: &mut SlicePlan) {
    let mut i = 0;
    while i < plan.delete.len() && !plan.create.is_empty() {
        let old = &plan.delete[i];
        let new = plan.create.last().expect("checked above");
        if old["addressType"] != new["addressType"] || !meta::controlled_by(old, svc) {
            i += 1;
            continue;
        }
        let new = plan.create.pop().expect("checked above");
        let mut reused = with_labels(plan.delete.remove(i), svc);
        reused["endpoints"] = new["endpoints"].clone();
        match new.get("ports") {
            Some(p) => reused["ports"] = p.clone(),
            None => {
                reused.as_object_mut().map(|o| o.remove("ports"));
            }
        }
        plan.update.push(reused);
    }
}

/// The labels of a Service's slices: the Service's own (minus the reserved ones),
/// the headless marker, the service name and this controller's name.
fn slice_labels(svc: &Value) -> Value {
    let mut labels: Map<String, Value> = meta::labels(svc)
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| ![SERVICE_NAME, MANAGED_BY, HEADLESS].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap_or_default();
    if cluster_ip.is_empty() || cluster_ip == "None" {
        labels.insert(HEADLESS.into(), json!(""));
    }
    labels.insert(SERVICE_NAME.into(), json!(objects::name(svc)));
    labels.insert(MANAGED_BY.into(), json!(CONTROLLER_NAME));
    Value::Object(labels)
}

fn with_labels(mut slice: Value, svc: &Value) -> Value {
    slice["metadata"]["labels"] = slice_labels(svc);
    slice
}

/// A new slice (`newEndpointSlice`): named after the Service by generateName and
/// owned by it.
fn new_slice(svc: &Value, address_type: &str, ports: &[Value], endpoints: Vec<Value>) -> Value {
    let mut slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": format!("{}-", objects::name(svc)),
            "namespace": objects::namespace(svc),
            "labels": slice_labels(svc),
            "ownerReferences": [meta::controller_ref_to(svc, "v1", "Service")],
        },
        "addressType": address_type,
        "endpoints": endpoints,
    });
    if !ports.is_empty() {
        slice["ports"] = json!(ports);
    }
    slice
}

/// The Service's ports as one pod serves them (`getEndpointPorts`): a named
/// targetPort is looked up among the pod's container ports (and sidecars'); a
/// port the pod does not have is left out.
fn endpoint_ports(svc: &Value, pod: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for sp in svc["spec"]["ports"].as_array().into_iter().flatten() {
        let protocol = sp["protocol"].as_str().unwrap_or("TCP");
        let port = match &sp["targetPort"] {
            Value::String(name) => container_port(pod, name, protocol),
            Value::Number(n) => n.as_i64(),
            _ => sp["port"].as_i64(),
        };
        let Some(port) = port else {
            continue;
        };
        let mut p = json!({"name": sp["name"].as_str().unwrap_or_default(), "port": port, "protocol": protocol});
        if let Some(app) = sp.get("appProtocol").filter(|a| a.is_string()) {
            p["appProtocol"] = app.clone();
        }
        out.push(p);
    }
    out
}

/// `podutil.FindPort` for a named port.
fn container_port(pod: &Value, name: &str, protocol: &str) -> Option<i64> {
    let spec = &pod["spec"];
    let sidecars = spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["restartPolicy"] == "Always");
    spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(sidecars)
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == name && p["protocol"].as_str().unwrap_or("TCP") == protocol)
        .and_then(|p| p["containerPort"].as_i64())
}

/// Ports compared as a set, as `NewPortMapKey` hashes them.
fn port_key(ports: &[Value]) -> PortKey {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut key: PortKey = ports
        .iter()
        .map(|p| {
            (
                text(&p["name"]),
                p["port"].as_i64().unwrap_or(0),
                text(&p["protocol"]),
                text(&p["appProtocol"]),
            )
        })
        .collect();
    key.sort();
    key
}

/// The pod as an endpoint of `address_type` (`podToEndpoint`); `None` when the
/// pod has no address of that family.
fn endpoint(svc: &Value, pod: &Value, address_type: &str, zone: Option<&str>) -> Option<Value> {
    let addresses: Vec<String> = pods::ips(pod)
        .into_iter()
        .filter(|ip| {
            ip.parse::<IpAddr>()
                .is_ok_and(|ip| family_of(&ip) == address_type)
        })
        .collect();
    if addresses.is_empty() {
        return None;
    }
    let serving = pods::is_ready(pod);
    let terminating = pods::is_deleting(pod);
    // A terminating pod is never ready, unless not-ready addresses are published.
    let ready = svc["spec"]["publishNotReadyAddresses"] == true || (serving && !terminating);
    let mut ep = json!({
        "addresses": addresses,
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": {
            "kind": "Pod",
            "namespace": objects::namespace(pod),
            "name": objects::name(pod),
            "uid": objects::uid(pod),
        },
    });
    let node = pods::node_name(pod);
    if !node.is_empty() {
        ep["nodeName"] = json!(node);
    }
    if let Some(zone) = zone {
        ep["zone"] = json!(zone);
    }
    // `ShouldSetHostname`: the pod's hostname names it under the Service that is
    // its subdomain (a StatefulSet's governing Service).
    let hostname = pod["spec"]["hostname"].as_str().unwrap_or_default();
    if !hostname.is_empty() && pod["spec"]["subdomain"] == svc["metadata"]["name"] {
        ep["hostname"] = json!(hostname);
    }
    Some(ep)
}

/// What makes an endpoint the same endpoint: its pod, addresses and hostname.
fn endpoint_id(ep: &Value) -> String {
    let r = &ep["targetRef"];
    format!(
        "{}/{}|{}|{}",
        r["namespace"].as_str().unwrap_or_default(),
        r["name"].as_str().unwrap_or_default(),
        objects::string_list(&ep["addresses"]).join(","),
        ep["hostname"].as_str().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::typed;

    fn service(extra: Value) -> Value {
        let mut svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "demo", "uid": "svc-1", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"],
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"}]},
        });
        json_patch::merge(&mut svc, &extra);
        svc
    }

    fn pod(name: &str, ips: &[&str], ready: bool) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "demo", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIPs": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        })
    }

    fn nodes() -> BTreeMap<String, Option<String>> {
        BTreeMap::from([("n1".to_string(), Some("zone-a".to_string()))])
    }

    /// The plan applied to the existing slices, as the store would hold them.
    fn apply(plan: SlicePlan, mut existing: Vec<Value>) -> Vec<Value> {
        let deleted: Vec<&str> = plan.delete.iter().map(objects::name).collect();
        existing.retain(|s| !deleted.contains(&objects::name(s)));
        for u in plan.update {
            let i = existing
                .iter()
                .position(|s| objects::name(s) == objects::name(&u))
                .unwrap();
            existing[i] = u;
        }
        for (n, mut c) in plan.create.into_iter().enumerate() {
            c["metadata"]["name"] = json!(format!("web-new{n}-{}", existing.len()));
            existing.push(c);
        }
        existing
    }

    #[test]
    fn a_slice_lists_ready_pods_with_resolved_ports() {
        let svc = service(json!({}));
        let (a, b) = (
            pod("a", &["10.244.0.2"], true),
            pod("b", &["10.244.0.3"], false),
        );
        let plan = plan_service(&svc, &[&a, &b], &nodes(), &[], 100);
        assert_eq!(
            (plan.create.len(), plan.update.len(), plan.delete.len()),
            (1, 0, 0)
        );
        let slice = &plan.create[0];
        assert_eq!(slice["metadata"]["generateName"], "web-");
        assert_eq!(
            slice["metadata"]["labels"],
            json!({"team": "a", SERVICE_NAME: "web", MANAGED_BY: CONTROLLER_NAME})
        );
        assert_eq!(
            slice["metadata"]["ownerReferences"][0],
            json!({"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "svc-1", "controller": true, "blockOwnerDeletion": true})
        );
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(
            slice["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}])
        );
        let eps = slice["endpoints"].as_array().unwrap();
        assert_eq!(eps[0]["addresses"], json!(["10.244.0.2"]));
        assert_eq!(
            eps[0]["conditions"],
            json!({"ready": true, "serving": true, "terminating": false})
        );
        assert_eq!(eps[0]["nodeName"], "n1");
        assert_eq!(eps[0]["zone"], "zone-a");
        assert_eq!(
            eps[0]["targetRef"],
            json!({"kind": "Pod", "namespace": "demo", "name": "a", "uid": "uid-a"})
        );
        assert_eq!(eps[1]["conditions"]["ready"], false);
        let decoded = typed::decode("discovery.k8s.io", "EndpointSlice", slice)
            .unwrap()
            .unwrap();
        assert_eq!(
            &decoded.object, slice,
            "stored as built, so comparisons hold"
        );
    }

    #[test]
    fn membership_changes_update_in_place_and_nothing_changes_twice() {
        let svc = service(json!({}));
        let pods: Vec<Value> = (0..3)
            .map(|i| pod(&format!("p{i}"), &[&format!("10.244.0.{}", i + 2)], true))
            .collect();
        let refs: Vec<&Value> = pods.iter().collect();
        let slices = apply(plan_service(&svc, &refs, &nodes(), &[], 100), Vec::new());
        let current: Vec<&Value> = slices.iter().collect();
        let again = plan_service(&svc, &refs, &nodes(), &current, 100);
        assert!(again.create.is_empty() && again.update.is_empty() && again.delete.is_empty());
        let fewer = plan_service(&svc, &refs[..1], &nodes(), &current, 100);
        assert_eq!(
            (fewer.create.len(), fewer.update.len(), fewer.delete.len()),
            (0, 1, 0)
        );
        assert_eq!(endpoint_count(&fewer.update[0]), 1);
        assert_eq!(objects::name(&fewer.update[0]), objects::name(&slices[0]));
    }

    #[test]
    fn no_endpoints_leave_one_placeholder_that_is_reused() {
        let svc = service(json!({}));
        let a = pod("a", &["10.244.0.2"], true);
        let slices = apply(plan_service(&svc, &[&a], &nodes(), &[], 100), Vec::new());
        let current: Vec<&Value> = slices.iter().collect();
        let none = plan_service(&svc, &[], &nodes(), &current, 100);
        assert_eq!(
            (none.create.len(), none.update.len(), none.delete.len()),
            (0, 1, 0),
            "{none:?}"
        );
        assert_eq!(endpoint_count(&none.update[0]), 0);
        assert!(none.update[0].get("ports").is_none());
        let slices = apply(none, slices);
        let current: Vec<&Value> = slices.iter().collect();
        let settled = plan_service(&svc, &[], &nodes(), &current, 100);
        assert!(
            settled.create.is_empty() && settled.update.is_empty() && settled.delete.is_empty()
        );
    }

    #[test]
    fn slices_hold_at_most_max_endpoints() {
        let svc = service(json!({}));
        let pods: Vec<Value> = (0..7)
            .map(|i| pod(&format!("p{i}"), &[&format!("10.244.0.{}", i + 2)], true))
            .collect();
        let refs: Vec<&Value> = pods.iter().collect();
        let plan = plan_service(&svc, &refs, &nodes(), &[], 3);
        let sizes: Vec<usize> = plan.create.iter().map(endpoint_count).collect();
        assert_eq!(sizes, [3, 3, 1]);
    }

    #[test]
    fn dual_stack_services_get_a_slice_per_family() {
        let svc = service(json!({"spec": {"ipFamilies": ["IPv4", "IPv6"]}}));
        let a = pod("a", &["10.244.0.2", "fd00:10:244::2"], true);
        let plan = plan_service(&svc, &[&a], &nodes(), &[], 100);
        let types: Vec<&str> = plan
            .create
            .iter()
            .map(|s| s["addressType"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["IPv4", "IPv6"]);
        assert_eq!(
            plan.create[1]["endpoints"][0]["addresses"],
            json!(["fd00:10:244::2"])
        );
    }

    #[test]
    fn headless_statefulset_pods_get_hostnames() {
        let svc = service(
            json!({"spec": {"clusterIP": "None", "ports": [{"name": "", "port": 80, "targetPort": 80, "protocol": "TCP"}]}}),
        );
        let mut a = pod("web-0", &["10.244.0.2"], true);
        a["spec"]["hostname"] = json!("web-0");
        a["spec"]["subdomain"] = json!("web");
        let mut b = pod("other", &["10.244.0.3"], true);
        b["spec"]["hostname"] = json!("other");
        b["spec"]["subdomain"] = json!("elsewhere");
        let plan = plan_service(&svc, &[&a, &b], &nodes(), &[], 100);
        let slice = &plan.create[0];
        assert_eq!(slice["metadata"]["labels"][HEADLESS], "");
        assert_eq!(slice["endpoints"][1]["hostname"], "web-0");
        assert!(slice["endpoints"][0].get("hostname").is_none());
        assert_eq!(
            slice["ports"],
            json!([{"name": "", "port": 80, "protocol": "TCP"}])
        );
    }

    #[test]
    fn terminating_and_unscheduled_pods() {
        let svc = service(json!({}));
        let mut going = pod("a", &["10.244.0.2"], true);
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut lost = pod("b", &["10.244.0.3"], true);
        lost["spec"]["nodeName"] = json!("gone");
        let plan = plan_service(&svc, &[&going, &lost], &nodes(), &[], 100);
        let eps = plan.create[0]["endpoints"].as_array().unwrap();
        assert_eq!(eps.len(), 1, "pods on unknown nodes are left out");
        assert_eq!(
            eps[0]["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
        let published = service(json!({"spec": {"publishNotReadyAddresses": true}}));
        let plan = plan_service(&published, &[&going, &lost], &nodes(), &[], 100);
        let eps = plan.create[0]["endpoints"].as_array().unwrap();
        assert_eq!(eps.len(), 2);
        assert!(eps.iter().all(|e| e["conditions"]["ready"] == true));
    }
}
