//! `clusters.clusterset.io` v1alpha1: membership (DESIGN.md, "API groups").
//!
//! - ClusterRegistrationRequest (cluster-scoped): a cluster asking to join, filed by
//!   `clusterset join` with a bootstrap token; the hub answers in its status (approved
//!   with the member's credentials, or denied with a reason).
//! - ManagedCluster (in the member's hub namespace): one joined member; its agent
//!   reports the cluster's version and nodes in the status, and the hub sets `Ready`
//!   from the member's heartbeat Lease.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "clusters.clusterset.io";
/// The Lease a member renews in its hub namespace to say it is alive.
pub const HEARTBEAT_LEASE: &str = "clusterset-heartbeat";
/// The ServiceAccount a member is on the hub, in its hub namespace.
pub const MEMBER_ACCOUNT: &str = "clusterset-agent";

/// A cluster asking to join the clusterset.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "clusters.clusterset.io",
    version = "v1alpha1",
    kind = "ClusterRegistrationRequest",
    plural = "clusterregistrationrequests",
    shortname = "crr",
    category = "clusterset",
    status = "RegistrationStatus",
    printcolumn = r#"{"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterName"}"#,
    printcolumn = r#"{"name": "Cluster ID", "type": "string", "jsonPath": ".spec.clusterId"}"#,
    printcolumn = r#"{"name": "Result", "type": "string", "jsonPath": ".status.result"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.reason"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRegistrationRequestSpec {
    /// The cluster's ID (its ClusterProperty `cluster.clusterset.k8s.io`).
    pub cluster_id: String,
    /// The name the member goes by on the hub (its ManagedCluster's name).
    pub cluster_name: String,
    /// The UID of the cluster's `kube-system` namespace: tells a cluster joining again
    /// from a different cluster claiming the same ID.
    pub cluster_uid: String,
}

/// The hub's answer to a registration request.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationStatus {
    /// `Pending`, `Approved` or `Denied`. An approver sets `Approved` or `Denied`; the
    /// hub sets it when it approves automatically, or denies what it cannot admit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Why, in one CamelCase word (`AutoApproved`, `ClusterIDInUse`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Once approved and provisioned: the member's hub namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Once approved and provisioned: the member's ManagedCluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_cluster: Option<String>,
    /// Once approved and provisioned: the bearer token of the member's hub identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// When the token was issued and when it expires (RFC 3339): the member replaces
    /// it after 80% of its lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_issued: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires: Option<String>,
    /// The clusterset's name, which the member records in its ClusterProperty
    /// `clusterset.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusterset: Option<String>,
}

impl RegistrationStatus {
    /// Whether the hub is done with the request: denied, or approved and the member
    /// provisioned (its token stays until the member has collected it).
    pub fn is_settled(&self) -> bool {
        match self.result.as_deref() {
            Some(DENIED) => true,
            Some(APPROVED) => self.managed_cluster.is_some(),
            _ => false,
        }
    }
}

/// What registration results mean.
pub const APPROVED: &str = "Approved";
pub const DENIED: &str = "Denied";
pub const PENDING: &str = "Pending";

/// One member of the clusterset, in its hub namespace.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "clusters.clusterset.io",
    version = "v1alpha1",
    kind = "ManagedCluster",
    plural = "managedclusters",
    shortname = "mcls",
    category = "clusterset",
    namespaced,
    status = "ManagedClusterStatus",
    printcolumn = r#"{"name": "Cluster ID", "type": "string", "jsonPath": ".spec.clusterId"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Version", "type": "string", "jsonPath": ".status.kubernetesVersion"}"#,
    printcolumn = r#"{"name": "Nodes", "type": "integer", "jsonPath": ".status.nodes.total"}"#,
    printcolumn = r#"{"name": "Ready Nodes", "type": "integer", "jsonPath": ".status.nodes.ready", "priority": 1}"#,
    printcolumn = r#"{"name": "CPU", "type": "string", "jsonPath": ".status.allocatable.cpu", "priority": 1}"#,
    printcolumn = r#"{"name": "Memory", "type": "string", "jsonPath": ".status.allocatable.memory", "priority": 1}"#,
    printcolumn = r#"{"name": "Heartbeat", "type": "date", "jsonPath": ".status.lastHeartbeatTime"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterSpec {
    pub cluster_id: String,
    /// The UID of the member's `kube-system` namespace.
    pub cluster_uid: String,
}

/// What the agent reports about its cluster, and the hub's `Ready` verdict.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeCounts>,
    /// Sums over the cluster's nodes, as quantities (`cpu`, `memory`, `pods`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocatable: BTreeMap<String, String>,
    /// When the hub last saw the member's Lease renewed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
pub struct NodeCounts {
    pub total: i64,
    pub ready: i64,
}

pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![ClusterRegistrationRequest::crd(), ManagedCluster::crd()]
}
