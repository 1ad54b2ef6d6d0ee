//! The membership commands, as functions over kube clients:
//!
//! - `clusterset token create` (hub): a bootstrap token, as kubeadm makes them.
//! - `clusterset join` (member): files a ClusterRegistrationRequest with the token,
//!   waits for the hub's answer and keeps the credentials in the member.
//! - `clusterset approve` / `deny` (hub): the administrator's answer.
//! - `clusterset leave` (member): deletes its ManagedCluster on the hub (the hub cleans
//!   up after it) and its membership in the member.

use std::time::Duration;

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use kube::{Client, ResourceExt};
use serde_json::json;

use super::credentials::{self, Credentials};
use super::{BOOTSTRAP_GROUP, SYSTEM_NAMESPACE};
use crate::api::about::{ClusterProperty, CLUSTERSET, CLUSTER_ID};
use crate::api::clusters::{
    ClusterRegistrationRequest, ManagedCluster, APPROVED, DENIED, MEMBER_ACCOUNT,
};
use crate::api::multicluster::ServiceImport;
use crate::apiserver::auth::BOOTSTRAP_TOKEN_TYPE;

/// The member's Secret naming a registration request still waiting for an answer, so
/// an interrupted `join` picks the same request up again.
pub const PENDING_SECRET: &str = "clusterset-join";
/// Who the commands write as.
const MANAGER: &str = "clusterset-cli";

/// Creates a bootstrap token on the hub that may file registration requests until
/// `ttl` has passed; returns it (`<id>.<secret>`).
pub async fn create_token(hub: &Client, ttl: Duration) -> anyhow::Result<String> {
    let (id, secret) = (random_chars(6), random_chars(16));
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::try_from(ttl)?;
    let object = json!({
        "apiVersion": "v1", "kind": "Secret", "type": BOOTSTRAP_TOKEN_TYPE,
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "stringData": {
            "token-id": id,
            "token-secret": secret,
            "usage-bootstrap-authentication": "true",
            "auth-extra-groups": BOOTSTRAP_GROUP,
            "expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "description": "clusterset join token",
        },
    });
    let secret_object: Secret = serde_json::from_value(object)?;
    Api::<Secret>::namespaced(hub.clone(), "kube-system")
        .create(&PostParams::default(), &secret_object)
        .await
        .context("cannot create the bootstrap token Secret on the hub")?;
    Ok(format!("{id}.{secret}"))
}

/// Lowercase letters and digits from the system's random source.
fn random_chars(n: usize) -> String {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; n];
    let mut out = String::with_capacity(n);
    // 252 = 7 x 36: bytes from 252 up are drawn again, so every character is as likely.
    while out.len() < n {
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system has a random source");
        let wanted = n - out.len();
        out.extend(
            bytes
                .iter()
                .filter(|b| **b < 252)
                .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
                .take(wanted),
        );
    }
    out
}

