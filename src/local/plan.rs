//! Which clusters a local clusterset has, and their address ranges and IDs.

use anyhow::Context;
use ipnet::IpNet;
use serde_json::{json, Value};

use crate::apiserver::resources::WriteOptions;
use crate::apiserver::ApiServer;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IpFamily {
    Ipv4,
    Ipv6,
    Dual,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Hub,
    Member,
}

#[derive(Clone, Debug)]
pub struct ClusterPlan {
    pub name: String,
    pub role: Role,
    /// The member's cluster ID; the hub has none.
    pub cluster_id: Option<String>,
    pub pod_cidrs: Vec<IpNet>,
    pub service_cidrs: Vec<IpNet>,
}

/// The hub and `members` members. Member i gets pods in 10.i.0.0/16 and services in
/// 10.(100+i).0.0/16 (fd00:10:i::/64 and fd00:100:i::/112 for IPv6), so addresses
/// tell which cluster they belong to.
pub fn plan(members: usize, family: IpFamily) -> Vec<ClusterPlan> {
    let mut clusters = vec![ClusterPlan {
        name: "hub".into(),
        role: Role::Hub,
        cluster_id: None,
        pod_cidrs: Vec::new(),
        service_cidrs: ranges(family, "10.100.0.0/16", "fd00:100::/112"),
    }];
    for i in 1..=members {
        let name = format!("member-{i}");
        clusters.push(ClusterPlan {
            cluster_id: Some(name.clone()),
            name,
            role: Role::Member,
            pod_cidrs: ranges(
                family,
                &format!("10.{i}.0.0/16"),
                &format!("fd00:10:{i:x}::/64"),
            ),
            service_cidrs: ranges(
                family,
                &format!("10.{}.0.0/16", 100 + i),
                &format!("fd00:100:{i:x}::/112"),
            ),
        });
    }
    clusters
}

fn ranges(family: IpFamily, v4: &str, v6: &str) -> Vec<IpNet> {
    let (v4, v6) = (
        v4.parse().expect("valid CIDR"),
        v6.parse().expect("valid CIDR"),
    );
    match family {
        IpFamily::Ipv4 => vec![v4],
        IpFamily::Ipv6 => vec![v6],
        IpFamily::Dual => vec![v4, v6],
    }
}

impl ClusterPlan {
    /// The cluster's entry in local.json.
    pub fn describe(&self, server: &str, dns: Option<std::net::SocketAddr>) -> Value {
        let strings = |nets: &[IpNet]| nets.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        json!({
            "name": self.name,
            "role": match self.role { Role::Hub => "hub", Role::Member => "member" },
            "context": self.name,
            "server": server,
            "clusterId": self.cluster_id,
            "podCIDRs": strings(&self.pod_cidrs),
            "serviceCIDRs": strings(&self.service_cidrs),
            // The member's clusterset.local server (UDP and TCP); null for the hub.
            "dns": dns.map(|a| a.to_string()),
        })
    }
}

/// Installs the project's CRDs and, on members, the ClusterProperty holding the
/// cluster ID. Idempotent, so a restart from a data directory finds them in place.
pub fn prepare(server: &ApiServer, plan: &ClusterPlan, crds: &[Value]) -> anyhow::Result<()> {
    let state = &server.state;
    let crd_type = state
        .registry
        .find_kind("apiextensions.k8s.io", "CustomResourceDefinition")
        .expect("CRDs are built in");
    let opts = WriteOptions {
        manager: "clusterset-local".into(),
        ..Default::default()
    };
    for crd in crds {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        if state.store.get(&crd_type.gr(), "", name).is_none() {
            state
                .create(&crd_type, "", crd.clone(), &opts)
                .map_err(|e| anyhow::anyhow!("CRD {name}: {e}"))?;
        }
    }
    let Some(id) = &plan.cluster_id else {
        return Ok(());
    };
    let property = state
        .registry
        .find_kind("about.k8s.io", "ClusterProperty")
        .expect("just installed");
    if state
        .store
        .get(&property.gr(), "", crate::api::about::CLUSTER_ID)
        .is_none()
    {
        let obj = json!({
            "apiVersion": "about.k8s.io/v1beta1", "kind": "ClusterProperty",
            "metadata": {"name": crate::api::about::CLUSTER_ID},
            "spec": {"value": id},
        });
        state
            .create(&property, "", obj, &opts)
            .map_err(|e| anyhow::anyhow!("cluster ID: {e}"))?;
    }
    Ok(())
}

/// The CRDs every cluster gets: the generated ones, or, with `upstream`, the upstream
/// files there for every kind they define and the generated ones for the rest.
pub fn crds(upstream: Option<&std::path::Path>) -> anyhow::Result<Vec<Value>> {
    let mut crds: Vec<Value> = crate::api::crds()
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    let Some(dir) = upstream else {
        return Ok(crds);
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let crd: Value = serde::Deserialize::deserialize(doc)
                .with_context(|| format!("{} is not YAML", file.display()))?;
            if crd["kind"] != "CustomResourceDefinition" {
                continue;
            }
            crds.retain(|c| c["metadata"]["name"] != crd["metadata"]["name"]);
            crds.push(crd);
        }
    }
    Ok(crds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_get_distinct_ranges_per_family() {
        let p = plan(3, IpFamily::Dual);
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].role, Role::Hub);
        assert_eq!(p[1].pod_cidrs[0].to_string(), "10.1.0.0/16");
        assert_eq!(p[1].service_cidrs[0].to_string(), "10.101.0.0/16");
        assert_eq!(p[3].pod_cidrs[1].to_string(), "fd00:10:3::/64");
        assert_eq!(p[2].cluster_id.as_deref(), Some("member-2"));
        let v6 = plan(1, IpFamily::Ipv6);
        assert!(v6[1].service_cidrs[0].addr().is_ipv6());
    }
}
