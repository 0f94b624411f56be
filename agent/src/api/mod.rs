//! The agent's local HTTP API (sensu-compat 5.3) on `--api-host:--api-port`
//! (127.0.0.1:3031); `--disable-api` turns it off.
//!
//! | route | answer |
//! |---|---|
//! | `POST /events` | body = an Event (JSON, ≤ 1 MiB); Sensu's defaults applied ([`events::prepare`]), validated, written durably to the outbox, then **202** (empty). 400 `{"message"}` for bad JSON or an invalid event, 413 when too large, **503** `{"message"}` when the outbox is full, 500 when it cannot be written. |
//! | `GET /healthz` | 200 `ok` while a backend session is up, else 503 `sensu backend unavailable` |
//! | `GET /version` | `{"version": "<agent version>"}` |
//! | `GET /metrics` | the agent's counters, Prometheus text format ([`metrics`]) |
//!
//! Other paths answer 404 and other methods 405 (with `Allow`), both `{"message"}`.
//!
//! Posted events are forwarded at the events rate limit (`--events-rate-limit` per second,
//! `--events-burst-limit`; a token bucket, [`rate::TokenBucket`]): as in Sensu it paces the
//! draining to the backend, not acceptance. The outbox keeps one order for all events, so
//! while API events wait for tokens the events queued behind them wait too.
//!
//! # Server
//!
//! A small hand-written HTTP/1.1 server ([`http`]) on tokio rather than hyper: the agent
//! serves four fixed routes to local clients, and the binary stays small (the WebSocket
//! client already brings `httparse`). Limits: 15 s to read a request (head and body) and to
//! write a response, as Sensu's read/write timeouts; heads ≤ 16 KiB and 64 headers; bodies
//! ≤ 1 MiB (`Content-Length` or `chunked`); [`MAX_CONNECTIONS`] connections at once (further
//! ones wait in the listen backlog); keep-alive up to [`MAX_REQUESTS_PER_CONNECTION`]
//! requests; HTTP/1.0 and 1.1 only.
//!
//! The listener is bound by `Agent::new` (so tests can bind port 0 and read the address), and
//! a bind failure is logged when the agent starts, which then runs without its API, as with
//! StatsD.

pub mod events;
pub mod http;
pub mod metrics;
pub mod rate;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use proto_spec::v2::Event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::{ListenerConfig, VERSION};
use crate::outbox::{Outbox, PushError, Source};
pub use events::EventDefaults;
use http::{Framing, HttpError, Response};
pub use metrics::{Sources, Stats};
pub use rate::TokenBucket;

/// Time to read one request, head and body (Sensu: 15 s read timeout); also the idle time
/// allowed between requests on a kept-alive connection.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Time to write one response (Sensu: 15 s write timeout).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest `POST /events` body.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
pub const MAX_REQUESTS_PER_CONNECTION: usize = 1000;
/// How long a stopping agent lets requests in progress finish.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// A listening socket bound at construction, or why there is none.
#[derive(Debug)]
pub(crate) enum Binding<T> {
    Disabled,
    Failed { addr: String, error: String },
    Bound(T),
}

/// The HTTP API: bound (or disabled, or failed) by `Agent::new`, served by `spawn`.
#[derive(Debug)]
pub struct Server {
    binding: Binding<std::net::TcpListener>,
}

/// What the handlers need from the agent.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub defaults: EventDefaults,
    pub outbox: Outbox,
    pub sources: Sources,
}

impl Server {
    /// Bind the configured address unless the API is disabled. Never fails: an error is kept
    /// and logged when the agent starts.
    pub fn bind(config: &ListenerConfig) -> Server {
        let binding = if config.disabled {
            Binding::Disabled
        } else {
            match bind_tcp(&config.host, config.port) {
                Ok(l) => Binding::Bound(l),
                Err(e) => Binding::Failed {
                    addr: format!("{}:{}", config.host, config.port),
                    error: e.to_string(),
                },
            }
        };
        Server { binding }
    }

