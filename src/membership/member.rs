//! The member side of membership: follows the credentials Secret that `join` wrote.
//! While it exists, the agent runs with those credentials and the member heart-beats:
//! it renews its Lease in its hub namespace and reports its Kubernetes version and
//! node totals on its ManagedCluster. When the Secret goes (`leave`), the agent stops
//! and everything it imported is removed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::credentials::{self, Credentials};
use super::SYSTEM_NAMESPACE;
use crate::api::clusters::{ManagedCluster, HEARTBEAT_LEASE};
use crate::mcs::agent::Agent;
use crate::mcs::metrics::Metrics;
use crate::runtime::{Cache, Tasks};

/// The field manager of the member's heartbeat writes.
pub const MANAGER: &str = "clusterset-heartbeat";

#[derive(Clone, Copy, Debug)]
pub struct MemberConfig {
    /// How often the member renews its Lease.
    pub heartbeat: Duration,
    /// Reconciles the agent runs at once.
    pub workers: usize,
}

impl Default for MemberConfig {
    fn default() -> Self {
        MemberConfig {
            heartbeat: Duration::from_secs(5),
            workers: 8,
        }
    }
}

pub struct Member {
    client: Client,
    config: MemberConfig,
    pub metrics: Metrics,
    running: Mutex<Option<Running>>,
    /// The Secret has been looked for at least once.
    listed: std::sync::atomic::AtomicBool,
    nodes: Arc<Cache<Node>>,
    /// Rung by the heartbeat when the hub no longer knows this member.
    removed: Arc<Notify>,
    /// The credentials the hub removed (not used again until the Secret changes).
    evicted: Mutex<Option<Credentials>>,
    /// When the hub token in use expires (Unix seconds; 0 when unknown or not joined),
    /// for alerting on a member that keeps failing to renew it.
    token_expiry: prometheus::IntGauge,
}

/// Consecutive 401s from the hub after which the member counts itself removed: its
/// identity is gone (an administrator deleted its ManagedCluster, and with it its hub
/// namespace), not just unreachable.
const REMOVED_AFTER: u32 = 3;

struct Running {
    credentials: Credentials,
    agent: Arc<Agent>,
    tasks: Tasks,
}

fn no_key(_: &Node) -> Option<crate::runtime::ServiceKey> {
    None
}

impl Member {
    pub fn new(client: Client, config: MemberConfig, metrics: Metrics) -> Arc<Self> {
        let token_expiry = prometheus::IntGauge::new(
            "agent_hub_token_expiry_timestamp_seconds",
            "When the member's hub token expires (Unix time; 0 when unknown or not joined)",
        )
        .expect("valid metric");
        metrics
            .registry
            .register(Box::new(token_expiry.clone()))
            .expect("registered once");
        Arc::new(Member {
            client,
            config,
            metrics,
            running: Mutex::new(None),
            listed: std::sync::atomic::AtomicBool::new(false),
            nodes: Cache::new(no_key),
            removed: Arc::new(Notify::new()),
            evicted: Mutex::new(None),
            token_expiry,
        })
    }

    /// The agent now running, if the member has joined.
    pub fn agent(&self) -> Option<Arc<Agent>> {
        let running = self.running.lock();
        running.as_ref().map(|r| r.agent.clone())
    }

