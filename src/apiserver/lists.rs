//! How list fields merge, shared by strategic merge patch and server-side apply.
//!
//! A real kube-apiserver learns this from Go struct tags (`patchMergeKey`,
//! `listType`, `listMapKeys`) for built-in kinds and from `x-kubernetes-list-type`
//! / `x-kubernetes-list-map-keys` in a CRD's schema. Both sources answer the same
//! question: given the path of a list field, is it atomic, a set of scalars, or a
//! map keyed by some fields of its items?

/// The merge semantics of one list field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// A set of scalars: merged by value.
    Set,
    /// A list of objects keyed by these fields (the first is the strategic merge key).
    Map(Vec<String>),
}

/// Answers [`ListType`] for a list field, given its path from the object root with
/// list indices left out, e.g. `["spec", "template", "spec", "containers"]`.
pub trait ListTypes: Send + Sync {
    fn list_type(&self, path: &[&str]) -> ListType;
}

/// Every list is atomic: what a custom resource without list annotations gets.
pub struct AtomicLists;

impl ListTypes for AtomicLists {
    fn list_type(&self, _path: &[&str]) -> ListType {
        ListType::Atomic
    }
}
