//! eventd: merges each check result with the stored event (history, state, occurrences),
//! stores it and publishes it; attributes results to proxy entities (creating them on first
//! sight); keeps check TTLs (dead man's switches). Also the work queues that feed eventd and
//! keepalived.
//!
//! Work is sharded by entity so that the results of one entity are processed in order (the
//! history merge reads and writes the same key), and each shard drains its keepalive queue
//! before its event queue: a backlog of check events must never delay keepalives into false
//! alerts.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use backend_store::{Compare, Op, Txn};
use proto_spec::v2::check::{
    CHECK_STATE_FAILING, CHECK_STATE_FLAPPING, CHECK_STATE_PASSING, MAX_HISTORY,
};
use proto_spec::v2::entity::{ENTITY_CLASS_AGENT, ENTITY_CLASS_PROXY};
use proto_spec::v2::{Check, CheckHistory, EntityConfig, Event};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::entities::{self, EntityState};
use crate::keepalived::{KEEPALIVE_CHECK, Keepalived};
use crate::keys;
use crate::metrics::Metrics;
use crate::repo::{Repo, RepoError, RepoResult, encode};
use crate::silencing::Silences;
use crate::switchset::Switchset;
use crate::timefmt::now_unix;
use crate::writer::{BatchWriter, Written};

/// Cluster-wide cap on a stored check output, applied even when a check sets no (or a larger)
/// `max_output_size`: an event must fit well inside etcd's 1.5 MiB request limit, history,
/// entity and all.
pub const DEFAULT_MAX_OUTPUT_BYTES: i64 = 256 * 1024;

/// Published after processing: every stored event, plus the unstored registration,
/// deregistration and metrics-only events. The pipeline subscribes here.
pub type EventBus = broadcast::Sender<Arc<Event>>;

#[derive(Clone)]
pub struct Eventd {
    pub repo: Repo,
    pub metrics: Arc<Metrics>,
    pub bus: EventBus,
    /// Check TTL switches, `<ns>/<check>/<entity>`.
    ttl_switches: Arc<Switchset>,
    pub silences: Arc<Silences>,
    /// Batches event writes into store transactions.
    pub writer: BatchWriter,
    /// What this backend last stored for each event key, so the merge needs no read.
    cache: Arc<EventCache>,
}

impl Eventd {
    pub fn new(repo: Repo, metrics: Arc<Metrics>, bus: EventBus) -> Self {
        let ttl_switches = Arc::new(Switchset::new(
            repo.store.clone(),
            keys::check_ttl_switches_prefix(),
        ));
        let silences = Silences::new(repo.clone());
        let writer = BatchWriter::start(repo.store.clone(), metrics.clone());
        Eventd {
            repo,
            metrics,
            bus,
            ttl_switches,
            silences,
            writer,
            cache: Arc::new(EventCache::default()),
        }
    }

    /// Merge a check result with its stored predecessor, store it and publish it.
    /// Metrics-only events are published without being stored.
    pub async fn process(&self, event: Event) -> RepoResult<Arc<Event>> {
        self.process_with(event, true, false).await
    }

    /// [`Eventd::process`] for an agent that resends an event until it is acknowledged: the
    /// stored event's own id again is that resend, not a new result. Only there: an operator
    /// resolving an event through the API posts it back with its id on purpose.
    pub async fn process_resendable(&self, event: Event) -> RepoResult<Arc<Event>> {
        self.process_with(event, true, true).await
    }

