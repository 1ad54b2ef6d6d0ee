//! Membership and failure: clusters join with a bootstrap token and leave, the hub
//! approves, denies and admits one cluster per ID, members heart-beat, a dead member
//! loses its endpoints after the grace period and gets them back, a hub outage
//! changes nothing in the members, and every identity can do only its part.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clusterset::api::clusters::ManagedCluster;
use clusterset::api::multicluster::ServiceImport;
use clusterset::apiserver::SimConfig;
use clusterset::local::controllers::ControllerOptions;
use clusterset::local::{LocalClusterset, UpOptions};
use clusterset::membership::health::HealthConfig;
use common::{dig_short, eventually, free_port, kubectl_at, kubectl_at_ok, TestServer};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn clusterset(args: &[&str]) -> common::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_clusterset"))
        .args(args)
        .output()
        .unwrap();
    common::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    fn spawn(args: &[&str]) -> Process {
        let child = Command::new(env!("CARGO_BIN_EXE_clusterset"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Process(child)
    }

    /// Waits for the exit; its code, stdout and stderr.
    async fn finish(mut self) -> common::Output {
        let code = eventually("the command to finish", WAIT, || {
            let status = self.0.try_wait().unwrap();
            async move { status }
        })
        .await;
        let mut stdout = String::new();
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        std::io::Read::read_to_string(self.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        common::Output {
            code: code.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }
}

/// `GET path` on a probe port: (status, body).
fn probe(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, out.split_once("\r\n\r\n")?.1.to_string()))
}

/// A copy of `kubeconfig` presenting `token` instead of its user's credentials.
fn with_token(kubeconfig: &Path, token: &str, out: &Path) -> PathBuf {
    let mut doc: Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig).unwrap()).unwrap();
    doc["users"][0]["user"] = json!({"token": token});
    std::fs::write(out, serde_yaml::to_string(&doc).unwrap()).unwrap();
    out.to_path_buf()
}

/// A kubeconfig for the ServiceAccount `ns/name`, through `kubectl create token`.
fn account_kubeconfig(t: &TestServer, ns: &str, name: &str) -> PathBuf {
    let token = t.kubectl_ok(&["create", "token", name, "-n", ns]);
    with_token(
        &t.kubeconfig(),
        token.trim(),
        &t.dir.path().join(format!("{name}.kubeconfig")),
    )
}

fn install(t: &TestServer, paths: &[&str]) {
    for path in paths {
        t.kubectl_ok(&["apply", "-f", repo(path).to_str().unwrap()]);
    }
}

/// A member cluster with the CRDs and the member's roles, not yet joined.
async fn member_cluster(name: &str) -> TestServer {
    let t = TestServer::authenticating(Some(SimConfig {
        cluster_name: name.into(),
        ..SimConfig::default()
    }))
    .await;
    install(
        &t,
        &[
            "crds",
            "manifests/member/namespace.yaml",
            "manifests/member/rbac.yaml",
        ],
    );
    t
}

