//! Watches through kube-rs: raw watch events, selector filtering, bookmarks, 410 Gone
//! and kube_runtime's watcher and Controller on top.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{eventually, TestServer};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{controller::Action, reflector, watcher, Controller, WatchStreamExt};
use serde_json::json;

fn cm(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app}}})).unwrap()
}

const WAIT: Duration = Duration::from_secs(10);

/// The next event that is not a bookmark.
async fn next_event<S>(stream: &mut S) -> WatchEvent<ConfigMap>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    loop {
        let e = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("an event in time")
            .expect("stream open")
            .unwrap();
        if !matches!(e, WatchEvent::Bookmark(_)) {
            return e;
        }
    }
}

fn name_of(e: &WatchEvent<ConfigMap>) -> (&'static str, String) {
    match e {
        WatchEvent::Added(o) => ("ADDED", o.metadata.name.clone().unwrap()),
        WatchEvent::Modified(o) => ("MODIFIED", o.metadata.name.clone().unwrap()),
        WatchEvent::Deleted(o) => ("DELETED", o.metadata.name.clone().unwrap()),
        WatchEvent::Bookmark(_) => ("BOOKMARK", String::new()),
        WatchEvent::Error(e) => panic!("unexpected error event {e:?}"),
    }
}

#[tokio::test]
async fn watch_from_a_version_sees_every_change_in_order() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let first = api
        .create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    let rv = first.metadata.resource_version.unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &cm("b", "web"))
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();

    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(name_of(&next_event(&mut stream).await));
    }
    assert_eq!(
        seen,
        [
            ("MODIFIED", "a".into()),
            ("ADDED", "b".into()),
            ("DELETED", "a".into())
        ]
    );
}

#[tokio::test]
async fn selector_watches_turn_leaving_objects_into_deletions() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let rv = api
        .create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels("app=web"), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("other", "api"))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "api"}}})),
    )
    .await
    .unwrap();
    assert_eq!(
        name_of(&next_event(&mut stream).await),
        ("DELETED", "a".into())
    );
    api.patch(
        "other",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    assert_eq!(
        name_of(&next_event(&mut stream).await),
        ("ADDED", "other".into())
    );
}

#[tokio::test]
async fn watch_from_zero_starts_with_the_current_objects() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    api.create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    let other: Api<ConfigMap> = Api::namespaced(t.client.clone(), "kube-system");
    other
        .create(&PostParams::default(), &cm("elsewhere", "web"))
        .await
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    assert_eq!(
        name_of(&next_event(&mut stream).await),
        ("ADDED", "a".into())
    );
    api.create(&PostParams::default(), &cm("b", "web"))
        .await
        .unwrap();
    assert_eq!(
        name_of(&next_event(&mut stream).await),
        ("ADDED", "b".into()),
        "kube-system objects stay out"
    );
}

#[tokio::test]
async fn bookmarks_carry_the_latest_version() {
    let t = TestServer::with_config(clusterset::apiserver::Config {
        bookmark_interval: Duration::from_millis(50),
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let rv = api
        .create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(
            &WatchParams {
                bookmarks: true,
                ..Default::default()
            },
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let WatchEvent::Bookmark(bookmark) = first else {
        panic!("expected a bookmark, got {first:?}");
    };
    let at: u64 = bookmark.metadata.resource_version.parse().unwrap();
    assert!(at >= rv.parse::<u64>().unwrap());
}

#[tokio::test]
async fn watch_ends_after_its_timeout() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let stream = api
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap();
    let events: Vec<_> = tokio::time::timeout(WAIT, stream.collect::<Vec<_>>())
        .await
        .expect("the stream ends by itself");
    assert!(events.is_empty());
}

#[tokio::test]
async fn too_old_versions_get_410_and_watcher_relists() {
    let t = TestServer::with_config(clusterset::apiserver::Config {
        history_limit: 5,
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let old_rv = api
        .create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for i in 0..10 {
        api.create(&PostParams::default(), &cm(&format!("n{i}"), "web"))
            .await
            .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default(), &old_rv)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap()
        .unwrap()
    {
        Ok(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }

    // kube_runtime's watcher survives it: a reflector converges to the store's state.
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector::reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .applied_objects();
    let handle = tokio::spawn(stream.for_each(|_| async {}));
    eventually("the reflector to see 11 objects", WAIT, || {
        let n = reader.state().len();
        async move { (n == 11).then_some(()) }
    })
    .await;
    // Flood the history so the watch position falls out of it, then change something.
    for i in 0..10 {
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"i": i.to_string()}})),
        )
        .await
        .unwrap();
    }
    api.delete("n0", &DeleteParams::default()).await.unwrap();
    eventually("the reflector to follow the deletion", WAIT, || {
        let state = reader.state();
        async move {
            let names: Vec<_> = state
                .iter()
                .map(|c| c.metadata.name.clone().unwrap())
                .collect();
            (!names.contains(&"n0".to_string()) && names.len() == 10).then_some(())
        }
    })
    .await;
    handle.abort();
}

