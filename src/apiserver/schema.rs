//! What kube-apiserver's apiextensions machinery does with a CRD version's
//! structural `openAPIV3Schema` when a custom object is written: pruning of
//! unknown fields, defaulting, OpenAPI validation plus list-type uniqueness,
//! and list merge semantics for strategic merge / server-side apply.
//!
//! Error texts follow the real server (Kubernetes 1.33): kube-openapi's
//! messages wrapped in `field.Error` the way apiextensions does it, including
//! its quirks (a type error's bad value is the observed type name, composite
//! `anyOf`/`oneOf`/`allOf`/`not` errors have the path `<nil>`).
//!
//! Not done here: CEL rules (`x-kubernetes-validations`), validation ratcheting
//! on update, `metadata` checks of embedded resources, `patternProperties`,
//! tuple `items`, and exact string checks for the formats `uri`, `email`,
//! `hostname`, `isbn*`, `creditcard`, `ssn`, `rgbcolor`, `duration` and
//! `quantity` (accepted as any string).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use regex::Regex;
use serde_json::{Map, Number, Value};

use super::lists::{ListType, ListTypes};

// ---------------------------------------------------------------------------
// Field errors
// ---------------------------------------------------------------------------

/// The kind of a [`FieldError`]: one per `field.ErrorType` the schema produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    /// A value outside `enum`.
    Unsupported,
    TooLong,
    TooMany,
    /// A value of the wrong JSON type, or a string not in its `format`.
    TypeInvalid,
    /// A repeated item of an `x-kubernetes-list-type` set or map.
    Duplicate,
    /// A field the schema does not know; reported only in Strict field validation.
    UnknownField,
}

impl FieldErrorKind {
    fn label(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::Unsupported => "Unsupported value",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Duplicate => "Duplicate value",
            Self::UnknownField => "Unknown field",
        }
    }
}

/// One validation failure, like the server's `field.Error`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// Path from the object root, e.g. `spec.ports[0].port`.
    pub path: String,
    pub kind: FieldErrorKind,
    /// The bad value as the server reports it; `None` prints as the server's nil.
    pub value: Option<Value>,
    pub detail: String,
}

impl FieldError {
    fn new(
        kind: FieldErrorKind,
        path: impl Into<String>,
        value: Option<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            kind,
            value,
            detail: detail.into(),
        }
    }

    /// A field removed by [`prune`], for callers in Strict field validation.
    pub fn unknown_field(path: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::UnknownField, path, None, "")
    }

    /// The text of `field.Error.Error()`, e.g.
    /// `spec.type: Unsupported value: "Foo": supported values: "ClusterSetIP", "Headless"`.
    /// An unknown field reads `unknown field "spec.foo"`, as in a strict decoding error.
    pub fn message(&self) -> String {
        match self.kind {
            FieldErrorKind::UnknownField => self.body(),
            _ => format!("{}: {}", self.path, self.body()),
        }
    }

    /// The text of `field.Error.ErrorBody()`: the message without the path,
    /// which is what a `StatusCause` carries.
    pub fn body(&self) -> String {
        let label = self.kind.label();
        let mut body = match self.kind {
            FieldErrorKind::UnknownField => {
                return format!("unknown field {}", go_quote(&self.path))
            }
            // The server never prints the value of these two.
            FieldErrorKind::Required | FieldErrorKind::TooLong => label.to_string(),
            _ => format!(
                "{label}: {}",
                go_value(self.value.as_ref().unwrap_or(&Value::Null))
            ),
        };
        if !self.detail.is_empty() {
            body.push_str(": ");
            body.push_str(&self.detail);
        }
        body
    }

    /// The `StatusCause` reason (`metav1.CauseType`). The server reports unknown
    /// fields as a plain bad request without causes; they get `FieldValueInvalid`.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid | FieldErrorKind::UnknownField => "FieldValueInvalid",
            FieldErrorKind::Unsupported => "FieldValueNotSupported",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::TypeInvalid => "FieldValueTypeInvalid",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// The server's message for a write rejected in Strict field validation
/// because [`prune`] removed these fields.
pub fn strict_decoding_message(pruned: &[String]) -> String {
    let fields: Vec<String> = pruned
        .iter()
        .map(|p| FieldError::unknown_field(p.as_str()).message())
        .collect();
    format!("strict decoding error: {}", fields.join(", "))
}

// ---------------------------------------------------------------------------
// Go formatting: the server prints values with fmt's %q, %v and %#v
// ---------------------------------------------------------------------------

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` of a float64: shortest digits, exponent form from 1e+06 or below 1e-04.
fn go_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return format!("{f}");
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{f}")
}

fn go_number(n: &Number) -> String {
    match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => i.to_string(),
        (None, Some(u)) => u.to_string(),
        _ => go_float(n.as_f64().unwrap_or(0.0)),
    }
}

/// How `field.Error` prints a bad value: strings quoted, scalars plain, the
/// rest as Go's `%#v`; nil becomes the string "null".
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => go_quote("null"),
        Value::String(s) => go_quote(s),
        Value::Number(n) => go_number(n),
        Value::Bool(b) => b.to_string(),
        Value::Array(_) | Value::Object(_) => go_sharp(v),
    }
}

/// Go's `%#v` of a decoded JSON value (maps print with sorted keys).
fn go_sharp(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".to_string(),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let entries: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", go_quote(k), go_sharp(&m[k.as_str()])))
                .collect();
            format!("map[string]interface {{}}{{{}}}", entries.join(", "))
        }
        Value::Array(items) => {
            let entries: Vec<String> = items.iter().map(go_sharp).collect();
            format!("[]interface {{}}{{{}}}", entries.join(", "))
        }
        scalar => go_value(scalar),
    }
}

// ---------------------------------------------------------------------------
// Schema access
// ---------------------------------------------------------------------------

/// A schema node; every accessor tolerates missing or malformed keywords.
#[derive(Clone, Copy)]
struct Sch<'a>(&'a Value);

impl<'a> Sch<'a> {
    fn get(self, key: &str) -> Option<&'a Value> {
        self.0.get(key)
    }

    fn sub(self, key: &str) -> Option<Sch<'a>> {
        self.get(key).filter(|v| v.is_object()).map(Sch)
    }

    fn flag(self, key: &str) -> bool {
        self.get(key).and_then(Value::as_bool).unwrap_or(false)
    }

    fn text(self, key: &str) -> &'a str {
        self.get(key).and_then(Value::as_str).unwrap_or("")
    }

    fn num(self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    fn count(self, key: &str) -> Option<i64> {
        let v = self.get(key)?;
        v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
    }

    fn list(self, key: &str) -> &'a [Value] {
        self.get(key)
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    fn props(self) -> Option<&'a Map<String, Value>> {
        self.get("properties").and_then(Value::as_object)
    }

    fn prop(self, name: &str) -> Option<Sch<'a>> {
        self.props()?.get(name).filter(|v| v.is_object()).map(Sch)
    }

    fn items(self) -> Option<Sch<'a>> {
        self.sub("items")
    }

    /// `additionalProperties` when it is a schema rather than a bool.
    fn additional(self) -> Option<Sch<'a>> {
        self.sub("additionalProperties")
    }

    /// The schema of a key of this object: its property, else `additionalProperties`.
    fn field(self, name: &str) -> Option<Sch<'a>> {
        self.prop(name).or_else(|| self.additional())
    }

    fn nullable(self) -> bool {
        self.flag("nullable")
    }

    /// A `default: null` is no default, as in the server.
    fn default(self) -> Option<&'a Value> {
        self.get("default").filter(|d| !d.is_null())
    }

    fn preserves_unknown(self) -> bool {
        self.flag("x-kubernetes-preserve-unknown-fields")
    }

    fn embedded(self) -> bool {
        self.flag("x-kubernetes-embedded-resource")
    }

    fn int_or_string(self) -> bool {
        self.flag("x-kubernetes-int-or-string")
    }

    /// The allowed JSON types; int-or-string is the server's `[integer, string]`.
    fn types(self) -> Vec<&'a str> {
        if self.int_or_string() {
            return vec!["integer", "string"];
        }
        match self.text("type") {
            "" => Vec::new(),
            t => vec![t],
        }
    }
}

fn is_meta_field(key: &str) -> bool {
    matches!(key, "apiVersion" | "kind" | "metadata")
}

/// A child of a kube-openapi path: root children have no leading dot.
fn child_name(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

// ---------------------------------------------------------------------------
// Pruning
// ---------------------------------------------------------------------------

/// Removes fields not in the schema, except under
/// `x-kubernetes-preserve-unknown-fields` or `additionalProperties`, and returns
/// the removed paths sorted (e.g. `spec.foo`, `spec.ports[0].bar`). `apiVersion`,
/// `kind` and `metadata` of the root and of embedded resources are left alone.
/// `additionalProperties: true` keeps the values under it whole.
pub fn prune(obj: &mut Value, schema: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    prune_value(obj, Some(Sch(schema)), true, "", &mut pruned);
    pruned.sort();
    pruned
}

/// What the schema says about one key of an object.
enum FieldSchema<'a> {
    Known(Sch<'a>),
    Anything,
    Unknown,
}

fn field_schema<'a>(s: Sch<'a>, key: &str) -> FieldSchema<'a> {
    if let Some(p) = s.prop(key) {
        return FieldSchema::Known(p);
    }
    match s.get("additionalProperties") {
        Some(v @ Value::Object(_)) => FieldSchema::Known(Sch(v)),
        Some(Value::Bool(true)) => FieldSchema::Anything,
        _ => FieldSchema::Unknown,
    }
}

