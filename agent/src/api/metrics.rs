//! The agent's own counters and their Prometheus text rendering (`GET /metrics`).
//!
//! Each component keeps its counters where they happen (the outbox, the check runner, the
//! StatsD listener); [`Stats`] holds the ones of the session loop and the local APIs. The
//! rendering reads them all at scrape time: nothing is aggregated in between.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::check::CheckRunner;
use crate::outbox::Outbox;

/// Counters of the connection and of the local APIs. Shared by reference; all relaxed
/// atomics (each is an independent total).
#[derive(Debug, Default)]
pub struct Stats {
    /// A session with a backend is established (handshake done).
    pub connected: AtomicBool,
    /// Sessions established since start.
    pub sessions: AtomicU64,
    /// Sessions established after the first one: each follows a lost or closed one.
    pub reconnects: AtomicU64,
    /// Connection attempts that failed (refused, handshake error, HTTP rejection).
    pub connection_failures: AtomicU64,
    pub api_accepted: AtomicU64,
    /// Refused as invalid: bad JSON, invalid event, too large.
    pub api_invalid: AtomicU64,
    /// Refused with 503: the outbox was full.
    pub api_full: AtomicU64,
    /// Failed with 500: the outbox could not persist the event.
    pub api_errors: AtomicU64,
    pub tcp_accepted: AtomicU64,
    pub tcp_invalid: AtomicU64,
    pub tcp_full: AtomicU64,
    pub udp_accepted: AtomicU64,
    pub udp_invalid: AtomicU64,
    pub udp_full: AtomicU64,
}

impl Stats {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

/// Everything `/metrics` reads.
#[derive(Debug, Clone)]
pub struct Sources {
    pub stats: Arc<Stats>,
    pub outbox: Outbox,
    pub checks: Option<CheckRunner>,
    pub statsd: Arc<crate::statsd::Stats>,
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// One metric family: `# HELP`, `# TYPE` and its samples (`labels` without braces).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP picket_agent_{name} {help}");
    let _ = writeln!(out, "# TYPE picket_agent_{name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "picket_agent_{name} {value}");
        } else {
            let _ = writeln!(out, "picket_agent_{name}{{{labels}}} {value}");
        }
    }
}

