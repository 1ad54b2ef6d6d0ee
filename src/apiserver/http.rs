//! The HTTP front: decodes requests, sends them to the verbs in `resources`, and
//! encodes answers (objects, lists, Tables, watch streams, Status errors).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::FutureExt;
use http::{header, HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::discovery;
use super::errors::{ApiError, ApiResult};
use super::rbac::{Attributes, UserInfo};
use super::registry::ResourceType;
use super::resources::{
    to_version, DeleteOptions, FieldValidation, PatchKind, State, Subresource, WriteOptions,
    Written,
};
use super::routes::{self, ResourcePath, Route};
use super::selectors::{supported_fields, FieldSelector, LabelSelector};
use super::store::Json;
use super::table::{self, IncludeObject};
use super::telemetry::Metrics;
use super::watch::{self, WatchRequest};

/// The largest request body kube-apiserver accepts.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub struct App {
    pub state: Arc<State>,
    pub server_address: String,
    pub bookmark_interval: Duration,
    pub metrics: Metrics,
    /// Becomes true when the server shuts down: open watches end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Authentication and RBAC; None serves everyone as an administrator.
    pub auth: Option<Arc<super::auth::Auth>>,
}

pub type Query = HashMap<String, String>;

pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(app)
}

async fn handle(AxumState(app): AxumState<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // A bug must cost one request a 500, as kube-apiserver's panic recovery does,
    // not the client its connection.
    let outcome = std::panic::AssertUnwindSafe(dispatch(&app, req))
        .catch_unwind()
        .await;
    let (verb, resource, result) = outcome.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(%method, %path, panic = %what, "panic while handling the request");
        let e = ApiError::internal("the server panicked while handling the request");
        ("other", String::new(), Err(e))
    });
    let response = result.unwrap_or_else(IntoResponse::into_response);
    let code = response.status().as_u16();
    app.metrics
        .observe_request(verb, &resource, code, started.elapsed());
    tracing::debug!(%method, %path, code, elapsed_us = started.elapsed().as_micros() as u64, "request");
    response
}

