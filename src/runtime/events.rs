//! Events about the objects a controller acts on, written as client-go's event
//! recorder writes them: core/v1 Events, which `kubectl describe` and `kubectl events`
//! read. The same event again within ten minutes counts into the one written before
//! (`(x3 over 5m)` in `kubectl describe`) instead of adding another.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;

/// How long a published event is counted into rather than written anew: client-go's
/// aggregation window.
const SERIES_WINDOW: Duration = Duration::from_secs(600);
/// client-go's spam filter: each object may have 25 events at once, then one every
/// five minutes, so a flapping object cannot flood the API server.
const BURST: f64 = 25.0;
const REFILL_EVERY: Duration = Duration::from_secs(300);
/// An event is worth this long a wait, no longer: the reconcile that publishes it waits.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

pub struct Recorder {
    client: Client,
    /// Who reports: `source.component` and `reportingComponent`.
    component: String,
    /// Which one of them: `source.host` and `reportingInstance`.
    instance: String,
    memory: Mutex<Memory>,
    /// Whether a refusal for lack of permission was logged (once is enough).
    forbidden_logged: AtomicBool,
}

/// What the recorder remembers of what it said.
struct Memory {
    recent: HashMap<Said, Written>,
    /// Each object's spam budget, by uid.
    budgets: HashMap<String, Budget>,
    pruned: Instant,
}

impl Memory {
    /// Forgets what no longer matters (events past the window, full budgets), once a
    /// minute: that keeps it as small as the recent past, at no cost per event.
    fn prune(&mut self) {
        if self.pruned.elapsed() < Duration::from_secs(60) {
            return;
        }
        self.recent.retain(|_, w| w.at.elapsed() < SERIES_WINDOW);
        self.budgets.retain(|_, b| b.now() < BURST);
        self.pruned = Instant::now();
    }
}

/// Tokens left, as of a time.
struct Budget {
    tokens: f64,
    at: Instant,
}

impl Budget {
    fn now(&self) -> f64 {
        let refilled = self.at.elapsed().as_secs_f64() / REFILL_EVERY.as_secs_f64();
        (self.tokens + refilled).min(BURST)
    }
}

/// What was said about which object.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Said {
    uid: String,
    type_: EventType,
    reason: String,
    message: String,
}

/// The Event that said it, and how often.
struct Written {
    namespace: String,
    name: String,
    count: i32,
    at: Instant,
}

impl Recorder {
    pub fn new(client: Client, component: &str, instance: &str) -> Self {
        Recorder {
            client,
            component: component.into(),
            instance: instance.into(),
            memory: Mutex::new(Memory {
                recent: HashMap::new(),
                budgets: HashMap::new(),
                pruned: Instant::now(),
            }),
            forbidden_logged: AtomicBool::new(false),
        }
    }

