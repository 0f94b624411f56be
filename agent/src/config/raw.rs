//! Stage one: what the user wrote, layer by layer (flags, env, file), merged by precedence.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::flags::{ALIASES, FLAGS, FlagDef, Kind, flag_def};
use super::{ConfigError, ENV_CONFIG_FILE, Host, Origin, Problem, env_var_name};
use Kind::{Bool, List, Map, Scalar};

/// A value as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawValue {
    Scalar(String),
    List(Vec<String>),
    Map(Vec<(String, String)>),
}

/// Stage one: the merged raw values of every flag, each with its origin.
#[derive(Debug, Clone)]
pub struct RawConfig {
    pub values: BTreeMap<&'static str, (RawValue, Origin)>,
    pub config_file: Option<PathBuf>,
    pub warnings: Vec<String>,
    /// Problems found while reading the layers, reported with the validation's.
    pub problems: Vec<Problem>,
}

type Layer = BTreeMap<&'static str, (RawValue, Origin)>;

impl RawConfig {
    pub(super) fn collect(
        m: &clap::ArgMatches,
        env: &HashMap<String, String>,
        host: &Host,
    ) -> Result<RawConfig, ConfigError> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();

        let flags = flag_layer(m, &mut problems, &mut warnings);
        let env_layer = env_layer(env, &mut problems);

        let explicit = m
            .get_one::<String>("config-file")
            .cloned()
            .or_else(|| env.get(ENV_CONFIG_FILE).cloned());
        let (config_file, file_layer) = match explicit {
            // An explicitly empty path means "no config file", not even the default one.
            Some(path) if path.is_empty() => (None, Layer::new()),
            Some(path) => {
                let path = PathBuf::from(path);
                let layer = file_layer(&path, &mut problems, &mut warnings);
                (Some(path), layer)
            }
            None if host.default_config_file.is_file() => {
                let path = host.default_config_file.clone();
                let layer = file_layer(&path, &mut problems, &mut warnings);
                (Some(path), layer)
            }
            None => (None, Layer::new()),
        };

        // Layer problems (unknown file keys, bad JSON in env) are reported together with the
        // validation problems; the faulty values are simply absent from the merge.
        let mut values = BTreeMap::new();
        for def in FLAGS {
            let chosen = flags
                .get(def.name)
                .or_else(|| env_layer.get(def.name))
                .or_else(|| file_layer.get(def.name))
                .cloned()
                .unwrap_or_else(|| (default_value(def), Origin::Default));
            values.insert(def.name, chosen);
        }
        Ok(RawConfig {
            values,
            config_file,
            warnings,
            problems,
        })
    }

    pub(super) fn get(&self, key: &str) -> &(RawValue, Origin) {
        // Every FLAGS entry is inserted by `collect`; the table is the only source of keys.
        self.values.get(key).expect("every flag has a merged value")
    }

    pub(super) fn is_default(&self, key: &str) -> bool {
        self.get(key).1 == Origin::Default
    }
}

fn default_value(def: &FlagDef) -> RawValue {
    match def.kind {
        Bool | Scalar => RawValue::Scalar(def.default.to_string()),
        List => RawValue::List(split_list(def.default)),
        Map => RawValue::List(split_list(def.default)),
    }
}

pub(super) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

fn flag_layer(
    m: &clap::ArgMatches,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) -> Layer {
    let read = |name: &str, kind: Kind| -> Option<RawValue> {
        let mut vals: Vec<String> = m.get_many::<String>(name)?.cloned().collect();
        Some(match kind {
            Bool | Scalar => RawValue::Scalar(vals.pop().unwrap_or_default()),
            List | Map => {
                RawValue::List(vals.into_iter().filter(|v| !v.trim().is_empty()).collect())
            }
        })
    };
    let mut layer = Layer::new();
    for def in FLAGS {
        if let Some(v) = read(def.name, def.kind) {
            layer.insert(def.name, (v, Origin::Flag));
        }
    }
    for (alias, canonical) in ALIASES {
        let Some(def) = flag_def(canonical) else {
            continue;
        };
        let Some(v) = read(alias, def.kind) else {
            continue;
        };
        if layer.contains_key(def.name) {
            problems.push(Problem {
                key: Some(def.name.to_string()),
                origin: Origin::Flag,
                message: format!(
                    "both --{alias} (deprecated) and --{canonical} are set; keep only --{canonical}"
                ),
            });
        } else {
            warnings.push(format!("flag --{alias} is deprecated; use --{canonical}"));
            layer.insert(def.name, (v, Origin::Flag));
        }
    }
    layer
}

