//! `make bench`: figures for multi-cluster services, printed for people to compare.
//!
//! - propagation latency from ServiceExport creation to the ServiceImport and its
//!   EndpointSlices being present in every member (p50, p99), for 3 and 10 members
//! - endpoint churn: pod readiness flips per second that reach every member
//! - convergence of 10,000 exported services across 10 members, with the hub and the
//!   agents as separate processes (the release binary), and their peak memory
//! - the same with one member: what each member costs alone (on real clusters, each
//!   member's API server and agent run on that member's own machines)
//! - the write floor: the writes importing members need, sent with no controller, which
//!   convergence on the same cores cannot beat
//!
//! Everything shares this machine's cores: API servers, controllers and the watchers
//! that time them. `BENCH_SERVICES` overrides the 10,000; `BENCH_ONLY` picks one part.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clusterset::local::{LocalClusterset, UpOptions};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

const NS: &str = "bench";

async fn up(members: usize) -> (tempfile::TempDir, LocalClusterset) {
    let dir = tempfile::tempdir().unwrap();
    let opts = UpOptions::new(members, dir.path().join("cs"));
    let local = LocalClusterset::up(&opts).await.unwrap();
    (dir, local)
}

fn member_names(local: &LocalClusterset) -> Vec<String> {
    local
        .clusters
        .iter()
        .filter(|c| c.plan.cluster_id.is_some())
        .map(|c| c.plan.name.clone())
        .collect()
}

fn client(local: &LocalClusterset, name: &str) -> kube::Client {
    local.cluster(name).unwrap().server.client()
}

