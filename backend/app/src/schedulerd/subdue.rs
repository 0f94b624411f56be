//! Subdue windows (`subdues`, sensu-compat 1.4 and 4): while one is open, scheduled executions
//! are skipped. Pure functions, compiled once per check definition so that firing only
//! compares integers.
//!
//! A window is `[begin, end)` (half-open). Without `repeat` it is absolute. With `repeat`, it
//! recurs with the same length at the same wall-clock time of `begin`, read in `begin`'s own
//! UTC offset (as Sensu parses it), on the days the repeat names: `daily`, `weekdays`
//! (Monday–Friday), `weekends`, `weekly` (`begin`'s weekday), `sundays`…`saturdays`, `monthly`
//! (`begin`'s day of the month; months without that day have none) and `annually` (`begin`'s
//! month and day). No occurrence starts before `begin`.
//!
//! Picket does better than Sensu 6.9 here, on purpose: Sensu excludes both ends and only looks
//! at an occurrence starting on the current day, so a daily 22:00–02:00 window never covers
//! 01:00. Here an occurrence that started on an earlier day covers the time until it ends.

use proto_spec::v2::time_window::TimeWindowRepeated;
use proto_spec::validate::parse_rfc3339;

use super::cron::civil_from_days;

const NANOS_PER_SEC: i128 = 1_000_000_000;
const NANOS_PER_DAY: i128 = 86_400 * NANOS_PER_SEC;
/// Windows longer than this overlap their own next occurrence for every repeat kind.
const LOOKBACK_DAYS: i64 = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    Annually,
    Monthly,
    Weekly,
    Weekdays,
    Weekends,
    Daily,
    /// One weekday, 0 = Sunday.
    Weekday(i64),
}

/// One compiled window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Unix nanoseconds.
    begin: i128,
    length: i128,
    /// `begin`'s UTC offset in seconds: the calendar repetitions follow.
    offset: i64,
    repeats: Vec<Repeat>,
}

/// Compile `subdues`; entries that do not parse are dropped (the API validates them on write,
/// so only a hand-edited store can hold one).
pub fn compile(windows: &[TimeWindowRepeated]) -> Vec<Window> {
    windows.iter().filter_map(compile_one).collect()
}

