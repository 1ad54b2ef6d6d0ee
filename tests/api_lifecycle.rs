//! Object lifecycles through kube-rs: finalizers, delete preconditions, garbage
//! collection, namespace deletion, and custom resources from the upstream CRDs.

mod common;

use std::time::Duration;

use common::{eventually, upstream_crd, TestServer};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
    PostParams, Preconditions, WatchEvent, WatchParams,
};
use kube::core::Status;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

fn api_error(e: kube::Error) -> Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str, extra: Value) -> ConfigMap {
    let mut v = json!({"metadata": {"name": name}});
    json_patch::merge(&mut v, &extra);
    serde_json::from_value(v).unwrap()
}

async fn gone(api: &Api<ConfigMap>, name: &str) {
    let api = api.clone();
    let name = name.to_string();
    eventually(&format!("{name} to be deleted"), WAIT, || {
        let api = api.clone();
        let name = name.clone();
        async move { api.get_opt(&name).await.unwrap().is_none().then_some(()) }
    })
    .await
}

#[tokio::test]
async fn finalizers_hold_an_object_until_removed() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &cm(
            "held",
            json!({"metadata": {"finalizers": ["example.com/hold"]}}),
        ),
    )
    .await
    .unwrap();
    let marked = api.delete("held", &DeleteParams::default()).await.unwrap();
    let obj = marked
        .left()
        .expect("the object is returned while it is held");
    assert!(obj.metadata.deletion_timestamp.is_some());
    assert!(api
        .get("held")
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_some());

    let add = api
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold", "x/y"]}})),
        )
        .await;
    assert_eq!(
        api_error(add.unwrap_err()).code,
        403,
        "no new finalizers while deleting"
    );

    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(api.get_opt("held").await.unwrap().is_none());
}

#[tokio::test]
async fn delete_preconditions_are_checked() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let made = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let wrong = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("nope".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let e = api_error(api.delete("a", &wrong).await.unwrap_err());
    assert_eq!(e.code, 409);
    assert!(
        e.message
            .contains("Precondition failed: UID in precondition: nope"),
        "{}",
        e.message
    );
    let right = DeleteParams {
        preconditions: Some(Preconditions {
            uid: made.metadata.uid.clone(),
            resource_version: made.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    let status = api
        .delete("a", &right)
        .await
        .unwrap()
        .right()
        .expect("a Status once deleted");
    assert_eq!(status.details.unwrap().name, "a");
}

/// An owner with two dependents; returns the owner's uid.
async fn family(api: &Api<ConfigMap>) -> String {
    let owner = api
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let uid = owner.metadata.uid.unwrap();
    for name in ["child-1", "child-2"] {
        let refs = json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "blockOwnerDeletion": true}]}});
        api.create(&PostParams::default(), &cm(name, refs))
            .await
            .unwrap();
    }
    uid
}