async fn create<K>(api: &Api<K>, value: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

/// The namespace in every member, and in member-1 a Deployment `app` of `replicas`.
async fn workload(local: &LocalClusterset, replicas: i32) {
    for m in member_names(local) {
        create(
            &Api::<Namespace>::all(client(local, &m)),
            json!({"metadata": {"name": NS}}),
        )
        .await;
    }
    let c = client(local, "member-1");
    create(&Api::<Deployment>::namespaced(c.clone(), NS), json!({"metadata": {"name": "app"}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": "app"}},
        "template": {"metadata": {"labels": {"app": "app"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})).await;
}

async fn service(c: &kube::Client, name: &str) {
    create(
        &Api::<Service>::namespaced(c.clone(), NS),
        json!({"metadata": {"name": name},
        "spec": {"selector": {"app": "app"}, "ports": [{"port": 80}]}}),
    )
    .await;
}

async fn export(c: &kube::Client, name: &str) {
    let api: Api<clusterset::api::multicluster::ServiceExport> = Api::namespaced(c.clone(), NS);
    create(&api, json!({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport", "metadata": {"name": name}})).await;
}

/// What every member has imported: per service, the members holding a ServiceImport
/// and the members holding imported endpoints (with `ready` ready ones, or any).
#[derive(Default)]
struct Seen {
    imports: HashMap<String, std::collections::BTreeSet<String>>,
    ready_endpoints: HashMap<(String, String), usize>,
    /// (member, service) pairs imported with `target` ready endpoints, kept up to
    /// date per event so that waiting never rescans everything.
    target: usize,
    complete: std::collections::HashSet<(String, String)>,
}

impl Seen {
    fn update(&mut self, member: &str, svc: &str) {
        let key = (member.to_string(), svc.to_string());
        let imported = self.imports.get(svc).is_some_and(|ms| ms.contains(member));
        if imported && self.ready_endpoints.get(&key) == Some(&self.target) {
            self.complete.insert(key);
        } else {
            self.complete.remove(&key);
        }
    }
}

struct Tracker {
    seen: Mutex<Seen>,
    changed: tokio::sync::Notify,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

impl Tracker {
    fn start(local: &LocalClusterset) -> Arc<Tracker> {
        let tracker = Arc::new_cyclic(|weak: &std::sync::Weak<Tracker>| {
            let mut tasks = Vec::new();
            for m in member_names(local) {
                let c = client(local, &m);
                let (w, name) = (weak.clone(), m.clone());
                let imports: Api<clusterset::api::multicluster::ServiceImport> =
                    Api::namespaced(c.clone(), NS);
                tasks.push(tokio::spawn(async move {
                    let mut events = watcher(imports, watcher::Config::default())
                        .applied_objects()
                        .boxed();
                    while let Some(Ok(i)) = events.next().await {
                        let Some(t) = w.upgrade() else { return };
                        let svc = i.metadata.name.unwrap();
                        let mut seen = t.seen.lock().unwrap();
                        seen.imports
                            .entry(svc.clone())
                            .or_default()
                            .insert(name.clone());
                        seen.update(&name, &svc);
                        drop(seen);
                        t.changed.notify_waiters();
                    }
                }));
                let (w, name) = (weak.clone(), m.clone());
                let slices: Api<EndpointSlice> = Api::namespaced(c, NS);
                let config = watcher::Config::default()
                    .labels("endpointslice.kubernetes.io/managed-by=agent.mcs.clusterset.io");
                tasks.push(tokio::spawn(async move {
                    let mut events = watcher(slices, config).applied_objects().boxed();
                    while let Some(Ok(s)) = events.next().await {
                        let Some(t) = w.upgrade() else { return };
                        let svc = s.metadata.labels.as_ref().unwrap()
                            ["multicluster.kubernetes.io/service-name"]
                            .clone();
                        let ready = s
                            .endpoints
                            .iter()
                            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                            .count();
                        let mut seen = t.seen.lock().unwrap();
                        seen.ready_endpoints
                            .insert((name.clone(), svc.clone()), ready);
                        seen.update(&name, &svc);
                        drop(seen);
                        t.changed.notify_waiters();
                    }
                }));
            }
            Tracker {
                seen: Mutex::new(Seen {
                    target: 2,
                    ..Seen::default()
                }),
                changed: tokio::sync::Notify::new(),
                tasks,
            }
        });
        tracker
    }

    /// Members where `svc` is imported with exactly `ready` ready endpoints.
    fn complete(&self, svc: &str, ready: usize) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.imports
            .get(svc)
            .map(|ms| {
                ms.iter()
                    .filter(|m| {
                        seen.ready_endpoints.get(&((*m).clone(), svc.to_string())) == Some(&ready)
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Pairs complete with the target set by [`Tracker::start`] (2 ready endpoints).
    fn total_complete(&self) -> usize {
        self.seen.lock().unwrap().complete.len()
    }

    async fn wait(&self, within: Duration, done: impl Fn(&Tracker) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.changed.notified();
            if done(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return done(self);
            }
        }
    }
}

async fn wait_pods_ready(c: &kube::Client, n: usize) {
    let pods: Api<Pod> = Api::namespaced(c.clone(), NS);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = pods
            .list(&ListParams::default().labels("app=app"))
            .await
            .unwrap()
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some())
            .count();
        if ready >= n || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn propagation(members: usize, services: usize) {
    let (_dir, local) = up(members).await;
    workload(&local, 2).await;
    let c = client(&local, "member-1");
    wait_pods_ready(&c, 2).await;
    for i in 0..services {
        service(&c, &format!("p{i}")).await;
    }
    let tracker = Tracker::start(&local);
    let mut latencies = Vec::new();
    for i in 0..services {
        let name = format!("p{i}");
        let started = Instant::now();
        export(&c, &name).await;
        let ok = tracker
            .wait(Duration::from_secs(10), |t| t.complete(&name, 2) == members)
            .await;
        assert!(ok, "{name} did not reach every member");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "propagation, {members} members ({services} exports one after another): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Readiness flips of 20 pods, all sent, then until every member shows the end state.
async fn churn(members: usize, rounds: usize) {
    let (_dir, local) = up(members).await;
    const PODS: usize = 20;
    workload(&local, PODS as i32).await;
    let c = client(&local, "member-1");
    wait_pods_ready(&c, PODS).await;
    service(&c, "churn").await;
    let tracker = Tracker::start(&local);
    export(&c, "churn").await;
    assert!(
        tracker
            .wait(Duration::from_secs(20), |t| t.complete("churn", PODS)
                == members)
            .await
    );
    let pods: Api<Pod> = Api::namespaced(c.clone(), NS);
    let names: Vec<String> = pods
        .list(&ListParams::default().labels("app=app"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    let started = Instant::now();
    let mut flips = 0;
    for round in 0..rounds {
        let ready = if round % 2 == 0 { "false" } else { "true" };
        let patches = names.iter().map(|n| {
            let pods = pods.clone();
            let patch = json!({"metadata": {"annotations": {"clusterset.io/ready": ready}}});
            async move {
                pods.patch(n, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap()
            }
        });
        futures::future::join_all(patches).await;
        flips += names.len();
        // Each half-round must reach every member before the next, so every flip counts.
        let want = if ready == "true" { PODS } else { 0 };
        assert!(
            tracker
                .wait(Duration::from_secs(20), |t| t.complete("churn", want)
                    == members)
                .await
        );
    }
    let elapsed = started.elapsed();
    println!(
        "endpoint churn, {members} members: {flips} readiness flips in {:.2} s = {:.0} flips/s reaching every member ({} per round, each round waited for)",
        elapsed.as_secs_f64(),
        flips as f64 / elapsed.as_secs_f64(),
        PODS
    );
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user and system) a process has used so far; `self` for this one.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces:
    // utime and stime are the 12th and 13th of them.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().skip(11).take(2))
        .into_iter()
        .flatten()
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on every Linux this runs on.
    ticks as f64 / 100.0
}

/// A `clusterset` role (the release binary beside this example) as a process.
fn spawn(args: Vec<String>) -> std::process::Child {
    let binary = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("clusterset");
    std::process::Command::new(binary)
        .args(args)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// `services` exports made while no controller runs, then the hub and one agent per
/// member started as processes: time until every member imports every service.
///
/// With `restart`, the hub is then killed and started again at that size. With one
/// member, this is what one member costs on its own: the exporting member's API server
/// and agent, and the hub, alone on the cores. On real clusters each member's API
/// server and agent run on that member's own machines.
async fn convergence(members: usize, services: usize, restart: bool) {
    let (dir, mut local) = up(members).await;
    local.controllers = None;
    workload(&local, 2).await;
    let c = client(&local, "member-1");
    wait_pods_ready(&c, 2).await;
    let made = Instant::now();
    let names: Vec<String> = (0..services).map(|i| format!("s{i}")).collect();
    futures::stream::iter(names.iter().map(|n| {
        let c = c.clone();
        async move {
            service(&c, n).await;
            export(&c, n).await;
        }
    }))
    .buffer_unordered(32)
    .collect::<Vec<_>>()
    .await;
    println!(
        "  ({services} Services and ServiceExports created in member-1 in {:.1} s)",
        made.elapsed().as_secs_f64()
    );
    let tracker = Tracker::start(&local);
    let own_cpu = cpu_seconds("self");
    let kubeconfig = local.kubeconfig_path();
    let kc = kubeconfig.to_str().unwrap();
    let started = Instant::now();
    let hub_probes = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hub_args: Vec<String> = ["hub", "--hub-kubeconfig", kc, "--hub-context", "hub"]
        .iter()
        .map(|s| s.to_string())
        .chain(["--probe-listen".into(), format!("127.0.0.1:{hub_probes}")])
        .collect();
    let mut children = vec![spawn(hub_args.clone())];
    // The agents use the hub credentials local up's join left in each member, and
    // heart-beat, as deployed agents do.
    for m in member_names(&local) {
        children.push(spawn(vec![
            "agent".into(),
            "--kubeconfig".into(),
            kc.into(),
            "--context".into(),
            m.clone(),
            "--probe-listen".into(),
            "127.0.0.1:0".into(),
        ]));
    }
    let want = services * members;
    let progress = {
        let tracker = tracker.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if std::env::var("BENCH_PROGRESS").is_ok() {
                    eprintln!(
                        "  {:5.1} s: {} of {want}",
                        t0.elapsed().as_secs_f64(),
                        tracker.total_complete()
                    );
                }
            }
        })
    };
    let ok = tracker
        .wait(Duration::from_secs(300), |t| t.total_complete() >= want)
        .await;
    progress.abort();
    let elapsed = started.elapsed();
    let servers_cpu = cpu_seconds("self") - own_cpu;
    let hub_cpu = cpu_seconds(&children[0].id().to_string());
    let agents_cpu: f64 = children[1..]
        .iter()
        .map(|c| cpu_seconds(&c.id().to_string()))
        .sum();
    let hub_peak = peak_rss_kib(children[0].id());
    let agent_peak = children[1..]
        .iter()
        .map(|c| peak_rss_kib(c.id()))
        .max()
        .unwrap_or(0);
    println!(
        "convergence, {services} services x {members} members{}: {:.1} s until every member imports every service with its endpoints; peak memory: hub {:.1} MiB, largest agent {:.1} MiB",
        if ok { String::new() } else { format!(" (NOT converged: {} of {want} service-member pairs after 300 s)", tracker.total_complete()) },
        elapsed.as_secs_f64(),
        hub_peak as f64 / 1024.0,
        agent_peak as f64 / 1024.0,
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "  CPU used meanwhile: {servers_cpu:.1} s by the {} API servers and the timing watchers, {agents_cpu:.1} s by the agents ({:.1} s each on average), {hub_cpu:.1} s by the hub; {:.1} s were available on {cores} cores",
        members + 1,
        agents_cpu / members as f64,
        elapsed.as_secs_f64() * cores as f64,
    );
    if ok && restart {
        hub_restart(
            &local,
            &tracker,
            &mut children,
            hub_args,
            hub_probes,
            services,
        )
        .await;
    }
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(dir);
}

/// What the MCS data model alone costs here: for every (service, member) pair, the five
/// writes an importing member needs (ServiceImport, derived Service, the import's
/// spec.ips, its EndpointSlice, the import's status), sent straight to the member API
/// servers, 32 at a time per member, with no controller and only the timing watchers.
/// Convergence cannot be faster than this on the same machine.
async fn write_floor(members: usize, services: usize) {
    let (dir, mut local) = up(members).await;
    local.controllers = None;
    workload(&local, 0).await;
    let tracker = Tracker::start(&local);
    let started = Instant::now();
    let names: Vec<String> = (0..services).map(|i| format!("s{i}")).collect();
    let per_member = member_names(&local).into_iter().map(|m| {
        let c = client(&local, &m);
        let names = names.clone();
        async move {
            futures::stream::iter(names.into_iter().map(|n| import_by_hand(c.clone(), n)))
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await
        }
    });
    futures::future::join_all(per_member).await;
    let want = services * members;
    assert!(
        tracker
            .wait(Duration::from_secs(60), |t| t.total_complete() >= want)
            .await
    );
    println!(
        "write floor, {services} services x {members} members: {:.1} s for the {} writes importing members need, with no controller running",
        started.elapsed().as_secs_f64(),
        want * 5
    );
    drop(dir);
}

/// The five writes of one imported service, made from the agent's own builders.
async fn import_by_hand(c: kube::Client, name: String) {
    use clusterset::api::multicluster::ServiceImport;
    use clusterset::api::records::EndpointGroup;
    use clusterset::mcs::{endpoints, imports, merge::ExportedService};
    let exported: ExportedService = serde_json::from_value(json!({
        "type": "ClusterSetIP", "ports": [{"port": 80, "protocol": "TCP"}],
        "sessionAffinity": "None", "ipFamilies": ["IPv4"]}))
    .unwrap();
    let endpoint = |ip: &str| json!({"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false}});
    let groups: Vec<EndpointGroup> = serde_json::from_value(json!([{"addressType": "IPv4",
        "ports": [{"port": 80, "protocol": "TCP"}],
        "endpoints": [endpoint("10.1.0.1"), endpoint("10.1.0.2")]}]))
    .unwrap();
    let params = PatchParams::default();
    let imports_api: Api<ServiceImport> = Api::namespaced(c.clone(), NS);
    let import = imports::service_import(NS, &name, &exported, &[]);
    let import = imports_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(import).unwrap(),
        )
        .await
        .unwrap();
    let uid = import.metadata.uid.unwrap_or_default();
    let svc = imports::derived_service(NS, &name, &exported, &uid);
    let svc = Api::<Service>::namespaced(c.clone(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(svc).unwrap(),
        )
        .await
        .unwrap();
    let ips = svc.spec.unwrap().cluster_ips.unwrap_or_default();
    imports_api
        .patch(&name, &params, &Patch::Merge(json!({"spec": {"ips": ips}})))
        .await
        .unwrap();
    let derived = imports::derived_name(NS, &name);
    let slices: Api<EndpointSlice> = Api::namespaced(c, NS);
    for slice in endpoints::imported_slices(&name, &derived, "member-1", &groups) {
        slices
            .create(
                &PostParams::default(),
                &serde_json::from_value(slice).unwrap(),
            )
            .await
            .unwrap();
    }
    let status = json!({"status": {"clusters": [{"cluster": "member-1"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                        "message": "imported from the clusterset", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    imports_api
        .patch_status(&name, &params, &Patch::Merge(status))
        .await
        .unwrap();
}

/// The hub controller killed (SIGKILL) once everything has converged, 100 more
/// services exported meanwhile, then started again: how long until it serves, until
/// it has checked every one of the `services` it already decided, and until the
/// members import the new ones.
async fn hub_restart(
    local: &LocalClusterset,
    tracker: &Tracker,
    children: &mut [std::process::Child],
    hub_args: Vec<String>,
    hub_probes: u16,
    services: usize,
) {
    let _ = children[0].kill();
    let _ = children[0].wait();
    let c = client(local, "member-1");
    let added: Vec<String> = (0..100).map(|i| format!("late{i}")).collect();
    for n in &added {
        service(&c, n).await;
        export(&c, n).await;
    }
    let started = Instant::now();
    children[0] = spawn(hub_args);
    let members = member_names(local).len();
    let probe = |path: &'static str| async move {
        let url = format!("http://127.0.0.1:{hub_probes}{path}");
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-s", "-f", &url])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        })
        .await
        .unwrap()
    };
    let mut ready = None;
    let mut checked = None;
    let mut imported = None;
    while started.elapsed() < Duration::from_secs(120) && (checked.is_none() || imported.is_none())
    {
        if ready.is_none() && probe("/readyz").await.is_some() {
            ready = Some(started.elapsed());
        }
        if ready.is_some() && checked.is_none() {
            let reconciles: f64 = probe("/metrics")
                .await
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("clusterset_hub_reconciles_total{controller=\"hub\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            if reconciles >= (services + added.len()) as f64 {
                checked = Some(started.elapsed());
            }
        }
        if imported.is_none() && added.iter().all(|n| tracker.complete(n, 2) == members) {
            imported = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = |d: Option<Duration>| {
        d.map_or("never".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
    };
    println!(
        "hub restart with {services} exports x {members} members: ready in {}, every service checked in {}, 100 services exported while it was down imported everywhere in {} (goal: full convergence < 10 s)",
        s(ready),
        s(checked),
        s(imported),
    );
}

#[tokio::main]
async fn main() {
    let services: usize = std::env::var("BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // BENCH_ONLY=convergence (or propagation, churn, member, floor) runs one part, e.g. under a profiler.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    println!("multi-cluster services (2 cores shared by API servers, controllers and the timing watchers)");
    if run("propagation") {
        propagation(3, 200).await;
        propagation(10, 100).await;
    }
    if run("churn") {
        churn(3, 10).await;
        churn(10, 10).await;
    }
    if run("convergence") {
        convergence(10, services, true).await;
    }
    if run("member") {
        convergence(1, services, false).await;
    }
    if run("floor") {
        write_floor(10, services).await;
    }
}
