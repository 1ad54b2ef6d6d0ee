//! In-memory caches fed by watches. Each object also sits in an index by the service
//! it concerns ([`ServiceKey`]), so a reconciler finds "the slices of demo/web" without
//! scanning. Every change is handed to a callback (which queues keys); after a relist,
//! objects that vanished are handed over too, so deletions missed during a watch gap
//! still reach the reconcilers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Resource, ResourceExt};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// The multi-cluster service an object is about: `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The key of an object named like its service (a ServiceExport, a Service, a
/// ServiceImport): its own namespace and name (an empty namespace for cluster-scoped
/// objects).
pub fn own_key<K: Resource>(obj: &K) -> Option<ServiceKey> {
    Some(ServiceKey::new(
        obj.meta().namespace.clone().unwrap_or_default(),
        obj.meta().name.clone()?,
    ))
}

/// (namespace, name) of a cached object.
type ObjectId = (String, String);

pub struct Cache<K> {
    inner: RwLock<Inner<K>>,
    index: fn(&K) -> Option<ServiceKey>,
    synced: watch::Sender<bool>,
    /// The watch delivers: false from a watch error until the next event.
    live: std::sync::atomic::AtomicBool,
}

struct Inner<K> {
    objects: HashMap<ObjectId, Arc<K>>,
    by_key: HashMap<ServiceKey, BTreeMap<ObjectId, Arc<K>>>,
    tombstones: Tombstones,
}

/// How long a watched deletion keeps an earlier version of the object from being
/// remembered: far longer than a write's response can trail the watch.
const TOMBSTONE_TTL: Duration = Duration::from_secs(120);

/// The version of a deletion seen only as an object missing from a relist: the list
/// does not tell when it went, so no remembered version of it is trusted until the
/// watch (or a later relist) shows the name again. Meanwhile a re-creation by this
/// controller is read from the watch, not from what it remembered of its write.
const UNSEEN: u64 = u64::MAX;

/// The resourceVersions at which objects were deleted, as the watch reported them.
///
/// A controller's write can race the object's deletion: the watch delivers the
/// deletion before the write's response arrives, and remembering the written version
/// then would bring the object back into the cache as a ghost that no later event
/// removes (a hub that keeps merging an export that no longer exists).
#[derive(Default)]
struct Tombstones {
    deleted: HashMap<ObjectId, (u64, Instant)>,
    order: VecDeque<(Instant, ObjectId, u64)>,
}

impl Tombstones {
    fn bury(&mut self, id: ObjectId, version: u64, now: Instant) {
        while let Some((at, _, _)) = self.order.front() {
            if now.duration_since(*at) < TOMBSTONE_TTL {
                break;
            }
            let (at, old, v) = self.order.pop_front().expect("front exists");
            // A later deletion of the same name has its own, newer entry (relist
            // tombstones all have the version UNSEEN: their time tells them apart).
            if self.deleted.get(&old) == Some(&(v, at)) {
                self.deleted.remove(&old);
            }
        }
        self.deleted.insert(id.clone(), (version, now));
        self.order.push_back((now, id, version));
    }

    /// The watch shows the object (created again): its deletion at an [`UNSEEN`]
    /// version preceded that, and the cached version now keeps older writes out.
    fn settle(&mut self, id: &ObjectId) {
        if self.deleted.get(id).is_some_and(|(d, _)| *d == UNSEEN) {
            self.deleted.remove(id);
        }
    }

    /// Whether `version` of the object predates its deletion, watched less than
    /// [`TOMBSTONE_TTL`] before `now`.
    fn buries(&self, id: &ObjectId, version: u64, now: Instant) -> bool {
        self.deleted.get(id).is_some_and(|(deleted, at)| {
            version <= *deleted && now.duration_since(*at) < TOMBSTONE_TTL
        })
    }
}

impl<K> Inner<K> {
    fn insert(
        &mut self,
        index: fn(&K) -> Option<ServiceKey>,
        obj: Arc<K>,
        id: ObjectId,
    ) -> Option<Arc<K>> {
        let old = self.objects.insert(id.clone(), obj.clone());
        if let Some(old) = &old {
            self.unindex(index, old, &id);
        }
        if let Some(key) = index(&obj) {
            self.by_key.entry(key).or_default().insert(id, obj);
        }
        old
    }

    fn remove(&mut self, index: fn(&K) -> Option<ServiceKey>, id: &ObjectId) -> Option<Arc<K>> {
        let old = self.objects.remove(id)?;
        self.unindex(index, &old, id);
        Some(old)
    }

