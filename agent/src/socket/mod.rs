//! The socket API (sensu-compat 5.4): Sensu 1.x check results over TCP and UDP on
//! `--socket-host:--socket-port` (127.0.0.1:3030, both protocols on the same port);
//! `--disable-sockets` turns it off.
//!
//! A result is JSON with `name` and `output` (required), `status`, `source` (or the older
//! `client`: the entity it is about, which becomes the check's `proxy_entity_name` when it
//! is not the agent), `command`, `subscribers`, `interval`, `issued`, `executed`, `duration`
//! and `handlers` (or the older single `handler`); other fields are ignored. It becomes an
//! event with the same defaults as the HTTP API's `POST /events` ([`result::to_event`]) and
//! goes to the outbox.
//!
//! * **TCP**: one result per connection. The agent reads until the bytes form a complete JSON
//!   value, at most [`MAX_TCP_PAYLOAD`] bytes within [`TCP_DEADLINE`] (5 s from the
//!   connection, so a slow client cannot hold a slot), then answers `ok` once the event is
//!   written durably to the outbox, or `invalid` (bad JSON, invalid result, deadline passed,
//!   payload too large, outbox full), and closes. A non-JSON payload that is `ping` (or holds
//!   ` ping ` between whitespace) is answered `pong`. At most [`MAX_TCP_CLIENTS`] connections
//!   are served at once; further ones wait in the listen backlog.
//! * **UDP**: one datagram (≤ [`MAX_DATAGRAM`] bytes) is one result; nothing is answered. A
//!   bad datagram is counted, logged at debug level and skipped; the loop goes on (Sensu 6
//!   ends its UDP loop on the first bad datagram, a bug). UDP results are written to the
//!   outbox without waiting for the device (there is no acknowledgement to back), and are
//!   refused (counted) when it is full.
//!
//! An `ok` is only sent for a result that is queued: when the outbox is full TCP answers
//! `invalid` (the only other answer Sensu 1.x clients know) and the warning log says why.

pub mod result;

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::api::events::EventDefaults;
use crate::api::metrics::Stats;
use crate::api::{Binding, bind_tcp, serve_bounded};
use crate::config::ListenerConfig;
use crate::outbox::{Outbox, PushError, Source};
use result::Payload;

/// Time a TCP client has to send its whole result.
pub const TCP_DEADLINE: Duration = Duration::from_secs(5);
/// Largest TCP payload.
pub const MAX_TCP_PAYLOAD: usize = 1024 * 1024;
/// TCP connections served at once.
pub const MAX_TCP_CLIENTS: usize = 64;
/// Largest UDP result (an Ethernet MTU, as Sensu).
pub const MAX_DATAGRAM: usize = 1500;
/// Attempts to find a port free for both TCP and UDP when the configured port is 0.
const PORT_ATTEMPTS: usize = 16;

/// The socket API: bound (or disabled, or failed) by `Agent::new`, served by `spawn`.
#[derive(Debug)]
pub struct Server {
    binding: Binding<(std::net::TcpListener, StdUdpSocket)>,
}

/// What the listeners need from the agent.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub defaults: EventDefaults,
    pub outbox: Outbox,
    pub stats: Arc<Stats>,
}

impl Server {
    /// Bind TCP and UDP on the configured address unless sockets are disabled. Never fails:
    /// an error is kept and logged when the agent starts.
    pub fn bind(config: &ListenerConfig) -> Server {
        let binding = if config.disabled {
            Binding::Disabled
        } else {
            match bind_both(&config.host, config.port) {
                Ok(pair) => Binding::Bound(pair),
                Err(e) => Binding::Failed {
                    addr: format!("{}:{}", config.host, config.port),
                    error: e.to_string(),
                },
            }
        };
        Server { binding }
    }

    /// The TCP listener's address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match &self.binding {
            Binding::Bound((tcp, _)) => tcp.local_addr().ok(),
            _ => None,
        }
    }

    /// The UDP socket's address (the same port as TCP).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        match &self.binding {
            Binding::Bound((_, udp)) => udp.local_addr().ok(),
            _ => None,
        }
    }

    /// Serve both protocols until `stop`; `None` when there are no sockets.
    pub(crate) fn spawn(self, ctx: Context, stop: CancellationToken) -> Option<JoinHandle<()>> {
        let (tcp, udp) = match self.binding {
            Binding::Disabled => {
                info!("Agent sockets disabled");
                return None;
            }
            Binding::Failed { addr, error } => {
                error!(address = %addr, error = %error, "Cannot bind the agent sockets; running without them");
                return None;
            }
            Binding::Bound(pair) => pair,
        };
        let (tcp, udp) = match (TcpListener::from_std(tcp), UdpSocket::from_std(udp)) {
            (Ok(t), Ok(u)) => (t, u),
            (Err(e), _) | (_, Err(e)) => {
                error!(error = %e, "Cannot register the agent sockets; running without them");
                return None;
            }
        };
        if let Ok(addr) = tcp.local_addr() {
            info!(address = %addr, "Agent sockets (TCP and UDP) started");
        }
        let ctx = Arc::new(ctx);
        Some(tokio::spawn(async move {
            let udp_task = tokio::spawn(serve_udp(udp, ctx.clone(), stop.clone()));
            serve_tcp(tcp, ctx, stop).await;
            let _ = udp_task.await;
        }))
    }
}

