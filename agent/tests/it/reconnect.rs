//! Backoff math and backend rotation, with seeded RNGs.

use std::time::Duration;

use agent::config::{BackendUrl, RetryConfig};
use agent::reconnect::{BackendRotation, Backoff, session_length};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn retry(min_ms: u64, max_ms: u64, multiplier: f64) -> RetryConfig {
    RetryConfig {
        min: Duration::from_millis(min_ms),
        max: Duration::from_millis(max_ms),
        multiplier,
    }
}

#[test]
fn waits_grow_with_jitter_and_cap() {
    let mut b = Backoff::new(retry(1000, 120_000, 2.0), StdRng::seed_from_u64(7));
    let waits: Vec<Duration> = (0..10).map(|_| b.next_wait()).collect();
    // Attempt n waits base·(1 + jitter) with base = min·2^n, jitter in [0, 1), capped at max.
    for (n, w) in waits.iter().enumerate() {
        let base = Duration::from_millis(1000 * 2u64.pow(n as u32)).min(Duration::from_secs(120));
        assert!(*w >= base, "attempt {n}: {w:?} < {base:?}");
        assert!(
            *w < base * 2 || *w == Duration::from_secs(120),
            "attempt {n}: {w:?}"
        );
        assert!(*w <= Duration::from_secs(120));
    }
    assert_eq!(waits[9], Duration::from_secs(120));
    // Deterministic for a seed.
    let mut again = Backoff::new(retry(1000, 120_000, 2.0), StdRng::seed_from_u64(7));
    let replay: Vec<Duration> = (0..10).map(|_| again.next_wait()).collect();
    assert_eq!(waits, replay);
}

#[test]
fn reset_and_throttle() {
    let mut b = Backoff::new(retry(100, 1000, 3.0), StdRng::seed_from_u64(1));
    b.next_wait();
    b.next_wait();
    assert_eq!(b.parameters().2, Duration::from_millis(900));
    b.reset();
    assert_eq!(
        b.parameters(),
        (
            Duration::from_millis(100),
            Duration::from_millis(1000),
            Duration::from_millis(100)
        )
    );
    // HTTP 429 doubles the parameters.
    b.throttle();
    assert_eq!(
        b.parameters(),
        (
            Duration::from_millis(200),
            Duration::from_millis(2000),
            Duration::from_millis(200)
        )
    );
    let w = b.next_wait();
    assert!(
        w >= Duration::from_millis(200) && w < Duration::from_millis(400),
        "{w:?}"
    );
    b.reset();
    assert_eq!(b.parameters().1, Duration::from_millis(1000));
}

#[test]
fn throttle_is_bounded() {
    let mut b = Backoff::new(retry(1000, 120_000, 2.0), StdRng::seed_from_u64(3));
    for _ in 0..40 {
        b.throttle();
    }
    let (min, max, base) = b.parameters();
    assert_eq!(max, Duration::from_secs(3600));
    assert!(min <= max && base <= max);
    assert!(b.next_wait() <= Duration::from_secs(3600));
}

#[test]
fn rotation_is_a_permutation_then_round_robin() {
    let urls: Vec<BackendUrl> = ["ws://a", "ws://b", "ws://c"]
        .iter()
        .map(|u| u.parse().unwrap())
        .collect();
    let mut rng = StdRng::seed_from_u64(42);
    let mut rot = BackendRotation::new(urls.clone(), &mut rng);
    let first: Vec<String> = (0..3).map(|_| rot.next_url().host.clone()).collect();
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, ["a", "b", "c"]);
    let second: Vec<String> = (0..3).map(|_| rot.next_url().host.clone()).collect();
    assert_eq!(first, second);
    // Different seeds give different orders for some seed (the permutation is random).
    let orders: std::collections::BTreeSet<Vec<String>> = (0..20)
        .map(|seed| {
            let mut r = BackendRotation::new(urls.clone(), &mut StdRng::seed_from_u64(seed));
            (0..3).map(|_| r.next_url().host.clone()).collect()
        })
        .collect();
    assert!(orders.len() > 1);
}

#[test]
fn session_length_jitter() {
    let mut rng = StdRng::seed_from_u64(9);
    for _ in 0..100 {
        let l = session_length(Duration::from_secs(100), &mut rng);
        assert!(
            l > Duration::from_secs(50) && l <= Duration::from_secs(100),
            "{l:?}"
        );
    }
}
