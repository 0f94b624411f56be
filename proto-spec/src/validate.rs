//! Validation rules shared by every resource (sensu-compat section 0).

/// A resource failed validation; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Most subscriptions an entity (besides its own `entity:<name>`) or a check may have. Sensu
/// sets no limit; every subscription is a bus topic a session joins and a scheduler fans out
/// to, so an unbounded list is a cheap way to slow a backend down. Real ones hold a handful.
pub const MAX_SUBSCRIPTIONS: usize = 256;

/// Most labels, and separately most annotations, one resource's metadata may hold. Filters,
/// redaction and token substitution walk them for every event.
pub const MAX_LABELS: usize = 256;

/// `items` (named `field`) has at most `max` entries.
pub fn validate_count(field: &str, len: usize, max: usize) -> Result<(), ValidationError> {
    if len > max {
        Err(ValidationError::new(
            field,
            format!("{len} entries exceed the limit of {max}"),
        ))
    } else {
        Ok(())
    }
}

/// The size limits of an object's metadata: at most [`MAX_LABELS`] labels and as many
/// annotations.
pub fn validate_metadata_limits(meta: &crate::meta::ObjectMeta) -> Result<(), ValidationError> {
    validate_count("metadata.labels", meta.labels.len(), MAX_LABELS)?;
    validate_count("metadata.annotations", meta.annotations.len(), MAX_LABELS)
}

/// An entity's subscriptions within [`MAX_SUBSCRIPTIONS`], not counting the `entity:<name>`
/// one the backend adds itself.
pub fn validate_entity_subscriptions(
    name: &str,
    subscriptions: &[String],
) -> Result<(), ValidationError> {
    let own = format!("entity:{name}");
    let n = subscriptions.iter().filter(|s| **s != own).count();
    validate_count("subscriptions", n, MAX_SUBSCRIPTIONS)
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Resource names (checks, handlers, entities, hooks, filters, mutators, entity_class,
/// proxy_entity_name): `\A[\w\.\-\:]+\z`, ASCII word characters as Go's RE2 defines `\w`.
pub fn validate_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(field, "name cannot be empty"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(is_word(*c) || matches!(c, '.' | '-' | ':')))
    {
        return Err(ValidationError::new(
            field,
            format!(
                "name {name:?} contains {bad:?}; only letters, digits, '_', '.', '-' and ':' are allowed"
            ),
        ));
    }
    Ok(())
}

/// Usernames: `\A[a-z0-9\_\.\-]+\z`.
pub fn validate_username(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(field, "username cannot be empty"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')))
    {
        return Err(ValidationError::new(
            field,
            format!(
                "username {name:?} contains {bad:?}; only lower-case letters, digits, '_', '.' and '-' are allowed"
            ),
        ));
    }
    Ok(())
}

/// Subscriptions: `\A[\w\.\-]+(\:?[\w\.\-]+)?\z`, i.e. at most one colon, not first or last.
pub fn validate_subscription(field: &str, sub: &str) -> Result<(), ValidationError> {
    let ok_part = |p: &str| !p.is_empty() && p.chars().all(|c| is_word(c) || c == '.' || c == '-');
    let valid = match sub.split_once(':') {
        None => ok_part(sub),
        Some((a, b)) => ok_part(a) && ok_part(b),
    };
    if valid {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "subscription {sub:?} is invalid; use letters, digits, '_', '.', '-' and at most one ':' inside"
            ),
        ))
    }
}

impl ValidationError {
    /// The same error seen from an enclosing object: `check.interval` instead of `interval`.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

/// Asset names: `^[\w\/\_\.\-\:]+$` (names such as `sensu/sensu-slack-handler`).
pub fn validate_asset_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(field, "asset name cannot be empty"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(is_word(*c) || matches!(c, '/' | '.' | '-' | ':')))
    {
        return Err(ValidationError::new(
            field,
            format!(
                "asset name {name:?} contains {bad:?}; only letters, digits, '_', '/', '.', '-' and ':' are allowed"
            ),
        ));
    }
    Ok(())
}