#[tokio::test]
async fn background_deletion_collects_dependents() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    family(&api).await;
    // A dependent with a second, living owner survives and loses only the dangling reference.
    let other = api
        .create(&PostParams::default(), &cm("other", json!({})))
        .await
        .unwrap();
    let both = json!({"metadata": {"ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": api.get("owner").await.unwrap().metadata.uid.unwrap()},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": other.metadata.uid.unwrap()},
    ]}});
    api.create(&PostParams::default(), &cm("shared", both))
        .await
        .unwrap();

    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    gone(&api, "child-1").await;
    gone(&api, "child-2").await;
    let api2 = api.clone();
    eventually("the dangling reference to go", WAIT, || {
        let api = api2.clone();
        async move {
            (api.get("shared")
                .await
                .ok()?
                .metadata
                .owner_references?
                .len()
                == 1)
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn foreground_deletion_removes_dependents_first() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    family(&api).await;
    let marked = api
        .delete("owner", &DeleteParams::foreground())
        .await
        .unwrap()
        .left()
        .expect("held while dependents go");
    assert!(marked
        .metadata
        .finalizers
        .unwrap()
        .contains(&"foregroundDeletion".to_string()));
    gone(&api, "owner").await;
    assert!(api.get_opt("child-1").await.unwrap().is_none());
    assert!(api.get_opt("child-2").await.unwrap().is_none());
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    family(&api).await;
    api.delete("owner", &DeleteParams::orphan()).await.unwrap();
    gone(&api, "owner").await;
    for name in ["child-1", "child-2"] {
        let child = api.get(name).await.unwrap();
        assert!(
            child
                .metadata
                .owner_references
                .unwrap_or_default()
                .is_empty(),
            "{name} was orphaned"
        );
    }
}

#[tokio::test]
async fn deleting_a_namespace_empties_it_first() {
    let t = TestServer::start().await;
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "demo"}})).unwrap();
    let made = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(made.status.unwrap().phase.as_deref(), Some("Active"));
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "demo");
    api.create(
        &PostParams::default(),
        &cm(
            "held",
            json!({"metadata": {"finalizers": ["example.com/hold"]}}),
        ),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &cm("plain", json!({})))
        .await
        .unwrap();

    namespaces
        .delete("demo", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = namespaces.get("demo").await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    gone(&api, "plain").await;
    let refused = api_error(
        api.create(&PostParams::default(), &cm("late", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(refused.code, 403);
    assert!(
        refused.message.contains("because it is being terminated"),
        "{}",
        refused.message
    );
    // The finalizer holds the object, and so the namespace.
    assert!(namespaces.get_opt("demo").await.unwrap().is_some());
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let ns_api = namespaces.clone();
    eventually("the namespace to go", WAIT, || {
        let api = ns_api.clone();
        async move { api.get_opt("demo").await.unwrap().is_none().then_some(()) }
    })
    .await;
}

async fn install_upstream_crds(t: &TestServer) -> Api<CustomResourceDefinition> {
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    for file in [
        "multicluster.x-k8s.io_serviceexports.yaml",
        "multicluster.x-k8s.io_serviceimports.yaml",
        "about.k8s.io_clusterproperties.yaml",
    ] {
        let text = std::fs::read_to_string(upstream_crd(file)).unwrap();
        let crd: CustomResourceDefinition = serde_yaml::from_str(&text).unwrap();
        let made = crds.create(&PostParams::default(), &crd).await.unwrap();
        let established = made
            .status
            .unwrap()
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "{file} is established");
    }
    crds
}

fn service_imports(t: &TestServer, version: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("multicluster.x-k8s.io", version, "ServiceImport");
    Api::namespaced_with(t.client.clone(), "default", &ApiResource::from_gvk(&gvk))
}

#[tokio::test]
async fn upstream_crds_serve_validated_objects_in_both_versions() {
    let t = TestServer::start().await;
    install_upstream_crds(&t).await;
    let v1alpha1 = service_imports(&t, "v1alpha1");
    let import: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
        "metadata": {"name": "web"},
        "spec": {"type": "ClusterSetIP", "ports": [{"port": 80, "protocol": "TCP"}], "ips": ["10.1.2.3"], "unknownField": 1},
    }))
    .unwrap();
    let made = v1alpha1
        .create(&PostParams::default(), &import)
        .await
        .unwrap();
    assert!(
        made.data["spec"].get("unknownField").is_none(),
        "unknown fields are pruned"
    );
    assert_eq!(
        made.types.unwrap().api_version,
        "multicluster.x-k8s.io/v1alpha1"
    );

    // The same object, served in the storage version.
    let v1beta1 = service_imports(&t, "v1beta1");
    let same = v1beta1.get("web").await.unwrap();
    assert_eq!(
        same.types.unwrap().api_version,
        "multicluster.x-k8s.io/v1beta1"
    );
    assert_eq!(same.data["spec"]["ips"], json!(["10.1.2.3"]));

    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
        "metadata": {"name": "bad"},
        "spec": {"type": "Bogus", "ports": [{"port": "eighty"}], "ips": ["1.1.1.1", "2.2.2.2", "3.3.3.3"]},
    }))
    .unwrap();
    let e = api_error(
        v1beta1
            .create(&PostParams::default(), &bad)
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    for part in [
        "ServiceImport.multicluster.x-k8s.io \"bad\" is invalid",
        "spec.type: Unsupported value: \"Bogus\"",
        "spec.ports[0].port: Invalid value: \"string\"",
        "spec.ips: Too many: 3: must have at most 2 items",
    ] {
        assert!(
            e.message.contains(part),
            "missing {part:?} in {}",
            e.message
        );
    }
    let details = e.details.unwrap();
    let fields: Vec<_> = details.causes.iter().map(|c| c.field.as_str()).collect();
    assert!(fields.contains(&"spec.ips"), "{fields:?}");
    assert!(v1beta1.get_opt("bad").await.unwrap().is_none());

    let status_patch = Patch::Merge(json!({"status": {"clusters": [{"cluster": "member-1"}]}}));
    let with_status = v1beta1
        .patch_status("web", &PatchParams::default(), &status_patch)
        .await
        .unwrap();
    assert_eq!(
        with_status.data["status"]["clusters"][0]["cluster"],
        "member-1"
    );
}

