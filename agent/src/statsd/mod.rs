//! The StatsD listener (sensu-compat 5.8): UDP datagrams in, one metrics-only event per flush
//! interval out, through the [`Outbox`] like check results.
//!
//! # Path of a datagram
//!
//! ```text
//!  UDP socket ──▶ receive task ──(Snapshot, every flush interval)──▶ flush task ──▶ Outbox
//!                 parse + aggregate                                   points → events
//! ```
//!
//! * **Bind** ([`Server::bind`], called by `Agent::new`): `--statsd-metrics-host:port`
//!   (127.0.0.1:8125), nonblocking, with a large receive buffer ([`RECV_BUFFER_BYTES`]
//!   requested through `socket2`; Linux caps it at `net.core.rmem_max`). Binding early lets
//!   tests use port 0 and read the address back. A bind failure is logged and the agent runs
//!   without StatsD, as Sensu's agent does. `--statsd-disable` binds nothing.
//! * **Receive** (`receive.rs`): one task owns the socket and the `statsd::Aggregator`; no
//!   lock, no channel per metric. On readiness it drains the socket with `recvmmsg`, up to 32
//!   datagrams per system call (`batch.rs`; one `recv` per datagram off Linux), until the
//!   socket is empty or [`RECV_BATCH`] datagrams were read, then goes back to its `select!` so
//!   the flush tick is never starved. Each datagram is parsed and aggregated in place from its
//!   slot of one buffer allocated at start (32 slots of the largest UDP payload, so nothing is
//!   ever cut; untouched pages cost no memory). Nothing is allocated per read or per datagram.
//!   It awaits nothing but readiness, the tick and shutdown.
//! * **Flush tick**: the receive task calls `statsd::Aggregator::snapshot`, which only moves
//!   the interval's raw data out (O(series), no sorting, no formatting), and hands the
//!   snapshot to the flush task through a small channel; if the flush task is still busy with
//!   earlier intervals the snapshot is dropped and logged rather than waited for.
//! * **Flush** (`flush.rs`, its own task): sorting timer values, naming points, building the
//!   event and its JSON-size accounting run on the blocking pool, never in the receive task.
//!   No series → no event. Non-finite results (a counter summed past `f64::MAX`) are dropped
//!   and counted: JSON cannot carry them and `Metrics::validate` refuses them.
//!
//! # The event
//!
//! Entity = the agent's current entity; `metrics.handlers` = `--statsd-event-handlers`; one
//! point per statistic (names in the `statsd` crate's docs), its tags the line's DogStatsD tags
//! (sorted); no `check`; a new id; namespace = the agent's. A flush larger than one transport
//! frame ([`proto_spec::wire::MAX_FRAME_BYTES`]) is split into several events of whole points
//! (Sensu sends one message whatever its size; Picket's frames are bounded).
//!
//! **Timestamps are in seconds**, the event's and every point's: the flush time. Sensu's
//! StatsD backend stamps points with `time.Now().UnixNano()` while every other metric point
//! (output metric extraction, the API) and every Sensu handler expect seconds; sensu-compat
//! marks it a quirk, and Picket does not copy it.
//!
//! # Counting losses
//!
//! * **Kernel drops** (receive buffer full): read every flush from the `drops` column of
//!   `/proc/net/udp` and `/proc/net/udp6` for this socket's inode (found through
//!   `/proc/self/fd`), logged as a warning with the number since the last flush and the
//!   total. Counting sequence gaps is not possible: StatsD datagrams carry no sequence. On a
//!   system without those files the drops are not counted (logged once at start).
//! * **Bad lines** (refused by the parser) and **rejected metrics** (beyond
//!   [`MAX_SERIES`] live series) are counted per interval and logged with the last reason.
//!   A datagram the kernel cut to fit its receive slot (`MSG_TRUNC`; impossible with the
//!   agent's slot size, kept as a guard) is counted as a datagram, logged, and not parsed.
//!
//! # Differences from Sensu (gostatsd)
//!
//! * Timestamps in seconds (above).
//! * Counters are floats (`0.5|c` adds 0.5; gostatsd truncates to integers).
//! * Tags: `k:v` is split on the first `:` only (`url:http://x` keeps its value; Sensu keeps
//!   only the text between the first and second `:`), and a tag without `:` is a tag with an
//!   empty value (Sensu repeats the previous tag's name and value).
//! * A series idle for more than 5 minutes is dropped before the flush that would have emitted
//!   it once more (gostatsd emits it one last time, then drops it).
//! * Live series are bounded ([`MAX_SERIES`]); lines longer than `statsd::MAX_LINE_LEN` are
//!   refused.
//! * On shutdown the partial interval is not flushed: at most one interval of metrics is
//!   lost (the flushed ones wait in the durable outbox and are sent after a restart).

mod batch;
mod drops;
mod flush;
mod receive;
#[cfg(test)]
mod tests;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use ::statsd::{Aggregator, AggregatorConfig};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::check::EntitySource;
use crate::config::StatsdConfig;
use crate::outbox::Outbox;

/// SO_RCVBUF requested for the socket: about 50,000 typical datagrams of headroom while the
/// receive task is descheduled. Linux caps the request at `net.core.rmem_max` (raise it with
/// sysctl on a busy host) and reports twice the granted size.
pub const RECV_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// Datagrams received in a row before the receive task returns to its `select!`.
pub const RECV_BATCH: usize = 256;

