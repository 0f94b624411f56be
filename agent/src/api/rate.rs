//! The events rate limit (`--events-rate-limit`, `--events-burst-limit`): a token bucket
//! that paces how fast the session drains HTTP API events to the backend. As in Sensu it
//! limits draining, not acceptance: posted events are queued (and acknowledged) at once and
//! wait in the outbox for their token.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateLimit;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens per second; `None` = unlimited.
    rate: Option<f64>,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. A rate of 0 means no limit (Sensu's limiter would allow only the first
    /// burst, ever, which no one wants); a burst of 0 is taken as 1, else nothing could pass.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        let burst = f64::from(limit.burst.max(1));
        TokenBucket {
            rate: (limit.per_second > 0.0 && limit.per_second.is_finite())
                .then_some(limit.per_second),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Take a token, or say how long until one is there.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            RateLimit {
                per_second: 2.0,
                burst: 3,
            },
            t0,
        );
        for _ in 0..3 {
            assert!(b.try_take(t0).is_ok());
        }
        let wait = b.try_take(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert!(b.try_take(t0 + Duration::from_millis(500)).is_ok());
        assert!(b.try_take(t0 + Duration::from_millis(500)).is_err());
        // Refill stops at the burst.
        let later = t0 + Duration::from_secs(100);
        for _ in 0..3 {
            assert!(b.try_take(later).is_ok());
        }
        assert!(b.try_take(later).is_err());
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            RateLimit {
                per_second: 0.0,
                burst: 0,
            },
            t0,
        );
        for _ in 0..1000 {
            assert!(b.try_take(t0).is_ok());
        }
    }
}
