//! The asset cache: `<dir>/<sha512>/` per installed asset, filled through a temporary
//! directory and an atomic rename.
//!
//! Invariant: a directory named by a digest exists only once the archive it came from matched
//! that digest and unpacked completely, so its existence means "installed" and no other
//! record is kept (Sensu keeps a bbolt index beside it; the rename makes one unnecessary).
//! Work in progress lives in `<dir>/.asset-tmp/`, which is emptied when a cache is opened: a
//! crash or an interrupted download leaves nothing that looks installed.
//!
//! Concurrent requests for one digest share a single download (single flight); a failed
//! download is shared by those waiting for it and retried by the next request. Downloads
//! (not cache hits) take a token from a bucket (`rate` per second, `burst` deep) without
//! waiting: an empty bucket is an [`Error::RateLimited`].

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use crate::fetch::{FetchConfig, Fetcher};
use crate::unpack::{self, Limits};
use crate::{AssetSource, Error};

/// Name of the work directory inside the cache.
pub const TMP_DIR: &str = ".asset-tmp";

#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub dir: PathBuf,
    pub fetch: FetchConfig,
    pub limits: Limits,
    /// Downloads per second; 0 or less: no limit.
    pub rate_per_second: f64,
    pub burst: u32,
}

impl CacheConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CacheConfig {
            dir: dir.into(),
            fetch: FetchConfig::default(),
            limits: Limits::default(),
            // sensu-agent's defaults.
            rate_per_second: 1.39,
            burst: 100,
        }
    }
}

type Shared = Option<Result<PathBuf, Error>>;

/// Installs assets on demand. Share it behind an `Arc`.
#[derive(Debug)]
pub struct AssetCache {
    dir: PathBuf,
    fetch: FetchConfig,
    /// Built at the first download: the system trust store it parses costs about a megabyte
    /// of resident memory, which an agent that never fetches an asset should not pay.
    fetcher: Mutex<Option<Arc<Fetcher>>>,
    limits: Limits,
    bucket: Mutex<Bucket>,
    inflight: Mutex<HashMap<String, Arc<watch::Sender<Shared>>>>,
    downloads: AtomicU64,
    seq: AtomicU64,
}

