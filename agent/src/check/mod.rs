//! Check execution: the agent side of a check request (sensu-compat 4.1, 5.5, 5.6).
//!
//! For every `check_request` frame the session calls [`CheckRunner::handle`], which decides
//! at once (no waiting) whether the request runs, and if so spawns one task for it:
//!
//! 1. **Dedup** per `check name[/proxy_entity_name]` ([`Tracker`]): a request whose `issued`
//!    is older than the last one accepted is refused (logged as an error), an equal `issued`
//!    is a duplicate (the agent has several subscriptions matching the check; warning), and a
//!    check still running is rejected (warning). The state is bounded: at most
//!    [`MAX_TRACKED_CHECKS`] keys (the oldest forgotten first) and [`MAX_RUNNING_CHECKS`]
//!    executions at once.
//! 2. **Validation** (`CheckConfig::validate`): an invalid definition gives a status 3 event
//!    whose output says why.
//! 3. **Token substitution** ([`tokens`]) over every string of the definition, against the
//!    agent's entity; failure → status 3, `error while substituting check tokens: ...`.
//! 4. **Allow list** (`--allow-list`, [`crate::assets::allow_list`]): a command no entry allows
//!    gives a status 3 event (or the `allow_list_on_deny_status` annotation's status).
//!    **Runtime assets** ([`crate::assets`]): the request's assets are installed (downloaded,
//!    verified, unpacked, cached) and their `bin/`, `lib/`, `include/` prefixed to `PATH`,
//!    `LD_LIBRARY_PATH`, `CPATH`, with `<NAME>_PATH` set; a failure (fetch, digest, hostile
//!    archive, rate limit, `--disable-assets`) gives a status 3 event with the reason, and
//!    the next request tries again.
//! 5. **Execution** ([`execute`]): `sh -c`, own process group, merged bounded output,
//!    env = agent env + asset env + request secrets + check `env_vars` (dropped when the
//!    allow list entry has `enable_env: false`), stdin = event JSON if `stdin`,
//!    timeout kills the whole group (status 2).
//! 6. **Output metrics** ([`metrics`]): with `output_metric_format` set, the output's points
//!    go into the event's `metrics` and `output_metric_thresholds` may raise the status.
//! 7. **Hooks** ([`hooks`]) selected by the final status.
//! 8. **The event**: `check` is the (substituted) definition with its original command, plus
//!    `issued`, `executed`, `duration`, `status`, `output`, `hooks`, `processed_by`;
//!    `discard_output` blanks the output last; `entity` is the agent's entity (the backend
//!    swaps in the proxy entity when `proxy_entity_name` is set); a new UUID; `sequence`
//!    counts results per check key from 1 on each connection.
//!
//! Results go through the [`Outbox`], like every event except keepalives. A result produced
//! while the agent is disconnected waits there (on disk: it survives a restart) and is sent
//! after the next session's first keepalive. When the outbox is full (10,000 events or
//! 64 MiB by default) the **oldest** queued event is dropped, logged as a warning with its
//! check name and counted ([`Outbox::dropped`]), so a long outage keeps the freshest
//! results. Results are never dropped silently.
//!
//! Not implemented here: `max_output_size` (the backend's job).

pub mod execute;
pub mod hooks;
pub mod metrics;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto_spec::ObjectMeta;
use proto_spec::tokens;
use proto_spec::v2::{Check, CheckConfig, CheckRequest, Entity, Event};
use proto_spec::wire;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::assets::Assets;
use crate::assets::allow_list::{self, AllowList, Verdict};
use crate::outbox::Outbox;
use execute::{Execution, TEST_CHECK_COMMAND, UNKNOWN_STATUS, execute, merge_env};

/// Dedup keys remembered; past this the key with the oldest `issued` is forgotten (a request
/// for it would then be accepted whatever its age).
pub const MAX_TRACKED_CHECKS: usize = 4096;

/// Executions at once; a request beyond this is rejected like one whose check is still
/// running. It bounds the agent's memory and processes when a backend floods it (proxy checks
/// fan out one request per proxy entity).
pub const MAX_RUNNING_CHECKS: usize = 1024;

/// Status of a result the agent produced itself (invalid definition, substitution failure).
pub const FAILURE_STATUS: u32 = UNKNOWN_STATUS;

