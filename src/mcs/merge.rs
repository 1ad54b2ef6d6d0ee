//! The hub's decision for one multi-cluster service: merge every cluster's export of
//! `namespace/name` into the single ServiceImport all members receive, and say, per
//! export, whether it is in conflict.
//!
//! Pure and deterministic: no Kubernetes client, no I/O, no clock. The same records in
//! any order give the same [`Decision`].
//!
//! Rules (KEP-1645 "Constraints and Conflict Resolution", mcs-api v1beta1 reasons):
//! - Precedence: oldest `creationTimestamp` first (compared as instants; a timestamp
//!   that does not parse sorts after every valid one), ties broken by cluster ID.
//! - Not-mergeable properties (type, session affinity and its config, internal traffic
//!   policy, traffic distribution, exported labels, exported annotations, IP families)
//!   take the winner's value; every export with another value adds a conflict.
//! - Ports: the union, merged by name first (an unnamed port counts as the empty name,
//!   as the KEP says names must be unique "including unnamed/empty name"), then by
//!   (protocol, port). The higher-precedence export's port wins a clash; any mismatch is
//!   a `PortConflict`.
//! - A conflict marks every export of the service, winner included (KEP: "set on all
//!   ServiceExports for the conflicted service"; mcs-api only requires the conflicting
//!   one and recommends all).
//!
//! The Conflict reason joins the reasons found with bare commas, in the order of
//! [`CONFLICT_REASON_ORDER`] (the declaration order of the mcs-api v1beta1 constants).
//! No spaces: `metav1.Condition.reason` must match `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Reason of the Conflict condition when nothing conflicts.
pub const NO_CONFLICTS: &str = "NoConflicts";

/// The fixed order in which conflict reasons are joined in `Verdict::reason`.
pub const CONFLICT_REASON_ORDER: [&str; 9] = [
    "PortConflict",
    "TypeConflict",
    "SessionAffinityConflict",
    "SessionAffinityConfigConflict",
    "LabelsConflict",
    "AnnotationsConflict",
    "InternalTrafficPolicyConflict",
    "TrafficDistributionConflict",
    "IPFamilyConflict",
];

/// `metav1.Condition.message` is limited to 32768 characters; the API server would
/// reject a status carrying a longer one, so the message is capped below that.
const MAX_MESSAGE_BYTES: usize = 32768;

/// `ServiceImport.spec.type`. Variant names are the wire values, so no renaming.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportType {
    ClusterSetIP,
    Headless,
}

impl ImportType {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ImportType::ClusterSetIP => "ClusterSetIP",
            ImportType::Headless => "Headless",
        }
    }
}

/// A ServiceImport port: what a Service port keeps once exported (no targetPort).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    pub port: i32,
}

/// What one cluster's export says about its Service (only what the standard carries to the import).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExportedService {
    #[serde(rename = "type")]
    pub type_: ImportType,
    #[serde(default)]
    pub ports: Vec<Port>,
    /// "None" or "ClientIP".
    pub session_affinity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::any_object")]
    pub session_affinity_config: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_traffic_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<String>,
    /// e.g. ["IPv4"], ["IPv6", "IPv4"].
    #[serde(default)]
    pub ip_families: Vec<String>,
    /// From `spec.exportedLabels`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// From `spec.exportedAnnotations`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// One cluster's export of namespace/name, as its agent reports it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExportRecord {
    pub cluster: String,
    /// The ServiceExport's creationTimestamp, RFC 3339.
    pub created: String,
    pub service: ExportedService,
}

/// The hub's decision for one namespace/name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// What every member's ServiceImport carries (ports merged).
    pub import: ExportedService,
    /// Exporting cluster IDs, sorted.
    pub clusters: Vec<String>,
    /// The Conflict condition for each exporting cluster's ServiceExport.
    pub verdicts: BTreeMap<String, Verdict>,
}

/// The Conflict condition of one ServiceExport.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub conflict: bool,
    /// "NoConflicts" or the comma-joined standard reasons.
    pub reason: String,
    pub message: String,
}

