//! Authentication (sensu-compat 6.3): who is calling, from an `Authorization` header.
//!
//! - `Basic` credentials of stored users (bcrypt), rate-limited per (user, source address);
//! - `Bearer` access tokens: JWTs signed HS256 with a secret kept in the store
//!   (`/sensu.io/authentication/secret`, created at init), or ES256 with the operator's ECDSA
//!   P-256 keys, short-lived (5 min by default);
//! - `Key` API keys, kept in the store only as a SHA-256 digest of the key.
//!
//! Refresh tokens are random, and the store keeps a record of each one at a key derived from
//! its digest (on a lease, so abandoned ones go away); logging out deletes the record, so a
//! revoked token stays revoked on every backend and across restarts.
//!
//! bcrypt is deliberately slow (tens of milliseconds per check). A reconnect storm of thousands
//! of agents presenting the same credentials would otherwise burn seconds of CPU, so a
//! successful check is remembered, keyed by a salted digest of the password and the stored
//! hash: a password change (new hash) or a disabled user invalidates it naturally.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend_store::{Compare, Op, OpResult, Txn};
use base64::Engine;
use proto_spec::auth::{AuthProvider, Claims, RefreshTokenRecord, Tokens};
use proto_spec::v2::{APIKey, User};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::keys;
use crate::repo::{Repo, RepoError, encode};

mod jwt;
mod limiter;

pub use jwt::EcdsaKeys;
pub use limiter::LoginLimiter;

use jwt::TokenKey;

const CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_MAX: usize = 10_000;

/// Every authenticated caller is in this group (Sensu adds it to every token), which the
/// default `system:user` binding uses to let users read and change their own account.
pub const USERS_GROUP: &str = "system:users";

/// Lifetimes and login limits. Sensu's values by default.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Lifetime of an access token (Sensu: 5 minutes).
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token's record (Sensu's never expire; see docs/DEVIATIONS.md).
    pub refresh_token_ttl: Duration,
    /// Failed logins allowed per (user, source address) within `login_window`.
    pub max_failed_logins: u32,
    pub login_window: Duration,
    /// Sign access tokens ES256 with these keys instead of HS256 with the store's secret
    /// (`--jwt-private-key-file`, `--jwt-public-key-file`; every backend needs the same).
    pub ecdsa_keys: Option<Arc<EcdsaKeys>>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            access_token_ttl: Duration::from_secs(300),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            max_failed_logins: 5,
            login_window: Duration::from_secs(60),
            ecdsa_keys: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or malformed Authorization header")]
    Missing,
    #[error("bad username or password")]
    BadCredentials,
    #[error("the access token has expired")]
    Expired,
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    #[error("invalid API key")]
    BadApiKey,
    #[error("user {0:?} is disabled")]
    Disabled(String),
    #[error("too many failed logins for user {user:?} from this address; retry in {retry_after} s")]
    RateLimited { user: String, retry_after: u64 },
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl From<backend_store::StoreError> for AuthError {
    fn from(e: backend_store::StoreError) -> Self {
        AuthError::Repo(e.into())
    }
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Basic,
    Token,
    ApiKey,
}

/// An authenticated caller: what authorization needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub username: String,
    /// The user's groups plus [`USERS_GROUP`].
    pub groups: Vec<String>,
    pub method: Method,
}

impl Identity {
    fn of(user: &User, method: Method) -> Self {
        let mut groups = user.groups.clone();
        if !groups.iter().any(|g| g == USERS_GROUP) {
            groups.push(USERS_GROUP.to_string());
        }
        Identity {
            username: user.username.clone(),
            groups,
            method,
        }
    }
}

/// A username and a salted digest of (password, stored hash): the key of the caches.
type Credentials = (String, u64);

