//! The verbs on objects — get, list, create, update, patch, delete — with every rule
//! kube-apiserver applies between a decoded request and the store. The HTTP layer and
//! the in-server controllers both go through here.

use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::errors::{ApiError, ApiResult, Cause};
use super::ipalloc::Allocator;
use super::lists::{AtomicLists, ListTypes};
use super::objects::{self, finalizers, is_deleting, meta_mut, now};
use super::registry::{Registry, ResourceType};
use super::store::{GroupResource, Store, StoreError, Stored, Write};
use super::{admission, crd, field_manager, names, schema, strategic_merge, typed};

/// Which part of an object a request addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    Main,
    Status,
    Scale,
}

impl Subresource {
    fn field_manager_name(self) -> Option<&'static str> {
        match self {
            Subresource::Main => None,
            Subresource::Status => Some("status"),
            Subresource::Scale => Some("scale"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    Warn,
    #[default]
    Strict,
}

#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    pub manager: String,
    pub dry_run: bool,
    pub validation: FieldValidation,
    pub force: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

/// The result of a write.
pub struct Written {
    pub object: Value,
    /// The stored bytes of `object`, when it was stored (not for dry runs or deletions).
    pub json: Option<super::store::Json>,
    pub warnings: Vec<String>,
    pub created: bool,
}

pub struct State {
    pub registry: Registry,
    pub store: Store,
    pub alloc: Mutex<Allocator>,
}

/// How often a write that raced with another is retried before giving up.
const RETRIES: usize = 8;

impl State {
    pub fn new(registry: Registry, store: Store, alloc: Allocator) -> Arc<Self> {
        Arc::new(State {
            registry,
            store,
            alloc: Mutex::new(alloc),
        })
    }

    /// Rebuilds what is derived from stored objects after a restart: the kinds their
    /// CRDs define and the ClusterIPs and NodePorts their Services hold.
    pub fn restore(&self) {
        let crds = GroupResource::new("apiextensions.k8s.io", "customresourcedefinitions");
        for (_, stored) in self.store.list(&crds, None, None).1 {
            self.registry.insert(crd::resource_type(&stored.value()));
        }
        let services = GroupResource::new("", "services");
        let mut alloc = self.alloc.lock();
        for (_, stored) in self.store.list(&services, None, None).1 {
            admission::claim_held(&mut alloc, &stored.value());
        }
    }

    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<Stored> {
        self.store
            .get(&rt.gr(), ns, name)
            .ok_or_else(|| ApiError::not_found(&rt.gr(), name))
    }

    pub fn create(
        &self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        check_type(rt, &obj)?;
        set_namespace(rt, ns, &mut obj)?;
        assign_name(rt, &mut obj)?;
        let name = objects::name(&obj).to_string();
        if rt.namespaced {
            self.check_namespace_open(ns)?;
        }
        reset_system_metadata(&mut obj);
        let m = meta_mut(&mut obj);
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now()));
        if tracks_generation(rt) {
            m.insert("generation".into(), json!(1));
        }
        if rt.status {
            obj.as_object_mut().map(|o| o.remove("status"));
        }
        self.commit(rt, ns, &name, None, obj, Subresource::Main, opts)
    }

