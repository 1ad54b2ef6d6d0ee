//! One DNS message in, one out: header checks, EDNS0, truncation. Transport-free, so
//! the same code answers UDP, TCP and the tests.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};

use super::zone::Zone;

/// What this server accepts over UDP with EDNS0: the DNS Flag Day 2020 size, which
/// avoids IP fragmentation on every common path.
pub const OUR_UDP_PAYLOAD: u16 = 1232;
/// The classic limit for clients without EDNS0.
const PLAIN_UDP_PAYLOAD: usize = 512;
const HEADER_LEN: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A response and what it was, for metrics.
pub struct Reply {
    pub bytes: Vec<u8>,
    pub qtype: Option<RecordType>,
    pub rcode: ResponseCode,
}

/// Answers one request. `None` means drop it: too short to carry a header, or a
/// response (answering those lets two servers loop).
pub fn respond(
    zone: &parking_lot::RwLock<Zone>,
    request: &[u8],
    transport: Transport,
) -> Option<Reply> {
    if request.len() < HEADER_LEN || request[2] & 0x80 != 0 {
        return None;
    }
    let Ok(query) = Message::from_vec(request) else {
        return Some(header_only(request, ResponseCode::FormErr));
    };
    let max = match transport {
        Transport::Udp => limit(&query),
        Transport::Tcp => usize::from(u16::MAX),
    };
    let mut response = Message::response(query.metadata.id, query.metadata.op_code);
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.checking_disabled = query.metadata.checking_disabled;
    response.queries = query.queries.clone();
    if let Some(edns) = &query.edns {
        let mut ours = Edns::new();
        ours.set_max_payload(OUR_UDP_PAYLOAD);
        ours.set_version(0);
        response.set_edns(ours);
        if edns.version() != 0 {
            return Some(finish(response, ResponseCode::BADVERS, None, max));
        }
    }
    if query.metadata.op_code != OpCode::Query {
        return Some(finish(response, ResponseCode::NotImp, None, max));
    }
    let [question] = query.queries.as_slice() else {
        return Some(finish(response, ResponseCode::FormErr, None, max));
    };
    let qtype = Some(question.query_type());
    // Zone transfers are not offered; other classes are not ours.
    if !matches!(question.query_class(), DNSClass::IN | DNSClass::ANY)
        || matches!(question.query_type(), RecordType::AXFR | RecordType::IXFR)
    {
        return Some(finish(response, ResponseCode::Refused, qtype, max));
    }
    // A writer that panicked left the zone as it was before or after one service's
    // change (the lock is not poisoned): still worth answering from.
    let answer = zone.read().resolve(question.name(), question.query_type());
    response.metadata.authoritative = answer.authoritative;
    response.answers = answer.answers;
    response.authorities = answer.authority;
    response.additionals = answer.additional;
    Some(finish(response, answer.rcode, qtype, max))
}

/// The largest UDP response the client takes: its EDNS0 size (at least 512, at most
/// ours), or 512 without EDNS0.
fn limit(query: &Message) -> usize {
    match &query.edns {
        Some(edns) => usize::from(edns.max_payload().clamp(512, OUR_UDP_PAYLOAD)),
        None => PLAIN_UDP_PAYLOAD,
    }
}

/// Encodes the response within `max` bytes. One that does not fit first drops its
/// additional records (optional, RFC 2181 §9); if it still does not fit it loses every
/// record and gets the TC bit, so a UDP client asks again over TCP.
fn finish(
    mut response: Message,
    rcode: ResponseCode,
    qtype: Option<RecordType>,
    max: usize,
) -> Reply {
    response.metadata.message_type = MessageType::Response;
    response.metadata.response_code = rcode;
    let mut encoded = response.to_vec();
    if matches!(&encoded, Ok(b) if b.len() > max) && !response.additionals.is_empty() {
        response.additionals.clear();
        encoded = response.to_vec();
    }
    let bytes = match encoded {
        Ok(bytes) if bytes.len() <= max => bytes,
        Ok(_) => {
            response.answers.clear();
            response.authorities.clear();
            response.additionals.clear();
            response.metadata.truncation = true;
            response.to_vec().unwrap_or_default()
        }
        Err(error) => {
            tracing::warn!(%error, "cannot encode a DNS response");
            let mut failed = Message::response(response.metadata.id, response.metadata.op_code);
            failed.metadata.response_code = ResponseCode::ServFail;
            failed.queries = response.queries;
            failed.to_vec().unwrap_or_default()
        }
    };
    Reply {
        bytes,
        qtype,
        rcode,
    }
}

