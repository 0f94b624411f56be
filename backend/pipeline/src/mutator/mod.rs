//! Mutators (sensu-compat 3.3): the event becomes the bytes a handler receives.
//!
//! * `json` (also the empty name): the event's JSON, entity redacted.
//! * `only_check_output`: the raw `check.output` (an error for an event without a check).
//! * stored `pipe` mutators: `sh -c command`, stdin = the event's JSON, env = process env +
//!   `env_vars`; stdout and stderr together are the data; a non-zero exit or a timeout is an
//!   error.
//! * stored `javascript` mutators: `eval` run as a function body with `event` (and each
//!   `env_vars` entry) bound; a string result is the data, `undefined`/`null` the JSON of the
//!   (possibly modified) event, anything else an error.

mod javascript;

use std::time::Duration;

use proto_spec::v2::{Event, Mutator};

use crate::exec::{self, Execution};

pub use javascript::{check_eval_syntax, wrap_eval};

pub const JSON: &str = "json";
pub const ONLY_CHECK_OUTPUT: &str = "only_check_output";

/// Largest output a pipe mutator may produce.
pub const MAX_PIPE_OUTPUT: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MutatorError {
    #[error("mutator {0:?} not found")]
    NotFound(String),
    #[error("only_check_output: the event has no check")]
    NoCheck,
    #[error("mutator {name:?} could not run its command: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("mutator {name:?} exited with {status:?}: {output}")]
    Failed {
        name: String,
        status: Option<i32>,
        output: String,
    },
    #[error("mutator {name:?} timed out after {timeout:?}")]
    TimedOut { name: String, timeout: Duration },
    #[error("mutator {name:?}: {message}")]
    Javascript { name: String, message: String },
}

/// Whether `name` is the `json` mutator (the empty name included).
pub fn is_json(name: &str) -> bool {
    matches!(name, "" | JSON)
}

/// The event's JSON as handlers and mutators receive it (entity redacted). The event is
/// copied only when its entity still holds a value to redact.
pub fn event_json(event: &Event) -> Vec<u8> {
    // Near the usual size of an event, so serializing rarely grows the buffer.
    let mut out = Vec::with_capacity(2048);
    let written = match &event.entity {
        Some(entity) if crate::filter::needs_redaction(entity) => {
            let mut e = event.clone();
            e.entity = Some(entity.redacted());
            serde_json::to_writer(&mut out, &e)
        }
        _ => serde_json::to_writer(&mut out, event),
    };
    if written.is_err() {
        out.clear();
    }
    out
}

/// Apply mutator `name` (`definition` is the stored one, if any) to `event`.
pub async fn mutate(
    name: &str,
    definition: Option<&Mutator>,
    event: &Event,
) -> Result<Vec<u8>, MutatorError> {
    match name {
        "" | JSON => Ok(event_json(event)),
        ONLY_CHECK_OUTPUT => event
            .check
            .as_ref()
            .map(|c| c.output.clone().into_bytes())
            .ok_or(MutatorError::NoCheck),
        _ => {
            let Some(m) = definition else {
                return Err(MutatorError::NotFound(name.to_string()));
            };
            if m.is_javascript() {
                javascript::run(m, event).await
            } else {
                pipe(m, event).await
            }
        }
    }
}

