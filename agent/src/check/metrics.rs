//! Output metric extraction and thresholds (sensu-compat 4.1, 5.7).
//!
//! After a check ran, [`apply`] reads its output in the check's `output_metric_format` (the
//! parsers live in the `metricfmt` crate) and attaches `metrics: {handlers, points}` to the
//! event, next to the check, as Sensu does:
//!
//! * `handlers` is `output_metric_handlers`; a check with handlers but no format still gets
//!   a `metrics` object (without points), like Sensu's.
//! * Each point's tags are its own, then the check's `output_metric_tags`. The definition was
//!   token-substituted before execution, so the tags' values are already substituted.
//! * Lines the parser could not read are left out and logged at debug level with a count.
//!   Points with an infinite value are dropped too (debug): the event's JSON has no number
//!   for them (Sensu's encoder fails on the whole event instead).
//! * The points are bounded so the event fits a transport frame (`fit_points`); Sensu
//!   has no bound and an oversized result never arrives.
//!
//! **Thresholds** (`output_metric_thresholds`) are evaluated only when the command exited
//! with status 0 and there are points ([`evaluate_thresholds`]). The check's status becomes
//! the highest violated status, and the check's annotations say why, with Sensu's keys and
//! texts, so notification templates written for Sensu keep working. The new status is the
//! one hooks are chosen by.
//!
//! # Deviations from Sensu Go 6.9
//! * Sensu lets a later in-range result overwrite the text of `sensu.io/notifications/<caption>`,
//!   so a critical status could be explained by "is within the configured threshold". Here
//!   the text is the one of the first result that reached the final status; only when
//!   nothing was violated is it the last result's text (as in Sensu).
//! * Sensu stops evaluating a threshold entry at an unparseable `min` (skipping its `max`);
//!   here only the unparseable bound is ignored.

use metricfmt::Parsed;
use proto_spec::v2::{Check, Event, MetricPoint, MetricTag, MetricThreshold, Metrics};
use proto_spec::wire;
use tracing::{debug, warn};

/// Annotation key prefix for every threshold result.
pub const THRESHOLD_ANNOTATION_PREFIX: &str = "sensu.io/output_metric_thresholds/";
/// Annotation key prefix for the result that decided the status.
pub const NOTIFICATION_ANNOTATION_PREFIX: &str = "sensu.io/notifications/";

/// Attach the check's output metrics to `event` and apply its thresholds; `now` (Unix
/// seconds) stamps points whose format line has no timestamp. Does nothing for an event
/// without a check, or a check with neither a metric format nor metric handlers.
pub fn apply(event: &mut Event, now: i64) {
    let Some(check) = event.check.as_mut() else {
        return;
    };
    let handlers = check.config.output_metric_handlers();
    if check.config.output_metric_format.is_empty() && handlers.is_empty() {
        return;
    }
    let mut metrics = Metrics {
        handlers: (!handlers.is_empty()).then(|| handlers.to_vec()),
        points: None,
    };
    if !check.config.output_metric_format.is_empty() {
        let points = extract(check, now);
        if check.status == 0
            && !points.is_empty()
            && !check.config.output_metric_thresholds.is_empty()
        {
            let outcome = evaluate_thresholds(&check.config.output_metric_thresholds, &points);
            if outcome.status != 0 {
                debug!(
                    check = %check.config.metadata.name,
                    status = outcome.status,
                    "Output metric thresholds changed the check status"
                );
            }
            check.status = outcome.status;
            check
                .config
                .metadata
                .annotations
                .extend(outcome.annotations);
        }
        // Go's nil slice: no points is `null`, as Sensu writes it.
        metrics.points = (!points.is_empty()).then_some(points);
    }
    event.metrics = Some(metrics);
    fit_points(event);
}

