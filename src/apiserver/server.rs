//! Starting and stopping one API server, in-process or as `clusterset apiserver`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ipnet::IpNet;
use parking_lot::Mutex;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::auth::{self, Auth, AuthConfig, PolicyFollower};
use super::builtin::builtin_types;
use super::http::{router, App};
use super::ipalloc::Allocator;
use super::registry::Registry;
use super::resources::{State, WriteOptions};
use super::sim::{self, SimConfig};
use super::store::Store;
use super::telemetry::Metrics;
use super::{controllers, registry::ResourceType};

/// The server's certificate and key, and the CA clients should trust.
#[derive(Clone)]
pub struct TlsConfig {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

pub struct Config {
    pub listen: SocketAddr,
    /// Service CIDRs, primary family first (two for dual-stack).
    pub service_cidrs: Vec<IpNet>,
    /// How many changes watches can resume from.
    pub history_limit: usize,
    pub bookmark_interval: Duration,
    /// Where objects are kept durably; None keeps them in memory only.
    pub data_dir: Option<std::path::PathBuf>,
    /// HTTPS (HTTP/2 and HTTP/1.1) instead of plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Bearer-token authentication and RBAC; None serves everyone as an administrator.
    pub auth: Option<AuthConfig>,
    /// Simulated nodes, scheduler, kubelets and workload controllers, which make
    /// the server behave like a real member cluster (`clusterset local up`).
    pub simulate: Option<SimConfig>,
    /// How long an Event lives after its last write (kube-apiserver's `--event-ttl`).
    pub event_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            service_cidrs: vec!["10.96.0.0/12".parse().expect("valid CIDR")],
            history_limit: 100_000,
            bookmark_interval: Duration::from_secs(60),
            data_dir: None,
            tls: None,
            auth: None,
            simulate: None,
            event_ttl: Duration::from_secs(3600),
        }
    }
}

