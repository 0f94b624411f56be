//! One connection type for plain TCP and TLS, so a listener or client that may run either way
//! keeps a single code path above the transport.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A plain or TLS TCP connection; `T` is the TLS side, [`ClientStream`] or [`ServerStream`].
/// Generic rather than one enum of both sides so that a client (the agent) links no server
/// code and the other way round.
#[derive(Debug)]
pub enum Stream<T> {
    Plain(TcpStream),
    /// Boxed: a TLS session's state is ~1 KiB, a TCP stream a few words.
    Tls(Box<T>),
}

/// The client side (`wss://` agents).
pub type ClientStream = Stream<tokio_rustls::client::TlsStream<TcpStream>>;
/// The server side (the backend's ports).
pub type ServerStream = Stream<tokio_rustls::server::TlsStream<TcpStream>>;

impl ServerStream {
    /// The subject CN of the certificate the peer presented and the handshake verified: a
    /// client certificate under mutual TLS. `None` for plain connections and peers without a
    /// certificate.
    pub fn peer_common_name(&self) -> Option<String> {
        let Stream::Tls(tls) = self else {
            return None;
        };
        let leaf = tls.get_ref().1.peer_certificates()?.first()?;
        crate::common_name(leaf)
    }
}

impl From<tokio_rustls::server::TlsStream<TcpStream>> for ServerStream {
    fn from(s: tokio_rustls::server::TlsStream<TcpStream>) -> Self {
        Stream::Tls(Box::new(s))
    }
}

impl From<tokio_rustls::client::TlsStream<TcpStream>> for ClientStream {
    fn from(s: tokio_rustls::client::TlsStream<TcpStream>) -> Self {
        Stream::Tls(Box::new(s))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}
