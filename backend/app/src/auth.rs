//! Basic authentication of stored users, shared by agent handshakes and the REST API until the
//! token and RBAC layer arrives.
//!
//! bcrypt is deliberately slow (tens of milliseconds per check). A reconnect storm of thousands
//! of agents presenting the same credentials would otherwise burn seconds of CPU, so a
//! successful check is remembered, keyed by a salted digest of the password and the stored
//! hash: a password change (new hash) or a disabled user invalidates it naturally.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use proto_spec::v2::User;

use crate::keys;
use crate::repo::{Repo, RepoError};

const CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or malformed Authorization header")]
    Missing,
    #[error("bad username or password")]
    BadCredentials,
    #[error(transparent)]
    Repo(#[from] RepoError),
}

pub struct Authenticator {
    repo: Repo,
    /// Never held across an await, so a std mutex is fine.
    verified: Mutex<HashMap<(String, u64), Instant>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Authenticator {
    pub fn new(repo: Repo) -> Self {
        Authenticator {
            repo,
            verified: Mutex::new(HashMap::new()),
            hasher: Default::default(),
        }
    }

    /// Check `Authorization: Basic ...` against the stored users; returns the user.
    pub async fn authenticate_header(&self, header: Option<&str>) -> Result<User, AuthError> {
        let (user, pass) =
            parse_basic(header.ok_or(AuthError::Missing)?).ok_or(AuthError::Missing)?;
        self.authenticate(&user, &pass).await
    }

    pub async fn authenticate(&self, username: &str, password: &str) -> Result<User, AuthError> {
        let user: User = self
            .repo
            .get(&keys::user(username))
            .await?
            .ok_or(AuthError::BadCredentials)?;
        if user.disabled || user.password_hash.is_empty() {
            return Err(AuthError::BadCredentials);
        }
        let digest = {
            let mut h = self.hasher.build_hasher();
            h.write(password.as_bytes());
            h.write(&[0]);
            h.write(user.password_hash.as_bytes());
            h.finish()
        };
        let cache_key = (username.to_string(), digest);
        let cached = self
            .verified
            .lock()
            .expect("auth cache lock")
            .get(&cache_key)
            .copied();
        if cached.is_some_and(|at| at.elapsed() < CACHE_TTL) {
            return Ok(user);
        }
        let hash = user.password_hash.clone();
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pw, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(AuthError::BadCredentials);
        }
        let mut cache = self.verified.lock().expect("auth cache lock");
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, at| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(cache_key, Instant::now());
        Ok(user)
    }
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
}