/// The check's output as points, with `output_metric_tags` appended to each.
fn extract(check: &Check, now: i64) -> Vec<MetricPoint> {
    let name = &check.config.metadata.name;
    let format = &check.config.output_metric_format;
    let parsed = match metricfmt::parse(format, &check.output, now, check.executed) {
        Ok(parsed) => parsed,
        // Definitions are validated before execution; this is a format newer than the parser.
        Err(e) => {
            warn!(check = %name, "Cannot extract output metrics: {e}");
            return Vec::new();
        }
    };
    let Parsed { points, skipped } = parsed;
    if let Some(first) = skipped.first() {
        debug!(
            check = %name,
            format = %format,
            skipped = skipped.len(),
            first_line = first.line,
            first_reason = %first.reason,
            "Skipped output lines that are not valid metrics"
        );
    }
    let total = points.len();
    let extra = &check.config.output_metric_tags;
    let points: Vec<MetricPoint> = points
        .into_iter()
        .filter(|p| p.value.is_finite())
        .map(|p| {
            let tags: Vec<MetricTag> = p
                .tags
                .into_iter()
                .map(|(name, value)| MetricTag { name, value })
                .chain(extra.iter().cloned())
                .collect();
            MetricPoint {
                name: p.name,
                value: p.value,
                timestamp: p.timestamp,
                tags: (!tags.is_empty()).then_some(tags),
            }
        })
        .collect();
    if points.len() < total {
        debug!(
            check = %name,
            dropped = total - points.len(),
            "Dropped metric points with infinite values, which event JSON cannot carry"
        );
    }
    points
}

/// Keep the event within a transport frame by dropping points from the end. The points may
/// use whatever the rest of the event leaves, but at least half a frame: the check and hook
/// outputs can still be shortened afterwards (`fit_to_frame`), the points' data cannot.
fn fit_points(event: &mut Event) {
    const OVERHEAD: usize = wire::TYPE_EVENT.len() + 1;
    let Some(points) = event.metrics.as_mut().and_then(|m| m.points.take()) else {
        return;
    };
    let rest = serde_json::to_vec(&*event).map_or(0, |v| v.len()) + OVERHEAD;
    let budget = wire::MAX_FRAME_BYTES - rest.min(wire::MAX_FRAME_BYTES / 2);
    // `[` and `]`, then each point and its comma.
    let mut used = 2;
    let mut keep = 0;
    for point in &points {
        let size = serde_json::to_vec(point).map_or(0, |v| v.len()) + 1;
        if used + size > budget {
            break;
        }
        used += size;
        keep += 1;
    }
    let mut points = points;
    if keep < points.len() {
        warn!(
            check = event.check_name(),
            kept = keep,
            dropped = points.len() - keep,
            "Dropped output metric points: the event would not fit the transport's frame limit"
        );
        points.truncate(keep);
    }
    if let Some(metrics) = event.metrics.as_mut() {
        metrics.points = (!points.is_empty()).then_some(points);
    }
}

/// What the thresholds concluded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThresholdOutcome {
    /// The highest violated status; 0 when nothing was violated.
    pub status: u32,
    /// Annotations in the order they were produced; a later one with the same key replaces
    /// an earlier one (several points can match one rule).
    pub annotations: Vec<(String, String)>,
}

/// Evaluate threshold rules against points, as Sensu's agent does:
///
/// * a rule applies to each point with its `name` that has all of the rule's tags;
/// * per matching point and threshold entry, `min` is violated when `value < min` and `max`
///   when `value > max` (a violated `min` skips that entry's `max`); each comparison is
///   annotated, with the entry's status when violated and `ok` when not;
/// * a rule no point matched, with `null_status > 0`, counts as violated at that status;
/// * the result is the highest violated status, explained by one more annotation
///   `sensu.io/notifications/<caption>`.
pub fn evaluate_thresholds(rules: &[MetricThreshold], points: &[MetricPoint]) -> ThresholdOutcome {
    let mut outcome = ThresholdOutcome::default();
    // The text of the first result that reached `outcome.status` (> 0), and of the last one.
    let mut winner: Option<String> = None;
    let mut last: Option<String> = None;
    let mut record = |outcome: &mut ThresholdOutcome, key: String, text: String, status: u32| {
        if status > outcome.status {
            outcome.status = status;
            winner = Some(text.clone());
        }
        last = Some(text.clone());
        outcome.annotations.push((key, text));
    };

    for rule in rules {
        let mut matched = false;
        for point in points.iter().filter(|p| rule_matches(rule, p)) {
            matched = true;
            for entry in rule.thresholds.iter().flatten() {
                if let Some((bound, min)) = bound(&entry.min) {
                    let violated = point.value < min;
                    let status = if violated { entry.status } else { 0 };
                    let key = annotation_key(rule, Measure::Min, status);
                    let text = bound_text(rule, Measure::Min, bound, point.value, violated);
                    record(&mut outcome, key, text, status);
                    if violated {
                        continue;
                    }
                }
                if let Some((bound, max)) = bound(&entry.max) {
                    let violated = point.value > max;
                    let status = if violated { entry.status } else { 0 };
                    let key = annotation_key(rule, Measure::Max, status);
                    let text = bound_text(rule, Measure::Max, bound, point.value, violated);
                    record(&mut outcome, key, text, status);
                }
            }
        }
        if !matched && rule.null_status > 0 {
            let key = annotation_key(rule, Measure::NullStatus, rule.null_status);
            record(&mut outcome, key, null_text(rule), rule.null_status);
        }
    }

    let text = if outcome.status > 0 { winner } else { last };
    if let Some(text) = text {
        let key = format!(
            "{NOTIFICATION_ANNOTATION_PREFIX}{}",
            caption(outcome.status)
        );
        outcome.annotations.push((key, text));
    }
    outcome
}