/// A controller that copies each ConfigMap's `app` label into its data.
#[tokio::test]
async fn a_controller_reconciles_against_the_server() {
    let t = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    async fn reconcile(
        obj: Arc<ConfigMap>,
        api: Arc<Api<ConfigMap>>,
    ) -> Result<Action, kube::Error> {
        let app = obj
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app"))
            .cloned()
            .unwrap_or_default();
        if obj.data.as_ref().and_then(|d| d.get("app")) != Some(&app) {
            let patch = json!({"data": {"app": app}});
            api.patch(
                obj.metadata.name.as_ref().unwrap(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await?;
        }
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<ConfigMap>, _: &kube::Error, _: Arc<Api<ConfigMap>>) -> Action {
        Action::requeue(Duration::from_millis(100))
    }
    let ctx = Arc::new(api.clone());
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);

    api.create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", "api"))
        .await
        .unwrap();
    for (name, want) in [("a", "web"), ("b", "api")] {
        let api = api.clone();
        eventually("the controller to reconcile", WAIT, || {
            let api = api.clone();
            async move {
                api.get(name)
                    .await
                    .ok()?
                    .data?
                    .get("app")
                    .filter(|v| *v == want)
                    .map(|_| ())
            }
        })
        .await;
    }
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await
    .unwrap();
    eventually("the controller to follow a label change", WAIT, || {
        let api = api.clone();
        async move {
            api.get("a")
                .await
                .ok()?
                .data?
                .get("app")
                .filter(|v| *v == "db")
                .map(|_| ())
        }
    })
    .await;
    handle.abort();
}

#[tokio::test]
async fn watcher_works_on_every_builtin_resource() {
    let t = TestServer::start().await;
    let discovery = kube::Discovery::new(t.client.clone()).run().await.unwrap();
    let mut checked = 0;
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(kube::discovery::verbs::WATCH) {
                continue;
            }
            let api: Api<kube::api::DynamicObject> = Api::all_with(t.client.clone(), &ar);
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            let first = tokio::time::timeout(WAIT, stream.try_next())
                .await
                .expect("watcher starts")
                .unwrap();
            assert!(
                matches!(first, Some(watcher::Event::Init)),
                "{}: {first:?}",
                ar.plural
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} resources were watchable");
}

#[tokio::test]
async fn watch_across_all_namespaces() {
    let t = TestServer::start().await;
    let all: Api<ConfigMap> = Api::all(t.client.clone());
    let rv = t.server.state.store.current_rv().to_string();
    let mut stream = all
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    for ns in ["default", "kube-system"] {
        let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), ns);
        api.create(&PostParams::default(), &cm(&format!("in-{ns}"), "web"))
            .await
            .unwrap();
    }
    assert_eq!(
        name_of(&next_event(&mut stream).await),
        ("ADDED", "in-default".into())
    );
    assert_eq!(
        name_of(&next_event(&mut stream).await),
        ("ADDED", "in-kube-system".into())
    );
}
