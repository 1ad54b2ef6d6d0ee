//! The Prometheus metrics of the hub controller and the agent.

use std::sync::Arc;
use std::time::Instant;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::runtime::failure_log::{FailureLog, Line};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Hub: accepted export records; agent: this cluster's valid exports.
    pub exports: IntGauge,
    /// Hub: import decisions; agent: ServiceImports written in this cluster.
    pub imports: IntGauge,
    /// Services whose exports conflict, by standard reason (hub).
    pub conflicts: IntGaugeVec,
    /// Reconciles by controller and result (ok, error).
    pub reconciles: IntCounterVec,
    /// Keys whose last reconcile failed (being retried).
    pub failing: IntGauge,
    /// Seconds from an export reaching its agent to its ServiceImport being written in
    /// a member (agent, import side).
    pub propagation: Histogram,
    failures: Arc<FailureLog>,
}

impl Metrics {
    pub fn new(role: &str) -> Self {
        let registry = Registry::new_custom(Some("clusterset".into()), None).expect("valid prefix");
        Self::in_registry(role, registry)
    }

    /// An agent's metrics for a push member, in a registry of its own without the
    /// prefix: the hub gathers it into its own (which adds the prefix), labelled with
    /// the member's cluster.
    pub fn for_push_member() -> Self {
        Self::in_registry("agent", Registry::new())
    }

    fn in_registry(role: &str, registry: Registry) -> Self {
        let exports =
            IntGauge::new(format!("{role}_exports"), "Exports known").expect("valid metric");
        let imports =
            IntGauge::new(format!("{role}_imports"), "Imports known").expect("valid metric");
        let conflicts = IntGaugeVec::new(
            Opts::new(
                format!("{role}_conflicts"),
                "Services in conflict, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let reconciles = IntCounterVec::new(
            Opts::new(
                format!("{role}_reconciles_total"),
                "Reconciles by controller and result",
            ),
            &["controller", "result"],
        )
        .expect("valid metric");
        let failing = IntGauge::new(
            format!("{role}_failing_keys"),
            "Keys whose last reconcile failed and are being retried",
        )
        .expect("valid metric");
        let propagation = Histogram::with_opts(
            HistogramOpts::new(
                format!("{role}_propagation_seconds"),
                "Export-to-import propagation latency",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("valid metric");
        for c in [
            Box::new(exports.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(imports.clone()),
            Box::new(conflicts.clone()),
            Box::new(reconciles.clone()),
            Box::new(failing.clone()),
            Box::new(propagation.clone()),
        ] {
            registry.register(c).expect("registered once");
        }
        Metrics {
            registry,
            exports,
            imports,
            conflicts,
            reconciles,
            failing,
            propagation,
            failures: Arc::default(),
        }
    }

    /// Counts one reconcile's outcome.
    pub fn reconciled(
        &self,
        controller: &str,
        key: &dyn std::fmt::Display,
        result: &Result<(), kube::Error>,
    ) {
        let outcome = match result {
            Ok(()) => {
                self.log_success(controller, key);
                "ok"
            }
            // The cache was behind a write of our own: the retry reads the newer version.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::debug!(controller, %key, message = %s.message, "conflict; will retry");
                "conflict"
            }
            Err(error) => {
                self.log_failure(controller, key, error);
                "error"
            }
        };
        self.reconciles
            .with_label_values(&[controller, outcome])
            .inc();
        self.failing.set(self.failures.failing() as i64);
    }

    fn log_failure(&self, controller: &str, key: &dyn std::fmt::Display, error: &kube::Error) {
        let id = format!("{controller} {key}");
        match self.failures.failed(&id, Instant::now()) {
            Line::Warn => tracing::warn!(
                controller, %key, %error,
                "reconcile failed; will retry (until it succeeds, its failures are logged at debug)"
            ),
            Line::Summary { failing, unlogged } => tracing::warn!(
                controller, failing, unlogged, %key, %error,
                "reconciles of {failing} keys are failing; {unlogged} more started failing since the last warning (this is the latest)"
            ),
            _ => tracing::debug!(controller, %key, %error, "reconcile failed; will retry"),
        }
    }

    fn log_success(&self, controller: &str, key: &dyn std::fmt::Display) {
        let line = self
            .failures
            .succeeded(|| format!("{controller} {key}"), Instant::now());
        match line {
            Line::Recovered => tracing::info!(controller, %key, "reconcile succeeds again"),
            Line::AllRecovered { failed } => tracing::info!(
                failed,
                "every failing reconcile succeeds again ({failed} keys had failed)"
            ),
            _ => {}
        }
    }
}