/// Reads the agent's current entity (config + facts); called when a check starts.
pub type EntitySource = Arc<dyn Fn() -> Entity + Send + Sync>;

/// What an execution needs from the agent.
#[derive(Clone)]
pub struct CheckEnv {
    /// `processed_by` of every result.
    pub agent_name: String,
    pub entity: EntitySource,
    /// Installs runtime assets (checks and hooks).
    pub assets: Assets,
    /// `--allow-list`; `None`: every command may run.
    pub allow_list: Option<Arc<AllowList>>,
}

impl std::fmt::Debug for CheckEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckEnv")
            .field("agent_name", &self.agent_name)
            .finish_non_exhaustive()
    }
}

/// The decision about one check request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Running now.
    Accepted,
    /// `issued` is older than the last accepted request for this key.
    Older { last_issued: i64 },
    /// `issued` equals the last accepted request's.
    Duplicate,
    /// The previous execution of this key has not finished.
    StillRunning,
    /// [`MAX_RUNNING_CHECKS`] executions are running.
    TooManyRunning,
    /// The request carries no check definition.
    NoConfig,
}

/// The dedup key: `check name[/proxy_entity_name]`.
pub fn dedup_key(config: &CheckConfig) -> String {
    if config.proxy_entity_name.is_empty() {
        config.metadata.name.clone()
    } else {
        format!("{}/{}", config.metadata.name, config.proxy_entity_name)
    }
}

/// Dedup and in-flight state, bounded. Pure: the runner holds it behind a mutex.
#[derive(Debug)]
pub struct Tracker {
    keys: HashMap<String, KeyState>,
    running: HashSet<String>,
    max_keys: usize,
    max_running: usize,
}

#[derive(Debug, Clone, Copy)]
struct KeyState {
    last_issued: i64,
    /// Results sent on the current connection.
    sequence: i64,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new(MAX_TRACKED_CHECKS, MAX_RUNNING_CHECKS)
    }
}

impl Tracker {
    pub fn new(max_keys: usize, max_running: usize) -> Self {
        Tracker {
            keys: HashMap::new(),
            running: HashSet::new(),
            max_keys: max_keys.max(1),
            max_running: max_running.max(1),
        }
    }

    /// Decide about a request; an accepted one is recorded as running until [`finished`].
    ///
    /// [`finished`]: Tracker::finished
    pub fn admit(&mut self, key: &str, issued: i64) -> Admission {
        if let Some(state) = self.keys.get(key) {
            if issued < state.last_issued {
                return Admission::Older {
                    last_issued: state.last_issued,
                };
            }
            if issued == state.last_issued {
                return Admission::Duplicate;
            }
        }
        if self.running.contains(key) {
            return Admission::StillRunning;
        }
        if self.running.len() >= self.max_running {
            return Admission::TooManyRunning;
        }
        match self.keys.get_mut(key) {
            Some(state) => state.last_issued = issued,
            None => {
                self.make_room();
                self.keys.insert(
                    key.to_string(),
                    KeyState {
                        last_issued: issued,
                        sequence: 0,
                    },
                );
            }
        }
        self.running.insert(key.to_string());
        Admission::Accepted
    }

    pub fn finished(&mut self, key: &str) {
        self.running.remove(key);
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    pub fn tracked(&self) -> usize {
        self.keys.len()
    }

    /// The next `sequence` for a result of `key`: 1, 2, ... on each connection.
    pub fn next_sequence(&mut self, key: &str) -> i64 {
        match self.keys.get_mut(key) {
            Some(state) => {
                state.sequence += 1;
                state.sequence
            }
            None => 1,
        }
    }

    /// A new connection: sequences start again at 1 (Sensu resets them on reconnect).
    pub fn reset_sequences(&mut self) {
        for state in self.keys.values_mut() {
            state.sequence = 0;
        }
    }

    /// Forget the key with the oldest `issued` (never a running one) until there is room.
    fn make_room(&mut self) {
        while self.keys.len() >= self.max_keys {
            let oldest = self
                .keys
                .iter()
                .filter(|(k, _)| !self.running.contains(*k))
                .min_by_key(|(_, s)| s.last_issued)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.keys.remove(&k);
                }
                None => break,
            }
        }
    }
}

