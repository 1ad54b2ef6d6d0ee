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
use std::sync::Arc;

use parking_lot::RwLock;

pub use server::{DnsMetrics, DnsServer};
pub use zone::Zone;

/// The default answer TTL: short, so a change reaches clients within seconds.
pub const DEFAULT_TTL: u32 = 5;

/// Whether a `clusterset.local` server at `addr` answers its zone's SOA over UDP
/// within `timeout` (what `local status` shows; any answer with the query's ID counts,
/// an error code included, as the server is up).
pub async fn answers_soa(addr: SocketAddr, timeout: std::time::Duration) -> bool {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    let mut query = Message::query();
    query.metadata.id = rand_id();
    query.add_query(Query::query(
        Name::from_ascii("clusterset.local.").expect("a valid name"),
        RecordType::SOA,
    ));
    let Ok(bytes) = query.to_vec() else {
        return false;
    };
    let bind: SocketAddr = if addr.is_ipv4() {
        ([127, 0, 0, 1], 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let exchange = async {
        let socket = tokio::net::UdpSocket::bind(bind).await.ok()?;
        socket.send_to(&bytes, addr).await.ok()?;
        let mut buf = [0u8; 1232];
        loop {
            let (n, from) = socket.recv_from(&mut buf).await.ok()?;
            let reply = Message::from_vec(&buf[..n]).ok();
            if from == addr && reply.is_some_and(|r| r.metadata.id == query.metadata.id) {
                return Some(());
            }
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .ok()
        .flatten()
        .is_some()
}

fn rand_id() -> u16 {
    // Not for security: only to tell this query's answer from a stray datagram.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u16)
        .unwrap_or(1)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_server_answers_its_soa_and_silence_does_not() {
        let zone = Arc::new(RwLock::new(Zone::new(DEFAULT_TTL, None)));
        let listen = "127.0.0.1:0".parse().unwrap();
        let server = DnsServer::start(listen, zone, DnsMetrics::new(), 1)
            .await
            .unwrap();
        assert!(answers_soa(server.addr, Duration::from_secs(5)).await);
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        assert!(!answers_soa(addr, Duration::from_millis(200)).await);
    }
}
