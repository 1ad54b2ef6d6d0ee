//! The project's controllers in a local clusterset: the hub controller, registrar
//! and health controller on the hub, and in each member the agent and its DNS
//! server, each under its own ServiceAccount with the roles in `manifests/` (never as
//! administrator, so a missing permission fails here as on a real cluster). Members
//! join through the same flow as real clusters: a bootstrap token, a registration
//! request the hub approves, credentials kept in the member.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

use super::Cluster;
use crate::apiserver::resources::WriteOptions;
use crate::apiserver::ApiServer;
use crate::dns::Dns;
use crate::mcs::hub::Hub;
use crate::mcs::metrics::Metrics;
use crate::membership::health::{Health, HealthConfig};
use crate::membership::join::{self, JoinOptions};
use crate::membership::member::{Member, MemberConfig};
use crate::membership::metrics::MembershipMetrics;
use crate::membership::registrar::{Registrar, RegistrarConfig};
use crate::membership::SYSTEM_NAMESPACE;

const HUB_MANIFESTS: [&str; 2] = [
    include_str!("../../manifests/hub/namespaces.yaml"),
    include_str!("../../manifests/hub/rbac.yaml"),
];
const MEMBER_MANIFESTS: [&str; 3] = [
    include_str!("../../manifests/member/namespace.yaml"),
    include_str!("../../manifests/member/rbac.yaml"),
    include_str!("../../manifests/member/dns-rbac.yaml"),
];
const WORKERS: usize = 8;
/// UDP threads of each member's DNS server: the machine's cores are shared by all.
const DNS_UDP_THREADS: usize = 1;
/// The name a local clusterset goes by in its members' `clusterset.k8s.io` property.
pub const CLUSTERSET_NAME: &str = "local";

/// How the local controllers judge and report health.
#[derive(Clone, Copy, Debug)]
pub struct ControllerOptions {
    pub health: HealthConfig,
    /// How often members renew their heartbeat.
    pub heartbeat: Duration,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            health: HealthConfig::default(),
            heartbeat: MemberConfig::default().heartbeat,
        }
    }
}

/// The running controllers; dropping this stops them.
pub struct Controllers {
    pub hub: Arc<Hub>,
    pub registrar: Arc<Registrar>,
    pub health: Arc<Health>,
    /// Each member's agent side, by member name.
    pub members: Vec<(String, Arc<Member>)>,
    /// Each member's clusterset.local server, by member name.
    pub dns: Vec<(String, Dns)>,
    /// The hub controller, registrar and health controller.
    hub_tasks: Vec<tokio::task::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for task in self.hub_tasks.iter().chain(&self.tasks) {
            task.abort();
        }
    }
}

impl Controllers {
    /// Installs accounts and roles, starts the hub's controllers, joins every member
    /// that has not joined yet, and waits until all are ready.
    pub async fn start(clusters: &[Cluster], opts: &ControllerOptions) -> anyhow::Result<Self> {
        let hub_server = &clusters
            .iter()
            .find(|c| c.plan.cluster_id.is_none())
            .context("a local clusterset has a hub")?
            .server;
        for doc in HUB_MANIFESTS {
            apply_manifest(hub_server, doc).context("hub manifests")?;
        }
        let hub_client = hub_server.service_account_client(SYSTEM_NAMESPACE, "clusterset-hub")?;
        let hub = Hub::new(hub_client.clone(), Metrics::new("hub"), &[]);
        let membership = MembershipMetrics::new(&hub.metrics.registry);
        let health = Health::new(
            hub_client.clone(),
            hub.clone(),
            opts.health,
            membership.clone(),
        );
        let registration = RegistrarConfig {
            auto_approve: true,
            clusterset: CLUSTERSET_NAME.into(),
            ..RegistrarConfig::default()
        };
        let registrar = Registrar::new(hub_client, registration, membership);
        let hub_tasks = vec![
            tokio::spawn(hub.clone().run(WORKERS)),
            tokio::spawn(registrar.clone().run()),
            tokio::spawn(health.clone().run()),
        ];
        let mut tasks = Vec::new();
        let token = join::create_token(&hub_server.client(), Duration::from_secs(3600)).await?;
        let bootstrap = kube::config::Kubeconfig::from_yaml(&hub_server.kubeconfig_yaml("hub"))?;
        let joins = clusters
            .iter()
            .filter(|c| c.plan.cluster_id.is_some())
            .map(|member| start_member(member, &bootstrap, &token, opts));
        let mut members = Vec::new();
        let mut dns = Vec::new();
        for (name, member, server) in futures::future::try_join_all(joins).await? {
            tasks.push(tokio::spawn(member.clone().run()));
            members.push((name.clone(), member));
            dns.push((name, server));
        }
        let controllers = Controllers {
            hub,
            registrar,
            health,
            members,
            dns,
            hub_tasks,
            tasks,
        };
        controllers.wait_ready(Duration::from_secs(10)).await?;
        Ok(controllers)
    }

