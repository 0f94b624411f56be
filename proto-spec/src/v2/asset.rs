//! Asset: a runtime dependency tarball named by checks, hooks, filters, mutators and handlers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::serde_util::null_as_default;
use crate::validate::{
    ValidationError, require_namespace, validate_asset_name, validate_js_syntax,
};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Asset {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub url: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub sha512: String,
    pub filters: Option<Vec<String>>,
    pub builds: Option<Vec<AssetBuild>>,
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AssetBuild {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub url: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub sha512: String,
    pub filters: Option<Vec<String>>,
    pub headers: Option<BTreeMap<String, String>>,
}

impl Asset {
    pub fn builds(&self) -> &[AssetBuild] {
        self.builds.as_deref().unwrap_or_default()
    }

    /// Either `builds`, or `url` and `sha512` directly.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_asset_name("metadata.name", &self.metadata.name)?;
        require_namespace(&self.metadata.namespace)?;
        if self.builds().is_empty() {
            validate_source(&self.url, &self.sha512)?;
        } else if !self.url.is_empty() || !self.sha512.is_empty() {
            return Err(ValidationError::new(
                "builds",
                "an asset has either builds or url and sha512, not both",
            ));
        }
        for (i, f) in self.filters.iter().flatten().enumerate() {
            validate_js_syntax(&format!("filters[{i}]"), f)?;
        }
        for (i, b) in self.builds().iter().enumerate() {
            b.validate()
                .map_err(|e| e.within(&format!("builds[{i}]")))?;
        }
        Ok(())
    }
}

impl AssetBuild {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_source(&self.url, &self.sha512)?;
        for (i, f) in self.filters.iter().flatten().enumerate() {
            validate_js_syntax(&format!("filters[{i}]"), f)?;
        }
        Ok(())
    }
}

/// Shortest accepted checksum: a SHA-512 digest in hex.
pub const SHA512_HEX_LEN: usize = 128;

fn validate_source(url: &str, sha512: &str) -> Result<(), ValidationError> {
    if url.is_empty() {
        return Err(ValidationError::new("url", "url must be set"));
    }
    // The agent substitutes tokens (`{{ .labels.asset_url }}`) before fetching, so only the
    // substituted URL can be checked.
    if url.contains("{{") {
        return validate_sha512("sha512", sha512);
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
        return Err(ValidationError::new(
            "url",
            format!("url {url:?} must be an http:// or https:// URL with a host"),
        ));
    }
    validate_sha512("sha512", sha512)
}

fn validate_sha512(field: &str, sha512: &str) -> Result<(), ValidationError> {
    if sha512.is_empty() {
        return Err(ValidationError::new(field, "sha512 must be set"));
    }
    if sha512.len() < SHA512_HEX_LEN {
        return Err(ValidationError::new(
            field,
            format!(
                "sha512 must be at least {SHA512_HEX_LEN} hex characters, found {}",
                sha512.len()
            ),
        ));
    }
    if !sha512.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ValidationError::new(field, "sha512 must be hexadecimal"));
    }
    Ok(())
}
