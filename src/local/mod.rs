//! `clusterset local`: a whole clusterset on one machine — a hub and N member API
//! servers, each on its own loopback port, over TLS with token authentication and
//! RBAC, optionally durable — plus the files scripts rely on (DESIGN.md, "the
//! contract scripts rely on").

mod control;
pub mod controllers;
mod plan;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use serde_json::json;

use crate::apiserver::auth::AuthConfig;
use crate::apiserver::rbac::UserInfo;
use crate::apiserver::server::TlsConfig;
use crate::apiserver::sim::SimConfig;
use crate::apiserver::{ApiServer, Config};
use crate::pki::{self, Ca};
pub use control::{send as control_send, status_table};
pub use plan::{ClusterPlan, IpFamily, Role};

/// What `clusterset local up` was asked for.
#[derive(Clone, Debug)]
pub struct UpOptions {
    pub members: usize,
    pub dir: PathBuf,
    pub data_dir: Option<PathBuf>,
    pub ip_family: IpFamily,
    /// Install the MCS and about.k8s.io CRDs from these upstream files instead of the
    /// generated ones (the controllers must work with either).
    pub upstream_crds: Option<PathBuf>,
    /// Heartbeat interval, grace period and damping.
    pub controllers: controllers::ControllerOptions,
}

impl UpOptions {
    /// `members` members in `dir`, everything else as `local up` defaults it: in memory,
    /// IPv4, the generated CRDs, the default heartbeat, grace and damping.
    pub fn new(members: usize, dir: PathBuf) -> Self {
        UpOptions {
            members,
            dir,
            data_dir: None,
            ip_family: IpFamily::Ipv4,
            upstream_crds: None,
            controllers: Default::default(),
        }
    }
}

/// One running cluster of the local clusterset.
pub struct Cluster {
    pub plan: ClusterPlan,
    pub server: ApiServer,
}

/// A running local clusterset.
pub struct LocalClusterset {
    pub dir: PathBuf,
    pub clusters: Vec<Cluster>,
    pub controllers: Option<controllers::Controllers>,
    /// What the controllers were started with (to start them again the same way).
    pub controller_options: controllers::ControllerOptions,
    /// Members added while running (`clusterset local join`).
    joined: tokio::sync::Mutex<Vec<controllers::Joined>>,
    /// What starting one more cluster takes.
    setup: Setup,
    _lock: std::fs::File,
}

/// The clusters' shared trust and configuration.
struct Setup {
    ca: Ca,
    admin_token: String,
    sa_key: String,
    data_dir: Option<PathBuf>,
    crds: Vec<serde_json::Value>,
    ip_family: IpFamily,
}

pub const READY_LINE: &str = "clusterset ready";

impl LocalClusterset {
    /// Starts every cluster and writes `kubeconfig` and `local.json` once all serve.
    pub async fn up(opts: &UpOptions) -> anyhow::Result<Self> {
        if !(1..=99).contains(&opts.members) {
            bail!("--members must be between 1 and 99, got {}", opts.members);
        }
        std::fs::create_dir_all(&opts.dir)
            .with_context(|| format!("cannot create {}", opts.dir.display()))?;
        let lock = lock_dir(&opts.dir)?;
        // Files from an earlier run must not be mistaken for this one's readiness.
        for stale in ["kubeconfig", "local.json"] {
            let _ = std::fs::remove_file(opts.dir.join(stale));
        }
        let pki_dir = opts.dir.join("pki");
        let ca = Ca::load_or_create(&pki_dir)?;
        let admin_token = pki::load_or_create_token(&pki_dir.join("admin.token"))?;
        let sa_key = pki::load_or_create_token(&pki_dir.join("service-account.key"))?;
        let plans = plan::plan(opts.members, opts.ip_family);
        let crds = plan::crds(opts.upstream_crds.as_deref())?;
        let starts = plans.iter().map(|p| {
            start_cluster(
                p,
                &ca,
                &admin_token,
                &sa_key,
                opts.data_dir.as_deref(),
                &crds,
            )
        });
        let servers = futures::future::try_join_all(starts).await?;
        let clusters: Vec<Cluster> = plans
            .into_iter()
            .zip(servers)
            .map(|(plan, server)| Cluster { plan, server })
            .collect();
        let controllers = controllers::Controllers::start(&clusters, &opts.controllers).await?;
        let local = LocalClusterset {
            dir: opts.dir.clone(),
            clusters,
            controllers: Some(controllers),
            controller_options: opts.controllers,
            joined: tokio::sync::Mutex::new(Vec::new()),
            setup: Setup {
                ca,
                admin_token,
                sa_key,
                data_dir: opts.data_dir.clone(),
                crds,
                ip_family: opts.ip_family,
            },
            _lock: lock,
        };
        {
            let mut joined = local.joined.lock().await;
            local.restore_joined(&mut joined).await?;
            local.write_files(&joined)?;
        }
        Ok(local)
    }

