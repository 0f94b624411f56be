//! The queue of events waiting for the backend: durable, ordered, bounded.
//!
//! Every event except keepalives goes through here: check results, StatsD flushes, and the
//! events of the HTTP and socket APIs. The session sends them in order and removes each one
//! only once the backend acknowledged it as stored (`event_ack`, protocol version 2), or,
//! with a backend that does not acknowledge, once it has been written to the WebSocket. Keepalives never enter the queue: the
//! session writes them directly (they are regenerated on every interval, so queueing one
//! would only delay it behind older events and get the agent declared dead while busy).
//!
//! # On disk
//!
//! [`Outbox::open`] keeps the queue in `<cache-dir>/outbox/` (the agent opens it there) so
//! that it survives restarts: events queued while no backend was reachable are sent after the
//! next start. The directory holds a `lock` file (an exclusive `flock`, so two agents cannot
//! share one queue) and **segment files** `<20-digit id>.seg`, appended to in order. A new
//! segment is started when the current one would exceed [`Limits::segment_bytes`] (4 MiB),
//! and at every start. A segment whose events have all been delivered is deleted as a whole,
//! so nothing is ever rewritten or compacted.
//!
//! A record is a 12-byte header and the event's JSON (the transport's payload, so sending
//! needs no re-encoding):
//!
//! ```text
//! 0  magic 0xA7
//! 1  state: 0 pending, 1 done (delivered or dropped)
//! 2  source: 0 agent (checks, StatsD), 1 HTTP API, 2 socket API
//! 3  reserved, 0
//! 4  payload length, u32 little-endian
//! 8  CRC-32 (IEEE) of bytes 2..8 and the payload, u32 little-endian
//! 12 payload: the event as JSON
//! ```
//!
//! The state byte is outside the checksum because it is the one byte ever overwritten: when
//! an event is delivered its record is marked done in place (a 1-byte write). On open every
//! segment is scanned and checked; the first record that is cut short or fails its magic or
//! checksum (a write torn by a crash, or damage) ends its segment: it and whatever follows
//! in that segment are discarded with a warning, and the file is truncated there. Pending
//! records become the queue; segments with none left are deleted.
//!
//! # Durability (fsync policy)
//!
//! * HTTP API events and TCP socket results ([`Outbox::push_durable`]): the record is
//!   written and `fdatasync`ed (plus the directory, when the segment is new) *before* the
//!   call returns, that is before the 202 or the `ok`. Concurrent requests each sync; the
//!   kernel merges them.
//! * Check results, StatsD flushes and UDP socket results ([`Outbox::push`],
//!   [`Outbox::try_push`]): written at once (they survive a crash of the agent process),
//!   synced to the device in batches by [`Outbox::run_syncer`] every [`SYNC_INTERVAL`], so a
//!   power loss may lose the last second of them.
//! * Delivery marks: written at once, synced with the batch. Delivery is **at least once**:
//!   a crash between the WebSocket write and the mark resends that one event after the
//!   restart (a power loss: the events delivered during the last second). Every event
//!   carries its UUID (`id`, generated here when missing), so the backend or a handler can
//!   recognise a duplicate.
//!
//! # Bounds
//!
//! [`Limits`]: at most 10,000 pending events and 64 MiB of records by default, one event at
//! most one transport frame ([`wire::MAX_FRAME_BYTES`]). Since events leave only from the
//! head, the delivered records still on disk are at most one partly-delivered segment, so
//! the directory stays under `max_bytes` plus one segment. When the queue is full:
//!
//! * the APIs ([`Outbox::push_durable`], [`Outbox::try_push`]) get [`PushError::Full`]: the
//!   HTTP API answers 503, TCP `invalid`, and a UDP datagram is counted and dropped;
//! * the agent's own producers ([`Outbox::push`]) never wait: the **oldest** queued event
//!   is dropped, logged with its check and entity, and counted ([`Outbox::dropped`]), so a
//!   long outage keeps the freshest results.
//!
//! If the disk fails (full, I/O error) an agent event is kept in memory instead, with an
//! error logged, so it is still sent while the agent runs; an API event is refused (it
//! cannot be promised durable).
//!
//! [`Outbox::new`] makes a memory-only queue with the same interface (unit tests, embedding).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use proto_spec::v2::Event;
use proto_spec::wire;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

