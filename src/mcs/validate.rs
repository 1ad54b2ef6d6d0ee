//! Whether a ServiceExport can be exported, and what of its Service it exports — the
//! agent's first step (MCS-SPEC: ServiceExport `Valid`, Service type mapping).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

use super::merge::{ExportedService, ImportType, Port};
use crate::api::multicluster::ServiceExport;
use crate::api::records::{hub_namespace, record_name, ExportRecordSpec};

/// The export's `Valid` condition: status, reason, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validity {
    pub valid: bool,
    pub reason: &'static str,
    pub message: String,
}

/// Valid=True/Valid for an exportable Service, False/NoService without one,
/// False/InvalidServiceType for ExternalName.
pub fn validity(export: &ServiceExport, service: Option<&Service>) -> Validity {
    let name = export.metadata.name.as_deref().unwrap_or_default();
    if !is_dns_label(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        // A Service name is a DNS-1035 label; this export can never match one, and
        // its name could not become <name>.<ns>.svc.clusterset.local.
        return Validity {
            valid: false,
            reason: "NoService",
            message: format!(
                "ServiceExport name {name:?} is not a valid Service name (a DNS-1035 label: \
                 at most 63 lowercase letters, digits and '-', starting with a letter), so no \
                 Service can be exported under it"
            ),
        };
    }
    let Some(service) = service else {
        return Validity {
            valid: false,
            reason: "NoService",
            message: format!(
                "Service {name} not found in namespace {}",
                export.metadata.namespace.as_deref().unwrap_or_default()
            ),
        };
    };
    let service_type = service
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP");
    if service_type == "ExternalName" {
        return Validity {
            valid: false,
            reason: "InvalidServiceType",
            message: format!("Service {name} is of type ExternalName, which cannot be exported"),
        };
    }
    Validity {
        valid: true,
        reason: "Valid",
        message: format!("Service {name} is exported"),
    }
}

/// What a valid export carries to the import: ClusterIP, NodePort and LoadBalancer
/// Services become ClusterSetIP, headless ones Headless; labels and annotations only
/// from the export's `exportedLabels` and `exportedAnnotations`.
pub fn exported_service(export: &ServiceExport, service: &Service) -> ExportedService {
    let spec = service.spec.clone().unwrap_or_default();
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let ports = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| Port {
            name: p.name.filter(|n| !n.is_empty()),
            protocol: p.protocol.unwrap_or_else(|| "TCP".into()),
            app_protocol: p.app_protocol,
            port: p.port,
        })
        .collect();
    let copy = |m: &Option<BTreeMap<String, String>>| m.clone().unwrap_or_default();
    ExportedService {
        type_: if headless {
            ImportType::Headless
        } else {
            ImportType::ClusterSetIP
        },
        ports,
        session_affinity: spec.session_affinity.unwrap_or_else(|| "None".into()),
        session_affinity_config: spec
            .session_affinity_config
            .map(|c| serde_json::to_value(c).expect("serializable")),
        internal_traffic_policy: spec.internal_traffic_policy,
        traffic_distribution: spec.traffic_distribution,
        ip_families: spec.ip_families.unwrap_or_else(|| vec!["IPv4".into()]),
        labels: copy(&export.spec.exported_labels),
        annotations: copy(&export.spec.exported_annotations),
    }
}