    /// PUT: replaces the object (or its status) with `obj`.
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        obj: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        check_type(rt, &obj)?;
        if objects::name(&obj) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                objects::name(&obj)
            )));
        }
        let wanted_rv = objects::resource_version(&obj).map(String::from);
        for _ in 0..RETRIES {
            let old = self.get(rt, ns, name)?;
            if wanted_rv
                .as_deref()
                .is_some_and(|rv| rv != old.rv.to_string())
            {
                return Err(ApiError::stale(&rt.gr(), name));
            }
            let mut new = obj.clone();
            set_namespace(rt, ns, &mut new)?;
            let old_value = old.value();
            match self.commit(rt, ns, name, Some((&old, old_value)), new, sub, opts) {
                Err(e) if e.reason == "Conflict" && wanted_rv.is_none() => continue,
                other => return other,
            }
        }
        Err(ApiError::stale(&rt.gr(), name))
    }

    /// PATCH in any of the four patch types; apply creates a missing object.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        version: &str,
        ns: &str,
        name: &str,
        kind: PatchKind,
        patch: &Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if kind == PatchKind::Strategic && !rt.builtin {
            return Err(ApiError::unsupported_media_type(&super::http::patch_types(
                rt,
            )));
        }
        for _ in 0..RETRIES {
            let old = self.store.get(&rt.gr(), ns, name);
            let Some(old) = old else {
                if kind != PatchKind::Apply || sub != Subresource::Main {
                    return Err(ApiError::not_found(&rt.gr(), name));
                }
                let created = self.apply_create(rt, version, ns, name, patch, opts)?;
                return Ok(created);
            };
            let current = to_version(rt, old.value(), version);
            let patched = self.patched(rt, version, &current, kind, patch, sub, opts)?;
            let patched_rv = objects::resource_version(&patched).map(String::from);
            if patched_rv
                .as_deref()
                .is_some_and(|rv| rv != old.rv.to_string())
            {
                return Err(ApiError::stale(&rt.gr(), name));
            }
            let patched = match sub {
                Subresource::Scale => apply_scale(rt, &current, &patched)?,
                _ => patched,
            };
            // An apply result already records this manager's fields as an Apply.
            let commit_opts = match kind {
                PatchKind::Apply => WriteOptions {
                    manager: String::new(),
                    ..opts.clone()
                },
                _ => opts.clone(),
            };
            let old_value = to_storage(rt, current);
            match self.commit(
                rt,
                ns,
                name,
                Some((&old, old_value)),
                patched,
                sub,
                &commit_opts,
            ) {
                Err(e) if e.reason == "Conflict" && e.message.contains("has been modified") => {
                    continue
                }
                other => return other,
            }
        }
        Err(ApiError::stale(&rt.gr(), name))
    }

    #[allow(clippy::too_many_arguments)]
    fn patched(
        &self,
        rt: &ResourceType,
        version: &str,
        current: &Value,
        kind: PatchKind,
        patch: &Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let base = match sub {
            Subresource::Scale => scale_of(rt, current)?,
            _ => current.clone(),
        };
        let invalid = |msg: String| ApiError::bad_request(msg);
        match kind {
            PatchKind::Merge => {
                if !patch.is_object() {
                    return Err(invalid(
                        "json: cannot unmarshal into object: a merge patch must be a JSON object"
                            .into(),
                    ));
                }
                let mut out = base;
                json_patch::merge(&mut out, patch);
                Ok(out)
            }
            PatchKind::Json => {
                let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                    .map_err(|e| invalid(format!("json patch is invalid: {e}")))?;
                let mut out = base;
                // A failed patch's copy is dropped, so there is nothing to undo (and
                // json-patch's undo of a move to the root panics).
                json_patch::patch_unsafe(&mut out, &ops).map_err(|e| {
                    ApiError::invalid_field(
                        rt,
                        objects::name(current),
                        "",
                        "FieldValueInvalid",
                        &format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    )
                })?;
                if !out.is_object() {
                    // kube-apiserver cannot decode such a result into an object either.
                    return Err(ApiError::invalid_field(
                        rt,
                        objects::name(current),
                        "patch",
                        "FieldValueInvalid",
                        &format!("Invalid value: {out}: the patched document is not an object"),
                    ));
                }
                Ok(out)
            }
            PatchKind::Strategic => {
                strategic_merge::apply_patch(&base, patch, self.list_types(rt).as_ref())
                    .map_err(invalid)
            }
            PatchKind::Apply => {
                let applied = self.applied_config(rt, version, patch, sub)?;
                field_manager::apply(
                    Some(&base),
                    &applied,
                    &opts.manager,
                    opts.force,
                    self.list_types(rt).as_ref(),
                    &rt.api_version(version),
                    &now(),
                    sub.field_manager_name(),
                )
                .map_err(|e| {
                    ApiError::conflict_apply(&rt.gr(), objects::name(current), e.message())
                })
            }
        }
    }

    /// Checks an apply configuration and drops what the addressed part does not own.
    fn applied_config(
        &self,
        rt: &ResourceType,
        version: &str,
        patch: &Value,
        sub: Subresource,
    ) -> ApiResult<Value> {
        if !patch.is_object() {
            return Err(ApiError::bad_request(
                "the apply configuration must be an object",
            ));
        }
        let want = rt.api_version(version);
        if patch["apiVersion"].as_str() != Some(&want) || patch["kind"].as_str() != Some(&rt.kind) {
            return Err(ApiError::bad_request(format!(
                "the API version and kind in the apply configuration ({}, {}) do not match the request ({want}, {})",
                patch["apiVersion"].as_str().unwrap_or_default(),
                patch["kind"].as_str().unwrap_or_default(),
                rt.kind
            )));
        }
        let mut applied = patch.clone();
        if rt.builtin {
            default_key_fields(&mut applied, &mut Vec::new(), self.list_types(rt).as_ref());
        }
        if rt.status {
            let o = applied.as_object_mut().expect("checked above");
            match sub {
                Subresource::Main => {
                    o.remove("status");
                }
                _ => o.retain(|k, _| {
                    ["apiVersion", "kind", "metadata", "status"].contains(&k.as_str())
                }),
            }
        }
        Ok(applied)
    }

    fn apply_create(
        &self,
        rt: &ResourceType,
        version: &str,
        ns: &str,
        name: &str,
        patch: &Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let applied = self.applied_config(rt, version, patch, Subresource::Main)?;
        if objects::name(&applied) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                objects::name(&applied)
            )));
        }
        let obj = field_manager::apply(
            None,
            &applied,
            &opts.manager,
            opts.force,
            self.list_types(rt).as_ref(),
            &rt.api_version(version),
            &now(),
            None,
        )
        .map_err(|e| ApiError::conflict_apply(&rt.gr(), name, e.message()))?;
        let mut opts = opts.clone();
        // The field set is already recorded as an Apply; the create must not add an Update.
        opts.manager.clear();
        self.create(rt, ns, obj, &opts)
    }

    /// Everything between a proposed new state and the store: subresource rules,
    /// decoding, defaulting, validation, generation, managed fields, and the write.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        old: Option<(&Stored, Value)>,
        new: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        // The stored object and its parsed form, which the caller already had.
        let (old, mut old_value) = match old {
            Some((stored, value)) => (Some(stored), Some(value)),
            None => (None, None),
        };
        let mut new = to_storage(rt, new);
        if let Some(old_value) = &old_value {
            new = merge_subresource(rt, old_value, new, sub);
            keep_system_metadata(old_value, &mut new);
        }
        if let Some(old) = old.filter(|_| is_deleting(&new) && finalizers(&new).is_empty()) {
            return self.remove(rt, ns, name, old, opts.dry_run);
        }
        if old.is_some_and(|_| is_deleting(old_value.as_ref().unwrap()))
            && finalizers(&new).len() > finalizers(old_value.as_ref().unwrap()).len()
        {
            return Err(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: no new finalizers can be added if the object is being deleted",
                rt.gr()
            )));
        }
        let warnings = self.decode_and_validate(rt, name, old_value.as_ref(), &mut new, opts)?;
        if let Some(old_value) = &old_value {
            if tracks_generation(rt)
                && objects::spec_part(old_value, rt.status) != objects::spec_part(&new, rt.status)
            {
                let g = old_value["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                meta_mut(&mut new).insert("generation".into(), json!(g));
            }
        }
        if !opts.manager.is_empty() {
            field_manager::record_update(
                old_value.as_ref(),
                &mut new,
                &opts.manager,
                self.list_types(rt).as_ref(),
                &rt.api_version(&rt.storage_version),
                &now(),
                sub.field_manager_name(),
            );
        }
        if let (Some(old), Some(old_value)) = (old, &mut old_value) {
            if objects::same_content(old_value, &mut new) {
                admission::release(&self.alloc, rt, &new, Some(old_value));
                return Ok(Written {
                    object: old.value(),
                    json: Some(old.json.clone()),
                    warnings,
                    created: false,
                });
            }
        }
        if opts.dry_run {
            admission::release(&self.alloc, rt, &new, old_value.as_ref());
            return Ok(Written {
                object: new,
                json: None,
                warnings,
                created: old.is_none(),
            });
        }
        // Only what holds addresses needs the attempted state back if the write fails.
        let attempted = admission::holds_allocations(rt).then(|| new.clone());
        let write = if old.is_some() {
            Write::Update(new)
        } else {
            Write::Create(new)
        };
        match self
            .store
            .write(&rt.gr(), ns, name, old.map(|o| o.rv), write)
        {
            Ok(committed) => {
                if let Some(old_value) = &old_value {
                    admission::release(&self.alloc, rt, old_value, Some(&committed.object));
                }
                self.after_write(rt, &committed.object);
                Ok(Written {
                    object: committed.object,
                    json: Some(committed.stored.json),
                    warnings,
                    created: old.is_none(),
                })
            }
            Err(e) => {
                if let Some(attempted) = &attempted {
                    admission::release(&self.alloc, rt, attempted, old_value.as_ref());
                }
                Err(store_error(rt, name, e))
            }
        }
    }

    /// Decoding and admission: typed decoding for built-ins, the structural schema for
    /// custom resources, then kind-specific defaults and checks.
    fn decode_and_validate(
        &self,
        rt: &ResourceType,
        name: &str,
        old: Option<&Value>,
        new: &mut Value,
        opts: &WriteOptions,
    ) -> ApiResult<Vec<String>> {
        let unknown = if rt.builtin {
            match typed::decode(&rt.group, &rt.kind, new) {
                Some(Ok(decoded)) => {
                    *new = decoded.object;
                    decoded.unknown
                }
                Some(Err(e)) => {
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: {e}",
                        rt.kind, rt.storage_version, rt.kind
                    )))
                }
                None => Vec::new(),
            }
        } else {
            self.check_custom(rt, name, new)?
        };
        let warnings = unknown_field_policy(rt, unknown, opts.validation)?;
        admission::admit(&self.alloc, rt, old, new)?;
        if rt.group == "apiextensions.k8s.io" {
            let causes = crd::validate(new);
            if !causes.is_empty() {
                admission::release(&self.alloc, rt, new, old);
                return Err(ApiError::invalid(rt, name, causes));
            }
            new["status"] = crd::served_status(new, &now());
        }
        Ok(warnings)
    }

    fn check_custom(
        &self,
        rt: &ResourceType,
        name: &str,
        obj: &mut Value,
    ) -> ApiResult<Vec<String>> {
        let Some(schema) = rt
            .version(&rt.storage_version)
            .and_then(|v| v.schema.clone())
        else {
            return Ok(Vec::new());
        };
        let pruned = schema::prune(obj, &schema);
        schema::apply_defaults(obj, &schema);
        let errors = schema::validate(obj, &schema);
        if !errors.is_empty() {
            let causes = errors
                .iter()
                .map(|e| Cause::new(e.reason(), &e.path, e.body()))
                .collect();
            return Err(ApiError::invalid(rt, name, causes));
        }
        Ok(pruned)
    }

    fn after_write(&self, rt: &ResourceType, obj: &Value) {
        if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
            self.registry.insert(crd::resource_type(obj));
        }
    }

    pub fn list_types(&self, rt: &ResourceType) -> Box<dyn ListTypes> {
        if rt.builtin {
            return Box::new(super::builtin_lists::BuiltinLists);
        }
        match rt
            .version(&rt.storage_version)
            .and_then(|v| v.schema.clone())
        {
            Some(s) => Box::new(schema::SchemaLists::new(s)),
            None => Box::new(AtomicLists),
        }
    }

    /// DELETE: marks the object when finalizers (or the propagation policy) hold it,
    /// removes it otherwise. Returns the object as the response shows it.
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        for _ in 0..RETRIES {
            let old = self.get(rt, ns, name)?;
            let value = old.value();
            check_preconditions(rt, name, &value, opts)?;
            let mut fins = finalizers(&value);
            match opts.propagation.as_deref() {
                Some("Foreground") => add_once(&mut fins, "foregroundDeletion"),
                Some("Orphan") => add_once(&mut fins, "orphan"),
                Some("Background") | None => {}
                Some(other) => {
                    return Err(ApiError::invalid_field(rt, name, "propagationPolicy", "FieldValueNotSupported", &format!("Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\"")))
                }
            }
            let namespace_pending = rt.group.is_empty() && rt.kind == "Namespace";
            if fins.is_empty() && !namespace_pending {
                let opts = WriteOptions {
                    dry_run: opts.dry_run,
                    ..Default::default()
                };
                match self.remove(rt, ns, name, &old, opts.dry_run) {
                    Err(e) if e.reason == "Conflict" => continue,
                    other => return other.map(|w| w.object),
                }
            }
            if is_deleting(&value) && fins == finalizers(&value) {
                return Ok(value);
            }
            let mut marked = value.clone();
            let m = meta_mut(&mut marked);
            m.entry("deletionTimestamp").or_insert_with(|| json!(now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            m.insert("finalizers".into(), json!(fins));
            if namespace_pending {
                marked["status"]["phase"] = json!("Terminating");
            }
            if opts.dry_run {
                return Ok(marked);
            }
            match self
                .store
                .write(&rt.gr(), ns, name, Some(old.rv), Write::Update(marked))
            {
                Ok(committed) => return Ok(committed.object),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(store_error(rt, name, e)),
            }
        }
        Err(ApiError::stale(&rt.gr(), name))
    }

    /// Ends the deletion of a terminating object whose own cleanup is done (a
    /// namespace once emptied): it goes unless metadata finalizers still hold it.
    pub fn finalize(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<()> {
        let current = self.get(rt, ns, name)?;
        let mut obj = current.value();
        if !finalizers(&obj).is_empty() {
            obj["spec"]["finalizers"] = json!([]);
            self.store
                .write(&rt.gr(), ns, name, Some(current.rv), Write::Update(obj))
                .map_err(|e| store_error(rt, name, e))?;
            return Ok(());
        }
        self.remove(rt, ns, name, &current, false).map(|_| ())
    }

    /// Removes an object from the store for good, with what goes with it.
    fn remove(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        old: &Stored,
        dry_run: bool,
    ) -> ApiResult<Written> {
        let value = old.value();
        if dry_run {
            return Ok(Written {
                object: value,
                json: None,
                warnings: Vec::new(),
                created: false,
            });
        }
        if rt.group == "apiextensions.k8s.io" {
            self.remove_custom_resources(&value);
        }
        let committed = self
            .store
            .write(&rt.gr(), ns, name, Some(old.rv), Write::Delete)
            .map_err(|e| store_error(rt, name, e))?;
        admission::release(&self.alloc, rt, &value, None);
        Ok(Written {
            object: committed.object,
            json: None,
            warnings: Vec::new(),
            created: false,
        })
    }

    /// A CRD's objects go with it, then the type stops being served.
    fn remove_custom_resources(&self, crd_obj: &Value) {
        let t = crd::resource_type(crd_obj);
        let gr = t.gr();
        let (_, items) = self.store.list(&gr, None, None);
        for ((ns, name), stored) in items {
            let _ = self
                .store
                .write(&gr, &ns, &name, Some(stored.rv), Write::Delete);
        }
        self.registry.remove(&gr);
    }

    /// Objects in a namespace can only be created while it exists and is not terminating.
    fn check_namespace_open(&self, ns: &str) -> ApiResult<()> {
        let gr = GroupResource::new("", "namespaces");
        let Some(stored) = self.store.get(&gr, "", ns) else {
            return Err(ApiError::not_found(&gr, ns));
        };
        if is_deleting(&stored.value()) {
            return Err(ApiError::forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )));
        }
        Ok(())
    }
}

