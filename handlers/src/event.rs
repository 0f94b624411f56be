//! The event a handler receives: Sensu's event JSON on stdin (sensu-compat 1.6), kept as a
//! `serde_json::Value` so that fields this crate does not know (newer Sensu versions,
//! extended attributes) pass through to templates and custom details untouched.

use std::io::Read;

use serde_json::Value;

use crate::{Error, Result};

/// Larger events are refused rather than buffered without bound (the backend caps check
/// output well below this).
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Read and parse the whole of `input`.
pub fn read(input: impl Read) -> Result<Value> {
    let mut buf = Vec::new();
    let limit = u64::try_from(MAX_EVENT_BYTES).unwrap_or(u64::MAX) + 1;
    input
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(Error::Stdin)?;
    if buf.len() > MAX_EVENT_BYTES {
        return Err(Error::EventTooLarge(MAX_EVENT_BYTES));
    }
    let event: Value = serde_json::from_slice(&buf).map_err(Error::EventJson)?;
    if !event.is_object() {
        return Err(Error::Config(
            "the event on stdin is not a JSON object".into(),
        ));
    }
    Ok(event)
}

/// `entity.metadata.name`, which every valid event has.
pub fn entity_name(event: &Value) -> Result<&str> {
    event["entity"]["metadata"]["name"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or(Error::MissingField("entity.metadata.name"))
}

/// `check.metadata.name`, if the event has a check.
pub fn check_name(event: &Value) -> Option<&str> {
    event["check"]["metadata"]["name"]
        .as_str()
        .filter(|s| !s.is_empty())
}

/// `check.status` (0 when absent, as Go decodes it).
pub fn status(event: &Value) -> u64 {
    event["check"]["status"].as_u64().unwrap_or(0)
}

/// Sensu's `is_resolution`: the check is OK now and its previous result was not.
pub fn is_resolution(event: &Value) -> bool {
    let history = event["check"]["history"].as_array();
    let previous = history
        .filter(|h| h.len() >= 2)
        .and_then(|h| h[h.len() - 2]["status"].as_u64());
    status(event) == 0 && previous.is_some_and(|s| s != 0)
}

/// The event's time in Unix seconds: `check.executed`, else `timestamp`.
pub fn time(event: &Value) -> Option<i64> {
    event["check"]["executed"]
        .as_i64()
        .filter(|t| *t > 0)
        .or_else(|| event["timestamp"].as_i64().filter(|t| *t > 0))
}

/// Status names as Sensu's notification handlers print them.
pub fn status_name(status: u64) -> &'static str {
    match status {
        0 => "OK",
        1 => "WARNING",
        2 => "CRITICAL",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuses_what_is_not_an_event() {
        assert!(matches!(read(&b"{"[..]), Err(Error::EventJson(_))));
        assert!(matches!(read(&b"[1]"[..]), Err(Error::Config(_))));
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(matches!(read(&big[..]), Err(Error::EventTooLarge(_))));
        let e = read(&br#"{"entity": {"metadata": {}}}"#[..]).unwrap();
        assert!(matches!(entity_name(&e), Err(Error::MissingField(_))));
    }

    #[test]
    fn resolution_needs_a_previous_failure() {
        let e = |statuses: &[u64]| {
            let history: Vec<_> = statuses.iter().map(|s| json!({"status": s})).collect();
            json!({"check": {"status": statuses.last(), "history": history}})
        };
        assert!(is_resolution(&e(&[2, 0])));
        assert!(!is_resolution(&e(&[0, 0])));
        assert!(!is_resolution(&e(&[0])));
        assert!(!is_resolution(&e(&[0, 2])));
    }
}
