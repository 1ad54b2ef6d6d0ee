//! Multi-cluster services end to end in `local up`: the hub controller and one agent
//! per member, each under its ServiceAccount and the roles of manifests/, driven as a
//! user would — through kubectl and through kube-rs — with this project's CRDs and
//! with the upstream mcs-api ones.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use clusterset::api::multicluster::{ServiceExport, ServiceImport};
use clusterset::local::{IpFamily, LocalClusterset, UpOptions};
use clusterset::mcs::imports::derived_name;
use common::{eventually, kubectl_at, kubectl_at_ok, upstream_crds_dir};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

struct Set {
    local: LocalClusterset,
    _dir: tempfile::TempDir,
}

impl Set {
    async fn up(members: usize, upstream: bool) -> Set {
        let dir = tempfile::tempdir().unwrap();
        let opts = UpOptions {
            members,
            dir: dir.path().join("cs"),
            data_dir: None,
            ip_family: IpFamily::Ipv4,
            upstream_crds: upstream.then(upstream_crds_dir),
            controllers: Default::default(),
        };
        let local = LocalClusterset::up(&opts).await.unwrap();
        Set { local, _dir: dir }
    }

    fn client(&self, cluster: &str) -> kube::Client {
        self.local.cluster(cluster).unwrap().server.client()
    }

    fn kubectl(&self, cluster: &str, args: &[&str]) -> String {
        self.kubectl_in(cluster, args, None)
    }

    fn kubectl_in(&self, cluster: &str, args: &[&str], stdin: Option<&str>) -> String {
        let mut all = vec!["--context", cluster];
        all.extend_from_slice(args);
        kubectl_at_ok(&self.local.kubeconfig_path(), &all, stdin)
    }

    /// A Deployment `name` with `replicas` pods behind a Service of the same name.
    fn workload(&self, cluster: &str, ns: &str, name: &str, replicas: u32, service: Value) {
        self.kubectl(
            cluster,
            &[
                "-n",
                ns,
                "create",
                "deployment",
                name,
                "--image=nginx",
                &format!("--replicas={replicas}"),
            ],
        );
        let mut svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
        json_patch::merge(&mut svc, &service);
        self.kubectl_in(cluster, &["apply", "-f", "-"], Some(&svc.to_string()));
    }

    fn export(&self, cluster: &str, ns: &str, name: &str) {
        let export = json!({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
            "metadata": {"name": name, "namespace": ns}});
        self.kubectl_in(cluster, &["apply", "-f", "-"], Some(&export.to_string()));
    }

    fn namespace(&self, clusters: &[&str], ns: &str) {
        for c in clusters {
            self.kubectl(c, &["create", "namespace", ns]);
        }
    }

    async fn import(&self, cluster: &str, ns: &str, name: &str) -> Option<ServiceImport> {
        Api::<ServiceImport>::namespaced(self.client(cluster), ns)
            .get_opt(name)
            .await
            .unwrap()
    }

    /// Waits until `check` holds for the import in `cluster` (None: no import).
    async fn wait_import(
        &self,
        cluster: &str,
        ns: &str,
        name: &str,
        what: &str,
        check: impl Fn(Option<&ServiceImport>) -> bool,
    ) -> Option<ServiceImport> {
        let what = format!("{cluster}: import {ns}/{name} {what}");
        eventually(&what, WAIT, || async {
            let import = self.import(cluster, ns, name).await;
            check(import.as_ref()).then_some(import)
        })
        .await
    }

    /// The imported slices of `ns/name` in `cluster`.
    async fn imported_slices(&self, cluster: &str, ns: &str, name: &str) -> Vec<EndpointSlice> {
        let lp = ListParams::default()
            .labels(&format!("multicluster.kubernetes.io/service-name={name}"));
        Api::<EndpointSlice>::namespaced(self.client(cluster), ns)
            .list(&lp)
            .await
            .unwrap()
            .items
    }

    /// Waits until the imported endpoints in `cluster`, as (source cluster, address,
    /// ready), satisfy `check`.
    async fn wait_endpoints(
        &self,
        cluster: &str,
        ns: &str,
        name: &str,
        what: &str,
        check: impl Fn(&[(String, String, bool)]) -> bool,
    ) -> Vec<(String, String, bool)> {
        let what = format!("{cluster}: endpoints of {ns}/{name} {what}");
        eventually(&what, WAIT, || async {
            let mut seen = Vec::new();
            for s in self.imported_slices(cluster, ns, name).await {
                let source = s.metadata.labels.as_ref().unwrap()
                    ["multicluster.kubernetes.io/source-cluster"]
                    .clone();
                for e in &s.endpoints {
                    let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false);
                    seen.push((source.clone(), e.addresses[0].clone(), ready));
                }
            }
            seen.sort();
            check(&seen).then_some(seen)
        })
        .await
    }

    async fn export_condition(
        &self,
        cluster: &str,
        ns: &str,
        name: &str,
        type_: &str,
        status: &str,
        reason: &str,
    ) -> String {
        let api: Api<ServiceExport> = Api::namespaced(self.client(cluster), ns);
        let what = format!("{cluster}: export {ns}/{name} {type_}={status}/{reason}");
        eventually(&what, WAIT, || {
            let api = api.clone();
            async move {
                let e = api.get(name).await.ok()?;
                let c = e
                    .status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == type_)?;
                (c.status == status && c.reason == reason).then_some(c.message)
            }
        })
        .await
    }
}

