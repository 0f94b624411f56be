//! Expected values are computed by hand in the comments next to them.

use std::time::{Duration, Instant};

use super::*;

fn aggregator() -> Aggregator {
    Aggregator::new(AggregatorConfig::default()).unwrap()
}

fn feed(agg: &mut Aggregator, now: Instant, datagram: &str) {
    let stats = agg.add_datagram(datagram.as_bytes(), now);
    assert_eq!(stats.bad_lines, 0, "{datagram}: {:?}", stats.last_error);
}

/// Points as (name, value) pairs, tags checked separately where they matter.
fn values(points: &[FlushedPoint]) -> Vec<(&str, f64)> {
    points.iter().map(|p| (p.name.as_str(), p.value)).collect()
}

fn tags(p: &FlushedPoint) -> Vec<(&str, &str)> {
    p.tags.iter().map(|t| (&*t.name, &*t.value)).collect()
}

fn assert_points(got: &[FlushedPoint], want: &[(&str, f64)]) {
    let got = values(got);
    assert_eq!(got.len(), want.len(), "got {got:#?}");
    for ((gn, gv), (wn, wv)) in got.iter().zip(want) {
        assert_eq!(gn, wn, "got {got:#?}");
        // Every expected value below is exact except the square roots.
        assert!(
            (gv - wv).abs() <= 1e-12 * wv.abs().max(1.0),
            "{gn}: {gv} != {wv}"
        );
    }
}

#[test]
fn counters_scale_by_sample_rate() {
    let mut agg = aggregator();
    let t = Instant::now();
    // 3/0.5 + 1 - 2 = 5; per second over the 10 s interval: 0.5.
    feed(&mut agg, t, "hits:3|c|@0.5\nhits:1|c\nhits:-2|c");
    // 0.25/0.1 = 2.5 (counters are not truncated to integers).
    feed(&mut agg, t, "frac:0.25|c|@0.1");
    assert_points(
        &agg.flush(t),
        &[
            ("frac.value", 2.5),
            ("frac.per_second", 0.25),
            ("hits.value", 5.0),
            ("hits.per_second", 0.5),
        ],
    );
    // The next interval starts from zero, and idle series are still emitted.
    feed(&mut agg, t, "hits:4|c");
    assert_points(
        &agg.flush(t),
        &[
            ("frac.value", 0.0),
            ("frac.per_second", 0.0),
            ("hits.value", 4.0),
            ("hits.per_second", 0.4),
        ],
    );
}

#[test]
fn gauges_set_and_move_and_survive_flushes() {
    let mut agg = aggregator();
    let t = Instant::now();
    // 20, +5 → 25, -3 → 22.
    feed(&mut agg, t, "temp:20|g\ntemp:+5|g\ntemp:-3|g");
    // A delta on a new gauge starts from 0: -4. The sample rate is ignored for gauges.
    feed(&mut agg, t, "neg:-4|g|@0.5");
    // Python's statsd client sends a negative absolute value as "0" then "-7".
    feed(&mut agg, t, "abs:5|g\nabs:0|g\nabs:-7|g");
    assert_points(
        &agg.flush(t),
        &[
            ("abs.value", -7.0),
            ("neg.value", -4.0),
            ("temp.value", 22.0),
        ],
    );
    // Gauges keep their value across flushes; deltas apply to it: 22 + 1.5 = 23.5.
    feed(&mut agg, t, "temp:+1.5|g");
    assert_points(
        &agg.flush(t),
        &[
            ("abs.value", -7.0),
            ("neg.value", -4.0),
            ("temp.value", 23.5),
        ],
    );
}

