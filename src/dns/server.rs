//! The sockets: UDP answered by a few dedicated threads blocking on one shared socket
//! (no async machinery on the hot path, as Knot and Unbound do it), TCP by tokio tasks
//! (length-prefixed messages, several per connection, idle connections closed).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use parking_lot::RwLock;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::wire::{self, Reply, Transport};
use super::zone::Zone;

/// How long a TCP connection may sit idle between messages, or take to accept an answer.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// TCP connections served at once; more are closed as they arrive.
const TCP_CONNECTIONS: usize = 1024;
/// What the UDP socket may queue.
const UDP_RECEIVE_BUFFER: usize = 4 << 20;
/// How often a UDP thread looks up from its socket to see whether to stop.
const STOP_CHECK: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct DnsMetrics {
    pub registry: Registry,
    /// One counter per (type, rcode) label pair, made up front: the hot path neither
    /// hashes label values nor allocates.
    queries: Arc<Vec<IntCounter>>,
    latency: Histogram,
    pub services: IntGauge,
    pub endpoints: IntGauge,
}

impl DnsMetrics {
    pub fn new() -> DnsMetrics {
        let registry = Registry::new();
        let by_labels = IntCounterVec::new(
            Opts::new(
                "clusterset_dns_queries_total",
                "DNS queries answered, by query type and response code",
            ),
            &["type", "rcode"],
        )
        .expect("metric");
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "clusterset_dns_answer_seconds",
                "Time from a query read to its answer encoded",
            )
            .buckets(vec![
                0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
                0.01,
            ]),
        )
        .expect("metric");
        let services = IntGauge::new("clusterset_dns_services", "Imported services in the zone")
            .expect("metric");
        let endpoints = IntGauge::new(
            "clusterset_dns_endpoints",
            "Endpoints of imported services in the zone",
        )
        .expect("metric");
        for m in [
            Box::new(by_labels.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(services.clone()),
            Box::new(endpoints.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        let queries = QTYPES
            .iter()
            .flat_map(|t| RCODES.iter().map(move |r| (t, r)))
            .map(|(t, r)| by_labels.with_label_values(&[t.1, r.1]))
            .collect();
        DnsMetrics {
            registry,
            queries: Arc::new(queries),
            latency,
            services,
            endpoints,
        }
    }

    fn observe(&self, reply: &Reply, started: Instant) {
        self.latency.observe(started.elapsed().as_secs_f64());
        let t = QTYPES
            .iter()
            .position(|(t, _)| *t == reply.qtype)
            .unwrap_or(QTYPES.len() - 1);
        let r = RCODES
            .iter()
            .position(|(r, _)| *r == reply.rcode)
            .unwrap_or(RCODES.len() - 1);
        self.queries[t * RCODES.len() + r].inc();
    }
}

/// The query types counted by name; the rest count as "other" (the last entry).
const QTYPES: [(Option<RecordType>, &str); 11] = [
    (Some(RecordType::A), "A"),
    (Some(RecordType::AAAA), "AAAA"),
    (Some(RecordType::SRV), "SRV"),
    (Some(RecordType::TXT), "TXT"),
    (Some(RecordType::PTR), "PTR"),
    (Some(RecordType::SOA), "SOA"),
    (Some(RecordType::NS), "NS"),
    (Some(RecordType::ANY), "ANY"),
    (Some(RecordType::MX), "MX"),
    (None, "none"),
    (Some(RecordType::Unknown(0)), "other"),
];

/// Response codes by the mnemonic dig prints; the rest count as "OTHER" (the last).
const RCODES: [(ResponseCode, &str); 8] = [
    (ResponseCode::NoError, "NOERROR"),
    (ResponseCode::FormErr, "FORMERR"),
    (ResponseCode::ServFail, "SERVFAIL"),
    (ResponseCode::NXDomain, "NXDOMAIN"),
    (ResponseCode::NotImp, "NOTIMP"),
    (ResponseCode::Refused, "REFUSED"),
    (ResponseCode::BADVERS, "BADVERS"),
    (ResponseCode::Unknown(4095), "OTHER"),
];

impl Default for DnsMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A running server; dropping it stops it.
pub struct DnsServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    tcp: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    /// Binds UDP and TCP on the same address (port 0 picks one free for both) and
    /// starts answering from `zone`.
    pub async fn start(
        listen: SocketAddr,
        zone: Arc<RwLock<Zone>>,
        metrics: DnsMetrics,
        udp_threads: usize,
    ) -> anyhow::Result<DnsServer> {
        let (udp, tcp) = bind_both(listen).await?;
        let addr = udp.local_addr()?;
        udp.set_read_timeout(Some(STOP_CHECK))?;
        // Bursts from a few busy resolvers overflow the default receive buffer (each
        // queued datagram costs ~1 KiB of it) and the kernel drops queries. The kernel
        // caps this at net.core.rmem_max.
        if let Err(e) = socket2::SockRef::from(&udp).set_recv_buffer_size(UDP_RECEIVE_BUFFER) {
            tracing::warn!(error = %e, "cannot enlarge the UDP receive buffer");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for i in 0..udp_threads.max(1) {
            let (socket, zone, metrics, stop) = (
                udp.try_clone()?,
                zone.clone(),
                metrics.clone(),
                stop.clone(),
            );
            let thread = std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || serve_udp(socket, &zone, &metrics, &stop))?;
            threads.push(thread);
        }
        let tcp = tokio::spawn(serve_tcp(tcp, zone, metrics));
        Ok(DnsServer {
            addr,
            stop,
            threads,
            tcp,
        })
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.tcp.abort();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

async fn bind_both(listen: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(listen).with_context(|| format!("cannot bind UDP {listen}"))?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            // A port picked for UDP can be taken for TCP: pick again.
            Err(e) if listen.port() == 0 => last = Some(e),
            Err(e) => return Err(e).with_context(|| format!("cannot bind TCP {addr}")),
        }
    }
    Err(last.expect("tried")).context("no port free for both UDP and TCP")
}