pub struct Authenticator {
    repo: Repo,
    config: AuthConfig,
    /// The HS256 secret, read from the store once.
    secret: tokio::sync::OnceCell<Arc<[u8]>>,
    limiter: LoginLimiter,
    /// Never held across an await, so a std mutex is fine.
    verified: Mutex<HashMap<Credentials, Instant>>,
    /// bcrypt checks under way, by the same key as `verified`.
    inflight: Mutex<HashMap<Credentials, Arc<tokio::sync::OnceCell<bool>>>>,
    /// bcrypt checks run (not answered from the cache or shared).
    bcrypt_runs: std::sync::atomic::AtomicU64,
    hasher: std::collections::hash_map::RandomState,
}

impl Authenticator {
    pub fn new(repo: Repo, config: AuthConfig) -> Self {
        let limiter = LoginLimiter::new(config.max_failed_logins, config.login_window);
        Authenticator {
            repo,
            config,
            secret: tokio::sync::OnceCell::new(),
            limiter,
            verified: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            bcrypt_runs: Default::default(),
            hasher: Default::default(),
        }
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// How many bcrypt checks ran: the rest were answered by the cache or shared.
    pub fn bcrypt_runs(&self) -> u64 {
        self.bcrypt_runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Who sent `Authorization: Basic|Bearer|Key ...`.
    pub async fn identify(
        &self,
        header: Option<&str>,
        source: Option<IpAddr>,
    ) -> Result<Identity, AuthError> {
        let header = header.ok_or(AuthError::Missing)?.trim();
        let (scheme, value) = header.split_once(' ').ok_or(AuthError::Missing)?;
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let (user, pass) = parse_basic(header).ok_or(AuthError::Missing)?;
            let user = self.login(&user, &pass, source).await?;
            Ok(Identity::of(&user, Method::Basic))
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let claims = self.verify_access_token(value, true).await?;
            Ok(Identity {
                username: claims.sub,
                groups: claims.groups,
                method: Method::Token,
            })
        } else if scheme.eq_ignore_ascii_case("key") {
            self.identify_api_key(value).await
        } else {
            Err(AuthError::Missing)
        }
    }

    /// Check a username and password, counting failures per (user, source address): past
    /// the limit, even good credentials are refused until the window ends.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        source: Option<IpAddr>,
    ) -> Result<User, AuthError> {
        if let Some(retry_after) = self.limiter.blocked(username, source) {
            tracing::warn!(user = %username, source = ?source, "Login refused: too many failed attempts");
            return Err(AuthError::RateLimited {
                user: username.to_string(),
                retry_after: retry_after.as_secs().max(1),
            });
        }
        match self.authenticate(username, password).await {
            Ok(user) => {
                self.limiter.succeeded(username, source);
                Ok(user)
            }
            Err(AuthError::BadCredentials) => {
                self.limiter.failed(username, source);
                tracing::warn!(user = %username, source = ?source, "Failed login");
                Err(AuthError::BadCredentials)
            }
            Err(e) => Err(e),
        }
    }

    /// Check a username and password against the stored user (no rate limit).
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<User, AuthError> {
        let Some(user) = self.repo.get::<User>(&keys::user(username)).await? else {
            // As slow as a wrong password, so response times do not tell which users exist.
            let pw = password.to_string();
            let _ = tokio::task::spawn_blocking(move || bcrypt::verify(pw, dummy_hash())).await;
            return Err(AuthError::BadCredentials);
        };
        if user.disabled || user.password_hash.is_empty() {
            return Err(AuthError::BadCredentials);
        }
        if self.verify_password(&user, password).await {
            Ok(user)
        } else {
            Err(AuthError::BadCredentials)
        }
    }

