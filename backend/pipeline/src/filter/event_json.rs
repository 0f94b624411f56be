//! The `event` object JavaScript filters see (sensu-compat 3.2): the event's JSON with the
//! entity redacted, each object's `metadata` fields copied to the object itself
//! (`event.check.name`), `labels`/`annotations` never null, and Sensu's synthesized booleans.

use proto_spec::v2::Event;
use serde_json::{Map, Value};

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
    let mut e = event.clone();
    if let Some(entity) = &e.entity {
        e.entity = Some(entity.redacted());
    }
    let mut v = serde_json::to_value(&e).unwrap_or(Value::Null);
    let Value::Object(obj) = &mut v else {
        return v;
    };
    lift_metadata(obj);
    for key in ["entity", "check"] {
        if let Some(Value::Object(inner)) = obj.get_mut(key) {
            lift_metadata(inner);
        }
    }
    let flags = [
        ("has_check", event.check.is_some()),
        ("has_metrics", event.metrics.is_some()),
        ("is_incident", is_incident(event)),
        ("is_resolution", is_resolution(event)),
        ("is_silenced", is_silenced(event)),
        // History entries carry no flapping flag (as in Sensu 6, where it is never set),
        // so flapping never starts or ends as far as filters can tell.
        ("is_flapping_start", false),
        ("is_flapping_end", false),
    ];
    for (k, b) in flags {
        obj.insert(k.to_string(), Value::Bool(b));
    }
    v
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
