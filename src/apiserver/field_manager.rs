//! Server-side apply and `metadata.managedFields` bookkeeping.
//!
//! This follows k8s.io/apiserver's field manager on top of
//! sigs.k8s.io/structured-merge-diff (SMD), but works directly on JSON objects. Each
//! manager owns a set of field paths; a path is a list of [`PathElement`]s and travels
//! on the wire as the nested FieldsV1 object of a `managedFields` entry.
//!
//! Without OpenAPI schemas, every JSON object is treated like a struct: an Apply owns
//! its leaves and list items but never an object itself, while an Update also owns an
//! object it adds whole (the `".": {}` that real servers show for `f:labels`). List
//! semantics come from [`ListTypes`].

use std::cmp::Ordering;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use super::lists::{ListType, ListTypes};

/// The manager the real server credits with every field of an object that had no
/// managedFields when it was first applied to, so that appliers conflict with them.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Paths nobody ever owns (the real server's stripMetaManager): they identify the object,
/// are set by the server, or are managedFields itself. Removed path by path, so the
/// children of `metadata` (labels, annotations, ...) stay tracked.
const UNTRACKED: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["metadata"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "creationTimestamp"],
    &["metadata", "selfLink"],
    &["metadata", "uid"],
    &["metadata", "clusterName"],
    &["metadata", "generation"],
    &["metadata", "managedFields"],
    &["metadata", "resourceVersion"],
];

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// One field that another manager owns and that the apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// The field as the real server prints it: `.spec.containers[name="web"].image`.
    pub path: String,
    /// The apiVersion of the other manager's entry when it wrote with an Update; the real
    /// server names such managers `"kubectl" using apps/v1`. `None` for appliers, whose
    /// identity leaves the version out.
    pub api_version: Option<String>,
    /// The other manager's subresource (e.g. "status"), if it wrote through one.
    pub subresource: Option<String>,
}

impl Conflict {
    fn owner(&self) -> ManagerId {
        ManagerId {
            manager: self.manager.clone(),
            operation: match self.api_version {
                Some(_) => Operation::Update,
                None => Operation::Apply,
            },
            api_version: self.api_version.clone().unwrap_or_default(),
            subresource: self.subresource.clone().unwrap_or_default(),
        }
    }

    /// The manager as the real server prints it: `"kubectl-client-side-apply" using apps/v1`.
    pub fn manager_display(&self) -> String {
        self.owner().display()
    }

    /// The message of this conflict's `StatusCause` (its `field` is [`Conflict::path`]).
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.manager_display())
    }
}

/// An apply rejected because it would change fields other managers own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyError {
    /// Grouped by manager (in the real server's order), each manager's paths in SMD order.
    pub conflicts: Vec<Conflict>,
    /// apiVersion of the rejected apply request.
    pub api_version: String,
}

impl ApplyError {
    /// The Status message the real server returns with its 409.
    pub fn message(&self) -> String {
        if let [only] = self.conflicts.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.manager_display(),
                only.path
            );
        }
        // The real server groups paths per manager and sorts managers by their encoded
        // identifier, so group the same way whatever order `conflicts` is in.
        let mut groups: BTreeMap<String, (String, Vec<&str>)> = BTreeMap::new();
        for conflict in &self.conflicts {
            let owner = conflict.owner();
            let group = groups
                .entry(owner.identifier())
                .or_insert_with(|| (owner.display(), Vec::new()));
            group.1.push(&conflict.path);
        }
        let mut lines = Vec::new();
        for (display, paths) in groups.values() {
            lines.push(format!("conflicts with {display}:"));
            lines.extend(paths.iter().map(|path| format!("- {path}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.conflicts.len(),
            lines.join("\n")
        )
    }
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ApplyError {}

// ---------------------------------------------------------------------------------------
// Paths and field sets
// ---------------------------------------------------------------------------------------

/// One step of a field path, as in SMD.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// A field of an object: `f:<name>`.
    Field(String),
    /// An item of a map list, by its key fields sorted by name: `k:{"name":"web"}`.
    Key(Vec<(String, Value)>),
    /// An item of a set list, by value: `v:"finalizer"`.
    Value(Value),
    /// An item of a list by position: `i:0` (only ever read from stored entries).
    Index(usize),
}

impl PathElement {
    /// A key element; SMD sorts key fields by name whatever order the schema lists them in.
    fn key(fields: impl IntoIterator<Item = (String, Value)>) -> PathElement {
        let mut fields: Vec<_> = fields.into_iter().collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(fields)
    }

    fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    /// Parses one FieldsV1 key (`f:`, `k:`, `v:` or `i:`).
    fn parse(text: &str) -> Option<PathElement> {
        let (kind, rest) = (text.get(..2)?, text.get(2..)?);
        match kind {
            "f:" => Some(PathElement::field(rest)),
            "k:" => {
                let fields: Map<String, Value> = serde_json::from_str(rest).ok()?;
                Some(PathElement::key(fields))
            }
            "v:" => serde_json::from_str(rest).ok().map(PathElement::Value),
            "i:" => rest.parse().ok().map(PathElement::Index),
            _ => None,
        }
    }

    /// The FieldsV1 key for this element.
    fn encode(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let object: Map<String, Value> = fields.iter().cloned().collect();
                format!("k:{}", Value::Object(object))
            }
            PathElement::Value(value) => format!("v:{value}"),
            PathElement::Index(index) => format!("i:{index}"),
        }
    }

    /// SMD orders kinds of elements: fields, then keys, then values, then indices.
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => compare_fields(a, b),
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// Equality must agree with the ordering (numbers compare by value, `1 == 1.0`), so it
// cannot be derived from serde_json's `Value` equality.
impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

/// Prints like SMD's `PathElement.String()`, which is what conflict paths are made of.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{name}={}", value_string(value)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(value) => write!(f, "[={}]", value_string(value)),
            PathElement::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// A scalar as SMD's `value.ToString` prints it: strings quoted, the rest as JSON.
fn value_string(value: &Value) -> String {
    value.to_string()
}

/// A path printed as the real server prints it in conflicts: `.spec.replicas`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(PathElement::to_string).collect()
}

/// SMD's total order on values: numbers < strings < booleans < lists < maps < null.
fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => compare_sequences(x.iter(), y.iter()),
        (Value::Object(x), Value::Object(y)) => {
            let mut x: Vec<_> = x.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let mut y: Vec<_> = y.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            x.sort_by(|a, b| a.0.cmp(&b.0));
            y.sort_by(|a, b| a.0.cmp(&b.0));
            compare_fields(&x, &y)
        }
        _ => value_rank(a).cmp(&value_rank(b)),
    }
}

fn value_rank(value: &Value) -> u8 {
    match value {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

/// Integers compare exactly; anything involving a float compares numerically.
fn compare_numbers(x: &serde_json::Number, y: &serde_json::Number) -> Ordering {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a.cmp(&b);
    }
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return a.cmp(&b);
    }
    let a = x.as_f64().unwrap_or(0.0);
    let b = y.as_f64().unwrap_or(0.0);
    a.total_cmp(&b)
}

fn compare_sequences<'a>(
    mut x: impl Iterator<Item = &'a Value>,
    mut y: impl Iterator<Item = &'a Value>,
) -> Ordering {
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(a), Some(b)) => match compare_values(a, b) {
                Ordering::Equal => continue,
                unequal => return unequal,
            },
        }
    }
}

