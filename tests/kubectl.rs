//! The real kubectl (v1.32) against the embedded API server, command by command, as a
//! user would type them.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{upstream_crds_dir, TestServer};
use serde_json::Value;

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}]
      - name: sidecar
        image: envoy:1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data: {mode: fast}
"#;

fn json_of(t: &TestServer, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&t.kubectl_ok(&all)).unwrap()
}

fn container_names(t: &TestServer) -> Vec<String> {
    let d = json_of(t, &["get", "deployment", "web"]);
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn client_side_apply_creates_configures_and_is_idempotent() {
    let t = TestServer::start().await;
    let out = t.apply_yaml(APP, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for line in [
        "deployment.apps/web created",
        "service/web created",
        "configmap/settings created",
    ] {
        assert!(out.stdout.contains(line), "{}", out.stdout);
    }
    // Dropping the sidecar and changing the image: a strategic merge patch with
    // $setElementOrder and $patch: delete, computed by kubectl.
    let changed = APP
        .replace("image: nginx:1.25", "image: nginx:1.26")
        .replace("      - name: sidecar\n        image: envoy:1\n", "");
    let out = t.apply_yaml(&changed, &[]);
    assert!(
        out.stdout.contains("deployment.apps/web configured"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("service/web unchanged"),
        "{}",
        out.stdout
    );
    assert_eq!(container_names(&t), ["web"]);
    let d = json_of(&t, &["get", "deployment", "web"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    assert_eq!(d["metadata"]["generation"], 2);
    let out = t.apply_yaml(&changed, &[]);
    assert!(
        out.stdout.contains("deployment.apps/web unchanged"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_and_conflicts() {
    let t = TestServer::start().await;
    let out = t.apply_yaml(APP, &["--server-side"]);
    assert!(
        out.stdout
            .contains("deployment.apps/web serverside-applied"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let replicas =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 5}\n";
    let out = t.apply_yaml(replicas, &["--server-side", "--field-manager=autoscaler"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("Apply failed with 1 conflict"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(".spec.replicas"), "{}", out.stderr);
    assert!(out.stderr.contains("--force-conflicts"), "{}", out.stderr);
    let out = t.apply_yaml(
        replicas,
        &[
            "--server-side",
            "--field-manager=autoscaler",
            "--force-conflicts",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        json_of(&t, &["get", "deployment", "web"])["spec"]["replicas"],
        5
    );
    // Ports were matched with their defaulted protocol, not duplicated.
    let svc = json_of(&t, &["get", "service", "web"]);
    assert_eq!(svc["spec"]["ports"].as_array().unwrap().len(), 1);
    let again = t.apply_yaml(APP, &["--server-side", "--force-conflicts"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let d = json_of(&t, &["get", "deployment", "web"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_validation_reports_unknown_fields() {
    let t = TestServer::start().await;
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndatta: {c: d}\n";
    let out = t.apply_yaml(bad, &[]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("unknown field \"datta\""),
        "{}",
        out.stderr
    );
    assert!(
        t.kubectl(&["get", "configmap", "x"]).code != 0,
        "nothing was stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn get_prints_server_side_tables() {
    let t = TestServer::start().await;
    t.apply_yaml(APP, &[]);
    let out = t.kubectl_ok(&["get", "deployments"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(out.lines().nth(1).unwrap().starts_with("web "), "{out}");
    let out = t.kubectl_ok(&["get", "svc", "web"]);
    assert!(
        out.contains("CLUSTER-IP") && out.contains("80/TCP") && out.contains("10.96."),
        "{out}"
    );
    let out = t.kubectl_ok(&["get", "cm", "--show-labels", "-A"]);
    assert!(
        out.lines().next().unwrap().starts_with("NAMESPACE"),
        "{out}"
    );
    let out = t.kubectl_ok(&["get", "svc", "-o", "wide"]);
    assert!(out.contains("SELECTOR") && out.contains("app=web"), "{out}");
    let yaml = t.kubectl_ok(&["get", "configmap", "settings", "-o", "yaml"]);
    assert!(
        yaml.contains("mode: fast") && yaml.contains("resourceVersion:"),
        "{yaml}"
    );
    let name = t.kubectl_ok(&["get", "deploy", "-o", "name"]);
    assert_eq!(name.trim(), "deployment.apps/web");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_mcs_crds_install_and_print_their_columns() {
    let t = TestServer::start().await;
    let dir = upstream_crds_dir();
    t.kubectl_ok(&["apply", "-f", dir.to_str().unwrap()]);
    t.wait_established("serviceimports.multicluster.x-k8s.io");
    let resources = t.kubectl_ok(&["api-resources", "--api-group=multicluster.x-k8s.io"]);
    for short in ["svcex", "svcim"] {
        assert!(resources.contains(short), "{resources}");
    }
    let import = "apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceImport\nmetadata: {name: web}\nspec:\n  type: ClusterSetIP\n  ips: [10.40.0.7]\n  ports: [{port: 80, protocol: TCP}]\n---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {name: web}\n";
    let out = t.apply_yaml(import, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = t.kubectl_ok(&["get", "svcim"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "TYPE", "IP", "AGE"]);
    assert!(
        out.contains("ClusterSetIP") && out.contains("10.40.0.7"),
        "{out}"
    );
    assert!(t.kubectl_ok(&["get", "svcex", "web"]).contains("web"));
    // Strategic merge patch is not for custom resources; merge patch is.
    let out = t.kubectl(&[
        "patch",
        "svcim",
        "web",
        "-p",
        r#"{"spec":{"type":"Headless"}}"#,
    ]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("application/strategic-merge-patch+json is not supported"),
        "{}",
        out.stderr
    );
    t.kubectl_ok(&[
        "patch",
        "svcim",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"type":"Headless","ips":null}}"#,
    ]);
    assert!(t.kubectl_ok(&["get", "svcim", "web"]).contains("Headless"));
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_label_annotate_scale_describe() {
    let t = TestServer::start().await;
    t.apply_yaml(APP, &[]);
    t.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:2"}]}}}}"#,
    ]);
    assert_eq!(
        container_names(&t),
        ["web", "sidecar"],
        "strategic merge keeps the other container"
    );
    t.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
    ]);
    t.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"mode":"slow"}}"#,
    ]);
    t.kubectl_ok(&["label", "deployment", "web", "tier=frontend"]);
    t.kubectl_ok(&["annotate", "deployment", "web", "owner=team-a"]);
    let out = t.kubectl_ok(&["scale", "deployment", "web", "--replicas=3"]);
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    let d = json_of(&t, &["get", "deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["labels"]["tier"], "frontend");
    assert_eq!(d["metadata"]["annotations"]["owner"], "team-a");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
    assert_eq!(
        json_of(&t, &["get", "cm", "settings"])["data"]["mode"],
        "slow"
    );
    t.kubectl_ok(&["label", "deployment", "web", "tier-"]);
    assert!(
        json_of(&t, &["get", "deployment", "web"])["metadata"]["labels"]
            .get("tier")
            .is_none()
    );

    let out = t.kubectl_ok(&["describe", "deployment", "web"]);
    assert!(
        out.contains("Replicas:") && out.contains("3 desired") && out.contains("nginx:2"),
        "{out}"
    );
    let out = t.kubectl_ok(&["describe", "service", "web"]);
    assert!(
        out.contains("Type:") && out.contains("ClusterIP") && out.contains("http  80/TCP"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_and_wait() {
    let t = TestServer::start().await;
    t.apply_yaml(APP, &[]);
    let out = t.kubectl_ok(&[
        "wait",
        "--for=jsonpath={.data.mode}=fast",
        "configmap/settings",
        "--timeout=10s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    t.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    let out = t.kubectl_ok(&["delete", "configmap", "settings", "--wait=false"]);
    assert!(out.contains("configmap \"settings\" deleted"), "{out}");

    // `wait --for=delete` blocks until the finalizer is gone.
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(t.kubeconfig())
        .args([
            "wait",
            "--for=delete",
            "configmap/settings",
            "--timeout=20s",
        ])
        .stdout(Stdio::piped());
    let mut waiter = cmd.spawn().unwrap();
    t.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    let status = waiter.wait().unwrap();
    assert!(status.success());
    let out = t.kubectl(&["get", "configmap", "settings"]);
    assert!(out.stderr.contains("NotFound"), "{}", out.stderr);

    let out = t.kubectl_ok(&["delete", "deployment/web", "service/web"]);
    assert!(
        out.contains("deployment.apps \"web\" deleted") && out.contains("service \"web\" deleted"),
        "{out}"
    );
    let out = t.kubectl(&["delete", "configmap", "nope"]);
    assert!(
        out.stderr.contains("configmaps \"nope\" not found"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn get_watch_streams_changes() {
    let t = TestServer::start().await;
    t.apply_yaml(APP, &[]);
    let mut watcher = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(t.kubeconfig())
        .args([
            "get",
            "configmaps",
            "-w",
            "--output-watch-events",
            "--request-timeout=30s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = watcher.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut seen = String::new();
    let wait_for = |needle: &str, seen: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "kubectl get -w never printed {needle:?}; it printed:\n{seen}"
            );
            if let Ok(chunk) = rx.recv_timeout(left) {
                seen.push_str(&chunk);
            }
        }
    };
    wait_for("settings", &mut seen);
    t.kubectl_ok(&[
        "create",
        "configmap",
        "late",
        "--from-literal=a=b",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    t.apply_yaml(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late}\ndata: {a: b}\n",
        &[],
    );
    wait_for("ADDED      late", &mut seen);
    t.kubectl_ok(&["label", "configmap", "late", "x=y"]);
    wait_for("MODIFIED   late", &mut seen);
    t.kubectl_ok(&["delete", "configmap", "late"]);
    wait_for("DELETED    late", &mut seen);
    assert_eq!(
        seen.matches("EVENT").count(),
        1,
        "the header is printed once:\n{seen}"
    );
    watcher.kill().unwrap();
    let _ = watcher.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn imperative_create_commands_send_protobuf_and_work() {
    let t = TestServer::start().await;
    let out = t.kubectl_ok(&["create", "namespace", "demo"]);
    assert!(out.contains("namespace/demo created"), "{out}");
    let ns = ["-n", "demo"];
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "create",
            "configmap",
            "settings",
            "--from-literal=mode=fast",
        ],
        vec![
            "create",
            "secret",
            "generic",
            "token",
            "--from-literal=key=s3cr3t",
        ],
        vec![
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=2",
            "--port=80",
        ],
        vec!["create", "service", "clusterip", "web", "--tcp=80:8080"],
        vec!["create", "serviceaccount", "bot"],
        vec![
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods",
        ],
        vec![
            "create",
            "rolebinding",
            "bot-reads",
            "--role=reader",
            "--serviceaccount=demo:bot",
        ],
    ];
    for args in &commands {
        let all: Vec<&str> = ns.iter().chain(args.iter()).copied().collect();
        let out = t.kubectl(&all);
        assert_eq!(out.code, 0, "kubectl {all:?}: {}", out.stderr);
    }
    let cm = json_of(&t, &["-n", "demo", "get", "configmap", "settings"]);
    assert_eq!(cm["data"]["mode"], "fast");
    let secret = json_of(&t, &["-n", "demo", "get", "secret", "token"]);
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["data"]["key"], "czNjcjN0");
    let d = json_of(&t, &["-n", "demo", "get", "deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    let svc = json_of(&t, &["-n", "demo", "get", "service", "web"]);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    let rb = json_of(&t, &["-n", "demo", "get", "rolebinding", "bot-reads"]);
    assert_eq!(rb["subjects"][0]["name"], "bot");

    // Deleting the namespace takes everything in it along.
    t.kubectl_ok(&["delete", "namespace", "demo", "--timeout=20s"]);
    let out = t.kubectl(&["get", "namespace", "demo"]);
    assert!(out.stderr.contains("NotFound"), "{}", out.stderr);
    let out = t.kubectl_ok(&["get", "configmaps", "-A"]);
    assert!(!out.contains("settings"), "{out}");
}

const WIDGETS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        description: A widget of the test.
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, description: How big the widget is.}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn explain_describes_built_in_and_custom_kinds() {
    let t = TestServer::start().await;
    t.kubectl_ok(&["apply", "-f", upstream_crds_dir().to_str().unwrap()]);
    t.wait_established("serviceimports.multicluster.x-k8s.io");
    // A built-in kind, through the schemas its fields refer to.
    let out = t.kubectl_ok(&["explain", "pods.spec.containers.ports"]);
    assert!(out.contains("KIND:       Pod"), "{out}");
    assert!(out.contains("FIELD: ports <[]ContainerPort>"), "{out}");
    assert!(out.contains("containerPort\t<integer> -required-"), "{out}");
    // A custom resource: its CRD's schema, and metadata as every kind has it.
    let out = t.kubectl_ok(&["explain", "serviceimports.spec.ports"]);
    assert!(out.contains("GROUP:      multicluster.x-k8s.io"), "{out}");
    assert!(out.contains("KIND:       ServiceImport"), "{out}");
    assert!(out.contains("appProtocol\t<string>"), "{out}");
    let out = t.kubectl_ok(&["explain", "serviceexports.metadata.ownerReferences"]);
    assert!(out.contains("<[]OwnerReference>"), "{out}");
    assert!(out.contains("uid\t<string> -required-"), "{out}");
    let out = t.kubectl(&["explain", "serviceimports.spec.bogus"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("field \"bogus\" does not exist"),
        "{}",
        out.stderr
    );
    // Every kind served, reviews included.
    let resources = t.kubectl_ok(&["api-resources", "--no-headers"]);
    for line in resources.lines() {
        // NAME [SHORTNAMES] APIVERSION NAMESPACED KIND
        let columns: Vec<&str> = line.split_whitespace().collect();
        let (resource, api_version) = (columns[0], columns[columns.len() - 3]);
        let out = t.kubectl(&["explain", resource, "--api-version", api_version]);
        assert_eq!(out.code, 0, "explain {resource}: {}", out.stderr);
        assert!(out.stdout.contains("FIELDS:"), "{resource}: {}", out.stdout);
    }
    // A changed CRD changes the document's hash: kubectl's cache does not hide it.
    t.apply_yaml(WIDGETS, &[]);
    t.wait_established("widgets.example.com");
    let out = t.kubectl_ok(&["explain", "widgets.spec"]);
    assert!(out.contains("How big the widget is."), "{out}");
    assert!(!out.contains("color"), "{out}");
    let colored = WIDGETS.replace(
        "              size:",
        "              color: {type: string, description: Its colour.}\n              size:",
    );
    let out = t.apply_yaml(&colored, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    common::eventually(
        "the new field in explain",
        Duration::from_secs(10),
        || async {
            let out = t.kubectl_ok(&["explain", "widgets.spec"]);
            out.contains("color\t<string>").then_some(())
        },
    )
    .await;
}