    /// With a data directory, members added by `local join` in an earlier run (their
    /// stores are `member-<n>` past `--members`) come back, with the identity they
    /// joined with, instead of being left for the hub to declare dead.
    async fn restore_joined(&self, joined: &mut Vec<controllers::Joined>) -> anyhow::Result<()> {
        let Some(data) = &self.setup.data_dir else {
            return Ok(());
        };
        loop {
            let next = self.clusters.len() + joined.len();
            if next > 99 || !data.join(format!("member-{next}")).is_dir() {
                return Ok(());
            }
            let member = self.start_joined(next).await?;
            tracing::info!(member = %member.cluster.plan.name, "member added by local join restored");
            joined.push(member);
        }
    }

    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.plan.name == name)
    }

    /// Where a member's clusterset.local DNS server answers.
    pub fn dns_addr(&self, member: &str) -> Option<std::net::SocketAddr> {
        let controllers = self.controllers.as_ref()?;
        controllers
            .dns
            .iter()
            .find(|(name, _)| name == member)
            .map(|(_, dns)| dns.addr)
            .or_else(|| {
                let joined = self.joined.try_lock().ok()?;
                joined
                    .iter()
                    .find(|j| j.cluster.plan.name == member)
                    .map(|j| j.dns.addr)
            })
    }

    /// Starts one more member cluster and joins it through the registration flow;
    /// kubeconfig and local.json then list it. Its name.
    pub async fn join_member(&self) -> anyhow::Result<String> {
        let mut joined = self.joined.lock().await;
        let members = self.clusters.len() - 1 + joined.len() + 1;
        if members > 99 {
            bail!("a local clusterset has at most 99 members");
        }
        let member = self.start_joined(members).await?;
        let name = member.cluster.plan.name.clone();
        joined.push(member);
        self.write_files(&joined)?;
        Ok(name)
    }

    /// Starts member `n` (in its data directory, if any) and joins it, or lets it
    /// resume as the member its store says it is.
    async fn start_joined(&self, n: usize) -> anyhow::Result<controllers::Joined> {
        let plan = plan::plan(n, self.setup.ip_family)
            .pop()
            .expect("a plan has its members");
        let s = &self.setup;
        let server = start_cluster(
            &plan,
            &s.ca,
            &s.admin_token,
            &s.sa_key,
            s.data_dir.as_deref(),
            &s.crds,
        )
        .await?;
        let hub = &self
            .cluster("hub")
            .context("a local clusterset has a hub")?
            .server;
        let cluster = Cluster { plan, server };
        controllers::Joined::start(cluster, hub, &self.controller_options).await
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn write_files(&self, joined: &[controllers::Joined]) -> anyhow::Result<()> {
        use base64::Engine;
        let ca_data = base64::engine::general_purpose::STANDARD.encode(&self.setup.ca.cert_pem);
        let all: Vec<(&Cluster, Option<std::net::SocketAddr>)> = self
            .clusters
            .iter()
            .map(|c| (c, self.dns_addr(&c.plan.name)))
            .chain(joined.iter().map(|j| (&j.cluster, Some(j.dns.addr))))
            .collect();
        let names: Vec<&str> = all.iter().map(|(c, _)| c.plan.name.as_str()).collect();
        let kubeconfig = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": all.iter().map(|(c, _)| json!({"name": c.plan.name, "cluster": {"server": c.server.url(), "certificate-authority-data": ca_data}})).collect::<Vec<_>>(),
            "users": [{"name": "clusterset-admin", "user": {"token": self.setup.admin_token}}],
            "contexts": names.iter().map(|n| json!({"name": n, "context": {"cluster": n, "user": "clusterset-admin"}})).collect::<Vec<_>>(),
            "current-context": "member-1",
        });
        let local = json!({
            "clusters": all.iter().map(|(c, dns)| c.plan.describe(&c.server.url(), *dns)).collect::<Vec<_>>(),
        });
        crate::fsutil::write_private(
            &self.kubeconfig_path(),
            serde_yaml::to_string(&kubeconfig)?.as_bytes(),
        )?;
        crate::fsutil::write_atomic(
            &self.dir.join("local.json"),
            serde_json::to_string_pretty(&local)?.as_bytes(),
        )?;
        Ok(())
    }

    /// Serves the control socket (down, status, stop/start of one cluster) until
    /// asked to stop or a signal arrives, then stops every cluster.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let this = Arc::new(self);
        control::serve(this.clone()).await?;
        let this =
            Arc::into_inner(this).expect("the control loop holds no references once it ends");
        this.down().await;
        Ok(())
    }

    pub async fn down(mut self) {
        // Controllers first, so none of them logs the servers going away.
        drop(self.controllers.take());
        let joined = std::mem::take(self.joined.get_mut());
        let joined: Vec<Cluster> = joined.into_iter().map(controllers::Joined::stop).collect();
        let stops = self
            .clusters
            .into_iter()
            .chain(joined)
            .map(|c| c.server.shutdown());
        futures::future::join_all(stops).await;
        // Nothing answers at these addresses any more.
        for gone in [control::SOCKET, "local.json", "kubeconfig"] {
            let _ = std::fs::remove_file(self.dir.join(gone));
        }
    }
}