/// Fills list-map key fields that have a default (ports' `protocol`), so that an
/// applied item matches the stored, defaulted one as kube-apiserver matches them.
fn default_key_fields(v: &mut Value, path: &mut Vec<String>, lists: &dyn ListTypes) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                path.push(k.clone());
                default_key_fields(child, path, lists);
                path.pop();
            }
        }
        Value::Array(items) => {
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            let defaults_protocol = matches!(lists.list_type(&p), super::lists::ListType::Map(keys) if keys.iter().any(|k| k == "protocol"));
            for item in items {
                if defaults_protocol && item.is_object() && item.get("protocol").is_none() {
                    item["protocol"] = json!("TCP");
                }
                default_key_fields(item, path, lists);
            }
        }
        _ => {}
    }
}

fn add_once(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|f| f == item) {
        list.push(item.to_string());
    }
}

fn check_preconditions(
    rt: &ResourceType,
    name: &str,
    obj: &Value,
    opts: &DeleteOptions,
) -> ApiResult<()> {
    if let Some(uid) = &opts.uid {
        if uid != objects::uid(obj) {
            return Err(ApiError::conflict(
                &rt.gr(),
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    objects::uid(obj)
                ),
            ));
        }
    }
    if let Some(rv) = &opts.resource_version {
        let have = objects::resource_version(obj).unwrap_or_default();
        if rv != have {
            return Err(ApiError::conflict(&rt.gr(), name, &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"
            )));
        }
    }
    Ok(())
}

