//! schedulerd: runs every check definition on its schedule (sensu-compat 4).
//!
//! Every backend runs its own scheduler over the whole store and publishes on its own bus, so
//! each agent hears from the backend it is connected to; identical deterministic timing
//! (splay) makes all backends fire a check together without coordination.
//!
//! Layout:
//! - `mod.rs`: [`Schedulerd`]: watches the checks prefix and keeps one task per check;
//! - `splay.rs`: interval timing; `cron.rs`: cron schedules; `subdue.rs`: subdue windows;
//! - `publish.rs`: [`Publisher`]: one execution → check requests (also used by adhoc), and the
//!   round-robin interface.
//!
//! The store is read once (range), then watched from that revision; a watch error re-reads
//! the range, so no change is missed and deleted checks stop. Each check's task holds its
//! own definition (no store read to fire) and absolute deadlines on tokio timers.

pub mod adhoc;
pub mod cron;
pub mod publish;
pub mod ring;
pub mod splay;
pub mod subdue;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backend_store::{KeyValue, RangeRequest, WatchEvent};
use proto_spec::v2::CheckConfig;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use self::cron::{CronError, CronSchedule};
pub use self::publish::{LocalRing, Published, Publisher, RoundRobinRing};

use crate::bus::CheckBus;
use crate::keys;
use crate::repo::{Repo, decode};

/// Pause before re-reading the store after it failed, so an outage is not a busy loop.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// How far the interval timer may drift from the wall-clock grid before it is moved back
/// onto it (see [`splay::realign`]).
const REALIGN_TOLERANCE: Duration = Duration::from_millis(20);

/// What the scheduler needs from the backend.
pub struct SchedulerConfig {
    pub repo: Repo,
    pub bus: Arc<CheckBus>,
}

pub struct Schedulerd {
    repo: Repo,
    publisher: Arc<Publisher>,
    ring: Arc<ring::ClusterRing>,
}

/// When a check runs. A change of it restarts the check's timer; any other change of the
/// definition is taken by the running timer as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ScheduleKey {
    Interval(u32),
    Cron(String),
}

impl ScheduleKey {
    fn of(check: &CheckConfig) -> Self {
        if check.cron.is_empty() {
            ScheduleKey::Interval(check.interval)
        } else {
            ScheduleKey::Cron(check.cron.clone())
        }
    }
}

/// A definition ready to run: decoded, valid, with its subdue windows compiled.
struct Plan {
    check: Arc<CheckConfig>,
    subdues: Vec<subdue::Window>,
}

impl Plan {
    fn new(check: Arc<CheckConfig>) -> Self {
        let subdues = subdue::compile(&check.subdues);
        Plan { check, subdues }
    }
}

impl Schedulerd {
    pub fn new(config: SchedulerConfig) -> Self {
        // Round robin goes through the store even with one backend: one code path, and a
        // second backend sharing the store joins the same rings.
        let ring = ring::ClusterRing::new(config.repo.clone(), config.bus.clone());
        let publisher =
            Arc::new(Publisher::new(config.repo.clone(), config.bus).with_ring(ring.clone()));
        Schedulerd {
            repo: config.repo,
            publisher,
            ring,
        }
    }

    /// The cluster-wide round-robin ring; its membership task must run beside the scheduler.
    pub fn ring(&self) -> Arc<ring::ClusterRing> {
        self.ring.clone()
    }

    /// The publisher the scheduler uses; adhoc executions go through it too.
    pub fn publisher(&self) -> Arc<Publisher> {
        self.publisher.clone()
    }

