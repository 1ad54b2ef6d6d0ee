//! The member agent: two reconcilers over one set of watch-fed caches.
//!
//! - Exports (keyed by `namespace/name` of a local ServiceExport): validate it
//!   (`Valid`), report it with its endpoints as an ExportRecord in this cluster's hub
//!   namespace (or delete the record), and copy the hub's verdicts back (`Ready`,
//!   `Conflict`).
//! - Imports (keyed by the hub's ImportRecords): in each local namespace that exists,
//!   hold the ServiceImport, its derived Service and one set of EndpointSlices per
//!   exporting cluster; remove them when the hub stops listing the service.
//!
//! Nothing is written before every cache has its first list, and the hub caches keep
//! their contents while the hub is unreachable: an outage freezes imports, it never
//! deletes them.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};

use super::conditions::{condition, noteworthy, unchanged};
use super::endpoints::{self, is_imported};
use super::hub::{endpoint_key, import_key, record_key, EXPORTED_AT};
use super::imports::{derived_name, derived_service, owner, service_import, DERIVED_SERVICE};
use super::merge::ImportType;
use super::metrics::Metrics;
use super::validate::{exported_service, validity};
use crate::api::multicluster::{ServiceExport, ServiceImport};
use crate::api::records::{
    endpoint_record_name, hub_namespace, record_name, EndpointRecord, ExportRecord,
    ExportRecordSpec, ImportRecord, SHARED_NAMESPACE,
};
use crate::runtime::cache::own_key;
use crate::runtime::events::Recorder;
use crate::runtime::{self, Cache, Queue, ServiceKey};

/// The field manager of everything the agent writes.
pub const MANAGER: &str = "clusterset-agent";

pub struct Agent {
    member: Client,
    hub: Client,
    cluster: String,
    hub_namespace: String,
    exports: Arc<Cache<ServiceExport>>,
    services: Arc<Cache<Service>>,
    slices: Arc<Cache<EndpointSlice>>,
    namespaces: Arc<Cache<Namespace>>,
    service_imports: Arc<Cache<ServiceImport>>,
    records: Arc<Cache<ExportRecord>>,
    import_records: Arc<Cache<ImportRecord>>,
    endpoint_records: Arc<Cache<EndpointRecord>>,
    export_queue: Arc<Queue<ServiceKey>>,
    import_queue: Arc<Queue<ServiceKey>>,
    /// Events on the member's ServiceExports when their conditions change.
    events: Recorder,
    pub metrics: Metrics,
}

/// A source slice counts for the Service it belongs to; an imported one for the
/// multi-cluster service it was imported for.
fn slice_key(slice: &EndpointSlice) -> Option<ServiceKey> {
    let label = if is_imported(slice) {
        endpoints::MCS_SERVICE_NAME
    } else {
        endpoints::SERVICE_NAME
    };
    Some(ServiceKey::new(
        slice.metadata.namespace.clone()?,
        endpoints::label(slice, label)?,
    ))
}

fn no_key<K>(_: &K) -> Option<ServiceKey> {
    None
}

/// The ServiceImport a derived Service was made for.
fn derived_owner(svc: &Service) -> Option<ServiceKey> {
    let owner = svc
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == "ServiceImport")?;
    Some(ServiceKey::new(
        svc.metadata.namespace.clone()?,
        &owner.name,
    ))
}