/// Unknown fields were dropped; Strict refuses the request, Warn reports them.
fn unknown_field_policy(
    rt: &ResourceType,
    unknown: Vec<String>,
    validation: FieldValidation,
) -> ApiResult<Vec<String>> {
    let messages: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match validation {
        FieldValidation::Strict if !messages.is_empty() && rt.builtin => {
            Err(ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
            messages.join(", "),
            kind = rt.kind,
            v = rt.storage_version,
        )))
        }
        FieldValidation::Strict if !messages.is_empty() => {
            let list: Vec<String> = unknown
                .iter()
                .map(|f| format!(".{f}: field not declared in schema"))
                .collect();
            Err(ApiError::bad_request(if list.len() == 1 {
                list[0].clone()
            } else {
                format!("[{}]", list.join(", "))
            }))
        }
        FieldValidation::Warn => Ok(messages),
        _ => Ok(Vec::new()),
    }
}

fn store_error(rt: &ResourceType, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found(&rt.gr(), name),
        StoreError::AlreadyExists => ApiError::already_exists(&rt.gr(), name),
        StoreError::Conflict => ApiError::stale(&rt.gr(), name),
        StoreError::Gone { .. } => ApiError::internal("unexpected history error on write"),
    }
}

/// Kinds whose metadata.generation counts spec changes.
fn tracks_generation(rt: &ResourceType) -> bool {
    !rt.builtin
        || matches!(
            rt.plural.as_str(),
            "deployments" | "statefulsets" | "replicasets" | "customresourcedefinitions" | "pods"
        )
}