/// Orders exports by precedence (oldest creationTimestamp first, ties by cluster ID) and
/// decides the import. None when there are no records.
#[must_use]
pub fn decide(records: &[ExportRecord]) -> Option<Decision> {
    let ranked = rank(records);
    let winner = ranked.first()?;
    let (ports, mut findings) = merge_ports(&ranked);
    findings.extend(field_findings(&ranked));
    // Stable sort: within one reason the findings stay in precedence order.
    findings.sort_by_key(|f| f.reason);
    let import = ExportedService {
        ports,
        ..winner.rec.service.clone()
    };
    let mut clusters: Vec<String> = ranked.iter().map(|r| r.rec.cluster.clone()).collect();
    clusters.sort();
    Some(Decision {
        import,
        clusters,
        verdicts: verdicts(&ranked, &findings),
    })
}

// ---------------------------------------------------------------------------
// Precedence

/// An export with its creation instant; `at` is None when the timestamp does not parse.
struct Ranked<'a> {
    at: Option<jiff::Timestamp>,
    rec: &'a ExportRecord,
}

impl<'a> Ranked<'a> {
    fn cluster(&self) -> &'a str {
        &self.rec.cluster
    }
}

/// The exports in precedence order, one per cluster.
fn rank(records: &[ExportRecord]) -> Vec<Ranked<'_>> {
    let mut ranked: Vec<Ranked> = records
        .iter()
        .map(|rec| Ranked {
            // Compare instants: `+01:00` and `Z` forms of one instant must tie, which
            // string order gets wrong. jiff takes RFC 3339 (and a few lenient ISO 8601
            // spellings of it) but rejects a time without offset, which names no instant.
            at: rec.created.parse().ok(),
            rec,
        })
        .collect();
    ranked.sort_by(|a, b| {
        age_key(a)
            .cmp(&age_key(b))
            .then_with(|| a.cluster().cmp(b.cluster()))
            .then_with(|| content_key(a.rec).cmp(&content_key(b.rec)))
    });
    // A cluster has at most one ServiceExport per namespace/name. Should a caller pass
    // duplicates anyway, keep the first by precedence so there is one verdict per cluster.
    let mut seen = BTreeSet::new();
    ranked.retain(|r| seen.insert(r.cluster()));
    ranked
}

/// Valid instants first (oldest first), then every unparsable timestamp.
fn age_key(r: &Ranked) -> (bool, Option<jiff::Timestamp>) {
    (r.at.is_none(), r.at)
}

/// Last-resort tie breaker between duplicate records of one cluster, so even a bad input
/// cannot make the result depend on the input order.
fn content_key(rec: &ExportRecord) -> (String, String) {
    let service = serde_json::to_string(&rec.service).unwrap_or_default();
    (rec.created.clone(), service)
}

/// Why `winner` takes precedence over `loser`, for the message: mcs-api asks that it say
/// which cluster won and why. `overall` is set when `winner` is the service's winner (for
/// ports the winning export may be any export that contributed the port first).
fn why_first(winner: &Ranked, loser: &Ranked, overall: bool) -> &'static str {
    if winner.cluster() == loser.cluster() {
        return "listed first in the same export";
    }
    match (winner.at, loser.at) {
        (Some(w), Some(l)) if w < l && overall => "oldest export",
        (Some(w), Some(l)) if w < l => "older export",
        (Some(_), Some(_)) => "same creationTimestamp, first by cluster ID",
        (Some(_), None) => "the other creationTimestamp does not parse",
        (None, _) => "no creationTimestamp parses, first by cluster ID",
    }
}

// ---------------------------------------------------------------------------
// Conflicts

/// A standard Conflict reason; the declaration order is the join order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Reason {
    Port,
    Type,
    SessionAffinity,
    SessionAffinityConfig,
    Labels,
    Annotations,
    InternalTrafficPolicy,
    TrafficDistribution,
    IpFamily,
}

impl Reason {
    fn as_str(self) -> &'static str {
        CONFLICT_REASON_ORDER[self as usize]
    }
}

/// One difference between exports: its reason and the sentence describing it.
struct Finding {
    reason: Reason,
    sentence: String,
}