/// Name/value lists (sorted by name) compare pairwise, the shorter first on a tie.
fn compare_fields(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for ((name_a, value_a), (name_b, value_b)) in a.iter().zip(b) {
        let order = name_a
            .cmp(name_b)
            .then_with(|| compare_values(value_a, value_b));
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// A set of field paths: what one manager owns. Sorted, so encoding is deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    paths: BTreeSet<Vec<PathElement>>,
}

impl FieldSet {
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Adds a path; the empty path (the whole object) is never tracked, as in SMD.
    pub fn insert(&mut self, path: Vec<PathElement>) {
        if !path.is_empty() {
            self.paths.insert(path);
        }
    }

    pub fn contains(&self, path: &[PathElement]) -> bool {
        self.paths.contains(path)
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Vec<PathElement>> {
        self.paths.iter()
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let paths = self.paths.union(&other.paths).cloned().collect();
        FieldSet { paths }
    }

    /// Adds every path of `other`, in place.
    pub fn extend(&mut self, other: &FieldSet) {
        self.paths.extend(other.paths.iter().cloned());
    }

    /// Removes every path of `other`, in place.
    pub fn remove_all(&mut self, other: &FieldSet) {
        if !other.is_empty() {
            self.paths.retain(|path| !other.paths.contains(path));
        }
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let paths = self.paths.difference(&other.paths).cloned().collect();
        FieldSet { paths }
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let paths = self.paths.intersection(&other.paths).cloned().collect();
        FieldSet { paths }
    }

    /// The paths in the order SMD's `Set.Iterate` visits them, which is the order the real
    /// server lists conflicts in: at each level the members first, then child subtrees.
    fn paths_in_visit_order(&self) -> Vec<&Vec<PathElement>> {
        let mut paths: Vec<_> = self.paths.iter().collect();
        paths.sort_by(|a, b| visit_order(a, b));
        paths
    }
}

fn visit_order(a: &[PathElement], b: &[PathElement]) -> Ordering {
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if common == a.len() || common == b.len() {
        return a.len().cmp(&b.len());
    }
    let a_member = a.len() == common + 1;
    let b_member = b.len() == common + 1;
    b_member
        .cmp(&a_member)
        .then_with(|| a[common].cmp(&b[common]))
}

/// The paths nobody owns, as a set.
fn untracked() -> FieldSet {
    let mut set = FieldSet::new();
    for path in UNTRACKED {
        set.insert(path.iter().map(|name| PathElement::field(name)).collect());
    }
    set
}

// ---------------------------------------------------------------------------------------
// FieldsV1 wire format
// ---------------------------------------------------------------------------------------

/// Reads a FieldsV1 object. A key mapping to `{}` is a member, `"."` marks the enclosing
/// node as a member too; keys that are not path elements are skipped.
pub fn decode_fields(fields: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    decode_into(fields, &mut Vec::new(), &mut set);
    set
}

fn decode_into(fields: &Value, path: &mut Vec<PathElement>, set: &mut FieldSet) {
    let Some(object) = fields.as_object() else {
        return;
    };
    if object.is_empty() {
        set.insert(path.clone());
    }
    for (key, child) in object {
        if key == "." {
            set.insert(path.clone());
        } else if let Some(element) = PathElement::parse(key) {
            path.push(element);
            decode_into(child, path, set);
            path.pop();
        }
    }
}

/// Writes a FieldsV1 object the way SMD does: children in path-element order, and a
/// leading `".": {}` on a node that is itself a member and also has children.
pub fn encode_fields(set: &FieldSet) -> Value {
    let mut root = Trie::default();
    for path in set.iter() {
        root.insert(path);
    }
    root.encode()
}

#[derive(Default)]
struct Trie {
    member: bool,
    children: BTreeMap<PathElement, Trie>,
}

impl Trie {
    fn insert(&mut self, path: &[PathElement]) {
        let mut node = self;
        for element in path {
            node = node.children.entry(element.clone()).or_default();
        }
        node.member = true;
    }

    /// The node at `path` stops being a member (its children stay).
    fn unmark(&mut self, path: &[&str]) {
        let mut node = self;
        for name in path {
            match node.children.get_mut(&PathElement::field(name)) {
                Some(child) => node = child,
                None => return,
            }
        }
        node.member = false;
    }

    /// Drops the nodes below that neither are members nor lead to one.
    fn prune(&mut self) {
        for child in self.children.values_mut() {
            child.prune();
        }
        self.children
            .retain(|_, child| child.member || !child.children.is_empty());
    }

    fn encode(&self) -> Value {
        let mut object = Map::new();
        if self.member && !self.children.is_empty() {
            object.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (element, child) in &self.children {
            object.insert(element.encode(), child.encode());
        }
        Value::Object(object)
    }
}

// ---------------------------------------------------------------------------------------
// managedFields entries
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }

    fn parse(text: &str) -> Option<Operation> {
        match text {
            "Apply" => Some(Operation::Apply),
            "Update" => Some(Operation::Update),
            _ => None,
        }
    }
}

/// Who an entry belongs to. As in the real server, an Update's apiVersion is part of its
/// identity (one entry per version written with) but an applier's is not, so an applier
/// keeps one entry whatever version it applies with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ManagerId {
    manager: String,
    operation: Operation,
    api_version: String,
    subresource: String,
}

impl ManagerId {
    fn apply(manager: &str, subresource: Option<&str>) -> ManagerId {
        ManagerId {
            manager: manager.to_string(),
            operation: Operation::Apply,
            api_version: String::new(),
            subresource: subresource.unwrap_or_default().to_string(),
        }
    }

    fn update(manager: &str, api_version: &str, subresource: Option<&str>) -> ManagerId {
        ManagerId {
            manager: manager.to_string(),
            operation: Operation::Update,
            api_version: api_version.to_string(),
            subresource: subresource.unwrap_or_default().to_string(),
        }
    }

    /// The JSON string the real server keys managers by (BuildManagerIdentifier); conflict
    /// messages list managers sorted by it.
    fn identifier(&self) -> String {
        let mut object = Map::new();
        put_nonempty(&mut object, "manager", &self.manager);
        put_nonempty(&mut object, "operation", self.operation.as_str());
        put_nonempty(&mut object, "apiVersion", &self.api_version);
        put_nonempty(&mut object, "subresource", &self.subresource);
        Value::Object(object).to_string()
    }

    /// How the real server names a manager in conflict messages (printManager).
    fn display(&self) -> String {
        let mut text = Value::from(self.manager.as_str()).to_string();
        if !self.subresource.is_empty() {
            let subresource = Value::from(self.subresource.as_str());
            text.push_str(&format!(" with subresource {subresource}"));
        }
        if self.operation == Operation::Update {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }
}

/// Mirrors Go's `omitempty` on string fields.
fn put_nonempty(object: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        object.insert(key.to_string(), Value::from(value));
    }
}

#[derive(Clone, Debug, PartialEq)]
struct ManagerEntry {
    api_version: String,
    time: Option<String>,
    set: FieldSet,
}

type Managers = BTreeMap<ManagerId, ManagerEntry>;

/// Reads an object's managedFields. Entries that are not FieldsV1 or have an unknown
/// operation are dropped; entries sharing an identity are merged.
fn read_managers(object: &Value) -> Managers {
    let mut managers = Managers::new();
    let entries = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array);
    for raw in entries.into_iter().flatten() {
        if let Some((id, entry)) = parse_entry(raw) {
            add_entry(&mut managers, id, entry);
        }
    }
    managers
}

fn parse_entry(raw: &Value) -> Option<(ManagerId, ManagerEntry)> {
    let text = |key: &str| raw.get(key).and_then(Value::as_str);
    let operation = Operation::parse(text("operation")?)?;
    if text("fieldsType").is_some_and(|kind| kind != "FieldsV1") {
        return None;
    }
    let api_version = text("apiVersion").unwrap_or_default();
    let manager = text("manager").unwrap_or_default();
    let subresource = text("subresource").filter(|s| !s.is_empty());
    let id = match operation {
        Operation::Apply => ManagerId::apply(manager, subresource),
        Operation::Update => ManagerId::update(manager, api_version, subresource),
    };
    let entry = ManagerEntry {
        api_version: api_version.to_string(),
        time: text("time").map(str::to_string),
        set: raw.get("fieldsV1").map(decode_fields).unwrap_or_default(),
    };
    Some((id, entry))
}

fn add_entry(managers: &mut Managers, id: ManagerId, entry: ManagerEntry) {
    match managers.entry(id) {
        Entry::Vacant(slot) => {
            slot.insert(entry);
        }
        Entry::Occupied(mut slot) => {
            let existing = slot.get_mut();
            existing.set.extend(&entry.set);
            existing.time = existing.time.take().max(entry.time);
        }
    }
}

/// Writes managedFields in the real server's order (Apply before Update, then oldest
/// first, then by manager, apiVersion and subresource), or removes it when nothing is
/// owned.
fn write_managers(object: &mut Value, managers: &Managers) {
    let mut entries: Vec<_> = managers
        .iter()
        .filter(|(_, entry)| !entry.set.is_empty())
        .collect();
    entries.sort_by_key(|(id, entry)| {
        (
            id.operation,
            entry.time.clone().unwrap_or_default(),
            id.manager.clone(),
            entry.api_version.clone(),
            id.subresource.clone(),
        )
    });
    let list: Vec<Value> = entries
        .into_iter()
        .map(|(id, entry)| encode_entry(id, entry))
        .collect();
    let Some(root) = object.as_object_mut() else {
        return;
    };
    if list.is_empty() {
        if let Some(Value::Object(metadata)) = root.get_mut("metadata") {
            metadata.shift_remove("managedFields");
        }
        return;
    }
    set_managed_fields(object, list);
}

fn set_managed_fields(object: &mut Value, entries: Vec<Value>) {
    let Some(root) = object.as_object_mut() else {
        return;
    };
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(metadata) = metadata {
        metadata.insert("managedFields".to_string(), Value::Array(entries));
    }
}

