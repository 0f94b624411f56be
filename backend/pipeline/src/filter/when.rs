//! `when` time windows (sensu-compat 1.8): Go kitchen times (`3:04PM`) in UTC, bounds
//! inclusive, minute resolution; `end` before `begin` is an overnight window (from `begin` to
//! midnight and from midnight to `end`, on the same day's list, as Sensu evaluates it). The
//! ranges under `all` and under the current weekday count.

use proto_spec::v2::time_window::{TimeWindowTimeRange, TimeWindowWhen};
use proto_spec::validate::parse_kitchen;

/// Whether Unix time `now` falls in one of the windows.
pub fn in_windows(when: &TimeWindowWhen, now: i64) -> bool {
    let days = now.div_euclid(86_400);
    let minute = u32::try_from(now.rem_euclid(86_400) / 60).unwrap_or(0);
    // 1970-01-01 was a Thursday (4).
    let weekday = (days + 4).rem_euclid(7);
    let d = &when.days;
    let today = match weekday {
        0 => &d.sunday,
        1 => &d.monday,
        2 => &d.tuesday,
        3 => &d.wednesday,
        4 => &d.thursday,
        5 => &d.friday,
        _ => &d.saturday,
    };
    d.all.iter().chain(today).any(|r| in_range(r, minute))
}

fn in_range(r: &TimeWindowTimeRange, minute: u32) -> bool {
    let (Some(begin), Some(end)) = (parse_kitchen(&r.begin), parse_kitchen(&r.end)) else {
        tracing::warn!(begin = %r.begin, end = %r.end, "Invalid time window; ignored");
        return false;
    };
    if end < begin {
        minute >= begin || minute <= end
    } else {
        minute >= begin && minute <= end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_spec::v2::time_window::TimeWindowDays;

    fn range(b: &str, e: &str) -> Vec<TimeWindowTimeRange> {
        vec![TimeWindowTimeRange {
            begin: b.into(),
            end: e.into(),
        }]
    }

    // 2024-06-03 00:00 UTC, a Monday.
    const MONDAY: i64 = 1_717_372_800;

    fn at(h: i64, m: i64) -> i64 {
        MONDAY + h * 3600 + m * 60
    }

    #[test]
    fn day_ranges_are_inclusive() {
        let w = TimeWindowWhen {
            days: TimeWindowDays {
                monday: range("9:00AM", "5:00PM"),
                ..Default::default()
            },
        };
        assert!(in_windows(&w, at(9, 0)));
        assert!(in_windows(&w, at(17, 0) + 59));
        assert!(!in_windows(&w, at(17, 1)));
        assert!(!in_windows(&w, at(8, 59)));
        // Tuesday at noon: no tuesday range.
        assert!(!in_windows(&w, at(36, 0)));
    }

    #[test]
    fn overnight_windows_and_all() {
        let w = TimeWindowWhen {
            days: TimeWindowDays {
                all: range("10:00PM", "2:00AM"),
                ..Default::default()
            },
        };
        assert!(in_windows(&w, at(23, 30)));
        assert!(in_windows(&w, at(1, 0)));
        assert!(in_windows(&w, at(2, 0)));
        assert!(!in_windows(&w, at(12, 0)));
        assert!(!in_windows(&w, at(2, 1)));
        // 12:00AM is midnight, 12:00PM noon.
        let w = TimeWindowWhen {
            days: TimeWindowDays {
                sunday: range("12:00AM", "12:00PM"),
                ..Default::default()
            },
        };
        assert!(in_windows(&w, at(-24, 0) + 5));
        assert!(!in_windows(&w, at(-12, 1)));
    }
}