fn check_type(rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON or YAML object",
        ));
    }
    if let Some(kind) = obj["kind"].as_str() {
        if kind != rt.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                rt.kind
            )));
        }
    }
    if let Some(av) = obj["apiVersion"].as_str() {
        let ok = rt.versions.iter().any(|v| rt.api_version(&v.name) == av);
        if !ok {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version(&rt.storage_version)
            )));
        }
    }
    Ok(())
}

fn set_namespace(rt: &ResourceType, ns: &str, obj: &mut Value) -> ApiResult<()> {
    let body_ns = objects::namespace(obj).to_string();
    let m = meta_mut(obj);
    if !rt.namespaced {
        m.remove("namespace");
        return Ok(());
    }
    if !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    m.insert("namespace".into(), json!(ns));
    Ok(())
}

fn assign_name(rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    let m = meta_mut(obj);
    let name = m
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let generate = m
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let name = match (name.is_empty(), generate.is_empty()) {
        (false, _) => name,
        (true, false) => format!("{generate}{}", names::generate_suffix()),
        (true, true) => {
            return Err(ApiError::invalid_field(
                rt,
                "",
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required",
            ))
        }
    };
    names::check(names::rule_for(&rt.group, &rt.plural), &name).map_err(|msg| {
        ApiError::invalid_field(
            rt,
            &name,
            "metadata.name",
            "FieldValueInvalid",
            &format!("Invalid value: \"{name}\": {msg}"),
        )
    })?;
    m.insert("name".into(), json!(name));
    Ok(())
}

