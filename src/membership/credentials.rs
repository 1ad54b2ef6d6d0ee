//! A member's hub credentials, as `join` receives them and keeps them in the member:
//! the Secret `clusterset-system/clusterset-hub`, which the agent follows.

use anyhow::Context;
use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde_json::{json, Value};

use super::SYSTEM_NAMESPACE;

/// The member's Secret holding its hub credentials.
pub const SECRET: &str = "clusterset-hub";

#[derive(Clone, Debug, PartialEq)]
pub struct Credentials {
    pub cluster_id: String,
    /// The member's ManagedCluster name on the hub.
    pub cluster_name: String,
    /// The member's hub namespace.
    pub namespace: String,
    /// A kubeconfig for the hub that authenticates as the member.
    pub kubeconfig: String,
    /// When the token was issued and when it expires (RFC 3339), if the hub said.
    pub token_lifetime: Option<(String, String)>,
}

const KEYS: [&str; 4] = ["cluster-id", "cluster-name", "namespace", "kubeconfig"];
const ISSUED: &str = "token-issued";
const EXPIRES: &str = "token-expires";

impl Credentials {
    /// The Secret that keeps them.
    pub fn secret(&self) -> Value {
        let values = [
            &self.cluster_id,
            &self.cluster_name,
            &self.namespace,
            &self.kubeconfig,
        ];
        let lifetime = self
            .token_lifetime
            .iter()
            .flat_map(|(issued, expires)| [(&ISSUED, issued), (&EXPIRES, expires)]);
        let data: serde_json::Map<String, Value> = KEYS
            .iter()
            .zip(values)
            .chain(lifetime)
            .map(|(k, v)| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(v);
                (k.to_string(), json!(encoded))
            })
            .collect();
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": SECRET, "namespace": SYSTEM_NAMESPACE},
            "data": data,
        })
    }

    pub fn from_secret(secret: &Secret) -> anyhow::Result<Self> {
        let data = secret.data.clone().unwrap_or_default();
        let field = |key: &str| -> anyhow::Result<String> {
            let bytes = data
                .get(key)
                .with_context(|| format!("the Secret {SECRET} has no {key}"))?;
            String::from_utf8(bytes.0.clone())
                .with_context(|| format!("{key} in the Secret {SECRET} is not UTF-8"))
        };
        Ok(Credentials {
            cluster_id: field(KEYS[0])?,
            cluster_name: field(KEYS[1])?,
            namespace: field(KEYS[2])?,
            kubeconfig: field(KEYS[3])?,
            token_lifetime: field(ISSUED).ok().zip(field(EXPIRES).ok()),
        })
    }

    /// The member's credentials, if it has joined.
    pub async fn load(member: &Client) -> anyhow::Result<Option<Self>> {
        let secrets: Api<Secret> = Api::namespaced(member.clone(), SYSTEM_NAMESPACE);
        let secret = secrets
            .get_opt(SECRET)
            .await
            .context("cannot read the member's hub credentials")?;
        secret.as_ref().map(Self::from_secret).transpose()
    }

    /// Writes them into the member, replacing the Secret when there is one (the agent
    /// may replace it, to rotate its token, but not create Secrets).
    pub async fn save(&self, member: &Client) -> anyhow::Result<()> {
        let secrets: Api<Secret> = Api::namespaced(member.clone(), SYSTEM_NAMESPACE);
        let mut secret: Secret = serde_json::from_value(self.secret())?;
        let params = PostParams::default();
        match secrets.get_opt(SECRET).await? {
            Some(current) => {
                secret.metadata.resource_version = current.metadata.resource_version;
                secrets.replace(SECRET, &params, &secret).await?;
            }
            None => {
                secrets.create(&params, &secret).await?;
            }
        }
        Ok(())
    }

    /// The same identity at the hub `hub` points at, when it is the same hub (the
    /// same CA; without a CA, the same server): a hub that moved keeps its members,
    /// and the token is never shown to a server that is not the hub.
    pub fn at(&self, hub: &Kubeconfig) -> anyhow::Result<Option<Self>> {
        // Read as plain YAML: kube's types keep the token behind a secrecy wrapper.
        let stored: Value =
            serde_yaml::from_str(&self.kubeconfig).context("the stored hub kubeconfig")?;
        let token = stored["users"][0]["user"]["token"]
            .as_str()
            .context("the stored hub kubeconfig holds no token")?;
        let moved = with_token(hub, token, crate::api::clusters::MEMBER_ACCOUNT)?;
        let now: Value = serde_yaml::from_str(&moved)?;
        let (old, new) = (
            &stored["clusters"][0]["cluster"],
            &now["clusters"][0]["cluster"],
        );
        let ca = "certificate-authority-data";
        let same_hub = match (old[ca].as_str(), new[ca].as_str()) {
            (Some(a), Some(b)) => a == b,
            _ => old["server"] == new["server"],
        };
        Ok(same_hub.then(|| Credentials {
            kubeconfig: moved,
            ..self.clone()
        }))
    }

    /// When the token expires, if the hub said.
    pub fn expires_at(&self) -> Option<jiff::Timestamp> {
        self.token_lifetime.as_ref()?.1.parse().ok()
    }

    /// When the token should be replaced: after 80% of its lifetime, as kubelets
    /// rotate their projected tokens.
    pub fn renew_at(&self) -> Option<jiff::Timestamp> {
        let (issued, _) = self.token_lifetime.as_ref()?;
        let issued: jiff::Timestamp = issued.parse().ok()?;
        let expires = self.expires_at()?;
        let lifetime = expires.duration_since(issued);
        Some(issued + lifetime.mul_f64(0.8))
    }

    /// The same identity with a fresh token, asked for with the current one.
    pub async fn rotated(&self) -> anyhow::Result<Self> {
        let (issued, expires) = self
            .token_lifetime
            .as_ref()
            .context("the token's lifetime is unknown")?;
        let lifetime = expires
            .parse::<jiff::Timestamp>()?
            .duration_since(issued.parse::<jiff::Timestamp>()?);
        let hub = self.client().await?;
        let (token, lifetime) =
            request_token(&hub, &self.namespace, lifetime.as_secs() as u64).await?;
        let stored: Value = serde_yaml::from_str(&self.kubeconfig)?;
        let mut kubeconfig = stored;
        kubeconfig["users"][0]["user"]["token"] = json!(token);
        Ok(Credentials {
            kubeconfig: serde_yaml::to_string(&kubeconfig)?,
            token_lifetime: Some(lifetime),
            ..self.clone()
        })
    }

    /// A client for the hub, as the member.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let kubeconfig =
            Kubeconfig::from_yaml(&self.kubeconfig).context("the stored hub kubeconfig")?;
        client(kubeconfig).await
    }
}