#[derive(Debug, Clone, Copy)]
enum Measure {
    Min,
    Max,
    NullStatus,
}

impl Measure {
    fn as_str(self) -> &'static str {
        match self {
            Measure::Min => "min",
            Measure::Max => "max",
            Measure::NullStatus => "null-status",
        }
    }
}

/// Sensu's caption of a status.
fn caption(status: u32) -> &'static str {
    match status {
        0 => "ok",
        1 => "warning",
        2 => "critical",
        _ => "unknown",
    }
}

fn rule_matches(rule: &MetricThreshold, point: &MetricPoint) -> bool {
    let tags = point.tags.as_deref().unwrap_or_default();
    rule.name == point.name
        && rule.tags.iter().flatten().all(|want| {
            tags.iter()
                .any(|t| t.name == want.name && t.value == want.value)
        })
}

/// A bound as written (trimmed) and its value; `None` when unset or not a number.
fn bound(raw: &str) -> Option<(&str, f64)> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    raw.parse().ok().map(|v| (raw, v))
}

/// `sensu.io/output_metric_thresholds/<name>[.<tag value>...]/<measure>/<caption>`
fn annotation_key(rule: &MetricThreshold, measure: Measure, status: u32) -> String {
    let mut key = format!("{THRESHOLD_ANNOTATION_PREFIX}{}", rule.name);
    for tag in rule.tags.iter().flatten() {
        key.push('.');
        key.push_str(&tag.value);
    }
    format!("{key}/{}/{}", measure.as_str(), caption(status))
}

/// Sensu's text, e.g. `The value of disk_rate (device=sda) exceeded the configured threshold
/// (max: 100, actual: 101).`
fn bound_text(
    rule: &MetricThreshold,
    measure: Measure,
    bound: &str,
    value: f64,
    violated: bool,
) -> String {
    let tags: Vec<String> = rule
        .tags
        .iter()
        .flatten()
        .map(|t| format!("{}={}", t.name, t.value))
        .collect();
    let tags = if tags.is_empty() {
        String::new()
    } else {
        format!(" ({})", tags.join(","))
    };
    let verdict = if violated {
        "exceeded the configured threshold"
    } else {
        "is within the configured threshold"
    };
    // Rust prints f64 like Go's FormatFloat(v, 'f', -1, 64): shortest, never an exponent.
    format!(
        "The value of {}{tags} {verdict} ({}: {bound}, actual: {value}).",
        rule.name,
        measure.as_str()
    )
}

/// Sensu's text for a rule no point matched, e.g. `WARNING : no metric matching "disk_rate"
/// (device="sda") was found; expected max: 100 (status: critical)`.
fn null_text(rule: &MetricThreshold) -> String {
    let mut text = format!(
        "{} : no metric matching \"{}\"",
        caption(rule.null_status).to_uppercase(),
        rule.name
    );
    let tags: Vec<String> = rule
        .tags
        .iter()
        .flatten()
        .map(|t| format!("{}=\"{}\"", t.name, t.value))
        .collect();
    if !tags.is_empty() {
        text.push_str(&format!(" ({})", tags.join(", ")));
    }
    text.push_str(" was found");
    for entry in rule.thresholds.iter().flatten() {
        text.push_str("; expected ");
        if !entry.min.is_empty() {
            text.push_str(&format!("min: {}", entry.min));
        }
        if !entry.min.is_empty() && !entry.max.is_empty() {
            text.push_str(" - ");
        }
        if !entry.max.is_empty() {
            text.push_str(&format!("max: {}", entry.max));
        }
        text.push_str(&format!(" (status: {})", caption(entry.status)));
    }
    text
}

