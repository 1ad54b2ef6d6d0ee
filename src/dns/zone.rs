//! The `clusterset.local` zone as plain data — services as the member imports them,
//! with no Kubernetes types — and the answer to one question, per the MCS DNS
//! specification 1.0.0 (see MCS-SPEC.md, "DNS").

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The schema version the TXT record announces.
pub const SCHEMA_VERSION: &str = "1.0.0";
/// The version record rarely changes; resolvers may keep it long.
pub const VERSION_TTL: u32 = 3600;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: Option<String>,
    /// Lowercase, as in the SRV label: `tcp`, `udp`, `sctp`.
    pub protocol: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The exporting cluster; endpoints without one get no per-endpoint name.
    pub cluster: Option<String>,
    pub hostname: Option<String>,
    pub addresses: Vec<IpAddr>,
    pub ready: bool,
    /// The ports of the slice the endpoint came from.
    pub ports: Vec<Port>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Answered with these IPs (the import's `spec.ips`).
    ClusterSetIp(Vec<IpAddr>),
    /// Answered with the ready endpoints of every exporting cluster.
    Headless,
}

/// One imported service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub kind: Kind,
    pub ports: Vec<Port>,
    pub endpoints: Vec<Endpoint>,
}

impl Service {
    /// Ready endpoints with an address: the ones DNS answers with.
    fn ready(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints
            .iter()
            .filter(|e| e.ready && !e.addresses.is_empty())
    }

    /// The ports SRV records name: the import's for a ClusterSetIP service, the
    /// endpoints' for a headless one (clients connect to the endpoints directly).
    fn srv_ports(&self) -> Vec<&Port> {
        match self.kind {
            Kind::ClusterSetIp(_) => self.ports.iter().collect(),
            Kind::Headless => self.ready().flat_map(|e| &e.ports).collect(),
        }
    }

    /// A headless service without ready endpoints does not exist, as far as DNS goes.
    fn exists(&self) -> bool {
        matches!(self.kind, Kind::ClusterSetIp(_)) || self.ready().next().is_some()
    }

    fn fqdn(&self) -> Name {
        name(&[&self.name, &self.namespace, "svc", "clusterset", "local"])
    }

    /// A headless service's ready endpoints by their own names — the hostname, or the
    /// address with dots and colons dashed, under the cluster ID — one entry per
    /// (name, address) even when an endpoint shows up in two slices. Endpoints whose
    /// name cannot be a DNS name (no or an over-long cluster ID) are left out.
    fn endpoint_names(&self) -> Vec<Named<'_>> {
        if matches!(self.kind, Kind::ClusterSetIp(_)) {
            return Vec::new();
        }
        let mut out: Vec<Named> = Vec::new();
        for ep in self.ready() {
            let Some(cluster) = ep.cluster.as_deref().filter(|c| !c.is_empty()) else {
                continue;
            };
            for &ip in &ep.addresses {
                let label = match &ep.hostname {
                    Some(h) if crate::mcs::validate::is_dns_label(h) => h.to_ascii_lowercase(),
                    _ => dashed(ip),
                };
                let text = format!(
                    "{label}.{cluster}.{}.{}.svc.clusterset.local.",
                    self.name, self.namespace
                );
                let Ok(fqdn) = Name::from_ascii(&text) else {
                    continue;
                };
                if !out
                    .iter()
                    .any(|n| n.label == label && n.cluster == cluster && n.ip == ip)
                {
                    out.push(Named {
                        label,
                        cluster,
                        ip,
                        endpoint: ep,
                        fqdn,
                    });
                }
            }
        }
        out
    }
}

/// One ready endpoint address of a headless service, with its own name.
struct Named<'a> {
    label: String,
    cluster: &'a str,
    ip: IpAddr,
    endpoint: &'a Endpoint,
    fqdn: Name,
}

