//! Controllers inside the server, each following the store's change history like any
//! watch client: garbage collection by ownerReferences and namespace deletion.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::registry::ResourceType;
use super::resources::{DeleteOptions, PatchKind, State, Subresource, WriteOptions};
use super::store::{EventType, GroupResource, StoreError};

pub fn spawn(
    state: Arc<State>,
    stop: watch::Receiver<bool>,
    event_ttl: Duration,
) -> Vec<JoinHandle<()>> {
    let gc = GarbageCollector::default();
    let ns = NamespaceController::default();
    let events = EventExpiry::new(event_ttl);
    vec![
        tokio::spawn(follow(state.clone(), stop.clone(), gc)),
        tokio::spawn(follow(state.clone(), stop.clone(), ns)),
        tokio::spawn(follow(state, stop, events)),
    ]
}

/// Something that reacts to every change in the store.
pub(crate) trait Follower: Send + 'static {
    /// One object as it now is (`Deleted`: as it last was). Objects present when
    /// following starts arrive as `Added`.
    fn observe(&mut self, gr: &GroupResource, namespace: &str, kind: EventType, object: &[u8]);
    /// Called once the follower has caught up with the store, to act on what the
    /// changes since the last call changed. Everything the follower wrote in earlier
    /// calls has been observed by then.
    fn reconcile(&mut self, state: &State);
    /// Whether some work failed or is waiting for time to pass, so `reconcile` should
    /// run again shortly even when nothing changes in the store.
    fn wants_retry(&self) -> bool {
        false
    }
    /// Called before every object is observed again as `Added`: at the start, and
    /// after the follower fell behind the store's history.
    fn relisting(&mut self) {}
}

/// How many changes are observed between two looks at the history.
const BATCH: usize = 1024;
/// How soon a follower that wants a retry is reconciled again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(250);

pub(crate) async fn follow(
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
    mut f: impl Follower,
) {
    let mut changes = state.store.subscribe();
    changes.borrow_and_update();
    let mut last = list_to(&state, &mut f);
    f.reconcile(&state);
    loop {
        changes.borrow_and_update();
        match state.store.events_after(last, BATCH) {
            Ok(events) => {
                for e in &events {
                    last = e.rv;
                    f.observe(&e.gr, &e.namespace, e.kind, &e.object);
                }
                // Not caught up yet: a reconcile now could miss the follower's own
                // earlier writes (and, say, create a pod twice).
                if events.len() == BATCH {
                    continue;
                }
                f.reconcile(&state);
            }
            Err(StoreError::Gone { oldest, .. }) => {
                // What changed in between is gone from the history: look at everything.
                tracing::warn!(
                    oldest,
                    "controller fell behind the store history; relisting"
                );
                last = list_to(&state, &mut f);
                f.reconcile(&state);
            }
            Err(_) => {}
        }
        let retry = f.wants_retry();
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(RETRY_AFTER), if retry => {}
        }
    }
}

/// Shows `f` every object as `Added`; the resourceVersion to follow the history from.
fn list_to(state: &State, f: &mut impl Follower) -> u64 {
    f.relisting();
    let from = state.store.current_rv();
    for gr in state.store.resources() {
        for ((ns, _), stored) in state.store.list(&gr, None, None).1 {
            f.observe(&gr, &ns, EventType::Added, &stored.json);
        }
    }
    from
}

fn controller_opts() -> WriteOptions {
    WriteOptions {
        manager: "kube-controller-manager".into(),
        ..Default::default()
    }
}

