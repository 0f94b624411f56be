//! The aggregator: metrics in, one set of points per flush interval out.
//!
//! Series are keyed by (type, name, sorted tags), as gostatsd keys them (a counter and a gauge
//! of the same name are two series). What a flush emits per series, named after Sensu's
//! StatsD backend:
//!
//! | type | points |
//! |---|---|
//! | counter | `<name>.value` (sum of value/rate), `<name>.per_second` (value / flush interval) |
//! | timer, histogram | `.min .max .count .per_second .mean .median .stddev .sum .sum_squares`, then per percentile P `.percentile_count_P .percentile_mean_P .percentile_sum_P .percentile_sum_squares_P .percentile_upper_P` |
//! | gauge | `<name>.value` |
//! | set | `<name>.value` (distinct members) |
//!
//! Timer statistics follow gostatsd (itself Etsy's definitions): values sorted; `count` is
//! the sample-rate-scaled count (Σ 1/rate, rounded), `per_second` the unrounded one divided
//! by the interval; `stddev` is the population standard deviation; `median` the middle value
//! or the mean of the two middle ones. For percentile P with n values, the first
//! k = round(P/100·n) sorted values are taken (k = n when n = 1; P is skipped when k = 0),
//! and `percentile_upper_P` is the largest of them. A timer that received nothing during
//! the interval emits its nine plain points as zeros and no percentile points (gostatsd).
//!
//! After a flush, counters, timers and sets start again from zero and gauges keep their
//! value; every live series is emitted at every flush, updated or not. A series not updated
//! for longer than the expiry (5 minutes by default) is dropped at the next flush, without
//! being emitted.
//!
//! **Hot path.** [`Aggregator::add`] builds the series key into a reused buffer and looks the
//! series up with it, so a metric for an existing series allocates nothing (apart from the
//! amortised growth of a timer's value list and of a set's table). Names and tag strings are
//! interned: series sharing a name or tag share one allocation.
//!
//! **Flushing off the hot path.** [`Aggregator::snapshot`] is cheap (O(series), no sorting, no
//! string formatting): it moves the interval's raw data out and resets the series. The
//! expensive part, [`Snapshot::into_points`] (sorting timer values, formatting point names),
//! can then run elsewhere while the aggregator keeps receiving. [`Aggregator::flush`] does
//! both at once.
//!
//! **Bounds.** At most [`AggregatorConfig::max_series`] live series; metrics that would create
//! more are dropped and counted ([`Aggregator::rejected`]). A set stores 64-bit hashes of its
//! members, not the members (a collision undercounts by one; at a million members per
//! interval the chance of any collision is about 3·10⁻⁸).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::parse::{Metric, ParseError, Tag, Value, parse_datagram};

/// Percentiles computed for timers unless configured otherwise (Sensu's, gostatsd's).
pub const DEFAULT_PERCENTILES: &[f64] = &[90.0];
/// Idle time after which a series is dropped (gostatsd's default expiry, which Sensu uses).
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Default bound on live series. Each timer emits 14 points per flush; 10,000 series keep a
/// flush within a few MiB.
pub const DEFAULT_MAX_SERIES: usize = 10_000;
/// Flush interval unless configured otherwise (Sensu's).
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Most values a timer keeps capacity for across flushes: the common case allocates once,
/// and one burst does not pin its memory until the series expires.
const RETAINED_TIMER_CAPACITY: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct AggregatorConfig {
    /// The divisor of `per_second` points (gostatsd divides by the configured interval, not
    /// by the measured time between flushes).
    pub flush_interval: Duration,
    /// Timer percentiles, each in (0, 100].
    pub percentiles: Vec<f64>,
    pub expiry: Duration,
    pub max_series: usize,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig {
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            percentiles: DEFAULT_PERCENTILES.to_vec(),
            expiry: DEFAULT_EXPIRY,
            max_series: DEFAULT_MAX_SERIES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("the flush interval must be longer than zero")]
    ZeroFlushInterval,
    #[error("percentile {0} is not a number in (0, 100]")]
    BadPercentile(f64),
}

/// A series' tag, with interned strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesTag {
    pub name: Arc<str>,
    pub value: Arc<str>,
}

/// One output point. Tags are shared by all points of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct FlushedPoint {
    pub name: String,
    pub value: f64,
    pub tags: Arc<[SeriesTag]>,
}

/// The kinds of series; their order is the order points are flushed in (Sensu's: counters,
/// timers, gauges, sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Counter,
    Timer,
    Gauge,
    Set,
}

