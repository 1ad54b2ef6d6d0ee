//! What makes a cluster a member on the hub, whoever asks: its hub namespace, claimed
//! for its cluster ID, and its ManagedCluster there. The registrar enrols clusters that
//! join; push mode enrols the clusters whose kubeconfigs the hub holds.

use kube::api::Api;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};

use super::{CLUSTER_ID_ANNOTATION, FINALIZER};
use crate::api::clusters::ManagedCluster;
use crate::api::records::hub_namespace;
use crate::runtime;

/// The cluster's hub namespace, created if missing; `Err` says why it cannot be the
/// cluster's (hub namespaces of long or dotted IDs are digests, so another ID, or no
/// member at all, may hold it).
pub async fn claim_namespace(
    hub: &Client,
    cluster_id: &str,
) -> Result<Result<String, String>, kube::Error> {
    let ns = hub_namespace(cluster_id);
    let namespace: k8s_openapi::api::core::v1::Namespace = runtime::create_if_absent(
        &Api::all(hub.clone()),
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "annotations": {CLUSTER_ID_ANNOTATION: cluster_id}},
        }),
    )
    .await?;
    if namespace
        .annotations()
        .get(CLUSTER_ID_ANNOTATION)
        .map(String::as_str)
        != Some(cluster_id)
    {
        return Ok(Err(format!(
            "the hub namespace {ns} belongs to another cluster or to no member; choose another cluster ID"
        )));
    }
    Ok(Ok(ns))
}

/// The cluster's ManagedCluster `name` in its hub namespace `ns`, created if missing
/// (with `labels`); `Err` when the namespace holds another member.
pub async fn claim_cluster(
    hub: &Client,
    ns: &str,
    name: &str,
    (cluster_id, cluster_uid): (&str, &str),
    labels: Value,
) -> Result<Result<ManagedCluster, String>, kube::Error> {
    let cluster: ManagedCluster = runtime::create_if_absent(
        &Api::namespaced(hub.clone(), ns),
        json!({
            "apiVersion": "clusters.clusterset.io/v1alpha1", "kind": "ManagedCluster",
            "metadata": {"name": name, "namespace": ns, "finalizers": [FINALIZER], "labels": labels},
            "spec": {"clusterId": cluster_id, "clusterUid": cluster_uid},
        }),
    )
    .await?;
    if cluster.spec.cluster_id != cluster_id || cluster.spec.cluster_uid != cluster_uid {
        return Ok(Err(format!(
            "the hub namespace {ns} already holds another member"
        )));
    }
    Ok(Ok(cluster))
}
