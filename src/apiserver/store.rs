//! The object store: every object of every resource as serialized JSON, ordered by
//! (namespace, name) within its resource, one global resourceVersion sequence, and a
//! bounded history of changes that watches replay from.
//!
//! Objects are kept as bytes, not parsed values: lists and watch events are mostly
//! copying, and bytes cost a fraction of a `serde_json::Value`'s memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use super::journal::{Durable, Journal, JournalError, Record, Recovered};

/// Identifies a resource independently of the version it is served in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

impl std::fmt::Display for GroupResource {
    /// `deployments.apps`, or `pods` for the core group, as kube-apiserver's messages say.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// (namespace, name); the namespace is empty for cluster-scoped objects.
pub type ObjectKey = (String, String);

/// A serialized object: one allocation, shared by the store, watch history and
/// responses.
pub type Json = Arc<[u8]>;

/// One stored object version.
#[derive(Clone, Debug)]
pub struct Stored {
    pub rv: u64,
    pub json: Json,
}

/// The key objects are kept under: namespace and name joined by a NUL, which no
/// valid name contains and which sorts before every character, so the map's order
/// is by namespace, then name. One allocation instead of two.
fn join_key(ns: &str, name: &str) -> Box<str> {
    let mut k = String::with_capacity(ns.len() + 1 + name.len());
    k.push_str(ns);
    k.push('\0');
    k.push_str(name);
    k.into_boxed_str()
}

fn split_key(k: &str) -> ObjectKey {
    let (ns, name) = k.split_once('\0').unwrap_or(("", k));
    (ns.to_string(), name.to_string())
}

impl Stored {
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).expect("the store holds valid JSON")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it. `prev` lets a filtered watch tell an object that
/// stopped matching its selector (sent as DELETED) from one it never saw.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub gr: Arc<GroupResource>,
    pub namespace: String,
    pub name: String,
    pub kind: EventType,
    pub object: Json,
    pub prev: Option<Json>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum StoreError {
    NotFound,
    AlreadyExists,
    /// The object's resourceVersion is not the one the write was based on.
    Conflict,
    /// The requested resourceVersion is older than the retained history.
    Gone {
        requested: u64,
        oldest: u64,
    },
}

/// A write as committed: what is stored, and the same object as a value (for a
/// deletion, the object's last state at the deletion's version).
#[derive(Debug)]
pub struct Committed {
    pub stored: Stored,
    pub object: Value,
}

/// What a write does to one key.
pub enum Write {
    Create(Value),
    Update(Value),
    Delete,
}

struct Inner {
    rv: u64,
    objects: HashMap<GroupResource, Objects>,
    history: VecDeque<Arc<Event>>,
    /// Watches can resume from any resourceVersion >= this one.
    oldest_resumable: u64,
}

/// The objects of one resource, and its name shared by the events about them.
struct Objects {
    gr: Arc<GroupResource>,
    items: BTreeMap<Box<str>, Stored>,
}

pub struct Store {
    inner: RwLock<Inner>,
    history_limit: usize,
    latest: tokio::sync::watch::Sender<u64>,
    /// With a data directory: every write is journaled, and answered once durable.
    journal: Option<Durability>,
}

/// The journal, and how far it has made writes durable.
struct Durability {
    journal: Journal,
    /// Writes queued to the journal, in order, for the thread that waits on them.
    pending: std::sync::mpsc::Sender<(u64, Durable)>,
    /// The highest resourceVersion known to be on disk.
    durable: tokio::sync::watch::Sender<u64>,
    failure: Arc<parking_lot::Mutex<Option<JournalError>>>,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (latest, _) = tokio::sync::watch::channel(1);
        Store {
            inner: RwLock::new(Inner {
                rv: 1,
                objects: HashMap::new(),
                history: VecDeque::new(),
                oldest_resumable: 1,
            }),
            history_limit: history_limit.max(1),
            latest,
            journal: None,
        }
    }