pub struct JoinOptions {
    /// The member's name on the hub (default: its cluster ID).
    pub name: Option<String>,
    /// How long to wait for the hub's answer.
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct Joined {
    pub credentials: Credentials,
    /// True when the member was already joined and nothing was filed.
    pub already: bool,
}

/// Joins the member (`member`: a client for it) to the hub that `hub` points at,
/// presenting the bootstrap `token`.
pub async fn join(
    member: &Client,
    hub: &Kubeconfig,
    token: &str,
    opts: &JoinOptions,
) -> anyhow::Result<Joined> {
    let cluster_uid = kube_system_uid(member).await?;
    let cluster_id = ensure_cluster_id(member, &cluster_uid).await?;
    let name = opts.name.clone().unwrap_or_else(|| cluster_id.clone());
    if let Some(stored) = Credentials::load(member).await? {
        // Asked at the hub named now, which may have moved since the member joined.
        let Some(credentials) = stored.at(hub)? else {
            bail!(
                "this cluster is a member of another hub (as {}); run `clusterset leave` first",
                stored.cluster_name
            );
        };
        if credentials.cluster_id == cluster_id && still_member(&credentials).await? {
            if credentials != stored {
                credentials.save(member).await?;
            }
            return Ok(Joined {
                credentials,
                already: true,
            });
        }
    }
    let request_name = pending_request(member, &name).await?;
    let bootstrap = credentials::client(Kubeconfig::from_yaml(&credentials::with_token(
        hub,
        token,
        "bootstrap",
    )?)?)
    .await?;
    let requests: Api<ClusterRegistrationRequest> = Api::all(bootstrap);
    let request = json!({
        "apiVersion": "clusters.clusterset.io/v1alpha1", "kind": "ClusterRegistrationRequest",
        "metadata": {"name": request_name},
        "spec": {"clusterId": cluster_id, "clusterName": name, "clusterUid": cluster_uid},
    });
    match requests
        .create(&PostParams::default(), &serde_json::from_value(request)?)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {} // filed by an interrupted join
        Err(e) => return Err(e).context("the hub refused the registration request"),
    }
    tracing::info!(request = %request_name, cluster = %cluster_id, "registration request filed; waiting for the hub");
    let answered = tokio::time::timeout(opts.timeout, answer(&requests, &request_name))
        .await
        .with_context(|| {
            format!(
                "no answer from the hub within {:?}: approve with `clusterset approve {request_name}`",
                opts.timeout
            )
        })??;
    let secrets: Api<Secret> = Api::namespaced(member.clone(), SYSTEM_NAMESPACE);
    let status = answered.status.unwrap_or_default();
    if status.result.as_deref() == Some(DENIED) {
        crate::runtime::delete(&secrets, PENDING_SECRET).await?;
        bail!(
            "the hub denied {request_name}: {}: {}",
            status.reason.unwrap_or_default(),
            status.message.unwrap_or_default()
        );
    }
    let credentials = Credentials {
        cluster_id,
        cluster_name: status.managed_cluster.unwrap_or(name),
        namespace: status.namespace.unwrap_or_default(),
        kubeconfig: credentials::with_token(
            hub,
            &status.token.unwrap_or_default(),
            MEMBER_ACCOUNT,
        )?,
        token_lifetime: status.token_issued.zip(status.token_expires),
    };
    // Saved before the pending request is forgotten: an interruption in between
    // finds the member joined, not a request to file again.
    credentials.save(member).await?;
    crate::runtime::delete(&secrets, PENDING_SECRET).await?;
    set_property(member, CLUSTERSET, status.clusterset.as_deref()).await?;
    Ok(Joined {
        credentials,
        already: false,
    })
}

/// Waits until the request is denied, or approved with credentials. Bootstrap tokens
/// may only get their request (never list or watch), so this asks again and again.
async fn answer(
    requests: &Api<ClusterRegistrationRequest>,
    name: &str,
) -> anyhow::Result<ClusterRegistrationRequest> {
    let mut pause = Duration::from_millis(10);
    loop {
        let request = requests.get(name).await?;
        let status = request.status.clone().unwrap_or_default();
        if status.is_settled() {
            if status.result.as_deref() == Some(APPROVED) && status.token.is_none() {
                bail!("{name} was approved and its credentials were collected already; delete Secret {SYSTEM_NAMESPACE}/{PENDING_SECRET} in this cluster and join again");
            }
            return Ok(request);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Whether the hub still knows the member by these credentials.
async fn still_member(credentials: &Credentials) -> anyhow::Result<bool> {
    let hub = credentials.client().await?;
    let clusters: Api<ManagedCluster> = Api::namespaced(hub, &credentials.namespace);
    match clusters.get(&credentials.cluster_name).await {
        Ok(cluster) => Ok(cluster.metadata.deletion_timestamp.is_none()),
        Err(kube::Error::Api(s)) if matches!(s.code, 401 | 403 | 404) => Ok(false),
        Err(e) => Err(e).context("cannot reach the hub"),
    }
}

/// The name of the request this member files: the one an interrupted join filed, or
/// a new one. The random suffix keeps other joiners (who share the bootstrap token's
/// right to get requests by name) from reading this one's credentials.
async fn pending_request(member: &Client, name: &str) -> anyhow::Result<String> {
    let secrets: Api<Secret> = Api::namespaced(member.clone(), SYSTEM_NAMESPACE);
    ensure_namespace(member).await?;
    if let Some(secret) = secrets.get_opt(PENDING_SECRET).await? {
        if let Some(request) = secret.data.as_ref().and_then(|d| d.get("request")) {
            return Ok(String::from_utf8_lossy(&request.0).into_owned());
        }
    }
    let prefix: String = name.chars().take(52).collect();
    let request = format!(
        "{}-{}",
        prefix.trim_end_matches(['-', '.']),
        random_chars(10)
    );
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": PENDING_SECRET, "namespace": SYSTEM_NAMESPACE},
        "stringData": {"request": request},
    });
    secrets
        .create(&PostParams::default(), &serde_json::from_value(secret)?)
        .await?;
    Ok(request)
}

async fn ensure_namespace(member: &Client) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(member.clone());
    let ns =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}});
    crate::runtime::create_if_absent(&namespaces, ns)
        .await
        .context("cannot create the namespace clusterset-system")?;
    Ok(())
}

