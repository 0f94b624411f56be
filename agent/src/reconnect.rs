//! Reconnection policy: which backend to try next and how long to wait first. Pure logic over
//! an injected RNG, so the tests are deterministic with a seeded one.

use std::time::Duration;

use rand::Rng;
use rand::seq::SliceRandom;

use crate::config::{BackendUrl, RetryConfig};

/// A session that lasted at least this long resets the backoff: the backend was healthy, so
/// the next failure starts again from `--retry-min`. Shorter sessions (accepted, then closed
/// at once: an overloaded or misconfigured backend) keep growing it, so that a backend which
/// accepts and drops does not cause a reconnect storm.
pub const STABLE_SESSION: Duration = Duration::from_secs(10);

/// Throttling (HTTP 429) doubles the parameters, but never past this (or the configured
/// maximum, when that is larger).
pub const MAX_THROTTLED_WAIT: Duration = Duration::from_secs(3600);

/// Exponential backoff with jitter (sensu-compat 5.2): the base wait starts at `min`, is
/// multiplied by `multiplier` after each failed attempt and capped at `max`; each wait is the
/// base plus a random 0-100 % of it, still capped at `max`.
#[derive(Debug)]
pub struct Backoff<R> {
    configured: RetryConfig,
    min: Duration,
    max: Duration,
    base: Duration,
    rng: R,
}

impl<R: Rng> Backoff<R> {
    pub fn new(config: RetryConfig, rng: R) -> Self {
        Backoff {
            configured: config,
            min: config.min,
            max: config.max,
            base: config.min,
            rng,
        }
    }

    /// The wait before the next attempt; grows the base for the attempt after it.
    pub fn next_wait(&mut self) -> Duration {
        let jitter: f64 = self.rng.random();
        let wait = scale(self.base, 1.0 + jitter).min(self.max);
        self.base = scale(self.base, self.configured.multiplier).min(self.max);
        wait
    }

    /// Back to the configured parameters (after a session that lasted).
    pub fn reset(&mut self) {
        self.min = self.configured.min;
        self.max = self.configured.max;
        self.base = self.configured.min;
    }

    /// The backend answered 429 Too Many Requests: double the backoff parameters (minimum,
    /// maximum and the current base) until the next reset. The multiplier stays: doubling it
    /// too would make the wait explode within a few attempts.
    pub fn throttle(&mut self) {
        let ceiling = MAX_THROTTLED_WAIT.max(self.configured.max);
        self.min = (self.min * 2).min(ceiling);
        self.max = (self.max * 2).min(ceiling);
        self.base = (self.base * 2).max(self.min).min(self.max);
    }

    /// Current `(min, max, base)`, for tests and logs.
    pub fn parameters(&self) -> (Duration, Duration, Duration) {
        (self.min, self.max, self.base)
    }
}

/// `d * factor` without panicking on overflow (saturates at a day, far above any cap).
fn scale(d: Duration, factor: f64) -> Duration {
    let secs = d.as_secs_f64() * factor;
    if secs.is_finite() && secs < 86_400.0 {
        Duration::from_secs_f64(secs.max(0.0))
    } else {
        Duration::from_secs(86_400)
    }
}

/// Backend choice: a random permutation of the URLs first (so that agents sharing a config
/// spread over the backends), then round robin through it.
#[derive(Debug, Clone)]
pub struct BackendRotation {
    urls: Vec<BackendUrl>,
    next: usize,
}

impl BackendRotation {
    /// `urls` must not be empty (the config guarantees at least one).
    pub fn new(mut urls: Vec<BackendUrl>, rng: &mut impl Rng) -> Self {
        assert!(!urls.is_empty(), "BackendRotation needs at least one URL");
        urls.shuffle(rng);
        BackendRotation { urls, next: 0 }
    }

    pub fn next_url(&mut self) -> &BackendUrl {
        let i = self.next;
        self.next = (self.next + 1) % self.urls.len();
        &self.urls[i]
    }
}

/// The length of one session when `--max-session-length` is `length`: `L − rand[0, 0.5)·L`, so
/// that agents started together do not all reconnect together.
pub fn session_length(length: Duration, rng: &mut impl Rng) -> Duration {
    let cut: f64 = rng.random_range(0.0..0.5);
    scale(length, 1.0 - cut)
}