/// The verb and resource (for metrics) and the answer.
type Outcome = (&'static str, String, ApiResult<Response>);

async fn dispatch(app: &Arc<App>, req: Request) -> Outcome {
    let route = routes::parse(req.uri().path());
    let query = parse_query(req.uri().query());
    let user = match &app.auth {
        Some(auth) => match check_access(auth, app, &req, &route, &query) {
            Ok(user) => Some(user),
            Err(e) => return ("other", String::new(), Err(e)),
        },
        None => None,
    };
    if req.method() != Method::GET && !matches!(route, Route::Resource(_)) {
        let e = ApiError::method_not_allowed(req.method().as_str(), "this path");
        return ("other", String::new(), Err(e));
    }
    let Route::Resource(path) = route else {
        return ("get", String::new(), serve_document(app, route, &query));
    };
    let resource = path.plural.clone();
    let verb = verb_of(req.method(), &path, &query);
    let mut result = resource_request(app, req, path, query, verb, user).await;
    if result.is_ok() && WRITES.contains(&verb) {
        // Acknowledge a write only once it, and everything before it, is on disk.
        let rv = app.state.store.current_rv();
        if let Err(e) = app.state.store.wait_durable(rv).await {
            result = Err(ApiError::internal(format!(
                "the write could not be made durable: {e}"
            )));
        }
    }
    (verb, resource, result)
}

/// The verbs that change objects.
const WRITES: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// Everything that is not an object: version, health, metrics, discovery, OpenAPI.
fn serve_document(app: &App, route: Route, query: &Query) -> ApiResult<Response> {
    let registry = &app.state.registry;
    let doc = match route {
        Route::Version => Some(discovery::version()),
        Route::Health(_) => return Ok((StatusCode::OK, "ok").into_response()),
        Route::Metrics => {
            return Ok(app
                .metrics
                .render(app.state.store.current_rv())
                .into_response())
        }
        Route::CoreVersions => Some(discovery::core_versions(&app.server_address)),
        Route::GroupList => Some(discovery::group_list(registry)),
        Route::Group(g) => discovery::group(registry, &g),
        Route::ResourceList { group, version } => {
            discovery::resource_list(registry, &group, &version)
        }
        Route::OpenApiV3Root => Some(discovery::openapi_root(registry)),
        Route::OpenApiV3 { group, version } => {
            return openapi_v3(registry, &group, &version, query.get("hash"))
        }
        Route::OpenApiV2 | Route::Unknown | Route::Resource(_) => None,
    };
    doc.map(|d| json_response(StatusCode::OK, &d))
        .ok_or_else(ApiError::not_found_path)
}

/// One group version's OpenAPI document, cacheable as kube-apiserver makes it: under
/// its current hash it never changes (kubectl keeps it), and a stale hash is
/// redirected to the current one.
fn openapi_v3(
    registry: &super::registry::Registry,
    group: &str,
    version: &str,
    asked: Option<&String>,
) -> ApiResult<Response> {
    let types = discovery::served(registry, group, version);
    if types.is_empty() {
        return Err(ApiError::not_found_path());
    }
    // One read of the registry for both: a document must never be cached under a
    // hash that is not its own.
    let hash = discovery::fingerprint(&types, version);
    let asked = asked.filter(|a| !a.is_empty());
    if asked.is_some_and(|asked| *asked != hash) {
        let current = discovery::openapi_url(group, version, &hash);
        return Ok((StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, current)]).into_response());
    }
    let document = discovery::openapi_document(&types, version);
    let mut response = json_response(StatusCode::OK, &document);
    let headers = response.headers_mut();
    let etag = format!("\"{hash}\"")
        .parse()
        .expect("a hex hash is a valid header");
    headers.insert(header::ETAG, etag);
    if asked.is_some() {
        let a_year = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(365 * 24);
        let expires = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&a_year)
            .unwrap_or_default();
        headers.insert(
            header::CACHE_CONTROL,
            "public, immutable".parse().expect("a valid header"),
        );
        headers.insert(header::VARY, "Accept".parse().expect("a valid header"));
        if let Ok(expires) = expires.parse() {
            headers.insert(header::EXPIRES, expires);
        }
    }
    Ok(response)
}

/// Authenticates the request and asks RBAC whether its user may make it; the user.
fn check_access(
    auth: &super::auth::Auth,
    app: &App,
    req: &Request,
    route: &Route,
    query: &Query,
) -> ApiResult<UserInfo> {
    let user = auth.authenticate(&app.state, req.headers(), req.uri().path())?;
    let attrs = match route {
        Route::Resource(p) => {
            let mut a = Attributes::resource(
                verb_of(req.method(), p, query),
                &p.group,
                &p.plural,
                p.namespace.as_deref().unwrap_or_default(),
                p.name.as_deref().unwrap_or_default(),
            );
            a.subresource = p.subresource.clone().unwrap_or_default();
            // As kube-apiserver does, a list or watch of one name (fieldSelector
            // metadata.name=X) is authorized for that name, so resourceNames rules apply.
            if a.name.is_empty() && matches!(a.verb.as_str(), "list" | "watch") {
                if let Some(name) = single_name_selector(query) {
                    a.name = name;
                }
            }
            // kube-apiserver authorizes a namespace as living in itself.
            if p.group.is_empty() && p.plural == "namespaces" {
                a.namespace = a.name.clone();
            }
            a
        }
        _ => Attributes::non_resource(
            &req.method().as_str().to_ascii_lowercase(),
            req.uri().path(),
        ),
    };
    auth.authorize(&user, &attrs)?;
    Ok(user)
}

/// `X` when the field selector is exactly `metadata.name=X` (or `==`).
fn single_name_selector(query: &Query) -> Option<String> {
    let selector = query.get("fieldSelector")?;
    let name = selector
        .strip_prefix("metadata.name==")
        .or_else(|| selector.strip_prefix("metadata.name="))?;
    (!name.is_empty() && !name.contains(',')).then(|| name.to_string())
}