/// The cluster ID from the member's ClusterProperty `cluster.clusterset.k8s.io`.
pub async fn cluster_id(member: &Client) -> anyhow::Result<String> {
    let property = Api::<ClusterProperty>::all(member.clone())
        .get_opt(CLUSTER_ID)
        .await
        .context("cannot read the cluster's ClusterProperty")?;
    property.map(|p| p.spec.value).with_context(|| {
        format!("the cluster has no ClusterProperty {CLUSTER_ID}: create it with the cluster's ID, or pass --cluster-id")
    })
}

pub(crate) async fn kube_system_uid(member: &Client) -> anyhow::Result<String> {
    let namespace = Api::<Namespace>::all(member.clone())
        .get("kube-system")
        .await
        .context("cannot read the member's kube-system namespace")?;
    namespace
        .uid()
        .context("the member's kube-system namespace has no UID")
}

/// The member's cluster ID; with none set yet, the kube-system UID becomes it (KEP-2149).
async fn ensure_cluster_id(member: &Client, cluster_uid: &str) -> anyhow::Result<String> {
    let properties: Api<ClusterProperty> = Api::all(member.clone());
    if let Some(property) = properties.get_opt(CLUSTER_ID).await? {
        return Ok(property.spec.value);
    }
    set_property(member, CLUSTER_ID, Some(cluster_uid)).await?;
    Ok(cluster_uid.to_string())
}

/// Sets a ClusterProperty, or deletes it with `None`.
async fn set_property(member: &Client, name: &str, value: Option<&str>) -> anyhow::Result<()> {
    let properties: Api<ClusterProperty> = Api::all(member.clone());
    let Some(value) = value else {
        return Ok(crate::runtime::delete(&properties, name).await?);
    };
    let property = json!({
        "apiVersion": "about.k8s.io/v1beta1", "kind": "ClusterProperty",
        "metadata": {"name": name}, "spec": {"value": value},
    });
    let params = PatchParams::apply(MANAGER).force();
    properties
        .patch(name, &params, &Patch::Apply(&property))
        .await
        .with_context(|| format!("cannot set the ClusterProperty {name}"))?;
    Ok(())
}