fn env_layer(env: &HashMap<String, String>, problems: &mut Vec<Problem>) -> Layer {
    let mut layer = Layer::new();
    for def in FLAGS {
        let var = env_var_name(def.name);
        let Some(text) = env.get(&var) else { continue };
        let origin = Origin::Env(var);
        let value = match def.kind {
            Bool | Scalar => RawValue::Scalar(text.clone()),
            // Names and URLs contain neither commas nor spaces: accept both as separators.
            List => RawValue::List(
                text.split([',', ' ', '\t', '\n'])
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            ),
            // Sensu documents JSON objects for map env vars (`SENSU_LABELS='{"k": "v"}'`);
            // `k=v,k2=v2` works too.
            Map if text.trim_start().starts_with('{') => {
                match serde_json::from_str::<BTreeMap<String, String>>(text) {
                    Ok(map) => RawValue::Map(map.into_iter().collect()),
                    Err(e) => {
                        problems.push(Problem {
                            key: Some(def.name.to_string()),
                            origin,
                            message: format!("invalid JSON object of strings: {e}"),
                        });
                        continue;
                    }
                }
            }
            Map => RawValue::List(split_list(text)),
        };
        layer.insert(def.name, (value, origin));
    }
    layer
}

fn file_layer(path: &Path, problems: &mut Vec<Problem>, warnings: &mut Vec<String>) -> Layer {
    let mut layer = Layer::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem {
                key: None,
                origin: Origin::Default,
                message: format!("cannot read config file {}: {e}", path.display()),
            });
            return layer;
        }
    };
    let doc: serde_norway::Value = if text.trim().is_empty() {
        serde_norway::Value::Null
    } else {
        match serde_norway::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(Problem {
                    key: None,
                    origin: Origin::Default,
                    message: format!("config file {} is not valid YAML: {e}", path.display()),
                });
                return layer;
            }
        }
    };
    let mapping = match doc {
        serde_norway::Value::Null => return layer,
        serde_norway::Value::Mapping(m) => m,
        _ => {
            problems.push(Problem {
                key: None,
                origin: Origin::Default,
                message: format!(
                    "config file {} must be a mapping of flag names to values",
                    path.display()
                ),
            });
            return layer;
        }
    };
    for (k, v) in mapping {
        let key = match k {
            serde_norway::Value::String(s) => s,
            other => scalar_text(&other).unwrap_or_else(|| "?".to_string()),
        };
        let origin = Origin::File {
            path: path.to_path_buf(),
            key: key.clone(),
        };
        let mut problem = |message: String| {
            problems.push(Problem {
                key: Some(key.clone()),
                origin: origin.clone(),
                message,
            })
        };
        let def = match flag_def(&key) {
            Some(d) => d,
            None => match ALIASES.iter().find(|(a, _)| *a == key) {
                Some((alias, canonical)) => {
                    warnings.push(format!(
                        "config file key {alias:?} is deprecated; use {canonical:?}"
                    ));
                    flag_def(canonical).expect("aliases name existing flags")
                }
                None if key == "config-file" => {
                    problem("config-file cannot be set inside a config file".to_string());
                    continue;
                }
                None => {
                    problem(format!(
                        "unknown key {key:?} in config file {}",
                        path.display()
                    ));
                    continue;
                }
            },
        };
        if layer.contains_key(def.name) {
            problem(format!(
                "{} is set twice (directly and through a deprecated alias)",
                def.name
            ));
            continue;
        }
        let value = match (def.kind, v) {
            (_, serde_norway::Value::Null) => continue,
            (Bool | Scalar, v) => match scalar_text(&v) {
                Some(s) => RawValue::Scalar(s),
                None => {
                    problem("expected a single value".to_string());
                    continue;
                }
            },
            (List | Map, serde_norway::Value::Sequence(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match scalar_text(&item) {
                        Some(s) => out.push(s),
                        None => problem("list items must be single values".to_string()),
                    }
                }
                RawValue::List(out)
            }
            (Map, serde_norway::Value::Mapping(m)) => {
                let mut out = Vec::new();
                for (mk, mv) in m {
                    match (scalar_text(&mk), scalar_text(&mv)) {
                        (Some(a), Some(b)) => out.push((a, b)),
                        _ => problem("map keys and values must be single values".to_string()),
                    }
                }
                RawValue::Map(out)
            }
            (List | Map, v) => match scalar_text(&v) {
                Some(s) => RawValue::List(split_list(&s)),
                None => {
                    problem("expected a list".to_string());
                    continue;
                }
            },
        };
        layer.insert(def.name, (value, origin));
    }
    layer
}

fn scalar_text(v: &serde_norway::Value) -> Option<String> {
    match v {
        serde_norway::Value::String(s) => Some(s.clone()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        serde_norway::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
