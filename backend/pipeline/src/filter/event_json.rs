//! The `event` object JavaScript filters see (sensu-compat 3.2): the event's JSON with the
//! entity redacted, each object's `metadata` fields copied to the object itself
//! (`event.check.name`), `labels`/`annotations` never null, and Sensu's synthesized booleans.
//!
//! [`FilterObject`] is the same object built in parts, on demand: the simple evaluator
//! (`jsexpr::simple`) reads `event.check...` and `event.entity...` from the check's or the
//! entity's part alone, and only a read elsewhere (or QuickJS) builds the whole object.

use std::sync::OnceLock;

use jsexpr::simple::{Found, Scope, walk};
use proto_spec::v2::entity::{DEFAULT_REDACT, REDACTED};
use proto_spec::v2::{Entity, Event};
use serde_json::{Map, Value};

/// Whether [`Entity::redacted`] would change `entity`: a label or annotation it hides does
/// not read `REDACTED` yet. Entities reach the pipeline redacted already, so this spares a
/// copy of the entity (or of the whole event) per event.
pub fn needs_redaction(entity: &Entity) -> bool {
    let hidden = |key: &str| {
        if entity.redact.is_empty() {
            DEFAULT_REDACT.contains(&key)
        } else {
            entity.redact.iter().any(|r| r == key)
        }
    };
    entity
        .metadata
        .labels
        .iter()
        .chain(entity.metadata.annotations.iter())
        .any(|(k, v)| hidden(k) && v != REDACTED)
}

/// The entity's JSON as filters see it (redacted, metadata lifted).
fn entity_part(entity: &Entity) -> Value {
    let mut v = if needs_redaction(entity) {
        serde_json::to_value(entity.redacted())
    } else {
        serde_json::to_value(entity)
    }
    .unwrap_or(Value::Null);
    if let Value::Object(obj) = &mut v {
        lift_metadata(obj);
    }
    v
}

/// Derived flags (sensu-compat 2.4).
pub fn is_incident(event: &Event) -> bool {
    event.check.as_ref().is_some_and(|c| c.status != 0)
}

/// The previous history entry failed and this result passes.
pub fn is_resolution(event: &Event) -> bool {
    let Some(c) = &event.check else { return false };
    let h = c.history();
    h.len() > 1 && h[h.len() - 2].status != 0 && c.status == 0
}

pub fn is_silenced(event: &Event) -> bool {
    event
        .check
        .as_ref()
        .is_some_and(|c| c.is_silenced || !c.silenced.is_empty())
}

pub fn event_for_filters(event: &Event) -> Value {
    let needs_copy = event.entity.as_ref().is_some_and(needs_redaction);
    let mut v = if needs_copy {
        let mut e = event.clone();
        e.entity = e.entity.as_ref().map(Entity::redacted);
        serde_json::to_value(&e)
    } else {
        serde_json::to_value(event)
    }
    .unwrap_or(Value::Null);
    let Value::Object(obj) = &mut v else {
        return v;
    };
    lift_metadata(obj);
    for key in ["entity", "check"] {
        if let Some(Value::Object(inner)) = obj.get_mut(key) {
            lift_metadata(inner);
        }
    }
    for (k, b) in flags(event) {
        obj.insert(k.to_string(), Value::Bool(b));
    }
    v
}

/// The synthesized booleans, set on the object last (they win over any lifted key).
fn flags(event: &Event) -> [(&'static str, bool); 7] {
    [
        ("has_check", event.check.is_some()),
        ("has_metrics", event.metrics.is_some()),
        ("is_incident", is_incident(event)),
        ("is_resolution", is_resolution(event)),
        ("is_silenced", is_silenced(event)),
        // History entries carry no flapping flag (as in Sensu 6, where it is never set),
        // so flapping never starts or ends as far as filters can tell.
        ("is_flapping_start", false),
        ("is_flapping_end", false),
    ]
}

static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);

/// [`event_for_filters`] built in parts as reads need them: `event.check` from the check
/// alone, `event.entity` from the entity alone, the flags computed, and the whole object only
/// for any other read. Each part is what the whole object holds under that key (the lifting
/// is per object and the top level's lifted keys never shadow `check` or `entity`).
pub struct FilterObject<'e> {
    event: &'e Event,
    check: OnceLock<Value>,
    entity: OnceLock<Value>,
    whole: OnceLock<Value>,
}

impl<'e> FilterObject<'e> {
    pub fn new(event: &'e Event) -> Self {
        FilterObject {
            event,
            check: OnceLock::new(),
            entity: OnceLock::new(),
            whole: OnceLock::new(),
        }
    }

    /// The whole object.
    pub fn whole(&self) -> &Value {
        self.whole.get_or_init(|| event_for_filters(self.event))
    }

    /// The whole object, taken out (what QuickJS binds; a later read builds it again).
    pub fn take_whole(&mut self) -> Value {
        self.whole
            .take()
            .unwrap_or_else(|| event_for_filters(self.event))
    }