#[test]
fn timer_statistics() {
    let mut agg = aggregator();
    let t = Instant::now();
    // Values 10..60; the last one sampled at 0.25 counts 4 times: sampled count 5 + 4 = 9.
    feed(
        &mut agg,
        t,
        "lat:30|ms\nlat:10|ms\nlat:50|ms\nlat:20|ms\nlat:40|h\nlat:60|ms|@0.25",
    );
    // sorted: 10 20 30 40 50 60, n = 6
    // sum = 210, mean = 35, median = (30 + 40) / 2 = 35
    // sum_squares = 100 + 400 + 900 + 1600 + 2500 + 3600 = 9100
    // deviations ±5 ±15 ±25 → squares 2·(25 + 225 + 625) = 1750; stddev = √(1750/6)
    // p90: k = round(0.9·6 = 5.4) = 5 → 10..50: sum 150, mean 30,
    //      sum_squares 100 + 400 + 900 + 1600 + 2500 = 5500, upper 50
    assert_points(
        &agg.flush(t),
        &[
            ("lat.min", 10.0),
            ("lat.max", 60.0),
            ("lat.count", 9.0),
            ("lat.per_second", 0.9),
            ("lat.mean", 35.0),
            ("lat.median", 35.0),
            ("lat.stddev", (1750.0f64 / 6.0).sqrt()),
            ("lat.sum", 210.0),
            ("lat.sum_squares", 9100.0),
            ("lat.percentile_count_90", 5.0),
            ("lat.percentile_mean_90", 30.0),
            ("lat.percentile_sum_90", 150.0),
            ("lat.percentile_sum_squares_90", 5500.0),
            ("lat.percentile_upper_90", 50.0),
        ],
    );
    // An idle timer: the nine plain points as zeros, no percentiles (gostatsd).
    assert_points(
        &agg.flush(t),
        &[
            ("lat.min", 0.0),
            ("lat.max", 0.0),
            ("lat.count", 0.0),
            ("lat.per_second", 0.0),
            ("lat.mean", 0.0),
            ("lat.median", 0.0),
            ("lat.stddev", 0.0),
            ("lat.sum", 0.0),
            ("lat.sum_squares", 0.0),
        ],
    );
}

#[test]
fn timer_percentile_edges() {
    let config = AggregatorConfig {
        percentiles: vec![10.0, 50.0, 99.9],
        ..Default::default()
    };
    let mut agg = Aggregator::new(config).unwrap();
    let t = Instant::now();
    // Three values 1 2 4 (odd count): median 2, mean 7/3, sum_squares 1 + 4 + 16 = 21,
    // stddev = √(((1-7/3)² + (2-7/3)² + (4-7/3)²)/3) = √((16/9 + 1/9 + 25/9)/3) = √(42/27)
    // p10: round(0.3) = 0 → skipped.  p50: round(1.5) = 2 → 1 2.  p99.9: round(2.997) = 3.
    // Sampled at 0.5 each: count 6, per_second 0.6.
    feed(&mut agg, t, "t:4|ms|@0.5\nt:1|ms|@0.5\nt:2|ms|@0.5");
    assert_points(
        &agg.flush(t),
        &[
            ("t.min", 1.0),
            ("t.max", 4.0),
            ("t.count", 6.0),
            ("t.per_second", 0.6),
            ("t.mean", 7.0 / 3.0),
            ("t.median", 2.0),
            ("t.stddev", (42.0f64 / 27.0).sqrt()),
            ("t.sum", 7.0),
            ("t.sum_squares", 21.0),
            ("t.percentile_count_50", 2.0),
            ("t.percentile_mean_50", 1.5),
            ("t.percentile_sum_50", 3.0),
            ("t.percentile_sum_squares_50", 5.0),
            ("t.percentile_upper_50", 2.0),
            ("t.percentile_count_99_9", 3.0),
            ("t.percentile_mean_99_9", 7.0 / 3.0),
            ("t.percentile_sum_99_9", 7.0),
            ("t.percentile_sum_squares_99_9", 21.0),
            ("t.percentile_upper_99_9", 4.0),
        ],
    );
    // A single value is every percentile of itself, even 10 (round(0.1) would be 0).
    feed(&mut agg, t, "t:-3|ms");
    let points = agg.flush(t);
    let p10: Vec<_> = values(&points)
        .into_iter()
        .filter(|(n, _)| n.ends_with("_10"))
        .collect();
    assert_eq!(
        p10,
        [
            ("t.percentile_count_10", 1.0),
            ("t.percentile_mean_10", -3.0),
            ("t.percentile_sum_10", -3.0),
            ("t.percentile_sum_squares_10", 9.0),
            ("t.percentile_upper_10", -3.0),
        ]
    );
    assert_eq!(
        values(&points)[..4],
        [
            ("t.min", -3.0),
            ("t.max", -3.0),
            ("t.count", 1.0),
            ("t.per_second", 0.1)
        ]
    );
}

