//! Authentication by bearer token and authorization by the stored RBAC objects.
//!
//! Tokens are either static (the administrator's, components' in local up) or
//! ServiceAccount tokens this server signed: `csa.<payload>.<signature>`, valid
//! while the ServiceAccount they name exists with the same uid.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use http::HeaderMap;
use parking_lot::RwLock;
use serde_json::{json, Value};

use super::controllers::Follower;
use super::errors::{ApiError, ApiResult};
use super::rbac::{self, Attributes, Policy, UserInfo};
use super::resources::{State, WriteOptions};
use super::store::{EventType, GroupResource};

pub struct AuthConfig {
    /// Static bearer tokens and who they stand for.
    pub tokens: Vec<(String, UserInfo)>,
    /// The key ServiceAccount tokens are signed with.
    pub service_account_key: Vec<u8>,
}

pub struct Auth {
    tokens: HashMap<String, UserInfo>,
    key: ring::hmac::Key,
    policy: RwLock<Arc<Policy>>,
}

/// Paths anyone may read without credentials, as kube-apiserver's
/// system:public-info-viewer allows.
const PUBLIC_PATHS: [&str; 4] = ["/healthz", "/livez", "/readyz", "/version"];

const SA_TOKEN_PREFIX: &str = "csa.";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

impl Auth {
    pub fn new(config: AuthConfig) -> Self {
        Auth {
            tokens: config.tokens.into_iter().collect(),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &config.service_account_key),
            policy: RwLock::new(Arc::new(Policy::from_objects(&[]))),
        }
    }

    /// A static token whose user is in `group` (the administrator's, for `system:masters`).
    pub fn token_of_group(&self, group: &str) -> Option<String> {
        let mut tokens: Vec<_> = self
            .tokens
            .iter()
            .filter(|(_, u)| u.groups.iter().any(|g| g == group))
            .collect();
        tokens.sort_by_key(|(t, _)| t.as_str());
        tokens.first().map(|(t, _)| t.to_string())
    }

    /// A token that authenticates as the ServiceAccount `ns/name` (with that uid).
    pub fn service_account_token(&self, ns: &str, name: &str, uid: &str) -> String {
        self.sign(json!({"ns": ns, "name": name, "uid": uid}))
    }

    /// A ServiceAccount token that stops authenticating at `expires` (unix seconds), as
    /// the TokenRequest API hands out.
    pub fn expiring_token(&self, ns: &str, name: &str, uid: &str, expires: i64) -> String {
        self.sign(json!({"ns": ns, "name": name, "uid": uid, "exp": expires}))
    }

    fn sign(&self, claims: Value) -> String {
        let payload = B64.encode(claims.to_string());
        let sig = ring::hmac::sign(&self.key, payload.as_bytes());
        format!("{SA_TOKEN_PREFIX}{payload}.{}", B64.encode(sig.as_ref()))
    }

    /// Who sent the request; 401 for a token that is not valid, or for no token on a
    /// path that is not public.
    pub fn authenticate(
        &self,
        state: &State,
        headers: &HeaderMap,
        path: &str,
    ) -> ApiResult<UserInfo> {
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = bearer else {
            return match PUBLIC_PATHS.contains(&path) {
                true => Ok(UserInfo::anonymous()),
                false => Err(ApiError::unauthorized()),
            };
        };
        if let Some(user) = self.tokens.get(token) {
            return Ok(user.clone());
        }
        self.service_account(state, token)
            .or_else(|| bootstrap_token(state, token))
            .ok_or_else(ApiError::unauthorized)
    }

    fn service_account(&self, state: &State, token: &str) -> Option<UserInfo> {
        let (payload, sig) = token.strip_prefix(SA_TOKEN_PREFIX)?.split_once('.')?;
        let sig = B64.decode(sig).ok()?;
        ring::hmac::verify(&self.key, payload.as_bytes(), &sig).ok()?;
        let claims: Value = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        let (ns, name, uid) = (
            claims["ns"].as_str()?,
            claims["name"].as_str()?,
            claims["uid"].as_str()?,
        );
        if let Some(expires) = claims.get("exp") {
            if expires.as_i64()? <= jiff::Timestamp::now().as_second() {
                return None;
            }
        }
        let sa = state
            .store
            .get(&GroupResource::new("", "serviceaccounts"), ns, name)?;
        (super::objects::uid(&sa.value()) == uid).then(|| UserInfo::service_account(ns, name))
    }

    /// Whether RBAC allows the request, with the authorizer's reason.
    pub fn decide(&self, user: &UserInfo, attrs: &Attributes) -> (bool, String) {
        let decision = self.policy.read().authorize(user, attrs);
        (decision.allowed, decision.reason)
    }

    /// 403 unless the user's RBAC bindings allow the request.
    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> ApiResult<()> {
        let policy = self.policy.read().clone();
        let decision = policy.authorize(user, attrs);
        if decision.allowed {
            return Ok(());
        }
        let message = rbac::forbidden_message_with_reason(user, attrs, &decision.reason);
        Err(ApiError::forbidden_resource(message, attrs))
    }

    fn refresh(&self, state: &State) {
        let mut objects = Vec::new();
        for resource in [
            "roles",
            "clusterroles",
            "rolebindings",
            "clusterrolebindings",
        ] {
            let gr = GroupResource::new("rbac.authorization.k8s.io", resource);
            objects.extend(
                state
                    .store
                    .list(&gr, None, None)
                    .1
                    .into_iter()
                    .map(|(_, s)| s.value()),
            );
        }
        *self.policy.write() = Arc::new(Policy::from_objects(&objects));
    }
}