impl AssetCache {
    /// Create the directory if needed and clear what an earlier run left half done.
    pub fn open(config: CacheConfig) -> Result<AssetCache, Error> {
        // A bad --trusted-ca-file is still reported at start-up.
        Fetcher::check_trusted_ca_file(&config.fetch)?;
        let tmp = config.dir.join(TMP_DIR);
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| {
                Error::Io(format!(
                    "cannot clear the asset work directory {}: {e}",
                    tmp.display()
                ))
            })?;
        }
        fs::create_dir_all(&tmp).map_err(|e| {
            Error::Io(format!(
                "cannot create the asset cache {}: {e}",
                config.dir.display()
            ))
        })?;
        Ok(AssetCache {
            dir: config.dir,
            fetch: config.fetch,
            fetcher: Mutex::new(None),
            limits: config.limits,
            bucket: Mutex::new(Bucket::new(config.rate_per_second, config.burst)),
            inflight: Mutex::new(HashMap::new()),
            downloads: AtomicU64::new(0),
            seq: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn fetcher(&self) -> Result<Arc<Fetcher>, Error> {
        let mut slot = self.fetcher.lock().expect("fetcher lock");
        if let Some(f) = slot.as_ref() {
            return Ok(f.clone());
        }
        let f = Arc::new(Fetcher::new(&self.fetch)?);
        *slot = Some(f.clone());
        Ok(f)
    }

    /// Downloads started since the cache was opened (cache hits and joined downloads not
    /// counted).
    pub fn downloads(&self) -> u64 {
        self.downloads.load(Ordering::Relaxed)
    }

    /// Requests waiting for a download of `sha512` in progress (not counting the one making
    /// it).
    pub fn waiting(&self, sha512: &str) -> usize {
        let Ok(key) = digest_key(sha512) else {
            return 0;
        };
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .map_or(0, |tx| tx.receiver_count())
    }

    /// Where the asset with this digest is (or would be) installed.
    pub fn path_for(&self, sha512: &str) -> Result<PathBuf, Error> {
        Ok(self.dir.join(digest_key(sha512)?))
    }

    /// The asset's directory, downloading and unpacking it first when it is not cached.
    pub async fn install(self: &Arc<Self>, asset: &AssetSource) -> Result<PathBuf, Error> {
        let key = digest_key(&asset.sha512)?;
        let installed = self.dir.join(&key);
        if installed.is_dir() {
            return Ok(installed);
        }
        let (mut rx, leader) = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match inflight.get(&key) {
                Some(tx) => (tx.subscribe(), None),
                None => {
                    // Checked again under the lock: a download may have finished meanwhile.
                    if installed.is_dir() {
                        return Ok(installed);
                    }
                    let (tx, rx) = watch::channel::<Shared>(None);
                    let tx = Arc::new(tx);
                    inflight.insert(key.clone(), tx.clone());
                    // The leader does not wait on its own channel.
                    drop(rx);
                    (tx.subscribe(), Some(tx))
                }
            }
        };
        if let Some(tx) = leader {
            drop(rx);
            // Removes the entry however this future ends, cancellation included, so a later
            // request never waits on a download nobody is making.
            let _entry = InflightEntry {
                cache: self,
                key: &key,
            };
            let result = self.download(asset, &key).await;
            let _ = tx.send(Some(result.clone()));
            return result;
        }
        let shared = rx.wait_for(Option::is_some).await.map(|r| r.clone());
        match shared {
            Ok(Some(r)) => r,
            // The leader was dropped (its task cancelled) before finishing: try again.
            Ok(None) | Err(_) => Box::pin(self.install(asset)).await,
        }
    }

    async fn download(self: &Arc<Self>, asset: &AssetSource, key: &str) -> Result<PathBuf, Error> {
        if !self
            .bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(Instant::now())
        {
            return Err(Error::RateLimited {
                name: asset.name.clone(),
            });
        }
        self.downloads.fetch_add(1, Ordering::Relaxed);
        let me = self.clone();
        let asset = asset.clone();
        let key = key.to_string();
        tracing::info!(asset = %asset.name, url = %asset.url, "Fetching asset");
        let name = asset.name.clone();
        let result = tokio::task::spawn_blocking(move || me.download_blocking(&asset, &key))
            .await
            .unwrap_or_else(|e| Err(Error::Io(format!("asset download task failed: {e}"))));
        match &result {
            Ok(dir) => tracing::info!(asset = %name, dir = %dir.display(), "Asset installed"),
            Err(e) => tracing::warn!(asset = %name, error = %e, "Asset not installed"),
        }
        result
    }

    fn download_blocking(&self, asset: &AssetSource, key: &str) -> Result<PathBuf, Error> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let stem = format!("{}-{}-{n}", &key[..16], std::process::id());
        let work = self.dir.join(TMP_DIR);
        // Removed on every path out of here, success included (the tree is renamed away).
        let guard = TmpGuard {
            archive: work.join(format!("{stem}.download")),
            tree: work.join(&stem),
        };
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&guard.archive)
            .map_err(|e| Error::Io(format!("cannot create {}: {e}", guard.archive.display())))?;
        let actual = self
            .fetcher()?
            .download(&asset.url, &asset.headers, &mut file)?;
        drop(file);
        if actual != key {
            return Err(Error::Sha512Mismatch {
                name: asset.name.clone(),
                expected: key.to_string(),
                actual,
            });
        }
        fs::create_dir(&guard.tree)
            .map_err(|e| Error::Io(format!("cannot create {}: {e}", guard.tree.display())))?;
        let archive = unpack::open(&guard.archive).map_err(|e| Error::Io(e.to_string()))?;
        unpack::unpack(archive, &guard.tree, &self.limits).map_err(|e| Error::Unpack {
            name: asset.name.clone(),
            source: e,
        })?;
        let installed = self.dir.join(key);
        match fs::rename(&guard.tree, &installed) {
            Ok(()) => {}
            // Another process sharing the cache finished first: same digest, same content.
            Err(_) if installed.is_dir() => {}
            Err(e) => {
                return Err(Error::Io(format!(
                    "cannot move the asset to {}: {e}",
                    installed.display()
                )));
            }
        }
        // Make the rename durable before anyone runs from the directory.
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(installed)
    }
}

struct InflightEntry<'a> {
    cache: &'a AssetCache,
    key: &'a str,
}

impl Drop for InflightEntry<'_> {
    fn drop(&mut self) {
        self.cache
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(self.key);
    }
}

struct TmpGuard {
    archive: PathBuf,
    tree: PathBuf,
}

impl Drop for TmpGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.archive);
        if self.tree.exists() {
            let _ = fs::remove_dir_all(&self.tree);
        }
    }
}

/// The cache key of a digest: lower-case hex (the digest compare is case-insensitive). Only
/// hex is accepted, so a digest can never name a path outside the cache.
pub fn digest_key(sha512: &str) -> Result<String, Error> {
    if sha512.len() != 128 || !sha512.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidDigest(sha512.chars().take(140).collect()));
    }
    Ok(sha512.to_ascii_lowercase())
}

/// A token bucket that never waits.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: None,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        if self.rate <= 0.0 || !self.rate.is_finite() {
            return true;
        }
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(2.0, 3);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(500)));
        assert!(!b.take(t0 + Duration::from_millis(500)));
        // Never more than the burst.
        let later = t0 + Duration::from_secs(60);
        assert!(b.take(later) && b.take(later) && b.take(later));
        assert!(!b.take(later));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut b = Bucket::new(0.0, 1);
        assert!((0..1000).all(|_| b.take(Instant::now())));
    }

    #[test]
    fn digests_are_hex_only() {
        assert!(digest_key(&"A".repeat(128)).is_ok());
        assert_eq!(digest_key(&"A".repeat(128)).unwrap(), "a".repeat(128));
        assert!(digest_key(&format!("../{}", "a".repeat(125))).is_err());
        assert!(digest_key("abc").is_err());
    }
}
