//! Defaulting and validation of built-in kinds: what kube-apiserver's registry
//! strategies and admission plugins do before an object is stored.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::errors::{ApiError, ApiResult, Cause};
use super::ipalloc::{family_of, Allocator};
use super::objects::{meta_mut, name};
use super::registry::ResourceType;

/// Defaults and validates `obj` (the new state; `old` on updates) of a built-in kind.
pub fn admit(
    alloc: &parking_lot::Mutex<Allocator>,
    rt: &ResourceType,
    old: Option<&Value>,
    obj: &mut Value,
) -> ApiResult<()> {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => default_namespace(obj),
        ("", "Service") => admit_service(&mut alloc.lock(), rt, old, obj)?,
        ("", "Pod") => default_pod(obj, old.is_none()),
        ("", "Secret") => default_secret(obj),
        ("apps", "Deployment" | "StatefulSet" | "ReplicaSet") => admit_workload(rt, obj)?,
        _ => {}
    }
    Ok(())
}

/// Whether objects of this kind hold ClusterIPs or NodePorts.
pub fn holds_allocations(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.kind == "Service"
}

/// Gives back what a Service held that its new state (None once deleted) no longer
/// holds: ClusterIPs and NodePorts.
pub fn release(
    alloc: &parking_lot::Mutex<Allocator>,
    rt: &ResourceType,
    old: &Value,
    new: Option<&Value>,
) {
    if holds_allocations(rt) {
        let mut alloc = alloc.lock();
        let (old_ips, old_ports) = held(old);
        let (new_ips, new_ports) = new.map(held).unwrap_or_default();
        old_ips
            .iter()
            .filter(|ip| !new_ips.contains(ip))
            .for_each(|ip| alloc.release(ip));
        for port in old_ports.iter().filter(|p| !new_ports.contains(p)) {
            alloc.release_node_port(*port);
        }
    }
}

/// Marks what a stored Service holds as taken, when the allocator is rebuilt.
pub fn claim_held(alloc: &mut Allocator, svc: &Value) {
    let (ips, ports) = held(svc);
    for ip in ips.iter().filter_map(|ip| ip.parse::<IpAddr>().ok()) {
        if let Some(range) = alloc.range_mut(family_of(&ip)) {
            let _ = range.claim(ip);
        }
    }
    for port in ports {
        let _ = alloc.claim_node_port(port);
    }
}

fn held(svc: &Value) -> (Vec<String>, Vec<u16>) {
    let ips = super::objects::string_list(&svc["spec"]["clusterIPs"])
        .into_iter()
        .filter(|ip| ip != "None")
        .collect();
    let ports = node_ports(svc);
    (ips, ports)
}

fn node_ports(svc: &Value) -> Vec<u16> {
    svc["spec"]["ports"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["nodePort"].as_u64())
                .map(|p| p as u16)
                .collect()
        })
        .unwrap_or_default()
}

