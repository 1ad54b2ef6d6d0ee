//! The hub's view of member health: each member renews the Lease
//! `clusterset-heartbeat` in its hub namespace; a member whose Lease has not been
//! seen renewed for the grace period turns `Ready=False` and its endpoints are
//! withdrawn from every import; they come back when it heart-beats again.
//!
//! Time is the hub's own: a renewal counts when the hub sees the Lease change, never
//! by the member's clock, and a hub that was down does not hold its own downtime
//! against anyone (every member gets a full grace period from the hub's start). A
//! member's readiness changes at most once per damping period, so a flapping member
//! cannot churn the imports faster than that.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use parking_lot::{Mutex, RwLock};
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::metrics::MembershipMetrics;
use crate::api::clusters::{ManagedCluster, HEARTBEAT_LEASE};
use crate::mcs::conditions::condition;
use crate::mcs::hub::Hub;
use crate::runtime::cache::own_key;
use crate::runtime::Cache;

/// The field manager of the hub's writes to ManagedCluster status.
pub const MANAGER: &str = "clusterset-health";

#[derive(Clone, Copy, Debug)]
pub struct HealthConfig {
    /// How long a member may go without a heartbeat before it is not ready.
    pub grace: Duration,
    /// The least time between two changes of one member's readiness.
    pub damping: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            grace: Duration::from_secs(30),
            damping: Duration::from_secs(10),
        }
    }
}

/// The cluster IDs whose endpoints are withdrawn, read by the hub controller on every
/// reconcile. Until the health controller has loaded what it last published, the hub
/// controller waits, so a restart never re-publishes a dead member's endpoints.
pub struct Withdrawals {
    clusters: RwLock<HashSet<String>>,
    synced: tokio::sync::watch::Sender<bool>,
}

impl Default for Withdrawals {
    /// Nothing withdrawn, and nothing to wait for (no health controller runs).
    fn default() -> Self {
        Withdrawals {
            clusters: RwLock::new(HashSet::new()),
            synced: tokio::sync::watch::Sender::new(true),
        }
    }
}

impl Withdrawals {
    pub fn contains(&self, cluster: &str) -> bool {
        self.clusters.read().contains(cluster)
    }

    /// Returns whether the set changed.
    pub(crate) fn set(&self, cluster: &str, withdrawn: bool) -> bool {
        let mut clusters = self.clusters.write();
        match withdrawn {
            true => clusters.insert(cluster.to_string()),
            false => clusters.remove(cluster),
        }
    }

    pub async fn wait_synced(&self) {
        let _ = self.synced.subscribe().wait_for(|s| *s).await;
    }
}

/// A change callback that wakes the evaluation loop.
fn waker<K>(notify: &Arc<Notify>) -> impl Fn(&K) + Send + Sync {
    let notify = notify.clone();
    move |_| notify.notify_one()
}

/// One member as the health controller follows it.
struct Member {
    cluster_id: String,
    /// The Lease's renewTime when last looked at.
    renew: Option<String>,
    /// When the hub saw the Lease renewed (or started, for a member that was ready).
    seen: Option<Instant>,
    /// The readiness published on the ManagedCluster and in the withdrawals.
    ready: bool,
    /// When `ready` last changed.
    changed: Option<Instant>,
    /// When `lastHeartbeatTime` was last written.
    reported: Option<Instant>,
    /// The ManagedCluster's status does not say what was decided yet.
    unwritten: bool,
}

impl Member {
    /// A member seen for the first time: ready, with a full grace period.
    fn new(cluster: &ManagedCluster, now: Instant) -> Self {
        Member {
            cluster_id: cluster.spec.cluster_id.clone(),
            renew: None,
            seen: Some(now),
            ready: true,
            changed: None,
            reported: None,
            unwritten: false,
        }
    }
}