impl Kind {
    pub fn of(value: &Value<'_>) -> Kind {
        match value {
            Value::Counter(_) => Kind::Counter,
            Value::Timer(_) | Value::Histogram(_) => Kind::Timer,
            Value::Gauge(_) | Value::GaugeDelta(_) => Kind::Gauge,
            Value::Set(_) => Kind::Set,
        }
    }
}

/// What [`Aggregator::add_datagram`] did with one datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatagramStats {
    /// Metrics aggregated.
    pub metrics: usize,
    /// Lines refused by the parser.
    pub bad_lines: usize,
    /// Metrics dropped because they would have created a series beyond the limit.
    pub rejected: usize,
    /// The parser's reason for the last bad line.
    pub last_error: Option<ParseError>,
}

/// Accumulates metrics between flushes. Not thread-safe by design: one receive loop owns it
/// and hands [`Snapshot`]s to whoever builds the output.
#[derive(Debug)]
pub struct Aggregator {
    interval_secs: f64,
    expiry: Duration,
    max_series: usize,
    percentiles: Arc<[Percentile]>,
    series: HashMap<Box<[u8]>, Series>,
    interner: HashSet<Arc<str>>,
    /// Scratch: the key of the metric being added.
    key: Vec<u8>,
    /// Scratch: byte ranges of the metric's tags within its tag text, sorted by content.
    tag_ranges: Vec<(usize, usize)>,
    /// Hashes set members; seeded per aggregator so members cannot be picked to collide.
    members: RandomState,
    rejected: u64,
}

#[derive(Debug)]
struct Series {
    kind: Kind,
    name: Arc<str>,
    tags: Arc<[SeriesTag]>,
    last_update: Instant,
    state: State,
}

#[derive(Debug)]
enum State {
    Counter(f64),
    Gauge(f64),
    Timer { values: Vec<f64>, sampled: f64 },
    Set(HashSet<u64, BuildHasherDefault<Prehashed>>),
}

/// Names of one percentile's points, formatted once.
#[derive(Debug)]
struct Percentile {
    /// P / 100.
    fraction: f64,
    count: String,
    mean: String,
    sum: String,
    sum_squares: String,
    upper: String,
}

impl Aggregator {
    pub fn new(config: AggregatorConfig) -> Result<Aggregator, ConfigError> {
        if config.flush_interval.is_zero() {
            return Err(ConfigError::ZeroFlushInterval);
        }
        let mut percentiles = Vec::with_capacity(config.percentiles.len());
        for &p in &config.percentiles {
            if !(p > 0.0 && p <= 100.0) {
                return Err(ConfigError::BadPercentile(p));
            }
            // gostatsd: 90 → "90", 99.9 → "99_9".
            let label = format!("{p}").replace('.', "_");
            percentiles.push(Percentile {
                fraction: p / 100.0,
                count: format!("percentile_count_{label}"),
                mean: format!("percentile_mean_{label}"),
                sum: format!("percentile_sum_{label}"),
                sum_squares: format!("percentile_sum_squares_{label}"),
                upper: format!("percentile_upper_{label}"),
            });
        }
        Ok(Aggregator {
            interval_secs: config.flush_interval.as_secs_f64(),
            expiry: config.expiry,
            max_series: config.max_series,
            percentiles: percentiles.into(),
            series: HashMap::new(),
            interner: HashSet::new(),
            key: Vec::with_capacity(256),
            tag_ranges: Vec::new(),
            members: RandomState::new(),
            rejected: 0,
        })
    }

    /// Aggregate one metric received at `now`. Returns false when it was dropped because it
    /// would have created a series beyond the limit.
    ///
    /// Sample rates outside (0, 1] (which the parser never yields) count as 1.
    pub fn add(&mut self, metric: &Metric<'_>, now: Instant) -> bool {
        let kind = Kind::of(&metric.value);
        self.build_key(metric, kind);
        let rate = if metric.sample_rate > 0.0 && metric.sample_rate <= 1.0 {
            metric.sample_rate
        } else {
            1.0
        };
        if let Some(series) = self.series.get_mut(self.key.as_slice()) {
            series.last_update = now;
            series.state.apply(&metric.value, rate, &self.members);
            return true;
        }
        if self.series.len() >= self.max_series {
            self.rejected += 1;
            return false;
        }
        let raw_tags = metric.tags.as_str();
        let tags: Vec<SeriesTag> = self
            .tag_ranges
            .iter()
            .map(|&(start, end)| {
                let tag = Tag::parse(&raw_tags[start..end]);
                SeriesTag {
                    name: intern(&mut self.interner, tag.name),
                    value: intern(&mut self.interner, tag.value),
                }
            })
            .collect();
        let mut state = State::new(kind);
        state.apply(&metric.value, rate, &self.members);
        let series = Series {
            kind,
            name: intern(&mut self.interner, metric.name),
            tags: tags.into(),
            last_update: now,
            state,
        };
        self.series.insert(self.key.as_slice().into(), series);
        true
    }