fn prune_value(x: &mut Value, s: Option<Sch>, root: bool, path: &str, pruned: &mut Vec<String>) {
    if let Some(s) = s.filter(|s| s.preserves_unknown()) {
        return keep_unknown(x, s, root, path, pruned);
    }
    match x {
        Value::Object(m) => prune_object(m, s, root, path, pruned),
        Value::Array(items) => {
            let item_schema = s.and_then(Sch::items);
            for (i, v) in items.iter_mut().enumerate() {
                prune_value(v, item_schema, false, &format!("{path}[{i}]"), pruned);
            }
        }
        _ => {}
    }
}

fn prune_object(
    m: &mut Map<String, Value>,
    s: Option<Sch>,
    root: bool,
    path: &str,
    pruned: &mut Vec<String>,
) {
    let embedded = root || s.is_some_and(Sch::embedded);
    m.retain(|key, v| {
        if embedded && is_meta_field(key) {
            return true;
        }
        let child = child_name(path, key);
        match s.map_or(FieldSchema::Unknown, |s| field_schema(s, key)) {
            FieldSchema::Known(sub) => prune_value(v, Some(sub), false, &child, pruned),
            FieldSchema::Anything => {}
            FieldSchema::Unknown => {
                pruned.push(child);
                return false;
            }
        }
        true
    });
}

