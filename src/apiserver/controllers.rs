//! Controllers inside the server, each following the store's change history like any
//! watch client: garbage collection by ownerReferences and namespace deletion.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::objects::{self, finalizers, is_deleting};
use super::registry::ResourceType;
use super::resources::{DeleteOptions, PatchKind, State, Subresource, WriteOptions};
use super::store::{Event, EventType, GroupResource, StoreError};

pub fn spawn(state: Arc<State>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let gc = GarbageCollector::default();
    let ns = NamespaceController::default();
    vec![
        tokio::spawn(follow(state.clone(), stop.clone(), gc)),
        tokio::spawn(follow(state, stop, ns)),
    ]
}

/// Something that reacts to every change in the store.
trait Follower: Send + 'static {
    /// Called once with every object present when following starts.
    fn seed(&mut self, state: &State, gr: &GroupResource, obj: &Value);
    fn on_event(&mut self, state: &State, event: &Event);
    /// Called after each batch of events, to act on what they changed.
    fn reconcile(&mut self, state: &State);
}

async fn follow(state: Arc<State>, mut stop: watch::Receiver<bool>, mut f: impl Follower) {
    let mut changes = state.store.subscribe();
    changes.borrow_and_update();
    let mut last = state.store.current_rv();
    for gr in state.store.resources() {
        for (_, stored) in state.store.list(&gr, None, None).1 {
            f.seed(&state, &gr, &stored.value());
        }
    }
    f.reconcile(&state);
    loop {
        changes.borrow_and_update();
        match state.store.events_after(last, 1024) {
            Ok(events) => {
                for e in &events {
                    last = e.rv;
                    f.on_event(&state, e);
                }
                f.reconcile(&state);
                if events.len() == 1024 {
                    continue;
                }
            }
            Err(StoreError::Gone { oldest, .. }) => {
                tracing::warn!(oldest, "controller fell behind the store history; resuming");
                last = state.store.current_rv();
            }
            Err(_) => {}
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

fn type_of(state: &State, gr: &GroupResource) -> Option<Arc<ResourceType>> {
    state.registry.get(gr)
}

fn controller_opts() -> WriteOptions {
    WriteOptions {
        manager: "kube-controller-manager".into(),
        ..Default::default()
    }
}

/// Where an object lives and whom it is owned by.
#[derive(Clone)]
struct Node {
    gr: GroupResource,
    namespace: String,
    name: String,
    owners: Vec<String>,
    deleting_with: Vec<String>,
}

/// Deletes dependents whose owners are all gone (background), deletes dependents
/// before their owner (foreground), and frees dependents of an orphaning owner.
#[derive(Default)]
struct GarbageCollector {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
    /// Owners whose deletion or deletion mode changed since the last reconcile.
    dirty: HashSet<String>,
}

impl GarbageCollector {
    fn index(&mut self, gr: &GroupResource, obj: &Value) {
        let uid = objects::uid(obj).to_string();
        let owners: Vec<String> = obj["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["uid"].as_str().map(String::from))
            .collect();
        if let Some(old) = self.nodes.get(&uid) {
            for o in old.owners.clone() {
                self.dependents.entry(o).or_default().remove(&uid);
            }
        }
        for o in &owners {
            self.dependents
                .entry(o.clone())
                .or_default()
                .insert(uid.clone());
            if !self.nodes.contains_key(o) {
                self.dirty.insert(o.clone());
            }
        }
        let deleting_with: Vec<String> = if is_deleting(obj) {
            finalizers(obj)
                .into_iter()
                .filter(|f| f == "foregroundDeletion" || f == "orphan")
                .collect()
        } else {
            Vec::new()
        };
        if !deleting_with.is_empty() {
            self.dirty.insert(uid.clone());
        }
        self.nodes.insert(
            uid,
            Node {
                gr: gr.clone(),
                namespace: objects::namespace(obj).into(),
                name: objects::name(obj).into(),
                owners,
                deleting_with,
            },
        );
    }

    fn forget(&mut self, obj: &Value) {
        let uid = objects::uid(obj).to_string();
        if let Some(node) = self.nodes.remove(&uid) {
            for o in node.owners {
                self.dependents.entry(o.clone()).or_default().remove(&uid);
                // An owner waiting in foreground deletion may now be free to go.
                self.dirty.insert(o);
            }
        }
        self.dirty.insert(uid);
    }

    fn dependents_of(&self, uid: &str) -> Vec<(String, Node)> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d).map(|n| (d.clone(), n.clone())))
            .collect()
    }

    fn process(&mut self, state: &State, uid: &str) {
        let deps = self.dependents_of(uid);
        match self.nodes.get(uid).cloned() {
            None => {
                for (_, dep) in deps {
                    self.collect_orphan(state, &dep, uid);
                }
            }
            Some(owner) if owner.deleting_with.iter().any(|f| f == "orphan") => {
                for (_, dep) in &deps {
                    remove_owner_ref(state, dep, uid);
                }
                remove_finalizer(state, &owner, "orphan");
            }
            Some(owner)
                if owner
                    .deleting_with
                    .iter()
                    .any(|f| f == "foregroundDeletion") =>
            {
                if deps.is_empty() {
                    remove_finalizer(state, &owner, "foregroundDeletion");
                }
                for (_, dep) in deps {
                    delete(state, &dep, Some("Foreground"));
                }
            }
            Some(_) => {}
        }
    }

    /// A dependent of a vanished owner: deleted when no owner is left, otherwise it
    /// only loses the dangling reference.
    fn collect_orphan(&self, state: &State, dep: &Node, gone: &str) {
        let alive = dep
            .owners
            .iter()
            .any(|o| o != gone && self.nodes.contains_key(o));
        if alive {
            remove_owner_ref(state, dep, gone);
        } else {
            delete(state, dep, None);
        }
    }
}

impl Follower for GarbageCollector {
    fn seed(&mut self, _state: &State, gr: &GroupResource, obj: &Value) {
        self.index(gr, obj);
    }

    fn on_event(&mut self, _state: &State, e: &Event) {
        let obj: Value = serde_json::from_slice(&e.object).expect("stored JSON");
        match e.kind {
            EventType::Deleted => self.forget(&obj),
            _ => self.index(&e.gr, &obj),
        }
    }

    fn reconcile(&mut self, state: &State) {
        for uid in std::mem::take(&mut self.dirty) {
            self.process(state, &uid);
        }
    }
}

fn delete(state: &State, node: &Node, propagation: Option<&str>) {
    let Some(rt) = type_of(state, &node.gr) else {
        return;
    };
    let opts = DeleteOptions {
        propagation: propagation.map(String::from),
        ..Default::default()
    };
    if let Err(e) = state.delete(&rt, &node.namespace, &node.name, &opts) {
        if e.code != 404 {
            tracing::warn!(error = %e, name = %node.name, "garbage collector could not delete a dependent");
        }
    }
}

fn json_patch(state: &State, node: &Node, patch: Value) {
    let Some(rt) = type_of(state, &node.gr) else {
        return;
    };
    let version = rt.storage_version.clone();
    let result = state.patch(
        &rt,
        &version,
        &node.namespace,
        &node.name,
        PatchKind::Json,
        &patch,
        Subresource::Main,
        &controller_opts(),
    );
    if let Err(e) = result {
        if e.code != 404 && e.code != 422 {
            tracing::warn!(error = %e, name = %node.name, "controller patch failed");
        }
    }
}

fn remove_owner_ref(state: &State, node: &Node, owner: &str) {
    let Some(rt) = type_of(state, &node.gr) else {
        return;
    };
    let Ok(current) = state.get(&rt, &node.namespace, &node.name) else {
        return;
    };
    let current = current.value();
    let refs = current["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(i) = refs.iter().position(|r| r["uid"] == owner) else {
        return;
    };
    json_patch(
        state,
        node,
        json!([
            {"op": "test", "path": format!("/metadata/ownerReferences/{i}/uid"), "value": owner},
            {"op": "remove", "path": format!("/metadata/ownerReferences/{i}")},
        ]),
    );
}

fn remove_finalizer(state: &State, node: &Node, finalizer: &str) {
    let Some(rt) = type_of(state, &node.gr) else {
        return;
    };
    let Ok(current) = state.get(&rt, &node.namespace, &node.name) else {
        return;
    };
    let fins = finalizers(&current.value());
    let Some(i) = fins.iter().position(|f| f == finalizer) else {
        return;
    };
    json_patch(
        state,
        node,
        json!([
            {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": finalizer},
            {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
        ]),
    );
}

/// Empties a terminating namespace, then removes it.
#[derive(Default)]
struct NamespaceController {
    terminating: HashSet<String>,
    dirty: HashSet<String>,
}

impl NamespaceController {
    fn note(&mut self, gr: &GroupResource, obj: &Value, deleted: bool) {
        if gr.group.is_empty() && gr.resource == "namespaces" {
            let name = objects::name(obj).to_string();
            if is_deleting(obj) && !deleted {
                self.terminating.insert(name.clone());
                self.dirty.insert(name);
            } else {
                self.terminating.remove(&name);
            }
        } else if self.terminating.contains(objects::namespace(obj)) {
            self.dirty.insert(objects::namespace(obj).to_string());
        }
    }

    fn empty_or_finalize(&self, state: &State, ns: &str) {
        let resources = state.store.resources_in_namespace(ns);
        if resources.is_empty() {
            finalize_namespace(state, ns);
            return;
        }
        for gr in resources {
            for ((_, name), stored) in state.store.list(&gr, Some(ns), None).1 {
                if is_deleting(&stored.value()) {
                    continue;
                }
                let node = Node {
                    gr: gr.clone(),
                    namespace: ns.into(),
                    name,
                    owners: Vec::new(),
                    deleting_with: Vec::new(),
                };
                delete(state, &node, None);
            }
        }
    }
}

/// Removes the namespace's `kubernetes` finalizer and, with it, the namespace.
fn finalize_namespace(state: &State, ns: &str) {
    let Some(rt) = state.registry.find_kind("", "Namespace") else {
        return;
    };
    if let Err(e) = state.finalize(&rt, "", ns) {
        tracing::warn!(error = %e, namespace = ns, "could not finalize namespace");
    }
}

impl Follower for NamespaceController {
    fn seed(&mut self, _state: &State, gr: &GroupResource, obj: &Value) {
        self.note(gr, obj, false);
    }

    fn on_event(&mut self, _state: &State, e: &Event) {
        let obj: Value = serde_json::from_slice(&e.object).expect("stored JSON");
        self.note(&e.gr, &obj, e.kind == EventType::Deleted);
    }

    fn reconcile(&mut self, state: &State) {
        for ns in std::mem::take(&mut self.dirty) {
            if self.terminating.contains(&ns) {
                self.empty_or_finalize(state, &ns);
            }
        }
    }
}
