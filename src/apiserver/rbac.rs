//! RBAC authorization, decided the way kube-apiserver's RBAC authorizer decides
//! (plugin/pkg/auth/authorizer/rbac and the pkg/apis/rbac/v1 evaluation helpers),
//! over the stored rbac.authorization.k8s.io/v1 objects.
//!
//! A [`Policy`] is an immutable snapshot. Role references are resolved and
//! bindings are indexed by subject once, when it is built, so a request visits
//! only the bindings that name its user, one of its groups or its ServiceAccount,
//! instead of every binding in the cluster as kube's lister-based resolver does.

use std::collections::HashMap;

use serde_json::{json, Value};

const SA_USER_PREFIX: &str = "system:serviceaccount:";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const RBAC_API_VERSION: &str = "rbac.authorization.k8s.io/v1";
/// The `*` that rules use for "every verb / group / resource / URL".
const ALL: &str = "*";

/// The group of every authenticated request.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// The group of every anonymous request.
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group that the default `cluster-admin` ClusterRoleBinding names.
pub const PRIVILEGED_GROUP: &str = "system:masters";
/// The user name of anonymous requests.
pub const ANONYMOUS_USER: &str = "system:anonymous";

/// Who is asking, after authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn new<G: Into<String>>(
        name: impl Into<String>,
        groups: impl IntoIterator<Item = G>,
    ) -> Self {
        UserInfo {
            name: name.into(),
            groups: groups.into_iter().map(Into::into).collect(),
        }
    }

    /// A ServiceAccount's identity, with the groups in the order kube's token
    /// authenticator gives them (its own two, then `system:authenticated`).
    pub fn service_account(namespace: &str, name: &str) -> Self {
        UserInfo {
            name: format!("{SA_USER_PREFIX}{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{namespace}"),
                ALL_AUTHENTICATED.to_string(),
            ],
        }
    }

    /// The identity kube gives requests without credentials.
    pub fn anonymous() -> Self {
        UserInfo::new(ANONYMOUS_USER, [ALL_UNAUTHENTICATED])
    }

    /// `(namespace, name)` when the user name is a ServiceAccount's. Like kube's
    /// `serviceaccount.SplitUsername`, both parts must be valid object names, so
    /// `system:serviceaccount:a:b:c` is not one.
    pub fn is_service_account(&self) -> Option<(&str, &str)> {
        let rest = self.name.strip_prefix(SA_USER_PREFIX)?;
        let (namespace, name) = rest.split_once(':')?;
        (is_dns_label(namespace) && is_dns_subdomain(name)).then_some((namespace, name))
    }
}

/// What is asked: a resource request, or a non-resource request when `path` is set.
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    /// get list watch create update patch delete deletecollection (or any custom
    /// verb); for non-resource requests the lowercase HTTP method.
    pub verb: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// Some for non-resource requests.
    pub path: Option<String>,
}

impl Attributes {
    /// A resource request; set `subresource` on the result when there is one.
    pub fn resource(
        verb: &str,
        api_group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        Attributes {
            verb: verb.into(),
            api_group: api_group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    /// A request for a path that is not a resource, such as `/healthz`.
    pub fn non_resource(verb: &str, path: &str) -> Self {
        Attributes {
            verb: verb.into(),
            path: Some(path.into()),
            ..Default::default()
        }
    }

    pub fn is_resource_request(&self) -> bool {
        self.path.is_none()
    }
}

/// The outcome with the reason kube's authorizer gives: `RBAC: allowed by …`
/// when allowed; when denied, the role references that could not be resolved
/// (empty when there were none), which kube appends to the 403 message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// One PolicyRule.
#[derive(Clone, Debug, Default)]
struct Rule {
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
    non_resource_urls: Vec<String>,
}

impl Rule {
    fn from_json(rule: &Value) -> Self {
        Rule {
            verbs: strings(rule.get("verbs")),
            api_groups: strings(rule.get("apiGroups")),
            resources: strings(rule.get("resources")),
            resource_names: strings(rule.get("resourceNames")),
            non_resource_urls: strings(rule.get("nonResourceURLs")),
        }
    }

    /// kube's `RuleAllows`.
    fn allows(&self, attrs: &Attributes) -> bool {
        if !has_or_all(&self.verbs, &attrs.verb) {
            return false;
        }
        match &attrs.path {
            Some(path) => self.url_matches(path),
            None => {
                has_or_all(&self.api_groups, &attrs.api_group)
                    && self.resource_matches(&attrs.resource, &attrs.subresource)
                    && self.name_matches(&attrs.name)
            }
        }
    }

    /// `*`, the exact `resource[/subresource]`, or `*/subresource`. Note that
    /// kube gives `pods/*` no wildcard meaning: it matches only itself.
    fn resource_matches(&self, resource: &str, subresource: &str) -> bool {
        self.resources.iter().any(|r| {
            r == ALL
                || is_combined_resource(r, resource, subresource)
                || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
        })
    }

    /// A rule without resourceNames covers every name, including none (list,
    /// create, deletecollection); with them it covers only the names listed.
    fn name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }

    /// `*`, the exact path, or a prefix when the rule's URL ends in `*`.
    fn url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|url| {
            url == ALL
                || url == path
                || (url.ends_with('*') && path.starts_with(url.trim_end_matches('*')))
        })
    }
}

/// Whether `rule_resource` equals `resource/subresource` (or `resource`), without
/// building the combined string on every check.
fn is_combined_resource(rule_resource: &str, resource: &str, subresource: &str) -> bool {
    let Some(rest) = rule_resource.strip_prefix(resource) else {
        return false;
    };
    if subresource.is_empty() {
        return rest.is_empty();
    }
    rest.strip_prefix('/') == Some(subresource)
}

