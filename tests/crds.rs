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

/// Watchers of either served version get objects in the version they asked for (the
/// server streams stored bytes as they are only when the versions match).
#[tokio::test]
async fn watches_serve_each_version_they_ask_for() {
    use futures::StreamExt;
    use kube::api::{WatchEvent, WatchParams};
    let t = TestServer::start().await;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(t.client.clone());
    for crd in clusterset::api::crds() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let api = |version: &str| {
        let gvk = GroupVersionKind::gvk("multicluster.x-k8s.io", version, "ServiceExport");
        Api::<DynamicObject>::namespaced_with(
            t.client.clone(),
            "default",
            &ApiResource::from_gvk(&gvk),
        )
    };
    let mut streams = Vec::new();
    for version in ["v1alpha1", "v1beta1"] {
        let stream = api(version)
            .watch(&WatchParams::default(), "0")
            .await
            .unwrap();
        streams.push((version, stream.boxed()));
    }
    let export: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
        "metadata": {"name": "web"},
    }))
    .unwrap();
    api("v1alpha1")
        .create(&PostParams::default(), &export)
        .await
        .unwrap();
    for (version, stream) in &mut streams {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .expect("an event in time")
            .expect("stream open")
            .unwrap();
        let WatchEvent::Added(obj) = event else {
            panic!("{version}: expected ADDED, got {event:?}");
        };
        assert_eq!(
            obj.types.unwrap().api_version,
            format!("multicluster.x-k8s.io/{version}")
        );
        assert_eq!(obj.metadata.name.as_deref(), Some("web"));
    }
}

