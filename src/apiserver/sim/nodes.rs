//! Nodes: the simulated kubelets register `<cluster>-node-1..N` with their capacity,
//! addresses and Ready condition, and the node IPAM controller gives every Node a
//! slice of the pod CIDR (`spec.podCIDRs`) that the kubelet hands pod IPs out of.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Value};

use super::cache::Objects;
use super::client::{Client, Kind, Outcome};
use super::hash::digest;
use super::SimConfig;
use crate::apiserver::controllers::Follower;
use crate::apiserver::objects::now;
use crate::apiserver::resources::State;
use crate::apiserver::store::{EventType, GroupResource};

pub const KUBELET_VERSION: &str = "v1.33.0";

pub(crate) struct NodeController {
    config: SimConfig,
    nodes: Objects,
    dirty: bool,
    retry: bool,
}

impl NodeController {
    pub fn new(config: SimConfig) -> Self {
        NodeController {
            config,
            nodes: Objects::default(),
            dirty: true,
            retry: false,
        }
    }

    fn node_name(&self, i: usize) -> String {
        format!("{}-node-{i}", self.config.cluster_name)
    }

    /// Registers missing nodes and brings the status of registered ones back to
    /// what their kubelet reports.
    fn register(&mut self, client: &Client, subnets: &mut Subnets) {
        for i in 1..=self.config.nodes {
            let name = self.node_name(i);
            let existing = self.nodes.get(&(String::new(), name.clone()));
            let outcome = match existing {
                None => {
                    let Some(cidrs) = subnets.take(&self.config.pod_cidrs, i - 1) else {
                        tracing::warn!(node = %name, "the pod CIDR has no room for another node");
                        continue;
                    };
                    let node = node_object(&name, &cidrs);
                    match client.create(Kind::Node, "", node) {
                        Outcome::Done(node) => {
                            let status = node_status(&self.config, i, &Value::Null, &now());
                            client.put_status(Kind::Node, &node, status)
                        }
                        other => other,
                    }
                }
                Some(node) => {
                    let status = node_status(&self.config, i, &node["status"], &now());
                    if status == node["status"] {
                        continue;
                    }
                    client.put_status(Kind::Node, node, status)
                }
            };
            self.retry |= matches!(outcome, Outcome::Retry);
        }
    }

    /// The node IPAM controller: every Node without pod CIDRs gets some.
    fn assign_pod_cidrs(&mut self, client: &Client, subnets: &mut Subnets) {
        for node in self.nodes.values() {
            if node["spec"]["podCIDRs"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
            {
                continue;
            }
            let Some(cidrs) = subnets.take(&self.config.pod_cidrs, 0) else {
                continue;
            };
            let patch =
                json!({"spec": {"podCIDR": cidrs[0].to_string(), "podCIDRs": strings(&cidrs)}});
            self.retry |= matches!(client.patch(Kind::Node, node, patch), Outcome::Retry);
        }
    }
}

impl Follower for NodeController {
    fn observe(&mut self, gr: &GroupResource, namespace: &str, kind: EventType, object: &[u8]) {
        if gr.group.is_empty() && gr.resource == "nodes" {
            self.nodes.apply(namespace, kind, object);
            self.dirty = true;
        }
    }

    fn reconcile(&mut self, state: &State) {
        if !std::mem::take(&mut self.dirty) && !std::mem::take(&mut self.retry) {
            return;
        }
        let mut subnets = Subnets::in_use(&self.nodes);
        self.register(&Client::new(state, "kubelet"), &mut subnets);
        self.assign_pod_cidrs(&Client::new(state, "kube-controller-manager"), &mut subnets);
    }

    fn wants_retry(&self) -> bool {
        self.retry
    }
}

fn strings(cidrs: &[IpNet]) -> Vec<String> {
    cidrs.iter().map(ToString::to_string).collect()
}

/// Node subnets of the pod CIDRs, by index: the i-th subnet of every family.
struct Subnets {
    /// Primary-family subnets already held by a node.
    used: BTreeSet<IpNet>,
}

impl Subnets {
    fn in_use(nodes: &Objects) -> Self {
        let used = nodes
            .values()
            .filter_map(|n| n["spec"]["podCIDRs"][0].as_str())
            .filter_map(|c| c.parse().ok())
            .collect();
        Subnets { used }
    }