fn verb_of(method: &Method, path: &ResourcePath, query: &Query) -> &'static str {
    let collection = path.name.is_none();
    match *method {
        Method::GET if path.watch || is_true(query.get("watch")) => "watch",
        Method::GET if collection => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "other",
    }
}

fn is_true(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true" | "1"))
}

fn parse_query(q: Option<&str>) -> Query {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

async fn resource_request(
    app: &Arc<App>,
    req: Request,
    path: ResourcePath,
    query: Query,
    verb: &'static str,
    user: Option<UserInfo>,
) -> ApiResult<Response> {
    let rt = app
        .state
        .registry
        .lookup(&path.group, &path.version, &path.plural)
        .ok_or_else(ApiError::not_found_path)?;
    if rt.review {
        return match (verb, path.name.as_deref()) {
            ("create", None) => review(app, &rt, user, req).await,
            _ => Err(ApiError::method_not_allowed(
                verb,
                &format!("resources of kind \"{}\"", rt.plural),
            )),
        };
    }
    if rt.namespaced != path.namespace.is_some() && !(rt.namespaced && path.name.is_none()) {
        return Err(ApiError::not_found_path());
    }
    if path.subresource.as_deref() == Some("token")
        && rt.group.is_empty()
        && rt.plural == "serviceaccounts"
    {
        return match (verb, path.name.as_deref()) {
            ("create", Some(name)) => {
                token_request(
                    app,
                    path.namespace.as_deref().unwrap_or_default(),
                    name,
                    req,
                )
                .await
            }
            _ => Err(ApiError::method_not_allowed(verb, "serviceaccounts/token")),
        };
    }
    let sub = match path.subresource.as_deref() {
        None => Subresource::Main,
        Some("status") if rt.status => Subresource::Status,
        Some("scale") if rt.scale.is_some() => Subresource::Scale,
        Some("finalize") if rt.plural == "namespaces" && rt.group.is_empty() => Subresource::Main,
        Some(_) => return Err(ApiError::not_found_path()),
    };
    let ns = path.namespace.clone().unwrap_or_default();
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let ctx = Ctx {
        app,
        rt: &rt,
        version: &path.version,
        ns: &ns,
        query: &query,
        headers: &headers,
    };
    match (verb, path.name.as_deref()) {
        ("watch", _) => ctx.watch(path.name.as_deref()),
        ("list", None) => ctx.list(),
        ("get", Some(name)) => ctx.get(name, sub),
        ("create", None) if path.namespace.is_some() || !rt.namespaced => {
            let obj = decode_body(&headers, read_body(body).await?, ctx.strict())?;
            ctx.create(obj)
        }
        ("update", Some(name)) => {
            let obj = decode_body(&headers, read_body(body).await?, ctx.strict())?;
            ctx.update(name, obj, sub)
        }
        ("patch", Some(name)) => {
            let kind = patch_kind(&headers, &rt)?;
            let bytes = read_body(body).await?;
            ctx.patch(name, kind, &bytes, sub)
        }
        ("delete", Some(name)) if sub == Subresource::Main => {
            let bytes = read_body(body).await?;
            ctx.delete(name, &bytes)
        }
        ("deletecollection", None) => ctx.delete_collection(),
        (verb, _) => Err(ApiError::method_not_allowed(
            verb,
            &format!("resources of kind \"{}\"", rt.plural),
        )),
    }
}

/// `kubectl create token`: a TokenRequest for an existing ServiceAccount, answered
/// with a token this server accepts for as long as the ServiceAccount exists.
async fn token_request(app: &App, ns: &str, name: &str, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let mut request = decode_body(&parts.headers, read_body(body).await?, false)?;
    let Some(auth) = &app.auth else {
        return Err(ApiError::bad_request(
            "this server does not authenticate; it issues no tokens",
        ));
    };
    let gr = super::store::GroupResource::new("", "serviceaccounts");
    let sa = app
        .state
        .store
        .get(&gr, ns, name)
        .ok_or_else(|| ApiError::not_found(&gr, name))?;
    let uid = super::objects::uid(&sa.value()).to_string();
    // kube-apiserver's defaults and floor for spec.expirationSeconds.
    let seconds = request["spec"]["expirationSeconds"]
        .as_i64()
        .unwrap_or(3600);
    if seconds < 600 {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!("TokenRequest.authentication.k8s.io \"{name}\" is invalid: spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes"),
        ));
    }
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seconds);
    request["apiVersion"] = json!("authentication.k8s.io/v1");
    request["kind"] = json!("TokenRequest");
    request["metadata"] =
        json!({"name": name, "namespace": ns, "creationTimestamp": super::objects::now()});
    request["spec"]["expirationSeconds"] = json!(seconds);
    request["status"] = json!({
        "token": auth.expiring_token(ns, name, &uid, expires.as_second()),
        "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    Ok(json_response(StatusCode::CREATED, &request))
}

/// `kubectl auth can-i` (SelfSubjectAccessReview) and `kubectl auth whoami`
/// (SelfSubjectReview), answered for the requesting user and not stored. A server
/// without authentication treats everyone as an administrator.
async fn review(
    app: &App,
    rt: &ResourceType,
    user: Option<UserInfo>,
    req: Request,
) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let mut review = decode_body(&parts.headers, read_body(body).await?, false)?;
    let user = user.unwrap_or_else(|| {
        UserInfo::new(
            "admin",
            [
                super::rbac::PRIVILEGED_GROUP,
                super::rbac::ALL_AUTHENTICATED,
            ],
        )
    });
    review["apiVersion"] = json!(rt.api_version(&rt.storage_version));
    review["kind"] = json!(rt.kind);
    review["metadata"] = json!({"creationTimestamp": super::objects::now()});
    review["status"] = match rt.kind.as_str() {
        "SelfSubjectReview" => json!({"userInfo": {"username": user.name, "groups": user.groups}}),
        _ => {
            let attrs = review_attributes(&review["spec"]);
            let (allowed, reason) = match &app.auth {
                Some(auth) => auth.decide(&user, &attrs),
                None => (true, String::new()),
            };
            json!({"allowed": allowed, "reason": reason})
        }
    };
    Ok(json_response(StatusCode::CREATED, &review))
}

