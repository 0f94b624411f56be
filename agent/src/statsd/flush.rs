//! The flush task: snapshots → metrics-only events in the outbox.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ::statsd::FlushedPoint;
use proto_spec::ObjectMeta;
use proto_spec::v2::{Entity, Event, MetricPoint, MetricTag, Metrics};
use proto_spec::wire;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::drops::{self, KernelDrops};
use super::receive::Interval;
use super::{EventSink, Stats};

/// Room left in a frame for what the size accounting does not measure exactly (the id, the
/// frame's type line, separators).
const FRAME_SLACK: usize = 4096;

/// What one flush produced.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Built {
    pub events: Vec<Event>,
    pub points: usize,
    /// Points left out because their value is not finite.
    pub non_finite: usize,
}

pub(super) async fn run(
    mut intervals: mpsc::Receiver<Interval>,
    sink: EventSink,
    inode: Option<u64>,
    stats: Arc<Stats>,
) {
    let mut kernel = KernelDrops::default();
    while let Some(interval) = intervals.recv().await {
        if let Some(inode) = inode
            && let Some(total) = drops::read(inode).await
        {
            stats.kernel_drops.store(total, Ordering::Relaxed);
            if let Some(new) = kernel.update(total) {
                warn!(
                    dropped = new,
                    total, "StatsD datagrams dropped by the kernel (socket receive buffer full)"
                );
            }
        }
        report(&interval.counts);
        add_counts(&stats, &interval.counts);
        if interval.snapshot.is_empty() {
            continue;
        }
        let entity = (sink.entity)();
        let namespace = sink.namespace.clone();
        let handlers = sink.handlers.clone();
        let Interval {
            snapshot,
            unix_time,
            ..
        } = interval;
        // Sorting timer values and serialising for the size accounting is CPU work: keep it
        // off the runtime's workers, where the receive task and the session run.
        let built = tokio::task::spawn_blocking(move || {
            build_events(
                snapshot.into_points(),
                entity,
                &namespace,
                &handlers,
                unix_time,
            )
        })
        .await;
        let built = match built {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "StatsD flush failed; this interval's metrics are lost");
                continue;
            }
        };
        if built.non_finite > 0 {
            warn!(
                points = built.non_finite,
                "Left out StatsD points whose value is not a finite number (overflow)"
            );
        }
        if built.events.len() > 1 {
            warn!(
                events = built.events.len(),
                points = built.points,
                "StatsD flush too large for one frame; split into several events"
            );
        }
        debug!(points = built.points, "Flushing StatsD metrics");
        for event in built.events {
            sink.outbox.push(event);
        }
    }
}

fn add_counts(stats: &Stats, c: &super::receive::Counts) {
    stats.datagrams.fetch_add(c.datagrams, Ordering::Relaxed);
    stats.metrics.fetch_add(c.metrics, Ordering::Relaxed);
    stats.bad_lines.fetch_add(c.bad_lines, Ordering::Relaxed);
    stats.rejected.fetch_add(c.rejected, Ordering::Relaxed);
    stats
        .recv_errors
        .fetch_add(c.recv_errors, Ordering::Relaxed);
}

fn report(c: &super::receive::Counts) {
    if c.bad_lines > 0 {
        let reason = c
            .last_parse_error
            .map(|e| e.to_string())
            .unwrap_or_default();
        warn!(bad_lines = c.bad_lines, last_error = %reason, "Ignored invalid StatsD lines");
    }
    if c.rejected > 0 {
        warn!(
            metrics = c.rejected,
            limit = super::MAX_SERIES,
            "Dropped StatsD metrics: too many series"
        );
    }
    if c.recv_errors > 0 {
        warn!(
            errors = c.recv_errors,
            last_error = ?c.last_recv_error,
            "StatsD socket receive errors"
        );
    }
    if c.truncated > 0 {
        warn!(
            datagrams = c.truncated,
            "Ignored StatsD datagrams longer than the receive buffer"
        );
    }
    debug!(
        datagrams = c.datagrams,
        metrics = c.metrics,
        "StatsD interval received"
    );
}

/// The events of one flush: every finite point, stamped `unix_time` (seconds), in as few
/// events as fit a transport frame each.
pub(super) fn build_events(
    points: Vec<FlushedPoint>,
    entity: Entity,
    namespace: &str,
    handlers: &[String],
    unix_time: i64,
) -> Built {
    let mut built = Built::default();
    let template = Event {
        timestamp: unix_time,
        entity: Some(entity),
        check: None,
        metrics: Some(Metrics {
            handlers: Some(handlers.to_vec()),
            points: Some(Vec::new()),
        }),
        metadata: ObjectMeta {
            namespace: namespace.to_string(),
            ..Default::default()
        },
        id: None,
        sequence: 0,
        pipelines: None,
    };
    let budget = wire::MAX_FRAME_BYTES.saturating_sub(json_len(&template) + FRAME_SLACK);

    let mut current: Vec<MetricPoint> = Vec::new();
    let mut used = 0;
    for p in points {
        if !p.value.is_finite() {
            built.non_finite += 1;
            continue;
        }
        let point = MetricPoint {
            name: p.name,
            value: p.value,
            timestamp: unix_time,
            // Sensu sends `null` for a point without tags.
            tags: (!p.tags.is_empty()).then(|| {
                p.tags
                    .iter()
                    .map(|t| MetricTag {
                        name: t.name.to_string(),
                        value: t.value.to_string(),
                    })
                    .collect()
            }),
        };
        // +1 for the comma between points.
        let size = json_len(&point) + 1;
        if !current.is_empty() && used + size > budget {
            built
                .events
                .push(event_with(&template, std::mem::take(&mut current)));
            used = 0;
        }
        used += size;
        current.push(point);
        built.points += 1;
    }
    if !current.is_empty() {
        built.events.push(event_with(&template, current));
    }
    built
}

fn event_with(template: &Event, points: Vec<MetricPoint>) -> Event {
    let mut event = template.clone();
    event.id = Some(uuid::Uuid::new_v4());
    if let Some(m) = event.metrics.as_mut() {
        m.points = Some(points);
    }
    event
}

/// Length of a value's JSON (the transport's encoding), without building it.
fn json_len<T: serde::Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Plain data types; writing to a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}
