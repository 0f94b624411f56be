//! One WebSocket session with a backend, from the handshake's success to its end.
//!
//! A single task owns both halves of the socket and multiplexes, in one `select!` loop: frames
//! from the backend, keepalives, heartbeats (pings and the read deadline), queued events, the
//! session-length limit and shutdown. One task means no locks around the socket and a strict
//! order of writes.
//!
//! Queued events are taken from the outbox's front and removed only once written to the
//! socket ([`Outbox::delivered`]); a session that breaks mid-send leaves the event at the
//! front for the next one. HTTP API events wait for a token of the events rate limit first;
//! the loop keeps serving keepalives and heartbeats meanwhile.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proto_spec::v2::{EntityConfig, System};
use proto_spec::wire::{self, Message as Frame};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::api::TokenBucket;
use crate::check::CheckRunner;
use crate::config::Config;
use crate::entity::{self, ConfigUpdate};
use crate::outbox::{Outbox, Source};
use crate::transport::WsStream;

/// How long a new session waits for the backend's first `entity_config` before sending its
/// first keepalive with the local configuration (Sensu: 10 s).
pub const ENTITY_CONFIG_WAIT: Duration = Duration::from_secs(10);

/// Time allowed for the close handshake (our close frame out, the backend's answer in), so a
/// shutdown completes within a second or two even when the backend is unresponsive.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Close reason of a shutdown (code 1001), as Sensu's agent says it.
pub const BYE: &str = "bye";

/// State shared by the agent's successive sessions.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Arc<Config>,
    /// The current entity configuration (local, then adopted from the backend). A std Mutex:
    /// never held across an `.await`. Shared with the check runner, which reads the entity
    /// when a check starts.
    pub entity: Arc<Mutex<EntityConfig>>,
    pub facts: watch::Receiver<System>,
    pub outbox: Outbox,
    pub checks: CheckRunner,
    /// `--events-rate-limit`/`--events-burst-limit`, for HTTP API events; kept across
    /// sessions so that reconnecting does not refill it. A std Mutex: never held across an
    /// `.await`.
    pub events_limit: Mutex<TokenBucket>,
}

impl Shared {
    /// Take a token of the events rate limit, or say when to try again.
    fn event_token(&self, now: Instant) -> Result<(), Instant> {
        self.events_limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_take(now)
            .map_err(|wait| now + wait)
    }

    pub fn entity_config(&self) -> EntityConfig {
        self.entity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionEnd {
    /// The shutdown token was cancelled; we sent close 1001.
    Shutdown,
    /// The backend sent a close frame.
    ClosedByBackend { code: u16, reason: String },
    /// The connection broke or went silent.
    Lost(String),
    /// The backend sent something we cannot accept; we closed with `code`.
    ProtocolError { code: u16, error: String },
    /// `--max-session-length` elapsed.
    MaxLength,
}

impl std::fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionEnd::Shutdown => f.write_str("agent shutting down"),
            SessionEnd::ClosedByBackend { code, reason } => {
                write!(
                    f,
                    "backend closed the session (code {code}, reason {reason:?})"
                )
            }
            SessionEnd::Lost(why) => write!(f, "connection lost: {why}"),
            SessionEnd::ProtocolError { code, error } => {
                write!(f, "protocol error, closed with code {code}: {error}")
            }
            SessionEnd::MaxLength => f.write_str("maximum session length reached"),
        }
    }
}