impl Named<'_> {
    /// Whether the labels asked for name this endpoint's cluster, or (for a dotted
    /// cluster ID) a name above it.
    fn under_cluster(&self, labels: &str) -> bool {
        let cluster = self.cluster.to_ascii_lowercase();
        cluster == labels || cluster.ends_with(&format!(".{labels}"))
    }
}

/// `10.0.0.1` → `10-0-0-1`, `fd00::1` → `fd00--1`.
pub fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// A fully qualified name from labels the zone built itself (valid by construction).
fn name(labels: &[&str]) -> Name {
    let mut n =
        Name::from_labels(labels.iter().map(|l| l.as_bytes())).unwrap_or_else(|_| Name::root());
    n.set_fqdn(true);
    n
}

/// What the server says to one question.
#[derive(Debug, Default)]
pub struct Answer {
    pub rcode: ResponseCode,
    /// False for names outside the zone (REFUSED).
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

/// The zone: every imported service, a reverse index for PTR, and the SOA serial.
pub struct Zone {
    /// namespace → name → service, so a lookup borrows the asked labels.
    namespaces: HashMap<String, HashMap<String, Arc<Service>>>,
    /// Kept as services come and go, for metrics read on every change.
    service_count: usize,
    endpoint_count: usize,
    reverse: HashMap<IpAddr, Vec<Name>>,
    serial: u32,
    ttl: u32,
    /// The server's own address, answered for the NS target when known.
    advertise: Option<IpAddr>,
}

impl Zone {
    pub fn new(ttl: u32, advertise: Option<IpAddr>) -> Zone {
        Zone {
            namespaces: HashMap::new(),
            service_count: 0,
            endpoint_count: 0,
            reverse: HashMap::new(),
            // Seconds since the epoch, as CoreDNS starts its serials, so a restarted
            // server never goes back in time.
            serial: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs() as u32),
            ttl,
            advertise,
        }
    }

    fn all(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.namespaces.values().flat_map(HashMap::values)
    }

    pub fn services(&self) -> usize {
        self.service_count
    }

    pub fn endpoints(&self) -> usize {
        self.endpoint_count
    }

    fn get(&self, namespace: &str, name: &str) -> Option<&Arc<Service>> {
        self.namespaces.get(namespace)?.get(name)
    }

    /// Puts a service in (replacing what was there); `None` takes it out.
    pub fn set(&mut self, namespace: &str, name: &str, service: Option<Service>) {
        let (namespace, name) = (namespace.to_ascii_lowercase(), name.to_ascii_lowercase());
        if service.as_ref() == self.get(&namespace, &name).map(|s| &**s) {
            return;
        }
        if let Some(s) = &service {
            self.service_count += 1;
            self.endpoint_count += s.endpoints.len();
        }
        let old = match service {
            Some(s) => {
                self.index_reverse(&s, true);
                self.namespaces
                    .entry(namespace)
                    .or_default()
                    .insert(name, Arc::new(s))
            }
            None => {
                let services = self.namespaces.get_mut(&namespace);
                let old = services.and_then(|services| services.remove(&name));
                if self
                    .namespaces
                    .get(&namespace)
                    .is_some_and(HashMap::is_empty)
                {
                    self.namespaces.remove(&namespace);
                }
                old
            }
        };
        if let Some(old) = &old {
            self.index_reverse(old, false);
            self.service_count -= 1;
            self.endpoint_count -= old.endpoints.len();
        }
        self.serial = self.serial.wrapping_add(1);
    }

    /// Adds (or removes) the PTR targets of a service's addresses.
    fn index_reverse(&mut self, service: &Service, add: bool) {
        let mut targets: Vec<(IpAddr, Name)> = Vec::new();
        match &service.kind {
            Kind::ClusterSetIp(ips) => targets.extend(ips.iter().map(|ip| (*ip, service.fqdn()))),
            Kind::Headless => {
                targets.extend(service.endpoint_names().into_iter().map(|n| (n.ip, n.fqdn)));
            }
        }
        for (ip, target) in targets {
            let names = self.reverse.entry(ip).or_default();
            if add {
                names.push(target);
            } else if let Some(i) = names.iter().position(|n| *n == target) {
                names.remove(i);
            }
            if names.is_empty() {
                self.reverse.remove(&ip);
            }
        }
    }