/// `<Reason>: "<loser>" exports <what> but "<winner>" (<why>) has <kept>, which the import uses`.
fn finding(reason: Reason, loser: &Ranked, lost: &str, winner: &Ranked, kept: &str) -> Finding {
    let why = why_first(winner, loser, reason != Reason::Port);
    let sentence = format!(
        "{}: \"{}\" exports {lost} but \"{}\" ({why}) has {kept}, which the import uses",
        reason.as_str(),
        loser.cluster(),
        winner.cluster(),
    );
    Finding { reason, sentence }
}

/// The Conflict condition, the same for every export of the service.
fn verdicts(ranked: &[Ranked], findings: &[Finding]) -> BTreeMap<String, Verdict> {
    let verdict = if findings.is_empty() {
        Verdict {
            conflict: false,
            reason: NO_CONFLICTS.to_string(),
            message: agreement(ranked.len()),
        }
    } else {
        Verdict {
            conflict: true,
            reason: joined_reasons(findings),
            message: cap_message(joined_sentences(findings)),
        }
    };
    let per_cluster = ranked
        .iter()
        .map(|r| (r.rec.cluster.clone(), verdict.clone()));
    per_cluster.collect()
}

fn agreement(exports: usize) -> String {
    if exports == 1 {
        return "the only export of this service, so nothing conflicts".to_string();
    }
    format!(
        "the {exports} exports of this service agree on type, session affinity, traffic \
         policies, IP families, labels and annotations, and their ports merge without clashes"
    )
}

fn joined_reasons(findings: &[Finding]) -> String {
    let reasons: BTreeSet<Reason> = findings.iter().map(|f| f.reason).collect();
    let names: Vec<&str> = reasons.into_iter().map(Reason::as_str).collect();
    names.join(",")
}

fn joined_sentences(findings: &[Finding]) -> String {
    let sentences: Vec<&str> = findings.iter().map(|f| f.sentence.as_str()).collect();
    sentences.join("; ")
}

/// Cuts the message to what a Condition can hold, on a character boundary.
fn cap_message(mut message: String) -> String {
    const MORE: &str = " …(truncated)";
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut cut = MAX_MESSAGE_BYTES - MORE.len();
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message.truncate(cut);
    message.push_str(MORE);
    message
}

// ---------------------------------------------------------------------------
// Not-mergeable properties

/// A property resolved by precedence: the import takes the winner's value.
struct Field {
    reason: Reason,
    /// How the message names the property.
    noun: &'static str,
    same: fn(&ExportedService, &ExportedService) -> bool,
    show: fn(&ExportedService) -> String,
}

const FIELDS: [Field; 8] = [
    Field {
        reason: Reason::Type,
        noun: "type",
        same: |a, b| a.type_ == b.type_,
        show: |s| s.type_.as_str().to_string(),
    },
    Field {
        reason: Reason::SessionAffinity,
        noun: "sessionAffinity",
        same: |a, b| a.session_affinity == b.session_affinity,
        show: |s| show_text(&s.session_affinity),
    },
    Field {
        reason: Reason::SessionAffinityConfig,
        noun: "sessionAffinityConfig",
        // serde_json compares objects by content, not key order, even with preserve_order.
        same: |a, b| a.session_affinity_config == b.session_affinity_config,
        show: |s| show_config(s.session_affinity_config.as_ref()),
    },
    Field {
        reason: Reason::Labels,
        noun: "exportedLabels",
        same: |a, b| a.labels == b.labels,
        show: |s| show_json(&s.labels),
    },
    Field {
        reason: Reason::Annotations,
        noun: "exportedAnnotations",
        same: |a, b| a.annotations == b.annotations,
        show: |s| show_json(&s.annotations),
    },
    Field {
        reason: Reason::InternalTrafficPolicy,
        noun: "internalTrafficPolicy",
        same: |a, b| a.internal_traffic_policy == b.internal_traffic_policy,
        show: |s| show_option(s.internal_traffic_policy.as_deref()),
    },
    Field {
        reason: Reason::TrafficDistribution,
        noun: "trafficDistribution",
        same: |a, b| a.traffic_distribution == b.traffic_distribution,
        show: |s| show_option(s.traffic_distribution.as_deref()),
    },
    Field {
        reason: Reason::IpFamily,
        noun: "ipFamilies",
        // Order counts: the first family is the primary one, and the import's IPs follow it.
        same: |a, b| a.ip_families == b.ip_families,
        show: |s| show_json(&s.ip_families),
    },
];

