//! `clusterset dns` in `local up`, asked with the real `dig` (bind9-dnsutils): every
//! record of the MCS DNS specification after exporting a ClusterIP Service, a headless
//! StatefulSet and a large headless Deployment, the error cases, UDP/TCP/EDNS0
//! behaviour, and answers following scale, readiness and unexport.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use clusterset::api::multicluster::ServiceImport;
use clusterset::local::{IpFamily, LocalClusterset, UpOptions};
use common::{eventually, kubectl_at_ok};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

const WAIT: Duration = Duration::from_secs(20);

/// What dig printed, taken apart.
#[derive(Debug)]
struct Dig {
    status: String,
    flags: Vec<String>,
    /// Answer records as `name ttl type data`, sorted.
    answers: Vec<String>,
    authority: Vec<String>,
    raw: String,
}

impl Dig {
    /// The data of each answer (what `+short` prints), sorted.
    fn data(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .answers
            .iter()
            .map(|a| a.splitn(4, ' ').nth(3).unwrap_or_default().to_string())
            .collect();
        out.sort();
        out
    }

    fn nodata(&self) -> bool {
        self.status == "NOERROR"
            && self.answers.is_empty()
            && self.authority.len() == 1
            && self.authority[0].contains(" SOA ")
    }

    fn nxdomain(&self) -> bool {
        self.status == "NXDOMAIN"
            && self.answers.is_empty()
            && self.authority.iter().any(|a| a.contains(" SOA "))
    }
}

fn dig(server: SocketAddr, args: &[&str]) -> Dig {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            "+norec",
            "+time=2",
            "+tries=2",
        ])
        .args(args)
        .output()
        .expect("dig runs (apt-get install bind9-dnsutils; `make test` does)");
    let raw = String::from_utf8_lossy(&out.stdout).to_string();
    let section = |title: &str| -> Vec<String> {
        let mut lines: Vec<String> = raw
            .lines()
            .skip_while(|l| !l.starts_with(&format!(";; {title} SECTION:")))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .map(|l| l.replacen(" IN ", " ", 1))
            .collect();
        lines.sort();
        lines
    };
    let status = raw
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO REPLY")
        .to_string();
    let flags = raw
        .split(";; flags: ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    Dig {
        status,
        flags,
        answers: section("ANSWER"),
        authority: section("AUTHORITY"),
        raw,
    }
}

struct Set {
    local: LocalClusterset,
    _dir: tempfile::TempDir,
}

impl Set {
    async fn up() -> Set {
        let dir = tempfile::tempdir().unwrap();
        let opts = UpOptions {
            members: 2,
            dir: dir.path().join("cs"),
            data_dir: None,
            ip_family: IpFamily::Ipv4,
            upstream_crds: None,
            controllers: Default::default(),
        };
        let local = LocalClusterset::up(&opts).await.unwrap();
        Set { local, _dir: dir }
    }

    fn kubectl(&self, cluster: &str, args: &[&str]) -> String {
        let mut all = vec!["--context", cluster];
        all.extend_from_slice(args);
        kubectl_at_ok(&self.local.kubeconfig_path(), &all, None)
    }

    fn apply(&self, cluster: &str, file: &str) {
        let path = format!("{}/examples/{file}", env!("CARGO_MANIFEST_DIR"));
        self.kubectl(cluster, &["apply", "-f", &path]);
    }