/// A token for the member account of hub namespace `ns` lasting `seconds`, through
/// the TokenRequest API: the token, and when it was issued and expires (RFC 3339).
pub async fn request_token(
    hub: &Client,
    ns: &str,
    seconds: u64,
) -> kube::Result<(String, (String, String))> {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let accounts: Api<ServiceAccount> = Api::namespaced(hub.clone(), ns);
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [], "expirationSeconds": seconds},
    }))
    .map_err(kube::Error::SerdeError)?;
    let issued = jiff::Timestamp::now();
    let answer = accounts
        .create_token_request(
            crate::api::clusters::MEMBER_ACCOUNT,
            &PostParams::default(),
            &request,
        )
        .await?;
    let status = answer.status.ok_or_else(|| {
        kube::Error::Api(Box::new(kube::core::Status::failure(
            "the TokenRequest came back without a token",
            "InternalError",
        )))
    })?;
    let rfc3339 = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    Ok((
        status.token,
        (rfc3339(issued), rfc3339(status.expiration_timestamp.0)),
    ))
}

/// A client from a kubeconfig's current context.
pub async fn client(kubeconfig: Kubeconfig) -> anyhow::Result<Client> {
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// A kubeconfig for the cluster `base`'s current context points at, presenting
/// `token` and nothing else of `base`'s user. A CA file is inlined, since the result
/// is kept in a Secret on another machine.
pub fn with_token(base: &Kubeconfig, token: &str, user: &str) -> anyhow::Result<String> {
    let context_name = base
        .current_context
        .as_deref()
        .context("the hub kubeconfig has no current context")?;
    let context = base
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .with_context(|| format!("the hub kubeconfig has no context {context_name}"))?;
    let cluster = base
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .with_context(|| format!("the hub kubeconfig has no cluster {}", context.cluster))?;
    let mut entry = json!({
        "server": cluster.server.clone().context("the hub kubeconfig names no server")?,
    });
    if let Some(data) = &cluster.certificate_authority_data {
        entry["certificate-authority-data"] = json!(data);
    } else if let Some(file) = &cluster.certificate_authority {
        let pem = std::fs::read(file).with_context(|| format!("cannot read the CA file {file}"))?;
        entry["certificate-authority-data"] =
            json!(base64::engine::general_purpose::STANDARD.encode(pem));
    }
    if let Some(skip) = cluster.insecure_skip_tls_verify {
        entry["insecure-skip-tls-verify"] = json!(skip);
    }
    if let Some(name) = &cluster.tls_server_name {
        entry["tls-server-name"] = json!(name);
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "hub", "cluster": entry}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "hub", "context": {"cluster": "hub", "user": user}}],
        "current-context": "hub",
    });
    Ok(serde_yaml::to_string(&doc)?)
}