#[tokio::test]
async fn strategic_merge_patch_is_refused_for_custom_resources() {
    let t = TestServer::start().await;
    install_upstream_crds(&t).await;
    let api = service_imports(&t, "v1beta1");
    let obj: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
        "metadata": {"name": "web"}, "spec": {"type": "Headless", "ports": []}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
    let e = api_error(
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (415, "UnsupportedMediaType"));
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_objects_and_its_api() {
    let t = TestServer::start().await;
    let crds = install_upstream_crds(&t).await;
    let api = service_imports(&t, "v1beta1");
    let mut rv = String::new();
    for i in 0..150 {
        let obj: DynamicObject = serde_json::from_value(
            json!({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
            "metadata": {"name": format!("web{i}")}, "spec": {"type": "Headless", "ports": []}}),
        )
        .unwrap();
        let created = api.create(&PostParams::default(), &obj).await.unwrap();
        rv = created.metadata.resource_version.clone().unwrap();
    }
    let mut watch = api
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .unwrap()
        .boxed();
    // Other writes keep waking the watch while the CRD goes.
    let busy = {
        let configmaps: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
        tokio::spawn(async move {
            for i in 0.. {
                let _ = configmaps
                    .create(&PostParams::default(), &cm(&format!("busy{i}"), json!({})))
                    .await;
            }
        })
    };
    crds.delete(
        "serviceimports.multicluster.x-k8s.io",
        &DeleteParams::default(),
    )
    .await
    .unwrap();
    let e = api_error(api.get("web0").await.unwrap_err());
    assert_eq!(e.code, 404);
    // A watcher sees every object go, then its watch ends, as kube-apiserver closes
    // the watches of a type it stops serving: informers relist and learn it is gone.
    let mut seen = Vec::new();
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(event) = watch.next().await {
            seen.push(match event.unwrap() {
                WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.unwrap()),
                other => format!("{other:?}"),
            });
        }
    })
    .await;
    busy.abort();
    seen.sort();
    let mut all: Vec<String> = (0..150).map(|i| format!("DELETED web{i}")).collect();
    all.sort();
    assert_eq!(seen, all);
    assert!(
        ended.is_ok(),
        "the watch stayed open after its CRD was deleted"
    );
    // Installed again, the resource is empty.
    let text =
        std::fs::read_to_string(upstream_crd("multicluster.x-k8s.io_serviceimports.yaml")).unwrap();
    crds.create(
        &PostParams::default(),
        &serde_yaml::from_str(&text).unwrap(),
    )
    .await
    .unwrap();
    assert!(api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn an_invalid_crd_is_refused() {
    let t = TestServer::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "wrong.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"properties": {"size": {"type": "integer"}}}}}}}]},
    }))
    .unwrap();
    let e = api_error(crds.create(&PostParams::default(), &crd).await.unwrap_err());
    assert_eq!(e.code, 422);
    assert!(
        e.message
            .contains("must be spec.names.plural+\".\"+spec.group"),
        "{}",
        e.message
    );
    assert!(
        e.message
            .contains("spec.versions[0].schema.openAPIV3Schema"),
        "{}",
        e.message
    );
}

/// Events live for the server's event TTL after their last write (kube-apiserver's
/// `--event-ttl`), in both views of them; nothing else expires.
#[tokio::test]
async fn events_expire_after_their_ttl() {
    let ttl = Duration::from_secs(2);
    let t = TestServer::with_config(clusterset::apiserver::Config {
        event_ttl: ttl,
        ..Default::default()
    })
    .await;
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(t.client.clone(), "default");
    let modern: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(t.client.clone(), "default");
    let configs: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let pp = PostParams::default();
    let involved = json!({"kind": "ConfigMap", "namespace": "default", "name": "settings"});
    let core_event = |name: &str| {
        serde_json::from_value(json!({
            "metadata": {"name": name}, "involvedObject": involved,
            "reason": "Changed", "message": "it changed", "type": "Normal", "count": 1}))
        .unwrap()
    };
    core.create(&pp, &core_event("quiet")).await.unwrap();
    core.create(&pp, &core_event("busy")).await.unwrap();
    modern
        .create(
            &pp,
            &serde_json::from_value(json!({
            "metadata": {"name": "modern"}, "regarding": involved,
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "test",
            "reportingInstance": "test-1", "action": "Change",
            "reason": "Changed", "note": "it changed", "type": "Normal"}))
            .unwrap(),
        )
        .await
        .unwrap();
    configs
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "settings"}})).unwrap(),
        )
        .await
        .unwrap();
    // The event written again and again lives on past its TTL (paced writes: the
    // property is about time).
    let started = std::time::Instant::now();
    let mut count = 1;
    while started.elapsed() < ttl * 3 {
        count += 1;
        let bump = json!({"count": count});
        core.patch("busy", &PatchParams::default(), &Patch::Merge(&bump))
            .await
            .expect("an event written within its TTL is still there");
        tokio::time::sleep(ttl / 4).await;
    }
    eventually(
        "the events left alone expired",
        Duration::from_secs(20),
        || async {
            let quiet = core.get_opt("quiet").await.unwrap();
            let modern = modern.get_opt("modern").await.unwrap();
            (quiet.is_none() && modern.is_none()).then_some(())
        },
    )
    .await;
    eventually(
        "the busy event expired",
        Duration::from_secs(20),
        || async { core.get_opt("busy").await.unwrap().is_none().then_some(()) },
    )
    .await;
    assert!(configs.get_opt("settings").await.unwrap().is_some());
}
