//! Sensu 1.x check results (the socket API's format) → events, and the TCP payload rules.

use proto_spec::ObjectMeta;
use proto_spec::v2::{Check, CheckConfig, Entity, Event};
use serde::Deserialize;

use crate::api::events::{EventDefaults, prepare};

/// A Sensu 1.x check result. Unknown fields (custom attributes) are ignored.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct CheckResult {
    pub name: Option<String>,
    pub output: Option<String>,
    pub status: Option<u32>,
    /// The entity the result is about (a proxy entity when it is not the agent).
    pub source: Option<String>,
    /// Sensu 1.x's older name for `source`.
    pub client: Option<String>,
    pub command: Option<String>,
    pub subscribers: Option<Vec<String>>,
    pub interval: Option<u32>,
    pub issued: Option<i64>,
    pub executed: Option<i64>,
    pub duration: Option<f64>,
    pub handlers: Option<Vec<String>>,
    /// Sensu 1.x's older single handler.
    pub handler: Option<String>,
}

/// Turn a parsed JSON value into an event ready for the outbox, or say why it is invalid.
pub fn to_event(
    value: serde_json::Value,
    defaults: &EventDefaults,
    now: i64,
) -> Result<Event, String> {
    // serde would also read a struct from an array of its fields: only objects are results.
    if !value.is_object() {
        return Err("a check result must be a JSON object".into());
    }
    let r = CheckResult::deserialize(value).map_err(|e| format!("invalid check result: {e}"))?;
    let name = r
        .name
        .filter(|n| !n.is_empty())
        .ok_or("a check result needs a name")?;
    let output = r.output.ok_or("a check result needs an output")?;
    let source = r.source.or(r.client).unwrap_or_default();
    let mut handlers = r.handlers.unwrap_or_default();
    if let Some(h) = r.handler.filter(|h| !h.is_empty())
        && !handlers.contains(&h)
    {
        handlers.push(h);
    }
    let event = Event {
        // An entity of another name becomes the check's proxy_entity_name in `prepare`.
        entity: (!source.is_empty()).then(|| Entity {
            metadata: ObjectMeta::new("", source),
            ..Default::default()
        }),
        check: Some(Check {
            config: CheckConfig {
                metadata: ObjectMeta::new("", name),
                command: r.command.unwrap_or_default(),
                subscriptions: r.subscribers.unwrap_or_default(),
                interval: r.interval.unwrap_or_default(),
                handlers,
                ..Default::default()
            },
            output,
            status: r.status.unwrap_or_default(),
            issued: r.issued.unwrap_or_default(),
            executed: r.executed.unwrap_or_default(),
            duration: r.duration.unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    };
    prepare(event, defaults, now)
}

/// What a TCP client's bytes so far amount to.
#[derive(Debug, PartialEq)]
pub enum Payload {
    /// A whole JSON value (bytes after it are ignored).
    Complete(serde_json::Value),
    /// A JSON value has begun (or nothing but whitespace came yet): read on.
    Incomplete,
    /// A health probe: answer `pong`.
    Ping,
    /// Not JSON and not a ping.
    Invalid(String),
}

pub fn classify(buf: &[u8]) -> Payload {
    let mut values = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    match values.next() {
        None => Payload::Incomplete,
        Some(Ok(v)) => Payload::Complete(v),
        Some(Err(e)) if e.is_eof() => Payload::Incomplete,
        Some(Err(e)) => {
            if is_ping(buf) {
                Payload::Ping
            } else {
                Payload::Invalid(e.to_string())
            }
        }
    }
}

/// Sensu 6 answers `pong` to a payload with ` ping ` surrounded by whitespace; Sensu 1.x
/// to `ping` alone. Both are accepted. Only non-JSON payloads are probes: a JSON check
/// result whose output mentions "ping" is a result.
pub fn is_ping(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    if text.trim() == "ping" {
        return true;
    }
    let words: Vec<&str> = text.split(char::is_whitespace).collect();
    // `split` yields an empty first/last piece when the text starts/ends with whitespace: a
    // "ping" with a piece on either side was surrounded by whitespace.
    words.len() >= 3 && words[1..words.len() - 1].contains(&"ping")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn defaults() -> EventDefaults {
        EventDefaults {
            agent_name: "web-1".into(),
            namespace: "default".into(),
            entity: Arc::new(|| Entity {
                metadata: ObjectMeta::new("default", "web-1"),
                entity_class: "agent".into(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn full_result() {
        let v = json!({
            "name": "backup", "output": "done", "status": 1, "source": "db-3",
            "command": "backup.sh", "subscribers": ["db"], "interval": 60, "issued": 10,
            "executed": 11, "duration": 1.5, "handlers": ["mail"], "handler": "pager",
            "custom": {"ignored": true}
        });
        let e = to_event(v, &defaults(), 100).unwrap();
        assert_eq!(e.entity_name(), "web-1");
        assert_eq!(e.timestamp, 100);
        let c = e.check.unwrap();
        assert_eq!(c.config.metadata.name, "backup");
        assert_eq!(c.config.metadata.namespace, "default");
        assert_eq!(c.config.proxy_entity_name, "db-3");
        assert_eq!(c.config.command, "backup.sh");
        assert_eq!(c.config.subscriptions, ["db"]);
        assert_eq!(c.config.interval, 60);
        assert_eq!(c.config.handlers, ["mail", "pager"]);
        assert_eq!((c.issued, c.executed, c.duration), (10, 11, 1.5));
        assert_eq!((c.status, c.output.as_str()), (1, "done"));
        assert_eq!(c.processed_by, "web-1");
    }

    #[test]
    fn minimal_result_and_legacy_client() {
        let e = to_event(json!({"name": "n", "output": ""}), &defaults(), 7).unwrap();
        let c = e.check.unwrap();
        assert_eq!((c.status, c.config.interval, c.executed), (0, 1, 7));
        assert_eq!(c.config.proxy_entity_name, "");
        let e = to_event(
            json!({"name": "n", "output": "x", "client": "web-1"}),
            &defaults(),
            7,
        )
        .unwrap();
        assert_eq!(e.check.unwrap().config.proxy_entity_name, "");
        let e = to_event(
            json!({"name": "n", "output": "x", "client": "sw-1"}),
            &defaults(),
            7,
        )
        .unwrap();
        assert_eq!(e.check.unwrap().config.proxy_entity_name, "sw-1");
    }

    #[test]
    fn invalid_results() {
        for v in [
            json!({"output": "x"}),
            json!({"name": "n"}),
            json!({"name": "", "output": "x"}),
            json!({"name": "bad name", "output": "x"}),
            json!({"name": "n", "output": "x", "status": -1}),
            json!({"name": "n", "output": "x", "status": "warning"}),
            json!({"name": "n", "output": "x", "source": "bad source!"}),
            json!(["name", "output"]),
            json!("text"),
        ] {
            assert!(to_event(v.clone(), &defaults(), 1).is_err(), "{v}");
        }
    }

    #[test]
    fn tcp_payloads() {
        assert_eq!(classify(b""), Payload::Incomplete);
        assert_eq!(classify(b"  \n"), Payload::Incomplete);
        assert_eq!(classify(br#"{"name": "a", "out"#), Payload::Incomplete);
        assert_eq!(
            classify(br#"{"name": "a"} trailing"#),
            Payload::Complete(json!({"name": "a"}))
        );
        assert_eq!(classify(b"ping"), Payload::Ping);
        assert_eq!(classify(b" ping \n"), Payload::Ping);
        assert_eq!(classify(b"hello ping there"), Payload::Ping);
        assert!(matches!(classify(b"pingpong"), Payload::Invalid(_)));
        assert!(matches!(classify(b"}"), Payload::Invalid(_)));
        // JSON mentioning ping is a result, not a probe.
        assert!(matches!(
            classify(br#"{"output": " ping "}"#),
            Payload::Complete(_)
        ));
    }
}