    /// The first free subnets, trying index `preferred` first.
    fn take(&mut self, pod_cidrs: &[IpNet], preferred: usize) -> Option<Vec<IpNet>> {
        let primary = pod_cidrs.first()?;
        let count = subnet_count(primary);
        let index = std::iter::once(preferred)
            .chain(0..count)
            .filter(|i| *i < count)
            .find(|i| node_subnet(primary, *i).is_some_and(|s| !self.used.contains(&s)))?;
        let cidrs: Vec<IpNet> = pod_cidrs
            .iter()
            .map(|c| node_subnet(c, index))
            .collect::<Option<_>>()?;
        self.used.insert(cidrs[0]);
        Some(cidrs)
    }
}

/// The prefix length of node subnets: /24 and /64 as kube-controller-manager's
/// defaults, smaller when the pod CIDR is too small to hold a few of those.
fn node_mask(cidr: &IpNet) -> u8 {
    let default = if cidr.addr().is_ipv4() { 24 } else { 64 };
    default
        .max(cidr.prefix_len() + 4)
        .min(cidr.max_prefix_len() - 2)
        .max(cidr.prefix_len())
}

fn subnet_count(cidr: &IpNet) -> usize {
    let bits = u32::from(node_mask(cidr) - cidr.prefix_len()).min(16);
    1 << bits
}

/// The `index`-th node subnet of `cidr`.
pub fn node_subnet(cidr: &IpNet, index: usize) -> Option<IpNet> {
    cidr.trunc().subnets(node_mask(cidr)).ok()?.nth(index)
}

/// The number at the end of the cluster's name (`member-2` → 2), which picks the
/// node address range; 0 without one.
fn cluster_number(cluster: &str) -> u8 {
    let digits: String = cluster
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse::<u32>().map_or(0, |n| (n % 256) as u8)
}

/// The node's InternalIPs, one per pod-CIDR family, primary first: 172.18.<c>.<i+1>
/// and fc00:f853:ccd:<c>::<i+1>, like a kind network.
fn node_ips(config: &SimConfig, i: usize) -> Vec<IpAddr> {
    let c = cluster_number(&config.cluster_name);
    let host = (i + 1) as u16;
    config
        .pod_cidrs
        .iter()
        .map(|cidr| match cidr {
            IpNet::V4(_) => IpAddr::from([172, 18, c, host as u8]),
            IpNet::V6(_) => IpAddr::from([0xfc00, 0xf853, 0x0ccd, u16::from(c), 0, 0, 0, host]),
        })
        .collect()
}

fn node_object(name: &str, cidrs: &[IpNet]) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {
            "podCIDR": cidrs[0].to_string(),
            "podCIDRs": strings(cidrs),
            "providerID": format!("clusterset://{name}"),
        },
    })
}

/// What node `i`'s kubelet reports. Conditions already present are kept as they
/// are: tests mark nodes NotReady through them.
fn node_status(config: &SimConfig, i: usize, current: &Value, now: &str) -> Value {
    let name = format!("{}-node-{i}", config.cluster_name);
    let resources = json!({
        "cpu": config.node_cpu,
        "memory": config.node_memory,
        "pods": config.node_pods.to_string(),
        "ephemeral-storage": "100Gi",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    });
    let mut addresses: Vec<Value> = node_ips(config, i)
        .iter()
        .map(|ip| json!({"type": "InternalIP", "address": ip.to_string()}))
        .collect();
    addresses.push(json!({"type": "Hostname", "address": name}));
    let conditions = match &current["conditions"] {
        Value::Array(c) if !c.is_empty() => Value::Array(c.clone()),
        _ => healthy_conditions(now),
    };
    let id = |what: &str| digest(&format!("{what}/{name}"))[..32].to_string();
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": conditions,
        "addresses": addresses,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": id("machine"),
            "systemUUID": id("system"),
            "bootID": id("boot"),
            "kernelVersion": "6.8.0-clusterset",
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "containerRuntimeVersion": "containerd://1.7.27",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    })
}

fn healthy_conditions(now: &str) -> Value {
    let c = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        })
    };
    json!([
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        c(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::typed;

    #[test]
    fn node_subnets_are_carved_from_the_pod_cidrs() {
        let v4: IpNet = "10.244.0.0/16".parse().unwrap();
        let v6: IpNet = "fd00:10:244::/56".parse().unwrap();
        assert_eq!(node_subnet(&v4, 0).unwrap().to_string(), "10.244.0.0/24");
        assert_eq!(node_subnet(&v4, 2).unwrap().to_string(), "10.244.2.0/24");
        assert_eq!(
            node_subnet(&v6, 1).unwrap().to_string(),
            "fd00:10:244:1::/64"
        );
        let small: IpNet = "10.1.0.0/24".parse().unwrap();
        assert_eq!(node_subnet(&small, 1).unwrap().to_string(), "10.1.0.16/28");
        assert!(node_subnet(&small, 16).is_none());
    }

    #[test]
    fn subnets_are_not_handed_out_twice() {
        let cidrs: Vec<IpNet> = vec!["10.244.0.0/16".parse().unwrap()];
        let mut s = Subnets {
            used: BTreeSet::new(),
        };
        let a = s.take(&cidrs, 1).unwrap();
        assert_eq!(a[0].to_string(), "10.244.1.0/24");
        let b = s.take(&cidrs, 1).unwrap();
        assert_eq!(
            b[0].to_string(),
            "10.244.0.0/24",
            "the preferred one is taken"
        );
    }

    #[test]
    fn node_addresses_follow_the_cluster_number_and_families() {
        let config = SimConfig {
            cluster_name: "member-2".into(),
            pod_cidrs: vec!["fd00::/48".parse().unwrap(), "10.0.0.0/16".parse().unwrap()],
            ..Default::default()
        };
        let ips: Vec<String> = node_ips(&config, 1)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ips, ["fc00:f853:ccd:2::2", "172.18.2.2"]);
        assert_eq!(cluster_number("cluster"), 0);
    }

    #[test]
    fn node_status_is_stored_as_written() {
        let config = SimConfig::default();
        let mut node = node_object("cluster-node-1", &["10.244.0.0/24".parse().unwrap()]);
        node["status"] = node_status(&config, 1, &Value::Null, "2026-01-01T00:00:00Z");
        let decoded = typed::decode("", "Node", &node).unwrap().unwrap();
        assert!(decoded.unknown.is_empty(), "{:?}", decoded.unknown);
        assert_eq!(decoded.object, node);
        let again = node_status(&config, 1, &node["status"], "2026-02-02T00:00:00Z");
        assert_eq!(again, node["status"], "a second look changes nothing");
    }
}