/// A reply to a request that did not parse: its ID, opcode and RD bit, the error
/// code, and nothing else.
fn header_only(request: &[u8], rcode: ResponseCode) -> Reply {
    let mut bytes = request[..HEADER_LEN].to_vec();
    // QR set; opcode and RD kept; AA, TC cleared.
    bytes[2] = 0x80 | (request[2] & 0x79);
    bytes[3] = rcode.low();
    bytes[4..].fill(0);
    Reply {
        bytes,
        qtype: None,
        rcode,
    }
}

#[cfg(test)]
mod tests {
    use parking_lot::RwLock;
    use std::net::IpAddr;

    use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
    use hickory_proto::rr::{DNSClass, Name, RecordType};

    use super::*;
    use crate::dns::zone::{Endpoint, Kind, Port, Service, Zone};

    fn port(name: &str, port: u16) -> Port {
        Port {
            name: Some(name.into()),
            protocol: "tcp".into(),
            port,
        }
    }

    fn endpoint(cluster: &str, hostname: Option<&str>, ip: &str, ready: bool) -> Endpoint {
        Endpoint {
            cluster: Some(cluster.into()),
            hostname: hostname.map(str::to_string),
            addresses: vec![ip.parse().unwrap()],
            ready,
            ports: vec![port("pg", 5432)],
        }
    }

    /// web: ClusterSetIP, dual-stack, two ports; db: headless over two clusters, one
    /// endpoint without a hostname and one not ready; empty: headless, nothing ready.
    fn zone() -> RwLock<Zone> {
        let mut z = Zone::new(5, Some("127.0.0.53".parse().unwrap()));
        z.set(
            "demo",
            "web",
            Some(Service {
                namespace: "demo".into(),
                name: "web".into(),
                kind: Kind::ClusterSetIp(vec![
                    "10.96.0.10".parse().unwrap(),
                    "fd00::10".parse().unwrap(),
                ]),
                ports: vec![port("http", 80), port("https", 443)],
                endpoints: vec![endpoint("east", None, "10.1.0.5", true)],
            }),
        );
        z.set(
            "demo",
            "db",
            Some(Service {
                namespace: "demo".into(),
                name: "db".into(),
                kind: Kind::Headless,
                ports: vec![port("pg", 5432)],
                endpoints: vec![
                    endpoint("east", Some("db-0"), "10.1.0.7", true),
                    endpoint("west", None, "10.2.0.8", true),
                    endpoint("west", Some("db-2"), "10.2.0.9", false),
                ],
            }),
        );
        z.set(
            "demo",
            "empty",
            Some(Service {
                namespace: "demo".into(),
                name: "empty".into(),
                kind: Kind::Headless,
                ports: vec![],
                endpoints: vec![endpoint("east", Some("x"), "10.1.0.9", false)],
            }),
        );
        RwLock::new(z)
    }

    fn query(name: &str, qtype: RecordType) -> Message {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        m
    }

    fn ask(zone: &RwLock<Zone>, m: &Message, transport: Transport) -> Message {
        let reply = respond(zone, &m.to_vec().unwrap(), transport).expect("a reply");
        let parsed = Message::from_vec(&reply.bytes).expect("a valid reply");
        assert_eq!(parsed.metadata.id, m.metadata.id);
        assert_eq!(
            u16::from(parsed.metadata.response_code),
            u16::from(reply.rcode)
        );
        parsed
    }

    fn get(name: &str, qtype: RecordType) -> Message {
        ask(&zone(), &query(name, qtype), Transport::Udp)
    }

    fn data(m: &Message) -> Vec<String> {
        let mut out: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
        out.sort();
        out
    }

    fn soa_only(m: &Message) -> bool {
        m.answers.is_empty()
            && m.authorities.len() == 1
            && m.authorities[0].record_type() == RecordType::SOA
    }

    #[test]
    fn version_record_has_the_long_ttl() {
        let m = get("dns-version.clusterset.local.", RecordType::TXT);
        assert_eq!(data(&m), ["1.0.0"]);
        assert_eq!(m.answers[0].ttl, crate::dns::zone::VERSION_TTL);
        assert!(m.metadata.authoritative);
    }