/// Live series at most; metrics creating more are dropped and counted. Each timer series
/// emits 14 points per flush, so this keeps a flush to a few MiB of JSON.
pub const MAX_SERIES: usize = ::statsd::DEFAULT_MAX_SERIES;

/// Snapshots waiting for the flush task; more means the flush task is stuck, and further
/// intervals are dropped (and logged) instead of piling up.
const PENDING_FLUSHES: usize = 2;

/// The agent's StatsD listener: bound (or disabled, or failed) at construction, started by
/// `Server::spawn` when the agent runs.
#[derive(Debug)]
pub struct Server {
    state: State,
    flush_interval: Duration,
    percentiles: Vec<f64>,
    stats: Arc<Stats>,
}

/// Totals since start, for the agent's `/metrics`. Updated at every flush (from the
/// interval's counts), so they lag by at most one flush interval.
#[derive(Debug, Default)]
pub struct Stats {
    pub datagrams: AtomicU64,
    pub metrics: AtomicU64,
    pub bad_lines: AtomicU64,
    /// Metrics refused because [`MAX_SERIES`] series were live.
    pub rejected: AtomicU64,
    pub recv_errors: AtomicU64,
    /// Datagrams the kernel dropped (receive buffer full), as `/proc/net/udp` reports them.
    pub kernel_drops: AtomicU64,
}

#[derive(Debug)]
enum State {
    Disabled,
    Failed { addr: String, error: String },
    Bound(Bound),
}

#[derive(Debug)]
struct Bound {
    socket: std::net::UdpSocket,
    local: SocketAddr,
    /// The granted SO_RCVBUF as the kernel reports it.
    recv_buffer: Option<usize>,
    /// The socket's inode, the key of its row in /proc/net/udp{,6}.
    inode: Option<u64>,
}

/// Where flushed events go and what they carry besides the points.
pub(crate) struct EventSink {
    pub namespace: String,
    pub handlers: Vec<String>,
    pub entity: EntitySource,
    pub outbox: Outbox,
}

impl Server {
    /// Bind the configured address, unless StatsD is disabled. Never fails: a bind error is
    /// kept and logged when the agent starts, and the agent runs without StatsD.
    pub fn bind(config: &StatsdConfig) -> Server {
        let addr = format!("{}:{}", config.host, config.port);
        let state = if config.disabled {
            State::Disabled
        } else {
            match bind(&config.host, config.port) {
                Ok(bound) => State::Bound(bound),
                Err(e) => State::Failed {
                    addr,
                    error: e.to_string(),
                },
            }
        };
        Server {
            state,
            flush_interval: config.flush_interval,
            percentiles: config.percentiles.clone(),
            stats: Arc::default(),
        }
    }

    /// The listener's totals (all zero when it is disabled or failed to bind).
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The bound address (the real port when the configured one is 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.state {
            State::Bound(b) => Some(b.local),
            _ => None,
        }
    }

    /// Start receiving and flushing until `shutdown`; `None` when there is no socket. Must be
    /// called within a tokio runtime.
    pub(crate) fn spawn(
        self,
        sink: EventSink,
        shutdown: CancellationToken,
    ) -> Option<JoinHandle<()>> {
        let bound = match self.state {
            State::Disabled => {
                info!("StatsD listener disabled");
                return None;
            }
            State::Failed { addr, error } => {
                error!(address = %addr, error = %error, "Cannot bind the StatsD listener; running without it");
                return None;
            }
            State::Bound(b) => b,
        };
        let socket = match tokio::net::UdpSocket::from_std(bound.socket) {
            Ok(s) => s,
            Err(e) => {
                error!(address = %bound.local, error = %e, "Cannot register the StatsD socket; running without it");
                return None;
            }
        };
        let aggregator = Aggregator::new(AggregatorConfig {
            flush_interval: self.flush_interval,
            max_series: MAX_SERIES,
            percentiles: self.percentiles.clone(),
            ..Default::default()
        });
        let aggregator = match aggregator {
            Ok(a) => a,
            Err(e) => {
                // The configuration turns a zero interval into 10 s and checks percentiles, so
                // this is a bug if it happens.
                error!(error = %e, "Invalid StatsD configuration; running without it");
                return None;
            }
        };
        info!(
            address = %bound.local,
            flush_interval = ?self.flush_interval,
            recv_buffer = bound.recv_buffer,
            "StatsD listener started"
        );
        if bound.inode.is_none() {
            warn!("Cannot find the StatsD socket in /proc; kernel drops will not be counted");
        }
        let (tx, rx) = mpsc::channel(PENDING_FLUSHES);
        let every = self.flush_interval;
        Some(tokio::spawn(async move {
            let flusher = tokio::spawn(flush::run(rx, sink, bound.inode, self.stats));
            receive::run(socket, aggregator, every, tx, shutdown).await;
            // The receive task dropped its sender: the flusher ends after the pending
            // snapshots.
            let _ = flusher.await;
        }))
    }
}

fn bind(host: &str, port: u16) -> std::io::Result<Bound> {
    let addr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{host} resolves to no address"),
        )
    })?;
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // A smaller buffer only means earlier drops under bursts: not a reason to refuse.
    if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER_BYTES) {
        warn!(error = %e, "Cannot enlarge the StatsD socket's receive buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let recv_buffer = socket.recv_buffer_size().ok();
    let socket: std::net::UdpSocket = socket.into();
    let local = socket.local_addr()?;
    let inode = drops::socket_inode(&socket);
    Ok(Bound {
        socket,
        local,
        recv_buffer,
        inode,
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