impl Agent {
    pub fn new(member: Client, hub: Client, cluster: String, metrics: Metrics) -> Arc<Self> {
        Arc::new(Agent {
            events: Recorder::new(member.clone(), MANAGER, &cluster),
            member,
            hub,
            hub_namespace: hub_namespace(&cluster),
            cluster,
            exports: Cache::new(own_key),
            services: Cache::new(own_key),
            slices: Cache::new(slice_key),
            namespaces: Cache::new(no_key),
            service_imports: Cache::new(own_key),
            records: Cache::new(record_key),
            import_records: Cache::new(import_key),
            endpoint_records: Cache::new(endpoint_key),
            export_queue: Queue::new(),
            import_queue: Queue::new(),
            metrics,
        })
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    fn synced(&self) -> bool {
        self.exports.is_synced()
            && self.services.is_synced()
            && self.slices.is_synced()
            && self.namespaces.is_synced()
            && self.service_imports.is_synced()
            && self.records.is_synced()
            && self.import_records.is_synced()
            && self.endpoint_records.is_synced()
    }

    /// Ready once every cache, member and hub, has its first list.
    pub fn readiness(&self) -> Result<(), String> {
        if self.synced() {
            Ok(())
        } else {
            Err(format!("agent {}: caches not synced yet", self.cluster))
        }
    }

    /// Watches and reconciles until dropped.
    pub async fn run(self: Arc<Self>, workers: usize) {
        let watches = futures::future::join(self.clone().watch_member(), self.clone().watch_hub());
        let this = self.clone();
        let work = async move {
            while !this.synced() {
                // Each cache says when it is synced; wait for all of them in turn.
                this.exports.wait_synced().await;
                this.services.wait_synced().await;
                this.slices.wait_synced().await;
                this.namespaces.wait_synced().await;
                this.service_imports.wait_synced().await;
                this.records.wait_synced().await;
                this.import_records.wait_synced().await;
                this.endpoint_records.wait_synced().await;
            }
            tracing::info!(cluster = %this.cluster, "agent caches synced; reconciling");
            let exports = {
                let (agent, metrics) = (this.clone(), this.metrics.clone());
                this.export_queue.clone().run(
                    workers,
                    move |key: ServiceKey| {
                        let agent = agent.clone();
                        async move { agent.reconcile_export(&key).await }
                    },
                    move |key, result| metrics.reconciled("export", key, result),
                )
            };
            let imports = {
                let (agent, metrics) = (this.clone(), this.metrics.clone());
                this.import_queue.clone().run(
                    workers,
                    move |key: ServiceKey| {
                        let agent = agent.clone();
                        async move { agent.reconcile_import(&key).await }
                    },
                    move |key, result| metrics.reconciled("import", key, result),
                )
            };
            futures::future::join(exports, imports).await;
        };
        tokio::select! {
            _ = watches => {},
            () = work => {},
        }
    }

    async fn watch_member(self: Arc<Self>) {
        let c = &self.member;
        let all = watcher::Config::default();
        let (eq, iq) = (&self.export_queue, &self.import_queue);
        let services = {
            let (eq, iq) = (eq.clone(), iq.clone());
            move |svc: &Service| {
                if let Some(k) = own_key(svc) {
                    eq.add(k);
                }
                if let Some(k) = derived_owner(svc) {
                    iq.add(k);
                }
            }
        };
        let slices = {
            let (eq, iq) = (eq.clone(), iq.clone());
            move |s: &EndpointSlice| {
                if let Some(k) = slice_key(s) {
                    if is_imported(s) {
                        iq.add(k)
                    } else {
                        eq.add(k)
                    }
                }
            }
        };
        let namespaces = {
            let (iq, records) = (iq.clone(), self.import_records.clone());
            move |ns: &Namespace| {
                let name = ns.name_any();
                for r in records.all().iter().filter(|r| r.spec.namespace == name) {
                    iq.add(ServiceKey::new(&r.spec.namespace, &r.spec.service));
                }
            }
        };
        let imports = {
            let (eq, iq) = (eq.clone(), iq.clone());
            move |si: &ServiceImport| {
                if let Some(k) = own_key(si) {
                    eq.add(k.clone());
                    iq.add(k);
                }
            }
        };
        futures::future::join5(
            self.exports.clone().run(
                "serviceexports",
                Api::all(c.clone()),
                all.clone(),
                runtime::enqueue(eq, own_key),
            ),
            self.services
                .clone()
                .run("services", Api::all(c.clone()), all.clone(), services),
            self.slices
                .clone()
                .run("endpointslices", Api::all(c.clone()), all.clone(), slices),
            self.namespaces
                .clone()
                .run("namespaces", Api::all(c.clone()), all.clone(), namespaces),
            self.service_imports
                .clone()
                .run("serviceimports", Api::all(c.clone()), all, imports),
        )
        .await;
    }

    async fn watch_hub(self: Arc<Self>) {
        let h = &self.hub;
        let all = watcher::Config::default();
        let (eq, iq) = (&self.export_queue, &self.import_queue);
        let import_records = {
            let (eq, iq) = (eq.clone(), iq.clone());
            move |r: &ImportRecord| {
                if let Some(k) = import_key(r) {
                    eq.add(k.clone());
                    iq.add(k);
                }
            }
        };
        futures::future::join3(
            self.records.clone().run(
                "exportrecords",
                Api::namespaced(h.clone(), &self.hub_namespace),
                all.clone(),
                runtime::enqueue(eq, record_key),
            ),
            self.import_records.clone().run(
                "importrecords",
                Api::namespaced(h.clone(), SHARED_NAMESPACE),
                all.clone(),
                import_records,
            ),
            self.endpoint_records.clone().run(
                "endpointrecords",
                Api::namespaced(h.clone(), SHARED_NAMESPACE),
                all,
                runtime::enqueue(iq, endpoint_key),
            ),
        )
        .await;
    }

    // -----------------------------------------------------------------------
    // Exports

    async fn reconcile_export(&self, key: &ServiceKey) -> Result<(), kube::Error> {
        let name = record_name(&key.namespace, &key.name);
        let record = self.records.get(&self.hub_namespace, &name);
        let records: Api<ExportRecord> = Api::namespaced(self.hub.clone(), &self.hub_namespace);
        let export = self
            .exports
            .get(&key.namespace, &key.name)
            .filter(|e| e.metadata.deletion_timestamp.is_none());
        let Some(export) = export else {
            if record.is_some() {
                self.records
                    .delete(&records, &self.hub_namespace, &name)
                    .await?;
            }
            return Ok(());
        };
        let service = self.services.get(&key.namespace, &key.name);
        let v = validity(&export, service.as_deref());
        let existing = export
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let generation = export.metadata.generation;
        let mut wanted = vec![condition(
            &existing, "Valid", v.valid, v.reason, &v.message, generation,
        )];
        match service.as_deref().filter(|_| v.valid) {
            Some(service) => {
                let spec = ExportRecordSpec {
                    cluster: self.cluster.clone(),
                    namespace: key.namespace.clone(),
                    service: key.name.clone(),
                    created: export
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .unwrap_or_default(),
                    exported: exported_service(&export, service),
                    endpoints: endpoints::report(
                        self.slices
                            .by_key(key)
                            .iter()
                            .filter(|s| !is_imported(s))
                            .map(|s| s.as_ref()),
                    ),
                };
                if record.as_ref().is_none_or(|r| r.spec != spec) {
                    let at = record
                        .as_ref()
                        .and_then(|r| r.annotations().get(EXPORTED_AT).cloned())
                        .unwrap_or_else(now_micros);
                    let object = json!({
                        "apiVersion": "mcs.clusterset.io/v1alpha1", "kind": "ExportRecord",
                        "metadata": {"name": name, "namespace": self.hub_namespace, "annotations": {EXPORTED_AT: at}},
                        "spec": spec,
                    });
                    self.records
                        .upsert(&records, record.as_deref(), object)
                        .await?;
                }
                wanted.extend(self.verdict(key, record.as_deref(), &existing, generation));
            }
            None => {
                if record.is_some() {
                    self.records
                        .delete(&records, &self.hub_namespace, &name)
                        .await?;
                }
                let (reason, message) = if v.reason == "NoService" {
                    ("Pending", format!("waiting for Service {}", key.name))
                } else {
                    ("Failed", format!("not exported: {}", v.message))
                };
                wanted.push(condition(
                    &existing, "Ready", false, reason, &message, generation,
                ));
            }
        }
        self.metrics.exports.set(self.records.len() as i64);
        if unchanged(&existing, &wanted, &["Valid", "Ready", "Conflict"]) {
            return Ok(());
        }
        let status = json!({
            "apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
            "status": {"conditions": wanted},
        });
        let api: Api<ServiceExport> = Api::namespaced(self.member.clone(), &key.namespace);
        match self
            .exports
            .write_status(&api, MANAGER, &key.name, &status)
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            other => other.map(|_| ())?,
        }
        for c in &wanted {
            if let Some(type_) = noteworthy(&existing, c) {
                self.events
                    .publish(export.as_ref(), type_, &c.reason, &c.message)
                    .await;
            }
        }
        Ok(())
    }