/// Runs check requests as they arrive: one task per execution, results into the outbox.
/// Cheap to clone; clones share their state.
#[derive(Debug, Clone)]
pub struct CheckRunner {
    inner: Arc<RunnerInner>,
}

#[derive(Debug)]
struct RunnerInner {
    env: CheckEnv,
    outbox: Outbox,
    // A std Mutex: held for a map operation, never across an `.await`.
    tracker: Mutex<Tracker>,
    /// Cancelled when the agent stops: running commands are killed, their results dropped.
    stop: CancellationToken,
    /// Woken whenever an execution ends.
    ended: Notify,
    counters: Counters,
}

/// Check totals since the agent started, for its `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckCounts {
    /// Requests accepted for execution.
    pub accepted: u64,
    /// Requests refused (older, duplicate, still running, too many running, no definition).
    pub rejected: u64,
    /// Results produced (queued in the outbox).
    pub executed: u64,
    /// Results reporting that the command did not start: invalid definition, token
    /// substitution failure, missing runtime assets, or the shell could not be spawned.
    pub failed_to_start: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    executed: AtomicU64,
    failed_to_start: AtomicU64,
}

impl CheckRunner {
    pub fn new(env: CheckEnv, outbox: Outbox, stop: CancellationToken) -> Self {
        CheckRunner {
            inner: Arc::new(RunnerInner {
                env,
                outbox,
                tracker: Mutex::new(Tracker::default()),
                stop,
                ended: Notify::new(),
                counters: Counters::default(),
            }),
        }
    }

    /// Decide about `request` and, if accepted, start it in a task of its own. Never blocks.
    pub fn handle(&self, request: CheckRequest) -> Admission {
        let Some(config) = &request.config else {
            error!(
                issued = request.issued,
                "Ignoring a check request without a check definition"
            );
            self.inner.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return Admission::NoConfig;
        };
        let key = dedup_key(config);
        let admission = self.tracker().admit(&key, request.issued);
        let counter = if admission == Admission::Accepted {
            &self.inner.counters.accepted
        } else {
            &self.inner.counters.rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match &admission {
            Admission::Accepted => {
                info!(check = %key, issued = request.issued, "Scheduling check execution");
                let inner = self.inner.clone();
                tokio::spawn(run_task(inner, key, request));
            }
            Admission::Older { last_issued } => error!(
                check = %key,
                issued = request.issued,
                last_issued,
                "Refusing a check request older than one already received"
            ),
            Admission::Duplicate => warn!(
                check = %key,
                issued = request.issued,
                "Ignoring a duplicate check request (the agent may have several subscriptions matching the check)"
            ),
            Admission::StillRunning => warn!(
                check = %key,
                issued = request.issued,
                "Rejecting a check request: the previous execution is still in progress"
            ),
            Admission::TooManyRunning => warn!(
                check = %key,
                issued = request.issued,
                limit = MAX_RUNNING_CHECKS,
                "Rejecting a check request: too many checks are running"
            ),
            Admission::NoConfig => {}
        }
        admission
    }

    /// Totals since start.
    pub fn counts(&self) -> CheckCounts {
        let c = &self.inner.counters;
        CheckCounts {
            accepted: c.accepted.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            executed: c.executed.load(Ordering::Relaxed),
            failed_to_start: c.failed_to_start.load(Ordering::Relaxed),
        }
    }

    /// Executions in progress.
    pub fn running(&self) -> usize {
        self.tracker().running()
    }

    /// A new connection began: per-check sequences restart at 1.
    pub fn new_connection(&self) {
        self.tracker().reset_sequences();
    }

    /// Wait until no execution is in progress, at most `limit`; whether that happened.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the check, so an end between the two is not missed.
            let ended = self.inner.ended.notified();
            if self.running() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return self.running() == 0;
            }
        }
    }

    fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        lock(&self.inner.tracker)
    }
}

fn lock(m: &Mutex<Tracker>) -> std::sync::MutexGuard<'_, Tracker> {
    // Tracker updates are single map operations; a panic cannot leave them half done.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Marks the key finished however the task ends (even by a panic).
struct Running {
    inner: Arc<RunnerInner>,
    key: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.inner.tracker).finished(&self.key);
        self.inner.ended.notify_waiters();
    }
}

