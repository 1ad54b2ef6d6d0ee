use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use clusterset::apiserver::{ApiServer, Config};
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_logging();
    match Cli::parse().command {
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
