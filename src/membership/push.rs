//! Push mode (`clusterset hub --push`): the hub runs the agent of every member whose
//! kubeconfig it holds in a Secret, and does for that member what a joined member
//! does for itself.
//!
//! - The Secret (in [`PUSH_NAMESPACE`], labelled [`PUSH_LABEL`], key `kubeconfig`)
//!   enrols the member: its hub namespace, claimed for the cluster ID of its
//!   ClusterProperty, and its ManagedCluster there, named after the Secret.
//! - While the member's API server answers, the hub renews the member's heartbeat
//!   Lease and reports its version and nodes, so the health controller withdraws a dead
//!   push member's endpoints as it does a joined one's.
//! - Deleting the Secret is the member leaving: its agent stops, what it imported is
//!   removed from it, and its ManagedCluster is deleted (the registrar then removes its
//!   hub namespace and export records, and the hub its exports). A Secret deleted while
//!   the hub was down is noticed at the next start.
//! - A member that cannot be enrolled (unreachable, no cluster ID) is tried again
//!   every [`RETRY`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use super::enrol;
use super::member::Heartbeat;
use crate::api::about::{ClusterProperty, CLUSTER_ID};
use crate::api::clusters::ManagedCluster;
use crate::mcs::agent::Agent;
use crate::mcs::metrics::Metrics;
use crate::runtime::{self, Cache};

/// Where push-mode member kubeconfigs live on the hub.
pub const PUSH_NAMESPACE: &str = super::SYSTEM_NAMESPACE;
/// The label that marks a Secret as a push-mode member (its `kubeconfig` key holds
/// the member's kubeconfig).
pub const PUSH_LABEL: &str = "mcs.clusterset.io/member-kubeconfig";
/// The label on a push member's ManagedCluster: the Secret it was enrolled from.
pub const PUSH_SECRET_LABEL: &str = "clusters.clusterset.io/push-secret";
/// How often a member that could not be enrolled is tried again.
pub const RETRY: Duration = Duration::from_secs(5);

/// The cluster ID from the member's ClusterProperty `cluster.clusterset.k8s.io`.
pub async fn cluster_id(member: &Client) -> anyhow::Result<String> {
    let property = Api::<ClusterProperty>::all(member.clone())
        .get_opt(CLUSTER_ID)
        .await
        .context("cannot read the cluster's ClusterProperty")?;
    property.map(|p| p.spec.value).with_context(|| {
        format!("the cluster has no ClusterProperty {CLUSTER_ID}: create it with the cluster's ID, or pass --cluster-id")
    })
}

pub struct Push {
    hub: Client,
    workers: usize,
    heartbeat: Duration,
    /// The kubeconfig of every member Secret, as last seen.
    wanted: Mutex<HashMap<String, Vec<u8>>>,
    running: Mutex<HashMap<String, Running>>,
    synced: AtomicBool,
}

/// One push member: its agent, heartbeat and node watch.
struct Running {
    kubeconfig: Vec<u8>,
    member: Client,
    agent: Arc<Agent>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

impl Push {
    /// Push mode on `hub`; members heart-beat every `heartbeat`.
    pub fn new(hub: Client, workers: usize, heartbeat: Duration) -> Arc<Self> {
        Arc::new(Push {
            hub,
            workers,
            heartbeat,
            wanted: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            synced: AtomicBool::new(false),
        })
    }