async fn run_task(inner: Arc<RunnerInner>, key: String, request: CheckRequest) {
    let running = Running {
        inner: inner.clone(),
        key,
    };
    let Some((mut event, started)) = run_check_counted(&inner.env, request, &inner.stop).await
    else {
        debug!(check = %running.key, "Check execution cancelled: the agent is stopping");
        return;
    };
    inner.counters.executed.fetch_add(1, Ordering::Relaxed);
    if !started {
        inner
            .counters
            .failed_to_start
            .fetch_add(1, Ordering::Relaxed);
    }
    event.sequence = lock(&inner.tracker).next_sequence(&running.key);
    debug!(
        check = %running.key,
        status = event.check.as_ref().map(|c| c.status).unwrap_or_default(),
        "Check executed; result queued"
    );
    // Finished before the result can be seen: a request sent in answer to it is not
    // rejected as "still running".
    drop(running);
    // A full outbox drops its oldest event, with a warning that names it.
    inner.outbox.push(event);
}

/// Run one check request to its result event (without `sequence`). `None` when `cancel`
/// fired (the agent is stopping) or the request has no definition.
pub async fn run_check(
    env: &CheckEnv,
    request: CheckRequest,
    cancel: &CancellationToken,
) -> Option<Event> {
    run_check_counted(env, request, cancel)
        .await
        .map(|(event, _)| event)
}

/// [`run_check`], and whether the command was started (for the agent's counters).
async fn run_check_counted(
    env: &CheckEnv,
    request: CheckRequest,
    cancel: &CancellationToken,
) -> Option<(Event, bool)> {
    let config = request.config.clone()?;
    let base = ResultBase {
        agent_name: &env.agent_name,
        original_command: config.command.clone(),
        issued: request.issued,
        executed: unix_now(),
    };
    let entity = (env.entity)();

    if let Err(e) = config.validate() {
        return Some((
            base.failure(&config, entity, format!("given check is invalid: {e}")),
            false,
        ));
    }

    let data = tokens::synthesize_entity(&entity);
    // The load-testing command skips substitution, as in Sensu.
    let config = if base.original_command == TEST_CHECK_COMMAND {
        config
    } else {
        match tokens::substitute_check(&config, &data) {
            Ok(c) => c,
            Err(e) => {
                return Some((
                    base.failure(
                        &config,
                        entity,
                        format!("error while substituting check tokens: {e}"),
                    ),
                    false,
                ));
            }
        }
    };

    // The allow list first: a denied command fetches no asset.
    let candidates = env
        .allow_list
        .as_ref()
        .map(|list| list.candidates(&config.command));
    if candidates.as_ref().is_some_and(Vec::is_empty) {
        return Some((denied(&base, &config, entity), false));
    }

    let offered = request.assets.as_deref().unwrap_or_default();
    let asset_env = match env
        .assets
        .environment(offered, config.runtime_assets(), &data)
        .await
    {
        Ok(e) => e,
        Err(reason) => return Some((base.failure(&config, entity, reason), false)),
    };

    let mut env_vars = config.env_vars();
    if let Some(candidates) = &candidates {
        let merged = merge_env(
            |k| std::env::var_os(k),
            &[&asset_env, &request.secrets, env_vars],
        );
        let path = merged
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.into())
            .or_else(|| std::env::var_os("PATH"));
        match allow_list::verdict(candidates, path.as_ref()) {
            Verdict::Denied => return Some((denied(&base, &config, entity), false)),
            Verdict::Allowed { enable_env: false } => env_vars = &[],
            Verdict::Allowed { enable_env: true } => {}
        }
    }

    let mut event = base.event(&config, entity);
    let mut ex = Execution::new(config.command.clone()).with_timeout_secs(config.timeout);
    ex.env = merge_env(
        |k| std::env::var_os(k),
        &[&asset_env, &request.secrets, env_vars],
    );
    ex.stdin = config
        .stdin
        .then(|| serde_json::to_vec(&event).unwrap_or_default());
    let outcome = execute(&ex, cancel).await;
    if outcome.cancelled {
        return None;
    }
    if outcome.timed_out {
        warn!(check = %config.metadata.name, timeout = config.timeout, "Check execution timed out; its process group was killed");
    }
    if let Some(check) = event.check.as_mut() {
        check.output = outcome.output;
        check.status = outcome.status;
        check.duration = outcome.duration;
    }
    // Before the hooks, as in Sensu: thresholds may change the status that selects them.
    metrics::apply(&mut event, unix_now());
    let status = event.check.as_ref().map_or(outcome.status, |c| c.status);

    let hooks = hooks::run_hooks(
        &request,
        &config,
        status,
        &event,
        &data,
        &env.assets,
        cancel,
    )
    .await?;
    let check = event.check.as_mut()?;
    check.hooks = hooks;
    if check.config.discard_output {
        check.output.clear();
    }
    event.timestamp = unix_now();
    fit_to_frame(&mut event);
    Some((event, outcome.spawned))
}