/// How long an event may wait for its `event_ack` before the session is given up (and the
/// event sent again on the next one).
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Run one session until it ends. `deadline` is the end imposed by `--max-session-length`.
/// With `acks` (the backend speaks protocol version 2) an event leaves the outbox only when
/// the backend acknowledges it as stored, one event at a time; without, once written.
pub(crate) async fn run(
    ws: WsStream,
    shared: &Shared,
    shutdown: &CancellationToken,
    deadline: Option<Instant>,
    acks: bool,
) -> SessionEnd {
    let cfg = &shared.config;
    let hb_interval = cfg.transport.heartbeat_interval;
    let hb_timeout = cfg.transport.heartbeat_timeout;
    let keepalive_every = Duration::from_secs(cfg.keepalive.interval.max(1).into());
    let (mut sink, mut stream) = ws.split();

    let start = Instant::now();
    let mut sequence: i64 = 0;
    let mut configured = false;
    // The first keepalive goes out when the first entity_config arrives, or at this deadline.
    let mut keepalive_at = start + ENTITY_CONFIG_WAIT;
    let mut read_deadline = start + hb_timeout;
    // Set while the event at the front waits for a rate-limit token.
    let mut throttled: Option<Instant> = None;
    // The event sent and not yet acknowledged: (outbox seq, event id, give-up time).
    let mut awaiting: Option<(u64, Option<uuid::Uuid>, Instant)> = None;
    let mut ping = tokio::time::interval_at(start + hb_interval, hb_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    shared.checks.new_connection();

    let end = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break SessionEnd::Shutdown,
            incoming = stream.next() => {
                let msg = match incoming {
                    None => break SessionEnd::Lost("connection closed without a close frame".into()),
                    Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(e))) => {
                        break SessionEnd::ProtocolError { code: wire::CLOSE_MESSAGE_TOO_BIG, error: e.to_string() };
                    }
                    Some(Err(e)) => break SessionEnd::Lost(e.to_string()),
                    Some(Ok(m)) => m,
                };
                // Any data proves the backend alive, not only pongs.
                read_deadline = Instant::now() + hb_timeout;
                match msg {
                    Message::Binary(bytes) => match wire::decode(&bytes) {
                        Ok(Frame::EntityConfig(ec)) => {
                            handle_entity_config(shared, *ec);
                            if !configured {
                                // The first keepalive goes out right away, written here rather
                                // than through the timer so that nothing queued can overtake it.
                                configured = true;
                                sequence += 1;
                                if let Err(e) = send_keepalive(&mut sink, shared, sequence, hb_timeout).await {
                                    break SessionEnd::Lost(e);
                                }
                                keepalive_at = Instant::now() + keepalive_every;
                            }
                        }
                        Ok(Frame::EventAck(ack)) => {
                            if let Some((seq, id, _)) = awaiting
                                && id == Some(ack.id)
                            {
                                shared.outbox.delivered(seq);
                                awaiting = None;
                            }
                        }
                        Ok(Frame::CheckRequest(req)) => {
                            if configured {
                                // Decides at once and runs the check in a task of its own:
                                // this loop (keepalives, heartbeats) never waits for a check.
                                shared.checks.handle(*req);
                            } else {
                                // As Sensu: requests are no-ops until the entity config came
                                // (or the wait for it ended).
                                let check = req.config.as_ref().map(|c| c.metadata.name.as_str()).unwrap_or_default();
                                info!(check, issued = req.issued, "Ignoring a check request received before the entity configuration");
                            }
                        }
                        Ok(other) => {
                            break SessionEnd::ProtocolError {
                                code: wire::CLOSE_PROTOCOL_ERROR,
                                error: format!("unexpected {} message from the backend", other.type_name()),
                            };
                        }
                        Err(e) => break SessionEnd::ProtocolError { code: e.close_code(), error: e.to_string() },
                    },
                    Message::Text(_) => {
                        break SessionEnd::ProtocolError {
                            code: wire::CLOSE_UNSUPPORTED_DATA,
                            error: "text frame received; the transport uses binary frames".into(),
                        };
                    }
                    Message::Close(frame) => {
                        let (code, reason) = frame
                            .map(|f| (u16::from(f.code), f.reason.to_string()))
                            .unwrap_or((1005, String::new()));
                        // tungstenite queued the close reply; give it a moment to go out.
                        let _ = tokio::time::timeout(CLOSE_GRACE, sink.flush()).await;
                        return SessionEnd::ClosedByBackend { code, reason };
                    }
                    // tungstenite answers pings by itself on the next read or write.
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                }
            }
            _ = sleep_until(read_deadline) => {
                break SessionEnd::Lost(format!("no pong or data from the backend for {hb_timeout:?}"));
            }
            _ = ping.tick() => {
                if let Err(e) = send(&mut sink, Message::Ping(Default::default()), hb_timeout).await {
                    break SessionEnd::Lost(e);
                }
            }
            _ = sleep_until(keepalive_at) => {
                if !configured {
                    info!("No entity_config from the backend within {ENTITY_CONFIG_WAIT:?}; using the local entity configuration");
                    configured = true;
                }
                sequence += 1;
                if let Err(e) = send_keepalive(&mut sink, shared, sequence, hb_timeout).await {
                    break SessionEnd::Lost(e);
                }
                keepalive_at = Instant::now() + keepalive_every;
            }
            pending = shared.outbox.front(), if configured && throttled.is_none() && awaiting.is_none() => {
                if pending.source == Source::Api
                    && let Err(retry_at) = shared.event_token(Instant::now())
                {
                    throttled = Some(retry_at);
                    continue;
                }
                // Still queued if this fails: the next session sends it.
                if let Err(e) = send(&mut sink, Message::Binary(pending.frame().into()), hb_timeout).await {
                    break SessionEnd::Lost(e);
                }
                let id = pending.event().ok().and_then(|e| e.id);
                if acks && id.is_some() {
                    awaiting = Some((pending.seq, id, Instant::now() + ACK_TIMEOUT));
                } else {
                    shared.outbox.delivered(pending.seq);
                }
            }
            _ = sleep_until(awaiting.map_or(start, |(_, _, at)| at)), if awaiting.is_some() => {
                // Still queued: the next session sends it again (the backend drops the copy
                // if the first one was stored after all).
                break SessionEnd::Lost(format!("no acknowledgement of an event within {ACK_TIMEOUT:?}"));
            }
            _ = sleep_until(throttled.unwrap_or(start)), if throttled.is_some() => throttled = None,
            _ = sleep_until(deadline.unwrap_or(start)), if deadline.is_some() => break SessionEnd::MaxLength,
        }
    };

    let close = match &end {
        SessionEnd::Shutdown => Some((CloseCode::Away, BYE.to_string())),
        SessionEnd::MaxLength => Some((CloseCode::Normal, "maximum session length reached".into())),
        SessionEnd::ProtocolError { code, error } => {
            warn!(code, error = %error, "Closing the session after a protocol error");
            Some((CloseCode::from(*code), close_reason(error)))
        }
        // A dead connection cannot carry a close frame usefully; drop it.
        SessionEnd::Lost(_) | SessionEnd::ClosedByBackend { .. } => None,
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        // Send our close frame, then read until the backend's answer (or the end of the
        // stream) so the close handshake completes; bounded by CLOSE_GRACE in total.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            if sink.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(m)) = stream.next().await {
                    if m.is_close() {
                        break;
                    }
                }
            }
        })
        .await;
    }
    end
}

