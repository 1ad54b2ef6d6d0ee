//! The hub controller: for each `namespace/service`, reads every member's
//! ExportRecord, accepts or rejects each (with an `Accepted` condition saying why),
//! decides the import with [`merge::decide`], and writes the ImportRecord and one
//! EndpointRecord per exporting cluster into the shared namespace. With no accepted
//! export left, it deletes them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use kube::api::Api;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;

use super::conditions::{condition, unchanged};
use super::merge::{self, ExportRecord as MergeInput};
use super::metrics::Metrics;
use super::validate::check_record;
use super::vips::ClustersetIps;
use crate::api::records::{
    endpoint_record_name, record_name, EndpointRecord, EndpointRecordSpec, ExportRecord,
    ImportRecord, ImportRecordSpec, SHARED_NAMESPACE,
};
use crate::membership::health::Withdrawals;
use crate::runtime::{self, Cache, Queue, ServiceKey};

/// The field manager of everything the hub controller writes.
pub const MANAGER: &str = "clusterset-hub";
/// Annotation on records: when the export first reached its agent (RFC 3339, µs), for
/// the propagation-latency metric.
pub const EXPORTED_AT: &str = "mcs.clusterset.io/exported-at";

pub struct Hub {
    client: Client,
    records: Arc<Cache<ExportRecord>>,
    imports: Arc<Cache<ImportRecord>>,
    endpoints: Arc<Cache<EndpointRecord>>,
    queue: Arc<Queue<ServiceKey>>,
    pub metrics: Metrics,
    /// The conflict reasons each service currently counts under, for the gauge.
    conflicts: Mutex<HashMap<ServiceKey, Vec<String>>>,
    /// Clusterset-wide VIPs, when the hub hands them out.
    vips: Option<Mutex<ClustersetIps>>,
    /// Members whose endpoints are held back (their heartbeat is lost).
    withdrawals: Arc<Withdrawals>,
}

pub(crate) fn record_key(r: &ExportRecord) -> Option<ServiceKey> {
    Some(ServiceKey::new(&r.spec.namespace, &r.spec.service))
}
pub(crate) fn import_key(r: &ImportRecord) -> Option<ServiceKey> {
    Some(ServiceKey::new(&r.spec.namespace, &r.spec.service))
}
pub(crate) fn endpoint_key(r: &EndpointRecord) -> Option<ServiceKey> {
    Some(ServiceKey::new(&r.spec.namespace, &r.spec.service))
}

impl Hub {
    /// A hub controller; with `clusterset_ip_cidrs` (one per family) it gives every
    /// ClusterSetIP import one VIP per family from them.
    pub fn new(
        client: Client,
        metrics: Metrics,
        clusterset_ip_cidrs: &[ipnet::IpNet],
    ) -> Arc<Self> {
        let vips = (!clusterset_ip_cidrs.is_empty())
            .then(|| Mutex::new(ClustersetIps::new(clusterset_ip_cidrs)));
        Arc::new(Hub {
            client,
            records: Cache::new(record_key),
            imports: Cache::new(import_key),
            endpoints: Cache::new(endpoint_key),
            queue: Queue::new(),
            metrics,
            conflicts: Mutex::new(HashMap::new()),
            vips,
            withdrawals: Arc::new(Withdrawals::default()),
        })
    }

    /// The members whose endpoints are withdrawn, as the health controller decides.
    pub fn withdrawals(&self) -> &Withdrawals {
        &self.withdrawals
    }

    /// Reconciles every service the cluster exports (its health changed).
    pub fn requeue_cluster(&self, cluster: &str) {
        for record in self.records.all() {
            if record.spec.cluster == cluster {
                if let Some(key) = record_key(&record) {
                    self.queue.add(key);
                }
            }
        }
    }

    /// How many ready endpoints the cluster exports, over all its services.
    pub fn endpoints_of(&self, cluster: &str) -> usize {
        self.records
            .all()
            .iter()
            .filter(|r| r.spec.cluster == cluster)
            .flat_map(|r| &r.spec.endpoints)
            .flat_map(|g| &g.endpoints)
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            .count()
    }

    /// Ready once every cache has its first list.
    pub fn readiness(&self) -> Result<(), String> {
        if self.records.is_synced() && self.imports.is_synced() && self.endpoints.is_synced() {
            Ok(())
        } else {
            Err("hub caches are not synced yet".into())
        }
    }

