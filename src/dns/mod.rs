//! `clusterset dns`: the authoritative server for `clusterset.local` in one member,
//! answering from that member's ServiceImports and imported EndpointSlices.
//!
//! - [`zone`]: the records as plain data and the answer to one question (no I/O);
//! - [`wire`]: one message in, one out (EDNS0, truncation, error codes);
//! - [`server`]: UDP and TCP sockets, metrics;
//! - [`source`]: the watches that keep the zone current.

pub mod server;
pub mod source;
pub mod wire;
pub mod zone;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

pub use server::{DnsMetrics, DnsServer};
pub use zone::Zone;

/// The default answer TTL: short, so a change reaches clients within seconds.
pub const DEFAULT_TTL: u32 = 5;

/// A DNS server fed by a member cluster; dropping it stops both.
pub struct Dns {
    pub addr: SocketAddr,
    pub source: Arc<source::Source>,
    pub metrics: DnsMetrics,
    pub zone: Arc<RwLock<Zone>>,
    _server: DnsServer,
    watch: tokio::task::JoinHandle<()>,
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

impl Dns {
    pub async fn start(
        member: kube::Client,
        listen: SocketAddr,
        ttl: u32,
        udp_threads: usize,
    ) -> anyhow::Result<Dns> {
        let advertise = Some(listen.ip()).filter(|ip| !ip.is_unspecified());
        let zone = Arc::new(RwLock::new(Zone::new(ttl, advertise)));
        let metrics = DnsMetrics::new();
        let source = source::Source::new(zone.clone(), metrics.clone());
        let server = DnsServer::start(listen, zone.clone(), metrics.clone(), udp_threads).await?;
        let watch = tokio::spawn(source.clone().run(member));
        Ok(Dns {
            addr: server.addr,
            source,
            metrics,
            zone,
            _server: server,
            watch,
        })
    }
}