    #[test]
    fn clusterset_ip_answers_a_aaaa_and_srv() {
        let a = get("web.demo.svc.clusterset.local.", RecordType::A);
        assert_eq!(data(&a), ["10.96.0.10"]);
        assert_eq!(a.answers[0].ttl, 5);
        assert_eq!(
            data(&get("web.demo.svc.clusterset.local.", RecordType::AAAA)),
            ["fd00::10"]
        );
        let named = get(
            "_https._tcp.web.demo.svc.clusterset.local.",
            RecordType::SRV,
        );
        assert_eq!(data(&named), ["0 100 443 web.demo.svc.clusterset.local."]);
        assert_eq!(
            named.additionals.len(),
            2,
            "the target's A and AAAA come along"
        );
        let bare = get("web.demo.svc.clusterset.local.", RecordType::SRV);
        assert_eq!(
            data(&bare),
            [
                "0 100 443 web.demo.svc.clusterset.local.",
                "0 100 80 web.demo.svc.clusterset.local."
            ]
        );
    }

    #[test]
    fn headless_answers_ready_endpoints_and_their_own_names() {
        let a = get("db.demo.svc.clusterset.local.", RecordType::A);
        assert_eq!(
            data(&a),
            ["10.1.0.7", "10.2.0.8"],
            "the unready endpoint is left out"
        );
        assert_eq!(
            data(&get(
                "db-0.east.db.demo.svc.clusterset.local.",
                RecordType::A
            )),
            ["10.1.0.7"]
        );
        assert_eq!(
            data(&get(
                "10-2-0-8.west.db.demo.svc.clusterset.local.",
                RecordType::A
            )),
            ["10.2.0.8"]
        );
        let srv = get("_pg._tcp.db.demo.svc.clusterset.local.", RecordType::SRV);
        assert_eq!(
            data(&srv),
            [
                "0 100 5432 10-2-0-8.west.db.demo.svc.clusterset.local.",
                "0 100 5432 db-0.east.db.demo.svc.clusterset.local."
            ]
        );
        let unready = get("db-2.west.db.demo.svc.clusterset.local.", RecordType::A);
        assert_eq!(unready.metadata.response_code, ResponseCode::NXDomain);
        let nothing_ready = get("empty.demo.svc.clusterset.local.", RecordType::A);
        assert_eq!(nothing_ready.metadata.response_code, ResponseCode::NXDomain);
        assert!(soa_only(&nothing_ready));
    }

    #[test]
    fn the_cluster_id_name_is_never_answered() {
        for qtype in [RecordType::A, RecordType::SRV, RecordType::TXT] {
            let m = get("east.db.demo.svc.clusterset.local.", qtype);
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NoError,
                "exists: names hang below it"
            );
            assert!(soa_only(&m), "{qtype}: no data, SOA in authority");
        }
        let other = get("north.db.demo.svc.clusterset.local.", RecordType::A);
        assert_eq!(other.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn missing_types_get_nodata_and_missing_names_nxdomain() {
        let nodata = get("web.demo.svc.clusterset.local.", RecordType::MX);
        assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
        assert!(soa_only(&nodata));
        for missing in [
            "nope.demo.svc.clusterset.local.",
            "web.other.svc.clusterset.local.",
            "_ftp._tcp.web.demo.svc.clusterset.local.",
            "a.b.c.web.demo.svc.clusterset.local.",
            "other.clusterset.local.",
        ] {
            let m = get(missing, RecordType::A);
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NXDomain,
                "{missing}"
            );
            assert!(soa_only(&m), "{missing}");
        }
        // Names with children exist: NODATA.
        for ent in [
            "svc.clusterset.local.",
            "demo.svc.clusterset.local.",
            "_tcp.web.demo.svc.clusterset.local.",
        ] {
            let m = get(ent, RecordType::A);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{ent}");
            assert!(soa_only(&m), "{ent}");
        }
    }

    #[test]
    fn apex_has_soa_and_ns() {
        let soa = get("clusterset.local.", RecordType::SOA);
        assert_eq!(soa.answers.len(), 1);
        assert_eq!(soa.answers[0].record_type(), RecordType::SOA);
        assert_eq!(
            data(&get("clusterset.local.", RecordType::NS)),
            ["ns.dns.clusterset.local."]
        );
        assert_eq!(
            data(&get("ns.dns.clusterset.local.", RecordType::A)),
            ["127.0.0.53"]
        );
    }

