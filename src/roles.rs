//! `clusterset hub`, `clusterset agent` and `clusterset dns` as processes for real clusters: clients
//! from kubeconfigs (or in-cluster config), the controller, `/metrics`, `/healthz` and
//! `/readyz`, and a clean stop on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;

use crate::mcs::agent::Agent;
use crate::mcs::hub::Hub;
use crate::mcs::metrics::Metrics;
use crate::membership::health::{Health, HealthConfig};
use crate::membership::member::{Member, MemberConfig};
use crate::membership::metrics::MembershipMetrics;
use crate::membership::push::Push;
use crate::membership::registrar::{Registrar, RegistrarConfig};
use crate::runtime::probes;

/// Where a role finds a cluster: a kubeconfig file and context, or (neither given)
/// `KUBECONFIG`, `~/.kube/config` or the in-cluster service account.
#[derive(Clone, Debug, Default)]
pub struct ClusterAccess {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

impl ClusterAccess {
    pub async fn client(&self) -> anyhow::Result<Client> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?
            }
            None if self.context.is_some() => kube::Config::from_kubeconfig(&options).await?,
            None => kube::Config::infer().await?,
        };
        Ok(Client::try_from(config)?)
    }
}

pub struct HubOptions {
    pub hub: ClusterAccess,
    pub probe_listen: SocketAddr,
    pub workers: usize,
    pub clusterset_ip_cidrs: Vec<ipnet::IpNet>,
    pub registration: RegistrarConfig,
    pub health: HealthConfig,
    /// Also run the agent for every member whose kubeconfig is in a Secret of
    /// [`PUSH_NAMESPACE`] labelled [`PUSH_LABEL`].
    pub push: bool,
}

pub struct AgentOptions {
    pub member: ClusterAccess,
    /// The hub, reached directly; without it the agent follows the credentials that
    /// `clusterset join` kept in the member, and heart-beats.
    pub hub: Option<ClusterAccess>,
    pub heartbeat: std::time::Duration,
    /// The member's cluster ID; read from its ClusterProperty when not given.
    pub cluster_id: Option<String>,
    pub probe_listen: SocketAddr,
    pub workers: usize,
}

pub struct DnsOptions {
    pub member: ClusterAccess,
    pub listen: SocketAddr,
    pub ttl: u32,
    pub udp_threads: usize,
    pub probe_listen: SocketAddr,
}

pub use crate::membership::join::cluster_id;
pub use crate::membership::push::{PUSH_LABEL, PUSH_NAMESPACE};

/// Runs the hub controller until a signal arrives.
pub async fn run_hub(opts: HubOptions) -> anyhow::Result<()> {
    let client = opts.hub.client().await.context("hub cluster")?;
    let hub = Hub::new(
        client.clone(),
        Metrics::new("hub"),
        &opts.clusterset_ip_cidrs,
    );
    let membership = MembershipMetrics::new(&hub.metrics.registry);
    let health = Health::new(client.clone(), hub.clone(), opts.health, membership.clone());
    let registrar = Registrar::new(client.clone(), opts.registration, membership);
    // Push members heart-beat three times per grace period, at least every 5 s (and at
    // most every 100 ms).
    let beat = (opts.health.grace / 3).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(5),
    );
    let push = opts.push.then(|| Push::new(client, opts.workers, beat));
    let ready: probes::Readiness = {
        let (hub, registrar, health, push) =
            (hub.clone(), registrar.clone(), health.clone(), push.clone());
        Arc::new(move || {
            hub.readiness()?;
            registrar.readiness()?;
            health.readiness()?;
            push.as_ref().map_or(Ok(()), |p| p.readiness())
        })
    };
    let registry = hub.metrics.registry.clone();
    if let Some(push) = &push {
        registry.register(push.metrics())?;
    }
    serve_until_signal(opts.probe_listen, registry, ready, async move {
        let controllers =
            futures::future::join3(hub.run(opts.workers), registrar.run(), health.run());
        match push {
            Some(push) => {
                futures::future::join(controllers, push.run()).await;
            }
            None => {
                controllers.await;
            }
        }
    })
    .await
}

/// Runs one member's agent until a signal arrives.
pub async fn run_agent(opts: AgentOptions) -> anyhow::Result<()> {
    let member = opts.member.client().await.context("member cluster")?;
    let Some(hub) = opts.hub else {
        if opts.cluster_id.is_some() {
            anyhow::bail!("--cluster-id goes with --hub-kubeconfig/--hub-context: a joined member's ID is the one it joined with");
        }
        let config = MemberConfig {
            heartbeat: opts.heartbeat,
            workers: opts.workers,
        };
        let joined = Member::new(member, config, Metrics::new("agent"));
        let ready: probes::Readiness = {
            let joined = joined.clone();
            Arc::new(move || joined.readiness())
        };
        let registry = joined.metrics.registry.clone();
        return serve_until_signal(opts.probe_listen, registry, ready, joined.run()).await;
    };
    let hub = hub.client().await.context("hub cluster")?;
    let cluster = match opts.cluster_id {
        Some(id) => id,
        None => cluster_id(&member).await?,
    };
    tracing::info!(%cluster, "agent starting");
    let agent = Agent::new(member, hub, cluster, Metrics::new("agent"));
    let ready: probes::Readiness = {
        let agent = agent.clone();
        Arc::new(move || agent.readiness())
    };
    let registry = agent.metrics.registry.clone();
    serve_until_signal(opts.probe_listen, registry, ready, agent.run(opts.workers)).await
}

/// Runs a member's clusterset.local DNS server until a signal arrives.
pub async fn run_dns(opts: DnsOptions) -> anyhow::Result<()> {
    let member = opts.member.client().await.context("member cluster")?;
    let dns = crate::dns::Dns::start(member, opts.listen, opts.ttl, opts.udp_threads)
        .await
        .with_context(|| format!("cannot serve DNS on {}", opts.listen))?;
    tracing::info!(addr = %dns.addr, ttl = opts.ttl, "serving clusterset.local");
    let ready: probes::Readiness = {
        let source = dns.source.clone();
        Arc::new(move || source.readiness())
    };
    let registry = dns.metrics.registry.clone();
    // The watches run inside `dns`; this waits for the signal while they do.
    serve_until_signal(
        opts.probe_listen,
        registry,
        ready,
        futures::future::pending(),
    )
    .await
}

/// Serves the probes and runs `work` until SIGTERM/SIGINT (or until `work` ends).
async fn serve_until_signal(
    listen: SocketAddr,
    registry: prometheus::Registry,
    ready: probes::Readiness,
    work: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    };
    let (addr, probes) = probes::serve(listen, registry, ready, shutdown)
        .await
        .with_context(|| format!("cannot serve probes on {listen}"))?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    tokio::select! {
        () = work => tracing::warn!("controller stopped on its own"),
        () = crate::telemetry::shutdown_signal() => {},
    }
    let _ = stop.send(true);
    let _ = probes.await;
    tracing::info!("stopped");
    Ok(())
}

/// A duration flag: "30s", "500ms", "2m", "1h 30m" (or ISO 8601, "PT30S").
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let duration: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration such as 30s, 500ms or 2m: {e}"))?;
    std::time::Duration::try_from(duration).map_err(|_| format!("{text:?} is negative"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_duration("-5s").unwrap_err().contains("negative"));
    }
}