    /// `Ready` and `Conflict` of a valid export, from what the hub made of its record.
    fn verdict(
        &self,
        key: &ServiceKey,
        record: Option<&ExportRecord>,
        existing: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        generation: Option<i64>,
    ) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        let rejected = record.and_then(|r| r.status.as_ref()).and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Accepted" && c.status == "False")
        });
        if let Some(rejected) = rejected {
            let message = format!("the hub rejected the export: {}", rejected.message);
            return vec![condition(
                existing, "Ready", false, "Failed", &message, generation,
            )];
        }
        let decision = self
            .import_records
            .get(SHARED_NAMESPACE, &record_name(&key.namespace, &key.name));
        let verdict = decision
            .as_ref()
            .and_then(|d| d.spec.verdicts.get(&self.cluster));
        let imported_here = self
            .service_imports
            .get(&key.namespace, &key.name)
            .is_some();
        match (decision.as_ref(), verdict) {
            (Some(d), Some(v)) if imported_here => {
                let message = format!(
                    "exported to the clusterset from {} cluster(s): {}",
                    d.spec.clusters.len(),
                    d.spec.clusters.join(", ")
                );
                vec![
                    condition(existing, "Ready", true, "Exported", &message, generation),
                    condition(
                        existing, "Conflict", v.conflict, &v.reason, &v.message, generation,
                    ),
                ]
            }
            _ => vec![condition(
                existing,
                "Ready",
                false,
                "Pending",
                "the export is not yet on the hub and imported",
                generation,
            )],
        }
    }

    // -----------------------------------------------------------------------
    // Imports

    async fn reconcile_import(&self, key: &ServiceKey) -> Result<(), kube::Error> {
        let decision = self
            .import_records
            .get(SHARED_NAMESPACE, &record_name(&key.namespace, &key.name));
        let namespace_open = self
            .namespaces
            .get("", &key.namespace)
            .is_some_and(|ns| ns.metadata.deletion_timestamp.is_none());
        let local = self.service_imports.get(&key.namespace, &key.name);
        let imports: Api<ServiceImport> = Api::namespaced(self.member.clone(), &key.namespace);
        let Some(decision) = decision.filter(|_| namespace_open) else {
            // Only what this agent made goes; the derived Service and slices follow
            // through their owner reference.
            if local
                .as_ref()
                .is_some_and(|l| l.annotations().contains_key(DERIVED_SERVICE))
                && namespace_open
            {
                self.service_imports
                    .delete(&imports, &key.namespace, &key.name)
                    .await?;
            }
            return Ok(());
        };
        let spec = &decision.spec;
        let derived = derived_name(&key.namespace, &key.name);
        let derived_svc = self.services.get(&key.namespace, &derived);
        let ips = if !spec.ips.is_empty() {
            spec.ips.clone()
        } else {
            cluster_ips(derived_svc.as_deref())
        };
        let desired = service_import(&key.namespace, &key.name, &spec.import, &ips);
        let uid = match local.as_deref() {
            Some(l) if import_matches(l, &desired) => l.uid().unwrap_or_default(),
            _ => self
                .service_imports
                .upsert(&imports, local.as_deref(), desired)
                .await?
                .uid()
                .unwrap_or_default(),
        };
        let mut family_error = None;
        let want_svc = derived_service(&key.namespace, &key.name, &spec.import, &uid);
        let mut ips_now = ips.clone();
        if derived_svc
            .as_deref()
            .is_none_or(|s| !derived_matches(s, &want_svc))
        {
            let services: Api<Service> = Api::namespaced(self.member.clone(), &key.namespace);
            let written = match derived_svc.as_deref() {
                None => {
                    self.services
                        .upsert(&services, None, want_svc.clone())
                        .await
                }
                // Headlessness and the primary family cannot change in place.
                Some(have) if !updatable(have, &want_svc) => {
                    self.services
                        .delete(&services, &key.namespace, &derived)
                        .await?;
                    self.import_queue.add(key.clone());
                    return Ok(());
                }
                // Replaced whole (so dropped ports and a new owner take), keeping the
                // cluster IPs the API server allocated.
                Some(have) => {
                    let mut replacement = want_svc.clone();
                    if let Some(spec) = &have.spec {
                        replacement["spec"]["clusterIP"] = json!(spec.cluster_ip);
                        replacement["spec"]["clusterIPs"] = json!(spec.cluster_ips);
                    }
                    self.services
                        .upsert(&services, Some(have), replacement)
                        .await
                }
            };
            match written {
                Ok(svc) if spec.ips.is_empty() => ips_now = cluster_ips(Some(&svc)),
                Ok(_) => {}
                Err(kube::Error::Api(s))
                    if s.code == 422 && s.message.to_lowercase().contains("famil") =>
                {
                    family_error = Some(s.message)
                }
                Err(e) => return Err(e),
            }
        }
        self.sync_slices(key, &derived, &uid, &spec.clusters)
            .await?;
        if local.is_none() {
            self.observe_propagation(&decision);
        }
        if ips_now != ips {
            // The IPs land with the next pass (the derived Service is cached by now);
            // the status waits for them, so it is written once, Ready.
            self.import_queue.add(key.clone());
            return Ok(());
        }
        self.import_status(
            key,
            local.as_deref(),
            &spec.clusters,
            &spec.import.type_,
            &ips,
            family_error,
        )
        .await?;
        self.metrics.imports.set(self.service_imports.len() as i64);
        Ok(())
    }

    /// One set of slices per exporting cluster; slices of clusters no longer listed go.
    async fn sync_slices(
        &self,
        key: &ServiceKey,
        derived: &str,
        uid: &str,
        clusters: &[String],
    ) -> Result<(), kube::Error> {
        let api: Api<EndpointSlice> = Api::namespaced(self.member.clone(), &key.namespace);
        let mut wanted = Vec::new();
        for cluster in clusters {
            let name = endpoint_record_name(&key.namespace, &key.name, cluster);
            if let Some(record) = self.endpoint_records.get(SHARED_NAMESPACE, &name) {
                wanted.extend(endpoints::imported_slices(
                    &key.name,
                    derived,
                    cluster,
                    &record.spec.endpoints,
                ));
            }
        }
        let existing: Vec<Arc<EndpointSlice>> = self
            .slices
            .by_key(key)
            .into_iter()
            .filter(|s| is_imported(s))
            .collect();
        for mut slice in wanted.iter().cloned() {
            let name = slice["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            slice["metadata"]["namespace"] = json!(key.namespace);
            slice["metadata"]["ownerReferences"] = json!([owner(&key.name, uid)]);
            let current = existing.iter().find(|s| s.name_any() == name);
            if current.is_some_and(|c| slice_matches(c, &slice)) {
                continue;
            }
            self.slices
                .upsert(&api, current.map(|c| c.as_ref()), slice)
                .await?;
        }
        for stale in &existing {
            let name = stale.name_any();
            if !wanted
                .iter()
                .any(|w| w["metadata"]["name"] == name.as_str())
            {
                self.slices.delete(&api, &key.namespace, &name).await?;
            }
        }
        Ok(())
    }

    async fn import_status(
        &self,
        key: &ServiceKey,
        local: Option<&ServiceImport>,
        clusters: &[String],
        type_: &ImportType,
        ips: &[String],
        family_error: Option<String>,
    ) -> Result<(), kube::Error> {
        let existing = local
            .and_then(|l| l.status.as_ref())
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let ready = match (family_error, type_) {
            (Some(error), _) => condition(
                &existing,
                "Ready",
                false,
                "IPFamilyNotSupported",
                &error,
                None,
            ),
            (None, ImportType::ClusterSetIP) if ips.is_empty() => condition(
                &existing,
                "Ready",
                false,
                "Pending",
                "waiting for the derived Service's cluster IPs",
                None,
            ),
            (None, _) => condition(
                &existing,
                "Ready",
                true,
                "Ready",
                "imported from the clusterset",
                None,
            ),
        };
        let have_clusters: Vec<String> = local
            .and_then(|l| l.status.as_ref())
            .map(|s| s.clusters.iter().map(|c| c.cluster.clone()).collect())
            .unwrap_or_default();
        if have_clusters == clusters
            && unchanged(&existing, std::slice::from_ref(&ready), &["Ready"])
        {
            return Ok(());
        }
        let status = json!({
            "apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
            "status": {
                "clusters": clusters.iter().map(|c| json!({"cluster": c})).collect::<Vec<_>>(),
                "conditions": [ready],
            },
        });
        let api: Api<ServiceImport> = Api::namespaced(self.member.clone(), &key.namespace);
        match self
            .service_imports
            .write_status(&api, MANAGER, &key.name, &status)
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other.map(|_| ()),
        }
    }

    fn observe_propagation(&self, decision: &ImportRecord) {
        let at = decision
            .annotations()
            .get(EXPORTED_AT)
            .and_then(|a| a.parse::<jiff::Timestamp>().ok());
        if let Some(at) = at {
            let seconds = jiff::Timestamp::now().duration_since(at).as_secs_f64();
            if seconds >= 0.0 {
                self.metrics.propagation.observe(seconds);
            }
        }
    }
}