fn join_args<'a>(member: &'a TestServer, hub: &'a TestServer, token: &'a str) -> Vec<String> {
    [
        "join",
        "--kubeconfig",
        member.kubeconfig().to_str().unwrap(),
        "--hub-kubeconfig",
        hub.kubeconfig().to_str().unwrap(),
        "--token",
        token,
        "--timeout",
        "20s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn str_args(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The request for cluster `name`: its result and reason.
fn request_state(hub: &TestServer, name: &str) -> Option<String> {
    let out = hub.kubectl_ok(&[
        "get",
        "clusterregistrationrequests",
        "-o",
        "jsonpath={range .items[*]}{.spec.clusterName} {.status.result} {.status.reason}{\"\\n\"}{end}",
    ]);
    out.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .map(|l| l[name.len() + 1..].to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn clusters_join_by_hand_and_the_hub_admits_one_cluster_per_id() {
    let hub = TestServer::authenticating(None).await;
    install(
        &hub,
        &[
            "crds",
            "manifests/hub/namespaces.yaml",
            "manifests/hub/rbac.yaml",
        ],
    );
    // The hub controllers run under their own ServiceAccount and approve nothing alone.
    let hub_account = account_kubeconfig(&hub, "clusterset-system", "clusterset-hub");
    let hub_probes = free_port();
    let _hub_role = Process::spawn(&[
        "hub",
        "--hub-kubeconfig",
        hub_account.to_str().unwrap(),
        "--probe-listen",
        &format!("127.0.0.1:{hub_probes}"),
        "--grace-period",
        "3s",
        "--clusterset-name",
        "test-set",
        "--request-retention",
        "20s",
    ]);
    eventually("the hub role to be ready", WAIT, || async {
        probe(hub_probes, "/readyz").filter(|(c, _)| *c == 200)
    })
    .await;
    let hub_kc = hub.kubeconfig();
    let token = clusterset(&["token", "create", "--kubeconfig", hub_kc.to_str().unwrap()]);
    assert_eq!(token.code, 0, "{}", token.stderr);
    let token = token.stdout.trim().to_string();
    assert!(
        token.len() == 23 && token.as_bytes()[6] == b'.',
        "a kubeadm-style token: {token}"
    );

    // east files a request, which waits for an administrator.
    let east = member_cluster("east").await;
    let mut args = join_args(&east, &hub, &token);
    args.extend(["--name".into(), "east".into()]);
    let joining = Process::spawn(&str_args(&args));
    eventually("east's request to wait for approval", WAIT, || async {
        (request_state(&hub, "east").as_deref() == Some("Pending AwaitingApproval")).then_some(())
    })
    .await;
    let approve = clusterset(&["approve", "east", "--kubeconfig", hub_kc.to_str().unwrap()]);
    assert_eq!(approve.code, 0, "{}", approve.stderr);
    assert!(approve.stdout.contains("approved"), "{}", approve.stdout);
    let joined = joining.finish().await;
    assert_eq!(joined.code, 0, "{}", joined.stderr);
    assert!(
        joined.stdout.contains("joined as east"),
        "{}",
        joined.stdout
    );
    assert_eq!(
        request_state(&hub, "east").as_deref(),
        Some("Approved ApprovedByAdmin")
    );
    // The ID defaults to the kube-system UID; the clusterset's name is recorded.
    let uid = east.kubectl_ok(&["get", "ns", "kube-system", "-o", "jsonpath={.metadata.uid}"]);
    let properties = east.kubectl_ok(&[
        "get",
        "clusterproperties",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.spec.value} {end}",
    ]);
    assert!(
        properties.contains(&format!("cluster.clusterset.k8s.io={uid}"))
            && properties.contains("clusterset.k8s.io=test-set"),
        "{properties}"
    );
    let east_ns = clusterset::api::records::hub_namespace(&uid);
    hub.kubectl_ok(&["get", "managedcluster", "east", "-n", &east_ns]);

    // Joining again files nothing.
    let again = clusterset(&str_args(&args));
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("already a member as east"),
        "{}",
        again.stdout
    );
    let requests = hub.kubectl_ok(&["get", "clusterregistrationrequests", "-o", "name"]);
    assert_eq!(requests.lines().count(), 1, "{requests}");

    // The agent, under its ServiceAccount in east, takes the credentials up and
    // heart-beats: the ManagedCluster shows the cluster in columns.
    let agent_account = account_kubeconfig(&east, "clusterset-system", "clusterset-agent");
    let agent_probes = free_port();
    let _agent = Process::spawn(&[
        "agent",
        "--kubeconfig",
        agent_account.to_str().unwrap(),
        "--probe-listen",
        &format!("127.0.0.1:{agent_probes}"),
        "--heartbeat-interval",
        "200ms",
    ]);
    let table = eventually("east to be Ready with its nodes", WAIT, || async {
        let out = hub.kubectl_ok(&["get", "managedclusters", "-A"]);
        let row = out.lines().find(|l| l.contains(" east "))?.to_string();
        let cols: Vec<&str> = row.split_whitespace().collect();
        (cols.get(3) == Some(&"True") && cols.get(5) == Some(&"3")).then_some(out)
    })
    .await;
    // Once east heart-beats it holds its credentials: they leave the request.
    eventually("east's token to leave its request", WAIT, || async {
        let token = hub.kubectl_ok(&[
            "get",
            "clusterregistrationrequests",
            "-o",
            "jsonpath={.items[*].status.token}",
        ]);
        token.trim().is_empty().then_some(())
    })
    .await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "NAME",
            "CLUSTER",
            "ID",
            "READY",
            "VERSION",
            "NODES",
            "HEARTBEAT",
            "AGE"
        ]
    );
    assert!(table.contains("v1.33"), "{table}");
    let wide = hub.kubectl_ok(&[
        "get",
        "managedcluster",
        "east",
        "-n",
        &east_ns,
        "-o",
        "wide",
    ]);
    assert!(
        wide.contains("CPU") && wide.contains("12") && wide.contains("48Gi"),
        "{wide}"
    );

    // A second cluster claiming east's ID is denied, and says why.
    let west = member_cluster("west").await;
    west.apply_yaml(
        &json!({"apiVersion": "about.k8s.io/v1beta1", "kind": "ClusterProperty",
            "metadata": {"name": "cluster.clusterset.k8s.io"}, "spec": {"value": uid}})
        .to_string(),
        &[],
    );
    let mut args = join_args(&west, &hub, &token);
    args.extend(["--name".into(), "west".into()]);
    let denied = clusterset(&str_args(&args));
    assert_eq!(denied.code, 1, "{}", denied.stdout);
    assert!(
        denied.stderr.contains("ClusterIDInUse")
            && denied
                .stderr
                .contains(&format!("cluster ID {uid} is already used by member east")),
        "{}",
        denied.stderr
    );
    assert!(
        west.kubectl(&["get", "secret", "clusterset-hub", "-n", "clusterset-system"])
            .code
            != 0
    );

    // An administrator denies a request.
    let south = member_cluster("south").await;
    let mut args = join_args(&south, &hub, &token);
    args.extend(["--name".into(), "south".into()]);
    let joining = Process::spawn(&str_args(&args));
    eventually("south's request to wait", WAIT, || async {
        request_state(&hub, "south").filter(|s| s.starts_with("Pending"))
    })
    .await;
    let deny = clusterset(&[
        "deny",
        "south",
        "--reason",
        "south is not part of this clusterset",
        "--kubeconfig",
        hub_kc.to_str().unwrap(),
    ]);
    assert_eq!(deny.code, 0, "{}", deny.stderr);
    let refused = joining.finish().await;
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("DeniedByAdmin: south is not part of this clusterset"),
        "{}",
        refused.stderr
    );

    let (_, metrics) = probe(hub_probes, "/metrics").unwrap();
    for line in [
        "clusterset_registration_requests{result=\"Approved\"} 1",
        "clusterset_registration_requests{result=\"Denied\"} 2",
        "clusterset_members{ready=\"true\"} 1",
        "clusterset_registrar_reconciles_total{result=\"ok\"} ",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // east leaves: its ManagedCluster, requests and hub namespace go; so does its
    // membership property, and its agent stops being ready.
    let left = clusterset(&["leave", "--kubeconfig", east.kubeconfig().to_str().unwrap()]);
    assert_eq!(left.code, 0, "{}", left.stderr);
    assert!(left.stdout.contains("east"), "{}", left.stdout);
    eventually("east's hub namespace to be gone", WAIT, || async {
        (hub.kubectl(&["get", "ns", &east_ns]).code != 0).then_some(())
    })
    .await;
    assert!(hub
        .kubectl_ok(&["get", "managedclusters", "-A", "-o", "name"])
        .is_empty());
    assert!(request_state(&hub, "east").is_none());
    assert!(
        east.kubectl(&["get", "clusterproperty", "clusterset.k8s.io"])
            .code
            != 0
    );
    let (code, body) = eventually(
        "east's agent to report it is not a member",
        WAIT,
        || async { probe(agent_probes, "/readyz").filter(|(c, _)| *c != 200) },
    )
    .await;
    assert_eq!(code, 503);
    assert!(body.contains("not a member"), "{body}");
    // Answered requests go once kept for the retention period (20 s here).
    eventually(
        "the denied requests to expire",
        Duration::from_secs(60),
        || async {
            let left = hub.kubectl_ok(&["get", "clusterregistrationrequests", "-o", "name"]);
            left.trim().is_empty().then_some(())
        },
    )
    .await;
}

