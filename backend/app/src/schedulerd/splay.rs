//! Interval timing (sensu-compat 4): Sensu's deterministic splay, so that every backend fires
//! a check at the same instant without talking to the others, and restarts keep the phase.

use std::time::Duration;

use md5::{Digest, Md5};

/// `splay = little-endian u64 of the first 8 bytes of md5(check name)`.
pub fn splay(check_name: &str) -> u64 {
    let digest = Md5::digest(check_name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// Nanoseconds from `now_unix_nanos` to the check's next firing:
/// `(splay − now) mod (interval·1e9)` in unsigned 64-bit wrap arithmetic, as Sensu computes
/// it (the wrap is part of the formula: all backends must agree bit for bit).
pub fn first_fire_offset(splay: u64, now_unix_nanos: u64, interval_secs: u32) -> u64 {
    let period = u64::from(interval_secs.max(1)) * 1_000_000_000;
    splay.wrapping_sub(now_unix_nanos) % period
}

/// Correction of a running interval timer against the wall-clock grid of the splay formula.
///
/// The timer chains monotonic deadlines (`previous + interval`), which neither drifts with
/// wake-up latency nor double-fires when the wall clock reads a hair early. A chain started
/// from the wall clock stays on the grid other backends use unless the wall clock is stepped
/// (NTP, a suspended VM); then the chain must move to the new grid. Given the time left until
/// the chained deadline and the time left until the next grid point by the wall clock (both
/// in ns), returns the shift to apply to the chained deadline, if it is off by more than
/// `tolerance`. The shift is the smallest one, in (−interval/2, interval/2].
pub fn realign(chain_left: u64, wall_left: u64, interval: Duration, tolerance: Duration) -> i64 {
    let period = interval.as_nanos() as i128;
    if period == 0 {
        return 0;
    }
    let mut diff = (i128::from(wall_left) - i128::from(chain_left)).rem_euclid(period);
    if diff > period / 2 {
        diff -= period;
    }
    if diff.unsigned_abs() > tolerance.as_nanos() {
        diff as i64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// md5 digests from coreutils' `md5sum`, not from the crate under test.
    const DIGESTS: &[(&str, &str)] = &[
        ("check-cpu", "79c5d1d4ff119d030341720454c207ce"),
        ("keepalive", "797919b5a9c95dfae9b06cf3086e40c1"),
        ("disk_usage", "78f7ddc527b49ca14df11b8366eb8be1"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
    ];

    /// The definition, by other means: bytes 0..8 of the digest, byte i worth 256^i.
    fn splay_by_hand(hex: &str) -> u64 {
        (0..8).fold(0u64, |acc, i| {
            let byte = u64::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
            acc + (byte << (8 * i))
        })
    }

    #[test]
    fn splay_is_the_little_endian_head_of_the_md5() {
        for (name, hex) in DIGESTS {
            assert_eq!(splay(name), splay_by_hand(hex), "{name}");
        }
        assert_eq!(splay("a"), 0xa8b6_f1c0_b975_c10c);
    }

    #[test]
    fn first_fire_offset_matches_the_wrapping_formula() {
        let instants = [
            0u64,
            1_700_000_000_123_456_789,
            1_735_689_600_000_000_000,
            u64::MAX,
        ];
        for (name, hex) in DIGESTS {
            let s = splay_by_hand(hex);
            for now in instants {
                for interval in [1u32, 10, 60, 3600, 86_400] {
                    let period = i128::from(interval) * 1_000_000_000;
                    // Unsigned 64-bit subtraction is subtraction modulo 2^64.
                    let wrapped = (i128::from(s) - i128::from(now)).rem_euclid(1i128 << 64);
                    let want = (wrapped % period) as u64;
                    assert_eq!(
                        first_fire_offset(splay(name), now, interval),
                        want,
                        "{name} at {now} every {interval}s"
                    );
                }
            }
        }
        // Two backends reading the clock 3 ms apart aim at the same instant.
        let s = splay("check-cpu");
        let t = 1_700_000_000_000_000_000u64;
        let a = t + first_fire_offset(s, t, 60);
        let b = t + 3_000_000 + first_fire_offset(s, t + 3_000_000, 60);
        assert_eq!(a, b);
    }

    #[test]
    fn realign_ignores_small_differences_and_follows_steps() {
        let i = Duration::from_secs(10);
        let tol = Duration::from_millis(50);
        let s = 1_000_000_000u64;
        // On the grid, or a hair off either way (including across the grid point).
        assert_eq!(realign(9 * s, 9 * s, i, tol), 0);
        assert_eq!(realign(9 * s, 9 * s + 1_000_000, i, tol), 0);
        assert_eq!(realign(10 * s - 1_000, 1_000, i, tol), 0);
        // The wall clock was stepped forward by 2 s: the next grid point is 2 s sooner.
        assert_eq!(realign(9 * s, 7 * s, i, tol), -2_000_000_000);
        // Stepped back by 3 s: 3 s later.
        assert_eq!(realign(5 * s, 8 * s, i, tol), 3_000_000_000);
        // A half-period step picks the forward shift.
        assert_eq!(realign(5 * s, 0, i, tol), 5_000_000_000);
    }
}