    /// Stops the hub's controllers (fault injection: a `clusterset hub` process can
    /// take their place); the members' agents and DNS servers go on.
    pub fn stop_hub(&mut self) {
        for task in self.hub_tasks.drain(..) {
            task.abort();
        }
    }

    async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let not_ready: Vec<String> = [
                self.hub.readiness(),
                self.registrar.readiness(),
                self.health.readiness(),
            ]
            .into_iter()
            .chain(self.members.iter().map(|(_, m)| m.readiness()))
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

/// A member added to a running local clusterset, with its agent side and DNS server.
pub struct Joined {
    pub cluster: Cluster,
    pub member: Arc<Member>,
    pub dns: Dns,
    task: tokio::task::JoinHandle<()>,
}

impl Joined {
    /// Joins `cluster` to the hub (with a fresh bootstrap token) and runs its agent
    /// side and DNS server until they are ready.
    pub async fn start(
        cluster: Cluster,
        hub: &ApiServer,
        opts: &ControllerOptions,
    ) -> anyhow::Result<Self> {
        let token = join::create_token(&hub.client(), Duration::from_secs(600)).await?;
        let bootstrap = kube::config::Kubeconfig::from_yaml(&hub.kubeconfig_yaml("hub"))?;
        let (_, member, dns) = start_member(&cluster, &bootstrap, &token, opts).await?;
        let task = tokio::spawn(member.clone().run());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while let Err(why) = member.readiness().and(dns.source.readiness()) {
            if tokio::time::Instant::now() >= deadline {
                bail!("{} not ready: {why}", cluster.plan.name);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Joined {
            cluster,
            member,
            dns,
            task,
        })
    }

    /// Stops its controllers; the cluster is left to shut down.
    pub fn stop(self) -> Cluster {
        self.task.abort();
        self.cluster
    }
}

/// Installs the member's roles, joins it to the hub (unless it already is a member)
/// and starts its DNS server; its agent side is returned to be run.
async fn start_member(
    member: &Cluster,
    bootstrap: &kube::config::Kubeconfig,
    token: &str,
    opts: &ControllerOptions,
) -> anyhow::Result<(String, Arc<Member>, Dns)> {
    let name = member.plan.name.clone();
    for doc in MEMBER_MANIFESTS {
        apply_manifest(&member.server, doc).with_context(|| format!("manifests of {name}"))?;
    }
    let join_opts = JoinOptions {
        name: Some(name.clone()),
        timeout: Duration::from_secs(30),
    };
    join::join(&member.server.client(), bootstrap, token, &join_opts)
        .await
        .with_context(|| format!("{name} cannot join the hub"))?;
    let config = MemberConfig {
        heartbeat: opts.heartbeat,
        workers: WORKERS,
    };
    let agent_side = Member::new(
        member
            .server
            .service_account_client(SYSTEM_NAMESPACE, "clusterset-agent")?,
        config,
        Metrics::new("agent"),
    );
    let dns = Dns::start(
        member
            .server
            .service_account_client(SYSTEM_NAMESPACE, "clusterset-dns")?,
        "127.0.0.1:0".parse().expect("address"),
        crate::dns::DEFAULT_TTL,
        DNS_UDP_THREADS,
    )
    .await
    .with_context(|| format!("DNS server of {name}"))?;
    Ok((name, agent_side, dns))
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