/// A local clusterset with fast heartbeats, so failures show within seconds.
struct Set {
    local: LocalClusterset,
    _dir: tempfile::TempDir,
}

impl Set {
    async fn up(members: usize, grace: Duration, damping: Duration) -> Set {
        let dir = tempfile::tempdir().unwrap();
        let opts = UpOptions {
            controllers: ControllerOptions {
                health: HealthConfig { grace, damping },
                heartbeat: Duration::from_millis(100),
            },
            ..UpOptions::new(members, dir.path().join("cs"))
        };
        let local = LocalClusterset::up(&opts).await.unwrap();
        Set { local, _dir: dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.local.kubeconfig_path()
    }

    fn kubectl(&self, cluster: &str, args: &[&str]) -> String {
        let mut all = vec!["--context", cluster];
        all.extend_from_slice(args);
        kubectl_at_ok(&self.kubeconfig(), &all, None)
    }

    fn client(&self, cluster: &str) -> kube::Client {
        self.local.cluster(cluster).unwrap().server.client()
    }

    /// A headless Service `name` with `replicas` pods, exported from `cluster`.
    fn export_headless(&self, cluster: &str, ns: &str, name: &str, replicas: u32) {
        let yaml = format!(
            r#"
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec: {{clusterIP: None, selector: {{app: {name}}}, ports: [{{name: http, port: 80}}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: c, image: nginx}}]}}
---
apiVersion: multicluster.x-k8s.io/v1beta1
kind: ServiceExport
metadata: {{name: {name}, namespace: {ns}}}
"#
        );
        kubectl_at_ok(
            &self.kubeconfig(),
            &["--context", cluster, "apply", "-f", "-"],
            Some(&yaml),
        );
    }

    fn dns(&self, member: &str) -> std::net::SocketAddr {
        self.local.dns_addr(member).unwrap()
    }

    async fn wait_answers(
        &self,
        member: &str,
        name: &str,
        what: &str,
        check: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let dns = self.dns(member);
        eventually(&format!("{member}: {name} {what}"), WAIT, || async {
            let answers = dig_short(dns, name);
            check(&answers).then_some(answers)
        })
        .await
    }

    fn hub_metrics(&self) -> String {
        let controllers = self.local.controllers.as_ref().unwrap();
        encode(&controllers.hub.metrics.registry)
    }

    /// What the member's agent serves on `/metrics`.
    fn member_metrics(&self, name: &str) -> String {
        let controllers = self.local.controllers.as_ref().unwrap();
        let (_, member) = controllers.members.iter().find(|(n, _)| n == name).unwrap();
        encode(&member.metrics.registry)
    }

    async fn managed_cluster(&self, name: &str) -> ManagedCluster {
        Api::<ManagedCluster>::namespaced(self.client("hub"), &format!("clusterset-{name}"))
            .get(name)
            .await
            .unwrap()
    }

    async fn ready_condition(&self, name: &str) -> (String, String) {
        let cluster = self.managed_cluster(name).await;
        let status = cluster.status.unwrap_or_default();
        status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| (c.status.clone(), c.reason.clone()))
            .unwrap_or_default()
    }
}