fn clusters_of(import: &ServiceImport) -> Vec<String> {
    import
        .status
        .as_ref()
        .map(|s| s.clusters.iter().map(|c| c.cluster.clone()).collect())
        .unwrap_or_default()
}

fn ready_condition(import: &ServiceImport) -> Option<(String, String)> {
    let c = import
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone()))
}

/// Export in member-1; import, derived Service and slices in every member where the
/// namespace exists; endpoints follow scaling and readiness; unexport cleans up.
async fn export_to_every_member(upstream: bool) {
    let set = Set::up(3, upstream).await;
    set.namespace(&["member-1", "member-2"], "demo");
    set.workload("member-1", "demo", "web", 2, json!({}));
    set.export("member-1", "demo", "web");

    for member in ["member-1", "member-2"] {
        let import = set
            .wait_import(member, "demo", "web", "ready", |i| {
                i.and_then(ready_condition) == Some(("True".into(), "Ready".into()))
            })
            .await
            .unwrap();
        assert_eq!(
            import.spec.type_,
            clusterset::api::multicluster::ServiceImportType::ClusterSetIP
        );
        assert_eq!(import.spec.ports.len(), 1);
        assert_eq!(
            import.spec.ports[0].port, 80,
            "the Service port, not the target port"
        );
        assert_eq!(import.spec.ports[0].name.as_deref(), Some("http"));
        assert_eq!(import.spec.ip_families, vec!["IPv4"]);
        assert_eq!(clusters_of(&import), vec!["member-1"]);
        // The ClusterSetIP is the derived Service's cluster IP in this member.
        let derived = derived_name("demo", "web");
        assert_eq!(
            import.metadata.annotations.as_ref().unwrap()
                ["multicluster.kubernetes.io/derived-service"],
            derived
        );
        let svc = Api::<Service>::namespaced(set.client(member), "demo")
            .get(&derived)
            .await
            .unwrap();
        let spec = svc.spec.as_ref().unwrap();
        assert!(
            spec.selector.is_none(),
            "the derived Service has no selector"
        );
        assert_eq!(import.spec.ips, spec.cluster_ips.clone().unwrap());
        let owner = &svc.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("ServiceImport", import.metadata.uid.as_deref().unwrap())
        );
        let i = &member[7..];
        assert!(
            import.spec.ips[0].starts_with(&format!("10.10{i}.")),
            "{member}'s service CIDR: {:?}",
            import.spec.ips
        );
    }
    assert!(
        set.import("member-3", "demo", "web").await.is_none(),
        "no namespace, no import"
    );
    assert!(
        set.kubectl("member-3", &["get", "namespaces", "-o", "name"])
            .lines()
            .all(|l| l != "namespace/demo"),
        "namespaces are never created"
    );

    let message = set
        .export_condition("member-1", "demo", "web", "Ready", "True", "Exported")
        .await;
    assert!(message.contains("member-1"), "{message}");
    set.export_condition("member-1", "demo", "web", "Valid", "True", "Valid")
        .await;
    set.export_condition(
        "member-1",
        "demo",
        "web",
        "Conflict",
        "False",
        "NoConflicts",
    )
    .await;

    let endpoints = set
        .wait_endpoints("member-2", "demo", "web", "are the two pods", |e| {
            e.len() == 2 && e.iter().all(|x| x.2)
        })
        .await;
    assert!(
        endpoints
            .iter()
            .all(|(c, ip, _)| c == "member-1" && ip.starts_with("10.1.")),
        "{endpoints:?}"
    );
    let slices = set.imported_slices("member-2", "demo", "web").await;
    let labels = slices[0].metadata.labels.as_ref().unwrap();
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "agent.mcs.clusterset.io"
    );
    assert_eq!(
        labels["kubernetes.io/service-name"],
        derived_name("demo", "web")
    );
    assert_eq!(
        slices[0].ports.as_ref().unwrap()[0].port,
        Some(8080),
        "slices carry the target port"
    );
    // The exporting cluster imports too, from its own endpoints.
    set.wait_endpoints("member-1", "demo", "web", "are the two pods", |e| {
        e.len() == 2
    })
    .await;

    // A namespace created later gets the import.
    set.namespace(&["member-3"], "demo");
    set.wait_import("member-3", "demo", "web", "exists", |i| i.is_some())
        .await;

    // Scaling and readiness reach every member.
    set.kubectl(
        "member-1",
        &["-n", "demo", "scale", "deployment", "web", "--replicas=4"],
    );
    for member in ["member-2", "member-3"] {
        set.wait_endpoints(member, "demo", "web", "are four ready pods", |e| {
            e.len() == 4 && e.iter().all(|x| x.2)
        })
        .await;
    }
    let pods = Api::<Pod>::namespaced(set.client("member-1"), "demo")
        .list(&ListParams::default())
        .await
        .unwrap();
    let pod = &pods.items[0];
    let unready_ip = pod.status.as_ref().unwrap().pod_ip.clone().unwrap();
    set.kubectl(
        "member-1",
        &[
            "-n",
            "demo",
            "annotate",
            "pod",
            pod.metadata.name.as_deref().unwrap(),
            "clusterset.io/ready=false",
        ],
    );
    set.wait_endpoints("member-3", "demo", "web", "show the unready pod", |e| {
        e.iter().any(|(_, ip, ready)| ip == &unready_ip && !ready)
            && e.iter().filter(|x| x.2).count() == 3
    })
    .await;
    set.kubectl(
        "member-1",
        &["-n", "demo", "scale", "deployment", "web", "--replicas=1"],
    );
    set.wait_endpoints("member-2", "demo", "web", "are one pod", |e| e.len() == 1)
        .await;

    // Unexporting the only export removes import, derived Service and slices everywhere.
    set.kubectl(
        "member-1",
        &["-n", "demo", "delete", "serviceexport", "web"],
    );
    let derived = derived_name("demo", "web");
    for member in ["member-1", "member-2", "member-3"] {
        set.wait_import(member, "demo", "web", "is gone", |i| i.is_none())
            .await;
        eventually(
            &format!("{member}: derived Service and slices gone"),
            WAIT,
            || async {
                let svc = Api::<Service>::namespaced(set.client(member), "demo")
                    .get_opt(&derived)
                    .await
                    .unwrap();
                (svc.is_none() && set.imported_slices(member, "demo", "web").await.is_empty())
                    .then_some(())
            },
        )
        .await;
    }
    // The exported Service itself is the user's and stays.
    set.kubectl("member-1", &["-n", "demo", "get", "service", "web"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn export_reaches_every_member_with_generated_crds() {
    export_to_every_member(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn export_reaches_every_member_with_upstream_crds() {
    export_to_every_member(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_type_mapping_and_bad_names() {
    let set = Set::up(2, false).await;
    set.namespace(&["member-1", "member-2"], "demo");
    set.export("member-1", "demo", "db");
    set.export_condition("member-1", "demo", "db", "Valid", "False", "NoService")
        .await;
    set.export_condition("member-1", "demo", "db", "Ready", "False", "Pending")
        .await;
    // The Service appears: the export recovers; headless maps to a Headless import without IPs.
    set.workload(
        "member-1",
        "demo",
        "db",
        2,
        json!({"spec": {"clusterIP": "None"}}),
    );
    set.export_condition("member-1", "demo", "db", "Valid", "True", "Valid")
        .await;
    let import = set
        .wait_import("member-2", "demo", "db", "is ready", |i| {
            i.and_then(ready_condition) == Some(("True".into(), "Ready".into()))
        })
        .await
        .unwrap();
    assert_eq!(
        import.spec.type_,
        clusterset::api::multicluster::ServiceImportType::Headless
    );
    assert!(import.spec.ips.is_empty(), "{:?}", import.spec.ips);
    assert_eq!(
        import.spec.ip_families,
        vec!["IPv4"],
        "ipFamilies always filled"
    );
    // Its story is told in events, which `kubectl describe` shows.
    set.export_condition("member-1", "demo", "db", "Ready", "True", "Exported")
        .await;
    let told = [
        ("Warning", "NoService"),
        ("Normal", "Valid"),
        ("Normal", "Exported"),
    ];
    eventually("the export's events", WAIT, || async {
        let out = set.kubectl(
            "member-1",
            &["-n", "demo", "describe", "serviceexport", "db"],
        );
        let events = out
            .split("\nEvents:")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let rows: Vec<Vec<String>> = events
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect();
        let seen = |(type_, reason): &(&str, &str)| {
            rows.iter().any(|r| {
                r.len() > 4 && r[0] == *type_ && r[1] == *reason && r[3] == "clusterset-agent"
            })
        };
        told.iter().all(seen).then_some(())
    })
    .await;
    set.wait_endpoints("member-2", "demo", "db", "are the two pods", |e| {
        e.len() == 2
    })
    .await;

    // NodePort and LoadBalancer are ClusterSetIP.
    for (name, type_) in [("np", "NodePort"), ("lb", "LoadBalancer")] {
        set.workload(
            "member-1",
            "demo",
            name,
            1,
            json!({"spec": {"type": type_}}),
        );
        set.export("member-1", "demo", name);
        let import = set
            .wait_import("member-2", "demo", name, "exists", |i| i.is_some())
            .await
            .unwrap();
        assert_eq!(
            import.spec.type_,
            clusterset::api::multicluster::ServiceImportType::ClusterSetIP,
            "{type_}"
        );
    }

    // ExternalName cannot be exported: no record, no import anywhere.
    let ext = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": "demo"},
        "spec": {"type": "ExternalName", "externalName": "example.com"}});
    set.kubectl_in("member-1", &["apply", "-f", "-"], Some(&ext.to_string()));
    set.export("member-1", "demo", "ext");
    set.export_condition(
        "member-1",
        "demo",
        "ext",
        "Valid",
        "False",
        "InvalidServiceType",
    )
    .await;
    set.export_condition("member-1", "demo", "ext", "Ready", "False", "Failed")
        .await;
    for member in ["member-1", "member-2"] {
        assert!(set.import(member, "demo", "ext").await.is_none());
    }
    let records = set.kubectl("hub", &["get", "exportrecords", "-A", "-o", "name"]);
    assert!(!records.contains("demo.ext"), "{records}");

    // A name too long for a Service (and for DNS) gets a clear condition.
    let long = "a".repeat(64);
    set.export("member-1", "demo", &long);
    let message = set
        .export_condition("member-1", "demo", &long, "Valid", "False", "NoService")
        .await;
    assert!(message.contains("DNS-1035"), "{message}");
    // A Service with duplicate or invalid ports never gets in: the API server refuses it
    // with the field named, as kube-apiserver does.
    for (ports, needle) in [
        (
            json!([{"name": "a", "port": 80}, {"name": "a", "port": 81}]),
            "spec.ports[1].name: Duplicate value: \"a\"",
        ),
        (
            json!([{"name": "a", "port": 80}, {"name": "b", "port": 80}]),
            "spec.ports[1]: Duplicate value",
        ),
        (
            json!([{"name": "a", "port": 80, "protocol": "HTTP"}]),
            "spec.ports[0].protocol: Unsupported value: \"HTTP\"",
        ),
    ] {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dup", "namespace": "demo"}, "spec": {"ports": ports}});
        let out = kubectl_at(
            &set.local.kubeconfig_path(),
            &["--context", "member-1", "apply", "-f", "-"],
            Some(&svc.to_string()),
        );
        assert_ne!(out.code, 0);
        assert!(out.stderr.contains(needle), "{}", out.stderr);
    }
    // Everything else carried on.
    assert!(set.import("member-2", "demo", "db").await.is_some());

    // Only exportedLabels and exportedAnnotations reach the import, never the
    // Service's or the export's own metadata; session affinity config and traffic
    // policies come from the Service.
    set.workload("member-1", "demo", "meta", 1, json!({"metadata": {"labels": {"svc-label": "x"}, "annotations": {"svc-note": "x"}},
        "spec": {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 300}}, "internalTrafficPolicy": "Local"}}));
    let export = json!({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
        "metadata": {"name": "meta", "namespace": "demo", "labels": {"export-label": "x"}},
        "spec": {"exportedLabels": {"tier": "web"}, "exportedAnnotations": {"team": "blue"}}});
    set.kubectl_in("member-1", &["apply", "-f", "-"], Some(&export.to_string()));
    let import = set
        .wait_import("member-2", "demo", "meta", "exists", |i| i.is_some())
        .await
        .unwrap();
    let labels = import.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels, [("tier".to_string(), "web".to_string())].into());
    let annotations = import.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("team").map(String::as_str), Some("blue"));
    assert!(
        !annotations.contains_key("svc-note")
            && !annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"),
        "{annotations:?}"
    );
    assert_eq!(import.spec.session_affinity.as_deref(), Some("ClientIP"));
    let timeout = import
        .spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds);
    assert_eq!(timeout, Some(300));
    assert_eq!(
        import.spec.internal_traffic_policy.as_deref(),
        Some("Local")
    );
}