/// A running API server.
pub struct ApiServer {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    pub auth: Option<Arc<Auth>>,
    tls: Option<TlsConfig>,
    app: Arc<App>,
    /// Ends the controllers, for good.
    stop: watch::Sender<bool>,
    /// Ends serving (listener, connections, watches) until resumed.
    serving: watch::Sender<bool>,
    listener: Mutex<Option<JoinHandle<()>>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Namespaces every cluster starts with.
const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl ApiServer {
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let store = match &config.data_dir {
            Some(dir) => Store::open(dir, config.history_limit)
                .with_context(|| format!("cannot open the data directory {}", dir.display()))?,
            None => Store::new(config.history_limit),
        };
        let state = State::new(
            Registry::new(builtin_types()),
            store,
            Allocator::new(&config.service_cidrs),
        );
        state.restore();
        bootstrap(&state)?;
        let auth = config.auth.map(|a| Arc::new(Auth::new(a)));
        if auth.is_some() {
            auth::bootstrap_rbac(&state)?;
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let (serving, not_serving) = watch::channel(false);
        let app = Arc::new(App {
            state: state.clone(),
            server_address: addr.to_string(),
            bookmark_interval: config.bookmark_interval,
            metrics: Metrics::new(),
            stopping: not_serving,
            auth: auth.clone(),
        });
        let mut tasks = controllers::spawn(state.clone(), stopped.clone(), config.event_ttl);
        if let Some(auth) = &auth {
            let follower = PolicyFollower::new(auth.clone());
            tasks.push(tokio::spawn(controllers::follow(
                state.clone(),
                stopped.clone(),
                follower,
            )));
        }
        if let Some(sim) = &config.simulate {
            tasks.extend(sim::spawn(state.clone(), stopped.clone(), sim.clone()));
        }
        let server = ApiServer {
            addr,
            state,
            auth,
            tls: config.tls,
            app,
            stop,
            serving,
            listener: Mutex::new(None),
            tasks,
        };
        server.serve(listener)?;
        tracing::info!(%addr, tls = server.tls.is_some(), "API server serving");
        Ok(server)
    }

    fn serve(&self, listener: TcpListener) -> anyhow::Result<()> {
        let acceptor = self.tls.as_ref().map(tls_acceptor).transpose()?;
        self.serving.send_replace(false);
        let task = tokio::spawn(serve_loop(
            listener,
            router(self.app.clone()),
            acceptor,
            self.serving.subscribe(),
        ));
        *self.listener.lock() = Some(task);
        Ok(())
    }

    /// Stops answering, as a crashed API server would: the port closes and open
    /// connections and watches end. The objects stay, for [`ApiServer::resume_serving`].
    pub async fn stop_serving(&self) {
        self.serving.send_replace(true);
        let task = self.listener.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Serves again on the same address.
    pub async fn resume_serving(&self) -> anyhow::Result<()> {
        if self.listener.lock().is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("cannot listen on {} again", self.addr))?;
        self.serve(listener)
    }

    pub fn is_serving(&self) -> bool {
        self.listener.lock().is_some()
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// A kube client for this server, as the administrator when it authenticates.
    pub fn client(&self) -> kube::Client {
        let token = self.admin_token();
        self.client_with_token(token.as_deref())
    }

    /// A kube client presenting `token` (or no credentials).
    pub fn client_with_token(&self, token: Option<&str>) -> kube::Client {
        let mut config = kube::Config::new(self.url().parse().expect("a valid URL"));
        if let Some(tls) = &self.tls {
            config.root_cert = Some(vec![pem_der(&tls.ca_pem)]);
        }
        if let Some(token) = token {
            config.auth_info.token = Some(token.to_string().into());
        }
        kube::Client::try_from(config).expect("a client for a known server always builds")
    }

    /// A kube client authenticating as the ServiceAccount `ns/name`, which must exist
    /// (without authentication, the administrator's).
    pub fn service_account_client(&self, ns: &str, name: &str) -> anyhow::Result<kube::Client> {
        let Some(auth) = &self.auth else {
            return Ok(self.client());
        };
        let sa = self
            .state
            .store
            .get(
                &super::store::GroupResource::new("", "serviceaccounts"),
                ns,
                name,
            )
            .ok_or_else(|| anyhow::anyhow!("ServiceAccount {ns}/{name} does not exist"))?;
        let uid = sa.value()["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok(self.client_with_token(Some(&auth.service_account_token(ns, name, &uid))))
    }

    /// The administrator's token, when the server authenticates.
    pub fn admin_token(&self) -> Option<String> {
        self.auth
            .as_ref()?
            .token_of_group(super::rbac::PRIVILEGED_GROUP)
    }

    /// A kubeconfig with one context named `name` for the administrator.
    pub fn kubeconfig_yaml(&self, name: &str) -> String {
        let mut cluster = json!({"server": self.url()});
        if let Some(tls) = &self.tls {
            use base64::Engine;
            cluster["certificate-authority-data"] =
                json!(base64::engine::general_purpose::STANDARD.encode(&tls.ca_pem));
        }
        let user = match self.admin_token() {
            Some(token) => json!({"token": token}),
            None => json!({}),
        };
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": cluster}],
            "users": [{"name": format!("{name}-admin"), "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": format!("{name}-admin")}}],
            "current-context": name,
        });
        serde_yaml::to_string(&doc).expect("a kubeconfig always serializes")
    }

    /// Writes the kubeconfig atomically: a reader never sees half a file.
    pub fn write_kubeconfig(&self, path: &std::path::Path, name: &str) -> anyhow::Result<()> {
        crate::fsutil::write_atomic(path, self.kubeconfig_yaml(name).as_bytes())
    }

    /// Stops serving and the controllers, and waits for them.
    pub async fn shutdown(self) {
        self.stop_serving().await;
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Accepts connections (TLS when configured), each served as HTTP/1.1 or HTTP/2,
/// until `stop` turns true; then lets requests finish, briefly.
async fn serve_loop(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let (tls, watcher) = (tls.clone(), graceful.watcher());
        tokio::spawn(async move {
            let builder = Builder::new(TokioExecutor::new());
            match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let conn = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .into_owned();
                        let _ = watcher.watch(conn).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                },
                None => {
                    let conn = builder
                        .serve_connection(TokioIo::new(tcp), service)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

fn tls_acceptor(tls: &TlsConfig) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs =
        CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The DER bytes of the first certificate in a PEM text.
fn pem_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("the CA certificate is valid PEM")
        .to_vec()
}

fn bootstrap(state: &State) -> anyhow::Result<()> {
    let ns_type: Arc<ResourceType> = state
        .registry
        .find_kind("", "Namespace")
        .expect("namespaces are built in");
    let opts = WriteOptions::default();
    for ns in SYSTEM_NAMESPACES {
        if state.store.get(&ns_type.gr(), "", ns).is_some() {
            continue;
        }
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        state
            .create(&ns_type, "", obj, &opts)
            .map_err(|e| anyhow::anyhow!("cannot create namespace {ns}: {e}"))?;
    }
    Ok(())
}
