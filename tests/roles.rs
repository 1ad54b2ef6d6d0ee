//! `clusterset hub` and `clusterset agent` as the processes a real deployment runs:
//! kubeconfig flags, pull and push mode, the clusterset-wide VIP option, probes and
//! metrics, and a clean stop on SIGTERM.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clusterset::api::multicluster::ServiceImport;
use clusterset::apiserver::SimConfig;
use common::{eventually, free_port, TestServer};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);

async fn create(client: &kube::Client, object: serde_json::Value) {
    let obj: kube::api::DynamicObject = serde_json::from_value(object.clone()).unwrap();
    let gvk = kube::api::GroupVersionKind::try_from(obj.types.as_ref().unwrap()).unwrap();
    let (ar, caps) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
    let api: Api<kube::api::DynamicObject> = match (caps.scope, obj.metadata.namespace.as_deref()) {
        (kube::discovery::Scope::Namespaced, Some(ns)) => {
            Api::namespaced_with(client.clone(), ns, &ar)
        }
        _ => Api::all_with(client.clone(), &ar),
    };
    api.create(&PostParams::default(), &obj).await.unwrap();
}

async fn namespaces(client: &kube::Client, names: &[&str]) {
    for name in names {
        create(
            client,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        )
        .await;
    }
}

async fn cluster(sim: bool) -> TestServer {
    let t = if sim {
        TestServer::simulated(SimConfig::default()).await
    } else {
        TestServer::start().await
    };
    for crd in clusterset::api::crds() {
        create(&t.client, serde_json::to_value(crd).unwrap()).await;
    }
    t
}

struct Role(Child);

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn spawn(args: &[&str]) -> Role {
    let child = Command::new(env!("CARGO_BIN_EXE_clusterset"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Role(child)
}

/// `clusterset agent` for `member` (cluster ID `id`) in pull mode.
fn agent(member: &TestServer, id: &str, hub_kubeconfig: &std::path::Path, port: u16) -> Role {
    spawn(&[
        "agent",
        "--kubeconfig",
        member.kubeconfig().to_str().unwrap(),
        "--cluster-id",
        id,
        "--hub-kubeconfig",
        hub_kubeconfig.to_str().unwrap(),
        "--probe-listen",
        &format!("127.0.0.1:{port}"),
    ])
}

async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, out.split_once("\r\n\r\n")?.1.to_string()))
}

