//! The hub's membership metrics, registered beside the hub controller's.

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct MembershipMetrics {
    /// Members by readiness (`ready` = "true" / "false").
    pub members: IntGaugeVec,
    /// Seconds since each member's heartbeat was last seen renewed.
    pub heartbeat_age: GaugeVec,
    /// Ready endpoints held back from every import because their member is not ready.
    pub withdrawn_endpoints: IntGaugeVec,
    /// Times each member's endpoints were withdrawn.
    pub withdrawals: IntCounterVec,
    /// Registration requests by result (`Pending`, `Approved`, `Denied`, `New`).
    pub requests: IntGaugeVec,
    /// The registrar's reconciles by result (`ok`, `error`).
    pub registrar_reconciles: IntCounterVec,
}

impl MembershipMetrics {
    pub fn new(registry: &Registry) -> Self {
        let metrics = MembershipMetrics {
            members: IntGaugeVec::new(
                Opts::new("members", "Members of the clusterset by readiness"),
                &["ready"],
            )
            .expect("valid metric"),
            heartbeat_age: GaugeVec::new(
                Opts::new(
                    "member_heartbeat_age_seconds",
                    "Seconds since the member's heartbeat Lease was last seen renewed",
                ),
                &["cluster"],
            )
            .expect("valid metric"),
            withdrawn_endpoints: IntGaugeVec::new(
                Opts::new(
                    "member_withdrawn_endpoints",
                    "Endpoints withdrawn from every import because their member is not ready",
                ),
                &["cluster"],
            )
            .expect("valid metric"),
            withdrawals: IntCounterVec::new(
                Opts::new(
                    "member_withdrawals_total",
                    "Times a member's endpoints were withdrawn for a lost heartbeat",
                ),
                &["cluster"],
            )
            .expect("valid metric"),
            requests: IntGaugeVec::new(
                Opts::new(
                    "registration_requests",
                    "Cluster registration requests by result",
                ),
                &["result"],
            )
            .expect("valid metric"),
            registrar_reconciles: IntCounterVec::new(
                Opts::new(
                    "registrar_reconciles_total",
                    "Reconciles of registration requests and ManagedClusters by result",
                ),
                &["result"],
            )
            .expect("valid metric"),
        };
        for c in [
            Box::new(metrics.members.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.heartbeat_age.clone()),
            Box::new(metrics.withdrawn_endpoints.clone()),
            Box::new(metrics.withdrawals.clone()),
            Box::new(metrics.requests.clone()),
            Box::new(metrics.registrar_reconciles.clone()),
        ] {
            registry.register(c).expect("registered once");
        }
        metrics
    }
}
