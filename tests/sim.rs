//! A simulated member cluster behaves like a real one: nodes with capacity,
//! Deployments and StatefulSets with running, ready pods holding IPs from the pod
//! CIDR, a scheduler that says when nothing fits, and EndpointSlices as
//! kube-controller-manager builds them — driven through kube-rs and the real kubectl.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use clusterset::apiserver::sim;
use clusterset::apiserver::SimConfig;
use common::{eventually, TestServer};
use ipnet::IpNet;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{name: http, containerPort: 8080}]
        resources: {requests: {cpu: 100m, memory: 64Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

fn member(pod_cidrs: &[&str]) -> SimConfig {
    SimConfig {
        cluster_name: "member-1".into(),
        pod_cidrs: pod_cidrs.iter().map(|c| c.parse().unwrap()).collect(),
        ..SimConfig::default()
    }
}

fn apply(t: &TestServer, yaml: &str) {
    let out = t.apply_yaml(yaml, &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

fn is_ready(p: &Pod) -> bool {
    let conditions = p.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn pod_ips(p: &Pod) -> Vec<String> {
    let ips = p.status.as_ref().and_then(|s| s.pod_ips.as_ref());
    ips.into_iter().flatten().map(|ip| ip.ip.clone()).collect()
}

/// Waits for exactly `n` pods matching `selector`, all Running and Ready.
async fn ready_pods(api: &Api<Pod>, selector: &str, n: usize) -> Vec<Pod> {
    eventually(&format!("{n} ready pods {selector}"), WAIT, || async move {
        let pods = api
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items;
        let running =
            |p: &Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        (pods.len() == n && pods.iter().all(|p| running(p) && is_ready(p))).then_some(pods)
    })
    .await
}

/// The endpoints (address → ready) of a Service's slices of one address type.
async fn endpoints(
    api: &Api<EndpointSlice>,
    service: &str,
    address_type: &str,
) -> BTreeMap<String, bool> {
    let selector = format!("kubernetes.io/service-name={service}");
    let slices = api
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items;
    slices
        .iter()
        .filter(|s| s.address_type == address_type)
        .flat_map(|s| s.endpoints.iter())
        .flat_map(|e| {
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false);
            e.addresses.iter().map(move |a| (a.clone(), ready))
        })
        .collect()
}

/// Waits until the Service's endpoints of `address_type` are exactly `want`.
async fn endpoints_become(
    api: &Api<EndpointSlice>,
    service: &str,
    address_type: &str,
    want: BTreeMap<String, bool>,
) {
    eventually(&format!("endpoints of {service}: {want:?}"), WAIT, || {
        let want = want.clone();
        async move { (endpoints(api, service, address_type).await == want).then_some(()) }
    })
    .await
}

fn all_ready(pods: &[Pod]) -> BTreeMap<String, bool> {
    pods.iter().flat_map(pod_ips).map(|ip| (ip, true)).collect()
}

fn inside(cidr: &str, ip: &str) -> bool {
    cidr.parse::<IpNet>()
        .unwrap()
        .contains(&ip.parse::<IpAddr>().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_register_with_capacity_addresses_and_pod_cidrs() {
    let t = TestServer::simulated(member(&["10.244.0.0/16"])).await;
    let api: Api<Node> = Api::all(t.client.clone());
    let nodes = eventually("3 ready nodes", WAIT, || async {
        let nodes = api.list(&ListParams::default()).await.unwrap().items;
        let ready = |n: &Node| {
            let conditions = n.status.as_ref().and_then(|s| s.conditions.as_ref());
            conditions
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        };
        (nodes.len() == 3 && nodes.iter().all(ready)).then_some(nodes)
    })
    .await;
    let names: Vec<&str> = nodes
        .iter()
        .map(|n| n.metadata.name.as_deref().unwrap())
        .collect();
    assert_eq!(
        names,
        ["member-1-node-1", "member-1-node-2", "member-1-node-3"]
    );
    let mut cidrs = BTreeSet::new();
    for n in &nodes {
        let status = n.status.as_ref().unwrap();
        let allocatable = status.allocatable.as_ref().unwrap();
        assert_eq!(allocatable["cpu"].0, "4");
        assert_eq!(allocatable["memory"].0, "16Gi");
        assert_eq!(allocatable["pods"].0, "110");
        assert_eq!(
            status.node_info.as_ref().unwrap().kubelet_version,
            "v1.33.0"
        );
        let ip = &status.addresses.as_ref().unwrap()[0];
        assert_eq!(ip.type_, "InternalIP");
        assert!(inside("172.18.1.0/24", &ip.address), "{}", ip.address);
        let labels = n.metadata.labels.as_ref().unwrap();
        assert_eq!(
            labels["kubernetes.io/hostname"],
            n.metadata.name.clone().unwrap()
        );
        assert_eq!(labels["kubernetes.io/os"], "linux");
        let cidr = n.spec.as_ref().unwrap().pod_cidr.clone().unwrap();
        assert!(inside("10.244.0.0/16", cidr.split('/').next().unwrap()));
        cidrs.insert(cidr);
    }
    assert_eq!(cidrs.len(), 3, "every node has its own pod CIDR");
    let table = t.kubectl_ok(&["get", "nodes"]);
    assert_eq!(table.matches("Ready").count(), 3, "{table}");
    assert!(table.contains("v1.33.0"), "{table}");
    t.kubectl_ok(&["describe", "node", "member-1-node-1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_scales_and_its_service_gets_ready_endpoints() {
    let t = TestServer::simulated(member(&["10.244.0.0/16"])).await;
    apply(&t, WEB);
    t.kubectl_ok(&["scale", "deployment/web", "--replicas=5"]);
    let pods_api: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pods = ready_pods(&pods_api, "app=web", 5).await;
    let ips: BTreeSet<String> = pods.iter().flat_map(pod_ips).collect();
    assert_eq!(ips.len(), 5, "distinct addresses: {ips:?}");
    assert!(ips.iter().all(|ip| inside("10.244.0.0/16", ip)), "{ips:?}");
    let rs_name = pods[0].metadata.owner_references.as_ref().unwrap()[0]
        .name
        .clone();
    let hash = pods[0].metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(rs_name, format!("web-{hash}"));
    for p in &pods {
        let name = p.metadata.name.as_deref().unwrap();
        assert!(
            name.starts_with(&format!("{rs_name}-")) && name.len() == rs_name.len() + 6,
            "{name}"
        );
        let status = p.status.as_ref().unwrap();
        assert!(status
            .host_ip
            .as_deref()
            .is_some_and(|ip| inside("172.18.1.0/24", ip)));
        let c = &status.container_statuses.as_ref().unwrap()[0];
        assert!(c.ready && c.started == Some(true) && c.restart_count == 0);
        assert!(c
            .container_id
            .as_deref()
            .unwrap()
            .starts_with("containerd://"));
    }

    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), "default");
    endpoints_become(&slices, "web", "IPv4", all_ready(&pods)).await;
    let slice = &slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap()
        .items[0];
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("http"), Some(8080), Some("TCP"))
    );
    let labels = slice.metadata.labels.as_ref().unwrap();
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert!(slice.metadata.name.as_deref().unwrap().starts_with("web-"));
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Service", Some(true))
    );

    let out = t.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    t.kubectl_ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=10s",
    ]);
    let wide = t.kubectl_ok(&["get", "pods", "-o", "wide"]);
    assert_eq!(wide.matches("Running").count(), 5, "{wide}");
    assert!(wide.contains("member-1-node-"), "{wide}");

    t.kubectl_ok(&["scale", "deployment/web", "--replicas=2"]);
    let pods = ready_pods(&pods_api, "app=web", 2).await;
    endpoints_become(&slices, "web", "IPv4", all_ready(&pods)).await;
    let rs: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    let rs = eventually("the ReplicaSet to report 2", WAIT, || async {
        let rs = rs.get(&rs_name).await.unwrap();
        (rs.status.as_ref().and_then(|s| s.ready_replicas) == Some(2)).then_some(rs)
    })
    .await;
    assert_eq!(rs.spec.unwrap().replicas, Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_marked_not_ready_leaves_the_ready_endpoints_and_comes_back() {
    let t = TestServer::simulated(member(&["10.244.0.0/16"])).await;
    apply(&t, WEB);
    let pods_api: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pods = ready_pods(&pods_api, "app=web", 2).await;
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), "default");
    endpoints_become(&slices, "web", "IPv4", all_ready(&pods)).await;

    let victim = pods[0].metadata.name.clone().unwrap();
    t.kubectl_ok(&["annotate", "pod", &victim, "clusterset.io/ready=false"]);
    let mut want = all_ready(&pods);
    want.insert(pod_ips(&pods[0])[0].clone(), false);
    endpoints_become(&slices, "web", "IPv4", want).await;
    let pod = pods_api.get(&victim).await.unwrap();
    assert!(!is_ready(&pod));
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Running"));
    let out = t.kubectl_ok(&["get", "pod", &victim]);
    assert!(out.contains("0/1") && out.contains("Running"), "{out}");

    t.kubectl_ok(&["annotate", "pod", &victim, "clusterset.io/ready-"]);
    endpoints_become(&slices, "web", "IPv4", all_ready(&pods)).await;
    t.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{victim}"),
        "--timeout=10s",
    ]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_change_rolls_out_a_new_replica_set() {
    let t = TestServer::simulated(member(&["10.244.0.0/16"])).await;
    apply(&t, WEB);
    t.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    t.kubectl_ok(&["set", "image", "deployment/web", "web=nginx:1.26"]);
    let out = t.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(out.contains("successfully rolled out"), "{out}");

    let pods_api: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pods = ready_pods(&pods_api, "app=web", 2).await;
    for p in &pods {
        let c = &p
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0];
        assert_eq!(c.image, "docker.io/library/nginx:1.26");
    }
    let rs_api: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    let sets = rs_api.list(&ListParams::default()).await.unwrap().items;
    let mut replicas: Vec<(String, i32)> = sets
        .iter()
        .map(|rs| {
            let revision = rs.metadata.annotations.as_ref().unwrap()
                ["deployment.kubernetes.io/revision"]
                .clone();
            (revision, rs.spec.as_ref().unwrap().replicas.unwrap())
        })
        .collect();
    replicas.sort();
    assert_eq!(replicas, [("1".to_string(), 0), ("2".to_string(), 2)]);
    let d: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let d = d.get("web").await.unwrap();
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "2");
    let status = d.status.unwrap();
    let progressing = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    assert_eq!(
        (status.updated_replicas, status.replicas),
        (Some(2), Some(2))
    );
    let history = t.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_adopts_what_an_orphaning_delete_left_behind() {
    let t = TestServer::simulated(member(&["10.244.0.0/16"])).await;
    apply(&t, WEB);
    let pods_api: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let names = |pods: &[Pod]| -> BTreeSet<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    };
    let before = names(&ready_pods(&pods_api, "app=web", 2).await);
    t.kubectl_ok(&["delete", "deployment", "web", "--cascade=orphan"]);
    apply(&t, WEB);
    let out = t.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let d: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let uid = d.get("web").await.unwrap().metadata.uid;
    let rs: Api<ReplicaSet> = Api::namespaced(t.client.clone(), "default");
    let sets = rs.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(sets.len(), 1, "the old ReplicaSet is the new one");
    let owner = &sets[0].metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(Some(&owner.uid), uid.as_ref());
    assert_eq!(names(&ready_pods(&pods_api, "app=web", 2).await), before);
}