/// One entry with its keys in the order of Go's ManagedFieldsEntry.
fn encode_entry(id: &ManagerId, entry: &ManagerEntry) -> Value {
    entry_value(
        id,
        &entry.api_version,
        entry.time.as_deref(),
        encode_fields(&entry.set),
    )
}

fn entry_value(id: &ManagerId, api_version: &str, time: Option<&str>, fields: Value) -> Value {
    let mut object = Map::new();
    object.insert("manager".into(), Value::from(id.manager.as_str()));
    object.insert("operation".into(), Value::from(id.operation.as_str()));
    object.insert("apiVersion".into(), Value::from(api_version));
    if let Some(time) = time {
        object.insert("time".into(), Value::from(time));
    }
    object.insert("fieldsType".into(), Value::from("FieldsV1"));
    object.insert("fieldsV1".into(), fields);
    if !id.subresource.is_empty() {
        object.insert("subresource".into(), Value::from(id.subresource.as_str()));
    }
    Value::Object(object)
}

fn remove_managed_fields(object: &mut Value) {
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.shift_remove("managedFields");
    }
}

/// A copy without managedFields: they are bookkeeping, never data to merge or compare.
fn without_managed_fields(object: &Value) -> Value {
    let mut copy = object.clone();
    remove_managed_fields(&mut copy);
    copy
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

// ---------------------------------------------------------------------------------------
// Walking objects
// ---------------------------------------------------------------------------------------

/// The current path during a walk, plus where list semantics come from.
struct Walk<'a> {
    lists: &'a dyn ListTypes,
    path: Vec<PathElement>,
}

impl<'a> Walk<'a> {
    fn new(lists: &'a dyn ListTypes) -> Walk<'a> {
        Walk {
            lists,
            path: Vec::new(),
        }
    }

    fn descend<R>(&mut self, element: PathElement, visit: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push(element);
        let result = visit(self);
        self.path.pop();
        result
    }

    /// Whether `name` under the current path is metadata.managedFields: bookkeeping,
    /// never data to merge or compare.
    fn at_managed_fields(&self, name: &str) -> bool {
        name == "managedFields"
            && matches!(self.path.as_slice(), [only] if *only == PathElement::field("metadata"))
    }

    /// The type of the list at the current path.
    fn list_type(&self) -> ListType {
        list_type_at(self.lists, &self.path)
    }
}

/// ListTypes names a list by its field names from the root, list items left out.
fn list_type_at(lists: &dyn ListTypes, path: &[PathElement]) -> ListType {
    let names: Vec<&str> = path
        .iter()
        .filter_map(|element| match element {
            PathElement::Field(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    lists.list_type(&names)
}

/// The element naming a list item: its key fields in a map list (those present: the
/// caller defaults missing keys), its value in a set, its position otherwise.
fn item_element(item: &Value, list_type: &ListType, index: usize) -> PathElement {
    match (list_type, item.as_object()) {
        (ListType::Map(keys), Some(object)) => PathElement::key(
            keys.iter()
                .filter_map(|key| object.get(key).map(|value| (key.clone(), value.clone()))),
        ),
        (ListType::Atomic, _) => PathElement::Index(index),
        _ => PathElement::Value(item.clone()),
    }
}

/// Items with their elements. A repeated element keeps only its first item, as in SMD.
fn keyed_items<'v>(items: &'v [Value], list_type: &ListType) -> Vec<(PathElement, &'v Value)> {
    let mut seen = BTreeSet::new();
    items
        .iter()
        .enumerate()
        .map(|(index, item)| (item_element(item, list_type, index), item))
        .filter(|(element, _)| seen.insert(element.clone()))
        .collect()
}

fn position(items: &[Value], element: &PathElement, list_type: &ListType) -> Option<usize> {
    (0..items.len()).find(|&index| item_element(&items[index], list_type, index) == *element)
}

/// The value at `path`, if the object has it.
fn locate_mut<'v>(
    root: &'v mut Value,
    path: &[PathElement],
    lists: &dyn ListTypes,
) -> Option<&'v mut Value> {
    let mut current = root;
    for (depth, element) in path.iter().enumerate() {
        current = match (current, element) {
            (Value::Object(object), PathElement::Field(name)) => object.get_mut(name)?,
            (Value::Array(items), element) => {
                let list_type = list_type_at(lists, &path[..depth]);
                let index = position(items, element, &list_type)?;
                &mut items[index]
            }
            _ => return None,
        };
    }
    Some(current)
}

/// Removes the field or list item at `path` (with everything under it), if present.
fn remove_path(root: &mut Value, path: &[PathElement], lists: &dyn ListTypes) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    if is_key_field(parent_path.last(), last) {
        // A map-list item without its key is invalid; the item goes or stays whole.
        return;
    }
    match (locate_mut(root, parent_path, lists), last) {
        (Some(Value::Object(object)), PathElement::Field(name)) => {
            object.shift_remove(name);
        }
        (Some(Value::Array(items)), element) => {
            let list_type = list_type_at(lists, parent_path);
            if let Some(index) = position(items, element, &list_type) {
                items.remove(index);
            }
        }
        _ => {}
    }
}