    fn top(&self, key: &str) -> Option<&Value> {
        match key {
            "check" => self.event.check.as_ref().map(|c| {
                self.check.get_or_init(|| {
                    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
                    if let Value::Object(obj) = &mut v {
                        lift_metadata(obj);
                    }
                    v
                })
            }),
            "entity" => self
                .event
                .entity
                .as_ref()
                .map(|e| self.entity.get_or_init(|| entity_part(e))),
            _ => flags(self.event)
                .iter()
                .find(|(name, _)| *name == key)
                .map(|(_, b)| if *b { &TRUE } else { &FALSE }),
        }
    }
}

impl Scope for FilterObject<'_> {
    fn lookup(&self, root: &str, keys: &[Box<str>]) -> Option<Found<'_>> {
        if root != "event" {
            return None;
        }
        match keys.split_first() {
            Some((first, rest)) => match self.top(first) {
                Some(part) => walk(part, rest),
                None => walk(self.whole(), keys),
            },
            None => Some(Found::Value(self.whole())),
        }
    }
}

fn lift_metadata(obj: &mut Map<String, Value>) {
    let mut meta = match obj.remove("metadata") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for key in ["labels", "annotations"] {
        if !matches!(meta.get(key), Some(Value::Object(_))) {
            meta.insert(key.to_string(), Value::Object(Map::new()));
        }
    }
    for (k, val) in &meta {
        obj.entry(k.clone()).or_insert_with(|| val.clone());
    }
    obj.insert("metadata".to_string(), Value::Object(meta));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(labels: Value, redact: Value) -> Event {
        serde_json::from_value(json!({
            "entity": {"metadata": {"name": "web-1", "namespace": "default", "labels": labels,
                                    "annotations": {"note": "x", "secret": "s3"}},
                       "entity_class": "agent", "redact": redact,
                       "system": {"hostname": "web-1", "os": "linux"}},
            "check": {"metadata": {"name": "cpu", "namespace": "default",
                                   "labels": {"team": "ops"}},
                      "status": 2, "interval": 60, "occurrences": 3,
                      "history": [{"status": 0, "executed": 1}, {"status": 2, "executed": 2}]},
            "metadata": {"namespace": "default", "labels": {"top": "level"}},
            "timestamp": 5
        }))
        .unwrap()
    }

    fn events() -> Vec<Event> {
        let mut no_check = event(json!({}), json!([]));
        no_check.check = None;
        let mut no_entity = event(json!({}), json!([]));
        no_entity.entity = None;
        vec![
            event(json!({"env": "prod"}), json!([])),
            event(json!({"password": "hunter2", "env": "dev"}), json!([])),
            event(json!({"password": "REDACTED"}), json!([])),
            event(json!({"password": "kept", "env": "hide"}), json!(["env"])),
            no_check,
            no_entity,
        ]
    }

    #[test]
    fn needs_redaction_agrees_with_redacted() {
        for e in events() {
            let Some(entity) = &e.entity else { continue };
            assert_eq!(
                needs_redaction(entity),
                entity.redacted() != *entity,
                "{:?}",
                entity.metadata
            );
        }
    }

    #[test]
    fn the_whole_object_redacts_as_before() {
        for e in events() {
            let mut copy = e.clone();
            copy.entity = copy.entity.as_ref().map(Entity::redacted);
            let whole = event_for_filters(&e);
            assert_eq!(whole["entity"], event_for_filters(&copy)["entity"]);
            assert_ne!(whole["entity"]["labels"]["password"], "hunter2");
        }
    }

    /// Every read through the parts finds what the whole object holds.
    #[test]
    fn parts_read_as_the_whole_object() {
        let paths = [
            "check",
            "check.name",
            "check.labels.team",
            "check.metadata.name",
            "check.status",
            "check.missing",
            "check.labels.missing",
            "check.history",
            "entity",
            "entity.name",
            "entity.labels.password",
            "entity.labels.env",
            "entity.annotations.secret",
            "entity.system.os",
            "entity.missing",
            "is_incident",
            "is_resolution",
            "has_check",
            "has_metrics",
            "is_silenced",
            "is_flapping_start",
            "timestamp",
            "labels.top",
            "name",
            "namespace",
            "missing",
            "missing.deeper",
            "is_incident.deeper",
            "check.constructor",
            "",
        ];
        for e in events() {
            let whole = event_for_filters(&e);
            let parts = FilterObject::new(&e);
            for path in paths {
                let keys: Vec<Box<str>> = path
                    .split('.')
                    .filter(|k| !k.is_empty())
                    .map(Box::from)
                    .collect();
                assert_eq!(
                    parts.lookup("event", &keys),
                    walk(&whole, &keys),
                    "event.{path}"
                );
            }
            assert_eq!(parts.lookup("other", &[]), None);
        }
    }
}
