use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use clusterset::apiserver::{ApiServer, Config};
use clusterset::local::{self, IpFamily, LocalClusterset, UpOptions};
use clusterset::telemetry;

#[derive(Parser)]
#[command(
    name = "clusterset",
    version,
    about = "Kubernetes Multi-Cluster Services, and a clusterset on one machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A whole clusterset on this machine: a hub and member API servers.
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
    /// The hub controller: merges every member's exports into imports.
    Hub {
        #[command(flatten)]
        hub: HubAccess,
        #[command(flatten)]
        probes: Probes,
        /// Hand out one clusterset-wide VIP per family to each ClusterSetIP import
        /// from these CIDRs (one per family); without it each member uses its derived
        /// Service's IPs.
        #[arg(long = "clusterset-ip-cidr")]
        clusterset_ip_cidrs: Vec<ipnet::IpNet>,
        /// Also run the agent for every member whose kubeconfig is in a Secret of
        /// clusterset-system labelled mcs.clusterset.io/member-kubeconfig: the hub
        /// enrols such a member (hub namespace and ManagedCluster named after the
        /// Secret) and heart-beats for it; deleting the Secret removes the member.
        #[arg(long)]
        push: bool,
        /// Approve every admissible registration request without `clusterset approve`.
        #[arg(long)]
        auto_approve: bool,
        /// The clusterset's name, recorded in each member's ClusterProperty clusterset.k8s.io.
        #[arg(long, default_value = "clusterset")]
        clusterset_name: String,
        /// A member whose heartbeat is older than this is not ready; its endpoints are
        /// withdrawn from every import.
        #[arg(long, default_value = "30s", value_parser = clusterset::roles::parse_duration)]
        grace_period: std::time::Duration,
        /// The least time between two changes of a member's readiness.
        #[arg(long, default_value = "10s", value_parser = clusterset::roles::parse_duration)]
        damping: std::time::Duration,
        /// How long the hub token a joining member receives is valid.
        #[arg(long, default_value = "8760h", value_parser = clusterset::roles::parse_duration)]
        credential_ttl: std::time::Duration,
        /// How long an answered registration request is kept (once its token is collected).
        #[arg(long, default_value = "1h", value_parser = clusterset::roles::parse_duration)]
        request_retention: std::time::Duration,
    },
    /// The member agent: reports this cluster's exports to the hub and materialises
    /// imports. Without --hub-kubeconfig/--hub-context it uses the credentials
    /// `clusterset join` kept in the member, and heart-beats to the hub.
    Agent {
        #[command(flatten)]
        member: MemberAccess,
        #[command(flatten)]
        hub: HubAccess,
        /// The member's cluster ID (default: its ClusterProperty cluster.clusterset.k8s.io).
        #[arg(long)]
        cluster_id: Option<String>,
        /// How often a joined member renews its heartbeat Lease on the hub.
        #[arg(long, default_value = "5s", value_parser = clusterset::roles::parse_duration)]
        heartbeat_interval: std::time::Duration,
        #[command(flatten)]
        probes: Probes,
    },
    /// Join this cluster (--kubeconfig/--context) to the hub in --hub-kubeconfig.
    Join {
        #[command(flatten)]
        member: MemberAccess,
        /// A kubeconfig naming the hub's server and CA (its user is not used).
        #[arg(long)]
        hub_kubeconfig: PathBuf,
        /// A bootstrap token from `clusterset token create` on the hub.
        #[arg(long, env = "CLUSTERSET_TOKEN")]
        token: String,
        /// The member's name on the hub (default: its cluster ID).
        #[arg(long)]
        name: Option<String>,
        /// How long to wait for the hub's answer.
        #[arg(long, default_value = "5m", value_parser = clusterset::roles::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Take this cluster out of its clusterset.
    Leave {
        #[command(flatten)]
        member: MemberAccess,
        /// Leave even if the hub cannot be told (then delete the ManagedCluster there).
        #[arg(long)]
        force: bool,
    },
    /// Approve a cluster's registration request (by request name or cluster name).
    Approve {
        name: String,
        #[command(flatten)]
        hub: MemberAccess,
        #[arg(long, default_value = "approved with clusterset approve")]
        message: String,
    },
    /// Deny a cluster's registration request (by request name or cluster name).
    Deny {
        name: String,
        #[command(flatten)]
        hub: MemberAccess,
        /// Why, for the joining cluster to read.
        #[arg(long)]
        reason: String,
    },
    /// Bootstrap tokens on the hub, for `clusterset join`.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The clusterset.local DNS server of one member, answering from its imports.
    Dns {
        #[command(flatten)]
        member: MemberAccess,
        /// Where DNS is served, over UDP and TCP; port 0 picks a free port.
        #[arg(long, default_value = "0.0.0.0:53")]
        listen: SocketAddr,
        /// TTL of the answers, in seconds (the version TXT record keeps a long one).
        #[arg(long, default_value_t = clusterset::dns::DEFAULT_TTL)]
        ttl: u32,
        /// Threads answering UDP (default: one per CPU).
        #[arg(long)]
        udp_threads: Option<usize>,
        /// Where /metrics, /healthz and /readyz are served.
        #[arg(long, default_value = "127.0.0.1:9090")]
        probe_listen: SocketAddr,
    },
    /// Write the CRD YAML generated from the API types into a directory.
    Crds {
        #[arg(long, default_value = "crds")]
        out: PathBuf,
    },
    /// Run an embedded Kubernetes-compatible API server.
    Apiserver {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// Where to write the admin kubeconfig once serving.
        #[arg(long, default_value = "kubeconfig")]
        kubeconfig: PathBuf,
        /// Keep objects durably in this directory (SQLite); in memory without it.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Service CIDRs, primary family first; give two for dual-stack.
        #[arg(long = "service-cidr", default_value = "10.96.0.0/12")]
        service_cidrs: Vec<ipnet::IpNet>,
        /// Name of the cluster and context in the kubeconfig.
        #[arg(long, default_value = "clusterset")]
        name: String,
        /// How long an Event lives after its last write.
        #[arg(long, default_value = "1h", value_parser = clusterset::roles::parse_duration)]
        event_ttl: std::time::Duration,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a bootstrap token that lets clusters file registration requests.
    Create {
        #[command(flatten)]
        hub: MemberAccess,
        /// How long the token works.
        #[arg(long, default_value = "24h", value_parser = clusterset::roles::parse_duration)]
        ttl: std::time::Duration,
    },
}

/// The cluster a command acts on.
#[derive(clap::Args)]
struct MemberAccess {
    /// The cluster's kubeconfig (default: KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    #[arg(long)]
    context: Option<String>,
}

impl MemberAccess {
    fn access(self) -> clusterset::roles::ClusterAccess {
        clusterset::roles::ClusterAccess {
            kubeconfig: self.kubeconfig,
            context: self.context,
        }
    }
}

#[derive(clap::Args)]
struct HubAccess {
    /// The hub cluster's kubeconfig (default: KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long)]
    hub_kubeconfig: Option<PathBuf>,
    #[arg(long)]
    hub_context: Option<String>,
}

impl HubAccess {
    fn access(self) -> clusterset::roles::ClusterAccess {
        clusterset::roles::ClusterAccess {
            kubeconfig: self.hub_kubeconfig,
            context: self.hub_context,
        }
    }

    /// The hub when one is named.
    fn given(self) -> Option<clusterset::roles::ClusterAccess> {
        (self.hub_kubeconfig.is_some() || self.hub_context.is_some()).then(|| self.access())
    }
}

#[derive(clap::Args)]
struct Probes {
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "127.0.0.1:9090")]
    probe_listen: SocketAddr,
    /// Reconciles that may run at once.
    #[arg(long, default_value_t = 8)]
    workers: usize,
}

