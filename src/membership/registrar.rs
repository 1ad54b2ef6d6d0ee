//! The hub's registrar: answers ClusterRegistrationRequests and provisions members.
//!
//! A request is checked (valid ID and name, no other cluster holding either), then
//! approved — automatically when configured or when it comes from a cluster that is
//! already a member — or left `Pending` for `clusterset approve`. Once approved the
//! member gets its hub namespace, a ServiceAccount there bound to `clusterset:member`
//! (its own namespace) and `clusterset:member-reader` (the shared imports), its
//! ManagedCluster, and a token, which goes back in the request's status.
//!
//! A ManagedCluster carries a finalizer: when it is deleted (by `clusterset leave` or
//! an administrator), the registrar removes the member's binding to the shared
//! imports, its requests and its hub namespace (with its export records, so the hub
//! controller withdraws its exports), then lets the ManagedCluster go.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};

use super::credentials::request_token;
use super::metrics::MembershipMetrics;
use super::{enrol, CLUSTER_ID_ANNOTATION, FINALIZER};
use crate::api::clusters::{
    ClusterRegistrationRequest, ClusterRegistrationRequestSpec, ManagedCluster, RegistrationStatus,
    APPROVED, DENIED, MEMBER_ACCOUNT, PENDING,
};
use crate::api::records::{hub_namespace, ExportRecord, SHARED_NAMESPACE};
use crate::mcs::validate::is_dns_subdomain;
use crate::runtime::cache::own_key;
use crate::runtime::{self, Cache, Queue, ServiceKey};

/// The field manager of what the registrar writes.
pub const MANAGER: &str = "clusterset-registrar";

#[derive(Clone, Debug)]
pub struct RegistrarConfig {
    /// Approve every admissible request without waiting for `clusterset approve`.
    pub auto_approve: bool,
    /// The clusterset's name (members record it in their `clusterset.k8s.io` property).
    pub clusterset: String,
    /// How long a member's hub token is valid.
    pub credential_ttl: Duration,
    /// How long an answered request is kept (once its token has been collected), as
    /// kube-controller-manager's csrcleaner keeps answered CSRs; unanswered ones are
    /// kept a day.
    pub request_retention: Duration,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            auto_approve: false,
            clusterset: "clusterset".into(),
            credential_ttl: Duration::from_secs(365 * 24 * 3600),
            request_retention: Duration::from_secs(3600),
        }
    }
}

pub struct Registrar {
    client: Client,
    config: RegistrarConfig,
    requests: Arc<Cache<ClusterRegistrationRequest>>,
    clusters: Arc<Cache<ManagedCluster>>,
    /// Requests are keyed by name alone (they are cluster-scoped); ManagedClusters by
    /// namespace and name.
    queue: Arc<Queue<ServiceKey>>,
    metrics: MembershipMetrics,
    /// Requests with a timer set to bring them back when they are due for deletion.
    timers: Arc<parking_lot::Mutex<HashMap<String, jiff::Timestamp>>>,
}

