//! Opening a WebSocket session to a backend: TCP, TLS for `wss://` URLs, the handshake
//! request (sensu-compat 5.2) and the classification of failures (an HTTP answer to the
//! upgrade, a TLS failure, a timeout, a network error).
//!
//! TLS trust comes from `--trusted-ca-file` (else the system's CA certificates) or is skipped
//! with `--insecure-skip-tls-verify`; `--cert-file/--key-file` present a client certificate,
//! and then, as Sensu's agent does, no password is sent: the certificate is the credential.

use std::time::Duration;

use base64::Engine;
use proto_spec::wire;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::{BackendUrl, TlsConfig};

pub type WsStream = WebSocketStream<tls::ClientStream>;

/// Longest part of an HTTP error body repeated in logs.
const MAX_BODY_IN_LOG: usize = 200;

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TLS handshake failed: an untrusted or mismatched server certificate, a client
    /// certificate the backend refused, or a plain (non-TLS) server.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
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
    /// `None` when a client certificate authenticates the agent (no Authorization header).
    pub password: Option<&'a str>,
    pub subscriptions: &'a [String],
}

/// The TLS side of connecting: built once at start-up, so unreadable certificate files stop
/// the agent at once instead of failing every connection attempt.
#[derive(Clone)]
pub struct Connector {
    tls: Option<tls::TlsConnector>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Connector {
    /// TLS is set up only when some backend URL is `wss://`.
    pub fn new(urls: &[BackendUrl], config: &TlsConfig) -> Result<Connector, tls::TlsError> {
        if !urls.iter().any(|u| u.secure) {
            return Ok(Connector { tls: None });
        }
        let client_cert = match (&config.cert_file, &config.key_file) {
            (Some(cert_file), Some(key_file)) => Some(tls::CertKeyFiles {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
            }),
            _ => None,
        };
        let client = tls::client_config(&tls::ClientOptions {
            trusted_ca_file: config.trusted_ca_file.clone(),
            insecure_skip_verify: config.insecure_skip_tls_verify,
            client_cert,
        })?;
        Ok(Connector {
            tls: Some(tls::TlsConnector::from(client)),
        })
    }
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
    if let Some(password) = who.password {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", who.user, password));
        headers.insert(
            header::AUTHORIZATION,
            value("Authorization", format!("Basic {basic}"))?,
        );
    }
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
    connector: &Connector,
    timeout: Duration,
) -> Result<(WsStream, Option<String>, u32), ConnectError> {
    let request = handshake_request(url, who)?;
    let attempt = async {
        let stream = open_stream(url, connector).await?;
        tokio_tungstenite::client_async_with_config(request, stream, Some(websocket_config()))
            .await
            .map_err(classify)
    };
    let (ws, response) = match tokio::time::timeout(timeout, attempt).await {
        Err(_) => return Err(ConnectError::Timeout(timeout)),
        Ok(result) => result?,
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

/// TCP to the backend, then TLS for `wss://`.
async fn open_stream(
    url: &BackendUrl,
    connector: &Connector,
) -> Result<tls::ClientStream, ConnectError> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| ConnectError::Network(format!("cannot connect to {url}: {e}")))?;
    // Frames are small and latency matters more than packet count (keepalives, results).
    let _ = tcp.set_nodelay(true);
    if !url.secure {
        return Ok(tls::Stream::Plain(tcp));
    }
    let Some(tls) = &connector.tls else {
        return Err(ConnectError::Tls("no TLS configuration for wss://".into()));
    };
    let name = tls::ServerName::try_from(url.host.clone()).map_err(|e| {
        ConnectError::Tls(format!("{:?} is not a valid server name: {e}", url.host))
    })?;
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| ConnectError::Tls(e.to_string()))?;
    Ok(stream.into())
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
            password: Some("P@ssw0rd!"),
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

        // A client certificate is the credential: no password goes out.
        let wss: BackendUrl = "wss://backend.example:8081".parse().unwrap();
        let cert_only = Credentials {
            password: None,
            ..who
        };
        let req = handshake_request(&wss, &cert_only).unwrap();
        assert!(req.headers().get("authorization").is_none());
        assert_eq!(req.uri().scheme_str(), Some("wss"));
    }
}
