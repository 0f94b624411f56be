//! Cron schedules with the semantics of robfig/cron v3's standard parser, which Sensu uses
//! (sensu-compat 1.4 and 4): an optional `CRON_TZ=<zone>` or `TZ=<zone>` prefix, then a
//! descriptor (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
//! `@hourly`, `@every <Go duration>`) or five fields (minute, hour, day of month, month, day of
//! week) with `*`/`?`, ranges, steps, lists and three-letter month and weekday names.
//!
//! Time zones come from `jiff`: it reads the system's IANA database (`/usr/share/zoneinfo`,
//! kept current by the OS) and, built with `tzdb-bundle-always`, falls back to its bundled
//! copy on hosts without one (minimal containers), so a `CRON_TZ=` schedule never silently
//! runs in UTC. It is maintained, has no unsafe-platform dependencies on Linux, and exposes
//! the zone transitions that the next-fire computation below needs. A schedule without a zone
//! runs in the backend's local zone, as robfig's `time.Local` does.
//!
//! **Next fire** = the earliest instant strictly after `now`, on a whole minute, whose wall-clock
//! reading in the zone matches the fields. So a local time skipped by a DST change does not
//! fire that day, and a local time repeated by one fires at both instants (robfig behaves the
//! same way). The search walks the zone's constant-offset segments in order; inside one the
//! mapping between wall clock and instant is a plain shift, so the field search works on
//! civil dates and a DST change cannot make it skip or repeat anything by accident.

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use proto_spec::validate::parse_go_duration;

/// Set when a field was `*` or `?` (with no step above 1): the day-of-month/day-of-week
/// combination rule depends on it, as in robfig/cron.
const STAR: u64 = 1 << 63;

/// Schedules look at most this many years ahead (robfig's limit); a schedule with no match
/// in that time (`0 0 30 2 *`) never fires.
const YEAR_LIMIT: i64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(pub String);

#[derive(Debug, Clone)]
pub struct CronSchedule {
    kind: Kind,
    tz: TimeZone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Fields(Fields),
    /// `@every`: whole seconds, at least one.
    Every(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
}

struct Bounds {
    what: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Value of the first name.
    name_base: u32,
}

const MINUTE: Bounds = Bounds {
    what: "minute",
    min: 0,
    max: 59,
    names: &[],
    name_base: 0,
};
const HOUR: Bounds = Bounds {
    what: "hour",
    min: 0,
    max: 23,
    names: &[],
    name_base: 0,
};
const DOM: Bounds = Bounds {
    what: "day of month",
    min: 1,
    max: 31,
    names: &[],
    name_base: 0,
};
const MONTH: Bounds = Bounds {
    what: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
    name_base: 1,
};
const DOW: Bounds = Bounds {
    what: "day of week",
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    name_base: 0,
};

impl CronSchedule {
    /// Parse a schedule; the error says what is wrong in words an operator can act on.
    pub fn parse(spec: &str) -> Result<Self, CronError> {
        let fail = |why: String| Err(CronError(format!("cron schedule {spec:?}: {why}")));
        let mut s = spec.trim();
        if s.is_empty() {
            return Err(CronError("cron schedule cannot be empty".into()));
        }
        let mut tz = None;
        if let Some(rest) = s.strip_prefix("CRON_TZ=").or_else(|| s.strip_prefix("TZ=")) {
            let Some((zone, rest)) = rest.split_once(char::is_whitespace) else {
                return fail("a time zone must be followed by a schedule".into());
            };
            tz = Some(match zone {
                "Local" => TimeZone::system(),
                _ => match TimeZone::get(zone) {
                    Ok(z) => z,
                    Err(e) => return fail(format!("unknown time zone {zone:?}: {e}")),
                },
            });
            s = rest.trim();
        }
        let tz = tz.unwrap_or_else(TimeZone::system);
        let kind = match s.strip_prefix('@') {
            Some(desc) => match parse_descriptor(desc) {
                Ok(k) => k,
                Err(why) => return fail(why),
            },
            None => {
                let fields: Vec<&str> = s.split_whitespace().collect();
                if fields.len() != 5 {
                    return fail(format!(
                        "expected exactly 5 fields (minute hour day-of-month month day-of-week), found {}",
                        fields.len()
                    ));
                }
                let parsed = (|| -> Result<Fields, String> {
                    Ok(Fields {
                        minute: parse_field(fields[0], &MINUTE)?,
                        hour: parse_field(fields[1], &HOUR)?,
                        dom: parse_field(fields[2], &DOM)?,
                        month: parse_field(fields[3], &MONTH)?,
                        dow: parse_field(fields[4], &DOW)?,
                    })
                })();
                match parsed {
                    Ok(f) => Kind::Fields(f),
                    Err(why) => return fail(why),
                }
            }
        };
        Ok(CronSchedule { kind, tz })
    }

