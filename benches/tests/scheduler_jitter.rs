//! The scheduler-jitter harness with tiny sizes, so it cannot rot: every firing planned in the
//! window must arrive exactly once, over the bus and over agent sessions. Behaviour only: no
//! assertion on the delays.

use std::time::Duration;

use benches::scheduler_jitter::{self, JitterConfig, Via};

fn tiny(via: Via) -> JitterConfig {
    JitterConfig {
        checks: 12,
        intervals: vec![1, 2],
        receivers: 3,
        via,
        warmup: Duration::from_millis(1500),
        duration: Duration::from_secs(3),
        grace: Duration::from_secs(2),
    }
}

fn assert_every_firing_arrived_once(report: &scheduler_jitter::JitterReport) {
    // 6 checks every second and 6 every 2 s over a 3 s window.
    assert!(
        (24..=30).contains(&report.expected),
        "planned firings: {report}"
    );
    assert_eq!(report.missed, 0, "{report}");
    assert_eq!(report.duplicated, 0, "{report}");
    assert_eq!(report.received, report.expected, "{report}");
    assert_eq!(report.delay.count as u64, report.expected);
    assert_eq!(report.bus_dropped, 0);
    assert_eq!(report.by_interval.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_planned_firing_arrives_once_on_the_bus() {
    let report = scheduler_jitter::run(&tiny(Via::Bus)).await.expect("run");
    assert_every_firing_arrived_once(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_planned_firing_arrives_once_at_the_agents() {
    let report = scheduler_jitter::run(&tiny(Via::Agents))
        .await
        .expect("run");
    assert_every_firing_arrived_once(&report);
}