/// How long a request nobody answers is kept.
const PENDING_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// What the registrar decided about a request.
enum Answer {
    Deny(&'static str, String),
    Wait,
    Approve(&'static str),
}

impl Registrar {
    pub fn new(client: Client, config: RegistrarConfig, metrics: MembershipMetrics) -> Arc<Self> {
        Arc::new(Registrar {
            client,
            config,
            requests: Cache::new(own_key),
            clusters: Cache::new(own_key),
            queue: Queue::new(),
            metrics,
            timers: Arc::default(),
        })
    }

    pub fn readiness(&self) -> Result<(), String> {
        if self.requests.is_synced() && self.clusters.is_synced() {
            Ok(())
        } else {
            Err("registrar caches are not synced yet".into())
        }
    }

    pub async fn run(self: Arc<Self>) {
        let watches = futures::future::join(
            self.requests.clone().run(
                "clusterregistrationrequests",
                Api::all(self.client.clone()),
                watcher::Config::default(),
                runtime::enqueue(&self.queue, own_key),
            ),
            self.clusters.clone().run(
                "managedclusters",
                Api::all(self.client.clone()),
                watcher::Config::default(),
                {
                    // A member changing or going away may decide the requests for its ID.
                    let (queue, requests) = (self.queue.clone(), self.requests.clone());
                    move |c: &ManagedCluster| {
                        if let Some(key) = own_key(c) {
                            queue.add(key);
                        }
                        for r in requests.all() {
                            if r.spec.cluster_id == c.spec.cluster_id {
                                queue.add(ServiceKey::new("", r.name_any()));
                            }
                        }
                    }
                },
            ),
        );
        let this = self.clone();
        let work = async move {
            this.requests.wait_synced().await;
            this.clusters.wait_synced().await;
            let (registrar, reporter) = (this.clone(), this.clone());
            this.queue
                .clone()
                // One request at a time: two for the same new ID must not both pass.
                .run(
                    1,
                    move |key: ServiceKey| {
                        let registrar = registrar.clone();
                        async move {
                            match key.namespace.is_empty() {
                                true => registrar.reconcile_request(&key.name).await,
                                false => registrar.reconcile_cluster(&key).await,
                            }
                        }
                    },
                    move |key, result| {
                        reporter.count_requests();
                        let outcome = match result {
                            Ok(()) => "ok",
                            Err(error) => {
                                tracing::warn!(%key, error = format!("{error:#}"), "registrar reconcile failed; retrying");
                                "error"
                            }
                        };
                        reporter
                            .metrics
                            .registrar_reconciles
                            .with_label_values(&[outcome])
                            .inc();
                    },
                )
                .await;
        };
        tokio::select! {
            _ = watches => {},
            () = work => {},
        }
    }

    fn count_requests(&self) {
        let requests = self.requests.all();
        for result in [PENDING, APPROVED, DENIED, "New"] {
            let n = requests
                .iter()
                .filter(|r| {
                    let status = r.status.as_ref().and_then(|s| s.result.as_deref());
                    status.unwrap_or("New") == result
                })
                .count();
            self.metrics
                .requests
                .with_label_values(&[result])
                .set(n as i64);
        }
    }

    async fn reconcile_request(&self, name: &str) -> anyhow::Result<()> {
        let Some(request) = self.requests.get("", name) else {
            return Ok(());
        };
        let status = request.status.clone().unwrap_or_default();
        if self.expired(&request, &status) {
            tracing::info!(request = name, result = ?status.result, "registration request expired; deleted");
            let requests: Api<ClusterRegistrationRequest> = Api::all(self.client.clone());
            return Ok(runtime::delete(&requests, name).await?);
        }
        if status.is_settled() {
            return Ok(());
        }
        match self.decide(&request.spec, status.result.as_deref()) {
            Answer::Deny(reason, message) => {
                tracing::info!(request = name, reason, %message, "registration denied");
                self.answer(
                    name,
                    json!({"result": DENIED, "reason": reason, "message": message}),
                )
                .await
            }
            Answer::Wait if status.result.is_none() => {
                let message = format!("waiting for `clusterset approve {name}` on the hub (a cluster that is already a member always waits for it)");
                self.answer(
                    name,
                    json!({"result": PENDING, "reason": "AwaitingApproval", "message": message}),
                )
                .await
            }
            Answer::Wait => Ok(()),
            Answer::Approve(reason) => {
                let answer = self
                    .provision(&request.spec, reason, status.reason.as_deref())
                    .await?;
                let Some(answer) = answer else {
                    return Ok(());
                };
                tracing::info!(request = name, cluster = %request.spec.cluster_id, "registration approved");
                self.answer(name, answer).await
            }
        }
    }

    /// Whether the request has been kept long enough: answered (and its token, if any,
    /// collected) for the retention period, or unanswered for a day. When not yet, a
    /// timer brings it back when it will be.
    fn expired(&self, request: &ClusterRegistrationRequest, status: &RegistrationStatus) -> bool {
        let keep = match (status.is_settled(), status.token.is_some()) {
            (true, true) => return false, // the member has not collected its credentials
            (true, false) => self.config.request_retention,
            (false, _) => PENDING_RETENTION,
        };
        let Some(created) = request.metadata.creation_timestamp.as_ref() else {
            return false;
        };
        let due =
            created.0 + jiff::SignedDuration::try_from(keep).unwrap_or(jiff::SignedDuration::MAX);
        let left = jiff::Timestamp::now().duration_until(due);
        if left.is_negative() || left.is_zero() {
            return true;
        }
        // One timer per request, unless it is now due sooner (answered since).
        let name = request.name_any();
        let mut timers = self.timers.lock();
        if timers.get(&name).is_none_or(|set| due < *set) {
            timers.insert(name.clone(), due);
            let wait = Duration::try_from(left).unwrap_or(keep);
            let (queue, timers) = (self.queue.clone(), self.timers.clone());
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let mut timers = timers.lock();
                if timers.get(&name) == Some(&due) {
                    timers.remove(&name);
                }
                drop(timers);
                queue.add(ServiceKey::new("", name));
            });
        }
        false
    }