fn review_attributes(spec: &Value) -> Attributes {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        let mut a = Attributes::resource(
            &text(&r["verb"]),
            &text(&r["group"]),
            &text(&r["resource"]),
            &text(&r["namespace"]),
            &text(&r["name"]),
        );
        a.subresource = text(&r["subresource"]);
        return a;
    }
    let n = &spec["nonResourceAttributes"];
    Attributes::non_resource(&text(&n["verb"]), &text(&n["path"]))
}

async fn read_body(body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Parses a JSON, YAML or protobuf body into an object; `strict` refuses duplicate
/// fields in JSON.
fn decode_body(headers: &HeaderMap, body: Bytes, strict: bool) -> ApiResult<Value> {
    match content_type(headers).as_str() {
        "" | "application/json" if strict => super::strict_json::parse(&body)
            .map_err(|e| ApiError::bad_request(format!("strict decoding error: {e}"))),
        "" | "application/json" | "application/yaml" | "text/yaml" => parse_document(&body),
        // kubectl's typed commands (`create namespace`, `create deployment`, ...) send protobuf.
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode(&body).map_err(|e| {
            ApiError::bad_request(format!("the protobuf body could not be decoded: {e}"))
        }),
        _ => Err(ApiError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
        ])),
    }
}

fn parse_document(body: &[u8]) -> ApiResult<Value> {
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(v) => v,
        Err(json_err) => serde_yaml::from_slice::<Value>(body).map_err(|_| {
            ApiError::bad_request(format!(
                "the request body is not valid JSON or YAML: {json_err}"
            ))
        })?,
    };
    Ok(value)
}