    /// Answers one question. The owner of every answer is `qname` as asked, so the
    /// case the client used comes back.
    pub fn resolve(&self, qname: &Name, qtype: RecordType) -> Answer {
        let lower = qname.to_lowercase();
        let labels: Vec<&str> = lower
            .iter()
            .map(|l| std::str::from_utf8(l).unwrap_or("\u{fffd}"))
            .collect();
        let Some(relative) = labels.strip_suffix(&["clusterset", "local"]) else {
            return self.reverse_lookup(qname, &lower, qtype);
        };
        let mut q = Question {
            zone: self,
            qname,
            qtype,
            answer: Answer {
                authoritative: true,
                ..Answer::default()
            },
        };
        q.lookup(relative);
        q.answer
    }

    /// PTR for the addresses the zone knows; any other name is not ours.
    fn reverse_lookup(&self, qname: &Name, lower: &Name, qtype: RecordType) -> Answer {
        let ip = lower
            .parse_arpa_name()
            .ok()
            .filter(|net| net.prefix_len() == net.max_prefix_len())
            .map(|net| net.addr());
        let Some((ip, targets)) = ip.and_then(|ip| Some((ip, self.reverse.get(&ip)?))) else {
            return Answer {
                rcode: ResponseCode::Refused,
                ..Answer::default()
            };
        };
        let mut answer = Answer {
            authoritative: true,
            ..Answer::default()
        };
        if matches!(qtype, RecordType::PTR | RecordType::ANY) {
            for target in targets {
                answer.answers.push(Record::from_rdata(
                    qname.clone(),
                    self.ttl,
                    RData::PTR(PTR(target.clone())),
                ));
            }
        } else {
            // NODATA, negatively cacheable with the SOA of the reverse zone the name
            // is in (clusterset.local's would be out of bailiwick there).
            let arpa = if ip.is_ipv4() {
                name(&["in-addr", "arpa"])
            } else {
                name(&["ip6", "arpa"])
            };
            answer.authority.push(self.soa_of(arpa));
        }
        answer
    }

