//! Scraping a real Prometheus endpoint the Sensu way: a check runs `curl` against Debian's
//! prometheus-node-exporter (installed by scripts/test) with `prometheus_text`, and its event
//! carries the exporter's samples as metric points.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proto_spec::v2::MetricPoint;

use crate::checks::check_request;
use crate::metrics::run;

const EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// The exporter process, killed when the test ends however it ends.
struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_exporter() -> (Exporter, u16) {
    assert!(
        std::path::Path::new(EXPORTER).exists(),
        "{EXPORTER} is missing: install prometheus-node-exporter (scripts/test does)"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(EXPORTER)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus-node-exporter");
    let exporter = Exporter(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "node exporter did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (exporter, port)
}

fn tag<'a>(p: &'a MetricPoint, name: &str) -> Option<&'a str> {
    p.tags
        .iter()
        .flatten()
        .find(|t| t.name == name)
        .map(|t| t.value.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_scrapes_node_exporter_with_prometheus_text() {
    let (_exporter, port) = start_exporter();
    let mut request = check_request(
        "node-metrics",
        &format!("curl -sf http://127.0.0.1:{port}/metrics"),
        1,
    );
    let config = request.config.as_mut().unwrap();
    config.output_metric_format = "prometheus_text".into();
    config.output_metric_handlers = Some(vec!["influxdb".into()]);
    config.timeout = 30;

    let event = run("scraper", request).await;
    let check = event.check.as_ref().unwrap();
    assert_eq!(
        check.status,
        0,
        "{}",
        &check.output[..check.output.len().min(300)]
    );
    let metrics = event.metrics.as_ref().expect("the event carries metrics");
    assert_eq!(
        metrics.handlers.as_deref(),
        Some(&["influxdb".to_string()][..])
    );
    let points = metrics.points.as_deref().unwrap_or_default();
    assert!(points.len() > 100, "only {} points", points.len());

    // A counter family with labels: one point per CPU and mode.
    let cpu: Vec<&MetricPoint> = points
        .iter()
        .filter(|p| p.name == "node_cpu_seconds_total")
        .collect();
    assert!(
        !cpu.is_empty(),
        "node_cpu_seconds_total is exported on Linux"
    );
    for p in &cpu {
        assert_eq!(tag(p, "prom_type"), Some("counter"));
        assert!(tag(p, "cpu").is_some() && tag(p, "mode").is_some());
        assert!(tag(p, "prom_help").is_some_and(|h| !h.is_empty()));
        assert!(p.value >= 0.0 && p.timestamp > 0);
    }
    // The Go runtime's GC summary: quantiles, sum and count.
    let gc: Vec<&MetricPoint> = points
        .iter()
        .filter(|p| p.name.starts_with("go_gc_duration_seconds"))
        .collect();
    assert!(
        gc.iter().any(|p| tag(p, "quantile") == Some("0.5")),
        "summary quantiles are points"
    );
    assert!(gc.iter().any(|p| p.name == "go_gc_duration_seconds_count"));
    assert!(gc.iter().all(|p| tag(p, "prom_type") == Some("summary")));
}
