//! Watch streams: newline-delimited watch events replayed from the store's history,
//! filtered by namespace and selectors, with bookmarks, timeouts and 410 Gone.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::errors::ApiError;
use super::http::App;
use super::registry::ResourceType;
use super::resources::to_version;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{Event, EventType, StoreError};
use super::table::{self, IncludeObject};

/// What a change is to a filtered watch, from whether the object matched its filter
/// before and after: an object entering the filter is ADDED, one leaving it DELETED,
/// and a change outside it is not seen at all.
fn seen_as(kind: EventType, before: bool, now: bool) -> Option<&'static str> {
    match (kind, before, now) {
        (EventType::Added, _, true) => Some("ADDED"),
        (EventType::Modified, true, true) => Some("MODIFIED"),
        (EventType::Modified, false, true) => Some("ADDED"),
        (EventType::Modified, true, false) => Some("DELETED"),
        (EventType::Deleted, _, true) => Some("DELETED"),
        _ => None,
    }
}

pub struct WatchRequest {
    pub rt: Arc<ResourceType>,
    pub version: String,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub timeout: Duration,
    pub table: Option<IncludeObject>,
    pub bookmark_interval: Duration,
}

/// How many events a watcher takes from the history at once.
const BATCH: usize = 512;

pub fn serve(app: Arc<App>, req: WatchRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let _counted = Counted::new(&app.metrics.watchers);
        let mut w = Watcher {
            gr: req.rt.gr(),
            req,
            tx,
            first_table: true,
        };
        w.run(&app).await;
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A watcher counted in the gauge for as long as it lives, however it ends.
struct Counted(prometheus::IntGauge);

impl Counted {
    fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Counted(gauge.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

struct Watcher {
    req: WatchRequest,
    gr: super::store::GroupResource,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    first_table: bool,
}

/// Stops the loop when the client has gone.
struct Closed;

impl Watcher {
    async fn run(&mut self, app: &App) {
        let store = &app.state.store;
        let mut changes = store.subscribe();
        changes.borrow_and_update();
        let start = match self.start(app).await {
            Ok(Some(rv)) => rv,
            Ok(None) | Err(Closed) => return,
        };
        let deadline = tokio::time::sleep(self.req.timeout);
        tokio::pin!(deadline);
        let mut bookmark = tokio::time::interval(self.req.bookmark_interval);
        bookmark.tick().await;
        let mut last = start;
        let mut stopping = app.stopping.clone();
        if *stopping.borrow_and_update() {
            return;
        }
        loop {
            changes.borrow_and_update();
            // Asked before reading the history: a CRD's objects are deleted before its
            // type stops being served, so a watch that ends has sent every deletion.
            let served = self.still_served(app);
            match store.events_after(last, BATCH) {
                Err(StoreError::Gone { requested, oldest }) => {
                    let _ = self.send_error(requested, oldest).await;
                    return;
                }
                Err(_) => return,
                Ok(events) => {
                    let full = events.len() == BATCH;
                    for e in events {
                        last = e.rv;
                        if self.send_event(&e).await.is_err() {
                            return;
                        }
                    }
                    if full {
                        continue;
                    }
                }
            }
            if !served {
                return;
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = bookmark.tick(), if self.req.bookmarks => {
                    if self.send_bookmark(last, false).await.is_err() { return }
                }
                _ = &mut deadline => return,
                _ = self.tx.closed() => return,
                // The only change is to "stopping".
                _ = stopping.changed() => return,
            }
        }
    }

    /// Sends the initial state when asked for and returns the version to stream from;
    /// `None` when the stream already ended (410).
    async fn start(&mut self, app: &App) -> Result<Option<u64>, Closed> {
        let store = &app.state.store;
        let requested = self.req.resource_version.as_deref();
        let parsed = match requested {
            None | Some("0") => None,
            Some(rv) => match rv.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    let e = ApiError::bad_request(format!("invalid resource version: {rv}"));
                    self.send_line("ERROR", e.status()).await?;
                    return Ok(None);
                }
            },
        };
        let initial = self.req.send_initial_events.unwrap_or(parsed.is_none());
        if let Some(rv) = parsed.filter(|_| !initial) {
            if let Err(StoreError::Gone { requested, oldest }) = store.check_resumable(rv) {
                self.send_error(requested, oldest).await?;
                return Ok(None);
            }
            return Ok(Some(rv));
        }
        let (rv, items) = store.list(&self.gr, self.req.namespace.as_deref(), None);
        for (_, stored) in items {
            let obj = stored.value();
            if self.matches(&obj) {
                self.send_object("ADDED", obj).await?;
            }
        }
        if self.req.send_initial_events == Some(true) && self.req.bookmarks {
            self.send_bookmark(rv, true).await?;
        }
        Ok(Some(rv))
    }

    /// kube-apiserver ends the watches of a custom resource whose CRD is deleted (or
    /// stops serving the watched version), after the deletion of every object.
    fn still_served(&self, app: &App) -> bool {
        // Asked on every wake: the watcher's own GroupResource, no new one each time.
        self.req.rt.builtin
            || app
                .state
                .registry
                .get(&self.gr)
                .is_some_and(|t| t.version(&self.req.version).is_some())
    }

    fn matches(&self, obj: &Value) -> bool {
        self.req.labels.matches(&obj["metadata"]["labels"]) && self.req.fields.matches(obj)
    }

    fn relevant(&self, e: &Event) -> bool {
        *e.gr == self.gr
            && self
                .req
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == e.namespace)
            && self.req.fields.pinned_name().is_none_or(|n| n == e.name)
    }

    async fn send_event(&mut self, e: &Event) -> Result<(), Closed> {
        if !self.relevant(e) {
            return Ok(());
        }
        if let Some(line) = self.verbatim_line(e) {
            return match line {
                Some(line) => self.tx.send(Ok(line)).await.map_err(|_| Closed),
                None => Ok(()),
            };
        }
        let obj: Value = serde_json::from_slice(&e.object).expect("stored JSON");
        let now = self.matches(&obj);
        let before = e
            .prev
            .as_ref()
            .is_some_and(|p| self.matches(&serde_json::from_slice(p).expect("stored JSON")));
        match seen_as(e.kind, before, now) {
            Some(kind) => self.send_object(kind, obj).await,
            None => Ok(()),
        }
    }

    /// The event line built around the stored bytes (or None when this watch does not
    /// see the event), when nothing about the watch needs the object parsed whole: no
    /// field selector, no table, and the client asked for the version the object is
    /// stored in. Most watchers are controllers like that, and parsing and
    /// re-serializing every object for each of them was a fifth of the server's work;
    /// a label selector needs only the labels.
    fn verbatim_line(&self, e: &Event) -> Option<Option<Bytes>> {
        #[derive(serde::Deserialize)]
        struct Head<'a> {
            #[serde(rename = "apiVersion", borrow)]
            api_version: std::borrow::Cow<'a, str>,
            #[serde(default)]
            metadata: HeadMeta,
        }
        #[derive(serde::Deserialize, Default)]
        struct HeadMeta {
            #[serde(default)]
            labels: Value,
        }
        if !self.req.fields.is_empty() || self.req.table.is_some() {
            return None;
        }
        let head: Head = serde_json::from_slice(&e.object).ok()?;
        if head.api_version != self.req.rt.api_version(&self.req.version) {
            return None;
        }
        let kind = if self.req.labels.is_empty() {
            e.kind.as_str()
        } else {
            let labelled = |json: &[u8]| {
                serde_json::from_slice::<Head>(json)
                    .ok()
                    .map(|h| self.req.labels.matches(&h.metadata.labels))
            };
            let before = match &e.prev {
                Some(prev) => labelled(prev)?,
                None => false,
            };
            match seen_as(e.kind, before, labelled(&e.object)?) {
                Some(kind) => kind,
                None => return Some(None),
            }
        };
        let mut line = Vec::with_capacity(e.object.len() + 32);
        line.extend_from_slice(br#"{"type":""#);
        line.extend_from_slice(kind.as_bytes());
        line.extend_from_slice(br#"","object":"#);
        line.extend_from_slice(&e.object);
        line.extend_from_slice(b"}\n");
        Some(Some(Bytes::from(line)))
    }

    async fn send_object(&mut self, kind: &str, obj: Value) -> Result<(), Closed> {
        let obj = to_version(&self.req.rt, obj, &self.req.version);
        let obj = match self.req.table {
            Some(include) => {
                let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
                let headers = std::mem::replace(&mut self.first_table, false);
                table::table(
                    &self.req.rt,
                    &self.req.version,
                    &[obj],
                    meta,
                    include,
                    headers,
                )
            }
            None => obj,
        };
        self.send_line(kind, obj).await
    }

    async fn send_bookmark(&mut self, rv: u64, initial_end: bool) -> Result<(), Closed> {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.req.rt.kind, "apiVersion": self.req.rt.api_version(&self.req.version), "metadata": metadata});
        self.send_line("BOOKMARK", obj).await
    }

    async fn send_error(&mut self, requested: u64, oldest: u64) -> Result<(), Closed> {
        let e = ApiError::gone(format!("too old resource version: {requested} ({oldest})"));
        self.send_line("ERROR", e.status()).await
    }

    async fn send_line(&mut self, kind: &str, obj: Value) -> Result<(), Closed> {
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": obj})).expect("serializable");
        line.push(b'\n');
        self.tx
            .send(Ok(Bytes::from(line)))
            .await
            .map_err(|_| Closed)
    }
}
