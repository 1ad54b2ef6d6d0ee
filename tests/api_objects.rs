//! The API server's verbs through kube-rs: create, get, list, update, patch (all four
//! kinds), subresources, selectors, pagination and the errors a client sees.

mod common;

use common::{raw, TestServer};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Error;
use serde_json::{json, Value};

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                {"name": "app", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
                {"name": "side", "image": "envoy:1", "env": [{"name": "A", "value": "1"}]},
            ]}},
        },
    }))
    .unwrap()
}

fn api_error(e: Error) -> kube::core::Status {
    match e {
        Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn create_get_update_with_optimistic_concurrency() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let md = &created.metadata;
    assert!(md.uid.as_ref().is_some_and(|u| u.len() == 36));
    assert!(md.creation_timestamp.is_some());
    let rv1: u64 = md.resource_version.as_ref().unwrap().parse().unwrap();

    let mut changed = created.clone();
    changed.data = Some([("k".to_string(), "w".to_string())].into());
    let updated = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    let rv2: u64 = updated
        .metadata
        .resource_version
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    assert_eq!(updated.metadata.uid, created.metadata.uid);

    // `changed` still carries rv1: the write must be refused.
    let stale = api_error(
        api.replace("a", &PostParams::default(), &changed)
            .await
            .unwrap_err(),
    );
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert!(
        stale.message.contains("the object has been modified"),
        "{}",
        stale.message
    );

    let dup = api_error(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["k"], "w");
}

#[tokio::test]
async fn generate_name_and_name_rules() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let mut gen = cm("", json!({}));
    gen.metadata.name = None;
    gen.metadata.generate_name = Some("web-".into());
    let made = api.create(&PostParams::default(), &gen).await.unwrap();
    let name = made.metadata.name.unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");

    let bad = api_error(
        api.create(&PostParams::default(), &cm("Not_Valid", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((bad.code, bad.reason.as_str()), (422, "Invalid"));
    assert!(
        bad.message
            .contains("metadata.name: Invalid value: \"Not_Valid\""),
        "{}",
        bad.message
    );

    let services: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .unwrap();
    let bad = api_error(
        services
            .create(&PostParams::default(), &svc)
            .await
            .unwrap_err(),
    );
    assert!(bad.message.contains("DNS-1035"), "{}", bad.message);
}

#[tokio::test]
async fn objects_in_a_missing_namespace_are_refused() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "nowhere");
    let e = api_error(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(e.message, "namespaces \"nowhere\" not found");
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let t = TestServer::start().await;
    let api: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("web", 1))
        .await
        .unwrap();
    let pp = PatchParams::default();

    let merged = api
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "fe"}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.metadata.labels.unwrap()["tier"], "fe");

    let json_patch: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]))
            .unwrap();
    let patched = api
        .patch("web", &pp, &Patch::<()>::Json(json_patch))
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(3));

    // Strategic merge: the container list merges by name, env by name.
    let smp = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "side", "image": "envoy:2", "env": [{"name": "B", "value": "2"}]},
    ]}}}});
    let d = api.patch("web", &pp, &Patch::Strategic(smp)).await.unwrap();
    let containers = d.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers.len(), 2);
    let side = containers.iter().find(|c| c.name == "side").unwrap();
    assert_eq!(side.image.as_deref(), Some("envoy:2"));
    let env: Vec<_> = side
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(env, ["B", "A"]);

    // $patch: delete removes one item by its merge key.
    let delete = json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}});
    let d = api
        .patch("web", &pp, &Patch::Strategic(delete))
        .await
        .unwrap();
    assert_eq!(d.spec.unwrap().template.spec.unwrap().containers.len(), 1);
}