fn handle_entity_config(shared: &Shared, incoming: EntityConfig) {
    let mut current = shared.entity.lock().unwrap_or_else(|e| e.into_inner());
    let subscriptions = incoming.subscriptions.clone().unwrap_or_default();
    match entity::apply_entity_config(&mut current, incoming, shared.config.agent_managed_entity) {
        ConfigUpdate::KeptLocal => {
            info!("The backend has no stored entity configuration; using the local one");
        }
        ConfigUpdate::IgnoredAgentManaged => {
            info!("Ignoring the backend's entity configuration: the entity is agent-managed");
        }
        ConfigUpdate::Adopted => {
            info!(subscriptions = ?subscriptions, "Adopted the entity configuration from the backend");
        }
    }
}

async fn send_keepalive<S>(
    sink: &mut S,
    shared: &Shared,
    sequence: i64,
    limit: Duration,
) -> Result<(), String>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let now = unix_now();
    let system = shared.facts.borrow().clone();
    let entity = entity::build_entity(&shared.entity_config(), system, now);
    let event = entity::keepalive_event(&shared.config, entity, now, sequence);
    let frame = wire::encode(&Frame::Keepalive(Box::new(event)));
    send(sink, Message::Binary(frame.into()), limit).await?;
    debug!(sequence, "Sent keepalive");
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Close reasons are limited to 123 bytes by the WebSocket protocol.
fn close_reason(text: &str) -> String {
    let mut end = text.len().min(123);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Write one message; a write that stalls longer than `limit` (the backend stopped reading)
/// counts as a dead connection.
async fn send<S>(sink: &mut S, msg: Message, limit: Duration) -> Result<(), String>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    match tokio::time::timeout(limit, sink.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("write stalled for {limit:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let r = close_reason(&long);
        assert!(r.len() <= 123 && long.starts_with(&r));
    }
}
