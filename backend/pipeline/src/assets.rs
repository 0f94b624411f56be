//! Assets on the backend side (sensu-compat 5.9).
//!
//! **Build selection** ([`select`], [`select_request`]): an asset with `builds` is replaced by
//! its first build whose filters all hold for an entity; an asset without builds is kept when
//! its own filters hold (no filters: kept); nothing selected: the asset is left out. Filters
//! are JavaScript (variable `entity`, the synthesized entity of token substitution); one that
//! fails to evaluate counts as false. The backend does this for each agent before a check
//! request leaves, so the agent needs no JavaScript engine, and for itself before running a
//! handler's or mutator's assets.
//!
//! **Pipeline assets** ([`PipelineAssets`]): a pipe handler's or mutator's `runtime_assets`
//! are installed in the backend's asset cache and their environment added to the command's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use assetfetch::{AssetCache, AssetSource, InstalledAsset};
use jsexpr::{Engine, Limits};
use proto_spec::tokens;
use proto_spec::v2::{Asset, AssetList, CheckRequest};
use serde_json::{Value, json};

/// Whether any asset of the request has builds or filters, i.e. needs [`select_request`].
pub fn needs_selection(request: &CheckRequest) -> bool {
    let selective =
        |a: &Asset| !a.builds().is_empty() || a.filters.as_ref().is_some_and(|f| !f.is_empty());
    request.assets.iter().flatten().any(selective)
        || request
            .hook_assets
            .iter()
            .flat_map(|m| m.values())
            .flat_map(|l| l.assets.iter().flatten())
            .any(selective)
}

/// The asset as `entity` needs it: `url`, `sha512`, `headers` of the chosen build (or its
/// own), no `builds`, no `filters`; `None` when nothing fits.
pub fn select(engine: &mut Engine, asset: &Asset, entity: &Value) -> Option<Asset> {
    let holds = |engine: &mut Engine, filters: &Option<Vec<String>>| {
        filters.iter().flatten().all(|f| {
            let verdict = engine
                .compile(f)
                .and_then(|expr| engine.eval_bool(&expr, &[("entity", entity)]));
            verdict.unwrap_or_else(|e| {
                tracing::debug!(asset = %asset.metadata.name, error = %e, "Asset filter failed; treated as false");
                false
            })
        })
    };
    let (url, sha512, headers) = if asset.builds().is_empty() {
        if !holds(engine, &asset.filters) {
            return None;
        }
        (&asset.url, &asset.sha512, &asset.headers)
    } else {
        let build = asset.builds().iter().find(|b| holds(engine, &b.filters))?;
        (&build.url, &build.sha512, &build.headers)
    };
    Some(Asset {
        url: url.clone(),
        sha512: sha512.clone(),
        headers: headers.clone(),
        filters: None,
        builds: None,
        metadata: asset.metadata.clone(),
    })
}

/// `request` with every asset (the check's and the hooks') selected for `entity`.
pub fn select_request(engine: &mut Engine, request: &CheckRequest, entity: &Value) -> CheckRequest {
    let mut pick = |assets: &Option<Vec<Asset>>| -> Option<Vec<Asset>> {
        assets.as_ref().map(|list| {
            list.iter()
                .filter_map(|a| select(engine, a, entity))
                .collect()
        })
    };
    let assets = pick(&request.assets);
    let hook_assets = request.hook_assets.as_ref().map(|m| {
        m.iter()
            .map(|(hook, list)| {
                (
                    hook.clone(),
                    AssetList {
                        assets: pick(&list.assets),
                    },
                )
            })
            .collect()
    });
    CheckRequest {
        assets,
        hook_assets,
        ..request.clone()
    }
}

