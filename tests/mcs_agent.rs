//! The agent's export validation (`Valid` condition), with this project's CRDs and
//! with the upstream mcs-api CRDs installed.

mod common;

use std::time::Duration;

use clusterset::api::multicluster::ServiceExport;
use common::{eventually, upstream_crd, TestServer};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

async fn install(t: &TestServer, upstream: bool) {
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let list: Vec<CustomResourceDefinition> = if upstream {
        [
            "multicluster.x-k8s.io_serviceexports.yaml",
            "multicluster.x-k8s.io_serviceimports.yaml",
        ]
        .iter()
        .map(|f| serde_yaml::from_str(&std::fs::read_to_string(upstream_crd(f)).unwrap()).unwrap())
        .collect()
    } else {
        clusterset::api::crds()
    };
    for crd in list {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "demo"}})).unwrap();
    Api::<Namespace>::all(t.client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

/// Waits until the export's `type` condition has `status` and `reason`.
async fn condition(api: &Api<ServiceExport>, type_: &str, status: &str, reason: &str) {
    let what = format!("{type_}={status}/{reason}");
    eventually(&what, WAIT, || {
        let api = api.clone();
        async move {
            let e = api.get("web").await.ok()?;
            let c = e
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == type_)?;
            (c.status == status && c.reason == reason).then_some(())
        }
    })
    .await
}

async fn validation_follows_the_service(upstream: bool) {
    let t = TestServer::start().await;
    install(&t, upstream).await;
    let agent = tokio::spawn(clusterset::mcs::agent::run(t.client.clone()));
    let exports: Api<ServiceExport> = Api::namespaced(t.client.clone(), "demo");
    let export: ServiceExport = serde_json::from_value(json!({"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport", "metadata": {"name": "web"}})).unwrap();
    exports
        .create(&PostParams::default(), &export)
        .await
        .unwrap();
    condition(&exports, "Valid", "False", "NoService").await;
    condition(&exports, "Ready", "False", "Pending").await;

    let services: Api<Service> = Api::namespaced(t.client.clone(), "demo");
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    condition(&exports, "Valid", "True", "Valid").await;

    let external = json!({"spec": {"type": "ExternalName", "externalName": "example.com", "clusterIP": null, "clusterIPs": null, "ipFamilies": null, "ipFamilyPolicy": null, "ports": null}});
    services
        .patch("web", &PatchParams::default(), &Patch::Merge(external))
        .await
        .unwrap();
    condition(&exports, "Valid", "False", "InvalidServiceType").await;

    // A settled export is not rewritten.
    let before = exports.get("web").await.unwrap().metadata.resource_version;
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    let after = exports.get("web").await.unwrap();
    assert_eq!(after.metadata.resource_version, before);
    let managers: Vec<_> = after
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&clusterset::mcs::agent::MANAGER.to_string()),
        "{managers:?}"
    );
    agent.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_with_generated_crds() {
    validation_follows_the_service(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_with_upstream_crds() {
    validation_follows_the_service(true).await;
}
