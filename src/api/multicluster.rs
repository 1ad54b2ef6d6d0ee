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
            /// to the clusterset. The spec is optional (`kubectl create` of an export
            /// without one is the common case), so the root type below is written by
            /// hand with a defaulted spec; the derived one only shapes the CRD.
            #[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
            #[serde(rename_all = "camelCase")]
            pub struct ServiceExport {
                #[serde(default = "export_api_version")]
                pub api_version: String,
                #[serde(default = "export_kind")]
                pub kind: String,
                pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                #[serde(default)]
                pub spec: ServiceExportSpec,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub status: Option<ServiceExportStatus>,
            }

            fn export_api_version() -> String {
                concat!("multicluster.x-k8s.io/", $version_str).into()
            }

            fn export_kind() -> String {
                "ServiceExport".into()
            }

            impl ServiceExport {
                pub fn new(name: &str) -> Self {
                    ServiceExport {
                        api_version: export_api_version(),
                        kind: export_kind(),
                        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta { name: Some(name.into()), ..Default::default() },
                        spec: ServiceExportSpec::default(),
                        status: None,
                    }
                }
            }

            impl kube::Resource for ServiceExport {
                type DynamicType = ();
                type Scope = k8s_openapi::NamespaceResourceScope;
                fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                    "ServiceExport".into()
                }
                fn group(_: &()) -> std::borrow::Cow<'_, str> {
                    "multicluster.x-k8s.io".into()
                }
                fn version(_: &()) -> std::borrow::Cow<'_, str> {
                    $version_str.into()
                }
                fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                    "serviceexports".into()
                }
                fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    &self.metadata
                }
                fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    &mut self.metadata
                }
            }

            #[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
            #[kube(
                group = "multicluster.x-k8s.io",
                version = $version_str,
                kind = "ServiceExport",
                root = "ServiceExportShape",
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
    let mut crd = kube::core::crd::merge_crds(
        vec![
            v1alpha1::ServiceExportShape::crd(),
            v1beta1::ServiceExportShape::crd(),
        ],
        "v1beta1",
    )
    .expect("the versions of one kind merge");
    // As upstream: an export needs no spec; and the shape type's name is not the kind's.
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema.required = None;
            schema.title = None;
            schema.description = Some("ServiceExport declares that the Service with the same name and namespace as this export should be consumable from other clusters.".into());
        }
    }
    crd
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
