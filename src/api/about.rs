//! `about.k8s.io` ClusterProperty (KEP-2149): the cluster's ID and clusterset
//! membership, served in v1alpha1 and v1beta1 (stored).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The property holding the cluster's ID.
pub const CLUSTER_ID: &str = "cluster.clusterset.k8s.io";
/// The property naming the clusterset; present only while the cluster is a member.
pub const CLUSTERSET: &str = "clusterset.k8s.io";

macro_rules! cluster_property {
    ($version:ident, $version_str:literal) => {
        pub mod $version {
            use kube::CustomResource;
            use schemars::JsonSchema;
            use serde::{Deserialize, Serialize};

            /// A cluster-scoped, named property of the cluster.
            #[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
            #[kube(
                group = "about.k8s.io",
                version = $version_str,
                kind = "ClusterProperty",
                plural = "clusterproperties",
                singular = "clusterproperty",
                category = "multicluster",
                status = "ClusterPropertyStatus",
                printcolumn = r#"{"name": "value", "type": "string", "jsonPath": ".spec.value"}"#,
                printcolumn = r#"{"name": "age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
            )]
            pub struct ClusterPropertySpec {
                /// The property's value.
                #[schemars(length(min = 1, max = 128000))]
                pub value: String,
            }

            #[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
            pub struct ClusterPropertyStatus {}
        }
    };
}

cluster_property!(v1alpha1, "v1alpha1");
cluster_property!(v1beta1, "v1beta1");

pub use v1beta1::{ClusterProperty, ClusterPropertySpec};

pub fn crd() -> CustomResourceDefinition {
    kube::core::crd::merge_crds(
        vec![
            v1alpha1::ClusterProperty::crd(),
            v1beta1::ClusterProperty::crd(),
        ],
        "v1beta1",
    )
    .expect("the versions of one kind merge")
}