fn reset_system_metadata(obj: &mut Value) {
    let m = meta_mut(obj);
    for f in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "selfLink",
    ] {
        m.remove(f);
    }
}

/// Fields a client cannot change: they come from the stored object.
fn keep_system_metadata(old: &Value, new: &mut Value) {
    let m = meta_mut(new);
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old["metadata"].get(f) {
            Some(v) => m.insert(f.into(), v.clone()),
            None => m.remove(f),
        };
    }
    m.remove("selfLink");
}

/// The main endpoint keeps the stored status; /status keeps everything but status.
fn merge_subresource(rt: &ResourceType, old: &Value, new: Value, sub: Subresource) -> Value {
    if !rt.status {
        return new;
    }
    match sub {
        Subresource::Main | Subresource::Scale => {
            let mut out = new;
            match old.get("status") {
                Some(s) => out["status"] = s.clone(),
                None => {
                    out.as_object_mut().map(|o| o.remove("status"));
                }
            }
            out
        }
        Subresource::Status => {
            let mut out = old.clone();
            match new.get("status") {
                Some(s) => out["status"] = s.clone(),
                None => {
                    out.as_object_mut().map(|o| o.remove("status"));
                }
            }
            out["metadata"]["managedFields"] = new["metadata"]["managedFields"].clone();
            if new["metadata"]["managedFields"].is_null() {
                out["metadata"]
                    .as_object_mut()
                    .map(|m| m.remove("managedFields"));
            }
            out
        }
    }
}

