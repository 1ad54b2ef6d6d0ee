//! How the simulated controllers write: through the `State` verbs, as a named field
//! manager, with the object's resourceVersion as a precondition so that a write
//! based on a stale cache fails instead of undoing someone else's change.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::apiserver::errors::ApiError;
use crate::apiserver::objects;
use crate::apiserver::registry::ResourceType;
use crate::apiserver::resources::{DeleteOptions, PatchKind, State, Subresource, WriteOptions};
use crate::apiserver::store::GroupResource;

/// The kinds the controllers write.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Node,
    Pod,
    ReplicaSet,
    Deployment,
    StatefulSet,
    EndpointSlice,
}

impl Kind {
    fn resource(self) -> GroupResource {
        let (group, plural) = match self {
            Kind::Node => ("", "nodes"),
            Kind::Pod => ("", "pods"),
            Kind::ReplicaSet => ("apps", "replicasets"),
            Kind::Deployment => ("apps", "deployments"),
            Kind::StatefulSet => ("apps", "statefulsets"),
            Kind::EndpointSlice => ("discovery.k8s.io", "endpointslices"),
        };
        GroupResource::new(group, plural)
    }
}

/// What became of a write.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Written; the object as stored now.
    Done(Value),
    /// Nothing to do any more: the object changed or went meanwhile (a newer
    /// change is on its way to the controller), or the server refused the write
    /// for good (logged).
    Dropped,
    /// The write failed for a reason that may pass; try again shortly.
    Retry,
}

impl Outcome {
    pub fn done(self) -> Option<Value> {
        match self {
            Outcome::Done(v) => Some(v),
            _ => None,
        }
    }
}

pub(crate) struct Client<'a> {
    state: &'a State,
    opts: WriteOptions,
}

impl<'a> Client<'a> {
    pub fn new(state: &'a State, manager: &str) -> Self {
        Client {
            state,
            opts: WriteOptions {
                manager: manager.into(),
                ..Default::default()
            },
        }
    }

    fn resource_type(&self, kind: Kind) -> Option<Arc<ResourceType>> {
        self.state.registry.get(&kind.resource())
    }

    pub fn create(&self, kind: Kind, ns: &str, obj: Value) -> Outcome {
        let Some(rt) = self.resource_type(kind) else {
            return Outcome::Dropped;
        };
        let what = objects::name(&obj).to_string();
        settle(
            kind,
            &what,
            self.state
                .create(&rt, ns, obj, &self.opts)
                .map(|w| w.object),
        )
    }

    /// Replaces the object (or, for `Status`, its status) with `obj`, which carries
    /// the resourceVersion it was based on.
    pub fn update(&self, kind: Kind, obj: Value, sub: Subresource) -> Outcome {
        let Some(rt) = self.resource_type(kind) else {
            return Outcome::Dropped;
        };
        let (ns, name) = (
            objects::namespace(&obj).to_string(),
            objects::name(&obj).to_string(),
        );
        let written = self.state.update(&rt, &ns, &name, obj, sub, &self.opts);
        settle(kind, &name, written.map(|w| w.object))
    }

    /// Replaces the status of `obj` with `status`.
    pub fn put_status(&self, kind: Kind, obj: &Value, status: Value) -> Outcome {
        let mut new = obj.clone();
        new["status"] = status;
        self.update(kind, new, Subresource::Status)
    }

    /// A JSON merge patch of the main resource, valid only against the version of
    /// `obj` it was computed from.
    pub fn patch(&self, kind: Kind, obj: &Value, mut patch: Value) -> Outcome {
        let Some(rt) = self.resource_type(kind) else {
            return Outcome::Dropped;
        };
        let name = objects::name(obj);
        patch["metadata"]["resourceVersion"] = json!(objects::resource_version(obj));
        let written = self.state.patch(
            &rt,
            &rt.storage_version,
            objects::namespace(obj),
            name,
            PatchKind::Merge,
            &patch,
            Subresource::Main,
            &self.opts,
        );
        settle(kind, name, written.map(|w| w.object))
    }

    /// Puts `orphans` under the control of the owner `owner_ref` names, keeping
    /// their other owners; true if one should be retried.
    pub fn adopt(&self, kind: Kind, orphans: &[&Value], owner_ref: Value) -> bool {
        orphans.iter().fold(false, |retry, obj| {
            let mut refs = obj["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            refs.push(owner_ref.clone());
            let patch = json!({"metadata": {"ownerReferences": refs}});
            retry | matches!(self.patch(kind, obj, patch), Outcome::Retry)
        })
    }

    /// Deletes `obj` if it is still the same object (same UID).
    pub fn delete(&self, kind: Kind, obj: &Value) -> Outcome {
        let Some(rt) = self.resource_type(kind) else {
            return Outcome::Dropped;
        };
        let opts = DeleteOptions {
            uid: Some(objects::uid(obj).to_string()),
            ..Default::default()
        };
        let name = objects::name(obj);
        let deleted = self.state.delete(&rt, objects::namespace(obj), name, &opts);
        settle(kind, name, deleted)
    }
}

fn settle(kind: Kind, name: &str, result: Result<Value, ApiError>) -> Outcome {
    match result {
        Ok(v) => Outcome::Done(v),
        // 403: the namespace is being deleted, and everything in it with it.
        Err(e) if matches!(e.code, 403 | 404 | 409) => {
            tracing::debug!(?kind, name, error = %e.message, "write superseded");
            Outcome::Dropped
        }
        Err(e) if (400..500).contains(&e.code) => {
            tracing::warn!(?kind, name, error = %e.message, "simulated controller write refused");
            Outcome::Dropped
        }
        Err(e) => {
            tracing::warn!(?kind, name, error = %e.message, "simulated controller write failed; retrying");
            Outcome::Retry
        }
    }
}
