//! Profiling aid: 100,000 in-process creates and merge patches through the write pipeline.
use clusterset::apiserver::resources::{PatchKind, Subresource, WriteOptions};
use clusterset::apiserver::{ApiServer, Config};
use serde_json::json;

#[tokio::main]
async fn main() {
    let server = ApiServer::start(Config::default()).await.unwrap();
    let rt = server.state.registry.find_kind("", "ConfigMap").unwrap();
    let opts = WriteOptions {
        manager: "bench".into(),
        ..WriteOptions::default()
    };
    let started = std::time::Instant::now();
    for i in 0..50_000 {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("p-{i}")}, "data": {"key": "value"}});
        server.state.create(&rt, "default", obj, &opts).unwrap();
    }
    let created = started.elapsed();
    let started = std::time::Instant::now();
    for i in 0..50_000 {
        let patch = json!({"data": {"key": format!("v{i}")}});
        server
            .state
            .patch(
                &rt,
                "v1",
                "default",
                &format!("p-{i}"),
                PatchKind::Merge,
                &patch,
                Subresource::Main,
                &opts,
            )
            .unwrap();
    }
    println!(
        "create {:.1} us, patch {:.1} us",
        created.as_secs_f64() * 1e6 / 50_000.0,
        started.elapsed().as_secs_f64() * 1e6 / 50_000.0
    );
}
