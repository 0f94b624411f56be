//! Runtime assets on the agent (sensu-compat 5.9): the assets a check request carries are
//! installed in `<cache-dir>/<sha512>/` by [`assetfetch`] and give the command its
//! environment.
//!
//! The backend has already chosen each asset's build for this agent (its filters are
//! JavaScript, evaluated there against the agent's entity), so a request's assets arrive
//! with `url` and `sha512` set; an asset still holding `builds` means no build was chosen,
//! and is an error. Tokens in the asset (not its `sha512`) are substituted against the agent's
//! entity, as for the check. `--disable-assets` turns every request naming runtime assets into
//! a status 3 result.
//!
//! - [`allow_list`]: the command allow list (`--allow-list`).

pub mod allow_list;

use std::sync::Arc;

use assetfetch::{AssetCache, AssetSource, CacheConfig, FetchConfig, InstalledAsset, Limits};
use proto_spec::tokens;
use proto_spec::v2::Asset;
use serde_json::Value;

use crate::config::Config;

/// The agent's asset installer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Assets {
    cache: Option<Arc<AssetCache>>,
}

impl Assets {
    /// `--disable-assets`: requests naming runtime assets fail.
    pub fn disabled() -> Assets {
        Assets { cache: None }
    }

    /// Open the cache in the agent's `--cache-dir` with its rate limit and TLS trust.
    pub fn from_config(config: &Config) -> Result<Assets, assetfetch::Error> {
        if config.assets.disabled {
            return Ok(Assets::disabled());
        }
        let cache = AssetCache::open(CacheConfig {
            dir: config.cache_dir.clone(),
            fetch: FetchConfig {
                trusted_ca_file: config.tls.trusted_ca_file.clone(),
                insecure_skip_tls_verify: config.tls.insecure_skip_tls_verify,
                ..FetchConfig::default()
            },
            limits: Limits::default(),
            rate_per_second: config.assets.rate.per_second,
            burst: config.assets.rate.burst,
        })?;
        Ok(Assets::with_cache(Arc::new(cache)))
    }

    pub fn with_cache(cache: Arc<AssetCache>) -> Assets {
        Assets { cache: Some(cache) }
    }

    pub fn cache(&self) -> Option<&Arc<AssetCache>> {
        self.cache.as_ref()
    }

    /// Install the assets that `wanted` (a `runtime_assets` list) names among `offered` (what
    /// the request carries) and return the environment entries for the command: `PATH`,
    /// `LD_LIBRARY_PATH` and `CPATH` without their current values (the caller's
    /// `merge_env` prepends) and `<NAME>_PATH`. The error is the event output.
    pub async fn environment(
        &self,
        offered: &[Asset],
        wanted: &[String],
        entity: &Value,
    ) -> Result<Vec<String>, String> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let Some(cache) = &self.cache else {
            return Err(format!(
                "runtime assets are disabled on this agent (--disable-assets); the command needs {}",
                wanted.join(", ")
            ));
        };
        let mut installed = Vec::new();
        for asset in ordered(offered, wanted) {
            let source = source(asset, entity)?;
            let dir = cache
                .install(&source)
                .await
                .map_err(|e| format!("error getting assets for check: {e}"))?;
            installed.push(InstalledAsset {
                env_name: tokens::asset_env_name(&asset.metadata.name),
                dir,
            });
        }
        Ok(assetfetch::asset_env(&installed, |_| None))
    }
}

/// The offered assets in `runtime_assets` order (an entry matches every asset whose name
/// starts with it: Sensu's prefix rule, which the backend applied when it chose them); an
/// entry matching nothing is skipped, as Sensu skips an asset none of whose builds fit.
fn ordered<'a>(offered: &'a [Asset], wanted: &[String]) -> Vec<&'a Asset> {
    let mut out: Vec<&Asset> = Vec::new();
    for w in wanted {
        let mut any = false;
        for a in offered
            .iter()
            .filter(|a| a.metadata.name.starts_with(w.as_str()))
        {
            any = true;
            if !out.iter().any(|o| o.metadata.name == a.metadata.name) {
                out.push(a);
            }
        }
        if !any {
            tracing::debug!(asset = %w, "No asset in the request matches a runtime_assets entry; skipped");
        }
    }
    out
}

/// What to fetch for `asset`: its URL and headers with tokens substituted.
fn source(asset: &Asset, entity: &Value) -> Result<AssetSource, String> {
    let name = &asset.metadata.name;
    if asset.url.is_empty() {
        return Err(if asset.builds().is_empty() {
            format!("asset {name:?} has no url")
        } else {
            format!("asset {name:?} has builds but the backend chose none for this agent")
        });
    }
    let mut fields = serde_json::json!({
        "url": asset.url,
        "headers": asset.headers.clone().unwrap_or_default(),
    });
    tokens::substitute_json(&mut fields, entity, "asset")
        .map_err(|e| format!("asset {name:?}: error while substituting tokens: {e}"))?;
    let url = fields["url"].as_str().unwrap_or_default().to_string();
    let headers = fields["headers"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok(AssetSource {
        name: name.clone(),
        url,
        sha512: asset.sha512.clone(),
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_spec::ObjectMeta;

    fn asset(name: &str) -> Asset {
        Asset {
            metadata: ObjectMeta::new("default", name),
            url: format!("https://example.test/{{{{ .labels.arch }}}}/{name}.tar.gz"),
            sha512: "a".repeat(128),
            headers: Some([("X-Host".to_string(), "{{ .name }}".to_string())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn ordered_by_runtime_assets_with_prefix_matches() {
        let offered = [
            asset("ruby-runtime"),
            asset("check-disk"),
            asset("check-disk-extra"),
        ];
        let names: Vec<_> = ordered(
            &offered,
            &["check-disk".into(), "ruby".into(), "none".into()],
        )
        .iter()
        .map(|a| a.metadata.name.as_str())
        .collect();
        assert_eq!(names, ["check-disk", "check-disk-extra", "ruby-runtime"]);
    }

    #[test]
    fn url_and_headers_are_substituted_not_the_digest() {
        let entity = serde_json::json!({"name": "web-1", "labels": {"arch": "amd64"}});
        let s = source(&asset("tool"), &entity).unwrap();
        assert_eq!(s.url, "https://example.test/amd64/tool.tar.gz");
        assert_eq!(s.headers, [("X-Host".to_string(), "web-1".to_string())]);
        let missing = serde_json::json!({"name": "web-1"});
        assert!(
            source(&asset("tool"), &missing)
                .unwrap_err()
                .contains("substituting")
        );
    }

    #[tokio::test]
    async fn disabled_assets_fail_with_the_reason() {
        let err = Assets::disabled()
            .environment(&[asset("tool")], &["tool".into()], &Value::Null)
            .await
            .unwrap_err();
        assert!(err.contains("--disable-assets"), "{err}");
        // Nothing wanted: nothing to refuse.
        assert!(
            Assets::disabled()
                .environment(&[], &[], &Value::Null)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