#[tokio::test]
async fn server_side_apply_tracks_owners_and_conflicts() {
    let t = TestServer::start().await;
    let api: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    let mut applied = serde_json::to_value(deployment("web", 2)).unwrap();
    applied["apiVersion"] = json!("apps/v1");
    applied["kind"] = json!("Deployment");
    let first = api
        .patch("web", &PatchParams::apply("alice"), &Patch::Apply(&applied))
        .await
        .unwrap();
    let managers: Vec<_> = first
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .map(|m| m.manager.clone().unwrap())
        .collect();
    assert_eq!(managers, ["alice"]);

    let bob = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
    let conflict = api_error(
        api.patch("web", &PatchParams::apply("bob"), &Patch::Apply(&bob))
            .await
            .unwrap_err(),
    );
    assert_eq!(conflict.code, 409);
    assert!(
        conflict.message.contains("conflict with \"alice\""),
        "{}",
        conflict.message
    );
    assert!(
        conflict.message.contains(".spec.replicas"),
        "{}",
        conflict.message
    );

    let forced = api
        .patch(
            "web",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&bob),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.unwrap().replicas, Some(5));

    // Alice no longer applies the sidecar: it goes, the rest stays.
    applied["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .pop();
    applied["spec"].as_object_mut().unwrap().remove("replicas");
    let d = api
        .patch("web", &PatchParams::apply("alice"), &Patch::Apply(&applied))
        .await
        .unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(5));
    let names: Vec<_> = spec
        .template
        .spec
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["app"]);
    let ports = d.metadata.managed_fields.unwrap();
    assert!(ports.iter().any(|m| m.manager.as_deref() == Some("bob")));
}

#[tokio::test]
async fn status_subresource_separates_spec_and_status() {
    let t = TestServer::start().await;
    let api: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("web", 1))
        .await
        .unwrap();
    let pp = PatchParams::default();

    // Status through the main endpoint is ignored...
    let d = api
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"status": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert!(d.status.is_none_or(|s| s.replicas.is_none()));
    assert_eq!(d.metadata.generation, Some(1));
    // ...and spec through /status too.
    let d = api
        .patch_status("web", &pp, &Patch::Merge(json!({"spec": {"replicas": 7}, "status": {"replicas": 1, "observedGeneration": 1}})))
        .await
        .unwrap();
    assert_eq!(d.status.unwrap().replicas, Some(1));
    assert_eq!(d.spec.unwrap().replicas, Some(1));
    assert_eq!(
        d.metadata.generation,
        Some(1),
        "a status change is not a new generation"
    );

    let d = api
        .patch("web", &pp, &Patch::Merge(json!({"spec": {"replicas": 4}})))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(2));
    let d = api
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        d.metadata.generation,
        Some(2),
        "metadata changes do not bump the generation"
    );
}

