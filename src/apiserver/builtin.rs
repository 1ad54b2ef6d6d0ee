//! The built-in kinds this server serves, each described once.

use serde_json::{json, Value};

use super::registry::{CellSource, Column, ResourceType, ScalePaths, VersionInfo};

struct Kind {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    status: bool,
    scale: bool,
    review: bool,
    columns: Vec<Column>,
}

fn kind(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
) -> Kind {
    Kind {
        group,
        version,
        kind,
        plural,
        namespaced: true,
        short_names: &[],
        status: false,
        scale: false,
        review: false,
        columns: Vec::new(),
    }
}

impl Kind {
    fn cluster_scoped(mut self) -> Self {
        self.namespaced = false;
        self
    }
    fn short(mut self, names: &'static [&'static str]) -> Self {
        self.short_names = names;
        self
    }
    fn with_status(mut self) -> Self {
        self.status = true;
        self
    }
    fn review(mut self) -> Self {
        self.review = true;
        self.namespaced = false;
        self
    }
    fn with_scale(mut self) -> Self {
        self.scale = true;
        self
    }
    fn col(mut self, name: &str, type_: &str, source: CellSource) -> Self {
        self.columns.push(column(name, type_, 0, source));
        self
    }
    fn wide(mut self, name: &str, source: CellSource) -> Self {
        self.columns.push(column(name, "string", 1, source));
        self
    }

    fn build(self) -> ResourceType {
        let mut columns = vec![column(
            "Name",
            "string",
            0,
            CellSource::JsonPath(".metadata.name".into()),
        )];
        columns.extend(self.columns);
        columns.push(column(
            "Age",
            "date",
            0,
            CellSource::JsonPath(".metadata.creationTimestamp".into()),
        ));
        ResourceType {
            group: self.group.into(),
            kind: self.kind.into(),
            plural: self.plural.into(),
            singular: self.kind.to_lowercase(),
            namespaced: self.namespaced,
            short_names: self.short_names.iter().map(|s| s.to_string()).collect(),
            categories: if matches!(
                self.plural,
                "pods" | "services" | "deployments" | "statefulsets" | "replicasets"
            ) {
                vec!["all".into()]
            } else {
                Vec::new()
            },
            versions: vec![VersionInfo {
                name: self.version.into(),
                schema: None,
                columns,
                deprecated: false,
            }],
            storage_version: self.version.into(),
            status: self.status,
            scale: self.scale.then(|| ScalePaths {
                spec_replicas: ".spec.replicas".into(),
                status_replicas: ".status.replicas".into(),
                label_selector: Some(".status.selector".into()),
            }),
            builtin: true,
            review: self.review,
        }
    }
}

fn column(name: &str, type_: &str, priority: i64, source: CellSource) -> Column {
    Column {
        name: name.into(),
        type_: type_.into(),
        format: if name == "Name" {
            "name".into()
        } else {
            String::new()
        },
        description: String::new(),
        priority,
        source,
    }
}

fn path(p: &str) -> CellSource {
    CellSource::JsonPath(p.into())
}