    async fn process_with(
        &self,
        mut event: Event,
        refresh_ttl: bool,
        may_be_resent: bool,
    ) -> RepoResult<Arc<Event>> {
        if event.timestamp == 0 {
            event.timestamp = now_unix();
        }
        if event.check.is_none() {
            let event = Arc::new(event);
            let _ = self.bus.send(event.clone());
            return Ok(event);
        }
        self.resolve_proxy_entity(&mut event).await?;
        let ns = event.namespace().to_string();
        let key = keys::event(&ns, event.entity_name(), event.check_name());
        // A retry after a conflict merges the same event again, from what the merge read of
        // the check as received (no clone of the whole event per result).
        let received = MergeInputs::of(event.check.as_ref().expect("checked above"));
        let mut attempt = 0;
        let previous = loop {
            attempt += 1;
            let (previous, previous_revision) = match self.cache.get(&key) {
                Some(hit) => hit,
                None => {
                    Metrics::inc(&self.metrics.event_cache_misses_total);
                    match self.repo.get_with_revision::<Event>(&key).await? {
                        Some((e, rev)) => (Some(e), rev),
                        None => (None, 0),
                    }
                }
            };
            if may_be_resent
                && event.id.is_some()
                && previous.as_ref().and_then(|p| p.id) == event.id
            {
                // The same result again: an agent resending an event whose acknowledgement
                // it never got (the backend stored it, then the session broke).
                Metrics::inc(&self.metrics.events_duplicate_total);
                return Ok(Arc::new(event));
            }
            let silenced = self.silences.matching(&event, now_unix());
            let check = event.check.as_mut().expect("checked above");
            check.silenced = silenced;
            merge_with_previous(check, previous.as_ref().and_then(|p| p.check.as_ref()));
            if is_resolution(check) && !check.silenced.is_empty() {
                let cleared = self.silences.clear_on_resolve(&ns, &check.silenced).await?;
                check.silenced.retain(|name| !cleared.contains(name));
            }
            check.is_silenced = !check.silenced.is_empty();
            truncate_output(check);
            // Stored copies never carry metrics (Sensu strips them before storing).
            let metrics = event.metrics.take();
            // Written only if the stored event is still the one merged with: another backend
            // (an API post, a delete) may have changed it since this backend last saw it.
            let guard = if previous_revision == 0 {
                Compare::absent(key.clone())
            } else {
                Compare::mod_revision(key.clone(), previous_revision)
            };
            // Nobody reads the overwritten event back from the write: no `prev_kv`.
            let put = Op::put_without_prev(key.clone(), encode_event(&event));
            match self.writer.write(vec![guard], vec![put]).await? {
                Written::At(revision) => {
                    self.cache.insert(&key, &event, revision);
                    event.metrics = metrics;
                    break previous;
                }
                Written::Conflict if attempt < 5 => {
                    self.cache.remove(&key);
                    event.metrics = metrics;
                    received.restore(event.check.as_mut().expect("checked above"));
                    tracing::debug!(%key, "Stored event changed meanwhile; merging again");
                }
                Written::Conflict => {
                    self.cache.remove(&key);
                    return Err(RepoError::Store(backend_store::StoreError::Unavailable(
                        format!("{key} keeps changing under concurrent writers"),
                    )));
                }
            }
        };
        Metrics::inc(&self.metrics.events_total);
        if refresh_ttl && event.check_name() != KEEPALIVE_CHECK {
            self.track_ttl(&event, previous.as_ref()).await?;
        }
        let event = Arc::new(event);
        let _ = self.bus.send(event.clone());
        Ok(event)
    }

    /// Attribute a result to its proxy entity: the check's `proxy_entity_name`, or the event's
    /// own entity when it is not an agent (events posted through the API). The entity is
    /// created, class `proxy`, the first time a result names it.
    async fn resolve_proxy_entity(&self, event: &mut Event) -> RepoResult<()> {
        let ns = event.namespace().to_string();
        let Some(entity) = event.entity.as_ref() else {
            return Ok(());
        };
        let proxy_name = match event
            .check
            .as_ref()
            .map(|c| c.config.proxy_entity_name.as_str())
        {
            Some(name) if !name.is_empty() => name.to_string(),
            _ if entity.entity_class != ENTITY_CLASS_AGENT => entity.metadata.name.clone(),
            _ => return Ok(()),
        };
        if let Some(stored) = entities::get(&self.repo, &ns, &proxy_name).await? {
            event.entity = Some(stored);
            return Ok(());
        }
        // First sight: keep what the event said about the entity when it is that entity.
        let mut proxy = if entity.metadata.name == proxy_name {
            entity.clone()
        } else {
            Default::default()
        };
        proxy.metadata.name = proxy_name.clone();
        proxy.metadata.namespace = ns.clone();
        if proxy.entity_class.is_empty() || proxy.entity_class == ENTITY_CLASS_AGENT {
            proxy.entity_class = ENTITY_CLASS_PROXY.to_string();
        }
        proxy.ensure_entity_subscription();
        let config = EntityConfig::from_entity(&proxy);
        let state = EntityState::from_entity(&proxy);
        let created = self
            .repo
            .store
            .txn(Txn {
                compares: vec![
                    Compare::absent(keys::entity_config(&ns, &proxy_name)),
                    Compare::present(keys::namespace(&ns)),
                ],
                success: vec![
                    Op::put(keys::entity_config(&ns, &proxy_name), encode(&config)),
                    Op::put(keys::entity_state(&ns, &proxy_name), encode(&state)),
                ],
                failure: vec![],
            })
            .await?
            .succeeded;
        if created {
            tracing::info!(namespace = %ns, entity = %proxy_name, "Proxy entity created");
        }
        event.entity = entities::get(&self.repo, &ns, &proxy_name)
            .await?
            .or(Some(proxy));
        Ok(())
    }

