//! `clusterset local up`: a hub and members over TLS with tokens and RBAC, the files
//! scripts rely on, fault controls, and durability — driven through the real kubectl.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clusterset::local::{IpFamily, LocalClusterset, UpOptions};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use serde_json::Value;

fn options(dir: &Path, members: usize) -> UpOptions {
    UpOptions {
        members,
        dir: dir.to_path_buf(),
        data_dir: None,
        ip_family: IpFamily::Ipv4,
        upstream_crds: None,
        controllers: Default::default(),
    }
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> common::Output {
    common::kubectl_at(kubeconfig, args, None)
}

fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    common::kubectl_at_ok(kubeconfig, args, None)
}

#[tokio::test(flavor = "multi_thread")]
async fn contexts_work_over_tls_and_files_describe_the_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalClusterset::up(&options(dir.path(), 2)).await.unwrap();
    let kc = local.kubeconfig_path();
    for (context, id) in [("member-1", "member-1"), ("member-2", "member-2")] {
        let value = kubectl_ok(
            &kc,
            &[
                "--context",
                context,
                "get",
                "clusterproperty",
                "cluster.clusterset.k8s.io",
                "-o",
                "jsonpath={.spec.value}",
            ],
        );
        assert_eq!(value, id);
    }
    assert!(kubectl_ok(&kc, &["--context", "hub", "get", "namespaces"]).contains("kube-system"));
    // Ready means the members' nodes are there and Ready already.
    let nodes = kubectl_ok(
        &kc,
        &["--context", "member-2", "get", "nodes", "--no-headers"],
    );
    assert_eq!(
        nodes
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
            .count(),
        3,
        "{nodes}"
    );
    assert_eq!(
        kubectl_ok(&kc, &["config", "current-context"]).trim(),
        "member-1"
    );
    let server = kubectl_ok(
        &kc,
        &[
            "config",
            "view",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
    );
    assert!(server.starts_with("https://127.0.0.1:"), "{server}");

    let local_json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("local.json")).unwrap())
            .unwrap();
    let clusters = local_json["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 3);
    assert_eq!(clusters[0]["role"], "hub");
    let m2 = &clusters[2];
    assert_eq!(
        (
            m2["name"].as_str(),
            m2["context"].as_str(),
            m2["clusterId"].as_str()
        ),
        (Some("member-2"), Some("member-2"), Some("member-2"))
    );
    assert_eq!(m2["podCIDRs"][0], "10.2.0.0/16");
    assert_eq!(m2["serviceCIDRs"][0], "10.102.0.0/16");
    assert!(clusters[0]["dns"].is_null(), "the hub has no DNS server");
    // A member's DNS server answers at the address local.json gives.
    let dns: std::net::SocketAddr = m2["dns"].as_str().unwrap().parse().unwrap();
    let soa = std::process::Command::new("dig")
        .args([
            &format!("@{}", dns.ip()),
            "-p",
            &dns.port().to_string(),
            "+short",
            "clusterset.local",
            "SOA",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&soa.stdout)
            .starts_with("ns.dns.clusterset.local. hostmaster.clusterset.local. "),
        "{soa:?}"
    );
    // Services get ClusterIPs from their own cluster's range.
    kubectl_ok(
        &kc,
        &[
            "--context",
            "member-2",
            "create",
            "service",
            "clusterip",
            "web",
            "--tcp=80:80",
        ],
    );
    let ip = kubectl_ok(
        &kc,
        &[
            "--context",
            "member-2",
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    );
    assert!(ip.starts_with("10.102."), "{ip}");
    local.down().await;
    assert!(
        !dir.path().join("local.json").exists(),
        "local.json goes with the clusterset"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_need_valid_credentials_and_rbac_rights() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalClusterset::up(&options(dir.path(), 1)).await.unwrap();
    let kc = local.kubeconfig_path();
    let member = &local.cluster("member-1").unwrap().server;

    for token in [None, Some("not-a-token"), Some("csa.forged.signature")] {
        let api: Api<Namespace> = Api::all(member.client_with_token(token));
        match api.list(&ListParams::default()).await.unwrap_err() {
            kube::Error::Api(s) => assert_eq!(
                (s.code, s.reason.as_str()),
                (401, "Unauthorized"),
                "{token:?}"
            ),
            other => panic!("expected 401 for {token:?}, got {other:?}"),
        }
    }

    kubectl_ok(&kc, &["create", "serviceaccount", "bot"]);
    let token = kubectl_ok(&kc, &["create", "token", "bot"]);
    let token = token.trim();
    let denied = kubectl(&kc, &["--token", token, "get", "pods"]);
    assert_ne!(denied.code, 0);
    assert!(
        denied.stderr.contains("pods is forbidden: User \"system:serviceaccount:default:bot\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""),
        "{}",
        denied.stderr
    );
    kubectl_ok(
        &kc,
        &[
            "create",
            "role",
            "pod-reader",
            "--verb=get,list",
            "--resource=pods",
        ],
    );
    kubectl_ok(
        &kc,
        &[
            "create",
            "rolebinding",
            "bot-reads",
            "--role=pod-reader",
            "--serviceaccount=default:bot",
        ],
    );
    let allowed = kubectl(&kc, &["--token", token, "get", "pods"]);
    assert_eq!(allowed.code, 0, "{}", allowed.stderr);
    let elsewhere = kubectl(&kc, &["--token", token, "get", "pods", "-n", "kube-system"]);
    assert!(
        elsewhere.stderr.contains("Forbidden"),
        "{}",
        elsewhere.stderr
    );
    let write = kubectl(&kc, &["--token", token, "create", "configmap", "x"]);
    assert!(
        write
            .stderr
            .contains("cannot create resource \"configmaps\""),
        "{}",
        write.stderr
    );

    // A deleted ServiceAccount's token stops working.
    kubectl_ok(&kc, &["delete", "serviceaccount", "bot"]);
    let gone = kubectl(&kc, &["--token", token, "get", "pods"]);
    assert!(
        gone.stderr.contains("Unauthorized") || gone.stderr.contains("logged in"),
        "{}",
        gone.stderr
    );
    local.down().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_member_is_unreachable_while_the_others_serve() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalClusterset::up(&options(dir.path(), 2)).await.unwrap();
    let kc = local.kubeconfig_path();
    kubectl_ok(
        &kc,
        &[
            "--context",
            "member-1",
            "create",
            "configmap",
            "kept",
            "--from-literal=a=b",
        ],
    );
    let m1 = &local.cluster("member-1").unwrap().server;
    m1.stop_serving().await;
    let down = kubectl(
        &kc,
        &[
            "--context",
            "member-1",
            "get",
            "configmaps",
            "--request-timeout=2s",
        ],
    );
    assert_ne!(down.code, 0);
    assert!(
        down.stderr.contains("connection refused") || down.stderr.contains("was refused"),
        "{}",
        down.stderr
    );
    assert!(kubectl_ok(&kc, &["--context", "member-2", "get", "namespaces"]).contains("default"));
    assert!(kubectl_ok(&kc, &["--context", "hub", "get", "namespaces"]).contains("default"));
    m1.resume_serving().await.unwrap();
    assert!(
        kubectl_ok(&kc, &["--context", "member-1", "get", "configmap", "kept"]).contains("kept")
    );
    local.down().await;
}

/// `clusterset local up` as a user runs it.
struct Up {
    child: Child,
    ready_line: String,
}

fn run_up(dir: &Path, data: Option<&Path>, members: &str) -> Up {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterset"));
    cmd.args(["local", "up", "--members", members, "--dir"])
        .arg(dir);
    if let Some(data) = data {
        cmd.arg("--data-dir").arg(data);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready_line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("local up prints a line once ready");
    Up { child, ready_line }
}

fn clusterset(args: &[&str], dir: &Path) -> common::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_clusterset"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    common::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_command_line_contract() {
    let work = tempfile::tempdir().unwrap();
    let dir: PathBuf = work.path().join("cs");
    let data = work.path().join("data");
    let mut up = run_up(&dir, Some(&data), "2");
    assert!(
        up.ready_line.starts_with("clusterset ready"),
        "{}",
        up.ready_line
    );
    assert!(dir.join("local.json").exists() && dir.join("kubeconfig").exists());

    let again = clusterset(&["local", "up"], &dir);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("already running"), "{}", again.stderr);

    let status = clusterset(&["local", "status"], &dir);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(
        status
            .stdout
            .lines()
            .filter(|l| l.ends_with("Ready"))
            .count(),
        3,
        "{}",
        status.stdout
    );
    // Each member's DNS server answers; the hub has none.
    let local: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("local.json")).unwrap()).unwrap();
    for c in local["clusters"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let line = status
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        match c["dns"].as_str() {
            Some(dns) => assert_eq!(cells[4], dns, "{}", status.stdout),
            None => assert_eq!(cells[4], "-", "{}", status.stdout),
        }
    }

    let joined = clusterset(&["local", "join"], &dir);
    assert_eq!(joined.code, 0, "{}", joined.stderr);
    assert_eq!(joined.stdout.trim(), "member-3 joined");
    let status = clusterset(&["local", "status"], &dir).stdout;
    assert_eq!(
        status.lines().filter(|l| l.ends_with("Ready")).count(),
        4,
        "{status}"
    );

    let stop = clusterset(&["local", "member", "stop", "member-2"], &dir);
    assert_eq!(stop.code, 0, "{}", stop.stderr);
    let status = clusterset(&["local", "status"], &dir).stdout;
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("member-2") && l.ends_with("Unreachable")),
        "{status}"
    );
    clusterset(&["local", "member", "start", "member-2"], &dir);

    let kc = dir.join("kubeconfig");
    kubectl_ok(
        &kc,
        &[
            "--context",
            "member-2",
            "create",
            "configmap",
            "survivor",
            "--from-literal=k=v",
        ],
    );
    up.child.kill().unwrap(); // SIGKILL: no clean shutdown
    up.child.wait().unwrap();

    let mut up = run_up(&dir, Some(&data), "2");
    assert!(
        up.ready_line.starts_with("clusterset ready"),
        "{}",
        up.ready_line
    );
    let value = kubectl_ok(
        &kc,
        &[
            "--context",
            "member-2",
            "get",
            "configmap",
            "survivor",
            "-o",
            "jsonpath={.data.k}",
        ],
    );
    assert_eq!(value, "v", "the object survived kill -9");

    let down = clusterset(&["local", "down"], &dir);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(wait_exit(&mut up.child).success());
    assert!(!dir.join("local.json").exists());
}

