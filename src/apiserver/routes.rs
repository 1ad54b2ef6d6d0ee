//! Request paths, parsed the way kube-apiserver's RequestInfoFactory reads them.

/// What a request path addresses.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Version,
    Health(&'static str),
    Metrics,
    CoreVersions,
    GroupList,
    Group(String),
    ResourceList { group: String, version: String },
    OpenApiV3Root,
    OpenApiV3 { group: String, version: String },
    OpenApiV2,
    Resource(ResourcePath),
    Unknown,
}

#[derive(Debug, PartialEq, Eq, Clone)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The deprecated `/watch/` path form.
    pub watch: bool,
}

/// Subresources of a namespace that are not resources in it.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

pub fn parse(path: &str) -> Route {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        ["version"] => Route::Version,
        ["healthz"] => Route::Health("healthz"),
        ["readyz"] => Route::Health("readyz"),
        ["livez"] => Route::Health("livez"),
        ["metrics"] => Route::Metrics,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::GroupList,
        ["apis", g] => Route::Group(g.to_string()),
        ["api", v] => Route::ResourceList {
            group: String::new(),
            version: v.to_string(),
        },
        ["apis", g, v] => Route::ResourceList {
            group: g.to_string(),
            version: v.to_string(),
        },
        ["openapi", "v3"] => Route::OpenApiV3Root,
        ["openapi", "v3", "api", v] => Route::OpenApiV3 {
            group: String::new(),
            version: v.to_string(),
        },
        ["openapi", "v3", "apis", g, v] => Route::OpenApiV3 {
            group: g.to_string(),
            version: v.to_string(),
        },
        ["openapi", "v2"] | ["swagger.json"] => Route::OpenApiV2,
        ["api", v, rest @ ..] => resource("", v, rest),
        ["apis", g, v, rest @ ..] => resource(g, v, rest),
        _ => Route::Unknown,
    }
}

fn resource(group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let mut namespace = None;
    let mut parts = rest;
    if let ["namespaces", ns, tail @ ..] = rest {
        namespace = Some(ns.to_string());
        if !tail.is_empty() && !NAMESPACE_SUBRESOURCES.contains(&tail[0]) {
            parts = tail;
        } else {
            // The namespace object itself: /namespaces/<name>[/status|/finalize].
            namespace = None;
        }
    }
    let path = |plural: &str, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            namespace: namespace.clone(),
            name: name.map(String::from),
            subresource: sub.map(String::from),
            watch,
        })
    };
    match parts {
        [plural] => path(plural, None, None),
        [plural, name] => path(plural, Some(name), None),
        [plural, name, sub] => path(plural, Some(name), Some(sub)),
        _ => Route::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(route: Route) -> ResourcePath {
        match route {
            Route::Resource(r) => r,
            other => panic!("not a resource: {other:?}"),
        }
    }

    #[test]
    fn paths_resolve_like_kube_apiserver() {
        let r = res(parse("/apis/apps/v1/namespaces/demo/deployments/web/scale"));
        assert_eq!(
            (r.group.as_str(), r.plural.as_str()),
            ("apps", "deployments")
        );
        assert_eq!(r.namespace.as_deref(), Some("demo"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("scale"));

        let ns = res(parse("/api/v1/namespaces/demo"));
        assert_eq!(
            (ns.plural.as_str(), ns.name.as_deref(), ns.namespace),
            ("namespaces", Some("demo"), None)
        );
        let ns_status = res(parse("/api/v1/namespaces/demo/status"));
        assert_eq!(ns_status.subresource.as_deref(), Some("status"));
        assert_eq!(ns_status.name.as_deref(), Some("demo"));

        let all = res(parse("/api/v1/pods"));
        assert_eq!((all.namespace, all.name), (None, None));
        let w = res(parse("/api/v1/watch/namespaces/a/pods"));
        assert!(w.watch);
        assert_eq!(
            parse("/apis/apps/v1"),
            Route::ResourceList {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        assert_eq!(parse("/api/v1/a/b/c/d"), Route::Unknown);
    }
}