fn compile_one(w: &TimeWindowRepeated) -> Option<Window> {
    let nanos = |s: &str| {
        parse_rfc3339(s).map(|(secs, ns)| i128::from(secs) * NANOS_PER_SEC + i128::from(ns))
    };
    let begin = nanos(&w.begin)?;
    let end = nanos(&w.end)?;
    if end <= begin {
        return None;
    }
    let repeats = w
        .repeat()
        .iter()
        .map(|r| {
            Some(match r.as_str() {
                "annually" => Repeat::Annually,
                "monthly" => Repeat::Monthly,
                "weekly" => Repeat::Weekly,
                "weekdays" => Repeat::Weekdays,
                "weekends" => Repeat::Weekends,
                "daily" => Repeat::Daily,
                "sundays" => Repeat::Weekday(0),
                "mondays" => Repeat::Weekday(1),
                "tuesdays" => Repeat::Weekday(2),
                "wednesdays" => Repeat::Weekday(3),
                "thursdays" => Repeat::Weekday(4),
                "fridays" => Repeat::Weekday(5),
                "saturdays" => Repeat::Weekday(6),
                _ => return None,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Window {
        begin,
        length: end - begin,
        offset: rfc3339_offset(&w.begin)?,
        repeats,
    })
}

/// The UTC offset written at the end of an RFC 3339 time (`Z` or `±hh:mm`), in seconds.
fn rfc3339_offset(s: &str) -> Option<i64> {
    if s.ends_with('Z') {
        return Some(0);
    }
    let tail = s.get(s.len().checked_sub(6)?..)?;
    let sign = match tail.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h: i64 = tail.get(1..3)?.parse().ok()?;
    let m: i64 = tail.get(4..6)?.parse().ok()?;
    Some(sign * (h * 3600 + m * 60))
}

/// Whether `now` (Unix nanoseconds) is inside any of the windows.
pub fn is_subdued(windows: &[Window], now: i128) -> bool {
    windows.iter().any(|w| w.contains(now))
}

impl Window {
    pub fn contains(&self, now: i128) -> bool {
        if now < self.begin {
            return false;
        }
        if self.repeats.is_empty() {
            return now < self.begin + self.length;
        }
        self.repeats.iter().any(|r| self.repeat_contains(*r, now))
    }

    fn repeat_contains(&self, repeat: Repeat, now: i128) -> bool {
        let off = i128::from(self.offset) * NANOS_PER_SEC;
        // Wall-clock time of day of `begin`, in its own offset.
        let begin_local = self.begin + off;
        let time_of_day = begin_local.rem_euclid(NANOS_PER_DAY);
        let begin_day = begin_local.div_euclid(NANOS_PER_DAY) as i64;
        let (_, begin_month, begin_dom) = civil_from_days(begin_day);
        let begin_weekday = weekday(begin_day);
        let today = (now + off).div_euclid(NANOS_PER_DAY) as i64;
        // An occurrence that started `back` days ago can still be open only if the window is
        // longer than that, so only that many days need a look.
        let span_days = (self.length / NANOS_PER_DAY) as i64 + 1;
        if span_days > LOOKBACK_DAYS {
            // Longer than any repeat period (a year at most): open from `begin` on.
            return true;
        }
        (0..=span_days).any(|back| {
            let day = today - back;
            let (_, month, dom) = civil_from_days(day);
            let wd = weekday(day);
            let occurs = match repeat {
                Repeat::Daily => true,
                Repeat::Weekdays => (1..=5).contains(&wd),
                Repeat::Weekends => wd == 0 || wd == 6,
                Repeat::Weekly => wd == begin_weekday,
                Repeat::Weekday(w) => wd == w,
                Repeat::Monthly => dom == begin_dom,
                Repeat::Annually => dom == begin_dom && month == begin_month,
            };
            if !occurs {
                return false;
            }
            let start = i128::from(day) * NANOS_PER_DAY + time_of_day - off;
            start >= self.begin && start <= now && now < start + self.length
        })
    }
}

/// 0 = Sunday; 1970-01-01 was a Thursday.
fn weekday(days: i64) -> i64 {
    (days + 4).rem_euclid(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(begin: &str, end: &str, repeat: &[&str]) -> Vec<Window> {
        let w = compile(&[TimeWindowRepeated {
            begin: begin.into(),
            end: end.into(),
            repeat: Some(repeat.iter().map(|s| s.to_string()).collect()),
        }]);
        assert_eq!(w.len(), 1, "window {begin}..{end} compiles");
        w
    }

    fn at(s: &str) -> i128 {
        let (secs, ns) = parse_rfc3339(s).unwrap_or_else(|| panic!("bad time {s}"));
        i128::from(secs) * NANOS_PER_SEC + i128::from(ns)
    }

    #[test]
    fn absolute_window_is_half_open() {
        let w = window("2024-06-01T10:00:00Z", "2024-06-01T12:00:00Z", &[]);
        assert!(!is_subdued(&w, at("2024-06-01T09:59:59Z")));
        assert!(is_subdued(&w, at("2024-06-01T10:00:00Z")));
        assert!(is_subdued(&w, at("2024-06-01T11:59:59.999Z")));
        assert!(!is_subdued(&w, at("2024-06-01T12:00:00Z")));
        assert!(!is_subdued(&w, at("2024-06-02T11:00:00Z")), "no repeat");
        // Offsets are honoured: 10:00+02:00 is 08:00Z.
        let w = window(
            "2024-06-01T10:00:00+02:00",
            "2024-06-01T11:00:00+02:00",
            &[],
        );
        assert!(is_subdued(&w, at("2024-06-01T08:30:00Z")));
        assert!(!is_subdued(&w, at("2024-06-01T10:30:00Z")));
    }

    #[test]
    fn daily_window_across_midnight() {
        let w = window("2024-06-01T22:00:00Z", "2024-06-02T02:00:00Z", &["daily"]);
        assert!(
            !is_subdued(&w, at("2024-06-01T21:00:00Z")),
            "before the first"
        );
        assert!(is_subdued(&w, at("2024-06-01T23:00:00Z")));
        assert!(is_subdued(&w, at("2024-06-02T01:59:59Z")));
        assert!(!is_subdued(&w, at("2024-06-02T02:00:00Z")));
        assert!(!is_subdued(&w, at("2024-06-02T12:00:00Z")));
        // Months later, both sides of midnight.
        assert!(is_subdued(&w, at("2024-09-15T22:00:00Z")));
        assert!(is_subdued(&w, at("2024-09-16T00:30:00Z")));
        assert!(!is_subdued(&w, at("2024-09-16T03:00:00Z")));
        // Earlier than the first occurrence on its own day does not count.
        assert!(!is_subdued(&w, at("2024-06-01T01:00:00Z")));
    }

    #[test]
    fn daily_window_in_a_local_offset() {
        // 09:00–10:00 at -05:00 is 14:00–15:00Z every day.
        let w = window(
            "2024-01-01T09:00:00-05:00",
            "2024-01-01T10:00:00-05:00",
            &["daily"],
        );
        assert!(is_subdued(&w, at("2024-03-05T14:30:00Z")));
        assert!(!is_subdued(&w, at("2024-03-05T09:30:00Z")));
    }

    #[test]
    fn weekdays_and_weekends() {
        // 2024-06-03 is a Monday. 08:00–18:00 on weekdays.
        let w = window(
            "2024-06-03T08:00:00Z",
            "2024-06-03T18:00:00Z",
            &["weekdays"],
        );
        for day in 3..=7 {
            assert!(
                is_subdued(&w, at(&format!("2024-06-{day:02}T12:00:00Z"))),
                "June {day}"
            );
        }
        assert!(!is_subdued(&w, at("2024-06-08T12:00:00Z")), "Saturday");
        assert!(!is_subdued(&w, at("2024-06-09T12:00:00Z")), "Sunday");
        assert!(
            !is_subdued(&w, at("2024-06-10T19:00:00Z")),
            "Monday evening"
        );
        let w = window(
            "2024-06-08T00:00:00Z",
            "2024-06-09T00:00:00Z",
            &["weekends"],
        );
        assert!(is_subdued(&w, at("2024-06-15T03:00:00Z")), "Saturday");
        assert!(is_subdued(&w, at("2024-06-16T23:00:00Z")), "Sunday");
        assert!(!is_subdued(&w, at("2024-06-17T00:00:00Z")), "Monday");
    }

    #[test]
    fn weekly_and_named_days() {
        // Wednesday 2024-06-05 20:00 for three hours, every week.
        let w = window("2024-06-05T20:00:00Z", "2024-06-05T23:00:00Z", &["weekly"]);
        assert!(is_subdued(&w, at("2024-06-12T21:00:00Z")));
        assert!(is_subdued(&w, at("2024-07-03T22:59:00Z")));
        assert!(!is_subdued(&w, at("2024-06-13T21:00:00Z")), "Thursday");
        // A Friday-night window into Saturday, named by day.
        let w = window("2024-06-07T23:00:00Z", "2024-06-08T01:00:00Z", &["fridays"]);
        assert!(is_subdued(&w, at("2024-06-15T00:30:00Z")), "Saturday early");
        assert!(!is_subdued(&w, at("2024-06-16T00:30:00Z")), "Sunday early");
        // Several repeats: any of them.
        let w = window(
            "2024-06-03T01:00:00Z",
            "2024-06-03T02:00:00Z",
            &["mondays", "thursdays"],
        );
        assert!(is_subdued(&w, at("2024-06-06T01:30:00Z")));
        assert!(!is_subdued(&w, at("2024-06-05T01:30:00Z")));
    }

    #[test]
    fn monthly_and_annually() {
        let w = window("2024-01-31T00:00:00Z", "2024-01-31T06:00:00Z", &["monthly"]);
        assert!(is_subdued(&w, at("2024-03-31T03:00:00Z")));
        assert!(
            !is_subdued(&w, at("2024-04-30T03:00:00Z")),
            "April has no 31st"
        );
        let w = window(
            "2024-12-24T18:00:00Z",
            "2024-12-26T00:00:00Z",
            &["annually"],
        );
        assert!(is_subdued(&w, at("2025-12-25T12:00:00Z")));
        assert!(!is_subdued(&w, at("2025-12-26T12:00:00Z")));
        assert!(!is_subdued(&w, at("2025-11-25T12:00:00Z")));
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(rfc3339_offset("2024-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_offset("2024-01-01T00:00:00+05:30"), Some(19_800));
        assert_eq!(rfc3339_offset("2024-01-01T00:00:00.5-08:00"), Some(-28_800));
    }
}
