//! Events from local clients (`POST /events`, the socket API) made ready for the backend
//! (sensu-compat 5.3).

use proto_spec::v2::Event;

use crate::check::EntitySource;

/// What the agent fills into a client's event.
#[derive(Clone)]
pub struct EventDefaults {
    pub agent_name: String,
    pub namespace: String,
    /// The agent's current entity.
    pub entity: EntitySource,
}

impl std::fmt::Debug for EventDefaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventDefaults")
            .field("agent_name", &self.agent_name)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Apply Sensu's defaults to a client's event and validate it; `now` is Unix seconds.
///
/// * a check or metrics is required;
/// * the entity is always the agent's own; a posted entity with another name becomes the
///   check's `proxy_entity_name`, so the backend attributes the result to that (proxy)
///   entity. A metrics-only event has no check to carry the name: it stays the agent's;
/// * the namespace (event and check) is the agent's: the session can only deliver there;
/// * `timestamp` and `check.executed` default to now, `check.interval` to 1 (when there is
///   no cron schedule, which excludes an interval), `check.processed_by` is the agent;
/// * the id is added when the event is queued (the outbox gives every event one).
pub fn prepare(mut event: Event, d: &EventDefaults, now: i64) -> Result<Event, String> {
    if event.check.is_none() && event.metrics.is_none() {
        return Err("an event must have a check or metrics".into());
    }
    let posted_entity = event
        .entity
        .as_ref()
        .map(|e| e.metadata.name.clone())
        .unwrap_or_default();
    if let Some(check) = event.check.as_mut() {
        if !posted_entity.is_empty() && posted_entity != d.agent_name {
            check.config.proxy_entity_name = posted_entity;
        }
        if check.config.interval == 0 && check.config.cron.is_empty() {
            check.config.interval = 1;
        }
        if check.executed == 0 {
            check.executed = now;
        }
        check.processed_by = d.agent_name.clone();
        check.config.metadata.namespace = d.namespace.clone();
    }
    event.entity = Some((d.entity)());
    event.metadata.namespace = d.namespace.clone();
    if event.timestamp == 0 {
        event.timestamp = now;
    }
    event
        .validate()
        .map_err(|e| format!("invalid event: {e}"))?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proto_spec::ObjectMeta;
    use proto_spec::v2::{Check, CheckConfig, Entity, MetricPoint, Metrics};

    use super::*;

    fn defaults() -> EventDefaults {
        EventDefaults {
            agent_name: "web-1".into(),
            namespace: "prod".into(),
            entity: Arc::new(|| Entity {
                metadata: ObjectMeta::new("prod", "web-1"),
                entity_class: "agent".into(),
                ..Default::default()
            }),
        }
    }

    fn check_event(entity: Option<&str>) -> Event {
        Event {
            entity: entity.map(|n| Entity {
                metadata: ObjectMeta::new("", n),
                ..Default::default()
            }),
            check: Some(Check {
                config: CheckConfig {
                    metadata: ObjectMeta::new("", "disk"),
                    ..Default::default()
                },
                output: "full".into(),
                status: 2,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_filled() {
        let e = prepare(check_event(None), &defaults(), 1000).unwrap();
        assert_eq!(e.timestamp, 1000);
        assert_eq!(e.metadata.namespace, "prod");
        assert_eq!(e.entity_name(), "web-1");
        let c = e.check.unwrap();
        assert_eq!(c.config.interval, 1);
        assert_eq!(c.executed, 1000);
        assert_eq!(c.processed_by, "web-1");
        assert_eq!(c.config.metadata.namespace, "prod");
        assert_eq!(c.config.proxy_entity_name, "");
        assert_eq!((c.status, c.output.as_str()), (2, "full"));
    }

    #[test]
    fn given_values_are_kept() {
        let mut posted = check_event(Some("web-1"));
        posted.timestamp = 5;
        let c = posted.check.as_mut().unwrap();
        c.executed = 6;
        c.config.interval = 60;
        let e = prepare(posted, &defaults(), 1000).unwrap();
        assert_eq!(e.timestamp, 5);
        let c = e.check.unwrap();
        assert_eq!((c.executed, c.config.interval), (6, 60));
        assert_eq!(c.config.proxy_entity_name, "");
    }

    #[test]
    fn another_entity_becomes_the_proxy_entity() {
        let e = prepare(check_event(Some("router-7")), &defaults(), 1).unwrap();
        assert_eq!(e.entity_name(), "web-1");
        assert_eq!(e.check.unwrap().config.proxy_entity_name, "router-7");
    }

    #[test]
    fn cron_checks_keep_interval_zero() {
        let mut posted = check_event(None);
        posted.check.as_mut().unwrap().config.cron = "* * * * *".into();
        let e = prepare(posted, &defaults(), 1).unwrap();
        assert_eq!(e.check.unwrap().config.interval, 0);
    }

    #[test]
    fn invalid_events() {
        let no_content = Event::default();
        assert!(prepare(no_content, &defaults(), 1).is_err());
        let mut bad_name = check_event(None);
        bad_name.check.as_mut().unwrap().config.metadata.name = "no spaces".into();
        let err = prepare(bad_name, &defaults(), 1).unwrap_err();
        assert!(err.contains("name"), "{err}");
        let mut bad_proxy = check_event(Some("bad name!"));
        bad_proxy.timestamp = 1;
        assert!(prepare(bad_proxy, &defaults(), 1).is_err());
    }

    #[test]
    fn metrics_only() {
        let posted = Event {
            metrics: Some(Metrics {
                handlers: None,
                points: Some(vec![MetricPoint {
                    name: "x".into(),
                    value: 1.0,
                    timestamp: 1,
                    tags: None,
                }]),
            }),
            ..Default::default()
        };
        let e = prepare(posted, &defaults(), 9).unwrap();
        assert_eq!(e.timestamp, 9);
        assert!(e.check.is_none());
        assert_eq!(e.entity_name(), "web-1");
    }
}