    /// Whether `password` matches the user's stored hash (cached, see the module docs).
    pub async fn verify_password(&self, user: &User, password: &str) -> bool {
        let digest = {
            let mut h = self.hasher.build_hasher();
            h.write(password.as_bytes());
            h.write(&[0]);
            h.write(user.password_hash.as_bytes());
            h.finish()
        };
        let cache_key = (user.username.clone(), digest);
        let cached = self
            .verified
            .lock()
            .expect("auth cache lock")
            .get(&cache_key)
            .copied();
        if cached.is_some_and(|at| at.elapsed() < CACHE_TTL) {
            return true;
        }
        // Concurrent checks of the same credentials (agents reconnecting together) share one
        // bcrypt run instead of each paying for it.
        let cell = self
            .inflight
            .lock()
            .expect("auth in-flight lock")
            .entry(cache_key.clone())
            .or_default()
            .clone();
        let ok = *cell
            .get_or_init(|| {
                let hash = user.password_hash.clone();
                let pw = password.to_string();
                self.bcrypt_runs
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async move {
                    tokio::task::spawn_blocking(move || bcrypt::verify(pw, &hash).unwrap_or(false))
                        .await
                        .unwrap_or(false)
                }
            })
            .await;
        if ok {
            let mut cache = self.verified.lock().expect("auth cache lock");
            if cache.len() >= CACHE_MAX {
                cache.retain(|_, at| at.elapsed() < CACHE_TTL);
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(cache_key.clone(), Instant::now());
        }
        // After the cache insert, so a caller arriving now finds one or the other.
        self.inflight
            .lock()
            .expect("auth in-flight lock")
            .remove(&cache_key);
        ok
    }

    // === tokens ===

    async fn token_key(&self) -> Result<TokenKey, AuthError> {
        if let Some(keys) = &self.config.ecdsa_keys {
            return Ok(TokenKey::Es256(keys.clone()));
        }
        self.secret
            .get_or_try_init(|| async { ensure_secret(&self.repo).await.map(Arc::from) })
            .await
            .cloned()
            .map(TokenKey::Hs256)
    }

    /// A new access token and refresh token for `user`; `issuer` is the URL the client used.
    pub async fn issue_tokens(&self, user: &User, issuer: &str) -> Result<Tokens, AuthError> {
        let refresh_token = random_hex(32);
        let ttl = self.config.refresh_token_ttl;
        let lease = self.repo.store.grant_lease(ttl).await?;
        let record = RefreshTokenRecord {
            username: user.username.clone(),
            issued_at: crate::timefmt::now_unix(),
        };
        self.repo
            .store
            .txn(Txn {
                compares: vec![],
                success: vec![Op::put_with_lease(
                    keys::refresh_token(&digest_hex(&refresh_token)),
                    encode(&record),
                    lease,
                )],
                failure: vec![],
            })
            .await?;
        let (access_token, expires_at) = self.access_token(user, issuer).await?;
        Ok(Tokens {
            access_token,
            expires_at,
            refresh_token,
        })
    }

    async fn access_token(&self, user: &User, issuer: &str) -> Result<(String, i64), AuthError> {
        let identity = Identity::of(user, Method::Token);
        let exp = crate::timefmt::now_unix() + self.config.access_token_ttl.as_secs() as i64;
        let claims = Claims {
            sub: identity.username,
            exp,
            jti: random_hex(16),
            iss: issuer.to_string(),
            groups: identity.groups,
            provider: AuthProvider {
                provider_id: "basic/default".to_string(),
                provider_type: "basic".to_string(),
                user_id: user.username.clone(),
            },
            api_key: false,
        };
        let key = self.token_key().await?;
        Ok((jwt::sign(&claims, &key), exp))
    }

    /// The claims of a token this cluster signed; `check_expiry` false accepts an expired one
    /// (refreshing takes the expired access token).
    pub async fn verify_access_token(
        &self,
        token: &str,
        check_expiry: bool,
    ) -> Result<Claims, AuthError> {
        let key = self.token_key().await?;
        let claims = jwt::verify(token, &key).map_err(AuthError::InvalidToken)?;
        if check_expiry && claims.exp <= crate::timefmt::now_unix() {
            return Err(AuthError::Expired);
        }
        Ok(claims)
    }

    /// A new access token for the subject of `access_token` (which may have expired), if
    /// `refresh_token` was issued to that subject, is not revoked, and the user is still
    /// enabled. The refresh token stays the same, as in Sensu.
    pub async fn refresh(
        &self,
        access_token: &str,
        refresh_token: &str,
        issuer: &str,
    ) -> Result<Tokens, AuthError> {
        let claims = self.verify_access_token(access_token, false).await?;
        let record: RefreshTokenRecord = self
            .repo
            .get(&keys::refresh_token(&digest_hex(refresh_token)))
            .await?
            .ok_or(AuthError::InvalidToken(
                "the refresh token is unknown or was revoked",
            ))?;
        if record.username != claims.sub {
            return Err(AuthError::InvalidToken(
                "the refresh token belongs to another user",
            ));
        }
        let user: User = self
            .repo
            .get(&keys::user(&claims.sub))
            .await?
            .filter(|u: &User| !u.disabled)
            .ok_or(AuthError::BadCredentials)?;
        let (access_token, expires_at) = self.access_token(&user, issuer).await?;
        Ok(Tokens {
            access_token,
            expires_at,
            refresh_token: refresh_token.to_string(),
        })
    }

    /// Revoke a refresh token of `username`. `Ok(false)` when it was unknown (already revoked
    /// or never issued) or belongs to someone else.
    pub async fn revoke(&self, username: &str, refresh_token: &str) -> Result<bool, AuthError> {
        let key = keys::refresh_token(&digest_hex(refresh_token));
        let Some(record) = self.repo.get::<RefreshTokenRecord>(&key).await? else {
            return Ok(false);
        };
        if record.username != username {
            return Ok(false);
        }
        Ok(self.repo.store.delete(&key).await? > 0)
    }

    /// Revoke every refresh token of `username` (a logout that names none: "log out
    /// everywhere"); returns how many were revoked. A walk over all records: logouts are rare.
    pub async fn revoke_all(&self, username: &str) -> Result<usize, AuthError> {
        let records = self
            .repo
            .list_all::<RefreshTokenRecord>(&keys::refresh_tokens_prefix())
            .await?;
        let mut revoked = 0;
        for (key, record) in records {
            if record.username == username {
                revoked += self.repo.store.delete(&key).await? as usize;
            }
        }
        Ok(revoked)
    }

    // === API keys ===

    async fn identify_api_key(&self, key: &str) -> Result<Identity, AuthError> {
        if key.is_empty() {
            return Err(AuthError::BadApiKey);
        }
        let api_key: APIKey = self
            .repo
            .get(&keys::api_key(&digest_hex(key)))
            .await?
            .ok_or(AuthError::BadApiKey)?;
        let user: User = self
            .repo
            .get(&keys::user(&api_key.username))
            .await?
            .filter(|u: &User| !u.disabled)
            .ok_or(AuthError::BadApiKey)?;
        Ok(Identity::of(&user, Method::ApiKey))
    }
}

/// A bcrypt hash of nothing anyone knows, at the cost of real ones.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(&random_hex(16)).unwrap_or_default())
}