/// The part of an object's metadata the controllers read, decoded without the rest.
#[derive(Deserialize, Default)]
struct Header {
    #[serde(default)]
    metadata: HeaderMeta,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct HeaderMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    owner_references: Vec<OwnerRef>,
    #[serde(default)]
    finalizers: Vec<String>,
    deletion_timestamp: Option<String>,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
struct OwnerRef {
    api_version: String,
    kind: String,
    name: String,
    uid: String,
}

fn header(object: &[u8]) -> HeaderMeta {
    serde_json::from_slice::<Header>(object)
        .unwrap_or_default()
        .metadata
}

/// Where an object lives.
#[derive(Clone, Debug)]
struct Node {
    gr: GroupResource,
    namespace: String,
    name: String,
}

/// An object with owners.
struct Dependent {
    node: Node,
    owners: Vec<OwnerRef>,
}

/// Deletes dependents whose owners are all gone (background), deletes dependents
/// before their owner (foreground), and frees dependents of an orphaning owner.
/// Only objects with owners, and owners being deleted in the foreground or orphan
/// modes, are remembered; whether an owner exists is read from the store through
/// the coordinates in the ownerReference, as kube-controller-manager does.
#[derive(Default)]
struct GarbageCollector {
    dependents: HashMap<String, Dependent>,
    by_owner: HashMap<String, HashSet<String>>,
    /// Owners being deleted, with the finalizer that says how.
    deleting: HashMap<String, (Node, &'static str)>,
    /// Owners that went away or are being deleted: their dependents need a look.
    dirty_owners: HashSet<String>,
    /// Dependents with new owner references: do their owners exist?
    dirty_dependents: HashSet<String>,
}

impl GarbageCollector {
    fn forget_dependent(&mut self, uid: &str) {
        if let Some(old) = self.dependents.remove(uid) {
            for o in old.owners {
                if let Some(set) = self.by_owner.get_mut(&o.uid) {
                    set.remove(uid);
                    if set.is_empty() {
                        self.by_owner.remove(&o.uid);
                    }
                }
                // An owner waiting in foreground deletion may now be free to go.
                if self.deleting.contains_key(&o.uid) {
                    self.dirty_owners.insert(o.uid);
                }
            }
        }
    }

    fn note_owners(&mut self, node: Node, uid: &str, owners: Vec<OwnerRef>) {
        let same = self.dependents.get(uid).is_some_and(|d| {
            d.owners.len() == owners.len()
                && d.owners.iter().zip(&owners).all(|(a, b)| a.uid == b.uid)
        });
        if same {
            return;
        }
        self.forget_dependent(uid);
        if owners.is_empty() {
            return;
        }
        for o in &owners {
            self.by_owner
                .entry(o.uid.clone())
                .or_default()
                .insert(uid.to_string());
        }
        self.dependents
            .insert(uid.to_string(), Dependent { node, owners });
        self.dirty_dependents.insert(uid.to_string());
    }

    fn note_deletion_mode(&mut self, node: &Node, meta: &HeaderMeta) {
        let mode = meta.deletion_timestamp.as_ref().and_then(|_| {
            ["orphan", "foregroundDeletion"]
                .into_iter()
                .find(|f| meta.finalizers.iter().any(|m| m == f))
        });
        match mode {
            Some(mode) => {
                self.deleting.insert(meta.uid.clone(), (node.clone(), mode));
                self.dirty_owners.insert(meta.uid.clone());
            }
            None => {
                self.deleting.remove(&meta.uid);
            }
        }
    }

    fn dependents_of(&self, uid: &str) -> Vec<(Node, Vec<OwnerRef>)> {
        self.by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.dependents.get(d))
            .map(|d| (d.node.clone(), d.owners.clone()))
            .collect()
    }