#[derive(Subcommand)]
enum LocalCommand {
    /// Start the clusterset in the foreground; SIGINT, SIGTERM or `local down` stops it.
    Up {
        #[arg(long, default_value_t = 3)]
        members: usize,
        /// Where kubeconfig, local.json, certificates and the control socket go.
        #[arg(long, default_value = ".clusterset")]
        dir: PathBuf,
        /// Keep every cluster's objects durably under this directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "ipv4")]
        ip_family: IpFamily,
        /// Install the upstream MCS/about CRD files found in this directory instead of
        /// the generated ones.
        #[arg(long)]
        upstream_crds: Option<PathBuf>,
        /// How often members renew their heartbeat Lease on the hub.
        #[arg(long, default_value = "5s", value_parser = clusterset::roles::parse_duration)]
        heartbeat_interval: std::time::Duration,
        /// A member whose heartbeat is older than this loses its endpoints everywhere.
        #[arg(long, default_value = "30s", value_parser = clusterset::roles::parse_duration)]
        grace_period: std::time::Duration,
        /// The least time between two changes of a member's readiness.
        #[arg(long, default_value = "10s", value_parser = clusterset::roles::parse_duration)]
        damping: std::time::Duration,
    },
    /// Stop the clusterset running in DIR.
    Down {
        #[arg(long, default_value = ".clusterset")]
        dir: PathBuf,
    },
    /// Print the clusters and whether each API server answers.
    Status {
        #[arg(long, default_value = ".clusterset")]
        dir: PathBuf,
    },
    /// Add one more member cluster to the running clusterset; it joins the hub with a
    /// bootstrap token, as a real cluster does.
    Join {
        #[arg(long, default_value = ".clusterset")]
        dir: PathBuf,
    },
    /// Stop or start one cluster's API server (hub or a member), to try failures.
    Member {
        #[arg(value_parser = ["stop", "start"])]
        action: String,
        name: String,
        #[arg(long, default_value = ".clusterset")]
        dir: PathBuf,
    },
}

