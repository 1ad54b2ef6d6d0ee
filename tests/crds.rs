//! The CRDs generated from the Rust types: committed up to date, and served.

mod common;

use common::TestServer;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

#[test]
fn committed_crds_are_up_to_date() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for (name, generated) in clusterset::api::crd_files() {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == generated,
            "crds/{name} is stale: run `make crds` and commit the result"
        );
    }
}

#[tokio::test]
async fn generated_crds_install_and_serve_both_versions() {
    let t = TestServer::start().await;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(t.client.clone());
    for crd in clusterset::api::crds() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    for version in ["v1alpha1", "v1beta1"] {
        let gvk = GroupVersionKind::gvk("about.k8s.io", version, "ClusterProperty");
        let api: Api<DynamicObject> = Api::all_with(t.client.clone(), &ApiResource::from_gvk(&gvk));
        let name = format!("id-{version}");
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": format!("about.k8s.io/{version}"), "kind": "ClusterProperty",
            "metadata": {"name": name}, "spec": {"value": "member-1"},
        }))
        .unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
        assert_eq!(
            api.get(&name).await.unwrap().data["spec"]["value"],
            "member-1"
        );
        let empty: DynamicObject = serde_json::from_value(json!({
            "apiVersion": format!("about.k8s.io/{version}"), "kind": "ClusterProperty",
            "metadata": {"name": "empty"}, "spec": {"value": ""},
        }))
        .unwrap();
        match api
            .create(&PostParams::default(), &empty)
            .await
            .unwrap_err()
        {
            kube::Error::Api(s) => assert!(s.message.contains("spec.value"), "{}", s.message),
            other => panic!("expected 422, got {other:?}"),
        }
    }
}
