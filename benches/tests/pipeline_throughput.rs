//! The pipeline benchmark with tiny sizes, so it cannot rot: every event must pass both
//! filters and reach the tcp sink as the event JSON (the harness fails otherwise). Behaviour
//! only: no assertion on the rates.

use std::time::Duration;

use benches::pipeline_throughput::{self, PipelineConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_the_tcp_sink() {
    let report = pipeline_throughput::run_pipeline(&PipelineConfig {
        events: 300,
        concurrency: 8,
        drain_timeout: Duration::from_secs(30),
        filters: true,
        quickjs: false,
    })
    .await
    .expect("run");
    assert_eq!(report.delivered, 300);
    assert_eq!(report.filter_evaluations, 600);
    assert!(report.bytes > 300 * 500, "{report}");
}

/// The same filters on QuickJS (written outside the simple subset) let every event through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_the_tcp_sink_with_quickjs_filters() {
    let report = pipeline_throughput::run_pipeline(&PipelineConfig {
        events: 100,
        concurrency: 8,
        drain_timeout: Duration::from_secs(30),
        filters: true,
        quickjs: true,
    })
    .await
    .expect("run");
    assert_eq!(report.delivered, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tcp_floor_delivers_every_connection() {
    let report = pipeline_throughput::run_tcp_floor(200, 8)
        .await
        .expect("run");
    assert_eq!(report.tokio.count, 200);
    assert_eq!(report.blocking.count, 200);
    assert!(report.bytes_per_event > 500, "{report:?}");
}

#[test]
fn filters_pass_every_event() {
    let report = pipeline_throughput::run_filters(200, 200).expect("run");
    assert_eq!(report.single.count, 200);
    assert_eq!(report.trivial.count, 200);
    assert_eq!(report.events.count, 200);
    assert_eq!(report.quickjs_events.count, 200);
}