/// How often `lastHeartbeatTime` is written while a member heart-beats: the Lease
/// carries every heartbeat; the status only says the member is still there (as kubelets
/// update Node status far less often than their Lease).
const HEARTBEAT_REPORT_EVERY: Duration = Duration::from_secs(30);

pub struct Health {
    client: Client,
    config: HealthConfig,
    hub: Arc<Hub>,
    clusters: Arc<Cache<ManagedCluster>>,
    leases: Arc<Cache<Lease>>,
    members: Mutex<HashMap<(String, String), Member>>,
    /// The hub's API server was unreachable: nobody's heartbeat could be seen.
    blind: std::sync::atomic::AtomicBool,
    /// Every member is silent at once (see [`Health::disrupted`]).
    disruption: std::sync::atomic::AtomicBool,
    wake: Arc<Notify>,
    metrics: MembershipMetrics,
}

impl Health {
    /// A health controller feeding `hub`'s withdrawals; the hub controller holds back
    /// until this one has run once.
    pub fn new(
        client: Client,
        hub: Arc<Hub>,
        config: HealthConfig,
        metrics: MembershipMetrics,
    ) -> Arc<Self> {
        hub.withdrawals().synced.send_replace(false);
        Arc::new(Health {
            client,
            config,
            hub,
            clusters: Cache::new(own_key),
            leases: Cache::new(own_key),
            members: Mutex::new(HashMap::new()),
            blind: std::sync::atomic::AtomicBool::new(false),
            disruption: std::sync::atomic::AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
            metrics,
        })
    }

    pub fn readiness(&self) -> Result<(), String> {
        if self.clusters.is_synced() && self.leases.is_synced() {
            Ok(())
        } else {
            Err("health caches are not synced yet".into())
        }
    }

    pub async fn run(self: Arc<Self>) {
        let watches = futures::future::join(
            self.clusters.clone().run(
                "managedclusters",
                Api::all(self.client.clone()),
                watcher::Config::default(),
                waker(&self.wake),
            ),
            self.leases.clone().run(
                "leases",
                Api::all(self.client.clone()),
                watcher::Config::default().fields(&format!("metadata.name={HEARTBEAT_LEASE}")),
                waker(&self.wake),
            ),
        );
        let this = self.clone();
        let work = async move {
            this.clusters.wait_synced().await;
            this.leases.wait_synced().await;
            this.load();
            this.hub.withdrawals().synced.send_replace(true);
            loop {
                let next = this.evaluate().await;
                let wake = this.wake.notified();
                match next {
                    Some(at) => {
                        tokio::select! {
                            () = tokio::time::sleep_until(at) => {},
                            () = wake => {},
                        }
                    }
                    None => wake.await,
                }
            }
        };
        tokio::select! {
            _ = watches => {},
            () = work => {},
        }
    }

    /// What was published before this process started: members last seen not ready
    /// stay withdrawn until they heart-beat again; the others get a full grace period.
    fn load(&self) {
        let now = Instant::now();
        let mut members = self.members.lock();
        for cluster in self.clusters.all() {
            let ready = !cluster
                .status
                .iter()
                .flat_map(|s| &s.conditions)
                .any(|c| c.type_ == "Ready" && c.status == "False");
            let key = (cluster.namespace().unwrap_or_default(), cluster.name_any());
            let renew = self.renew_time(&key.0);
            if !ready {
                self.hub.withdrawals().set(&cluster.spec.cluster_id, true);
            }
            members.insert(
                key,
                Member {
                    renew,
                    seen: ready.then_some(now),
                    ready,
                    ..Member::new(&cluster, now)
                },
            );
        }
    }