/// The result of a check the allow list denies: status 3, or the check's
/// `allow_list_on_deny_status` annotation.
fn denied(base: &ResultBase<'_>, config: &CheckConfig, entity: Entity) -> Event {
    let mut event = base.failure(config, entity, allow_list::DENIED_OUTPUT.to_string());
    let status = config
        .metadata
        .annotations
        .get(allow_list::DENY_STATUS_ANNOTATION)
        .and_then(|s| s.trim().parse::<u32>().ok());
    if let (Some(status), Some(check)) = (status, event.check.as_mut()) {
        check.status = status;
    }
    event
}

/// What every result event of one request shares.
struct ResultBase<'a> {
    agent_name: &'a str,
    /// The command as the backend sent it, before token substitution.
    original_command: String,
    issued: i64,
    /// When the request started (Unix seconds).
    executed: i64,
}

impl ResultBase<'_> {
    /// The event skeleton for `config` (the substituted definition, when there is one).
    fn event(&self, config: &CheckConfig, entity: Entity) -> Event {
        let config = CheckConfig {
            // The substituted command may hold label values the operator redacts; the event
            // carries the command as written (Sensu does the same).
            command: self.original_command.clone(),
            ..config.clone()
        };
        let pipelines = (!config.pipelines.is_empty()).then(|| config.pipelines.clone());
        Event {
            timestamp: unix_now(),
            entity: Some(entity),
            metadata: ObjectMeta {
                namespace: config.metadata.namespace.clone(),
                ..Default::default()
            },
            check: Some(Check {
                issued: self.issued,
                executed: self.executed,
                processed_by: self.agent_name.to_string(),
                ..Check::from_config(config)
            }),
            metrics: None,
            id: Some(uuid::Uuid::new_v4()),
            sequence: 0,
            pipelines,
        }
    }

    /// A status 3 result with `output`, for a request that could not run.
    fn failure(&self, config: &CheckConfig, entity: Entity, output: String) -> Event {
        warn!(check = %config.metadata.name, "{output}");
        let mut event = self.event(config, entity);
        if let Some(check) = event.check.as_mut() {
            check.status = FAILURE_STATUS;
            check.output = output;
        }
        event
    }
}

/// Make the event's frame fit [`wire::MAX_FRAME_BYTES`] by halving the longest output (check
/// or hook) until it does. Outputs are capped far below the limit, so this only acts when
/// several hooks printed a lot or the output is mostly characters JSON escapes as `\uXXXX`.
fn fit_to_frame(event: &mut Event) {
    const OVERHEAD: usize = wire::TYPE_EVENT.len() + 1;
    for _ in 0..64 {
        let size = serde_json::to_vec(&*event).map(|v| v.len()).unwrap_or(0) + OVERHEAD;
        if size <= wire::MAX_FRAME_BYTES {
            return;
        }
        let Some(check) = event.check.as_mut() else {
            return;
        };
        let mut longest = &mut check.output;
        for hook in check.hooks.iter_mut() {
            if hook.output.len() > longest.len() {
                longest = &mut hook.output;
            }
        }
        if longest.is_empty() {
            break;
        }
        truncate_half(longest);
    }
    error!(
        check = event.check_name(),
        "A check result does not fit the transport's frame limit even without its output"
    );
}

fn truncate_half(output: &mut String) {
    let mut cut = output.len() / 2;
    while !output.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = output.len() - cut;
    output.truncate(cut);
    output.push_str(&format!(
        "\n[output truncated: {dropped} more bytes were dropped to fit the transport's frame limit]\n"
    ));
}

#[cfg(test)]
mod tests;

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
