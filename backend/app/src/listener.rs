//! The backend's listeners (API and agent ports): plain TCP, or TLS from `--cert-file` and
//! `--key-file`, served by axum through one [`Listener`].
//!
//! With TLS, handshakes run in their own tasks (bounded in number and time), so a slow or
//! silent client never holds up the accept loop. A client that speaks plain HTTP to a TLS
//! port (`ws://` or `http://` by mistake) gets a 400 with a JSON message saying so, rather than
//! a connection reset it would have to guess about.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

/// A TLS handshake (or the first byte of a plain request) must arrive within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; further connections wait in the kernel's backlog, so a
/// flood of slow clients cannot exhaust memory.
const MAX_PENDING_HANDSHAKES: usize = 1024;

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What a request handler knows about the connection it came on (axum `ConnectInfo`).
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    /// The subject CN of the client certificate the TLS handshake verified (agent port with
    /// `--agent-auth-trusted-ca-file`); `None` without TLS or without a certificate.
    pub client_cn: Option<String>,
    /// The connection speaks TLS: the web UI marks its cookies `Secure` then.
    pub tls: bool,
}

impl Connected<IncomingStream<'_, Listener>> for PeerInfo {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A bound port, plain or TLS.
pub struct Listener {
    local: SocketAddr,
    inner: Inner,
}

enum Inner {
    Plain {
        tcp: TcpListener,
        nodelay: bool,
    },
    Tls {
        ready: mpsc::Receiver<(tls::ServerStream, PeerInfo)>,
        acceptor: JoinHandle<()>,
    },
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Inner::Tls { acceptor, .. } = &self.inner {
            acceptor.abort();
        }
    }
}

impl Listener {
    /// Serve `tcp` as is, or behind TLS with `config`. `nodelay` sets TCP_NODELAY on every
    /// connection (the agent port: check requests are small frames that must leave at once).
    pub fn new(
        tcp: TcpListener,
        config: Option<Arc<tls::ServerConfig>>,
        nodelay: bool,
    ) -> std::io::Result<Listener> {
        let local = tcp.local_addr()?;
        let inner = match config {
            None => Inner::Plain { tcp, nodelay },
            Some(config) => {
                let (tx, ready) = mpsc::channel(64);
                let acceptor =
                    tokio::spawn(accept_tls(tcp, tls::TlsAcceptor::from(config), tx, nodelay));
                Inner::Tls { ready, acceptor }
            }
        };
        Ok(Listener { local, inner })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls { .. })
    }
}

impl axum::serve::Listener for Listener {
    type Io = tls::ServerStream;
    type Addr = PeerInfo;

    async fn accept(&mut self) -> (tls::ServerStream, PeerInfo) {
        match &mut self.inner {
            Inner::Plain { tcp, nodelay } => {
                let (stream, addr) = accept_tcp(tcp, *nodelay).await;
                let peer = PeerInfo {
                    addr,
                    client_cn: None,
                    tls: false,
                };
                (tls::Stream::Plain(stream), peer)
            }
            Inner::Tls { ready, .. } => match ready.recv().await {
                Some(conn) => conn,
                // The acceptor only ends when the listener is dropped.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> std::io::Result<PeerInfo> {
        Ok(PeerInfo {
            addr: self.local,
            client_cn: None,
            tls: self.is_tls(),
        })
    }
}

/// Accept, retrying on errors (a full file table clears up as connections close).
async fn accept_tcp(tcp: &TcpListener, nodelay: bool) -> (TcpStream, SocketAddr) {
    loop {
        match tcp.accept().await {
            Ok((stream, addr)) => {
                if nodelay && let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "Cannot set TCP_NODELAY");
                }
                return (stream, addr);
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot accept a connection; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn accept_tls(
    tcp: TcpListener,
    acceptor: tls::TlsAcceptor,
    ready: mpsc::Sender<(tls::ServerStream, PeerInfo)>,
    nodelay: bool,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let Ok(permit) = pending.clone().acquire_owned().await else {
            return;
        };
        let (stream, addr) = accept_tcp(&tcp, nodelay).await;
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(stream, &acceptor)).await {
                Ok(Ok(conn)) => {
                    let peer = PeerInfo {
                        addr,
                        client_cn: conn.peer_common_name(),
                        tls: true,
                    };
                    let _ = ready.send((conn, peer)).await;
                }
                Ok(Err(reason)) => {
                    tracing::debug!(peer = %addr, reason = %reason, "TLS connection refused");
                }
                Err(_) => {
                    tracing::debug!(peer = %addr, "TLS handshake timed out");
                }
            }
        });
    }
}

async fn handshake(
    stream: TcpStream,
    acceptor: &tls::TlsAcceptor,
) -> Result<tls::ServerStream, String> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await.map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("closed before sending anything".into());
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        refuse_plaintext(stream).await;
        return Err("plain HTTP on a TLS port".into());
    }
    let tls = acceptor.accept(stream).await.map_err(|e| e.to_string())?;
    Ok(tls.into())
}

/// Answer a plain-HTTP request on a TLS port with Sensu's error body, then close.
async fn refuse_plaintext(mut stream: TcpStream) {
    // Read the request head first: closing a socket with unread data resets the connection,
    // and the client would lose the answer.
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let body = serde_json::json!({
        "message": "this port requires TLS: connect with wss:// or https://",
        "code": 1,
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