    /// The bound address (the real port when the configured one is 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.binding {
            Binding::Bound(l) => l.local_addr().ok(),
            _ => None,
        }
    }

    /// Serve until `stop`; `None` when there is no listener. Within a tokio runtime.
    pub(crate) fn spawn(self, ctx: Context, stop: CancellationToken) -> Option<JoinHandle<()>> {
        let listener = match self.binding {
            Binding::Disabled => {
                info!("Agent API disabled");
                return None;
            }
            Binding::Failed { addr, error } => {
                error!(address = %addr, error = %error, "Cannot bind the agent API; running without it");
                return None;
            }
            Binding::Bound(l) => l,
        };
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                error!(error = %e, "Cannot register the agent API socket; running without it");
                return None;
            }
        };
        if let Ok(addr) = listener.local_addr() {
            info!(address = %addr, "Agent API started");
        }
        Some(tokio::spawn(serve(listener, Arc::new(ctx), stop)))
    }
}

/// Resolve `host:port` to its first address.
pub(crate) fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{host} resolves to no address"),
        )
    })
}

pub(crate) fn bind_tcp(host: &str, port: u16) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(resolve(host, port)?)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Accept a connection once a connection slot is free.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(TcpStream, OwnedSemaphorePermit)> {
    // The semaphore is never closed.
    let permit = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)?;
    let (stream, _) = listener.accept().await?;
    Ok((stream, permit))
}

