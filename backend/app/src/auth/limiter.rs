//! Failed-login limits per (user, source address): a password-guessing client is refused
//! (429) for the rest of the window once it reaches the limit, while the same user logging in
//! from elsewhere is not locked out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept at most; past this, lapsed ones are dropped (and if that is not enough, all:
/// forgetting failures is better than unbounded memory).
const MAX_ENTRIES: usize = 100_000;

/// Who tried: the username and the source address (when the transport tells it).
type Attempt = (String, Option<IpAddr>);

pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    /// Never held across an await, so a std mutex is fine.
    /// Failures so far and when the first of the current window happened.
    failures: Mutex<HashMap<Attempt, (u32, Instant)>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginLimiter {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// How long `user` from `source` is still refused, if it is.
    pub fn blocked(&self, user: &str, source: Option<IpAddr>) -> Option<Duration> {
        let map = self.failures.lock().expect("limiter lock");
        let (count, since) = map.get(&(user.to_string(), source))?;
        let elapsed = since.elapsed();
        (*count >= self.max_failures && elapsed < self.window).then(|| self.window - elapsed)
    }

    pub fn failed(&self, user: &str, source: Option<IpAddr>) {
        let mut map = self.failures.lock().expect("limiter lock");
        if map.len() >= MAX_ENTRIES {
            let window = self.window;
            map.retain(|_, (_, since)| since.elapsed() < window);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        let entry = map
            .entry((user.to_string(), source))
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    pub fn succeeded(&self, user: &str, source: Option<IpAddr>) {
        self.failures
            .lock()
            .expect("limiter lock")
            .remove(&(user.to_string(), source));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_one_user_from_one_address() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        let a = Some(IpAddr::from([127, 0, 0, 1]));
        let b = Some(IpAddr::from([127, 0, 0, 2]));
        for _ in 0..3 {
            assert!(l.blocked("demo", a).is_none());
            l.failed("demo", a);
        }
        assert!(l.blocked("demo", a).is_some());
        assert!(
            l.blocked("demo", b).is_none(),
            "another address is not blocked"
        );
        assert!(
            l.blocked("other", a).is_none(),
            "another user is not blocked"
        );
        l.succeeded("demo", a);
        assert!(l.blocked("demo", a).is_none());
    }

    #[test]
    fn the_window_lapses() {
        let l = LoginLimiter::new(1, Duration::ZERO);
        let a = Some(IpAddr::from([127, 0, 0, 1]));
        l.failed("demo", a);
        assert!(l.blocked("demo", a).is_none());
    }
}
