//! Durability with --data-dir: acknowledged writes survive a restart and `kill -9`,
//! versions keep increasing, watches resume, and a damaged directory is refused.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clusterset::apiserver::{ApiServer, Config};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

fn durable(dir: &Path) -> Config {
    Config {
        data_dir: Some(dir.to_path_buf()),
        ..Config::default()
    }
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": name}})).unwrap()
}

#[tokio::test]
async fn objects_and_versions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start(durable(dir.path())).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    for i in 0..20 {
        api.create(&PostParams::default(), &cm(&format!("cm-{i}")))
            .await
            .unwrap();
    }
    api.delete("cm-0", &DeleteParams::default()).await.unwrap();
    let services: Api<Service> = Api::namespaced(server.client(), "default");
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .unwrap();
    let ip = services
        .create(&PostParams::default(), &svc)
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    let last_rv = server.state.store.current_rv();
    server.shutdown().await;

    let server = ApiServer::start(durable(dir.path())).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let names: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(names.len(), 19);
    assert!(!names.contains(&"cm-0".to_string()));
    assert_eq!(api.get("cm-7").await.unwrap().data.unwrap()["k"], "cm-7");
    let next = api
        .create(&PostParams::default(), &cm("after"))
        .await
        .unwrap();
    let rv: u64 = next.metadata.resource_version.unwrap().parse().unwrap();
    assert!(
        rv > last_rv,
        "resourceVersions keep increasing: {rv} > {last_rv}"
    );
    // The restored Service still holds its ClusterIP.
    let services: Api<Service> = Api::namespaced(server.client(), "default");
    let mut other = svc.clone();
    other.metadata.name = Some("other".into());
    let other_ip = services
        .create(&PostParams::default(), &other)
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    assert_ne!(other_ip, ip);
    server.shutdown().await;
}

#[tokio::test]
async fn watches_resume_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start(durable(dir.path())).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let rv = api
        .create(&PostParams::default(), &cm("a"))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    server.shutdown().await;

    let server = ApiServer::start(durable(dir.path())).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("b")),
        other => panic!("expected b's ADDED from the recovered history, got {other:?}"),
    }
    server.shutdown().await;
}

/// The real binary, so that it can be killed with SIGKILL.
struct Process {
    child: Child,
    kubeconfig: std::path::PathBuf,
}

fn start_binary(data: &Path, work: &Path) -> Result<Process, String> {
    let kubeconfig = work.join("kubeconfig");
    let _ = std::fs::remove_file(&kubeconfig);
    let mut child = Command::new(env!("CARGO_BIN_EXE_clusterset"))
        .args(["apiserver", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !kubeconfig.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return Err(format!("exited with {status}: {err}"));
        }
        assert!(Instant::now() < deadline, "the API server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Process { child, kubeconfig })
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut p = start_binary(data.path(), work.path()).unwrap();
    let mut manifests = String::new();
    for i in 0..50 {
        manifests.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}}}\ndata: {{i: \"{i}\"}}\n"));
    }
    common::kubectl_at_ok(&p.kubeconfig, &["apply", "-f", "-"], Some(&manifests));
    p.child.kill().unwrap(); // SIGKILL
    p.child.wait().unwrap();

    let mut p = start_binary(data.path(), work.path()).unwrap();
    let listed = common::kubectl_at_ok(&p.kubeconfig, &["get", "configmaps", "-o", "name"], None);
    for i in 0..50 {
        assert!(
            listed.contains(&format!("configmap/cm-{i}\n")),
            "cm-{i} is missing after kill -9 ({} listed):\n{listed}",
            listed.lines().count()
        );
    }
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

#[test]
fn a_damaged_data_directory_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("clusterset.db"),
        b"this is not a database, it is a half-written file",
    )
    .unwrap();
    let err = match start_binary(data.path(), work.path()) {
        Ok(mut p) => {
            p.child.kill().unwrap();
            panic!("a damaged data directory was opened");
        }
        Err(e) => e,
    };
    assert!(err.contains("clusterset.db"), "{err}");
    assert!(err.contains("cannot open the data directory"), "{err}");
}

/// The files as they stand the moment a write is acknowledged must already hold it:
/// a copy taken then is what a crash would leave.
#[tokio::test]
async fn every_acknowledged_write_is_on_disk_before_the_answer() {
    for round in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        let server = ApiServer::start(durable(dir.path())).await.unwrap();
        let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
        for i in 0..40 {
            api.create(&PostParams::default(), &cm(&format!("cm-{i}")))
                .await
                .unwrap();
        }
        let image = tempfile::tempdir().unwrap();
        for file in ["clusterset.db", "clusterset.db-wal"] {
            let _ = std::fs::copy(dir.path().join(file), image.path().join(file));
        }
        let (_journal, recovered) =
            clusterset::apiserver::journal::Journal::open(image.path(), 100).unwrap();
        let stored = recovered
            .objects
            .iter()
            .filter(|o| o.resource == "configmaps")
            .count();
        assert_eq!(
            stored, 40,
            "round {round}: acknowledged creates missing from the disk image"
        );
        server.shutdown().await;
    }
}