/// Every built-in kind, in no particular order.
pub fn builtin_types() -> Vec<ResourceType> {
    use CellSource::Computed;
    let core = |k, plural| kind("", "v1", k, plural);
    vec![
        core("Namespace", "namespaces")
            .cluster_scoped()
            .short(&["ns"])
            .with_status()
            .col("Status", "string", path(".status.phase")),
        core("Service", "services")
            .short(&["svc"])
            .with_status()
            .col("Type", "string", path(".spec.type"))
            .col("Cluster-IP", "string", path(".spec.clusterIP"))
            .col("External-IP", "string", Computed(service_external_ip))
            .col("Port(s)", "string", Computed(service_ports))
            .wide("Selector", Computed(service_selector)),
        core("Pod", "pods")
            .short(&["po"])
            .with_status()
            .col("Ready", "string", Computed(pod_ready))
            .col("Status", "string", Computed(pod_status))
            .col("Restarts", "string", Computed(pod_restarts))
            .wide("IP", path(".status.podIP"))
            .wide("Node", path(".spec.nodeName")),
        core("Node", "nodes")
            .cluster_scoped()
            .short(&["no"])
            .with_status()
            .col("Status", "string", Computed(node_status))
            .col("Roles", "string", Computed(|_| json!("<none>")))
            .col("Version", "string", path(".status.nodeInfo.kubeletVersion")),
        core("ConfigMap", "configmaps")
            .short(&["cm"])
            .col("Data", "integer", Computed(data_count)),
        core("Secret", "secrets")
            .col("Type", "string", path(".type"))
            .col("Data", "integer", Computed(data_count)),
        core("ServiceAccount", "serviceaccounts")
            .short(&["sa"])
            .col(
                "Secrets",
                "integer",
                Computed(|o| json!(len_of(&o["secrets"]))),
            ),
        core("Endpoints", "endpoints").short(&["ep"]).col(
            "Endpoints",
            "string",
            Computed(endpoints_summary),
        ),
        core("Event", "events")
            .short(&["ev"])
            .col("Reason", "string", path(".reason"))
            .col("Message", "string", path(".message")),
        core("ResourceQuota", "resourcequotas")
            .short(&["quota"])
            .with_status(),
        core("LimitRange", "limitranges").short(&["limits"]),
        kind("events.k8s.io", "v1", "Event", "events")
            .short(&["ev"])
            .col("Reason", "string", path(".reason"))
            .col("Note", "string", path(".note")),
        kind("apps", "v1", "Deployment", "deployments")
            .short(&["deploy"])
            .with_status()
            .with_scale()
            .col("Ready", "string", Computed(ready_of_replicas))
            .col(
                "Up-to-date",
                "integer",
                Computed(|o| int_or_zero(&o["status"]["updatedReplicas"])),
            )
            .col(
                "Available",
                "integer",
                Computed(|o| int_or_zero(&o["status"]["availableReplicas"])),
            ),
        kind("apps", "v1", "StatefulSet", "statefulsets")
            .short(&["sts"])
            .with_status()
            .with_scale()
            .col("Ready", "string", Computed(ready_of_replicas)),
        kind("apps", "v1", "ReplicaSet", "replicasets")
            .short(&["rs"])
            .with_status()
            .with_scale()
            .col(
                "Desired",
                "integer",
                Computed(|o| int_or_zero(&o["spec"]["replicas"])),
            )
            .col(
                "Current",
                "integer",
                Computed(|o| int_or_zero(&o["status"]["replicas"])),
            )
            .col(
                "Ready",
                "integer",
                Computed(|o| int_or_zero(&o["status"]["readyReplicas"])),
            ),
        kind("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices")
            .col("AddressType", "string", path(".addressType"))
            .col("Ports", "string", Computed(slice_ports))
            .col("Endpoints", "string", Computed(slice_endpoints)),
        kind("coordination.k8s.io", "v1", "Lease", "leases").col(
            "Holder",
            "string",
            path(".spec.holderIdentity"),
        ),
        kind("rbac.authorization.k8s.io", "v1", "Role", "roles"),
        kind(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
        )
        .cluster_scoped(),
        kind(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
        )
        .col("Role", "string", Computed(binding_role)),
        kind(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
        )
        .cluster_scoped()
        .col("Role", "string", Computed(binding_role)),
        kind(
            "authorization.k8s.io",
            "v1",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
        )
        .review(),
        kind(
            "authentication.k8s.io",
            "v1",
            "SelfSubjectReview",
            "selfsubjectreviews",
        )
        .review(),
        kind(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        )
        .cluster_scoped()
        .short(&["crd", "crds"])
        .with_status()
        .col("Created At", "string", path(".metadata.creationTimestamp")),
    ]
    .into_iter()
    .map(Kind::build)
    .collect()
}

fn len_of(v: &Value) -> usize {
    match v {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => 0,
    }
}

fn int_or_zero(v: &Value) -> Value {
    json!(v.as_i64().unwrap_or(0))
}

fn data_count(o: &Value) -> Value {
    json!(len_of(&o["data"]) + len_of(&o["binaryData"]))
}