    /// Ready once the Secrets are listed and every running agent is.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.synced.load(Ordering::SeqCst) {
            return Err("push mode: member Secrets not listed yet".into());
        }
        let running = self.running.lock().expect("running lock");
        running.values().try_for_each(|r| r.agent.readiness())
    }

    /// Follows the member Secrets until dropped.
    pub async fn run(self: Arc<Self>) {
        let secrets: Api<Secret> = Api::namespaced(self.hub.clone(), PUSH_NAMESPACE);
        let config = watcher::Config::default().labels(PUSH_LABEL);
        let mut events = watcher::watcher(secrets, config).boxed();
        let mut listing: Option<Vec<String>> = None;
        let mut retries = tokio::time::interval(RETRY);
        retries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                event = events.next() => match event {
                    Some(event) => event,
                    None => return,
                },
                _ = retries.tick() => {
                    self.retry().await;
                    continue;
                }
            };
            match event {
                Ok(watcher::Event::Init) => listing = Some(Vec::new()),
                Ok(watcher::Event::InitApply(secret)) => {
                    listing.get_or_insert_with(Vec::new).push(secret.name_any());
                    self.want(&secret).await;
                }
                Ok(watcher::Event::InitDone) => {
                    let present = listing.take().unwrap_or_default();
                    let gone: Vec<String> = {
                        let wanted = self.wanted.lock().expect("wanted lock");
                        wanted
                            .keys()
                            .filter(|n| !present.contains(n))
                            .cloned()
                            .collect()
                    };
                    for name in gone {
                        self.leave(&name).await;
                    }
                    self.forget_departed(&present).await;
                    self.synced.store(true, Ordering::SeqCst);
                }
                Ok(watcher::Event::Apply(secret)) => self.want(&secret).await,
                Ok(watcher::Event::Delete(secret)) => self.leave(&secret.name_any()).await,
                Err(error) => {
                    tracing::warn!(%error, "push mode: watching member Secrets failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn want(&self, secret: &Secret) {
        let name = secret.name_any();
        let kubeconfig = secret
            .data
            .as_ref()
            .and_then(|d| d.get("kubeconfig"))
            .map(|b| b.0.clone())
            .unwrap_or_default();
        self.wanted
            .lock()
            .expect("wanted lock")
            .insert(name.clone(), kubeconfig);
        self.start(&name).await;
    }

    /// Starts (or restarts, when its kubeconfig changed) the member of Secret `name`.
    async fn start(&self, name: &str) {
        let Some(kubeconfig) = self.wanted.lock().expect("wanted lock").get(name).cloned() else {
            return;
        };
        let current = self
            .running
            .lock()
            .expect("running lock")
            .get(name)
            .map(|r| r.kubeconfig == kubeconfig);
        if current == Some(true) {
            return;
        }
        match self.enrol(name, &kubeconfig).await {
            Ok((running, namespace)) => {
                tracing::info!(secret = %name, cluster = %running.agent.cluster(), "push mode: member enrolled, agent and heartbeat started");
                let replaced = self
                    .running
                    .lock()
                    .expect("running lock")
                    .insert(name.to_string(), running);
                drop(replaced);
                // The kubeconfig may now lead to another cluster: the one it led to
                // before leaves.
                self.delete_clusters(name, Some(&namespace)).await;
            }
            Err(error) => {
                tracing::warn!(secret = %name, error = format!("{error:#}"), "push mode: cannot run the member's agent; trying again");
            }
        }
    }

    /// Members whose Secrets are wanted but not running: tried again.
    async fn retry(&self) {
        let names: Vec<String> = {
            let wanted = self.wanted.lock().expect("wanted lock");
            let running = self.running.lock().expect("running lock");
            wanted
                .iter()
                .filter(|(n, k)| running.get(*n).is_none_or(|r| &r.kubeconfig != *k))
                .map(|(n, _)| n.clone())
                .collect()
        };
        for name in names {
            self.start(&name).await;
        }
    }

    /// Reads the member's identity, claims its place on the hub and starts it.
    async fn enrol(&self, name: &str, kubeconfig: &[u8]) -> anyhow::Result<(Running, String)> {
        let text = std::str::from_utf8(kubeconfig).context("the kubeconfig is not UTF-8")?;
        let parsed = Kubeconfig::from_yaml(text)
            .context("the Secret's kubeconfig key is not a kubeconfig")?;
        let config =
            kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default()).await?;
        let member = Client::try_from(config)?;
        let cluster = cluster_id(&member).await?;
        let uid = super::join::kube_system_uid(&member).await?;
        let namespace = enrol::claim_namespace(&self.hub, &cluster)
            .await?
            .map_err(anyhow::Error::msg)?;
        let labels = json!({ PUSH_SECRET_LABEL: name });
        let managed = enrol::claim_cluster(&self.hub, &namespace, name, (&cluster, &uid), labels)
            .await?
            .map_err(anyhow::Error::msg)?;
        let nodes: Arc<Cache<Node>> = Cache::new(|_| None);
        let agent = Agent::new(
            member.clone(),
            self.hub.clone(),
            cluster.clone(),
            Metrics::new("agent"),
        );
        let heartbeat = Heartbeat {
            member: member.clone(),
            hub: self.hub.clone(),
            namespace: namespace.clone(),
            cluster_id: cluster,
            cluster_name: managed.name_any(),
            joined: None,
            interval: self.heartbeat,
            nodes: nodes.clone(),
        };
        let watch_nodes = nodes.run(
            "nodes",
            Api::all(member.clone()),
            watcher::Config::default(),
            |_: &Node| {},
        );
        let tasks = vec![
            tokio::spawn(agent.clone().run(self.workers)),
            tokio::spawn(heartbeat.run()),
            tokio::spawn(watch_nodes),
        ];
        let running = Running {
            kubeconfig: kubeconfig.to_vec(),
            member,
            agent,
            tasks,
        };
        Ok((running, namespace))
    }

    /// Secret `name` is gone: the member leaves.
    async fn leave(&self, name: &str) {
        self.wanted.lock().expect("wanted lock").remove(name);
        let was = self.running.lock().expect("running lock").remove(name);
        if let Some(mut was) = was {
            tracing::info!(secret = %name, cluster = %was.agent.cluster(), "push mode: member removed; agent stopped, removing its imports");
            for task in std::mem::take(&mut was.tasks) {
                task.abort();
                let _ = task.await;
            }
            // The member may be gone for good: a few tries, then it is left as it is.
            let member = was.member.clone();
            tokio::spawn(async move {
                let mut pause = Duration::from_millis(200);
                for _ in 0..6 {
                    match super::join::remove_imports(&member).await {
                        Ok(()) => return,
                        Err(error) => tracing::warn!(
                            error = format!("{error:#}"),
                            "push mode: cannot remove a departed member's imports yet"
                        ),
                    }
                    tokio::time::sleep(pause).await;
                    pause *= 3;
                }
            });
        }
        self.delete_clusters(name, None).await;
    }

    /// ManagedClusters enrolled from Secrets that no longer exist (deleted while the
    /// hub was down) are deleted.
    async fn forget_departed(&self, present: &[String]) {
        let clusters: Api<ManagedCluster> = Api::all(self.hub.clone());
        let enrolled = match clusters
            .list(&ListParams::default().labels(PUSH_SECRET_LABEL))
            .await
        {
            Ok(list) => list.items,
            Err(error) => {
                tracing::warn!(%error, "push mode: cannot list the push members' ManagedClusters");
                return;
            }
        };
        for cluster in enrolled {
            let secret = cluster
                .labels()
                .get(PUSH_SECRET_LABEL)
                .cloned()
                .unwrap_or_default();
            if !present.contains(&secret) {
                self.delete_clusters(&secret, None).await;
            }
        }
    }

    /// Deletes the ManagedClusters enrolled from Secret `name`, but for the one in hub
    /// namespace `keep`.
    async fn delete_clusters(&self, name: &str, keep: Option<&str>) {
        let clusters: Api<ManagedCluster> = Api::all(self.hub.clone());
        let selector = format!("{PUSH_SECRET_LABEL}={name}");
        let result = async {
            let enrolled = clusters
                .list(&ListParams::default().labels(&selector))
                .await?;
            for cluster in enrolled.items {
                if cluster.namespace().as_deref() == keep {
                    continue;
                }
                let api: Api<ManagedCluster> =
                    Api::namespaced(self.hub.clone(), &cluster.namespace().unwrap_or_default());
                runtime::delete(&api, &cluster.name_any()).await?;
                tracing::info!(secret = %name, cluster = %cluster.spec.cluster_id, "push mode: ManagedCluster deleted");
            }
            Ok::<(), kube::Error>(())
        };
        if let Err(error) = result.await {
            tracing::warn!(secret = %name, %error, "push mode: cannot delete the departed member's ManagedCluster");
        }
    }
}