/// The JWT signing secret: read it, or create it (32 random bytes) if this store has none
/// yet; two backends racing agree on the first one written.
pub async fn ensure_secret(repo: &Repo) -> Result<Vec<u8>, AuthError> {
    let mut fresh = vec![0u8; 32];
    rand::rng().fill_bytes(&mut fresh);
    let resp = repo
        .store
        .txn(Txn {
            compares: vec![Compare::absent(keys::JWT_SECRET)],
            success: vec![Op::put(keys::JWT_SECRET, fresh.clone())],
            failure: vec![Op::Get {
                key: keys::JWT_SECRET.to_string(),
            }],
        })
        .await?;
    if resp.succeeded {
        return Ok(fresh);
    }
    match resp.results.into_iter().next() {
        Some(OpResult::Get { kv: Some(kv) }) if !kv.value.is_empty() => Ok(kv.value),
        _ => Err(AuthError::InvalidToken("the store holds no signing secret")),
    }
}

/// Hex SHA-256: how API keys and refresh tokens are named in the store.
pub fn digest_hex(secret: &str) -> String {
    let d = Sha256::digest(secret.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Split `Basic base64(user:pass)`.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// bcrypt cost for new password hashes (Sensu uses Go's default, 10).
pub const BCRYPT_COST: u32 = 10;

pub fn hash_password(password: &str) -> Result<String, bcrypt::BcryptError> {
    bcrypt::hash(password, BCRYPT_COST)
}

/// Whether `hash` looks like a bcrypt hash (`$2a$`, `$2b$`, `$2y$`; 60 characters), as
/// `password_hash` fields must.
pub fn is_bcrypt_hash(hash: &str) -> bool {
    hash.len() == 60
        && ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
        && hash.parse::<bcrypt::HashParts>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_headers() {
        assert_eq!(
            parse_basic("Basic YWdlbnQ6UEBzc3cwcmQh"),
            Some(("agent".into(), "P@ssw0rd!".into()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic("Basic bm9jb2xvbg=="), None);
    }

    #[test]
    fn bcrypt_hashes_are_recognised() {
        let h = bcrypt::hash("password1", 4).unwrap();
        assert!(is_bcrypt_hash(&h));
        assert!(!is_bcrypt_hash("password1"));
        assert!(!is_bcrypt_hash(&h[..59]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_of_the_same_credentials_share_one_bcrypt_run() {
        let repo = Repo::new(backend_store::EmbeddedStore::in_memory().unwrap());
        let user = User {
            username: "agent".into(),
            password_hash: bcrypt::hash("P@ssw0rd!", 4).unwrap(),
            ..Default::default()
        };
        repo.put(&keys::user("agent"), &user).await.unwrap();
        let auth = Arc::new(Authenticator::new(repo, AuthConfig::default()));
        let checks: Vec<_> = (0..20)
            .map(|_| {
                let auth = auth.clone();
                tokio::spawn(async move { auth.authenticate("agent", "P@ssw0rd!").await })
            })
            .collect();
        for c in checks {
            assert!(c.await.unwrap().is_ok());
        }
        assert_eq!(auth.bcrypt_runs(), 1);
        // A wrong password is checked (and not cached as good).
        assert!(auth.authenticate("agent", "wrong").await.is_err());
        assert!(auth.authenticate("agent", "wrong").await.is_err());
        assert_eq!(auth.bcrypt_runs(), 3);
    }

    #[tokio::test]
    async fn tokens_round_trip_and_expire() {
        let store: Arc<dyn backend_store::Store> =
            backend_store::EmbeddedStore::in_memory().unwrap();
        let repo = Repo::new(store);
        let user = User {
            username: "demo".into(),
            groups: vec!["dev".into()],
            password_hash: bcrypt::hash("password1", 4).unwrap(),
            ..Default::default()
        };
        repo.put(&keys::user("demo"), &user).await.unwrap();
        let auth = Authenticator::new(repo.clone(), AuthConfig::default());
        let tokens = auth.issue_tokens(&user, "http://x").await.unwrap();
        let who = auth
            .identify(Some(&format!("Bearer {}", tokens.access_token)), None)
            .await
            .unwrap();
        assert_eq!(who.username, "demo");
        assert_eq!(who.groups, vec!["dev".to_string(), USERS_GROUP.to_string()]);
        // A tampered token is refused.
        let mut bad = tokens.access_token.clone();
        bad.pop();
        assert!(matches!(
            auth.identify(Some(&format!("Bearer {bad}")), None).await,
            Err(AuthError::InvalidToken(_))
        ));
        // A token of another secret is refused: a second store means a second secret.
        let other = Authenticator::new(
            Repo::new(backend_store::EmbeddedStore::in_memory().unwrap()),
            AuthConfig::default(),
        );
        assert!(
            other
                .verify_access_token(&tokens.access_token, true)
                .await
                .is_err()
        );
        assert!(auth.revoke("demo", &tokens.refresh_token).await.unwrap());
        assert!(
            auth.refresh(&tokens.access_token, &tokens.refresh_token, "http://x")
                .await
                .is_err()
        );
    }
}