fn is_key_field(parent: Option<&PathElement>, element: &PathElement) -> bool {
    match (parent, element) {
        (Some(PathElement::Key(fields)), PathElement::Field(name)) => {
            fields.iter().any(|(key, _)| key == name)
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// What an applied configuration owns
// ---------------------------------------------------------------------------------------

/// The fields an applied configuration sets (SMD's ToFieldSet): leaves, atomic lists,
/// set values and map-list items. Objects and non-atomic lists themselves are not owned,
/// so an applier never holds an object it only passes through.
fn config_fields(walk: &mut Walk, value: &Value, set: &mut FieldSet) {
    match value {
        Value::Object(object) => {
            for (name, child) in object {
                walk.descend(PathElement::field(name), |walk| {
                    config_fields(walk, child, set)
                });
            }
        }
        Value::Array(items) => {
            let list_type = walk.list_type();
            if list_type == ListType::Atomic {
                set.insert(walk.path.clone());
                return;
            }
            for (element, item) in keyed_items(items, &list_type) {
                walk.descend(element, |walk| {
                    config_fields(walk, item, set);
                    set.insert(walk.path.clone());
                });
            }
        }
        // A null is owned too: the applier manages that the field stays unset.
        _ => set.insert(walk.path.clone()),
    }
}

/// The fields `config` owns, minus those nobody may own.
fn applied_fields(config: &Value, lists: &dyn ListTypes) -> FieldSet {
    let mut set = FieldSet::new();
    config_fields(&mut Walk::new(lists), config, &mut set);
    set.difference(&untracked())
}

// ---------------------------------------------------------------------------------------
// Comparing objects
// ---------------------------------------------------------------------------------------

/// What changed between two versions of an object (SMD's Compare). A node added or
/// removed whole is listed together with everything under it; a changed leaf is modified.
#[derive(Default)]
struct Comparison {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
}

impl Comparison {
    fn between(old: &Value, new: &Value, lists: &dyn ListTypes) -> Comparison {
        let mut comparison = Comparison::default();
        comparison.present(&mut Walk::new(lists), old, new);
        comparison
    }

    /// Fields the new version set: those another writer loses.
    fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }

    fn node(&mut self, walk: &mut Walk, old: Option<&Value>, new: Option<&Value>) {
        match (old, new) {
            (Some(old), Some(new)) => self.present(walk, old, new),
            (None, Some(new)) => subtree(walk, new, &mut self.added),
            (Some(old), None) => subtree(walk, old, &mut self.removed),
            (None, None) => {}
        }
    }

    fn present(&mut self, walk: &mut Walk, old: &Value, new: &Value) {
        // Nothing below an unchanged node can differ; most of an update is unchanged.
        if old == new {
            return;
        }
        match (old, new) {
            // Two empty objects or lists are leaves, as in SMD, and fall through.
            (Value::Object(o), Value::Object(n)) if !(o.is_empty() && n.is_empty()) => {
                self.objects(walk, o, n)
            }
            (Value::Array(o), Value::Array(n))
                if !(o.is_empty() && n.is_empty()) && walk.list_type() != ListType::Atomic =>
            {
                self.lists(walk, o, n)
            }
            _ if old == new => {}
            _ => {
                // A leaf changed, or a node changed kind: whatever hung below it is gone.
                self.modified.insert(walk.path.clone());
                descendants(walk, old, &mut self.removed);
                descendants(walk, new, &mut self.added);
            }
        }
    }

    fn objects(&mut self, walk: &mut Walk, old: &Map<String, Value>, new: &Map<String, Value>) {
        for (name, old_child) in old {
            if walk.at_managed_fields(name) {
                continue;
            }
            walk.descend(PathElement::field(name), |walk| {
                self.node(walk, Some(old_child), new.get(name))
            });
        }
        for (name, new_child) in new.iter().filter(|(name, _)| !old.contains_key(*name)) {
            if walk.at_managed_fields(name) {
                continue;
            }
            walk.descend(PathElement::field(name), |walk| {
                self.node(walk, None, Some(new_child))
            });
        }
    }

    fn lists(&mut self, walk: &mut Walk, old: &[Value], new: &[Value]) {
        let list_type = walk.list_type();
        let old: BTreeMap<_, _> = keyed_items(old, &list_type).into_iter().collect();
        let new: BTreeMap<_, _> = keyed_items(new, &list_type).into_iter().collect();
        for (element, old_item) in &old {
            walk.descend(element.clone(), |walk| {
                self.node(walk, Some(old_item), new.get(element).copied())
            });
        }
        for (element, new_item) in new.iter().filter(|(e, _)| !old.contains_key(*e)) {
            walk.descend(element.clone(), |walk| {
                self.node(walk, None, Some(new_item))
            });
        }
    }
}

/// The current path and every path below it.
fn subtree(walk: &mut Walk, value: &Value, set: &mut FieldSet) {
    set.insert(walk.path.clone());
    descendants(walk, value, set);
}

/// Every path strictly below the current one.
fn descendants(walk: &mut Walk, value: &Value, set: &mut FieldSet) {
    match value {
        Value::Object(object) => {
            for (name, child) in object {
                walk.descend(PathElement::field(name), |walk| subtree(walk, child, set));
            }
        }
        Value::Array(items) => {
            let list_type = walk.list_type();
            if list_type == ListType::Atomic {
                return;
            }
            for (element, item) in keyed_items(items, &list_type) {
                walk.descend(element, |walk| subtree(walk, item, set));
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Merging an applied configuration
// ---------------------------------------------------------------------------------------

/// Merges `applied` over `live` (SMD's Merge, applied side wins): objects merge by field,
/// map and set lists by item, everything else (atomic lists, scalars, nulls) is replaced.
fn merge(walk: &mut Walk, live: Option<&Value>, applied: &Value) -> Value {
    match (live, applied) {
        (Some(Value::Object(live)), Value::Object(applied)) => {
            Value::Object(merge_objects(walk, live, applied))
        }
        (Some(Value::Array(live)), Value::Array(applied)) => {
            Value::Array(merge_lists(walk, live, applied))
        }
        _ => applied.clone(),
    }
}

/// Live fields keep their order; new fields follow in applied order.
fn merge_objects(
    walk: &mut Walk,
    live: &Map<String, Value>,
    applied: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, live_value) in live {
        let value = match applied.get(name) {
            Some(applied_value) => walk.descend(PathElement::field(name), |walk| {
                merge(walk, Some(live_value), applied_value)
            }),
            None => live_value.clone(),
        };
        out.insert(name.clone(), value);
    }
    for (name, value) in applied {
        if !live.contains_key(name) {
            out.insert(name.clone(), value.clone());
        }
    }
    out
}

fn merge_lists(walk: &mut Walk, live: &[Value], applied: &[Value]) -> Vec<Value> {
    let list_type = walk.list_type();
    if list_type == ListType::Atomic || (live.is_empty() && applied.is_empty()) {
        return applied.to_vec();
    }
    let live = keyed_items(live, &list_type);
    let applied = keyed_items(applied, &list_type);
    let order = merged_order(&elements(&live), &elements(&applied));
    order
        .into_iter()
        .map(|slot| match slot {
            Slot::Live(l) => live[l].1.clone(),
            Slot::Applied(a) => applied[a].1.clone(),
            Slot::Both(l, a) => walk.descend(applied[a].0.clone(), |walk| {
                merge(walk, Some(live[l].1), applied[a].1)
            }),
        })
        .collect()
}

fn elements(items: &[(PathElement, &Value)]) -> Vec<PathElement> {
    items.iter().map(|(element, _)| element.clone()).collect()
}

/// Where a merged list item comes from.
#[derive(Debug, PartialEq)]
enum Slot {
    Live(usize),
    Applied(usize),
    Both(usize, usize),
}

/// The order of a merged list, as SMD computes it: items only in the live list keep
/// their place, items in the applied list follow the applied order, and new items are
/// placed where the applied list puts them relative to the items around them.
fn merged_order(live: &[PathElement], applied: &[PathElement]) -> Vec<Slot> {
    let live_index: BTreeMap<&PathElement, usize> =
        live.iter().enumerate().map(|(i, e)| (e, i)).collect();
    let in_applied: BTreeSet<&PathElement> = applied.iter().collect();
    let mut shared = applied.iter().filter(|e| live_index.contains_key(e));
    let mut next_shared = shared.next();
    let (mut l, mut a) = (0, 0);
    let mut out = Vec::new();
    while l < live.len() || a < applied.len() {
        if l < live.len() && a < applied.len() {
            if live[l] == applied[a] {
                out.push(Slot::Both(l, a));
                (l, a) = (l + 1, a + 1);
                next_shared = shared.next();
                continue;
            }
            // A shared item out of applied order is emitted when the applied list gets to it.
            if in_applied.contains(&live[l]) && next_shared.is_some_and(|n| *n != live[l]) {
                l += 1;
                continue;
            }
        }
        if l < live.len() && !in_applied.contains(&live[l]) {
            out.push(Slot::Live(l));
            l += 1;
        } else if a < applied.len() {
            out.push(match live_index.get(&applied[a]) {
                Some(&live_at) => Slot::Both(live_at, a),
                None => Slot::Applied(a),
            });
            if next_shared == Some(&applied[a]) {
                next_shared = shared.next();
            }
            a += 1;
        } else {
            // A shared live item already emitted in applied order.
            l += 1;
        }
    }
    out
}

/// Removes what the applier owned last time but no longer applies, unless some manager
/// (the applier's new configuration included) still owns it.
fn prune(object: &mut Value, managers: &Managers, last: &FieldSet, lists: &dyn ListTypes) {
    let owned = managers
        .values()
        .fold(FieldSet::new(), |owned, entry| owned.union(&entry.set));
    // Parents come first: removing an item takes its fields with it, while removing an
    // item's key fields first would leave an item nobody can find any more.
    for path in last.difference(&owned).iter() {
        remove_path(object, path, lists);
    }
}

/// A null in an applied configuration means "unset": it takes part in merging and
/// conflict detection as a value, then disappears from the stored object.
fn drop_applied_nulls(walk: &mut Walk, out: &mut Value, config: &Value) {
    match (out, config) {
        (Value::Object(out), Value::Object(config)) => {
            for (name, config_value) in config {
                if config_value.is_null() {
                    out.shift_remove(name);
                } else if let Some(out_value) = out.get_mut(name) {
                    walk.descend(PathElement::field(name), |walk| {
                        drop_applied_nulls(walk, out_value, config_value)
                    });
                }
            }
        }
        (Value::Array(out), Value::Array(config)) => {
            let list_type = walk.list_type();
            if !matches!(list_type, ListType::Map(_)) {
                return;
            }
            for (element, config_item) in keyed_items(config, &list_type) {
                if let Some(index) = position(out, &element, &list_type) {
                    let out_item = &mut out[index];
                    walk.descend(element, |walk| {
                        drop_applied_nulls(walk, out_item, config_item)
                    });
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Ownership changes
// ---------------------------------------------------------------------------------------

/// Takes `lost` away from every manager but `keep` and drops managers left with nothing.
fn release(managers: &mut Managers, keep: Option<&ManagerId>, lost: &FieldSet) {
    for (id, entry) in managers.iter_mut() {
        if Some(id) != keep {
            entry.set.remove_all(lost);
        }
    }
    managers.retain(|_, entry| !entry.set.is_empty());
}

/// Fields other managers own that the apply changes, per manager in the real server's
/// order.
fn find_conflicts(managers: &Managers, applier: &ManagerId, changed: &FieldSet) -> Vec<Conflict> {
    let mut owners: Vec<(&ManagerId, FieldSet)> = managers
        .iter()
        .filter(|(id, _)| *id != applier)
        .map(|(id, entry)| (id, entry.set.intersection(changed)))
        .filter(|(_, set)| !set.is_empty())
        .collect();
    owners.sort_by_cached_key(|(id, _)| id.identifier());
    let mut conflicts = Vec::new();
    for (id, set) in &owners {
        for path in set.paths_in_visit_order() {
            conflicts.push(conflict(id, path));
        }
    }
    conflicts
}

fn conflict(owner: &ManagerId, path: &[PathElement]) -> Conflict {
    let nonempty = |text: &str| Some(text.to_string()).filter(|t| !t.is_empty());
    Conflict {
        manager: owner.manager.clone(),
        path: path_string(path),
        api_version: match owner.operation {
            Operation::Update => Some(owner.api_version.clone()),
            Operation::Apply => None,
        },
        subresource: nonempty(&owner.subresource),
    }
}

/// Gives an object that never had managedFields an owner for everything it holds, like
/// the real server does before the first apply, so appliers conflict with those fields.
fn credit_existing_fields(
    live: &Value,
    managers: &mut Managers,
    lists: &dyn ListTypes,
    api_version: &str,
    now: &str,
) {
    let set = Comparison::between(&empty_object(), live, lists)
        .added
        .difference(&untracked());
    if set.is_empty() {
        return;
    }
    let entry = ManagerEntry {
        api_version: api_version.to_string(),
        time: Some(now.to_string()),
        set,
    };
    managers.insert(
        ManagerId::update(BEFORE_FIRST_APPLY, api_version, None),
        entry,
    );
}

/// Moves the applier's timestamp only when the apply did something, as the real server.
fn stamp_applier(
    managers: &mut Managers,
    id: &ManagerId,
    previous: Option<&ManagerEntry>,
    object_changed: bool,
    now: &str,
) {
    let Some(entry) = managers.get_mut(id) else {
        return;
    };
    let unchanged = previous
        .is_some_and(|p| p.set == entry.set && p.api_version == entry.api_version)
        && entry.time.is_some();
    if object_changed || !unchanged {
        entry.time = Some(now.to_string());
    }
}

// ---------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------

/// Server-side apply of `applied` (a partial object: apiVersion, kind, metadata.name, and
/// the fields the manager wants to own) by `manager` over `live` (None = create). Returns
/// the new full object with metadata.managedFields updated: the manager now owns exactly
/// the fields in `applied`; fields it owned before but no longer applies are removed from
/// the object unless another manager also owns them; fields owned by another manager with
/// a different value are conflicts (Err) unless `force`, in which case ownership moves to
/// this manager. Same value ⇒ shared ownership, no conflict.
// The signature is the one the API server wires in; bundling the arguments would only
// move them around.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    lists: &dyn ListTypes,
    api_version: &str,
    now: &str,
    subresource: Option<&str>,
) -> Result<Value, ApplyError> {
    let live_object = live
        .map(without_managed_fields)
        .unwrap_or_else(empty_object);
    let mut managers = live.map(read_managers).unwrap_or_default();
    if live.is_some() && managers.is_empty() {
        credit_existing_fields(&live_object, &mut managers, lists, api_version, now);
    }
    let config = without_managed_fields(applied);
    let id = ManagerId::apply(manager, subresource);
    let previous = replace_applied_set(&mut managers, &id, &config, lists, api_version);

    let mut merged = merge(&mut Walk::new(lists), Some(&live_object), &config);
    if let Some(previous) = &previous {
        prune(&mut merged, &managers, &previous.set, lists);
    }
    take_ownership(&mut managers, &id, &live_object, &merged, force, lists).map_err(
        |conflicts| ApplyError {
            conflicts,
            api_version: api_version.to_string(),
        },
    )?;
    drop_applied_nulls(&mut Walk::new(lists), &mut merged, &config);
    let object_changed = merged != live_object;
    stamp_applier(&mut managers, &id, previous.as_ref(), object_changed, now);
    write_managers(&mut merged, &managers);
    Ok(merged)
}

/// Makes the applier own exactly what `config` sets; returns its previous entry, whose
/// set tells what it gave up.
fn replace_applied_set(
    managers: &mut Managers,
    id: &ManagerId,
    config: &Value,
    lists: &dyn ListTypes,
    api_version: &str,
) -> Option<ManagerEntry> {
    let previous = managers.remove(id);
    let entry = ManagerEntry {
        api_version: api_version.to_string(),
        time: previous.as_ref().and_then(|p| p.time.clone()),
        set: applied_fields(config, lists),
    };
    managers.insert(id.clone(), entry);
    previous
}

/// Fails with the conflicts unless `force` or there are none; otherwise the other
/// managers lose what the apply changed and what it removed.
fn take_ownership(
    managers: &mut Managers,
    applier: &ManagerId,
    live: &Value,
    merged: &Value,
    force: bool,
    lists: &dyn ListTypes,
) -> Result<(), Vec<Conflict>> {
    let comparison = Comparison::between(live, merged, lists);
    let changed = comparison.changed();
    let conflicts = find_conflicts(managers, applier, &changed);
    if !force && !conflicts.is_empty() {
        return Err(conflicts);
    }
    release(managers, Some(applier), &changed.union(&comparison.removed));
    Ok(())
}

/// Records a non-apply write (create/update/patch) by `manager`: the fields that changed
/// between `old` and `new` become owned by manager (operation "Update"), and are removed
/// from other managers' sets (an Update does not conflict, it takes over). Mutates new's
/// metadata.managedFields; whatever managedFields the client sent in `new` is replaced.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    lists: &dyn ListTypes,
    api_version: &str,
    now: &str,
    subresource: Option<&str>,
) {
    remove_managed_fields(new);
    let Some(old_object) = old else {
        let id = ManagerId::update(manager, api_version, subresource);
        record_create(new, &id, lists, api_version, now);
        return;
    };
    let mut managers = read_managers(old_object);
    let comparison = Comparison::between(old_object, new, lists);
    let changed = comparison.changed();
    // Like the real server, take the changes from every entry, the writer's own included,
    // then add them to the writer's entry: what it wrote before and no longer holds (a
    // removed field) is gone from it too.
    release(&mut managers, None, &changed.union(&comparison.removed));
    let owned = changed.difference(&untracked());
    if !owned.is_empty() {
        let id = ManagerId::update(manager, api_version, subresource);
        let entry = managers.entry(id).or_insert_with(|| ManagerEntry {
            api_version: api_version.to_string(),
            time: None,
            set: FieldSet::new(),
        });
        entry.set.extend(&owned);
        entry.time = Some(now.to_string());
    }
    write_managers(new, &managers);
}

/// A create: the writer owns every field and nobody else owns anything, so its set is
/// built as a trie in one walk (what `Comparison` against an empty object would list,
/// less the untracked paths), without sets of whole paths.
fn record_create(
    new: &mut Value,
    id: &ManagerId,
    lists: &dyn ListTypes,
    api_version: &str,
    now: &str,
) {
    let mut owned = Trie::default();
    collect_created(&mut Walk::new(lists), new, &mut owned);
    for path in UNTRACKED {
        owned.unmark(path);
    }
    owned.prune();
    if owned.children.is_empty() {
        return;
    }
    let entry = entry_value(id, api_version, Some(now), owned.encode());
    set_managed_fields(new, vec![entry]);
}

/// Every node below `value` as a member of `node`, with `descendants`' list semantics.
fn collect_created(walk: &mut Walk, value: &Value, node: &mut Trie) {
    let mut add = |walk: &mut Walk, element: PathElement, child: &Value| {
        let slot = node.children.entry(element.clone()).or_default();
        slot.member = true;
        walk.descend(element, |walk| collect_created(walk, child, slot));
    };
    match value {
        Value::Object(object) => {
            for (name, child) in object {
                if !walk.at_managed_fields(name) {
                    add(walk, PathElement::field(name), child);
                }
            }
        }
        Value::Array(items) => {
            let list_type = walk.list_type();
            if list_type != ListType::Atomic {
                for (element, item) in keyed_items(items, &list_type) {
                    add(walk, element, item);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The create fast path lists exactly what comparing with an empty object does.
    #[test]
    fn a_create_owns_what_a_comparison_with_nothing_lists() {
        let objects = [
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default", "uid": "u",
                             "labels": {"app": "web"}, "finalizers": ["a", "b"],
                             "managedFields": [{"manager": "x"}]},
                "spec": {"replicas": 2, "selector": {},
                         "template": {"spec": {"containers": [
                            {"name": "c", "image": "i", "ports": [{"containerPort": 80}], "args": ["x"]},
                            {"name": "c", "image": "dup"}]}}},
                "status": {"conditions": [], "x": {"y": null}}}),
            json!({"metadata": {"name": "only"}}),
            json!({"metadata": {"name": {"odd": 1}}, "kind": "K"}),
        ];
        for object in objects {
            let mut fast = object.clone();
            record_update(None, &mut fast, "m", &TestLists, "apps/v1", T1, None);
            let mut slow = object.clone();
            record_update(
                Some(&json!({})),
                &mut slow,
                "m",
                &TestLists,
                "apps/v1",
                T1,
                None,
            );
            assert_eq!(fast, slow, "for {object}");
        }
    }

    const T1: &str = "2024-05-01T10:00:00Z";
    const T2: &str = "2024-05-01T11:00:00Z";
    const T3: &str = "2024-05-01T12:00:00Z";

    /// containers and ports are keyed, finalizers a set, every other list atomic.
    struct TestLists;

    impl ListTypes for TestLists {
        fn list_type(&self, path: &[&str]) -> ListType {
            match path.last().copied() {
                Some("containers") => ListType::Map(vec!["name".into()]),
                Some("ports") => ListType::Map(vec!["protocol".into(), "containerPort".into()]),
                Some("finalizers") => ListType::Set,
                _ => ListType::Atomic,
            }
        }
    }

    fn deployment(spec: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": spec,
        })
    }

    fn ssa(live: Option<&Value>, applied: &Value, manager: &str, now: &str) -> Value {
        apply(
            live, applied, manager, false, &TestLists, "apps/v1", now, None,
        )
        .unwrap_or_else(|e| panic!("apply by {manager} failed: {}", e.message()))
    }

    fn ssa_err(live: &Value, applied: &Value, manager: &str) -> ApplyError {
        apply(
            Some(live),
            applied,
            manager,
            false,
            &TestLists,
            "apps/v1",
            T3,
            None,
        )
        .expect_err("apply should conflict")
    }

    fn entries(object: &Value) -> Vec<Value> {
        object["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The fieldsV1 of the entry of `manager`/`operation`, decoded.
    fn owned(object: &Value, manager: &str, operation: &str) -> Option<FieldSet> {
        entries(object)
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == operation)
            .map(|e| decode_fields(&e["fieldsV1"]))
    }

    fn path(text: &[&str]) -> Vec<PathElement> {
        text.iter()
            .map(|t| PathElement::parse(t).unwrap())
            .collect()
    }

    fn owns(object: &Value, manager: &str, operation: &str, p: &[&str]) -> bool {
        owned(object, manager, operation).is_some_and(|set| set.contains(&path(p)))
    }

    #[test]
    fn create_by_apply_owns_exactly_the_applied_fields() {
        let applied = deployment(json!({
            "replicas": 2,
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}]}},
        }));
        let mut applied = applied;
        applied["metadata"]["labels"] = json!({"app": "web"});
        let created = ssa(None, &applied, "kubectl", T1);

        assert_eq!(without_managed_fields(&created), applied);
        assert_eq!(
            entries(&created),
            vec![json!({
                "manager": "kubectl",
                "operation": "Apply",
                "apiVersion": "apps/v1",
                "time": T1,
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:template": {"f:spec": {"f:containers": {
                            "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}
                        }}}
                    }
                }
            })]
        );
        // Key order inside the entry is Go's ManagedFieldsEntry order.
        let keys: Vec<_> = entries(&created)[0]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            [
                "manager",
                "operation",
                "apiVersion",
                "time",
                "fieldsType",
                "fieldsV1"
            ]
        );
    }

    #[test]
    fn reapplying_without_a_field_removes_it() {
        let mut first = deployment(json!({"replicas": 2, "paused": false}));
        first["metadata"]["labels"] = json!({"app": "web", "tier": "front"});
        let live = ssa(None, &first, "kubectl", T1);

        let mut second = deployment(json!({"replicas": 3}));
        second["metadata"]["labels"] = json!({"app": "web"});
        let updated = ssa(Some(&live), &second, "kubectl", T2);

        assert_eq!(updated["spec"], json!({"replicas": 3}));
        assert_eq!(updated["metadata"]["labels"], json!({"app": "web"}));
        assert!(!owns(&updated, "kubectl", "Apply", &["f:spec", "f:paused"]));
        assert!(!owns(
            &updated,
            "kubectl",
            "Apply",
            &["f:metadata", "f:labels", "f:tier"]
        ));
        assert_eq!(entries(&updated)[0]["time"], T2);
    }

    #[test]
    fn field_dropped_by_one_applier_stays_while_another_owns_it() {
        let live = ssa(
            None,
            &deployment(json!({"replicas": 2, "paused": true})),
            "a",
            T1,
        );
        let live = ssa(Some(&live), &deployment(json!({"paused": true})), "b", T2);
        let live = ssa(Some(&live), &deployment(json!({"replicas": 2})), "a", T3);
        assert_eq!(live["spec"], json!({"replicas": 2, "paused": true}));
        assert!(owns(&live, "b", "Apply", &["f:spec", "f:paused"]));
        assert!(!owns(&live, "a", "Apply", &["f:spec", "f:paused"]));
    }

    #[test]
    fn different_values_from_two_appliers_conflict() {
        let live = ssa(None, &deployment(json!({"replicas": 3})), "a", T1);
        let err = ssa_err(&live, &deployment(json!({"replicas": 5})), "b");
        assert_eq!(
            err.conflicts,
            vec![Conflict {
                manager: "a".into(),
                path: ".spec.replicas".into(),
                api_version: None,
                subresource: None,
            }]
        );
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
        );
        assert_eq!(err.to_string(), err.message());
        assert_eq!(err.conflicts[0].cause_message(), "conflict with \"a\"");
        assert_eq!(err.api_version, "apps/v1");
    }

    #[test]
    fn several_conflicts_are_listed_per_manager() {
        let spec = json!({
            "replicas": 3,
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}]}},
        });
        let live = ssa(None, &deployment(spec), "a", T1);
        let live = ssa(Some(&live), &deployment(json!({"paused": true})), "c", T1);
        let applied = deployment(json!({
            "replicas": 5,
            "paused": false,
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}},
        }));
        let err = ssa_err(&live, &applied, "b");
        assert_eq!(
            err.message(),
            "Apply failed with 3 conflicts: conflicts with \"a\":\n\
             - .spec.replicas\n\
             - .spec.template.spec.containers[name=\"web\"].image\n\
             conflicts with \"c\":\n\
             - .spec.paused"
        );
    }

    #[test]
    fn force_moves_ownership_to_the_applier() {
        let live = ssa(
            None,
            &deployment(json!({"replicas": 3, "paused": true})),
            "a",
            T1,
        );
        let applied = deployment(json!({"replicas": 5}));
        let forced = apply(
            Some(&live),
            &applied,
            "b",
            true,
            &TestLists,
            "apps/v1",
            T2,
            None,
        )
        .unwrap();
        assert_eq!(forced["spec"], json!({"replicas": 5, "paused": true}));
        assert!(owns(&forced, "b", "Apply", &["f:spec", "f:replicas"]));
        assert!(!owns(&forced, "a", "Apply", &["f:spec", "f:replicas"]));
        assert!(owns(&forced, "a", "Apply", &["f:spec", "f:paused"]));

        // a no longer owns replicas, so dropping it from its config leaves b's value.
        let reapplied = ssa(Some(&forced), &deployment(json!({"paused": true})), "a", T3);
        assert_eq!(reapplied["spec"]["replicas"], 5);
    }

    #[test]
    fn forced_apply_drops_a_manager_left_with_nothing() {
        let live = ssa(None, &deployment(json!({"replicas": 3})), "a", T1);
        let applied = deployment(json!({"replicas": 5}));
        let forced = apply(
            Some(&live),
            &applied,
            "b",
            true,
            &TestLists,
            "apps/v1",
            T2,
            None,
        )
        .unwrap();
        let managers: Vec<_> = entries(&forced)
            .iter()
            .map(|e| e["manager"].clone())
            .collect();
        assert_eq!(managers, vec![json!("b")]);
    }

    #[test]
    fn same_value_is_shared_without_conflict() {
        let live = ssa(None, &deployment(json!({"replicas": 3})), "a", T1);
        let shared = ssa(Some(&live), &deployment(json!({"replicas": 3})), "b", T2);
        assert!(owns(&shared, "a", "Apply", &["f:spec", "f:replicas"]));
        assert!(owns(&shared, "b", "Apply", &["f:spec", "f:replicas"]));

        // Either one giving it up leaves the value with the other.
        let dropped = ssa(Some(&shared), &deployment(json!({})), "a", T3);
        assert_eq!(dropped["spec"]["replicas"], 3);
        assert!(owned(&dropped, "a", "Apply").is_none());
    }

    #[test]
    fn client_side_apply_migration_conflicts_with_the_update_manager() {
        let mut object = deployment(json!({
            "replicas": 3,
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}]}},
        }));
        record_update(
            None,
            &mut object,
            "kubectl-client-side-apply",
            &TestLists,
            "apps/v1",
            T1,
            None,
        );
        let applied = deployment(json!({
            "replicas": 5,
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}]}},
        }));
        let err = ssa_err(&object, &applied, "kubectl");
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" \
             using apps/v1: .spec.replicas"
        );
        assert_eq!(err.conflicts[0].api_version.as_deref(), Some("apps/v1"));

        // The same values apply cleanly and are shared with the Update manager.
        let mut same = applied.clone();
        same["spec"]["replicas"] = json!(3);
        let migrated = ssa(Some(&object), &same, "kubectl", T2);
        let image = [
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"web\"}",
            "f:image",
        ];
        assert!(owns(&migrated, "kubectl", "Apply", &image));
        assert!(owns(
            &migrated,
            "kubectl-client-side-apply",
            "Update",
            &image
        ));
    }

    #[test]
    fn removing_a_list_item_owned_only_by_the_applier() {
        let containers =
            |items: Value| deployment(json!({"template": {"spec": {"containers": items}}}));
        let two = containers(json!([
            {"name": "web", "image": "nginx:1"},
            {"name": "sidecar", "image": "envoy:1"},
        ]));
        let live = ssa(None, &two, "kubectl", T1);
        let one = containers(json!([{"name": "web", "image": "nginx:1"}]));
        let updated = ssa(Some(&live), &one, "kubectl", T2);
        assert_eq!(
            updated["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "nginx:1"}])
        );
        let fields = &entries(&updated)[0]["fieldsV1"];
        assert_eq!(
            fields["f:spec"]["f:template"]["f:spec"]["f:containers"],
            json!({"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}})
        );
    }

    #[test]
    fn list_item_shared_with_another_applier_survives() {
        let containers =
            |items: Value| deployment(json!({"template": {"spec": {"containers": items}}}));
        let sidecar = json!({"name": "sidecar", "image": "envoy:1"});
        let web = json!({"name": "web", "image": "nginx:1"});
        let live = ssa(None, &containers(json!([web, sidecar])), "a", T1);
        let live = ssa(Some(&live), &containers(json!([sidecar])), "b", T1);
        let live = ssa(Some(&live), &containers(json!([web])), "a", T2);
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"],
            json!([web, sidecar])
        );
    }

    #[test]
    fn map_lists_merge_by_key_and_keep_live_order() {
        let containers =
            |items: Value| deployment(json!({"template": {"spec": {"containers": items}}}));
        let live = ssa(
            None,
            &containers(json!([{"name": "a", "image": "1"}, {"name": "b", "image": "1"}])),
            "one",
            T1,
        );
        let applied = containers(json!([{"name": "c", "image": "2"}, {"name": "b", "env": "x"}]));
        let merged = ssa(Some(&live), &applied, "two", T2);
        assert_eq!(
            merged["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "a", "image": "1"},
                {"name": "c", "image": "2"},
                {"name": "b", "image": "1", "env": "x"},
            ])
        );
    }

    #[test]
    fn merged_order_follows_smd() {
        let names = |n: &[&str]| -> Vec<PathElement> {
            n.iter().map(|s| PathElement::Value(json!(s))).collect()
        };
        assert_eq!(
            merged_order(&names(&["a", "b"]), &names(&["b", "a"])),
            vec![Slot::Both(1, 0), Slot::Both(0, 1)]
        );
        assert_eq!(
            merged_order(&names(&["b", "x", "a"]), &names(&["a", "n", "b"])),
            vec![
                Slot::Live(1),
                Slot::Both(2, 0),
                Slot::Applied(1),
                Slot::Both(0, 2)
            ]
        );
        assert_eq!(
            merged_order(&names(&[]), &names(&["n"])),
            vec![Slot::Applied(0)]
        );
    }

    #[test]
    fn set_lists_union_and_drop_values_no_longer_applied() {
        let with_finalizers = |f: Value| {
            let mut object = deployment(json!({}));
            object["metadata"]["finalizers"] = f;
            object
        };
        let live = ssa(None, &with_finalizers(json!(["a.io/x"])), "one", T1);
        let live = ssa(Some(&live), &with_finalizers(json!(["b.io/y"])), "two", T1);
        assert_eq!(live["metadata"]["finalizers"], json!(["a.io/x", "b.io/y"]));
        assert!(owns(
            &live,
            "two",
            "Apply",
            &["f:metadata", "f:finalizers", "v:\"b.io/y\""]
        ));

        let live = ssa(Some(&live), &with_finalizers(json!([])), "one", T2);
        assert_eq!(live["metadata"]["finalizers"], json!(["b.io/y"]));
    }

    #[test]
    fn atomic_lists_are_owned_whole() {
        let args = |a: Value| {
            deployment(json!({"template": {"spec": {"containers": [{"name": "web", "args": a}]}}}))
        };
        let live = ssa(None, &args(json!(["--a", "--b"])), "one", T1);
        let shared = ssa(Some(&live), &args(json!(["--a", "--b"])), "two", T1);
        assert!(owned(&shared, "two", "Apply").is_some());

        let err = ssa_err(&live, &args(json!(["--c"])), "two");
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"one\": \
             .spec.template.spec.containers[name=\"web\"].args"
        );
        let replaced = ssa(Some(&live), &args(json!(["--c"])), "one", T2);
        assert_eq!(
            replaced["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["--c"])
        );
    }

    #[test]
    fn multi_field_keys_are_sorted_and_printed_like_the_real_server() {
        let ports = |port: Value| {
            deployment(json!({"template": {"spec": {"containers": [
                {"name": "web", "ports": [port]}
            ]}}}))
        };
        let port = json!({"containerPort": 80, "protocol": "TCP", "name": "http"});
        let live = ssa(None, &ports(port), "one", T1);
        let fields = &entries(&live)[0]["fieldsV1"];
        let web = &fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"];
        assert!(web["f:ports"]
            .get("k:{\"containerPort\":80,\"protocol\":\"TCP\"}")
            .is_some());

        let renamed = json!({"containerPort": 80, "protocol": "TCP", "name": "web"});
        let err = ssa_err(&live, &ports(renamed), "two");
        assert_eq!(
            err.conflicts[0].path,
            ".spec.template.spec.containers[name=\"web\"].ports[containerPort=80,protocol=\"TCP\"].name"
        );
    }

    #[test]
    fn null_in_applied_config_removes_the_field() {
        let live = ssa(
            None,
            &deployment(json!({"replicas": 3, "paused": true})),
            "a",
            T1,
        );
        let unset = ssa(
            Some(&live),
            &deployment(json!({"replicas": 3, "paused": null})),
            "a",
            T2,
        );
        assert_eq!(unset["spec"], json!({"replicas": 3}));

        // Unsetting a field someone else owns is a change like any other.
        let err = ssa_err(&live, &deployment(json!({"replicas": null})), "b");
        assert_eq!(err.conflicts[0].path, ".spec.replicas");
    }

    #[test]
    fn applying_only_identity_leaves_no_entry() {
        let created = ssa(None, &deployment(json!({"replicas": 1})), "a", T1);
        let touched = ssa(Some(&created), &deployment(json!({"replicas": 1})), "b", T2);
        let again = ssa(Some(&touched), &deployment(json!({})), "b", T3);
        assert!(owned(&again, "b", "Apply").is_none());
        assert!(owned(&again, "a", "Apply").is_some());
    }

    #[test]
    fn noop_apply_keeps_the_timestamp() {
        let live = ssa(None, &deployment(json!({"replicas": 1})), "a", T1);
        let again = ssa(Some(&live), &deployment(json!({"replicas": 1})), "a", T2);
        assert_eq!(entries(&again)[0]["time"], T1);
        assert_eq!(again, live);
    }

    #[test]
    fn apply_to_a_subresource_is_its_own_manager() {
        let live = ssa(None, &deployment(json!({"replicas": 1})), "a", T1);
        let status = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "status": {"replicas": 1}});
        let with_status = apply(
            Some(&live),
            &status,
            "a",
            false,
            &TestLists,
            "apps/v1",
            T2,
            Some("status"),
        )
        .unwrap();
        let all = entries(&with_status);
        assert_eq!(all.len(), 2);
        assert_eq!(all[1]["subresource"], "status");
        assert_eq!(all[1]["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));

        let changed = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "status": {"replicas": 2}});
        let err = ssa_err(&with_status, &changed, "b");
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"a\" with subresource \"status\": \
             .status.replicas"
        );
    }

    #[test]
    fn objects_without_managed_fields_are_credited_before_the_first_apply() {
        let live = deployment(json!({"replicas": 3}));
        let err = ssa_err(&live, &deployment(json!({"replicas": 4})), "kubectl");
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: \
             .spec.replicas"
        );
        let applied = ssa(
            Some(&live),
            &deployment(json!({"replicas": 3})),
            "kubectl",
            T1,
        );
        assert!(owns(
            &applied,
            "before-first-apply",
            "Update",
            &["f:spec", "f:replicas"]
        ));
    }

    #[test]
    fn update_on_create_owns_added_nodes_like_the_real_server() {
        let mut object = json!({
            "apiVersion": "example.io/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "labels": {"app": "w"}, "finalizers": ["example.io/x"],
                         "uid": "1", "resourceVersion": "5", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"size": 1, "template": {}},
        });
        record_update(
            None,
            &mut object,
            "creator",
            &TestLists,
            "example.io/v1",
            T1,
            None,
        );
        assert_eq!(
            entries(&object),
            vec![json!({
                "manager": "creator",
                "operation": "Update",
                "apiVersion": "example.io/v1",
                "time": T1,
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {
                        "f:finalizers": {".": {}, "v:\"example.io/x\"": {}},
                        "f:labels": {".": {}, "f:app": {}},
                    },
                    "f:spec": {".": {}, "f:size": {}, "f:template": {}},
                }
            })]
        );
    }

    #[test]
    fn update_takes_over_changed_fields_and_forgets_removed_ones() {
        let live = ssa(
            None,
            &deployment(json!({"replicas": 3, "paused": true, "minReadySeconds": 5})),
            "applier",
            T1,
        );
        let mut new = live.clone();
        new["spec"]["replicas"] = json!(7);
        new["spec"].as_object_mut().unwrap().shift_remove("paused");
        new["metadata"]["managedFields"] = json!([{"manager": "forged", "operation": "Apply",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
        record_update(
            Some(&live),
            &mut new,
            "scaler",
            &TestLists,
            "apps/v1",
            T2,
            None,
        );

        assert!(owned(&new, "forged", "Apply").is_none());
        assert!(owns(&new, "scaler", "Update", &["f:spec", "f:replicas"]));
        assert!(!owns(&new, "applier", "Apply", &["f:spec", "f:replicas"]));
        assert!(!owns(&new, "applier", "Apply", &["f:spec", "f:paused"]));
        assert!(owns(
            &new,
            "applier",
            "Apply",
            &["f:spec", "f:minReadySeconds"]
        ));
        // Apply entries come first, then Updates.
        let order: Vec<_> = entries(&new).iter().map(|e| e["manager"].clone()).collect();
        assert_eq!(order, vec![json!("applier"), json!("scaler")]);

        // The applier now conflicts with the scaler on replicas.
        let err = ssa_err(
            &new,
            &deployment(json!({"replicas": 3, "minReadySeconds": 5})),
            "applier",
        );
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"scaler\" using apps/v1: .spec.replicas"
        );
    }

    #[test]
    fn update_removing_a_list_item_releases_it_from_appliers() {
        let containers =
            |items: Value| deployment(json!({"template": {"spec": {"containers": items}}}));
        let both = containers(json!([
            {"name": "web", "image": "nginx:1"},
            {"name": "sidecar", "image": "envoy:1"},
        ]));
        let live = ssa(None, &both, "applier", T1);
        let mut edited = containers(json!([{"name": "web", "image": "nginx:1"}]));
        record_update(
            Some(&live),
            &mut edited,
            "editor",
            &TestLists,
            "apps/v1",
            T2,
            None,
        );
        let sidecar = [
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"sidecar\"}",
        ];
        assert!(!owns(&edited, "applier", "Apply", &sidecar));
        // Nothing was added or changed, so the editor gets no entry.
        assert!(owned(&edited, "editor", "Update").is_none());

        // Applying the item again brings it back without a conflict.
        let restored = ssa(Some(&edited), &both, "applier", T3);
        assert_eq!(
            restored["spec"]["template"]["spec"]["containers"][1]["name"],
            "sidecar"
        );
        assert!(owns(&restored, "applier", "Apply", &sidecar));
    }

    #[test]
    fn noop_update_changes_no_entry() {
        let mut object = deployment(json!({"replicas": 1}));
        record_update(None, &mut object, "a", &TestLists, "apps/v1", T1, None);
        let mut same = object.clone();
        record_update(
            Some(&object),
            &mut same,
            "b",
            &TestLists,
            "apps/v1",
            T2,
            None,
        );
        assert_eq!(same, object);
    }

    #[test]
    fn repeated_updates_by_one_manager_share_an_entry_per_api_version() {
        let mut object = deployment(json!({"replicas": 1}));
        record_update(None, &mut object, "a", &TestLists, "apps/v1", T1, None);
        let mut next = object.clone();
        next["spec"]["paused"] = json!(true);
        record_update(
            Some(&object),
            &mut next,
            "a",
            &TestLists,
            "apps/v1",
            T2,
            None,
        );
        let all = entries(&next);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0]["time"], T2);
        assert_eq!(
            all[0]["fieldsV1"],
            json!({"f:spec": {".": {}, "f:paused": {}, "f:replicas": {}}})
        );

        let mut other_version = next.clone();
        other_version["spec"]["minReadySeconds"] = json!(1);
        record_update(
            Some(&next),
            &mut other_version,
            "a",
            &TestLists,
            "apps/v2",
            T3,
            None,
        );
        assert_eq!(entries(&other_version).len(), 2);
    }

    #[test]
    fn duplicate_entries_are_merged_on_read() {
        let mut object = deployment(json!({"replicas": 1, "paused": true}));
        object["metadata"]["managedFields"] = json!([
            {"manager": "a", "operation": "Apply", "apiVersion": "apps/v1", "time": T1,
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "a", "operation": "Apply", "apiVersion": "apps/v1", "time": T2,
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}},
        ]);
        let managers = read_managers(&object);
        assert_eq!(managers.len(), 1);
        let entry = managers.values().next().unwrap();
        assert_eq!(entry.set.len(), 2);
        assert_eq!(entry.time.as_deref(), Some(T2));
    }

    #[test]
    fn fields_v1_round_trips() {
        let wire = json!({
            "f:metadata": {
                "f:finalizers": {".": {}, "v:3": {}, "v:\"a.io/x\"": {}},
                "f:labels": {".": {}, "f:app": {}},
            },
            "f:spec": {
                "f:containers": {
                    "k:{\"name\":\"web\"}": {
                        ".": {},
                        "f:image": {},
                        "f:ports": {
                            "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}}
                        }
                    }
                },
                "f:ids": {"i:0": {}, "i:10": {}},
                "f:replicas": {},
            }
        });
        let set = decode_fields(&wire);
        assert_eq!(set.len(), 12);
        assert!(set.contains(&path(&["f:metadata", "f:labels"])));
        assert!(!set.contains(&path(&["f:metadata"])));
        assert!(set.contains(&path(&["f:spec", "f:ids", "i:10"])));
        let encoded = encode_fields(&set);
        assert_eq!(encoded, wire);
        // Byte for byte too, including key order.
        assert_eq!(encoded.to_string(), wire.to_string());
        assert_eq!(decode_fields(&encoded), set);
    }

    #[test]
    fn key_fields_are_normalised_when_decoding() {
        let unsorted = json!({"k:{\"protocol\":\"TCP\",\"containerPort\":80}": {}});
        let encoded = encode_fields(&decode_fields(&unsorted));
        assert_eq!(
            encoded,
            json!({"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {}})
        );
        assert!(decode_fields(&json!({"x:bad": {}, "f:ok": {}})).contains(&path(&["f:ok"])));
    }

    #[test]
    fn path_elements_order_like_smd() {
        let mut elements = [
            PathElement::Index(0),
            PathElement::Value(json!("b")),
            PathElement::Value(json!(2)),
            PathElement::key([("name".to_string(), json!("x"))]),
            PathElement::field("z"),
            PathElement::field("a"),
            PathElement::Value(json!(true)),
        ];
        elements.sort();
        let encoded: Vec<_> = elements.iter().map(PathElement::encode).collect();
        assert_eq!(
            encoded,
            [
                "f:a",
                "f:z",
                "k:{\"name\":\"x\"}",
                "v:2",
                "v:\"b\"",
                "v:true",
                "i:0"
            ]
        );
        assert_eq!(PathElement::Value(json!(1)), PathElement::Value(json!(1.0)));
    }

    #[test]
    fn conflicts_are_visited_members_first() {
        let mut set = FieldSet::new();
        for p in [
            &["f:spec", "f:template", "f:x"][..],
            &["f:spec", "f:zeta"],
            &["f:spec", "f:alpha"],
        ] {
            set.insert(path(p));
        }
        let order: Vec<String> = set
            .paths_in_visit_order()
            .into_iter()
            .map(|p| path_string(p))
            .collect();
        assert_eq!(order, [".spec.alpha", ".spec.zeta", ".spec.template.x"]);
    }

    #[test]
    fn untracked_metadata_is_never_owned() {
        let mut applied = deployment(json!({"replicas": 1}));
        applied["metadata"]["resourceVersion"] = json!("12");
        applied["metadata"]["uid"] = json!("u");
        applied["metadata"]["generation"] = json!(2);
        let created = ssa(None, &applied, "a", T1);
        assert_eq!(
            entries(&created)[0]["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}}})
        );
    }
}
