//! Strategic merge patch (`application/strategic-merge-patch+json`), applied the way
//! kube-apiserver applies it (`k8s.io/apimachinery/pkg/util/strategicpatch`).
//!
//! Maps merge key by key and `null` deletes a key. Lists merge by their [`ListType`]:
//! atomic lists are replaced, sets of scalars are unioned, and lists of objects are
//! merged item by item on the merge key. The patch may carry directives, which never
//! reach the result:
//!
//! - `$patch: replace | delete | merge` on a map, or as a marker item of a keyed list;
//! - `$retainKeys: [..]` drops the keys of the original map not listed;
//! - `$setElementOrder/<field>: [..]` fixes the order of the merged list `<field>`;
//! - `$deleteFromPrimitiveList/<field>: [..]` removes scalars from the list `<field>`.
//!
//! Error texts follow upstream's (package `mergepatch`), since clients see them.

use super::lists::{ListType, ListTypes};
use serde_json::{Map, Value};

type Object = Map<String, Value>;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList";

const ERR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_SET_ORDER: &str = "invalid patch format of setElementOrder list";
const ERR_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_LIST_OF_LISTS: &str = "lists of lists are not supported";

/// Applies a strategic merge `patch` to `original`, learning how each list merges
/// from `lists`. The `Err` is a message fit for the response body.
pub fn apply_patch(
    original: &Value,
    patch: &Value,
    lists: &dyn ListTypes,
) -> Result<Value, String> {
    let Value::Object(patch) = patch else {
        // What the real server answers when the body does not decode into a map.
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(patch)
        ));
    };
    let original = match original {
        Value::Object(map) => map.clone(),
        _ => Object::new(),
    };
    let mut merger = Merger {
        lists,
        path: Vec::new(),
    };
    merger.merge_map(original, patch).map(Value::Object)
}

/// A `$patch` directive.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Directive {
    Replace,
    Delete,
    Merge,
}

/// Reads the `$patch` directive of a map or list item, if it has one.
fn directive(patch: &Object) -> Result<Option<Directive>, String> {
    let Some(value) = patch.get(DIRECTIVE) else {
        return Ok(None);
    };
    match value.as_str() {
        Some("replace") => Ok(Some(Directive::Replace)),
        Some("delete") => Ok(Some(Directive::Delete)),
        // Upstream rejects `merge`; it is what happens anyway, so accept it as a no-op.
        Some("merge") => Ok(Some(Directive::Merge)),
        _ => Err(format!(
            "unknown patch type: {} in map: {}",
            go_fmt(value),
            go_fmt_map(patch)
        )),
    }
}

/// Whether a patch key is a directive rather than a field; `$setElementOrder/..` and
/// `$deleteFromPrimitiveList/..` are handled by their own passes.
fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ORDER_PREFIX)
        || key.starts_with(DELETE_PRIMITIVE_PREFIX)
}

/// The field a prefixed directive key (`$setElementOrder/containers`) is about.
fn directive_field<'k>(key: &'k str, prefix: &str, err: &str) -> Result<Option<&'k str>, String> {
    match key.strip_prefix(prefix) {
        None => Ok(None),
        Some(rest) => rest
            .strip_prefix('/')
            .map(Some)
            .ok_or_else(|| err.to_owned()),
    }
}

struct Merger<'a> {
    lists: &'a dyn ListTypes,
    /// Field names from the root to the value being merged; list indices are left
    /// out, which is the shape [`ListTypes`] is asked about.
    path: Vec<String>,
}