fn now_micros() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Microsecond)
        .unwrap_or(now)
        .to_string()
}

/// The derived Service's cluster IPs, primary family first.
fn cluster_ips(svc: Option<&Service>) -> Vec<String> {
    svc.and_then(|s| s.spec.as_ref())
        .and_then(|s| s.cluster_ips.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|ip| ip != "None")
        .collect()
}

/// Whether the stored import says what `desired` says (labels, annotations, spec).
fn import_matches(existing: &ServiceImport, desired: &Value) -> bool {
    let spec: Option<crate::api::multicluster::ServiceImportSpec> =
        serde_json::from_value(desired["spec"].clone()).ok();
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_value(desired["metadata"]["labels"].clone()).unwrap_or_default();
    let annotations: std::collections::BTreeMap<String, String> =
        serde_json::from_value(desired["metadata"]["annotations"].clone()).unwrap_or_default();
    spec.as_ref() == Some(&existing.spec)
        && existing.labels() == &labels
        && existing.annotations() == &annotations
}

/// Whether `existing` can become `desired` by an update: neither headlessness nor the
/// primary IP family may change on a Service.
fn updatable(existing: &Service, desired: &Value) -> bool {
    let spec = existing.spec.clone().unwrap_or_default();
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let primary = spec.ip_families.as_ref().and_then(|f| f.first().cloned());
    headless == (desired["spec"]["clusterIP"] == "None")
        && (headless || primary.as_deref() == desired["spec"]["ipFamilies"][0].as_str())
}