    /// Schedule every check until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let prefix = keys::resources_prefix("checks", None);
        let tasks_stop = shutdown.child_token();
        let mut tasks: HashMap<String, watch::Sender<Arc<CheckConfig>>> = HashMap::new();
        'relist: while !shutdown.is_cancelled() {
            let range = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.repo.store.range(RangeRequest { prefix: prefix.clone(), start: None, limit: 0 }) => r,
            };
            let range = match range {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "Scheduler cannot read the check definitions; retrying");
                    pause(&shutdown).await;
                    continue;
                }
            };
            let present: HashSet<&str> = range.kvs.iter().map(|kv| kv.key.as_str()).collect();
            // Dropping a task's sender ends the task.
            tasks.retain(|key, _| present.contains(key.as_str()));
            for kv in &range.kvs {
                self.apply(&mut tasks, kv, &tasks_stop);
            }
            tracing::info!(checks = tasks.len(), "Scheduler watching check definitions");
            let mut changes = match self.repo.store.watch(&prefix, range.revision).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "Scheduler cannot watch the check definitions; retrying");
                    pause(&shutdown).await;
                    continue;
                }
            };
            loop {
                let change = tokio::select! {
                    _ = shutdown.cancelled() => break 'relist,
                    c = changes.next() => c,
                };
                match change {
                    Some(Ok(WatchEvent::Put(kv))) => self.apply(&mut tasks, &kv, &tasks_stop),
                    Some(Ok(WatchEvent::Delete(kv))) => {
                        if tasks.remove(&kv.key).is_some() {
                            tracing::info!(key = %kv.key, "Check deleted; its schedule stops");
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "Check watch ended; re-reading the definitions");
                        pause(&shutdown).await;
                        continue 'relist;
                    }
                    None => {
                        tracing::info!("Store closed; scheduler stops");
                        break 'relist;
                    }
                }
            }
        }
        tasks_stop.cancel();
    }

    /// Start, update or stop the task of one stored definition.
    fn apply(
        &self,
        tasks: &mut HashMap<String, watch::Sender<Arc<CheckConfig>>>,
        kv: &KeyValue,
        stop: &CancellationToken,
    ) {
        let check = match decode::<CheckConfig>(kv) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "Stored check cannot be read; it is not scheduled");
                tasks.remove(&kv.key);
                return;
            }
        };
        if let Err(why) = schedulable(&check) {
            tracing::warn!(key = %kv.key, reason = %why, "Stored check is invalid; it is not scheduled");
            tasks.remove(&kv.key);
            return;
        }
        let check = Arc::new(check);
        match tasks.get(&kv.key) {
            Some(tx) => {
                tx.send_replace(check);
            }
            None => {
                let (tx, rx) = watch::channel(check);
                tokio::spawn(run_check(rx, self.publisher.clone(), stop.clone()));
                tasks.insert(kv.key.clone(), tx);
            }
        }
    }
}

/// The checks the API would accept (the API validates on write; this guards against
/// hand-edited stores) and whose schedule can be computed here.
pub fn schedulable(check: &CheckConfig) -> Result<(), String> {
    check.validate().map_err(|e| e.to_string())?;
    if !check.cron.is_empty() {
        CronSchedule::parse(&check.cron).map_err(|e| format!("cron: {e}"))?;
    }
    Ok(())
}

async fn pause(shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(RETRY_DELAY) => {}
    }
}

fn wall_now() -> SystemTime {
    SystemTime::now()
}

/// The monotonic and wall clocks read together, or `None` when the thread was preempted
/// between the reads (a loaded machine): comparing them then would see a clock step that did
/// not happen.
fn paired_clocks() -> Option<(Instant, u64)> {
    let before = Instant::now();
    let wall = unix_nanos(wall_now());
    let after = Instant::now();
    let gap = after - before;
    (gap < Duration::from_millis(1)).then(|| (before + gap / 2, wall))
}