fn ready_of_replicas(o: &Value) -> Value {
    let ready = o["status"]["readyReplicas"].as_i64().unwrap_or(0);
    let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
    json!(format!("{ready}/{want}"))
}

fn service_external_ip(o: &Value) -> Value {
    let spec = &o["spec"];
    if let Some(name) = spec["externalName"].as_str() {
        return json!(name);
    }
    let ingress: Vec<&str> = spec_list(&o["status"]["loadBalancer"]["ingress"], "ip");
    let external: Vec<&str> = spec["externalIPs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let all: Vec<&str> = ingress.into_iter().chain(external).collect();
    match (all.is_empty(), spec["type"].as_str()) {
        (false, _) => json!(all.join(",")),
        (true, Some("LoadBalancer")) => json!("<pending>"),
        _ => json!("<none>"),
    }
}

fn spec_list<'a>(v: &'a Value, field: &str) -> Vec<&'a str> {
    v.as_array()
        .map(|a| a.iter().filter_map(|i| i[field].as_str()).collect())
        .unwrap_or_default()
}

fn service_ports(o: &Value) -> Value {
    let ports: Vec<String> = o["spec"]["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64() {
                        Some(np) => format!("{}:{}/{}", p["port"], np, proto),
                        None => format!("{}/{}", p["port"], proto),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if ports.is_empty() {
        json!("<none>")
    } else {
        json!(ports.join(","))
    }
}

fn service_selector(o: &Value) -> Value {
    match o["spec"]["selector"].as_object() {
        Some(sel) if !sel.is_empty() => json!(sel
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(",")),
        _ => json!("<none>"),
    }
}

fn pod_ready(o: &Value) -> Value {
    let total = len_of(&o["spec"]["containers"]);
    let ready = o["status"]["containerStatuses"]
        .as_array()
        .map(|s| s.iter().filter(|c| c["ready"] == json!(true)).count())
        .unwrap_or(0);
    json!(format!("{ready}/{total}"))
}

fn pod_status(o: &Value) -> Value {
    if o["metadata"]["deletionTimestamp"].is_string() {
        return json!("Terminating");
    }
    let phase = o["status"]["phase"].as_str().unwrap_or("Pending");
    json!(o["status"]["reason"].as_str().unwrap_or(phase))
}

fn pod_restarts(o: &Value) -> Value {
    let n: i64 = o["status"]["containerStatuses"]
        .as_array()
        .map(|s| s.iter().filter_map(|c| c["restartCount"].as_i64()).sum())
        .unwrap_or(0);
    json!(n.to_string())
}

fn node_status(o: &Value) -> Value {
    let ready = o["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["status"] == "True");
    json!(match ready {
        Some(true) => "Ready",
        _ => "NotReady",
    })
}

fn endpoints_summary(o: &Value) -> Value {
    let mut out = Vec::new();
    for subset in o["subsets"].as_array().into_iter().flatten() {
        for addr in spec_list(&subset["addresses"], "ip") {
            for port in subset["ports"].as_array().into_iter().flatten() {
                out.push(format!("{addr}:{}", port["port"]));
            }
        }
    }
    summarize(out)
}

fn slice_ports(o: &Value) -> Value {
    let ports: Vec<String> = o["ports"]
        .as_array()
        .map(|p| p.iter().map(|p| p["port"].to_string()).collect())
        .unwrap_or_default();
    summarize(ports)
}

fn slice_endpoints(o: &Value) -> Value {
    let addrs: Vec<String> = o["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["addresses"].as_array().into_iter().flatten())
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    summarize(addrs)
}

/// kubectl shows at most three entries and "+ N more...".
fn summarize(items: Vec<String>) -> Value {
    if items.is_empty() {
        return json!("<unset>");
    }
    let shown = items.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if items.len() > 3 {
        json!(format!("{shown} + {} more...", items.len() - 3))
    } else {
        json!(shown)
    }
}

fn binding_role(o: &Value) -> Value {
    json!(format!(
        "{}/{}",
        o["roleRef"]["kind"].as_str().unwrap_or_default(),
        o["roleRef"]["name"].as_str().unwrap_or_default()
    ))
}
