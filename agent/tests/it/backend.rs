//! A scripted stand-in for a backend: a WebSocket listener on 127.0.0.1:0 whose connections
//! the test drives by hand, one by one.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proto_spec::wire;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderMap, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// Upper bound for any single expected step; generous for a loaded 2-core machine. Tests only
/// wait this long when something is broken.
pub const STEP: Duration = Duration::from_secs(15);

pub struct Backend {
    listener: TcpListener,
}

pub struct Conn {
    pub headers: HeaderMap,
    pub path: String,
    pub ws: WebSocketStream<TcpStream>,
}

impl Backend {
    pub async fn start() -> Backend {
        Backend {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.listener.local_addr().unwrap())
    }

    async fn tcp(&self) -> TcpStream {
        let (stream, _) = timeout(STEP, self.listener.accept())
            .await
            .expect("the agent did not connect in time")
            .unwrap();
        stream
    }

    /// Accept the next connection and complete the WebSocket handshake.
    // The callback's error type is tungstenite's (an HTTP response); not ours to shrink.
    #[allow(clippy::result_large_err)]
    pub async fn accept(&self) -> Conn {
        let stream = self.tcp().await;
        let mut seen = None;
        let ws = tokio_tungstenite::accept_hdr_async(stream, |req: &Request, resp: Response| {
            seen = Some((req.headers().clone(), req.uri().path().to_string()));
            Ok(resp)
        })
        .await
        .unwrap();
        let (headers, path) = seen.unwrap();
        Conn { headers, path, ws }
    }

    /// Accept the next connection as a backend speaking `Picket-Protocol-Version` `version`.
    #[allow(clippy::result_large_err)]
    pub async fn accept_version(&self, version: u32) -> Conn {
        let stream = self.tcp().await;
        let mut seen = None;
        let ws =
            tokio_tungstenite::accept_hdr_async(stream, |req: &Request, mut resp: Response| {
                seen = Some((req.headers().clone(), req.uri().path().to_string()));
                resp.headers_mut()
                    .insert(wire::HEADER_PROTOCOL_VERSION, version.into());
                Ok(resp)
            })
            .await
            .unwrap();
        let (headers, path) = seen.unwrap();
        Conn { headers, path, ws }
    }

    /// Accept the next connection and refuse the upgrade with an HTTP error.
    #[allow(clippy::result_large_err)]
    pub async fn reject(&self, status: u16, body: &str) -> HeaderMap {
        let stream = self.tcp().await;
        let mut seen = None;
        let res = tokio_tungstenite::accept_hdr_async(stream, |req: &Request, _resp: Response| {
            seen = Some(req.headers().clone());
            let mut err = ErrorResponse::new(Some(body.to_string()));
            *err.status_mut() = StatusCode::from_u16(status).unwrap();
            Err(err)
        })
        .await;
        assert!(res.is_err());
        seen.unwrap()
    }
}

impl Conn {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("missing header {name}"))
            .to_str()
            .unwrap()
    }

    pub async fn send(&mut self, msg: wire::Message) {
        self.send_raw(wire::encode(&msg)).await;
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    /// The next transport frame from the agent (pings are answered by tungstenite).
    pub async fn frame(&mut self) -> wire::Message {
        loop {
            let msg = timeout(STEP, self.ws.next())
                .await
                .expect("no frame from the agent in time")
                .expect("the agent closed the stream")
                .expect("websocket error");
            match msg {
                Message::Binary(b) => return wire::decode(&b).expect("the agent sent a bad frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected message from the agent: {other:?}"),
            }
        }
    }

    /// The next keepalive, skipping nothing else: the agent must send keepalives only here.
    pub async fn keepalive(&mut self) -> proto_spec::v2::Event {
        match self.frame().await {
            wire::Message::Keepalive(e) => *e,
            other => panic!("expected a keepalive, got {other:?}"),
        }
    }

    /// Read until the agent's close frame; returns it.
    pub async fn closed_by_agent(&mut self) -> CloseFrame {
        loop {
            let msg = timeout(STEP, self.ws.next())
                .await
                .expect("the agent did not close in time")
                .expect("stream ended without a close frame")
                .expect("websocket error");
            if let Message::Close(frame) = msg {
                // Reading on makes tungstenite send its close reply, completing the handshake
                // (otherwise the agent waits out its close grace period).
                while let Ok(Some(Ok(_))) = timeout(STEP, self.ws.next()).await {}
                return frame.expect("close frame without a code");
            }
        }
    }
}
