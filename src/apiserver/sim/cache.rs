//! What each controller remembers of the store: the objects of the kinds it reads
//! (an informer's cache) and the keys it still has to look at (a work queue).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::apiserver::objects;
use crate::apiserver::store::{EventType, ObjectKey};

/// The objects of one resource as last seen, by namespace and name.
#[derive(Default)]
pub(crate) struct Objects {
    items: BTreeMap<ObjectKey, Value>,
}

/// What one change did to a cached object.
pub(crate) struct Change {
    pub key: ObjectKey,
    /// The object before the change, if it was known.
    pub old: Option<Value>,
}

impl Objects {
    /// Records a change; `None` when the object cannot be read.
    pub fn apply(&mut self, namespace: &str, kind: EventType, object: &[u8]) -> Option<Change> {
        let value: Value = serde_json::from_slice(object).ok()?;
        let key = (namespace.to_string(), objects::name(&value).to_string());
        let old = match kind {
            EventType::Deleted => self.items.remove(&key),
            _ => self.items.insert(key.clone(), value),
        };
        Some(Change { key, old })
    }

    /// Records a change to a dependent (a ReplicaSet, a Pod) and returns its owners
    /// of `owner_kind` among `owners` that need a sync, as they were before and after.
    pub fn apply_dependent(
        &mut self,
        owners: &Objects,
        owner_kind: &str,
        namespace: &str,
        kind: EventType,
        object: &[u8],
    ) -> Vec<ObjectKey> {
        let Some(change) = self.apply(namespace, kind, object) else {
            return Vec::new();
        };
        [change.old.as_ref(), self.get(&change.key)]
            .into_iter()
            .flatten()
            .flat_map(|d| {
                super::meta::owners_to_sync(d, owner_kind, owners.in_namespace(namespace))
            })
            .map(|name| (namespace.to_string(), name))
            .collect()
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&Value> {
        self.items.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &Value)> {
        self.items.iter()
    }

    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.items.values()
    }

    /// The objects of one namespace, in name order.
    pub fn in_namespace<'a>(&'a self, ns: &'a str) -> impl Iterator<Item = &'a Value> + Clone + 'a {
        let start = (ns.to_string(), String::new());
        self.items
            .range(start..)
            .take_while(move |((n, _), _)| n == ns)
            .map(|(_, v)| v)
    }
}

/// Keys to reconcile: those touched by changes, plus those whose last attempt
/// failed and wait for a retry.
pub(crate) struct Queue<K> {
    dirty: BTreeSet<K>,
    failed: BTreeSet<K>,
}

impl<K> Default for Queue<K> {
    fn default() -> Self {
        Queue {
            dirty: BTreeSet::new(),
            failed: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone> Queue<K> {
    pub fn add(&mut self, key: K) {
        self.dirty.insert(key);
    }

    /// Everything to look at now; the queue is empty afterwards.
    pub fn take(&mut self) -> BTreeSet<K> {
        let mut keys = std::mem::take(&mut self.dirty);
        keys.append(&mut self.failed);
        keys
    }

    /// Looks at `key` again after a short while, even if nothing changes.
    pub fn retry(&mut self, key: K) {
        self.failed.insert(key);
    }

    pub fn has_retries(&self) -> bool {
        !self.failed.is_empty()
    }
}

/// An owner kind and the kind it controls (Deployments and ReplicaSets, ReplicaSets
/// and Pods, StatefulSets and Pods): caches of both, and the owners to sync.
pub(crate) struct Family {
    /// (group, resource, kind) of the owner.
    owner: (&'static str, &'static str, &'static str),
    /// (group, resource) of what it controls.
    dependent: (&'static str, &'static str),
    pub owners: Objects,
    pub dependents: Objects,
    pub queue: Queue<ObjectKey>,
}

impl Family {
    pub fn new(
        owner: (&'static str, &'static str, &'static str),
        dependent: (&'static str, &'static str),
    ) -> Self {
        Family {
            owner,
            dependent,
            owners: Objects::default(),
            dependents: Objects::default(),
            queue: Queue::default(),
        }
    }

    /// Notes a change of either kind and queues the owners it concerns.
    pub fn observe(
        &mut self,
        gr: &crate::apiserver::store::GroupResource,
        namespace: &str,
        kind: EventType,
        object: &[u8],
    ) {
        let this = (gr.group.as_str(), gr.resource.as_str());
        if this == (self.owner.0, self.owner.1) {
            if let Some(change) = self.owners.apply(namespace, kind, object) {
                self.queue.add(change.key);
            }
        } else if this == self.dependent {
            for key in
                self.dependents
                    .apply_dependent(&self.owners, self.owner.2, namespace, kind, object)
            {
                self.queue.add(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes(name: &str, v: i64) -> Vec<u8> {
        serde_json::to_vec(&json!({"metadata": {"name": name}, "v": v})).unwrap()
    }

    #[test]
    fn objects_follow_changes_and_list_by_namespace() {
        let mut o = Objects::default();
        o.apply("a", EventType::Added, &bytes("x", 1));
        o.apply("b", EventType::Added, &bytes("y", 1));
        let change = o.apply("a", EventType::Modified, &bytes("x", 2)).unwrap();
        assert_eq!(change.old.unwrap()["v"], 1);
        assert_eq!(o.in_namespace("a").count(), 1);
        o.apply("a", EventType::Deleted, &bytes("x", 2));
        assert_eq!(o.in_namespace("a").count(), 0);
        assert_eq!(o.in_namespace("b").count(), 1);
    }

    #[test]
    fn failed_keys_come_back() {
        let mut q = Queue::default();
        q.add(1);
        assert_eq!(q.take().len(), 1);
        q.retry(2);
        assert!(q.has_retries());
        q.add(3);
        assert_eq!(q.take().into_iter().collect::<Vec<_>>(), [2, 3]);
        assert!(!q.has_retries());
    }
}
