//! Discovery documents and OpenAPI v3, all derived from the registry.
//!
//! The OpenAPI documents carry one PATCH operation per kind with the
//! `fieldValidation` parameter and no strategic merge content type: that is what makes
//! kubectl leave validation to this server (`fieldValidation=Strict`) and compute
//! strategic merge patches from its own built-in types, which know every merge key.
//! Their component schemas are what `kubectl explain` reads.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use schemars::{generate::SchemaSettings, JsonSchema, SchemaGenerator};
use serde_json::{json, Value};

use super::registry::{Registry, ResourceType};
use super::typed;

pub const KUBERNETES_VERSION: (&str, &str) = ("1", "33");

pub fn version() -> Value {
    let (major, minor) = KUBERNETES_VERSION;
    json!({
        "major": major, "minor": minor,
        "gitVersion": format!("v{major}.{minor}.0-clusterset.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
        "goVersion": "", "compiler": "rustc", "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

pub fn core_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let gv = |v: &String| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(gv).collect::<Vec<_>>(),
        "preferredVersion": gv(&versions[0]),
    })
}

pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .group_versions()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    let versions = registry
        .group_versions()
        .into_iter()
        .find(|(g, _)| g == name)?
        .1;
    let mut g = group_entry(name, &versions);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = served(registry, group, version);
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in &types {
        resources.push(json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
            "kind": t.kind, "verbs": if t.review { &["create"][..] } else { &VERBS[..] },
            "shortNames": t.short_names, "categories": t.categories,
        }));
        if t.status {
            resources.push(
                json!({"name": format!("{}/status", t.plural), "singularName": "",
                "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
        if t.scale.is_some() {
            resources.push(json!({"name": format!("{}/scale", t.plural), "singularName": "",
                "namespaced": t.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale",
                "verbs": ["get", "patch", "update"]}));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// `/openapi/v3`: one document per group version, each URL carrying a hash of what
/// the document is made from, so clients that cache by URL notice changes.
pub fn openapi_root(registry: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for (group, versions) in registry.group_versions() {
        for v in versions {
            let hash = fingerprint(&served(registry, &group, &v), &v);
            let url = openapi_url(&group, &v, &hash);
            paths.insert(openapi_key(&group, &v), json!({"serverRelativeURL": url}));
        }
    }
    json!({"paths": paths})
}

/// `api/v1`, `apis/apps/v1`: how the root names a group version's document.
fn openapi_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Where the document of `group`/`version` with this hash is served.
pub fn openapi_url(group: &str, version: &str, hash: &str) -> String {
    format!("/openapi/v3/{}?hash={hash}", openapi_key(group, version))
}

/// The types serving `group`/`version`: what its document is built from.
pub fn served(registry: &Registry, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
    registry
        .all()
        .into_iter()
        .filter(|t| t.group == group && t.version(version).is_some())
        .collect()
}

/// The hash of the document of `types` at `version`: its URL in the root, and its
/// ETag. It hashes what the document is built from, far cheaper than the document
/// (built-in schemas run to hundreds of kilobytes): the custom resources' schemas,
/// and the built-in documents as this build makes them.
pub fn fingerprint(types: &[Arc<ResourceType>], version: &str) -> String {
    let mut h = DefaultHasher::new();
    built_in_documents().hash(&mut h);
    for t in types {
        (&t.kind, &t.plural, t.namespaced, t.builtin).hash(&mut h);
        if let Some(schema) = t.version(version).and_then(|v| v.schema.as_deref()) {
            schema.to_string().hash(&mut h);
        }
    }
    format!("{:016X}", h.finish())
}

/// A hash of every built-in group version's document, made once: it changes with
/// the code that makes the documents, which the version number does not follow.
fn built_in_documents() -> u64 {
    static HASH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HASH.get_or_init(|| {
        let registry = Registry::new(super::builtin::builtin_types());
        let mut h = DefaultHasher::new();
        for (group, versions) in registry.group_versions() {
            for v in versions {
                let types = served(&registry, &group, &v);
                openapi_document(&types, &v).to_string().hash(&mut h);
            }
        }
        h.finish()
    })
}

/// The document of `types`, which serve one group version.
pub fn openapi_document(types: &[Arc<ResourceType>], version: &str) -> Value {
    let paths: serde_json::Map<String, Value> = types
        .iter()
        .map(|t| {
            let path = object_path(t, version);
            (path, json!({"patch": patch_operation(t, version)}))
        })
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", KUBERNETES_VERSION.0, KUBERNETES_VERSION.1)},
        "paths": paths,
        "components": {"schemas": component_schemas(types, version)},
    })
}

/// Each kind's schema, marked with its group, version and kind (how `kubectl explain`
/// finds it), and every schema those refer to. Built-in kinds are described by their
/// k8s-openapi types; a custom resource by its CRD's schema, with `apiVersion`, `kind`
/// and `metadata` described as built-in kinds describe them, as kube-apiserver does.
///
/// No PATCH operation offers strategic merge, so `kubectl apply` does not compute
/// patches from these schemas (they lack the patch merge keys): it keeps using the
/// merge keys of its own built-in types.
fn component_schemas(types: &[Arc<ResourceType>], version: &str) -> serde_json::Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut kinds = Vec::new();
    for t in types {
        let name = if t.builtin {
            let Some(reference) = typed::schema_ref(&t.group, &t.kind, &mut generator) else {
                continue;
            };
            let reference = reference
                .get("$ref")
                .and_then(Value::as_str)
                .unwrap_or_default();
            reference.rsplit('/').next().unwrap_or_default().to_string()
        } else {
            let Some(schema) = t.version(version).and_then(|v| v.schema.as_deref()) else {
                continue;
            };
            let name = custom_schema_name(t, version);
            let schema = with_shared_fields(schema, &mut generator);
            generator.definitions_mut().insert(name.clone(), schema);
            name
        };
        kinds.push((
            name,
            json!([{"group": t.group, "version": version, "kind": t.kind}]),
        ));
    }
    let mut schemas = generator.take_definitions(true);
    for (name, gvk) in kinds {
        if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
            schema.insert("x-kubernetes-group-version-kind".into(), gvk);
        }
    }
    schemas
}

/// `io.x-k8s.multicluster.v1beta1.ServiceExport`: the group reversed, as kube-apiserver
/// names a custom resource's schema.
fn custom_schema_name(t: &ResourceType, version: &str) -> String {
    let group: Vec<&str> = t.group.rsplit('.').collect();
    format!("{}.{version}.{}", group.join("."), t.kind)
}

/// A CRD's schema with `apiVersion`, `kind` and `metadata` as a ConfigMap's schema
/// has them: the standard descriptions, and metadata as the ObjectMeta schema.
fn with_shared_fields(schema: &Value, generator: &mut SchemaGenerator) -> Value {
    let shared = <ConfigMap as JsonSchema>::json_schema(generator);
    let mut schema = schema.clone();
    for field in ["apiVersion", "kind", "metadata"] {
        if let Some(described) = shared.get("properties").and_then(|p| p.get(field)) {
            schema["properties"][field] = described.clone();
        }
    }
    schema
}

fn object_path(t: &ResourceType, version: &str) -> String {
    let prefix = if t.group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{}/{version}", t.group)
    };
    if t.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
    } else {
        format!("{prefix}/{}/{{name}}", t.plural)
    }
}

fn patch_operation(t: &ResourceType, version: &str) -> Value {
    let object = json!({"schema": {"type": "object"}});
    json!({
        "x-kubernetes-group-version-kind": {"group": t.group, "version": version, "kind": t.kind},
        "x-kubernetes-action": "patch",
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
        ],
        "requestBody": {"content": {
            "application/json-patch+json": object,
            "application/merge-patch+json": object,
            "application/apply-patch+yaml": object,
        }},
        "responses": {"200": {"description": "OK"}},
    })
}
