//! Push mode (`clusterset hub --push`): the hub runs the agent of every member whose
//! kubeconfig it holds in a Secret, and does for that member what a joined member
//! does for itself.
//!
//! - The Secret (in [`PUSH_NAMESPACE`], labelled [`PUSH_LABEL`], key `kubeconfig`)
//!   enrols the member: its hub namespace, claimed for the cluster ID of its
//!   ClusterProperty, and its ManagedCluster there, named after the Secret and
//!   labelled [`PUSH_SECRET_LABEL`]. A cluster that is already a member (joined, or
//!   through another Secret) is refused.
//! - While the member's API server answers, the hub renews the member's heartbeat
//!   Lease and reports its version and nodes, so the health controller withdraws a dead
//!   push member's endpoints as it does a joined one's. The hub may write Leases only
//!   in the hub namespaces of its push members: each gets a RoleBinding of
//!   [`HEARTBEAT_ROLE`] for the hub's own identity.
//! - Deleting the Secret is the member leaving: its agent stops, what it imported is
//!   removed from it, and its ManagedCluster is deleted (the registrar then removes its
//!   hub namespace and export records, and the hub its exports). A Secret deleted while
//!   the hub was down is noticed at the next start; its ManagedCluster goes, but its
//!   imports stay in the member (the kubeconfig to reach it went with the Secret).
//! - Every [`RESYNC`], the hub enrols members that could not be (unreachable, no cluster
//!   ID yet), enrols again those whose ManagedCluster was deleted under them, and
//!   deletes the ManagedClusters of Secrets that are gone. Each enrolment runs on its
//!   own, within [`ENROL_TIMEOUT`], so one dead member holds up no other.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::{bail, Context};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;
use tokio::time::Instant;

use super::enrol;
use super::join::{cluster_id, kube_system_uid, remove_imports};
use super::member::Heartbeat;
use crate::api::clusters::ManagedCluster;
use crate::mcs::agent::Agent;
use crate::mcs::metrics::Metrics;
use crate::runtime::{self, Cache, Tasks};

/// Where push-mode member kubeconfigs live on the hub.
pub const PUSH_NAMESPACE: &str = super::SYSTEM_NAMESPACE;
/// The label that marks a Secret as a push-mode member (its `kubeconfig` key holds
/// the member's kubeconfig).
pub const PUSH_LABEL: &str = "mcs.clusterset.io/member-kubeconfig";
/// The label on a push member's ManagedCluster: the Secret it was enrolled from.
pub const PUSH_SECRET_LABEL: &str = "clusters.clusterset.io/push-secret";
/// The ClusterRole (manifests/hub-push) that lets the hub heart-beat for a push member,
/// bound in that member's hub namespace only.
pub const HEARTBEAT_ROLE: &str = "clusterset:hub-push-heartbeat";
/// How often enrolments, re-enrolments and departures are caught up with.
pub const RESYNC: Duration = Duration::from_secs(5);
/// How long one enrolment may take before it counts as failed.
pub const ENROL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Push {
    hub: Client,
    workers: usize,
    heartbeat: Duration,
    /// The kubeconfig of every member Secret, as last seen.
    wanted: Mutex<HashMap<String, Vec<u8>>>,
    running: Mutex<HashMap<String, Running>>,
    /// Secrets whose member is being enrolled now.
    enrolling: Mutex<HashSet<String>>,
    /// Secrets whose last enrolment failed (each warns once per run of failures).
    failing: Mutex<HashSet<String>>,
    /// Held while a member's place on the hub is claimed: two Secrets of one cluster,
    /// enrolled at once, would each find the namespace free.
    claims: tokio::sync::Mutex<()>,
    /// The hub's own user name, asked once.
    user: tokio::sync::OnceCell<String>,
    synced: AtomicBool,
}

/// A member enrolled, not yet running.
struct Enrolled {
    member: Client,
    namespace: String,
    agent: Arc<Agent>,
    heartbeat: Heartbeat,
    nodes: Arc<Cache<Node>>,
}

