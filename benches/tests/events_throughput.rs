//! The events-throughput harness with tiny sizes, so it cannot rot: every result must be
//! processed and every stored event must carry the history its results imply (the harness
//! checks each one and fails otherwise). Behaviour only: no assertion on the rates.

use std::time::Duration;

use benches::events_throughput::{self, ThroughputConfig};

fn tiny(from_frames: bool) -> ThroughputConfig {
    ThroughputConfig {
        entities: 5,
        checks: 3,
        // 25 rounds (past the 21-entry history cap) plus 7 pairs with a 26th result.
        results: 5 * 3 * 25 + 7,
        submitters: 3,
        workers: 4,
        buffer: 16,
        dir: None,
        from_frames,
        stall_timeout: Duration::from_secs(60),
        etcd_members: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_result_is_processed_and_stored() {
    let report = events_throughput::run(&tiny(false)).await.expect("run");
    assert_eq!(report.results, 382);
    assert_eq!(report.verified_events, 15);
    // Results are written in batches: never more than one store write per result.
    assert!(report.store_write_requests >= 1, "{report}");
    assert!(report.store_write_requests <= 382, "{report}");
    assert!(report.event_json_bytes > 1000, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_from_wire_frames_are_processed_and_stored() {
    let report = events_throughput::run(&tiny(true)).await.expect("run");
    assert_eq!(report.verified_events, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_results_than_pairs_store_only_those() {
    let config = ThroughputConfig {
        results: 10,
        ..tiny(false)
    };
    let report = events_throughput::run(&config).await.expect("run");
    assert_eq!(report.verified_events, 10);
}

/// The same run on a real one-member etcd: every result stored with its history, and the
/// writes batched (at most one store write per result).
#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_result_is_stored_in_etcd() {
    let config = ThroughputConfig {
        etcd_members: 1,
        ..tiny(false)
    };
    let report = events_throughput::run(&config).await.expect("run");
    assert_eq!(report.verified_events, 15);
    assert!(report.store_kind.starts_with("etcd"), "{report}");
    assert!(report.store_write_requests <= 382, "{report}");
}