    fn process_owner(&self, state: &State, uid: &str) {
        let deps = self.dependents_of(uid);
        match self.deleting.get(uid) {
            Some((owner, "orphan")) => {
                for (dep, _) in &deps {
                    remove_owner_ref(state, dep, uid);
                }
                remove_finalizer(state, owner, "orphan");
            }
            Some((owner, _)) => {
                if deps.is_empty() {
                    remove_finalizer(state, owner, "foregroundDeletion");
                }
                for (dep, _) in deps {
                    delete(state, &dep, Some("Foreground"));
                }
            }
            None => {
                for (dep, owners) in deps {
                    collect_if_orphaned(state, &dep, &owners);
                }
            }
        }
    }
}

/// A dependent whose owners are all gone is deleted; one that still has an owner
/// only loses its dangling references.
fn collect_if_orphaned(state: &State, dep: &Node, owners: &[OwnerRef]) {
    let (alive, dangling): (Vec<&OwnerRef>, Vec<&OwnerRef>) =
        owners.iter().partition(|o| owner_exists(state, dep, o));
    if alive.is_empty() {
        delete(state, dep, None);
        return;
    }
    for o in dangling {
        remove_owner_ref(state, dep, &o.uid);
    }
}

fn owner_exists(state: &State, dep: &Node, owner: &OwnerRef) -> bool {
    let group = owner.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let Some(rt) = state.registry.find_kind(group, &owner.kind) else {
        return false;
    };
    let ns = if rt.namespaced {
        dep.namespace.as_str()
    } else {
        ""
    };
    state
        .store
        .get(&rt.gr(), ns, &owner.name)
        .is_some_and(|s| header(&s.json).uid == owner.uid)
}

impl Follower for GarbageCollector {
    fn observe(&mut self, gr: &GroupResource, namespace: &str, kind: EventType, object: &[u8]) {
        let meta = header(object);
        if kind == EventType::Deleted {
            self.forget_dependent(&meta.uid);
            self.deleting.remove(&meta.uid);
            if self.by_owner.contains_key(&meta.uid) {
                self.dirty_owners.insert(meta.uid);
            }
            return;
        }
        let node = Node {
            gr: gr.clone(),
            namespace: namespace.to_string(),
            name: meta.name.clone(),
        };
        self.note_deletion_mode(&node, &meta);
        let uid = meta.uid.clone();
        self.note_owners(node, &uid, meta.owner_references);
    }