    /// Admission checks first (whatever an approver said), then who approves.
    fn decide(&self, spec: &ClusterRegistrationRequestSpec, result: Option<&str>) -> Answer {
        if let Err(why) = check_names(spec) {
            return Answer::Deny("InvalidRequest", why);
        }
        let mut rejoining = false;
        for member in self.clusters.all() {
            let same_id = member.spec.cluster_id == spec.cluster_id;
            if same_id && member.spec.cluster_uid != spec.cluster_uid {
                // The UIDs stay out of the message: they would help an impostor.
                return Answer::Deny(
                    "ClusterIDInUse",
                    format!(
                        "cluster ID {} is already used by member {}, which is another cluster",
                        spec.cluster_id,
                        member.name_any()
                    ),
                );
            }
            if same_id && member.name_any() != spec.cluster_name {
                return Answer::Deny(
                    "AlreadyJoined",
                    format!(
                        "cluster ID {} is a member as {}; leave first to join under another name",
                        spec.cluster_id,
                        member.name_any()
                    ),
                );
            }
            if !same_id && member.name_any() == spec.cluster_name {
                return Answer::Deny(
                    "ClusterNameInUse",
                    format!(
                        "the name {} is taken by the member with cluster ID {}; join with another --name",
                        spec.cluster_name, member.spec.cluster_id
                    ),
                );
            }
            rejoining |= same_id;
        }
        match result {
            Some(APPROVED) => Answer::Approve("ApprovedByAdmin"),
            // New credentials for an existing member are an administrator's call even
            // with auto-approval: anyone with a bootstrap token could ask for them.
            _ if self.config.auto_approve && !rejoining => Answer::Approve("AutoApproved"),
            _ => Answer::Wait,
        }
    }

    /// The member's namespace, identity, bindings and ManagedCluster, then a token:
    /// the status that answers the request (none while the member is still leaving).
    async fn provision(
        &self,
        spec: &ClusterRegistrationRequestSpec,
        reason: &'static str,
        approver_reason: Option<&str>,
    ) -> Result<Option<Value>, kube::Error> {
        let ns = hub_namespace(&spec.cluster_id);
        if let Some(leaving) = self
            .clusters
            .get(&ns, &spec.cluster_name)
            .filter(|c| c.metadata.deletion_timestamp.is_some())
        {
            // Still being cleaned up after a leave; its deletion brings the request back.
            tracing::info!(cluster = %leaving.name_any(), "request waits until the member has left");
            return Ok(None);
        }
        let denied = |message: String| {
            Some(json!({"result": DENIED, "reason": "NamespaceInUse", "message": message}))
        };
        let c = &self.client;
        if let Err(message) = enrol::claim_namespace(c, &spec.cluster_id).await? {
            return Ok(denied(message));
        }
        let subject = json!([{"kind": "ServiceAccount", "name": MEMBER_ACCOUNT, "namespace": ns}]);
        runtime::create_if_absent(
            &Api::<ServiceAccount>::namespaced(c.clone(), &ns),
            json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": MEMBER_ACCOUNT, "namespace": ns},
            }),
        )
        .await?;
        for (binding_ns, name, role) in [
            (
                ns.as_str(),
                "clusterset:member".to_string(),
                "clusterset:member",
            ),
            (
                SHARED_NAMESPACE,
                format!("clusterset:member:{ns}"),
                "clusterset:member-reader",
            ),
        ] {
            runtime::create_if_absent(&Api::<RoleBinding>::namespaced(c.clone(), binding_ns), json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": binding_ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": subject,
            }))
            .await?;
        }
        let ids = (spec.cluster_id.as_str(), spec.cluster_uid.as_str());
        let cluster = match enrol::claim_cluster(c, &ns, &spec.cluster_name, ids, json!({})).await?
        {
            Ok(cluster) => cluster,
            Err(message) => return Ok(denied(message)),
        };
        self.clusters.remember(cluster);
        let (token, (issued, expires)) =
            request_token(&self.client, &ns, self.config.credential_ttl.as_secs()).await?;
        Ok(Some(json!({
            "result": APPROVED,
            "reason": approver_reason.filter(|_| reason == "ApprovedByAdmin").unwrap_or(reason),
            "message": format!("joined as {} in hub namespace {ns}", spec.cluster_name),
            "namespace": ns,
            "managedCluster": spec.cluster_name,
            "token": token,
            "tokenIssued": issued,
            "tokenExpires": expires,
            "clusterset": self.config.clusterset,
        })))
    }

    async fn answer(&self, name: &str, status: Value) -> anyhow::Result<()> {
        let api: Api<ClusterRegistrationRequest> = Api::all(self.client.clone());
        let patch = json!({"status": status});
        let written = self
            .requests
            .write_status(&api, MANAGER, name, &patch)
            .await;
        match written {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => {
                other?;
                // Our own write does not come back as a change (the cache has it
                // already): look at the request again, for its expiry.
                self.queue.add(ServiceKey::new("", name));
                Ok(())
            }
        }
    }

    /// A member: once it heart-beats it has its credentials, and they leave the
    /// requests. Deleted: clean up after it, then let the ManagedCluster go.
    async fn reconcile_cluster(&self, key: &ServiceKey) -> anyhow::Result<()> {
        let Some(cluster) = self.clusters.get(&key.namespace, &key.name) else {
            return Ok(());
        };
        let requests: Api<ClusterRegistrationRequest> = Api::all(self.client.clone());
        let settled: Vec<_> = self
            .requests
            .all()
            .into_iter()
            .filter(|r| {
                r.spec.cluster_id == cluster.spec.cluster_id
                    && r.spec.cluster_uid == cluster.spec.cluster_uid
                    && r.status.as_ref().is_some_and(|s| s.is_settled())
            })
            .collect();
        if cluster.metadata.deletion_timestamp.is_none() {
            let heart_beats = cluster
                .status
                .as_ref()
                .is_some_and(|s| s.last_heartbeat_time.is_some());
            for request in settled.iter().filter(|_| heart_beats) {
                if request.status.as_ref().is_some_and(|s| s.token.is_some()) {
                    self.answer(&request.name_any(), json!({"token": null}))
                        .await?;
                }
            }
            return Ok(());
        }
        if !cluster.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let ns = &key.namespace;
        tracing::info!(cluster = %cluster.spec.cluster_id, namespace = %ns, "member left; cleaning up");
        let bindings: Api<RoleBinding> = Api::namespaced(self.client.clone(), SHARED_NAMESPACE);
        runtime::delete(&bindings, &format!("clusterset:member:{ns}")).await?;
        // A request still waiting may be the cluster joining again: it stays.
        for request in &settled {
            runtime::delete(&requests, &request.name_any()).await?;
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let owned = namespaces.get_opt(ns).await?.is_some_and(|n| {
            n.annotations().get(CLUSTER_ID_ANNOTATION) == Some(&cluster.spec.cluster_id)
        });
        if owned {
            runtime::delete(&namespaces, ns).await?;
            // The member's exports are withdrawn before it is forgotten, so its health
            // (withdrawn while it is deleted) never lets them back.
            let records: Api<ExportRecord> = Api::namespaced(self.client.clone(), ns);
            let left = records.list(&ListParams::default().limit(1)).await?;
            if !left.items.is_empty() {
                anyhow::bail!("waiting for the export records in {ns} to be deleted");
            }
        } else {
            tracing::warn!(namespace = %ns, "not the member's own hub namespace; left in place");
        }
        let remaining: Vec<String> = cluster
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        let api: Api<ManagedCluster> = Api::namespaced(self.client.clone(), ns);
        let patch = json!({"metadata": {"finalizers": remaining, "resourceVersion": cluster.resource_version()}});
        match api
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => Ok(other.map(|_| ())?),
        }
    }
}