/// One finding per (property, export) whose value differs from the winner's.
fn field_findings(ranked: &[Ranked]) -> Vec<Finding> {
    let Some((winner, losers)) = ranked.split_first() else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    for field in &FIELDS {
        for loser in losers {
            if !(field.same)(&winner.rec.service, &loser.rec.service) {
                findings.push(field_finding(field, winner, loser));
            }
        }
    }
    findings
}

fn field_finding(field: &Field, winner: &Ranked, loser: &Ranked) -> Finding {
    let lost = format!("{} {}", field.noun, (field.show)(&loser.rec.service));
    let kept = (field.show)(&winner.rec.service);
    finding(field.reason, loser, &lost, winner, &kept)
}

fn show_text(value: &str) -> String {
    if value.is_empty() {
        "unset".to_string()
    } else {
        value.to_string()
    }
}

fn show_option(value: Option<&str>) -> String {
    show_text(value.unwrap_or(""))
}

fn show_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn show_config(value: Option<&serde_json::Value>) -> String {
    value.map_or_else(|| "unset".to_string(), show_json)
}

// ---------------------------------------------------------------------------
// Ports

/// A port already in the import, with the rank of the export that contributed it.
struct Kept {
    port: Port,
    owner: usize,
}

/// The union of all exports' ports in precedence order, and the clashes it dropped.
fn merge_ports(ranked: &[Ranked]) -> (Vec<Port>, Vec<Finding>) {
    let mut kept: Vec<Kept> = Vec::new();
    let mut findings = Vec::new();
    for (rank, export) in ranked.iter().enumerate() {
        for port in &export.rec.service.ports {
            match clash(&kept, port) {
                None => kept.push(Kept {
                    port: port.clone(),
                    owner: rank,
                }),
                Some(k) if same_port(&k.port, port) => {}
                Some(k) => findings.push(port_finding(&ranked[k.owner], &k.port, export, port)),
            }
        }
    }
    (kept.into_iter().map(|k| k.port).collect(), findings)
}

/// The kept port `port` would collide with: by name first, then by (protocol, port).
fn clash<'k>(kept: &'k [Kept], port: &Port) -> Option<&'k Kept> {
    let by_name = kept.iter().find(|k| name_of(&k.port) == name_of(port));
    by_name.or_else(|| {
        kept.iter()
            .find(|k| k.port.protocol == port.protocol && k.port.port == port.port)
    })
}

/// Unnamed and empty-named ports are the same name as far as uniqueness goes.
fn name_of(port: &Port) -> &str {
    port.name.as_deref().unwrap_or("")
}

fn same_port(a: &Port, b: &Port) -> bool {
    name_of(a) == name_of(b)
        && a.protocol == b.protocol
        && a.port == b.port
        && a.app_protocol == b.app_protocol
}

fn port_finding(owner: &Ranked, kept: &Port, loser: &Ranked, lost: &Port) -> Finding {
    finding(
        Reason::Port,
        loser,
        &show_port(lost),
        owner,
        &show_port(kept),
    )
}