    /// The DNS server of `member`, as local.json gives it.
    fn dns(&self, member: &str) -> SocketAddr {
        let text = std::fs::read_to_string(self.local.dir.join("local.json")).unwrap();
        let local: serde_json::Value = serde_json::from_str(&text).unwrap();
        let entry = local["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == member)
            .unwrap();
        entry["dns"]
            .as_str()
            .expect("members have a DNS address")
            .parse()
            .unwrap()
    }

    /// Pod IPs of `app` in `cluster`, sorted, optionally by hostname.
    async fn pods(&self, cluster: &str, selector: &str) -> Vec<(String, String)> {
        let client = self.local.cluster(cluster).unwrap().server.client();
        let pods = Api::<Pod>::namespaced(client, "default")
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap();
        let mut out: Vec<(String, String)> = pods
            .items
            .iter()
            .filter_map(|p| {
                let ip = p.status.as_ref()?.pod_ip.clone()?;
                Some((p.metadata.name.clone()?, ip))
            })
            .collect();
        out.sort();
        out
    }
}

/// Waits until dig's answer satisfies `check`.
async fn wait_dig(
    server: SocketAddr,
    args: &[&str],
    what: &str,
    check: impl Fn(&Dig) -> bool,
) -> Dig {
    let what = format!("dig {args:?}: {what}");
    eventually(&what, WAIT, || {
        let d = dig(server, args);
        let ok = check(&d);
        async move { ok.then_some(d) }
    })
    .await
}

const WEB: &str = "web.default.svc.clusterset.local.";
const DB: &str = "db.default.svc.clusterset.local.";

#[tokio::test(flavor = "multi_thread")]
async fn every_record_of_the_spec_from_a_local_clusterset() {
    let set = Set::up().await;
    set.apply("member-1", "web.yaml");
    set.apply("member-1", "export-web.yaml");
    set.apply("member-1", "headless-db.yaml");
    set.apply("member-2", "headless-db.yaml");
    let dns = set.dns("member-2");

    // The version record, with its long TTL.
    let txt = dig(dns, &["dns-version.clusterset.local.", "TXT"]);
    assert_eq!(
        txt.answers,
        ["dns-version.clusterset.local. 3600 TXT \"1.0.0\""],
        "{}",
        txt.raw
    );
    assert!(
        txt.flags.contains(&"aa".to_string()),
        "authoritative: {}",
        txt.raw
    );

    // ClusterSetIP: the import's IPs in this member, answered with the default TTL.
    let a = wait_dig(dns, &[WEB, "A"], "one address", |d| d.answers.len() == 1).await;
    let import = Api::<ServiceImport>::namespaced(
        set.local.cluster("member-2").unwrap().server.client(),
        "default",
    )
    .get("web")
    .await
    .unwrap();
    assert_eq!(
        a.data(),
        import.spec.ips,
        "A answers the ServiceImport's spec.ips"
    );
    assert!(
        a.answers[0].starts_with(&format!("{WEB} 5 A ")),
        "{:?}",
        a.answers
    );
    let srv = dig(
        dns,
        &["_http._tcp.web.default.svc.clusterset.local.", "SRV"],
    );
    assert_eq!(srv.data(), [format!("0 100 80 {WEB}")], "{}", srv.raw);
    assert!(
        srv.raw.contains(";; ADDITIONAL SECTION:"),
        "the target's address comes along: {}",
        srv.raw
    );
    assert_eq!(dig(dns, &[WEB, "SRV"]).data(), [format!("0 100 80 {WEB}")]);
    let aaaa = dig(dns, &[WEB, "AAAA"]);
    assert!(
        aaaa.nodata(),
        "IPv4-only service, AAAA: NODATA with the SOA: {}",
        aaaa.raw
    );

    // Headless: the ready pods of both exporting clusters, and each pod's own name.
    let db_pods = [
        set.pods("member-1", "app=db").await,
        set.pods("member-2", "app=db").await,
    ];
    let mut all_ips: Vec<String> = db_pods.iter().flatten().map(|(_, ip)| ip.clone()).collect();
    all_ips.sort();
    let a = wait_dig(dns, &[DB, "A"], "four pods", |d| d.answers.len() == 4).await;
    assert_eq!(a.data(), all_ips);
    for (cluster, pods) in ["member-1", "member-2"].iter().zip(&db_pods) {
        for (name, ip) in pods {
            let own = format!("{name}.{cluster}.{DB}");
            assert_eq!(
                dig(dns, &[&own, "A"]).data(),
                std::slice::from_ref(ip),
                "{own}"
            );
            // PTR for endpoint IPs names the pod.
            assert_eq!(
                dig(dns, &["-x", ip]).data(),
                std::slice::from_ref(&own),
                "PTR of {ip}"
            );
        }
    }
    let mut want_srv: Vec<String> = ["member-1", "member-2"]
        .iter()
        .zip(&db_pods)
        .flat_map(|(cluster, pods)| {
            pods.iter()
                .map(move |(name, _)| format!("0 100 5432 {name}.{cluster}.{DB}"))
        })
        .collect();
    want_srv.sort();
    assert_eq!(
        dig(dns, &["_pg._tcp.db.default.svc.clusterset.local.", "SRV"]).data(),
        want_srv
    );
    assert_eq!(
        dig(dns, &[DB, "SRV"]).data(),
        want_srv,
        "bare-name SRV: one per endpoint and port"
    );

    // The reserved cluster-ID name is never answered.
    let reserved = dig(dns, &["member-1.db.default.svc.clusterset.local.", "A"]);
    assert!(reserved.nodata(), "{}", reserved.raw);

    // PTR of the ClusterSetIP.
    assert_eq!(
        dig(dns, &["-x", &import.spec.ips[0]]).data(),
        [WEB.to_string()]
    );

    // Zone apex, negative answers, case, transports, refusals.
    let soa = dig(dns, &["clusterset.local.", "SOA"]);
    assert_eq!(soa.answers.len(), 1, "{}", soa.raw);
    assert!(soa.answers[0].contains(" SOA ns.dns.clusterset.local. hostmaster.clusterset.local. "));
    assert_eq!(
        dig(dns, &["clusterset.local.", "NS"]).data(),
        ["ns.dns.clusterset.local."]
    );
    let nodata = dig(dns, &[WEB, "MX"]);
    assert!(
        nodata.nodata(),
        "existing name, missing type: {}",
        nodata.raw
    );
    let nx = dig(dns, &["nope.default.svc.clusterset.local.", "A"]);
    assert!(nx.nxdomain(), "{}", nx.raw);
    let mixed = dig(dns, &["WEB.Default.svc.ClusterSet.local.", "A"]);
    assert_eq!(mixed.data(), import.spec.ips);
    assert!(
        mixed.answers[0].starts_with("WEB.Default.svc.ClusterSet.local. "),
        "case kept: {:?}",
        mixed.answers
    );
    let tcp = dig(dns, &["+tcp", WEB, "A"]);
    assert_eq!(tcp.data(), import.spec.ips);
    assert!(tcp.raw.contains("(TCP)"), "{}", tcp.raw);
    assert_eq!(dig(dns, &["example.com.", "A"]).status, "REFUSED");
    assert_eq!(
        dig(dns, &["+opcode=notify", "clusterset.local.", "SOA"]).status,
        "NOTIMP"
    );

    // Scale down in member-1: its second pod leaves every answer.
    set.kubectl("member-1", &["scale", "statefulset", "db", "--replicas=1"]);
    let gone = format!("db-1.member-1.{DB}");
    wait_dig(
        dns,
        &[&gone, "A"],
        "NXDOMAIN after scale-down",
        Dig::nxdomain,
    )
    .await;
    wait_dig(dns, &[DB, "A"], "three pods", |d| d.answers.len() == 3).await;

    // A pod turning unready leaves the headless answers.
    let (unready, unready_ip) = db_pods[1][0].clone();
    set.kubectl(
        "member-2",
        &["annotate", "pod", &unready, "clusterset.io/ready=false"],
    );
    let d = wait_dig(dns, &[DB, "A"], "two pods", |d| d.answers.len() == 2).await;
    assert!(!d.data().contains(&unready_ip), "{:?}", d.data());

    // Unexport: the name is gone everywhere, PTR too.
    set.kubectl("member-1", &["delete", "serviceexport", "web"]);
    for member in ["member-1", "member-2"] {
        wait_dig(
            set.dns(member),
            &[WEB, "A"],
            "NXDOMAIN after unexport",
            Dig::nxdomain,
        )
        .await;
    }
    assert_eq!(dig(dns, &["-x", &import.spec.ips[0]]).status, "REFUSED");
}

#[tokio::test(flavor = "multi_thread")]
async fn large_answers_truncate_over_udp_and_complete_over_tcp() {
    let set = Set::up().await;
    set.kubectl(
        "member-1",
        &[
            "create",
            "deployment",
            "many",
            "--image=nginx",
            "--replicas=40",
        ],
    );
    let svc = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"many","namespace":"default"},
        "spec":{"clusterIP":"None","selector":{"app":"many"},"ports":[{"name":"http","port":80}]}}"#;
    let export = r#"{"apiVersion":"multicluster.x-k8s.io/v1beta1","kind":"ServiceExport","metadata":{"name":"many","namespace":"default"}}"#;
    for doc in [svc, export] {
        kubectl_at_ok(
            &set.local.kubeconfig_path(),
            &["--context", "member-1", "apply", "-f", "-"],
            Some(doc),
        );
    }
    let dns = set.dns("member-2");
    let name = "many.default.svc.clusterset.local.";
    // Over TCP everything comes back.
    wait_dig(dns, &["+tcp", name, "A"], "40 addresses", |d| {
        d.answers.len() == 40
    })
    .await;
    // Without EDNS0 40 A records do not fit in 512 bytes: TC set, nothing partial.
    let udp = dig(dns, &["+noedns", "+ignore", name, "A"]);
    assert!(udp.flags.contains(&"tc".to_string()), "{}", udp.raw);
    assert!(udp.answers.is_empty(), "{}", udp.raw);
    // dig retries a truncated answer over TCP by itself, as resolvers do.
    let retried = dig(dns, &["+noedns", name, "A"]);
    assert_eq!(retried.answers.len(), 40, "{}", retried.raw);
    // With EDNS0 and a large buffer the answer fits in one UDP datagram.
    let edns = dig(dns, &["+bufsize=4096", name, "A"]);
    assert_eq!(edns.answers.len(), 40, "{}", edns.raw);
    assert!(!edns.flags.contains(&"tc".to_string()));
    assert!(
        edns.raw.contains("udp: 1232"),
        "our EDNS0 size is advertised: {}",
        edns.raw
    );
    // SRV with 40 targets and their addresses is too large even for that: TC.
    let srv = dig(dns, &["+bufsize=4096", "+ignore", name, "SRV"]);
    assert!(srv.flags.contains(&"tc".to_string()), "{}", srv.raw);
    assert_eq!(dig(dns, &["+tcp", name, "SRV"]).answers.len(), 40);
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_packets_never_stop_the_server() {
    let set = Set::up().await;
    set.apply("member-1", "web.yaml");
    set.apply("member-1", "export-web.yaml");
    let dns = set.dns("member-1");
    wait_dig(dns, &[WEB, "A"], "an address", |d| d.answers.len() == 1).await;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // A header claiming one question that is not there: FORMERR with our ID.
    socket
        .send_to(&[0xAB, 0xCD, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'b'], dns)
        .unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = socket
        .recv_from(&mut buf)
        .expect("an answer to a malformed query");
    assert!(n >= 12);
    assert_eq!(&buf[..2], &[0xAB, 0xCD]);
    assert_eq!(buf[3] & 0x0F, 1, "FORMERR");
    // Short and random packets are dropped; the server keeps answering.
    for packet in [&[1u8, 2, 3][..], &[0xFF; 300][..], &[][..]] {
        socket.send_to(packet, dns).unwrap();
    }
    let mut tcp = std::net::TcpStream::connect(dns).unwrap();
    std::io::Write::write_all(&mut tcp, &[0x00, 0x05, 1, 2, 3]).unwrap();
    drop(tcp);
    assert_eq!(dig(dns, &[WEB, "A"]).answers.len(), 1);
    let metrics = prometheus::TextEncoder::new()
        .encode_to_string(
            &set.local.controllers.as_ref().unwrap().dns[0]
                .1
                .metrics
                .registry
                .gather(),
        )
        .unwrap();
    assert!(
        metrics.contains(r#"clusterset_dns_queries_total{rcode="FORMERR",type="none"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"clusterset_dns_queries_total{rcode="NOERROR",type="A"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("clusterset_dns_services 1"), "{metrics}");
    assert!(
        metrics.contains("clusterset_dns_answer_seconds_count"),
        "{metrics}"
    );
}
