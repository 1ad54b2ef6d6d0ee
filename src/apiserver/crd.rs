//! CustomResourceDefinitions: turning one into a served resource type, checking it,
//! and the status a real server gives it once its names are accepted.

use std::sync::Arc;

use serde_json::{json, Value};

use super::errors::Cause;
use super::registry::{CellSource, Column, ResourceType, ScalePaths, VersionInfo};

/// Problems that make kube-apiserver refuse a CRD, as 422 causes.
pub fn validate(crd: &Value) -> Vec<Cause> {
    let spec = &crd["spec"];
    let mut causes = Vec::new();
    let mut require = |field: &str, ok: bool, msg: &str| {
        if !ok {
            causes.push(Cause::new("FieldValueRequired", field, msg));
        }
    };
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    require("spec.group", !group.is_empty(), "Required value");
    require("spec.names.plural", !plural.is_empty(), "Required value");
    require(
        "spec.names.kind",
        spec["names"]["kind"]
            .as_str()
            .is_some_and(|k| !k.is_empty()),
        "Required value",
    );
    require(
        "spec.scope",
        matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")),
        "Unsupported value: supported values: \"Cluster\", \"Namespaced\"",
    );
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    require("spec.versions", !versions.is_empty(), "Required value");
    let storage = versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .count();
    require(
        "spec.versions",
        versions.is_empty() || storage == 1,
        "Invalid value: must have exactly one version marked as storage version",
    );
    let name = super::objects::name(crd);
    let want = format!("{plural}.{group}");
    if !plural.is_empty() && !group.is_empty() && name != want {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        let schema = &v["schema"]["openAPIV3Schema"];
        if schema.is_object() {
            let prefix = format!("spec.versions[{i}].schema.openAPIV3Schema");
            for e in super::schema::structural_errors(schema, &prefix) {
                causes.push(Cause::new("FieldValueInvalid", &prefix, e));
            }
        }
    }
    causes
}

/// The resource type a (valid) CRD serves.
pub fn resource_type(crd: &Value) -> ResourceType {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let list_of = |v: &Value| super::objects::string_list(v);
    let served: Vec<&Value> = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"] != json!(false))
        .collect();
    let storage = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["storage"] == json!(true))
        .map(|v| str_of(&v["name"]))
        .unwrap_or_default();
    let mut versions: Vec<VersionInfo> = served.iter().map(|v| version_info(v)).collect();
    versions.sort_by_key(|v| std::cmp::Reverse(super::registry::version_priority(&v.name)));
    let subresources = served
        .first()
        .map(|v| &v["subresources"])
        .cloned()
        .unwrap_or(Value::Null);
    let kind = str_of(&names["kind"]);
    ResourceType {
        group: str_of(&spec["group"]),
        singular: names["singular"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| kind.to_lowercase()),
        kind,
        plural: str_of(&names["plural"]),
        namespaced: spec["scope"] != "Cluster",
        short_names: list_of(&names["shortNames"]),
        categories: list_of(&names["categories"]),
        versions,
        storage_version: storage,
        status: subresources["status"].is_object(),
        scale: subresources["scale"].as_object().map(|s| ScalePaths {
            spec_replicas: s
                .get("specReplicasPath")
                .and_then(Value::as_str)
                .unwrap_or(".spec.replicas")
                .into(),
            status_replicas: s
                .get("statusReplicasPath")
                .and_then(Value::as_str)
                .unwrap_or(".status.replicas")
                .into(),
            label_selector: s
                .get("labelSelectorPath")
                .and_then(Value::as_str)
                .map(String::from),
        }),
        builtin: false,
        review: false,
    }
}

fn version_info(v: &Value) -> VersionInfo {
    let name = v["name"].as_str().unwrap_or_default().to_string();
    let mut columns = vec![Column {
        name: "Name".into(),
        type_: "string".into(),
        format: "name".into(),
        description: "Name must be unique within a namespace.".into(),
        priority: 0,
        source: CellSource::JsonPath(".metadata.name".into()),
    }];
    let declared = v["additionalPrinterColumns"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in &declared {
        columns.push(Column {
            name: c["name"].as_str().unwrap_or_default().into(),
            type_: c["type"].as_str().unwrap_or("string").into(),
            format: c["format"].as_str().unwrap_or_default().into(),
            description: c["description"].as_str().unwrap_or_default().into(),
            priority: c["priority"].as_i64().unwrap_or(0),
            source: CellSource::JsonPath(c["jsonPath"].as_str().unwrap_or_default().into()),
        });
    }
    // Without declared columns a CRD gets an Age column; with them, only what it declares.
    if declared.is_empty() {
        columns.push(Column {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            source: CellSource::JsonPath(".metadata.creationTimestamp".into()),
        });
    }
    VersionInfo {
        name,
        schema: v["schema"]["openAPIV3Schema"]
            .as_object()
            .map(|_| Arc::new(v["schema"]["openAPIV3Schema"].clone())),
        columns,
        deprecated: v["deprecated"] == json!(true),
    }
}

/// The status a CRD gets once served: accepted names and the Established and
/// NamesAccepted conditions.
pub fn served_status(crd: &Value, now: &str) -> Value {
    let condition = |type_: &str, reason: &str, message: &str| json!({"type": type_, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    let mut accepted = crd["spec"]["names"].clone();
    if accepted["singular"].is_null() {
        accepted["singular"] = json!(accepted["kind"].as_str().unwrap_or_default().to_lowercase());
    }
    if accepted["listKind"].is_null() {
        accepted["listKind"] = json!(format!(
            "{}List",
            accepted["kind"].as_str().unwrap_or_default()
        ));
    }
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == json!(true))
        .map(|v| v["name"].clone())
        .collect();
    json!({
        "acceptedNames": accepted,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    })
}