/// One process per directory: a second `up` finds the lock held.
fn lock_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("up.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)?;
    if file.try_lock().is_err() {
        let pid = std::fs::read_to_string(&path).unwrap_or_default();
        bail!(
            "a clusterset is already running in {} (pid {}); stop it with `clusterset local down --dir {}`",
            dir.display(),
            pid.trim(),
            dir.display()
        );
    }
    file.set_len(0)?;
    std::io::Write::write_all(&mut &file, std::process::id().to_string().as_bytes())?;
    Ok(file)
}

async fn start_cluster(
    p: &ClusterPlan,
    ca: &Ca,
    admin_token: &str,
    sa_key: &str,
    data_dir: Option<&Path>,
    crds: &[serde_json::Value],
) -> anyhow::Result<ApiServer> {
    let pair = ca.issue_server(&p.name, &["127.0.0.1", "localhost", "::1"])?;
    let admin = UserInfo::new(
        "clusterset-admin",
        [
            crate::apiserver::rbac::PRIVILEGED_GROUP,
            crate::apiserver::rbac::ALL_AUTHENTICATED,
        ],
    );
    let config = Config {
        service_cidrs: p.service_cidrs.clone(),
        data_dir: data_dir.map(|d| d.join(&p.name)),
        tls: Some(TlsConfig {
            cert_pem: pair.cert_pem,
            key_pem: pair.key_pem,
            ca_pem: ca.cert_pem.clone(),
        }),
        auth: Some(AuthConfig {
            tokens: vec![(admin_token.to_string(), admin)],
            service_account_key: sa_key.as_bytes().to_vec(),
        }),
        // Members run pods; the hub is only a control plane.
        simulate: (p.role == Role::Member).then(|| SimConfig {
            pod_cidrs: p.pod_cidrs.clone(),
            cluster_name: p.name.clone(),
            ..SimConfig::default()
        }),
        ..Config::default()
    };
    let server = ApiServer::start(config)
        .await
        .with_context(|| format!("cannot start cluster {}", p.name))?;
    plan::prepare(&server, p, crds)
        .with_context(|| format!("cannot prepare cluster {}", p.name))?;
    if p.role == Role::Member {
        let nodes = SimConfig::default().nodes;
        wait_for_nodes(&server, nodes)
            .await
            .with_context(|| format!("cluster {}", p.name))?;
    }
    Ok(server)
}

/// A member is ready once its nodes have registered and report Ready.
async fn wait_for_nodes(server: &ApiServer, want: usize) -> anyhow::Result<()> {
    let nodes = crate::apiserver::store::GroupResource::new("", "nodes");
    let mut changes = server.state.store.subscribe();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        changes.borrow_and_update();
        let ready = server
            .state
            .store
            .list(&nodes, None, None)
            .1
            .iter()
            .filter(|(_, n)| node_ready(&n.value()))
            .count();
        if ready >= want {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            bail!("only {ready} of {want} nodes became Ready");
        }
    }
}

fn node_ready(node: &serde_json::Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}
