//! PagerDuty Events API v2 (`POST /v2/enqueue`): a failing check triggers an alert, status 0
//! resolves it; both carry the same dedup key, rendered per entity and check, so PagerDuty
//! keeps one incident per entity/check as Sensu's `sensu-pagerduty-handler` does.

use serde_json::{Value, json};

use crate::event;
use crate::template;
use crate::{Error, Result};

pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// Sensu's default dedup key: one incident per entity and check.
pub const DEFAULT_DEDUP_KEY: &str = "{{ .Entity.Name }}-{{ .Check.Name }}";
pub const DEFAULT_SUMMARY: &str = "{{ .Entity.Name }}/{{ .Check.Name }} : {{ .Check.Output }}";
/// PagerDuty's limit on `payload.summary`.
const MAX_SUMMARY_CHARS: usize = 1024;
/// PagerDuty's limit on `dedup_key`.
const MAX_DEDUP_KEY_CHARS: usize = 255;

#[derive(Debug, Clone)]
pub struct Options {
    /// The integration's routing key (Sensu's `--token`).
    pub routing_key: String,
    pub dedup_key_template: String,
    pub summary_template: String,
}

/// The Events API v2 body for `event`.
pub fn payload(event: &Value, options: &Options, now: i64) -> Result<Value> {
    if options.routing_key.trim().is_empty() {
        return Err(Error::Config("the routing key (--token) is empty".into()));
    }
    let entity = event::entity_name(event)?;
    let check = event::check_name(event).ok_or(Error::MissingField("check"))?;
    let dedup_key = template::render(&options.dedup_key_template, event, "dedup key")?;
    if dedup_key.trim().is_empty() || dedup_key.chars().count() > MAX_DEDUP_KEY_CHARS {
        return Err(Error::Config(format!(
            "the dedup key {dedup_key:?} is empty or longer than {MAX_DEDUP_KEY_CHARS} characters"
        )));
    }
    let status = event::status(event);
    if status == 0 {
        return Ok(json!({
            "routing_key": options.routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        }));
    }
    let mut summary = template::render(&options.summary_template, event, "summary")?;
    if summary.chars().count() > MAX_SUMMARY_CHARS {
        summary = summary
            .chars()
            .take(MAX_SUMMARY_CHARS - 3)
            .collect::<String>()
            + "...";
    }
    let severity = match status {
        1 => "warning",
        2 => "critical",
        _ => "error",
    };
    let time = event::time(event).unwrap_or(now);
    Ok(json!({
        "routing_key": options.routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": summary,
            "source": entity,
            "severity": severity,
            "timestamp": crate::datetime::rfc3339(time),
            "component": check,
            "group": event["entity"]["metadata"]["namespace"],
            "custom_details": {
                "status": status,
                "output": event["check"]["output"],
                "occurrences": event["check"]["occurrences"],
                "state": event["check"]["state"],
                "entity_labels": event["entity"]["metadata"]["labels"],
                "check_labels": event["check"]["metadata"]["labels"],
            },
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            routing_key: "R0UT1NG".into(),
            dedup_key_template: DEFAULT_DEDUP_KEY.into(),
            summary_template: DEFAULT_SUMMARY.into(),
        }
    }

    #[test]
    fn trigger_then_resolve_with_one_dedup_key() {
        let mut event = json!({
            "entity": {"metadata": {"name": "db-1", "namespace": "default"}},
            "check": {"metadata": {"name": "disk"}, "status": 1, "output": "90% full",
                      "executed": 1700000000},
        });
        let t = payload(&event, &options(), 0).unwrap();
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(t["dedup_key"], "db-1-disk");
        assert_eq!(t["payload"]["severity"], "warning");
        assert_eq!(t["payload"]["summary"], "db-1/disk : 90% full");
        assert_eq!(t["payload"]["timestamp"], "2023-11-14T22:13:20Z");
        event["check"]["status"] = json!(0);
        let r = payload(&event, &options(), 0).unwrap();
        assert_eq!(r["event_action"], "resolve");
        assert_eq!(r["dedup_key"], t["dedup_key"]);
        assert!(r.get("payload").is_none());
    }

    #[test]
    fn empty_key_and_metric_only_events_are_refused() {
        let event = json!({"entity": {"metadata": {"name": "db-1"}}, "metrics": {"points": []}});
        assert!(matches!(
            payload(&event, &options(), 0),
            Err(Error::MissingField("check"))
        ));
        let mut o = options();
        o.routing_key = " ".into();
        assert!(payload(&event, &o, 0).is_err());
    }
}