/// Accept connections until `stop`, each served by a task of its own, at most `max` at once
/// (a connection holds its slot until it ends); on stop, give them [`STOP_GRACE`] to finish.
/// `what` names the listener in logs.
pub(crate) async fn serve_bounded<F, Fut>(
    listener: TcpListener,
    max: usize,
    what: &'static str,
    stop: CancellationToken,
    serve_one: F,
) where
    F: Fn(TcpStream, OwnedSemaphorePermit) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = accept(&listener, &slots) => match accepted {
                Ok((stream, permit)) => {
                    conns.spawn(serve_one(stream, permit));
                }
                Err(e) => {
                    // E.g. out of file descriptors: pause rather than spin.
                    warn!(error = %e, listener = what, "Cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = timeout(STOP_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.shutdown().await;
}

/// Serve the HTTP API until `stop`.
pub(crate) async fn serve(listener: TcpListener, ctx: Arc<Context>, stop: CancellationToken) {
    serve_bounded(
        listener,
        MAX_CONNECTIONS,
        "agent API",
        stop,
        move |stream, slot| serve_conn(stream, ctx.clone(), slot),
    )
    .await;
}

async fn serve_conn(stream: TcpStream, ctx: Arc<Context>, _slot: OwnedSemaphorePermit) {
    let _ = stream.set_nodelay(true);
    let mut reader = http::Reader::new(stream);
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let deadline = Instant::now() + READ_TIMEOUT;
        let head = match timeout_at(deadline, reader.head()).await {
            // Idle or too slow: close, as Go's server does.
            Err(_) | Ok(Ok(None)) => return,
            Ok(Err(HttpError::Io(_))) => return,
            Ok(Err(e)) => {
                if respond(reader.get_mut(), &error_response(&e), false).await {
                    linger(reader.get_mut()).await;
                }
                return;
            }
            Ok(Ok(Some(h))) => h,
        };
        let (response, keep_alive) = match route(&head.method, &head.path) {
            Route::PostEvents => {
                if let Framing::Length(n) = head.framing
                    && n > MAX_BODY_BYTES
                {
                    Stats::inc(&ctx.sources.stats.api_invalid);
                    let e = HttpError::BodyTooLarge(MAX_BODY_BYTES);
                    (error_response(&e), false)
                } else {
                    if head.expect_continue && !write(reader.get_mut(), http::CONTINUE).await {
                        return;
                    }
                    match timeout_at(deadline, reader.body(head.framing, MAX_BODY_BYTES)).await {
                        Err(_) => (
                            Response::message(408, "the request was not received in time"),
                            false,
                        ),
                        Ok(Err(HttpError::Io(_))) => return,
                        Ok(Err(e)) => {
                            Stats::inc(&ctx.sources.stats.api_invalid);
                            (error_response(&e), false)
                        }
                        Ok(Ok(body)) => (post_events(&ctx, &body).await, head.keep_alive),
                    }
                }
            }
            other => {
                // A body no route reads would be taken for the next request: close instead.
                let keep_alive = head.keep_alive && head.framing == Framing::None;
                (answer(other, &ctx), keep_alive)
            }
        };
        if !respond(reader.get_mut(), &response, keep_alive).await {
            return;
        }
        if !keep_alive {
            linger(reader.get_mut()).await;
            return;
        }
    }
}

/// Close gently: stop writing, then read and discard what the client still sends (a body
/// that was refused unread) for a moment. Closing with unread input makes the kernel reset
/// the connection, and the client may lose the answer it has not read yet.
async fn linger(stream: &mut TcpStream) {
    const LINGER_TIME: Duration = Duration::from_secs(1);
    const LINGER_BYTES: usize = 4 * 1024 * 1024;
    let _ = stream.shutdown().await;
    let _ = timeout(LINGER_TIME, async {
        let mut sink = [0u8; 8192];
        let mut total = 0;
        while total < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    PostEvents,
    Healthz,
    Version,
    Metrics,
    NotFound,
    /// The path exists; this is its one method.
    WrongMethod(&'static str),
}

fn route(method: &str, path: &str) -> Route {
    let (route, allowed) = match path {
        "/events" => (Route::PostEvents, "POST"),
        "/healthz" => (Route::Healthz, "GET"),
        "/version" => (Route::Version, "GET"),
        "/metrics" => (Route::Metrics, "GET"),
        _ => return Route::NotFound,
    };
    if method == allowed {
        route
    } else {
        Route::WrongMethod(allowed)
    }
}

/// The routes without a request body.
fn answer(route: Route, ctx: &Context) -> Response {
    match route {
        Route::Healthz => {
            if ctx.sources.stats.is_connected() {
                Response::new(200, http::TEXT, "ok")
            } else {
                Response::new(503, http::TEXT, "sensu backend unavailable")
            }
        }
        Route::Version => Response::new(
            200,
            http::JSON,
            serde_json::json!({ "version": VERSION }).to_string(),
        ),
        Route::Metrics => Response::new(200, http::PROMETHEUS, metrics::render(&ctx.sources)),
        Route::WrongMethod(allowed) => Response {
            allow: Some(allowed),
            ..Response::message(405, "method not allowed")
        },
        Route::NotFound | Route::PostEvents => Response::message(404, "not found"),
    }
}

async fn post_events(ctx: &Context, body: &[u8]) -> Response {
    let stats = &ctx.sources.stats;
    // serde would also read an Event from an array of its fields: only objects are events.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        Stats::inc(&stats.api_invalid);
        return Response::message(400, "the body must be an Event as a JSON object");
    }
    let event: Event = match serde_json::from_slice(body) {
        Ok(e) => e,
        Err(e) => {
            Stats::inc(&stats.api_invalid);
            return Response::message(400, &format!("invalid event JSON: {e}"));
        }
    };
    let event = match events::prepare(event, &ctx.defaults, crate::check::unix_now()) {
        Ok(e) => e,
        Err(message) => {
            Stats::inc(&stats.api_invalid);
            return Response::message(400, &message);
        }
    };
    let check = event.check_name().to_string();
    match ctx.outbox.push_durable(event, Source::Api).await {
        Ok(()) => {
            Stats::inc(&stats.api_accepted);
            debug!(check, "Queued an event from the agent API");
            Response::empty(202)
        }
        Err(e @ PushError::Full { .. }) => {
            Stats::inc(&stats.api_full);
            warn!(check, error = %e, "Refused an event from the agent API");
            Response::message(503, &e.to_string())
        }
        Err(e @ PushError::TooLarge { .. }) => {
            Stats::inc(&stats.api_invalid);
            Response::message(413, &e.to_string())
        }
        Err(e @ PushError::Io(_)) => {
            Stats::inc(&stats.api_errors);
            error!(check, error = %e, "Cannot queue an event from the agent API");
            Response::message(500, &e.to_string())
        }
    }
}

fn error_response(e: &HttpError) -> Response {
    Response::message(e.status(), &e.to_string())
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> bool {
    matches!(
        timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

async fn respond(stream: &mut TcpStream, response: &Response, keep_alive: bool) -> bool {
    write(stream, &response.encode(keep_alive)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("POST", "/events"), Route::PostEvents);
        assert_eq!(route("GET", "/events"), Route::WrongMethod("POST"));
        assert_eq!(route("GET", "/healthz"), Route::Healthz);
        assert_eq!(route("POST", "/healthz"), Route::WrongMethod("GET"));
        assert_eq!(route("HEAD", "/metrics"), Route::WrongMethod("GET"));
        assert_eq!(route("GET", "/version"), Route::Version);
        assert_eq!(route("GET", "/brew"), Route::NotFound);
        assert_eq!(route("GET", "/events/x"), Route::NotFound);
    }
}