/// Every namespaced resource needs `metadata.namespace`.
pub fn require_namespace(namespace: &str) -> Result<(), ValidationError> {
    if namespace.is_empty() {
        Err(ValidationError::new(
            "metadata.namespace",
            "namespace must be set",
        ))
    } else {
        Ok(())
    }
}

/// Lists such as `handlers` and `subscriptions` may not hold blank entries (Sensu rejects them
/// because an empty name can never match anything).
pub fn validate_no_blank(field: &str, items: &[String]) -> Result<(), ValidationError> {
    match items.iter().position(|s| s.trim().is_empty()) {
        Some(i) => Err(ValidationError::new(
            format!("{field}[{i}]"),
            "entries cannot be empty strings",
        )),
        None => Ok(()),
    }
}

/// Each of `runtime_assets` must be a valid asset name.
pub fn validate_asset_names(field: &str, names: &[String]) -> Result<(), ValidationError> {
    for (i, n) in names.iter().enumerate() {
        validate_asset_name(&format!("{field}[{i}]"), n)?;
    }
    Ok(())
}

/// `env_vars` entries are `KEY=VALUE` with a non-empty key.
pub fn validate_env_vars(field: &str, vars: &[String]) -> Result<(), ValidationError> {
    for (i, v) in vars.iter().enumerate() {
        match v.split_once('=') {
            Some((k, _)) if !k.is_empty() => {}
            _ => {
                return Err(ValidationError::new(
                    format!("{field}[{i}]"),
                    format!("environment variable {v:?} must have the form KEY=VALUE"),
                ));
            }
        }
    }
    Ok(())
}

/// Check hook list types: an exit status `"0"`–`"255"` or a severity name.
pub const CHECK_HOOK_TYPES: &[&str] = &["ok", "warning", "critical", "unknown", "non-zero"];

pub fn validate_check_hook_type(field: &str, ty: &str) -> Result<(), ValidationError> {
    let numeric = !ty.is_empty()
        && ty.len() <= 3
        && ty.bytes().all(|b| b.is_ascii_digit())
        && ty.parse::<u32>().is_ok_and(|n| n <= 255);
    if numeric || CHECK_HOOK_TYPES.contains(&ty) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "check hook type {ty:?} is invalid; use an exit status \"0\" to \"255\" or one of {}",
                CHECK_HOOK_TYPES.join(", ")
            ),
        ))
    }
}

/// `output_metric_format` values (empty means "no extraction").
pub const OUTPUT_METRIC_FORMATS: &[&str] = &[
    "nagios_perfdata",
    "graphite_plaintext",
    "influxdb_line",
    "opentsdb_line",
    "prometheus_text",
];

pub fn validate_output_metric_format(field: &str, f: &str) -> Result<(), ValidationError> {
    if f.is_empty() || OUTPUT_METRIC_FORMATS.contains(&f) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "output metric format {f:?} is invalid; use one of {}",
                OUTPUT_METRIC_FORMATS.join(", ")
            ),
        ))
    }
}

/// RBAC verbs.
pub const RBAC_VERBS: &[&str] = &["*", "get", "list", "create", "update", "delete"];