async fn pipe(m: &Mutator, event: &Event) -> Result<Vec<u8>, MutatorError> {
    let name = m.metadata.name.clone();
    let timeout = (m.timeout > 0).then(|| Duration::from_secs(u64::from(m.timeout)));
    let input = event_json(event);
    let out = exec::run(Execution {
        command: &m.command,
        stdin: &input,
        env_vars: m.env_vars.as_deref().unwrap_or_default(),
        timeout,
        max_output: MAX_PIPE_OUTPUT,
    })
    .await
    .map_err(|source| MutatorError::Spawn {
        name: name.clone(),
        source,
    })?;
    if out.timed_out {
        return Err(MutatorError::TimedOut {
            name,
            timeout: timeout.unwrap_or_default(),
        });
    }
    if out.status != Some(0) {
        return Err(MutatorError::Failed {
            name,
            status: out.status,
            output: String::from_utf8_lossy(&out.output).into_owned(),
        });
    }
    Ok(out.output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_spec::ObjectMeta;
    use serde_json::{Value, json};

    fn event() -> Event {
        serde_json::from_value(json!({
            "entity": {"metadata": {"name": "web-1", "namespace": "default",
                       "labels": {"password": "hunter2"}}},
            "check": {"metadata": {"name": "cpu", "namespace": "default"},
                      "status": 2, "output": "CPU CRITICAL 99%\n"},
            "metadata": {"namespace": "default"}
        }))
        .unwrap()
    }

    fn stored(type_: &str, command: &str, eval: &str) -> Mutator {
        Mutator {
            metadata: ObjectMeta {
                name: "m".into(),
                namespace: "default".into(),
                ..Default::default()
            },
            type_: type_.into(),
            command: command.into(),
            eval: eval.into(),
            env_vars: Some(vec!["PREFIX=alert".into()]),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn json_redacts_and_only_check_output_is_raw() {
        let data = mutate("", None, &event()).await.unwrap();
        let v: Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(v["check"]["status"], 2);
        assert_eq!(v["entity"]["metadata"]["labels"]["password"], "REDACTED");
        assert_eq!(mutate("json", None, &event()).await.unwrap(), data);
        let out = mutate(ONLY_CHECK_OUTPUT, None, &event()).await.unwrap();
        assert_eq!(out, b"CPU CRITICAL 99%\n");
        let mut no_check = event();
        no_check.check = None;
        assert!(matches!(
            mutate(ONLY_CHECK_OUTPUT, None, &no_check).await,
            Err(MutatorError::NoCheck)
        ));
        assert!(matches!(
            mutate("ghost", None, &event()).await,
            Err(MutatorError::NotFound(_))
        ));
    }

    /// The json mutator skips the copy of an event whose entity needs no redaction, and
    /// writes the same bytes as serializing a redacted copy.
    #[test]
    fn event_json_is_the_redacted_event() {
        for labels in [
            json!({"password": "hunter2", "env": "prod"}),
            json!({"password": "REDACTED"}),
            json!({"env": "prod"}),
        ] {
            let mut e = event();
            e.entity.as_mut().unwrap().metadata.labels =
                serde_json::from_value(labels.clone()).unwrap();
            let mut copy = e.clone();
            copy.entity = copy.entity.as_ref().map(proto_spec::v2::Entity::redacted);
            assert_eq!(
                event_json(&e),
                serde_json::to_vec(&copy).unwrap(),
                "{labels}"
            );
        }
        let mut no_entity = event();
        no_entity.entity = None;
        assert_eq!(
            event_json(&no_entity),
            serde_json::to_vec(&no_entity).unwrap()
        );
    }

    #[tokio::test]
    async fn pipe_mutators_read_the_event_and_fail_on_non_zero_exit() {
        let m = stored(
            "pipe",
            "printf '%s:' \"$PREFIX\"; grep -o '\"status\":2'",
            "",
        );
        let out = mutate("m", Some(&m), &event()).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "alert:\"status\":2\n");
        let m = stored("pipe", "echo broken >&2; exit 4", "");
        let err = mutate("m", Some(&m), &event()).await.unwrap_err();
        assert!(err.to_string().contains("broken"), "{err}");
        let mut m = stored("pipe", "sleep 5", "");
        m.timeout = 1;
        assert!(matches!(
            mutate("m", Some(&m), &event()).await,
            Err(MutatorError::TimedOut { .. })
        ));
    }

    #[tokio::test]
    async fn javascript_mutators() {
        let m = stored(
            "javascript",
            "",
            "return PREFIX + ': ' + event.check.metadata.name;",
        );
        assert_eq!(
            mutate("m", Some(&m), &event()).await.unwrap(),
            b"alert: cpu"
        );

        let m = stored("javascript", "", "event.check.output = 'rewritten';");
        let v: Value =
            serde_json::from_slice(&mutate("m", Some(&m), &event()).await.unwrap()).unwrap();
        assert_eq!(v["check"]["output"], "rewritten");
        assert_eq!(v["check"]["status"], 2);

        let m = stored("javascript", "", "return 42;");
        assert!(matches!(
            mutate("m", Some(&m), &event()).await,
            Err(MutatorError::Javascript { .. })
        ));
        let m = stored("javascript", "", "return event.no.such;");
        assert!(matches!(
            mutate("m", Some(&m), &event()).await,
            Err(MutatorError::Javascript { .. })
        ));
        let mut m = stored("javascript", "", "while (true) {}");
        m.timeout = 1;
        assert!(matches!(
            mutate("m", Some(&m), &event()).await,
            Err(MutatorError::Javascript { .. })
        ));
        assert!(check_eval_syntax("return 1;").is_ok());
        assert!(check_eval_syntax("return (;").is_err());
    }
}