/// Whether a hub ExportRecord can be merged: it must sit in the namespace of the
/// cluster it names, under the name of the service it describes, and say nothing a
/// Service could not. Records are written by agents, but the hub trusts nothing it
/// did not check: a bad record is rejected with the reason, never merged.
pub fn check_record(namespace: &str, name: &str, spec: &ExportRecordSpec) -> Result<(), String> {
    let home = hub_namespace(&spec.cluster);
    if namespace != home {
        return Err(format!(
            "the record names cluster {:?}, whose records belong in namespace {home}, not {namespace}",
            spec.cluster
        ));
    }
    let want = record_name(&spec.namespace, &spec.service);
    if name != want {
        return Err(format!(
            "a record of {}/{} must be named {want}",
            spec.namespace, spec.service
        ));
    }
    if !is_dns_label(&spec.namespace) || !is_dns_label(&spec.service) {
        return Err(format!(
            "{}/{} is not a namespace and Service name (DNS labels of at most 63 characters)",
            spec.namespace, spec.service
        ));
    }
    if spec.created.parse::<jiff::Timestamp>().is_err() {
        return Err(format!(
            "created {:?} is not an RFC 3339 time",
            spec.created
        ));
    }
    let service = &spec.exported;
    for p in &service.ports {
        if !matches!(p.protocol.as_str(), "TCP" | "UDP" | "SCTP") || !(1..=65535).contains(&p.port)
        {
            return Err(format!(
                "port {} {} is not a valid Service port",
                p.port, p.protocol
            ));
        }
    }
    let mut names = std::collections::BTreeSet::new();
    let mut numbers = std::collections::BTreeSet::new();
    for p in &service.ports {
        if !names.insert(p.name.clone().unwrap_or_default()) {
            return Err(format!(
                "port name {:?} is used twice",
                p.name.clone().unwrap_or_default()
            ));
        }
        if !numbers.insert((p.protocol.clone(), p.port)) {
            return Err(format!("port {}/{} is listed twice", p.port, p.protocol));
        }
    }
    let families = &service.ip_families;
    if families.is_empty()
        || families.len() > 2
        || families.iter().any(|f| f != "IPv4" && f != "IPv6")
        || (families.len() == 2 && families[0] == families[1])
    {
        return Err(format!(
            "ipFamilies {families:?} must be one or two distinct of IPv4, IPv6"
        ));
    }
    if !matches!(service.session_affinity.as_str(), "None" | "ClientIP") {
        return Err(format!(
            "sessionAffinity {:?} must be None or ClientIP",
            service.session_affinity
        ));
    }
    for group in &spec.endpoints {
        let v6 = match group.address_type.as_str() {
            "IPv4" => false,
            "IPv6" => true,
            other => {
                return Err(format!(
                    "endpoint addressType {other:?} must be IPv4 or IPv6"
                ))
            }
        };
        for address in group.endpoints.iter().flat_map(|e| &e.addresses) {
            match address.parse::<std::net::IpAddr>() {
                Ok(ip) if ip.is_ipv6() == v6 => {}
                _ => {
                    return Err(format!(
                        "endpoint address {address:?} is not an {} address",
                        group.address_type
                    ))
                }
            }
        }
    }
    Ok(())
}