/// Below `x-kubernetes-preserve-unknown-fields` unknown keys stay, but the
/// known ones are still pruned by their own schemas.
fn keep_unknown(x: &mut Value, s: Sch, root: bool, path: &str, pruned: &mut Vec<String>) {
    match x {
        Value::Object(m) => {
            let embedded = root || s.embedded();
            for (key, v) in m.iter_mut() {
                if embedded && is_meta_field(key) {
                    continue;
                }
                if let FieldSchema::Known(sub) = field_schema(s, key) {
                    prune_value(v, Some(sub), false, &child_name(path, key), pruned);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = s.items() else { return };
            for (i, v) in items.iter_mut().enumerate() {
                keep_unknown(v, item_schema, false, &format!("{path}[{i}]"), pruned);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Defaulting
// ---------------------------------------------------------------------------

/// Applies `default` values like the server: first a null in a non-nullable
/// field without a default is dropped, then missing fields (and nulls in
/// non-nullable ones) get their defaults, and defaulting recurses into every
/// value, defaulted ones included. Nulls in nullable fields are kept.
pub fn apply_defaults(obj: &mut Value, schema: &Value) {
    drop_nulls_without_default(obj, Some(Sch(schema)));
    default_value(obj, Sch(schema));
}

fn drop_nulls_without_default(x: &mut Value, s: Option<Sch>) {
    match x {
        Value::Object(m) => m.retain(|key, v| {
            let sub = s.and_then(|s| s.field(key));
            if v.is_null() && sub.is_some_and(|sub| !sub.nullable() && sub.default().is_none()) {
                return false;
            }
            drop_nulls_without_default(v, sub);
            true
        }),
        Value::Array(items) => {
            let sub = s.and_then(Sch::items);
            items
                .iter_mut()
                .for_each(|v| drop_nulls_without_default(v, sub));
        }
        _ => {}
    }
}

fn default_value(x: &mut Value, s: Sch) {
    match x {
        Value::Object(m) => default_object(m, s),
        Value::Array(items) => {
            let Some(item_schema) = s.items() else { return };
            for v in items {
                fill_null(v, item_schema);
                default_value(v, item_schema);
            }
        }
        _ => {}
    }
}

fn default_object(m: &mut Map<String, Value>, s: Sch) {
    for (key, p) in s.props().into_iter().flatten() {
        let p = Sch(p);
        let Some(default) = p.default() else { continue };
        if m.get(key).is_none_or(|v| v.is_null() && !p.nullable()) {
            m.insert(key.clone(), default.clone());
        }
    }
    let additional = s.additional();
    for (key, v) in m.iter_mut() {
        if let Some(p) = s.prop(key) {
            default_value(v, p);
        } else if let Some(a) = additional {
            fill_null(v, a);
            default_value(v, a);
        }
    }
}

fn fill_null(v: &mut Value, s: Sch) {
    if v.is_null() && !s.nullable() {
        if let Some(default) = s.default() {
            *v = default.clone();
        }
    }
}

// ---------------------------------------------------------------------------
// Validation (kube-openapi)
// ---------------------------------------------------------------------------

/// Validates `obj` against the schema and the list-type uniqueness rules,
/// returning every error in the server's order: OpenAPI errors first (per
/// value: type, allOf/anyOf/oneOf/not, string, format, number, array, enum,
/// object), then duplicate list items.
pub fn validate(obj: &Value, schema: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_value(obj, Sch(schema), "", &mut errs);
    list_errors(obj, Sch(schema), "", &mut errs);
    errs
}

/// The `field.Error` path of a kube-openapi error name: a required root field
/// is named with a leading dot, and a nameless error gets the nil path.
fn error_path(name: &str) -> String {
    match name {
        "" | "." => "<nil>".to_string(),
        n => n.strip_prefix('.').unwrap_or(n).to_string(),
    }
}

fn push(
    errs: &mut Vec<FieldError>,
    kind: FieldErrorKind,
    name: &str,
    value: Option<Value>,
    detail: String,
) {
    errs.push(FieldError::new(kind, error_path(name), value, detail));
}

fn validate_value(data: &Value, s: Sch, name: &str, errs: &mut Vec<FieldError>) {
    check_type(data, s, name, errs);
    if data.is_null() {
        // Unlike the server, a null in a nullable enum field passes.
        if !s.nullable() {
            check_enum(data, s, name, errs);
        }
        return;
    }
    check_junctors(data, s, name, errs);
    match data {
        Value::String(text) => {
            check_string(text, s, name, errs);
            check_format(text, s, name, errs);
        }
        Value::Number(n) => check_number(n, s, name, errs),
        Value::Array(items) => check_array(items, s, name, errs),
        _ => {}
    }
    check_enum(data, s, name, errs);
    if let Value::Object(m) = data {
        check_object(m, s, name, errs);
    }
}

/// The JSON type of a decoded value and the Go format kube-openapi infers for it.
fn json_type(data: &Value) -> (&'static str, &'static str) {
    match data {
        Value::Null => ("null", ""),
        Value::Bool(_) => ("boolean", ""),
        Value::Number(n) if n.is_i64() => ("integer", "int64"),
        Value::Number(_) => ("number", "float64"),
        Value::String(_) => ("string", ""),
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
    }
}

/// JSON numbers are floats; a whole one within 2^53 is an integer too.
fn is_json_integer(f: f64) -> bool {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    f.is_finite() && f.abs() <= MAX_SAFE && f.fract() == 0.0
}

/// kube-openapi's type validator, quirks included: a schema format other than
/// the data's own is reported as the expected type, and a non-numeric schema
/// with a format accepts any string or array.
fn check_type(data: &Value, s: Sch, name: &str, errs: &mut Vec<FieldError>) {
    let types = s.types();
    let format = effective_format(s);
    if types.is_empty() && format.is_empty() {
        return;
    }
    if data.is_null() {
        if !types.is_empty() && !s.nullable() {
            type_invalid(errs, name, &types.join(","), "null");
        }
        return;
    }
    let (observed, observed_format) = json_type(data);
    let allows = |t: &str| types.contains(&t);
    let float_int =
        observed == "number" && allows("integer") && data.as_f64().is_some_and(is_json_integer);
    let int_float = observed == "integer" && allows("number");
    let matches = allows(observed) || float_int || int_float;
    let string_like = data.is_string() || data.is_array();
    if !(string_like || format.is_empty() || matches || observed_format == format) {
        return type_invalid(errs, name, format, observed_format);
    }
    let format_excuses =
        string_like && !format.is_empty() && !allows("integer") && !allows("number");
    if !matches && !format_excuses {
        type_invalid(errs, name, &types.join(","), observed);
    }
}

fn type_invalid(errs: &mut Vec<FieldError>, name: &str, expected: &str, observed: &str) {
    let detail = format!(
        "{name} in body must be of type {expected}: {}",
        go_quote(observed)
    );
    push(
        errs,
        FieldErrorKind::TypeInvalid,
        name,
        Some(observed.into()),
        detail,
    );
}

/// Composite errors of allOf/anyOf/oneOf/not lose their path in the server.
fn composite(detail: String) -> FieldError {
    FieldError::new(FieldErrorKind::Invalid, "<nil>", Some("".into()), detail)
}

fn check_junctors(data: &Value, s: Sch, name: &str, errs: &mut Vec<FieldError>) {
    // Built only for an error: this runs for every value of every object written.
    let quoted = || go_quote(name);
    let branch = |b: &Value| {
        let mut found = Vec::new();
        validate_value(data, Sch(b), name, &mut found);
        found
    };
    let any_of: Vec<_> = s.list("anyOf").iter().map(branch).collect();
    if !any_of.is_empty() && any_of.iter().all(|r| !r.is_empty()) {
        errs.push(composite(format!(
            "{} must validate at least one schema (anyOf)",
            quoted()
        )));
        errs.extend(closest(any_of));
    }
    let one_of: Vec<_> = s.list("oneOf").iter().map(branch).collect();
    let valid = one_of.iter().filter(|r| r.is_empty()).count();
    if !one_of.is_empty() && valid != 1 {
        let found = match valid {
            0 => "Found none valid".to_string(),
            n => format!("Found {n} valid alternatives"),
        };
        errs.push(composite(format!(
            "{} must validate one and only one schema (oneOf). {found}",
            quoted()
        )));
        if valid == 0 {
            errs.extend(closest(one_of));
        }
    }
    let all_of: Vec<_> = s.list("allOf").iter().map(branch).collect();
    let valid = all_of.iter().filter(|r| r.is_empty()).count();
    let total = all_of.len();
    errs.extend(all_of.into_iter().flatten());
    if valid != total {
        let none = if valid == 0 { ". None validated" } else { "" };
        errs.push(composite(format!(
            "{} must validate all the schemas (allOf){none}",
            quoted()
        )));
    }
    if s.get("not").is_some_and(|not| branch(not).is_empty()) {
        errs.push(composite(format!(
            "{} must not validate the schema (not)",
            quoted()
        )));
    }
}

/// The errors of the failed branch that came closest. The server ranks
/// branches by checks passed; fewest errors is a cheap stand-in.
fn closest(results: Vec<Vec<FieldError>>) -> Vec<FieldError> {
    results.into_iter().min_by_key(Vec::len).unwrap_or_default()
}

/// Like the server, stops at the first failing keyword of a string.
fn check_string(text: &str, s: Sch, name: &str, errs: &mut Vec<FieldError>) {
    let len = i64::try_from(text.chars().count()).unwrap_or(i64::MAX);
    if let Some(max) = s.count("maxLength").filter(|max| len > *max) {
        return push(
            errs,
            FieldErrorKind::TooLong,
            name,
            None,
            format!("may not be more than {max} bytes"),
        );
    }
    if let Some(min) = s.count("minLength").filter(|min| len < *min) {
        let detail = format!("{name} in body should be at least {min} chars long");
        return push(
            errs,
            FieldErrorKind::Invalid,
            name,
            Some(text.into()),
            detail,
        );
    }
    let pattern = s.text("pattern");
    if pattern.is_empty() {
        return;
    }
    let detail = match cached_regex(pattern) {
        Ok(re) if re.is_match(text) => return,
        Ok(_) => format!("{name} in body should match '{pattern}'"),
        Err(e) => format!("{name} in body should match '{pattern}, but pattern is invalid: {e}'"),
    };
    push(
        errs,
        FieldErrorKind::Invalid,
        name,
        Some(text.into()),
        detail,
    );
}

fn check_format(text: &str, s: Sch, name: &str, errs: &mut Vec<FieldError>) {
    let format = effective_format(s);
    if format.is_empty() || format_ok(&normalize_format(format), text) {
        return;
    }
    let detail = format!(
        "{name} in body must be of type {format}: {}",
        go_quote(text)
    );
    push(
        errs,
        FieldErrorKind::TypeInvalid,
        name,
        Some(text.into()),
        detail,
    );
}

fn check_number(n: &Number, s: Sch, name: &str, errs: &mut Vec<FieldError>) {
    if let Some(factor) = s.num("multipleOf") {
        check_multiple(n, factor, name, errs);
    }
    if let Some(min) = s.num("minimum") {
        check_bound(n, min, true, s.flag("exclusiveMinimum"), name, errs);
    }
    if let Some(max) = s.num("maximum") {
        check_bound(n, max, false, s.flag("exclusiveMaximum"), name, errs);
    }
}

fn out_of_bound(ord: Ordering, lower: bool, exclusive: bool) -> bool {
    match ord {
        Ordering::Equal => exclusive,
        Ordering::Less => lower,
        Ordering::Greater => !lower,
    }
}

/// Integers are compared with the bound truncated to an integer, as the server does.
fn check_bound(
    n: &Number,
    bound: f64,
    lower: bool,
    exclusive: bool,
    name: &str,
    errs: &mut Vec<FieldError>,
) {
    let (fails, shown) = match n.as_i64() {
        Some(v) => {
            let b = bound as i64;
            (out_of_bound(v.cmp(&b), lower, exclusive), b.to_string())
        }
        None => {
            let v = n.as_f64().unwrap_or(0.0);
            let ord = v.partial_cmp(&bound).unwrap_or(Ordering::Equal);
            (out_of_bound(ord, lower, exclusive), go_float(bound))
        }
    };
    if !fails {
        return;
    }
    let relation = match (lower, exclusive) {
        (true, false) => "greater than or equal to",
        (true, true) => "greater than",
        (false, false) => "less than or equal to",
        (false, true) => "less than",
    };
    let detail = format!("{name} in body should be {relation} {shown}");
    push(
        errs,
        FieldErrorKind::Invalid,
        name,
        Some(Value::Number(n.clone())),
        detail,
    );
}

fn check_multiple(n: &Number, factor: f64, name: &str, errs: &mut Vec<FieldError>) {
    // The CRD itself may not have a non-positive multipleOf.
    if factor <= 0.0 {
        return;
    }
    let int_factor = factor as i64;
    let (ok, shown) = match n.as_i64() {
        Some(v) if int_factor != 0 => (v % int_factor == 0, int_factor.to_string()),
        _ => {
            let v = n.as_f64().unwrap_or(0.0);
            let ratio = if factor < 1.0 {
                1.0 / factor * v
            } else {
                v / factor
            };
            (is_json_integer(ratio), go_float(factor))
        }
    };
    if !ok {
        let detail = format!("{name} in body should be a multiple of {shown}");
        push(
            errs,
            FieldErrorKind::Invalid,
            name,
            Some(Value::Number(n.clone())),
            detail,
        );
    }
}

fn check_array(items: &[Value], s: Sch, name: &str, errs: &mut Vec<FieldError>) {
    if let Some(item_schema) = s.items() {
        for (i, v) in items.iter().enumerate() {
            validate_value(v, item_schema, &format!("{name}[{i}]"), errs);
        }
    }
    let size = i64::try_from(items.len()).unwrap_or(i64::MAX);
    if let Some(min) = s.count("minItems").filter(|min| size < *min) {
        let detail = format!("{name} in body should have at least {min} items");
        push(
            errs,
            FieldErrorKind::Invalid,
            name,
            Some(size.into()),
            detail,
        );
    }
    if let Some(max) = s.count("maxItems").filter(|max| size > *max) {
        push(
            errs,
            FieldErrorKind::TooMany,
            name,
            Some(size.into()),
            format!("must have at most {max} items"),
        );
    }
    if s.flag("uniqueItems") && has_duplicates(items) {
        let detail = format!("{name} in body shouldn't contain duplicates");
        push(errs, FieldErrorKind::Invalid, name, Some("".into()), detail);
    }
}

fn has_duplicates(items: &[Value]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, a)| items[..i].contains(a))
}

fn check_enum(data: &Value, s: Sch, name: &str, errs: &mut Vec<FieldError>) {
    let allowed = s.list("enum");
    if allowed.is_empty() || allowed.iter().any(|a| enum_matches(data, a)) {
        return;
    }
    // Like the server: string values verbatim, others as JSON, all quoted.
    let quoted: Vec<String> = allowed
        .iter()
        .map(|a| go_quote(&a.as_str().map_or_else(|| a.to_string(), str::to_string)))
        .collect();
    let detail = format!("supported values: {}", quoted.join(", "));
    push(
        errs,
        FieldErrorKind::Unsupported,
        name,
        Some(data.clone()),
        detail,
    );
}

/// Numbers compare by value (the server converts to the enum's float64);
/// nothing matches a null.
fn enum_matches(data: &Value, allowed: &Value) -> bool {
    match (data, allowed) {
        (Value::Null, _) => false,
        (Value::Number(a), Value::Number(b)) => {
            a.as_f64().partial_cmp(&b.as_f64()) == Some(Ordering::Equal)
        }
        _ => data == allowed,
    }
}

fn check_object(m: &Map<String, Value>, s: Sch, name: &str, errs: &mut Vec<FieldError>) {
    let size = i64::try_from(m.len()).unwrap_or(i64::MAX);
    // The server checks nothing else in an object with too few or too many properties.
    if let Some(min) = s.count("minProperties").filter(|min| size < *min) {
        let detail = format!("{name} in body should have at least {min} properties");
        return push(
            errs,
            FieldErrorKind::Invalid,
            name,
            Some(size.into()),
            detail,
        );
    }
    if let Some(max) = s.count("maxProperties").filter(|max| size > *max) {
        let detail = format!("must have at most {max} items");
        return push(
            errs,
            FieldErrorKind::TooMany,
            name,
            Some(size.into()),
            detail,
        );
    }
    check_additional(m, s, name, errs);
    for (key, sub) in s.props().into_iter().flatten() {
        if let (Some(v), true) = (m.get(key), sub.is_object()) {
            validate_value(v, Sch(sub), &child_name(name, key), errs);
        }
    }
    for key in s.list("required").iter().filter_map(Value::as_str) {
        if !m.contains_key(key) {
            push(
                errs,
                FieldErrorKind::Required,
                &format!("{name}.{key}"),
                None,
                String::new(),
            );
        }
    }
}

/// Map values are named `path.key` here; the list-type checks use `path[key]`.
fn check_additional(m: &Map<String, Value>, s: Sch, name: &str, errs: &mut Vec<FieldError>) {
    let known = |key: &str| s.props().is_some_and(|p| p.contains_key(key));
    match s.get("additionalProperties") {
        Some(Value::Bool(false)) => {
            for key in m.keys().filter(|k| !known(k)) {
                let detail = format!("{name}.{key} in body is a forbidden property");
                push(
                    errs,
                    FieldErrorKind::Invalid,
                    name,
                    Some(key.as_str().into()),
                    detail,
                );
            }
        }
        Some(sub @ Value::Object(_)) => {
            for (key, v) in m.iter().filter(|(k, _)| !known(k)) {
                validate_value(v, Sch(sub), &format!("{name}.{key}"), errs);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Validation (x-kubernetes-list-type uniqueness)
// ---------------------------------------------------------------------------

/// Walks properties, `additionalProperties` and items only, like the server,
/// with `field.Path` names (`spec.labels[key]`, `spec.ports[0]`).
fn list_errors(data: &Value, s: Sch, path: &str, errs: &mut Vec<FieldError>) {
    match data {
        Value::Object(m) => {
            if let Some(a) = s.additional() {
                for (key, v) in m {
                    list_errors(v, a, &format!("{path}[{key}]"), errs);
                }
            }
            for (key, v) in m {
                if let Some(p) = s.prop(key) {
                    list_errors(v, p, &child_name(path, key), errs);
                }
            }
        }
        Value::Array(items) => {
            match s.text("x-kubernetes-list-type") {
                "set" => set_duplicates(items, path, errs),
                "map" => map_duplicates(items, s, path, errs),
                _ => {}
            }
            let Some(item_schema) = s.items() else { return };
            for (i, v) in items.iter().enumerate() {
                list_errors(v, item_schema, &format!("{path}[{i}]"), errs);
            }
        }
        _ => {}
    }
}

fn set_duplicates(items: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for i in second_appearances(items.iter().map(canonical)) {
        errs.push(FieldError::new(
            FieldErrorKind::Duplicate,
            format!("{path}[{i}]"),
            Some(items[i].clone()),
            "",
        ));
    }
}

fn map_duplicates(items: &[Value], s: Sch, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(i) = items.iter().position(|x| !x.is_null() && !x.is_object()) {
        let detail = "must be an object for an array of list-type map";
        errs.push(FieldError::new(
            FieldErrorKind::Invalid,
            format!("{path}[{i}]"),
            Some(items[i].clone()),
            detail,
        ));
        return;
    }
    let key_fields: Vec<&str> = s
        .list("x-kubernetes-list-map-keys")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let keys: Vec<Value> = items.iter().map(|x| map_key(x, &key_fields)).collect();
    for i in second_appearances(keys.iter().map(canonical)) {
        errs.push(FieldError::new(
            FieldErrorKind::Duplicate,
            format!("{path}[{i}]"),
            Some(keys[i].clone()),
            "",
        ));
    }
}

/// The key of a list-map item: those key fields it has. A null item has the
/// empty key, as in the server.
fn map_key(item: &Value, fields: &[&str]) -> Value {
    let mut key = Map::new();
    for field in fields {
        if let Some(v) = item.get(*field) {
            key.insert((*field).to_string(), v.clone());
        }
    }
    Value::Object(key)
}

/// The server reports only the second appearance of each repeated key.
fn second_appearances(keys: impl Iterator<Item = String>) -> Vec<usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    keys.enumerate()
        .filter_map(|(i, key)| {
            let count = seen.entry(key).or_insert(0);
            *count += 1;
            (*count == 2).then_some(i)
        })
        .collect()
}

/// JSON text with sorted keys, so that equal objects compare equal whatever their key order.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let entries: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::from(k.as_str()), canonical(&m[k.as_str()])))
                .collect();
            format!("{{{}}}", entries.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        scalar => scalar.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Formats
// ---------------------------------------------------------------------------

/// String formats the server validates in CRDs (names without dashes); any
/// other format on a string is ignored.
const STRING_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "quantity",
];

fn normalize_format(format: &str) -> String {
    format.replace('-', "")
}

/// The format the server keeps after stripping those it does not support for the type.
fn effective_format(s: Sch<'_>) -> &str {
    let format = s.text("format");
    if format.is_empty() {
        return "";
    }
    let types = s.types();
    let kept = match types.as_slice() {
        [] | ["string"] | [_, _, ..] => STRING_FORMATS.contains(&normalize_format(format).as_str()),
        ["integer"] => matches!(format, "int32" | "int64"),
        ["number"] => matches!(format, "float" | "double"),
        _ => false,
    };
    if kept {
        format
    } else {
        ""
    }
}

fn format_ok(format: &str, text: &str) -> bool {
    match format {
        "datetime" => is_date_time(text),
        "date" => is_date(text),
        "ipv4" => text.parse::<IpAddr>().is_ok() && text.contains('.'),
        "ipv6" => text.parse::<IpAddr>().is_ok() && text.contains(':'),
        "cidr" => is_cidr(text),
        "byte" => is_base64(text),
        "uuid" | "uuid3" | "uuid4" | "uuid5" | "mac" | "hexcolor" | "bsonobjectid" => {
            cached_regex(format_regex(format)).is_ok_and(|re| re.is_match(text))
        }
        _ => true,
    }
}

fn format_regex(format: &str) -> &'static str {
    match format {
        "uuid" => r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
        "uuid3" => r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
        "uuid4" => r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
        "uuid5" => r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
        "mac" => {
            r"^(?:[0-9A-Fa-f]{2}[:-]){5}(?:(?:[0-9A-Fa-f]{2}[:-]){2})?[0-9A-Fa-f]{2}$|^(?:[0-9A-Fa-f]{4}\.){2,4}[0-9A-Fa-f]{4}$"
        }
        "hexcolor" => r"^#?(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$",
        _ => r"^[0-9a-fA-F]{24}$",
    }
}

/// RFC 3339 full-date with a real calendar day.
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits(0..4)
        || !digits(5..7)
        || !digits(8..10)
    {
        return false;
    }
    let number = |r: std::ops::Range<usize>| text[r].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// strfmt's check: a date, `T`, and a time with zone, case-insensitive.
fn is_date_time(text: &str) -> bool {
    let lower = text.to_lowercase();
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(re) =
        cached_regex(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$")
    else {
        return false;
    };
    let Some(c) = re.captures(time) else {
        return false;
    };
    is_date(date) && &c[1] <= "23" && &c[2] <= "59" && &c[3] <= "59"
}

fn is_cidr(text: &str) -> bool {
    let Some((ip, bits)) = text.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    !bits.is_empty()
        && bits.bytes().all(|b| b.is_ascii_digit())
        && bits.parse::<u32>().is_ok_and(|n| n <= max)
}

/// Standard padded base64; line breaks are ignored as Go's decoder does.
fn is_base64(text: &str) -> bool {
    let b: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'\r' && *c != b'\n')
        .collect();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let body = b.iter().rposition(|c| *c != b'=').map_or(0, |i| i + 1);
    let alphabet = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    b.len() - body <= 2 && b[..body].iter().all(alphabet)
}

/// A pattern compiled, or why it does not compile.
type Compiled = Result<Arc<Regex>, String>;

/// Compiled patterns, shared by all schemas: CRD patterns are few and reused
/// on every write. Shared, not cloned: a cloned `Regex` starts with an empty search
/// cache, which it then builds again on every write.
fn cached_regex(pattern: &str) -> Compiled {
    static CACHE: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock();
    if let Some(hit) = cache.get(pattern) {
        return hit.clone();
    }
    // Only an abusive stream of distinct patterns reaches this bound.
    if cache.len() >= 1024 {
        cache.clear();
    }
    let compiled = Regex::new(pattern)
        .map(Arc::new)
        .map_err(|e| regex_error(&e));
    cache.insert(pattern.to_string(), compiled.clone());
    compiled
}

/// A one-line reason, like Go's `error parsing regexp: ...`.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let reason = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.trim());
    format!("error parsing regexp: {reason}")
}

// ---------------------------------------------------------------------------
// List semantics for merges
// ---------------------------------------------------------------------------

/// Merge semantics of a custom resource's lists, from `x-kubernetes-list-type`
/// and `x-kubernetes-list-map-keys` in its schema.
pub struct SchemaLists {
    schema: Arc<Value>,
}

impl SchemaLists {
    pub fn new(schema: Arc<Value>) -> Self {
        Self { schema }
    }
}

impl ListTypes for SchemaLists {
    fn list_type(&self, path: &[&str]) -> ListType {
        list_field(Sch(&self.schema), path).map_or(ListType::Atomic, declared_list_type)
    }
}

/// The schema at a path whose list indices are left out: lists on the way are
/// stepped through to their items.
fn list_field<'a>(s: Sch<'a>, path: &[&str]) -> Option<Sch<'a>> {
    path.iter()
        .try_fold(s, |node, segment| skip_items(node).field(segment))
}

fn skip_items(mut s: Sch) -> Sch {
    while let Some(items) = s.items() {
        s = items;
    }
    s
}

/// Lists without a usable declaration are atomic, as for the server.
fn declared_list_type(s: Sch) -> ListType {
    match s.text("x-kubernetes-list-type") {
        "set" => ListType::Set,
        "map" => {
            let keys: Vec<String> = s
                .list("x-kubernetes-list-map-keys")
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            if keys.is_empty() {
                ListType::Atomic
            } else {
                ListType::Map(keys)
            }
        }
        _ => ListType::Atomic,
    }
}

// ---------------------------------------------------------------------------
// Structural schema check
// ---------------------------------------------------------------------------

/// Why a CRD version's `openAPIV3Schema` cannot be used, as the server's
/// message (paths start at `openAPIV3Schema`; several errors read `[a, b]`),
/// or `None` when it is usable. Checks the main structural rules only.
pub fn is_structural_error(schema: &Value) -> Option<String> {
    let errs = structural_errors(schema, "openAPIV3Schema");
    match errs.len() {
        0 => None,
        1 => errs.into_iter().next(),
        _ => Some(format!("[{}]", errs.join(", "))),
    }
}

/// The structural errors of a schema, sorted, with paths under `prefix`
/// (the server uses `spec.versions[0].schema.openAPIV3Schema`).
pub fn structural_errors(schema: &Value, prefix: &str) -> Vec<String> {
    let mut errs = Vec::new();
    structural_node(schema, Level::Root, prefix, &mut errs);
    errs.sort();
    errs.dedup();
    errs
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

const SCHEMA_TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

fn quoted_list(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| go_quote(v))
        .collect::<Vec<_>>()
        .join(", ")
}

fn structural_node(v: &Value, level: Level, path: &str, errs: &mut Vec<String>) {
    if !v.is_object() {
        errs.push(format!(
            "{path}: Invalid value: {}: must be a schema object",
            go_value(v)
        ));
        return;
    }
    let s = Sch(v);
    structural_type(s, level, path, errs);
    structural_keywords(s, path, errs);
    structural_children(s, level, path, errs);
}

fn structural_type(s: Sch, level: Level, path: &str, errs: &mut Vec<String>) {
    let ty = s.text("type");
    if !ty.is_empty() && !SCHEMA_TYPES.contains(&ty) {
        let supported = quoted_list(SCHEMA_TYPES);
        errs.push(format!(
            "{path}.type: Unsupported value: {}: supported values: {supported}",
            go_quote(ty)
        ));
    }
    if ty == "array" && s.items().is_none() {
        errs.push(format!("{path}.items: Required value: must be specified"));
    }
    if s.embedded() && ty != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        errs.push(match ty {
            "" => format!("{path}.type: Required value: {detail}"),
            t => format!("{path}.type: Invalid value: {}: {detail}", go_quote(t)),
        });
    } else if ty.is_empty() && !s.int_or_string() && !s.preserves_unknown() {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(format!("{path}.type: Required value: {detail}"));
    }
    if level == Level::Root && !ty.is_empty() && ty != "object" {
        errs.push(format!(
            "{path}.type: Invalid value: {}: must be object at the root",
            go_quote(ty)
        ));
    }
}

fn structural_keywords(s: Sch, path: &str, errs: &mut Vec<String>) {
    if s.int_or_string() && s.preserves_unknown() {
        errs.push(format!(
            "{path}.x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true"
        ));
    }
    match s.get("x-kubernetes-list-type").map(|t| t.as_str().unwrap_or("")) {
        None | Some("atomic" | "set") => {}
        Some("map") if s.list("x-kubernetes-list-map-keys").is_empty() => errs.push(format!(
            "{path}.x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"
        )),
        Some("map") => {}
        Some(other) => errs.push(format!(
            "{path}.x-kubernetes-list-type: Unsupported value: {}: supported values: {}",
            go_quote(other),
            quoted_list(&["atomic", "map", "set"])
        )),
    }
    if s.flag("uniqueItems") {
        errs.push(format!(
            "{path}.uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
        ));
    }
    let pattern = s.text("pattern");
    if let Err(e) = cached_regex(pattern) {
        errs.push(format!(
            "{path}.pattern: Invalid value: {}: must be a valid regular expression, but isn't: {e}",
            go_quote(pattern)
        ));
    }
}

fn structural_children(s: Sch, level: Level, path: &str, errs: &mut Vec<String>) {
    if let Some(items) = s.get("items") {
        structural_node(items, Level::Item, &format!("{path}.items"), errs);
    }
    for (key, sub) in s.props().into_iter().flatten() {
        structural_node(
            sub,
            Level::Field,
            &format!("{path}.properties[{key}]"),
            errs,
        );
    }
    let Some(additional) = s.get("additionalProperties") else {
        return;
    };
    if level == Level::Root {
        errs.push(format!(
            "{path}.additionalProperties: Forbidden: must not be used at the root"
        ));
    }
    if s.props().is_some_and(|p| !p.is_empty()) {
        errs.push(format!(
            "{path}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        ));
    }
    if additional.is_object() {
        structural_node(
            additional,
            Level::Field,
            &format!("{path}.additionalProperties"),
            errs,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/upstream-crds/"
    );

    fn crd(file: &str) -> Value {
        let text = std::fs::read_to_string(format!("{FIXTURES}{file}")).expect("fixture readable");
        serde_yaml::from_str(&text).expect("fixture is YAML")
    }

    fn crd_schema(file: &str, version: &str) -> Value {
        let crd = crd(file);
        let versions = crd["spec"]["versions"].as_array().expect("versions");
        let v = versions
            .iter()
            .find(|v| v["name"] == version)
            .expect("version present");
        v["schema"]["openAPIV3Schema"].clone()
    }

    fn service_import() -> Value {
        crd_schema("multicluster.x-k8s.io_serviceimports.yaml", "v1beta1")
    }

    fn service_export() -> Value {
        crd_schema("multicluster.x-k8s.io_serviceexports.yaml", "v1beta1")
    }

    fn messages(obj: &Value, schema: &Value) -> Vec<String> {
        validate(obj, schema)
            .iter()
            .map(FieldError::message)
            .collect()
    }

    fn valid_import() -> Value {
        json!({
            "apiVersion": "multicluster.x-k8s.io/v1beta1",
            "kind": "ServiceImport",
            "metadata": {"name": "web", "namespace": "default", "labels": {"a": "b"}},
            "spec": {
                "type": "ClusterSetIP",
                "ips": ["10.0.0.1"],
                "ipFamilies": ["IPv4"],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "appProtocol": "http"}],
                "sessionAffinity": "None",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}
            },
            "status": {"clusters": [{"cluster": "east"}, {"cluster": "west"}]}
        })
    }

    fn condition(kind: &str) -> Value {
        json!({
            "type": kind,
            "status": "True",
            "reason": "Exported",
            "message": "",
            "lastTransitionTime": "2024-05-01T10:00:00Z",
            "observedGeneration": 1
        })
    }

    fn export_with_conditions(conditions: Value) -> Value {
        json!({
            "apiVersion": "multicluster.x-k8s.io/v1beta1",
            "kind": "ServiceExport",
            "metadata": {"name": "web"},
            "spec": {"exportedLabels": {"app": "web"}},
            "status": {"conditions": conditions}
        })
    }

    // --- upstream CRDs ---------------------------------------------------

    #[test]
    fn upstream_schemas_are_structural() {
        for file in [
            "multicluster.x-k8s.io_serviceimports.yaml",
            "multicluster.x-k8s.io_serviceexports.yaml",
            "about.k8s.io_clusterproperties.yaml",
        ] {
            let crd = crd(file);
            for v in crd["spec"]["versions"].as_array().expect("versions") {
                let schema = &v["schema"]["openAPIV3Schema"];
                assert_eq!(is_structural_error(schema), None, "{file} {}", v["name"]);
            }
        }
    }

    #[test]
    fn valid_service_import_passes_and_keeps_everything() {
        let schema = service_import();
        let mut obj = valid_import();
        let before = obj.clone();
        assert_eq!(prune(&mut obj, &schema), Vec::<String>::new());
        assert_eq!(obj, before);
        assert_eq!(messages(&obj, &schema), Vec::<String>::new());
    }

    #[test]
    fn service_import_type_outside_enum() {
        let mut obj = valid_import();
        obj["spec"]["type"] = json!("LoadBalancer");
        let errs = validate(&obj, &service_import());
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message(),
            r#"spec.type: Unsupported value: "LoadBalancer": supported values: "ClusterSetIP", "Headless""#
        );
        assert_eq!(errs[0].reason(), "FieldValueNotSupported");
        assert_eq!(errs[0].path, "spec.type");
    }

    #[test]
    fn service_import_type_of_wrong_type_reports_type_and_enum() {
        let mut obj = valid_import();
        obj["spec"]["type"] = json!(5);
        let errs = validate(&obj, &service_import());
        assert_eq!(
            errs.iter().map(FieldError::message).collect::<Vec<_>>(),
            [
                r#"spec.type: Invalid value: "integer": spec.type in body must be of type string: "integer""#,
                r#"spec.type: Unsupported value: 5: supported values: "ClusterSetIP", "Headless""#,
            ]
        );
        assert_eq!(errs[0].reason(), "FieldValueTypeInvalid");
        assert_eq!(
            errs[0].body(),
            r#"Invalid value: "integer": spec.type in body must be of type string: "integer""#
        );
    }

    #[test]
    fn service_import_missing_required_fields() {
        let mut obj = valid_import();
        obj["spec"] = json!({"ips": []});
        let errs = validate(&obj, &service_import());
        assert_eq!(
            errs.iter().map(FieldError::message).collect::<Vec<_>>(),
            ["spec.ports: Required value", "spec.type: Required value"]
        );
        assert!(errs.iter().all(|e| e.reason() == "FieldValueRequired"));

        let mut obj = valid_import();
        obj.as_object_mut().unwrap().remove("spec");
        let schema = json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}});
        assert_eq!(messages(&obj, &schema), ["spec: Required value"]);
    }

    #[test]
    fn service_import_port_as_string() {
        let mut obj = valid_import();
        obj["spec"]["ports"][0]["port"] = json!("80");
        assert_eq!(
            messages(&obj, &service_import()),
            [
                r#"spec.ports[0].port: Invalid value: "string": spec.ports[0].port in body must be of type integer: "string""#
            ]
        );
    }

    #[test]
    fn service_import_port_other_wrong_types_name_the_format() {
        let mut obj = valid_import();
        obj["spec"]["ports"] = json!([{"port": true}, {"port": 80.5}, {"port": 443.0}]);
        // int32 is what the server reports when neither the type nor the format match.
        assert_eq!(
            messages(&obj, &service_import()),
            [
                r#"spec.ports[0].port: Invalid value: "": spec.ports[0].port in body must be of type int32: """#,
                r#"spec.ports[1].port: Invalid value: "float64": spec.ports[1].port in body must be of type int32: "float64""#,
            ]
        );
    }

    #[test]
    fn service_import_bad_protocol_type() {
        // Upstream declares protocol as a plain string without an enum.
        let mut obj = valid_import();
        obj["spec"]["ports"][0]["protocol"] = json!(6);
        obj["spec"]["ports"][0]
            .as_object_mut()
            .unwrap()
            .remove("port");
        assert_eq!(
            messages(&obj, &service_import()),
            [
                r#"spec.ports[0].protocol: Invalid value: "integer": spec.ports[0].protocol in body must be of type string: "integer""#,
                "spec.ports[0].port: Required value",
            ]
        );
    }

    #[test]
    fn service_import_too_many_ips() {
        let mut obj = valid_import();
        obj["spec"]["ips"] = json!(["10.0.0.1", "10.0.0.2", "fd00::1"]);
        let errs = validate(&obj, &service_import());
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message(),
            "spec.ips: Too many: 3: must have at most 2 items"
        );
        assert_eq!(errs[0].reason(), "FieldValueTooMany");
    }

    #[test]
    fn service_import_duplicate_cluster_in_list_map() {
        let mut obj = valid_import();
        obj["status"]["clusters"] = json!([{"cluster": "east"}, {"cluster": "west"}, {"cluster": "east"}, {"cluster": "east"}]);
        let errs = validate(&obj, &service_import());
        assert_eq!(
            errs.iter().map(FieldError::message).collect::<Vec<_>>(),
            [r#"status.clusters[2]: Duplicate value: map[string]interface {}{"cluster":"east"}"#]
        );
        assert_eq!(errs[0].reason(), "FieldValueDuplicate");
    }

    #[test]
    fn unknown_fields_are_pruned_and_reported() {
        let schema = service_import();
        let mut obj = valid_import();
        obj["spec"]["foo"] = json!(1);
        obj["spec"]["ports"][0]["bar"] = json!({"x": 1});
        obj["spec"]["sessionAffinityConfig"]["clientIP"]["extra"] = json!(true);
        obj["extra"] = json!("top");
        obj["metadata"]["unknownMeta"] = json!("kept");
        let pruned = prune(&mut obj, &schema);
        assert_eq!(
            pruned,
            [
                "extra",
                "spec.foo",
                "spec.ports[0].bar",
                "spec.sessionAffinityConfig.clientIP.extra"
            ]
        );
        let mut expected = valid_import();
        expected["metadata"]["unknownMeta"] = json!("kept");
        assert_eq!(obj, expected);
        assert_eq!(
            FieldError::unknown_field("spec.foo").message(),
            r#"unknown field "spec.foo""#
        );
        assert_eq!(
            strict_decoding_message(&pruned[1..3]),
            r#"strict decoding error: unknown field "spec.foo", unknown field "spec.ports[0].bar""#
        );
    }

    #[test]
    fn cluster_property_value_too_short_or_missing() {
        let schema = crd_schema("about.k8s.io_clusterproperties.yaml", "v1beta1");
        let ok = json!({"apiVersion": "about.k8s.io/v1beta1", "kind": "ClusterProperty", "metadata": {"name": "id.k8s.io"}, "spec": {"value": "c1"}});
        assert_eq!(messages(&ok, &schema), Vec::<String>::new());
        let empty = json!({"metadata": {"name": "x"}, "spec": {"value": ""}});
        assert_eq!(
            messages(&empty, &schema),
            [
                r#"spec.value: Invalid value: "": spec.value in body should be at least 1 chars long"#
            ]
        );
        let missing = json!({"metadata": {"name": "x"}, "spec": {}});
        assert_eq!(messages(&missing, &schema), ["spec.value: Required value"]);
    }

    #[test]
    fn service_export_condition_errors() {
        let mut bad = condition("Ready");
        bad["status"] = json!("Maybe");
        bad["reason"] = json!("not valid!");
        bad["lastTransitionTime"] = json!("yesterday");
        bad["observedGeneration"] = json!(-1);
        bad["message"] = json!("x".repeat(32769));
        let obj = export_with_conditions(json!([bad]));
        let mut got = messages(&obj, &service_export());
        got.sort();
        let p = "status.conditions[0]";
        let mut want = vec![
            format!(r#"{p}.lastTransitionTime: Invalid value: "yesterday": {p}.lastTransitionTime in body must be of type date-time: "yesterday""#),
            format!("{p}.message: Too long: may not be more than 32768 bytes"),
            format!("{p}.observedGeneration: Invalid value: -1: {p}.observedGeneration in body should be greater than or equal to 0"),
            format!(r#"{p}.reason: Invalid value: "not valid!": {p}.reason in body should match '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$'"#),
            format!(r#"{p}.status: Unsupported value: "Maybe": supported values: "True", "False", "Unknown""#),
        ];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn service_export_too_long_reason_and_missing_condition_fields() {
        let mut long = condition("Ready");
        long["reason"] = json!("R".repeat(1025));
        let obj = export_with_conditions(json!([long, {"type": "Valid"}]));
        assert_eq!(
            messages(&obj, &service_export()),
            [
                "status.conditions[0].reason: Too long: may not be more than 1024 bytes",
                "status.conditions[1].lastTransitionTime: Required value",
                "status.conditions[1].message: Required value",
                "status.conditions[1].reason: Required value",
                "status.conditions[1].status: Required value",
            ]
        );
    }

    #[test]
    fn service_export_duplicate_condition_type_and_label_value_type() {
        let mut obj = export_with_conditions(json!([
            condition("Ready"),
            condition("Valid"),
            condition("Ready")
        ]));
        obj["spec"]["exportedLabels"]["tier"] = json!(3);
        assert_eq!(
            messages(&obj, &service_export()),
            [
                r#"spec.exportedLabels.tier: Invalid value: "integer": spec.exportedLabels.tier in body must be of type string: "integer""#,
                r#"status.conditions[2]: Duplicate value: map[string]interface {}{"type":"Ready"}"#,
            ]
        );
    }

    #[test]
    fn service_export_valid_with_conditions() {
        let obj = export_with_conditions(json!([condition("Ready"), condition("Valid")]));
        assert_eq!(messages(&obj, &service_export()), Vec::<String>::new());
    }

    #[test]
    fn schema_lists_from_upstream() {
        let lists = SchemaLists::new(Arc::new(service_import()));
        assert_eq!(lists.list_type(&["spec", "ports"]), ListType::Atomic);
        assert_eq!(lists.list_type(&["spec", "ips"]), ListType::Atomic);
        assert_eq!(
            lists.list_type(&["status", "clusters"]),
            ListType::Map(vec!["cluster".into()])
        );
        assert_eq!(
            lists.list_type(&["status", "conditions"]),
            ListType::Map(vec!["type".into()])
        );
        assert_eq!(lists.list_type(&["status", "nope"]), ListType::Atomic);
        assert_eq!(lists.list_type(&[]), ListType::Atomic);
    }

    #[test]
    fn schema_lists_step_through_items_and_maps() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "groups": {"type": "array", "items": {"type": "object", "properties": {
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "ports": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["port", "protocol"],
                          "items": {"type": "object"}}
            }}},
            "byName": {"type": "object", "additionalProperties": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}},
            "broken": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}}
        }}}});
        let lists = SchemaLists::new(Arc::new(schema));
        assert_eq!(lists.list_type(&["spec", "groups", "tags"]), ListType::Set);
        assert_eq!(
            lists.list_type(&["spec", "groups", "ports"]),
            ListType::Map(vec!["port".into(), "protocol".into()])
        );
        assert_eq!(
            lists.list_type(&["spec", "byName", "anything"]),
            ListType::Set
        );
        assert_eq!(lists.list_type(&["spec", "broken"]), ListType::Atomic);
        assert_eq!(lists.list_type(&["spec", "groups"]), ListType::Atomic);
    }

    // --- hand-written schemas, one keyword at a time --------------------

    fn spec(prop: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"f": prop}}}})
    }

    fn check(prop: Value, value: Value) -> Vec<String> {
        messages(&json!({"spec": {"f": value}}), &spec(prop))
    }

    fn type_error(observed: &str, expected: &str) -> String {
        format!(
            r#"spec.f: Invalid value: "{observed}": spec.f in body must be of type {expected}: "{observed}""#
        )
    }

    #[test]
    fn types_accept_their_values() {
        let cases = [
            ("object", json!({})),
            ("array", json!([])),
            ("string", json!("")),
            ("integer", json!(-3)),
            ("integer", json!(4.0)),
            ("number", json!(1)),
            ("number", json!(1.5)),
            ("boolean", json!(false)),
        ];
        for (ty, value) in cases {
            assert_eq!(
                check(json!({"type": ty}), value.clone()),
                Vec::<String>::new(),
                "{ty} {value}"
            );
        }
    }

    #[test]
    fn types_reject_other_values() {
        assert_eq!(
            check(json!({"type": "object"}), json!([1])),
            [type_error("array", "object")]
        );
        assert_eq!(
            check(json!({"type": "array"}), json!({})),
            [type_error("object", "array")]
        );
        assert_eq!(
            check(json!({"type": "string"}), json!(true)),
            [type_error("boolean", "string")]
        );
        assert_eq!(
            check(json!({"type": "integer"}), json!(1.5)),
            [type_error("number", "integer")]
        );
        assert_eq!(
            check(json!({"type": "number"}), json!("1")),
            [type_error("string", "number")]
        );
        assert_eq!(
            check(json!({"type": "boolean"}), json!("true")),
            [type_error("string", "boolean")]
        );
    }

    #[test]
    fn null_needs_nullable() {
        assert_eq!(
            check(json!({"type": "string"}), Value::Null),
            [type_error("null", "string")]
        );
        assert_eq!(
            check(json!({"type": "string", "nullable": true}), Value::Null),
            Vec::<String>::new()
        );
        let enumerated = json!({"type": "string", "nullable": true, "enum": ["a"]});
        assert_eq!(check(enumerated, Value::Null), Vec::<String>::new());
    }

    #[test]
    fn int_or_string() {
        let ios = json!({"x-kubernetes-int-or-string": true});
        assert_eq!(check(ios.clone(), json!(80)), Vec::<String>::new());
        assert_eq!(check(ios.clone(), json!("http")), Vec::<String>::new());
        assert_eq!(
            check(ios, json!(true)),
            [type_error("boolean", "integer,string")]
        );
    }

    #[test]
    fn int_or_string_with_any_of_reports_composite_error() {
        let ios = json!({"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]});
        assert_eq!(check(ios.clone(), json!("80%")), Vec::<String>::new());
        assert_eq!(
            check(ios, json!({})),
            [
                type_error("object", "integer,string"),
                r#"<nil>: Invalid value: "": "spec.f" must validate at least one schema (anyOf)"#
                    .to_string(),
                type_error("object", "integer"),
            ]
        );
    }

    #[test]
    fn enum_of_numbers_compares_values() {
        let prop = json!({"type": "number", "enum": [1, 2.5]});
        assert_eq!(check(prop.clone(), json!(1.0)), Vec::<String>::new());
        assert_eq!(check(prop.clone(), json!(2.5)), Vec::<String>::new());
        assert_eq!(
            check(prop, json!(3)),
            [r#"spec.f: Unsupported value: 3: supported values: "1", "2.5""#]
        );
    }

    #[test]
    fn enum_of_objects_prints_go_values() {
        let prop = json!({"type": "object", "enum": [{"a": 1}]});
        assert_eq!(
            check(prop, json!({"b": "x", "a": [true, null]})),
            [
                r#"spec.f: Unsupported value: map[string]interface {}{"a":[]interface {}{true, interface {}(nil)}, "b":"x"}: supported values: "{\"a\":1}""#
            ]
        );
    }

    #[test]
    fn numeric_bounds() {
        let prop = json!({"type": "integer", "minimum": 1, "maximum": 10});
        assert_eq!(check(prop.clone(), json!(5)), Vec::<String>::new());
        assert_eq!(
            check(prop.clone(), json!(0)),
            ["spec.f: Invalid value: 0: spec.f in body should be greater than or equal to 1"]
        );
        assert_eq!(
            check(prop, json!(11)),
            ["spec.f: Invalid value: 11: spec.f in body should be less than or equal to 10"]
        );
        let exclusive = json!({"type": "integer", "minimum": 1, "exclusiveMinimum": true, "maximum": 10, "exclusiveMaximum": true});
        assert_eq!(
            check(exclusive.clone(), json!(1)),
            ["spec.f: Invalid value: 1: spec.f in body should be greater than 1"]
        );
        assert_eq!(
            check(exclusive, json!(10)),
            ["spec.f: Invalid value: 10: spec.f in body should be less than 10"]
        );
    }

    #[test]
    fn float_bounds_print_like_go() {
        let prop = json!({"type": "number", "maximum": 1000000.0, "minimum": 0.00001});
        assert_eq!(check(prop.clone(), json!(2e6)), ["spec.f: Invalid value: 2e+06: spec.f in body should be less than or equal to 1e+06"]);
        assert_eq!(check(prop, json!(0.000001)), ["spec.f: Invalid value: 1e-06: spec.f in body should be greater than or equal to 1e-05"]);
    }

    #[test]
    fn multiple_of() {
        assert_eq!(
            check(json!({"type": "integer", "multipleOf": 5}), json!(10)),
            Vec::<String>::new()
        );
        assert_eq!(
            check(json!({"type": "integer", "multipleOf": 5}), json!(12)),
            ["spec.f: Invalid value: 12: spec.f in body should be a multiple of 5"]
        );
        assert_eq!(
            check(json!({"type": "number", "multipleOf": 0.5}), json!(1.5)),
            Vec::<String>::new()
        );
        assert_eq!(
            check(json!({"type": "number", "multipleOf": 0.5}), json!(1.2)),
            ["spec.f: Invalid value: 1.2: spec.f in body should be a multiple of 0.5"]
        );
    }

    #[test]
    fn string_lengths_count_characters() {
        let prop = json!({"type": "string", "minLength": 2, "maxLength": 3});
        assert_eq!(check(prop.clone(), json!("ééé")), Vec::<String>::new());
        assert_eq!(
            check(prop.clone(), json!("é")),
            [r#"spec.f: Invalid value: "é": spec.f in body should be at least 2 chars long"#]
        );
        let errs = validate(&json!({"spec": {"f": "abcd"}}), &spec(prop));
        assert_eq!(
            errs[0].message(),
            "spec.f: Too long: may not be more than 3 bytes"
        );
        assert_eq!(errs[0].reason(), "FieldValueTooLong");
    }

    #[test]
    fn string_checks_stop_at_the_first_failure() {
        let prop = json!({"type": "string", "maxLength": 2, "pattern": "^[a-z]+$"});
        assert_eq!(
            check(prop, json!("ABC")),
            ["spec.f: Too long: may not be more than 2 bytes"]
        );
    }

    #[test]
    fn pattern() {
        let prop = json!({"type": "string", "pattern": "^[a-z]+$"});
        assert_eq!(check(prop.clone(), json!("abc")), Vec::<String>::new());
        assert_eq!(
            check(prop, json!("a\"B\n")),
            [r#"spec.f: Invalid value: "a\"B\n": spec.f in body should match '^[a-z]+$'"#]
        );
        let broken = check(json!({"type": "string", "pattern": "("}), json!("x"));
        assert_eq!(broken.len(), 1);
        assert!(broken[0].starts_with(r#"spec.f: Invalid value: "x": spec.f in body should match '(, but pattern is invalid: error parsing regexp: "#), "{}", broken[0]);
    }

    #[test]
    fn formats() {
        let cases = [
            (
                "date-time",
                "2024-02-29T23:59:59.5+02:00",
                "2024-02-30T10:00:00Z",
            ),
            ("date", "2024-02-29", "2023-02-29"),
            ("ipv4", "10.1.2.3", "10.1.2"),
            ("ipv6", "fd00::1", "10.1.2.3"),
            ("cidr", "10.0.0.0/8", "10.0.0.0/33"),
            ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567"),
            ("byte", "aGVsbG8=", "aGVsbG8"),
            ("mac", "00:1a:2b:3c:4d:5e", "00:1a:2b"),
        ];
        for (format, good, bad) in cases {
            let prop = json!({"type": "string", "format": format});
            assert_eq!(
                check(prop.clone(), json!(good)),
                Vec::<String>::new(),
                "{format} {good}"
            );
            assert_eq!(
                check(prop, json!(bad)),
                [format!(
                    r#"spec.f: Invalid value: "{bad}": spec.f in body must be of type {format}: "{bad}""#
                )],
                "{format}"
            );
        }
        // Formats the server does not support for the type are ignored.
        assert_eq!(
            check(json!({"type": "string", "format": "int32"}), json!("x")),
            Vec::<String>::new()
        );
        assert_eq!(
            check(json!({"type": "integer", "format": "date-time"}), json!(3)),
            Vec::<String>::new()
        );
        assert_eq!(
            check(
                json!({"type": "string", "format": "email"}),
                json!("anything")
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn array_keywords() {
        let prop = json!({"type": "array", "minItems": 2, "uniqueItems": true, "items": {"type": "integer"}});
        assert_eq!(check(prop.clone(), json!([1, 2])), Vec::<String>::new());
        assert_eq!(
            check(prop.clone(), json!([1])),
            ["spec.f: Invalid value: 1: spec.f in body should have at least 2 items"]
        );
        assert_eq!(
            check(prop.clone(), json!([1, 1])),
            [r#"spec.f: Invalid value: "": spec.f in body shouldn't contain duplicates"#]
        );
        assert_eq!(
            check(prop, json!([1, "2"])),
            [
                r#"spec.f[1]: Invalid value: "string": spec.f[1] in body must be of type integer: "string""#
            ]
        );
    }

    #[test]
    fn property_counts() {
        let prop =
            json!({"type": "object", "minProperties": 1, "maxProperties": 2, "required": ["a"]});
        assert_eq!(check(prop.clone(), json!({"a": 1})), Vec::<String>::new());
        // Too few or too many properties is the only error the server reports for the object.
        assert_eq!(
            check(prop.clone(), json!({})),
            ["spec.f: Invalid value: 0: spec.f in body should have at least 1 properties"]
        );
        assert_eq!(
            check(prop, json!({"b": 1, "c": 2, "d": 3})),
            ["spec.f: Too many: 3: must have at most 2 items"]
        );
    }

    #[test]
    fn additional_properties() {
        let map =
            json!({"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}});
        assert_eq!(
            check(map.clone(), json!({"a": 1, "b.c/d": 2})),
            Vec::<String>::new()
        );
        assert_eq!(check(map, json!({"a.b": -1})), ["spec.f.a.b: Invalid value: -1: spec.f.a.b in body should be greater than or equal to 0"]);
        let closed = json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false});
        assert_eq!(
            check(closed, json!({"a": "x", "z": 1})),
            [r#"spec.f: Invalid value: "z": spec.f.z in body is a forbidden property"#]
        );
    }

    #[test]
    fn junctors() {
        let one_of = json!({"type": "integer", "oneOf": [{"minimum": 0}, {"maximum": 10}]});
        assert_eq!(check(one_of.clone(), json!(-5)), Vec::<String>::new());
        assert_eq!(
            check(one_of, json!(5)),
            [
                r#"<nil>: Invalid value: "": "spec.f" must validate one and only one schema (oneOf). Found 2 valid alternatives"#
            ]
        );
        let all_of = json!({"type": "integer", "allOf": [{"minimum": 0}, {"maximum": 10}]});
        assert_eq!(
            check(all_of, json!(11)),
            [
                "spec.f: Invalid value: 11: spec.f in body should be less than or equal to 10",
                r#"<nil>: Invalid value: "": "spec.f" must validate all the schemas (allOf)"#,
            ]
        );
        let not = json!({"type": "string", "not": {"enum": ["forbidden"]}});
        assert_eq!(check(not.clone(), json!("fine")), Vec::<String>::new());
        assert_eq!(
            check(not, json!("forbidden")),
            [r#"<nil>: Invalid value: "": "spec.f" must not validate the schema (not)"#]
        );
        let errs = validate(
            &json!({"spec": {"f": 11}}),
            &spec(json!({"allOf": [{"maximum": 10}]})),
        );
        assert_eq!(errs[1].path, "<nil>");
        assert_eq!(errs[1].reason(), "FieldValueInvalid");
    }

    #[test]
    fn list_type_set_and_multi_key_map() {
        let set =
            json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}});
        assert_eq!(check(set.clone(), json!(["a", "b"])), Vec::<String>::new());
        assert_eq!(
            check(set, json!(["a", "b", "a", "a", "b"])),
            [
                r#"spec.f[2]: Duplicate value: "a""#,
                r#"spec.f[4]: Duplicate value: "b""#
            ]
        );
        let map = json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"],
                         "items": {"type": "object", "properties": {"port": {"type": "integer"}, "protocol": {"type": "string"}}}});
        assert_eq!(
            check(
                map.clone(),
                json!([{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP"}])
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            check(
                map.clone(),
                json!([{"protocol": "TCP", "port": 80}, {"port": 80, "protocol": "TCP"}])
            ),
            [r#"spec.f[1]: Duplicate value: map[string]interface {}{"port":80, "protocol":"TCP"}"#]
        );
        assert_eq!(
            check(map, json!([{}, "x"])),
            [
                r#"spec.f[1]: Invalid value: "string": spec.f[1] in body must be of type object: "string""#,
                r#"spec.f[1]: Invalid value: "x": must be an object for an array of list-type map"#,
            ]
        );
    }

    #[test]
    fn list_type_paths_use_keys_for_maps() {
        let schema = spec(
            json!({"type": "object", "additionalProperties": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "integer"}}}),
        );
        assert_eq!(
            messages(&json!({"spec": {"f": {"k.x": [1, 1]}}}), &schema),
            ["spec.f[k.x][1]: Duplicate value: 1"]
        );
    }

    // --- pruning --------------------------------------------------------

    #[test]
    fn prune_respects_preserve_unknown_and_additional_properties() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                     "properties": {"typed": {"type": "object", "properties": {"a": {"type": "string"}}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}}},
            "anything": {"type": "object", "additionalProperties": true},
            "child": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
            "typedChild": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}}
        }}}});
        let mut obj = json!({"apiVersion": "v1", "kind": "K", "metadata": {"x": 1}, "spec": {
            "free": {"whatever": {"deep": 1}, "typed": {"a": "x", "b": "gone"}},
            "labels": {"one": {"v": "x", "w": "gone"}},
            "anything": {"k": {"deep": [1, {"x": 2}]}},
            "child": {"apiVersion": "v1", "kind": "Pod", "spec": {"any": 1}},
            "typedChild": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}, "status": {}}
        }});
        let pruned = prune(&mut obj, &schema);
        assert_eq!(
            pruned,
            [
                "spec.free.typed.b",
                "spec.labels.one.w",
                "spec.typedChild.spec.x",
                "spec.typedChild.status"
            ]
        );
        assert_eq!(obj["spec"]["free"]["whatever"], json!({"deep": 1}));
        assert_eq!(
            obj["spec"]["anything"],
            json!({"k": {"deep": [1, {"x": 2}]}})
        );
        assert_eq!(obj["spec"]["child"]["spec"], json!({"any": 1}));
        assert_eq!(
            obj["spec"]["typedChild"],
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}})
        );
        assert_eq!(obj["metadata"], json!({"x": 1}));
    }

    #[test]
    fn prune_keeps_key_order() {
        let schema = spec(json!({"type": "string"}));
        let mut obj = json!({"spec": {"z": 1, "f": "a", "y": 2}, "kind": "K", "apiVersion": "v"});
        prune(&mut obj, &schema);
        assert_eq!(
            serde_json::to_string(&obj).unwrap(),
            r#"{"spec":{"f":"a"},"kind":"K","apiVersion":"v"}"#
        );
    }

    // --- defaulting -----------------------------------------------------

    fn defaults_schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "default": {}, "properties": {
            "replicas": {"type": "integer", "default": 1},
            "mode": {"type": "string", "default": "auto"},
            "note": {"type": "string", "nullable": true, "default": "n"},
            "plain": {"type": "string"},
            "nested": {"type": "object", "default": {}, "properties": {"level": {"type": "integer", "default": 3}}},
            "ports": {"type": "array", "items": {"type": "object", "default": {"port": 80}, "properties": {
                "port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}}}},
            "limits": {"type": "object", "additionalProperties": {"type": "string", "default": "1"}}
        }}}})
    }

    #[test]
    fn defaults_fill_missing_fields_recursively() {
        let mut obj = json!({"metadata": {"name": "x"}});
        apply_defaults(&mut obj, &defaults_schema());
        assert_eq!(
            obj,
            json!({"metadata": {"name": "x"}, "spec": {
                "replicas": 1, "mode": "auto", "note": "n", "nested": {"level": 3}
            }})
        );
    }

    #[test]
    fn defaults_treat_nulls_by_nullability() {
        let mut obj = json!({"spec": {
            "replicas": null, "note": null, "plain": null, "mode": "manual",
            "ports": [null, {"port": 443}], "limits": {"cpu": null, "mem": "2"}
        }});
        apply_defaults(&mut obj, &defaults_schema());
        assert_eq!(
            obj,
            json!({"spec": {
                "replicas": 1, "note": null, "mode": "manual",
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}],
                "limits": {"cpu": "1", "mem": "2"},
                "nested": {"level": 3}
            }})
        );
    }

    // --- structural check -----------------------------------------------

    #[test]
    fn structural_errors_name_the_bad_node() {
        let missing_type = json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}});
        assert_eq!(
            is_structural_error(&missing_type).as_deref(),
            Some("openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields")
        );
        let several = json!({"type": "string", "properties": {
            "list": {"type": "array"},
            "items": {"type": "array", "items": {}},
            "free": {"x-kubernetes-preserve-unknown-fields": true},
            "port": {"x-kubernetes-int-or-string": true},
            "m": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}},
            "p": {"type": "string", "pattern": "("}
        }});
        let errs = structural_errors(&several, "spec.versions[0].schema.openAPIV3Schema");
        let p = "spec.versions[0].schema.openAPIV3Schema";
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert!(errs.contains(&format!(
            r#"{p}.type: Invalid value: "string": must be object at the root"#
        )));
        assert!(errs.contains(&format!(
            "{p}.properties[list].items: Required value: must be specified"
        )));
        assert!(errs.contains(&format!("{p}.properties[items].items.type: Required value: must not be empty for specified array items")));
        assert!(errs.contains(&format!("{p}.properties[m].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map")));
        assert!(errs.iter().any(|e| e.starts_with(&format!(r#"{p}.properties[p].pattern: Invalid value: "(": must be a valid regular expression, but isn't: "#))));
        let text = is_structural_error(&several).unwrap();
        assert!(
            text.starts_with("[openAPIV3Schema.") && text.ends_with(']'),
            "{text}"
        );
    }

    #[test]
    fn structural_rejects_root_additional_properties_and_missing_root_type() {
        assert_eq!(
            is_structural_error(&json!({})).as_deref(),
            Some("openAPIV3Schema.type: Required value: must not be empty at the root")
        );
        assert_eq!(
            is_structural_error(
                &json!({"type": "object", "additionalProperties": {"type": "string"}})
            )
            .as_deref(),
            Some("openAPIV3Schema.additionalProperties: Forbidden: must not be used at the root")
        );
    }

    // --- formatting -----------------------------------------------------

    #[test]
    fn go_float_formatting() {
        let cases = [
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.5, "0.5"),
            (0.0001, "0.0001"),
            (1.5e-5, "1.5e-05"),
            (1e21, "1e+21"),
            (-2.25, "-2.25"),
            (0.0, "0"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float(f), want, "{f}");
        }
    }

    #[test]
    fn go_quote_escapes_like_strconv() {
        assert_eq!(
            go_quote("a\"b\\c\n\t\u{1}é\u{85}"),
            r#""a\"b\\c\n\t\x01é\u0085""#
        );
    }

    #[test]
    fn bodies_and_reasons() {
        let e = FieldError::new(FieldErrorKind::Required, "spec.x", None, "");
        assert_eq!(
            (e.body().as_str(), e.reason()),
            ("Required value", "FieldValueRequired")
        );
        let e = FieldError::new(FieldErrorKind::Invalid, "spec.x", None, "bad");
        assert_eq!(e.to_string(), r#"spec.x: Invalid value: "null": bad"#);
        let e = FieldError::new(FieldErrorKind::Invalid, "spec.x", Some(json!(true)), "");
        assert_eq!(e.message(), "spec.x: Invalid value: true");
    }
}
