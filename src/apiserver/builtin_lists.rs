//! How the list fields of the built-in kinds merge: the `patchStrategy` /
//! `patchMergeKey` and `listType` / `listMapKeys` tags of the Kubernetes Go types.
//!
//! [`ListTypes`] is asked by path only, not by kind, so the rules tell kinds apart by
//! the shape of the path: a pod spec sits at `spec` (Pod) or at `spec.template.spec`
//! (Deployment, StatefulSet), container `ports` sit under `containers`, a Service's
//! `ports` directly under the root `spec`. Lists no rule names are atomic, which is
//! also what every list without a patch strategy is upstream (tolerations, envFrom,
//! node taints, RBAC rules and subjects, EndpointSlice endpoints and ports, ...).

use super::lists::{ListType, ListTypes};

/// The list types of core/v1, apps/v1, discovery.k8s.io/v1, coordination.k8s.io/v1
/// and rbac.authorization.k8s.io/v1 objects.
pub struct BuiltinLists;

/// A non-atomic list: a set of scalars, or objects keyed by these fields (the first
/// is the strategic merge key).
enum Rule {
    Set,
    Keys(&'static [&'static str]),
}

/// `(path pattern, rule)`, first match wins. Patterns are dot-separated segments
/// matched against the whole path: `**` matches any number of segments (none
/// included) and `a|b` either name.
// One line per rule reads as a table; rustfmt would wrap the longer ones.
#[rustfmt::skip]
const RULES: &[(&str, Rule)] = &[
    // ObjectMeta, of the object itself or of a pod template.
    ("**.metadata.finalizers", Rule::Set),
    ("**.metadata.ownerReferences", Rule::Keys(&["uid"])),
    // Containers of a pod spec.
    ("**.spec.containers|initContainers|ephemeralContainers", Rule::Keys(&["name"])),
    ("**.spec.containers|initContainers|ephemeralContainers.ports", Rule::Keys(&["containerPort", "protocol"])),
    ("**.spec.containers|initContainers|ephemeralContainers.env", Rule::Keys(&["name"])),
    ("**.spec.containers|initContainers|ephemeralContainers.volumeMounts", Rule::Keys(&["mountPath"])),
    ("**.spec.containers|initContainers|ephemeralContainers.volumeDevices", Rule::Keys(&["devicePath"])),
    // The rest of a pod spec.
    ("**.spec.volumes", Rule::Keys(&["name"])),
    ("**.spec.imagePullSecrets", Rule::Keys(&["name"])),
    ("**.spec.hostAliases", Rule::Keys(&["ip"])),
    ("**.spec.topologySpreadConstraints", Rule::Keys(&["topologyKey", "whenUnsatisfiable"])),
    ("**.spec.resourceClaims", Rule::Keys(&["name"])),
    ("**.spec.schedulingGates", Rule::Keys(&["name"])),
    // Pod status.
    ("status.podIPs|hostIPs", Rule::Keys(&["ip"])),
    ("status.resourceClaimStatuses", Rule::Keys(&["name"])),
    // Conditions of any status: Pod, Node, Namespace, Service, Deployment, StatefulSet,
    // and the PVC templates of a StatefulSet.
    ("**.status.conditions", Rule::Keys(&["type"])),
    // Service.
    ("spec.ports", Rule::Keys(&["port", "protocol"])),
    // Node. Its spec.taints carry no patch strategy upstream (atomic): `kubectl taint`
    // removes a taint by sending the remaining list whole.
    ("spec.podCIDRs", Rule::Set),
    ("status.addresses", Rule::Keys(&["type"])),
    // ServiceAccount; its imagePullSecrets, unlike a pod's, are atomic.
    ("secrets", Rule::Keys(&["name"])),
];

impl ListTypes for BuiltinLists {
    fn list_type(&self, path: &[&str]) -> ListType {
        let rule = RULES.iter().find(|(pattern, _)| {
            let pattern: Vec<&str> = pattern.split('.').collect();
            matches(&pattern, path)
        });
        match rule {
            Some((_, Rule::Set)) => ListType::Set,
            Some((_, Rule::Keys(keys))) => {
                ListType::Map(keys.iter().map(|k| k.to_string()).collect())
            }
            None => ListType::Atomic,
        }
    }
}

/// Whether the whole `path` matches the pattern's segments.
fn matches(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| matches(rest, &path[skip..])),
        Some((segment, rest)) => match path.split_first() {
            Some((name, path_rest)) => {
                segment.split('|').any(|alt| alt == *name) && matches(rest, path_rest)
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_type(path: &str) -> ListType {
        let path: Vec<&str> = path.split('.').collect();
        BuiltinLists.list_type(&path)
    }

    fn keys(keys: &[&str]) -> ListType {
        ListType::Map(keys.iter().map(|k| k.to_string()).collect())
    }

    #[test]
    fn containers_of_pods_and_pod_templates() {
        assert_eq!(list_type("spec.containers"), keys(&["name"]));
        assert_eq!(
            list_type("spec.template.spec.initContainers"),
            keys(&["name"])
        );
        assert_eq!(
            list_type("spec.template.spec.containers.env"),
            keys(&["name"])
        );
        assert_eq!(
            list_type("spec.ephemeralContainers.volumeMounts"),
            keys(&["mountPath"])
        );
        assert_eq!(
            list_type("spec.template.spec.containers.envFrom"),
            ListType::Atomic
        );
        assert_eq!(
            list_type("spec.template.spec.containers.args"),
            ListType::Atomic
        );
    }

    #[test]
    fn container_ports_differ_from_service_ports() {
        assert_eq!(
            list_type("spec.template.spec.containers.ports"),
            keys(&["containerPort", "protocol"])
        );
        assert_eq!(list_type("spec.ports"), keys(&["port", "protocol"]));
        // EndpointSlice ports sit at the root and are atomic.
        assert_eq!(list_type("ports"), ListType::Atomic);
    }

    #[test]
    fn metadata_and_status_anywhere() {
        assert_eq!(list_type("metadata.finalizers"), ListType::Set);
        assert_eq!(
            list_type("spec.template.metadata.ownerReferences"),
            keys(&["uid"])
        );
        assert_eq!(list_type("status.conditions"), keys(&["type"]));
        assert_eq!(
            list_type("spec.volumeClaimTemplates.status.conditions"),
            keys(&["type"])
        );
    }

    #[test]
    fn image_pull_secrets_merge_in_pods_only() {
        assert_eq!(
            list_type("spec.template.spec.imagePullSecrets"),
            keys(&["name"])
        );
        assert_eq!(list_type("imagePullSecrets"), ListType::Atomic);
        assert_eq!(list_type("secrets"), keys(&["name"]));
    }

    #[test]
    fn atomic_lists() {
        for path in [
            "spec.taints",
            "spec.tolerations",
            "rules",
            "subjects",
            "endpoints",
            "subsets",
            "spec.finalizers",
        ] {
            assert_eq!(list_type(path), ListType::Atomic, "{path}");
        }
    }

    #[test]
    fn node_lists() {
        assert_eq!(list_type("spec.podCIDRs"), ListType::Set);
        assert_eq!(list_type("status.addresses"), keys(&["type"]));
        assert_eq!(list_type("status.images"), ListType::Atomic);
    }
}