/// The administrator's answer to a request, found by its name or by the cluster name
/// it asks for.
pub async fn answer_request(
    hub: &Client,
    name: &str,
    approve: bool,
    why: &str,
) -> anyhow::Result<String> {
    let requests: Api<ClusterRegistrationRequest> = Api::all(hub.clone());
    let found = match requests.get_opt(name).await? {
        Some(r) => r,
        None => {
            let mut pending: Vec<_> = requests
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|r| r.spec.cluster_name == name)
                .filter(|r| !r.status.as_ref().is_some_and(|s| s.is_settled()))
                .collect();
            match pending.len() {
                0 => bail!("no registration request or waiting cluster named {name}"),
                1 => pending.remove(0),
                n => bail!(
                    "{n} requests wait for cluster {name}: name one of {}",
                    pending
                        .iter()
                        .map(|r| r.name_any())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    if let Some(status) = found.status.as_ref().filter(|s| s.is_settled()) {
        bail!(
            "{} was already answered ({}); to remove a member, delete its ManagedCluster",
            found.name_any(),
            status.result.as_deref().unwrap_or_default()
        );
    }
    let (result, reason) = match approve {
        true => (APPROVED, "ApprovedByAdmin"),
        false => (DENIED, "DeniedByAdmin"),
    };
    let status = json!({"status": {"result": result, "reason": reason, "message": why}});
    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..PatchParams::default()
    };
    requests
        .patch_status(&found.name_any(), &params, &Patch::Merge(&status))
        .await?;
    Ok(found.name_any())
}

/// Takes the member out of the clusterset: its ManagedCluster on the hub goes (the hub
/// withdraws its exports and removes its hub namespace), then its credentials, its
/// `clusterset.k8s.io` property and what it imported.
///
/// With `force`, the member leaves even when the hub cannot be told (unreachable, or
/// refusing the member's credentials): its ManagedCluster must then be deleted on the
/// hub by an administrator.
pub async fn leave(member: &Client, force: bool) -> anyhow::Result<Credentials> {
    let credentials = Credentials::load(member).await?.context(
        "this cluster has not joined a clusterset (no Secret clusterset-system/clusterset-hub)",
    )?;
    let hub = credentials.client().await?;
    let clusters: Api<ManagedCluster> = Api::namespaced(hub, &credentials.namespace);
    let told = match clusters
        .delete(&credentials.cluster_name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()), // already removed on the hub
        Err(kube::Error::Api(s)) if s.code == 401 => Err(anyhow::anyhow!(
            "the hub no longer accepts this member's credentials (expired, or the member was removed there)"
        )),
        Err(e) => Err(anyhow::Error::new(e)
            .context("cannot delete this member's ManagedCluster on the hub")),
    };
    match (told, force) {
        (Ok(()), _) => {}
        (Err(e), true) => {
            tracing::warn!(error = format!("{e:#}"), cluster = %credentials.cluster_name, "leaving without the hub: delete its ManagedCluster there")
        }
        (Err(e), false) => {
            return Err(e.context(
                "nothing was changed; retry, or leave with --force and delete the ManagedCluster on the hub",
            ))
        }
    }
    let secrets: Api<Secret> = Api::namespaced(member.clone(), SYSTEM_NAMESPACE);
    crate::runtime::delete(&secrets, credentials::SECRET).await?;
    set_property(member, CLUSTERSET, None).await?;
    remove_imports(member).await?;
    Ok(credentials)
}

/// Deletes every ServiceImport (their derived Services go with them, being owned)
/// and every EndpointSlice the agent imported.
pub async fn remove_imports(member: &Client) -> anyhow::Result<()> {
    let imports: Api<ServiceImport> = Api::all(member.clone());
    for import in imports.list(&ListParams::default()).await?.items {
        let ns = import.namespace().unwrap_or_default();
        crate::runtime::delete(
            &Api::<ServiceImport>::namespaced(member.clone(), &ns),
            &import.name_any(),
        )
        .await?;
    }
    let managed_by = format!(
        "{}={}",
        crate::mcs::endpoints::MANAGED_BY,
        crate::mcs::endpoints::MANAGED_BY_VALUE
    );
    let slices: Api<EndpointSlice> = Api::all(member.clone());
    for slice in slices
        .list(&ListParams::default().labels(&managed_by))
        .await?
        .items
    {
        let ns = slice.namespace().unwrap_or_default();
        crate::runtime::delete(
            &Api::<EndpointSlice>::namespaced(member.clone(), &ns),
            &slice.name_any(),
        )
        .await?;
    }
    Ok(())
}
