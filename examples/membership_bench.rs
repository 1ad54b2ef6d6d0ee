//! `make bench`: how fast a dead member's endpoints leave the clusterset.
//!
//! A local clusterset (3, then 10 members) with a 2 s grace period and heartbeats every
//! 500 ms. member-1 exports a headless Service with 2 pods; every other member's DNS
//! server answers them. member-1's API server is stopped (its agent stops vouching for
//! it) and every other member's DNS server is asked every 5 ms until none answers
//! member-1's pods. Printed: death → gone from every member's answers, and that minus
//! the grace period (the goal: under 1 s). Then member-1 comes back and the time until
//! its pods are answered everywhere again (the damping, 1 s here, bounds it from below).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use clusterset::local::controllers::ControllerOptions;
use clusterset::local::{LocalClusterset, UpOptions};
use clusterset::membership::health::HealthConfig;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

const GRACE: Duration = Duration::from_secs(2);
const DAMPING: Duration = Duration::from_secs(1);
const HEARTBEAT: Duration = Duration::from_millis(500);
const NAME: &str = "db.bench.svc.clusterset.local.";
const ROUNDS: usize = 5;

/// The A answers of `server` for [`NAME`].
fn answers(socket: &UdpSocket, server: SocketAddr) -> Vec<IpAddr> {
    let mut query = Message::query();
    query.add_query(Query::query(Name::from_ascii(NAME).unwrap(), RecordType::A));
    socket.send_to(&query.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 1232];
    let Ok((n, _)) = socket.recv_from(&mut buf) else {
        return Vec::new();
    };
    let reply = Message::from_vec(&buf[..n]).unwrap();
    reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

/// How many of member-1's pods (10.1.0.0/16) each other member's DNS answers.
fn member1_pods(socket: &UdpSocket, servers: &[SocketAddr]) -> Vec<usize> {
    servers
        .iter()
        .map(|s| {
            answers(socket, *s)
                .iter()
                .filter(|ip| ip.to_string().starts_with("10.1."))
                .count()
        })
        .collect()
}

async fn wait_until(
    socket: &UdpSocket,
    servers: &[SocketAddr],
    done: impl Fn(&[usize]) -> bool,
) -> Duration {
    let start = Instant::now();
    while !done(&member1_pods(socket, servers)) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no change within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

fn kubectl(local: &LocalClusterset, context: &str, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(local.kubeconfig_path())
        .args(["--context", context])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    assert!(child.wait().unwrap().success(), "kubectl {args:?}");
}

async fn death(members: usize) {
    let dir = tempfile::tempdir().unwrap();
    let opts = UpOptions {
        controllers: ControllerOptions {
            health: HealthConfig {
                grace: GRACE,
                damping: DAMPING,
            },
            heartbeat: HEARTBEAT,
        },
        ..UpOptions::new(members, dir.path().join("cs"))
    };
    let local = LocalClusterset::up(&opts).await.unwrap();
    let names: Vec<String> = (1..=members).map(|i| format!("member-{i}")).collect();
    for m in &names {
        kubectl(&local, m, &["create", "namespace", "bench"], None);
    }
    let workload = r#"
apiVersion: v1
kind: Service
metadata: {name: db, namespace: bench}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: bench}
spec: {replicas: 2, selector: {matchLabels: {app: db}}, template: {metadata: {labels: {app: db}}, spec: {containers: [{name: c, image: postgres}]}}}
---
apiVersion: multicluster.x-k8s.io/v1beta1
kind: ServiceExport
metadata: {name: db, namespace: bench}
"#;
    kubectl(&local, "member-1", &["apply", "-f", "-"], Some(workload));
    let servers: Vec<SocketAddr> = names[1..]
        .iter()
        .map(|m| local.dns_addr(m).unwrap())
        .collect();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    wait_until(&socket, &servers, |n| n.iter().all(|c| *c == 2)).await;
    let server = &local.cluster("member-1").unwrap().server;
    let (mut gone, mut back) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        server.stop_serving().await;
        gone.push(wait_until(&socket, &servers, |n| n.iter().all(|c| *c == 0)).await);
        server.resume_serving().await.unwrap();
        back.push(wait_until(&socket, &servers, |n| n.iter().all(|c| *c == 2)).await);
    }
    gone.sort();
    back.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let over = |d: Duration| ms(d) - ms(GRACE);
    println!(
        "member death, {members} members (grace {} ms, heartbeat {} ms): gone from {} members' DNS in median {:.0} ms, worst {:.0} ms; beyond the grace period: median {:.0} ms, worst {:.0} ms (goal < 1000 ms)",
        ms(GRACE),
        ms(HEARTBEAT),
        servers.len(),
        ms(gone[ROUNDS / 2]),
        ms(gone[ROUNDS - 1]),
        over(gone[ROUNDS / 2]),
        over(gone[ROUNDS - 1]),
    );
    println!(
        "  member back: answered everywhere again in median {:.0} ms, worst {:.0} ms (damping {} ms)",
        ms(back[ROUNDS / 2]),
        ms(back[ROUNDS - 1]),
        ms(DAMPING)
    );
    local.down().await;
    drop(dir);
}

#[tokio::main]
async fn main() {
    println!("membership (2 cores shared by every API server, controller and DNS server)");
    death(3).await;
    death(10).await;
}
