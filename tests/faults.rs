//! Fault injection: each fault strikes while the clusterset is busy, and each must end
//! in the state that would have resulted without it — the same imports, the same
//! slices, the same DNS answers, checked object by object — with the time to recover
//! printed. The hub controller runs as a `clusterset hub` process (so it can be killed
//! with SIGKILL); the members' agents and DNS servers run in local up.
//!
//! 1. SIGKILL the hub controller in the middle of syncing 1,000 exports.
//! 2. Stop an importing member's API server while every slice is being updated.
//! 3. Stop the hub's API server while 100 exports are withdrawn.
//! 4. Stop everything and start again from `--data-dir`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clusterset::api::multicluster::ServiceImport;
use clusterset::api::records::ImportRecord;
use clusterset::local::{LocalClusterset, UpOptions};
use common::{dig_short, eventually, free_port, kubectl_at_ok};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

const NS: &str = "faults";
const SERVICES: usize = 1000;
/// How long recovering from one fault may take before the test fails.
const RECOVERY: Duration = Duration::from_secs(120);

struct HubProcess(Child);

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `clusterset hub` against the local hub, as a process.
fn hub_process(kubeconfig: &Path) -> HubProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_clusterset"))
        .args(["hub", "--hub-kubeconfig"])
        .arg(kubeconfig)
        .args(["--hub-context", "hub", "--probe-listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    HubProcess(child)
}

async fn up(dir: &Path) -> LocalClusterset {
    let opts = UpOptions {
        data_dir: Some(dir.join("data")),
        ..UpOptions::new(2, dir.join("cs"))
    };
    let mut local = LocalClusterset::up(&opts).await.unwrap();
    local.controllers.as_mut().unwrap().stop_hub();
    local
}

fn client(local: &LocalClusterset, cluster: &str) -> kube::Client {
    local.cluster(cluster).unwrap().server.client()
}

/// What a member holds for the multi-cluster services of [`NS`], without what
/// differs between runs (uids, allocated IPs): per import its type, ports and
/// exporting clusters; per (service, source cluster) the endpoint addresses with
/// their readiness.
#[derive(Debug, PartialEq)]
struct View {
    imports: BTreeMap<String, String>,
    endpoints: BTreeMap<String, Vec<String>>,
}

async fn view(local: &LocalClusterset, member: &str) -> View {
    let c = client(local, member);
    let imports = Api::<ServiceImport>::namespaced(c.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|i| {
            let ports: Vec<String> = i
                .spec
                .ports
                .iter()
                .map(|p| format!("{}/{}", p.port, p.protocol.clone().unwrap_or_default()))
                .collect();
            let clusters: Vec<String> = i
                .status
                .map(|s| s.clusters.into_iter().map(|c| c.cluster).collect())
                .unwrap_or_default();
            let name = i.metadata.name.unwrap();
            (name, format!("{:?} {ports:?} {clusters:?}", i.spec.type_))
        })
        .collect();
    let mut endpoints: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let slices = Api::<EndpointSlice>::namespaced(c, NS)
        .list(&ListParams::default().labels("multicluster.kubernetes.io/source-cluster"))
        .await
        .unwrap();
    for slice in slices.items {
        let labels = slice.metadata.labels.unwrap();
        let key = format!(
            "{}/{}",
            labels["multicluster.kubernetes.io/service-name"],
            labels["multicluster.kubernetes.io/source-cluster"]
        );
        let entry = endpoints.entry(key).or_default();
        for e in slice.endpoints {
            let ready = e.conditions.and_then(|c| c.ready).unwrap_or(false);
            entry.push(format!("{} ready={ready}", e.addresses.join(",")));
        }
        entry.sort();
    }
    View { imports, endpoints }
}

/// What every member holds when `services` are exported from member-1 and its pods
/// have `addresses`, had nothing gone wrong.
fn expected(services: &[String], addresses: &[String]) -> View {
    let mut ready: Vec<String> = addresses
        .iter()
        .map(|a| format!("{a} ready=true"))
        .collect();
    ready.sort();
    View {
        imports: services
            .iter()
            .map(|s| {
                (
                    s.clone(),
                    "ClusterSetIP [\"80/TCP\"] [\"member-1\"]".to_string(),
                )
            })
            .collect(),
        endpoints: services
            .iter()
            .map(|s| (format!("{s}/member-1"), ready.clone()))
            .collect(),
    }
}

async fn pod_ips(local: &LocalClusterset) -> Vec<String> {
    let pods = Api::<Pod>::namespaced(client(local, "member-1"), NS)
        .list(&ListParams::default().labels("app=app"))
        .await
        .unwrap();
    pods.items
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect()
}

/// Waits until both members hold exactly `want`, then checks that member-2's DNS
/// answers a sample of the services with their imports' IPs; returns how long it took.
async fn converge(local: &LocalClusterset, want: &View, fault: &str, since: Instant) -> Duration {
    let mut last = None;
    let deadline = Instant::now() + RECOVERY;
    loop {
        let views = [view(local, "member-1").await, view(local, "member-2").await];
        if views.iter().all(|v| v == want) {
            break;
        }
        if Instant::now() > deadline {
            let v = &views[1];
            let missing: Vec<_> = want
                .imports
                .keys()
                .filter(|k| !v.imports.contains_key(*k))
                .take(5)
                .collect();
            let wrong: Vec<_> = want
                .endpoints
                .iter()
                .filter(|(k, e)| v.endpoints.get(*k) != Some(e))
                .take(3)
                .collect();
            panic!("{fault}: not recovered after {RECOVERY:?}; member-2 lacks imports {missing:?}, differs in {wrong:?} (last progress {last:?})");
        }
        last = Some(views[1].imports.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = since.elapsed();
    let dns = local.dns_addr("member-2").unwrap();
    let imports = Api::<ServiceImport>::namespaced(client(local, "member-2"), NS);
    for name in want.imports.keys().step_by(97) {
        let ips = imports.get(name).await.unwrap().spec.ips;
        let answers = eventually(
            &format!("{fault}: DNS answers {name}"),
            Duration::from_secs(10),
            || async {
                let answers = dig_short(dns, &format!("{name}.{NS}.svc.clusterset.local"));
                (answers == ips).then_some(answers)
            },
        )
        .await;
        assert_eq!(answers.len(), 1);
    }
    println!(
        "{fault}: recovered {} imports per member in {took:?}",
        want.imports.len()
    );
    took
}

async fn create(api: &Api<kube::api::DynamicObject>, object: serde_json::Value) {
    let obj: kube::api::DynamicObject = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

fn dynamic(
    c: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    let ar = kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(c.clone(), NS, &ar)
}

/// Services `names` selecting member-1's pods, each exported.
async fn export(local: &LocalClusterset, names: &[String]) {
    let c = client(local, "member-1");
    let services = dynamic(&c, "", "v1", "Service", "services");
    let exports = dynamic(
        &c,
        "multicluster.x-k8s.io",
        "v1beta1",
        "ServiceExport",
        "serviceexports",
    );
    futures::stream::iter(names.iter().map(|n| {
        let (services, exports) = (services.clone(), exports.clone());
        async move {
            create(&services, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": n},
                "spec": {"selector": {"app": "app"}, "ports": [{"port": 80}]}})).await;
            create(&exports, json!({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport", "metadata": {"name": n}})).await;
        }
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
}

/// kubectl in member-1's namespace of the test.
fn in_member1(kubeconfig: &Path, args: &[&str]) {
    let mut all = vec!["--context", "member-1", "-n", NS];
    all.extend_from_slice(args);
    kubectl_at_ok(kubeconfig, &all, None);
}

async fn import_records(local: &LocalClusterset) -> usize {
    Api::<ImportRecord>::namespaced(client(local, "hub"), "clusterset-imports")
        .list(&ListParams::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_ends_in_the_state_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let local = up(dir.path()).await;
    let kc = local.kubeconfig_path();
    for member in ["member-1", "member-2"] {
        kubectl_at_ok(&kc, &["--context", member, "create", "namespace", NS], None);
    }
    in_member1(
        &kc,
        &[
            "create",
            "deployment",
            "app",
            "--image=nginx",
            "--replicas=2",
        ],
    );
    in_member1(
        &kc,
        &["rollout", "status", "deployment/app", "--timeout=30s"],
    );
    let mut hub = hub_process(&kc);
    let mut names: Vec<String> = (0..SERVICES).map(|i| format!("s{i:04}")).collect();

    // 1. SIGKILL the hub controller part way through syncing the exports.
    let exporting = {
        let names = names.clone();
        let local = &local;
        async move { export(local, &names).await }
    };
    let killer = async {
        eventually("the hub to be part way through", RECOVERY, || async {
            (import_records(&local).await >= 100).then_some(())
        })
        .await;
        let at_kill = import_records(&local).await;
        hub.0.kill().unwrap(); // SIGKILL
        hub.0.wait().unwrap();
        at_kill
    };
    let ((), at_kill) = futures::future::join(exporting, killer).await;
    assert!(
        at_kill < SERVICES,
        "the hub had already finished ({at_kill} imports) when it was killed"
    );
    let restarted = Instant::now();
    hub = hub_process(&kc);
    let mut want = expected(&names, &pod_ips(&local).await);
    converge(&local, &want, "hub controller killed mid-sync", restarted).await;

    // 2. member-2's API server stops while every slice is being updated (a third pod).
    in_member1(&kc, &["scale", "deployment", "app", "--replicas=3"]);
    let member2 = &local.cluster("member-2").unwrap().server;
    member2.stop_serving().await;
    in_member1(
        &kc,
        &["rollout", "status", "deployment/app", "--timeout=30s"],
    );
    want = expected(&names, &pod_ips(&local).await);
    assert_eq!(want.endpoints.values().next().unwrap().len(), 3);
    let resumed = Instant::now();
    member2.resume_serving().await.unwrap();
    converge(
        &local,
        &want,
        "member API server stopped mid-update",
        resumed,
    )
    .await;

    // 3. The hub's API server stops while 100 exports are withdrawn.
    let exports = dynamic(
        &client(&local, "member-1"),
        "multicluster.x-k8s.io",
        "v1beta1",
        "ServiceExport",
        "serviceexports",
    );
    let withdrawn: Vec<String> = names.drain(..100).collect();
    let hub_server = &local.cluster("hub").unwrap().server;
    for (i, name) in withdrawn.iter().enumerate() {
        if i == 50 {
            hub_server.stop_serving().await;
        }
        exports
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    let resumed = Instant::now();
    hub_server.resume_serving().await.unwrap();
    want = expected(&names, &pod_ips(&local).await);
    converge(
        &local,
        &want,
        "hub API server stopped mid-withdrawal",
        resumed,
    )
    .await;

    // 4. Everything stops and starts again from the data directory: the same objects,
    // none rewritten.
    let before = identities(&local).await;
    drop(hub);
    local.down().await;
    let restarted = Instant::now();
    let local = up(dir.path()).await;
    let _hub = hub_process(&local.kubeconfig_path());
    converge(
        &local,
        &want,
        "everything restarted from --data-dir",
        restarted,
    )
    .await;
    assert_eq!(
        identities(&local).await,
        before,
        "objects were recreated or rewritten"
    );
    local.down().await;
}

/// Every import and imported slice in both members, by uid and resourceVersion.
async fn identities(local: &LocalClusterset) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for member in ["member-1", "member-2"] {
        let c = client(local, member);
        let imports = Api::<ServiceImport>::namespaced(c.clone(), NS)
            .list(&ListParams::default())
            .await
            .unwrap();
        let slices = Api::<EndpointSlice>::namespaced(c, NS)
            .list(&ListParams::default().labels("multicluster.kubernetes.io/source-cluster"))
            .await
            .unwrap();
        out.extend(imports.items.iter().map(|i| {
            (
                i.metadata.uid.clone().unwrap(),
                i.metadata.resource_version.clone().unwrap(),
            )
        }));
        out.extend(slices.items.iter().map(|s| {
            (
                s.metadata.uid.clone().unwrap(),
                s.metadata.resource_version.clone().unwrap(),
            )
        }));
    }
    out.sort();
    out
}
