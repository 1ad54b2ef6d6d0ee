//! The registry of resource types: built-in kinds described once, plus the kinds that
//! CustomResourceDefinitions add at run time. Routing, discovery, OpenAPI, Table
//! output and validation are all derived from these descriptions.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use super::store::GroupResource;

/// One column of `kubectl get` output.
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    /// OpenAPI type of the cell: string, integer, number, boolean, date.
    pub type_: String,
    pub format: String,
    pub description: String,
    /// 0 is shown by default, higher only with `-o wide`.
    pub priority: i64,
    pub source: CellSource,
}

#[derive(Clone, Debug)]
pub enum CellSource {
    /// A simple JSONPath such as `.spec.type` or `.status.conditions[?(@.type=="Ready")].status`.
    JsonPath(String),
    /// A value computed from the whole object, for built-in kinds.
    Computed(fn(&Value) -> Value),
}

/// Paths of the scale subresource, as a CRD declares them.
#[derive(Clone, Debug)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// What differs between served versions of one resource.
#[derive(Clone, Debug)]
pub struct VersionInfo {
    pub name: String,
    /// Shared: requests read it, and it can be large (upstream CRDs carry long descriptions).
    pub schema: Option<Arc<Value>>,
    pub columns: Vec<Column>,
    pub deprecated: bool,
}

#[derive(Clone, Debug)]
pub struct ResourceType {
    pub group: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Served versions in preference order.
    pub versions: Vec<VersionInfo>,
    /// The version objects are stored in.
    pub storage_version: String,
    pub status: bool,
    pub scale: Option<ScalePaths>,
    /// Built-in kinds support strategic merge patch; custom resources do not.
    pub builtin: bool,
    /// A review (access or identity): only created, answered at once, never stored.
    pub review: bool,
}

impl ResourceType {
    pub fn gr(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.plural)
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn version(&self, version: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.name == version)
    }

    /// `Deployment.apps`, or `Pod` in the core group, as error messages name kinds.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

#[derive(Default)]
pub struct Registry {
    types: RwLock<HashMap<GroupResource, Arc<ResourceType>>>,
}

impl Registry {
    pub fn new(types: Vec<ResourceType>) -> Self {
        let registry = Registry::default();
        for t in types {
            registry.insert(t);
        }
        registry
    }

    pub fn insert(&self, t: ResourceType) {
        self.types.write().insert(t.gr(), Arc::new(t));
    }

    pub fn remove(&self, gr: &GroupResource) {
        self.types.write().remove(gr);
    }

    pub fn get(&self, gr: &GroupResource) -> Option<Arc<ResourceType>> {
        self.types.read().get(gr).cloned()
    }

    /// The type served at `/apis/<group>/<version>/<plural>`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.get(&GroupResource::new(group, plural))
            .filter(|t| t.version(version).is_some())
    }

    pub fn find_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let types = self.types.read();
        types
            .values()
            .find(|t| t.group == group && t.kind == kind)
            .cloned()
    }

    /// Every type, sorted by group then plural so discovery output is stable.
    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        let mut all: Vec<_> = self.types.read().values().cloned().collect();
        all.sort_by(|a, b| (&a.group, &a.plural).cmp(&(&b.group, &b.plural)));
        all
    }

    /// Served group versions: group → versions in preference order.
    pub fn group_versions(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.all() {
            let entry = match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some(e) => e,
                None => {
                    groups.push((t.group.clone(), Vec::new()));
                    groups.last_mut().unwrap()
                }
            };
            for v in &t.versions {
                if !entry.1.contains(&v.name) {
                    entry.1.push(v.name.clone());
                }
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups
    }
}

/// Kubernetes' version ordering: GA > beta > alpha, higher numbers first.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().unwrap_or(0);
    let suffix = &rest[digits.len()..];
    let (stage, minor) = if suffix.is_empty() {
        (3, 0)
    } else if let Some(n) = suffix.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = suffix.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (stage, major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v1beta1", "v2", "v1", "v1beta2"];
        v.sort_by_key(|b| std::cmp::Reverse(version_priority(b)));
        assert_eq!(v, ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1"]);
    }
}