/// Whether the derived Service has the ports, families, headlessness and owner wanted.
fn derived_matches(existing: &Service, desired: &Value) -> bool {
    let Ok(want) = serde_json::from_value::<Service>(desired.clone()) else {
        return false;
    };
    let (Some(have), Some(want_spec)) = (existing.spec.as_ref(), want.spec.as_ref()) else {
        return false;
    };
    let headless =
        |s: &k8s_openapi::api::core::v1::ServiceSpec| s.cluster_ip.as_deref() == Some("None");
    have.ports == want_spec.ports
        && have.ip_families == want_spec.ip_families
        && headless(have) == headless(want_spec)
        && have.session_affinity == want_spec.session_affinity
        && existing.metadata.owner_references == want.metadata.owner_references
}

fn slice_matches(existing: &EndpointSlice, desired: &Value) -> bool {
    let Ok(want) = serde_json::from_value::<EndpointSlice>(desired.clone()) else {
        return false;
    };
    // The API server hands back an empty port list as none.
    let ports = |p: &Option<Vec<k8s_openapi::api::discovery::v1::EndpointPort>>| {
        p.clone().unwrap_or_default()
    };
    existing.address_type == want.address_type
        && existing.endpoints == want.endpoints
        && ports(&existing.ports) == ports(&want.ports)
        && existing.metadata.labels == want.metadata.labels
        && existing.metadata.owner_references == want.metadata.owner_references
}