fn has_or_all(values: &[String], wanted: &str) -> bool {
    values.iter().any(|v| v == ALL || v == wanted)
}

/// A binding subject as stored.
#[derive(Clone, Debug)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

impl Subject {
    fn from_json(subject: &Value) -> Self {
        Subject {
            kind: str_at(subject, "/kind").to_string(),
            name: str_at(subject, "/name").to_string(),
            namespace: str_at(subject, "/namespace").to_string(),
        }
    }

    /// The identity this subject stands for, or None when it can match nobody.
    /// A ServiceAccount becomes its user name, so that User and ServiceAccount
    /// subjects share one index; with no namespace of its own it takes the
    /// RoleBinding's, and in a ClusterRoleBinding it then matches nobody.
    fn key(&self, binding_namespace: &str) -> Option<SubjectKey> {
        match self.kind.as_str() {
            "User" => Some(SubjectKey::User(self.name.clone())),
            "Group" => Some(SubjectKey::Group(self.name.clone())),
            "ServiceAccount" => {
                let namespace = if self.namespace.is_empty() {
                    binding_namespace
                } else {
                    &self.namespace
                };
                (!namespace.is_empty())
                    .then(|| SubjectKey::User(format!("{SA_USER_PREFIX}{namespace}:{}", self.name)))
            }
            _ => None,
        }
    }

    /// kube's `appliesToUser`.
    fn applies_to(&self, user: &UserInfo, binding_namespace: &str) -> bool {
        match self.key(binding_namespace) {
            Some(SubjectKey::User(name)) => user.name == name,
            Some(SubjectKey::Group(group)) => user.groups.contains(&group),
            None => false,
        }
    }

    /// As kube names the subject in `RBAC: allowed by …`.
    fn describe(&self, binding_namespace: &str) -> String {
        if self.kind != "ServiceAccount" {
            return format!("{} {}", self.kind, go_quote(&self.name));
        }
        let namespace = if self.namespace.is_empty() {
            binding_namespace
        } else {
            &self.namespace
        };
        format!(
            "{} {}",
            self.kind,
            go_quote(&format!("{}/{namespace}", self.name))
        )
    }
}

enum SubjectKey {
    User(String),
    Group(String),
}

/// A RoleBinding (non-empty namespace) or ClusterRoleBinding, its role resolved.
#[derive(Clone, Debug)]
struct Binding {
    name: String,
    namespace: String,
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
    /// Index into `Policy::rule_sets`, or kube's error for an unresolvable role.
    rules: Result<usize, String>,
}

impl Binding {
    /// As kube's binding describers print it after `RBAC: allowed by`.
    fn describe(&self, user: &UserInfo) -> String {
        let subject = self
            .subjects
            .iter()
            .find(|s| s.applies_to(user, &self.namespace))
            .map(|s| s.describe(&self.namespace))
            .unwrap_or_default();
        let (kind, name) = if self.namespace.is_empty() {
            ("ClusterRoleBinding", self.name.clone())
        } else {
            ("RoleBinding", format!("{}/{}", self.name, self.namespace))
        };
        format!(
            "{kind} {} of {} {} to {subject}",
            go_quote(&name),
            self.role_kind,
            go_quote(&self.role_name)
        )
    }
}

/// Binding indexes by the user names and groups that their subjects name.
#[derive(Clone, Debug, Default)]
struct SubjectIndex {
    by_user: HashMap<String, Vec<usize>>,
    by_group: HashMap<String, Vec<usize>>,
}

impl SubjectIndex {
    fn insert(&mut self, key: SubjectKey, binding: usize) {
        let slot = match key {
            SubjectKey::User(name) => self.by_user.entry(name),
            SubjectKey::Group(group) => self.by_group.entry(group),
        };
        slot.or_default().push(binding);
    }

    fn collect(&self, user: &UserInfo, into: &mut Vec<usize>) {
        if let Some(ids) = self.by_user.get(&user.name) {
            into.extend(ids);
        }
        for group in &user.groups {
            if let Some(ids) = self.by_group.get(group) {
                into.extend(ids);
            }
        }
    }
}

/// An immutable, indexed snapshot of the RBAC objects; rebuilt when they change.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    rule_sets: Vec<Vec<Rule>>,
    /// ClusterRoleBindings first, then RoleBindings, each in input order, which
    /// is the order kube visits them in.
    bindings: Vec<Binding>,
    cluster: SubjectIndex,
    namespaced: HashMap<String, SubjectIndex>,
}

impl Policy {
    pub fn new(
        roles: &[Value],
        cluster_roles: &[Value],
        role_bindings: &[Value],
        cluster_role_bindings: &[Value],
    ) -> Self {
        Self::build(roles, cluster_roles, role_bindings, cluster_role_bindings)
    }

    /// Like [`Policy::new`] over a mixed list, sorted by each object's `kind`;
    /// objects of other kinds are ignored.
    pub fn from_objects(objects: &[Value]) -> Self {
        let of_kind =
            |kind: &'static str| objects.iter().filter(move |o| str_at(o, "/kind") == kind);
        Self::build(
            of_kind("Role"),
            of_kind("ClusterRole"),
            of_kind("RoleBinding"),
            of_kind("ClusterRoleBinding"),
        )
    }