const WORKLOADS: &str = r#"
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
        image: nginx:1.27
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: postgres:17, ports: [{name: pg, containerPort: 5432}]}]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn members_run_workloads_like_real_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalClusterset::up(&options(dir.path(), 2)).await.unwrap();
    let kc = local.kubeconfig_path();
    let ctx = ["--context", "member-2"];
    let apply = |args: &[&str]| -> String { kubectl_ok(&kc, &[&ctx[..], args].concat()) };
    common::kubectl_at_ok(
        &kc,
        &["--context", "member-2", "apply", "-f", "-"],
        Some(WORKLOADS),
    );

    apply(&["scale", "deployment", "web", "--replicas=5"]);
    apply(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    let ips = apply(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].status.podIP}",
    ]);
    let ips: Vec<&str> = ips.split_whitespace().collect();
    assert_eq!(ips.len(), 5, "{ips:?}");
    let distinct: std::collections::BTreeSet<_> = ips.iter().collect();
    assert_eq!(distinct.len(), 5, "pod IPs are distinct: {ips:?}");
    assert!(
        ips.iter().all(|ip| ip.starts_with("10.2.")),
        "pod IPs come from member-2's pod CIDR: {ips:?}"
    );
    let ready = apply(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        r#"jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}"#,
    ]);
    assert_eq!(
        ready.split_whitespace().filter(|s| *s == "True").count(),
        5,
        "{ready}"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let slice = apply(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "json",
        ]);
        let v: Value = serde_json::from_str(&slice).unwrap();
        let items = v["items"].as_array().unwrap();
        let addresses: Vec<String> = items
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .map(|e| e["addresses"][0].as_str().unwrap_or_default().to_string())
            .collect();
        let port = items.first().map(|s| s["ports"][0]["port"].clone());
        if addresses.len() == 5 && port == Some(Value::from(8080)) {
            let mut want: Vec<String> = ips.iter().map(|s| s.to_string()).collect();
            let mut got = addresses;
            want.sort();
            got.sort();
            assert_eq!(got, want, "the slice lists exactly the ready pods");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the EndpointSlice did not follow the scale: {slice}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    apply(&["rollout", "status", "statefulset/db", "--timeout=30s"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let hosts = apply(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=db",
            "-o",
            "jsonpath={.items[*].endpoints[*].hostname}",
        ]);
        let mut hosts: Vec<&str> = hosts.split_whitespace().collect();
        hosts.sort();
        if hosts == ["db-0", "db-1", "db-2"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the headless slice has no hostnames: {hosts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let nodes = kubectl_ok(
        &kc,
        &["--context", "member-1", "get", "nodes", "-o", "name"],
    );
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    local.down().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dual_stack_members_give_pods_an_address_per_family() {
    let dir = tempfile::tempdir().unwrap();
    let opts = UpOptions {
        ip_family: IpFamily::Dual,
        ..options(dir.path(), 1)
    };
    let local = LocalClusterset::up(&opts).await.unwrap();
    let kc = local.kubeconfig_path();
    let local_json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("local.json")).unwrap())
            .unwrap();
    let member = &local_json["clusters"][1];
    assert_eq!(
        member["podCIDRs"],
        serde_json::json!(["10.1.0.0/16", "fd00:10:1::/64"])
    );
    assert_eq!(
        member["serviceCIDRs"],
        serde_json::json!(["10.101.0.0/16", "fd00:100:1::/112"])
    );
    kubectl_ok(&kc, &["run", "probe", "--image=busybox"]);
    kubectl_ok(
        &kc,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/probe",
            "--timeout=20s",
        ],
    );
    let ips = kubectl_ok(
        &kc,
        &[
            "get",
            "pod",
            "probe",
            "-o",
            "jsonpath={.status.podIPs[*].ip}",
        ],
    );
    let ips: Vec<&str> = ips.split_whitespace().collect();
    assert_eq!(ips.len(), 2, "{ips:?}");
    assert!(
        ips[0].starts_with("10.1.") && ips[1].starts_with("fd00:10:1:"),
        "{ips:?}"
    );
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: dual}\nspec:\n  ipFamilyPolicy: RequireDualStack\n  selector: {run: probe}\n  ports: [{port: 80}]\n";
    common::kubectl_at_ok(&kc, &["apply", "-f", "-"], Some(svc));
    let cluster_ips = kubectl_ok(
        &kc,
        &["get", "svc", "dual", "-o", "jsonpath={.spec.clusterIPs[*]}"],
    );
    let cluster_ips: Vec<&str> = cluster_ips.split_whitespace().collect();
    assert!(
        cluster_ips.len() == 2
            && cluster_ips[0].starts_with("10.101.")
            && cluster_ips[1].starts_with("fd00:100:1::"),
        "{cluster_ips:?}"
    );
    local.down().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_auth_can_i_and_whoami_answer_for_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalClusterset::up(&options(dir.path(), 1)).await.unwrap();
    let kc = local.kubeconfig_path();
    assert_eq!(
        kubectl_ok(
            &kc,
            &["auth", "can-i", "delete", "secrets", "-n", "kube-system"]
        )
        .trim(),
        "yes"
    );
    let whoami = kubectl_ok(
        &kc,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(whoami, "clusterset-admin");
    kubectl_ok(&kc, &["create", "serviceaccount", "bot"]);
    let token = kubectl_ok(&kc, &["create", "token", "bot"]);
    let token = token.trim();
    kubectl_ok(
        &kc,
        &[
            "create",
            "role",
            "cm-reader",
            "--verb=get,list",
            "--resource=configmaps",
        ],
    );
    kubectl_ok(
        &kc,
        &[
            "create",
            "rolebinding",
            "bot-cm",
            "--role=cm-reader",
            "--serviceaccount=default:bot",
        ],
    );
    let yes = kubectl(
        &kc,
        &["--token", token, "auth", "can-i", "list", "configmaps"],
    );
    assert_eq!(yes.stdout.trim(), "yes", "{}", yes.stderr);
    let no = kubectl(&kc, &["--token", token, "auth", "can-i", "get", "secrets"]);
    assert_eq!(no.stdout.trim(), "no", "{}", no.stderr);
    assert_ne!(no.code, 0, "kubectl exits 1 for no");
    let me = kubectl_ok(
        &kc,
        &[
            "--token",
            token,
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(me, "system:serviceaccount:default:bot");
    local.down().await;
}

/// With `--data-dir`, a member added by `local join` comes back at the next `up` as
/// the member it joined as: in the kubeconfig, with its objects, heart-beating to the
/// same ManagedCluster.
#[tokio::test(flavor = "multi_thread")]
async fn a_joined_member_comes_back_with_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = UpOptions {
        data_dir: Some(dir.path().join("data")),
        ..options(&dir.path().join("cs"), 1)
    };
    opts.controllers.heartbeat = Duration::from_millis(200);
    let hub_path = |what: &str| {
        ["--context", "hub", "-n", "clusterset-member-2", "get", what].map(String::from)
    };
    let get = |kc: &Path, what: &str, jsonpath: &str| {
        let mut args = hub_path(what).to_vec();
        args.extend(["-o".to_string(), format!("jsonpath={jsonpath}")]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kubectl_ok(kc, &args)
    };

    let local = LocalClusterset::up(&opts).await.unwrap();
    assert_eq!(local.join_member().await.unwrap(), "member-2");
    let kc = local.kubeconfig_path();
    kubectl_ok(
        &kc,
        &["--context", "member-2", "create", "namespace", "kept"],
    );
    let uid = get(&kc, "managedcluster/member-2", "{.metadata.uid}");
    local.down().await;

    let local = LocalClusterset::up(&opts).await.unwrap();
    let kc = local.kubeconfig_path();
    let files: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("cs/local.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = files["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hub", "member-1", "member-2"]);
    kubectl_ok(&kc, &["--context", "member-2", "get", "namespace", "kept"]);
    assert_eq!(
        get(&kc, "managedcluster/member-2", "{.metadata.uid}"),
        uid,
        "the same membership, not a second join"
    );
    let renewed = get(&kc, "lease/clusterset-heartbeat", "{.spec.renewTime}");
    common::eventually(
        "member-2 to heart-beat again",
        Duration::from_secs(20),
        || {
            let now = get(&kc, "lease/clusterset-heartbeat", "{.spec.renewTime}");
            let renewed = renewed.clone();
            async move { (now != renewed).then_some(()) }
        },
    )
    .await;
    local.down().await;
}
