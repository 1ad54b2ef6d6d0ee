//! `multicluster.x-k8s.io` ServiceExport and ServiceImport (KEP-1645), served in
//! v1alpha1 and v1beta1 (stored) with the same schema, compatible with the upstream
//! mcs-api v0.5.0 CRDs.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

macro_rules! mcs_types {
    ($version:ident, $version_str:literal) => {
        pub mod $version {
            use std::collections::BTreeMap;

            use k8s_openapi::api::core::v1::SessionAffinityConfig;
            use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
            use kube::CustomResource;
            use schemars::JsonSchema;
            use serde::{Deserialize, Serialize};

            /// Declares that the Service of the same name and namespace is exported
            /// to the clusterset.
            #[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
            #[kube(
                group = "multicluster.x-k8s.io",
                version = $version_str,
                kind = "ServiceExport",
                plural = "serviceexports",
                singular = "serviceexport",
                shortname = "svcex",
                shortname = "svcexport",
                namespaced,
                status = "ServiceExportStatus",
                printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
            )]
            #[serde(rename_all = "camelCase")]
            pub struct ServiceExportSpec {
                /// The only labels that may appear on the resulting ServiceImport.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub exported_labels: Option<BTreeMap<String, String>>,
                /// The only annotations that may appear on the resulting ServiceImport.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub exported_annotations: Option<BTreeMap<String, String>>,
            }

            #[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
            pub struct ServiceExportStatus {
                /// Valid, Ready and Conflict, keyed by type.
                #[serde(default, skip_serializing_if = "Vec::is_empty")]
                #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
                pub conditions: Vec<Condition>,
            }

            /// A service imported from the clusters of the clusterset that export it;
            /// written only by the controller.
            #[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
            #[kube(
                group = "multicluster.x-k8s.io",
                version = $version_str,
                kind = "ServiceImport",
                plural = "serviceimports",
                singular = "serviceimport",
                shortname = "svcim",
                shortname = "svcimport",
                namespaced,
                status = "ServiceImportStatus",
                printcolumn = r#"{"name": "Type", "type": "string", "description": "The type of this ServiceImport", "jsonPath": ".spec.type"}"#,
                printcolumn = r#"{"name": "IP", "type": "string", "description": "The VIP for this ServiceImport", "jsonPath": ".spec.ips"}"#,
                printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
            )]
            #[serde(rename_all = "camelCase")]
            pub struct ServiceImportSpec {
                #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
                pub ports: Vec<ServicePort>,
                /// ClusterSetIPs, one per family in `ipFamilies` order; none when headless.
                #[serde(default, skip_serializing_if = "Vec::is_empty")]
                #[schemars(length(max = 2))]
                pub ips: Vec<String>,
                #[serde(rename = "type")]
                pub type_: ServiceImportType,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub session_affinity: Option<String>,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub session_affinity_config: Option<SessionAffinityConfig>,
                #[serde(default, skip_serializing_if = "Vec::is_empty")]
                #[schemars(length(max = 2))]
                pub ip_families: Vec<String>,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub internal_traffic_policy: Option<String>,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub traffic_distribution: Option<String>,
            }

            #[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
            pub enum ServiceImportType {
                #[default]
                ClusterSetIP,
                Headless,
            }

            #[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
            #[serde(rename_all = "camelCase")]
            pub struct ServicePort {
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub name: Option<String>,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub protocol: Option<String>,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub app_protocol: Option<String>,
                pub port: i32,
            }

            #[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
            pub struct ServiceImportStatus {
                /// The clusters that export the service.
                #[serde(default, skip_serializing_if = "Vec::is_empty")]
                #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["cluster"]))]
                pub clusters: Vec<ClusterStatus>,
                #[serde(default, skip_serializing_if = "Vec::is_empty")]
                #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
                pub conditions: Vec<Condition>,
            }

            #[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
            pub struct ClusterStatus {
                pub cluster: String,
            }
        }
    };
}

mcs_types!(v1alpha1, "v1alpha1");
mcs_types!(v1beta1, "v1beta1");

pub use v1beta1::{
    ClusterStatus, ServiceExport, ServiceExportSpec, ServiceExportStatus, ServiceImport,
    ServiceImportSpec, ServiceImportStatus, ServiceImportType, ServicePort,
};

pub fn service_export_crd() -> CustomResourceDefinition {
    kube::core::crd::merge_crds(
        vec![
            v1alpha1::ServiceExport::crd(),
            v1beta1::ServiceExport::crd(),
        ],
        "v1beta1",
    )
    .expect("the versions of one kind merge")
}

pub fn service_import_crd() -> CustomResourceDefinition {
    kube::core::crd::merge_crds(
        vec![
            v1alpha1::ServiceImport::crd(),
            v1beta1::ServiceImport::crd(),
        ],
        "v1beta1",
    )
    .expect("the versions of one kind merge")
}