    /// A store kept in `dir`: what it held comes back, and every later write is
    /// journaled before it is acknowledged.
    pub fn open(dir: &std::path::Path, history_limit: usize) -> Result<Self, JournalError> {
        let (journal, recovered) = Journal::open(dir, history_limit)?;
        let mut store = Store::new(history_limit);
        store.recover(recovered)?;
        let rv = store.current_rv();
        store.latest.send_replace(rv);
        store.journal = Some(Durability::start(journal, rv));
        Ok(store)
    }

    fn recover(&mut self, recovered: Recovered) -> Result<(), JournalError> {
        let inner = self.inner.get_mut();
        inner.rv = recovered.rv.max(1);
        for o in recovered.objects {
            serde_json::from_slice::<Value>(&o.object).map_err(|e| {
                JournalError(format!(
                    "stored object {}/{} {}/{} is not valid JSON: {e}",
                    o.group, o.resource, o.namespace, o.name
                ))
            })?;
            let gr = GroupResource::new(&o.group, &o.resource);
            let objects = inner.objects.entry(gr.clone()).or_insert_with(|| Objects {
                gr: Arc::new(gr),
                items: BTreeMap::new(),
            });
            let stored = Stored {
                rv: o.rv,
                json: Json::from(&o.object[..]),
            };
            objects
                .items
                .insert(join_key(&o.namespace, &o.name), stored);
        }
        inner.oldest_resumable = recovered.events.first().map_or(inner.rv, |e| e.rv - 1);
        for e in recovered.events {
            let gr = Arc::new(GroupResource::new(&e.group, &e.resource));
            let object = Json::from(&e.object[..]);
            let event = Event {
                rv: e.rv,
                gr,
                namespace: e.namespace,
                name: e.name,
                kind: e.kind,
                object,
                prev: None,
            };
            inner.history.push_back(Arc::new(event));
        }
        Ok(())
    }

    /// Resolves once every write up to `rv` is on disk (at once without a journal).
    pub async fn wait_durable(&self, rv: u64) -> Result<(), JournalError> {
        let Some(d) = &self.journal else {
            return Ok(());
        };
        let mut durable = d.durable.subscribe();
        let failure = d.failure.clone();
        let _ = durable
            .wait_for(|done| *done >= rv || failure.lock().is_some())
            .await;
        match d.failure.lock().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.inner.read().rv
    }