thread_local! {
    // One engine per blocking thread, as the filters have: selection is rare and short.
    static SELECT_ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// [`select_request`] on a blocking thread with a thread-local engine. Without an engine (it
/// failed to start) assets with builds or filters are left out, and the agent reports them
/// missing.
pub async fn select_request_blocking(request: Arc<CheckRequest>, entity: Value) -> CheckRequest {
    let fallback = request.clone();
    tokio::task::spawn_blocking(move || {
        with_engine(|engine| match engine {
            Some(engine) => select_request(engine, &request, &entity),
            None => CheckRequest::clone(&request),
        })
    })
    .await
    .unwrap_or_else(|_| CheckRequest::clone(&fallback))
}

fn with_engine<T>(f: impl FnOnce(Option<&mut Engine>) -> T) -> T {
    SELECT_ENGINE.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            match Engine::new(Limits::default()) {
                Ok(e) => *cell = Some(e),
                Err(e) => {
                    tracing::error!(error = %e, "Cannot start the asset filter JavaScript engine")
                }
            }
        }
        f(cell.as_mut())
    })
}

/// Installs the assets of handlers and mutators on the backend.
#[derive(Debug)]
pub struct PipelineAssets {
    cache: Arc<AssetCache>,
    /// What asset filters see as `entity`: the backend's own system.
    entity: Value,
}

impl PipelineAssets {
    pub fn new(cache: Arc<AssetCache>) -> PipelineAssets {
        PipelineAssets {
            cache,
            entity: backend_entity(),
        }
    }

    pub fn cache(&self) -> &Arc<AssetCache> {
        &self.cache
    }

    /// `KEY=VALUE` entries for a command needing `wanted` (its `runtime_assets`) among the
    /// namespace's `assets`, current `PATH`-like values included (the pipeline's executor sets
    /// variables, it does not merge them). The error says why, for the log.
    pub async fn environment(
        &self,
        assets: &HashMap<String, Asset>,
        wanted: &[String],
    ) -> Result<Vec<String>, String> {
        let mut chosen: Vec<Asset> = Vec::new();
        for w in wanted {
            let mut names: Vec<&String> = assets
                .keys()
                .filter(|n| n.starts_with(w.as_str()))
                .collect();
            names.sort();
            if names.is_empty() {
                return Err(format!("asset {w:?} does not exist"));
            }
            for n in names {
                if !chosen.iter().any(|c| &c.metadata.name == n) {
                    chosen.push(assets[n].clone());
                }
            }
        }
        let entity = self.entity.clone();
        let selected: Vec<(String, Option<Asset>)> = tokio::task::spawn_blocking(move || {
            with_engine(|mut engine| {
                chosen
                    .iter()
                    .map(|a| {
                        let picked = match engine.as_deref_mut() {
                            Some(engine) => select(engine, a, &entity),
                            None if a.builds().is_empty()
                                && a.filters.as_ref().is_none_or(Vec::is_empty) =>
                            {
                                Some(a.clone())
                            }
                            None => None,
                        };
                        (a.metadata.name.clone(), picked)
                    })
                    .collect()
            })
        })
        .await
        .map_err(|e| format!("asset selection failed: {e}"))?;
        let mut installed = Vec::new();
        for (name, picked) in selected {
            let Some(asset) = picked else {
                // Sensu skips an asset none of whose builds fit this host.
                tracing::debug!(asset = %name, "No build of the asset fits the backend; skipped");
                continue;
            };
            let source = AssetSource {
                name: name.clone(),
                url: asset.url.clone(),
                sha512: asset.sha512.clone(),
                headers: asset
                    .headers
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            };
            let dir = self
                .cache
                .install(&source)
                .await
                .map_err(|e| e.to_string())?;
            installed.push(InstalledAsset {
                env_name: tokens::asset_env_name(&name),
                dir,
            });
        }
        Ok(assetfetch::asset_env(&installed, |k| std::env::var_os(k)))
    }
}

