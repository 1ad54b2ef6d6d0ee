//! Starting and stopping one API server, in-process or as `clusterset apiserver`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ipnet::IpNet;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::builtin::builtin_types;
use super::http::{router, App};
use super::ipalloc::Allocator;
use super::registry::Registry;
use super::resources::{State, WriteOptions};
use super::sim::{self, SimConfig};
use super::store::Store;
use super::telemetry::Metrics;
use super::{controllers, registry::ResourceType};

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Service CIDRs, primary family first (two for dual-stack).
    pub service_cidrs: Vec<IpNet>,
    /// How many changes watches can resume from.
    pub history_limit: usize,
    pub bookmark_interval: Duration,
    /// Simulated nodes, scheduler, kubelets and workload controllers, which make
    /// the server behave like a real member cluster (`clusterset local up`).
    pub simulate: Option<SimConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            service_cidrs: vec!["10.96.0.0/12".parse().expect("valid CIDR")],
            history_limit: 100_000,
            bookmark_interval: Duration::from_secs(60),
            simulate: None,
        }
    }
}

/// A running API server.
pub struct ApiServer {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Namespaces every cluster starts with.
const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl ApiServer {
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let state = State::new(
            Registry::new(builtin_types()),
            Store::new(config.history_limit),
            Allocator::new(&config.service_cidrs),
        );
        bootstrap(&state)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let app = Arc::new(App {
            state: state.clone(),
            server_address: addr.to_string(),
            bookmark_interval: config.bookmark_interval,
            metrics: Metrics::new(),
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = controllers::spawn(state.clone(), stopped.clone());
        if let Some(sim) = &config.simulate {
            tasks.extend(sim::spawn(state.clone(), stopped.clone(), sim.clone()));
        }
        let mut until_stopped = stopped;
        tasks.push(tokio::spawn(async move {
            let serve = axum::serve(listener, router(app)).with_graceful_shutdown(async move {
                let _ = until_stopped.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "API server stopped with an error");
            }
        }));
        tracing::info!(%addr, "API server serving");
        Ok(ApiServer {
            addr,
            state,
            stop,
            tasks,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client for this server.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("a valid URL"));
        kube::Client::try_from(config).expect("a plain HTTP client always builds")
    }

    /// An admin kubeconfig with one context named `name`.
    pub fn kubeconfig_yaml(&self, name: &str) -> String {
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": self.url()}}],
            "users": [{"name": format!("{name}-admin"), "user": {}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": format!("{name}-admin")}}],
            "current-context": name,
        });
        serde_yaml::to_string(&doc).expect("a kubeconfig always serializes")
    }

    /// Writes the kubeconfig atomically: a reader never sees half a file.
    pub fn write_kubeconfig(&self, path: &std::path::Path, name: &str) -> anyhow::Result<()> {
        crate::fsutil::write_atomic(path, self.kubeconfig_yaml(name).as_bytes())
    }

    /// Stops serving and waits for in-flight work to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn bootstrap(state: &State) -> anyhow::Result<()> {
    let ns_type: Arc<ResourceType> = state
        .registry
        .find_kind("", "Namespace")
        .expect("namespaces are built in");
    let opts = WriteOptions::default();
    for ns in SYSTEM_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        state
            .create(&ns_type, "", obj, &opts)
            .map_err(|e| anyhow::anyhow!("cannot create namespace {ns}: {e}"))?;
    }
    Ok(())
}