    fn reconcile(&mut self, state: &State) {
        for uid in std::mem::take(&mut self.dirty_dependents) {
            if let Some(d) = self.dependents.get(&uid) {
                collect_if_orphaned(state, &d.node, &d.owners);
            }
        }
        for uid in std::mem::take(&mut self.dirty_owners) {
            self.process_owner(state, &uid);
        }
    }
}

fn type_of(state: &State, gr: &GroupResource) -> Option<Arc<ResourceType>> {
    state.registry.get(gr)
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
            tracing::warn!(error = %e, name = %node.name, "a controller could not delete an object");
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
    let refs = header(&current.json).owner_references;
    let Some(i) = refs.iter().position(|r| r.uid == owner) else {
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
    let fins = header(&current.json).finalizers;
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

/// Deletes each Event `ttl` after its last write, as kube-apiserver does with its
/// `--event-ttl` (an hour): however chatty the controllers, events do not pile up.
struct EventExpiry {
    ttl: Duration,
    /// When each Event expires, by where it lives.
    expiries: HashMap<EventKey, Instant>,
    /// The same, soonest first.
    queue: BTreeSet<(Instant, EventKey)>,
    /// Objects now observed are listed, not written now: their last write is read
    /// from their timestamps (after a restart, an Event keeps the life it had left).
    listing: bool,
}

type EventKey = (GroupResource, String, String);

impl EventExpiry {
    fn new(ttl: Duration) -> Self {
        EventExpiry {
            ttl,
            expiries: HashMap::new(),
            queue: BTreeSet::new(),
            listing: false,
        }
    }

    fn forget(&mut self, key: &EventKey) {
        if let Some(at) = self.expiries.remove(key) {
            self.queue.remove(&(at, key.clone()));
        }
    }
}

/// Both views of Events: core/v1 and events.k8s.io/v1.
fn is_event(gr: &GroupResource) -> bool {
    gr.resource == "events" && (gr.group.is_empty() || gr.group == "events.k8s.io")
}

/// The times an Event carries: the latest of them is about when it was last written.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct EventTimes {
    metadata: TimesMeta,
    last_timestamp: Option<String>,
    deprecated_last_timestamp: Option<String>,
    event_time: Option<String>,
    series: Option<SeriesTimes>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TimesMeta {
    creation_timestamp: Option<String>,
    managed_fields: Vec<ManagedTime>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ManagedTime {
    time: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SeriesTimes {
    last_observed_time: Option<String>,
}

/// When a listed Event expires: `ttl` after the latest time it carries, but never
/// later than `ttl` from now (a time in the future is not believed).
fn listed_expiry(object: &[u8], ttl: Duration, now: jiff::Timestamp, at_now: Instant) -> Instant {
    let t: EventTimes = serde_json::from_slice(object).unwrap_or_default();
    let times = [
        t.metadata.creation_timestamp,
        t.last_timestamp,
        t.deprecated_last_timestamp,
        t.event_time,
        t.series.and_then(|s| s.last_observed_time),
    ];
    let managed = t.metadata.managed_fields.into_iter().map(|m| m.time);
    let latest = times
        .into_iter()
        .chain(managed)
        .flatten()
        .filter_map(|s| s.parse::<jiff::Timestamp>().ok())
        .max();
    let age = latest
        .and_then(|l| Duration::try_from(now.duration_since(l)).ok())
        .unwrap_or_default();
    at_now + ttl.saturating_sub(age)
}

impl Follower for EventExpiry {
    fn observe(&mut self, gr: &GroupResource, namespace: &str, kind: EventType, object: &[u8]) {
        if !is_event(gr) {
            return;
        }
        let key = (gr.clone(), namespace.to_string(), header(object).name);
        self.forget(&key);
        if kind == EventType::Deleted {
            return;
        }
        let at = if self.listing {
            listed_expiry(object, self.ttl, jiff::Timestamp::now(), Instant::now())
        } else {
            Instant::now() + self.ttl
        };
        self.expiries.insert(key.clone(), at);
        self.queue.insert((at, key));
    }

    fn reconcile(&mut self, state: &State) {
        self.listing = false;
        let now = Instant::now();
        while let Some((at, key)) = self.queue.first().cloned().filter(|(at, _)| *at <= now) {
            self.queue.remove(&(at, key.clone()));
            self.expiries.remove(&key);
            let (gr, namespace, name) = key;
            delete(
                state,
                &Node {
                    gr,
                    namespace,
                    name,
                },
                None,
            );
        }
    }

    /// While any Event lives: a server nobody writes to must still let them go.
    fn wants_retry(&self) -> bool {
        !self.queue.is_empty()
    }

    fn relisting(&mut self) {
        self.expiries.clear();
        self.queue.clear();
        self.listing = true;
    }
}

/// Empties a terminating namespace, then removes it.
#[derive(Default)]
struct NamespaceController {
    terminating: HashSet<String>,
    dirty: HashSet<String>,
}

impl NamespaceController {
    fn empty_or_finalize(&self, state: &State, ns: &str) {
        let resources = state.store.resources_in_namespace(ns);
        if resources.is_empty() {
            finalize_namespace(state, ns);
            return;
        }
        for gr in resources {
            for ((_, name), stored) in state.store.list(&gr, Some(ns), None).1 {
                if header(&stored.json).deletion_timestamp.is_none() {
                    let node = Node {
                        gr: gr.clone(),
                        namespace: ns.into(),
                        name,
                    };
                    delete(state, &node, None);
                }
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
    fn observe(&mut self, gr: &GroupResource, namespace: &str, kind: EventType, object: &[u8]) {
        if gr.group.is_empty() && gr.resource == "namespaces" {
            let meta = header(object);
            if meta.deletion_timestamp.is_some() && kind != EventType::Deleted {
                self.terminating.insert(meta.name.clone());
                self.dirty.insert(meta.name);
            } else {
                self.terminating.remove(&meta.name);
            }
        } else if self.terminating.contains(namespace) {
            self.dirty.insert(namespace.to_string());
        }
    }

    fn reconcile(&mut self, state: &State) {
        for ns in std::mem::take(&mut self.dirty) {
            if self.terminating.contains(&ns) {
                self.empty_or_finalize(state, &ns);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Records the ConfigMaps it sees; blocks on the first change after the start
    /// until told to go on, so that the store's history moves past it meanwhile.
    struct Slow {
        seen: Arc<parking_lot::Mutex<HashSet<String>>>,
        started: bool,
        blocked: Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>,
    }

    impl Follower for Slow {
        fn observe(&mut self, gr: &GroupResource, _: &str, kind: EventType, object: &[u8]) {
            if gr.resource != "configmaps" || kind == EventType::Deleted {
                return;
            }
            self.seen.lock().insert(header(object).name);
            if self.started {
                if let Some((blocked, go_on)) = self.blocked.take() {
                    blocked.send(()).unwrap();
                    go_on.recv().unwrap();
                }
            }
        }

        fn reconcile(&mut self, _: &State) {
            self.started = true;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_follower_that_fell_behind_the_history_sees_everything_again() {
        let server = crate::apiserver::ApiServer::start(crate::apiserver::Config {
            history_limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
        let configs: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(server.client(), "default");
        let create = |name: String| {
            let configs = configs.clone();
            async move {
                let cm = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
                configs.create(&Default::default(), &cm).await.unwrap();
            }
        };
        let seen = Arc::default();
        let (blocked_tx, blocked) = mpsc::channel();
        let (go_on, go_on_rx) = mpsc::channel();
        let slow = Slow {
            seen: Arc::clone(&seen),
            started: false,
            blocked: Some((blocked_tx, go_on_rx)),
        };
        let (_stop, stopped) = watch::channel(false);
        tokio::spawn(follow(server.state.clone(), stopped, slow));
        create("first".into()).await;
        tokio::task::spawn_blocking(move || blocked.recv().unwrap())
            .await
            .unwrap();
        // Fifty writes while the follower is stuck: far past the ten kept.
        for i in 0..50 {
            create(format!("later-{i}")).await;
        }
        go_on.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while seen.lock().len() < 51 {
            assert!(
                std::time::Instant::now() < deadline,
                "saw {} of 51",
                seen.lock().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn a_listed_event_keeps_the_life_it_had_left() {
        let ttl = Duration::from_secs(3600);
        let now: jiff::Timestamp = "2026-11-29T12:00:00Z".parse().unwrap();
        let at_now = Instant::now();
        let life =
            |event: Value| listed_expiry(event.to_string().as_bytes(), ttl, now, at_now) - at_now;
        let created = |t: &str| json!({"metadata": {"creationTimestamp": t}});
        assert_eq!(
            life(created("2026-11-29T11:10:00Z")),
            Duration::from_secs(600)
        );
        // The latest time counts: the count was raised five minutes ago.
        let mut raised = created("2026-11-29T10:00:00Z");
        raised["lastTimestamp"] = json!("2026-11-29T11:55:00Z");
        assert_eq!(life(raised), Duration::from_secs(3300));
        let mut series = created("2026-11-29T10:00:00Z");
        series["series"] = json!({"count": 4, "lastObservedTime": "2026-11-29T11:30:00.000000Z"});
        assert_eq!(life(series), Duration::from_secs(1800));
        // Older than the TTL: it goes at once. No time, or one in the future: a full TTL.
        assert_eq!(life(created("2026-11-28T00:00:00Z")), Duration::ZERO);
        assert_eq!(life(json!({})), ttl);
        assert_eq!(
            life(json!({"eventTime": "2027-01-01T00:00:00.000000Z"})),
            ttl
        );
    }
}