impl Merger<'_> {
    fn list_type(&self) -> ListType {
        let path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        self.lists.list_type(&path)
    }

    /// Merges the patch map into the original map.
    fn merge_map(&mut self, original: Object, patch: &Object) -> Result<Object, String> {
        let mut original = match directive(patch)? {
            // Replacing is merging into nothing: nested directives and nulls still
            // get resolved instead of leaking into the object.
            Some(Directive::Replace) => Object::new(),
            // Upstream leaves an empty map behind rather than removing the field.
            Some(Directive::Delete) => return Ok(Object::new()),
            Some(Directive::Merge) | None => original,
        };
        retain_keys(&mut original, patch)?;
        let ordered = self.apply_element_orders(&mut original, patch)?;
        for (key, value) in patch {
            if !is_directive_key(key) && !ordered.contains(key) {
                self.merge_field(&mut original, key, value)?;
            }
        }
        // Deletions go last so they also see items a merge above brought in.
        delete_from_primitive_lists(&mut original, patch)?;
        Ok(original)
    }

    /// Merges one field of the patch into `target`, keeping the field's position.
    fn merge_field(&mut self, target: &mut Object, key: &str, patch: &Value) -> Result<(), String> {
        let existing = target.get_mut(key).map(Value::take);
        self.path.push(key.to_owned());
        let merged = self.merge_value(existing, patch)?;
        self.path.pop();
        match merged {
            Some(value) => target.insert(key.to_owned(), value),
            None => target.shift_remove(key),
        };
        Ok(())
    }

    /// Merges a patch value into the original one (`None` when the field is new);
    /// returns `None` when the field is to be removed.
    fn merge_value(
        &mut self,
        original: Option<Value>,
        patch: &Value,
    ) -> Result<Option<Value>, String> {
        match (original, patch) {
            (_, Value::Null) => Ok(None),
            (Some(Value::Object(original)), Value::Object(patch)) => self
                .merge_map(original, patch)
                .map(|m| Some(Value::Object(m))),
            (_, Value::Object(patch)) => self.new_map(patch),
            (Some(Value::Array(original)), Value::Array(patch)) => self
                .merge_list(original, patch)
                .map(|l| Some(Value::Array(l))),
            // A new list (or one replacing a non-list) is merged into an empty one so
            // its directives are resolved the same way.
            (_, Value::Array(patch)) => self
                .merge_list(Vec::new(), patch)
                .map(|l| Some(Value::Array(l))),
            (_, scalar) => Ok(Some(scalar.clone())),
        }
    }

    /// A patch map with no map to merge into: `$patch: delete` leaves the field out,
    /// anything else is merged into an empty map to strip directives and nulls.
    fn new_map(&mut self, patch: &Object) -> Result<Option<Value>, String> {
        if directive(patch)? == Some(Directive::Delete) {
            return Ok(None);
        }
        self.merge_map(Object::new(), patch)
            .map(|m| Some(Value::Object(m)))
    }

    /// Merges a patch list into the original list according to its list type.
    fn merge_list(&mut self, original: Vec<Value>, patch: &[Value]) -> Result<Vec<Value>, String> {
        match self.list_type() {
            ListType::Set => merge_set(original, patch),
            ListType::Map(keys) => match keys.first() {
                Some(key) => self.merge_keyed(original, patch, key),
                None => self.replace_list(patch),
            },
            ListType::Atomic => self.replace_list(patch),
        }
    }

    /// An atomic list becomes the patch list, minus directive markers and with the
    /// directives and nulls inside its items resolved.
    fn replace_list(&mut self, patch: &[Value]) -> Result<Vec<Value>, String> {
        let mut list = Vec::with_capacity(patch.len());
        for item in patch {
            match item {
                Value::Object(item) if item.contains_key(DIRECTIVE) => {}
                Value::Object(item) => {
                    list.push(Value::Object(self.merge_map(Object::new(), item)?))
                }
                other => list.push(other.clone()),
            }
        }
        Ok(list)
    }

    /// Merges a list of objects identified by `key`, the strategic merge key.
    fn merge_keyed(
        &mut self,
        original: Vec<Value>,
        patch: &[Value],
        key: &str,
    ) -> Result<Vec<Value>, String> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let (mut merged, items) = self.apply_list_directives(original, patch, key)?;
        let server_order = key_values(&merged, key)?;
        for item in &items {
            self.merge_item(&mut merged, item, key)?;
        }
        // merge_item has checked that every item has its key.
        let patch_order: Vec<Value> = items
            .iter()
            .filter_map(|item| item.get(key).cloned())
            .collect();
        Ok(normalize_order(merged, &patch_order, &server_order, |v| {
            v.get(key)
        }))
    }

    /// Handles the `$patch` marker items of a keyed patch list: deletions are applied
    /// to `original`, and a replace marker makes the patch's own items the whole list.
    /// Returns the list to merge into and the patch items left to merge.
    fn apply_list_directives<'p>(
        &mut self,
        original: Vec<Value>,
        patch: &'p [Value],
        key: &str,
    ) -> Result<(Vec<Value>, Vec<&'p Object>), String> {
        let mut list = original;
        let mut items = Vec::new();
        let mut replace = false;
        for item in patch {
            let item = expect_object(item)?;
            match directive(item)? {
                None => items.push(item),
                Some(Directive::Delete) => delete_matching(&mut list, item, key)?,
                Some(Directive::Replace) => replace = true,
                Some(Directive::Merge) => {}
            }
        }
        if !replace {
            return Ok((list, items));
        }
        let mut replacement = Vec::with_capacity(items.len());
        for item in items {
            replacement.push(Value::Object(self.merge_map(Object::new(), item)?));
        }
        Ok((replacement, Vec::new()))
    }

    /// Merges one patch item into the list item with the same key, or appends it.
    fn merge_item(
        &mut self,
        list: &mut Vec<Value>,
        item: &Object,
        key: &str,
    ) -> Result<(), String> {
        let wanted = item.get(key).ok_or_else(|| no_merge_key(item, key))?;
        match find_by_key(list, key, wanted)? {
            Some(index) => {
                let original = match list[index].take() {
                    Value::Object(map) => map,
                    _ => Object::new(),
                };
                list[index] = Value::Object(self.merge_map(original, item)?);
            }
            None => list.push(Value::Object(self.merge_map(Object::new(), item)?)),
        }
        Ok(())
    }

    /// Applies every `$setElementOrder/<field>` of the patch, merging `<field>` along
    /// the way; returns the fields done, which the plain merge then skips.
    fn apply_element_orders(
        &mut self,
        target: &mut Object,
        patch: &Object,
    ) -> Result<Vec<String>, String> {
        let mut done = Vec::new();
        for (key, order) in patch {
            let Some(field) = directive_field(key, SET_ORDER_PREFIX, ERR_SET_ORDER)? else {
                continue;
            };
            let Value::Array(order) = order else {
                return Err(ERR_SET_ORDER.to_owned());
            };
            self.path.push(field.to_owned());
            self.order_field(target, field, order, patch.get(field))?;
            self.path.pop();
            done.push(field.to_owned());
        }
        Ok(done)
    }

    /// Merges the list `field` and puts it in the order the patch asks for: listed
    /// items in that order, the others placed by where they stood in the original.
    fn order_field(
        &mut self,
        target: &mut Object,
        field: &str,
        order: &[Value],
        patch: Option<&Value>,
    ) -> Result<(), String> {
        let original = match target.get(field) {
            None => None,
            Some(value) => Some(expect_list(field, value)?.to_vec()),
        };
        let patch = patch.map(|value| expect_list(field, value)).transpose()?;
        let (original, patch) = match (original, patch) {
            (None, None) => return Ok(()),
            (original, patch) => (original.unwrap_or_default(), patch),
        };
        let key = match self.list_type() {
            ListType::Set => None,
            ListType::Map(keys) if !keys.is_empty() => Some(keys[0].clone()),
            // An atomic list has no order to keep beyond the patch's own.
            _ => {
                let list = match patch {
                    Some(patch) => self.merge_list(original, patch)?,
                    None => original,
                };
                target.insert(field.to_owned(), Value::Array(list));
                return Ok(());
            }
        };
        let ordered = match key {
            Some(key) => self.order_keyed(original, order, patch, &key)?,
            None => order_set(original, order, patch)?,
        };
        target.insert(field.to_owned(), Value::Array(ordered));
        Ok(())
    }

    /// Merges a keyed list and orders it by the merge keys of its `$setElementOrder`.
    fn order_keyed(
        &mut self,
        original: Vec<Value>,
        order: &[Value],
        patch: Option<&[Value]>,
        key: &str,
    ) -> Result<Vec<Value>, String> {
        let order_ids = key_values(objects(order)?, key)?;
        let server_order = key_values(&original, key)?;
        let merged = match patch {
            Some(patch) => {
                // Markers (deletions included) are not expected in the order list.
                let listed = objects(patch)?.filter(|item| item.get(DIRECTIVE).is_none());
                if !in_order(&key_values(listed, key)?, &order_ids) {
                    return Err(order_mismatch(patch, order));
                }
                self.merge_keyed(original, patch, key)?
            }
            None => original,
        };
        Ok(normalize_order(merged, &order_ids, &server_order, |v| {
            v.get(key)
        }))
    }
}

