//! `/metrics` (Prometheus text), `/healthz` and `/readyz` for a controller role.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, Registry, TextEncoder};

/// Whether the role is ready to do its work (its caches have synced), and why not.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Serves the probes on `listen` until `shutdown` resolves; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    registry: Registry,
    ready: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    match ready() {
                        Ok(()) => (StatusCode::OK, "ok".to_string()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut body = Vec::new();
                    let encoder = TextEncoder::new();
                    match encoder.encode(&registry.gather(), &mut body) {
                        Ok(()) => (StatusCode::OK, body),
                        Err(e) => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            e.to_string().into_bytes(),
                        ),
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(%error, "probe server stopped");
        }
    });
    Ok((addr, task))
}
