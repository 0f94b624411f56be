//! eventd: merges each check result with the stored event (history, state, occurrences),
//! stores it and publishes it. Also the work queues that feed eventd and keepalived.
//!
//! Work is sharded by entity so that the results of one entity are processed in order (the
//! history merge reads and writes the same key), and each shard drains its keepalive queue
//! before its event queue: a backlog of check events must never delay keepalives into false
//! alerts.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use proto_spec::v2::check::{
    CHECK_STATE_FAILING, CHECK_STATE_FLAPPING, CHECK_STATE_PASSING, MAX_HISTORY,
};
use proto_spec::v2::{Check, CheckHistory, Event};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::keepalived::Keepalived;
use crate::keys;
use crate::metrics::Metrics;
use crate::repo::{Repo, RepoResult};

/// Published after processing: every stored event, plus the unstored registration,
/// deregistration and metrics-only events. The pipeline subscribes here.
pub type EventBus = broadcast::Sender<Arc<Event>>;

#[derive(Clone)]
pub struct Eventd {
    pub repo: Repo,
    pub metrics: Arc<Metrics>,
    pub bus: EventBus,
}

impl Eventd {
    /// Merge a check result with its stored predecessor, store it and publish it.
    /// Metrics-only events are published without being stored.
    pub async fn process(&self, mut event: Event) -> RepoResult<Arc<Event>> {
        if event.timestamp == 0 {
            event.timestamp = crate::timefmt::now_unix();
        }
        if event.check.is_none() {
            let event = Arc::new(event);
            let _ = self.bus.send(event.clone());
            return Ok(event);
        }
        let ns = event.namespace().to_string();
        let key = keys::event(&ns, event.entity_name(), event.check_name());
        let previous: Option<Event> = self.repo.get(&key).await?;
        let check = event.check.as_mut().expect("checked above");
        merge_with_previous(check, previous.as_ref().and_then(|p| p.check.as_ref()));
        truncate_output(check);
        // Stored copies never carry metrics (Sensu strips them before storing).
        let metrics = event.metrics.take();
        self.repo.put(&key, &event).await?;
        event.metrics = metrics;
        Metrics::inc(&self.metrics.events_total);
        let event = Arc::new(event);
        let _ = self.bus.send(event.clone());
        Ok(event)
    }
}

/// Apply Sensu's per-result state machine (sensu-compat 2.3 and 2.4): history, flap
/// detection, state, `last_ok`, occurrences and their watermark. The first result of a check
/// merges with itself.
pub fn merge_with_previous(check: &mut Check, previous: Option<&Check>) {
    let prev = previous.unwrap_or(check).clone();
    let mut history = prev.history().to_vec();
    history.push(CheckHistory {
        status: check.status,
        executed: check.executed,
    });
    if history.len() > MAX_HISTORY {
        history.drain(..history.len() - MAX_HISTORY);
    }
    check.last_ok = prev.last_ok;
    check.occurrences = prev.occurrences;
    check.occurrences_watermark = prev.occurrences_watermark;
    check.total_state_change = total_state_change(&history);

    let cfg = &check.config;
    let flapping = cfg.low_flap_threshold != 0
        && cfg.high_flap_threshold != 0
        && check.total_state_change >= cfg.high_flap_threshold;
    if flapping {
        check.state = CHECK_STATE_FLAPPING.to_string();
    } else if check.status == 0 {
        check.state = CHECK_STATE_PASSING.to_string();
        check.last_ok = check.executed;
    } else {
        check.state = CHECK_STATE_FAILING.to_string();
    }

    let n = history.len();
    if n > 1 && history[n - 1].status == history[n - 2].status {
        check.occurrences += 1;
    } else {
        check.occurrences = 1;
    }
    if n > 1 && history[n - 1].status != 0 && history[n - 2].status == 0 {
        check.occurrences_watermark = 1;
    } else if check.occurrences > check.occurrences_watermark {
        check.occurrences_watermark += 1;
    }
    check.history = Some(history);
}

/// Weighted percentage of status changes over a full history (0 until 21 entries exist).
pub fn total_state_change(history: &[CheckHistory]) -> u32 {
    if history.len() < MAX_HISTORY {
        return 0;
    }
    let mut sum = 0f32;
    let mut weight = 0.8f32;
    for pair in history.windows(2) {
        if pair[0].status != pair[1].status {
            sum += weight;
        }
        weight += 0.02;
    }
    (sum / 20.0 * 100.0) as u32
}

/// Honour `max_output_size`: keep at most that many bytes of output (on a char boundary) and
/// record how many were dropped.
fn truncate_output(check: &mut Check) {
    let max = check.config.max_output_size;
    if max <= 0 || check.output.len() as i64 <= max {
        return;
    }
    let mut cut = max as usize;
    while !check.output.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = check.output.len() - cut;
    check.output.truncate(cut);
    check.config.metadata.labels.insert(
        "sensu.io/output_truncated_bytes".to_string(),
        dropped.to_string(),
    );
}

/// Work for one shard.
pub enum Work {
    Keepalive(Box<Event>),
    Event(Box<Event>),
}

/// The two queues of one shard: keepalives, then everything else.
struct ShardQueues {
    keepalives: mpsc::Sender<Box<Event>>,
    events: mpsc::Sender<Box<Event>>,
}

