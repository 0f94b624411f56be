//! Output metric extraction through the running agent: a check prints perfdata or Prometheus
//! text, and its event comes back with `metrics`, the thresholds' status and annotations.

use agent::Agent;
use proto_spec::ObjectMeta;
use proto_spec::v2::{
    CheckRequest, Event, HookConfig, HookList, MetricPoint, MetricTag, MetricThreshold,
    MetricThresholdRule, MetricThresholdTag,
};
use proto_spec::wire;
use tokio::time::timeout;

use crate::backend::{Backend, STEP};
use crate::checks::{check_request, config, entity_config, next_event, spawn};

fn tag(name: &str, value: &str) -> MetricTag {
    MetricTag {
        name: name.into(),
        value: value.into(),
    }
}

fn threshold(
    name: &str,
    tags: &[(&str, &str)],
    min: &str,
    max: &str,
    status: u32,
) -> MetricThreshold {
    MetricThreshold {
        name: name.into(),
        tags: Some(
            tags.iter()
                .map(|(n, v)| MetricThresholdTag {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        ),
        thresholds: Some(vec![MetricThresholdRule {
            min: min.into(),
            max: max.into(),
            status,
        }]),
        null_status: 0,
    }
}

/// `name value [tag=value,...]` per point, for compact assertions.
fn summary(points: &[MetricPoint]) -> Vec<String> {
    points
        .iter()
        .map(|p| {
            let tags: Vec<String> = p
                .tags
                .iter()
                .flatten()
                .map(|t| format!("{}={}", t.name, t.value))
                .collect();
            format!("{} {} [{}]", p.name, p.value, tags.join(","))
        })
        .collect()
}

/// Start an agent labelled `region=eu`, run `request` and return its event.
pub(crate) async fn run(agent_name: &str, request: CheckRequest) -> Event {
    let backend = Backend::start().await;
    let (token, handle) = spawn(Agent::new(config(&backend, agent_name)).unwrap());
    let mut conn = backend.accept().await;
    conn.send(entity_config(agent_name, &[("region", "eu")]))
        .await;
    conn.keepalive().await;
    conn.send(wire::Message::CheckRequest(Box::new(request)))
        .await;
    let (event, _) = next_event(&mut conn).await;
    token.cancel();
    conn.closed_by_agent().await;
    timeout(STEP, handle).await.unwrap().unwrap();
    event
}

#[tokio::test]
async fn perfdata_points_and_a_violated_threshold_make_a_critical_event() {
    let mut request = check_request(
        "load",
        "printf 'LOAD OK - load average: 0.50, 3.50|load1=0.500;1;2;0; load5=3.500;1;2;0;\\n'",
        10,
    );
    let config = request.config.as_mut().unwrap();
    config.output_metric_format = "nagios_perfdata".into();
    config.output_metric_handlers = Some(vec!["influxdb".into()]);
    config.output_metric_tags = vec![tag("region", "{{ .labels.region }}"), tag("team", "ops")];
    config.output_metric_thresholds = vec![
        threshold("load5", &[("region", "eu")], "", "2", 2),
        threshold("load1", &[], "", "2", 1),
        MetricThreshold {
            null_status: 1,
            ..threshold("swap", &[], "0", "", 1)
        },
    ];
    // Hooks are chosen by the status after thresholds: this one runs only for critical.
    config.check_hooks = Some(vec![HookList {
        type_: "critical".into(),
        hooks: Some(vec!["why".into()]),
    }]);
    request.hooks = Some(vec![HookConfig {
        metadata: ObjectMeta::new("default", "why"),
        command: "echo hooked".into(),
        timeout: 10,
        ..Default::default()
    }]);

    let event = run("agent-m1", request).await;
    let check = event.check.as_ref().unwrap();
    // The command exited 0; the load5 threshold made the result critical.
    assert_eq!(check.status, 2, "{check:?}");
    assert_eq!(check.hooks.len(), 1, "{:?}", check.hooks);
    assert_eq!(check.hooks[0].output, "hooked\n");
    assert_eq!(
        check.output,
        "LOAD OK - load average: 0.50, 3.50|load1=0.500;1;2;0; load5=3.500;1;2;0;\n"
    );

    let metrics = event.metrics.as_ref().expect("metrics");
    assert_eq!(metrics.handlers, Some(vec!["influxdb".to_string()]));
    let points = metrics.points.as_deref().unwrap();
    assert_eq!(
        summary(points),
        [
            "load1 0.5 [region=eu,team=ops]",
            "load5 3.5 [region=eu,team=ops]"
        ]
    );
    // Perfdata points are stamped with the execution time.
    assert!(points.iter().all(|p| p.timestamp == check.executed));

    let annotations: Vec<(&str, &str)> = check
        .config
        .metadata
        .annotations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        annotations,
        [
            (
                "sensu.io/notifications/critical",
                "The value of load5 (region=eu) exceeded the configured threshold (max: 2, actual: 3.5).",
            ),
            (
                "sensu.io/output_metric_thresholds/load1/max/ok",
                "The value of load1 is within the configured threshold (max: 2, actual: 0.5).",
            ),
            (
                "sensu.io/output_metric_thresholds/load5.eu/max/critical",
                "The value of load5 (region=eu) exceeded the configured threshold (max: 2, actual: 3.5).",
            ),
            (
                "sensu.io/output_metric_thresholds/swap/null-status/warning",
                "WARNING : no metric matching \"swap\" was found; expected min: 0 (status: warning)",
            ),
        ]
    );
    // The token in the tag value was substituted; the event carries the substituted tags.
    assert_eq!(
        check.config.output_metric_tags,
        [tag("region", "eu"), tag("team", "ops")]
    );
}

#[tokio::test]
async fn prometheus_text_points_within_thresholds_keep_the_event_ok() {
    let command = r#"printf '# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total{queue="mail"} 12 1700000000500\njobs_total{queue="sms"} 3\n# TYPE latency_seconds histogram\nlatency_seconds_bucket{le="0.5"} 4\nlatency_seconds_bucket{le="+Inf"} 5\nlatency_seconds_sum 1.25\nlatency_seconds_count 5\nqueue_depth NaN\nnot a valid line\n'"#;
    let mut request = check_request("jobs", command, 20);
    let config = request.config.as_mut().unwrap();
    config.output_metric_format = "prometheus_text".into();
    config.output_metric_tags = vec![tag("entity", "{{ .name }}")];
    config.output_metric_thresholds =
        vec![threshold("jobs_total", &[("queue", "mail")], "1", "100", 2)];

    let event = run("agent-m2", request).await;
    let check = event.check.as_ref().unwrap();
    assert_eq!(check.status, 0);
    let metrics = event.metrics.as_ref().expect("metrics");
    assert_eq!(metrics.handlers, None);
    let points = metrics.points.as_deref().unwrap();
    // NaN and the malformed line make no points.
    assert_eq!(
        summary(points),
        [
            "jobs_total 12 [queue=mail,prom_type=counter,prom_help=Jobs done.,entity=agent-m2]",
            "jobs_total 3 [queue=sms,prom_type=counter,prom_help=Jobs done.,entity=agent-m2]",
            "latency_seconds_bucket 4 [le=0.5,prom_type=histogram,entity=agent-m2]",
            "latency_seconds_bucket 5 [le=+Inf,prom_type=histogram,entity=agent-m2]",
            "latency_seconds_sum 1.25 [prom_type=histogram,entity=agent-m2]",
            "latency_seconds_count 5 [prom_type=histogram,entity=agent-m2]",
        ]
    );
    // Milliseconds become seconds; a sample without a timestamp gets the extraction time.
    assert_eq!(points[0].timestamp, 1_700_000_000);
    assert!(points[1].timestamp >= check.executed, "{points:?}");

    let annotations = &check.config.metadata.annotations;
    let within = "The value of jobs_total (queue=mail) is within the configured threshold (max: 100, actual: 12).";
    assert_eq!(
        annotations
            .get("sensu.io/output_metric_thresholds/jobs_total.mail/max/ok")
            .map(String::as_str),
        Some(within)
    );
    assert_eq!(
        annotations
            .get("sensu.io/notifications/ok")
            .map(String::as_str),
        Some(within)
    );
    assert!(annotations.contains_key("sensu.io/output_metric_thresholds/jobs_total.mail/min/ok"));
    assert_eq!(annotations.len(), 3, "{annotations:?}");
}

#[tokio::test]
async fn a_failing_command_keeps_its_status_and_gets_no_threshold_annotations() {
    let mut request = check_request("failing", "printf 'CRITICAL | temp=99\\n'; exit 2", 30);
    let config = request.config.as_mut().unwrap();
    config.output_metric_format = "nagios_perfdata".into();
    config.output_metric_thresholds = vec![threshold("temp", &[], "", "50", 1)];

    let event = run("agent-m3", request).await;
    let check = event.check.as_ref().unwrap();
    assert_eq!(check.status, 2);
    assert!(check.config.metadata.annotations.is_empty());
    let points = event.metrics.as_ref().unwrap().points.as_deref().unwrap();
    assert_eq!(summary(points), ["temp 99 []"]);
}