fn serve_udp(socket: UdpSocket, zone: &RwLock<Zone>, metrics: &DnsMetrics, stop: &AtomicBool) {
    let mut buf = [0u8; 65535];
    while !stop.load(Ordering::Relaxed) {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                // ICMP errors of earlier sends surface here on some systems: not fatal.
                tracing::debug!(error = %e, "UDP receive failed");
                continue;
            }
        };
        let started = Instant::now();
        // A bug in answering one packet must not silence UDP for good.
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wire::respond(zone, &buf[..len], Transport::Udp)
        }));
        let reply = answered.unwrap_or_else(|_| {
            tracing::error!(%peer, "answering a UDP query panicked; dropped it");
            None
        });
        if let Some(reply) = reply {
            metrics.observe(&reply, started);
            if let Err(e) = socket.send_to(&reply.bytes, peer) {
                tracing::debug!(error = %e, %peer, "UDP send failed");
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, zone: Arc<RwLock<Zone>>, metrics: DnsMetrics) {
    // Connection tasks live in this set: aborting the server aborts them too.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if connections.len() >= TCP_CONNECTIONS {
            tracing::debug!(%peer, "too many TCP connections; closing this one");
            continue;
        }
        let (zone, metrics) = (zone.clone(), metrics.clone());
        connections.spawn(async move {
            if let Err(e) = serve_connection(stream, &zone, &metrics).await {
                tracing::debug!(error = %e, %peer, "TCP connection ended");
            }
        });
    }
}

/// Messages on one connection until the client closes it, goes idle, or sends
/// something unanswerable (then the connection is closed, as RFC 7766 allows).
async fn serve_connection(
    mut stream: tokio::net::TcpStream,
    zone: &RwLock<Zone>,
    metrics: &DnsMetrics,
) -> std::io::Result<()> {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        let mut buf = vec![0u8; len];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "message incomplete")
            })??;
        let started = Instant::now();
        let Some(reply) = wire::respond(zone, &buf, Transport::Tcp) else {
            return Ok(());
        };
        metrics.observe(&reply, started);
        let mut out = Vec::with_capacity(reply.bytes.len() + 2);
        out.extend_from_slice(&(reply.bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&reply.bytes);
        tokio::time::timeout(TCP_IDLE, stream.write_all(&out))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "answer not taken"))??;
    }
}
