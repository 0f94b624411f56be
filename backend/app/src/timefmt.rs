//! Go's `time.Time.String()` layout for UTC instants, which Sensu puts in keepalive outputs
//! (`2006-01-02 15:04:05 +0000 UTC`), without pulling in a date library.

/// Format unix seconds as `YYYY-MM-DD hh:mm:ss +0000 UTC`.
pub fn go_time_string_utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(go_time_string_utc(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            go_time_string_utc(1_678_276_800),
            "2023-03-08 12:00:00 +0000 UTC"
        );
        assert_eq!(
            go_time_string_utc(951_782_400),
            "2000-02-29 00:00:00 +0000 UTC"
        );
        assert_eq!(go_time_string_utc(-1), "1969-12-31 23:59:59 +0000 UTC");
    }
}