/// e.g. `port http 80/TCP`, `port (unnamed) 53/UDP appProtocol dns`.
fn show_port(port: &Port) -> String {
    let name = match name_of(port) {
        "" => "(unnamed)",
        name => name,
    };
    let app = match &port.app_protocol {
        Some(app) => format!(" appProtocol {app}"),
        None => String::new(),
    };
    format!("port {name} {}/{}{app}", port.port, port.protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, protocol: &str, number: i32) -> Port {
        Port {
            name: (!name.is_empty()).then(|| name.to_string()),
            protocol: protocol.to_string(),
            app_protocol: None,
            port: number,
        }
    }

    fn service() -> ExportedService {
        ExportedService {
            type_: ImportType::ClusterSetIP,
            ports: vec![port("http", "TCP", 80)],
            session_affinity: "None".to_string(),
            session_affinity_config: None,
            internal_traffic_policy: Some("Cluster".to_string()),
            traffic_distribution: None,
            ip_families: vec!["IPv4".to_string()],
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    fn record(cluster: &str, created: &str, service: ExportedService) -> ExportRecord {
        ExportRecord {
            cluster: cluster.to_string(),
            created: created.to_string(),
            service,
        }
    }

    fn headless() -> ExportedService {
        ExportedService {
            type_: ImportType::Headless,
            ..service()
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let owned = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        owned.collect()
    }

    const T1: &str = "2024-01-01T00:00:00Z";
    const T2: &str = "2024-01-02T00:00:00Z";
    const T3: &str = "2024-01-03T00:00:00Z";

    fn verdict<'d>(d: &'d Decision, cluster: &str) -> &'d Verdict {
        &d.verdicts[cluster]
    }

    fn assert_all_conflict(d: &Decision, reason: &str) {
        for (cluster, v) in &d.verdicts {
            assert!(v.conflict, "{cluster} should be in conflict");
            assert_eq!(v.reason, reason, "{cluster}");
        }
    }

    fn assert_no_conflict(d: &Decision) {
        for (cluster, v) in &d.verdicts {
            assert!(!v.conflict, "{cluster}: {}", v.message);
            assert_eq!(v.reason, NO_CONFLICTS);
        }
    }

    #[test]
    fn no_records_no_decision() {
        assert_eq!(decide(&[]), None);
    }

    #[test]
    fn single_export() {
        let d = decide(&[record("member-1", T1, service())]).unwrap();
        assert_eq!(d.import, service());
        assert_eq!(d.clusters, vec!["member-1"]);
        assert_no_conflict(&d);
        assert!(!verdict(&d, "member-1").message.is_empty());
    }

    #[test]
    fn two_identical_exports() {
        let d = decide(&[
            record("member-2", T2, service()),
            record("member-1", T1, service()),
        ])
        .unwrap();
        assert_eq!(d.import, service());
        assert_eq!(d.clusters, vec!["member-1", "member-2"]);
        assert_eq!(d.verdicts.len(), 2);
        assert_no_conflict(&d);
    }

    #[test]
    fn type_conflict_oldest_wins_and_marks_both() {
        let d = decide(&[
            record("member-2", T2, headless()),
            record("member-1", T1, service()),
        ])
        .unwrap();
        assert_eq!(d.import.type_, ImportType::ClusterSetIP);
        assert_all_conflict(&d, "TypeConflict");
        let expected = "TypeConflict: \"member-2\" exports type Headless but \"member-1\" \
                        (oldest export) has ClusterSetIP, which the import uses";
        assert_eq!(verdict(&d, "member-1").message, expected);
        assert_eq!(verdict(&d, "member-2").message, expected);
    }

    #[test]
    fn timestamp_tie_broken_by_cluster_id() {
        // Same instant written two ways: the tie is real, so the cluster ID decides.
        let d = decide(&[
            record("b", "2024-01-01T01:00:00+01:00", headless()),
            record("a", "2024-01-01T00:00:00Z", service()),
        ])
        .unwrap();
        assert_eq!(d.import.type_, ImportType::ClusterSetIP);
        assert_all_conflict(&d, "TypeConflict");
        let message = &verdict(&d, "b").message;
        assert!(
            message.contains("same creationTimestamp, first by cluster ID"),
            "{message}"
        );
    }

    #[test]
    fn timestamps_compare_as_instants_not_strings() {
        // 00:30+01:00 is 23:30Z the day before: older, though it sorts later as a string.
        let d = decide(&[
            record("a", "2023-12-31T23:45:00Z", service()),
            record("b", "2024-01-01T00:30:00+01:00", headless()),
        ])
        .unwrap();
        assert_eq!(d.import.type_, ImportType::Headless);
    }

    #[test]
    fn unparsable_timestamp_sorts_last() {
        let d = decide(&[
            record("a", "not a time", headless()),
            record("z", T3, service()),
        ])
        .unwrap();
        assert_eq!(d.import.type_, ImportType::ClusterSetIP);
        assert_all_conflict(&d, "TypeConflict");
        assert!(verdict(&d, "a")
            .message
            .contains("\"z\" (the other creationTimestamp"));
    }

    #[test]
    fn timestamp_without_offset_is_unparsable() {
        let d = decide(&[
            record("a", "2020-01-01T00:00:00", headless()),
            record("b", T3, service()),
        ])
        .unwrap();
        assert_eq!(d.import.type_, ImportType::ClusterSetIP);
    }

    #[test]
    fn unparsable_timestamps_fall_back_to_cluster_id() {
        let d = decide(&[
            record("b", "", service()),
            record("a", "2024-13-45T99:00:00Z", headless()),
        ])
        .unwrap();
        assert_eq!(d.import.type_, ImportType::Headless);
    }

    #[test]
    fn ports_union_by_name_then_protocol_and_port() {
        let mut first = service();
        first.ports = vec![port("http", "TCP", 80), port("dns", "UDP", 53)];
        let mut second = service();
        second.ports = vec![
            port("http", "TCP", 8080),    // same name, other port: loses
            port("web", "UDP", 53),       // same UDP/53, other name: loses
            port("metrics", "TCP", 9090), // new: joins the union
            port("dns", "UDP", 53),       // identical: merged silently
        ];
        let d = decide(&[
            record("member-2", T2, second),
            record("member-1", T1, first),
        ])
        .unwrap();
        let expected = vec![
            port("http", "TCP", 80),
            port("dns", "UDP", 53),
            port("metrics", "TCP", 9090),
        ];
        assert_eq!(d.import.ports, expected);
        assert_all_conflict(&d, "PortConflict");
        let message = &verdict(&d, "member-1").message;
        assert_eq!(
            message,
            "PortConflict: \"member-2\" exports port http 8080/TCP but \"member-1\" \
             (older export) has port http 80/TCP, which the import uses; \
             PortConflict: \"member-2\" exports port web 53/UDP but \"member-1\" \
             (older export) has port dns 53/UDP, which the import uses"
        );
    }

    #[test]
    fn ports_without_clash_merge_without_conflict() {
        let mut second = service();
        second.ports = vec![port("grpc", "TCP", 9000), port("http", "TCP", 80)];
        let d = decide(&[
            record("member-2", T2, second),
            record("member-1", T1, service()),
        ])
        .unwrap();
        // Winner's ports first, then what the younger export adds, in its own order.
        assert_eq!(
            d.import.ports,
            vec![port("http", "TCP", 80), port("grpc", "TCP", 9000)]
        );
        assert_no_conflict(&d);
    }

    #[test]
    fn app_protocol_mismatch_is_a_port_conflict() {
        let mut second = service();
        second.ports[0].app_protocol = Some("kubernetes.io/h2c".to_string());
        let d = decide(&[
            record("member-1", T1, service()),
            record("member-2", T2, second),
        ])
        .unwrap();
        assert_eq!(d.import.ports, vec![port("http", "TCP", 80)]);
        assert_all_conflict(&d, "PortConflict");
        let message = &verdict(&d, "member-2").message;
        assert!(
            message.contains("appProtocol kubernetes.io/h2c"),
            "{message}"
        );
    }

    #[test]
    fn unnamed_ports_share_the_empty_name() {
        let mut first = service();
        first.ports = vec![port("", "TCP", 80)];
        let mut second = service();
        second.ports = vec![port("", "TCP", 81)];
        let d = decide(&[record("a", T1, first), record("b", T2, second)]).unwrap();
        assert_eq!(d.import.ports, vec![port("", "TCP", 80)]);
        assert_all_conflict(&d, "PortConflict");
        assert!(verdict(&d, "a").message.contains("(unnamed) 81/TCP"));
    }

    #[test]
    fn clashing_ports_within_one_export_still_give_unique_ports() {
        let mut bad = service();
        bad.ports = vec![port("http", "TCP", 80), port("http", "TCP", 81)];
        let d = decide(&[record("a", T1, bad)]).unwrap();
        assert_eq!(d.import.ports, vec![port("http", "TCP", 80)]);
        assert_all_conflict(&d, "PortConflict");
        let message = &verdict(&d, "a").message;
        assert!(
            message.contains("(listed first in the same export)"),
            "{message}"
        );
    }

    #[test]
    fn several_reasons_join_in_fixed_order() {
        let mut second = headless();
        second.session_affinity = "ClientIP".to_string();
        second.ports = vec![port("http", "TCP", 8080)];
        second.ip_families = vec!["IPv6".to_string()];
        let d = decide(&[
            record("member-2", T2, second),
            record("member-1", T1, service()),
        ])
        .unwrap();
        let reason = "PortConflict,TypeConflict,SessionAffinityConflict,IPFamilyConflict";
        assert_all_conflict(&d, reason);
        let message = &verdict(&d, "member-2").message;
        assert_eq!(message.split("; ").count(), 4, "{message}");
        assert!(message.starts_with("PortConflict: "), "{message}");
        assert!(message.contains("; SessionAffinityConflict: \"member-2\" exports sessionAffinity ClientIP but \"member-1\" (oldest export) has None"));
        assert_eq!(d.import, service());
    }

    #[test]
    fn every_reason_at_once_follows_the_documented_order() {
        let loser = ExportedService {
            type_: ImportType::Headless,
            ports: vec![port("http", "UDP", 80)],
            session_affinity: "ClientIP".to_string(),
            session_affinity_config: Some(serde_json::json!({"clientIP": {"timeoutSeconds": 60}})),
            internal_traffic_policy: Some("Local".to_string()),
            traffic_distribution: Some("PreferClose".to_string()),
            ip_families: vec!["IPv6".to_string(), "IPv4".to_string()],
            labels: map(&[("team", "b")]),
            annotations: map(&[("note", "b")]),
        };
        let d = decide(&[record("x", T2, loser), record("w", T1, service())]).unwrap();
        assert_all_conflict(&d, &CONFLICT_REASON_ORDER.join(","));
        assert_eq!(d.import, service());
        let message = &verdict(&d, "w").message;
        assert!(message.contains(
            "exports trafficDistribution PreferClose but \"w\" (oldest export) has unset"
        ));
        assert!(message.contains("exports ipFamilies [\"IPv6\",\"IPv4\"]"));
    }

    #[test]
    fn labels_and_annotations_conflict() {
        let mut first = service();
        first.labels = map(&[("dummy-label", "true")]);
        first.annotations = map(&[("dummy-annotation", "true")]);
        let mut second = service();
        second.labels = map(&[("dummy-label2", "true")]);
        second.annotations = map(&[("dummy-annotation2", "true")]);
        let d = decide(&[record("c2", T2, second), record("c1", T1, first.clone())]).unwrap();
        assert_eq!(d.import.labels, first.labels);
        assert_eq!(d.import.annotations, first.annotations);
        assert_all_conflict(&d, "LabelsConflict,AnnotationsConflict");
        let message = &verdict(&d, "c1").message;
        assert!(message.contains(
            "LabelsConflict: \"c2\" exports exportedLabels {\"dummy-label2\":\"true\"} \
             but \"c1\" (oldest export) has {\"dummy-label\":\"true\"}"
        ));
    }

    #[test]
    fn session_affinity_config_compares_by_content_not_key_order() {
        let mut first = service();
        first.session_affinity_config = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let mut second = service();
        second.session_affinity_config = serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap();
        let d = decide(&[record("a", T1, first), record("b", T2, second)]).unwrap();
        assert_no_conflict(&d);
    }

    #[test]
    fn ip_families_conflict() {
        let mut second = service();
        second.ip_families = vec!["IPv4".to_string(), "IPv6".to_string()];
        let d = decide(&[record("b", T2, second), record("a", T1, service())]).unwrap();
        assert_eq!(d.import.ip_families, vec!["IPv4"]);
        assert_all_conflict(&d, "IPFamilyConflict");
    }

    #[test]
    fn younger_conflicting_export_never_changes_the_import() {
        let a = record("a", T2, service());
        let younger = ExportedService {
            type_: ImportType::Headless,
            ports: vec![port("http", "TCP", 81), port("extra", "TCP", 82)],
            session_affinity: "ClientIP".to_string(),
            session_affinity_config: Some(serde_json::json!({"clientIP": {}})),
            internal_traffic_policy: None,
            traffic_distribution: Some("PreferClose".to_string()),
            ip_families: vec!["IPv6".to_string()],
            labels: map(&[("l", "v")]),
            annotations: map(&[("a", "v")]),
        };
        // "0" sorts before "a" by ID, so only age keeps "a" the winner.
        let alone = decide(std::slice::from_ref(&a)).unwrap().import;
        let both = decide(&[record("0", T3, younger), a]).unwrap().import;
        // Only the port union may grow; everything resolved by precedence stays.
        assert_eq!(
            ExportedService {
                ports: alone.ports.clone(),
                ..both.clone()
            },
            alone
        );
        assert_eq!(both.ports[..alone.ports.len()], alone.ports[..]);
    }

    fn permutations(items: &[ExportRecord]) -> Vec<Vec<ExportRecord>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut all = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let head = rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, head.clone());
                all.push(tail);
            }
        }
        all
    }

    #[test]
    fn order_independent() {
        let mut b = headless();
        b.ports = vec![port("http", "TCP", 8080), port("b", "TCP", 1)];
        let mut c = service();
        c.labels = map(&[("x", "y")]);
        c.ports = vec![port("c", "TCP", 2)];
        let mut d = service();
        d.ports = vec![port("d", "TCP", 1), port("http", "TCP", 80)];
        let records = vec![
            record("b", T1, b),
            record("a", T1, service()),
            record("c", "bogus", c),
            record("d", T2, d),
        ];
        let expected = decide(&records).unwrap();
        for order in permutations(&records) {
            assert_eq!(decide(&order).unwrap(), expected);
        }
        assert_eq!(expected.clusters, vec!["a", "b", "c", "d"]);
        let names: Vec<_> = expected.import.ports.iter().map(name_of).collect();
        assert_eq!(names, vec!["http", "b", "c"]);
    }

    #[test]
    fn duplicate_cluster_keeps_its_oldest_record() {
        let d = decide(&[record("a", T2, headless()), record("a", T1, service())]).unwrap();
        assert_eq!(d.clusters, vec!["a"]);
        assert_eq!(d.import, service());
        assert_no_conflict(&d);
    }

    #[test]
    fn long_messages_are_capped_on_a_char_boundary() {
        let capped = cap_message("é".repeat(MAX_MESSAGE_BYTES));
        assert!(capped.len() <= MAX_MESSAGE_BYTES);
        assert!(capped.ends_with("(truncated)"));
        assert_eq!(cap_message("short".to_string()), "short");
    }

    #[test]
    fn reason_names_match_the_documented_order() {
        assert_eq!(Reason::Port.as_str(), "PortConflict");
        assert_eq!(Reason::IpFamily.as_str(), "IPFamilyConflict");
        assert_eq!(Reason::Labels.as_str(), "LabelsConflict");
    }

    #[test]
    fn json_is_camel_case_with_wire_enum_values() {
        let mut svc = service();
        svc.ports[0].app_protocol = Some("http".to_string());
        let d = decide(&[record("a", T1, svc)]).unwrap();
        let json = serde_json::to_value(&d).unwrap();
        let import = &json["import"];
        assert_eq!(import["type"], "ClusterSetIP");
        assert_eq!(import["sessionAffinity"], "None");
        assert_eq!(import["internalTrafficPolicy"], "Cluster");
        assert_eq!(import["ipFamilies"], serde_json::json!(["IPv4"]));
        assert_eq!(import["ports"][0]["appProtocol"], "http");
        assert_eq!(json["verdicts"]["a"]["reason"], NO_CONFLICTS);
        let back: Decision = serde_json::from_value(json).unwrap();
        assert_eq!(back, d);
    }
}