/// The Prometheus text exposition (format 0.0.4) of every counter.
pub fn render(s: &Sources) -> String {
    let mut out = String::with_capacity(4096);
    let st = &s.stats;
    let o = &s.outbox;
    family(
        &mut out,
        "connected",
        "gauge",
        "Whether a session with a backend is established (1) or not (0).",
        &[("", u64::from(st.is_connected()))],
    );
    family(
        &mut out,
        "sessions_total",
        "counter",
        "Sessions established with a backend.",
        &[("", get(&st.sessions))],
    );
    family(
        &mut out,
        "reconnects_total",
        "counter",
        "Sessions established after the first one (each follows a lost or closed session).",
        &[("", get(&st.reconnects))],
    );
    family(
        &mut out,
        "connection_failures_total",
        "counter",
        "Connection attempts to a backend that failed.",
        &[("", get(&st.connection_failures))],
    );
    family(
        &mut out,
        "events_sent_total",
        "counter",
        "Events from the outbox written to the backend (keepalives not included).",
        &[("", o.delivered_total())],
    );
    family(
        &mut out,
        "outbox_events",
        "gauge",
        "Events waiting in the outbox.",
        &[("", o.len() as u64)],
    );
    family(
        &mut out,
        "outbox_bytes",
        "gauge",
        "Bytes of the events waiting in the outbox (record headers included).",
        &[("", o.bytes())],
    );
    let limits = o.limits();
    family(
        &mut out,
        "outbox_max_events",
        "gauge",
        "Events the outbox holds at most.",
        &[("", limits.max_events as u64)],
    );
    family(
        &mut out,
        "outbox_max_bytes",
        "gauge",
        "Bytes the outbox holds at most.",
        &[("", limits.max_bytes)],
    );
    family(
        &mut out,
        "outbox_dropped_total",
        "counter",
        "Agent events (checks, StatsD) dropped because the outbox was full.",
        &[("", o.dropped())],
    );
    family(
        &mut out,
        "outbox_write_errors_total",
        "counter",
        "Failed writes to the outbox on disk.",
        &[("", o.write_errors())],
    );
    family(
        &mut out,
        "api_events_total",
        "counter",
        "Events posted to the HTTP API, by outcome.",
        &[
            (r#"result="accepted""#, get(&st.api_accepted)),
            (r#"result="invalid""#, get(&st.api_invalid)),
            (r#"result="outbox_full""#, get(&st.api_full)),
            (r#"result="error""#, get(&st.api_errors)),
        ],
    );
    family(
        &mut out,
        "socket_events_total",
        "counter",
        "Check results received on the socket API, by protocol and outcome.",
        &[
            (r#"protocol="tcp",result="accepted""#, get(&st.tcp_accepted)),
            (r#"protocol="tcp",result="invalid""#, get(&st.tcp_invalid)),
            (r#"protocol="tcp",result="outbox_full""#, get(&st.tcp_full)),
            (r#"protocol="udp",result="accepted""#, get(&st.udp_accepted)),
            (r#"protocol="udp",result="invalid""#, get(&st.udp_invalid)),
            (r#"protocol="udp",result="outbox_full""#, get(&st.udp_full)),
        ],
    );
    let c = s.checks.as_ref().map(|c| c.counts()).unwrap_or_default();
    family(
        &mut out,
        "check_requests_total",
        "counter",
        "Check requests from the backend, by decision.",
        &[
            (r#"result="accepted""#, c.accepted),
            (r#"result="rejected""#, c.rejected),
        ],
    );
    family(
        &mut out,
        "checks_executed_total",
        "counter",
        "Check results produced.",
        &[("", c.executed)],
    );
    family(
        &mut out,
        "checks_failed_to_start_total",
        "counter",
        "Check results reporting that the command could not start (invalid definition, tokens, assets, spawn failure).",
        &[("", c.failed_to_start)],
    );
    let d = &s.statsd;
    family(
        &mut out,
        "statsd_datagrams_total",
        "counter",
        "StatsD datagrams received (counted at each flush).",
        &[("", get(&d.datagrams))],
    );
    family(
        &mut out,
        "statsd_metrics_total",
        "counter",
        "StatsD metrics received (counted at each flush).",
        &[("", get(&d.metrics))],
    );
    family(
        &mut out,
        "statsd_bad_lines_total",
        "counter",
        "StatsD lines refused by the parser.",
        &[("", get(&d.bad_lines))],
    );
    family(
        &mut out,
        "statsd_rejected_metrics_total",
        "counter",
        "StatsD metrics dropped because too many series were live.",
        &[("", get(&d.rejected))],
    );
    family(
        &mut out,
        "statsd_kernel_drops_total",
        "counter",
        "StatsD datagrams dropped by the kernel (socket receive buffer full).",
        &[("", get(&d.kernel_drops))],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families() {
        let stats = Arc::new(Stats::default());
        stats.connected.store(true, Ordering::Relaxed);
        Stats::inc(&stats.api_accepted);
        Stats::inc(&stats.api_accepted);
        let text = render(&Sources {
            stats,
            outbox: Outbox::new(3),
            checks: None,
            statsd: Arc::default(),
        });
        assert!(text.contains("# TYPE picket_agent_connected gauge\npicket_agent_connected 1\n"));
        assert!(text.contains("picket_agent_api_events_total{result=\"accepted\"} 2\n"));
        assert!(text.contains("picket_agent_outbox_max_events 3\n"));
        // Every sample line is `name[{labels}] value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("picket_agent_"), "{line}");
            value.parse::<u64>().unwrap();
        }
    }
}
