use std::net::SocketAddr;
use std::path::PathBuf;

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
        /// clusterset-system labelled mcs.clusterset.io/member-kubeconfig.
        #[arg(long)]
        push: bool,
    },
    /// The member agent: reports this cluster's exports to the hub and materialises imports.
    Agent {
        /// The member cluster's kubeconfig (default: KUBECONFIG, ~/.kube/config or in-cluster).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        #[arg(long)]
        context: Option<String>,
        #[command(flatten)]
        hub: HubAccess,
        /// The member's cluster ID (default: its ClusterProperty cluster.clusterset.k8s.io).
        #[arg(long)]
        cluster_id: Option<String>,
        #[command(flatten)]
        probes: Probes,
    },
    /// The clusterset.local DNS server of one member, answering from its imports.
    Dns {
        /// The member cluster's kubeconfig (default: KUBECONFIG, ~/.kube/config or in-cluster).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        #[arg(long)]
        context: Option<String>,
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
    },
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
        } => {
            let started = std::time::Instant::now();
            let opts = UpOptions {
                members,
                dir: dir.clone(),
                data_dir,
                ip_family,
                upstream_crds,
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
        } => {
            clusterset::roles::run_hub(clusterset::roles::HubOptions {
                hub: hub.access(),
                probe_listen: probes.probe_listen,
                workers: probes.workers,
                clusterset_ip_cidrs,
                push,
            })
            .await
        }
        Command::Agent {
            kubeconfig,
            context,
            hub,
            cluster_id,
            probes,
        } => {
            clusterset::roles::run_agent(clusterset::roles::AgentOptions {
                member: clusterset::roles::ClusterAccess {
                    kubeconfig,
                    context,
                },
                hub: hub.access(),
                cluster_id,
                probe_listen: probes.probe_listen,
                workers: probes.workers,
            })
            .await
        }
        Command::Dns {
            kubeconfig,
            context,
            listen,
            ttl,
            udp_threads,
            probe_listen,
        } => {
            clusterset::roles::run_dns(clusterset::roles::DnsOptions {
                member: clusterset::roles::ClusterAccess {
                    kubeconfig,
                    context,
                },
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
        } => {
            let config = Config {
                listen,
                service_cidrs,
                data_dir,
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
