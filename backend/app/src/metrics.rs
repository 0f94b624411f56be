//! The backend's own counters, exposed on `GET /metrics` in the Prometheus text format.
//! Plain atomics: the hot paths (frames, keepalives) only do a relaxed increment.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

macro_rules! define_metrics {
    ($( $field:ident : $kind:ident, $name:literal, $help:literal; )*) => {
        /// Every counter and gauge the backend exports. Names are fixed here, never ad hoc.
        #[derive(Default)]
        pub struct Metrics {
            $( pub $field: define_metrics!(@ty $kind), )*
        }

        impl Metrics {
            /// Render in the Prometheus text exposition format (version 0.0.4).
            pub fn render(&self) -> String {
                let mut out = String::with_capacity(2048);
                $(
                    let _ = writeln!(out, "# HELP {} {}", $name, $help);
                    let _ = writeln!(out, "# TYPE {} {}", $name, stringify!($kind));
                    let _ = writeln!(out, "{} {}", $name, self.$field.load(Ordering::Relaxed));
                )*
                out
            }
        }
    };
    (@ty counter) => { AtomicU64 };
    (@ty gauge) => { AtomicI64 };
}

define_metrics! {
    agent_sessions: gauge, "picket_agent_sessions", "Agent WebSocket sessions currently open.";
    agent_sessions_total: counter, "picket_agent_sessions_total", "Agent WebSocket sessions accepted.";
    handshake_unauthorized_total: counter, "picket_agent_handshake_unauthorized_total", "Agent handshakes refused for bad credentials (401).";
    handshake_forbidden_total: counter, "picket_agent_handshake_forbidden_total", "Agent handshakes refused, and sessions closed, by RBAC: no create on events in the namespace.";
    handshake_unknown_namespace_total: counter, "picket_agent_handshake_unknown_namespace_total", "Agent handshakes refused for an unknown namespace (404).";
    handshake_invalid_total: counter, "picket_agent_handshake_invalid_total", "Agent handshakes refused for invalid headers (400).";
    handshake_rate_limited_total: counter, "picket_handshake_rate_limited_total", "Agent handshakes refused with 503 by the accept-rate limit.";
    frames_received_total: counter, "picket_agent_frames_received_total", "Frames received from agents.";
    frames_oversized_total: counter, "picket_agent_frames_oversized_total", "Agent sessions closed for a frame over the size limit.";
    frames_malformed_total: counter, "picket_agent_frames_malformed_total", "Agent sessions closed for a malformed frame (bad type, separator or payload).";
    keepalives_total: counter, "picket_keepalives_total", "Keepalives processed.";
    keepalives_rejected_total: counter, "picket_keepalives_rejected_total", "Keepalives rejected (zero timestamp, wrong entity).";
    keepalive_failures_total: counter, "picket_keepalive_failures_total", "Keepalive failure events raised (status 1 or 2).";
    events_total: counter, "picket_events_total", "Check events processed and stored.";
    store_write_batches_total: counter, "picket_store_write_batches_total", "Store transactions sent by the batch writer (events and entity states).";
    store_batched_writes_total: counter, "picket_store_batched_writes_total", "Writes carried by those transactions.";
    store_write_batch_retries_total: counter, "picket_store_write_batch_retries_total", "Batches retried write by write after a failed compare.";
    event_cache_misses_total: counter, "picket_event_cache_misses_total", "Stored events read from the store because this backend had no current copy.";
    events_duplicate_total: counter, "picket_events_duplicate_total", "Resent events recognised by their id and not stored again.";
    events_rejected_total: counter, "picket_events_rejected_total", "Events refused as invalid.";
    registrations_total: counter, "picket_registrations_total", "Entities registered on first keepalive.";
    deregistrations_total: counter, "picket_deregistrations_total", "Entities deregistered after their keepalive lapsed.";
    api_requests_total: counter, "picket_api_requests_total", "REST API requests served.";
    api_unauthorized_total: counter, "picket_api_unauthorized_total", "REST API requests refused for missing or bad credentials.";
    api_forbidden_total: counter, "picket_api_forbidden_total", "REST API requests refused by RBAC (403).";
    login_rate_limited_total: counter, "picket_login_rate_limited_total", "Logins refused past the failed-login limit (429), API and agent handshakes.";
    pipeline_events_lagged_total: counter, "picket_pipeline_events_lagged_total", "Events pipelined missed because it fell behind the event bus.";
    pipeline_events_handled_total: counter, "picket_pipeline_events_handled_total", "Events run through their pipelines.";
    pipeline_events_dropped_total: counter, "picket_pipeline_events_dropped_total", "Events dropped because the pipeline queue was full.";
    pipeline_workflows_filtered_total: counter, "picket_pipeline_workflows_filtered_total", "Pipeline workflows stopped by a filter.";
    pipeline_filter_errors_total: counter, "picket_pipeline_filter_errors_total", "Filter expressions that failed to evaluate (skipped).";
    pipeline_mutator_errors_total: counter, "picket_pipeline_mutator_errors_total", "Mutator executions that failed.";
    pipeline_handler_executions_total: counter, "picket_pipeline_handler_executions_total", "Handler executions started.";
    pipeline_handler_errors_total: counter, "picket_pipeline_handler_errors_total", "Handler executions that failed.";
    pipeline_handler_timeouts_total: counter, "picket_pipeline_handler_timeouts_total", "Pipe handlers killed at their timeout.";
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        Metrics::inc(&m.keepalives_total);
        m.agent_sessions.fetch_add(3, Ordering::Relaxed);
        let text = m.render();
        assert!(
            text.contains("# TYPE picket_keepalives_total counter\npicket_keepalives_total 1\n")
        );
        assert!(text.contains("# TYPE picket_agent_sessions gauge\npicket_agent_sessions 3\n"));
    }
}
