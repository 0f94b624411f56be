//! Opening a WebSocket session to a backend: the handshake request (sensu-compat 5.2) and the
//! classification of failures (an HTTP answer to the upgrade, a timeout, a network error).

use std::time::Duration;

use base64::Engine;
use proto_spec::wire;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::BackendUrl;

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest part of an HTTP error body repeated in logs.
const MAX_BODY_IN_LOG: usize = 200;

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("wss:// needs TLS, which is not implemented yet (arrives with a later release)")]
    TlsNotImplemented,
    #[error("handshake did not complete within {0:?}")]
    Timeout(Duration),
    /// The backend answered the upgrade with an HTTP error (401 bad credentials, 403 not
    /// allowed, 404 unknown namespace, 429 too many agents connecting, 503 warming up, ...).
    #[error("backend refused the connection: HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error("invalid handshake header {header}: {reason}")]
    BadHeader {
        header: &'static str,
        reason: String,
    },
    #[error("{0}")]
    Network(String),
}

impl ConnectError {
    /// HTTP 429: the caller doubles its backoff parameters.
    pub fn is_throttled(&self) -> bool {
        matches!(self, ConnectError::Rejected { status: 429, .. })
    }
}

/// Who the agent is, as announced in the handshake.
#[derive(Debug, Clone)]
pub struct Credentials<'a> {
    pub agent_name: &'a str,
    pub namespace: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    pub subscriptions: &'a [String],
}

/// The upgrade request: URL plus the Sensu handshake headers.
pub fn handshake_request(url: &BackendUrl, who: &Credentials<'_>) -> Result<Request, ConnectError> {
    let mut req = url
        .to_string()
        .into_client_request()
        .map_err(|e| ConnectError::Network(e.to_string()))?;
    let value = |header: &'static str, v: String| {
        HeaderValue::from_str(&v).map_err(|e| ConnectError::BadHeader {
            header,
            reason: e.to_string(),
        })
    };
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", who.user, who.password));
    let headers = req.headers_mut();
    headers.insert(
        wire::HEADER_AGENT_NAME,
        value(wire::HEADER_AGENT_NAME, who.agent_name.to_string())?,
    );
    headers.insert(
        wire::HEADER_NAMESPACE,
        value(wire::HEADER_NAMESPACE, who.namespace.to_string())?,
    );
    headers.insert(
        wire::HEADER_USER,
        value(wire::HEADER_USER, who.user.to_string())?,
    );
    headers.insert(
        wire::HEADER_SUBSCRIPTIONS,
        value(wire::HEADER_SUBSCRIPTIONS, who.subscriptions.join(","))?,
    );
    headers.insert(
        header::AUTHORIZATION,
        value("Authorization", format!("Basic {basic}"))?,
    );
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static(wire::CONTENT_TYPE_JSON),
    );
    headers.insert(
        wire::HEADER_PROTOCOL_VERSION,
        HeaderValue::from(wire::PROTOCOL_VERSION),
    );
    Ok(req)
}

/// The frame limits of `proto_spec::wire` applied to incoming messages.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(wire::MAX_FRAME_BYTES))
        .max_frame_size(Some(wire::MAX_FRAME_BYTES))
}

/// Connect and complete the WebSocket handshake within `timeout`. Returns the stream, the
/// backend's `Backend-ID` when it sent one, and the protocol version it speaks.
pub async fn connect(
    url: &BackendUrl,
    who: &Credentials<'_>,
    timeout: Duration,
) -> Result<(WsStream, Option<String>, u32), ConnectError> {
    if url.secure {
        return Err(ConnectError::TlsNotImplemented);
    }
    let request = handshake_request(url, who)?;
    let attempt =
        tokio_tungstenite::connect_async_with_config(request, Some(websocket_config()), true);
    let (ws, response) = match tokio::time::timeout(timeout, attempt).await {
        Err(_) => return Err(ConnectError::Timeout(timeout)),
        Ok(Err(e)) => return Err(classify(e)),
        Ok(Ok(pair)) => pair,
    };
    let backend_id = response
        .headers()
        .get(wire::HEADER_BACKEND_ID)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let version = wire::peer_version(
        response
            .headers()
            .get(wire::HEADER_PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok()),
    );
    Ok((ws, backend_id, version))
}

fn classify(e: tokio_tungstenite::tungstenite::Error) -> ConnectError {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(resp) => {
            let status = resp.status();
            ConnectError::Rejected {
                status: status.as_u16(),
                message: rejection_message(
                    resp.body().as_deref(),
                    status.canonical_reason().unwrap_or("error"),
                ),
            }
        }
        Error::Io(io) => ConnectError::Network(io.to_string()),
        other => ConnectError::Network(other.to_string()),
    }
}

/// The human part of an HTTP error body: the `message` of a JSON body (`{"message": ...}`, the
/// API's error format), else the text itself, shortened; `fallback` when empty.
pub fn rejection_message(body: Option<&[u8]>, fallback: &str) -> String {
    let text = body
        .map(|b| String::from_utf8_lossy(b).trim().to_string())
        .unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            ["message", "error"]
                .iter()
                .find_map(|k| v.get(k).and_then(|m| m.as_str()).map(String::from))
        })
        .unwrap_or(text);
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if message.is_empty() {
        return fallback.to_string();
    }
    match message.char_indices().nth(MAX_BODY_IN_LOG) {
        Some((cut, _)) => format!("{}...", &message[..cut]),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_messages() {
        assert_eq!(
            rejection_message(
                Some(br#"{"message":"namespace \"x\" not found"}"#),
                "Not Found"
            ),
            "namespace \"x\" not found"
        );
        assert_eq!(
            rejection_message(Some(b"bad credentials\n"), "Unauthorized"),
            "bad credentials"
        );
        assert_eq!(rejection_message(None, "Forbidden"), "Forbidden");
        assert_eq!(rejection_message(Some(b"   "), "Forbidden"), "Forbidden");
        let long = "x".repeat(500);
        assert_eq!(
            rejection_message(Some(long.as_bytes()), "").len(),
            MAX_BODY_IN_LOG + 3
        );
    }

    #[test]
    fn request_headers() {
        let url: BackendUrl = "ws://127.0.0.1:8081".parse().unwrap();
        let subs = vec!["linux".to_string(), "web".to_string()];
        let who = Credentials {
            agent_name: "a1",
            namespace: "default",
            user: "agent",
            password: "P@ssw0rd!",
            subscriptions: &subs,
        };
        let req = handshake_request(&url, &who).unwrap();
        let h = req.headers();
        assert_eq!(h[wire::HEADER_AGENT_NAME], "a1");
        assert_eq!(h[wire::HEADER_SUBSCRIPTIONS], "linux,web");
        assert_eq!(h["authorization"], "Basic YWdlbnQ6UEBzc3cwcmQh");
        assert_eq!(h["accept"], "application/json");
        assert_eq!(
            h[wire::HEADER_PROTOCOL_VERSION],
            wire::PROTOCOL_VERSION.to_string()
        );
        assert_eq!(req.uri().path(), "/");
    }
}
