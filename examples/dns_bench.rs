//! `clusterset dns` against Knot DNS, both measured with dnsperf on this machine.
//!
//! A local clusterset exports `BENCH_DNS_SERVICES` ClusterIP services (default 500)
//! and two headless ones from member-1; member-2's imports feed a `clusterset dns`
//! (2 UDP threads) and, written out as a static zone file, a Knot DNS server (its
//! default workers). The same query mix goes to both: throughput with dnsperf sending
//! as fast as answers come back, then latency percentiles at a fixed rate. While
//! clusterset dns is under load, a headless service's pods flip readiness; afterwards
//! its answer must match the pods exactly. Last, the time from a ServiceExport in
//! member-1 to member-2's DNS answering its name.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clusterset::dns::Dns;
use clusterset::local::{IpFamily, LocalClusterset, UpOptions};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "default";

async fn create<K>(api: &Api<K>, value: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

async fn export(c: &kube::Client, name: &str, headless: bool, app: &str) {
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
        "spec": {"clusterIP": if headless { json!("None") } else { json!(null) }, "selector": {"app": app},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
    create(
        &Api::<k8s_openapi::api::core::v1::Service>::namespaced(c.clone(), NS),
        svc,
    )
    .await;
    let export = json!({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
        "metadata": {"name": name, "namespace": NS}});
    create(
        &Api::<clusterset::api::multicluster::ServiceExport>::namespaced(c.clone(), NS),
        export,
    )
    .await;
}

async fn deployment(c: &kube::Client, name: &str, replicas: i32) {
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    create(
        &Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(c.clone(), NS),
        d,
    )
    .await;
}

async fn ready_pod_ips(c: &kube::Client, app: &str) -> Vec<String> {
    let pods = Api::<Pod>::namespaced(c.clone(), NS)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    let mut ips: Vec<String> = pods
        .items
        .iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    ips.sort();
    ips
}

fn dig_short(server: SocketAddr, name: &str, qtype: &str) -> Vec<String> {
    let out = Command::new("dig")
        .args([
            &format!("@{}", server.ip()),
            "-p",
            &server.port().to_string(),
            "+short",
            "+tcp",
            name,
            qtype,
        ])
        .output()
        .expect("dig");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// The query mix: for every service its A and named SRV, the headless services'
/// A, SRV and per-endpoint names, the version TXT, and names and types that do not
/// exist (NXDOMAIN, NODATA).
fn queries(services: usize, endpoint_names: &[String]) -> String {
    let mut q = String::new();
    for i in 0..services {
        q.push_str(&format!("svc-{i}.{NS}.svc.clusterset.local A\n"));
        q.push_str(&format!(
            "_http._tcp.svc-{i}.{NS}.svc.clusterset.local SRV\n"
        ));
        if i % 10 == 0 {
            q.push_str(&format!("nope-{i}.{NS}.svc.clusterset.local A\n"));
            q.push_str(&format!("svc-{i}.{NS}.svc.clusterset.local AAAA\n"));
            q.push_str("headless.default.svc.clusterset.local A\n");
            q.push_str("headless.default.svc.clusterset.local SRV\n");
            q.push_str("dns-version.clusterset.local TXT\n");
        }
    }
    for n in endpoint_names {
        q.push_str(&format!("{n} A\n"));
    }
    q
}

struct Perf {
    qps: f64,
    codes: String,
    lost: String,
}

/// dnsperf's report of `secs` seconds of the query file against `server`.
fn dnsperf(server: SocketAddr, file: &std::path::Path, secs: u32, extra: &[&str]) -> String {
    let (ip, port, secs) = (
        server.ip().to_string(),
        server.port().to_string(),
        secs.to_string(),
    );
    let out = Command::new("dnsperf")
        .args([
            "-s",
            &ip,
            "-p",
            &port,
            "-d",
            file.to_str().unwrap(),
            "-l",
            &secs,
        ])
        .args(extra)
        .output()
        .expect("dnsperf (apt-get install dnsperf; `make bench` does)");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// dnsperf at full speed: 4 clients, 200 queries outstanding.
fn throughput(server: SocketAddr, file: &std::path::Path, secs: u32) -> Perf {
    let text = dnsperf(server, file, secs, &["-c", "4", "-q", "200"]);
    let field = |key: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(key))
            .map(|l| l.trim_start()[key.len()..].trim().to_string())
            .unwrap_or_default()
    };
    Perf {
        qps: field("Queries per second:").parse().unwrap_or(0.0),
        codes: field("Response codes:"),
        lost: field("Queries lost:"),
    }
}

/// Latency percentiles (p50, p99, p99.9) at a fixed query rate, from dnsperf's
/// per-query report.
fn latency(server: SocketAddr, file: &std::path::Path, qps: u32, secs: u32) -> (f64, f64, f64) {
    let text = dnsperf(server, file, secs, &["-Q", &qps.to_string(), "-v"]);
    // "> NOERROR name A 0.000123"
    let mut seconds: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("> "))
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect();
    seconds.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |p: f64| {
        if seconds.is_empty() {
            return f64::NAN;
        }
        seconds[((seconds.len() - 1) as f64 * p).round() as usize] * 1000.0
    };
    (at(0.50), at(0.99), at(0.999))
}

/// Time from a ServiceExport created in member-1 to member-2's DNS server answering
/// the service's A record, one export at a time.
async fn export_to_answer(m1: &kube::Client, dns: &Dns, n: usize) {
    let mut times = Vec::new();
    for i in 0..n {
        let name = format!("late-{i}");
        let started = Instant::now();
        export(m1, &name, false, "app").await;
        let qname =
            hickory_proto::rr::Name::from_ascii(format!("{name}.{NS}.svc.clusterset.local."))
                .unwrap();
        loop {
            let answered = !dns
                .zone
                .read()
                .resolve(&qname, hickory_proto::rr::RecordType::A)
                .answers
                .is_empty();
            if answered {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{name} never answered"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(started.elapsed());
    }
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "  Service + ServiceExport created in member-1 -> A answered by member-2's DNS ({n} exports, one at a time): p50 {:.1} ms, p99 {:.1} ms",
        at(0.5),
        at(0.99)
    );
}

type Percentiles = Option<(f64, f64, f64)>;

fn report(phase: &str, knot: &Perf, knot_lat: Percentiles, ours: &Perf, ours_lat: Percentiles) {
    println!("  {phase}:");
    for (who, perf, lat) in [("knot", knot, knot_lat), ("clusterset dns", ours, ours_lat)] {
        let lat = lat.map_or(String::new(), |(p50, p99, p999)| {
            format!("  at 10,000 q/s: p50 {p50:.3} ms, p99 {p99:.3} ms, p99.9 {p999:.3} ms")
        });
        println!(
            "    {who:<15} {:>8.0} q/s{lat}  (lost {}; {})",
            perf.qps, perf.lost, perf.codes
        );
    }
    println!(
        "    clusterset dns / knot throughput: {:.2}",
        ours.qps / knot.qps
    );
}

/// Flips the readiness of `churn`'s pods one at a time, every 50 ms, until aborted.
async fn flip_readiness(pods: Api<Pod>) {
    let names: Vec<String> = pods
        .list(&ListParams::default().labels("app=churn"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    for flips in 0usize.. {
        let name = &names[flips % names.len()];
        let ready = if (flips / names.len()).is_multiple_of(2) {
            "false"
        } else {
            "true"
        };
        let patch = json!({"metadata": {"annotations": {"clusterset.io/ready": ready}}});
        let _ = pods
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Knot DNS serving `zone_text` on a free port; killed on drop.
struct Knot(std::process::Child, SocketAddr);

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn knot(dir: &std::path::Path, zone_text: &str) -> Knot {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let zone = dir.join("clusterset.local.zone");
    std::fs::write(&zone, zone_text).unwrap();
    let conf = dir.join("knot.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n    listen: 127.0.0.1@{port}\n    rundir: {d}\ndatabase:\n    storage: {d}\n\
             log:\n  - target: stderr\n    any: warning\n\
             zone:\n  - domain: clusterset.local\n    file: {z}\n    storage: {d}\n    zonefile-load: whole\n    journal-content: none\n",
            d = dir.display(),
            z = zone.display()
        ),
    )
    .unwrap();
    let child = Command::new("knotd")
        .args(["-c", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .expect("knotd (apt-get install knot; `make bench` does)");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let started = Instant::now();
    while dig_short(addr, "dns-version.clusterset.local", "TXT").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "knotd did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Knot(child, addr)
}

#[tokio::main]
async fn main() {
    let services: usize = std::env::var("BENCH_DNS_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let secs: u32 = std::env::var("BENCH_DNS_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let local = LocalClusterset::up(&UpOptions {
        members: 2,
        dir: dir.path().join("cs"),
        data_dir: None,
        ip_family: IpFamily::Ipv4,
        upstream_crds: None,
        controllers: Default::default(),
    })
    .await
    .unwrap();
    let m1 = local.cluster("member-1").unwrap().server.client();
    let m2 = local.cluster("member-2").unwrap().server.client();
    deployment(&m1, "app", 3).await;
    deployment(&m1, "headless", 20).await;
    deployment(&m1, "churn", 20).await;
    for i in 0..services {
        export(&m1, &format!("svc-{i}"), false, "app").await;
    }
    export(&m1, "headless", true, "headless").await;
    export(&m1, "churn", true, "churn").await;
    let dns = Dns::start(
        m2,
        "127.0.0.1:0".parse().unwrap(),
        clusterset::dns::DEFAULT_TTL,
        2,
    )
    .await
    .unwrap();
    let started = Instant::now();
    loop {
        let loaded = {
            let zone = dns.zone.read();
            zone.services() == services + 2 && zone.endpoints() >= 3 * services + 40
        };
        if loaded {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "imports did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let zone_text = dns.zone.read().master_file();
    let endpoint_names: Vec<String> = zone_text
        .lines()
        .filter(|l| l.contains(".member-1.headless.") && l.contains(" IN A "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    let query_file = dir.path().join("queries.txt");
    std::fs::File::create(&query_file)
        .unwrap()
        .write_all(queries(services, &endpoint_names).as_bytes())
        .unwrap();
    let knot = knot(dir.path(), &zone_text);
    println!(
        "DNS: {} services ({} records in the zone), query mix of {} names; dnsperf -c 4 -q 200 for {secs} s, then -Q 10000",
        services + 2,
        zone_text.lines().count(),
        std::fs::read_to_string(&query_file).unwrap().lines().count()
    );
    // Same answers from both, for a sample.
    for (name, t) in [
        ("svc-1.default.svc.clusterset.local", "A"),
        ("headless.default.svc.clusterset.local", "SRV"),
    ] {
        assert_eq!(
            dig_short(dns.addr, name, t),
            dig_short(knot.1, name, t),
            "{name} {t}"
        );
    }
    let run = |addr: SocketAddr, with_latency: bool| {
        let file = query_file.clone();
        tokio::task::spawn_blocking(move || {
            let perf = throughput(addr, &file, secs);
            let lat = with_latency.then(|| latency(addr, &file, 10_000, 5));
            (perf, lat)
        })
    };
    // A quiet machine: throughput, then latency at a fixed rate.
    let (k, k_lat) = run(knot.1, true).await.unwrap();
    let (ours, o_lat) = run(dns.addr, true).await.unwrap();
    report("quiet", &k, k_lat, &ours, o_lat);
    // Readiness flips under load, for both servers alike (the API servers and
    // controllers working on them share the cores): every 50 ms one pod of `churn`.
    let churn = tokio::spawn(flip_readiness(Api::<Pod>::namespaced(m1.clone(), NS)));
    let (k, _) = run(knot.1, false).await.unwrap();
    let (ours, _) = run(dns.addr, false).await.unwrap();
    churn.abort();
    report("imports changing", &k, None, &ours, None);
    drop(knot);
    // After the churn, the headless answer must be exactly the ready pods.
    let want = ready_pod_ips(&m1, "churn").await;
    let settled = Instant::now();
    loop {
        let got = dig_short(dns.addr, "churn.default.svc.clusterset.local", "A");
        if got == want {
            break;
        }
        assert!(
            settled.elapsed() < Duration::from_secs(10),
            "churn answer {got:?} != ready pods {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "  after the readiness flips, churn's answer is exactly its {} ready pods",
        want.len()
    );
    export_to_answer(&m1, &dns, 50).await;
    drop(dns);
    drop(local);
}
