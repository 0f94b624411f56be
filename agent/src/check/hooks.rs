//! Check hooks (sensu-compat 4.1 and 1.11): commands run after a check, chosen by its status,
//! whose results travel in the event as `check.hooks`.

use proto_spec::ObjectMeta;
use proto_spec::v2::{CheckConfig, CheckRequest, Event, Hook, HookConfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::execute::{Execution, execute, merge_env};
use super::{tokens, unix_now};
use crate::assets::Assets;

/// Output kept per hook: several hooks share the event's 1 MiB frame with the check output.
pub const MAX_HOOK_OUTPUT_BYTES: usize = 128 * 1024;

/// Timeout of the stand-in that reports a missing or unusable hook (Sensu's value).
pub const ERROR_HOOK_TIMEOUT: u32 = 5;

/// Whether a `check_hooks` type selects a status: `"<n>"` exactly, `non-zero`, `ok` (0),
/// `warning` (1), `critical` (2), `unknown` (above 2).
pub fn hook_type_matches(hook_type: &str, status: u32) -> bool {
    match hook_type {
        "non-zero" => status != 0,
        "ok" => status == 0,
        "warning" => status == 1,
        "critical" => status == 2,
        "unknown" => status > 2,
        n => n == status.to_string(),
    }
}

/// The hooks to run for `status`, in `check_hooks` order, each name once (a hook listed under
/// both `2` and `critical` runs once).
pub fn hooks_for_status(config: &CheckConfig, status: u32) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for list in config.check_hooks() {
        if !hook_type_matches(&list.type_, status) {
            continue;
        }
        for name in list.hooks() {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    names
}

/// Run the hooks that `status` selects, with the definitions the request carries. `event` is
/// the result so far (written to a hook's stdin when it asks); `data` is the synthesized
/// entity for token substitution. `None` when the agent shut down meanwhile.
pub async fn run_hooks(
    request: &CheckRequest,
    config: &CheckConfig,
    status: u32,
    event: &Event,
    data: &Value,
    assets: &Assets,
    cancel: &CancellationToken,
) -> Option<Vec<Hook>> {
    let names = hooks_for_status(config, status);
    if names.is_empty() {
        return Some(Vec::new());
    }
    let event_json = serde_json::to_vec(event).unwrap_or_default();
    let definitions = request.hooks.as_deref().unwrap_or_default();
    let mut results = Vec::with_capacity(names.len());
    for name in names {
        // The hook's assets come with the request, per hook (`hook_assets`).
        let wanted = definitions
            .iter()
            .find(|h| h.metadata.name == name)
            .and_then(|h| h.runtime_assets.as_deref())
            .unwrap_or_default();
        let offered = request
            .hook_assets
            .as_ref()
            .and_then(|m| m.get(name))
            .and_then(|l| l.assets.as_deref())
            .unwrap_or_default();
        let asset_env = assets.environment(offered, wanted, data).await;
        let (reported, ex) = prepare(
            name,
            definitions,
            &config.metadata.namespace,
            data,
            &event_json,
            asset_env,
        );
        let executed = unix_now();
        let outcome = execute(&ex, cancel).await;
        if outcome.cancelled {
            return None;
        }
        results.push(Hook {
            config: reported,
            duration: outcome.duration,
            executed,
            issued: request.issued,
            output: outcome.output,
            status: i32::try_from(outcome.status).unwrap_or(i32::MAX),
        });
    }
    Some(results)
}

/// The definition to report for hook `name` and what to execute for it. A missing, invalid or
/// unsubstitutable hook runs a stand-in that prints the problem and exits 2 (Sensu's
/// `errorHookConfig`), so the event shows why; the reported definition keeps the operator's
/// unsubstituted command.
fn prepare(
    name: &str,
    definitions: &[HookConfig],
    namespace: &str,
    data: &Value,
    event_json: &[u8],
    asset_env: Result<Vec<String>, String>,
) -> (HookConfig, Execution) {
    let Some(def) = definitions.iter().find(|h| h.metadata.name == name) else {
        let stand_in = HookConfig {
            metadata: ObjectMeta::new(namespace, name),
            command: error_command(name, "missing hook config"),
            timeout: ERROR_HOOK_TIMEOUT,
            stdin: false,
            runtime_assets: None,
        };
        let ex = execution(&stand_in, event_json);
        return (stand_in, ex);
    };
    let problem = if let Err(e) = def.validate() {
        Some(format!("hook {name:?} is invalid: {e}"))
    } else if let Err(reason) = &asset_env {
        Some(reason.clone())
    } else {
        match tokens::substitute_hook(def, data) {
            Ok(substituted) => {
                let mut ex = execution(&substituted, event_json);
                let asset_env = asset_env.unwrap_or_default();
                ex.env = merge_env(|k| std::env::var_os(k), &[&asset_env]);
                return (def.clone(), ex);
            }
            Err(e) => Some(format!(
                "hook {name:?}: error doing token substitution: {e}"
            )),
        }
    };
    let stand_in = HookConfig {
        command: error_command(name, problem.as_deref().unwrap_or_default()),
        timeout: ERROR_HOOK_TIMEOUT,
        stdin: false,
        ..def.clone()
    };
    (def.clone(), execution(&stand_in, event_json))
}

fn execution(hook: &HookConfig, event_json: &[u8]) -> Execution {
    // Hooks get the agent's environment only: not the check's env_vars (Sensu).
    let mut ex = Execution::new(&hook.command).with_timeout_secs(hook.timeout);
    ex.stdin = hook.stdin.then(|| event_json.to_vec());
    ex.max_output = MAX_HOOK_OUTPUT_BYTES;
    ex
}

/// `echo 'hook <name>: <problem>'; exit 2`, with the text single-quoted safely (Sensu pasted
/// it in unquoted, so a quote in an error message broke the command).
fn error_command(name: &str, problem: &str) -> String {
    let text = format!("hook {name}: {problem}").replace('\'', r"'\''");
    format!("echo '{text}'; exit 2")
}

#[cfg(test)]
mod tests {
    use proto_spec::v2::HookList;

    use super::*;

    #[test]
    fn hook_types() {
        // (type, status, runs)
        let cases: &[(&str, u32, bool)] = &[
            ("ok", 0, true),
            ("ok", 1, false),
            ("warning", 1, true),
            ("warning", 2, false),
            ("critical", 2, true),
            ("critical", 3, false),
            ("unknown", 3, true),
            ("unknown", 127, true),
            ("unknown", 2, false),
            ("unknown", 0, false),
            ("non-zero", 0, false),
            ("non-zero", 1, true),
            ("non-zero", 255, true),
            ("0", 0, true),
            ("1", 1, true),
            ("1", 2, false),
            ("127", 127, true),
            ("42", 4, false),
        ];
        for (ty, status, runs) in cases {
            assert_eq!(hook_type_matches(ty, *status), *runs, "{ty} {status}");
        }
    }

    fn config(lists: &[(&str, &[&str])]) -> CheckConfig {
        CheckConfig {
            check_hooks: Some(
                lists
                    .iter()
                    .map(|(ty, hooks)| HookList {
                        type_: ty.to_string(),
                        hooks: Some(hooks.iter().map(|h| h.to_string()).collect()),
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn selection_is_ordered_and_unique() {
        let c = config(&[
            ("2", &["ps", "df"]),
            ("critical", &["df", "netstat"]),
            ("non-zero", &["ps", "last"]),
            ("ok", &["never"]),
        ]);
        assert_eq!(hooks_for_status(&c, 2), ["ps", "df", "netstat", "last"]);
        assert_eq!(hooks_for_status(&c, 1), ["ps", "last"]);
        assert_eq!(hooks_for_status(&c, 0), ["never"]);
        assert!(hooks_for_status(&CheckConfig::default(), 2).is_empty());
    }

    #[test]
    fn stand_in_commands_quote_their_text() {
        assert_eq!(
            error_command("ps", "missing hook config"),
            "echo 'hook ps: missing hook config'; exit 2"
        );
        assert_eq!(
            error_command("ps", "it's broken"),
            r"echo 'hook ps: it'\''s broken'; exit 2"
        );
    }

    #[test]
    fn preparation() {
        let data = serde_json::json!({"name": "web-1", "labels": {}});
        let good = HookConfig {
            metadata: ObjectMeta::new("default", "good"),
            command: "echo {{ .name }}".into(),
            timeout: 10,
            stdin: true,
            runtime_assets: None,
        };
        let no_timeout = HookConfig {
            metadata: ObjectMeta::new("default", "no-timeout"),
            timeout: 0,
            ..good.clone()
        };
        let bad_token = HookConfig {
            metadata: ObjectMeta::new("default", "bad-token"),
            command: "echo {{ .labels.nope }}".into(),
            ..good.clone()
        };
        let assets = HookConfig {
            metadata: ObjectMeta::new("default", "assets"),
            runtime_assets: Some(vec!["tool".into()]),
            ..good.clone()
        };
        let defs = [good.clone(), no_timeout, bad_token.clone(), assets];

        let (reported, ex) = prepare("good", &defs, "default", &data, b"{}", Ok(Vec::new()));
        assert_eq!(reported, good);
        assert_eq!(ex.command, "echo web-1");
        assert_eq!(ex.stdin.as_deref(), Some(&b"{}"[..]));
        assert_eq!(ex.timeout, Some(std::time::Duration::from_secs(10)));

        let (reported, ex) = prepare("missing", &defs, "default", &data, b"{}", Ok(Vec::new()));
        assert_eq!(reported.metadata, ObjectMeta::new("default", "missing"));
        assert_eq!(
            ex.command,
            "echo 'hook missing: missing hook config'; exit 2"
        );
        assert_eq!(reported.command, ex.command);
        assert_eq!(ex.timeout, Some(std::time::Duration::from_secs(5)));
        assert!(ex.stdin.is_none());

        let (_, ex) = prepare("no-timeout", &defs, "default", &data, b"{}", Ok(Vec::new()));
        assert!(
            ex.command
                .starts_with("echo 'hook no-timeout: hook \"no-timeout\" is invalid: "),
            "{}",
            ex.command
        );

        let (reported, ex) = prepare("bad-token", &defs, "default", &data, b"{}", Ok(Vec::new()));
        // The report keeps the definition as written; the stand-in says what went wrong.
        assert_eq!(reported, bad_token);
        assert!(
            ex.command
                .contains("error doing token substitution: unmatched token"),
            "{}",
            ex.command
        );

        let (_, ex) = prepare(
            "assets",
            &defs,
            "default",
            &data,
            b"{}",
            Err("error getting assets for check: rate limited".into()),
        );
        assert!(
            ex.command
                .contains("hook assets: error getting assets for check: rate limited"),
            "{}",
            ex.command
        );
        let (_, ex) = prepare(
            "good",
            &defs,
            "default",
            &data,
            b"{}",
            Ok(vec![
                "PATH=/cache/abc/bin".into(),
                "TOOL_PATH=/cache/abc".into(),
            ]),
        );
        let path = ex.env.iter().find(|(k, _)| k == "PATH").unwrap();
        assert!(path.1.starts_with("/cache/abc/bin"), "{path:?}");
        assert!(ex.env.contains(&("TOOL_PATH".into(), "/cache/abc".into())));
    }
}