/// Routes work to shard queues by entity; cloneable handle used by agent sessions.
#[derive(Clone)]
pub struct Dispatcher {
    shards: Arc<Vec<ShardQueues>>,
}

impl Dispatcher {
    /// Start `workers` shard loops. `buffer` bounds each shard's queues: a full queue makes
    /// the submitting session wait, which pushes back on that agent's socket only.
    pub fn start(
        workers: usize,
        buffer: usize,
        keepalived: Arc<Keepalived>,
        eventd: Eventd,
        shutdown: CancellationToken,
    ) -> Self {
        let workers = workers.max(1);
        let per_shard = (buffer / workers).max(8);
        let mut shards = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (ka_tx, ka_rx) = mpsc::channel(per_shard);
            let (ev_tx, ev_rx) = mpsc::channel(per_shard);
            shards.push(ShardQueues {
                keepalives: ka_tx,
                events: ev_tx,
            });
            tokio::spawn(shard_loop(
                ka_rx,
                ev_rx,
                keepalived.clone(),
                eventd.clone(),
                shutdown.clone(),
            ));
        }
        Dispatcher {
            shards: Arc::new(shards),
        }
    }

    pub async fn submit(&self, work: Work) -> bool {
        let (event, is_keepalive) = match work {
            Work::Keepalive(e) => (e, true),
            Work::Event(e) => (e, false),
        };
        let mut h = DefaultHasher::new();
        event.namespace().hash(&mut h);
        event.entity_name().hash(&mut h);
        let shard = &self.shards[(h.finish() as usize) % self.shards.len()];
        let tx = if is_keepalive {
            &shard.keepalives
        } else {
            &shard.events
        };
        tx.send(event).await.is_ok()
    }
}

async fn shard_loop(
    mut keepalives: mpsc::Receiver<Box<Event>>,
    mut events: mpsc::Receiver<Box<Event>>,
    keepalived: Arc<Keepalived>,
    eventd: Eventd,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            Some(ka) = keepalives.recv() => {
                if let Err(e) = keepalived.handle_keepalive(*ka).await {
                    tracing::error!(error = %e, "Failed to process a keepalive; the agent's next keepalive retries it");
                }
            }
            Some(ev) = events.recv() => {
                let entity = ev.entity_name().to_string();
                if let Err(e) = eventd.process(*ev).await {
                    tracing::error!(error = %e, entity, "Failed to store an event");
                }
            }
            else => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: u32, executed: i64) -> Check {
        Check {
            status,
            executed,
            ..Default::default()
        }
    }

    fn run(statuses: &[u32]) -> Check {
        let mut prev: Option<Check> = None;
        for (i, s) in statuses.iter().enumerate() {
            let mut c = result(*s, i as i64 + 1);
            merge_with_previous(&mut c, prev.as_ref());
            prev = Some(c);
        }
        prev.unwrap()
    }

    #[test]
    fn first_result_merges_with_itself() {
        let c = run(&[0]);
        assert_eq!(
            c.history(),
            &[CheckHistory {
                status: 0,
                executed: 1
            }]
        );
        assert_eq!(
            (c.occurrences, c.occurrences_watermark, c.last_ok),
            (1, 1, 1)
        );
        assert_eq!(c.state, "passing");
    }

    #[test]
    fn occurrences_and_watermark() {
        let c = run(&[0, 1, 1, 1]);
        assert_eq!((c.occurrences, c.occurrences_watermark), (3, 3));
        assert_eq!(c.state, "failing");
        assert_eq!(c.last_ok, 1);
        let c = run(&[0, 1, 1, 1, 0]);
        assert_eq!((c.occurrences, c.occurrences_watermark), (1, 3));
        let c = run(&[0, 1, 1, 1, 0, 2]);
        assert_eq!(
            (c.occurrences, c.occurrences_watermark),
            (1, 1),
            "a new incident resets the watermark"
        );
    }

    #[test]
    fn history_is_capped_and_tsc_computed() {
        let alternating: Vec<u32> = (0..30).map(|i| i % 2).collect();
        let c = run(&alternating);
        assert_eq!(c.history().len(), MAX_HISTORY);
        assert_eq!(c.history()[0].executed, 10);
        // Every one of the 20 transitions changes: the weights 0.80..=1.18 add up to 19.8, but
        // accumulated in float32 as Sensu does they fall just short, so the truncated result
        // is 98, not 99.
        assert_eq!(c.total_state_change, 98);
        assert_eq!(total_state_change(&[CheckHistory::default(); 20]), 0);
    }

    #[test]
    fn flapping_needs_both_thresholds() {
        let alternating: Vec<u32> = (0..21).map(|i| i % 2).collect();
        let mut prev: Option<Check> = None;
        for (i, s) in alternating.iter().enumerate() {
            let mut c = result(*s, i as i64);
            c.config.low_flap_threshold = 10;
            c.config.high_flap_threshold = 50;
            merge_with_previous(&mut c, prev.as_ref());
            prev = Some(c);
        }
        assert_eq!(prev.unwrap().state, "flapping");
    }

    #[test]
    fn output_truncation_records_dropped_bytes() {
        let mut c = result(0, 1);
        c.output = "héllo world".to_string();
        c.config.max_output_size = 2;
        truncate_output(&mut c);
        assert_eq!(c.output, "h");
        assert_eq!(
            c.config.metadata.labels["sensu.io/output_truncated_bytes"],
            "11"
        );
    }
}