    fn build<'a>(
        roles: impl IntoIterator<Item = &'a Value>,
        cluster_roles: impl IntoIterator<Item = &'a Value>,
        role_bindings: impl IntoIterator<Item = &'a Value>,
        cluster_role_bindings: impl IntoIterator<Item = &'a Value>,
    ) -> Self {
        let mut builder = Builder::default();
        roles.into_iter().for_each(|r| builder.add_role(r));
        cluster_roles
            .into_iter()
            .for_each(|r| builder.add_cluster_role(r));
        cluster_role_bindings
            .into_iter()
            .for_each(|b| builder.add_binding(b, false));
        role_bindings
            .into_iter()
            .for_each(|b| builder.add_binding(b, true));
        builder.policy
    }

    /// Whether RBAC allows the request.
    pub fn allows(&self, user: &UserInfo, attrs: &Attributes) -> bool {
        self.candidates(user, &attrs.namespace)
            .into_iter()
            .any(|id| self.binding_allows(&self.bindings[id], attrs))
    }

    /// The decision with kube's reason, for audit annotations and 403 messages.
    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        let mut errors: Vec<&str> = Vec::new();
        for id in self.candidates(user, &attrs.namespace) {
            let binding = &self.bindings[id];
            if self.binding_allows(binding, attrs) {
                let reason = format!("RBAC: allowed by {}", binding.describe(user));
                return Decision {
                    allowed: true,
                    reason,
                };
            }
            if let Err(error) = &binding.rules {
                errors.push(error);
            }
        }
        Decision {
            allowed: false,
            reason: denial_reason(&errors),
        }
    }

    /// The bindings that could apply: the ClusterRoleBindings and, for a
    /// namespaced request, that namespace's RoleBindings naming the user, its
    /// ServiceAccount or one of its groups. Sorted and deduplicated, since a
    /// binding may name the user several ways but kube visits it once.
    fn candidates(&self, user: &UserInfo, namespace: &str) -> Vec<usize> {
        let mut ids = Vec::new();
        self.cluster.collect(user, &mut ids);
        if let Some(index) = self
            .namespaced
            .get(namespace)
            .filter(|_| !namespace.is_empty())
        {
            index.collect(user, &mut ids);
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    fn binding_allows(&self, binding: &Binding, attrs: &Attributes) -> bool {
        match binding.rules {
            Ok(set) => self.rule_sets[set].iter().any(|rule| rule.allows(attrs)),
            Err(_) => false,
        }
    }
}

/// kube's `RBAC: <aggregate of errors>`: one error as is, several in brackets,
/// repeated messages once.
fn denial_reason(errors: &[&str]) -> String {
    let mut unique: Vec<&str> = Vec::new();
    for error in errors {
        if !unique.contains(error) {
            unique.push(error);
        }
    }
    match unique.as_slice() {
        [] => String::new(),
        [one] => format!("RBAC: {one}"),
        many => format!("RBAC: [{}]", many.join(", ")),
    }
}

/// Collects roles first so that bindings can be resolved as they are added.
#[derive(Default)]
struct Builder {
    policy: Policy,
    roles: HashMap<(String, String), usize>,
    cluster_roles: HashMap<String, usize>,
}

impl Builder {
    fn add_rules(&mut self, object: &Value) -> usize {
        let rules = match object.get("rules") {
            Some(Value::Array(rules)) => rules.iter().map(Rule::from_json).collect(),
            _ => Vec::new(),
        };
        self.policy.rule_sets.push(rules);
        self.policy.rule_sets.len() - 1
    }

    fn add_role(&mut self, role: &Value) {
        let namespace = str_at(role, "/metadata/namespace");
        // A Role always lives in a namespace; one without can be found by nothing.
        if namespace.is_empty() {
            return;
        }
        let key = (
            namespace.to_string(),
            str_at(role, "/metadata/name").to_string(),
        );
        let set = self.add_rules(role);
        self.roles.insert(key, set);
    }

    fn add_cluster_role(&mut self, role: &Value) {
        let name = str_at(role, "/metadata/name").to_string();
        let set = self.add_rules(role);
        self.cluster_roles.insert(name, set);
    }

    fn add_binding(&mut self, object: &Value, namespaced: bool) {
        let namespace = if namespaced {
            str_at(object, "/metadata/namespace")
        } else {
            ""
        };
        // A RoleBinding outside any namespace is listed for no request.
        if namespaced && namespace.is_empty() {
            return;
        }
        let binding = self.binding(object, namespace);
        let id = self.policy.bindings.len();
        let index = if namespaced {
            self.policy
                .namespaced
                .entry(namespace.to_string())
                .or_default()
        } else {
            &mut self.policy.cluster
        };
        for subject in &binding.subjects {
            if let Some(key) = subject.key(namespace) {
                index.insert(key, id);
            }
        }
        self.policy.bindings.push(binding);
    }

    fn binding(&self, object: &Value, namespace: &str) -> Binding {
        let role_kind = str_at(object, "/roleRef/kind");
        let role_name = str_at(object, "/roleRef/name");
        let subjects = match object.get("subjects") {
            Some(Value::Array(subjects)) => subjects.iter().map(Subject::from_json).collect(),
            _ => Vec::new(),
        };
        Binding {
            name: str_at(object, "/metadata/name").to_string(),
            namespace: namespace.to_string(),
            role_kind: role_kind.to_string(),
            role_name: role_name.to_string(),
            subjects,
            rules: self.resolve(role_kind, role_name, namespace),
        }
    }

    /// kube's `GetRoleReferenceRules`, with the errors its listers give. A
    /// ClusterRoleBinding's Role is looked up in namespace "", so never found.
    fn resolve(&self, kind: &str, name: &str, namespace: &str) -> Result<usize, String> {
        let found = match kind {
            "Role" => self.roles.get(&(namespace.to_string(), name.to_string())),
            "ClusterRole" => self.cluster_roles.get(name),
            _ => {
                return Err(format!(
                    "unsupported role reference kind: {}",
                    go_quote(kind)
                ))
            }
        };
        // The listers' NotFound names the lowercase kind as the resource.
        found.copied().ok_or_else(|| {
            let resource = kind.to_ascii_lowercase();
            format!("{resource}.{RBAC_GROUP} {} not found", go_quote(name))
        })
    }
}

/// The 403 message kube-apiserver gives when authorization denies a request.
pub fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
    forbidden_message_with_reason(user, attrs, "")
}

