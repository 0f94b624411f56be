//! Any datagram a local process sends: parsing never panics, every metric it yields respects
//! the grammar's guarantees, every non-blank line is either a metric or a counted bad line,
//! and aggregating, flushing and expiring what it yields never panics.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use statsd::{Aggregator, AggregatorConfig, MAX_LINE_LEN, Value, parse_datagram, parse_line};

fuzz_target!(|data: &[u8]| {
    let mut lines = parse_datagram(data);
    let mut metrics = 0;
    for m in &mut lines {
        metrics += 1;
        assert!(!m.name.is_empty() && !m.name.contains(['|', '\n']));
        assert!(m.name.len() <= MAX_LINE_LEN);
        assert!(m.sample_rate > 0.0 && m.sample_rate <= 1.0);
        match m.value {
            Value::Counter(v)
            | Value::Gauge(v)
            | Value::GaugeDelta(v)
            | Value::Timer(v)
            | Value::Histogram(v) => assert!(v.is_finite()),
            Value::Set(member) => assert!(!member.is_empty()),
        }
        for tag in m.tags.iter() {
            assert!(!tag.name.contains(',') && !tag.value.contains(','));
        }
    }
    // Every non-blank line is either a metric or a bad line.
    let non_blank = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .count();
    assert_eq!(metrics + lines.bad_lines(), non_blank);
    // parse_line agrees with the iterator on a single line.
    if !data.contains(&b'\n') && !data.trim_ascii().is_empty() {
        assert_eq!(parse_line(data).is_ok(), metrics == 1);
    }

    let config = AggregatorConfig {
        percentiles: vec![50.0, 90.0, 99.9, 100.0],
        max_series: 64,
        ..Default::default()
    };
    let mut agg = Aggregator::new(config).expect("valid config");
    let now = Instant::now();
    let stats = agg.add_datagram(data, now);
    assert_eq!(stats.metrics + stats.rejected, metrics);
    let first = agg.flush(now);
    // A second flush after expiry is empty; before it, every series is still there.
    let again = agg.flush(now + Duration::from_secs(1));
    assert!(again.len() <= first.len());
    assert!(agg.flush(now + Duration::from_secs(3600)).is_empty());
});