#[cfg(test)]
mod tests {
    use proto_spec::v2::{CheckConfig, MetricThresholdRule, MetricThresholdTag};

    use super::*;

    fn point(name: &str, value: f64, tags: &[(&str, &str)]) -> MetricPoint {
        let tags: Vec<MetricTag> = tags
            .iter()
            .map(|(n, v)| MetricTag {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect();
        MetricPoint {
            name: name.into(),
            value,
            timestamp: 1,
            tags: (!tags.is_empty()).then_some(tags),
        }
    }

    /// `bounds` are `(min, max, status)`.
    fn rule(
        name: &str,
        tags: &[(&str, &str)],
        bounds: &[(&str, &str, u32)],
        null_status: u32,
    ) -> MetricThreshold {
        MetricThreshold {
            name: name.into(),
            tags: Some(
                tags.iter()
                    .map(|(n, v)| MetricThresholdTag {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
            ),
            thresholds: Some(
                bounds
                    .iter()
                    .map(|(min, max, status)| MetricThresholdRule {
                        min: min.to_string(),
                        max: max.to_string(),
                        status: *status,
                    })
                    .collect(),
            ),
            null_status,
        }
    }

    struct Case {
        name: &'static str,
        rules: Vec<MetricThreshold>,
        points: Vec<MetricPoint>,
        status: u32,
        annotations: &'static [(&'static str, &'static str)],
    }

    #[test]
    fn threshold_evaluation() {
        let disk = || point("disk_rate", 99999.0, &[]);
        let net = || {
            point(
                "network_rate",
                100001.0,
                &[("device", "eth0"), ("dc", "eu")],
            )
        };
        let cases = [
            Case {
                name: "min violated",
                rules: vec![rule("disk_rate", &[], &[("100000", "", 2)], 0)],
                points: vec![disk()],
                status: 2,
                annotations: &[
                    (
                        "sensu.io/output_metric_thresholds/disk_rate/min/critical",
                        "The value of disk_rate exceeded the configured threshold (min: 100000, actual: 99999).",
                    ),
                    (
                        "sensu.io/notifications/critical",
                        "The value of disk_rate exceeded the configured threshold (min: 100000, actual: 99999).",
                    ),
                ],
            },
            Case {
                name: "a violated min skips the entry's max",
                rules: vec![rule("disk_rate", &[], &[("100000", "1", 1)], 0)],
                points: vec![disk()],
                status: 1,
                annotations: &[
                    (
                        "sensu.io/output_metric_thresholds/disk_rate/min/warning",
                        "The value of disk_rate exceeded the configured threshold (min: 100000, actual: 99999).",
                    ),
                    (
                        "sensu.io/notifications/warning",
                        "The value of disk_rate exceeded the configured threshold (min: 100000, actual: 99999).",
                    ),
                ],
            },
            Case {
                name: "within both bounds: ok annotations, the last explains ok",
                rules: vec![rule("disk_rate", &[], &[(" 0 ", "100000.5", 2)], 0)],
                points: vec![disk()],
                status: 0,
                annotations: &[
                    (
                        "sensu.io/output_metric_thresholds/disk_rate/min/ok",
                        "The value of disk_rate is within the configured threshold (min: 0, actual: 99999).",
                    ),
                    (
                        "sensu.io/output_metric_thresholds/disk_rate/max/ok",
                        "The value of disk_rate is within the configured threshold (max: 100000.5, actual: 99999).",
                    ),
                    (
                        "sensu.io/notifications/ok",
                        "The value of disk_rate is within the configured threshold (max: 100000.5, actual: 99999).",
                    ),
                ],
            },
            Case {
                name: "max violated with tags in key and text; extra point tags are fine",
                rules: vec![rule(
                    "network_rate",
                    &[("device", "eth0")],
                    &[("", "100000", 3)],
                    0,
                )],
                points: vec![net()],
                status: 3,
                annotations: &[
                    (
                        "sensu.io/output_metric_thresholds/network_rate.eth0/max/unknown",
                        "The value of network_rate (device=eth0) exceeded the configured threshold (max: 100000, actual: 100001).",
                    ),
                    (
                        "sensu.io/notifications/unknown",
                        "The value of network_rate (device=eth0) exceeded the configured threshold (max: 100000, actual: 100001).",
                    ),
                ],
            },
            Case {
                name: "a point lacking one of the rule's tags does not match",
                rules: vec![rule(
                    "network_rate",
                    &[("device", "eth0"), ("dc", "us")],
                    &[("", "1", 2)],
                    1,
                )],
                points: vec![net()],
                status: 1,
                annotations: &[
                    (
                        "sensu.io/output_metric_thresholds/network_rate.eth0.us/null-status/warning",
                        "WARNING : no metric matching \"network_rate\" (device=\"eth0\", dc=\"us\") was found; expected max: 1 (status: critical)",
                    ),
                    (
                        "sensu.io/notifications/warning",
                        "WARNING : no metric matching \"network_rate\" (device=\"eth0\", dc=\"us\") was found; expected max: 1 (status: critical)",
                    ),
                ],
            },
            Case {
                name: "no match without null_status changes nothing",
                rules: vec![rule("not_a_disk_rate", &[], &[("0", "", 2)], 0)],
                points: vec![disk()],
                status: 0,
                annotations: &[],
            },
            Case {
                name: "null status lists every entry",
                rules: vec![rule(
                    "not_a_disk_rate",
                    &[],
                    &[("1", "9", 1), ("0", "10", 2)],
                    2,
                )],
                points: vec![disk()],
                status: 2,
                annotations: &[
                    (
                        "sensu.io/output_metric_thresholds/not_a_disk_rate/null-status/critical",
                        "CRITICAL : no metric matching \"not_a_disk_rate\" was found; expected min: 1 - max: 9 (status: warning); expected min: 0 - max: 10 (status: critical)",
                    ),
                    (
                        "sensu.io/notifications/critical",
                        "CRITICAL : no metric matching \"not_a_disk_rate\" was found; expected min: 1 - max: 9 (status: warning); expected min: 0 - max: 10 (status: critical)",
                    ),
                ],
            },
            Case {
                name: "highest status wins and keeps its text against later in-range results",
                rules: vec![
                    rule("disk_rate", &[], &[("", "10", 1)], 0),
                    rule("network_rate", &[], &[("", "10", 2)], 0),
                    rule("disk_rate", &[], &[("", "1000000", 2)], 0),
                ],
                points: vec![disk(), net()],
                status: 2,
                annotations: &[
                    (
                        "sensu.io/output_metric_thresholds/disk_rate/max/warning",
                        "The value of disk_rate exceeded the configured threshold (max: 10, actual: 99999).",
                    ),
                    (
                        "sensu.io/output_metric_thresholds/network_rate/max/critical",
                        "The value of network_rate exceeded the configured threshold (max: 10, actual: 100001).",
                    ),
                    (
                        "sensu.io/output_metric_thresholds/disk_rate/max/ok",
                        "The value of disk_rate is within the configured threshold (max: 1000000, actual: 99999).",
                    ),
                    (
                        "sensu.io/notifications/critical",
                        "The value of network_rate exceeded the configured threshold (max: 10, actual: 100001).",
                    ),
                ],
            },
            Case {
                name: "an unparseable bound is ignored, the other still counts",
                rules: vec![rule("disk_rate", &[], &[("lots", "5", 2)], 0)],
                points: vec![disk()],
                status: 2,
                annotations: &[
                    (
                        "sensu.io/output_metric_thresholds/disk_rate/max/critical",
                        "The value of disk_rate exceeded the configured threshold (max: 5, actual: 99999).",
                    ),
                    (
                        "sensu.io/notifications/critical",
                        "The value of disk_rate exceeded the configured threshold (max: 5, actual: 99999).",
                    ),
                ],
            },
            Case {
                name: "every matching point is evaluated; fractional values print in full",
                rules: vec![rule("load", &[], &[("", "1.5", 1)], 0)],
                points: vec![point("load", 0.25, &[]), point("load", 1.75, &[])],
                status: 1,
                annotations: &[
                    (
                        "sensu.io/output_metric_thresholds/load/max/ok",
                        "The value of load is within the configured threshold (max: 1.5, actual: 0.25).",
                    ),
                    (
                        "sensu.io/output_metric_thresholds/load/max/warning",
                        "The value of load exceeded the configured threshold (max: 1.5, actual: 1.75).",
                    ),
                    (
                        "sensu.io/notifications/warning",
                        "The value of load exceeded the configured threshold (max: 1.5, actual: 1.75).",
                    ),
                ],
            },
        ];
        for case in cases {
            let outcome = evaluate_thresholds(&case.rules, &case.points);
            let expected: Vec<(String, String)> = case
                .annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(outcome.status, case.status, "{}", case.name);
            assert_eq!(outcome.annotations, expected, "{}", case.name);
        }
    }

    fn event(config: CheckConfig, output: &str, status: u32) -> Event {
        Event {
            check: Some(Check {
                output: output.into(),
                status,
                executed: 1_700_000_000,
                ..Check::from_config(config)
            }),
            ..Default::default()
        }
    }

    fn config(format: &str, handlers: &[&str]) -> CheckConfig {
        CheckConfig {
            output_metric_format: format.into(),
            output_metric_handlers: Some(handlers.iter().map(|h| h.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn no_format_and_no_handlers_means_no_metrics() {
        let mut e = event(config("", &[]), "x | a=1", 0);
        apply(&mut e, 5);
        assert_eq!(e.metrics, None);
    }

    #[test]
    fn handlers_without_a_format_still_get_a_metrics_object() {
        let mut e = event(config("", &["influx"]), "x | a=1", 0);
        apply(&mut e, 5);
        let metrics = e.metrics.unwrap();
        assert_eq!(metrics.handlers, Some(vec!["influx".to_string()]));
        assert_eq!(metrics.points, None);
    }

    #[test]
    fn points_get_the_check_tags_after_their_own_and_infinities_are_dropped() {
        let mut c = config("prometheus_text", &[]);
        c.output_metric_tags = vec![MetricTag {
            name: "region".into(),
            value: "eu".into(),
        }];
        let mut e = event(c, "a{x=\"1\"} 2\nb +Inf\nc 3 5000\n", 0);
        apply(&mut e, 42);
        let metrics = e.metrics.unwrap();
        assert_eq!(metrics.handlers, None);
        let points = metrics.points.unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!((points[0].timestamp, points[1].timestamp), (42, 5));
        let tags: Vec<_> = points[0]
            .tags
            .iter()
            .flatten()
            .map(|t| format!("{}={}", t.name, t.value))
            .collect();
        assert_eq!(tags, ["x=1", "prom_type=untyped", "region=eu"]);
    }

    #[test]
    fn thresholds_apply_only_to_a_passing_check() {
        let mut c = config("graphite_plaintext", &[]);
        c.output_metric_thresholds = vec![rule("a", &[], &[("", "1", 2)], 0)];
        let mut failing = event(c.clone(), "a 5 1", 1);
        apply(&mut failing, 0);
        let check = failing.check.unwrap();
        assert_eq!(check.status, 1);
        assert!(check.config.metadata.annotations.is_empty());

        let mut passing = event(c, "a 5 1", 0);
        apply(&mut passing, 0);
        let check = passing.check.unwrap();
        assert_eq!(check.status, 2);
        assert_eq!(
            check.config.metadata.annotations.keys().collect::<Vec<_>>(),
            [
                "sensu.io/notifications/critical",
                "sensu.io/output_metric_thresholds/a/max/critical"
            ]
        );
    }

    #[test]
    fn no_points_means_no_threshold_evaluation() {
        let mut c = config("nagios_perfdata", &[]);
        c.output_metric_thresholds = vec![rule("a", &[], &[("", "1", 2)], 2)];
        let mut e = event(c, "OK, no perfdata", 0);
        apply(&mut e, 0);
        assert_eq!(e.check.as_ref().unwrap().status, 0);
        assert_eq!(e.metrics.unwrap().points, None);
    }

    #[test]
    fn points_are_cut_to_fit_a_frame() {
        // About 60 bytes of JSON per point: far more than a frame holds.
        let output: String = (0..40_000)
            .map(|i| format!("metric.{i} {i} 1700000000\n"))
            .collect();
        let mut e = event(config("graphite_plaintext", &[]), &output, 0);
        apply(&mut e, 0);
        let kept = e.metrics.as_ref().unwrap().points.as_ref().unwrap().len();
        assert!(kept > 1000 && kept < 40_000, "{kept}");
        // The output is the runner's `fit_to_frame`'s to shorten; without it the event fits.
        e.check.as_mut().unwrap().output.clear();
        let size = serde_json::to_vec(&e).unwrap().len();
        assert!(size <= wire::MAX_FRAME_BYTES, "{size}");
        assert_eq!(
            e.metrics.unwrap().points.unwrap().last().unwrap().name,
            format!("metric.{}", kept - 1)
        );
    }
}