    pub fn get(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<Stored> {
        let inner = self.inner.read();
        inner
            .objects
            .get(gr)?
            .items
            .get(&*join_key(ns, name))
            .cloned()
    }

    /// Objects of a resource in key order, after `start_after` when given, optionally
    /// limited to one namespace, plus the resourceVersion of the snapshot.
    pub fn list(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        start_after: Option<&ObjectKey>,
    ) -> (u64, Vec<(ObjectKey, Stored)>) {
        use std::ops::Bound;
        let inner = self.inner.read();
        let Some(map) = inner.objects.get(gr) else {
            return (inner.rv, Vec::new());
        };
        let lower = match (start_after, namespace) {
            (Some((ns, name)), _) => Bound::Excluded(join_key(ns, name)),
            (None, Some(ns)) => Bound::Included(join_key(ns, "")),
            (None, None) => Bound::Unbounded,
        };
        let prefix = namespace.map(|ns| join_key(ns, ""));
        let items = map
            .items
            .range((lower, Bound::Unbounded))
            .take_while(|(k, _)| prefix.as_ref().is_none_or(|p| k.starts_with(&**p)))
            .map(|(k, v)| (split_key(k), v.clone()))
            .collect();
        (inner.rv, items)
    }

    /// Namespaces that hold at least one object of any resource, with the resources.
    pub fn resources_in_namespace(&self, ns: &str) -> Vec<GroupResource> {
        let inner = self.inner.read();
        let prefix = join_key(ns, "");
        inner
            .objects
            .iter()
            .filter(|(_, map)| {
                map.items
                    .range(prefix.clone()..)
                    .next()
                    .is_some_and(|(k, _)| k.starts_with(&*prefix))
            })
            .map(|(gr, _)| gr.clone())
            .collect()
    }

    pub fn resources(&self) -> Vec<GroupResource> {
        let inner = self.inner.read();
        inner.objects.keys().cloned().collect()
    }

    /// Applies one write if the object is still at `expected_rv` (when given). The
    /// new object's `metadata.resourceVersion` is set here, under the lock, so that
    /// versions are handed out in commit order.
    pub fn write(
        &self,
        gr: &GroupResource,
        ns: &str,
        name: &str,
        expected_rv: Option<u64>,
        write: Write,
    ) -> Result<Committed, StoreError> {
        let mut inner = self.inner.write();
        let key = join_key(ns, name);
        let existing = inner
            .objects
            .get(gr)
            .and_then(|m| m.items.get(&key))
            .cloned();
        if let (Some(want), Some(have)) = (expected_rv, &existing) {
            if want != have.rv {
                return Err(StoreError::Conflict);
            }
        }
        let rv = inner.rv + 1;
        let (kind, (stored, object)) = match (write, &existing) {
            (Write::Create(_), Some(_)) => return Err(StoreError::AlreadyExists),
            (Write::Update(_) | Write::Delete, None) => return Err(StoreError::NotFound),
            (Write::Create(obj), None) => (EventType::Added, stamp(obj, rv)),
            (Write::Update(obj), Some(_)) => (EventType::Modified, stamp(obj, rv)),
            (Write::Delete, Some(old)) => {
                // A deleted object is reported with the deletion's resourceVersion.
                let mut obj = old.value();
                obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                (EventType::Deleted, stamp(obj, rv))
            }
        };
        inner.rv = rv;
        if !inner.objects.contains_key(gr) {
            let objects = Objects {
                gr: Arc::new(gr.clone()),
                items: BTreeMap::new(),
            };
            inner.objects.insert(gr.clone(), objects);
        }
        let map = inner.objects.get_mut(gr).expect("inserted above");
        if kind == EventType::Deleted {
            map.items.remove(&key);
        } else {
            map.items.insert(key, stored.clone());
        }
        let event = Event {
            rv,
            gr: map.gr.clone(),
            namespace: ns.to_string(),
            name: name.to_string(),
            kind,
            object: stored.json.clone(),
            prev: existing.map(|s| s.json),
        };
        if let Some(d) = &self.journal {
            d.append(&event);
        }
        self.record(&mut inner, event);
        drop(inner);
        self.latest.send_replace(rv);
        Ok(Committed { stored, object })
    }

    fn record(&self, inner: &mut Inner, event: Event) {
        inner.history.push_back(Arc::new(event));
        while inner.history.len() > self.history_limit {
            let dropped = inner.history.pop_front().expect("history is not empty");
            inner.oldest_resumable = dropped.rv;
        }
    }

    /// Events with a resourceVersion above `rv`, at most `max` of them.
    pub fn events_after(&self, rv: u64, max: usize) -> Result<Vec<Arc<Event>>, StoreError> {
        let inner = self.inner.read();
        if rv < inner.oldest_resumable {
            return Err(StoreError::Gone {
                requested: rv,
                oldest: inner.oldest_resumable,
            });
        }
        let start = inner.history.partition_point(|e| e.rv <= rv);
        Ok(inner.history.range(start..).take(max).cloned().collect())
    }

    /// Checks that a watch may start at `rv`.
    pub fn check_resumable(&self, rv: u64) -> Result<(), StoreError> {
        self.events_after(rv, 0).map(|_| ())
    }

    /// Resolves whenever the store's resourceVersion moves.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.latest.subscribe()
    }
}

/// Sets the resourceVersion and serializes: the stored form and the object itself.
impl Durability {
    fn start(journal: Journal, rv: u64) -> Self {
        let (pending, queue) = std::sync::mpsc::channel::<(u64, Durable)>();
        let (durable, _) = tokio::sync::watch::channel(rv);
        let failure = Arc::new(parking_lot::Mutex::new(None));
        let (tx, failed) = (durable.clone(), failure.clone());
        // Journal commits complete in order, so one thread can publish the
        // highest durable version for every waiting request.
        std::thread::Builder::new()
            .name("store-durability".into())
            .spawn(move || {
                for (rv, d) in queue {
                    match d.wait_blocking() {
                        Ok(()) => {
                            tx.send_replace(rv);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "the journal failed; writes can no longer be made durable");
                            *failed.lock() = Some(e);
                            tx.send_replace(u64::MAX);
                            return;
                        }
                    }
                }
            })
            .expect("can start a thread");
        Durability {
            journal,
            pending,
            durable,
            failure,
        }
    }

    /// Called with the store's lock held, so records reach the journal in order.
    fn append(&self, e: &Event) {
        let record = Record {
            rv: e.rv,
            group: e.gr.group.clone(),
            resource: e.gr.resource.clone(),
            namespace: e.namespace.clone(),
            name: e.name.clone(),
            kind: e.kind,
            object: bytes::Bytes::from_owner(e.object.clone()),
        };
        let durable = self.journal.append(record);
        let _ = self.pending.send((e.rv, durable));
    }
}