async fn local(command: LocalCommand) -> anyhow::Result<()> {
    match command {
        LocalCommand::Up {
            members,
            dir,
            data_dir,
            ip_family,
            upstream_crds,
            heartbeat_interval,
            grace_period,
            damping,
        } => {
            let started = std::time::Instant::now();
            let opts = UpOptions {
                members,
                dir: dir.clone(),
                data_dir,
                ip_family,
                upstream_crds,
                controllers: local::controllers::ControllerOptions {
                    health: clusterset::membership::health::HealthConfig {
                        grace: grace_period,
                        damping,
                    },
                    heartbeat: heartbeat_interval,
                },
            };
            let clusterset = LocalClusterset::up(&opts).await?;
            println!(
                "{} in {:.2}s: hub and {members} members; kubeconfig {}, clusters in {}",
                local::READY_LINE,
                started.elapsed().as_secs_f64(),
                clusterset.kubeconfig_path().display(),
                dir.join("local.json").display()
            );
            clusterset.run_until_stopped().await?;
            println!("clusterset stopped");
            Ok(())
        }
        LocalCommand::Down { dir } => {
            local::control_send(&dir, "down").await?;
            wait_for_exit(&dir).await;
            println!("clusterset in {} stopped", dir.display());
            Ok(())
        }
        LocalCommand::Join { dir } => {
            println!(
                "{}",
                local::control_send(&dir, "join")
                    .await?
                    .trim_start_matches("ok: ")
            );
            Ok(())
        }
        LocalCommand::Status { dir } => {
            println!("{}", local::status_table(&dir).await?);
            Ok(())
        }
        LocalCommand::Member { action, name, dir } => {
            println!(
                "{}",
                local::control_send(&dir, &format!("{action} {name}"))
                    .await?
                    .trim_start_matches("ok: ")
            );
            Ok(())
        }
    }
}