    /// Renew (or stop) the check's TTL switch after a result.
    async fn track_ttl(&self, event: &Event, previous: Option<&Event>) -> RepoResult<()> {
        let ttl = event.check.as_ref().map_or(0, |c| c.config.ttl);
        let id = ttl_switch_id(event.namespace(), event.check_name(), event.entity_name());
        if ttl > 0 {
            self.ttl_switches.alive(&id, ttl as u64).await?;
        } else if previous
            .and_then(|p| p.check.as_ref())
            .is_some_and(|c| c.config.ttl > 0)
        {
            self.ttl_switches.bury(&id).await?;
        }
        Ok(())
    }

    /// Watch for lapsed check TTLs until shutdown.
    pub async fn run_ttl_monitor(self, shutdown: CancellationToken) {
        let this = self.clone();
        self.ttl_switches
            .clone()
            .watch_expiries(shutdown, move |id| {
                let this = this.clone();
                async move {
                    if let Err(e) = this.handle_ttl_expiry(&id).await {
                        tracing::error!(error = %e, switch = %id, "Failed to handle a check TTL expiry");
                    }
                }
            })
            .await;
    }

    /// A check stopped reporting within its TTL (sensu-compat 2.6): unless its entity or event
    /// is gone, or the entity's keepalive is failing (the keepalive alert already says the
    /// host is silent), raise a warning built from the last result. Repeats every TTL.
    pub async fn handle_ttl_expiry(&self, id: &str) -> Result<(), RepoError> {
        let mut parts = id.splitn(3, '/');
        let (Some(ns), Some(check), Some(entity)) = (parts.next(), parts.next(), parts.next())
        else {
            return Ok(());
        };
        let Some(mut event) = self
            .repo
            .get::<Event>(&keys::event(ns, entity, check))
            .await?
        else {
            return Ok(());
        };
        if !self.repo.exists(&keys::entity_config(ns, entity)).await? {
            return Ok(());
        }
        let ttl = event.check.as_ref().map_or(0, |c| c.config.ttl);
        if ttl <= 0 {
            return Ok(());
        }
        let Some(_lease) = self.ttl_switches.lead_expiry(id, ttl as u64).await? else {
            return Ok(());
        };
        let keepalive: Option<Event> = self
            .repo
            .get(&keys::event(ns, entity, KEEPALIVE_CHECK))
            .await?;
        if keepalive
            .and_then(|k| k.check)
            .is_some_and(|c| c.status > 0)
        {
            return Ok(());
        }
        let now = now_unix();
        let check = event.check.as_mut().expect("ttl read from it");
        let silent_for = now - check.executed;
        check.status = 1;
        check.output = format!("Last check execution was {silent_for} seconds ago");
        check.executed = now;
        check.issued = now;
        event.timestamp = now;
        event.id = Some(Uuid::new_v4());
        tracing::warn!(namespace = %ns, check = %check.name(), entity = %entity, silent_for, "Check TTL expired");
        self.process_with(event, false, false).await?;
        Ok(())
    }
}

/// The fields of a received check that the merge reads (when nothing is stored before it) or
/// overwrites, so a retried merge starts from the result as received.
struct MergeInputs {
    history: Option<Vec<CheckHistory>>,
    last_ok: i64,
    occurrences: i64,
    occurrences_watermark: i64,
    state: String,
    total_state_change: u32,
    silenced: Vec<String>,
    is_silenced: bool,
}

impl MergeInputs {
    fn of(check: &Check) -> Self {
        MergeInputs {
            history: check.history.clone(),
            last_ok: check.last_ok,
            occurrences: check.occurrences,
            occurrences_watermark: check.occurrences_watermark,
            state: check.state.clone(),
            total_state_change: check.total_state_change,
            silenced: check.silenced.clone(),
            is_silenced: check.is_silenced,
        }
    }

    fn restore(&self, check: &mut Check) {
        check.history = self.history.clone();
        check.last_ok = self.last_ok;
        check.occurrences = self.occurrences;
        check.occurrences_watermark = self.occurrences_watermark;
        check.state = self.state.clone();
        check.total_state_change = self.total_state_change;
        check.silenced = self.silenced.clone();
        check.is_silenced = self.is_silenced;
    }
}

