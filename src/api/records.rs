//! `mcs.clusterset.io` v1alpha1: what agents and the hub controller tell each other
//! through the hub (DESIGN.md, "Data flow of one export").
//!
//! - ExportRecord: one member's export of `namespace/service`, written by that member's
//!   agent in its own hub namespace (`clusterset-<cluster>`); the hub reports on it in
//!   `status.conditions` (`Accepted`).
//! - ImportRecord: the hub's decision for `namespace/service` (merged import, exporting
//!   clusters, per-cluster Conflict verdicts), in the shared namespace every member reads.
//! - EndpointRecord: one exporting cluster's endpoints for `namespace/service`, copied by
//!   the hub from the accepted ExportRecord into the shared namespace.

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::mcs::merge::{ExportedService, Verdict};

pub const GROUP: &str = "mcs.clusterset.io";
/// The hub namespace every member reads imports from.
pub const SHARED_NAMESPACE: &str = "clusterset-imports";

/// One member's export of a Service, as its agent reports it.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "mcs.clusterset.io",
    version = "v1alpha1",
    kind = "ExportRecord",
    plural = "exportrecords",
    shortname = "exrec",
    category = "clusterset",
    namespaced,
    status = "RecordStatus",
    printcolumn = r#"{"name": "Cluster", "type": "string", "jsonPath": ".spec.cluster"}"#,
    printcolumn = r#"{"name": "Namespace", "type": "string", "jsonPath": ".spec.namespace", "priority": 1}"#,
    printcolumn = r#"{"name": "Service", "type": "string", "jsonPath": ".spec.service"}"#,
    printcolumn = r#"{"name": "Accepted", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ExportRecordSpec {
    /// The exporting cluster's ID; must be the one this hub namespace belongs to.
    pub cluster: String,
    pub namespace: String,
    pub service: String,
    /// The ServiceExport's creationTimestamp (RFC 3339): precedence in conflicts.
    pub created: String,
    /// What the Service exports.
    pub exported: ExportedService,
    /// The cluster's endpoints for the Service.
    #[serde(default)]
    pub endpoints: Vec<EndpointGroup>,
}

/// The hub's report on a record it read.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
pub struct RecordStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Endpoints of one address type sharing one set of ports, as a source EndpointSlice
/// holds them (node names, target references and hints stay in the source cluster).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EndpointGroup {
    /// IPv4 or IPv6.
    pub address_type: String,
    #[serde(default)]
    pub ports: Vec<EndpointPort>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// The hub's decision for one multi-cluster service.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "mcs.clusterset.io",
    version = "v1alpha1",
    kind = "ImportRecord",
    plural = "importrecords",
    shortname = "imrec",
    category = "clusterset",
    namespaced,
    printcolumn = r#"{"name": "Namespace", "type": "string", "jsonPath": ".spec.namespace"}"#,
    printcolumn = r#"{"name": "Service", "type": "string", "jsonPath": ".spec.service"}"#,
    printcolumn = r#"{"name": "Type", "type": "string", "jsonPath": ".spec.import.type"}"#,
    printcolumn = r#"{"name": "Clusters", "type": "string", "jsonPath": ".spec.clusters"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ImportRecordSpec {
    pub namespace: String,
    pub service: String,
    /// What every member's ServiceImport carries.
    pub import: ExportedService,
    /// Exporting cluster IDs, sorted.
    pub clusters: Vec<String>,
    /// The Conflict condition for each exporting cluster's ServiceExport.
    pub verdicts: std::collections::BTreeMap<String, Verdict>,
    /// The clusterset-wide VIPs (one per family in ipFamilies order) when the hub
    /// allocates them; empty when each member uses its derived Service's IPs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
}

/// One exporting cluster's endpoints for a service, as every member imports them.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "mcs.clusterset.io",
    version = "v1alpha1",
    kind = "EndpointRecord",
    plural = "endpointrecords",
    shortname = "eprec",
    category = "clusterset",
    namespaced,
    printcolumn = r#"{"name": "Namespace", "type": "string", "jsonPath": ".spec.namespace"}"#,
    printcolumn = r#"{"name": "Service", "type": "string", "jsonPath": ".spec.service"}"#,
    printcolumn = r#"{"name": "Cluster", "type": "string", "jsonPath": ".spec.cluster"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EndpointRecordSpec {
    pub namespace: String,
    pub service: String,
    pub cluster: String,
    #[serde(default)]
    pub endpoints: Vec<EndpointGroup>,
}

pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        ExportRecord::crd(),
        ImportRecord::crd(),
        EndpointRecord::crd(),
    ]
}

/// The hub namespace a member writes its records in. Cluster IDs are DNS subdomains of
/// up to 253 characters; a namespace name is one label of at most 63, so IDs that do
/// not fit as they are get a digest instead.
#[must_use]
pub fn hub_namespace(cluster: &str) -> String {
    let plain = format!("clusterset-{cluster}");
    // The project's own hub namespaces are never a member's.
    let reserved = matches!(cluster, "imports" | "system");
    if plain.len() <= 63 && !cluster.contains('.') && !reserved {
        plain
    } else {
        format!("clusterset-{}", digest(cluster, 16))
    }
}

/// The name of the records for `namespace/service` (namespace and Service names are
/// DNS labels without dots, so the dot keeps them apart).
#[must_use]
pub fn record_name(namespace: &str, service: &str) -> String {
    format!("{namespace}.{service}")
}

/// The name of one cluster's EndpointRecord; digested when it would pass the 253
/// characters an object name may have.
#[must_use]
pub fn endpoint_record_name(namespace: &str, service: &str, cluster: &str) -> String {
    let plain = format!("{namespace}.{service}.{cluster}");
    if plain.len() <= 253 {
        plain
    } else {
        format!("{namespace}.{service}.{}", digest(cluster, 16))
    }
}

/// The first `len` characters of the lowercase hex SHA-256 of `text`.
fn digest(text: &str, len: usize) -> String {
    let hex: String = ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex[..len].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_namespaces_are_dns_labels() {
        assert_eq!(hub_namespace("member-1"), "clusterset-member-1");
        assert_ne!(hub_namespace("imports"), SHARED_NAMESPACE);
        assert_ne!(hub_namespace("system"), "clusterset-system");
        for id in ["east.example.com", &"a".repeat(60)] {
            let ns = hub_namespace(id);
            assert!(ns.len() <= 63 && !ns.contains('.'), "{ns}");
            assert_ne!(ns, hub_namespace("other"));
        }
    }

    #[test]
    fn endpoint_record_names_fit() {
        let long = "c".repeat(200);
        assert!(endpoint_record_name(&"n".repeat(63), &"s".repeat(63), &long).len() <= 253);
        assert_eq!(endpoint_record_name("demo", "web", "m1"), "demo.web.m1");
    }
}