const DB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: peer, port: 7000}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: redis:7
        ports: [{name: peer, containerPort: 7000}]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_headless_service_over_a_statefulset_lists_pod_hostnames() {
    let t = TestServer::simulated(member(&["10.244.0.0/16"])).await;
    apply(&t, DB);
    let pods_api: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pods = ready_pods(&pods_api, "app=db", 3).await;
    for (i, p) in pods.iter().enumerate() {
        let name = format!("web-{i}");
        assert_eq!(p.metadata.name.as_deref(), Some(name.as_str()));
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(
            (spec.hostname.as_deref(), spec.subdomain.as_deref()),
            (Some(name.as_str()), Some("web"))
        );
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["statefulset.kubernetes.io/pod-name"], name);
        assert_eq!(labels["apps.kubernetes.io/pod-index"], i.to_string());
    }
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), "default");
    let hostnames = eventually("hostnames in the slice", WAIT, || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .unwrap();
        let names: BTreeSet<String> = list
            .items
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .filter_map(|e| e.hostname.clone())
            .collect();
        (names.len() == 3).then_some(names)
    })
    .await;
    assert_eq!(
        hostnames.into_iter().collect::<Vec<_>>(),
        ["web-0", "web-1", "web-2"]
    );
    let out = t.kubectl_ok(&["rollout", "status", "statefulset/web", "--timeout=30s"]);
    assert!(out.contains("complete"), "{out}");

    t.kubectl_ok(&["scale", "statefulset/web", "--replicas=1"]);
    let left = ready_pods(&pods_api, "app=db", 1).await;
    assert_eq!(
        left[0].metadata.name.as_deref(),
        Some("web-0"),
        "the highest ordinals go first"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ordered_ready_waits_for_each_pod_to_be_ready() {
    let t = TestServer::simulated(member(&["10.244.0.0/16"])).await;
    // Every pod starts unready: the template carries the fault-injection annotation.
    let unready = DB.replace(
        "metadata: {labels: {app: db}}",
        "metadata: {labels: {app: db}, annotations: {clusterset.io/ready: \"false\"}}",
    );
    apply(&t, &unready);
    let pods_api: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let running = |name: &'static str| {
        let api = pods_api.clone();
        async move {
            let pod = api.get_opt(name).await.unwrap()?;
            (pod.status?.phase.as_deref() == Some("Running")).then_some(())
        }
    };
    eventually("web-0 running", WAIT, || running("web-0")).await;
    // A spec change the controller must answer after it has seen web-0 running:
    // once it reports the new generation, it has decided about web-1.
    let sts: Api<StatefulSet> = Api::namespaced(t.client.clone(), "default");
    let scaled = sts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    let generation = scaled.metadata.generation;
    eventually("the new generation observed", WAIT, || async {
        let s = sts.get("web").await.unwrap();
        (s.status.and_then(|s| s.observed_generation) == generation).then_some(())
    })
    .await;
    assert!(
        pods_api.get_opt("web-1").await.unwrap().is_none(),
        "web-1 waits for web-0"
    );

    t.kubectl_ok(&["annotate", "pod", "web-0", "clusterset.io/ready-"]);
    eventually("web-1 running", WAIT, || running("web-1")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_that_do_not_fit_stay_pending_until_room_appears() {
    let sim = SimConfig {
        nodes: 2,
        node_cpu: "2".into(),
        ..member(&["10.244.0.0/16"])
    };
    let t = TestServer::simulated(sim).await;
    let api: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pod = |name: &str, cpu: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": name.trim_end_matches(|c: char| c.is_numeric() || c == '-')}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]},
        }))
        .unwrap()
    };
    for name in ["big-1", "big-2"] {
        api.create(&PostParams::default(), &pod(name, "1500m"))
            .await
            .unwrap();
    }
    ready_pods(&api, "app=big", 2).await;
    api.create(&PostParams::default(), &pod("big-3", "1500m"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &pod("huge", "64"))
        .await
        .unwrap();
    let unschedulable = |name: &'static str| {
        let api = api.clone();
        async move {
            let status = api.get(name).await.unwrap().status?;
            let c = status
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled")?;
            (c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
                .then_some(c.message?)
        }
    };
    let message = eventually("big-3 unschedulable", WAIT, || unschedulable("big-3")).await;
    assert_eq!(message, "0/2 nodes are available: 2 Insufficient cpu.");
    eventually("huge unschedulable", WAIT, || unschedulable("huge")).await;
    let described = t.kubectl_ok(&["describe", "pod", "huge"]);
    assert!(
        described.contains("PodScheduled") && described.contains("False"),
        "{described}"
    );
    let table = t.kubectl_ok(&["get", "pod", "huge"]);
    assert!(table.contains("Pending"), "{table}");

    api.delete("big-1", &DeleteParams::default()).await.unwrap();
    ready_pods(&api, "app=big", 2).await;
    let moved = api.get("big-3").await.unwrap();
    assert!(is_ready(&moved), "big-3 took the room big-1 left");
    let huge = api.get("huge").await.unwrap();
    assert!(
        huge.spec.unwrap().node_name.is_none(),
        "nothing has 64 CPUs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_marked_not_ready_takes_no_pods_until_ready_again() {
    let t = TestServer::simulated(SimConfig {
        nodes: 1,
        ..member(&["10.244.0.0/16"])
    })
    .await;
    let nodes: Api<Node> = Api::all(t.client.clone());
    let node = "member-1-node-1";
    let set_ready = |status: &'static str| {
        let nodes = nodes.clone();
        async move {
            let patch = json!({"status": {"conditions": [{"type": "Ready", "status": status, "reason": "Test"}]}});
            nodes
                .patch_status(node, &PatchParams::default(), &Patch::Merge(patch))
                .await
        }
    };
    eventually("the node registered", WAIT, || async {
        set_ready("False").await.ok()
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "labels": {"app": "p"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let message = eventually("p unschedulable", WAIT, || async {
        let status = pods.get("p").await.unwrap().status?;
        let c = status
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")?;
        (c.status == "False").then_some(c.message?)
    })
    .await;
    assert_eq!(
        message,
        "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
    );
    set_ready("True").await.unwrap();
    ready_pods(&pods, "app=p", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dual_stack_service_gets_one_slice_per_family() {
    let config = clusterset::apiserver::Config {
        service_cidrs: vec![
            "10.96.0.0/12".parse().unwrap(),
            "fd00:10:96::/112".parse().unwrap(),
        ],
        simulate: Some(member(&["10.244.0.0/16", "fd00:10:244::/56"])),
        ..Default::default()
    };
    let t = TestServer::with_config(config).await;
    apply(
        &t,
        &WEB.replace(
            "spec:\n  selector: {app: web}",
            "spec:\n  ipFamilyPolicy: PreferDualStack\n  selector: {app: web}",
        ),
    );
    let svc: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let families = svc
        .get("web")
        .await
        .unwrap()
        .spec
        .unwrap()
        .ip_families
        .unwrap();
    assert_eq!(families, ["IPv4", "IPv6"]);

    let pods_api: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pods = ready_pods(&pods_api, "app=web", 2).await;
    let (mut v4, mut v6) = (BTreeMap::new(), BTreeMap::new());
    for p in &pods {
        let ips = pod_ips(p);
        assert_eq!(ips.len(), 2, "{ips:?}");
        assert!(
            inside("10.244.0.0/16", &ips[0]) && inside("fd00:10:244::/56", &ips[1]),
            "{ips:?}"
        );
        v4.insert(ips[0].clone(), true);
        v6.insert(ips[1].clone(), true);
    }
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), "default");
    endpoints_become(&slices, "web", "IPv4", v4).await;
    endpoints_become(&slices, "web", "IPv6", v6).await;
    let list = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap();
    let mut types: Vec<&str> = list.items.iter().map(|s| s.address_type.as_str()).collect();
    types.sort();
    assert_eq!(types, ["IPv4", "IPv6"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn restarted_controllers_rebuild_their_state_and_write_nothing() {
    // Controllers run by hand on a plain server, so they can be stopped and started.
    let t = TestServer::start().await;
    let state = t.server.state.clone();
    let config = member(&["10.244.0.0/16"]);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = sim::spawn(state.clone(), stopped, config.clone());
    apply(&t, WEB);
    t.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    let pods_api: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let pods = ready_pods(&pods_api, "app=web", 2).await;
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), "default");
    endpoints_become(&slices, "web", "IPv4", all_ready(&pods)).await;
    stop.send(true).unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let before = versions(&t).await;

    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let _tasks = sim::spawn(state, stopped, config);
    // Another workload goes through every controller; once it has endpoints, the
    // restarted controllers have also looked at everything that was there before.
    apply(&t, &WEB.replace("web", "api"));
    let api_pods = ready_pods(&pods_api, "app=api", 2).await;
    endpoints_become(&slices, "api", "IPv4", all_ready(&api_pods)).await;
    t.kubectl_ok(&["rollout", "status", "deployment/api", "--timeout=30s"]);

    let after = versions(&t).await;
    let unchanged: BTreeMap<_, _> = after
        .into_iter()
        .filter(|(k, _)| before.contains_key(k))
        .collect();
    assert_eq!(
        unchanged, before,
        "nothing that was settled was written again"
    );
    let old_ips: BTreeSet<String> = pods.iter().flat_map(pod_ips).collect();
    assert!(
        api_pods
            .iter()
            .flat_map(pod_ips)
            .all(|ip| !old_ips.contains(&ip)),
        "addresses in use are not handed out again"
    );
}

/// resourceVersions of everything the simulation writes, by kind and name.
async fn versions(t: &TestServer) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    async fn collect<K>(api: Api<K>, out: &mut BTreeMap<String, String>)
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        for o in api.list(&ListParams::default()).await.unwrap().items {
            let key = format!("{}/{}", K::kind(&()), o.meta().name.clone().unwrap());
            out.insert(key, o.meta().resource_version.clone().unwrap());
        }
    }
    let c = || t.client.clone();
    collect(Api::<Node>::all(c()), &mut out).await;
    collect(Api::<Pod>::namespaced(c(), "default"), &mut out).await;
    collect(Api::<ReplicaSet>::namespaced(c(), "default"), &mut out).await;
    collect(Api::<Deployment>::namespaced(c(), "default"), &mut out).await;
    collect(Api::<EndpointSlice>::namespaced(c(), "default"), &mut out).await;
    out
}
