//! Shared test plumbing: an in-process API server, kubectl against it, and waiting
//! for conditions with a deadline.
#![allow(dead_code)]

pub mod garbage;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use clusterset::apiserver::{ApiServer, Config, SimConfig};

pub struct TestServer {
    pub server: ApiServer,
    pub client: kube::Client,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with_config(Config::default()).await
    }

    /// A server that behaves like a member cluster: simulated nodes, scheduler,
    /// kubelets and workload controllers.
    pub async fn simulated(sim: SimConfig) -> Self {
        Self::with_config(Config {
            simulate: Some(sim),
            ..Config::default()
        })
        .await
    }

    /// A server that authenticates (bearer tokens, ServiceAccount and bootstrap
    /// tokens) and authorizes with RBAC, like a real cluster; `kubeconfig()` is the
    /// administrator's. With `sim`, it also behaves like a member cluster.
    pub async fn authenticating(sim: Option<SimConfig>) -> Self {
        use clusterset::apiserver::auth::AuthConfig;
        use clusterset::apiserver::rbac::{UserInfo, ALL_AUTHENTICATED, PRIVILEGED_GROUP};
        use clusterset::apiserver::server::TlsConfig;
        // kubectl sends tokens only over TLS.
        let pki = tempfile::tempdir().expect("temp dir");
        let ca = clusterset::pki::Ca::load_or_create(pki.path()).expect("a CA");
        let pair = ca
            .issue_server("test", &["127.0.0.1", "localhost"])
            .expect("a server certificate");
        Self::with_config(Config {
            simulate: sim,
            tls: Some(TlsConfig {
                cert_pem: pair.cert_pem,
                key_pem: pair.key_pem,
                ca_pem: ca.cert_pem.clone(),
            }),
            auth: Some(AuthConfig {
                tokens: vec![(
                    "admin-token".into(),
                    UserInfo::new("admin", [PRIVILEGED_GROUP, ALL_AUTHENTICATED]),
                )],
                service_account_key: b"test service account key".to_vec(),
            }),
            ..Config::default()
        })
        .await
    }

    pub async fn with_config(config: Config) -> Self {
        let server = ApiServer::start(config).await.expect("server starts");
        let dir = tempfile::tempdir().expect("temp dir");
        server
            .write_kubeconfig(&dir.path().join("kubeconfig"), "test")
            .expect("kubeconfig written");
        let client = server.client();
        TestServer {
            server,
            client,
            dir,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Runs the real kubectl against this server; its own discovery cache keeps
    /// servers on reused ports apart.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let cache = self.dir.path().join("cache");
        let mut all = vec!["--cache-dir", cache.to_str().expect("a UTF-8 path")];
        all.extend_from_slice(args);
        kubectl_at(&self.kubeconfig(), &all, stdin)
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert_eq!(
            out.code, 0,
            "kubectl {args:?} failed: {}{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    /// Waits (kubectl wait, 10 s) until the CRD named `crd` is Established.
    pub fn wait_established(&self, crd: &str) {
        let target = format!("crd/{crd}");
        self.kubectl_ok(&[
            "wait",
            "--for=condition=established",
            &target,
            "--timeout=10s",
        ]);
    }

    pub fn apply_yaml(&self, yaml: &str, extra: &[&str]) -> Output {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.kubectl_stdin(&args, Some(yaml))
    }

    /// As a user would, with kubectl: a Deployment `name` of `replicas` nginx pods in
    /// `ns`, exposed on port 80 and exported.
    #[allow(dead_code)] // not every test binary exports
    pub fn export_deployment(&self, ns: &str, name: &str, replicas: u32) {
        let replicas = format!("--replicas={replicas}");
        let deployment = ["create", "deployment", name, "--image=nginx", &replicas];
        self.kubectl_ok(&[&["-n", ns][..], &deployment[..]].concat());
        self.kubectl_ok(&["-n", ns, "expose", "deployment", name, "--port=80"]);
        let export = format!(
            r#"{{"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport", "metadata": {{"name": "{name}", "namespace": "{ns}"}}}}"#
        );
        let out = self.apply_yaml(&export, &[]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
}

/// Runs the real kubectl with `kubeconfig`, feeding it `stdin`.
pub fn kubectl_at(kubeconfig: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl is installed at /usr/bin/kubectl");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("kubectl runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// kubectl with `kubeconfig` that must succeed; returns its stdout.
pub fn kubectl_at_ok(kubeconfig: &std::path::Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl_at(kubeconfig, args, stdin);
    assert_eq!(
        out.code, 0,
        "kubectl {args:?} failed: {}{}",
        out.stdout, out.stderr
    );
    out.stdout
}

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Polls `check` until it returns Some, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn upstream_crd(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/upstream-crds")
        .join(file)
}

pub fn upstream_crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/upstream-crds")
}

/// The A/AAAA answers `dig +short` gets for `name` from the DNS server at `server`.
pub fn dig_short(server: std::net::SocketAddr, name: &str) -> Vec<String> {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            "+short",
            "+time=2",
            "+tries=2",
            name,
        ])
        .output()
        .expect("dig runs (apt-get install bind9-dnsutils; `make test` does)");
    let mut answers: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    answers.sort();
    answers
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port()
}

/// A raw request, for what typed clients cannot send: its status code and body (Null
/// when not JSON). A watch that starts answers with its status alone. Panics when no
/// answer comes within 30 s, or the connection drops.
pub async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let what = format!("{method} {path} {}", String::from_utf8_lossy(&body));
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body)
        .unwrap();
    let exchange = async {
        let resp = client
            .send(req.map(kube::client::Body::from))
            .await
            .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        let code = resp.status().as_u16();
        if code == 200 && path.contains("watch=") {
            return (code, serde_json::Value::Null);
        }
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap_or_else(|e| panic!("{what}: body cut: {e}"))
            .to_bytes();
        (
            code,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 30 s"))
}