    /// Whether the watches deliver. While the hub's API server is unreachable no one
    /// can be judged; once it is back, every ready member gets a full grace period
    /// again, since none could renew meanwhile.
    fn see_again(&self, now: Instant) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        if !self.leases.is_live() || !self.clusters.is_live() {
            if !self.blind.swap(true, SeqCst) {
                tracing::warn!(
                    "hub API server unreachable: member health is not judged until it is back"
                );
            }
            return false;
        }
        if self.blind.swap(false, SeqCst) {
            let mut members = self.members.lock();
            for member in members.values_mut().filter(|m| m.ready) {
                member.seen = Some(now);
            }
        }
        true
    }

    fn renew_time(&self, namespace: &str) -> Option<String> {
        let lease = self.leases.get(namespace, HEARTBEAT_LEASE)?;
        let renew = lease.spec.as_ref()?.renew_time.as_ref()?;
        Some(renew.0.to_string())
    }

    /// Follows every member's Lease, publishes changes of readiness, and says when it
    /// next needs to look (a grace period or damping running out, a write to retry).
    async fn evaluate(&self) -> Option<Instant> {
        let now = Instant::now();
        if !self.see_again(now) {
            return None; // judged again once the watches deliver
        }
        let mut next: Option<Instant> = None;
        let mut soonest = |at: Instant| next = Some(next.map_or(at, |n: Instant| n.min(at)));
        let writes = {
            let mut members = self.members.lock();
            let clusters = self.clusters.all();
            let key_of = |c: &ManagedCluster| (c.namespace().unwrap_or_default(), c.name_any());
            // A member being deleted stays judged (and withdrawn, if it was) until its
            // ManagedCluster is gone, which is after its export records are.
            let present: HashSet<(String, String)> = clusters.iter().map(|c| key_of(c)).collect();
            members.retain(|key, m| {
                let keep = present.contains(key);
                if !keep {
                    self.forget(&m.cluster_id);
                }
                keep
            });
            let mut observed = Vec::new();
            for cluster in clusters {
                let key = key_of(&cluster);
                let member = members
                    .entry(key.clone())
                    .or_insert_with(|| Member::new(&cluster, now));
                let renew = self.renew_time(&key.0);
                let renewed = renew.is_some() && renew != member.renew;
                if renewed {
                    member.renew = renew;
                    member.seen = Some(now);
                }
                let alive = member
                    .seen
                    .is_some_and(|t| now.duration_since(t) < self.config.grace);
                if let Some(t) = member.seen.filter(|_| alive) {
                    soonest(t + self.config.grace);
                }
                let age = member
                    .seen
                    .map_or(f64::NAN, |t| now.duration_since(t).as_secs_f64());
                self.metrics
                    .heartbeat_age
                    .with_label_values(&[member.cluster_id.as_str()])
                    .set(age);
                observed.push((cluster, key, renewed, alive));
            }
            let disrupted = self.disrupted(&observed);
            let mut writes = Vec::new();
            for (cluster, key, renewed, alive) in observed {
                let member = members.get_mut(&key).expect("entered above");
                let mut flipped = false;
                // In a full disruption nobody is withdrawn; recoveries still count.
                if alive != member.ready && (alive || !disrupted) {
                    let free_at = member.changed.map(|c| c + self.config.damping);
                    match free_at.filter(|at| *at > now) {
                        Some(at) => soonest(at),
                        None => {
                            member.ready = alive;
                            member.changed = Some(now);
                            flipped = true;
                        }
                    }
                }
                let heartbeat_due = renewed
                    && member
                        .reported
                        .is_none_or(|t| now.duration_since(t) >= HEARTBEAT_REPORT_EVERY);
                member.unwritten |= flipped || heartbeat_due;
                if member.unwritten {
                    let id = member.cluster_id.clone();
                    writes.push((cluster, key, id, member.ready, flipped, heartbeat_due));
                }
            }
            let ready = members.values().filter(|m| m.ready).count();
            let gauge = |label: &str, n: usize| {
                self.metrics
                    .members
                    .with_label_values(&[label])
                    .set(n as i64)
            };
            gauge("true", ready);
            gauge("false", members.len() - ready);
            writes
        };
        for (cluster, key, id, ready, flipped, heartbeat) in writes {
            if flipped {
                self.publish(&id, ready);
            }
            let written = self.write_status(&cluster, ready, heartbeat).await;
            let mut members = self.members.lock();
            match (written, members.get_mut(&key)) {
                (Ok(()), Some(member)) => {
                    member.unwritten = false;
                    if heartbeat {
                        member.reported = Some(now);
                    }
                }
                (Err(error), _) => {
                    tracing::warn!(cluster = %id, %error, "cannot write the ManagedCluster's status; retrying");
                    soonest(Instant::now() + Duration::from_secs(1));
                }
                (Ok(()), None) => {}
            }
        }
        for id in self.withdrawn_ids() {
            let n = self.hub.endpoints_of(&id);
            self.metrics
                .withdrawn_endpoints
                .with_label_values(&[id.as_str()])
                .set(n as i64);
        }
        next
    }

    /// Whether every member (of two or more) is silent at once: that says more about
    /// the hub's side of the network than about the members, so, as the node lifecycle
    /// controller in a full disruption, nobody is withdrawn for it.
    fn disrupted<C, K>(&self, observed: &[(C, K, bool, bool)]) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        let all_silent = observed.len() >= 2 && observed.iter().all(|o| !o.3);
        if all_silent && !self.disruption.swap(true, SeqCst) {
            tracing::warn!(members = observed.len(), "every member missed its heartbeats at once: assuming the hub is cut off, withdrawing nobody");
        } else if !all_silent {
            self.disruption.store(false, SeqCst);
        }
        all_silent
    }

    fn withdrawn_ids(&self) -> Vec<String> {
        let members = self.members.lock();
        members
            .values()
            .filter(|m| !m.ready)
            .map(|m| m.cluster_id.clone())
            .collect()
    }

    /// Withdraws or restores the member's endpoints in every import.
    fn publish(&self, cluster: &str, ready: bool) {
        if !self.hub.withdrawals().set(cluster, !ready) {
            return;
        }
        match ready {
            true => {
                tracing::info!(%cluster, "member heart-beats again; its endpoints are restored");
                self.metrics
                    .withdrawn_endpoints
                    .with_label_values(&[cluster])
                    .set(0);
            }
            false => {
                tracing::warn!(%cluster, grace = ?self.config.grace, "member missed its heartbeats; its endpoints are withdrawn");
                self.metrics.withdrawals.with_label_values(&[cluster]).inc();
            }
        }
        self.hub.requeue_cluster(cluster);
    }

    /// A member that left: nothing of it is held back any more.
    fn forget(&self, cluster: &str) {
        if self.hub.withdrawals().set(cluster, false) {
            self.hub.requeue_cluster(cluster);
        }
        let _ = self.metrics.heartbeat_age.remove_label_values(&[cluster]);
        let _ = self
            .metrics
            .withdrawn_endpoints
            .remove_label_values(&[cluster]);
    }

    /// The `Ready` condition, and the time of the heartbeat when one was just seen.
    async fn write_status(
        &self,
        cluster: &ManagedCluster,
        ready: bool,
        renewed: bool,
    ) -> Result<(), kube::Error> {
        let existing = cluster
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let (reason, message) = match ready {
            true => ("HeartbeatSeen", "the member renews its heartbeat Lease".to_string()),
            false => (
                "HeartbeatLost",
                format!(
                    "no heartbeat for more than {}s: the member's endpoints are withdrawn from every import",
                    self.config.grace.as_secs_f64()
                ),
            ),
        };
        let ready = condition(&existing, "Ready", ready, reason, &message, None);
        let mut status = json!({"status": {"conditions": [ready]}});
        if renewed {
            let now = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            status["status"]["lastHeartbeatTime"] = json!(now);
        }
        let api: Api<ManagedCluster> = Api::namespaced(
            self.client.clone(),
            &cluster.namespace().unwrap_or_default(),
        );
        match self
            .clusters
            .write_status(&api, MANAGER, &cluster.name_any(), &status)
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other.map(|_| ()),
        }
    }
}