/// [`paired_clocks`], retried; a poor pair is still better than none when starting a timer.
fn paired_clocks_retrying() -> (Instant, u64) {
    (0..3)
        .find_map(|_| paired_clocks())
        .unwrap_or_else(|| (Instant::now(), unix_nanos(wall_now())))
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

/// The timer of one check's current schedule.
enum Timer {
    Interval {
        splay: u64,
        interval: Duration,
        interval_secs: u32,
        next: Instant,
    },
    Cron {
        schedule: Box<CronSchedule>,
        /// The wall-clock time of the pending firing; the next one is computed from it, so a
        /// timer that wakes a hair early by the wall clock cannot fire the same minute twice.
        target: Option<jiff::Timestamp>,
        next: Option<Instant>,
    },
}

impl Timer {
    fn start(check: &CheckConfig) -> Result<Self, CronError> {
        match ScheduleKey::of(check) {
            ScheduleKey::Interval(secs) => {
                let splay = splay::splay(check.name());
                let (now, wall) = paired_clocks_retrying();
                let off = splay::first_fire_offset(splay, wall, secs);
                Ok(Timer::Interval {
                    splay,
                    interval: Duration::from_secs(u64::from(secs.max(1))),
                    interval_secs: secs,
                    next: now + Duration::from_nanos(off),
                })
            }
            ScheduleKey::Cron(spec) => {
                let schedule = Box::new(CronSchedule::parse(&spec)?);
                let mut timer = Timer::Cron {
                    schedule,
                    target: None,
                    next: None,
                };
                timer.arm_cron(jiff::Timestamp::now());
                Ok(timer)
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self {
            Timer::Interval { next, .. } => Some(*next),
            Timer::Cron { next, .. } => *next,
        }
    }

    /// Move to the firing after the one that is due now. Called before publishing, so the
    /// time publishing takes never shifts the schedule.
    fn advance(&mut self) {
        match self {
            Timer::Interval {
                splay,
                interval,
                interval_secs,
                next,
            } => {
                let mut chained = *next + *interval;
                let now = Instant::now();
                if chained <= now {
                    // Behind by more than a period (a stalled runtime): skip the missed
                    // firings and rejoin the grid.
                    let (now, wall) = paired_clocks_retrying();
                    let wall_left = splay::first_fire_offset(*splay, wall, *interval_secs);
                    chained = now + Duration::from_nanos(wall_left);
                } else if let Some((now, wall)) = paired_clocks() {
                    let wall_left = splay::first_fire_offset(*splay, wall, *interval_secs);
                    let chain_left = (chained - now).as_nanos() as u64;
                    let shift = splay::realign(chain_left, wall_left, *interval, REALIGN_TOLERANCE);
                    if shift != 0 {
                        // Per check, so debug: a clock step moves every timer at once.
                        tracing::debug!(
                            shift_ns = shift,
                            "Wall clock moved; interval timer re-aligned"
                        );
                        chained = if shift > 0 {
                            chained + Duration::from_nanos(shift as u64)
                        } else {
                            chained
                                .checked_sub(Duration::from_nanos(shift.unsigned_abs()))
                                .unwrap_or(now)
                        };
                        if chained <= now {
                            chained += *interval;
                        }
                    }
                }
                *next = chained;
            }
            Timer::Cron { target, .. } => {
                let from = target.unwrap_or_else(jiff::Timestamp::now);
                let now = jiff::Timestamp::now();
                self.arm_cron(if from > now { from } else { now });
            }
        }
    }

    fn arm_cron(&mut self, after: jiff::Timestamp) {
        if let Timer::Cron {
            schedule,
            target,
            next,
        } = self
        {
            *target = schedule.next(after);
            *next = target.map(|t| {
                let now_wall = jiff::Timestamp::now();
                let wait = now_wall.duration_until(t);
                Instant::now() + Duration::try_from(wait).unwrap_or_default()
            });
        }
    }
}

/// One check's task: fires on its timer until the definition is deleted (the sender is
/// dropped) or the scheduler stops.
async fn run_check(
    mut rx: watch::Receiver<Arc<CheckConfig>>,
    publisher: Arc<Publisher>,
    stop: CancellationToken,
) {
    'restart: loop {
        let mut plan = Plan::new(rx.borrow_and_update().clone());
        let key = ScheduleKey::of(&plan.check);
        let mut timer = match Timer::start(&plan.check) {
            Ok(t) => Some(t),
            Err(e) => {
                // `schedulable` rejects these before a task starts; kept for safety.
                tracing::warn!(check = %plan.check.metadata.name, error = %e, "Check has an invalid cron schedule");
                None
            }
        };
        if timer.as_ref().is_some_and(|t| t.deadline().is_none()) {
            tracing::warn!(check = %plan.check.metadata.name, cron = %plan.check.cron, "Cron schedule has no firing in the next five years");
        }
        loop {
            let deadline = timer.as_ref().and_then(Timer::deadline);
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = rx.changed() => {
                    if changed.is_err() {
                        return; // deleted
                    }
                    let check = rx.borrow_and_update().clone();
                    if ScheduleKey::of(&check) != key {
                        tracing::debug!(check = %check.metadata.name, "Schedule changed; timer restarts");
                        continue 'restart;
                    }
                    plan = Plan::new(check);
                }
                _ = sleep_until_opt(deadline) => {
                    if let Some(t) = timer.as_mut() {
                        t.advance();
                    }
                    fire(&plan, &publisher).await;
                }
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A due firing: skipped when the check is not published or subdued.
async fn fire(plan: &Plan, publisher: &Publisher) {
    let check = &plan.check;
    if !check.publish {
        return;
    }
    let now = wall_now();
    if subdue::is_subdued(&plan.subdues, i128::from(unix_nanos(now))) {
        tracing::debug!(check = %check.metadata.name, "Check is subdued; execution skipped");
        return;
    }
    let issued = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    if let Err(e) = publisher.execute(check, issued).await {
        tracing::warn!(check = %check.metadata.name, namespace = %check.metadata.namespace, error = %e, "Check execution not published");
    }
}