/// Merges a set of scalars and orders it by its `$setElementOrder` list.
fn order_set(
    original: Vec<Value>,
    order: &[Value],
    patch: Option<&[Value]>,
) -> Result<Vec<Value>, String> {
    let patch = patch.unwrap_or(&[]);
    if !in_order(patch, order) {
        return Err(order_mismatch(patch, order));
    }
    let server_order = original.clone();
    let merged = merge_set(original, patch)?;
    Ok(normalize_order(merged, order, &server_order, |v| Some(v)))
}

/// Applies `$retainKeys`: keys of the original map not listed are dropped. Every
/// field the patch sets must be listed, or upstream rejects the patch.
fn retain_keys(original: &mut Object, patch: &Object) -> Result<(), String> {
    let Some(keep) = patch.get(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(keep) = keep else {
        return Err(ERR_RETAIN_KEYS.to_owned());
    };
    let listed = |key: &str| keep.iter().any(|k| k.as_str() == Some(key));
    let unlisted = patch
        .iter()
        .any(|(key, value)| !value.is_null() && !is_directive_key(key) && !listed(key));
    if unlisted {
        return Err(ERR_RETAIN_KEYS.to_owned());
    }
    original.retain(|key, _| listed(key));
    Ok(())
}

/// Applies every `$deleteFromPrimitiveList/<field>`: its scalars leave the list.
fn delete_from_primitive_lists(target: &mut Object, patch: &Object) -> Result<(), String> {
    for (key, doomed) in patch {
        let Some(field) = directive_field(key, DELETE_PRIMITIVE_PREFIX, ERR_PRIMITIVE_LIST)? else {
            continue;
        };
        let Value::Array(doomed) = doomed else {
            return Err(ERR_PRIMITIVE_LIST.to_owned());
        };
        if let Some(Value::Array(list)) = target.get_mut(field) {
            list.retain(|item| !doomed.iter().any(|d| same(d, item)));
        }
    }
    Ok(())
}

/// Unions two lists of scalars, dropping duplicates.
fn merge_set(original: Vec<Value>, patch: &[Value]) -> Result<Vec<Value>, String> {
    if let Some(bad) = original
        .iter()
        .chain(patch)
        .find(|v| v.is_object() || v.is_array())
    {
        return Err(if bad.is_array() {
            ERR_LIST_OF_LISTS.to_owned()
        } else {
            "cannot merge lists without merge key for type map".to_owned()
        });
    }
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for item in original.iter().chain(patch) {
        if !merged.iter().any(|m| same(m, item)) {
            merged.push(item.clone());
        }
    }
    Ok(normalize_order(merged, patch, &original, |v| Some(v)))
}

/// Removes every item whose merge key matches the `$patch: delete` marker's.
fn delete_matching(list: &mut Vec<Value>, marker: &Object, key: &str) -> Result<(), String> {
    let wanted = marker.get(key).ok_or_else(|| no_merge_key(marker, key))?;
    list.retain(|item| !item.get(key).is_some_and(|v| same(v, wanted)));
    Ok(())
}

/// Index of the first item whose merge key equals `wanted`.
fn find_by_key(list: &[Value], key: &str, wanted: &Value) -> Result<Option<usize>, String> {
    for (index, item) in list.iter().enumerate() {
        let Value::Object(item) = item else {
            return Err(format!("value for key {index} is not a map."));
        };
        if item.get(key).is_some_and(|v| same(v, wanted)) {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// The merge key values of a keyed list's items, each of which must have one.
fn key_values<'v>(
    items: impl IntoIterator<Item = &'v Value>,
    key: &str,
) -> Result<Vec<Value>, String> {
    items
        .into_iter()
        .map(|item| {
            let map = expect_object(item)?;
            map.get(key).cloned().ok_or_else(|| no_merge_key(map, key))
        })
        .collect()
}

/// The objects of a list, failing on anything else.
fn objects(list: &[Value]) -> Result<impl Iterator<Item = &Value> + '_, String> {
    list.iter()
        .try_for_each(|item| expect_object(item).map(|_| ()))?;
    Ok(list.iter())
}

/// Orders a merged list as upstream does: items named in the patch keep the patch's
/// order, the others keep the original's, and the two runs are interleaved so that
/// an original item stays ahead of the patch items it preceded in the original.
/// New items thus land at the front unless a `$setElementOrder` says otherwise.
/// `id` gives what identifies an item in the two orders (merge key or the scalar).
fn normalize_order(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    id: impl Fn(&Value) -> Option<&Value>,
) -> Vec<Value> {
    let position = |order: &[Value], item: &Value| {
        let id = id(item)?;
        order.iter().position(|o| same(o, id))
    };
    let (mut from_patch, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| position(patch_order, item).is_some());
    from_patch.sort_by_key(|item| position(patch_order, item));
    // Items the original does not know (none, normally) go after those it does.
    server_only.sort_by_key(|item| position(server_order, item).unwrap_or(usize::MAX));
    interleave(server_only, from_patch, |item| position(server_order, item))
}

/// Merges two ordered runs, taking the server item first only when both items are in
/// the original and the server item came first there.
fn interleave(
    server_only: Vec<Value>,
    from_patch: Vec<Value>,
    position: impl Fn(&Value) -> Option<usize>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(server_only.len() + from_patch.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = from_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => matches!((position(l), position(r)), (Some(a), Some(b)) if a < b),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return out,
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
}

/// Upstream requires the patch list's items, deletions aside, to appear in the
/// `$setElementOrder` list in the same relative order (an empty order allows any).
fn in_order(patch_ids: &[Value], order_ids: &[Value]) -> bool {
    let mut order = order_ids.iter();
    order_ids.is_empty() || patch_ids.iter().all(|id| order.any(|o| same(o, id)))
}

fn order_mismatch(patch: &[Value], order: &[Value]) -> String {
    format!(
        "the order in patch list:\n{}\n doesn't match {SET_ORDER_PREFIX} list:\n{}",
        go_fmt_list(patch),
        go_fmt_list(order)
    )
}

/// JSON equality, except that numbers compare by value (Go decodes them all as
/// float64, so `80` and `80.0` are the same port there).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn expect_object(value: &Value) -> Result<&Object, String> {
    value.as_object().ok_or_else(|| {
        format!(
            "expected a map[string]interface {{}}, but received a {}",
            go_type(value)
        )
    })
}

fn expect_list<'v>(field: &str, value: &'v Value) -> Result<&'v [Value], String> {
    value.as_array().map(Vec::as_slice).ok_or_else(|| {
        format!(
            "expected a []interface {{}} for {field}, but received a {}",
            go_type(value)
        )
    })
}