/// Sends SIGTERM and waits for a clean exit; returns what the role logged.
async fn terminate(mut role: Role) -> String {
    let pid = role.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = eventually("the role to exit after SIGTERM", WAIT, || {
        let s = role.0.try_wait().unwrap();
        async move { s }
    })
    .await;
    let mut log = String::new();
    std::io::Read::read_to_string(role.0.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(status.success(), "exit {status:?}: {log}");
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_and_agents_as_processes_pull_and_push() {
    let hub = cluster(false).await;
    let east = cluster(true).await;
    let west = cluster(true).await;
    namespaces(
        &hub.client,
        &["clusterset-imports", "clusterset-system", "clusterset-east"],
    )
    .await;
    // west is a push-mode member: its ID comes from its ClusterProperty, its kubeconfig
    // from a Secret; the hub makes its hub namespace.
    create(
        &west.client,
        json!({"apiVersion": "about.k8s.io/v1beta1", "kind": "ClusterProperty",
        "metadata": {"name": "cluster.clusterset.k8s.io"}, "spec": {"value": "west"}}),
    )
    .await;
    create(&hub.client, json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "west", "namespace": "clusterset-system", "labels": {"mcs.clusterset.io/member-kubeconfig": "true"}},
        "stringData": {"kubeconfig": west.server.kubeconfig_yaml("west")}})).await;
    for c in [&east, &west] {
        namespaces(&c.client, &["demo"]).await;
    }

    let (hub_port, agent_port) = (free_port(), free_port());
    let hub_kc = hub.kubeconfig();
    let hub_role = spawn(&[
        "hub",
        "--hub-kubeconfig",
        hub_kc.to_str().unwrap(),
        "--push",
        "--clusterset-ip-cidr",
        "10.250.0.0/24",
        "--probe-listen",
        &format!("127.0.0.1:{hub_port}"),
    ]);
    let agent_role = agent(&east, "east", &hub_kc, agent_port);
    for port in [hub_port, agent_port] {
        eventually("the role to report ready", WAIT, || async move {
            get(port, "/readyz").await.filter(|(code, _)| *code == 200)
        })
        .await;
        assert_eq!(get(port, "/healthz").await.unwrap().0, 200);
    }

    // A user exports web in east with kubectl.
    east.export_deployment("demo", "web", 2);

    // Both members import it with the hub's clusterset-wide VIP.
    for (name, member) in [("east", &east), ("west", &west)] {
        let imports: Api<ServiceImport> = Api::namespaced(member.client.clone(), "demo");
        let import = eventually(&format!("{name} imports web with its VIP"), WAIT, || {
            let imports = imports.clone();
            async move {
                imports.get_opt("web").await.unwrap().filter(|i| {
                    let ready = i
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
                    ready.is_some_and(|c| c.status == "True")
                })
            }
        })
        .await;
        assert_eq!(
            import.spec.ips,
            vec!["10.250.0.2"],
            "one VIP for the whole clusterset"
        );
        let clusters: Vec<String> = import
            .status
            .unwrap()
            .clusters
            .into_iter()
            .map(|c| c.cluster)
            .collect();
        assert_eq!(clusters, vec!["east"]);
        // The derived Service still exists for local routing.
        let derived = clusterset::mcs::imports::derived_name("demo", "web");
        assert!(Api::<Service>::namespaced(member.client.clone(), "demo")
            .get_opt(&derived)
            .await
            .unwrap()
            .is_some());
    }
    let got = east.kubectl_ok(&[
        "-n",
        "demo",
        "get",
        "serviceexport",
        "web",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}",
    ]);
    assert_eq!(got, "Exported");

    let (_, hub_metrics) = get(hub_port, "/metrics").await.unwrap();
    assert!(
        hub_metrics.contains("clusterset_hub_imports 1"),
        "{hub_metrics}"
    );
    assert!(
        hub_metrics.contains("clusterset_hub_reconciles_total{controller=\"hub\",result=\"ok\"}"),
        "{hub_metrics}"
    );
    let (_, agent_metrics) = get(agent_port, "/metrics").await.unwrap();
    assert!(
        agent_metrics.contains("clusterset_agent_exports 1"),
        "{agent_metrics}"
    );
    assert!(
        agent_metrics.contains("clusterset_agent_propagation_seconds_count 1"),
        "{agent_metrics}"
    );

    // Unexport: the VIP goes back and the imports go everywhere.
    east.kubectl_ok(&["-n", "demo", "delete", "serviceexport", "web"]);
    for member in [&east, &west] {
        let imports: Api<ServiceImport> = Api::namespaced(member.client.clone(), "demo");
        eventually("the import to go", WAIT, || {
            let imports = imports.clone();
            async move {
                imports
                    .get_opt("web")
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            }
        })
        .await;
    }

    let log = terminate(agent_role).await;
    assert!(
        log.contains("SIGTERM received") && log.contains("stopped"),
        "{log}"
    );
    let log = terminate(hub_role).await;
    assert!(log.contains("push mode: member enrolled"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_without_a_cluster_id_says_what_is_missing() {
    let hub = cluster(false).await;
    let member = cluster(false).await;
    let out = Command::new(env!("CARGO_BIN_EXE_clusterset"))
        .args([
            "agent",
            "--kubeconfig",
            member.kubeconfig().to_str().unwrap(),
            "--hub-kubeconfig",
            hub.kubeconfig().to_str().unwrap(),
            "--probe-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no ClusterProperty cluster.clusterset.k8s.io"),
        "{stderr}"
    );
}

/// An IPv4-only member cannot give an IPv6-only import a ClusterSetIP: its import
/// says so (`Ready=False/IPFamilyNotSupported`) while the IPv6 member's is Ready.
#[tokio::test(flavor = "multi_thread")]
async fn an_import_of_a_family_the_member_lacks_is_not_ready() {
    use clusterset::mcs::{agent::Agent, hub::Hub, metrics::Metrics};
    let hub = cluster(false).await;
    let six = TestServer::with_config(clusterset::apiserver::Config {
        service_cidrs: vec!["fd00:100::/112".parse().unwrap()],
        simulate: Some(SimConfig {
            pod_cidrs: vec!["fd00:10::/64".parse().unwrap()],
            ..SimConfig::default()
        }),
        ..clusterset::apiserver::Config::default()
    })
    .await;
    for crd in clusterset::api::crds() {
        create(&six.client, serde_json::to_value(crd).unwrap()).await;
    }
    let four = cluster(true).await;
    namespaces(
        &hub.client,
        &["clusterset-imports", "clusterset-six", "clusterset-four"],
    )
    .await;
    let tasks = [
        tokio::spawn(Hub::new(hub.client.clone(), Metrics::new("hub"), &[]).run(2)),
        tokio::spawn(
            Agent::new(
                six.client.clone(),
                hub.client.clone(),
                "six".into(),
                Metrics::new("agent"),
            )
            .run(2),
        ),
        tokio::spawn(
            Agent::new(
                four.client.clone(),
                hub.client.clone(),
                "four".into(),
                Metrics::new("agent"),
            )
            .run(2),
        ),
    ];
    for c in [&six, &four] {
        namespaces(&c.client, &["demo"]).await;
    }
    create(&six.client, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"ports": [{"port": 80}]}})).await;
    create(
        &six.client,
        json!({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
        "metadata": {"name": "web", "namespace": "demo"}}),
    )
    .await;
    for (member, status, reason) in [
        (&six, "True", "Ready"),
        (&four, "False", "IPFamilyNotSupported"),
    ] {
        let imports: Api<ServiceImport> = Api::namespaced(member.client.clone(), "demo");
        let message = eventually(&format!("import Ready={status}/{reason}"), WAIT, || {
            let imports = imports.clone();
            async move {
                let i = imports.get_opt("web").await.unwrap()?;
                let c = i
                    .status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == "Ready")?;
                (c.status == status && c.reason == reason).then_some(c.message)
            }
        })
        .await;
        if reason == "IPFamilyNotSupported" {
            assert!(message.contains("IPv6"), "{message}");
            let import = imports.get("web").await.unwrap();
            assert_eq!(import.spec.ip_families, vec!["IPv6"]);
            assert!(import.spec.ips.is_empty());
        }
    }
    tasks.iter().for_each(|t| t.abort());
}