fn encode(registry: &prometheus::Registry) -> String {
    prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap()
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Addresses from member-i's pod range (10.i.0.0/16).
fn from_member(answers: &[String], i: u32) -> usize {
    answers
        .iter()
        .filter(|a| a.starts_with(&format!("10.{i}.")))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn local_members_join_through_the_registration_flow_with_least_privilege() {
    let set = Set::up(2, Duration::from_secs(30), Duration::from_secs(10)).await;
    // local up joined its members with a bootstrap token; the hub approved them.
    let requests = set.kubectl("hub", &["get", "clusterregistrationrequests"]);
    for member in ["member-1", "member-2"] {
        let row = requests
            .lines()
            .find(|l| l.contains(&format!(" {member} ")))
            .unwrap_or_else(|| panic!("{requests}"));
        assert!(
            row.contains("Approved") && row.contains("AutoApproved"),
            "{row}"
        );
    }
    let clusters = eventually("both members Ready with their nodes", WAIT, || async {
        let out = set.kubectl("hub", &["get", "managedclusters", "-A"]);
        let ready = out
            .lines()
            .filter(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.get(3) == Some(&"True") && cols.get(5) == Some(&"3")
            })
            .count();
        (ready == 2).then_some(out)
    })
    .await;
    assert!(
        clusters.contains("clusterset-member-1   member-1   member-1"),
        "{clusters}"
    );
    let property = set.kubectl(
        "member-1",
        &[
            "get",
            "clusterproperty",
            "clusterset.k8s.io",
            "-o",
            "jsonpath={.spec.value}",
        ],
    );
    assert_eq!(property, "local");

    // The member's hub identity, as join kept it in the member.
    let secret = Api::<Secret>::namespaced(set.client("member-1"), "clusterset-system")
        .get("clusterset-hub")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    let member_kc = set._dir.path().join("member-1-hub.kubeconfig");
    std::fs::write(&member_kc, &data["kubeconfig"].0).unwrap();
    let as_member = |args: &[&str]| kubectl_at(&member_kc, args, None);
    let forbidden = |args: &[&str], what: &str| {
        let out = as_member(args);
        assert_ne!(out.code, 0, "{args:?} must be refused: {}", out.stdout);
        assert!(
            out.stderr.to_lowercase().contains("forbidden") && out.stderr.contains(what),
            "{args:?}: {}",
            out.stderr
        );
    };
    // Its own corner: its records, its Lease and ManagedCluster; the shared imports.
    assert_eq!(
        as_member(&["get", "exportrecords", "-n", "clusterset-member-1"]).code,
        0
    );
    assert_eq!(
        as_member(&["get", "importrecords", "-n", "clusterset-imports"]).code,
        0
    );
    assert_eq!(
        as_member(&[
            "get",
            "managedcluster",
            "member-1",
            "-n",
            "clusterset-member-1"
        ])
        .code,
        0
    );
    // Nothing else.
    forbidden(
        &["get", "secrets", "-n", "clusterset-member-1"],
        "cannot list resource \"secrets\"",
    );
    forbidden(
        &["get", "secrets", "-A"],
        "cannot list resource \"secrets\"",
    );
    forbidden(
        &["get", "exportrecords", "-n", "clusterset-member-2"],
        "clusterset-member-2",
    );
    let foreign = json!({"apiVersion": "mcs.clusterset.io/v1alpha1", "kind": "ExportRecord",
        "metadata": {"name": "demo.web", "namespace": "clusterset-member-2"},
        "spec": {"cluster": "member-2", "namespace": "demo", "service": "web", "created": "2026-01-01T00:00:00Z",
                 "exported": {"type": "ClusterSetIP", "ports": [], "ipFamilies": ["IPv4"]}}});
    let out = kubectl_at(
        &member_kc,
        &["create", "-f", "-"],
        Some(&foreign.to_string()),
    );
    assert!(
        out.stderr.contains("Forbidden")
            && out
                .stderr
                .contains("cannot create resource \"exportrecords\""),
        "{}",
        out.stderr
    );
    forbidden(
        &[
            "delete",
            "managedcluster",
            "member-2",
            "-n",
            "clusterset-member-2",
        ],
        "cannot delete",
    );
    let forged = json!({"apiVersion": "mcs.clusterset.io/v1alpha1", "kind": "ImportRecord",
        "metadata": {"name": "demo.forged", "namespace": "clusterset-imports"},
        "spec": {"namespace": "demo", "service": "forged", "clusters": [], "verdicts": {},
                 "import": {"type": "ClusterSetIP", "ports": [], "ipFamilies": ["IPv4"]}}});
    let out = kubectl_at(
        &member_kc,
        &["create", "-f", "-"],
        Some(&forged.to_string()),
    );
    assert!(
        out.stderr
            .contains("cannot create resource \"importrecords\""),
        "{}",
        out.stderr
    );
    forbidden(&["get", "clusterregistrationrequests"], "cannot list");
    // It may renew its own token, never mint another member's.
    assert_eq!(
        as_member(&[
            "create",
            "token",
            "clusterset-agent",
            "-n",
            "clusterset-member-1"
        ])
        .code,
        0
    );
    forbidden(
        &[
            "create",
            "token",
            "clusterset-agent",
            "-n",
            "clusterset-member-2",
        ],
        "cannot create resource \"serviceaccounts/token\"",
    );
    forbidden(
        &["create", "token", "default", "-n", "clusterset-member-1"],
        "cannot create resource \"serviceaccounts/token\"",
    );
    forbidden(
        &["create", "namespace", "mine"],
        "cannot create resource \"namespaces\"",
    );

    // A wrong token and an expired bootstrap token get 401.
    let wrong = with_token(
        &member_kc,
        "csa.bm90.aGVsbG8",
        &set._dir.path().join("wrong.kubeconfig"),
    );
    let out = kubectl_at(
        &wrong,
        &["get", "importrecords", "-n", "clusterset-imports"],
        None,
    );
    assert!(out.stderr.contains("Unauthorized"), "{}", out.stderr);
    let expired = json!({"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
        "stringData": {"token-id": "abcdef", "token-secret": "0123456789abcdef",
            "usage-bootstrap-authentication": "true", "auth-extra-groups": "system:bootstrappers:clusterset",
            "expiration": "2020-01-01T00:00:00Z"}});
    kubectl_at_ok(
        &set.kubeconfig(),
        &["--context", "hub", "create", "-f", "-"],
        Some(&expired.to_string()),
    );
    let old = with_token(
        &member_kc,
        "abcdef.0123456789abcdef",
        &set._dir.path().join("old.kubeconfig"),
    );
    let out = kubectl_at(&old, &["get", "clusterregistrationrequest", "x"], None);
    assert!(out.stderr.contains("Unauthorized"), "{}", out.stderr);
    // A valid bootstrap token may file a request and read it back, nothing more.
    let token = clusterset(&[
        "token",
        "create",
        "--kubeconfig",
        set.kubeconfig().to_str().unwrap(),
        "--context",
        "hub",
    ]);
    let bootstrap = with_token(
        &member_kc,
        token.stdout.trim(),
        &set._dir.path().join("bootstrap.kubeconfig"),
    );
    let as_bootstrap = |args: &[&str], stdin: Option<&str>| kubectl_at(&bootstrap, args, stdin);
    // Asking for member-2's identity (its ID and kube-system UID) gets no credentials
    // without an administrator, though this hub approves new clusters by itself.
    let uid = set.kubectl(
        "member-2",
        &["get", "ns", "kube-system", "-o", "jsonpath={.metadata.uid}"],
    );
    let request = json!({"apiVersion": "clusters.clusterset.io/v1alpha1", "kind": "ClusterRegistrationRequest",
        "metadata": {"name": "impostor-x1"}, "spec": {"clusterId": "member-2", "clusterName": "member-2", "clusterUid": uid}});
    assert_eq!(
        as_bootstrap(&["create", "-f", "-"], Some(&request.to_string())).code,
        0
    );
    let state = eventually("the impostor's request to be answered", WAIT, || async {
        let out = as_bootstrap(
            &[
                "get",
                "clusterregistrationrequest",
                "impostor-x1",
                "-o",
                "jsonpath={.status.result}/{.status.reason}/{.status.token}",
            ],
            None,
        );
        (out.code == 0 && out.stdout != "//").then_some(out.stdout)
    })
    .await;
    assert_eq!(state, "Pending/AwaitingApproval/");
    for args in [
        vec!["get", "clusterregistrationrequests"],
        vec!["get", "secrets", "-n", "kube-system"],
        vec!["get", "managedclusters", "-A"],
        vec!["get", "importrecords", "-n", "clusterset-imports"],
    ] {
        let out = as_bootstrap(&args, None);
        assert!(out.stderr.contains("Forbidden"), "{args:?}: {}", out.stderr);
    }
}

/// `kubectl get` of one field of the ManagedCluster `name` on the hub ("" while absent).
fn cluster_field(hub: &TestServer, name: &str, path: &str) -> String {
    let out = hub.kubectl(&[
        "get",
        "managedcluster",
        name,
        "-n",
        &format!("clusterset-{name}"),
        "-o",
        &format!("jsonpath={path}"),
    ]);
    out.stdout.trim().to_string()
}

/// A push-mode member Secret `name` on the hub, holding `kubeconfig`.
fn push_secret(hub: &TestServer, name: &str, kubeconfig: &Path) {
    let from = format!("--from-file=kubeconfig={}", kubeconfig.display());
    let ns = ["-n", "clusterset-system"];
    hub.kubectl_ok(&[&ns[..], &["create", "secret", "generic", name, &from]].concat());
    let label = "mcs.clusterset.io/member-kubeconfig=true";
    hub.kubectl_ok(&[&ns[..], &["label", "secret", name, label]].concat());
}

/// Waits until the member `name`'s ManagedCluster and hub namespace are gone.
async fn wait_enrolment_gone(hub: &TestServer, name: &str) {
    let ns = format!("clusterset-{name}");
    eventually(
        &format!("{name}'s ManagedCluster and hub namespace to go"),
        WAIT,
        || async {
            let cluster = hub.kubectl(&["get", "managedcluster", "-n", &ns, name]);
            let namespace = hub.kubectl(&["get", "namespace", &ns]);
            [cluster, namespace]
                .iter()
                .all(|o| o.code != 0 && o.stderr.contains("NotFound"))
                .then_some(())
        },
    )
    .await;
}

/// Members in push mode, reached through kubeconfigs the hub holds, behave as joined
/// ones: the hub enrols them, heart-beats for them while their API servers answer,
/// withdraws a dead one's endpoints, and removes one whose Secret is deleted. The hub
/// runs as its ServiceAccount with manifests/hub and manifests/hub-push, and reaches
/// each member as the member's agent ServiceAccount.
#[tokio::test(flavor = "multi_thread")]
async fn push_members_are_enrolled_heart_beat_and_leave_with_their_secret() {
    let hub = TestServer::authenticating(None).await;
    install(
        &hub,
        &[
            "crds",
            "manifests/hub/namespaces.yaml",
            "manifests/hub/rbac.yaml",
            "manifests/hub-push/rbac.yaml",
        ],
    );
    let property = |name: &str| {
        format!("{{\"apiVersion\": \"about.k8s.io/v1beta1\", \"kind\": \"ClusterProperty\", \"metadata\": {{\"name\": \"cluster.clusterset.k8s.io\"}}, \"spec\": {{\"value\": \"{name}\"}}}}")
    };
    let mut members = Vec::new();
    let mut kubeconfigs = Vec::new();
    for name in ["east", "west"] {
        let member = member_cluster(name).await;
        member.kubectl_ok(&["create", "namespace", "demo"]);
        let kubeconfig = account_kubeconfig(&member, "clusterset-system", "clusterset-agent");
        push_secret(&hub, name, &kubeconfig);
        kubeconfigs.push(kubeconfig);
        members.push(member);
    }
    let (east, west) = (&members[0], &members[1]);
    let hub_account = account_kubeconfig(&hub, "clusterset-system", "clusterset-hub");
    let hub_port = free_port();
    let hub_probes = format!("127.0.0.1:{hub_port}");
    let hub_args = [
        "hub",
        "--hub-kubeconfig",
        hub_account.to_str().unwrap(),
        "--push",
        "--grace-period",
        "3s",
        "--damping",
        "1s",
        "--probe-listen",
        &hub_probes,
    ];
    let hub_role = Process::spawn(&hub_args);
    // west has no cluster ID yet: it cannot be enrolled until it has one.
    kubectl_at_ok(
        &east.kubeconfig(),
        &["apply", "-f", "-"],
        Some(&property("east")),
    );
    eventually("east enrolled", WAIT, || async {
        (cluster_field(&hub, "east", "{.spec.clusterId}") == "east").then_some(())
    })
    .await;
    assert_eq!(cluster_field(&hub, "west", "{.spec.clusterId}"), "");
    kubectl_at_ok(
        &west.kubeconfig(),
        &["apply", "-f", "-"],
        Some(&property("west")),
    );

    // Both are enrolled without anyone creating their hub namespaces, and heart-beat.
    for name in ["east", "west"] {
        eventually(&format!("{name} enrolled and ready"), WAIT, || async {
            let ready = cluster_field(
                &hub,
                name,
                r#"{.status.conditions[?(@.type=="Ready")].status}"#,
            );
            (ready == "True").then_some(())
        })
        .await;
        assert_eq!(
            cluster_field(&hub, name, "{.spec.clusterId}"),
            name,
            "the ID from the member's ClusterProperty"
        );
        assert_eq!(
            cluster_field(
                &hub,
                name,
                "{.metadata.labels.clusters\\.clusterset\\.io/push-secret}"
            ),
            name
        );
        assert!(
            !cluster_field(&hub, name, "{.status.kubernetesVersion}").is_empty(),
            "the hub reports the member's version"
        );
    }

    // A second Secret for east is refused: a cluster is one member.
    push_secret(&hub, "east-again", &kubeconfigs[0]);

    // east exports web; west imports it with east's pods.
    east.export_deployment("demo", "web", 2);
    let slices = Api::<EndpointSlice>::namespaced(west.client.clone(), "demo");
    let from_east = ListParams::default().labels("multicluster.kubernetes.io/source-cluster=east");
    let ready_from_east = || async {
        let list = slices.list(&from_east).await.unwrap();
        list.items
            .iter()
            .flat_map(|s| &s.endpoints)
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count()
    };
    eventually("west imports east's two pods", WAIT, || async {
        (ready_from_east().await == 2).then_some(())
    })
    .await;
    // The hub's /metrics shows each push member's agent, labelled with its cluster.
    let hub_metrics = || probe(hub_port, "/metrics").map(|(_, text)| text);
    let wanted = [
        "clusterset_agent_exports{cluster=\"east\"} 1",
        "clusterset_agent_exports{cluster=\"west\"} 0",
        "clusterset_agent_imports{cluster=\"east\"} 1",
        "clusterset_agent_imports{cluster=\"west\"} 1",
    ];
    let propagated = |metrics: &str| {
        metrics.lines().any(|l| {
            l.strip_prefix("clusterset_agent_propagation_seconds_count{cluster=\"west\"} ")
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n >= 1)
        })
    };
    let shown = eventually("the push agents' metrics on the hub", WAIT, || async {
        let metrics = hub_metrics()?;
        (wanted.iter().all(|w| metrics.lines().any(|l| l == *w)) && propagated(&metrics))
            .then_some(metrics)
    });
    assert!(shown.await.contains("clusterset_hub_imports 1"));

    // east's API server stops: the hub can no longer vouch for it, and after the grace
    // period its endpoints leave west.
    east.server.stop_serving().await;
    eventually("east's endpoints withdrawn from west", WAIT, || async {
        (slices.list(&from_east).await.unwrap().items.is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        cluster_field(
            &hub,
            "east",
            r#"{.status.conditions[?(@.type=="Ready")].reason}"#
        ),
        "HeartbeatLost"
    );
    let import = Api::<ServiceImport>::namespaced(west.client.clone(), "demo")
        .get("web")
        .await
        .unwrap();
    assert_eq!(
        import.status.unwrap().clusters.len(),
        1,
        "the export stays; only its endpoints are withdrawn"
    );

    // west's Secret goes: west leaves. Its ManagedCluster and hub namespace go, and
    // what the hub imported into it is removed.
    hub.kubectl_ok(&["-n", "clusterset-system", "delete", "secret", "west"]);
    wait_enrolment_gone(&hub, "west").await;
    let metrics = hub_metrics().expect("the hub serves /metrics");
    assert!(
        !metrics.contains("cluster=\"west\"") && metrics.contains("cluster=\"east\""),
        "a departed member's agent leaves /metrics: {metrics}"
    );
    eventually("west's imports removed", WAIT, || async {
        let imports = Api::<ServiceImport>::namespaced(west.client.clone(), "demo");
        imports
            .get_opt("web")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        cluster_field(&hub, "east", "{.spec.clusterId}"),
        "east",
        "east stays"
    );
    hub.kubectl_ok(&["-n", "clusterset-system", "delete", "secret", "east-again"]);
    let pid = hub_role.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = hub_role.finish().await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("push mode: member removed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("push mode: cannot enrol the member; trying again"),
        "{}",
        out.stderr
    );

    assert_eq!(
        hub.kubectl_ok(&[
            "get",
            "managedclusters",
            "-n",
            "clusterset-east",
            "-o",
            "name"
        ])
        .trim(),
        "managedcluster.clusters.clusterset.io/east"
    );
    assert!(
        out.stderr
            .contains("cluster east is a member already, as east (through Secret east)"),
        "{}",
        out.stderr
    );

    // east's Secret goes while the hub is down: the hub removes east when it starts.
    hub.kubectl_ok(&["-n", "clusterset-system", "delete", "secret", "east"]);
    let _hub_role = Process::spawn(&hub_args);
    wait_enrolment_gone(&hub, "east").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_member_loses_its_endpoints_everywhere_and_gets_them_back() {
    let grace = Duration::from_millis(1500);
    let damping = Duration::from_secs(2);
    let set = Set::up(3, grace, damping).await;
    for member in ["member-1", "member-2", "member-3"] {
        set.kubectl(member, &["create", "namespace", "demo"]);
    }
    set.export_headless("member-1", "demo", "db", 2);
    set.export_headless("member-2", "demo", "db", 2);
    let name = "db.demo.svc.clusterset.local";
    set.wait_answers("member-3", name, "has both members' pods", |a| {
        from_member(a, 1) == 2 && from_member(a, 2) == 2
    })
    .await;

    // member-1's API server stops: its agent cannot vouch for it and stops renewing.
    let died = Instant::now();
    set.local
        .cluster("member-1")
        .unwrap()
        .server
        .stop_serving()
        .await;
    let answers = set
        .wait_answers("member-3", name, "loses member-1's pods", |a| {
            from_member(a, 1) == 0
        })
        .await;
    println!(
        "member-1 dead -> gone from member-3's DNS in {:?} (grace {grace:?})",
        died.elapsed()
    );
    // The grace period runs from the last heartbeat, at most one interval (100 ms)
    // before the stop.
    let earliest = grace - Duration::from_millis(250);
    assert!(
        died.elapsed() >= earliest,
        "withdrawn before the grace period: {:?}",
        died.elapsed()
    );
    assert_eq!(from_member(&answers, 2), 2, "{answers:?}");
    assert_eq!(
        set.ready_condition("member-1").await,
        ("False".to_string(), "HeartbeatLost".to_string())
    );
    // The import stays; member-1's slices are gone from every other member.
    let import = Api::<ServiceImport>::namespaced(set.client("member-3"), "demo")
        .get("db")
        .await
        .unwrap();
    assert_eq!(import.status.unwrap().clusters.len(), 2);
    for member in ["member-2", "member-3"] {
        let slices = Api::<EndpointSlice>::namespaced(set.client(member), "demo")
            .list(
                &ListParams::default().labels("multicluster.kubernetes.io/source-cluster=member-1"),
            )
            .await
            .unwrap();
        assert!(
            slices.items.is_empty(),
            "{member} still has member-1's slices"
        );
    }
    let metrics = set.hub_metrics();
    assert_eq!(
        metric(
            &metrics,
            "clusterset_member_withdrawals_total{cluster=\"member-1\"}"
        ),
        1.0
    );
    assert_eq!(metric(&metrics, "clusterset_members{ready=\"false\"}"), 1.0);
    assert_eq!(
        metric(
            &metrics,
            "clusterset_member_withdrawn_endpoints{cluster=\"member-1\"}"
        ),
        2.0
    );
    assert!(
        metric(
            &metrics,
            "clusterset_member_heartbeat_age_seconds{cluster=\"member-1\"}"
        ) >= grace.as_secs_f64()
    );

    // Back: its endpoints return, once the damping period has passed.
    set.local
        .cluster("member-1")
        .unwrap()
        .server
        .resume_serving()
        .await
        .unwrap();
    set.wait_answers("member-3", name, "has member-1's pods again", |a| {
        from_member(a, 1) == 2
    })
    .await;
    assert!(died.elapsed() >= damping);
    assert_eq!(set.ready_condition("member-1").await.0, "True");

    // Flapping: member-1 goes up and down faster than the damping; its readiness, and
    // so every import, changes at most once per damping period.
    let before = metric(
        &set.hub_metrics(),
        "clusterset_member_withdrawals_total{cluster=\"member-1\"}",
    );
    let flapping = Instant::now();
    let server = &set.local.cluster("member-1").unwrap().server;
    for _ in 0..4 {
        server.stop_serving().await;
        let down = Instant::now();
        eventually("a grace period of silence", WAIT, || async {
            (down.elapsed() > grace + Duration::from_millis(300)).then_some(())
        })
        .await;
        server.resume_serving().await.unwrap();
        let up = Instant::now();
        eventually("a few heartbeats", WAIT, || async {
            (up.elapsed() > Duration::from_millis(500)).then_some(())
        })
        .await;
    }
    let flips = metric(
        &set.hub_metrics(),
        "clusterset_member_withdrawals_total{cluster=\"member-1\"}",
    ) - before;
    let allowed = (flapping.elapsed().as_secs_f64() / (2.0 * damping.as_secs_f64())).ceil() + 1.0;
    assert!(
        flips >= 1.0 && flips <= allowed,
        "{flips} withdrawals in {:?} (at most {allowed})",
        flapping.elapsed()
    );
    set.wait_answers("member-3", name, "settles with everyone's pods", |a| {
        from_member(a, 1) == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_outage_changes_nothing_in_the_members() {
    let grace = Duration::from_secs(1);
    let set = Set::up(2, grace, Duration::from_secs(1)).await;
    for member in ["member-1", "member-2"] {
        set.kubectl(member, &["create", "namespace", "demo"]);
    }
    set.export_headless("member-1", "demo", "db", 2);
    let name = "db.demo.svc.clusterset.local";
    let answers = set
        .wait_answers("member-2", name, "has member-1's pods", |a| {
            from_member(a, 1) == 2
        })
        .await;
    let snapshot = || async {
        let imports = Api::<ServiceImport>::namespaced(set.client("member-2"), "demo")
            .list(&ListParams::default())
            .await
            .unwrap();
        let slices = Api::<EndpointSlice>::namespaced(set.client("member-2"), "demo")
            .list(&ListParams::default().labels("multicluster.kubernetes.io/source-cluster"))
            .await
            .unwrap();
        let mut ids: Vec<(String, String)> = imports
            .items
            .iter()
            .map(|i| {
                (
                    i.metadata.uid.clone().unwrap(),
                    i.metadata.resource_version.clone().unwrap(),
                )
            })
            .chain(slices.items.iter().map(|s| {
                (
                    s.metadata.uid.clone().unwrap(),
                    s.metadata.resource_version.clone().unwrap(),
                )
            }))
            .collect();
        ids.sort();
        ids
    };
    let before = snapshot().await;
    assert_eq!(before.len(), 2, "one import and one slice");

    // The hub goes away for several grace periods.
    let hub = &set.local.cluster("hub").unwrap().server;
    hub.stop_serving().await;
    let down = Instant::now();
    eventually("three grace periods of hub outage", WAIT, || async {
        (down.elapsed() > 3 * grace).then_some(())
    })
    .await;
    assert_eq!(
        snapshot().await,
        before,
        "imports and slices untouched during the outage"
    );
    assert_eq!(dig_short(set.dns("member-2"), name), answers);
    // Meanwhile member-1 scales up; member-2 learns of it once the hub is back.
    set.kubectl(
        "member-1",
        &["-n", "demo", "scale", "deployment", "db", "--replicas=3"],
    );
    hub.resume_serving().await.unwrap();
    set.wait_answers("member-2", name, "has member-1's third pod", |a| {
        from_member(a, 1) == 3
    })
    .await;
    let metrics = set.hub_metrics();
    for member in ["member-1", "member-2"] {
        assert_eq!(
            metric(
                &metrics,
                &format!("clusterset_member_withdrawals_total{{cluster=\"{member}\"}}")
            ),
            0.0,
            "the hub's own outage counts against no member"
        );
    }
    eventually("both members Ready", WAIT, || async {
        let a = set.ready_condition("member-1").await.0;
        let b = set.ready_condition("member-2").await.0;
        (a == "True" && b == "True").then_some(())
    })
    .await;
    let imports = Api::<ServiceImport>::namespaced(set.client("member-2"), "demo")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(imports.items.len(), 1, "no duplicate import");
}

/// Waits until the hub (context `hub` of `kc`) no longer has `member`'s namespace.
async fn wait_hub_namespace_gone(kc: &Path, member: &str) {
    let ns = format!("clusterset-{member}");
    eventually(
        &format!("{member}'s hub namespace to be gone"),
        WAIT,
        || async {
            let out = kubectl_at(kc, &["--context", "hub", "get", "ns", &ns], None);
            (out.code != 0).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_leaves_and_joins_again() {
    let set = Set::up(2, Duration::from_secs(30), Duration::from_secs(1)).await;
    for member in ["member-1", "member-2"] {
        set.kubectl(member, &["create", "namespace", "demo"]);
    }
    set.export_headless("member-1", "demo", "one", 1);
    set.export_headless("member-2", "demo", "two", 1);
    for (member, service) in [("member-1", "two"), ("member-2", "one")] {
        set.wait_answers(
            member,
            &format!("{service}.demo.svc.clusterset.local"),
            "answers",
            |a| a.len() == 1,
        )
        .await;
    }
    let kc = set.kubeconfig();
    let left = clusterset(&[
        "leave",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--context",
        "member-1",
    ]);
    assert_eq!(left.code, 0, "{}", left.stderr);
    // member-1's export is withdrawn from member-2; member-1 imports nothing any more.
    set.wait_answers(
        "member-2",
        "one.demo.svc.clusterset.local",
        "is gone",
        |a| a.is_empty(),
    )
    .await;
    let imports = Api::<ServiceImport>::namespaced(set.client("member-1"), "demo");
    eventually("member-1's imports to be removed", WAIT, || async {
        imports
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    let slices = Api::<EndpointSlice>::namespaced(set.client("member-1"), "demo")
        .list(&ListParams::default().labels("multicluster.kubernetes.io/source-cluster"))
        .await
        .unwrap();
    assert!(slices.items.is_empty());
    wait_hub_namespace_gone(&kc, "member-1").await;
    // member-2 is untouched.
    set.wait_answers(
        "member-2",
        "two.demo.svc.clusterset.local",
        "still answers",
        |a| a.len() == 1,
    )
    .await;
    assert_eq!(set.ready_condition("member-2").await.0, "True");

    // Joining again brings everything back.
    let token = clusterset(&[
        "token",
        "create",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--context",
        "hub",
    ]);
    let hub_kc = set._dir.path().join("hub.kubeconfig");
    let hub_only = kubectl_at_ok(
        &kc,
        &["config", "view", "--minify", "--raw", "--context", "hub"],
        None,
    );
    std::fs::write(&hub_kc, hub_only).unwrap();
    let member_kc = set._dir.path().join("member-1.kubeconfig");
    let member_only = kubectl_at_ok(
        &kc,
        &[
            "config",
            "view",
            "--minify",
            "--raw",
            "--context",
            "member-1",
        ],
        None,
    );
    std::fs::write(&member_kc, member_only).unwrap();
    let joined = clusterset(&[
        "join",
        "--kubeconfig",
        member_kc.to_str().unwrap(),
        "--hub-kubeconfig",
        hub_kc.to_str().unwrap(),
        "--token",
        token.stdout.trim(),
        "--name",
        "member-1",
    ]);
    assert_eq!(joined.code, 0, "{}", joined.stderr);
    set.wait_answers(
        "member-2",
        "one.demo.svc.clusterset.local",
        "is back",
        |a| a.len() == 1,
    )
    .await;
    set.wait_answers(
        "member-1",
        "two.demo.svc.clusterset.local",
        "is back",
        |a| a.len() == 1,
    )
    .await;

    // `clusterset local join`: one more member, through the same flow; kubeconfig and
    // local.json list it, and it imports what the others export.
    let name = set.local.join_member().await.unwrap();
    assert_eq!(name, "member-3");
    set.kubectl("member-3", &["create", "namespace", "demo"]);
    for service in ["one", "two"] {
        let name = format!("{service}.demo.svc.clusterset.local");
        set.wait_answers("member-3", &name, "answers", |a| a.len() == 1)
            .await;
    }
    let local_json = std::fs::read_to_string(set.local.dir.join("local.json")).unwrap();
    assert!(local_json.contains("\"member-3\""), "{local_json}");
    eventually("member-3 Ready on the hub", WAIT, || async {
        (set.ready_condition("member-3").await.0 == "True").then_some(())
    })
    .await;

    // An administrator removes member-3 on the hub: its export is withdrawn everywhere,
    // its hub namespace goes, and member-3 notices, stops its agent and removes what it
    // imported.
    set.export_headless("member-3", "demo", "three", 1);
    let three = "three.demo.svc.clusterset.local";
    set.wait_answers("member-2", three, "answers", |a| a.len() == 1)
        .await;
    set.kubectl(
        "hub",
        &[
            "delete",
            "managedcluster",
            "member-3",
            "-n",
            "clusterset-member-3",
            "--wait=false",
        ],
    );
    eventually("member-3's imports to be removed", WAIT, || async {
        let left = set.kubectl(
            "member-3",
            &["get", "serviceimports", "-n", "demo", "-o", "name"],
        );
        left.trim().is_empty().then_some(())
    })
    .await;
    set.wait_answers("member-2", three, "is withdrawn", |a| a.is_empty())
        .await;
    wait_hub_namespace_gone(&kc, "member-3").await;
    set.wait_answers(
        "member-2",
        "one.demo.svc.clusterset.local",
        "still answers",
        |a| a.len() == 1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn members_renew_their_hub_token_before_it_expires() {
    let set = Set::up(2, Duration::from_secs(30), Duration::from_secs(1)).await;
    let secrets = Api::<Secret>::namespaced(set.client("member-1"), "clusterset-system");
    let token_of = |s: &Secret| -> String {
        let kubeconfig =
            String::from_utf8(s.data.as_ref().unwrap()["kubeconfig"].0.clone()).unwrap();
        let doc: Value = serde_yaml::from_str(&kubeconfig).unwrap();
        doc["users"][0]["user"]["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = secrets.get("clusterset-hub").await.unwrap();
    let data = before.data.as_ref().unwrap();
    assert!(data.contains_key("token-issued") && data.contains_key("token-expires"));
    // Pretend the token is an hour old of an hour's lifetime: past 80%, renew now.
    let patch = json!({"stringData": {"token-issued": "2020-01-01T00:00:00Z", "token-expires": "2020-01-01T01:00:00Z"}});
    secrets
        .patch(
            "clusterset-hub",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let renewed = eventually("member-1 to renew its hub token", WAIT, || async {
        let now = secrets.get("clusterset-hub").await.unwrap();
        (token_of(&now) != token_of(&before)).then_some(now)
    })
    .await;
    let data = renewed.data.unwrap();
    let issued = String::from_utf8(data["token-issued"].0.clone()).unwrap();
    assert!(
        issued.starts_with("20") && !issued.starts_with("2020"),
        "{issued}"
    );
    // The member's metrics say when the token in use expires.
    let expires: jiff::Timestamp = String::from_utf8(data["token-expires"].0.clone())
        .unwrap()
        .parse()
        .unwrap();
    let series = "clusterset_agent_hub_token_expiry_timestamp_seconds";
    eventually(
        "member-1's metrics to show the new expiry",
        WAIT,
        || async {
            let shown = metric(&set.member_metrics("member-1"), series);
            (shown == expires.as_second() as f64).then_some(())
        },
    )
    .await;
    // The agent works on with the new token.
    for member in ["member-1", "member-2"] {
        set.kubectl(member, &["create", "namespace", "demo"]);
    }
    set.export_headless("member-1", "demo", "after", 1);
    set.wait_answers(
        "member-2",
        "after.demo.svc.clusterset.local",
        "answers",
        |a| a.len() == 1,
    )
    .await;
    assert_eq!(set.ready_condition("member-1").await.0, "True");
}