fn patch_kind(headers: &HeaderMap, rt: &ResourceType) -> ApiResult<PatchKind> {
    match content_type(headers).as_str() {
        "application/json-patch+json" => Ok(PatchKind::Json),
        "application/merge-patch+json" => Ok(PatchKind::Merge),
        "application/strategic-merge-patch+json" if rt.builtin => Ok(PatchKind::Strategic),
        "application/apply-patch+yaml" => Ok(PatchKind::Apply),
        _ => Err(ApiError::unsupported_media_type(&patch_types(rt))),
    }
}

/// The patch content types a resource accepts: strategic merge only for built-ins.
pub fn patch_types(rt: &ResourceType) -> Vec<&'static str> {
    let mut types = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if rt.builtin {
        types.push("application/strategic-merge-patch+json");
    }
    types.push("application/apply-patch+yaml");
    types
}

struct Ctx<'a> {
    app: &'a Arc<App>,
    rt: &'a Arc<ResourceType>,
    version: &'a str,
    ns: &'a str,
    query: &'a Query,
    headers: &'a HeaderMap,
}

/// An object to answer with: stored bytes go out as they are when the client wants
/// plain JSON in the version they are stored in.
enum Answer {
    Stored(Json),
    Object(Value),
}

/// How the client wants objects rendered.
enum Rendering {
    Plain,
    Table(IncludeObject),
    Metadata,
}