/// The items of the list `field`, without creating the field when it is missing
/// (indexing a `Value` mutably would insert a null).
fn items_mut<'a>(v: &'a mut Value, field: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(field)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// `stringData` is write-only: kube-apiserver folds it into `data` (base64, winning
/// over a `data` key of the same name) and never stores it.
fn default_secret(obj: &mut Value) {
    use base64::Engine;
    if obj["type"].is_null() {
        obj["type"] = json!("Opaque");
    }
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (key, value) in strings {
        let text = value.as_str().unwrap_or_default();
        obj["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

fn default_namespace(obj: &mut Value) {
    let ns_name = name(obj).to_string();
    let labels = meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
    labels["kubernetes.io/metadata.name"] = json!(ns_name);
    if obj["spec"]["finalizers"].is_null() {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    if obj["status"]["phase"].is_null() {
        obj["status"] = json!({"phase": "Active"});
    }
}

fn default_pod(obj: &mut Value, creating: bool) {
    default_pod_spec(&mut obj["spec"]);
    if creating {
        obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
    }
}

fn default_pod_spec(spec: &mut Value) {
    for (field, default) in [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("securityContext", json!({})),
    ] {
        if spec[field].is_null() {
            spec[field] = default;
        }
    }
    for list in ["containers", "initContainers"] {
        for c in items_mut(spec, list) {
            default_container(c);
        }
    }
}

fn default_container(c: &mut Value) {
    for p in items_mut(c, "ports") {
        if p["protocol"].is_null() {
            p["protocol"] = json!("TCP");
        }
    }
    if c["terminationMessagePath"].is_null() {
        c["terminationMessagePath"] = json!("/dev/termination-log");
        c["terminationMessagePolicy"] = json!("File");
    }
    if c["imagePullPolicy"].is_null() {
        let image = c["image"].as_str().unwrap_or_default();
        let latest = !image.contains(':') || image.ends_with(":latest");
        c["imagePullPolicy"] = json!(if latest { "Always" } else { "IfNotPresent" });
    }
}

fn admit_workload(rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    let spec = &mut obj["spec"];
    if spec["replicas"].is_null() {
        spec["replicas"] = json!(1);
    }
    if spec["revisionHistoryLimit"].is_null() && rt.kind != "ReplicaSet" {
        spec["revisionHistoryLimit"] = json!(10);
    }
    match rt.kind.as_str() {
        "Deployment" => {
            if spec["strategy"].is_null() {
                spec["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}});
            }
            if spec["progressDeadlineSeconds"].is_null() {
                spec["progressDeadlineSeconds"] = json!(600);
            }
        }
        "StatefulSet" => {
            if spec["podManagementPolicy"].is_null() {
                spec["podManagementPolicy"] = json!("OrderedReady");
            }
            if spec["updateStrategy"].is_null() {
                spec["updateStrategy"] =
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}});
            }
        }
        _ => {}
    }
    default_pod_spec(&mut spec["template"]["spec"]);
    validate_selector(rt, obj)
}

/// The selector must be set and select the pod template's labels.
fn validate_selector(rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    let selector = &obj["spec"]["selector"];
    let labels = &obj["spec"]["template"]["metadata"]["labels"];
    let n = name(obj);
    let has_terms = selector["matchLabels"]
        .as_object()
        .is_some_and(|m| !m.is_empty())
        || selector["matchExpressions"]
            .as_array()
            .is_some_and(|m| !m.is_empty());
    if !has_terms {
        return Err(ApiError::invalid(
            rt,
            n,
            vec![Cause::new(
                "FieldValueRequired",
                "spec.selector",
                "Required value",
            )],
        ));
    }
    let matches = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    if !matches {
        return Err(ApiError::invalid_field(
            rt,
            n,
            "spec.template.metadata.labels",
            "FieldValueInvalid",
            &format!(
                "Invalid value: {}: `selector` does not match template `labels`",
                serde_json::to_string(labels).unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

fn admit_service(
    alloc: &mut Allocator,
    rt: &ResourceType,
    old: Option<&Value>,
    obj: &mut Value,
) -> ApiResult<()> {
    let n = name(obj).to_string();
    let invalid = |field: &str, msg: String| {
        ApiError::invalid_field(rt, &n, field, "FieldValueInvalid", &msg)
    };
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    if let Some(old) = old {
        keep_allocated(&old["spec"], &mut obj["spec"]);
    }
    let spec = &mut obj["spec"];
    let svc_type = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    spec["type"] = json!(svc_type);
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&svc_type.as_str()) {
        return Err(ApiError::invalid_field(
            rt,
            &n,
            "spec.type",
            "FieldValueNotSupported",
            &format!("Unsupported value: \"{svc_type}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        ));
    }
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = json!("None");
    }
    default_service_ports(spec, &svc_type, &n, rt)?;
    if svc_type == "ExternalName" {
        if spec["externalName"].as_str().unwrap_or_default().is_empty() {
            return Err(ApiError::invalid_field(
                rt,
                &n,
                "spec.externalName",
                "FieldValueRequired",
                "Required value",
            ));
        }
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            spec.as_object_mut().unwrap().remove(f);
        }
        return Ok(());
    }
    if spec["internalTrafficPolicy"].is_null() {
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
    if svc_type != "ClusterIP" && spec["externalTrafficPolicy"].is_null() {
        spec["externalTrafficPolicy"] = json!("Cluster");
    }
    let families = choose_families(alloc, spec).map_err(|m| invalid("spec.ipFamilies", m))?;
    assign_cluster_ips(alloc, old, spec, &families).map_err(|m| invalid("spec.clusterIPs", m))?;
    assign_node_ports(alloc, old, spec, &svc_type).map_err(|m| invalid("spec.ports", m))?;
    Ok(())
}

/// Updates that leave out allocated values keep them, as kube-apiserver does for
/// clusterIP(s), ipFamilies, ipFamilyPolicy and node ports.
fn keep_allocated(old: &Value, new: &mut Value) {
    let same_type = old["type"] == new["type"] || new["type"].is_null();
    if !same_type {
        return;
    }
    for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        if new[f].is_null() && !old[f].is_null() {
            new[f] = old[f].clone();
        }
    }
    let old_ports = old["ports"].as_array().cloned().unwrap_or_default();
    for p in items_mut(new, "ports") {
        if p["nodePort"].is_null() {
            if let Some(op) = old_ports.iter().find(|op| op["port"] == p["port"]) {
                if !op["nodePort"].is_null() {
                    p["nodePort"] = op["nodePort"].clone();
                }
            }
        }
    }
}

fn default_service_ports(
    spec: &mut Value,
    svc_type: &str,
    n: &str,
    rt: &ResourceType,
) -> ApiResult<()> {
    let ports = spec.get_mut("ports").and_then(Value::as_array_mut);
    let Some(ports) = ports else {
        if svc_type != "ExternalName" && spec["clusterIP"] != "None" {
            return Err(ApiError::invalid_field(
                rt,
                n,
                "spec.ports",
                "FieldValueRequired",
                "Required value",
            ));
        }
        return Ok(());
    };
    let multiple = ports.len() > 1;
    let mut names = std::collections::BTreeSet::new();
    let mut numbers = std::collections::BTreeSet::new();
    for (i, p) in ports.iter_mut().enumerate() {
        if p["protocol"].is_null() {
            p["protocol"] = json!("TCP");
        }
        if p["targetPort"].is_null() {
            p["targetPort"] = p["port"].clone();
        }
        let port = p["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&port) {
            return Err(ApiError::invalid_field(
                rt,
                n,
                &format!("spec.ports[{i}].port"),
                "FieldValueInvalid",
                &format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
            ));
        }
        if multiple && p["name"].as_str().unwrap_or_default().is_empty() {
            return Err(ApiError::invalid_field(
                rt,
                n,
                &format!("spec.ports[{i}].name"),
                "FieldValueRequired",
                "Required value",
            ));
        }
        let protocol = p["protocol"].as_str().unwrap_or_default().to_string();
        if !matches!(protocol.as_str(), "TCP" | "UDP" | "SCTP") {
            return Err(ApiError::invalid_field(
                rt,
                n,
                &format!("spec.ports[{i}].protocol"),
                "FieldValueNotSupported",
                &format!("Unsupported value: \"{protocol}\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
            ));
        }
        let name = p["name"].as_str().unwrap_or_default().to_string();
        if !names.insert(name.clone()) {
            return Err(ApiError::invalid_field(
                rt,
                n,
                &format!("spec.ports[{i}].name"),
                "FieldValueDuplicate",
                &format!("Duplicate value: \"{name}\""),
            ));
        }
        if !numbers.insert((port, protocol.clone())) {
            return Err(ApiError::invalid_field(
                rt,
                n,
                &format!("spec.ports[{i}]"),
                "FieldValueDuplicate",
                &format!("Duplicate value: core.ServicePort{{Name:\"{name}\", Protocol:\"{protocol}\", Port:{port}}}"),
            ));
        }
    }
    Ok(())
}

/// The Service's IP families, primary first.
fn choose_families(alloc: &Allocator, spec: &mut Value) -> Result<Vec<String>, String> {
    let cluster: Vec<String> = alloc.families().iter().map(|s| s.to_string()).collect();
    let policy = spec["ipFamilyPolicy"]
        .as_str()
        .unwrap_or("SingleStack")
        .to_string();
    let requested = super::objects::string_list(&spec["ipFamilies"]);
    let from_ip = spec["clusterIP"]
        .as_str()
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| family_of(&ip).to_string());
    let mut families = if !requested.is_empty() {
        requested
    } else if let Some(f) = from_ip {
        let others = cluster.iter().filter(|c| **c != f).cloned();
        std::iter::once(f.clone()).chain(others).collect()
    } else {
        cluster.clone()
    };
    for f in &families {
        if !cluster.contains(f) {
            return Err(format!(
                "Invalid value: \"{f}\": not configured on this cluster"
            ));
        }
    }
    match policy.as_str() {
        "SingleStack" => families.truncate(1),
        "RequireDualStack" if cluster.len() < 2 => {
            return Err("Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services".into())
        }
        _ => families.truncate(2),
    }
    spec["ipFamilyPolicy"] = json!(policy);
    spec["ipFamilies"] = json!(families);
    Ok(families)
}

fn assign_cluster_ips(
    alloc: &mut Allocator,
    old: Option<&Value>,
    spec: &mut Value,
    families: &[String],
) -> Result<(), String> {
    let old_ips = old
        .map(|o| super::objects::string_list(&o["spec"]["clusterIPs"]))
        .unwrap_or_default();
    let mut wanted = super::objects::string_list(&spec["clusterIPs"]);
    if wanted.is_empty() {
        if let Some(ip) = spec["clusterIP"].as_str().filter(|s| !s.is_empty()) {
            wanted.push(ip.to_string());
        }
    }
    if wanted.first().map(String::as_str) == Some("None") {
        spec["clusterIP"] = json!("None");
        spec["clusterIPs"] = json!(["None"]);
        return Ok(());
    }
    if !old_ips.is_empty() && !wanted.is_empty() && wanted[0] != old_ips[0] {
        return Err(format!(
            "Invalid value: {:?}: may not change once set",
            wanted
        ));
    }
    let mut ips = Vec::new();
    for (i, family) in families.iter().enumerate() {
        let range = alloc
            .range_mut(family)
            .ok_or_else(|| format!("no range for {family}"))?;
        let ip = match wanted.get(i) {
            Some(ip) if old_ips.contains(ip) => ip.clone(),
            Some(ip) => {
                let parsed: IpAddr = ip
                    .parse()
                    .map_err(|_| format!("Invalid value: {ip:?}: must be a valid IP address"))?;
                range.claim(parsed)?;
                ip.clone()
            }
            None => range
                .allocate()
                .ok_or_else(|| format!("Internal error: range {} is full", range.cidr))?
                .to_string(),
        };
        ips.push(ip);
    }
    spec["clusterIP"] = json!(ips[0]);
    spec["clusterIPs"] = json!(ips);
    Ok(())
}

fn assign_node_ports(
    alloc: &mut Allocator,
    old: Option<&Value>,
    spec: &mut Value,
    svc_type: &str,
) -> Result<(), String> {
    let old_ports = old.map(node_ports).unwrap_or_default();
    let wants = svc_type == "NodePort" || svc_type == "LoadBalancer";
    for p in items_mut(spec, "ports") {
        if !wants {
            p.as_object_mut().map(|p| p.remove("nodePort"));
            continue;
        }
        match p["nodePort"].as_u64() {
            Some(np) if old_ports.contains(&(np as u16)) => {}
            Some(np) => alloc
                .claim_node_port(np as u16)
                .map_err(|m| format!("Invalid value: {np}: {m}"))?,
            None => {
                let np = alloc.allocate_node_port().ok_or("no node ports left")?;
                p["nodePort"] = json!(np);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_data_folds_into_data() {
        let mut secret = json!({"metadata": {"name": "s"}, "data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "two", "c": "three"}});
        default_secret(&mut secret);
        assert!(secret.get("stringData").is_none(), "never stored");
        assert_eq!(
            secret["data"],
            json!({"a": "eA==", "b": "dHdv", "c": "dGhyZWU="})
        );
        assert_eq!(secret["type"], "Opaque");
    }
}
