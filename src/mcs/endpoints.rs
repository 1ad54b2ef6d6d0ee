//! Endpoints across clusters: what an exporting cluster reports from its own
//! EndpointSlices, and the EndpointSlices an importing cluster writes from every
//! exporting cluster's report (MCS-SPEC "EndpointSlices for imports").

use std::collections::BTreeMap;

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use serde_json::{json, Value};

use crate::api::records::EndpointGroup;

/// `endpointslice.kubernetes.io/managed-by` on the slices this project writes.
pub const MANAGED_BY_VALUE: &str = "agent.mcs.clusterset.io";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const MCS_SERVICE_NAME: &str = "multicluster.kubernetes.io/service-name";
pub const MCS_SOURCE_CLUSTER: &str = "multicluster.kubernetes.io/source-cluster";
/// At most this many endpoints per slice, as the standard (and kube's controller) keep them.
pub const MAX_ENDPOINTS: usize = 100;

/// Whether a slice is one this project imported (rather than one of the cluster's own).
pub fn is_imported(slice: &EndpointSlice) -> bool {
    label(slice, MANAGED_BY) == Some(MANAGED_BY_VALUE)
}

pub fn label<'a>(slice: &'a EndpointSlice, key: &str) -> Option<&'a str> {
    slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// A cluster's endpoints for one Service, from its own slices: grouped by address
/// type and port set, in a stable order (so an unchanged set reports the same), with
/// what only makes sense inside the cluster (node names, pod references, hints) left out.
pub fn report<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Vec<EndpointGroup> {
    let mut groups: BTreeMap<(String, String), EndpointGroup> = BTreeMap::new();
    for slice in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue; // FQDN slices name no address an import can route to
        }
        let mut ports = slice.ports.clone().unwrap_or_default();
        ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let port_key = serde_json::to_string(&ports).unwrap_or_default();
        let group = groups
            .entry((slice.address_type.clone(), port_key))
            .or_insert_with(|| EndpointGroup {
                address_type: slice.address_type.clone(),
                ports,
                endpoints: Vec::new(),
            });
        group
            .endpoints
            .extend(slice.endpoints.iter().map(portable_endpoint));
    }
    let mut groups: Vec<EndpointGroup> = groups.into_values().collect();
    for group in &mut groups {
        group
            .endpoints
            // By address, then by content, so which duplicate survives never depends
            // on the order the slices came in.
            .sort_by_cached_key(|e| {
                (
                    e.addresses.clone(),
                    serde_json::to_string(e).unwrap_or_default(),
                )
            });
        // Mid-update, the source controller may list an endpoint in two slices.
        group.endpoints.dedup_by(|a, b| a.addresses == b.addresses);
    }
    groups
}

fn portable_endpoint(e: &Endpoint) -> Endpoint {
    Endpoint {
        addresses: e.addresses.clone(),
        conditions: e.conditions.clone(),
        hostname: e.hostname.clone(),
        zone: e.zone.clone(),
        ..Endpoint::default()
    }
}

/// The slices an importing cluster holds for one source cluster's endpoints: one set
/// per address type and port set, at most [`MAX_ENDPOINTS`] each, named
/// deterministically so that rewriting them never duplicates them.
pub fn imported_slices(
    service: &str,
    derived: &str,
    cluster: &str,
    groups: &[EndpointGroup],
) -> Vec<Value> {
    let mut slices = Vec::new();
    for group in groups {
        let id = format!(
            "{cluster}/{}/{}",
            group.address_type,
            serde_json::to_string(&group.ports).unwrap_or_default()
        );
        let stem = format!("{derived}-{}", short_digest(&id));
        for (i, chunk) in group.endpoints.chunks(MAX_ENDPOINTS).enumerate() {
            slices.push(json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": format!("{stem}-{i}"),
                    "labels": {
                        MCS_SERVICE_NAME: service,
                        MCS_SOURCE_CLUSTER: cluster,
                        MANAGED_BY: MANAGED_BY_VALUE,
                        SERVICE_NAME: derived,
                    },
                },
                "addressType": group.address_type,
                "endpoints": chunk,
                "ports": ports_json(&group.ports),
            }));
        }
    }
    slices
}

fn ports_json(ports: &[EndpointPort]) -> Value {
    serde_json::to_value(ports).unwrap_or(Value::Array(Vec::new()))
}

/// Ten lowercase base32hex characters of SHA-256: short, stable, DNS-label safe.
pub fn short_digest(text: &str) -> String {
    base32hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())[..10]
        .to_string()
}

/// Lowercase, unpadded base32hex (RFC 4648 §7), as Go's `base32.HexEncoding` with
/// `strings.ToLower` and no padding.
pub fn base32hex(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(v: Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn base32hex_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "co"),
            ("fo", "cpng"),
            ("foo", "cpnmu"),
            ("foob", "cpnmuog"),
            ("fooba", "cpnmuoj1"),
            ("foobar", "cpnmuoj1e8"),
        ] {
            assert_eq!(base32hex(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn reports_group_sort_and_strip_cluster_local_fields() {
        let a = slice(json!({"metadata": {"name": "web-a"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.1.0.9"], "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "p"}, "conditions": {"ready": true}, "hostname": "web-1"}]}));
        let b = slice(json!({"metadata": {"name": "web-b"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.1.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                          {"addresses": ["10.1.0.9"], "conditions": {"ready": true}}]}));
        let fqdn = slice(
            json!({"metadata": {"name": "f"}, "addressType": "FQDN", "endpoints": [{"addresses": ["x.example"]}]}),
        );
        let groups = report([&a, &b, &fqdn]);
        assert_eq!(groups.len(), 1);
        let eps = &groups[0].endpoints;
        assert_eq!(eps.len(), 2, "the endpoint listed twice is reported once");
        assert_eq!(eps[0].addresses, vec!["10.1.0.2"]);
        assert_eq!(eps[0].conditions.as_ref().unwrap().terminating, Some(true));
        assert_eq!(eps[1].hostname.as_deref(), Some("web-1"));
        assert!(eps[1].node_name.is_none() && eps[1].target_ref.is_none());
        assert_eq!(
            report([&b, &a]),
            groups,
            "order of the source slices does not matter"
        );
    }

    #[test]
    fn imported_slices_hold_at_most_100_and_carry_the_mcs_labels() {
        let endpoints: Vec<Endpoint> = (0..250)
            .map(|i| Endpoint {
                addresses: vec![format!("10.2.{}.{}", i / 200, i % 200)],
                ..Endpoint::default()
            })
            .collect();
        let group = EndpointGroup {
            address_type: "IPv4".into(),
            ports: vec![],
            endpoints,
        };
        let slices = imported_slices("web", "derived-abc", "member-2", &[group]);
        assert_eq!(slices.len(), 3);
        let sizes: Vec<usize> = slices
            .iter()
            .map(|s| s["endpoints"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        let labels = &slices[0]["metadata"]["labels"];
        assert_eq!(labels[MCS_SOURCE_CLUSTER], "member-2");
        assert_eq!(labels[MCS_SERVICE_NAME], "web");
        assert_eq!(labels[SERVICE_NAME], "derived-abc");
        assert_eq!(labels[MANAGED_BY], MANAGED_BY_VALUE);
        let names: std::collections::BTreeSet<&str> = slices
            .iter()
            .map(|s| s["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 3);
    }
}
