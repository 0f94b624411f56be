//! Pure parsers for the value syntaxes Sensu's flags use (Go bools and durations).

use std::time::Duration;

/// Go's `strconv.ParseBool`: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(format!("expected true or false, got {other:?}")),
    }
}

/// A whole number of seconds (Sensu's uint32 flags).
pub fn parse_seconds(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .map_err(|_| format!("expected a whole number of seconds, got {s:?}"))
}

pub(super) fn parse_count(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .map_err(|_| format!("expected a whole number, got {s:?}"))
}

/// A Go duration (`time.ParseDuration`): `1s`, `500ms`, `1h30m`, `1.5s`, or `0`. Negative
/// durations are rejected: none of the agent's durations may be negative.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let body = text.strip_prefix('+').unwrap_or(text);
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.starts_with('-') {
        return Err(format!("duration {text:?} must not be negative"));
    }
    if body.is_empty() {
        return Err("expected a duration such as 1s, 500ms or 2m".to_string());
    }
    let mut rest = body;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        rest = tail;
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(format!(
                    "duration {text:?} is missing a unit (e.g. \"{text}s\")"
                ));
            }
            u => {
                return Err(format!(
                    "duration {text:?} has unknown unit {u:?}; use ns, us, ms, s, m or h"
                ));
            }
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if (int.is_empty() && frac.is_empty()) || int.len() > 20 || frac.contains('.') {
            return Err(format!("invalid duration {text:?}"));
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse()
                .map_err(|_| format!("invalid duration {text:?}"))?
        };
        let frac = &frac[..frac.len().min(18)];
        let frac_nanos = if frac.is_empty() {
            0
        } else {
            let digits: u128 = frac
                .parse()
                .map_err(|_| format!("invalid duration {text:?}"))?;
            digits * scale / 10u128.pow(frac.len() as u32)
        };
        nanos = nanos
            .checked_add(
                int.checked_mul(scale)
                    .ok_or_else(|| format!("duration {text:?} is too large"))?,
            )
            .and_then(|n| n.checked_add(frac_nanos))
            .ok_or_else(|| format!("duration {text:?} is too large"))?;
    }
    let nanos = u64::try_from(nanos).map_err(|_| format!("duration {text:?} is too large"))?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ok = [
            ("0", Duration::ZERO),
            ("1s", Duration::from_secs(1)),
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            ("1h30m", Duration::from_secs(5400)),
            ("2m3s", Duration::from_secs(123)),
            ("10us", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            (".5s", Duration::from_millis(500)),
            ("0s", Duration::ZERO),
        ];
        for (s, d) in ok {
            assert_eq!(parse_go_duration(s), Ok(d), "{s}");
        }
        for bad in [
            "",
            "5",
            "-1s",
            "1x",
            "s",
            "1..5s",
            "1.s.",
            "99999999999999999999999h",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn go_bools() {
        assert_eq!(parse_go_bool("True"), Ok(true));
        assert_eq!(parse_go_bool("0"), Ok(false));
        assert!(parse_go_bool("yes").is_err());
    }
}