/// `clusterset dns` as its own process: flags, answers with the TTL asked for, probes,
/// query metrics, and a clean stop on SIGTERM.
#[tokio::test(flavor = "multi_thread")]
async fn dns_as_a_process_answers_and_stops_on_sigterm() {
    let member = cluster(false).await;
    create(
        &member.client,
        json!({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "ClusterSetIP", "ips": ["10.96.7.7"], "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}}),
    )
    .await;
    let (dns_port, probe_port) = (free_port(), free_port());
    let kubeconfig = member.kubeconfig();
    let role = spawn(&[
        "dns",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{dns_port}"),
        "--ttl",
        "30",
        "--probe-listen",
        &format!("127.0.0.1:{probe_port}"),
    ]);
    eventually("dns ready", WAIT, || async {
        get(probe_port, "/readyz")
            .await
            .filter(|(code, _)| *code == 200)
    })
    .await;
    let dig = |name: &str| {
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &dns_port.to_string(),
                "+noall",
                "+answer",
                name,
                "A",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        dig("web.default.svc.clusterset.local."),
        "web.default.svc.clusterset.local. 30 IN A 10.96.7.7"
    );
    let (_, metrics) = get(probe_port, "/metrics").await.unwrap();
    assert!(
        metrics.contains(r#"clusterset_dns_queries_total{rcode="NOERROR",type="A"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("clusterset_dns_services 1"), "{metrics}");
    let log = terminate(role).await;
    assert!(log.contains("serving clusterset.local"), "{log}");
}

/// Every import failing at once (here: the member lost the ServiceImport CRD) is
/// retried every few seconds; the agent's log says so in a few lines instead of one
/// warning per retry, and says when it is over.
#[tokio::test(flavor = "multi_thread")]
async fn failing_reconciles_are_logged_without_a_flood() {
    const SERVICES: usize = 30;
    let hub = cluster(false).await;
    let east = cluster(false).await;
    namespaces(&hub.client, &["clusterset-imports", "clusterset-east"]).await;
    namespaces(&east.client, &["demo"]).await;
    for i in 0..SERVICES {
        let name = format!("s{i}");
        create(
            &east.client,
            json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "demo"},
            "spec": {"ports": [{"port": 80}]}}),
        )
        .await;
        create(
            &east.client,
            json!({"apiVersion": "multicluster.x-k8s.io/v1beta1",
            "kind": "ServiceExport", "metadata": {"name": name, "namespace": "demo"}}),
        )
        .await;
    }
    let hub_kc = hub.kubeconfig();
    let _hub_role = spawn(&[
        "hub",
        "--hub-kubeconfig",
        hub_kc.to_str().unwrap(),
        "--probe-listen",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    let agent_port = free_port();
    let agent_role = agent(&east, "east", &hub_kc, agent_port);
    let imports: Api<ServiceImport> = Api::namespaced(east.client.clone(), "demo");
    let imported = |want: usize| {
        let imports = imports.clone();
        async move {
            let n = imports.list(&Default::default()).await.ok()?.items.len();
            (n == want).then_some(())
        }
    };
    eventually("every service imported", WAIT, || imported(SERVICES)).await;

    east.kubectl_ok(&["delete", "crd", "serviceimports.multicluster.x-k8s.io"]);
    // Enough failed retries that one warning each would be a flood.
    eventually(
        "the agent to retry every import many times",
        WAIT,
        || async move {
            let (_, metrics) = get(agent_port, "/metrics").await?;
            let errors: usize = metrics
                .lines()
                .find(|l| {
                    l.starts_with(
                        "clusterset_agent_reconciles_total{controller=\"import\",result=\"error\"}",
                    )
                })?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()?;
            let all_failing =
                metrics.contains(&format!("clusterset_agent_failing_keys {SERVICES}"));
            (errors >= 5 * SERVICES && all_failing).then_some(())
        },
    )
    .await;
    let crd = clusterset::api::crds()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some("serviceimports.multicluster.x-k8s.io"))
        .unwrap();
    create(&east.client, serde_json::to_value(crd).unwrap()).await;
    eventually("every import back", WAIT, || imported(SERVICES)).await;
    eventually("no key failing", WAIT, || async move {
        let (_, metrics) = get(agent_port, "/metrics").await?;
        metrics
            .contains("clusterset_agent_failing_keys 0")
            .then_some(())
    })
    .await;

    let log = terminate(agent_role).await;
    // The first keys warn on their own and the others are summed up. A key may warn
    // once more if it fails again after a success (a reconcile that ran before the
    // cache heard its import was deleted has nothing to write): a flood would be a
    // warning for each of the hundreds of failures.
    let limit = clusterset::runtime::failure_log::WARN_LIMIT;
    let warned = log.matches("reconcile failed; will retry").count();
    assert!(
        (limit..=2 * limit).contains(&warned),
        "{warned} warnings, not about {limit}:\n{log}"
    );
    assert!(
        log.contains("keys are failing;"),
        "the others are summed up:\n{log}"
    );
    let recoveries = log.matches("reconcile succeeds again").count();
    assert!(
        recoveries <= 2 * limit,
        "{recoveries} recoveries logged: a flapping key must not log each flip:\n{log}"
    );
    let had_failed: usize = log
        .split("every failing reconcile succeeds again (")
        .nth(1)
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no line saying every key recovered:\n{log}"));
    assert!(
        had_failed >= SERVICES,
        "{had_failed} keys had failed:\n{log}"
    );
}