/// [`forbidden_message`] followed by the authorizer's reason, as kube-apiserver
/// appends it (`…: RBAC: role.rbac.authorization.k8s.io "x" not found`).
pub fn forbidden_message_with_reason(user: &UserInfo, attrs: &Attributes, reason: &str) -> String {
    let mut detail = sanitize(&denial_detail(user, attrs));
    if !reason.is_empty() {
        detail = format!("{detail}: {reason}");
    }
    // apierrors.NewForbidden: the qualified resource, then the name if any.
    let resource = qualified_resource(attrs);
    if resource.is_empty() {
        format!("forbidden: {detail}")
    } else if attrs.name.is_empty() {
        format!("{resource} is forbidden: {detail}")
    } else {
        format!(
            "{resource} {} is forbidden: {detail}",
            go_quote(&attrs.name)
        )
    }
}

/// responsewriters' `forbiddenMessage`.
fn denial_detail(user: &UserInfo, attrs: &Attributes) -> String {
    let who = go_quote(&user.name);
    let verb = &attrs.verb;
    if let Some(path) = &attrs.path {
        return format!("User {who} cannot {verb} path {}", go_quote(path));
    }
    let mut resource = attrs.resource.clone();
    if !attrs.subresource.is_empty() {
        resource = format!("{resource}/{}", attrs.subresource);
    }
    let what = format!(
        "User {who} cannot {verb} resource {} in API group {}",
        go_quote(&resource),
        go_quote(&attrs.api_group)
    );
    if attrs.namespace.is_empty() {
        format!("{what} at the cluster scope")
    } else {
        format!("{what} in the namespace {}", go_quote(&attrs.namespace))
    }
}

/// `schema.GroupResource.String()`: `resource.group`, or `resource` for the core group.
fn qualified_resource(attrs: &Attributes) -> String {
    if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    }
}

/// kube keeps error text from looking like HTML; quotes stay.
fn sanitize(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Go's `%q`: double quotes, with backslash escapes for quotes, backslashes and
/// control characters (printable Unicode is kept as is).
fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The default ClusterRoles and ClusterRoleBindings that matter to clients, as
/// kube-apiserver's bootstrap policy creates them (URL lists sorted, as its rule
/// builder leaves them).
pub fn bootstrap_objects() -> Vec<Value> {
    let health_and_version = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    let discovery = [
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/healthz",
        "/livez",
        "/openapi",
        "/openapi/*",
        "/readyz",
        "/version",
        "/version/",
    ];
    vec![
        bootstrap_cluster_role(
            "cluster-admin",
            json!([
                {"verbs": [ALL], "apiGroups": [ALL], "resources": [ALL]},
                {"verbs": [ALL], "nonResourceURLs": [ALL]},
            ]),
        ),
        bootstrap_cluster_role(
            "system:discovery",
            json!([{"verbs": ["get"], "nonResourceURLs": discovery}]),
        ),
        bootstrap_cluster_role(
            "system:basic-user",
            json!([
                {
                    "verbs": ["create"],
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                },
                {
                    "verbs": ["create"],
                    "apiGroups": ["authentication.k8s.io"],
                    "resources": ["selfsubjectreviews"],
                },
            ]),
        ),
        bootstrap_cluster_role(
            "system:public-info-viewer",
            json!([{"verbs": ["get"], "nonResourceURLs": health_and_version}]),
        ),
        bootstrap_cluster_role_binding("cluster-admin", &[PRIVILEGED_GROUP]),
        bootstrap_cluster_role_binding("system:discovery", &[ALL_AUTHENTICATED]),
        bootstrap_cluster_role_binding("system:basic-user", &[ALL_AUTHENTICATED]),
        bootstrap_cluster_role_binding(
            "system:public-info-viewer",
            &[ALL_AUTHENTICATED, ALL_UNAUTHENTICATED],
        ),
    ]
}

/// Metadata of a bootstrap object: the label kube puts on its defaults, and
/// the annotation that lets kube reconcile them back on restart.
fn bootstrap_metadata(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn bootstrap_cluster_role(name: &str, rules: Value) -> Value {
    json!({
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": bootstrap_metadata(name),
        "rules": rules,
    })
}

/// A ClusterRoleBinding of the ClusterRole of the same name to `groups`.
fn bootstrap_cluster_role_binding(name: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|group| json!({"kind": "Group", "apiGroup": RBAC_GROUP, "name": group}))
        .collect();
    json!({
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": bootstrap_metadata(name),
        "subjects": subjects,
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
    })
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// A JSON array of strings; anything else (null, missing) is empty.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// RFC 1123 label, as namespace names must be.
fn is_dns_label(text: &str) -> bool {
    text.len() <= 63 && is_dns_segment(text)
}

/// RFC 1123 subdomain, as ServiceAccount names must be.
fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_segment)
}

