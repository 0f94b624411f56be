//! `assetfetch`: runtime assets for the agent and the backend (sensu-compat 5.9).
//!
//! An asset is a tar or tar.gz archive named by URL and SHA-512. [`AssetCache::install`]
//! returns its directory, downloading it first when needed: the bytes stream to a temporary
//! file while their SHA-512 is computed, a mismatch is refused, the archive is unpacked into a
//! temporary directory under hostile-archive rules and renamed to `<cache>/<sha512>/`.
//!
//! Layout:
//! - `fetch`: [`Fetcher`] (ureq over rustls with the ring provider, system roots plus a
//!   trusted CA file, bounded redirects, size and time), streaming SHA-512;
//! - `unpack`: [`unpack::unpack`] and its pure path rules;
//! - `cache`: [`AssetCache`] (single flight per digest, fetch rate limit, atomic install);
//! - `env`: [`asset_env`], the `PATH`/`LD_LIBRARY_PATH`/`CPATH`/`<NAME>_PATH` entries.
//!
//! This crate knows nothing about Picket's resource types; callers hand it an
//! [`AssetSource`] (build selection and token substitution happen before). It uses tokio only
//! for the single flight and `spawn_blocking`: ureq is blocking, which keeps the agent small.

pub mod cache;
pub mod env;
pub mod fetch;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod unpack;

pub use cache::{AssetCache, CacheConfig, digest_key};
pub use env::{InstalledAsset, asset_env};
pub use fetch::{FetchConfig, Fetcher, hex, sha512_file};
pub use unpack::{Limits, UnpackError};

/// What to install: one asset (or the build chosen for this host).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssetSource {
    /// For messages and logs.
    pub name: String,
    pub url: String,
    /// Hex; compared case-insensitively.
    pub sha512: String,
    /// Sent with the GET (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
}

/// Why an asset could not be installed. Cloneable: waiters on one download share it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("asset sha512 {0:?} is not a SHA-512 hex digest")]
    InvalidDigest(String),
    #[error("cannot fetch {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("{url} is larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("asset {name:?}: sha512 mismatch: expected {expected}, downloaded {actual}")]
    Sha512Mismatch {
        name: String,
        expected: String,
        actual: String,
    },
    #[error("asset {name:?} refused: {source}")]
    Unpack { name: String, source: UnpackError },
    #[error(
        "asset {name:?} not fetched: the asset fetch rate limit (--assets-rate-limit / --assets-burst-limit) is exceeded; a later request retries"
    )]
    RateLimited { name: String },
    #[error("{0}")]
    Io(String),
}
