//! `make bench`: figures for the embedded API server, printed for people to compare.
//!
//! - creates/s and updates/s over HTTP with concurrent kube-rs clients
//! - time to list 10,000 objects (one request, and in pages of 500)
//! - watch delivery latency with 100 concurrent watchers
//! - resident memory per 100,000 small objects against their JSON size
//!
//! Client and server share this process and the machine's cores, as on a laptop.

use std::sync::Arc;

use std::time::{Duration, Instant};

use clusterset::apiserver::resources::WriteOptions;
use clusterset::apiserver::{ApiServer, Config};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

const CONCURRENCY: usize = 64;

fn small(name: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": "bench"}}, "data": {"key": "value"}}),
    )
    .unwrap()
}

fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Runs `n` operations over `CONCURRENCY` tasks; returns the elapsed time.
async fn concurrently<F, Fut>(n: usize, op: F) -> Duration
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|w| {
            let op = op.clone();
            tokio::spawn(async move {
                for i in (w..n).step_by(CONCURRENCY) {
                    op(i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

/// Sends one request with a ready-made body and checks the status; the client does
/// no JSON work, so the figure is the server's.
async fn send(
    client: &kube::Client,
    method: &str,
    uri: String,
    content_type: &str,
    body: String,
    want: u16,
) {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body.into_bytes()))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), want);
    http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
}

/// Creates `n` ConfigMaps over HTTP; returns writes/s.
async fn create_rate(server: &ApiServer, n: usize, prefix: &str) -> f64 {
    let client = server.client();
    let collection = "/api/v1/namespaces/default/configmaps";
    let prefix = prefix.to_string();
    let took = concurrently(n, move |i| {
        let client = client.clone();
        let prefix = prefix.clone();
        async move {
            let body = format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{prefix}-{i}"}},"data":{{"key":"value"}}}}"#);
            send(&client, "POST", collection.to_string(), "application/json", body, 201).await;
        }
    })
    .await;
    per_second(n, took)
}

/// Durable writes (fsync before each answer, group commit) against in-memory ones.
async fn durability() {
    let n = 10_000;
    let memory = ApiServer::start(Config::default()).await.unwrap();
    let in_memory = create_rate(&memory, n, "m").await;
    memory.shutdown().await;
    let dir = tempfile::tempdir().unwrap();
    let durable = ApiServer::start(Config {
        data_dir: Some(dir.path().to_path_buf()),
        ..Config::default()
    })
    .await
    .unwrap();
    let on_disk = create_rate(&durable, n, "d").await;
    durable.shutdown().await;
    println!(
        "durable  {n} creates, {CONCURRENCY} clients: {on_disk:>8.0} writes/s with --data-dir, {in_memory:.0} in memory ({:.0}%)",
        100.0 * on_disk / in_memory
    );
}

/// Time from starting `clusterset local up` (the real binary, in its own process)
/// to its ready line, and that process's resident memory once idle.
async fn local_up() {
    use std::io::BufRead;
    let exe = std::env::current_exe().unwrap();
    let binary = exe
        .parent()
        .and_then(|p| p.parent())
        .unwrap()
        .join("clusterset");
    for members in ["3", "10"] {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let mut child = std::process::Command::new(&binary)
            .args(["local", "up", "--members", members, "--dir"])
            .arg(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("`cargo build --release` built the clusterset binary");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let took = started.elapsed();
        assert!(line.starts_with("clusterset ready"), "{line}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let rss_kib: f64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        println!(
            "local up {members:>2} members: ready in {:>6.1} ms (process start included); idle, it holds {:.1} MiB resident",
            took.as_secs_f64() * 1e3,
            rss_kib / 1024.0
        );
        let _ = std::process::Command::new(&binary)
            .args(["local", "down", "--dir"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .status();
        let _ = child.wait();
    }
}

async fn writes(server: &ApiServer) {
    let client = server.client();
    let n = 20_000;
    let collection = "/api/v1/namespaces/default/configmaps";
    let c = client.clone();
    let took = concurrently(n, move |i| {
        let client = c.clone();
        async move {
            let body = format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{i}","labels":{{"app":"bench"}}}},"data":{{"key":"value"}}}}"#);
            send(&client, "POST", collection.to_string(), "application/json", body, 201).await;
        }
    })
    .await;
    println!(
        "create   {n} ConfigMaps over HTTP, {CONCURRENCY} clients: {:>8.0} writes/s",
        per_second(n, took)
    );
    let c = client.clone();
    let took = concurrently(n, move |i| {
        let client = c.clone();
        async move {
            let body = format!(r#"{{"data":{{"key":"v{i}"}}}}"#);
            send(
                &client,
                "PATCH",
                format!("{collection}/cm-{i}"),
                "application/merge-patch+json",
                body,
                200,
            )
            .await;
        }
    })
    .await;
    println!(
        "update   {n} ConfigMaps (merge patch) over HTTP, {CONCURRENCY} clients: {:>8.0} writes/s",
        per_second(n, took)
    );
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let typed = 5_000;
    let took = concurrently(typed, move |i| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &small(&format!("typed-{i}")))
                .await
                .unwrap();
        }
    })
    .await;
    println!("create   {typed} ConfigMaps through kube-rs Api (client decoding included): {:>8.0} writes/s", per_second(typed, took));
}

async fn lists(server: &ApiServer) {
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let started = Instant::now();
    let all = api.list(&ListParams::default()).await.unwrap();
    let one = started.elapsed();
    let started = Instant::now();
    let mut lp = ListParams::default().limit(500);
    let mut count = 0;
    loop {
        let page = api.list(&lp).await.unwrap();
        count += page.items.len();
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    let paged = started.elapsed();
    println!(
        "list     {} objects in one request: {:>8.1} ms (kube-rs decode included)",
        all.items.len(),
        one.as_secs_f64() * 1e3
    );
    println!(
        "list     {count} objects in pages of 500: {:>8.1} ms",
        paged.as_secs_f64() * 1e3
    );
}

async fn watch_latency(server: &ApiServer) {
    let watchers = 100;
    let events = 200;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "watch");
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "watch"}})).unwrap();
    Api::all(server.client())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let origin = Instant::now();
    let rv = server.state.store.current_rv().to_string();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    for _ in 0..watchers {
        let mut stream = api
            .watch(&WatchParams::default(), &rv)
            .await
            .unwrap()
            .boxed();
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut seen = 0;
            while let Some(Ok(e)) = stream.next().await {
                if let WatchEvent::Added(cm) = e {
                    let sent: u64 = cm.data.unwrap()["sent"].parse().unwrap();
                    let now = origin.elapsed().as_nanos() as u64;
                    let _ = tx.send(Duration::from_nanos(now.saturating_sub(sent)));
                    seen += 1;
                    if seen == events {
                        break;
                    }
                }
            }
        });
    }
    drop(tx);
    for i in 0..events {
        let mut cm = small(&format!("w-{i}"));
        cm.data = Some(
            [(
                "sent".to_string(),
                (origin.elapsed().as_nanos() as u64).to_string(),
            )]
            .into(),
        );
        api.create(&PostParams::default(), &cm).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut latencies = Vec::new();
    while let Some(d) = rx.recv().await {
        latencies.push(d);
    }
    latencies.sort();
    println!(
        "watch    {} deliveries to {watchers} watchers: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (create request sent → event decoded)",
        latencies.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Memory held per stored object: written in-process so that client buffers do not count.
async fn memory() {
    let server = ApiServer::start(Config {
        history_limit: 1000,
        ..Config::default()
    })
    .await
    .unwrap();
    let rt = server.state.registry.find_kind("", "ConfigMap").unwrap();
    let n = 100_000;
    let before = resident_bytes();
    let mut json_bytes = 0;
    for i in 0..n {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "labels": {"app": "bench"}}, "data": {"key": "value"}});
        server
            .state
            .create(&rt, "default", obj, &WriteOptions::default())
            .unwrap();
    }
    for (_, stored) in server.state.store.list(&rt.gr(), Some("default"), None).1 {
        json_bytes += stored.json.len() as u64;
    }
    let grown = resident_bytes().saturating_sub(before);
    let started = Instant::now();
    let opts = WriteOptions {
        manager: "bench".into(),
        ..WriteOptions::default()
    };
    for i in 0..20_000 {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("pipe-{i}")}, "data": {"key": "value"}});
        server.state.create(&rt, "default", obj, &opts).unwrap();
    }
    println!(
        "pipeline 20000 creates in-process, one thread (no HTTP): {:>8.0} writes/s",
        per_second(20_000, started.elapsed())
    );
    println!(
        "memory   {n} small objects: {:.1} MiB resident for {:.1} MiB of JSON ({:.2}x, {} bytes/object)",
        grown as f64 / 1048576.0,
        json_bytes as f64 / 1048576.0,
        grown as f64 / json_bytes as f64,
        grown / n,
    );
    server.shutdown().await;
}

#[tokio::main]
async fn main() {
    println!(
        "clusterset apiserver benchmark ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    memory().await;
    local_up().await;
    durability().await;
    let server = ApiServer::start(Config::default()).await.unwrap();
    writes(&server).await;
    // Trim to 10,000 objects for the list figure: half the cm-* and all typed-*.
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let a = api.clone();
    concurrently(10_000, move |i| {
        let api = a.clone();
        async move {
            api.delete(&format!("cm-{}", i + 10_000), &Default::default())
                .await
                .unwrap();
            if i < 5_000 {
                api.delete(&format!("typed-{i}"), &Default::default())
                    .await
                    .unwrap();
            }
        }
    })
    .await;
    lists(&server).await;
    watch_latency(&server).await;
    server.shutdown().await;
}