    fn unindex(&mut self, index: fn(&K) -> Option<ServiceKey>, obj: &K, id: &ObjectId) {
        if let Some(key) = index(obj) {
            if let Some(set) = self.by_key.get_mut(&key) {
                set.remove(id);
                if set.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }
}

impl<K> Cache<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    /// An empty cache indexing objects by `index`.
    pub fn new(index: fn(&K) -> Option<ServiceKey>) -> Arc<Self> {
        Arc::new(Cache {
            inner: RwLock::new(Inner {
                objects: HashMap::new(),
                by_key: HashMap::new(),
                tombstones: Tombstones::default(),
            }),
            index,
            synced: watch::channel(false).0,
            live: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether the watch is delivering (false while its API server is unreachable,
    /// when the cache holds what it last saw).
    pub fn is_live(&self) -> bool {
        self.live.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let inner = self.inner.read();
        inner
            .objects
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// The objects indexed under `key`, by namespace and name.
    pub fn by_key(&self, key: &ServiceKey) -> Vec<Arc<K>> {
        let inner = self.inner.read();
        inner
            .by_key
            .get(key)
            .map(|set| set.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn all(&self) -> Vec<Arc<K>> {
        let inner = self.inner.read();
        inner.objects.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.inner.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the first list has arrived.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Resolves once the first list has arrived.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Watches `api` into the cache for as long as the future runs, calling `changed`
    /// with every object added, modified or deleted (old and new versions). Watch
    /// errors are logged and retried with backoff; the cache keeps its contents
    /// meanwhile, so an unreachable API server freezes it rather than emptying it.
    pub async fn run(
        self: Arc<Self>,
        what: &'static str,
        api: Api<K>,
        config: watcher::Config,
        changed: impl Fn(&K) + Send + Sync,
    ) {
        let mut relist: Option<HashMap<ObjectId, Arc<K>>> = None;
        let mut events = watcher::watcher(api, config).default_backoff().boxed();
        let mut failing = false;
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => {
                    if failing {
                        tracing::info!(what, "watch restored");
                        failing = false;
                    }
                    self.live.store(true, std::sync::atomic::Ordering::SeqCst);
                    event
                }
                Err(error) => {
                    self.live.store(false, std::sync::atomic::Ordering::SeqCst);
                    if !failing {
                        tracing::warn!(what, %error, "watch failed; retrying with backoff, cache kept as it is");
                        failing = true;
                    }
                    continue;
                }
            };
            match event {
                Event::Init => relist = Some(HashMap::new()),
                Event::InitApply(obj) => {
                    if let Some(buffer) = relist.as_mut() {
                        buffer.insert(id_of(&obj), Arc::new(slim(obj)));
                    }
                }
                Event::InitDone => {
                    let fresh = relist.take().unwrap_or_default();
                    let old = self.replace(fresh);
                    for obj in old.iter().chain(self.all().iter()) {
                        changed(obj);
                    }
                    self.synced.send_replace(true);
                }
                Event::Apply(obj) => {
                    let obj = Arc::new(slim(obj));
                    let Some(old) = self.insert_newer(obj.clone(), false) else {
                        continue; // what we wrote ourselves is already newer
                    };
                    if let Some(old) = old {
                        changed(&old);
                    }
                    changed(&obj);
                }
                Event::Delete(obj) => {
                    self.deleted(&obj);
                    changed(&obj);
                }
            }
        }
    }

    /// Removes an object the watch saw deleted (unless what the cache holds is a newer
    /// object of that name this controller has created since), and keeps versions up to
    /// the deletion from coming back through [`Cache::remember`].
    fn deleted(&self, obj: &K) {
        let id = id_of(obj);
        let mut inner = self.inner.write();
        let deleted = version(obj);
        let cached = inner.objects.get(&id).and_then(|c| version(c.as_ref()));
        if !matches!((cached, deleted), (Some(c), Some(d)) if c > d) {
            inner.remove(self.index, &id);
        }
        if let Some(version) = deleted {
            inner.tombstones.bury(id, version, Instant::now());
        }
    }

    /// Puts an object this controller has just written into the cache ahead of its
    /// watch event (client-go's mutation cache), so the next reconcile of the key reads
    /// what was written instead of retrying against a stale version.
    pub fn remember(&self, obj: K) {
        self.insert_newer(Arc::new(slim(obj)), true);
    }

    /// Drops an object this controller has just deleted, ahead of its watch event.
    pub fn forget(&self, namespace: &str, name: &str) {
        let mut inner = self.inner.write();
        inner.remove(self.index, &(namespace.to_string(), name.to_string()));
    }

    /// Inserts `obj` unless the cache holds a newer version or, for what this
    /// controller `remembered` of its own writes, the watch saw the object deleted after
    /// it (the watch's own events come in order). ResourceVersions are compared as
    /// numbers when they are, as every API server this runs against issues them.
    /// Returns None when it was not inserted, else the version it replaced.
    fn insert_newer(&self, obj: Arc<K>, remembered: bool) -> Option<Option<Arc<K>>> {
        let id = id_of(obj.as_ref());
        let mut inner = self.inner.write();
        if let Some(new) = version(obj.as_ref()) {
            let have = inner
                .objects
                .get(&id)
                .and_then(|current| version(current.as_ref()));
            let buried = remembered && inner.tombstones.buries(&id, new, Instant::now());
            if have.is_some_and(|have| have > new) || buried {
                return None;
            }
        }
        if !remembered {
            inner.tombstones.settle(&id);
        }
        Some(inner.insert(self.index, obj, id))
    }

    /// Swaps in a fresh list; returns every version it replaced (gone or changed).
    fn replace(&self, fresh: HashMap<ObjectId, Arc<K>>) -> Vec<Arc<K>> {
        let mut inner = self.inner.write();
        let old = std::mem::take(&mut inner.objects);
        inner.by_key.clear();
        let now = Instant::now();
        for id in old.keys().filter(|id| !fresh.contains_key(*id)) {
            inner.tombstones.bury(id.clone(), UNSEEN, now);
        }
        for (id, obj) in fresh {
            inner.tombstones.settle(&id);
            inner.insert(self.index, obj, id);
        }
        // Every old version, not only the vanished ones: an object whose index key
        // changed during the gap must still wake its old key.
        old.into_values().collect()
    }
}

/// What no reconciler reads, dropped before caching: managed fields are often the
/// larger half of an object.
fn slim<K: Resource>(mut obj: K) -> K {
    obj.meta_mut().managed_fields = None;
    obj
}

fn version<K: Resource>(obj: &K) -> Option<u64> {
    obj.meta().resource_version.as_deref()?.parse().ok()
}

fn id_of<K: Resource>(obj: &K) -> ObjectId {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Writes that also update the cache at once (see [`Cache::remember`]).
impl<K> Cache<K>
where
    K: Resource
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default,
{
    pub async fn upsert(
        &self,
        api: &Api<K>,
        existing: Option<&K>,
        object: serde_json::Value,
    ) -> kube::Result<K> {
        let written = super::upsert(api, existing, object).await?;
        self.remember(written.clone());
        Ok(written)
    }

    pub async fn write_status(
        &self,
        api: &Api<K>,
        manager: &str,
        name: &str,
        object: &serde_json::Value,
    ) -> kube::Result<K> {
        let written = super::write_status(api, manager, name, object).await?;
        self.remember(written.clone());
        Ok(written)
    }

    /// Deletes `namespace/name` (the namespace `api` is scoped to).
    pub async fn delete(&self, api: &Api<K>, namespace: &str, name: &str) -> kube::Result<()> {
        super::delete(api, name).await?;
        self.forget(namespace, name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(ns: &str, name: &str, svc: &str) -> Arc<ConfigMap> {
        Arc::new(
            serde_json::from_value(serde_json::json!({"metadata": {"namespace": ns, "name": name, "labels": {"svc": svc}}}))
                .unwrap(),
        )
    }

    fn by_label(c: &ConfigMap) -> Option<ServiceKey> {
        Some(ServiceKey::new(c.namespace()?, c.labels().get("svc")?))
    }

    #[test]
    fn the_index_follows_inserts_moves_and_relists() {
        let cache = Cache::<ConfigMap>::new(by_label);
        let web = ServiceKey::new("demo", "web");
        let api = ServiceKey::new("demo", "api");
        {
            let mut inner = cache.inner.write();
            inner.insert(
                by_label,
                cm("demo", "a", "web"),
                ("demo".into(), "a".into()),
            );
            inner.insert(
                by_label,
                cm("demo", "b", "web"),
                ("demo".into(), "b".into()),
            );
            // A label change moves the object to another key.
            inner.insert(
                by_label,
                cm("demo", "b", "api"),
                ("demo".into(), "b".into()),
            );
        }
        assert_eq!(cache.by_key(&web).len(), 1);
        assert_eq!(cache.by_key(&api).len(), 1);
        let fresh = HashMap::from([(
            ("demo".to_string(), "b".to_string()),
            cm("demo", "b", "api"),
        )]);
        let mut old: Vec<String> = cache.replace(fresh).iter().map(|o| o.name_any()).collect();
        old.sort();
        assert_eq!(
            old,
            ["a", "b"],
            "the relist hands back what vanished and what it replaced"
        );
        assert!(cache.by_key(&web).is_empty());
        assert!(cache.get("demo", "b").is_some());
    }

    fn versioned(name: &str, version: u64) -> ConfigMap {
        let mut c = cm("demo", name, "web").as_ref().clone();
        c.metadata.resource_version = Some(version.to_string());
        c
    }

    fn cached_version(cache: &Cache<ConfigMap>, name: &str) -> Option<String> {
        cache.get("demo", name)?.metadata.resource_version.clone()
    }

    #[test]
    fn a_write_answered_after_the_watched_deletion_does_not_bring_the_object_back() {
        let cache = Cache::<ConfigMap>::new(by_label);
        let web = ServiceKey::new("demo", "web");
        cache.remember(versioned("a", 5));
        // A status write lands at 6; the object is deleted at 7 and the watch reports
        // that before the write's response arrives.
        cache.deleted(&versioned("a", 7));
        cache.remember(versioned("a", 6));
        assert!(
            cache.get("demo", "a").is_none(),
            "no ghost of a deleted object"
        );
        assert!(cache.by_key(&web).is_empty());
        // Created again under the same name: that is newer than the deletion.
        cache.remember(versioned("a", 8));
        assert_eq!(cached_version(&cache, "a").as_deref(), Some("8"));
        assert_eq!(cache.by_key(&web).len(), 1);
        // Deleted at 9 and created again at 10 by this controller, which hears of the
        // deletion only afterwards: the new object stays.
        cache.remember(versioned("a", 10));
        cache.deleted(&versioned("a", 9));
        assert_eq!(cached_version(&cache, "a").as_deref(), Some("10"));
    }

    #[test]
    fn an_object_gone_from_a_relist_is_not_brought_back_by_a_late_write() {
        let cache = Cache::<ConfigMap>::new(by_label);
        cache.remember(versioned("a", 5));
        cache.remember(versioned("b", 5));
        // The watch broke; meanwhile a write to a landed at 6 and a was deleted. The
        // relist no longer has it, then the write's response arrives.
        let fresh = HashMap::from([(id_of(&versioned("b", 5)), Arc::new(versioned("b", 5)))]);
        cache.replace(fresh);
        cache.remember(versioned("a", 6));
        assert!(cache.get("demo", "a").is_none(), "no ghost after a relist");
        cache.remember(versioned("b", 7));
        assert_eq!(cached_version(&cache, "b").as_deref(), Some("7"));
        // Created again, as the watch shows: this controller's writes count again.
        assert!(cache
            .insert_newer(Arc::new(versioned("a", 20)), false)
            .is_some());
        cache.remember(versioned("a", 21));
        assert_eq!(cached_version(&cache, "a").as_deref(), Some("21"));
        // Gone from one relist, back in the next: trusted again too.
        let only_b = HashMap::from([(id_of(&versioned("b", 7)), Arc::new(versioned("b", 7)))]);
        cache.replace(only_b.clone());
        let mut both = only_b;
        both.insert(id_of(&versioned("a", 30)), Arc::new(versioned("a", 30)));
        cache.replace(both);
        cache.remember(versioned("a", 31));
        assert_eq!(cached_version(&cache, "a").as_deref(), Some("31"));
    }

    #[test]
    fn an_expiring_relist_tombstone_leaves_a_newer_one_of_the_name() {
        let mut t = Tombstones::default();
        let a = ("demo".to_string(), "a".to_string());
        let t0 = Instant::now();
        t.bury(a.clone(), UNSEEN, t0);
        t.bury(a.clone(), UNSEEN, t0 + Duration::from_secs(100));
        t.bury(("x".into(), "y".into()), 1, t0 + TOMBSTONE_TTL);
        assert!(t.buries(&a, 5, t0 + TOMBSTONE_TTL), "the later one stays");
    }

    #[test]
    fn tombstones_expire_and_a_later_deletion_of_the_name_keeps_its_own() {
        let mut t = Tombstones::default();
        let (a, b) = (
            ("demo".to_string(), "a".to_string()),
            ("demo".to_string(), "b".to_string()),
        );
        let t0 = Instant::now();
        t.bury(a.clone(), 3, t0);
        t.bury(b.clone(), 4, t0);
        t.bury(a.clone(), 9, t0 + Duration::from_secs(60));
        let t1 = t0 + Duration::from_secs(61);
        assert!(t.buries(&a, 9, t1) && !t.buries(&a, 10, t1));
        assert!(t.buries(&b, 4, t1));
        assert!(
            !t.buries(&b, 4, t0 + TOMBSTONE_TTL),
            "expired, even before it is dropped"
        );
        t.bury(("x".into(), "y".into()), 11, t0 + TOMBSTONE_TTL);
        assert!(!t.deleted.contains_key(&b), "b's tombstone dropped");
        assert!(
            t.buries(&a, 5, t0 + TOMBSTONE_TTL),
            "a's later deletion is still remembered"
        );
        assert_eq!(t.order.len(), 2);
    }
}