/// Who a bootstrap token (`<id>.<secret>`) stands for, as kube-apiserver's bootstrap
/// token authenticator decides: the Secret `kube-system/bootstrap-token-<id>` of type
/// `bootstrap.kubernetes.io/token` must hold the same secret, allow authentication and
/// not be expired or being deleted. The user is `system:bootstrap:<id>` in
/// `system:bootstrappers` plus the Secret's `auth-extra-groups`.
fn bootstrap_token(state: &State, token: &str) -> Option<UserInfo> {
    let (id, secret) = token.split_once('.')?;
    let well_formed = |part: &str, len: usize| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if !well_formed(id, 6) || !well_formed(secret, 16) {
        return None;
    }
    let stored = state.store.get(
        &GroupResource::new("", "secrets"),
        "kube-system",
        &format!("bootstrap-token-{id}"),
    )?;
    let stored = stored.value();
    if stored["type"] != BOOTSTRAP_TOKEN_TYPE || !stored["metadata"]["deletionTimestamp"].is_null()
    {
        return None;
    }
    let field = |key: &str| -> Option<String> {
        let encoded = stored["data"][key].as_str()?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        String::from_utf8(raw).ok()
    };
    // Digests are compared, so the time taken tells nothing about the secret.
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    let same_secret =
        field("token-secret").is_some_and(|s| digest(&s).as_ref() == digest(secret).as_ref());
    let usable = field("token-id").as_deref() == Some(id)
        && field("usage-bootstrap-authentication").as_deref() == Some("true");
    if !same_secret || !usable {
        return None;
    }
    if let Some(expiration) = field("expiration") {
        let expires: jiff::Timestamp = expiration.parse().ok()?;
        if expires <= jiff::Timestamp::now() {
            return None;
        }
    }
    let mut groups = vec![BOOTSTRAPPERS.to_string()];
    for extra in field("auth-extra-groups").unwrap_or_default().split(',') {
        let extra = extra.trim();
        if extra.is_empty() {
            continue;
        }
        // As kube, a group outside system:bootstrappers invalidates the whole token: a
        // token cannot claim admin.
        if !extra.starts_with(&format!("{BOOTSTRAPPERS}:")) {
            return None;
        }
        groups.push(extra.to_string());
    }
    groups.push(rbac::ALL_AUTHENTICATED.to_string());
    Some(UserInfo::new(format!("system:bootstrap:{id}"), groups))
}

/// The Secret type that holds a bootstrap token.
pub const BOOTSTRAP_TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The group every bootstrap token is in.
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";

/// Creates the default RBAC objects (discovery, public info, cluster-admin) that
/// every cluster has, unless they exist.
pub fn bootstrap_rbac(state: &State) -> anyhow::Result<()> {
    for obj in rbac::bootstrap_objects() {
        let kind = obj["kind"].as_str().unwrap_or_default();
        let rt = state
            .registry
            .find_kind("rbac.authorization.k8s.io", kind)
            .ok_or_else(|| anyhow::anyhow!("no type for {kind}"))?;
        if state
            .store
            .get(&rt.gr(), "", super::objects::name(&obj))
            .is_none()
        {
            state
                .create(&rt, "", obj, &WriteOptions::default())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    Ok(())
}

/// Keeps the authorizer's policy in step with the stored RBAC objects.
pub struct PolicyFollower {
    pub auth: Arc<Auth>,
    dirty: bool,
}

impl PolicyFollower {
    pub fn new(auth: Arc<Auth>) -> Self {
        PolicyFollower { auth, dirty: true }
    }
}

impl Follower for PolicyFollower {
    fn observe(&mut self, gr: &GroupResource, _namespace: &str, _kind: EventType, _object: &[u8]) {
        if gr.group == "rbac.authorization.k8s.io" {
            self.dirty = true;
        }
    }

    fn reconcile(&mut self, state: &State) {
        if std::mem::take(&mut self.dirty) {
            self.auth.refresh(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(AuthConfig {
            tokens: vec![(
                "admin-token".into(),
                UserInfo::new("admin", ["system:masters"]),
            )],
            service_account_key: b"k".to_vec(),
        })
    }

    #[test]
    fn service_account_tokens_are_signed() {
        let a = auth();
        let token = a.service_account_token("demo", "bot", "uid-1");
        let (payload, sig) = token
            .strip_prefix(SA_TOKEN_PREFIX)
            .unwrap()
            .split_once('.')
            .unwrap();
        assert!(ring::hmac::verify(&a.key, payload.as_bytes(), &B64.decode(sig).unwrap()).is_ok());
        let other = Auth::new(AuthConfig {
            tokens: vec![],
            service_account_key: b"other".to_vec(),
        });
        assert!(
            ring::hmac::verify(&other.key, payload.as_bytes(), &B64.decode(sig).unwrap()).is_err()
        );
    }
}