fn stamp(mut obj: Value, rv: u64) -> (Stored, Value) {
    obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
    let json = serde_json::to_vec(&obj).expect("a Value always serializes");
    // Copied into an exact-size allocation: stored objects live long.
    (
        Stored {
            rv,
            json: Json::from(json),
        },
        obj,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "a"}})
    }

    #[test]
    fn versions_increase_and_conflicts_are_detected() {
        let store = Store::new(100);
        let gr = GroupResource::new("", "configmaps");
        let a = store
            .write(&gr, "a", "x", None, Write::Create(cm("x")))
            .unwrap()
            .stored;
        let b = store
            .write(&gr, "a", "x", Some(a.rv), Write::Update(cm("x")))
            .unwrap()
            .stored;
        assert!(b.rv > a.rv);
        assert_eq!(b.value()["metadata"]["resourceVersion"], b.rv.to_string());
        let stale = store.write(&gr, "a", "x", Some(a.rv), Write::Update(cm("x")));
        assert_eq!(stale.unwrap_err(), StoreError::Conflict);
        let dup = store.write(&gr, "a", "x", None, Write::Create(cm("x")));
        assert_eq!(dup.unwrap_err(), StoreError::AlreadyExists);
    }

    /// A request handler that panics while it holds the store has its panic caught
    /// (the request gets a 500): every later request must still be served.
    #[test]
    fn a_panic_while_holding_the_store_does_not_stop_it() {
        let store = Store::new(100);
        let gr = GroupResource::new("", "configmaps");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _held = store.inner.write();
            panic!("a bug in a handler");
        }));
        assert!(panicked.is_err());
        let created = store.write(&gr, "a", "x", None, Write::Create(cm("x")));
        assert_eq!(created.unwrap().stored.rv, 2);
        assert_eq!(store.list(&gr, None, None).1.len(), 1);
    }

    #[test]
    fn list_is_ordered_and_scoped_to_a_namespace() {
        let store = Store::new(100);
        let gr = GroupResource::new("", "configmaps");
        for (ns, name) in [("b", "1"), ("a", "2"), ("a", "1"), ("c", "0")] {
            store
                .write(&gr, ns, name, None, Write::Create(cm(name)))
                .unwrap();
        }
        let (_, all) = store.list(&gr, None, None);
        let keys: Vec<_> = all
            .iter()
            .map(|(k, _)| format!("{}/{}", k.0, k.1))
            .collect();
        assert_eq!(keys, ["a/1", "a/2", "b/1", "c/0"]);
        let (_, only_a) = store.list(&gr, Some("a"), None);
        assert_eq!(only_a.len(), 2);
        let (_, after) = store.list(&gr, Some("a"), Some(&("a".into(), "1".into())));
        assert_eq!(after.len(), 1);
    }

    #[test]
    fn history_is_bounded_and_old_versions_are_gone() {
        let store = Store::new(3);
        let gr = GroupResource::new("", "configmaps");
        let first = store
            .write(&gr, "a", "x", None, Write::Create(cm("x")))
            .unwrap()
            .stored;
        for _ in 0..5 {
            store
                .write(&gr, "a", "x", None, Write::Update(cm("x")))
                .unwrap();
        }
        assert!(matches!(
            store.events_after(first.rv, 10),
            Err(StoreError::Gone { .. })
        ));
        let recent = store.events_after(store.current_rv() - 2, 10).unwrap();
        assert_eq!(recent.len(), 2);
        assert!(recent.iter().all(|e| e.kind == EventType::Modified));
    }
}