/// Runs an agent for `cluster` until the returned future is dropped (tests and local up).
pub async fn run(member: Client, hub: Client, cluster: String) {
    Agent::new(member, hub, cluster, Metrics::new("agent"))
        .run(8)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "derived-x"}, "spec": spec})).unwrap()
    }

    #[test]
    fn headlessness_and_the_primary_family_need_a_new_derived_service() {
        let v4 = svc(json!({"clusterIP": "10.1.0.1", "ipFamilies": ["IPv4"]}));
        let headless = svc(json!({"clusterIP": "None", "ipFamilies": ["IPv4"]}));
        assert!(updatable(
            &v4,
            &json!({"spec": {"ipFamilies": ["IPv4"], "ports": []}})
        ));
        assert!(
            updatable(&v4, &json!({"spec": {"ipFamilies": ["IPv4", "IPv6"]}})),
            "adding a secondary family is an update"
        );
        assert!(!updatable(&v4, &json!({"spec": {"ipFamilies": ["IPv6"]}})));
        assert!(!updatable(
            &v4,
            &json!({"spec": {"clusterIP": "None", "ipFamilies": ["IPv4"]}})
        ));
        assert!(!updatable(
            &headless,
            &json!({"spec": {"ipFamilies": ["IPv4"]}})
        ));
        assert!(updatable(
            &headless,
            &json!({"spec": {"clusterIP": "None", "ipFamilies": ["IPv6"]}})
        ));
    }
}