impl Ctx<'_> {
    fn state(&self) -> &State {
        &self.app.state
    }

    fn rendering(&self) -> ApiResult<Rendering> {
        let accept = self
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let first = accept.split(',').next().unwrap_or_default();
        if first.contains("as=Table") {
            let include = IncludeObject::parse(self.query.get("includeObject").map(String::as_str))
                .map_err(ApiError::bad_request)?;
            return Ok(Rendering::Table(include));
        }
        if first.contains("as=PartialObjectMetadata") {
            return Ok(Rendering::Metadata);
        }
        Ok(Rendering::Plain)
    }

    fn strict(&self) -> bool {
        self.query
            .get("fieldValidation")
            .is_some_and(|v| v == "Strict")
    }

    fn write_options(&self) -> ApiResult<WriteOptions> {
        let validation = match self.query.get("fieldValidation").map(String::as_str) {
            None | Some("") | Some("Warn") => FieldValidation::Warn,
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            )))
            }
        };
        let manager = match self.query.get("fieldManager") {
            Some(m) if m.len() > 128 => {
                return Err(ApiError::bad_request(
                    "fieldManager: Too long: may not be longer than 128",
                ))
            }
            Some(m) => m.clone(),
            None => self.user_agent_manager(),
        };
        let dry_run = match self.query.get("dryRun").map(String::as_str) {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "unsupported dry run option: {other:?}; supported values: \"All\""
                )))
            }
        };
        Ok(WriteOptions {
            manager,
            dry_run,
            validation,
            force: is_true(self.query.get("force")),
        })
    }

    /// kube-apiserver names an unnamed manager after the User-Agent's program name.
    fn user_agent_manager(&self) -> String {
        let ua = self
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        ua.split('/')
            .next()
            .unwrap_or("unknown")
            .chars()
            .take(128)
            .collect()
    }

    fn object_response(
        &self,
        status: StatusCode,
        answer: Answer,
        warnings: &[String],
    ) -> ApiResult<Response> {
        let rendering = self.rendering()?;
        let as_stored =
            matches!(rendering, Rendering::Plain) && self.version == self.rt.storage_version;
        let mut response = match answer {
            Answer::Stored(json) if as_stored => raw_json_response(status, json),
            answer => {
                let obj = match answer {
                    Answer::Stored(json) => serde_json::from_slice(&json).expect("stored JSON"),
                    Answer::Object(v) => v,
                };
                let obj = to_version(self.rt, obj, self.version);
                let body = match rendering {
                    Rendering::Plain => obj,
                    Rendering::Metadata => table::partial_metadata(&obj),
                    Rendering::Table(include) => {
                        let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
                        table::table(self.rt, self.version, &[obj], meta, include, true)
                    }
                };
                json_response(status, &body)
            }
        };
        for w in warnings {
            if let Ok(v) = http::HeaderValue::from_str(&format!("299 - {:?}", w)) {
                response.headers_mut().append(header::WARNING, v);
            }
        }
        Ok(response)
    }

    fn written_response(&self, status: StatusCode, w: Written) -> ApiResult<Response> {
        let answer = match w.json {
            Some(json) => Answer::Stored(json),
            None => Answer::Object(w.object),
        };
        self.object_response(status, answer, &w.warnings)
    }

    fn get(&self, name: &str, sub: Subresource) -> ApiResult<Response> {
        let stored = self.state().get(self.rt, self.ns, name)?;
        match sub {
            Subresource::Scale => Ok(json_response(
                StatusCode::OK,
                &super::resources::scale_of(self.rt, &stored.value())?,
            )),
            _ => self.object_response(StatusCode::OK, Answer::Stored(stored.json), &[]),
        }
    }

    fn selectors(&self) -> ApiResult<(LabelSelector, FieldSelector)> {
        let labels = LabelSelector::parse(
            self.query
                .get("labelSelector")
                .map(String::as_str)
                .unwrap_or_default(),
        )
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(
            self.query
                .get("fieldSelector")
                .map(String::as_str)
                .unwrap_or_default(),
            supported_fields(&self.rt.group, &self.rt.plural),
        )
        .map_err(ApiError::bad_request)?;
        Ok((labels, fields))
    }

    fn namespace_filter(&self) -> Option<&str> {
        (self.rt.namespaced && !self.ns.is_empty()).then_some(self.ns)
    }

    fn list(&self) -> ApiResult<Response> {
        let (labels, fields) = self.selectors()?;
        let limit: usize = match self.query.get("limit").map(|l| l.parse::<i64>()) {
            None => 0,
            Some(Ok(n)) if n >= 0 => n as usize,
            _ => {
                return Err(ApiError::bad_request(
                    "limit must be a non-negative integer",
                ))
            }
        };
        let token = match self.query.get("continue").filter(|c| !c.is_empty()) {
            Some(c) => Some(ContinueToken::decode(c)?),
            None => None,
        };
        let start_after = token.as_ref().map(|t| (t.ns.clone(), t.name.clone()));
        let (rv, items) =
            self.state()
                .store
                .list(&self.rt.gr(), self.namespace_filter(), start_after.as_ref());
        let snapshot_rv = token.as_ref().map_or(rv, |t| t.rv);
        let filtering = !labels.is_empty() || !fields.is_empty();
        let mut selected = Vec::new();
        let mut next = None;
        let mut scanned = 0;
        for (key, stored) in &items {
            scanned += 1;
            if filtering {
                let v = stored.value();
                if !labels.matches(&v["metadata"]["labels"]) || !fields.matches(&v) {
                    continue;
                }
            }
            selected.push(stored.json.clone());
            if limit > 0 && selected.len() == limit {
                if scanned < items.len() {
                    next = Some(
                        ContinueToken {
                            rv: snapshot_rv,
                            ns: key.0.clone(),
                            name: key.1.clone(),
                        }
                        .encode(),
                    );
                }
                break;
            }
        }
        let mut meta = json!({"resourceVersion": snapshot_rv.to_string()});
        if let Some(next) = &next {
            meta["continue"] = json!(next);
            if !filtering {
                meta["remainingItemCount"] = json!(items.len() - scanned);
            }
        }
        self.list_response(selected, meta)
    }

    fn list_response(&self, items: Vec<Json>, meta: Value) -> ApiResult<Response> {
        let same_version = self.version == self.rt.storage_version;
        match self.rendering()? {
            Rendering::Plain if same_version => Ok(raw_list_response(
                &self.rt.api_version(self.version),
                &format!("{}List", self.rt.kind),
                &meta,
                &items,
            )),
            rendering => {
                let objects: Vec<Value> = items
                    .iter()
                    .map(|b| {
                        to_version(
                            self.rt,
                            serde_json::from_slice(b).expect("stored JSON"),
                            self.version,
                        )
                    })
                    .collect();
                let body = match rendering {
                    Rendering::Table(include) => {
                        table::table(self.rt, self.version, &objects, meta, include, true)
                    }
                    Rendering::Metadata => {
                        json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                        "items": objects.iter().map(table::partial_metadata).collect::<Vec<_>>()})
                    }
                    Rendering::Plain => {
                        json!({"kind": format!("{}List", self.rt.kind), "apiVersion": self.rt.api_version(self.version), "metadata": meta, "items": objects})
                    }
                };
                Ok(json_response(StatusCode::OK, &body))
            }
        }
    }

    fn watch(&self, name: Option<&str>) -> ApiResult<Response> {
        let (labels, mut fields) = self.selectors()?;
        if let Some(name) = name {
            fields = FieldSelector::parse(&format!("metadata.name={name}"), &["metadata.name"])
                .map_err(ApiError::bad_request)?;
        }
        let timeout = self
            .query
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(1800));
        let table = match self.rendering()? {
            Rendering::Table(include) => Some(include),
            _ => None,
        };
        let request = WatchRequest {
            rt: self.rt.clone(),
            version: self.version.to_string(),
            namespace: self.namespace_filter().map(String::from),
            labels,
            fields,
            resource_version: self
                .query
                .get("resourceVersion")
                .cloned()
                .filter(|s| !s.is_empty()),
            bookmarks: is_true(self.query.get("allowWatchBookmarks")),
            send_initial_events: self.query.get("sendInitialEvents").map(|s| s == "true"),
            timeout,
            table,
            bookmark_interval: self.app.bookmark_interval,
        };
        Ok(watch::serve(self.app.clone(), request))
    }

    fn create(&self, obj: Value) -> ApiResult<Response> {
        let opts = self.write_options()?;
        let w = self.state().create(self.rt, self.ns, obj, &opts)?;
        self.written_response(StatusCode::CREATED, w)
    }

    fn update(&self, name: &str, obj: Value, sub: Subresource) -> ApiResult<Response> {
        let opts = self.write_options()?;
        if sub == Subresource::Scale {
            let patch = json!({"spec": {"replicas": obj["spec"]["replicas"]}, "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}});
            let w = self.state().patch(
                self.rt,
                self.version,
                self.ns,
                name,
                PatchKind::Merge,
                &patch,
                sub,
                &opts,
            )?;
            return Ok(json_response(
                StatusCode::OK,
                &super::resources::scale_of(self.rt, &w.object)?,
            ));
        }
        let w = self
            .state()
            .update(self.rt, self.ns, name, obj, sub, &opts)?;
        self.written_response(StatusCode::OK, w)
    }

    fn patch(
        &self,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        sub: Subresource,
    ) -> ApiResult<Response> {
        let opts = self.write_options()?;
        if kind == PatchKind::Apply
            && (opts.manager.is_empty() || !self.query.contains_key("fieldManager"))
        {
            return Err(ApiError::invalid_field(
                self.rt,
                name,
                "fieldManager",
                "FieldValueRequired",
                "Required value: is required for apply patch",
            ));
        }
        if kind != PatchKind::Apply && self.query.contains_key("force") {
            return Err(ApiError::bad_request(
                "force is only allowed for apply patches",
            ));
        }
        let patch = if kind == PatchKind::Apply {
            parse_document(body)?
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?
        };
        let w = self.state().patch(
            self.rt,
            self.version,
            self.ns,
            name,
            kind,
            &patch,
            sub,
            &opts,
        )?;
        if sub == Subresource::Scale {
            return Ok(json_response(
                StatusCode::OK,
                &super::resources::scale_of(self.rt, &w.object)?,
            ));
        }
        let status = if w.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        self.written_response(status, w)
    }

    fn delete_options(&self, body: &[u8]) -> ApiResult<DeleteOptions> {
        let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("the DeleteOptions body is not valid JSON: {e}"))
            })?
        };
        let text = |v: &Value| v.as_str().map(String::from);
        let propagation = text(&body["propagationPolicy"])
            .or_else(|| self.query.get("propagationPolicy").cloned())
            .or_else(|| match body["orphanDependents"].as_bool() {
                Some(true) => Some("Orphan".into()),
                _ => None,
            });
        let dry_run = self.query.get("dryRun").is_some_and(|d| d == "All")
            || body["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == "All"));
        Ok(DeleteOptions {
            propagation,
            uid: text(&body["preconditions"]["uid"]),
            resource_version: text(&body["preconditions"]["resourceVersion"]),
            dry_run,
        })
    }

    fn delete(&self, name: &str, body: &[u8]) -> ApiResult<Response> {
        let opts = self.delete_options(body)?;
        let obj = self.state().delete(self.rt, self.ns, name, &opts)?;
        if super::objects::is_deleting(&obj)
            && self
                .state()
                .store
                .get(&self.rt.gr(), self.ns, name)
                .is_some()
        {
            return self.object_response(StatusCode::OK, Answer::Object(obj), &[]);
        }
        let mut details =
            json!({"name": name, "kind": self.rt.plural, "uid": obj["metadata"]["uid"]});
        if !self.rt.group.is_empty() {
            details["group"] = json!(self.rt.group);
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
        ))
    }

    fn delete_collection(&self) -> ApiResult<Response> {
        let (labels, fields) = self.selectors()?;
        let opts = self.delete_options(&[])?;
        let (rv, items) = self
            .state()
            .store
            .list(&self.rt.gr(), self.namespace_filter(), None);
        let mut deleted = Vec::new();
        for ((ns, name), stored) in items {
            let v = stored.value();
            if !labels.matches(&v["metadata"]["labels"]) || !fields.matches(&v) {
                continue;
            }
            match self.state().delete(self.rt, &ns, &name, &opts) {
                Ok(obj) => {
                    deleted.push(Json::from(serde_json::to_vec(&obj).expect("serializable")))
                }
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        self.list_response(deleted, json!({"resourceVersion": rv.to_string()}))
    }
}

fn raw_json_response(status: StatusCode, json: Json) -> Response {
    let body = Bytes::from_owner(json);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).expect("a Value always serializes");
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// A list built from stored bytes without parsing them.
fn raw_list_response(api_version: &str, kind: &str, meta: &Value, items: &[Json]) -> Response {
    let head = format!(
        r#"{{"kind":{},"apiVersion":{},"metadata":{},"items":["#,
        json!(kind),
        json!(api_version),
        meta
    );
    let len = head.len() + items.iter().map(|i| i.len() + 1).sum::<usize>() + 2;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(head.as_bytes());
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

/// Where a paginated list continues: after (ns, name), at the first page's version.
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

impl ContinueToken {
    fn encode(&self) -> String {
        use base64::Engine;
        let raw = json!({"v": "meta.k8s.io/v1", "rv": self.rv, "start": [self.ns, self.name]})
            .to_string();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    fn decode(token: &str) -> ApiResult<Self> {
        use base64::Engine;
        let bad =
            || ApiError::bad_request("continue key is not valid: the token could not be decoded");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| bad())?;
        let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
        Ok(ContinueToken {
            rv: v["rv"].as_u64().ok_or_else(bad)?,
            ns: v["start"][0].as_str().ok_or_else(bad)?.to_string(),
            name: v["start"][1].as_str().ok_or_else(bad)?.to_string(),
        })
    }
}