/// TCP and UDP on one port. With port 0 the kernel picks the TCP port, which may be taken
/// for UDP: then try another.
fn bind_both(host: &str, port: u16) -> std::io::Result<(std::net::TcpListener, StdUdpSocket)> {
    let mut last_error = None;
    for _ in 0..PORT_ATTEMPTS {
        let tcp = bind_tcp(host, port)?;
        let addr = tcp.local_addr()?;
        match StdUdpSocket::bind(addr) {
            Ok(udp) => {
                udp.set_nonblocking(true)?;
                return Ok((tcp, udp));
            }
            Err(e) if port == 0 && e.kind() == std::io::ErrorKind::AddrInUse => {
                last_error = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no port free for TCP and UDP")))
}

async fn serve_tcp(listener: TcpListener, ctx: Arc<Context>, stop: CancellationToken) {
    serve_bounded(
        listener,
        MAX_TCP_CLIENTS,
        "agent TCP socket",
        stop,
        move |stream, slot| serve_tcp_client(stream, ctx.clone(), slot),
    )
    .await;
}

/// How a TCP client's payload ended.
enum Received {
    Result(serde_json::Value),
    Ping,
    Invalid,
}

async fn serve_tcp_client(mut stream: TcpStream, ctx: Arc<Context>, _slot: OwnedSemaphorePermit) {
    let deadline = Instant::now() + TCP_DEADLINE;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let received = loop {
        let n = match timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => {
                debug!("Socket client sent no complete result in time");
                break Received::Invalid;
            }
            Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        if n == 0 && buf.iter().all(u8::is_ascii_whitespace) {
            // Connected and left without a word (a port probe): nothing to answer.
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_TCP_PAYLOAD {
            debug!(limit = MAX_TCP_PAYLOAD, "Socket client payload too large");
            break Received::Invalid;
        }
        match result::classify(&buf) {
            Payload::Complete(v) => break Received::Result(v),
            Payload::Ping => break Received::Ping,
            // At end of stream nothing more can complete it.
            Payload::Incomplete if n == 0 => break Received::Invalid,
            Payload::Incomplete => {}
            Payload::Invalid(e) => {
                debug!(error = %e, "Socket client sent invalid JSON");
                break Received::Invalid;
            }
        }
    };
    let reply: &[u8] = match received {
        Received::Result(v) => accept_result(&ctx, v).await,
        Received::Ping => b"pong",
        Received::Invalid => {
            Stats::inc(&ctx.stats.tcp_invalid);
            b"invalid"
        }
    };
    let _ = timeout(TCP_DEADLINE, async {
        stream.write_all(reply).await?;
        stream.shutdown().await
    })
    .await;
}

/// Queue a TCP result durably; the answer for the client.
async fn accept_result(ctx: &Context, value: serde_json::Value) -> &'static [u8] {
    let event = match result::to_event(value, &ctx.defaults, crate::check::unix_now()) {
        Ok(e) => e,
        Err(e) => {
            Stats::inc(&ctx.stats.tcp_invalid);
            debug!(error = %e, "Socket client sent an invalid check result");
            return b"invalid";
        }
    };
    match ctx.outbox.push_durable(event, Source::Socket).await {
        Ok(()) => {
            Stats::inc(&ctx.stats.tcp_accepted);
            b"ok"
        }
        Err(e) => {
            let counter = if matches!(e, PushError::Full { .. }) {
                &ctx.stats.tcp_full
            } else {
                &ctx.stats.tcp_invalid
            };
            Stats::inc(counter);
            warn!(error = %e, "Refused a check result from the TCP socket");
            b"invalid"
        }
    }
}

async fn serve_udp(socket: UdpSocket, ctx: Arc<Context>, stop: CancellationToken) {
    // Larger than the limit, so an oversized datagram is seen as such rather than cut.
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _)) => n,
                Err(e) => {
                    // E.g. ECONNREFUSED from an earlier ICMP error: not fatal for a
                    // listener, as a bad datagram is not.
                    debug!(error = %e, "Agent UDP socket receive error");
                    continue;
                }
            },
        };
        match udp_result(&ctx, &buf[..n]) {
            Ok(()) => Stats::inc(&ctx.stats.udp_accepted),
            Err(UdpError::Invalid(e)) => {
                Stats::inc(&ctx.stats.udp_invalid);
                debug!(error = %e, "Ignored an invalid UDP check result");
            }
            Err(UdpError::Refused(e)) => {
                if matches!(e, PushError::Full { .. }) {
                    Stats::inc(&ctx.stats.udp_full);
                } else {
                    Stats::inc(&ctx.stats.udp_invalid);
                }
                warn!(error = %e, "Dropped a UDP check result");
            }
        }
    }
}

enum UdpError {
    Invalid(String),
    Refused(PushError),
}

fn udp_result(ctx: &Context, datagram: &[u8]) -> Result<(), UdpError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(UdpError::Invalid(format!(
            "datagram of {} bytes exceeds {MAX_DATAGRAM}",
            datagram.len()
        )));
    }
    let value: serde_json::Value =
        serde_json::from_slice(datagram).map_err(|e| UdpError::Invalid(e.to_string()))?;
    let event = result::to_event(value, &ctx.defaults, crate::check::unix_now())
        .map_err(UdpError::Invalid)?;
    ctx.outbox
        .try_push(event, Source::Socket)
        .map_err(UdpError::Refused)
}
