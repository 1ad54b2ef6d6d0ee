//! Prometheus metrics of the API server.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub watchers: IntGauge,
    resource_version: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "apiserver_request_total",
                "Requests by verb, resource and HTTP code.",
            ),
            &["verb", "resource", "code"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "apiserver_request_duration_seconds",
                "Time to answer a request (watches: time to start streaming).",
            )
            .buckets(vec![
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
            ]),
            &["verb"],
        )
        .expect("valid metric");
        let watchers = IntGauge::new("apiserver_registered_watchers", "Open watch streams.")
            .expect("valid metric");
        let resource_version = IntGauge::new(
            "apiserver_current_resource_version",
            "The latest resourceVersion handed out.",
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(watchers.clone()),
            Box::new(resource_version.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        Metrics {
            registry,
            requests,
            latency,
            watchers,
            resource_version,
        }
    }

    pub fn observe_request(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[verb, resource, &code.to_string()])
            .inc();
        self.latency
            .with_label_values(&[verb])
            .observe(elapsed.as_secs_f64());
    }

    pub fn render(&self, current_rv: u64) -> String {
        self.resource_version.set(current_rv as i64);
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("metrics text is UTF-8")
    }
}
