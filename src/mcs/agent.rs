//! The member agent's export reconciler, first part: every ServiceExport gets a
//! `Valid` condition that follows its Service, and `Ready=False/Pending` until the
//! hub has its data (the hub and the import side come next).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use super::validate::validity;
use crate::api::multicluster::ServiceExport;

/// The field manager the agent writes export status with.
pub const MANAGER: &str = "clusterset-agent";

pub struct Context {
    pub client: Client,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kube API: {0}")]
    Kube(#[from] kube::Error),
}

/// Sets the export's conditions from its Service; writes only when they change.
pub async fn reconcile(export: Arc<ServiceExport>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = export.namespace().unwrap_or_default();
    let name = export.name_any();
    let service = Api::<Service>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&name)
        .await?;
    let v = validity(&export, service.as_ref());
    let existing = export
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let generation = export.metadata.generation;
    let mut wanted = vec![condition(
        &existing,
        "Valid",
        if v.valid { "True" } else { "False" },
        v.reason,
        &v.message,
        generation,
    )];
    if !existing.iter().any(|c| c.type_ == "Ready") {
        wanted.push(condition(
            &existing,
            "Ready",
            "False",
            "Pending",
            "the export is not yet on the hub",
            generation,
        ));
    }
    let unchanged = wanted.iter().all(|w| existing.iter().any(|e| same(e, w)));
    if !unchanged {
        let status = json!({
            "apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
            "status": {"conditions": wanted},
        });
        Api::<ServiceExport>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&status),
            )
            .await?;
    }
    Ok(Action::await_change())
}

pub fn error_policy(_export: Arc<ServiceExport>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "export reconcile failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// A condition, keeping its lastTransitionTime when its status does not change.
fn condition(
    existing: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    let since = existing
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(jiff::Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: since,
        observed_generation: generation,
    }
}

fn same(a: &Condition, b: &Condition) -> bool {
    (
        &a.type_,
        &a.status,
        &a.reason,
        &a.message,
        a.observed_generation,
    ) == (
        &b.type_,
        &b.status,
        &b.reason,
        &b.message,
        b.observed_generation,
    )
}

/// Runs the reconciler until the stream ends: exports are reconciled when they
/// change and when the Service of the same name does.
pub async fn run(client: Client) {
    let exports = Api::<ServiceExport>::all(client.clone());
    let services = Api::<Service>::all(client.clone());
    Controller::new(exports, watcher::Config::default())
        .watches(services, watcher::Config::default(), |svc| {
            Some(
                ObjectRef::<ServiceExport>::new(&svc.name_any())
                    .within(&svc.namespace().unwrap_or_default()),
            )
        })
        .run(reconcile, error_policy, Arc::new(Context { client }))
        .for_each(|_| async {})
        .await;
}
