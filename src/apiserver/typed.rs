//! Decoding built-in kinds through their k8s-openapi types, as kube-apiserver decodes
//! into Go structs: wrong types are refused, unknown fields are dropped (and reported,
//! for `fieldValidation=Strict`), and what is stored is what the type can hold.

use k8s_openapi::api::{
    apps, authentication, authorization, coordination, core, discovery, events, rbac,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use schemars::{Schema, SchemaGenerator};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

/// The outcome of decoding: the normalized object and the paths of dropped fields.
pub struct Decoded {
    pub object: Value,
    pub unknown: Vec<String>,
}

/// Runs `$then!` on every built-in kind with its k8s-openapi type: the one list that
/// decoding and the published schemas share. (Reviews are never decoded here: they
/// are answered, not stored.)
macro_rules! with_builtin_types {
    ($then:ident) => {
        $then! {
            "", "Namespace" => core::v1::Namespace;
            "", "Service" => core::v1::Service;
            "", "Pod" => core::v1::Pod;
            "", "Node" => core::v1::Node;
            "", "ConfigMap" => core::v1::ConfigMap;
            "", "Secret" => core::v1::Secret;
            "", "ServiceAccount" => core::v1::ServiceAccount;
            "", "Endpoints" => core::v1::Endpoints;
            "", "Event" => core::v1::Event;
            "", "ResourceQuota" => core::v1::ResourceQuota;
            "", "LimitRange" => core::v1::LimitRange;
            "events.k8s.io", "Event" => events::v1::Event;
            "apps", "Deployment" => apps::v1::Deployment;
            "apps", "StatefulSet" => apps::v1::StatefulSet;
            "apps", "ReplicaSet" => apps::v1::ReplicaSet;
            "discovery.k8s.io", "EndpointSlice" => discovery::v1::EndpointSlice;
            "coordination.k8s.io", "Lease" => coordination::v1::Lease;
            "rbac.authorization.k8s.io", "Role" => rbac::v1::Role;
            "rbac.authorization.k8s.io", "ClusterRole" => rbac::v1::ClusterRole;
            "rbac.authorization.k8s.io", "RoleBinding" => rbac::v1::RoleBinding;
            "rbac.authorization.k8s.io", "ClusterRoleBinding" => rbac::v1::ClusterRoleBinding;
            "apiextensions.k8s.io", "CustomResourceDefinition" => apiext::CustomResourceDefinition;
            "authorization.k8s.io", "SelfSubjectAccessReview" => authorization::v1::SelfSubjectAccessReview;
            "authentication.k8s.io", "SelfSubjectReview" => authentication::v1::SelfSubjectReview;
        }
    };
}

/// Decodes `obj` as the built-in `group`/`kind`. `None` for kinds without a typed
/// representation here (they are stored as given).
pub fn decode(group: &str, kind: &str, obj: &Value) -> Option<Result<Decoded, String>> {
    macro_rules! typed {
        ($($g:literal, $k:literal => $t:ty;)*) => {
            match (group, kind) {
                $(($g, $k) => Some(roundtrip::<$t>(obj)),)*
                _ => None,
            }
        };
    }
    with_builtin_types!(typed)
}

/// The schema of the built-in `group`/`kind` as a `$ref` into `generator`'s
/// definitions, where it and every schema it uses are added. `None` as for [`decode`].
pub fn schema_ref(group: &str, kind: &str, generator: &mut SchemaGenerator) -> Option<Schema> {
    macro_rules! schema {
        ($($g:literal, $k:literal => $t:ty;)*) => {
            match (group, kind) {
                $(($g, $k) => Some(generator.subschema_for::<$t>()),)*
                _ => None,
            }
        };
    }
    with_builtin_types!(schema)
}

fn roundtrip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Decoded, String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    let object = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    dropped_fields(obj, &object, "", &mut unknown);
    Ok(Decoded { object, unknown })
}

/// Paths present (and not null) in `before` but missing from `after`.
fn dropped_fields(before: &Value, after: &Value, prefix: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match a.get(k) {
                    None if !v.is_null() => out.push(path),
                    Some(av) => dropped_fields(v, av, &path, out),
                    None => {}
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                dropped_fields(bv, av, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_dropped_and_reported() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
            "data": {"a": "b"}, "bogus": 1, "metadata2": null});
        let d = decode("", "ConfigMap", &cm).unwrap().unwrap();
        assert_eq!(d.unknown, ["bogus"]);
        assert!(d.object.get("bogus").is_none());
        assert_eq!(d.object["data"]["a"], "b");
    }

    #[test]
    fn nested_unknown_fields_have_paths() {
        let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "imagee": "x"}]}}}});
        let d = decode("apps", "Deployment", &dep).unwrap().unwrap();
        assert_eq!(d.unknown, ["spec.template.spec.containers[0].imagee"]);
    }

    #[test]
    fn wrong_types_are_refused() {
        let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"replicas": "three", "selector": {}, "template": {}}});
        assert!(decode("apps", "Deployment", &dep).unwrap().is_err());
    }
}