/// An RFC 1123 label: what namespace names are (and Service names, more strictly).
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// An RFC 1123 subdomain: dot-separated labels, at most 253 characters (cluster IDs).
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn export(extra: serde_json::Value) -> ServiceExport {
        let mut v = json!({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
            "metadata": {"name": "web", "namespace": "demo", "labels": {"not": "exported"}}, "spec": {}});
        json_patch::merge(&mut v, &extra);
        serde_json::from_value(v).unwrap()
    }

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "demo", "labels": {"svc": "label"}}, "spec": spec})).unwrap()
    }

    #[test]
    fn export_validity_follows_the_service() {
        let e = export(json!({}));
        assert_eq!(validity(&e, None).reason, "NoService");
        let long = export(json!({"metadata": {"name": "a".repeat(64)}}));
        let v = validity(&long, Some(&service(json!({}))));
        assert_eq!((v.valid, v.reason), (false, "NoService"));
        assert!(v.message.contains("DNS-1035"), "{}", v.message);
        let external = service(json!({"type": "ExternalName", "externalName": "example.com"}));
        let v = validity(&e, Some(&external));
        assert!(!v.valid);
        assert_eq!(v.reason, "InvalidServiceType");
        for t in ["ClusterIP", "NodePort", "LoadBalancer"] {
            assert!(
                validity(&e, Some(&service(json!({"type": t})))).valid,
                "{t}"
            );
        }
    }

    #[test]
    fn type_mapping_and_exported_metadata() {
        let e = export(
            json!({"spec": {"exportedLabels": {"tier": "web"}, "exportedAnnotations": {"a": "b"}}}),
        );
        let clusterip = exported_service(
            &e,
            &service(
                json!({"type": "NodePort", "clusterIP": "10.0.0.1", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}], "ipFamilies": ["IPv4"]}),
            ),
        );
        assert_eq!(clusterip.type_, ImportType::ClusterSetIP);
        assert_eq!(clusterip.ports[0].port, 80);
        assert_eq!(
            clusterip.labels,
            BTreeMap::from([("tier".to_string(), "web".to_string())]),
            "never the Service's or export's own labels"
        );
        assert_eq!(clusterip.annotations.len(), 1);
        let headless = exported_service(
            &export(json!({})),
            &service(json!({"clusterIP": "None", "ports": [{"port": 5432}]})),
        );
        assert_eq!(headless.type_, ImportType::Headless);
        assert_eq!(headless.ports[0].protocol, "TCP");
        assert!(headless.labels.is_empty());
    }

    fn record(extra: serde_json::Value) -> ExportRecordSpec {
        let mut v = json!({"cluster": "east", "namespace": "demo", "service": "web", "created": "2026-01-01T00:00:00Z",
            "exported": {"type": "ClusterSetIP", "sessionAffinity": "None", "ipFamilies": ["IPv4"],
                         "ports": [{"name": "http", "protocol": "TCP", "port": 80}]},
            "endpoints": [{"addressType": "IPv4", "endpoints": [{"addresses": ["10.1.0.2"]}]}]});
        json_patch::merge(&mut v, &extra);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn hub_records_are_checked_before_merging() {
        let ok = record(json!({}));
        assert_eq!(check_record("clusterset-east", "demo.web", &ok), Ok(()));
        let cases = [
            (
                "clusterset-west",
                "demo.web",
                json!({}),
                "belong in namespace clusterset-east",
            ),
            (
                "clusterset-east",
                "demo.api",
                json!({}),
                "must be named demo.web",
            ),
            (
                "clusterset-east",
                "demo.web",
                json!({"created": "yesterday"}),
                "not an RFC 3339 time",
            ),
            (
                "clusterset-east",
                "demo.web",
                json!({"exported": {"ports": [{"name": "a", "protocol": "TCP", "port": 70000}]}}),
                "not a valid Service port",
            ),
            (
                "clusterset-east",
                "demo.web",
                json!({"exported": {"ports": [{"name": "a", "protocol": "TCP", "port": 80}, {"name": "a", "protocol": "UDP", "port": 53}]}}),
                "used twice",
            ),
            (
                "clusterset-east",
                "demo.web",
                json!({"exported": {"ports": [{"name": "a", "protocol": "TCP", "port": 80}, {"name": "b", "protocol": "TCP", "port": 80}]}}),
                "listed twice",
            ),
            (
                "clusterset-east",
                "demo.web",
                json!({"exported": {"ipFamilies": ["IPv4", "IPv4"]}}),
                "distinct",
            ),
            (
                "clusterset-east",
                "demo.web",
                json!({"exported": {"sessionAffinity": "Sticky"}}),
                "None or ClientIP",
            ),
            (
                "clusterset-east",
                "demo.web",
                json!({"endpoints": [{"addressType": "IPv6", "endpoints": [{"addresses": ["10.1.0.2"]}]}]}),
                "not an IPv6 address",
            ),
            (
                "clusterset-east",
                "demo.web",
                json!({"endpoints": [{"addressType": "FQDN", "endpoints": []}]}),
                "must be IPv4 or IPv6",
            ),
        ];
        for (ns, name, extra, needle) in cases {
            let err = check_record(ns, name, &record(extra.clone())).unwrap_err();
            assert!(err.contains(needle), "{extra}: {err}");
        }
    }
}