/// Capacity of `Outbox::default()`, a memory-only queue (Sensu's send-queue size).
pub const DEFAULT_CAPACITY: usize = 10;
pub const DEFAULT_MAX_EVENTS: usize = 10_000;
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
pub const DEFAULT_SEGMENT_BYTES: u64 = 4 * 1024 * 1024;
/// How often [`Outbox::run_syncer`] flushes batched writes to the device.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Bytes before the payload in a record.
pub const RECORD_HEADER: usize = 12;
const MAGIC: u8 = 0xA7;
const STATE_PENDING: u8 = 0;
const STATE_DONE: u8 = 1;
const LOCK_FILE: &str = "lock";
const SEGMENT_SUFFIX: &str = ".seg";
/// The frame prefix of an event (`event\n`), counted against the frame limit.
const EVENT_FRAME_PREFIX: usize = wire::TYPE_EVENT.len() + 1;

/// Who produced an event; kept on disk because the events rate limit applies to the HTTP
/// API's events only, also after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The agent itself: checks and StatsD.
    Agent,
    /// `POST /events` of the HTTP API.
    Api,
    /// The TCP/UDP socket API.
    Socket,
}

impl Source {
    fn code(self) -> u8 {
        match self {
            Source::Agent => 0,
            Source::Api => 1,
            Source::Socket => 2,
        }
    }

    fn from_code(code: u8) -> Option<Source> {
        match code {
            0 => Some(Source::Agent),
            1 => Some(Source::Api),
            2 => Some(Source::Socket),
            _ => None,
        }
    }
}

/// How much the queue may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Pending events at most.
    pub max_events: usize,
    /// Pending record bytes (header + JSON) at most.
    pub max_bytes: u64,
    /// A segment file is closed once it would grow past this (a larger record gets a
    /// segment of its own).
    pub segment_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events: DEFAULT_MAX_EVENTS,
            max_bytes: DEFAULT_MAX_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// Why an API event was not queued.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(
        "the agent's outbox is full ({events} events, {bytes} bytes queued; limits {max_events} events, {max_bytes} bytes): the backend is unreachable or slow, try again later"
    )]
    Full {
        events: usize,
        bytes: u64,
        max_events: usize,
        max_bytes: u64,
    },
    #[error("the event is {size} bytes as JSON; the transport carries at most {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("cannot persist the event: {0}")]
    Io(#[from] io::Error),
}

/// The head of the queue, as the session sends it. It stays queued until
/// [`Outbox::delivered`] is called with its `seq`.
#[derive(Debug, Clone)]
pub struct Pending {
    pub seq: u64,
    pub source: Source,
    payload: Arc<[u8]>,
}

impl Pending {
    /// The event's JSON.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The transport frame (`event\n` + JSON), without decoding and re-encoding the event.
    pub fn frame(&self) -> Vec<u8> {
        let mut frame = Vec::with_capacity(EVENT_FRAME_PREFIX + self.payload.len());
        frame.extend_from_slice(wire::TYPE_EVENT.as_bytes());
        frame.push(b'\n');
        frame.extend_from_slice(&self.payload);
        frame
    }

    pub fn event(&self) -> Result<Event, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

/// A cloneable handle to the queue: producers push, the session takes from the front.
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    // A std Mutex: held for in-memory bookkeeping and page-cache reads and writes, never
    // across an `.await` and never during an fsync.
    state: Mutex<State>,
    ready: Notify,
    dropped: AtomicU64,
    delivered: AtomicU64,
    /// Records that could not be read back (I/O error) and were skipped.
    lost: AtomicU64,
    write_errors: AtomicU64,
    dir: Option<PathBuf>,
}

#[derive(Debug)]
struct State {
    entries: VecDeque<Entry>,
    /// Record bytes of `entries`.
    bytes: u64,
    next_seq: u64,
    limits: Limits,
    disk: Option<Disk>,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    source: Source,
    /// Record bytes: header + payload.
    size: u64,
    loc: Loc,
}

#[derive(Debug)]
enum Loc {
    Memory(Arc<[u8]>),
    Disk { segment: u64, offset: u64, len: u32 },
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new(DEFAULT_CAPACITY)
    }
}

impl Outbox {
    /// A memory-only queue of at most `capacity` events (nothing survives the process).
    pub fn new(capacity: usize) -> Self {
        Outbox::memory(Limits {
            max_events: capacity,
            ..Limits::default()
        })
    }

