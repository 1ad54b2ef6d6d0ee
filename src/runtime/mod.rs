//! What every controller role shares: watch-fed caches, a coalescing work queue, a
//! log of reconcile failures that an outage cannot flood, and
//! the HTTP endpoints a long-running role serves (`/metrics`, `/healthz`, `/readyz`).

pub mod cache;
pub mod events;
pub mod failure_log;
pub mod probes;
pub mod queue;

pub use cache::{Cache, ServiceKey};
pub use queue::Queue;

/// Tasks that run one thing together (an agent, its heartbeat, a watch): aborted when
/// dropped.
#[derive(Default)]
pub struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Tasks {
    pub fn spawn(
        futures: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    ) -> Self {
        Tasks(futures.into_iter().map(tokio::spawn).collect())
    }

    /// Aborts the tasks and waits until they have stopped: an aborted task may
    /// otherwise still finish a write it had begun.
    pub async fn stop(&mut self) {
        for task in std::mem::take(&mut self.0) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.0.iter().for_each(|t| t.abort());
    }
}

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde::de::DeserializeOwned;

/// Writes the status subresource with a merge patch: the lists it names (conditions,
/// clusters) are replaced whole. For statuses one controller owns outright; costs the
/// API server far less than an apply.
pub async fn write_status<K>(
    api: &Api<K>,
    manager: &str,
    name: &str,
    object: &serde_json::Value,
) -> kube::Result<K>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams {
        field_manager: Some(manager.to_string()),
        ..PatchParams::default()
    };
    api.patch_status(name, &params, &Patch::Merge(object)).await
}

/// Deletes `name`; one already gone counts as deleted.
pub async fn delete<K>(api: &Api<K>, name: &str) -> kube::Result<()>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `object` unless an object of its name exists; either way, the object as it
/// now is on the server (the caller checks that an existing one is what it expects).
pub async fn create_if_absent<K>(api: &Api<K>, object: serde_json::Value) -> kube::Result<K>
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let typed: K = serde_json::from_value(object).map_err(kube::Error::SerdeError)?;
    let name = typed.meta().name.clone().unwrap_or_default();
    match api.create(&kube::api::PostParams::default(), &typed).await {
        Err(kube::Error::Api(s)) if s.code == 409 => api.get(&name).await,
        other => other,
    }
}

/// A change callback for [`Cache::run`] that queues the key `key` gives an object.
pub fn enqueue<K: 'static>(
    queue: &std::sync::Arc<Queue<ServiceKey>>,
    key: fn(&K) -> Option<ServiceKey>,
) -> impl Fn(&K) + Send + Sync + 'static {
    let queue = queue.clone();
    move |obj| {
        if let Some(k) = key(obj) {
            queue.add(k);
        }
    }
}

/// Writes `object` whole: creates it, or replaces `existing` (the cached version, so a
/// concurrent change fails with 409 and the reconcile retries on fresh data). For
/// objects one controller owns outright: unlike an apply, a replace leaves nothing of
/// the previous version behind (an apply that drops every field of a nested object
/// keeps the emptied object).
pub async fn upsert<K>(
    api: &Api<K>,
    existing: Option<&K>,
    mut object: serde_json::Value,
) -> kube::Result<K>
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let Some(existing) = existing else {
        let typed: K = serde_json::from_value(object).map_err(kube::Error::SerdeError)?;
        return api.create(&kube::api::PostParams::default(), &typed).await;
    };
    let name = existing.meta().name.clone().unwrap_or_default();
    object["metadata"]["resourceVersion"] = serde_json::json!(existing.meta().resource_version);
    let typed: K = serde_json::from_value(object).map_err(kube::Error::SerdeError)?;
    api.replace(&name, &kube::api::PostParams::default(), &typed)
        .await
}
