//! The load generator against an in-process backend (loopback ports, in-memory store): its
//! simulated agents must handshake, register and keep alive like real ones. Behaviour only:
//! no timing assertions.

use std::sync::Arc;
use std::time::Duration;

use backend_app::init;
use backend_app::repo::Repo;
use backend_app::{Backend, BackendConfig};
use backend_store::{EmbeddedStore, Store};
use benches::harness::{self, Api};
use benches::loadgen::{self, Loadgen, LoadgenConfig};
use tokio_util::sync::CancellationToken;

const ADMIN: (&str, &str) = ("admin", "s3cret-admin");

struct TestBackend {
    api: Api,
    agent_url: String,
    shutdown: CancellationToken,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start_backend() -> TestBackend {
    let store: Arc<dyn Store> = EmbeddedStore::in_memory().expect("in-memory store");
    init::initialize(&Repo::new(store.clone()), ADMIN.0, ADMIN.1)
        .await
        .expect("init");
    let backend = Backend::new(BackendConfig::loopback(), store)
        .await
        .expect("bind");
    let api = Api::new(format!("http://{}", backend.api_addr()), ADMIN.0, ADMIN.1);
    let agent_url = format!("ws://{}/", backend.agent_addr());
    let shutdown = CancellationToken::new();
    tokio::spawn(backend.run(shutdown.clone()));
    TestBackend {
        api,
        agent_url,
        shutdown,
    }
}

/// The REST client is blocking; keep it off the runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_agents_register_and_keep_alive() {
    let tb = start_backend().await;
    let load = Loadgen::start(LoadgenConfig {
        backend_urls: vec![tb.agent_url.clone()],
        agents: 50,
        keepalive_interval: Duration::from_secs(1),
        ramp_per_second: 200.0,
        duration: Duration::from_secs(4),
        name_prefix: "lg-".into(),
        ..LoadgenConfig::default()
    })
    .expect("valid config");

    // Checked while the sessions are open: the run closes them at its end.
    let api = tb.api.clone();
    let names = blocking(move || {
        harness::eventually(
            "50 registered entities",
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                let names = api.entity_names("default").ok()?;
                (names.len() >= 50).then_some(names)
            },
        )
    })
    .await
    .expect("all agents registered");
    let mut names = names;
    names.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("lg-{i}")).collect();
    expected.sort();
    assert_eq!(names, expected);

    let api = tb.api.clone();
    let (status, _, body) =
        blocking(move || api.get("/api/core/v2/namespaces/default/entities/lg-7"))
            .await
            .expect("GET entity");
    assert_eq!(status, 200, "{body}");
    let entity: serde_json::Value = serde_json::from_str(&body).expect("JSON entity");
    assert_eq!(entity["entity_class"], "agent");
    assert_eq!(entity["system"]["hostname"], "lg-7");
    assert_eq!(
        entity["subscriptions"],
        serde_json::json!(["linux", "loadgen", "entity:lg-7"])
    );

    let report = load.wait().await;
    assert_eq!(report.agents_started, 50);
    assert_eq!(report.connected, 50, "{report}");
    assert!(report.refused.is_empty(), "{report}");
    assert_eq!(report.connect_errors, 0, "{report}");
    assert_eq!(report.disconnects, 0, "{report}");
    assert_eq!(
        report.active, 0,
        "every session is closed at the end: {report}"
    );
    // One keepalive right away, then more every second for the rest of the run.
    assert!(report.keepalives_sent > 50, "{report}");
    assert!(
        report.frames_received >= 50,
        "each session gets its entity_config: {report}"
    );

    let api = tb.api.clone();
    let keepalives = blocking(move || api.metric("picket_keepalives_total"))
        .await
        .expect("metrics");
    assert!(
        keepalives >= 50.0,
        "backend processed {keepalives} keepalives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_by_status() {
    let tb = start_backend().await;
    let base = LoadgenConfig {
        backend_urls: vec![tb.agent_url.clone()],
        agents: 3,
        ramp_per_second: 0.0,
        duration: Duration::from_secs(2),
        reconnect: false,
        ..LoadgenConfig::default()
    };
    let report = loadgen::run(LoadgenConfig {
        password: "wrong-password".into(),
        ..base.clone()
    })
    .await
    .expect("valid config");
    assert_eq!(report.refused.get(&401), Some(&3), "{report}");
    assert_eq!(report.connected, 0, "{report}");

    let report = loadgen::run(LoadgenConfig {
        namespace: "nowhere".into(),
        ..base
    })
    .await
    .expect("valid config");
    assert_eq!(report.refused.get(&404), Some(&3), "{report}");
    assert_eq!(report.keepalives_sent, 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_backend_is_a_connect_error_and_the_run_still_ends() {
    // A port that was free a moment ago: nothing listens there.
    let port = harness::free_port().expect("free port");
    let report = loadgen::run(LoadgenConfig {
        backend_urls: vec![format!("ws://127.0.0.1:{port}/")],
        agents: 2,
        duration: Duration::from_secs(2),
        ..LoadgenConfig::default()
    })
    .await
    .expect("valid config");
    assert_eq!(report.connected, 0, "{report}");
    assert!(report.connect_errors >= 2, "{report}");
    assert_eq!(report.active, 0, "{report}");
}