    #[test]
    fn names_match_in_any_case_and_keep_the_askers_case() {
        let m = get("WeB.Demo.SVC.clusterset.LOCAL.", RecordType::A);
        assert_eq!(data(&m), ["10.96.0.10"]);
        assert_eq!(
            m.answers[0].name.to_ascii(),
            "WeB.Demo.SVC.clusterset.LOCAL."
        );
        assert_eq!(
            m.queries[0].name().to_ascii(),
            "WeB.Demo.SVC.clusterset.LOCAL."
        );
    }

    #[test]
    fn ptr_for_clusterset_ips_and_endpoints() {
        let name = |ip: &str| Name::from(ip.parse::<IpAddr>().unwrap()).to_ascii();
        let web = get(&name("10.96.0.10"), RecordType::PTR);
        assert_eq!(data(&web), ["web.demo.svc.clusterset.local."]);
        let v6 = get(&name("fd00::10"), RecordType::PTR);
        assert_eq!(data(&v6), ["web.demo.svc.clusterset.local."]);
        let db = get(&name("10.1.0.7"), RecordType::PTR);
        assert_eq!(data(&db), ["db-0.east.db.demo.svc.clusterset.local."]);
        let unknown = get(&name("192.0.2.1"), RecordType::PTR);
        assert_eq!(unknown.metadata.response_code, ResponseCode::Refused);
        // Another type at a known address: NODATA with the reverse zone's SOA.
        for (ip, zone) in [("10.96.0.10", "in-addr.arpa."), ("fd00::10", "ip6.arpa.")] {
            let nodata = get(&name(ip), RecordType::A);
            assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
            assert!(nodata.answers.is_empty() && nodata.metadata.authoritative);
            let soa: Vec<String> = nodata
                .authorities
                .iter()
                .map(|r| format!("{} {}", r.name, r.record_type()))
                .collect();
            assert_eq!(soa, [format!("{zone} SOA")], "{ip}");
        }
    }

    #[test]
    fn outside_the_zone_is_refused_and_other_opcodes_not_implemented() {
        let m = get("example.com.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(!m.metadata.authoritative);
        let mut notify = query("clusterset.local.", RecordType::SOA);
        notify.metadata.op_code = OpCode::Notify;
        let m = ask(&zone(), &notify, Transport::Udp);
        assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
        let mut chaos = query("version.bind.", RecordType::TXT);
        chaos.queries[0].set_query_class(DNSClass::CH);
        assert_eq!(
            ask(&zone(), &chaos, Transport::Udp).metadata.response_code,
            ResponseCode::Refused
        );
    }

    #[test]
    fn malformed_requests_get_formerr_or_are_dropped() {
        let z = zone();
        assert!(
            respond(&z, &[0u8; 5], Transport::Udp).is_none(),
            "no header: dropped"
        );
        let mut response = query("web.demo.svc.clusterset.local.", RecordType::A)
            .to_vec()
            .unwrap();
        response[2] |= 0x80;
        assert!(
            respond(&z, &response, Transport::Udp).is_none(),
            "responses are never answered"
        );
        let mut truncated = query("web.demo.svc.clusterset.local.", RecordType::A)
            .to_vec()
            .unwrap();
        truncated.truncate(20);
        let reply = respond(&z, &truncated, Transport::Udp).unwrap();
        assert_eq!(reply.rcode, ResponseCode::FormErr);
        let m = Message::from_vec(&reply.bytes).unwrap();
        assert_eq!(
            m.metadata.id,
            u16::from_be_bytes([truncated[0], truncated[1]])
        );
        let mut two = query("web.demo.svc.clusterset.local.", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("db.demo.svc.clusterset.local.").unwrap(),
            RecordType::A,
        ));
        assert_eq!(
            ask(&z, &two, Transport::Udp).metadata.response_code,
            ResponseCode::FormErr
        );
    }

    /// Adds headless `name` with `n` ready pods `pod-<i>` in cluster east.
    fn with_pods(z: RwLock<Zone>, name: &str, n: usize) -> RwLock<Zone> {
        let endpoints = (0..n)
            .map(|i| {
                endpoint(
                    "east",
                    Some(&format!("pod-{i}")),
                    &format!("10.9.0.{i}"),
                    true,
                )
            })
            .collect();
        let service = Service {
            namespace: "demo".into(),
            name: name.into(),
            kind: Kind::Headless,
            ports: vec![port("pg", 5432)],
            endpoints,
        };
        z.write().set("demo", name, Some(service));
        z
    }