#[test]
fn count_rounds_half_up_like_gostatsd() {
    let mut agg = aggregator();
    let t = Instant::now();
    // 1/0.4 = 2.5 → count round(2.5) = 3; per_second keeps 2.5/10 = 0.25.
    feed(&mut agg, t, "t:1|ms|@0.4");
    let points = agg.flush(t);
    assert_eq!(
        values(&points)[2..4],
        [("t.count", 3.0), ("t.per_second", 0.25)]
    );
}

#[test]
fn sets_count_distinct_members() {
    let mut agg = aggregator();
    let t = Instant::now();
    feed(
        &mut agg,
        t,
        "users:alice|s\nusers:bob|s\nusers:alice|s\nusers:42|s",
    );
    assert_points(&agg.flush(t), &[("users.value", 3.0)]);
    // Reset after a flush: alice counts again.
    feed(&mut agg, t, "users:alice|s");
    assert_points(&agg.flush(t), &[("users.value", 1.0)]);
    assert_points(&agg.flush(t), &[("users.value", 0.0)]);
}

#[test]
fn series_are_keyed_by_type_name_and_sorted_tags() {
    let mut agg = aggregator();
    let t = Instant::now();
    feed(
        &mut agg,
        t,
        "req:1|c|#env:prod,az:eu\nreq:2|c|#az:eu,env:prod\nreq:4|c|#,az:eu,,env:prod,\n\
         req:8|c|#env:dev\nreq:16|c\nreq:5|g",
    );
    assert_eq!(agg.len(), 4);
    let points = agg.flush(t);
    let got: Vec<_> = points
        .iter()
        .map(|p| (p.name.as_str(), p.value, tags(p)))
        .collect();
    // Counters before gauges; within a kind by name, then tags (none first).
    assert_eq!(
        got,
        [
            ("req.value", 16.0, vec![]),
            ("req.per_second", 1.6, vec![]),
            ("req.value", 7.0, vec![("az", "eu"), ("env", "prod")]),
            ("req.per_second", 0.7, vec![("az", "eu"), ("env", "prod")]),
            ("req.value", 8.0, vec![("env", "dev")]),
            ("req.per_second", 0.8, vec![("env", "dev")]),
            ("req.value", 5.0, vec![]),
        ]
    );
    // Points of one series share their tag list.
    assert!(Arc::ptr_eq(&points[2].tags, &points[3].tags));
}

#[test]
fn keys_cannot_be_forged_by_moving_text_between_name_and_tags() {
    let mut agg = aggregator();
    let t = Instant::now();
    // Same bytes overall, different (name, tags): two series.
    feed(&mut agg, t, "ab:1|c|#c\na:1|c|#bc");
    assert_eq!(agg.len(), 2);
}

#[test]
fn flush_order_is_counters_timers_gauges_sets() {
    let mut agg = aggregator();
    let t = Instant::now();
    feed(&mut agg, t, "s:x|s\ng:1|g\nt:1|ms\nc:1|c");
    let names: Vec<String> = agg
        .flush(t)
        .into_iter()
        .map(|p| p.name)
        .filter(|n| !n.contains("percentile") && !n.ends_with("per_second"))
        .collect();
    assert_eq!(
        names,
        [
            "c.value",
            "t.min",
            "t.max",
            "t.count",
            "t.mean",
            "t.median",
            "t.stddev",
            "t.sum",
            "t.sum_squares",
            "g.value",
            "s.value"
        ]
    );
}