    /// Ready when joined and the agent's caches are synced.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.listed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("the member's hub credentials have not been looked up yet".into());
        }
        if self.evicted.lock().is_some() {
            return Err("removed from the clusterset by the hub (its ManagedCluster and hub identity are gone): join again".into());
        }
        match self.agent() {
            Some(agent) => agent.readiness(),
            None => Err(format!(
                "not a member of a clusterset: no Secret {SYSTEM_NAMESPACE}/{} (run `clusterset join`)",
                credentials::SECRET
            )),
        }
    }

    /// Follows the credentials Secret until dropped.
    pub async fn run(self: Arc<Self>) {
        let nodes = self.nodes.clone().run(
            "nodes",
            Api::all(self.client.clone()),
            watcher::Config::default(),
            |_: &Node| {},
        );
        tokio::select! {
            _ = nodes => {},
            () = self.follow() => {},
        }
    }

    async fn follow(&self) {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), SYSTEM_NAMESPACE);
        let config =
            watcher::Config::default().fields(&format!("metadata.name={}", credentials::SECRET));
        let mut events = watcher::watcher(secrets, config).default_backoff().boxed();
        let mut seen = false;
        loop {
            let event = tokio::select! {
                event = events.next() => match event {
                    Some(event) => event,
                    None => return,
                },
                () = self.removed.notified() => {
                    let running = self.running.lock().as_ref().map(|r| r.credentials.clone());
                    *self.evicted.lock() = running;
                    tracing::error!("the hub no longer knows this member: agent stopped, imports removed; join again");
                    self.stop().await;
                    continue;
                }
            };
            match event {
                Ok(watcher::Event::Init) => seen = false,
                Ok(watcher::Event::InitApply(secret) | watcher::Event::Apply(secret)) => {
                    seen = true;
                    self.start(&secret).await;
                    self.listed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(watcher::Event::InitDone) => {
                    if !seen {
                        self.stop().await;
                    }
                    self.listed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(watcher::Event::Delete(_)) => self.stop().await,
                Err(error) => {
                    tracing::warn!(%error, "watching the member's hub credentials failed; retrying");
                }
            }
        }
    }

    /// Runs the agent and the heartbeat with the Secret's credentials (again, when
    /// they changed).
    async fn start(&self, secret: &Secret) {
        let credentials = match Credentials::from_secret(secret) {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "the member's hub credentials are unusable"
                );
                return;
            }
        };
        if self
            .running
            .lock()
            .as_ref()
            .is_some_and(|r| r.credentials == credentials)
        {
            return;
        }
        {
            let mut evicted = self.evicted.lock();
            if evicted.as_ref() == Some(&credentials) {
                return;
            }
            *evicted = None;
        }
        let hub = match credentials.client().await {
            Ok(hub) => hub,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "no client for the hub from the member's credentials"
                );
                return;
            }
        };
        tracing::info!(cluster = %credentials.cluster_id, name = %credentials.cluster_name, "joined: agent and heartbeat starting");
        let agent = Agent::new(
            self.client.clone(),
            hub.clone(),
            credentials.cluster_id.clone(),
            self.metrics.clone(),
        );
        let heartbeat = Heartbeat {
            member: self.client.clone(),
            hub,
            namespace: credentials.namespace.clone(),
            cluster_id: credentials.cluster_id.clone(),
            cluster_name: credentials.cluster_name.clone(),
            joined: Some((credentials.clone(), self.removed.clone())),
            interval: self.config.heartbeat,
            nodes: self.nodes.clone(),
        };
        let replaced = self.running.lock().take();
        if let Some(replaced) = replaced {
            let mut replaced = replaced;
            replaced.tasks.stop().await; // two agents for one member never overlap
        }
        let tasks = Tasks::spawn(vec![
            Box::pin(agent.clone().run(self.config.workers)),
            Box::pin(heartbeat.run()),
        ]);
        self.token_expiry
            .set(credentials.expires_at().map_or(0, |t| t.as_second()));
        *self.running.lock() = Some(Running {
            credentials,
            agent,
            tasks,
        });
    }

    /// The member left: the agent stops and its imports go.
    async fn stop(&self) {
        let was = self.running.lock().take();
        let Some(was) = was else {
            return;
        };
        tracing::info!(cluster = %was.credentials.cluster_id, "left the clusterset: agent stopped, removing imports");
        self.token_expiry.set(0);
        let mut was = was;
        was.tasks.stop().await;
        let mut pause = Duration::from_millis(100);
        while let Err(error) = super::join::remove_imports(&self.client).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "cannot remove the imports yet; retrying"
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(10));
        }
    }
}

/// Renews the member's Lease and reports its cluster on the ManagedCluster, while the
/// member's own API server answers.
pub(crate) struct Heartbeat {
    pub member: Client,
    pub hub: Client,
    /// The member's hub namespace, cluster ID and ManagedCluster name.
    pub namespace: String,
    pub cluster_id: String,
    pub cluster_name: String,
    /// A joined member's own hub credentials, rotated when due, and what to ring when
    /// the hub keeps refusing them (the member was removed). None when the hub
    /// heart-beats for a push-mode member with its own identity.
    pub joined: Option<(Credentials, Arc<Notify>)>,
    pub interval: Duration,
    pub nodes: Arc<Cache<Node>>,
}