    /// Watches and reconciles until dropped. Nothing is written before every cache
    /// holds its first list, so a restart never mistakes "not yet seen" for "gone".
    pub async fn run(self: Arc<Self>, workers: usize) {
        let shared = SHARED_NAMESPACE;
        let watches = futures::future::join3(
            self.records.clone().run(
                "exportrecords",
                Api::all(self.client.clone()),
                watcher::Config::default(),
                runtime::enqueue(&self.queue, record_key),
            ),
            self.imports.clone().run(
                "importrecords",
                Api::namespaced(self.client.clone(), shared),
                watcher::Config::default(),
                runtime::enqueue(&self.queue, import_key),
            ),
            self.endpoints.clone().run(
                "endpointrecords",
                Api::namespaced(self.client.clone(), shared),
                watcher::Config::default(),
                runtime::enqueue(&self.queue, endpoint_key),
            ),
        );
        let this = self.clone();
        let work = async move {
            this.records.wait_synced().await;
            this.imports.wait_synced().await;
            this.endpoints.wait_synced().await;
            this.withdrawals.wait_synced().await;
            if let Some(vips) = &this.vips {
                let mut vips = vips.lock();
                for import in this.imports.all() {
                    if let Some(key) = import_key(&import) {
                        vips.restore(&key, &import.spec.ips);
                    }
                }
            }
            tracing::info!("hub caches synced; reconciling");
            let (hub, reporter) = (this.clone(), this.clone());
            this.queue
                .clone()
                .run(
                    workers,
                    move |key: ServiceKey| {
                        let hub = hub.clone();
                        async move { hub.reconcile(&key).await }
                    },
                    move |key, result| {
                        let hub = &reporter;
                        hub.metrics.exports.set(hub.records.len() as i64);
                        hub.metrics.imports.set(hub.imports.len() as i64);
                        hub.metrics.reconciled("hub", key, result);
                    },
                )
                .await;
        };
        tokio::select! {
            _ = watches => {},
            () = work => {},
        }
    }

    async fn reconcile(&self, key: &ServiceKey) -> Result<(), kube::Error> {
        let mut accepted = Vec::new();
        for record in self.records.by_key(key) {
            if record.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let verdict = check_record(
                &record.namespace().unwrap_or_default(),
                &record.name_any(),
                &record.spec,
            );
            self.report(&record, &verdict).await?;
            if verdict.is_ok() {
                accepted.push(record);
            }
        }
        let inputs: Vec<MergeInput> = accepted
            .iter()
            .map(|r| MergeInput {
                cluster: r.spec.cluster.clone(),
                created: r.spec.created.clone(),
                service: r.spec.exported.clone(),
            })
            .collect();
        let decision = merge::decide(&inputs);
        self.count_conflicts(key, decision.as_ref());
        let Some(decision) = decision else {
            return self.withdraw(key).await;
        };
        // Endpoints first: a member that sees the import then finds its endpoints too.
        // A member whose heartbeat is lost keeps its export, but not its endpoints.
        let live: Vec<_> = accepted
            .iter()
            .filter(|r| !self.withdrawals.contains(&r.spec.cluster))
            .collect();
        let clusters: BTreeSet<&str> = live.iter().map(|r| r.spec.cluster.as_str()).collect();
        let shared_endpoints: Api<EndpointRecord> =
            Api::namespaced(self.client.clone(), SHARED_NAMESPACE);
        for record in live {
            let spec = EndpointRecordSpec {
                namespace: key.namespace.clone(),
                service: key.name.clone(),
                cluster: record.spec.cluster.clone(),
                endpoints: record.spec.endpoints.clone(),
            };
            let name = endpoint_record_name(&key.namespace, &key.name, &spec.cluster);
            let current = self.endpoints.get(SHARED_NAMESPACE, &name);
            if current.as_ref().is_some_and(|e| e.spec == spec) {
                continue;
            }
            let object = json!({
                "apiVersion": "mcs.clusterset.io/v1alpha1", "kind": "EndpointRecord",
                "metadata": {"name": name, "namespace": SHARED_NAMESPACE},
                "spec": spec,
            });
            self.endpoints
                .upsert(&shared_endpoints, current.as_deref(), object)
                .await?;
        }
        for stale in self.endpoints.by_key(key) {
            if !clusters.contains(stale.spec.cluster.as_str()) {
                self.endpoints
                    .delete(&shared_endpoints, SHARED_NAMESPACE, &stale.name_any())
                    .await?;
            }
        }
        let name = record_name(&key.namespace, &key.name);
        let existing = self.imports.get(SHARED_NAMESPACE, &name);
        let ips = self.clusterset_ips(key, &decision.import);
        let spec = ImportRecordSpec {
            namespace: key.namespace.clone(),
            service: key.name.clone(),
            import: decision.import,
            clusters: decision.clusters,
            verdicts: decision.verdicts,
            ips,
        };
        let exported_at = accepted
            .iter()
            .filter_map(|r| r.annotations().get(EXPORTED_AT).cloned())
            .max()
            .unwrap_or_default();
        let current_at = existing
            .as_ref()
            .and_then(|e| e.annotations().get(EXPORTED_AT).cloned())
            .unwrap_or_default();
        if existing.as_ref().is_some_and(|e| e.spec == spec) && current_at == exported_at {
            return Ok(());
        }
        let object = json!({
            "apiVersion": "mcs.clusterset.io/v1alpha1", "kind": "ImportRecord",
            "metadata": {"name": name, "namespace": SHARED_NAMESPACE, "annotations": {EXPORTED_AT: exported_at}},
            "spec": spec,
        });
        let api = Api::<ImportRecord>::namespaced(self.client.clone(), SHARED_NAMESPACE);
        self.imports
            .upsert(&api, existing.as_deref(), object)
            .await?;
        Ok(())
    }