#[test]
fn idle_series_expire_after_five_minutes() {
    let mut agg = aggregator();
    let t0 = Instant::now();
    feed(&mut agg, t0, "old:1|c\ngauge:3|g\nset:a|s\ntimer:1|ms");
    let five = Duration::from_secs(300);
    // Kept a little while, then the gauge is refreshed and the others not.
    feed(&mut agg, t0 + Duration::from_secs(60), "gauge:+1|g");
    // Exactly five idle minutes: still alive, and emitted.
    let points = agg.flush(t0 + five);
    assert_eq!(agg.len(), 4);
    assert!(values(&points).contains(&("old.value", 1.0)));
    // Past five minutes: dropped before being emitted; the refreshed gauge lives on.
    let points = agg.flush(t0 + five + Duration::from_secs(1));
    assert_eq!(values(&points), [("gauge.value", 4.0)]);
    assert_eq!(agg.len(), 1);
    // A dropped series comes back fresh: its counter starts from scratch.
    let back = t0 + Duration::from_secs(330);
    feed(&mut agg, back, "old:2|c");
    let points = agg.flush(back);
    assert_eq!(
        values(&points),
        [
            ("old.value", 2.0),
            ("old.per_second", 0.2),
            ("gauge.value", 4.0)
        ]
    );
    // The gauge, idle since t0 + 60 s, goes after t0 + 360 s.
    let points = agg.flush(t0 + Duration::from_secs(361));
    assert_eq!(
        values(&points),
        [("old.value", 0.0), ("old.per_second", 0.0)]
    );
    assert_eq!(agg.flush(back + five + Duration::from_secs(1)).len(), 0);
    assert!(agg.is_empty());
}

#[test]
fn series_limit_drops_new_series_only() {
    let config = AggregatorConfig {
        max_series: 2,
        ..Default::default()
    };
    let mut agg = Aggregator::new(config).unwrap();
    let t = Instant::now();
    let stats = agg.add_datagram(b"a:1|c\nb:1|c\nc:1|c\na:1|c\nbad\n", t);
    assert_eq!(
        stats,
        DatagramStats {
            metrics: 3,
            bad_lines: 1,
            rejected: 1,
            last_error: Some(ParseError::MissingValue),
        }
    );
    assert_eq!(agg.rejected(), 1);
    assert_points(
        &agg.flush(t),
        &[
            ("a.value", 2.0),
            ("a.per_second", 0.2),
            ("b.value", 1.0),
            ("b.per_second", 0.1),
        ],
    );
}

#[test]
fn snapshot_detaches_the_interval() {
    let mut agg = aggregator();
    let t = Instant::now();
    feed(&mut agg, t, "c:1|c\nt:5|ms");
    let snapshot = agg.snapshot(t);
    assert_eq!(snapshot.len(), 2);
    // The aggregator goes on while the snapshot is turned into points.
    feed(&mut agg, t, "c:10|c");
    let first = snapshot.into_points();
    assert_eq!(
        values(&first)[..2],
        [("c.value", 1.0), ("c.per_second", 0.1)]
    );
    assert_eq!(values(&first)[2..4], [("t.min", 5.0), ("t.max", 5.0)]);
    assert_eq!(values(&agg.flush(t))[..1], [("c.value", 10.0)]);
    assert!(aggregator().snapshot(t).is_empty());
}

#[test]
fn interval_sets_per_second() {
    let config = AggregatorConfig {
        flush_interval: Duration::from_millis(500),
        ..Default::default()
    };
    let mut agg = Aggregator::new(config).unwrap();
    let t = Instant::now();
    feed(&mut agg, t, "c:3|c");
    assert_points(&agg.flush(t), &[("c.value", 3.0), ("c.per_second", 6.0)]);
}

#[test]
fn config_is_validated() {
    let bad = |c: AggregatorConfig| Aggregator::new(c).unwrap_err();
    assert_eq!(
        bad(AggregatorConfig {
            flush_interval: Duration::ZERO,
            ..Default::default()
        }),
        ConfigError::ZeroFlushInterval
    );
    for p in [0.0, -5.0, 100.5, f64::NAN] {
        let err = bad(AggregatorConfig {
            percentiles: vec![90.0, p],
            ..Default::default()
        });
        assert!(matches!(err, ConfigError::BadPercentile(_)), "{p}");
    }
    assert!(
        Aggregator::new(AggregatorConfig {
            percentiles: vec![],
            ..Default::default()
        })
        .is_ok()
    );
}

#[test]
fn names_and_tags_are_interned() {
    let mut agg = aggregator();
    let t = Instant::now();
    feed(
        &mut agg,
        t,
        "req:1|c|#env:prod\nreq:1|ms|#env:prod\nreq:1|c|#env:dev",
    );
    let points = agg.flush(t);
    let envs: Vec<&Arc<str>> = points.iter().map(|p| &p.tags[0].name).collect();
    assert!(envs.windows(2).all(|w| Arc::ptr_eq(w[0], w[1])));
}
