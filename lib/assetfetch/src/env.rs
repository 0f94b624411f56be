//! The environment a command runs with when it uses assets (sensu-compat 5.9): each asset's
//! `bin/`, `lib/` and `include/` prefixed to `PATH`, `LD_LIBRARY_PATH` and `CPATH` in the
//! order the assets are named, and `<NAME>_PATH` set to each asset's directory.

use std::ffi::OsString;
use std::path::PathBuf;

/// One installed asset as the environment sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledAsset {
    /// The `<NAME>_PATH` variable (the caller derives it from the asset name, as token
    /// substitution's `assetPath` does, so both always agree).
    pub env_name: String,
    pub dir: PathBuf,
}

/// `KEY=VALUE` entries to add to the process environment. `current` reads the variable's
/// present value (the process environment, or a test's map).
pub fn asset_env(
    assets: &[InstalledAsset],
    current: impl Fn(&str) -> Option<OsString>,
) -> Vec<String> {
    if assets.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(3 + assets.len());
    for (var, sub) in [
        ("PATH", "bin"),
        ("LD_LIBRARY_PATH", "lib"),
        ("CPATH", "include"),
    ] {
        let mut parts: Vec<String> = assets
            .iter()
            .map(|a| a.dir.join(sub).to_string_lossy().into_owned())
            .collect();
        if let Some(existing) = current(var).filter(|v| !v.is_empty()) {
            parts.push(existing.to_string_lossy().into_owned());
        }
        out.push(format!("{var}={}", parts.join(":")));
    }
    for a in assets {
        out.push(format!("{}={}", a.env_name, a.dir.to_string_lossy()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_in_order_and_names_each_asset() {
        let assets = [
            InstalledAsset {
                env_name: "ONE_PATH".into(),
                dir: "/c/aa".into(),
            },
            InstalledAsset {
                env_name: "TWO_PATH".into(),
                dir: "/c/bb".into(),
            },
        ];
        let env = asset_env(&assets, |k| (k == "PATH").then(|| "/usr/bin:/bin".into()));
        assert_eq!(
            env,
            [
                "PATH=/c/aa/bin:/c/bb/bin:/usr/bin:/bin",
                "LD_LIBRARY_PATH=/c/aa/lib:/c/bb/lib",
                "CPATH=/c/aa/include:/c/bb/include",
                "ONE_PATH=/c/aa",
                "TWO_PATH=/c/bb",
            ]
        );
        assert!(asset_env(&[], |_| None).is_empty());
    }
}