/// The part of each stored event that the next merge reads (history, counters, state, TTL,
/// and the id, to recognise a resent result),
/// with the revision it was stored at. A stale entry costs one conflict and a re-read, never a
/// wrong merge: the write is conditional on that revision.
#[derive(Default)]
struct EventCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, CachedEvent>>,
}

/// Only what the merge reads, not an `Event`: a whole `Event` is ~1.9 KB inline, and the table
/// holds one per (entity, check) on every backend, spare buckets included (~3 KB per agent).
struct CachedEvent {
    id: Option<Uuid>,
    history: Option<Vec<CheckHistory>>,
    last_ok: i64,
    occurrences: i64,
    occurrences_watermark: i64,
    state: String,
    ttl: i64,
    revision: backend_store::Revision,
}

/// Entries kept before the cache starts afresh (~0.5 KiB each).
const EVENT_CACHE_MAX: usize = 100_000;

impl EventCache {
    fn get(&self, key: &str) -> Option<(Option<Event>, backend_store::Revision)> {
        let entries = self.entries.lock().expect("event cache lock");
        let cached = entries.get(key)?;
        let mut check = Check {
            history: cached.history.clone(),
            last_ok: cached.last_ok,
            occurrences: cached.occurrences,
            occurrences_watermark: cached.occurrences_watermark,
            state: cached.state.clone(),
            ..Default::default()
        };
        check.config.ttl = cached.ttl;
        let event = Event {
            check: Some(check),
            id: cached.id,
            ..Default::default()
        };
        Some((Some(event), cached.revision))
    }

    fn insert(&self, key: &str, event: &Event, revision: backend_store::Revision) {
        let Some(check) = event.check.as_ref() else {
            return;
        };
        let cached = CachedEvent {
            id: event.id,
            history: check.history.clone(),
            last_ok: check.last_ok,
            occurrences: check.occurrences,
            occurrences_watermark: check.occurrences_watermark,
            state: check.state.clone(),
            ttl: check.config.ttl,
            revision,
        };
        let mut entries = self.entries.lock().expect("event cache lock");
        if entries.len() >= EVENT_CACHE_MAX && !entries.contains_key(key) {
            entries.clear();
        }
        entries.insert(key.to_string(), cached);
    }

    fn remove(&self, key: &str) {
        self.entries.lock().expect("event cache lock").remove(key);
    }
}

/// The stored JSON of an event. Sized up front: a stored event is a few KB (entity, check,
/// history), and growing the buffer from empty reallocated it ~6 times per result.
fn encode_event(event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    serde_json::to_writer(&mut out, event).expect("JSON encoding of a proto-spec value");
    out
}