#[tokio::test]
async fn scale_subresource() {
    let t = TestServer::start().await;
    let api: Api<Deployment> = Api::namespaced(t.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("web", 1))
        .await
        .unwrap();
    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    let scaled = api
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(4));
    let d = api.get("web").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(4));
    assert_eq!(d.metadata.generation, Some(2));
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    for (name, labels) in [
        ("a", json!({"app": "web", "tier": "fe"})),
        ("b", json!({"app": "api", "tier": "be"})),
        ("c", json!({"app": "web"})),
    ] {
        api.create(&PostParams::default(), &cm(name, labels))
            .await
            .unwrap();
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect()
    };
    let cases = [
        ("app=web", vec!["a", "c"]),
        ("app==web,tier", vec!["a"]),
        ("app!=web", vec!["b"]),
        ("app in (api,db)", vec!["b"]),
        ("app notin (api)", vec!["a", "c"]),
        ("!tier", vec!["c"]),
    ];
    for (sel, want) in cases {
        let got = names(api.list(&ListParams::default().labels(sel)).await.unwrap());
        assert_eq!(got, want, "selector {sel}");
    }
    let got = names(
        api.list(&ListParams::default().fields("metadata.name=b"))
            .await
            .unwrap(),
    );
    assert_eq!(got, ["b"]);
    let all: Api<ConfigMap> = Api::all(t.client.clone());
    let got = names(
        all.list(
            &ListParams::default()
                .fields("metadata.namespace=default,metadata.name!=a")
                .labels("app"),
        )
        .await
        .unwrap(),
    );
    assert_eq!(got, ["b", "c"]);
    let e = api_error(
        api.list(&ListParams::default().fields("data.k=v"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 400);
    assert!(
        e.message.contains("field label not supported: data.k"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn pagination_with_limit_and_continue() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    for i in 0..25 {
        api.create(
            &PostParams::default(),
            &cm(&format!("cm-{i:02}"), json!({})),
        )
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(10);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn services_get_cluster_ips_from_the_service_cidr() {
    let t = TestServer::with_config(clusterset::apiserver::Config {
        service_cidrs: vec![
            "10.101.0.0/16".parse().unwrap(),
            "fd00:101::/108".parse().unwrap(),
        ],
        ..Default::default()
    })
    .await;
    let api: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let svc = |name: &str, extra: Value| -> Service {
        let mut v = json!({"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}});
        json_patch::merge(&mut v, &extra);
        serde_json::from_value(v).unwrap()
    };
    let one = api
        .create(&PostParams::default(), &svc("one", json!({})))
        .await
        .unwrap()
        .spec
        .unwrap();
    let ip = one.cluster_ip.unwrap();
    assert!(ip.starts_with("10.101."), "{ip}");
    assert_eq!(one.ip_families.unwrap(), ["IPv4"]);
    assert_eq!(one.ports.unwrap()[0].protocol.as_deref(), Some("TCP"));

    let dual = api
        .create(
            &PostParams::default(),
            &svc(
                "dual",
                json!({"spec": {"ipFamilyPolicy": "PreferDualStack"}}),
            ),
        )
        .await
        .unwrap()
        .spec
        .unwrap();
    let ips = dual.cluster_ips.unwrap();
    assert_eq!(ips.len(), 2);
    assert!(ips[1].starts_with("fd00:101::"), "{ips:?}");
    assert_eq!(dual.ip_families.unwrap(), ["IPv4", "IPv6"]);

    let headless = api
        .create(
            &PostParams::default(),
            &svc("h", json!({"spec": {"clusterIP": "None"}})),
        )
        .await
        .unwrap();
    assert_eq!(headless.spec.unwrap().cluster_ip.as_deref(), Some("None"));

    let outside = api_error(
        api.create(
            &PostParams::default(),
            &svc("bad", json!({"spec": {"clusterIP": "192.168.0.1"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(outside.code, 422);
    assert!(
        outside.message.contains("not in the valid range"),
        "{}",
        outside.message
    );

    // A released address can be claimed again.
    api.delete("one", &DeleteParams::default()).await.unwrap();
    let again = api
        .create(
            &PostParams::default(),
            &svc("again", json!({"spec": {"clusterIP": ip}})),
        )
        .await
        .unwrap();
    assert_eq!(again.spec.unwrap().cluster_ip, Some(ip.clone()));
    let taken = api_error(
        api.create(
            &PostParams::default(),
            &svc("taken", json!({"spec": {"clusterIP": ip}})),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        taken.message.contains("already allocated"),
        "{}",
        taken.message
    );

    // The ClusterIP survives an update that leaves it out.
    let mut replace = api.get("again").await.unwrap();
    replace.spec.as_mut().unwrap().cluster_ip = None;
    replace.spec.as_mut().unwrap().cluster_ips = None;
    let kept = api
        .replace("again", &PostParams::default(), &replace)
        .await
        .unwrap();
    assert_eq!(kept.spec.unwrap().cluster_ip, Some(ip));
}

#[tokio::test]
async fn bad_requests_get_status_errors() {
    let t = TestServer::start().await;
    let ns = "/api/v1/namespaces/default/configmaps";
    /// method, path, content type, body, expected code and reason
    type Case = (
        &'static str,
        String,
        &'static str,
        Vec<u8>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            ns.into(),
            "application/json",
            b"{not json".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "GET",
            "/apis/example.com/v1/widgets".into(),
            "application/json",
            vec![],
            404,
            "NotFound",
        ),
        (
            "POST",
            ns.into(),
            "application/json",
            br#"{"metadata":{"name":"x","namespace":"other"}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            ns.into(),
            "application/json",
            vec![b' '; 4 * 1024 * 1024],
            413,
            "RequestEntityTooLarge",
        ),
        (
            "PATCH",
            format!("{ns}/x"),
            "text/plain",
            b"{}".to_vec(),
            415,
            "UnsupportedMediaType",
        ),
        (
            "POST",
            format!("{ns}/x"),
            "application/json",
            b"{}".to_vec(),
            405,
            "MethodNotAllowed",
        ),
        (
            "POST",
            ns.into(),
            "application/json",
            br#"{"kind":"Secret","metadata":{"name":"x"}}"#.to_vec(),
            400,
            "BadRequest",
        ),
    ];
    for (method, path, ct, body, code, reason) in cases {
        let (got, status) = raw(&t.client, method, &path, ct, body).await;
        assert_eq!(got, code, "{method} {path}: {status}");
        assert_eq!(status["kind"], "Status", "{method} {path}");
        assert_eq!(status["reason"], reason, "{method} {path}: {status}");
        assert_eq!(status["code"], code);
    }
    // Nothing was stored by any of them.
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    assert!(api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn strict_field_validation_names_unknown_fields() {
    let t = TestServer::start().await;
    let body =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{},"bogus":1}"#
            .to_vec();
    let (code, status) = raw(
        &t.client,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
        "application/json",
        body.clone(),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"bogus\""),
        "{status}"
    );
    let dup =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","name":"y"}}"#.to_vec();
    let (code, status) = raw(
        &t.client,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
        "application/json",
        dup,
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("duplicate field \"metadata.name\""),
        "{status}"
    );
    // Without Strict, the field is dropped and the object stored.
    let (code, obj) = raw(
        &t.client,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Ignore",
        "application/json",
        body,
    )
    .await;
    assert_eq!(code, 201);
    assert!(obj.get("bogus").is_none());
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let made = api.create(&pp, &cm("dry", json!({}))).await.unwrap();
    assert_eq!(made.metadata.name.as_deref(), Some("dry"));
    assert!(api.get_opt("dry").await.unwrap().is_none());
}

#[tokio::test]
async fn delete_collection_honours_selectors() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "api")] {
        api.create(&PostParams::default(), &cm(name, json!({"app": app})))
            .await
            .unwrap();
    }
    let deleted = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=web"),
        )
        .await
        .unwrap();
    let names: Vec<_> = deleted
        .left()
        .expect("the deleted objects are listed")
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let left: Vec<_> = api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].metadata.name.as_deref(), Some("c"));
}

#[tokio::test]
async fn statefulsets_and_custom_resources_scale() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let t = TestServer::start().await;
    let sets: Api<StatefulSet> = Api::namespaced(t.client.clone(), "default");
    let sts: StatefulSet = serde_json::from_value(json!({"metadata": {"name": "db"}, "spec": {
        "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "postgres"}]}}}}))
    .unwrap();
    sets.create(&PostParams::default(), &sts).await.unwrap();
    sets.patch_scale(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    assert_eq!(
        sets.get("db").await.unwrap().spec.unwrap().replicas,
        Some(3)
    );

    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer", "default": 1}}},
                    "status": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]},
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(t.client.clone(), "default", &ApiResource::from_gvk(&gvk));
    let w: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}),
    )
    .unwrap();
    let made = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(made.data["spec"]["size"], 1, "schema defaults apply");
    let scale = widgets.get_scale("w").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    widgets
        .patch_scale(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(widgets.get("w").await.unwrap().data["spec"]["size"], 4);
}

/// An OpenAPI document under its current hash is immutable, as kube-apiserver serves
/// it: kubectl keeps it in its cache. A stale hash is redirected to the current one.
#[tokio::test]
async fn openapi_documents_are_cached_under_their_hash() {
    let t = TestServer::start().await;
    let (code, root) = raw(&t.client, "GET", "/openapi/v3", "application/json", vec![]).await;
    assert_eq!(code, 200);
    let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |uri: String| {
        let req = http::Request::get(uri).body(Vec::new()).unwrap();
        t.client.send(req.map(kube::client::Body::from))
    };
    let current = get(url.clone()).await.unwrap();
    assert_eq!(current.status(), 200);
    let headers = current.headers();
    assert_eq!(headers["cache-control"], "public, immutable");
    let hash = url.rsplit("hash=").next().unwrap();
    assert_eq!(headers["etag"], format!("\"{hash}\""));
    let stale = get("/openapi/v3/apis/apps/v1?hash=0123".into())
        .await
        .unwrap();
    assert_eq!(stale.status(), 301);
    assert_eq!(stale.headers()["location"], url.as_str());
    // Without a hash the document is served, but not as immutable.
    let plain = get("/openapi/v3/apis/apps/v1".into()).await.unwrap();
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("cache-control").is_none());
    // An empty hash is no hash, as kube-openapi has it.
    let empty = get("/openapi/v3/apis/apps/v1?hash=".into()).await.unwrap();
    assert_eq!(empty.status(), 200);
    let missing = get("/openapi/v3/apis/nothing.example.com/v1".into())
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
