//! The project's controllers in a local clusterset: the hub controller and one agent
//! per member, each under its own ServiceAccount with the roles in `manifests/`
//! (never as administrator, so a missing permission fails here as on a real cluster).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::Cluster;
use crate::api::records::{hub_namespace, SHARED_NAMESPACE};
use crate::apiserver::resources::WriteOptions;
use crate::apiserver::ApiServer;
use crate::dns::Dns;
use crate::mcs::agent::Agent;
use crate::mcs::hub::Hub;
use crate::mcs::metrics::Metrics;

const HUB_MANIFESTS: [&str; 2] = [
    include_str!("../../manifests/hub/namespaces.yaml"),
    include_str!("../../manifests/hub/rbac.yaml"),
];
const MEMBER_MANIFESTS: [&str; 3] = [
    include_str!("../../manifests/member/namespace.yaml"),
    include_str!("../../manifests/member/rbac.yaml"),
    include_str!("../../manifests/member/dns-rbac.yaml"),
];
/// Where the controllers' ServiceAccounts live, hub and members alike.
const SYSTEM_NAMESPACE: &str = "clusterset-system";
/// Each member's identity on the hub: a ServiceAccount in its own hub namespace.
const MEMBER_HUB_ACCOUNT: &str = "clusterset-agent";
const WORKERS: usize = 8;
/// UDP threads of each member's DNS server: the machine's cores are shared by all.
const DNS_UDP_THREADS: usize = 1;

/// The running controllers; dropping this stops them.
pub struct Controllers {
    pub hub: Arc<Hub>,
    pub agents: Vec<Arc<Agent>>,
    /// Each member's clusterset.local server, by member name.
    pub dns: Vec<(String, Dns)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Controllers {
    /// Installs accounts and roles, starts every controller and waits until all are ready.
    pub async fn start(clusters: &[Cluster]) -> anyhow::Result<Self> {
        let hub_server = &clusters
            .iter()
            .find(|c| c.plan.cluster_id.is_none())
            .context("a local clusterset has a hub")?
            .server;
        for doc in HUB_MANIFESTS {
            apply_manifest(hub_server, doc).context("hub manifests")?;
        }
        let hub = Hub::new(
            hub_server.service_account_client(SYSTEM_NAMESPACE, "clusterset-hub")?,
            Metrics::new("hub"),
            &[],
        );
        let mut tasks = vec![tokio::spawn(hub.clone().run(WORKERS))];
        let mut agents = Vec::new();
        let mut dns = Vec::new();
        for member in clusters.iter().filter(|c| c.plan.cluster_id.is_some()) {
            let id = member.plan.cluster_id.clone().expect("filtered");
            grant_member(hub_server, &id).with_context(|| format!("hub access for {id}"))?;
            for doc in MEMBER_MANIFESTS {
                apply_manifest(&member.server, doc)
                    .with_context(|| format!("manifests of {id}"))?;
            }
            let agent = Agent::new(
                member
                    .server
                    .service_account_client(SYSTEM_NAMESPACE, "clusterset-agent")?,
                hub_server.service_account_client(&hub_namespace(&id), MEMBER_HUB_ACCOUNT)?,
                id.clone(),
                Metrics::new("agent"),
            );
            tasks.push(tokio::spawn(agent.clone().run(WORKERS)));
            agents.push(agent);
            let server = Dns::start(
                member
                    .server
                    .service_account_client(SYSTEM_NAMESPACE, "clusterset-dns")?,
                "127.0.0.1:0".parse().expect("address"),
                crate::dns::DEFAULT_TTL,
                DNS_UDP_THREADS,
            )
            .await
            .with_context(|| format!("DNS server of {id}"))?;
            dns.push((member.plan.name.clone(), server));
        }
        let controllers = Controllers {
            hub,
            agents,
            dns,
            tasks,
        };
        controllers.wait_ready(Duration::from_secs(10)).await?;
        Ok(controllers)
    }

    async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let not_ready: Vec<String> = std::iter::once(self.hub.readiness())
                .chain(self.agents.iter().map(|a| a.readiness()))
                .chain(self.dns.iter().map(|(_, d)| d.source.readiness()))
                .filter_map(Result::err)
                .collect();
            if not_ready.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("controllers not ready: {}", not_ready.join("; "));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The member's hub namespace, its account there, and the two bindings that let it
/// write its own records and read the shared imports: nothing else.
fn grant_member(hub: &ApiServer, id: &str) -> anyhow::Result<()> {
    let ns = hub_namespace(id);
    let subject = json!([{"kind": "ServiceAccount", "name": MEMBER_HUB_ACCOUNT, "namespace": ns}]);
    let objects = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": MEMBER_HUB_ACCOUNT, "namespace": ns}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "clusterset:member", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "clusterset:member"},
            "subjects": subject}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": format!("clusterset:member:{ns}"), "namespace": SHARED_NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "clusterset:member-reader"},
            "subjects": subject}),
    ];
    for object in objects {
        create_if_absent(hub, object)?;
    }
    Ok(())
}

/// Creates every object of a YAML manifest that is not there yet (so a restart from
/// a data directory finds them in place). Deployments and Services are left out: here
/// the controllers and DNS servers run inside this process.
fn apply_manifest(server: &ApiServer, yaml: &str) -> anyhow::Result<()> {
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let object: Value = serde::Deserialize::deserialize(doc)?;
        if object.is_null() || object["kind"] == "Deployment" || object["kind"] == "Service" {
            continue;
        }
        create_if_absent(server, object)?;
    }
    Ok(())
}

fn create_if_absent(server: &ApiServer, object: Value) -> anyhow::Result<()> {
    let state = &server.state;
    let api_version = object["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let rt = state
        .registry
        .find_kind(group, &kind)
        .with_context(|| format!("unknown kind {api_version} {kind}"))?;
    let ns = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if state.store.get(&rt.gr(), &ns, &name).is_some() {
        return Ok(());
    }
    let opts = WriteOptions {
        manager: "clusterset-local".into(),
        ..Default::default()
    };
    state
        .create(&rt, &ns, object, &opts)
        .map_err(|e| anyhow::anyhow!("{kind} {ns}/{name}: {e}"))?;
    Ok(())
}