impl Heartbeat {
    pub async fn run(self) {
        let mut reported: Option<Value> = None;
        let mut failing = false;
        let mut refused = 0;
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Some((credentials, _)) = &self.joined {
                if rotate_due(&self.member, credentials).await {
                    return; // the credentials follower starts again with the new token
                }
            }
            // A member whose own API server does not answer is as good as dead to the
            // clusterset (its endpoints can no longer be followed): no renewal then.
            let result = match self.member.apiserver_version().await {
                Ok(info) => match self.renew().await {
                    Ok(()) => {
                        refused = 0;
                        self.report(Some(&info.git_version), &mut reported).await
                    }
                    Err(kube::Error::Api(s)) if s.code == 401 => {
                        refused += 1;
                        if let Some((_, removed)) = &self.joined {
                            if refused >= REMOVED_AFTER {
                                removed.notify_one();
                                return;
                            }
                        }
                        Err("the hub refuses the heartbeat's credentials (401)".to_string())
                    }
                    Err(e) => {
                        refused = 0;
                        Err(format!("cannot renew the heartbeat Lease on the hub: {e}"))
                    }
                },
                Err(e) => Err(format!("the member's API server does not answer: {e}")),
            };
            match result {
                Ok(()) if failing => {
                    tracing::info!(cluster = %self.cluster_id, "heartbeat restored");
                    failing = false;
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    // A hub outage: the member keeps everything as it is meanwhile.
                    tracing::warn!(cluster = %self.cluster_id, %error, "heartbeat not renewed; trying again every interval");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }

    async fn renew(&self) -> Result<(), kube::Error> {
        let leases: Api<Lease> = Api::namespaced(self.hub.clone(), &self.namespace);
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": HEARTBEAT_LEASE, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.cluster_id,
                "leaseDurationSeconds": self.interval.as_secs().max(1),
                "renewTime": MicroTime(jiff::Timestamp::now()),
            },
        });
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        };
        match leases
            .patch(HEARTBEAT_LEASE, &params, &Patch::Merge(&lease))
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let typed: Lease =
                    serde_json::from_value(lease).map_err(kube::Error::SerdeError)?;
                leases
                    .create(&PostParams::default(), &typed)
                    .await
                    .map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    /// Writes the cluster's version and node totals when they changed.
    async fn report(
        &self,
        version: Option<&str>,
        reported: &mut Option<Value>,
    ) -> Result<(), String> {
        let status = cluster_status(version, &self.nodes.all());
        if reported.as_ref() == Some(&status) {
            return Ok(());
        }
        let clusters: Api<ManagedCluster> = Api::namespaced(self.hub.clone(), &self.namespace);
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        };
        clusters
            .patch_status(
                &self.cluster_name,
                &params,
                &Patch::Merge(&json!({"status": status})),
            )
            .await
            .map_err(|e| format!("cannot report on the ManagedCluster: {e}"))?;
        *reported = Some(status);
        Ok(())
    }
}

/// Replaces a joined member's hub token after 80% of its lifetime; true once the new
/// one is stored (a failure is tried again at the next beat).
async fn rotate_due(member: &Client, credentials: &Credentials) -> bool {
    let due = credentials.renew_at();
    if due.is_none_or(|at| at > jiff::Timestamp::now()) {
        return false;
    }
    let stored = match credentials.rotated().await {
        Ok(fresh) => fresh.save(member).await,
        Err(e) => Err(e),
    };
    match stored {
        Ok(()) => {
            tracing::info!(cluster = %credentials.cluster_id, "hub token renewed");
            true
        }
        Err(error) => {
            tracing::warn!(
                error = format!("{error:#}"),
                "cannot renew the hub token yet"
            );
            false
        }
    }
}

/// Version, node counts, and capacity and allocatable summed over the nodes.
fn cluster_status(version: Option<&str>, nodes: &[Arc<Node>]) -> Value {
    let ready = nodes
        .iter()
        .filter(|n| {
            n.status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
        .count();
    let sums = |pick: fn(
        &Node,
    ) -> Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| {
        let mut names: Vec<&String> = nodes
            .iter()
            .filter_map(|n| pick(n))
            .flat_map(|m| m.keys())
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let values = nodes
                    .iter()
                    .filter_map(|n| pick(n)?.get(name))
                    .map(|q| q.0.as_str());
                (name.clone(), json!(crate::quantity::sum(values)))
            })
            .collect::<serde_json::Map<String, Value>>()
    };
    json!({
        "kubernetesVersion": version,
        "nodes": {"total": nodes.len(), "ready": ready},
        "capacity": sums(|n| n.status.as_ref()?.capacity.as_ref()),
        "allocatable": sums(|n| n.status.as_ref()?.allocatable.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_sums_nodes_and_counts_the_ready_ones() {
        let node = |name: &str, ready: &str, cpu: &str| -> Arc<Node> {
            Arc::new(
                serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "status": {
                        "capacity": {"cpu": cpu, "memory": "16Gi"},
                        "allocatable": {"cpu": cpu, "memory": "15Gi"},
                        "conditions": [{"type": "Ready", "status": ready}],
                    },
                }))
                .unwrap(),
            )
        };
        let status = cluster_status(
            Some("v1.33.0"),
            &[node("a", "True", "4"), node("b", "False", "3500m")],
        );
        assert_eq!(status["nodes"], json!({"total": 2, "ready": 1}));
        assert_eq!(
            status["capacity"],
            json!({"cpu": "7500m", "memory": "32Gi"})
        );
        assert_eq!(status["allocatable"]["memory"], "30Gi");
        assert_eq!(status["kubernetesVersion"], "v1.33.0");
    }
}