/// The backend host as asset filters see it: `entity.system.os`, `.arch` (Go's names, as
/// agents report them), `entity.entity_class` = `backend`.
pub fn backend_entity() -> Value {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    json!({
        "entity_class": "backend",
        "system": {"os": std::env::consts::OS, "arch": arch},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_spec::ObjectMeta;
    use proto_spec::v2::AssetBuild;

    fn build(url: &str, filters: &[&str]) -> AssetBuild {
        AssetBuild {
            url: url.into(),
            sha512: "b".repeat(128),
            filters: Some(filters.iter().map(|s| s.to_string()).collect()),
            headers: None,
        }
    }

    fn multi() -> Asset {
        Asset {
            metadata: ObjectMeta::new("default", "plugins"),
            builds: Some(vec![
                build("https://x/arm64.tar.gz", &["entity.system.arch == 'arm64'"]),
                build(
                    "https://x/amd64-alpine.tar.gz",
                    &[
                        "entity.system.arch == 'amd64'",
                        "entity.system.platform == 'alpine'",
                    ],
                ),
                build("https://x/amd64.tar.gz", &["entity.system.arch == 'amd64'"]),
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn the_first_build_whose_filters_all_hold_is_chosen() {
        let mut engine = Engine::new(Limits::default()).unwrap();
        let debian = json!({"system": {"os": "linux", "arch": "amd64", "platform": "debian"}});
        let alpine = json!({"system": {"os": "linux", "arch": "amd64", "platform": "alpine"}});
        let arm = json!({"system": {"os": "linux", "arch": "arm64"}});
        let mips = json!({"system": {"os": "linux", "arch": "mips"}});
        let url = |e: &Value| {
            select(&mut Engine::new(Limits::default()).unwrap(), &multi(), e).map(|a| a.url)
        };
        assert_eq!(url(&debian).as_deref(), Some("https://x/amd64.tar.gz"));
        assert_eq!(
            url(&alpine).as_deref(),
            Some("https://x/amd64-alpine.tar.gz")
        );
        assert_eq!(url(&arm).as_deref(), Some("https://x/arm64.tar.gz"));
        assert_eq!(url(&mips), None);
        let chosen = select(&mut engine, &multi(), &debian).unwrap();
        assert!(chosen.builds.is_none() && chosen.filters.is_none());
        assert_eq!(chosen.sha512, "b".repeat(128));
    }

    #[test]
    fn a_single_build_asset_is_kept_when_its_filters_hold() {
        let mut engine = Engine::new(Limits::default()).unwrap();
        let asset = Asset {
            metadata: ObjectMeta::new("default", "tool"),
            url: "https://x/tool.tar.gz".into(),
            sha512: "a".repeat(128),
            filters: Some(vec!["entity.system.os == 'linux'".into()]),
            ..Default::default()
        };
        let linux = json!({"system": {"os": "linux"}});
        let windows = json!({"system": {"os": "windows"}});
        assert!(select(&mut engine, &asset, &linux).is_some());
        assert!(select(&mut engine, &asset, &windows).is_none());
        // A filter that throws counts as false.
        let broken = Asset {
            filters: Some(vec!["entity.nope.deeper == 1".into()]),
            ..asset.clone()
        };
        assert!(select(&mut engine, &broken, &linux).is_none());
        let unfiltered = Asset {
            filters: None,
            ..asset
        };
        assert!(select(&mut engine, &unfiltered, &windows).is_some());
    }

    #[test]
    fn requests_are_selected_for_check_and_hook_assets() {
        let mut engine = Engine::new(Limits::default()).unwrap();
        let request = CheckRequest {
            assets: Some(vec![multi()]),
            hook_assets: Some(
                [(
                    "h".to_string(),
                    AssetList {
                        assets: Some(vec![multi()]),
                    },
                )]
                .into(),
            ),
            ..Default::default()
        };
        assert!(needs_selection(&request));
        let arm = json!({"system": {"arch": "arm64"}});
        let out = select_request(&mut engine, &request, &arm);
        assert!(!needs_selection(&out));
        assert_eq!(
            out.assets.as_ref().unwrap()[0].url,
            "https://x/arm64.tar.gz"
        );
        assert_eq!(
            out.hook_assets.as_ref().unwrap()["h"]
                .assets
                .as_ref()
                .unwrap()[0]
                .url,
            "https://x/arm64.tar.gz"
        );
        let none = select_request(&mut engine, &request, &json!({"system": {}}));
        assert!(none.assets.as_ref().unwrap().is_empty());
    }
}