fn upstream(file: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(common::upstream_crd(file)).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn ours(name: &str) -> serde_json::Value {
    let crd = clusterset::api::crds()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .unwrap();
    serde_json::to_value(crd).unwrap()
}

fn schema_of(crd: &serde_json::Value, version: &str) -> serde_json::Value {
    let v = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .unwrap();
    v["schema"]["openAPIV3Schema"].clone()
}

/// Names, scope, versions and printer columns match upstream, and sample objects
/// validate (or fail) the same way under both schemas.
#[test]
fn generated_mcs_crds_match_the_upstream_ones() {
    use clusterset::apiserver::schema;
    let pairs = [
        (
            "serviceexports.multicluster.x-k8s.io",
            "multicluster.x-k8s.io_serviceexports.yaml",
        ),
        (
            "serviceimports.multicluster.x-k8s.io",
            "multicluster.x-k8s.io_serviceimports.yaml",
        ),
        (
            "clusterproperties.about.k8s.io",
            "about.k8s.io_clusterproperties.yaml",
        ),
    ];
    for (name, file) in pairs {
        let (a, b) = (ours(name), upstream(file));
        assert_eq!(
            a["spec"]["names"]["plural"], b["spec"]["names"]["plural"],
            "{name}"
        );
        assert_eq!(
            a["spec"]["names"]["kind"], b["spec"]["names"]["kind"],
            "{name}"
        );
        assert_eq!(
            a["spec"]["names"].get("shortNames"),
            b["spec"]["names"].get("shortNames"),
            "{name}"
        );
        assert_eq!(a["spec"]["scope"], b["spec"]["scope"], "{name}");
        for v in b["spec"]["versions"].as_array().unwrap() {
            let version = v["name"].as_str().unwrap();
            let mine = a["spec"]["versions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == version)
                .expect("every upstream version is served");
            assert_eq!(mine["storage"], v["storage"], "{name} {version}");
            assert_eq!(mine["subresources"], v["subresources"], "{name} {version}");
            let columns = |x: &serde_json::Value| -> Vec<String> {
                x["additionalPrinterColumns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| c["name"].as_str().unwrap().to_lowercase())
                    .collect()
            };
            assert_eq!(columns(mine), columns(v), "{name} {version}");
        }
    }
    let samples = [
        (
            "serviceimports.multicluster.x-k8s.io",
            "multicluster.x-k8s.io_serviceimports.yaml",
            json!({"spec": {"type": "ClusterSetIP", "ports": [{"name": "http", "port": 80, "protocol": "TCP", "appProtocol": "http"}], "ips": ["10.0.0.1"], "ipFamilies": ["IPv4"], "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}}, "status": {"clusters": [{"cluster": "member-1"}], "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
            true,
        ),
        (
            "serviceimports.multicluster.x-k8s.io",
            "multicluster.x-k8s.io_serviceimports.yaml",
            json!({"spec": {"type": "Bogus", "ports": [], "ips": ["a", "b", "c"]}}),
            false,
        ),
        (
            "serviceimports.multicluster.x-k8s.io",
            "multicluster.x-k8s.io_serviceimports.yaml",
            json!({"spec": {"ports": [{"port": "80"}]}}),
            false,
        ),
        (
            "serviceexports.multicluster.x-k8s.io",
            "multicluster.x-k8s.io_serviceexports.yaml",
            json!({"spec": {"exportedLabels": {"a": "b"}}, "status": {"conditions": [{"type": "Valid", "status": "True", "reason": "Valid", "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
            true,
        ),
        (
            "serviceexports.multicluster.x-k8s.io",
            "multicluster.x-k8s.io_serviceexports.yaml",
            json!({"status": {"conditions": [{"type": "Valid", "status": "Maybe", "reason": "not valid!", "message": "x", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
            false,
        ),
        (
            "clusterproperties.about.k8s.io",
            "about.k8s.io_clusterproperties.yaml",
            json!({"spec": {"value": ""}}),
            false,
        ),
    ];
    for (name, file, obj, valid) in samples {
        for (which, schema) in [
            ("ours", schema_of(&ours(name), "v1beta1")),
            ("upstream", schema_of(&upstream(file), "v1beta1")),
        ] {
            let errors = schema::validate(&obj, &schema);
            assert_eq!(
                errors.is_empty(),
                valid,
                "{which} {name} {obj}: {:?}",
                errors.iter().map(|e| e.message()).collect::<Vec<_>>()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_uses_the_generated_mcs_crds() {
    let t = TestServer::start().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    t.kubectl_ok(&["apply", "-f", dir.to_str().unwrap()]);
    t.wait_established("serviceimports.multicluster.x-k8s.io");
    let import = "apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceImport\nmetadata: {name: web}\nspec: {type: Headless, ports: [{port: 80, protocol: TCP}]}\n";
    let out = t.apply_yaml(import, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let table = t.kubectl_ok(&["get", "svcim"]);
    assert!(
        table.starts_with("NAME") && table.contains("TYPE") && table.contains("Headless"),
        "{table}"
    );
    let yaml = t.kubectl_ok(&[
        "get",
        "serviceimport.v1beta1.multicluster.x-k8s.io",
        "web",
        "-o",
        "yaml",
    ]);
    assert!(
        yaml.contains("apiVersion: multicluster.x-k8s.io/v1beta1"),
        "{yaml}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_export_needs_no_spec() {
    let t = TestServer::start().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    t.kubectl_ok(&["apply", "-f", dir.to_str().unwrap()]);
    t.wait_established("serviceexports.multicluster.x-k8s.io");
    let out = t.apply_yaml(
        "apiVersion: multicluster.x-k8s.io/v1beta1\nkind: ServiceExport\nmetadata: {name: web}\n",
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let api: Api<clusterset::api::multicluster::ServiceExport> =
        Api::namespaced(t.client.clone(), "default");
    let export = api.get("web").await.unwrap();
    assert_eq!(export.spec, Default::default());
}

#[test]
fn the_manifests_build_with_kustomize_and_install_every_crd() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let build = |dir: &str| {
        let out = std::process::Command::new("kubectl")
            .args(["kustomize", root.join(dir).to_str().unwrap()])
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl kustomize {dir}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let crds = build("manifests/crds");
    for (name, _) in clusterset::api::crd_files() {
        let crd = name.trim_end_matches(".yaml");
        assert!(
            crds.contains(&format!("name: {crd}\n")),
            "manifests/crds misses {crd}"
        );
    }
    assert!(build("manifests/hub").contains("name: clusterset:member-reader"));
    assert!(build("manifests/member").contains("kind: Deployment"));
}