    /// Publishes an event about `object`. A failure is logged, never returned: an
    /// event is worth a try, not a failed reconcile.
    pub async fn publish<K>(&self, object: &K, type_: EventType, reason: &str, message: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        let said = Said {
            uid: object.uid().unwrap_or_else(|| object.name_any()),
            type_,
            reason: reason.into(),
            message: message.into(),
        };
        if !self.spend(&said.uid) {
            tracing::debug!(reason, name = %object.name_any(), "event dropped: too many for this object");
            return;
        }
        let outcome =
            tokio::time::timeout(PUBLISH_TIMEOUT, self.count_or_write(object, said)).await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(kube::Error::Api(s))) if s.code == 403 => {
                if !self.forbidden_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(message = %s.message, "may not write events; none will be published (grant create and patch on events)");
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, reason, name = %object.name_any(), "could not publish an event")
            }
            Err(_) => {
                tracing::debug!(reason, name = %object.name_any(), "publishing an event timed out")
            }
        }
    }

    /// Takes one token from the object's budget, if it has one.
    fn spend(&self, uid: &str) -> bool {
        let mut memory = self.memory.lock();
        memory.prune();
        let tokens = memory.budgets.get(uid).map_or(BURST, Budget::now);
        if tokens < 1.0 {
            return false;
        }
        let at = Instant::now();
        memory.budgets.insert(
            uid.to_string(),
            Budget {
                tokens: tokens - 1.0,
                at,
            },
        );
        true
    }

    async fn count_or_write<K>(&self, object: &K, said: Said) -> Result<(), kube::Error>
    where
        K: Resource<DynamicType = ()>,
    {
        let now = Time(jiff::Timestamp::now());
        let earlier = self.earlier(&said);
        if let Some((namespace, name, count)) = earlier {
            let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
            let patch = json!({"count": count + 1, "lastTimestamp": now});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.remember(said, namespace, name, count + 1);
                    return Ok(());
                }
                // Expired since: say it anew.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.event(object, &said, now);
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let created = api.create(&PostParams::default(), &event).await?;
        self.remember(said, namespace, created.name_any(), 1);
        Ok(())
    }

    /// The Event that said this within the window: its namespace, name and count.
    fn earlier(&self, said: &Said) -> Option<(String, String, i32)> {
        let memory = self.memory.lock();
        let w = memory
            .recent
            .get(said)
            .filter(|w| w.at.elapsed() < SERIES_WINDOW)?;
        Some((w.namespace.clone(), w.name.clone(), w.count))
    }

    fn remember(&self, said: Said, namespace: String, name: String, count: i32) {
        let mut memory = self.memory.lock();
        let at = Instant::now();
        memory.recent.insert(
            said,
            Written {
                namespace,
                name,
                count,
                at,
            },
        );
    }

    fn event<K: Resource<DynamicType = ()>>(&self, object: &K, said: &Said, now: Time) -> Event {
        let namespace = object.namespace().unwrap_or_else(|| "default".into());
        let nanos = now.0.as_nanosecond();
        Event {
            metadata: ObjectMeta {
                // client-go's naming: the object's name and the time in hex.
                name: Some(format!("{}.{nanos:x}", object.name_any())),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: object.object_ref(&()),
            type_: Some(said.type_.as_str().into()),
            reason: Some(said.reason.clone()),
            message: Some(said.message.clone()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: Some(self.instance.clone()),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.instance.clone()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    /// A server (kept by the test while it runs), a ConfigMap in it to tell of, and a
    /// recorder.
    async fn setup() -> (crate::apiserver::ApiServer, Client, ConfigMap, Recorder) {
        let server = crate::apiserver::ApiServer::start(Default::default())
            .await
            .unwrap();
        let client = server.client();
        let configs: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "settings"}})).unwrap();
        let cm = configs.create(&PostParams::default(), &cm).await.unwrap();
        let recorder = Recorder::new(client.clone(), "tester", "tester-1");
        (server, client, cm, recorder)
    }

    #[tokio::test]
    async fn the_same_event_again_counts_into_the_first() {
        let (_server, client, cm, recorder) = setup().await;
        for _ in 0..3 {
            recorder
                .publish(&cm, EventType::Warning, "Broken", "it broke")
                .await;
        }
        recorder
            .publish(&cm, EventType::Normal, "Mended", "it works")
            .await;
        let events: Api<Event> = Api::namespaced(client, "default");
        let mut listed = events.list(&Default::default()).await.unwrap().items;
        listed.sort_by_key(|e| e.reason.clone());
        let said: Vec<_> = listed
            .iter()
            .map(|e| {
                (
                    e.reason.clone().unwrap(),
                    e.type_.clone().unwrap(),
                    e.count.unwrap(),
                )
            })
            .collect();
        assert_eq!(
            said,
            [
                ("Broken".to_string(), "Warning".to_string(), 3),
                ("Mended".to_string(), "Normal".to_string(), 1)
            ]
        );
        let broken = &listed[0];
        assert_eq!(broken.involved_object.kind.as_deref(), Some("ConfigMap"));
        assert_eq!(broken.involved_object.uid, cm.metadata.uid);
        assert_eq!(
            broken.source.as_ref().unwrap().component.as_deref(),
            Some("tester")
        );
        // Expired (or deleted) since: the next one is written anew.
        events
            .delete(&broken.name_any(), &Default::default())
            .await
            .unwrap();
        recorder
            .publish(&cm, EventType::Warning, "Broken", "it broke")
            .await;
        let again = events.list(&Default::default()).await.unwrap().items;
        let broken: Vec<_> = again
            .iter()
            .filter(|e| e.reason.as_deref() == Some("Broken"))
            .collect();
        assert_eq!(broken.len(), 1);
        assert_eq!(broken[0].count, Some(1));
    }

    #[tokio::test]
    async fn a_flapping_object_gets_no_more_than_its_budget() {
        let (_server, client, cm, recorder) = setup().await;
        for i in 0..40 {
            let (type_, reason) = if i % 2 == 0 {
                (EventType::Warning, "Down")
            } else {
                (EventType::Normal, "Up")
            };
            recorder.publish(&cm, type_, reason, "flap").await;
        }
        let events: Api<Event> = Api::namespaced(client, "default");
        let listed = events.list(&Default::default()).await.unwrap().items;
        let published: i32 = listed.iter().map(|e| e.count.unwrap_or(1)).sum();
        assert_eq!(published, 25, "the burst, then nothing for five minutes");
    }
}
