//! What an importing cluster holds for one multi-cluster service, built from the
//! hub's decision: the ServiceImport and the derived Service that makes its
//! ClusterSetIP routable (MCS-SPEC "ClusterSetIP and routing").

use serde_json::{json, Map, Value};

use super::endpoints::short_digest;
use super::merge::{ExportedService, ImportType};

/// The ServiceImport annotation naming the derived Service.
pub const DERIVED_SERVICE: &str = "multicluster.kubernetes.io/derived-service";

/// The derived Service's name, as the mcs-api reference controller makes it:
/// `derived-` + 10 characters of lowercase base32hex of sha256("<ns>/<name>").
pub fn derived_name(namespace: &str, name: &str) -> String {
    format!("derived-{}", short_digest(&format!("{namespace}/{name}")))
}

/// The ServiceImport's metadata and spec. `ips` are the ClusterSetIPs (none for a
/// headless import, or while the derived Service has none yet).
pub fn service_import(
    namespace: &str,
    name: &str,
    import: &ExportedService,
    ips: &[String],
) -> Value {
    let mut annotations: Map<String, Value> = import
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    annotations.insert(DERIVED_SERVICE.into(), json!(derived_name(namespace, name)));
    let mut spec = json!({
        "type": import.type_.as_str(),
        "ports": import.ports,
        "sessionAffinity": import.session_affinity,
        "ipFamilies": import.ip_families,
    });
    if import.type_ == ImportType::ClusterSetIP && !ips.is_empty() {
        spec["ips"] = json!(ips);
    }
    for (key, value) in [
        (
            "sessionAffinityConfig",
            import.session_affinity_config.clone(),
        ),
        (
            "internalTrafficPolicy",
            import.internal_traffic_policy.clone().map(Value::String),
        ),
        (
            "trafficDistribution",
            import.traffic_distribution.clone().map(Value::String),
        ),
    ] {
        if let Some(value) = value {
            spec[key] = value;
        }
    }
    json!({
        "apiVersion": "multicluster.x-k8s.io/v1beta1",
        "kind": "ServiceImport",
        "metadata": {"name": name, "namespace": namespace, "labels": import.labels, "annotations": annotations},
        "spec": spec,
    })
}

/// The selector-less Service whose cluster IPs become the import's `spec.ips`; headless
/// for a headless import. Owned by the ServiceImport, so it goes when the import does.
pub fn derived_service(
    namespace: &str,
    name: &str,
    import: &ExportedService,
    owner_uid: &str,
) -> Value {
    let ports: Vec<Value> = import
        .ports
        .iter()
        .map(|p| {
            let mut port = json!({"protocol": p.protocol, "port": p.port, "targetPort": p.port});
            if let Some(n) = &p.name {
                port["name"] = json!(n);
            }
            if let Some(a) = &p.app_protocol {
                port["appProtocol"] = json!(a);
            }
            port
        })
        .collect();
    let mut spec = json!({
        "type": "ClusterIP",
        "ports": ports,
        "ipFamilies": import.ip_families,
        "ipFamilyPolicy": if import.ip_families.len() > 1 { "RequireDualStack" } else { "SingleStack" },
    });
    if import.type_ == ImportType::Headless {
        spec["clusterIP"] = json!("None");
    }
    if let Some(affinity) = &import.session_affinity_config {
        spec["sessionAffinityConfig"] = affinity.clone();
    }
    spec["sessionAffinity"] = json!(import.session_affinity);
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": derived_name(namespace, name),
            "namespace": namespace,
            "ownerReferences": [owner(name, owner_uid)],
        },
        "spec": spec,
    })
}

/// The owner reference every object derived from the import carries.
pub fn owner(name: &str, uid: &str) -> Value {
    json!({
        "apiVersion": "multicluster.x-k8s.io/v1beta1",
        "kind": "ServiceImport",
        "name": name,
        "uid": uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcs::merge::Port;

    fn import(type_: ImportType) -> ExportedService {
        ExportedService {
            type_,
            ports: vec![Port {
                name: Some("http".into()),
                protocol: "TCP".into(),
                app_protocol: None,
                port: 80,
            }],
            session_affinity: "None".into(),
            session_affinity_config: None,
            internal_traffic_policy: Some("Cluster".into()),
            traffic_distribution: None,
            ip_families: vec!["IPv4".into(), "IPv6".into()],
            labels: [("tier".to_string(), "web".to_string())].into(),
            annotations: Default::default(),
        }
    }

    #[test]
    fn derived_names_are_those_of_the_reference_controller() {
        let name = derived_name("demo", "web");
        assert!(name.starts_with("derived-") && name.len() == 18, "{name}");
        assert_eq!(name, derived_name("demo", "web"));
        assert_ne!(name, derived_name("demo", "api"));
        assert_eq!(
            name,
            format!(
                "derived-{}",
                &crate::mcs::endpoints::base32hex(
                    ring::digest::digest(&ring::digest::SHA256, b"demo/web").as_ref()
                )[..10]
            )
        );
    }

    #[test]
    fn imports_carry_exported_metadata_and_ips_only_for_clusterset_ip() {
        let ips = vec!["10.101.0.5".to_string(), "fd00:100:1::5".to_string()];
        let si = service_import("demo", "web", &import(ImportType::ClusterSetIP), &ips);
        assert_eq!(si["spec"]["ips"], json!(ips));
        assert_eq!(si["metadata"]["labels"]["tier"], "web");
        assert_eq!(
            si["metadata"]["annotations"][DERIVED_SERVICE],
            derived_name("demo", "web")
        );
        assert_eq!(si["spec"]["internalTrafficPolicy"], "Cluster");
        let headless = service_import("demo", "web", &import(ImportType::Headless), &ips);
        assert!(headless["spec"].get("ips").is_none());
        let svc = derived_service("demo", "web", &import(ImportType::Headless), "u1");
        assert_eq!(svc["spec"]["clusterIP"], "None");
        assert_eq!(svc["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(svc["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert!(svc["spec"].get("selector").is_none());
    }
}