/// The ID must be a DNS subdomain of at most 128 characters (KEP-2149), the name an
/// object name.
fn check_names(spec: &ClusterRegistrationRequestSpec) -> Result<(), String> {
    if spec.cluster_id.len() > 128 || !is_dns_subdomain(&spec.cluster_id) {
        return Err(format!(
            "cluster ID {:?} must be a DNS subdomain of at most 128 characters",
            spec.cluster_id
        ));
    }
    if !is_dns_subdomain(&spec.cluster_name) {
        return Err(format!(
            "cluster name {:?} must be a DNS subdomain (lowercase letters, digits, '-' and '.')",
            spec.cluster_name
        ));
    }
    if spec.cluster_uid.is_empty() {
        return Err("clusterUid is empty".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, name: &str, uid: &str) -> ClusterRegistrationRequestSpec {
        ClusterRegistrationRequestSpec {
            cluster_id: id.into(),
            cluster_name: name.into(),
            cluster_uid: uid.into(),
        }
    }

    /// What the registrar denies as InvalidRequest, with the message the requester sees.
    #[test]
    fn requests_with_unusable_names_are_refused_with_the_reason() {
        assert_eq!(check_names(&spec("east.example", "east-1", "u")), Ok(()));
        let long = "a".repeat(129);
        for (bad, says) in [
            (
                spec("East", "east", "u"),
                "cluster ID \"East\" must be a DNS subdomain",
            ),
            (spec(&long, "east", "u"), "of at most 128 characters"),
            (
                spec("east", "east_1", "u"),
                "cluster name \"east_1\" must be a DNS subdomain",
            ),
            (spec("east", "", "u"), "cluster name \"\" must be"),
            (spec("east", "east", ""), "clusterUid is empty"),
        ] {
            let why = check_names(&bad).unwrap_err();
            assert!(why.contains(says), "{bad:?}: {why}");
        }
    }
}