    /// The import's VIPs: none unless the hub hands them out and the import is ClusterSetIP.
    fn clusterset_ips(&self, key: &ServiceKey, import: &merge::ExportedService) -> Vec<String> {
        let Some(vips) = &self.vips else {
            return Vec::new();
        };
        let mut vips = vips.lock();
        if import.type_ != merge::ImportType::ClusterSetIP {
            vips.release(key);
            return Vec::new();
        }
        vips.assign(key, &import.ip_families).unwrap_or_else(|why| {
            tracing::warn!(%key, %why, "no clusterset VIP; members use their derived Services' IPs");
            Vec::new()
        })
    }

    /// No export is left: the import and every cluster's endpoints go.
    async fn withdraw(&self, key: &ServiceKey) -> Result<(), kube::Error> {
        let shared_endpoints: Api<EndpointRecord> =
            Api::namespaced(self.client.clone(), SHARED_NAMESPACE);
        for stale in self.endpoints.by_key(key) {
            self.endpoints
                .delete(&shared_endpoints, SHARED_NAMESPACE, &stale.name_any())
                .await?;
        }
        for stale in self.imports.by_key(key) {
            self.imports
                .delete(
                    &Api::<ImportRecord>::namespaced(self.client.clone(), SHARED_NAMESPACE),
                    SHARED_NAMESPACE,
                    &stale.name_any(),
                )
                .await?;
        }
        if let Some(vips) = &self.vips {
            vips.lock().release(key);
        }
        Ok(())
    }

    /// Sets the record's `Accepted` condition when it says something new.
    async fn report(
        &self,
        record: &ExportRecord,
        verdict: &Result<(), String>,
    ) -> Result<(), kube::Error> {
        let existing = record
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let wanted = vec![match verdict {
            Ok(()) => condition(
                &existing,
                "Accepted",
                true,
                "Accepted",
                "the hub merged this export into the import",
                record.metadata.generation,
            ),
            Err(why) => {
                tracing::warn!(record = %record.name_any(), namespace = %record.namespace().unwrap_or_default(), %why, "export record rejected");
                condition(
                    &existing,
                    "Accepted",
                    false,
                    "Invalid",
                    why,
                    record.metadata.generation,
                )
            }
        }];
        if unchanged(&existing, &wanted, &["Accepted"]) {
            return Ok(());
        }
        let status = json!({
            "apiVersion": "mcs.clusterset.io/v1alpha1", "kind": "ExportRecord",
            "status": {"conditions": wanted},
        });
        let api: Api<ExportRecord> =
            Api::namespaced(self.client.clone(), &record.namespace().unwrap_or_default());
        match self
            .records
            .write_status(&api, MANAGER, &record.name_any(), &status)
            .await
        {
            // Deleted meanwhile: its deletion brings the key back.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other.map(|_| ()),
        }
    }

    fn count_conflicts(&self, key: &ServiceKey, decision: Option<&merge::Decision>) {
        let reasons: Vec<String> = decision
            .and_then(|d| d.verdicts.values().find(|v| v.conflict))
            .map(|v| v.reason.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        let mut map = self.conflicts.lock();
        let old = if reasons.is_empty() {
            map.remove(key).unwrap_or_default()
        } else {
            map.insert(key.clone(), reasons.clone()).unwrap_or_default()
        };
        for r in &old {
            self.metrics
                .conflicts
                .with_label_values(&[r.as_str()])
                .dec();
        }
        for r in &reasons {
            self.metrics
                .conflicts
                .with_label_values(&[r.as_str()])
                .inc();
        }
    }
}
