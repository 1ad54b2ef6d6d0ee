//! Garbage in, a clear error out: valid objects of every kind the controllers use,
//! mutated at random (a value replaced by one of another type, a field dropped or
//! added), sent as creates and as every kind of patch. The API server must answer each
//! with a success or a 4xx `Status`, never a 500 or a dropped connection, and keep
//! serving afterwards. The seed is fixed, so a failure replays.

mod common;

use common::garbage::{mutate, random_json_patch, rounds_and_rng, send, Rng};
use common::TestServer;
use serde_json::{json, Value};

struct Kind {
    collection: &'static str,
    object: Value,
}

fn kinds() -> Vec<Kind> {
    vec![
        Kind {
            collection: "/api/v1/namespaces/default/services",
            object: json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"a": "b"}},
                "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
                         "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}}}),
        },
        Kind {
            collection: "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            object: json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.0.0.1"], "hostname": "a", "conditions": {"ready": true, "serving": true, "terminating": false}}]}),
        },
        Kind {
            collection: "/apis/apps/v1/namespaces/default/deployments",
            object: json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}}),
        },
        Kind {
            collection: "/apis/multicluster.x-k8s.io/v1alpha1/namespaces/default/serviceexports",
            object: json!({"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport", "metadata": {"name": "web"},
                "spec": {"exportedLabels": {"tier": "web"}}}),
        },
        Kind {
            collection: "/apis/multicluster.x-k8s.io/v1beta1/namespaces/default/serviceimports",
            object: json!({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport", "metadata": {"name": "web"},
                "spec": {"type": "ClusterSetIP", "ips": ["10.0.0.9"], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                         "sessionAffinity": "None"}}),
        },
    ]
}

/// A query string of known parameters with values that are mostly wrong.
fn random_query(rng: &mut Rng) -> String {
    const KEYS: [&str; 14] = [
        "labelSelector",
        "fieldSelector",
        "limit",
        "continue",
        "resourceVersion",
        "resourceVersionMatch",
        "timeoutSeconds",
        "watch",
        "allowWatchBookmarks",
        "sendInitialEvents",
        "propagationPolicy",
        "dryRun",
        "fieldValidation",
        "gracePeriodSeconds",
    ];
    const VALUES: [&str; 16] = [
        "",
        "!",
        "a+in+(",
        "x%3D",
        "metadata.name%3Dweb,%3D",
        "-1",
        "99999999999999999999",
        "%ZZ",
        "a,b",
        "true",
        "1",
        "%C3%BC",
        "((((",
        "Exact",
        "All",
        "metadata.namespace!%3Dx",
    ];
    (0..1 + rng.below(4))
        .map(|_| {
            format!(
                "{}={}",
                KEYS[rng.below(KEYS.len())],
                VALUES[rng.below(VALUES.len())]
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Lists, watches and collection deletes with garbage parameters: each gets an answer
/// (a watch that starts streams until its timeout, which is kept short).
async fn garbage_queries(t: &TestServer, rng: &mut Rng, rounds: usize) {
    let kinds = kinds();
    for round in 0..rounds {
        let kind = &kinds[round % kinds.len()];
        let method = ["GET", "GET", "DELETE"][rng.below(3)];
        let mut query = random_query(rng);
        if query.contains("watch=") {
            query.push_str("&timeoutSeconds=1");
        }
        let path = format!("{}?{query}", kind.collection);
        let (code, answer) = send(&t.client, method, &path, "application/json", &json!({})).await;
        assert!(code < 500, "{method} {path}: {code} {answer}");
        if code >= 400 {
            assert_eq!(answer["kind"], "Status", "{method} {path}: {answer}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_objects_and_patches_get_clear_answers() {
    let (rounds, mut rng) = rounds_and_rng(300, 0x5eed_1234_abcd_0001);
    let t = TestServer::start().await;
    for crd in [
        "multicluster.x-k8s.io_serviceexports.yaml",
        "multicluster.x-k8s.io_serviceimports.yaml",
    ] {
        t.kubectl_ok(&["apply", "-f", common::upstream_crd(crd).to_str().unwrap()]);
    }
    // What earlier runs found, replayed first: a patch whose result is not an object,
    // and a failing patch after a move to the root (json-patch's undo panicked).
    let service = "/api/v1/namespaces/default/services/web";
    let json_patch = "application/json-patch+json";
    let found = [
        json!([{"op": "replace", "path": "", "value": "80"}]),
        json!([{"op": "move", "path": "", "from": "/metadata/labels"},
               {"op": "replace", "path": "/spec/ports/0", "value": "x"}]),
    ];
    send(
        &t.client,
        "POST",
        "/api/v1/namespaces/default/services",
        "application/json",
        &kinds()[0].object,
    )
    .await;
    for patch in found {
        let (code, answer) = send(&t.client, "PATCH", service, json_patch, &patch).await;
        assert_eq!(code, 422, "{patch}: {answer}");
        assert_eq!(answer["reason"], "Invalid", "{patch}: {answer}");
    }
    let kinds = kinds();
    let mut answers = std::collections::BTreeMap::<u16, usize>::new();
    for round in 0..rounds {
        let kind = &kinds[round % kinds.len()];
        let item = format!(
            "{}/{}",
            kind.collection,
            kind.object["metadata"]["name"].as_str().unwrap()
        );
        // The object exists about half the time, so patches meet both cases.
        if rng.below(2) == 0 {
            send(
                &t.client,
                "POST",
                kind.collection,
                "application/json",
                &kind.object,
            )
            .await;
        } else {
            send(&t.client, "DELETE", &item, "application/json", &json!({})).await;
        }
        let mutated = mutate(&mut rng, &kind.object);
        let (method, path, content_type, body) = match rng.below(6) {
            0 => (
                "POST",
                kind.collection.to_string(),
                "application/json",
                mutated,
            ),
            1 => ("PUT", item.clone(), "application/json", mutated),
            2 => (
                "PATCH",
                item.clone(),
                "application/merge-patch+json",
                mutated,
            ),
            3 => (
                "PATCH",
                item.clone(),
                "application/strategic-merge-patch+json",
                mutated,
            ),
            4 => (
                "PATCH",
                format!("{item}?fieldManager=fuzz&force=true"),
                "application/apply-patch+yaml",
                mutated,
            ),
            _ => (
                "PATCH",
                item.clone(),
                "application/json-patch+json",
                random_json_patch(&mut rng, &kind.object),
            ),
        };
        let (code, answer) = send(&t.client, method, &path, content_type, &body).await;
        *answers.entry(code).or_default() += 1;
        assert!(code < 500, "{method} {path} {body}: {code} {answer}");
        if code >= 400 {
            assert_eq!(answer["kind"], "Status", "{method} {path} {body}: {answer}");
            assert_eq!(answer["code"], code, "{method} {path} {body}: {answer}");
            assert!(
                !answer["message"].as_str().unwrap_or_default().is_empty(),
                "{method} {path} {body}: {answer}"
            );
        }
    }
    eprintln!("answers by status code: {answers:?}");
    garbage_queries(&t, &mut rng, rounds).await;
    assert!(answers.keys().any(|c| *c < 300) && answers.keys().any(|c| *c >= 400));
    // Still serving, and what was stored reads back.
    let (code, list) = send(
        &t.client,
        "GET",
        "/api/v1/namespaces/default/services",
        "application/json",
        &json!(null),
    )
    .await;
    assert_eq!(code, 200, "{list}");
}
