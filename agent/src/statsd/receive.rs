//! The receive task: owns the socket and the aggregator, and cuts the flush intervals.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use ::statsd::{Aggregator, DatagramStats, ParseError, Snapshot};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::RECV_BATCH;
use super::batch::{self, Datagram, RecvBatch};

/// One flush interval's data, for the flush task.
#[derive(Debug)]
pub(super) struct Interval {
    pub snapshot: Snapshot,
    pub counts: Counts,
    /// Unix seconds at the end of the interval: the timestamp of its event and points.
    pub unix_time: i64,
}

/// What happened to the datagrams of one interval.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Counts {
    pub datagrams: u64,
    pub metrics: u64,
    pub bad_lines: u64,
    pub rejected: u64,
    pub last_parse_error: Option<ParseError>,
    pub recv_errors: u64,
    pub last_recv_error: Option<ErrorKind>,
    /// Datagrams longer than a receive slot, dropped unparsed.
    pub truncated: u64,
}

impl Counts {
    fn add(&mut self, s: DatagramStats) {
        self.datagrams += 1;
        self.metrics += s.metrics as u64;
        self.bad_lines += s.bad_lines as u64;
        self.rejected += s.rejected as u64;
        if s.last_error.is_some() {
            self.last_parse_error = s.last_error;
        }
    }
}

/// Receive until `stop`; every `every`, hand the interval to the flush task.
pub(super) async fn run(
    socket: UdpSocket,
    mut aggregator: Aggregator,
    every: Duration,
    flushes: mpsc::Sender<Interval>,
    stop: CancellationToken,
) {
    let mut batch = RecvBatch::new(batch::SLOTS, batch::MAX_UDP_PAYLOAD);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    // After a stall, flush once and continue on a fresh schedule, rather than in a burst.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut counts = Counts::default();
    loop {
        tokio::select! {
            // Shutdown first, then the tick: a flood of datagrams cannot postpone either.
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                let interval = Interval {
                    snapshot: aggregator.snapshot(Instant::now()),
                    counts: std::mem::take(&mut counts),
                    unix_time: super::unix_now(),
                };
                match flushes.try_send(interval) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(lost)) => {
                        warn!(
                            series = lost.snapshot.len(),
                            "StatsD flush still busy with earlier intervals; dropped this interval's metrics"
                        );
                    }
                    // The flush task is gone only when the agent is stopping.
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            ready = socket.readable() => {
                if let Err(e) = ready {
                    // Readiness errors mean the socket itself is broken: nothing to retry.
                    warn!(error = %e, "StatsD socket failed; the listener stops");
                    return;
                }
                drain(&socket, &mut batch, &mut aggregator, &mut counts);
            }
        }
    }
}

/// Receive and aggregate up to [`RECV_BATCH`] datagrams, stopping early once the socket is
/// empty (which also clears tokio's readiness, so the next `readable()` waits).
pub(super) fn drain(
    socket: &UdpSocket,
    batch: &mut RecvBatch,
    aggregator: &mut Aggregator,
    counts: &mut Counts,
) {
    // One clock read per call: expiry is measured in minutes.
    let now = Instant::now();
    let mut received = 0;
    while received < RECV_BATCH {
        match batch.recv(socket) {
            Ok(n) => {
                for i in 0..n {
                    match batch.get(i) {
                        Datagram::Whole(bytes) => counts.add(aggregator.add_datagram(bytes, now)),
                        Datagram::Truncated => {
                            counts.datagrams += 1;
                            counts.truncated += 1;
                        }
                    }
                }
                received += n;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => {
                // E.g. ENOMEM under memory pressure; reported once per interval by the
                // flush task, and the next readiness tries again.
                counts.recv_errors += 1;
                counts.last_recv_error = Some(e.kind());
                return;
            }
        }
    }
}