/// Waits until the wall clock has passed the export's creation second, so the next
/// export is strictly younger (creationTimestamp has one-second resolution).
async fn after_creation_of(set: &Set, cluster: &str, ns: &str, name: &str) {
    let api: Api<ServiceExport> = Api::namespaced(set.client(cluster), ns);
    let created = api
        .get(name)
        .await
        .unwrap()
        .metadata
        .creation_timestamp
        .unwrap()
        .0;
    eventually(
        "the clock to pass the export's creation second",
        WAIT,
        || async { (jiff::Timestamp::now().as_second() > created.as_second()).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conflicts_oldest_export_wins_and_unexport_keeps_the_rest() {
    let set = Set::up(3, false).await;
    set.namespace(&["member-1", "member-2", "member-3"], "demo");
    // member-2 exports first (older), though member-1 sorts first by cluster ID.
    set.workload("member-2", "demo", "web", 1, json!({"spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 8080}], "sessionAffinity": "ClientIP"}}));
    set.export("member-2", "demo", "web");
    set.wait_import("member-3", "demo", "web", "exists", |i| i.is_some())
        .await;
    after_creation_of(&set, "member-2", "demo", "web").await;
    set.workload("member-1", "demo", "web", 2, json!({"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "metrics", "port": 9090}]}}));
    set.export("member-1", "demo", "web");

    for member in ["member-1", "member-2"] {
        let message = set
            .export_condition(
                member,
                "demo",
                "web",
                "Conflict",
                "True",
                "PortConflict,SessionAffinityConflict",
            )
            .await;
        assert!(
            message.contains("\"member-2\" (oldest export)"),
            "names the winner and why: {message}"
        );
    }
    let import = set
        .wait_import("member-3", "demo", "web", "lists both clusters", |i| {
            i.is_some_and(|i| clusters_of(i).len() == 2)
        })
        .await
        .unwrap();
    assert_eq!(clusters_of(&import), vec!["member-1", "member-2"]);
    let ports: Vec<(Option<String>, i32)> = import
        .spec
        .ports
        .iter()
        .map(|p| (p.name.clone(), p.port))
        .collect();
    assert_eq!(
        ports,
        vec![(Some("http".into()), 8080), (Some("metrics".into()), 9090)],
        "the union, the oldest winning the clash"
    );
    assert_eq!(
        import.spec.session_affinity.as_deref(),
        Some("ClientIP"),
        "the oldest export's affinity"
    );
    let endpoints = set
        .wait_endpoints("member-3", "demo", "web", "come from both clusters", |e| {
            e.len() == 3
        })
        .await;
    let sources: BTreeSet<&str> = endpoints.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(sources, BTreeSet::from(["member-1", "member-2"]));
    let metrics = metrics_text(&set.local.controllers.as_ref().unwrap().hub.metrics.registry);
    assert!(
        metrics.contains("clusterset_hub_conflicts{reason=\"PortConflict\"} 1"),
        "{metrics}"
    );

    // Unexporting the winner: the import stays with member-1's values and endpoints only.
    set.kubectl(
        "member-2",
        &["-n", "demo", "delete", "serviceexport", "web"],
    );
    let import = set
        .wait_import("member-3", "demo", "web", "lists member-1 only", |i| {
            i.is_some_and(|i| clusters_of(i) == ["member-1"])
        })
        .await
        .unwrap();
    assert_eq!(import.spec.ports[0].port, 80);
    // The derived Service follows: the winner's 8080 goes, member-1's 80 comes.
    let derived = derived_name("demo", "web");
    let ports = eventually(
        "member-3's derived Service to carry the new ports",
        WAIT,
        || async {
            let svc = Api::<Service>::namespaced(set.client("member-3"), "demo")
                .get(&derived)
                .await
                .ok()?;
            let mut ports: Vec<i32> = svc.spec?.ports?.iter().map(|p| p.port).collect();
            ports.sort();
            (ports == [80, 9090]).then_some(ports)
        },
    )
    .await;
    assert_eq!(ports, [80, 9090]);
    set.wait_endpoints("member-3", "demo", "web", "are member-1's two pods", |e| {
        e.len() == 2 && e.iter().all(|x| x.0 == "member-1")
    })
    .await;
    set.export_condition(
        "member-1",
        "demo",
        "web",
        "Conflict",
        "False",
        "NoConflicts",
    )
    .await;
    // member-2 still imports the service (from member-1) though it no longer exports it.
    set.wait_import("member-2", "demo", "web", "lists member-1", |i| {
        i.is_some_and(|i| clusters_of(i) == ["member-1"])
    })
    .await;
}

fn metrics_text(registry: &prometheus::Registry) -> String {
    use prometheus::Encoder;
    let mut out = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_service_or_the_namespace_cleans_up_exactly_that() {
    let set = Set::up(3, false).await;
    set.namespace(&["member-1", "member-2", "member-3"], "demo");
    set.namespace(&["member-1", "member-3"], "other");
    for member in ["member-1", "member-2"] {
        set.workload(member, "demo", "web", 1, json!({}));
        set.export(member, "demo", "web");
    }
    set.workload("member-1", "other", "api", 1, json!({}));
    set.export("member-1", "other", "api");
    set.wait_import("member-3", "other", "api", "exists", |i| i.is_some())
        .await;
    set.wait_endpoints("member-3", "demo", "web", "come from both", |e| {
        e.len() == 2
    })
    .await;

    // The Service goes in member-1: its export is invalid, its endpoints leave every import.
    set.kubectl("member-1", &["-n", "demo", "delete", "service", "web"]);
    set.export_condition("member-1", "demo", "web", "Valid", "False", "NoService")
        .await;
    set.wait_endpoints("member-3", "demo", "web", "are member-2's only", |e| {
        e.len() == 1 && e[0].0 == "member-2"
    })
    .await;
    set.wait_import("member-1", "demo", "web", "lists member-2", |i| {
        i.is_some_and(|i| clusters_of(i) == ["member-2"])
    })
    .await;

    // The namespace goes in member-2, the last exporter: the import goes everywhere…
    set.kubectl("member-2", &["delete", "namespace", "demo", "--wait=false"]);
    for member in ["member-1", "member-3"] {
        set.wait_import(member, "demo", "web", "is gone", |i| i.is_none())
            .await;
    }
    // …and nothing else moved: the other service is still imported, the exports stay.
    assert!(set.import("member-3", "other", "api").await.is_some());
    set.kubectl("member-1", &["-n", "demo", "get", "serviceexport", "web"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_garbage_hub_record_is_rejected_and_touches_nothing_else() {
    let set = Set::up(2, false).await;
    set.namespace(&["member-1", "member-2"], "demo");
    set.workload("member-1", "demo", "web", 1, json!({}));
    set.export("member-1", "demo", "web");
    set.wait_import("member-2", "demo", "web", "exists", |i| i.is_some())
        .await;

    // Written by hand in a hub namespace no agent tends, claiming to be member-2's.
    set.kubectl("hub", &["create", "namespace", "clusterset-member-9"]);
    let forged = json!({"apiVersion": "mcs.clusterset.io/v1alpha1", "kind": "ExportRecord",
        "metadata": {"name": "demo.fake", "namespace": "clusterset-member-9"},
        "spec": {"cluster": "member-2", "namespace": "demo", "service": "fake", "created": "yesterday",
                 "exported": {"type": "ClusterSetIP", "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ports": [{"protocol": "TCP", "port": 80}]}}});
    set.kubectl_in("hub", &["apply", "-f", "-"], Some(&forged.to_string()));
    // Bad timestamps and ports, in the right namespace.
    let bad = json!({"apiVersion": "mcs.clusterset.io/v1alpha1", "kind": "ExportRecord",
        "metadata": {"name": "demo.bad", "namespace": "clusterset-member-9"},
        "spec": {"cluster": "member-9", "namespace": "demo", "service": "bad", "created": "2026-01-01T00:00:00Z",
                 "exported": {"type": "ClusterSetIP", "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ports": [{"protocol": "HTTP", "port": 0}]}}});
    set.kubectl_in("hub", &["apply", "-f", "-"], Some(&bad.to_string()));
    let hub = set.client("hub");
    let records: Api<clusterset::api::records::ExportRecord> =
        Api::namespaced(hub, "clusterset-member-9");
    for (name, needle) in [
        (
            "demo.fake",
            "whose records belong in namespace clusterset-member-2",
        ),
        ("demo.bad", "not a valid Service port"),
    ] {
        let message = eventually(&format!("{name} rejected"), WAIT, || async {
            let r = records.get(name).await.ok()?;
            let c = r
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Accepted")?;
            (c.status == "False" && c.reason == "Invalid").then_some(c.message)
        })
        .await;
        assert!(message.contains(needle), "{message}");
    }
    let imports = set.kubectl("hub", &["get", "importrecords", "-A", "-o", "name"]);
    assert_eq!(
        imports.trim(),
        "importrecord.mcs.clusterset.io/demo.web",
        "only the real service is imported"
    );
    // An agent owns its hub namespace: a record there for an export it does not have
    // (a leftover, or written by hand) is removed.
    let mut stray = bad.clone();
    stray["metadata"] = json!({"name": "demo.stray", "namespace": "clusterset-member-1"});
    stray["spec"]["cluster"] = json!("member-1");
    stray["spec"]["service"] = json!("stray");
    set.kubectl_in("hub", &["apply", "-f", "-"], Some(&stray.to_string()));
    eventually(
        "member-1's agent removes the stray record",
        WAIT,
        || async {
            let left = set.kubectl(
                "hub",
                &[
                    "get",
                    "exportrecords",
                    "-n",
                    "clusterset-member-1",
                    "-o",
                    "name",
                ],
            );
            (left.trim() == "exportrecord.mcs.clusterset.io/demo.web").then_some(())
        },
    )
    .await;
    // Schema violations are refused by the API server with a 422 naming the field.
    let mut broken = bad.clone();
    broken["spec"]["exported"]["type"] = json!("Sideways");
    let out = kubectl_at(
        &set.local.kubeconfig_path(),
        &["--context", "hub", "apply", "-f", "-"],
        Some(&broken.to_string()),
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("spec.exported.type"), "{}", out.stderr);
    assert!(set.import("member-2", "demo", "web").await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn controllers_restarted_at_any_moment_converge_to_the_same_objects() {
    let mut set = Set::up(3, false).await;
    set.namespace(&["member-1", "member-2", "member-3"], "demo");
    for name in ["a", "b", "c"] {
        set.workload("member-1", "demo", name, 1, json!({}));
        set.export("member-1", "demo", name);
    }
    for name in ["a", "b", "c"] {
        set.wait_endpoints("member-3", "demo", name, "are one pod", |e| e.len() == 1)
            .await;
    }
    let before = snapshot(&set).await;

    // Stop every controller; change things while they are down.
    set.local.controllers = None;
    set.kubectl("member-1", &["-n", "demo", "delete", "serviceexport", "c"]);
    set.workload("member-1", "demo", "d", 1, json!({}));
    set.export("member-1", "demo", "d");
    set.local.controllers = Some(
        clusterset::local::controllers::Controllers::start(
            &set.local.clusters,
            &set.local.controller_options,
        )
        .await
        .unwrap(),
    );

    set.wait_endpoints("member-3", "demo", "d", "are one pod", |e| e.len() == 1)
        .await;
    for member in ["member-1", "member-2", "member-3"] {
        set.wait_import(member, "demo", "c", "is gone", |i| i.is_none())
            .await;
    }
    eventually("the hub forgets c", WAIT, || async {
        (!set
            .kubectl("hub", &["get", "importrecords", "-A", "-o", "name"])
            .contains("demo.c"))
        .then_some(())
    })
    .await;
    // a and b are untouched: same objects (uids), no duplicates, nothing left over.
    let after = snapshot(&set).await;
    let keep = |s: &BTreeSet<String>| {
        s.iter()
            .filter(|x| x.contains("/a/") || x.contains("/b/"))
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(keep(&before), keep(&after));
    assert!(after.iter().all(|x| !x.contains("/c/")), "{after:?}");
}

/// Every import-side object in every member, as cluster/service/kind/name/uid.
async fn snapshot(set: &Set) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for member in ["member-1", "member-2", "member-3"] {
        let c = set.client(member);
        for i in Api::<ServiceImport>::namespaced(c.clone(), "demo")
            .list(&ListParams::default())
            .await
            .unwrap()
        {
            let name = i.metadata.name.clone().unwrap();
            out.insert(format!(
                "{member}/{name}/ServiceImport/{name}/{}",
                i.metadata.uid.unwrap()
            ));
            let derived = derived_name("demo", &name);
            if let Some(s) = Api::<Service>::namespaced(c.clone(), "demo")
                .get_opt(&derived)
                .await
                .unwrap()
            {
                out.insert(format!(
                    "{member}/{name}/Service/{derived}/{}",
                    s.metadata.uid.unwrap()
                ));
            }
            for s in set.imported_slices(member, "demo", &name).await {
                out.insert(format!(
                    "{member}/{name}/EndpointSlice/{}/{}",
                    s.metadata.name.unwrap(),
                    s.metadata.uid.unwrap()
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn members_write_only_their_own_hub_namespace() {
    let set = Set::up(2, false).await;
    let hub = &set.local.cluster("hub").unwrap().server;
    let member1 = hub
        .service_account_client("clusterset-member-1", "clusterset-agent")
        .unwrap();
    let forged = json!({"apiVersion": "mcs.clusterset.io/v1alpha1", "kind": "ExportRecord",
        "metadata": {"name": "demo.web", "namespace": "clusterset-member-2"},
        "spec": {"cluster": "member-2", "namespace": "demo", "service": "web", "created": "2026-01-01T00:00:00Z",
                 "exported": {"type": "ClusterSetIP", "sessionAffinity": "None", "ipFamilies": ["IPv4"]}}});
    let other: Api<clusterset::api::records::ExportRecord> =
        Api::namespaced(member1.clone(), "clusterset-member-2");
    let err = other
        .patch(
            "demo.web",
            &PatchParams::apply("test"),
            &Patch::Apply(&forged),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err:?}"
    );
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(member1.clone(), "clusterset-member-1");
    assert!(
        matches!(secrets.list(&ListParams::default()).await.unwrap_err(), kube::Error::Api(ref s) if s.code == 403)
    );
    let imports: Api<clusterset::api::records::ImportRecord> =
        Api::namespaced(member1.clone(), "clusterset-imports");
    imports
        .list(&ListParams::default())
        .await
        .expect("members read the shared imports");
    let write = json!({"apiVersion": "mcs.clusterset.io/v1alpha1", "kind": "ImportRecord",
        "metadata": {"name": "demo.web", "namespace": "clusterset-imports"},
        "spec": {"namespace": "demo", "service": "web", "clusters": [], "verdicts": {},
                 "import": {"type": "ClusterSetIP", "sessionAffinity": "None", "ipFamilies": ["IPv4"]}}});
    let err = imports
        .patch(
            "demo.web",
            &PatchParams::apply("test"),
            &Patch::Apply(&write),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "members only read decisions: {err:?}"
    );
}

/// Killing every controller in the middle of syncing many exports and starting them
/// again ends with exactly the objects an undisturbed run makes: no duplicates, no
/// leftovers, nothing lost.
#[tokio::test(flavor = "multi_thread")]
async fn controllers_killed_mid_sync_converge_without_duplicates() {
    const N: usize = 60;
    let mut set = Set::up(2, false).await;
    set.namespace(&["member-1", "member-2"], "demo");
    set.kubectl(
        "member-1",
        &["-n", "demo", "create", "deployment", "app", "--image=nginx"],
    );
    let mut yaml = String::new();
    for i in 0..N {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: demo}}\nspec: {{selector: {{app: app}}, ports: [{{port: 80}}]}}\n\
             ---\napiVersion: multicluster.x-k8s.io/v1beta1\nkind: ServiceExport\nmetadata: {{name: s{i}, namespace: demo}}\n"
        ));
    }
    set.kubectl_in("member-1", &["apply", "-f", "-"], Some(&yaml));
    let imports: Api<ServiceImport> = Api::namespaced(set.client("member-2"), "demo");
    let count = || async {
        imports
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len()
    };
    eventually("the sync to be under way", WAIT, || async {
        (count().await > 0).then_some(())
    })
    .await;
    set.local.controllers = None;
    let at_kill = count().await;
    set.local.controllers = Some(
        clusterset::local::controllers::Controllers::start(
            &set.local.clusters,
            &set.local.controller_options,
        )
        .await
        .unwrap(),
    );

    for member in ["member-1", "member-2"] {
        eventually(
            &format!("{member}: every import with its endpoints"),
            Duration::from_secs(60),
            || async {
                let slices =
                    Api::<EndpointSlice>::namespaced(set.client(member), "demo")
                        .list(&ListParams::default().labels(
                            "endpointslice.kubernetes.io/managed-by=agent.mcs.clusterset.io",
                        ))
                        .await
                        .unwrap()
                        .items;
                let with_endpoints = slices.iter().filter(|s| s.endpoints.len() == 1).count();
                (with_endpoints == N).then_some(())
            },
        )
        .await;
        let c = set.client(member);
        let imports = Api::<ServiceImport>::namespaced(c.clone(), "demo")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        assert_eq!(imports.len(), N);
        let slices = Api::<EndpointSlice>::namespaced(c.clone(), "demo")
            .list(
                &ListParams::default()
                    .labels("endpointslice.kubernetes.io/managed-by=agent.mcs.clusterset.io"),
            )
            .await
            .unwrap()
            .items;
        assert_eq!(slices.len(), N, "one slice per import, no duplicates");
        let derived = Api::<Service>::namespaced(c, "demo")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|s| {
                s.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("derived-"))
            })
            .count();
        assert_eq!(derived, N, "one derived Service per import");
    }
    for kind in ["exportrecords", "importrecords", "endpointrecords"] {
        let names = set.kubectl("hub", &["get", kind, "-A", "-o", "name"]);
        assert_eq!(
            names.lines().count(),
            N,
            "{kind} after a kill with {at_kill} of {N} imported: {names}"
        );
    }
}

/// An object as read, made a base for garbage: in namespace `junk`, named `name`, with
/// what names the healthy service (`demo`, `web`) renamed too.
fn junk_base(mut object: Value, name: &str) -> Value {
    let meta = object["metadata"].take();
    object["metadata"] = json!({"name": name, "labels": meta["labels"]});
    if meta["namespace"]
        .as_str()
        .is_some_and(|ns| ns.starts_with("clusterset-"))
    {
        object["metadata"]["namespace"] = meta["namespace"].clone();
    }
    object.as_object_mut().unwrap().remove("status");
    let text = object
        .to_string()
        .replace("\"demo\"", "\"junk\"")
        .replace("\"web\"", &format!("\"{name}\""))
        .replace("demo.web", &format!("junk.{name}"));
    serde_json::from_str(&text).unwrap()
}

/// Garbage written at random wherever users (or an admin's hand on the hub) can write:
/// exports, Services and EndpointSlices in the exporting member, ServiceImports in the
/// importing one, export, import and endpoint records on the hub. Whatever the API
/// servers accept, the controllers neither stop nor touch a healthy service: it keeps
/// its import and endpoints, and a service exported afterwards still propagates.
#[tokio::test(flavor = "multi_thread")]
async fn random_garbage_never_touches_a_healthy_service() {
    use common::garbage::{mutate, rounds_and_rng, send};
    let set = Set::up(2, false).await;
    set.namespace(&["member-1", "member-2"], "demo");
    set.namespace(&["member-1", "member-2"], "junk");
    set.workload("member-1", "demo", "web", 2, json!({}));
    set.export("member-1", "demo", "web");
    let healthy = |e: &[(String, String, bool)]| e.len() == 2 && e.iter().all(|x| x.2);
    let before = set
        .wait_endpoints("member-2", "demo", "web", "two ready", healthy)
        .await;

    // Bases: the healthy service's own objects, as each cluster holds them.
    let read = |cluster: &str, args: &[&str]| -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend(["-o", "json"]);
        serde_json::from_str(&set.kubectl(cluster, &all)).unwrap()
    };
    let shared = clusterset::api::records::SHARED_NAMESPACE;
    let slice = read(
        "member-1",
        &[
            "-n",
            "demo",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ],
    )["items"][0]
        .clone();
    let sources: Vec<(&str, Value)> = vec![
        (
            "member-1",
            read("member-1", &["-n", "demo", "service", "web"]),
        ),
        (
            "member-1",
            read("member-1", &["-n", "demo", "serviceexport", "web"]),
        ),
        ("member-1", slice),
        (
            "member-2",
            read("member-2", &["-n", "demo", "serviceimport", "web"]),
        ),
        (
            "hub",
            read(
                "hub",
                &["-n", "clusterset-member-1", "exportrecord", "demo.web"],
            ),
        ),
        (
            "hub",
            read("hub", &["-n", shared, "importrecord", "demo.web"]),
        ),
        (
            "hub",
            read("hub", &["-n", shared, "endpointrecords"])["items"][0].clone(),
        ),
    ];
    for (cluster, source) in &sources {
        assert!(
            source["kind"].is_string(),
            "{cluster}: no base object: {source}"
        );
    }
    let (rounds, mut rng) = rounds_and_rng(200, 0x6a72_6261_6765_0001);
    // Every object of the healthy service, by resourceVersion: none may be written.
    let versions = || -> BTreeSet<String> {
        let of = |cluster: &str, args: &[&str]| -> Vec<String> {
            let listed = read(cluster, args);
            let items = listed["items"].as_array().cloned().unwrap_or(vec![listed]);
            items
                .iter()
                .map(|o| {
                    let m = &o["metadata"];
                    let field = |v: &Value| v.as_str().unwrap_or_default().to_string();
                    format!(
                        "{cluster} {} {}/{} at {}",
                        field(&o["kind"]),
                        field(&m["namespace"]),
                        field(&m["name"]),
                        field(&m["resourceVersion"])
                    )
                })
                .filter(|line| line.contains("demo"))
                .collect()
        };
        let lists: [(&str, &[&str]); 6] = [
            (
                "member-1",
                &["-n", "demo", "serviceexports,services,endpointslices"],
            ),
            (
                "member-2",
                &["-n", "demo", "serviceimports,services,endpointslices"],
            ),
            ("hub", &["-n", "clusterset-member-1", "exportrecords"]),
            ("hub", &["-n", shared, "importrecords,endpointrecords"]),
            ("member-1", &["-n", "demo", "serviceimports"]),
            ("member-2", &["-n", "demo", "serviceexports"]),
        ];
        lists.iter().flat_map(|(c, args)| of(c, args)).collect()
    };
    let untouched = versions();
    assert!(untouched.len() >= 10, "{untouched:#?}");
    let mut accepted = 0;
    for _ in 0..rounds {
        let (cluster, source) = &sources[rng.below(sources.len())];
        let name = ["a", "b"][rng.below(2)];
        let base = junk_base(source.clone(), name);
        let (api_version, plural) = (
            base["apiVersion"].as_str().unwrap().to_string(),
            format!("{}s", base["kind"].as_str().unwrap().to_lowercase()),
        );
        let ns = base["metadata"]["namespace"]
            .as_str()
            .unwrap_or("junk")
            .to_string();
        let prefix = if api_version == "v1" {
            "/api".to_string()
        } else {
            "/apis".to_string()
        };
        let collection = format!("{prefix}/{api_version}/namespaces/{ns}/{plural}");
        let body = if rng.below(4) == 0 {
            base
        } else {
            mutate(&mut rng, &base)
        };
        let client = set.client(cluster);
        let (method, path, content_type) = match rng.below(3) {
            0 => ("POST", collection, "application/json"),
            1 => (
                "PATCH",
                format!("{collection}/{name}"),
                "application/merge-patch+json",
            ),
            _ => ("PUT", format!("{collection}/{name}"), "application/json"),
        };
        let (code, answer) = send(&client, method, &path, content_type, &body).await;
        assert!(
            code < 500,
            "{cluster}: {method} {path} {body}: {code} {answer}"
        );
        accepted += usize::from(code < 300);
    }
    eprintln!("{accepted} of {rounds} garbage writes accepted");
    assert!(
        accepted > 0,
        "some garbage must get through the API servers"
    );

    // The controllers still work: a service exported now is imported with its pod...
    set.workload("member-2", "demo", "api", 1, json!({}));
    set.export("member-2", "demo", "api");
    set.wait_endpoints("member-1", "demo", "api", "one ready", |e| {
        e.len() == 1 && e[0].2
    })
    .await;
    // ...and the healthy one is as it was: not one of its objects was written.
    set.wait_endpoints("member-2", "demo", "web", "as before", |e| {
        e == before.as_slice()
    })
    .await;
    let now = versions();
    let changed: Vec<&String> = untouched.difference(&now).collect();
    assert!(
        changed.is_empty(),
        "written to or gone: {changed:?}\nnow: {now:#?}"
    );
    let web = set.import("member-2", "demo", "web").await.unwrap();
    assert_eq!(clusters_of(&web), ["member-1"]);
    assert_eq!(ready_condition(&web).map(|c| c.0), Some("True".into()));
    set.export_condition("member-1", "demo", "web", "Valid", "True", "Valid")
        .await;
}