    /// A memory-only queue with these limits.
    pub fn memory(limits: Limits) -> Self {
        Outbox::with_state(State::new(limits, None, VecDeque::new(), 0), None)
    }

    /// Open (creating it if needed) the durable queue in `dir`, recovering what a previous
    /// run left. Fails when the directory cannot be used or another agent holds it.
    pub fn open(dir: &Path, limits: Limits) -> io::Result<Self> {
        let (disk, entries, bytes) = Disk::open(dir)?;
        let mut state = State::new(limits, Some(disk), VecDeque::new(), 0);
        for (source, size, loc) in entries {
            let seq = state.next_seq;
            state.next_seq += 1;
            state.entries.push_back(Entry {
                seq,
                source,
                size,
                loc,
            });
        }
        state.bytes = bytes;
        Ok(Outbox::with_state(state, Some(dir.to_path_buf())))
    }

    fn with_state(state: State, dir: Option<PathBuf>) -> Self {
        Outbox {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                ready: Notify::new(),
                dropped: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                lost: AtomicU64::new(0),
                write_errors: AtomicU64::new(0),
                dir,
            }),
        }
    }

    /// The directory of a durable queue.
    pub fn dir(&self) -> Option<&Path> {
        self.inner.dir.as_deref()
    }

    pub fn limits(&self) -> Limits {
        self.lock().limits
    }

    /// Change the limits; events beyond new, lower limits stay queued (nothing is dropped
    /// until the next agent push).
    pub fn set_limits(&self, limits: Limits) {
        self.lock().limits = limits;
    }

    /// Queue an event of the agent's own (check result, StatsD flush). Never waits and never
    /// fails: when the queue is full the oldest events are dropped (logged, counted) until
    /// this one fits, and the last one dropped is returned. An event too large to ever be
    /// sent is itself dropped and returned.
    pub fn push(&self, mut event: Event) -> Option<Event> {
        ensure_id(&mut event);
        let payload = match encode(&event) {
            Ok(p) => p,
            Err(e) => {
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                warn!(check = event.check_name(), entity = event.entity_name(), error = %e, "Dropped an event that cannot be sent");
                return Some(event);
            }
        };
        let size = record_size(&payload);
        let mut dropped = None;
        {
            let mut st = self.lock();
            if size > st.limits.max_bytes || st.limits.max_events == 0 {
                drop(st);
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                warn!(
                    check = event.check_name(),
                    entity = event.entity_name(),
                    size,
                    "Dropped an event larger than the whole outbox"
                );
                return Some(event);
            }
            while !st.fits(size) {
                let Some(old) = st.pop_front() else { break };
                let event = st
                    .read(&old)
                    .ok()
                    .and_then(|p| serde_json::from_slice(&p).ok());
                st.release(&old);
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                let old_event: Event = event.unwrap_or_default();
                warn!(
                    max_events = st.limits.max_events,
                    max_bytes = st.limits.max_bytes,
                    check = old_event.check_name(),
                    entity = old_event.entity_name(),
                    id = ?old_event.id,
                    "Outbox full; dropped the oldest event"
                );
                dropped = Some(old_event);
            }
            let loc = match st.append(Source::Agent, &payload) {
                Ok(loc) => loc,
                Err(e) => {
                    // Still sent while the agent runs; only a restart would lose it.
                    self.inner.write_errors.fetch_add(1, Ordering::Relaxed);
                    error!(error = %e, check = event.check_name(), "Cannot write to the outbox on disk; keeping the event in memory");
                    Loc::Memory(payload.into())
                }
            };
            st.insert(Source::Agent, size, loc);
        }
        self.inner.ready.notify_one();
        dropped
    }

    /// Queue an event of a local client without waiting for the device (UDP socket
    /// results, which get no answer anyway); refused when full.
    pub fn try_push(&self, mut event: Event, source: Source) -> Result<(), PushError> {
        ensure_id(&mut event);
        let payload = encode(&event)?;
        self.append_external(source, payload)?;
        Ok(())
    }

    /// Queue an event of a local client and make it durable (fsync) before returning: the
    /// caller may then acknowledge it (HTTP 202, TCP `ok`). Refused when full.
    pub async fn push_durable(&self, mut event: Event, source: Source) -> Result<(), PushError> {
        ensure_id(&mut event);
        let payload = encode(&event)?;
        let this = self.clone();
        // The write and the fsync block: both run on the blocking pool.
        tokio::task::spawn_blocking(move || {
            let sync = this.append_external(source, payload)?;
            sync.run()?;
            Ok(())
        })
        .await
        .map_err(|e| PushError::Io(io::Error::other(e)))?
    }

    fn append_external(&self, source: Source, payload: Vec<u8>) -> Result<SyncJob, PushError> {
        let size = record_size(&payload);
        let job = {
            let mut st = self.lock();
            if !st.fits(size) {
                return Err(PushError::Full {
                    events: st.entries.len(),
                    bytes: st.bytes,
                    max_events: st.limits.max_events,
                    max_bytes: st.limits.max_bytes,
                });
            }
            let loc = st.append(source, &payload).inspect_err(|_| {
                self.inner.write_errors.fetch_add(1, Ordering::Relaxed);
            })?;
            let job = match (&loc, st.disk.as_mut()) {
                (Loc::Disk { segment, .. }, Some(disk)) => disk.sync_job_for(*segment),
                _ => SyncJob::default(),
            };
            st.insert(source, size, loc);
            job
        };
        self.inner.ready.notify_one();
        Ok(job)
    }

    /// Wait for the head of the queue; it stays queued. Cancel-safe.
    pub async fn front(&self) -> Pending {
        loop {
            {
                let mut st = self.lock();
                while let Some(head) = st.entries.front() {
                    match st.read(head) {
                        Ok(payload) => {
                            return Pending {
                                seq: head.seq,
                                source: head.source,
                                payload,
                            };
                        }
                        Err(e) => {
                            // Nothing else can be done with it; skipping keeps the queue
                            // moving.
                            self.inner.lost.fetch_add(1, Ordering::Relaxed);
                            error!(error = %e, "Cannot read an event back from the outbox; skipped it");
                            if let Some(head) = st.pop_front() {
                                st.release(&head);
                            }
                        }
                    }
                }
            }
            // `notify_one` stores a permit when nobody waits, so a push between the check
            // above and this await is not missed.
            self.inner.ready.notified().await;
        }
    }

    /// The event `seq` (the head) was written to the backend: remove it. A no-op when it
    /// is no longer the head (dropped meanwhile because the queue was full).
    pub fn delivered(&self, seq: u64) {
        let mut st = self.lock();
        if st.entries.front().is_some_and(|e| e.seq == seq)
            && let Some(head) = st.pop_front()
        {
            st.release(&head);
            self.inner.delivered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Wait for the next event and remove it (for consumers that do not need the
    /// at-least-once handshake of [`front`](Outbox::front)/[`delivered`](Outbox::delivered)).
    pub async fn next(&self) -> Event {
        loop {
            let pending = self.front().await;
            let event = pending.event();
            {
                let mut st = self.lock();
                if st.entries.front().is_some_and(|e| e.seq == pending.seq)
                    && let Some(head) = st.pop_front()
                {
                    st.release(&head);
                }
            }
            match event {
                Ok(e) => return e,
                Err(e) => error!(error = %e, "Skipped an undecodable event in the outbox"),
            }
        }
    }

    /// Events queued.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record bytes queued (headers included).
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Events dropped because the queue was full (or they could never be sent), since start.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Events written to the backend, since start.
    pub fn delivered_total(&self) -> u64 {
        self.inner.delivered.load(Ordering::Relaxed)
    }

    /// Failed writes to the disk queue, since start.
    pub fn write_errors(&self) -> u64 {
        self.inner.write_errors.load(Ordering::Relaxed)
    }

    /// Queued records that could not be read back and were skipped, since start.
    pub fn lost(&self) -> u64 {
        self.inner.lost.load(Ordering::Relaxed)
    }

    /// Flush every batched write (records, delivery marks, new segment entries) to the
    /// device. Blocking.
    pub fn sync(&self) -> io::Result<()> {
        let job = match self.lock().disk.as_mut() {
            Some(disk) => disk.take_dirty(),
            None => return Ok(()),
        };
        job.run()
    }

    /// Sync batched writes every [`SYNC_INTERVAL`] until `stop`, then once more.
    pub async fn run_syncer(self, stop: CancellationToken) {
        if self.inner.dir.is_none() {
            return;
        }
        loop {
            let stopping = tokio::select! {
                _ = stop.cancelled() => true,
                _ = tokio::time::sleep(SYNC_INTERVAL) => false,
            };
            let this = self.clone();
            match tokio::task::spawn_blocking(move || this.sync()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => error!(error = %e, "Cannot sync the outbox to disk"),
                Err(e) => error!(error = %e, "Outbox sync task failed"),
            }
            if stopping {
                return;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update below keeps the state consistent at each step (files first, then the
        // in-memory index), so the data behind a poisoned lock is still usable.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn ensure_id(event: &mut Event) {
    if event.id.is_none() {
        event.id = Some(uuid::Uuid::new_v4());
    }
}

fn encode(event: &Event) -> Result<Vec<u8>, PushError> {
    let payload = serde_json::to_vec(event).map_err(|e| PushError::Io(io::Error::other(e)))?;
    let size = payload.len() + EVENT_FRAME_PREFIX;
    if size > wire::MAX_FRAME_BYTES {
        return Err(PushError::TooLarge {
            size,
            limit: wire::MAX_FRAME_BYTES,
        });
    }
    Ok(payload)
}

fn record_size(payload: &[u8]) -> u64 {
    (RECORD_HEADER + payload.len()) as u64
}

impl State {
    fn new(limits: Limits, disk: Option<Disk>, entries: VecDeque<Entry>, bytes: u64) -> State {
        State {
            entries,
            bytes,
            next_seq: 0,
            limits,
            disk,
        }
    }

    fn fits(&self, size: u64) -> bool {
        self.entries.len() < self.limits.max_events
            && self.bytes.saturating_add(size) <= self.limits.max_bytes
    }

    fn append(&mut self, source: Source, payload: &[u8]) -> io::Result<Loc> {
        let segment_bytes = self.limits.segment_bytes;
        match self.disk.as_mut() {
            Some(disk) => disk.append(source, payload, segment_bytes),
            None => Ok(Loc::Memory(payload.into())),
        }
    }

    fn insert(&mut self, source: Source, size: u64, loc: Loc) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += size;
        self.entries.push_back(Entry {
            seq,
            source,
            size,
            loc,
        });
    }

    fn pop_front(&mut self) -> Option<Entry> {
        let e = self.entries.pop_front()?;
        self.bytes = self.bytes.saturating_sub(e.size);
        Some(e)
    }

    fn read(&self, entry: &Entry) -> io::Result<Arc<[u8]>> {
        match (&entry.loc, &self.disk) {
            (Loc::Memory(bytes), _) => Ok(bytes.clone()),
            (
                Loc::Disk {
                    segment,
                    offset,
                    len,
                },
                Some(disk),
            ) => disk.read(*segment, *offset, *len),
            (Loc::Disk { .. }, None) => Err(io::Error::other("disk record without a disk queue")),
        }
    }

    /// The record left the queue: mark it done on disk.
    fn release(&mut self, entry: &Entry) {
        if let (
            Loc::Disk {
                segment, offset, ..
            },
            Some(disk),
        ) = (&entry.loc, self.disk.as_mut())
        {
            disk.mark_done(*segment, *offset);
        }
    }
}

// === The segment files ===

#[derive(Debug)]
struct Disk {
    dir: PathBuf,
    /// Held (with its flock) for as long as the queue is open.
    _lock: File,
    segments: BTreeMap<u64, Segment>,
    /// The segment appended to; `None` until the first append after open (or after a write
    /// error), when a new one is created.
    write: Option<u64>,
    next_id: u64,
    /// Segments written since the last sync.
    dirty: BTreeSet<u64>,
    /// A segment was created since the last directory sync.
    dir_dirty: bool,
}

#[derive(Debug)]
struct Segment {
    file: Arc<File>,
    len: u64,
    /// Records not yet done.
    pending: usize,
}

/// Files to fsync, collected under the lock and run outside it.
#[derive(Debug, Default)]
struct SyncJob {
    files: Vec<Arc<File>>,
    dir: Option<PathBuf>,
}

impl SyncJob {
    fn run(self) -> io::Result<()> {
        for f in &self.files {
            f.sync_data()?;
        }
        if let Some(dir) = self.dir {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

type Recovered = Vec<(Source, u64, Loc)>;

impl Disk {
    fn open(dir: &Path) -> io::Result<(Disk, Recovered, u64)> {
        std::fs::create_dir_all(dir).map_err(|e| context(e, "cannot create", dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| context(e, "cannot open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "the outbox {} is in use by another agent (give each agent its own --cache-dir)",
                        dir.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(context(e, "cannot lock", &lock_path));
            }
        }

        let mut ids = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| context(e, "cannot list", dir))? {
            let entry = entry?;
            if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
                ids.push(id);
            }
        }
        ids.sort_unstable();

        let mut disk = Disk {
            dir: dir.to_path_buf(),
            _lock: lock,
            segments: BTreeMap::new(),
            write: None,
            next_id: ids.last().map_or(1, |id| id + 1),
            dirty: BTreeSet::new(),
            dir_dirty: false,
        };
        let mut recovered = Vec::new();
        let mut bytes = 0;
        for id in ids {
            let path = disk.segment_path(id);
            let data = std::fs::read(&path).map_err(|e| context(e, "cannot read", &path))?;
            let scan = scan_segment(&data);
            if scan.valid_len < data.len() as u64 {
                warn!(
                    segment = %path.display(),
                    offset = scan.valid_len,
                    discarded_bytes = data.len() as u64 - scan.valid_len,
                    "Outbox segment ends with a torn or damaged record; discarded it and the rest of the segment"
                );
            }
            if scan.records.is_empty() {
                std::fs::remove_file(&path).map_err(|e| context(e, "cannot remove", &path))?;
                continue;
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| context(e, "cannot open", &path))?;
            if scan.valid_len < data.len() as u64 {
                file.set_len(scan.valid_len)?;
                file.sync_all()?;
            }
            for r in &scan.records {
                bytes += RECORD_HEADER as u64 + u64::from(r.len);
                recovered.push((
                    r.source,
                    RECORD_HEADER as u64 + u64::from(r.len),
                    Loc::Disk {
                        segment: id,
                        offset: r.offset,
                        len: r.len,
                    },
                ));
            }
            disk.segments.insert(
                id,
                Segment {
                    file: Arc::new(file),
                    len: scan.valid_len,
                    pending: scan.records.len(),
                },
            );
        }
        Ok((disk, recovered, bytes))
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}{SEGMENT_SUFFIX}"))
    }

    fn append(&mut self, source: Source, payload: &[u8], segment_bytes: u64) -> io::Result<Loc> {
        let size = record_size(payload);
        let rotate = match self.write.and_then(|id| self.segments.get(&id)) {
            None => true,
            Some(s) => s.len > 0 && s.len + size > segment_bytes,
        };
        if rotate {
            self.rotate()?;
        }
        let id = self
            .write
            .ok_or_else(|| io::Error::other("no outbox segment to write to"))?;
        let seg = self
            .segments
            .get_mut(&id)
            .ok_or_else(|| io::Error::other("outbox segment vanished"))?;
        let record = encode_record(source, payload);
        if let Err(e) = seg.file.write_all_at(&record, seg.len) {
            // Whatever part was written is past `len` and gets overwritten or truncated;
            // continue in a fresh segment so a bad spot in this one is not retried.
            let _ = seg.file.set_len(seg.len);
            self.retire_write_segment();
            return Err(e);
        }
        let offset = seg.len;
        seg.len += size;
        seg.pending += 1;
        self.dirty.insert(id);
        Ok(Loc::Disk {
            segment: id,
            offset,
            len: payload.len() as u32,
        })
    }

    /// Close the write segment (deleting it if everything in it was delivered) and start a
    /// new one.
    fn rotate(&mut self) -> io::Result<()> {
        self.retire_write_segment();
        let id = self.next_id;
        let path = self.segment_path(id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| context(e, "cannot create", &path))?;
        self.next_id += 1;
        self.segments.insert(
            id,
            Segment {
                file: Arc::new(file),
                len: 0,
                pending: 0,
            },
        );
        self.write = Some(id);
        self.dir_dirty = true;
        Ok(())
    }

    fn retire_write_segment(&mut self) {
        if let Some(old) = self.write.take()
            && self.segments.get(&old).is_some_and(|s| s.pending == 0)
        {
            self.remove_segment(old);
        }
    }

    fn remove_segment(&mut self, id: u64) {
        self.segments.remove(&id);
        self.dirty.remove(&id);
        let path = self.segment_path(id);
        // A segment that cannot be removed is found again, all done, at the next open and
        // removed then.
        if let Err(e) = std::fs::remove_file(&path) {
            warn!(segment = %path.display(), error = %e, "Cannot remove a delivered outbox segment");
        }
    }

    fn read(&self, segment: u64, offset: u64, len: u32) -> io::Result<Arc<[u8]>> {
        let seg = self
            .segments
            .get(&segment)
            .ok_or_else(|| io::Error::other(format!("outbox segment {segment} is gone")))?;
        let mut buf = vec![0u8; len as usize];
        seg.file
            .read_exact_at(&mut buf, offset + RECORD_HEADER as u64)?;
        Ok(buf.into())
    }

    fn mark_done(&mut self, segment: u64, offset: u64) {
        let Some(seg) = self.segments.get_mut(&segment) else {
            return;
        };
        // A mark that does not reach the disk only means the event is sent again after a
        // restart (at least once).
        if let Err(e) = seg.file.write_all_at(&[STATE_DONE], offset + 1) {
            warn!(error = %e, "Cannot mark an outbox record delivered; it may be resent after a restart");
        }
        seg.pending = seg.pending.saturating_sub(1);
        self.dirty.insert(segment);
        if seg.pending == 0 && self.write != Some(segment) {
            self.remove_segment(segment);
        }
    }

    /// What a durable append must sync: its segment and, if a segment was created since the
    /// last directory sync, the directory (else the new file may vanish in a power loss).
    fn sync_job_for(&mut self, segment: u64) -> SyncJob {
        SyncJob {
            files: self
                .segments
                .get(&segment)
                .map(|s| s.file.clone())
                .into_iter()
                .collect(),
            dir: std::mem::take(&mut self.dir_dirty).then(|| self.dir.clone()),
        }
    }

    fn take_dirty(&mut self) -> SyncJob {
        let dirty = std::mem::take(&mut self.dirty);
        SyncJob {
            files: dirty
                .iter()
                .filter_map(|id| self.segments.get(id).map(|s| s.file.clone()))
                .collect(),
            dir: std::mem::take(&mut self.dir_dirty).then(|| self.dir.clone()),
        }
    }
}

fn context(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn encode_record(source: Source, payload: &[u8]) -> Vec<u8> {
    let mut rec = Vec::with_capacity(RECORD_HEADER + payload.len());
    rec.push(MAGIC);
    rec.push(STATE_PENDING);
    rec.push(source.code());
    rec.push(0);
    rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = Crc32::new().update(&rec[2..8]).update(payload).finish();
    rec.extend_from_slice(&crc.to_le_bytes());
    rec.extend_from_slice(payload);
    rec
}

#[derive(Debug, PartialEq)]
struct ScannedRecord {
    offset: u64,
    len: u32,
    source: Source,
}

#[derive(Debug, PartialEq)]
struct Scan {
    /// Pending records, in order.
    records: Vec<ScannedRecord>,
    /// Bytes up to the end of the last sound record.
    valid_len: u64,
}

/// Walk a segment's records, stopping at the first one that is incomplete or damaged.
fn scan_segment(data: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let Some(header) = data.get(pos..pos + RECORD_HEADER) else {
            break;
        };
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let stored = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        let Some(source) = Source::from_code(header[2]) else {
            break;
        };
        if header[0] != MAGIC || len as usize > wire::MAX_FRAME_BYTES {
            break;
        }
        let start = pos + RECORD_HEADER;
        let Some(payload) = data.get(start..start + len as usize) else {
            break;
        };
        if Crc32::new().update(&header[2..8]).update(payload).finish() != stored {
            break;
        }
        match header[1] {
            STATE_PENDING => records.push(ScannedRecord {
                offset: pos as u64,
                len,
                source,
            }),
            STATE_DONE => {}
            _ => break,
        }
        pos = start + len as usize;
    }
    Scan {
        records,
        valid_len: pos as u64,
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), table-driven: a dozen lines
/// instead of a dependency, fast enough to check a full queue at start in well under a
/// second.
struct Crc32(u32);

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

impl Crc32 {
    fn new() -> Self {
        Crc32(0xFFFF_FFFF)
    }

    fn update(mut self, data: &[u8]) -> Self {
        for &b in data {
            self.0 = CRC_TABLE[((self.0 ^ u32::from(b)) & 0xFF) as usize] ^ (self.0 >> 8);
        }
        self
    }

    fn finish(self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests;
