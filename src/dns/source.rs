//! Feeds the zone from the member's ServiceImports and imported EndpointSlices: watch-
//! fed caches, and on every change the service it concerns is rebuilt into the zone
//! at once (no queue, no periodic refresh: an answer changes the moment a watch event
//! arrives).

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::watcher;
use kube::Client;
use parking_lot::RwLock;

use super::server::DnsMetrics;
use super::zone::{Endpoint, Kind, Port, Service, Zone};
use crate::api::multicluster::{ServiceImport, ServiceImportType};
use crate::mcs::endpoints::{self, MCS_SERVICE_NAME, MCS_SOURCE_CLUSTER};
use crate::runtime::cache::own_key;
use crate::runtime::{Cache, ServiceKey};

pub struct Source {
    imports: Arc<Cache<ServiceImport>>,
    slices: Arc<Cache<EndpointSlice>>,
    zone: Arc<RwLock<Zone>>,
    metrics: DnsMetrics,
}

fn slice_key(slice: &EndpointSlice) -> Option<ServiceKey> {
    Some(ServiceKey::new(
        slice.metadata.namespace.clone()?,
        endpoints::label(slice, MCS_SERVICE_NAME)?,
    ))
}

impl Source {
    pub fn new(zone: Arc<RwLock<Zone>>, metrics: DnsMetrics) -> Arc<Source> {
        Arc::new(Source {
            imports: Cache::new(own_key),
            slices: Cache::new(slice_key),
            zone,
            metrics,
        })
    }

    pub fn readiness(&self) -> Result<(), String> {
        if self.imports.is_synced() && self.slices.is_synced() {
            Ok(())
        } else {
            Err("dns: ServiceImports and EndpointSlices not listed yet".into())
        }
    }

    /// Watches the member until dropped.
    pub async fn run(self: Arc<Self>, member: Client) {
        let imports = {
            let this = self.clone();
            move |si: &ServiceImport| {
                if let Some(key) = own_key(si) {
                    this.rebuild(&key)
                }
            }
        };
        let slices = {
            let this = self.clone();
            move |s: &EndpointSlice| {
                if let Some(key) = slice_key(s) {
                    this.rebuild(&key)
                }
            }
        };
        // Imported slices carry the MCS service-name label, whoever imported them.
        let imported = watcher::Config::default().labels(MCS_SERVICE_NAME);
        futures::future::join(
            self.imports.clone().run(
                "serviceimports",
                Api::all(member.clone()),
                watcher::Config::default(),
                imports,
            ),
            self.slices
                .clone()
                .run("endpointslices", Api::all(member), imported, slices),
        )
        .await;
    }

    fn rebuild(&self, key: &ServiceKey) {
        let service = self
            .imports
            .get(&key.namespace, &key.name)
            .map(|si| service(&si, &self.slices.by_key(key)));
        let mut zone = self.zone.write();
        zone.set(&key.namespace, &key.name, service);
        self.metrics.services.set(zone.services() as i64);
        self.metrics.endpoints.set(zone.endpoints() as i64);
    }
}

/// One imported service as the zone holds it.
pub fn service(si: &ServiceImport, slices: &[Arc<EndpointSlice>]) -> Service {
    let kind = match si.spec.type_ {
        ServiceImportType::ClusterSetIP => Kind::ClusterSetIp(
            si.spec
                .ips
                .iter()
                .filter_map(|ip| ip.parse().ok())
                .collect(),
        ),
        ServiceImportType::Headless => Kind::Headless,
    };
    let ports = si
        .spec
        .ports
        .iter()
        .filter_map(|p| port(p.name.as_deref(), p.protocol.as_deref(), Some(p.port)))
        .collect();
    let mut endpoints: Vec<Endpoint> = slices
        .iter()
        .flat_map(|slice| slice_endpoints(slice))
        .collect();
    // Slices arrive in cache order; answers should not reorder between rebuilds.
    endpoints.sort_by(|a, b| (&a.cluster, &a.addresses).cmp(&(&b.cluster, &b.addresses)));
    Service {
        namespace: si.metadata.namespace.clone().unwrap_or_default(),
        name: si.metadata.name.clone().unwrap_or_default(),
        kind,
        ports,
        endpoints,
    }
}

fn slice_endpoints(slice: &EndpointSlice) -> Vec<Endpoint> {
    let cluster = endpoints::label(slice, MCS_SOURCE_CLUSTER).map(str::to_string);
    let ports: Vec<Port> = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| port(p.name.as_deref(), p.protocol.as_deref(), p.port))
        .collect();
    slice
        .endpoints
        .iter()
        .map(|ep| Endpoint {
            cluster: cluster.clone(),
            hostname: ep.hostname.clone(),
            addresses: ep
                .addresses
                .iter()
                .filter_map(|a| a.parse::<IpAddr>().ok())
                .collect(),
            // Unset means ready, as for every EndpointSlice consumer.
            ready: ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
            ports: ports.clone(),
        })
        .collect()
}

fn port(name: Option<&str>, protocol: Option<&str>, port: Option<i32>) -> Option<Port> {
    Some(Port {
        name: name.filter(|n| !n.is_empty()).map(str::to_ascii_lowercase),
        protocol: protocol.unwrap_or("TCP").to_ascii_lowercase(),
        port: u16::try_from(port?).ok()?,
    })
}
