//! The control socket of a running `clusterset local up` (`DIR/control.sock`): one
//! command per connection, one reply.
//!
//! - `down` stops the clusterset;
//! - `stop NAME` / `start NAME` stop and restart one cluster's API server (fault
//!   injection: the port closes, the objects stay);
//! - `status` reports which clusters serve;
//! - `join` starts one more member and joins it to the hub.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::LocalClusterset;

pub const SOCKET: &str = "control.sock";

/// Serves commands until `down` or a signal.
pub async fn serve(local: Arc<LocalClusterset>) -> anyhow::Result<()> {
    let path = local.dir.join(SOCKET);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    let signal = crate::telemetry::shutdown_signal();
    tokio::pin!(signal);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    continue;
                }
            },
            _ = &mut signal => return Ok(()),
        };
        match handle(&local, stream).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "control command failed"),
        }
    }
}

/// Answers one command; true when it was `down`.
async fn handle(local: &LocalClusterset, stream: UnixStream) -> anyhow::Result<bool> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let (reply, down) = match words.as_slice() {
        ["down"] => ("ok: stopping".to_string(), true),
        ["status"] => (status(local).to_string(), false),
        ["stop", name] | ["start", name] => (stop_or_start(local, words[0], name).await, false),
        ["join"] => match local.join_member().await {
            Ok(name) => (format!("ok: {name} joined"), false),
            Err(e) => (format!("error: {e:#}"), false),
        },
        _ => (
            format!(
                "error: unknown command {:?}; use down, status, join, stop NAME or start NAME",
                line.trim()
            ),
            false,
        ),
    };
    write.write_all(format!("{reply}\n").as_bytes()).await?;
    write.shutdown().await?;
    Ok(down)
}

fn status(local: &LocalClusterset) -> Value {
    let clusters: Vec<Value> = local
        .clusters
        .iter()
        .map(|c| serde_json::json!({"name": c.plan.name, "serving": c.server.is_serving(), "server": c.server.url()}))
        .collect();
    serde_json::json!({"clusters": clusters})
}

async fn stop_or_start(local: &LocalClusterset, verb: &str, name: &str) -> String {
    let Some(cluster) = local.cluster(name) else {
        let names: Vec<&str> = local
            .clusters
            .iter()
            .map(|c| c.plan.name.as_str())
            .collect();
        return format!(
            "error: no cluster {name:?}; the clusters are {}",
            names.join(", ")
        );
    };
    if verb == "stop" {
        cluster.server.stop_serving().await;
        tracing::info!(cluster = name, "API server stopped");
        return format!("ok: {name} stopped");
    }
    match cluster.server.resume_serving().await {
        Ok(()) => {
            tracing::info!(cluster = name, "API server started");
            format!("ok: {name} started")
        }
        Err(e) => format!("error: {e:#}"),
    }
}

/// Sends one command to the clusterset running in `dir` and returns its reply.
pub async fn send(dir: &Path, command: &str) -> anyhow::Result<String> {
    let path = dir.join(SOCKET);
    let mut stream = UnixStream::connect(&path).await.with_context(|| {
        format!(
            "no clusterset is running in {} (cannot reach {})",
            dir.display(),
            path.display()
        )
    })?;
    stream.write_all(format!("{command}\n").as_bytes()).await?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).await?;
    let reply = reply.trim().to_string();
    if let Some(e) = reply.strip_prefix("error: ") {
        bail!("{e}");
    }
    Ok(reply)
}

/// A table of the clusters in `dir/local.json`, each probed on `/readyz` with the
/// administrator's kubeconfig, and each member's DNS server asked for its SOA.
pub async fn status_table(dir: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(dir.join("local.json")).with_context(|| {
        format!(
            "no clusterset is ready in {} (no local.json)",
            dir.display()
        )
    })?;
    let local: Value = serde_json::from_str(&text).context("local.json is not valid JSON")?;
    let kubeconfig = kube::config::Kubeconfig::read_from(dir.join("kubeconfig"))?;
    let mut rows = vec![["NAME", "ROLE", "CLUSTER-ID", "SERVER", "DNS", "STATUS"]
        .map(String::from)
        .to_vec()];
    for c in local["clusters"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or_default();
        let health = probe(&kubeconfig, name).await;
        let dns = match c["dns"].as_str().map(str::parse::<std::net::SocketAddr>) {
            None => "-".to_string(),
            Some(Ok(addr)) if crate::dns::answers_soa(addr, Duration::from_secs(1)).await => {
                addr.to_string()
            }
            Some(Ok(addr)) => format!("{addr} (no answer)"),
            Some(Err(_)) => "? (bad address in local.json)".to_string(),
        };
        rows.push(vec![
            name.to_string(),
            c["role"].as_str().unwrap_or_default().to_string(),
            c["clusterId"].as_str().unwrap_or("-").to_string(),
            c["server"].as_str().unwrap_or_default().to_string(),
            dns,
            health,
        ]);
    }
    Ok(format_table(&rows))
}

async fn probe(kubeconfig: &kube::config::Kubeconfig, context: &str) -> String {
    let options = kube::config::KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let Ok(mut config) = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options).await
    else {
        return "Unknown (no such context)".into();
    };
    config.connect_timeout = Some(Duration::from_secs(1));
    config.read_timeout = Some(Duration::from_secs(2));
    let Ok(client) = kube::Client::try_from(config) else {
        return "Unknown".into();
    };
    let req = http::Request::get("/readyz")
        .body(Vec::new())
        .expect("a valid request");
    match client.request_text(req).await {
        Ok(_) => "Ready".into(),
        Err(kube::Error::HyperError(_)) | Err(kube::Error::Service(_)) => "Unreachable".into(),
        Err(e) => format!("NotReady ({e})"),
    }
}

fn format_table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("   ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