    /// The zone as an RFC 1035 master file: every name the zone answers, with what
    /// it answers for each type (PTR left out: that is reverse zones' business). For
    /// comparing with other servers and for looking at what is served.
    pub fn master_file(&self) -> String {
        let mut names = vec![
            name(&["clusterset", "local"]),
            name(&["dns-version", "clusterset", "local"]),
            name(&["ns", "dns", "clusterset", "local"]),
        ];
        let mut services: Vec<&Arc<Service>> = self.all().filter(|s| s.exists()).collect();
        services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        for service in services {
            let fqdn = service.fqdn();
            names.push(fqdn.clone());
            for port in service.srv_ports() {
                if let Some(port_name) = &port.name {
                    let labels = [format!("_{port_name}"), format!("_{}", port.protocol)];
                    let prefix = Name::from_labels(labels.iter().map(|l| l.as_bytes()));
                    if let Ok(full) = prefix.and_then(|p| p.append_name(&fqdn)) {
                        names.push(full);
                    }
                }
            }
            names.extend(service.endpoint_names().into_iter().map(|n| n.fqdn));
        }
        names.dedup();
        let mut out = String::new();
        let mut seen = std::collections::HashSet::new();
        for n in names {
            for qtype in [
                RecordType::SOA,
                RecordType::NS,
                RecordType::TXT,
                RecordType::A,
                RecordType::AAAA,
                RecordType::SRV,
            ] {
                for record in self.resolve(&n, qtype).answers {
                    let line = record.to_string();
                    if seen.insert(line.clone()) {
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
            }
        }
        out
    }

    fn soa(&self) -> Record {
        self.soa_of(name(&["clusterset", "local"]))
    }

    /// The SOA this server gives for `zone`: clusterset.local, or the reverse zone of
    /// the addresses it answers PTR for.
    fn soa_of(&self, zone: Name) -> Record {
        Record::from_rdata(
            zone,
            self.ttl,
            RData::SOA(SOA::new(
                name(&["ns", "dns", "clusterset", "local"]),
                name(&["hostmaster", "clusterset", "local"]),
                self.serial,
                7200,
                1800,
                86400,
                self.ttl,
            )),
        )
    }
}

/// One question being answered.
struct Question<'a> {
    zone: &'a Zone,
    qname: &'a Name,
    qtype: RecordType,
    answer: Answer,
}

impl Question<'_> {
    fn lookup(&mut self, relative: &[&str]) {
        match relative {
            [] => self.apex(),
            ["dns-version"] => {
                if self.wants(RecordType::TXT) {
                    let txt = RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()]));
                    self.record_ttl(VERSION_TTL, txt);
                }
                self.finish(true)
            }
            ["dns"] => self.finish(true),
            ["ns", "dns"] => {
                if let Some(ip) = self.zone.advertise {
                    self.address(ip);
                }
                self.finish(true)
            }
            ["svc"] => self.finish(self.zone.all().any(|s| s.exists())),
            [ns, "svc"] => {
                let services = self.zone.namespaces.get(*ns);
                self.finish(services.is_some_and(|s| s.values().any(|s| s.exists())))
            }
            [rest @ .., svc, ns, "svc"] => {
                let service = self.zone.get(ns, svc).filter(|s| s.exists()).cloned();
                match service {
                    Some(service) => self.service(&service, rest),
                    None => self.finish(false),
                }
            }
            _ => self.finish(false),
        }
    }

    fn apex(&mut self) {
        if self.wants(RecordType::SOA) {
            let soa = self.zone.soa();
            self.record(soa.data.clone());
        }
        if self.wants(RecordType::NS) {
            self.record(RData::NS(NS(name(&["ns", "dns", "clusterset", "local"]))));
        }
        self.finish(true)
    }

    fn service(&mut self, service: &Service, rest: &[&str]) {
        match rest {
            [] => self.service_name(service),
            [port, proto] if port.starts_with('_') && proto.starts_with('_') => {
                let (port, proto) = (&port[1..], &proto[1..]);
                let found = self.named_srv(service, port, proto);
                self.finish(found)
            }
            // `_tcp.<svc>…` exists (with nothing of its own) when a port has that protocol.
            [proto] if proto.starts_with('_') => {
                let proto = &proto[1..];
                let ports = service.srv_ports();
                self.finish(
                    ports
                        .iter()
                        .any(|p| p.protocol == proto && p.name.is_some()),
                )
            }
            [host, cluster @ ..] => {
                let names = service.endpoint_names();
                // `<clusterid>.<svc>…` is reserved: it exists (endpoint names hang below
                // it) but is never answered.
                if names.iter().any(|n| n.under_cluster(&rest.join("."))) {
                    return self.finish(true);
                }
                let cluster = cluster.join(".");
                let mut found = false;
                for n in names.iter().filter(|n| n.label == *host) {
                    if n.cluster.eq_ignore_ascii_case(&cluster) {
                        found = true;
                        self.address(n.ip);
                    }
                }
                self.finish(found)
            }
        }
    }

    fn service_name(&mut self, service: &Service) {
        match &service.kind {
            Kind::ClusterSetIp(ips) => {
                for &ip in ips {
                    self.address(ip);
                }
                if self.wants(RecordType::SRV) && !service.ports.is_empty() {
                    let target = service.fqdn();
                    let mut seen = Vec::new();
                    for port in &service.ports {
                        if !seen.contains(&port.port) {
                            seen.push(port.port);
                            self.srv(port.port, target.clone());
                        }
                    }
                    self.glue(target, ips);
                }
            }
            Kind::Headless => {
                let mut seen = Vec::new();
                for ep in service.ready() {
                    for &ip in &ep.addresses {
                        if !seen.contains(&ip) {
                            seen.push(ip);
                            self.address(ip);
                        }
                    }
                }
                if self.wants(RecordType::SRV) {
                    self.endpoint_srvs(service, |_| true);
                }
            }
        }
        self.finish(true)
    }

    /// `_<port>._<proto>.<svc>…`: whether the name exists, answering SRV if asked.
    fn named_srv(&mut self, service: &Service, port: &str, proto: &str) -> bool {
        let matches = |p: &Port| p.name.as_deref() == Some(port) && p.protocol == proto;
        match &service.kind {
            Kind::ClusterSetIp(ips) => {
                let Some(p) = service.ports.iter().find(|p| matches(p)) else {
                    return false;
                };
                if self.wants(RecordType::SRV) {
                    self.srv(p.port, service.fqdn());
                    self.glue(service.fqdn(), ips);
                }
                true
            }
            Kind::Headless => {
                let found = service
                    .endpoint_names()
                    .iter()
                    .any(|n| n.endpoint.ports.iter().any(matches));
                if found && self.wants(RecordType::SRV) {
                    self.endpoint_srvs(service, matches);
                }
                found
            }
        }
    }

    /// A headless service's SRV records for the ports `wanted` picks: one per endpoint
    /// name and distinct port (a dual-stack endpoint is one target with two
    /// addresses), each target's addresses as additional records.
    fn endpoint_srvs(&mut self, service: &Service, wanted: impl Fn(&Port) -> bool) {
        let mut seen: Vec<(&str, &str, u16)> = Vec::new();
        let names = service.endpoint_names();
        for n in &names {
            let mut any = false;
            for p in n.endpoint.ports.iter().filter(|p| wanted(p)) {
                any = true;
                let key = (n.label.as_str(), n.cluster, p.port);
                if !seen.contains(&key) {
                    seen.push(key);
                    self.srv(p.port, n.fqdn.clone());
                }
            }
            if any {
                self.glue(n.fqdn.clone(), &[n.ip]);
            }
        }
    }

    fn wants(&self, t: RecordType) -> bool {
        self.qtype == t || self.qtype == RecordType::ANY
    }

    fn address(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) if self.wants(RecordType::A) => self.record(RData::A(A(v4))),
            IpAddr::V6(v6) if self.wants(RecordType::AAAA) => self.record(RData::AAAA(AAAA(v6))),
            _ => {}
        }
    }

    fn srv(&mut self, port: u16, target: Name) {
        self.record(RData::SRV(SRV::new(0, 100, port, target)));
    }

    /// An SRV target's addresses, as additional records (once per target: callers
    /// see to that, so no answer is scanned for duplicates).
    fn glue(&mut self, target: Name, ips: &[IpAddr]) {
        for &ip in ips {
            let data = match ip {
                IpAddr::V4(v4) => RData::A(A(v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
            };
            let extra = Record::from_rdata(target.clone(), self.zone.ttl, data);
            self.answer.additional.push(extra);
        }
    }

    fn record(&mut self, data: RData) {
        self.record_ttl(self.zone.ttl, data);
    }

    fn record_ttl(&mut self, ttl: u32, data: RData) {
        let record = Record::from_rdata(self.qname.clone(), ttl, data);
        self.answer.answers.push(record);
    }

    /// NXDOMAIN for a name that does not exist, NODATA for one without records of the
    /// asked type; both carry the SOA so resolvers can cache the negative answer.
    fn finish(&mut self, exists: bool) {
        if !exists {
            self.answer.rcode = ResponseCode::NXDomain;
            self.answer.answers.clear();
            self.answer.additional.clear();
        }
        if self.answer.answers.is_empty() {
            self.answer.authority.push(self.zone.soa());
        }
    }
}