    /// The first firing strictly after `after`; `None` when there is none within five years.
    pub fn next(&self, after: Timestamp) -> Option<Timestamp> {
        match &self.kind {
            // robfig: `t + delay − t's nanoseconds`, which keeps a running schedule on whole
            // seconds whatever the timer latency.
            Kind::Every(secs) => Timestamp::from_second(after.as_second().checked_add(*secs)?).ok(),
            Kind::Fields(f) => self.next_fields(f, after),
        }
    }

    fn next_fields(&self, f: &Fields, after: Timestamp) -> Option<Timestamp> {
        // Whole minutes only (the standard parser's seconds field is 0): the first minute
        // boundary strictly after `after`.
        let start = after.as_second().div_euclid(60) * 60 + 60;
        let mut seg_start = Timestamp::from_second(start).ok()?;
        let limit_year =
            i64::from(self.tz.to_offset(seg_start).to_datetime(seg_start).year()) + YEAR_LIMIT;
        // Each iteration handles one span of constant UTC offset; zones change offset a few
        // times a year at most, so this ends quickly (the bound only guards odd zone data).
        for _ in 0..1000 {
            let offset = self.tz.to_offset(seg_start);
            let seg_end = self.tz.following(seg_start).next().map(|t| t.timestamp());
            let local = local_minutes(seg_start, offset);
            let found = next_civil(f, local, limit_year)?;
            let instant = found * 60 - i64::from(offset.seconds());
            let instant = Timestamp::from_second(instant).ok()?;
            match seg_end {
                Some(end) if instant >= end => seg_start = end,
                _ => return Some(instant),
            }
        }
        None
    }
}

/// Minutes since 1970-01-01T00:00 of the wall clock at `t` (rounded up to a whole minute).
fn local_minutes(t: Timestamp, offset: Offset) -> i64 {
    let secs = t.as_second() + i64::from(offset.seconds());
    // Round up: segment starts (zone transitions) are not always on a minute.
    (secs + 59).div_euclid(60)
}

fn parse_descriptor(desc: &str) -> Result<Kind, String> {
    let fields = |minute: u64, hour: u64, dom: u64, month: u64, dow: u64| {
        Kind::Fields(Fields {
            minute,
            hour,
            dom,
            month,
            dow,
        })
    };
    let all = |b: &Bounds| bits(b.min, b.max, 1) | STAR;
    Ok(match desc {
        "yearly" | "annually" => fields(1, 1, 1 << 1, 1 << 1, all(&DOW)),
        "monthly" => fields(1, 1, 1 << 1, all(&MONTH), all(&DOW)),
        "weekly" => fields(1, 1, all(&DOM), all(&MONTH), 1),
        "daily" | "midnight" => fields(1, 1, all(&DOM), all(&MONTH), all(&DOW)),
        "hourly" => fields(1, all(&HOUR), all(&DOM), all(&MONTH), all(&DOW)),
        _ => {
            let Some(d) = desc.strip_prefix("every ") else {
                return Err(format!("unrecognized descriptor @{desc}"));
            };
            let Some(secs) = parse_go_duration(d.trim()) else {
                return Err(format!(
                    "{:?} is not a duration such as 90s or 1h30m",
                    d.trim()
                ));
            };
            // robfig: below one second becomes one second; the rest is cut to whole seconds.
            Kind::Every((secs.floor() as i64).max(1))
        }
    })
}

fn bits(min: u32, max: u32, step: u32) -> u64 {
    (min..=max)
        .step_by(step as usize)
        .fold(0, |acc, v| acc | (1u64 << v))
}

fn parse_field(field: &str, b: &Bounds) -> Result<u64, String> {
    field.split(',').try_fold(0u64, |acc, part| {
        parse_range(part, b)
            .map(|v| acc | v)
            .map_err(|why| format!("{} {part:?}: {why}", b.what))
    })
}

/// One comma-separated part: `*`, `?`, `n`, `a-b`, each optionally `/step`; `n/step` means
/// `n-max/step`, as in robfig/cron.
fn parse_range(part: &str, b: &Bounds) -> Result<u64, String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = b.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + b.name_base);
        }
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("{s:?} is not a number or a known name"));
        }
        s.parse::<u32>()
            .map_err(|_| format!("{s:?} is out of range"))
    };
    let mut slash = part.split('/');
    let range = slash.next().unwrap_or_default();
    let step = slash.next();
    if slash.next().is_some() {
        return Err("too many slashes".into());
    }
    let mut hyphen = range.split('-');
    let low = hyphen.next().unwrap_or_default();
    let high = hyphen.next();
    if hyphen.next().is_some() {
        return Err("too many hyphens".into());
    }
    let mut star = false;
    let (start, mut end) = if low == "*" || low == "?" {
        star = true;
        (b.min, b.max)
    } else {
        let start = value(low)?;
        (start, high.map(value).transpose()?.unwrap_or(start))
    };
    let step = match step {
        None => 1,
        Some(st) => {
            let n = if !st.is_empty() && st.bytes().all(|c| c.is_ascii_digit()) {
                st.parse::<u32>().ok()
            } else {
                None
            };
            let Some(n) = n.filter(|n| *n > 0) else {
                return Err(format!("step {st:?} must be a positive number"));
            };
            if high.is_none() {
                end = b.max;
            }
            if n > 1 {
                star = false;
            }
            n
        }
    };
    if start < b.min {
        return Err(format!(
            "beginning of range {start} is below the minimum {}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!("end of range {end} is above the maximum {}", b.max));
    }
    if start > end {
        return Err(format!("beginning of range {start} is after its end {end}"));
    }
    Ok(bits(start, end, step) | if star { STAR } else { 0 })
}

fn has(set: u64, v: i64) -> bool {
    set & (1u64 << v) != 0
}

/// robfig's rule: when either day field is `*`, both must match (so the other one decides);
/// when both are restricted, either may match (classic cron's OR).
fn day_matches(f: &Fields, day: i64, weekday: i64) -> bool {
    let dom = has(f.dom, day);
    let dow = has(f.dow, weekday);
    if f.dom & STAR != 0 || f.dow & STAR != 0 {
        dom && dow
    } else {
        dom || dow
    }
}

/// The first wall-clock minute ≥ `from` (minutes since the epoch, civil) that matches, or
/// `None` past `limit_year`. Works like robfig's `Next`, field by field from the month down,
/// but on civil dates, where days are always 24 hours.
fn next_civil(f: &Fields, from: i64, limit_year: i64) -> Option<i64> {
    let mut days = from.div_euclid(1440);
    let mut minute_of_day = from.rem_euclid(1440);
    loop {
        let (y, m, d) = civil_from_days(days);
        if y > limit_year {
            return None;
        }
        if !has(f.month, m) {
            // First day of the next month.
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            days = days_from_civil(ny, nm, 1);
            minute_of_day = 0;
            continue;
        }
        let weekday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday.
        if !day_matches(f, d, weekday) {
            days += 1;
            minute_of_day = 0;
            continue;
        }
        let (mut h, mut mi) = (minute_of_day / 60, minute_of_day % 60);
        while h < 24 && !has(f.hour, h) {
            h += 1;
            mi = 0;
        }
        if h < 24 {
            while mi < 60 && !has(f.minute, mi) {
                mi += 1;
            }
            if mi < 60 {
                return Some(days * 1440 + h * 60 + mi);
            }
            // No minute left in this hour: try the next hour.
            minute_of_day = (h + 1) * 60;
            if minute_of_day < 1440 {
                continue;
            }
        }
        days += 1;
        minute_of_day = 0;
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `2024-03-10T06:59:30Z`-style UTC instants.
    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn utc(spec: &str) -> CronSchedule {
        CronSchedule::parse(&format!("CRON_TZ=UTC {spec}")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The next `n` firings after `from`, as RFC 3339 UTC strings.
    fn fires(s: &CronSchedule, from: &str, n: usize) -> Vec<String> {
        let mut t = ts(from);
        (0..n)
            .map(|_| {
                t = s.next(t).expect("a next firing");
                t.to_string()
            })
            .collect()
    }

    #[test]
    fn every_minute_fires_on_the_next_whole_minute_strictly_after() {
        let s = utc("* * * * *");
        assert_eq!(
            fires(&s, "2024-01-01T10:00:00Z", 2),
            ["2024-01-01T10:01:00Z", "2024-01-01T10:02:00Z"]
        );
        assert_eq!(
            fires(&s, "2024-01-01T10:00:59.999Z", 1),
            ["2024-01-01T10:01:00Z"]
        );
    }

    #[test]
    fn steps_ranges_and_lists() {
        assert_eq!(
            fires(&utc("*/15 * * * *"), "2024-01-01T10:07:00Z", 4),
            [
                "2024-01-01T10:15:00Z",
                "2024-01-01T10:30:00Z",
                "2024-01-01T10:45:00Z",
                "2024-01-01T11:00:00Z"
            ]
        );
        // `n/step` runs from n to the end of the range.
        assert_eq!(
            fires(&utc("50/5 * * * *"), "2024-01-01T10:00:00Z", 3),
            [
                "2024-01-01T10:50:00Z",
                "2024-01-01T10:55:00Z",
                "2024-01-01T11:50:00Z"
            ]
        );
        assert_eq!(
            fires(&utc("0 9-17/4 * * *"), "2024-01-01T10:00:00Z", 3),
            [
                "2024-01-01T13:00:00Z",
                "2024-01-01T17:00:00Z",
                "2024-01-02T09:00:00Z"
            ]
        );
        assert_eq!(
            fires(&utc("5,10,50-51 3 * * *"), "2024-01-01T03:07:00Z", 4),
            [
                "2024-01-01T03:10:00Z",
                "2024-01-01T03:50:00Z",
                "2024-01-01T03:51:00Z",
                "2024-01-02T03:05:00Z"
            ]
        );
    }

    #[test]
    fn month_and_weekday_names() {
        // 2024-01-01 is a Monday.
        assert_eq!(
            fires(&utc("0 8 * * MON-wed"), "2024-01-01T09:00:00Z", 3),
            [
                "2024-01-02T08:00:00Z",
                "2024-01-03T08:00:00Z",
                "2024-01-08T08:00:00Z"
            ]
        );
        assert_eq!(
            fires(&utc("0 0 1 feb,Aug *"), "2024-01-01T00:00:00Z", 3),
            [
                "2024-02-01T00:00:00Z",
                "2024-08-01T00:00:00Z",
                "2025-02-01T00:00:00Z"
            ]
        );
        assert_eq!(
            fires(&utc("0 12 * * sun"), "2024-01-01T00:00:00Z", 1),
            ["2024-01-07T12:00:00Z"]
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_combine_with_or_when_both_are_restricted() {
        // The 13th or any Friday: 2024-09-06 (Fri), 09-13 (Fri and 13th), 09-20 (Fri).
        assert_eq!(
            fires(&utc("0 0 13 * 5"), "2024-09-01T00:00:00Z", 4),
            [
                "2024-09-06T00:00:00Z",
                "2024-09-13T00:00:00Z",
                "2024-09-20T00:00:00Z",
                "2024-09-27T00:00:00Z"
            ]
        );
        // With `*` in one of them, only the other counts.
        assert_eq!(
            fires(&utc("0 0 13 * *"), "2024-09-01T00:00:00Z", 2),
            ["2024-09-13T00:00:00Z", "2024-10-13T00:00:00Z"]
        );
        assert_eq!(
            fires(&utc("0 0 * * 5"), "2024-09-01T00:00:00Z", 1),
            ["2024-09-06T00:00:00Z"]
        );
        // `*/1` is still a star; `*/2` is a restriction (robfig).
        assert_eq!(
            fires(&utc("0 0 13 * */1"), "2024-09-01T00:00:00Z", 1),
            ["2024-09-13T00:00:00Z"]
        );
        assert_eq!(
            fires(&utc("0 0 13 * */2"), "2024-09-01T00:00:00Z", 2),
            // Sunday 09-01 is not after the start minute; Tuesday 09-03, Thursday 09-05.
            ["2024-09-03T00:00:00Z", "2024-09-05T00:00:00Z"]
        );
    }

    #[test]
    fn month_ends_and_leap_days() {
        // The 31st skips the short months.
        assert_eq!(
            fires(&utc("0 0 31 * *"), "2024-01-31T00:00:00Z", 3),
            [
                "2024-03-31T00:00:00Z",
                "2024-05-31T00:00:00Z",
                "2024-07-31T00:00:00Z"
            ]
        );
        // Leap days: 2024, then 2028.
        assert_eq!(
            fires(&utc("30 6 29 2 *"), "2023-06-01T00:00:00Z", 2),
            ["2024-02-29T06:30:00Z", "2028-02-29T06:30:00Z"]
        );
        // Across a year end.
        assert_eq!(
            fires(&utc("59 23 31 12 *"), "2024-12-31T23:59:00Z", 1),
            ["2025-12-31T23:59:00Z"]
        );
        // Never (February 30th): no firing within the five-year horizon.
        assert_eq!(utc("0 0 30 2 *").next(ts("2024-01-01T00:00:00Z")), None);
    }

    #[test]
    fn descriptors() {
        let from = "2024-05-15T10:20:30Z";
        assert_eq!(fires(&utc("@yearly"), from, 1), ["2025-01-01T00:00:00Z"]);
        assert_eq!(fires(&utc("@annually"), from, 1), ["2025-01-01T00:00:00Z"]);
        assert_eq!(fires(&utc("@monthly"), from, 1), ["2024-06-01T00:00:00Z"]);
        // 2024-05-15 is a Wednesday.
        assert_eq!(fires(&utc("@weekly"), from, 1), ["2024-05-19T00:00:00Z"]);
        assert_eq!(fires(&utc("@daily"), from, 1), ["2024-05-16T00:00:00Z"]);
        assert_eq!(fires(&utc("@midnight"), from, 1), ["2024-05-16T00:00:00Z"]);
        assert_eq!(
            fires(&utc("@hourly"), from, 2),
            ["2024-05-15T11:00:00Z", "2024-05-15T12:00:00Z"]
        );
    }

    #[test]
    fn every_duration() {
        let s = CronSchedule::parse("@every 90s").unwrap();
        assert_eq!(
            fires(&s, "2024-05-15T10:20:30.250Z", 2),
            ["2024-05-15T10:22:00Z", "2024-05-15T10:23:30Z"]
        );
        let s = CronSchedule::parse("@every 1h30m").unwrap();
        assert_eq!(
            fires(&s, "2024-05-15T10:00:00Z", 1),
            ["2024-05-15T11:30:00Z"]
        );
        // Sub-second durations become one second.
        let s = CronSchedule::parse("@every 10ms").unwrap();
        assert_eq!(
            fires(&s, "2024-05-15T10:00:00Z", 1),
            ["2024-05-15T10:00:01Z"]
        );
    }

    #[test]
    fn new_york_across_dst_changes() {
        let s = CronSchedule::parse("CRON_TZ=America/New_York 0 9 * * *").unwrap();
        // 2024-03-10: clocks go from 02:00 EST to 03:00 EDT. 09:00 local stays 09:00 local.
        assert_eq!(
            fires(&s, "2024-03-09T00:00:00Z", 3),
            [
                "2024-03-09T14:00:00Z",
                "2024-03-10T13:00:00Z",
                "2024-03-11T13:00:00Z"
            ]
        );
        // A time in the skipped hour does not exist that day (2024-03-10).
        let s = CronSchedule::parse("TZ=America/New_York 30 2 * * *").unwrap();
        assert_eq!(
            fires(&s, "2024-03-09T12:00:00Z", 2),
            ["2024-03-11T06:30:00Z", "2024-03-12T06:30:00Z"]
        );
        // 2024-11-03: clocks go from 02:00 EDT back to 01:00 EST; 01:30 happens twice and
        // fires at both instants, as robfig/cron does.
        let s = CronSchedule::parse("CRON_TZ=America/New_York 30 1 * * *").unwrap();
        assert_eq!(
            fires(&s, "2024-11-02T12:00:00Z", 3),
            [
                "2024-11-03T05:30:00Z",
                "2024-11-03T06:30:00Z",
                "2024-11-04T06:30:00Z"
            ]
        );
        // An hourly schedule stays hourly through the repeated hour.
        let s = CronSchedule::parse("CRON_TZ=America/New_York 0 * * * *").unwrap();
        assert_eq!(
            fires(&s, "2024-11-03T04:30:00Z", 3),
            [
                "2024-11-03T05:00:00Z",
                "2024-11-03T06:00:00Z",
                "2024-11-03T07:00:00Z"
            ]
        );
        // From inside the first pass of the repeated hour (01:30 EDT), 01:15 EST comes
        // next although it reads earlier on the wall clock.
        let s = CronSchedule::parse("CRON_TZ=America/New_York 15 * * * *").unwrap();
        assert_eq!(
            fires(&s, "2024-11-03T05:30:00Z", 2),
            ["2024-11-03T06:15:00Z", "2024-11-03T07:15:00Z"]
        );
    }

    #[test]
    fn invalid_schedules_are_rejected_with_a_reason() {
        for (spec, says) in [
            ("", "empty"),
            ("* * * *", "exactly 5 fields"),
            ("* * * * * *", "exactly 5 fields"),
            (
                "60 * * * *",
                "minute \"60\": end of range 60 is above the maximum 59",
            ),
            ("* 24 * * *", "hour"),
            (
                "* * 0 * *",
                "day of month \"0\": beginning of range 0 is below the minimum 1",
            ),
            ("* * * 13 *", "month"),
            ("* * * * 7", "day of week"),
            ("* * * foo *", "\"foo\" is not a number"),
            ("*/0 * * * *", "step \"0\" must be a positive number"),
            ("5-1 * * * *", "beginning of range 5 is after its end 1"),
            ("1-2-3 * * * *", "too many hyphens"),
            ("1/2/3 * * * *", "too many slashes"),
            ("@fortnightly", "unrecognized descriptor @fortnightly"),
            ("@every soon", "not a duration"),
            (
                "CRON_TZ=Mars/Olympus_Mons * * * * *",
                "unknown time zone \"Mars/Olympus_Mons\"",
            ),
            ("CRON_TZ=UTC", "followed by a schedule"),
        ] {
            match CronSchedule::parse(spec) {
                Ok(_) => panic!("{spec:?} was accepted"),
                Err(e) => assert!(e.0.contains(says), "{spec:?}: {e} (wanted {says:?})"),
            }
        }
    }
}
