//! The socket API (Sensu 1.x check results) over TCP and UDP, through the running agent to
//! the scripted backend.

use std::net::SocketAddr;
use std::time::Duration;

use agent::Agent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout};

use crate::backend::{Backend, STEP};
use crate::support::{api_config, cache_dir, metric, next_event, open_session, spawn, stop};

/// Send `parts` (pausing between them) and read the answer until the agent closes.
async fn tcp(addr: SocketAddr, parts: &[&[u8]], pause: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        stream.write_all(part).await.unwrap();
    }
    let mut answer = String::new();
    timeout(STEP, stream.read_to_string(&mut answer))
        .await
        .expect("no answer in time")
        .unwrap();
    answer
}

#[tokio::test]
async fn tcp_results_pings_and_refusals() {
    let backend = Backend::start().await;
    let cache = cache_dir();
    let agent = Agent::new(api_config(&backend.url(), "sock-tcp", &cache, &[])).unwrap();
    let addr = agent.socket_addr().expect("the TCP socket is bound");
    let api = agent.api_addr().unwrap();
    let (token, handle) = spawn(agent);
    let mut conn = backend.accept().await;
    open_session(&mut conn, "sock-tcp").await;

    // An unfinished result runs into the 5 s deadline; meanwhile the rest goes on.
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let answer = tcp(addr, &[br#"{"name": "slow", "output""#], Duration::ZERO).await;
        (answer, started.elapsed())
    });

    let answer = tcp(
        addr,
        &[br#"{"name": "backup", "output": "done", "status": 1, "source": "nas-1", "handler": "mail"}"#],
        Duration::ZERO,
    )
    .await;
    assert_eq!(answer, "ok");
    let e = next_event(&mut conn).await;
    assert_eq!(e.entity.as_ref().unwrap().metadata.name, "sock-tcp");
    let check = e.check.as_ref().unwrap();
    assert_eq!(check.config.metadata.name, "backup");
    assert_eq!((check.status, check.output.as_str()), (1, "done"));
    assert_eq!(check.config.proxy_entity_name, "nas-1");
    assert_eq!(check.config.handlers, ["mail"]);
    assert_eq!(check.config.interval, 1);
    assert_eq!(check.processed_by, "sock-tcp");
    assert!(e.id.is_some());

    // A result arriving in pieces is read to its end.
    let answer = tcp(
        addr,
        &[br#"{"name": "split", "#, br#""output": "two parts"}"#],
        Duration::from_millis(200),
    )
    .await;
    assert_eq!(answer, "ok");
    assert_eq!(next_event(&mut conn).await.check_name(), "split");

    assert_eq!(tcp(addr, &[b"ping"], Duration::ZERO).await, "pong");
    assert_eq!(tcp(addr, &[b" ping \n"], Duration::ZERO).await, "pong");
    assert_eq!(tcp(addr, &[b"not json"], Duration::ZERO).await, "invalid");
    assert_eq!(
        tcp(addr, &[br#"{"output": "no name"}"#], Duration::ZERO).await,
        "invalid"
    );

    let (answer, took) = timeout(STEP, slow).await.unwrap().unwrap();
    assert_eq!(answer, "invalid");
    assert!(took >= Duration::from_millis(4500), "{took:?}");

    assert_eq!(
        metric(
            api,
            r#"picket_agent_socket_events_total{protocol="tcp",result="accepted"}"#
        )
        .await,
        2
    );
    assert_eq!(
        metric(
            api,
            r#"picket_agent_socket_events_total{protocol="tcp",result="invalid"}"#
        )
        .await,
        3
    );
    stop(token, handle).await;
}

#[tokio::test]
async fn udp_results_and_bad_datagrams() {
    let backend = Backend::start().await;
    let cache = cache_dir();
    let agent = Agent::new(api_config(&backend.url(), "sock-udp", &cache, &[])).unwrap();
    let addr = agent.socket_udp_addr().expect("the UDP socket is bound");
    assert_eq!(
        Some(addr),
        agent.socket_addr(),
        "TCP and UDP share the port"
    );
    let api = agent.api_addr().unwrap();
    let (token, handle) = spawn(agent);
    let mut conn = backend.accept().await;
    open_session(&mut conn, "sock-udp").await;

    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Bad ones first: each is skipped and the next good one still arrives.
    client.send_to(b"{not json", addr).await.unwrap();
    client
        .send_to(
            br#"{"name": "udp-1", "output": "first", "client": "sw-2"}"#,
            addr,
        )
        .await
        .unwrap();
    let e = next_event(&mut conn).await;
    assert_eq!(e.check_name(), "udp-1");
    assert_eq!(e.check.as_ref().unwrap().config.proxy_entity_name, "sw-2");

    let oversized = format!(r#"{{"name": "udp-big", "output": "{}"}}"#, "x".repeat(1600));
    client.send_to(oversized.as_bytes(), addr).await.unwrap();
    client
        .send_to(br#"{"name": "udp no spaces", "output": "x"}"#, addr)
        .await
        .unwrap();
    client
        .send_to(
            br#"{"name": "udp-2", "output": "second", "status": 2}"#,
            addr,
        )
        .await
        .unwrap();
    let e = next_event(&mut conn).await;
    assert_eq!(e.check_name(), "udp-2");
    assert_eq!(e.check.unwrap().status, 2);

    assert_eq!(
        metric(
            api,
            r#"picket_agent_socket_events_total{protocol="udp",result="accepted"}"#
        )
        .await,
        2
    );
    assert_eq!(
        metric(
            api,
            r#"picket_agent_socket_events_total{protocol="udp",result="invalid"}"#
        )
        .await,
        3
    );
    stop(token, handle).await;
}