    /// Parse a datagram and aggregate its metrics; bad lines are counted and skipped.
    pub fn add_datagram(&mut self, datagram: &[u8], now: Instant) -> DatagramStats {
        let mut lines = parse_datagram(datagram);
        let mut stats = DatagramStats::default();
        for metric in &mut lines {
            if self.add(&metric, now) {
                stats.metrics += 1;
            } else {
                stats.rejected += 1;
            }
        }
        stats.bad_lines = lines.bad_lines();
        stats.last_error = lines.last_error();
        stats
    }

    /// End the interval at `now`: drop the series idle for longer than the expiry, move the
    /// interval's data of the others into a [`Snapshot`], reset counters, timers and sets.
    pub fn snapshot(&mut self, now: Instant) -> Snapshot {
        let expiry = self.expiry;
        let before = self.series.len();
        self.series
            .retain(|_, s| now.saturating_duration_since(s.last_update) <= expiry);
        if self.series.len() < before {
            // Strings no series refers to any more (the set holds one reference itself).
            self.interner.retain(|s| Arc::strong_count(s) > 1);
        }
        let entries = self
            .series
            .values_mut()
            .map(|s| Entry {
                kind: s.kind,
                name: s.name.clone(),
                tags: s.tags.clone(),
                data: s.state.take(),
            })
            .collect();
        Snapshot {
            interval_secs: self.interval_secs,
            percentiles: self.percentiles.clone(),
            entries,
        }
    }

    /// [`snapshot`](Self::snapshot) and [`Snapshot::into_points`] in one call.
    pub fn flush(&mut self, now: Instant) -> Vec<FlushedPoint> {
        self.snapshot(now).into_points()
    }

    /// Live series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Metrics dropped since creation because the series limit was reached.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// The key: kind, then the name and each tag (sorted), each length-prefixed so that no
    /// two different (name, tags) pairs can produce the same bytes.
    fn build_key(&mut self, metric: &Metric<'_>, kind: Kind) {
        let raw = metric.tags.as_str();
        self.tag_ranges.clear();
        let mut start = 0;
        for part in raw.split(',') {
            if !part.is_empty() {
                self.tag_ranges.push((start, start + part.len()));
            }
            start += part.len() + 1;
        }
        self.tag_ranges
            .sort_unstable_by(|a, b| raw[a.0..a.1].cmp(&raw[b.0..b.1]));

        self.key.clear();
        self.key.push(kind as u8);
        push_field(&mut self.key, metric.name);
        for &(start, end) in &self.tag_ranges {
            push_field(&mut self.key, &raw[start..end]);
        }
    }
}

fn push_field(key: &mut Vec<u8>, field: &str) {
    // Lines are at most MAX_LINE_LEN bytes, so a field length always fits in a u32.
    key.extend_from_slice(&(field.len() as u32).to_le_bytes());
    key.extend_from_slice(field.as_bytes());
}

fn intern(interner: &mut HashSet<Arc<str>>, s: &str) -> Arc<str> {
    if let Some(existing) = interner.get(s) {
        return existing.clone();
    }
    let new: Arc<str> = Arc::from(s);
    interner.insert(new.clone());
    new
}

impl State {
    fn new(kind: Kind) -> State {
        match kind {
            Kind::Counter => State::Counter(0.0),
            Kind::Gauge => State::Gauge(0.0),
            Kind::Timer => State::Timer {
                values: Vec::new(),
                sampled: 0.0,
            },
            Kind::Set => State::Set(HashSet::default()),
        }
    }

    fn apply(&mut self, value: &Value<'_>, rate: f64, members: &RandomState) {
        match (self, *value) {
            (State::Counter(c), Value::Counter(v)) => *c += v / rate,
            (State::Gauge(g), Value::Gauge(v)) => *g = v,
            // A delta on a new gauge starts from zero (Etsy).
            (State::Gauge(g), Value::GaugeDelta(v)) => *g += v,
            (State::Timer { values, sampled }, Value::Timer(v) | Value::Histogram(v)) => {
                values.push(v);
                *sampled += 1.0 / rate;
            }
            (State::Set(set), Value::Set(member)) => {
                set.insert(members.hash_one(member));
            }
            // The kind is part of the series key, so the state always matches the value.
            _ => debug_assert!(false, "series state and metric type disagree"),
        }
    }