fn ttl_switch_id(ns: &str, check: &str, entity: &str) -> String {
    format!("{ns}/{check}/{entity}")
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

    // Hysteresis: a check starts flapping at the high threshold and stops only below the low
    // one. (Sensu 6 never records the flapping flag its hysteresis reads, so its low threshold
    // is inert there; Picket uses the previous state, as the thresholds' documentation says.)
    let cfg = &check.config;
    let was_flapping = previous.is_some_and(|p| p.state == CHECK_STATE_FLAPPING);
    let threshold = if was_flapping {
        cfg.low_flap_threshold
    } else {
        cfg.high_flap_threshold
    };
    let flapping = cfg.low_flap_threshold != 0
        && cfg.high_flap_threshold != 0
        && check.total_state_change >= threshold;
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

/// The result ends an incident: OK now, not OK just before (sensu-compat 2.4).
pub fn is_resolution(check: &Check) -> bool {
    let h = check.history();
    h.len() >= 2 && h[h.len() - 1].status == 0 && h[h.len() - 2].status != 0
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

/// Honour `max_output_size` (bounded by the cluster-wide cap): keep at most that many bytes
/// of output (on a char boundary) and record how many were dropped.
fn truncate_output(check: &mut Check) {
    let max = match check.config.max_output_size {
        m if m > 0 => m.min(DEFAULT_MAX_OUTPUT_BYTES),
        _ => DEFAULT_MAX_OUTPUT_BYTES,
    };
    if check.output.len() as i64 <= max {
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
    /// An event whose submitter wants to know when it is stored (`true`) or failed
    /// (`false`): agent sessions that acknowledge events (protocol version 2).
    EventNotify(Box<Event>, oneshot::Sender<bool>),
}

type EventWork = (Box<Event>, Option<oneshot::Sender<bool>>);

/// The two queues of one shard: keepalives, then everything else.
struct ShardQueues {
    keepalives: mpsc::Sender<Box<Event>>,
    events: mpsc::Sender<EventWork>,
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
        let (event, is_keepalive, done) = match work {
            Work::Keepalive(e) => (e, true, None),
            Work::Event(e) => (e, false, None),
            Work::EventNotify(e, done) => (e, false, Some(done)),
        };
        let mut h = DefaultHasher::new();
        event.namespace().hash(&mut h);
        event.entity_name().hash(&mut h);
        let shard = &self.shards[(h.finish() as usize) % self.shards.len()];
        if is_keepalive {
            shard.keepalives.send(event).await.is_ok()
        } else {
            shard.events.send((event, done)).await.is_ok()
        }
    }
}

async fn shard_loop(
    mut keepalives: mpsc::Receiver<Box<Event>>,
    mut events: mpsc::Receiver<EventWork>,
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
            Some((ev, done)) = events.recv() => {
                let entity = ev.entity_name().to_string();
                let processed = if done.is_some() {
                    eventd.process_resendable(*ev).await
                } else {
                    eventd.process(*ev).await
                };
                let stored = match processed {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::error!(error = %e, entity, "Failed to store an event");
                        false
                    }
                };
                if let Some(done) = done {
                    let _ = done.send(stored);
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

    /// Hand-computed: a history of 21 entries where the last `changes` transitions alternate
    /// gives TSC = sum of the last `changes` weights (0.80 + 0.02·i) / 20 · 100, truncated.
    fn history_with_changes(changes: usize) -> Vec<u32> {
        let mut statuses = vec![0u32; 21 - changes];
        for i in 0..changes {
            statuses.push(if i % 2 == 0 { 1 } else { 0 });
        }
        statuses
    }

    fn run_flap(statuses: &[u32], low: u32, high: u32, start_flapping: bool) -> Check {
        let mut prev = Check {
            history: Some(
                statuses[..statuses.len() - 1]
                    .iter()
                    .map(|s| CheckHistory {
                        status: *s,
                        executed: 1,
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        if start_flapping {
            prev.state = CHECK_STATE_FLAPPING.to_string();
        }
        let mut c = result(*statuses.last().unwrap(), 2);
        c.config.low_flap_threshold = low;
        c.config.high_flap_threshold = high;
        merge_with_previous(&mut c, Some(&prev));
        c
    }

    #[test]
    fn total_state_change_table() {
        // (changes in the last transitions, expected TSC): weights of the last n of 20
        // transitions are 1.18, 1.16, ...; e.g. n = 1 → 1.18/20 = 5.9 % → 5.
        for (changes, expected) in [(0, 0), (1, 5), (2, 11), (5, 28), (10, 54), (20, 98)] {
            let statuses = history_with_changes(changes);
            let history: Vec<CheckHistory> = statuses
                .iter()
                .map(|s| CheckHistory {
                    status: *s,
                    executed: 0,
                })
                .collect();
            assert_eq!(total_state_change(&history), expected, "{changes} changes");
        }
    }

    #[test]
    fn flapping_hysteresis_starts_high_and_stops_below_low() {
        // TSC 28 with thresholds 20/30: not flapping when it was not, still flapping when it was.
        let statuses = history_with_changes(5);
        assert_eq!(run_flap(&statuses, 20, 30, false).state, "failing");
        assert_eq!(run_flap(&statuses, 20, 30, true).state, "flapping");
        // TSC 54 ≥ high: starts flapping.
        assert_eq!(
            run_flap(&history_with_changes(10), 20, 30, false).state,
            "flapping"
        );
        // TSC 11 < low: stops (the last status of that history is 0).
        assert_eq!(
            run_flap(&history_with_changes(2), 20, 30, true).state,
            "passing"
        );
        // Flapping with status 0 does not move last_ok.
        let mut statuses = history_with_changes(10);
        *statuses.last_mut().unwrap() = 0;
        let c = run_flap(&statuses, 20, 30, false);
        assert_eq!((c.state.as_str(), c.last_ok), ("flapping", 0));
        // A zero threshold disables flap detection.
        assert_eq!(
            run_flap(&history_with_changes(20), 0, 30, false).state,
            "passing"
        );
    }

    #[test]
    fn output_is_capped_cluster_wide() {
        let mut c = result(0, 1);
        c.output = "x".repeat(DEFAULT_MAX_OUTPUT_BYTES as usize + 10);
        c.config.max_output_size = 10 * DEFAULT_MAX_OUTPUT_BYTES;
        truncate_output(&mut c);
        assert_eq!(c.output.len() as i64, DEFAULT_MAX_OUTPUT_BYTES);
        assert_eq!(
            c.config.metadata.labels["sensu.io/output_truncated_bytes"],
            "10"
        );
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
