//! The command allow list (`--allow-list`, sensu-compat 4.1 and 5.9): with one configured, a
//! check runs only when an entry allows its command.
//!
//! The file (YAML or JSON) is an array of `{exec, args, sha512, enable_env}`; `exec` and `args`
//! are required. A command matches an entry when removing `exec` and then each of `args` (the
//! first occurrence of each) leaves only whitespace. With `sha512` set, the executable that
//! `exec` resolves to (through the command's `PATH`, assets included) must have that digest.
//! `enable_env: false` drops the check's `env_vars`. A denied check reports status 3, or the
//! status in its annotation `allow_list_on_deny_status`, with the output
//! [`DENIED_OUTPUT`]. Hooks are not checked against the list.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The output of a denied check (Sensu's text).
pub const DENIED_OUTPUT: &str = "check command denied by the agent allow list";

/// Check annotation naming the status of a denied check.
pub const DENY_STATUS_ANNOTATION: &str = "allow_list_on_deny_status";

/// One allow list entry, as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    pub exec: String,
    pub args: Vec<String>,
    #[serde(default)]
    pub sha512: String,
    #[serde(default)]
    pub enable_env: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowList {
    entries: Vec<AllowEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum AllowListError {
    #[error("cannot read the allow list {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid allow list {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// What the allow list says about a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; `enable_env` of the matching entry.
    Allowed {
        enable_env: bool,
    },
    Denied,
}

impl AllowList {
    pub fn new(entries: Vec<AllowEntry>) -> AllowList {
        AllowList { entries }
    }

    /// Read a `.json`, `.yml` or `.yaml` file.
    pub fn load(path: &Path) -> Result<AllowList, AllowListError> {
        let text = std::fs::read_to_string(path).map_err(|source| AllowListError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parse_err = |message: String| AllowListError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let entries: Vec<AllowEntry> = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| parse_err(e.to_string()))?
        } else {
            serde_norway::from_str(&text).map_err(|e| parse_err(e.to_string()))?
        };
        for (i, e) in entries.iter().enumerate() {
            if e.exec.trim().is_empty() {
                return Err(parse_err(format!("entry {i}: exec must be set")));
            }
            if !e.sha512.is_empty() && assetfetch::digest_key(&e.sha512).is_err() {
                return Err(parse_err(format!(
                    "entry {i}: sha512 must be 128 hexadecimal characters"
                )));
            }
        }
        Ok(AllowList { entries })
    }

    /// The verdict for `command`, whose executable is looked up in `path` (the command's
    /// `PATH`) when an entry pins a digest.
    pub fn check(&self, command: &str, path: Option<&OsString>) -> Verdict {
        verdict(&self.candidates(command), path)
    }

    /// The entries whose `exec` and `args` match `command` (no digest checked yet). Empty
    /// means denied, before any asset is fetched for the command.
    pub fn candidates(&self, command: &str) -> Vec<&AllowEntry> {
        self.entries
            .iter()
            .filter(|e| matches(e, command))
            .collect()
    }
}

/// The first candidate whose pinned digest (if any) matches the executable found in `path`.
pub fn verdict(candidates: &[&AllowEntry], path: Option<&OsString>) -> Verdict {
    for e in candidates {
        if !e.sha512.is_empty() {
            let digest = resolve(&e.exec, path).and_then(|p| assetfetch::sha512_file(&p).ok());
            if !digest.is_some_and(|d| d.eq_ignore_ascii_case(&e.sha512)) {
                tracing::warn!(exec = %e.exec, "Allow list: the executable's sha512 does not match");
                continue;
            }
        }
        return Verdict::Allowed {
            enable_env: e.enable_env,
        };
    }
    Verdict::Denied
}

fn matches(e: &AllowEntry, command: &str) -> bool {
    let Some(rest) = remove_first(command, &e.exec) else {
        return false;
    };
    let mut rest = rest;
    for arg in &e.args {
        match remove_first(&rest, arg) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.trim().is_empty()
}

fn remove_first(s: &str, part: &str) -> Option<String> {
    if part.is_empty() {
        return Some(s.to_string());
    }
    let at = s.find(part)?;
    Some(format!("{}{}", &s[..at], &s[at + part.len()..]))
}

/// `exec` as a path when it has a slash, else the first executable file of that name in `path`.
fn resolve(exec: &str, path: Option<&OsString>) -> Option<PathBuf> {
    if exec.contains('/') {
        return Some(PathBuf::from(exec));
    }
    std::env::split_paths(path?)
        .map(|d| d.join(exec))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(exec: &str, args: &[&str]) -> AllowEntry {
        AllowEntry {
            exec: exec.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            sha512: String::new(),
            enable_env: false,
        }
    }

    #[test]
    fn a_command_matches_when_exec_and_args_are_all_it_holds() {
        let list = AllowList::new(vec![entry("check_http", &["-H", "localhost"])]);
        let allowed = Verdict::Allowed { enable_env: false };
        assert_eq!(list.check("check_http -H localhost", None), allowed);
        assert_eq!(list.check("  check_http   -H localhost ", None), allowed);
        assert_eq!(
            list.check("check_http -H localhost; rm -rf /", None),
            Verdict::Denied
        );
        assert_eq!(list.check("check_http -H", None), Verdict::Denied);
        assert_eq!(list.check("check_disk", None), Verdict::Denied);
        assert_eq!(AllowList::default().check("true", None), Verdict::Denied);
    }

    #[test]
    fn a_pinned_digest_must_match_the_resolved_executable() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("tool");
        std::fs::write(&exe, b"#!/bin/sh\necho ok\n").unwrap();
        let digest = assetfetch::sha512_file(&exe).unwrap();
        let path: OsString = format!("/nonexistent:{}", tmp.path().display()).into();
        let mut e = entry("tool", &[]);
        e.sha512 = digest.to_ascii_uppercase();
        e.enable_env = true;
        let list = AllowList::new(vec![e.clone()]);
        assert_eq!(
            list.check("tool", Some(&path)),
            Verdict::Allowed { enable_env: true }
        );
        std::fs::write(&exe, b"#!/bin/sh\necho tampered\n").unwrap();
        assert_eq!(list.check("tool", Some(&path)), Verdict::Denied);
        assert_eq!(list.check("tool", None), Verdict::Denied);
    }

    #[test]
    fn loads_yaml_and_json_and_reports_bad_files() {
        let tmp = tempfile::tempdir().unwrap();
        let yml = tmp.path().join("allow.yml");
        std::fs::write(
            &yml,
            "- exec: check_http\n  args: [\"-H\"]\n  enable_env: true\n",
        )
        .unwrap();
        let list = AllowList::load(&yml).unwrap();
        assert_eq!(list.entries.len(), 1);
        let json = tmp.path().join("allow.json");
        std::fs::write(&json, r#"[{"exec": "x", "args": [], "sha512": "abc"}]"#).unwrap();
        let err = AllowList::load(&json).unwrap_err().to_string();
        assert!(err.contains("sha512"), "{err}");
        std::fs::write(&json, r#"[{"exec": "x"}]"#).unwrap();
        let err = AllowList::load(&json).unwrap_err().to_string();
        assert!(err.contains("args"), "{err}");
    }
}