/// Sets apiVersion to the version objects are stored in (conversion strategy None).
pub fn to_storage(rt: &ResourceType, mut obj: Value) -> Value {
    obj["apiVersion"] = json!(rt.api_version(&rt.storage_version));
    obj["kind"] = json!(rt.kind);
    obj
}

/// The object as served in `version`.
pub fn to_version(rt: &ResourceType, mut obj: Value, version: &str) -> Value {
    obj["apiVersion"] = json!(rt.api_version(version));
    obj
}

/// The autoscaling/v1 Scale view of an object with a scale subresource.
pub fn scale_of(rt: &ResourceType, obj: &Value) -> ApiResult<Value> {
    let Some(paths) = &rt.scale else {
        return Err(ApiError::not_found_path());
    };
    let md = &obj["metadata"];
    let selector = match &paths.label_selector {
        Some(p) => objects::at_path(obj, p).clone(),
        None => Value::Null,
    };
    let selector = match selector {
        Value::String(s) => s,
        _ => label_selector_string(&obj["spec"]["selector"]),
    };
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": md["name"], "namespace": md["namespace"], "uid": md["uid"],
            "resourceVersion": md["resourceVersion"], "creationTimestamp": md["creationTimestamp"],
        },
        "spec": {"replicas": objects::at_path(obj, &paths.spec_replicas).as_i64().unwrap_or(0)},
        "status": {
            "replicas": objects::at_path(obj, &paths.status_replicas).as_i64().unwrap_or(0),
            "selector": selector,
        },
    }))
}

/// Writes a changed Scale back into the object it views.
fn apply_scale(rt: &ResourceType, current: &Value, scale: &Value) -> ApiResult<Value> {
    let paths = rt.scale.as_ref().ok_or_else(ApiError::not_found_path)?;
    let Some(replicas) = scale["spec"]["replicas"].as_i64() else {
        return Err(ApiError::bad_request(
            "spec.replicas of the Scale must be an integer",
        ));
    };
    if replicas < 0 {
        return Err(ApiError::invalid_field(
            rt,
            objects::name(current),
            "spec.replicas",
            "FieldValueInvalid",
            &format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        ));
    }
    let mut out = current.clone();
    objects::set_path(&mut out, &paths.spec_replicas, json!(replicas));
    Ok(out)
}

/// A LabelSelector object in the string form Scale and kubectl use.
pub(crate) fn label_selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values = objects::string_list(&e["values"]).join(",");
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}