/// A cron schedule as robfig/cron v3's standard parser accepts it: an optional `CRON_TZ=<zone>`
/// or `TZ=<zone>` prefix, then a descriptor (`@hourly`, `@every 1h30m`, ...) or exactly five
/// fields (minute, hour, day of month, month, day of week). The zone name is only checked for
/// shape: the time zone database belongs to whoever schedules the check.
pub fn validate_cron(field: &str, spec: &str) -> Result<(), ValidationError> {
    let err = |reason: String| Err(ValidationError::new(field, reason));
    let mut s = spec.trim();
    if s.is_empty() {
        return err("cron schedule cannot be empty".into());
    }
    if let Some(rest) = s.strip_prefix("CRON_TZ=").or_else(|| s.strip_prefix("TZ=")) {
        let Some((tz, rest)) = rest.split_once(char::is_whitespace) else {
            return err(format!(
                "cron schedule {spec:?} has a time zone but no schedule after it"
            ));
        };
        if tz.is_empty() {
            return err(format!("cron schedule {spec:?} has an empty time zone"));
        }
        s = rest.trim();
    }
    if let Some(desc) = s.strip_prefix('@') {
        return match desc {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            _ => match desc.strip_prefix("every") {
                Some(d) if d.starts_with(char::is_whitespace) => {
                    if parse_go_duration(d.trim()).is_some() {
                        Ok(())
                    } else {
                        err(format!(
                            "cron schedule {spec:?}: {:?} is not a duration such as 90s or 1h30m",
                            d.trim()
                        ))
                    }
                }
                _ => err(format!(
                    "cron schedule {spec:?}: unknown descriptor @{desc}"
                )),
            },
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return err(format!(
            "cron schedule {spec:?} must have exactly 5 fields (minute hour day-of-month month day-of-week), found {}",
            fields.len()
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let specs: [(&str, u32, u32, &[&str], u32); 5] = [
        ("minute", 0, 59, &[], 0),
        ("hour", 0, 23, &[], 0),
        ("day of month", 1, 31, &[], 0),
        ("month", 1, 12, MONTHS, 1),
        ("day of week", 0, 6, DAYS, 0),
    ];
    for (value, (what, min, max, names, name_base)) in fields.iter().zip(specs) {
        for part in value.split(',') {
            if let Err(reason) = cron_range(part, min, max, names, name_base) {
                return err(format!("cron schedule {spec:?}: {what} {part:?}: {reason}"));
            }
        }
    }
    Ok(())
}

fn cron_range(
    part: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
) -> Result<(), String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + name_base);
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{s:?} is not a number"));
        }
        s.parse::<u32>()
            .map_err(|_| format!("{s:?} is out of range"))
    };
    let (range, step) = match part.split_once('/') {
        Some((r, st)) => (r, Some(st)),
        None => (part, None),
    };
    let (start, end) = if range == "*" || range == "?" {
        (min, max)
    } else {
        let mut bounds = range.split('-');
        let lo = value(bounds.next().unwrap_or_default())?;
        let hi = match bounds.next() {
            Some(h) => value(h)?,
            // `5/15` means "from 5 to the end, every 15".
            None if step.is_some() => max,
            None => lo,
        };
        if bounds.next().is_some() {
            return Err("too many hyphens".into());
        }
        (lo, hi)
    };
    if start < min {
        return Err(format!(
            "beginning of range {start} is below the minimum {min}"
        ));
    }
    if end > max {
        return Err(format!("end of range {end} is above the maximum {max}"));
    }
    if start > end {
        return Err(format!("beginning of range {start} is after its end {end}"));
    }
    if let Some(st) = step {
        match st.parse::<u32>() {
            Ok(n) if n > 0 && st.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => return Err(format!("step {st:?} must be a positive number")),
        }
    }
    Ok(())
}

/// A Go `time.ParseDuration` string (`300ms`, `-1.5h`, `2h45m`), in seconds.
pub fn parse_go_duration(s: &str) -> Option<f64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let n: f64 = num.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    Some(if neg { -total } else { total })
}

/// A Go `time.Kitchen` time (`3:04PM`), as minutes after midnight. Hours take one or two
/// digits, minutes exactly two, and the suffix is upper-case `AM` or `PM`, as Go parses it.
pub fn parse_kitchen(s: &str) -> Option<u32> {
    let (h, rest) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || !h.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hour: u32 = h.parse().ok()?;
    if hour > 12 || rest.len() != 4 || !rest.is_char_boundary(2) {
        return None;
    }
    let (m, ampm) = rest.split_at(2);
    if !m.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let minute: u32 = m.parse().ok()?;
    if minute > 59 {
        return None;
    }
    let hour = match (ampm, hour) {
        ("AM", 12) => 0,
        ("AM", h) => h,
        ("PM", 12) => 12,
        ("PM", h) => h + 12,
        _ => return None,
    };
    Some(hour * 60 + minute)
}