fn no_merge_key(map: &Object, key: &str) -> String {
    format!(
        "map: {} does not contain declared merge key: {key}",
        go_fmt_map(map)
    )
}

/// The JSON kind named the way Go's decoder names it.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The Go type a decoded JSON value has.
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Formats a value as Go's `%v` prints decoded JSON, so messages read like upstream's.
fn go_fmt(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items) => go_fmt_list(items),
        Value::Object(map) => go_fmt_map(map),
    }
}

fn go_fmt_list(items: &[Value]) -> String {
    let items: Vec<String> = items.iter().map(go_fmt).collect();
    format!("[{}]", items.join(" "))
}

/// Go prints map entries sorted by key.
fn go_fmt_map(map: &Object) -> String {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by_key(|(key, _)| *key);
    let entries: Vec<String> = entries
        .into_iter()
        .map(|(key, value)| format!("{key}:{}", go_fmt(value)))
        .collect();
    format!("map[{}]", entries.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The list types the fixtures below need, as the built-in table has them.
    struct TestLists;

    impl ListTypes for TestLists {
        fn list_type(&self, path: &[&str]) -> ListType {
            let keyed = |keys: &[&str]| ListType::Map(keys.iter().map(|k| k.to_string()).collect());
            match path.join(".").as_str() {
                "metadata.finalizers" => ListType::Set,
                "metadata.ownerReferences" => keyed(&["uid"]),
                "spec.template.spec.containers" => keyed(&["name"]),
                "spec.template.spec.containers.ports" => keyed(&["containerPort", "protocol"]),
                "spec.template.spec.containers.env" => keyed(&["name"]),
                "spec.template.spec.volumes" => keyed(&["name"]),
                "spec.ports" => keyed(&["port", "protocol"]),
                "status.conditions" => keyed(&["type"]),
                _ => ListType::Atomic,
            }
        }
    }

    fn apply(original: &Value, patch: Value) -> Value {
        apply_patch(original, &patch, &TestLists).unwrap()
    }

    fn apply_err(original: &Value, patch: Value) -> String {
        apply_patch(original, &patch, &TestLists).unwrap_err()
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "labels": {"app": "web", "tier": "frontend"},
                "finalizers": ["a", "b"]
            },
            "spec": {
                "replicas": 2,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
                },
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "app",
                            "image": "nginx:1.25",
                            "args": ["--a", "--b"],
                            "ports": [
                                {"containerPort": 80, "protocol": "TCP"},
                                {"containerPort": 443, "protocol": "TCP"}
                            ],
                            "env": [{"name": "MODE", "value": "prod"}]
                        }],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                        "tolerations": [{"key": "k", "operator": "Exists"}]
                    }
                }
            },
            "status": {
                "conditions": [
                    {"type": "Available", "status": "True"},
                    {"type": "Progressing", "status": "True"}
                ]
            }
        })
    }

    fn containers(object: &Value) -> &Vec<Value> {
        object["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
    }

    fn names(list: &[Value]) -> Vec<&str> {
        list.iter()
            .map(|item| item["name"].as_str().unwrap())
            .collect()
    }

    /// Patch that puts `containers` (whole items) into the deployment's pod spec.
    fn containers_patch(containers: Value) -> Value {
        json!({"spec": {"template": {"spec": {"containers": containers}}}})
    }

    fn assert_no_directives(value: &Value) {
        match value {
            Value::Object(map) => map.iter().for_each(|(key, value)| {
                assert!(!key.starts_with('$'), "directive {key} leaked");
                assert_no_directives(value);
            }),
            Value::Array(items) => items.iter().for_each(assert_no_directives),
            _ => {}
        }
    }

    #[test]
    fn kubectl_apply_drops_port_adds_env_bumps_image_and_removes_label() {
        let patch = json!({
            "metadata": {
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "labels": {"tier": null}
            },
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "app"}],
                "containers": [{
                    "$setElementOrder/env": [{"name": "MODE"}, {"name": "LOG"}],
                    "$setElementOrder/ports": [{"containerPort": 80}],
                    "env": [{"name": "LOG", "value": "debug"}],
                    "image": "nginx:1.27",
                    "name": "app",
                    "ports": [{"$patch": "delete", "containerPort": 443}]
                }]
            }}}
        });
        let patched = apply(&deployment(), patch);
        assert_eq!(patched["metadata"]["labels"], json!({"app": "web"}));
        let keys: Vec<&String> = patched["metadata"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["name", "namespace", "labels", "finalizers", "annotations"]
        );
        assert_eq!(
            containers(&patched)[0],
            json!({
                "name": "app",
                "image": "nginx:1.27",
                "args": ["--a", "--b"],
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "MODE", "value": "prod"}, {"name": "LOG", "value": "debug"}]
            })
        );
        assert_no_directives(&patched);
    }

    #[test]
    fn retain_keys_switches_strategy_to_recreate() {
        let patch = json!({"spec": {"strategy": {
            "$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"
        }}});
        let patched = apply(&deployment(), patch);
        assert_eq!(patched["spec"]["strategy"], json!({"type": "Recreate"}));
        // Without the null, retainKeys alone clears rollingUpdate.
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        assert_eq!(
            apply(&deployment(), patch)["spec"]["strategy"],
            json!({"type": "Recreate"})
        );
    }

    #[test]
    fn retain_keys_must_list_every_patched_field() {
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}});
        assert_eq!(apply_err(&deployment(), patch), ERR_RETAIN_KEYS);
        let patch = json!({"spec": {"strategy": {"$retainKeys": "type"}}});
        assert_eq!(apply_err(&deployment(), patch), ERR_RETAIN_KEYS);
    }

    #[test]
    fn replace_directive_in_a_list_replaces_the_list() {
        let patch = containers_patch(json!([
            {"$patch": "replace"},
            {"name": "other", "image": "busybox", "command": null}
        ]));
        let patched = apply(&deployment(), patch);
        assert_eq!(
            containers(&patched),
            &vec![json!({"name": "other", "image": "busybox"})]
        );
    }

    #[test]
    fn replace_directive_on_a_map_replaces_the_map() {
        let patch = json!({"metadata": {"labels": {"$patch": "replace", "app": "api"}}});
        assert_eq!(
            apply(&deployment(), patch)["metadata"]["labels"],
            json!({"app": "api"})
        );
    }

    #[test]
    fn delete_directive_on_a_map_empties_it() {
        let patch =
            json!({"spec": {"strategy": {"$patch": "delete"}, "selector": {"$patch": "delete"}}});
        let patched = apply(&deployment(), patch);
        // Upstream leaves an empty map for an existing field, nothing for a new one.
        assert_eq!(patched["spec"]["strategy"], json!({}));
        assert!(patched["spec"].get("selector").is_none());
    }

    #[test]
    fn delete_directive_removes_list_items_by_merge_key() {
        let patch = json!({"spec": {"template": {"spec": {
            "volumes": [{"$patch": "delete", "name": "data"}, {"name": "cache", "emptyDir": {}}]
        }}}});
        let patched = apply(&deployment(), patch);
        assert_eq!(
            patched["spec"]["template"]["spec"]["volumes"],
            json!([{"name": "cache", "emptyDir": {}}])
        );
    }

    #[test]
    fn merge_directive_is_a_plain_merge() {
        let patch = json!({"metadata": {"labels": {"$patch": "merge", "track": "stable"}}});
        let labels = &apply(&deployment(), patch)["metadata"]["labels"];
        assert_eq!(
            labels,
            &json!({"app": "web", "tier": "frontend", "track": "stable"})
        );
    }

    #[test]
    fn patch_items_merge_into_the_item_with_the_same_key() {
        let patch = containers_patch(json!([{"name": "app", "image": "nginx:1.26"}]));
        let patched = apply(&deployment(), patch);
        let mut expected = containers(&deployment())[0].clone();
        expected["image"] = json!("nginx:1.26");
        assert_eq!(containers(&patched), &vec![expected]);
    }

    #[test]
    fn new_items_without_an_order_go_first_like_upstream() {
        // `kubectl patch --type strategic` adding a sidecar.
        let patch = containers_patch(json!([{"name": "sidecar", "image": "busybox"}]));
        assert_eq!(
            names(containers(&apply(&deployment(), patch))),
            ["sidecar", "app"]
        );
    }

    #[test]
    fn set_element_order_places_new_items() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "sidecar", "image": "busybox"}]
        }}}});
        assert_eq!(
            names(containers(&apply(&deployment(), patch))),
            ["app", "sidecar"]
        );
    }

    #[test]
    fn set_element_order_alone_reorders_the_list() {
        let original = containers_patch(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]
        }}}});
        assert_eq!(names(containers(&apply(&original, patch))), ["c", "a", "b"]);
    }

    #[test]
    fn set_element_order_keeps_unlisted_items_near_their_neighbours() {
        let original = containers_patch(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "x"}]
        }}}});
        // b is not listed; it preceded c in the original, so upstream puts it first.
        assert_eq!(names(containers(&apply(&original, patch))), ["b", "c", "a"]);
    }

    #[test]
    fn set_element_order_must_agree_with_the_patch_list() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [{"name": "other", "image": "x"}]
        }}}});
        let err = apply_err(&deployment(), patch);
        assert!(
            err.starts_with("the order in patch list:\n[map[image:x name:other]]"),
            "{err}"
        );
        assert!(
            err.ends_with("doesn't match $setElementOrder list:\n[map[name:app]]"),
            "{err}"
        );
        let patch = json!({"spec": {"$setElementOrderX": []}});
        assert_eq!(apply_err(&deployment(), patch), ERR_SET_ORDER);
    }

    #[test]
    fn empty_patch_lists_leave_merge_lists_alone() {
        let patch = json!({"metadata": {"finalizers": []}, "status": {"conditions": []}});
        let patched = apply(&deployment(), patch);
        assert_eq!(patched["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(patched["status"], deployment()["status"]);
    }

    #[test]
    fn delete_directive_removes_a_container() {
        let original = containers_patch(json!([{"name": "a"}, {"name": "b"}]));
        let patch = containers_patch(json!([{"name": "a", "$patch": "delete"}]));
        assert_eq!(names(containers(&apply(&original, patch))), ["b"]);
    }

    #[test]
    fn server_only_items_keep_their_place() {
        let original = containers_patch(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
        let patch = containers_patch(json!([{"name": "b", "image": "x"}, {"name": "d"}]));
        assert_eq!(
            names(containers(&apply(&original, patch))),
            ["a", "b", "d", "c"]
        );
    }

    #[test]
    fn scalar_sets_union_and_order_like_upstream() {
        let patch = json!({"metadata": {"finalizers": ["c", "a"]}});
        assert_eq!(
            apply(&deployment(), patch)["metadata"]["finalizers"],
            json!(["c", "a", "b"])
        );
        let patch = json!({"metadata": {"$setElementOrder/finalizers": ["a", "b", "c"], "finalizers": ["c"]}});
        assert_eq!(
            apply(&deployment(), patch)["metadata"]["finalizers"],
            json!(["a", "b", "c"])
        );
    }

    #[test]
    fn delete_from_primitive_list_removes_scalars() {
        // kubectl apply dropping finalizer b and adding c.
        let patch = json!({"metadata": {
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "$setElementOrder/finalizers": ["a", "c"],
            "finalizers": ["c"]
        }});
        assert_eq!(
            apply(&deployment(), patch)["metadata"]["finalizers"],
            json!(["a", "c"])
        );
        let patch = json!({"metadata": {"$deleteFromPrimitiveList": ["b"]}});
        assert_eq!(apply_err(&deployment(), patch), ERR_PRIMITIVE_LIST);
    }

    #[test]
    fn atomic_lists_are_replaced() {
        let patch = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "app", "args": ["--c"]}],
            "tolerations": [{"$patch": "replace"}, {"key": "gpu", "operator": "Exists", "value": null}]
        }}}});
        let patched = apply(&deployment(), patch);
        assert_eq!(containers(&patched)[0]["args"], json!(["--c"]));
        assert_eq!(
            patched["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "gpu", "operator": "Exists"}])
        );
    }

    #[test]
    fn null_deletes_and_new_maps_shed_their_nulls() {
        let patch = json!({"spec": {
            "replicas": null,
            "paused": null,
            "selector": {"matchLabels": {"app": "web", "stale": null}}
        }});
        let spec = apply(&deployment(), patch)["spec"].clone();
        assert!(spec.get("replicas").is_none());
        assert!(spec.get("paused").is_none());
        assert_eq!(spec["selector"], json!({"matchLabels": {"app": "web"}}));
    }

    #[test]
    fn directives_in_new_fields_do_not_leak() {
        let original = json!({"metadata": {"name": "web"}});
        let patch = json!({
            "metadata": {"$setElementOrder/finalizers": ["x"], "finalizers": ["x"]},
            "spec": {
                "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                "template": {"spec": {
                    "$setElementOrder/containers": [{"name": "app"}],
                    "containers": [{
                        "name": "app",
                        "$setElementOrder/env": [{"name": "X"}],
                        "env": [{"name": "X", "value": "1"}],
                        "ports": [{"$patch": "delete", "containerPort": 1}, {"containerPort": 80}]
                    }]
                }}
            }
        });
        let patched = apply(&original, patch);
        assert_no_directives(&patched);
        assert_eq!(patched["metadata"]["finalizers"], json!(["x"]));
        assert_eq!(patched["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(
            containers(&patched),
            &vec![
                json!({"name": "app", "env": [{"name": "X", "value": "1"}], "ports": [{"containerPort": 80}]})
            ]
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let service = json!({"spec": {"ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}
        ]}});
        let patch = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}});
        let patched = apply(&service, patch);
        assert_eq!(
            patched["spec"]["ports"],
            json!([
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 9090},
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}
            ])
        );
    }

    #[test]
    fn status_conditions_merge_by_type() {
        let patch = json!({"status": {"conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}
        ]}});
        let patched = apply(&deployment(), patch);
        assert_eq!(
            patched["status"]["conditions"],
            json!([
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                {"type": "Progressing", "status": "True"}
            ])
        );
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let original = json!({"metadata": {"ownerReferences": [{"uid": "1", "kind": "ReplicaSet", "name": "rs"}]}});
        let patch =
            json!({"metadata": {"ownerReferences": [{"uid": "2", "kind": "Node", "name": "n"}]}});
        let refs = apply(&original, patch)["metadata"]["ownerReferences"].clone();
        assert_eq!(refs.as_array().unwrap().len(), 2);
    }

    #[test]
    fn merge_keys_compare_numbers_by_value() {
        let patch = containers_patch(
            json!([{"name": "app", "ports": [{"containerPort": 80.0, "name": "http"}]}]),
        );
        let patched = apply(&deployment(), patch);
        let ports = containers(&patched)[0]["ports"].as_array().unwrap();
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0]["name"], "http");
    }

    #[test]
    fn config_map_data_edit() {
        let original = json!({"kind": "ConfigMap", "data": {"a": "1", "b": "2"}});
        let patch = json!({"data": {"a": null, "c": "3"}});
        assert_eq!(apply(&original, patch)["data"], json!({"b": "2", "c": "3"}));
    }

    #[test]
    fn values_of_another_type_are_replaced() {
        let patch = json!({"spec": {"replicas": {"odd": true}, "strategy": "none"}});
        let spec = apply(&deployment(), patch)["spec"].clone();
        assert_eq!(spec["replicas"], json!({"odd": true}));
        assert_eq!(spec["strategy"], json!("none"));
    }

    #[test]
    fn patch_must_be_an_object() {
        let err = apply_err(&deployment(), json!([{"op": "add"}]));
        assert_eq!(
            err,
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
        assert!(apply_patch(&deployment(), &json!("x"), &TestLists).is_err());
    }

    #[test]
    fn keyed_items_need_their_merge_key() {
        let err = apply_err(&deployment(), containers_patch(json!([{"image": "x"}])));
        assert_eq!(
            err,
            "map: map[image:x] does not contain declared merge key: name"
        );
        let err = apply_err(&deployment(), containers_patch(json!(["app"])));
        assert_eq!(
            err,
            "expected a map[string]interface {}, but received a string"
        );
    }

    #[test]
    fn unknown_patch_type_is_rejected() {
        let err = apply_err(
            &deployment(),
            json!({"metadata": {"labels": {"$patch": "bogus"}}}),
        );
        assert_eq!(err, "unknown patch type: bogus in map: map[$patch:bogus]");
    }

    #[test]
    fn sets_reject_objects() {
        let err = apply_err(
            &deployment(),
            json!({"metadata": {"finalizers": [{"a": 1}]}}),
        );
        assert_eq!(err, "cannot merge lists without merge key for type map");
    }

    #[test]
    fn whole_object_replace_and_delete() {
        let patch = json!({"$patch": "replace", "kind": "ConfigMap", "data": {"k": "v"}});
        assert_eq!(
            apply(&deployment(), patch),
            json!({"kind": "ConfigMap", "data": {"k": "v"}})
        );
        assert_eq!(apply(&deployment(), json!({"$patch": "delete"})), json!({}));
    }
}