    /// A headless service with enough endpoints that its answer passes 512 bytes.
    fn big_zone() -> RwLock<Zone> {
        with_pods(zone(), "big", 60)
    }

    #[test]
    fn udp_answers_that_do_not_fit_are_truncated_and_tcp_gets_everything() {
        let z = big_zone();
        let plain = query("big.demo.svc.clusterset.local.", RecordType::A);
        let udp = ask(&z, &plain, Transport::Udp);
        assert!(
            udp.metadata.truncation,
            "60 A records do not fit in 512 bytes"
        );
        assert!(udp.answers.is_empty());
        let tcp = ask(&z, &plain, Transport::Tcp);
        assert!(!tcp.metadata.truncation);
        assert_eq!(tcp.answers.len(), 60);
        // With EDNS0 and a 4096-byte buffer the same answer fits in our 1232 bytes.
        let mut edns = query("big.demo.svc.clusterset.local.", RecordType::A);
        let mut opt = Edns::new();
        opt.set_max_payload(4096);
        edns.set_edns(opt.clone());
        let m = ask(&z, &edns, Transport::Udp);
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 60);
        assert_eq!(
            m.edns.as_ref().map(|e| e.max_payload()),
            Some(OUR_UDP_PAYLOAD)
        );
        // 18 SRV records (targets are never compressed) fit in 1232 bytes only without
        // their targets' addresses: the additional section goes, nothing is truncated.
        let mid = with_pods(RwLock::new(Zone::new(5, None)), "mid", 18);
        let mut q = query("mid.demo.svc.clusterset.local.", RecordType::SRV);
        q.set_edns(opt.clone());
        let m = ask(&mid, &q, Transport::Udp);
        assert!(!m.metadata.truncation);
        assert_eq!((m.answers.len(), m.additionals.len()), (18, 0));
        assert_eq!(ask(&mid, &q, Transport::Tcp).additionals.len(), 18);
        // 60 SRV records do not fit even so: truncated.
        let srv = ask(
            &z,
            &{
                let mut q = query("big.demo.svc.clusterset.local.", RecordType::SRV);
                q.set_edns(Edns::new());
                q
            },
            Transport::Udp,
        );
        assert!(srv.metadata.truncation);
    }

    #[test]
    fn unknown_edns_versions_get_badvers() {
        let mut q = query("web.demo.svc.clusterset.local.", RecordType::A);
        let mut opt = Edns::new();
        opt.set_version(1);
        q.set_edns(opt);
        let m = ask(&zone(), &q, Transport::Udp);
        // 16 is both BADVERS and BADSIG; hickory reads it back as the latter.
        assert_eq!(
            u16::from(m.metadata.response_code),
            u16::from(ResponseCode::BADVERS)
        );
    }

    #[test]
    fn an_unexported_service_is_gone_at_once() {
        let z = zone();
        z.write().set("demo", "web", None);
        let m = ask(
            &z,
            &query("web.demo.svc.clusterset.local.", RecordType::A),
            Transport::Udp,
        );
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        let ptr = Name::from("10.96.0.10".parse::<IpAddr>().unwrap()).to_ascii();
        let m = ask(&z, &query(&ptr, RecordType::PTR), Transport::Udp);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::Refused,
            "its PTR went too"
        );
    }

    #[test]
    fn only_headless_services_have_endpoint_names() {
        for name in [
            "10-1-0-5.east.web.demo.svc.clusterset.local.",
            "east.web.demo.svc.clusterset.local.",
        ] {
            let m = get(name, RecordType::A);
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        }
    }

    #[test]
    fn dotted_cluster_ids_and_duplicate_endpoints() {
        let z = zone();
        let mut v6 = endpoint("us.east", Some("db-9"), "fd00::9", true);
        v6.ports.push(port("pg", 5432));
        z.write().set(
            "demo",
            "dual",
            Some(Service {
                namespace: "demo".into(),
                name: "dual".into(),
                kind: Kind::Headless,
                ports: vec![port("pg", 5432)],
                endpoints: vec![
                    endpoint("us.east", Some("db-9"), "10.3.0.9", true),
                    // The same endpoint in a second slice, as can happen briefly.
                    endpoint("us.east", Some("db-9"), "10.3.0.9", true),
                    v6,
                ],
            }),
        );
        let own = "db-9.us.east.dual.demo.svc.clusterset.local.";
        assert_eq!(
            data(&ask(&z, &query(own, RecordType::A), Transport::Tcp)),
            ["10.3.0.9"]
        );
        assert_eq!(
            data(&ask(&z, &query(own, RecordType::AAAA), Transport::Tcp)),
            ["fd00::9"]
        );
        for reserved in [
            "us.east.dual.demo.svc.clusterset.local.",
            "east.dual.demo.svc.clusterset.local.",
        ] {
            let m = ask(&z, &query(reserved, RecordType::A), Transport::Tcp);
            assert!(
                m.metadata.response_code == ResponseCode::NoError && soa_only(&m),
                "{reserved}"
            );
        }
        let srv = ask(
            &z,
            &query("dual.demo.svc.clusterset.local.", RecordType::SRV),
            Transport::Tcp,
        );
        assert_eq!(
            data(&srv),
            [format!("0 100 5432 {own}")],
            "one target, one port: one record"
        );
        assert_eq!(srv.additionals.len(), 2, "with its A and AAAA");
        let a = ask(
            &z,
            &query("dual.demo.svc.clusterset.local.", RecordType::A),
            Transport::Tcp,
        );
        assert_eq!(data(&a), ["10.3.0.9"]);
    }

    #[test]
    fn zone_transfers_are_refused() {
        for qtype in [RecordType::AXFR, RecordType::IXFR] {
            let m = ask(&zone(), &query("clusterset.local.", qtype), Transport::Tcp);
            assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{qtype}");
        }
    }

    #[test]
    fn the_master_file_lists_what_is_answered() {
        let text = zone().read().master_file();
        for line in [
            "dns-version.clusterset.local. 3600 IN TXT 1.0.0",
            "web.demo.svc.clusterset.local. 5 IN A 10.96.0.10",
            "web.demo.svc.clusterset.local. 5 IN AAAA fd00::10",
            "_https._tcp.web.demo.svc.clusterset.local. 5 IN SRV 0 100 443 web.demo.svc.clusterset.local.",
            "db-0.east.db.demo.svc.clusterset.local. 5 IN A 10.1.0.7",
            "10-2-0-8.west.db.demo.svc.clusterset.local. 5 IN A 10.2.0.8",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        assert!(
            !text.contains("empty.demo"),
            "a headless service with nothing ready is not there"
        );
        assert!(
            !text.contains("10.2.0.9"),
            "an unready endpoint is not there"
        );
    }

    /// Random and mutated packets: every reply must be a message that parses, with the
    /// request's ID; nothing may panic. A small, deterministic generator keeps it
    /// reproducible (the seed is printed on failure).
    #[test]
    fn random_and_mutated_packets_never_break_the_server() {
        let z = big_zone();
        let seeds: Vec<Vec<u8>> = [
            query("web.demo.svc.clusterset.local.", RecordType::A),
            query("_pg._tcp.db.demo.svc.clusterset.local.", RecordType::SRV),
            {
                let mut q = query("big.demo.svc.clusterset.local.", RecordType::A);
                q.set_edns(Edns::new());
                q
            },
        ]
        .iter()
        .map(|m| m.to_vec().unwrap())
        .collect();
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let rounds: usize = std::env::var("DNS_FUZZ_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30_000);
        for round in 0..rounds {
            let mut packet = if round % 4 == 0 {
                (0..next() % 80).map(|_| next() as u8).collect()
            } else {
                seeds[round % seeds.len()].clone()
            };
            for _ in 0..1 + next() % 4 {
                if packet.is_empty() {
                    break;
                }
                let i = (next() as usize) % packet.len();
                match next() % 3 {
                    0 => packet[i] = next() as u8,
                    1 => packet.truncate(i),
                    _ => packet.insert(i, next() as u8),
                }
            }
            for transport in [Transport::Udp, Transport::Tcp] {
                let Some(reply) = respond(&z, &packet, transport) else {
                    continue;
                };
                let m = Message::from_vec(&reply.bytes).unwrap_or_else(|e| {
                    panic!("round {round}: reply does not parse ({e}) for {packet:?}")
                });
                assert_eq!(
                    m.metadata.id,
                    u16::from_be_bytes([packet[0], packet[1]]),
                    "round {round}"
                );
                if transport == Transport::Udp {
                    assert!(
                        reply.bytes.len() <= usize::from(OUR_UDP_PAYLOAD),
                        "round {round}: UDP reply too big"
                    );
                }
            }
        }
    }
}