fn is_dns_segment(text: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    text.starts_with(alnum) && text.ends_with(alnum) && text.chars().all(|c| alnum(c) || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(namespace: &str, name: &str, rules: Value) -> Value {
        json!({
            "apiVersion": RBAC_API_VERSION, "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": rules,
        })
    }

    fn cluster_role(name: &str, rules: Value) -> Value {
        json!({
            "apiVersion": RBAC_API_VERSION, "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        })
    }

    fn role_binding(
        namespace: &str,
        name: &str,
        role_kind: &str,
        role: &str,
        subjects: Value,
    ) -> Value {
        json!({
            "apiVersion": RBAC_API_VERSION, "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "subjects": subjects,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role},
        })
    }

    fn cluster_role_binding(name: &str, role: &str, subjects: Value) -> Value {
        json!({
            "apiVersion": RBAC_API_VERSION, "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "subjects": subjects,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        })
    }

    fn pods(verb: &str, namespace: &str, name: &str) -> Attributes {
        Attributes::resource(verb, "", "pods", namespace, name)
    }

    fn with_subresource(mut attrs: Attributes, subresource: &str) -> Attributes {
        attrs.subresource = subresource.into();
        attrs
    }

    fn pod_reader() -> Value {
        json!([{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}])
    }

    fn user(name: &str) -> UserInfo {
        UserInfo::new(name, [ALL_AUTHENTICATED])
    }

    #[test]
    fn service_account_identity_round_trips() {
        let sa = UserInfo::service_account("demo", "bot");
        assert_eq!(sa.name, "system:serviceaccount:demo:bot");
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:demo",
                ALL_AUTHENTICATED
            ]
        );
        assert_eq!(sa.is_service_account(), Some(("demo", "bot")));
        assert_eq!(user("jane").is_service_account(), None);
        assert_eq!(
            user("system:serviceaccount:a:b:c").is_service_account(),
            None
        );
        assert_eq!(
            user("system:serviceaccount:Demo:bot").is_service_account(),
            None
        );
        assert_eq!(
            user("system:serviceaccount::bot").is_service_account(),
            None
        );
    }

    #[test]
    fn service_account_role_is_limited_to_its_namespace() {
        let policy = Policy::new(
            &[role("demo", "pod-reader", pod_reader())],
            &[],
            &[role_binding(
                "demo",
                "bot-reads",
                "Role",
                "pod-reader",
                json!([{"kind": "ServiceAccount", "name": "bot", "namespace": "demo"}]),
            )],
            &[],
        );
        let bot = UserInfo::service_account("demo", "bot");
        assert!(policy.allows(&bot, &pods("get", "demo", "web")));
        assert!(policy.allows(&bot, &pods("list", "demo", "")));
        assert!(!policy.allows(&bot, &pods("delete", "demo", "web")));
        assert!(!policy.allows(&bot, &pods("get", "other", "web")));
        assert!(!policy.allows(&bot, &pods("list", "", "")));
        assert!(!policy.allows(
            &UserInfo::service_account("demo", "other"),
            &pods("get", "demo", "web")
        ));
    }

    #[test]
    fn service_account_subject_defaults_to_the_binding_namespace() {
        let sa_without_namespace = json!([{"kind": "ServiceAccount", "name": "bot"}]);
        let policy = Policy::new(
            &[role("demo", "pod-reader", pod_reader())],
            &[cluster_role("reader", pod_reader())],
            &[role_binding(
                "demo",
                "b",
                "Role",
                "pod-reader",
                sa_without_namespace.clone(),
            )],
            // In a ClusterRoleBinding there is no namespace to default to.
            &[cluster_role_binding("c", "reader", sa_without_namespace)],
        );
        let bot = UserInfo::service_account("demo", "bot");
        assert!(policy.allows(&bot, &pods("get", "demo", "web")));
        assert!(!policy.allows(&bot, &pods("get", "other", "web")));
        assert!(!policy.allows(
            &UserInfo::service_account("other", "bot"),
            &pods("get", "demo", "web")
        ));
    }

    #[test]
    fn cluster_role_through_role_binding_is_namespace_limited() {
        let policy = Policy::new(
            &[],
            &[cluster_role("reader", pod_reader())],
            &[role_binding(
                "demo",
                "b",
                "ClusterRole",
                "reader",
                json!([{"kind": "User", "name": "jane"}]),
            )],
            &[],
        );
        let jane = user("jane");
        assert!(policy.allows(&jane, &pods("get", "demo", "web")));
        assert!(!policy.allows(&jane, &pods("get", "other", "web")));
        assert!(!policy.allows(&jane, &pods("list", "", "")));
    }

    #[test]
    fn cluster_role_binding_grants_everywhere() {
        let nodes =
            json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["nodes", "pods"]}]);
        let policy = Policy::new(
            &[],
            &[cluster_role("reader", nodes)],
            &[],
            &[cluster_role_binding(
                "b",
                "reader",
                json!([{"kind": "User", "name": "jane"}]),
            )],
        );
        let jane = user("jane");
        assert!(policy.allows(&jane, &pods("get", "demo", "web")));
        assert!(policy.allows(&jane, &pods("list", "other", "")));
        assert!(policy.allows(&jane, &pods("list", "", "")));
        assert!(policy.allows(&jane, &Attributes::resource("get", "", "nodes", "", "n1")));
        assert!(!policy.allows(&user("joe"), &pods("list", "", "")));
    }

    #[test]
    fn cluster_scoped_requests_ignore_role_bindings() {
        let policy = Policy::new(
            &[],
            &[cluster_role(
                "nodes",
                json!([{"verbs": ["*"], "apiGroups": [""], "resources": ["nodes"]}]),
            )],
            &[role_binding(
                "demo",
                "b",
                "ClusterRole",
                "nodes",
                json!([{"kind": "User", "name": "jane"}]),
            )],
            &[],
        );
        assert!(!policy.allows(
            &user("jane"),
            &Attributes::resource("get", "", "nodes", "", "n1")
        ));
    }

    #[test]
    fn resource_names_limit_named_requests_only() {
        let rules = json!([{
            "verbs": ["get", "list", "watch", "create", "update", "deletecollection"],
            "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"],
        }]);
        let policy = Policy::new(
            &[role("demo", "settings", rules)],
            &[],
            &[role_binding(
                "demo",
                "b",
                "Role",
                "settings",
                json!([{"kind": "User", "name": "jane"}]),
            )],
            &[],
        );
        let jane = user("jane");
        let cm =
            |verb: &str, name: &str| Attributes::resource(verb, "", "configmaps", "demo", name);
        assert!(policy.allows(&jane, &cm("get", "settings")));
        assert!(policy.allows(&jane, &cm("update", "settings")));
        // A watch of one object carries its name (from the field selector).
        assert!(policy.allows(&jane, &cm("watch", "settings")));
        assert!(!policy.allows(&jane, &cm("get", "other")));
        for verb in ["list", "watch", "create", "deletecollection"] {
            assert!(
                !policy.allows(&jane, &cm(verb, "")),
                "{verb} without a name"
            );
        }
    }

    #[test]
    fn subresources_match_exactly_or_by_star_prefix() {
        let rules = json!([
            {"verbs": ["get", "patch"], "apiGroups": ["apps"], "resources": ["deployments/status"]},
            {"verbs": ["update"], "apiGroups": ["apps"], "resources": ["*/scale"]},
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/*"]},
        ]);
        let policy = Policy::new(
            &[],
            &[cluster_role("r", rules)],
            &[],
            &[cluster_role_binding(
                "b",
                "r",
                json!([{"kind": "User", "name": "jane"}]),
            )],
        );
        let jane = user("jane");
        let deploy = |verb: &str, sub: &str| {
            with_subresource(
                Attributes::resource(verb, "apps", "deployments", "demo", "web"),
                sub,
            )
        };
        assert!(policy.allows(&jane, &deploy("patch", "status")));
        assert!(!policy.allows(&jane, &deploy("patch", "")));
        assert!(!policy.allows(&jane, &deploy("patch", "scale")));
        assert!(policy.allows(&jane, &deploy("update", "scale")));
        let rs_scale = with_subresource(
            Attributes::resource("update", "apps", "replicasets", "demo", "x"),
            "scale",
        );
        assert!(policy.allows(&jane, &rs_scale));
        assert!(!policy.allows(
            &jane,
            &Attributes::resource("update", "apps", "scale", "demo", "x")
        ));
        // kube gives `pods/*` no wildcard meaning.
        assert!(!policy.allows(&jane, &with_subresource(pods("get", "demo", "p"), "log")));
        assert!(!policy.allows(&jane, &pods("get", "demo", "p")));
    }

    #[test]
    fn groups_grant_to_their_members() {
        let policy = Policy::new(
            &[],
            &[cluster_role("reader", pod_reader())],
            &[role_binding(
                "demo",
                "b",
                "ClusterRole",
                "reader",
                json!([{"kind": "Group", "apiGroup": RBAC_GROUP, "name": "system:serviceaccounts:demo"}]),
            )],
            &[cluster_role_binding(
                "c",
                "reader",
                json!([{"kind": "Group", "name": "devs"}]),
            )],
        );
        assert!(policy.allows(
            &UserInfo::service_account("demo", "any"),
            &pods("get", "demo", "p")
        ));
        assert!(!policy.allows(
            &UserInfo::service_account("other", "any"),
            &pods("get", "demo", "p")
        ));
        assert!(policy.allows(&UserInfo::new("jane", ["devs"]), &pods("list", "", "")));
        assert!(!policy.allows(&UserInfo::new("devs", ["ops"]), &pods("list", "", "")));
    }

    #[test]
    fn wildcards_cover_verbs_groups_and_resources() {
        let rules = json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]);
        let policy = Policy::new(
            &[role("demo", "all", rules)],
            &[],
            &[role_binding(
                "demo",
                "b",
                "Role",
                "all",
                json!([{"kind": "User", "name": "jane"}]),
            )],
            &[],
        );
        let jane = user("jane");
        let mut custom = Attributes::resource("escalate", "example.com", "widgets", "demo", "w");
        assert!(policy.allows(&jane, &custom));
        custom.subresource = "status".into();
        assert!(policy.allows(&jane, &custom));
        assert!(!policy.allows(&jane, &Attributes::non_resource("get", "/healthz")));
        custom.namespace = "other".into();
        assert!(!policy.allows(&jane, &custom));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_prefix() {
        let rules =
            json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/logs/*", "/metrics*"]}]);
        let policy = Policy::new(
            &[],
            &[cluster_role("r", rules)],
            &[],
            &[cluster_role_binding(
                "b",
                "r",
                json!([{"kind": "User", "name": "jane"}]),
            )],
        );
        let jane = user("jane");
        let get = |path: &str| Attributes::non_resource("get", path);
        assert!(policy.allows(&jane, &get("/healthz")));
        assert!(!policy.allows(&jane, &get("/healthz/etcd")));
        assert!(policy.allows(&jane, &get("/logs/kube.log")));
        assert!(policy.allows(&jane, &get("/logs/")));
        assert!(!policy.allows(&jane, &get("/logs")));
        assert!(policy.allows(&jane, &get("/metrics/slis")));
        assert!(!policy.allows(&jane, &Attributes::non_resource("post", "/healthz")));
        // Resource rules never match paths, nor path rules resources.
        assert!(!policy.allows(&jane, &Attributes::resource("get", "", "healthz", "", "")));
    }

    #[test]
    fn missing_roles_grant_nothing_and_explain_why() {
        let jane = json!([{"kind": "User", "name": "jane"}]);
        let policy = Policy::new(
            &[role("other", "pod-reader", pod_reader())],
            &[],
            &[
                role_binding("demo", "a", "Role", "pod-reader", jane.clone()),
                role_binding("demo", "b", "ClusterRole", "gone", jane.clone()),
                role_binding("demo", "c", "Widget", "x", jane.clone()),
            ],
            &[cluster_role_binding("d", "gone", jane)],
        );
        let attrs = pods("get", "demo", "web");
        assert!(!policy.allows(&user("jane"), &attrs));
        let decision = policy.authorize(&user("jane"), &attrs);
        assert!(!decision.allowed);
        assert_eq!(
            decision.reason,
            "RBAC: [clusterrole.rbac.authorization.k8s.io \"gone\" not found, \
             role.rbac.authorization.k8s.io \"pod-reader\" not found, \
             unsupported role reference kind: \"Widget\"]"
        );
        // Bindings that do not name the user are not resolved for it.
        assert_eq!(policy.authorize(&user("joe"), &attrs).reason, "");
    }

    #[test]
    fn allow_reason_names_the_binding_and_subject() {
        let policy = Policy::new(
            &[role("demo", "pod-reader", pod_reader())],
            &[],
            &[role_binding(
                "demo",
                "bot-reads",
                "Role",
                "pod-reader",
                json!([{"kind": "User", "name": "x"}, {"kind": "ServiceAccount", "name": "bot"}]),
            )],
            &[],
        );
        let decision = policy.authorize(
            &UserInfo::service_account("demo", "bot"),
            &pods("get", "demo", "p"),
        );
        assert_eq!(
            decision,
            Decision {
                allowed: true,
                reason: "RBAC: allowed by RoleBinding \"bot-reads/demo\" of Role \"pod-reader\" \
                         to ServiceAccount \"bot/demo\""
                    .into(),
            }
        );
    }

    #[test]
    fn bootstrap_grants_discovery_to_authenticated_users() {
        let policy = Policy::from_objects(&bootstrap_objects());
        let jane = user("jane");
        for path in [
            "/api",
            "/api/v1",
            "/apis/apps/v1",
            "/version",
            "/healthz",
            "/readyz",
            "/livez",
            "/openapi/v3",
        ] {
            assert!(
                policy.allows(&jane, &Attributes::non_resource("get", path)),
                "{path}"
            );
        }
        assert!(!policy.allows(&jane, &Attributes::non_resource("get", "/metrics")));
        assert!(!policy.allows(&jane, &Attributes::non_resource("post", "/api")));
        assert!(!policy.allows(&jane, &pods("list", "default", "")));
        let review = Attributes::resource(
            "create",
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "",
            "",
        );
        assert!(policy.allows(&jane, &review));

        let anonymous = UserInfo::anonymous();
        assert!(policy.allows(&anonymous, &Attributes::non_resource("get", "/version")));
        assert!(!policy.allows(&anonymous, &Attributes::non_resource("get", "/api")));
        assert!(!policy.allows(&anonymous, &review));
    }

    #[test]
    fn bootstrap_objects_are_labelled_rbac_v1() {
        let objects = bootstrap_objects();
        assert_eq!(objects.len(), 8);
        for object in &objects {
            assert_eq!(object["apiVersion"], RBAC_API_VERSION);
            assert_eq!(
                object["metadata"]["labels"]["kubernetes.io/bootstrapping"],
                "rbac-defaults"
            );
        }
        let public = objects
            .iter()
            .find(|o| {
                o["kind"] == "ClusterRoleBinding"
                    && o["metadata"]["name"] == "system:public-info-viewer"
            })
            .unwrap();
        assert_eq!(public["subjects"][1]["name"], ALL_UNAUTHENTICATED);
    }

    #[test]
    fn cluster_admin_through_system_masters() {
        let policy = Policy::from_objects(&bootstrap_objects());
        let admin = UserInfo::new("admin", [PRIVILEGED_GROUP, ALL_AUTHENTICATED]);
        let mut scale = Attributes::resource("patch", "apps", "deployments", "demo", "web");
        scale.subresource = "scale".into();
        assert!(policy.allows(&admin, &scale));
        assert!(policy.allows(
            &admin,
            &Attributes::resource("deletecollection", "", "nodes", "", "")
        ));
        assert!(policy.allows(&admin, &Attributes::non_resource("get", "/metrics")));
        let decision = policy.authorize(&admin, &scale);
        assert_eq!(
            decision.reason,
            "RBAC: allowed by ClusterRoleBinding \"cluster-admin\" of ClusterRole \"cluster-admin\" \
             to Group \"system:masters\""
        );
        assert!(!policy.allows(&user("admin"), &scale));
        // Without the ClusterRoleBinding the group is nothing special.
        let roles_only: Vec<Value> = bootstrap_objects()
            .into_iter()
            .filter(|o| o["kind"] == "ClusterRole")
            .collect();
        assert!(!Policy::from_objects(&roles_only).allows(&admin, &scale));
    }

    #[test]
    fn forbidden_messages_match_kube() {
        let bot = UserInfo::service_account("demo", "bot");
        let get = Attributes::resource("get", "apps", "deployments", "demo", "web");
        assert_eq!(
            forbidden_message(&bot, &get),
            "deployments.apps \"web\" is forbidden: User \"system:serviceaccount:demo:bot\" \
             cannot get resource \"deployments\" in API group \"apps\" in the namespace \"demo\""
        );
        let x = user("x");
        assert_eq!(
            forbidden_message(
                &x,
                &Attributes::resource("list", "apps", "deployments", "", "")
            ),
            "deployments.apps is forbidden: User \"x\" cannot list resource \"deployments\" \
             in API group \"apps\" at the cluster scope"
        );
        assert_eq!(
            forbidden_message(
                &x,
                &Attributes::resource("list", "apps", "deployments", "demo", "")
            ),
            "deployments.apps is forbidden: User \"x\" cannot list resource \"deployments\" \
             in API group \"apps\" in the namespace \"demo\""
        );
        let status = with_subresource(
            Attributes::resource("patch", "apps", "deployments", "demo", "web"),
            "status",
        );
        assert_eq!(
            forbidden_message(&x, &status),
            "deployments.apps \"web\" is forbidden: User \"x\" cannot patch resource \
             \"deployments/status\" in API group \"apps\" in the namespace \"demo\""
        );
        assert_eq!(
            forbidden_message(&x, &pods("list", "", "")),
            "pods is forbidden: User \"x\" cannot list resource \"pods\" in API group \"\" \
             at the cluster scope"
        );
        assert_eq!(
            forbidden_message(&x, &Attributes::non_resource("get", "/healthz")),
            "forbidden: User \"x\" cannot get path \"/healthz\""
        );
    }

    #[test]
    fn forbidden_messages_escape_like_kube() {
        let odd = UserInfo::new("a\"b<c>&d\n", [ALL_AUTHENTICATED]);
        assert_eq!(
            forbidden_message(&odd, &Attributes::non_resource("get", "/x")),
            "forbidden: User \"a\\\"b&lt;c&gt;&amp;d\\n\" cannot get path \"/x\""
        );
        let reason = "RBAC: role.rbac.authorization.k8s.io \"gone\" not found";
        assert_eq!(
            forbidden_message_with_reason(&user("x"), &pods("get", "demo", "p"), reason),
            "pods \"p\" is forbidden: User \"x\" cannot get resource \"pods\" in API group \"\" \
             in the namespace \"demo\": RBAC: role.rbac.authorization.k8s.io \"gone\" not found"
        );
    }

    /// kube's resolver, literally: every binding, `appliesTo` per subject.
    fn reference_allows(objects: &[Value], user: &UserInfo, attrs: &Attributes) -> bool {
        let rules_of = |kind: &str, namespace: &str, name: &str| -> Vec<Rule> {
            objects
                .iter()
                .find(|o| {
                    o["kind"] == kind
                        && str_at(o, "/metadata/name") == name
                        && str_at(o, "/metadata/namespace") == namespace
                })
                .and_then(|o| o["rules"].as_array())
                .map(|rules| rules.iter().map(Rule::from_json).collect())
                .unwrap_or_default()
        };
        objects.iter().any(|binding| {
            let kind = str_at(binding, "/kind");
            let namespace = str_at(binding, "/metadata/namespace");
            let visited = match kind {
                "ClusterRoleBinding" => true,
                "RoleBinding" => !attrs.namespace.is_empty() && namespace == attrs.namespace,
                _ => false,
            };
            let subjects: Vec<Subject> = binding["subjects"]
                .as_array()
                .map(|s| s.iter().map(Subject::from_json).collect())
                .unwrap_or_default();
            let role_kind = str_at(binding, "/roleRef/kind");
            let role_namespace = if role_kind == "Role" { namespace } else { "" };
            visited
                && subjects.iter().any(|s| s.applies_to(user, namespace))
                && rules_of(role_kind, role_namespace, str_at(binding, "/roleRef/name"))
                    .iter()
                    .any(|r| r.allows(attrs))
        })
    }

    #[test]
    fn index_agrees_with_scanning_every_binding() {
        let mut objects = bootstrap_objects();
        objects.extend([
            role("a", "reader", pod_reader()),
            role("b", "reader", pod_reader()),
            cluster_role(
                "writer",
                json!([{"verbs": ["create", "delete"], "apiGroups": [""], "resources": ["pods"]}]),
            ),
            role_binding(
                "a",
                "1",
                "Role",
                "reader",
                json!([{"kind": "ServiceAccount", "name": "bot"}]),
            ),
            role_binding(
                "b",
                "2",
                "Role",
                "reader",
                json!([{"kind": "Group", "name": "devs"}]),
            ),
            role_binding(
                "b",
                "3",
                "ClusterRole",
                "writer",
                json!([{"kind": "User", "name": "system:serviceaccount:a:bot"}]),
            ),
            role_binding(
                "a",
                "4",
                "Role",
                "missing",
                json!([{"kind": "User", "name": "jane"}]),
            ),
            cluster_role_binding(
                "5",
                "writer",
                json!([{"kind": "ServiceAccount", "name": "bot", "namespace": "b"}]),
            ),
            cluster_role_binding(
                "6",
                "writer",
                json!([{"kind": "Group", "name": "ops"}, {"kind": "Robot", "name": "jane"}]),
            ),
        ]);
        let policy = Policy::from_objects(&objects);
        let users = [
            UserInfo::service_account("a", "bot"),
            UserInfo::service_account("b", "bot"),
            UserInfo::new("jane", ["devs", ALL_AUTHENTICATED]),
            UserInfo::new("joe", ["ops", "devs", "ops"]),
            UserInfo::new("root", [PRIVILEGED_GROUP]),
            UserInfo::anonymous(),
        ];
        let mut cases = Vec::new();
        for verb in ["get", "list", "create", "delete"] {
            for namespace in ["", "a", "b", "c"] {
                cases.push(pods(verb, namespace, ""));
                cases.push(pods(verb, namespace, "p"));
            }
            cases.push(Attributes::non_resource(verb, "/api/v1"));
        }
        for user in &users {
            for attrs in &cases {
                let expected = reference_allows(&objects, user, attrs);
                assert_eq!(policy.allows(user, attrs), expected, "{user:?} {attrs:?}");
                assert_eq!(
                    policy.authorize(user, attrs).allowed,
                    expected,
                    "{user:?} {attrs:?}"
                );
            }
        }
    }
}