/// One push member: its agent, heartbeat and node watch.
struct Running {
    kubeconfig: Vec<u8>,
    member: Client,
    namespace: String,
    agent: Arc<Agent>,
    since: Instant,
    tasks: Tasks,
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
            enrolling: Mutex::new(HashSet::new()),
            failing: Mutex::new(HashSet::new()),
            claims: tokio::sync::Mutex::new(()),
            user: tokio::sync::OnceCell::new(),
            synced: AtomicBool::new(false),
        })
    }

    /// The running members' agent metrics, for the hub's registry.
    pub fn metrics(self: &Arc<Self>) -> Box<dyn prometheus::core::Collector> {
        Box::new(MemberMetrics(Arc::downgrade(self)))
    }

    /// Ready once the Secrets are listed and every running agent is.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.synced.load(Ordering::SeqCst) {
            return Err("push mode: member Secrets not listed yet".into());
        }
        let running = self.running.lock();
        running.values().try_for_each(|r| r.agent.readiness())
    }

    /// Follows the member Secrets until dropped.
    pub async fn run(self: Arc<Self>) {
        let secrets: Api<Secret> = Api::namespaced(self.hub.clone(), PUSH_NAMESPACE);
        let config = watcher::Config::default().labels(PUSH_LABEL);
        let mut events = watcher::watcher(secrets, config).boxed();
        let mut listing: Option<Vec<String>> = None;
        let mut resync = tokio::time::interval(RESYNC);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                event = events.next() => match event {
                    Some(event) => event,
                    None => return,
                },
                _ = resync.tick() => {
                    self.resync().await;
                    continue;
                }
            };
            match event {
                Ok(watcher::Event::Init) => listing = Some(Vec::new()),
                Ok(watcher::Event::InitApply(secret)) => {
                    listing.get_or_insert_with(Vec::new).push(secret.name_any());
                    self.want(&secret);
                }
                Ok(watcher::Event::InitDone) => {
                    let present = listing.take().unwrap_or_default();
                    let gone: Vec<String> = {
                        let wanted = self.wanted.lock();
                        let known = wanted.keys();
                        known.filter(|n| !present.contains(n)).cloned().collect()
                    };
                    for name in gone {
                        self.leave(&name).await;
                    }
                    self.synced.store(true, Ordering::SeqCst);
                    self.resync().await;
                }
                Ok(watcher::Event::Apply(secret)) => self.want(&secret),
                Ok(watcher::Event::Delete(secret)) => self.leave(&secret.name_any()).await,
                Err(error) => {
                    tracing::warn!(%error, "push mode: watching member Secrets failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn want(self: &Arc<Self>, secret: &Secret) {
        let name = secret.name_any();
        let kubeconfig = secret
            .data
            .as_ref()
            .and_then(|d| d.get("kubeconfig"))
            .map(|b| b.0.clone())
            .unwrap_or_default();
        self.wanted.lock().insert(name.clone(), kubeconfig);
        self.start(&name);
    }

    /// Enrols the member of Secret `name` in the background, unless it runs with the
    /// Secret's kubeconfig already or is being enrolled.
    fn start(self: &Arc<Self>, name: &str) {
        let Some(kubeconfig) = self.wanted.lock().get(name).cloned() else {
            return;
        };
        let current = {
            let running = self.running.lock();
            running
                .get(name)
                .is_some_and(|r| r.kubeconfig == kubeconfig)
        };
        if current || !self.enrolling.lock().insert(name.into()) {
            return;
        }
        let (this, name) = (self.clone(), name.to_string());
        tokio::spawn(async move {
            let enrolment = tokio::time::timeout(ENROL_TIMEOUT, this.enrol(&name, &kubeconfig));
            let result = enrolment.await.unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "the member did not answer within {ENROL_TIMEOUT:?}"
                ))
            });
            this.enrolled(&name, kubeconfig, result).await;
            this.enrolling.lock().remove(&name);
        });
    }

    /// Runs a member just enrolled in place of the one before, if the Secret still
    /// says what it was enrolled from.
    async fn enrolled(&self, name: &str, kubeconfig: Vec<u8>, result: anyhow::Result<Enrolled>) {
        let enrolled = match result {
            Ok(enrolled) => enrolled,
            Err(error) => {
                let error = format!("{error:#}");
                if self.failing.lock().insert(name.into()) {
                    tracing::warn!(secret = %name, %error, "push mode: cannot enrol the member; trying again every {RESYNC:?}");
                } else {
                    tracing::debug!(secret = %name, %error, "push mode: cannot enrol the member yet");
                }
                return;
            }
        };
        let still_wanted = self.wanted.lock().get(name) == Some(&kubeconfig);
        if !still_wanted {
            return; // changed or gone meanwhile: the next enrolment or the resync sees to it
        }
        self.failing.lock().remove(name);
        let replaced = self.running.lock().remove(name);
        if let Some(mut old) = replaced {
            // Two agents for one member never overlap.
            old.tasks.stop().await;
            if old.namespace != enrolled.namespace {
                // The kubeconfig now leads to another cluster: the one before leaves.
                self.retire(name, old);
                self.delete_clusters(name, Some(&enrolled.namespace)).await;
            }
        }
        let cluster = enrolled.agent.cluster().to_string();
        let running = self.launch(kubeconfig, enrolled);
        self.running.lock().insert(name.to_string(), running);
        tracing::info!(secret = %name, %cluster, "push mode: member enrolled, agent and heartbeat started");
    }

    /// Reads the member's identity and claims its place on the hub.
    async fn enrol(&self, name: &str, kubeconfig: &[u8]) -> anyhow::Result<Enrolled> {
        if name.len() > 63 {
            bail!("the Secret's name is longer than 63 characters, too long to label its ManagedCluster with");
        }
        let text = std::str::from_utf8(kubeconfig).context("the kubeconfig is not UTF-8")?;
        let parsed = Kubeconfig::from_yaml(text)
            .context("the Secret's kubeconfig key is not a kubeconfig")?;
        let config =
            kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default()).await?;
        let member = Client::try_from(config)?;
        let cluster = cluster_id(&member).await?;
        let uid = kube_system_uid(&member).await?;
        let claiming = self.claims.lock().await;
        let namespace = enrol::claim_namespace(&self.hub, &cluster)
            .await?
            .map_err(anyhow::Error::msg)?;
        self.refuse_other_members(name, &cluster, &namespace)
            .await?;
        self.allow_heartbeat(&namespace).await?;
        let labels = json!({ PUSH_SECRET_LABEL: name });
        let managed = enrol::claim_cluster(&self.hub, &namespace, name, (&cluster, &uid), labels)
            .await?
            .map_err(anyhow::Error::msg)?;
        drop(claiming);
        if managed.metadata.deletion_timestamp.is_some() {
            bail!("its ManagedCluster {namespace}/{name} is still being deleted");
        }
        let nodes: Arc<Cache<Node>> = Cache::new(|_| None);
        let heartbeat = Heartbeat {
            member: member.clone(),
            hub: self.hub.clone(),
            namespace: namespace.clone(),
            cluster_id: cluster.clone(),
            cluster_name: managed.name_any(),
            joined: None,
            interval: self.heartbeat,
            nodes: nodes.clone(),
        };
        let agent = Agent::new(
            member.clone(),
            self.hub.clone(),
            cluster,
            Metrics::for_push_member(),
        );
        Ok(Enrolled {
            member,
            namespace,
            agent,
            heartbeat,
            nodes,
        })
    }

    /// A cluster is one member: not also joined, nor enrolled from another Secret.
    async fn refuse_other_members(
        &self,
        name: &str,
        cluster: &str,
        ns: &str,
    ) -> anyhow::Result<()> {
        let clusters: Api<ManagedCluster> = Api::namespaced(self.hub.clone(), ns);
        for other in clusters.list(&ListParams::default()).await?.items {
            let from = other.labels().get(PUSH_SECRET_LABEL).map(String::as_str);
            if other.name_any() != name || from != Some(name) {
                let how = from.map_or("joined".to_string(), |s| format!("through Secret {s}"));
                bail!(
                    "cluster {cluster} is a member already, as {} ({how})",
                    other.name_any()
                );
            }
        }
        Ok(())
    }

    /// The hub's own user name, from a SelfSubjectReview.
    async fn user(&self) -> anyhow::Result<&str> {
        let ask = async {
            let review: serde_json::Value = self
                .hub
                .request(
                    http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
                        .header("Content-Type", "application/json")
                        .body(serde_json::to_vec(&json!({
                            "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                        }))?)?,
                )
                .await
                .context("cannot learn the hub's own user name (SelfSubjectReview)")?;
            let user = review["status"]["userInfo"]["username"].as_str();
            user.map(str::to_string)
                .context("the SelfSubjectReview names no user")
        };
        self.user.get_or_try_init(|| ask).await.map(String::as_str)
    }

    /// Binds [`HEARTBEAT_ROLE`] in the member's hub namespace for the hub's own user.
    async fn allow_heartbeat(&self, ns: &str) -> anyhow::Result<()> {
        let user = self.user().await?;
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": HEARTBEAT_ROLE, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": HEARTBEAT_ROLE},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }))?;
        let bindings: Api<RoleBinding> = Api::namespaced(self.hub.clone(), ns);
        match bindings.create(&PostParams::default(), &binding).await {
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            other => other
                .map(|_| ())
                .context("cannot let the hub heart-beat for the member"),
        }
    }

    fn launch(&self, kubeconfig: Vec<u8>, enrolled: Enrolled) -> Running {
        let Enrolled {
            member,
            namespace,
            agent,
            heartbeat,
            nodes,
        } = enrolled;
        let watch_nodes = nodes.run(
            "nodes",
            Api::all(member.clone()),
            watcher::Config::default(),
            |_: &Node| {},
        );
        let tasks = Tasks::spawn(vec![
            Box::pin(agent.clone().run(self.workers)),
            Box::pin(heartbeat.run()),
            Box::pin(watch_nodes),
        ]);
        Running {
            kubeconfig,
            member,
            namespace,
            agent,
            since: Instant::now(),
            tasks,
        }
    }

    /// Secret `name` is gone: the member leaves.
    async fn leave(&self, name: &str) {
        self.wanted.lock().remove(name);
        self.failing.lock().remove(name);
        let was = self.running.lock().remove(name);
        if let Some(mut was) = was {
            was.tasks.stop().await;
            self.retire(name, was);
        }
        self.delete_clusters(name, None).await;
    }

    /// What the hub imported into a member that no longer is one goes, in the
    /// background; a member gone for good is left as it is after a few tries.
    fn retire(&self, name: &str, was: Running) {
        tracing::info!(secret = %name, cluster = %was.agent.cluster(), "push mode: member removed; agent stopped, removing its imports");
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(200);
            for _ in 0..6 {
                match remove_imports(&was.member).await {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(cluster = %was.agent.cluster(), error = format!("{error:#}"), "push mode: cannot remove a departed member's imports yet")
                    }
                }
                tokio::time::sleep(pause).await;
                pause *= 3;
            }
        });
    }

    /// Catches up: departed members' ManagedClusters go, members whose ManagedCluster
    /// went are enrolled again, and every Secret without a running member is enrolled.
    async fn resync(self: &Arc<Self>) {
        if !self.synced.load(Ordering::SeqCst) {
            return;
        }
        let listed = Instant::now();
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
        let secret_of = |c: &ManagedCluster| c.labels().get(PUSH_SECRET_LABEL).cloned();
        let departed: Vec<&ManagedCluster> = {
            let wanted = self.wanted.lock();
            enrolled
                .iter()
                .filter(|c| secret_of(c).is_some_and(|s| !wanted.contains_key(&s)))
                .collect()
        };
        for cluster in departed {
            self.delete_cluster(cluster).await;
        }
        let lost: Vec<Running> = {
            let mut running = self.running.lock();
            let lost: Vec<String> = running
                .iter()
                .filter(|(name, r)| {
                    r.since < listed
                        && !enrolled.iter().any(|c| {
                            secret_of(c).as_deref() == Some(name.as_str())
                                && c.namespace().as_deref() == Some(r.namespace.as_str())
                        })
                })
                .map(|(name, _)| name.clone())
                .collect();
            lost.iter().filter_map(|n| running.remove(n)).collect()
        };
        for mut was in lost {
            tracing::warn!(cluster = %was.agent.cluster(), "push mode: the member's ManagedCluster was deleted; enrolling it again");
            was.tasks.stop().await;
        }
        let names: Vec<String> = self.wanted.lock().keys().cloned().collect();
        for name in names {
            self.start(&name);
        }
    }

    /// Deletes the ManagedClusters enrolled from Secret `name`, but for the one in hub
    /// namespace `keep`; what fails is tried again at the next resync.
    async fn delete_clusters(&self, name: &str, keep: Option<&str>) {
        let clusters: Api<ManagedCluster> = Api::all(self.hub.clone());
        let selector = format!("{PUSH_SECRET_LABEL}={name}");
        match clusters
            .list(&ListParams::default().labels(&selector))
            .await
        {
            Ok(enrolled) => {
                for cluster in enrolled.items {
                    if cluster.namespace().as_deref() != keep {
                        self.delete_cluster(&cluster).await;
                    }
                }
            }
            Err(error) => {
                tracing::warn!(secret = %name, %error, "push mode: cannot list the departed member's ManagedClusters yet");
            }
        }
    }

    /// Deletes a departed member's ManagedCluster; what fails is tried again at the
    /// next resync.
    async fn delete_cluster(&self, cluster: &ManagedCluster) {
        if cluster.metadata.deletion_timestamp.is_some() {
            return;
        }
        let secret = cluster
            .labels()
            .get(PUSH_SECRET_LABEL)
            .cloned()
            .unwrap_or_default();
        let api: Api<ManagedCluster> =
            Api::namespaced(self.hub.clone(), &cluster.namespace().unwrap_or_default());
        match runtime::delete(&api, &cluster.name_any()).await {
            Ok(()) => {
                tracing::info!(%secret, cluster = %cluster.spec.cluster_id, "push mode: ManagedCluster deleted")
            }
            Err(error) => {
                tracing::warn!(%secret, %error, "push mode: cannot delete the departed member's ManagedCluster yet")
            }
        }
    }
}

/// The agent metrics of every running push member, each labelled with its cluster ID,
/// as deployed agents would report them one cluster each.
struct MemberMetrics(Weak<Push>);

impl prometheus::core::Collector for MemberMetrics {
    /// No descriptors: registered unchecked, as members come and go while the hub runs.
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let Some(push) = self.0.upgrade() else {
            return Vec::new();
        };
        let agents: Vec<Arc<Agent>> = {
            let running = push.running.lock();
            running.values().map(|r| r.agent.clone()).collect()
        };
        // The registry gathering this merges the families of the same name.
        let mut families = Vec::new();
        for agent in agents {
            for mut family in agent.metrics.registry.gather() {
                for metric in family.mut_metric() {
                    if metric.get_label().iter().any(|l| l.name() == "cluster") {
                        continue; // labelled by the agent itself: never two of a name
                    }
                    let mut cluster = prometheus::proto::LabelPair::default();
                    cluster.set_name("cluster".into());
                    cluster.set_value(agent.cluster().into());
                    let mut labels = metric.take_label();
                    labels.insert(0, cluster);
                    metric.set_label(labels);
                }
                families.push(family);
            }
        }
        families
    }
}