/// An RFC 3339 timestamp as Go's `time.RFC3339` layout parses it (`2006-01-02T15:04:05Z07:00`,
/// optional fractional seconds), as Unix seconds and nanoseconds.
pub fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' || b[i] == b',' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &s[start..i];
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        nanos = format!("{frac:0<9}").parse().ok()?;
    }
    let offset = match &b[i..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (digits(i + 1..i + 3)?, digits(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some((
        days * 86_400 + hour * 3600 + minute * 60 + second - offset,
        nanos,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A cheap syntax check of a JavaScript expression (filter expressions, asset filters,
/// javascript mutator bodies): not blank, string and template literals and comments closed,
/// brackets balanced. It catches the usual damage (a YAML or shell quoting accident) without a
/// JavaScript engine; the engine that evaluates the expression reports anything subtler.
pub fn validate_js_syntax(field: &str, src: &str) -> Result<(), ValidationError> {
    let err = |reason: String| Err(ValidationError::new(field, reason));
    if src.trim().is_empty() {
        return err("expression cannot be empty".into());
    }
    let chars: Vec<char> = src.chars().collect();
    let mut stack: Vec<char> = Vec::new();
    // Whether a `/` here would start a regular expression literal rather than divide: true
    // at the start and after an operator or opening bracket, false after a value.
    let mut regex_ok = true;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return err(format!("unterminated string literal starting {c}")),
                        Some('\\') => j += 2,
                        Some(&q) if q == c => break,
                        Some('\n') if c != '`' => {
                            return err(format!("unterminated string literal starting {c}"));
                        }
                        Some(_) => j += 1,
                    }
                }
                i = j + 1;
                regex_ok = false;
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let mut j = i + 2;
                loop {
                    if j + 1 >= chars.len() {
                        return err("unterminated /* comment".into());
                    }
                    if chars[j] == '*' && chars[j + 1] == '/' {
                        break;
                    }
                    j += 1;
                }
                i = j + 2;
                continue;
            }
            '/' if regex_ok => {
                let mut j = i + 1;
                let mut in_class = false;
                loop {
                    match chars.get(j) {
                        None | Some('\n') => {
                            return err("unterminated regular expression literal".into());
                        }
                        Some('\\') => j += 2,
                        Some('[') => {
                            in_class = true;
                            j += 1;
                        }
                        Some(']') => {
                            in_class = false;
                            j += 1;
                        }
                        Some('/') if !in_class => break,
                        Some(_) => j += 1,
                    }
                }
                i = j + 1;
                while i < chars.len() && chars[i].is_ascii_alphabetic() {
                    i += 1;
                }
                regex_ok = false;
                continue;
            }
            '(' | '[' | '{' => {
                stack.push(c);
                regex_ok = true;
            }
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(open) {
                    return err(format!("unbalanced {c:?}"));
                }
                regex_ok = c == '}';
            }
            c if c.is_whitespace() => {}
            c if c.is_alphanumeric() || c == '_' || c == '$' || c == '.' => {
                // A keyword such as `return` or `typeof` may precede a regex; identifiers and
                // numbers may not. Scan the whole word to tell.
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '$' | '.'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                regex_ok = matches!(
                    word.as_str(),
                    "return"
                        | "typeof"
                        | "in"
                        | "of"
                        | "instanceof"
                        | "new"
                        | "delete"
                        | "void"
                        | "throw"
                        | "case"
                        | "do"
                        | "else"
                );
                continue;
            }
            _ => regex_ok = true,
        }
        i += 1;
    }
    if let Some(open) = stack.last() {
        return err(format!("unclosed {open:?}"));
    }
    Ok(())
}