/// The running `up` holds DIR/up.lock until it has stopped every cluster.
async fn wait_for_exit(dir: &std::path::Path) {
    let Ok(file) = std::fs::File::open(dir.join("up.lock")) else {
        return;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while file.try_lock_shared().is_err() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    telemetry::init_logging();
    if let Err(e) = run(Cli::parse().command).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Local { command } => local(command).await,
        Command::Hub {
            hub,
            probes,
            clusterset_ip_cidrs,
            push,
            auto_approve,
            clusterset_name,
            grace_period,
            damping,
            credential_ttl,
            request_retention,
        } => {
            clusterset::roles::run_hub(clusterset::roles::HubOptions {
                hub: hub.access(),
                probe_listen: probes.probe_listen,
                workers: probes.workers,
                clusterset_ip_cidrs,
                registration: clusterset::membership::registrar::RegistrarConfig {
                    auto_approve,
                    clusterset: clusterset_name,
                    credential_ttl,
                    request_retention,
                },
                health: clusterset::membership::health::HealthConfig {
                    grace: grace_period,
                    damping,
                },
                push,
            })
            .await
        }
        Command::Agent {
            member,
            hub,
            cluster_id,
            heartbeat_interval,
            probes,
        } => {
            clusterset::roles::run_agent(clusterset::roles::AgentOptions {
                member: member.access(),
                hub: hub.given(),
                heartbeat: heartbeat_interval,
                cluster_id,
                probe_listen: probes.probe_listen,
                workers: probes.workers,
            })
            .await
        }
        Command::Join {
            member,
            hub_kubeconfig,
            token,
            name,
            timeout,
        } => {
            let client = member.access().client().await.context("member cluster")?;
            let hub = kube::config::Kubeconfig::read_from(&hub_kubeconfig)
                .with_context(|| format!("cannot read {}", hub_kubeconfig.display()))?;
            let opts = clusterset::membership::join::JoinOptions { name, timeout };
            let joined = clusterset::membership::join::join(&client, &hub, &token, &opts).await?;
            let c = &joined.credentials;
            match joined.already {
                true => println!("already a member as {} (cluster ID {})", c.cluster_name, c.cluster_id),
                false => println!(
                    "joined as {} (cluster ID {}, hub namespace {}); the agent picks up Secret clusterset-system/clusterset-hub",
                    c.cluster_name, c.cluster_id, c.namespace
                ),
            }
            Ok(())
        }
        Command::Leave { member, force } => {
            let client = member.access().client().await.context("member cluster")?;
            let left = clusterset::membership::join::leave(&client, force).await?;
            println!(
                "{} (cluster ID {}) left the clusterset",
                left.cluster_name, left.cluster_id
            );
            Ok(())
        }
        Command::Approve { name, hub, message } => {
            let client = hub.access().client().await.context("hub cluster")?;
            let request =
                clusterset::membership::join::answer_request(&client, &name, true, &message)
                    .await?;
            println!("clusterregistrationrequest/{request} approved");
            Ok(())
        }
        Command::Deny { name, hub, reason } => {
            let client = hub.access().client().await.context("hub cluster")?;
            let request =
                clusterset::membership::join::answer_request(&client, &name, false, &reason)
                    .await?;
            println!("clusterregistrationrequest/{request} denied");
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Create { hub, ttl },
        } => {
            let client = hub.access().client().await.context("hub cluster")?;
            println!(
                "{}",
                clusterset::membership::join::create_token(&client, ttl).await?
            );
            Ok(())
        }
        Command::Dns {
            member,
            listen,
            ttl,
            udp_threads,
            probe_listen,
        } => {
            clusterset::roles::run_dns(clusterset::roles::DnsOptions {
                member: member.access(),
                listen,
                ttl,
                udp_threads: udp_threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
                probe_listen,
            })
            .await
        }
        Command::Crds { out } => {
            std::fs::create_dir_all(&out)?;
            for (name, yaml) in clusterset::api::crd_files() {
                std::fs::write(out.join(&name), yaml)?;
                println!("wrote {}", out.join(name).display());
            }
            Ok(())
        }
        Command::Apiserver {
            listen,
            kubeconfig,
            data_dir,
            service_cidrs,
            name,
            event_ttl,
        } => {
            let config = Config {
                listen,
                service_cidrs,
                data_dir,
                event_ttl,
                ..Config::default()
            };
            let server = ApiServer::start(config).await?;
            server.write_kubeconfig(&kubeconfig, &name)?;
            println!(
                "clusterset apiserver serving at {} (kubeconfig: {})",
                server.url(),
                kubeconfig.display()
            );
            telemetry::shutdown_signal().await;
            server.shutdown().await;
            Ok(())
        }
    }
}