    /// The interval's data; leaves the state reset for the next interval.
    fn take(&mut self) -> Data {
        match self {
            State::Counter(c) => Data::Counter(std::mem::take(c)),
            State::Gauge(g) => Data::Gauge(*g),
            State::Timer { values, sampled } => {
                let keep = values.len().min(RETAINED_TIMER_CAPACITY);
                Data::Timer {
                    values: std::mem::replace(values, Vec::with_capacity(keep)),
                    sampled: std::mem::take(sampled),
                }
            }
            State::Set(set) => {
                let n = set.len();
                set.clear();
                Data::Set(n)
            }
        }
    }
}

/// One interval's data, detached from the aggregator.
#[derive(Debug)]
pub struct Snapshot {
    interval_secs: f64,
    percentiles: Arc<[Percentile]>,
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    kind: Kind,
    name: Arc<str>,
    tags: Arc<[SeriesTag]>,
    data: Data,
}

#[derive(Debug)]
enum Data {
    Counter(f64),
    Gauge(f64),
    Timer { values: Vec<f64>, sampled: f64 },
    Set(usize),
}

impl Snapshot {
    /// Series in the snapshot; each emits at least one point.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The points: counters, timers, gauges, sets, each sorted by name then tags.
    pub fn into_points(mut self) -> Vec<FlushedPoint> {
        self.entries
            .sort_unstable_by(|a, b| (a.kind, &a.name, &a.tags).cmp(&(b.kind, &b.name, &b.tags)));
        let mut out = Vec::with_capacity(self.entries.len() * 2);
        for entry in self.entries {
            let mut emit = |suffix: &str, value: f64| {
                out.push(FlushedPoint {
                    name: point_name(&entry.name, suffix),
                    value,
                    tags: entry.tags.clone(),
                });
            };
            match entry.data {
                Data::Counter(v) => {
                    emit("value", v);
                    emit("per_second", v / self.interval_secs);
                }
                Data::Gauge(v) => emit("value", v),
                Data::Set(n) => emit("value", n as f64),
                Data::Timer {
                    mut values,
                    sampled,
                } => timer_points(
                    &mut values,
                    sampled,
                    self.interval_secs,
                    &self.percentiles,
                    &mut emit,
                ),
            }
        }
        out
    }
}

fn point_name(name: &str, suffix: &str) -> String {
    let mut s = String::with_capacity(name.len() + 1 + suffix.len());
    s.push_str(name);
    s.push('.');
    s.push_str(suffix);
    s
}

/// gostatsd's `round`: halves go up.
fn round(x: f64) -> f64 {
    (x + 0.5).floor()
}

fn timer_points(
    values: &mut [f64],
    sampled: f64,
    interval_secs: f64,
    percentiles: &[Percentile],
    emit: &mut impl FnMut(&str, f64),
) {
    let n = values.len();
    if n == 0 {
        for suffix in [
            "min",
            "max",
            "count",
            "per_second",
            "mean",
            "median",
            "stddev",
            "sum",
            "sum_squares",
        ] {
            emit(suffix, 0.0);
        }
        return;
    }
    values.sort_unstable_by(f64::total_cmp);
    let count = n as f64;
    // Sums in sorted order, as gostatsd's cumulative arrays do, so results match to the bit.
    let (sum, sum_squares) = values
        .iter()
        .fold((0.0, 0.0), |(s, q), &v| (s + v, q + v * v));
    let mean = sum / count;
    let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / count;
    let median = if n.is_multiple_of(2) {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    } else {
        values[n / 2]
    };
    emit("min", values[0]);
    emit("max", values[n - 1]);
    emit("count", round(sampled));
    emit("per_second", sampled / interval_secs);
    emit("mean", mean);
    emit("median", median);
    emit("stddev", variance.sqrt());
    emit("sum", sum);
    emit("sum_squares", sum_squares);
    for p in percentiles {
        // One value is its own every percentile (gostatsd special-cases it the same way).
        let k = if n > 1 {
            round(p.fraction * count) as usize
        } else {
            1
        };
        if k == 0 {
            continue;
        }
        let k = k.min(n);
        let (s, q) = values[..k]
            .iter()
            .fold((0.0, 0.0), |(s, q), &v| (s + v, q + v * v));
        emit(&p.count, k as f64);
        emit(&p.mean, s / k as f64);
        emit(&p.sum, s);
        emit(&p.sum_squares, q);
        emit(&p.upper, values[k - 1]);
    }
}

/// A hasher for keys that already are uniformly distributed 64-bit hashes.
#[derive(Debug, Default, Clone, Copy)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; fold anything else anyway rather than panic.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests;
