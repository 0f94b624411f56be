//! A deliberately small HTTP/1.1 server side: request heads parsed by `httparse` (already in
//! the agent through the WebSocket client), bodies framed by `Content-Length` or `chunked`,
//! responses written whole. Everything is bounded: head size, header count, body size.
//!
//! What it does not do, on purpose: pipelining beyond reading requests one after the other,
//! transfer codings other than `chunked`, trailers (read and ignored), `Upgrade`, HTTP/2.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Request line plus headers, at most (Go's default is 1 MiB; nothing the agent serves needs
/// more than a few hundred bytes).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 64;
/// One chunk-size line or trailer line.
const MAX_LINE: usize = 1024;
/// All trailer lines of a chunked body.
const MAX_TRAILERS: usize = 8 * 1024;

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub framing: Framing,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for an interim response before the body.
    pub expect_continue: bool,
}

/// A request that cannot be served; each maps to the status answered before closing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    BadRequest(String),
    #[error("request head larger than {MAX_HEAD_BYTES} bytes or more than {MAX_HEADERS} headers")]
    HeadTooLarge,
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(u64),
    #[error("transfer encoding {0:?} is not supported (only chunked)")]
    UnsupportedEncoding(String),
    #[error("{0}")]
    Io(String),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) | HttpError::Io(_) => 400,
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge(_) => 413,
            HttpError::UnsupportedEncoding(_) => 501,
        }
    }
}

/// Parse a complete head from the start of `buf`: `Ok(None)` when more bytes are needed,
/// else the head and its length.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= MAX_HEAD_BYTES {
                Err(HttpError::HeadTooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(e) => return Err(HttpError::BadRequest(format!("malformed request: {e}"))),
    };
    if len > MAX_HEAD_BYTES {
        return Err(HttpError::HeadTooLarge);
    }
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    let minor_version = req.version.unwrap_or(1);
    let path = target
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_string();

    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<String> = None;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HttpError::BadRequest(format!("header {} is not UTF-8", h.name)))?
            .trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value
                .parse()
                .map_err(|_| HttpError::BadRequest(format!("invalid Content-Length {value:?}")))?;
            // Repeated headers must agree: differing lengths are how requests get smuggled.
            if content_length.is_some_and(|c| c != n) {
                return Err(HttpError::BadRequest("conflicting Content-Length".into()));
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let joined = match transfer_encoding.take() {
                Some(prev) => format!("{prev}, {value}"),
                None => value.to_string(),
            };
            transfer_encoding = Some(joined);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive_token |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            if value.eq_ignore_ascii_case("100-continue") {
                expect_continue = true;
            } else {
                return Err(HttpError::BadRequest(format!(
                    "unsupported expectation {value:?}"
                )));
            }
        }
    }

    let framing = match (transfer_encoding, content_length) {
        (Some(_), Some(_)) => {
            return Err(HttpError::BadRequest(
                "both Transfer-Encoding and Content-Length are set".into(),
            ));
        }
        (Some(te), None) => {
            if minor_version == 0 {
                return Err(HttpError::BadRequest(
                    "Transfer-Encoding in an HTTP/1.0 request".into(),
                ));
            }
            if !te.eq_ignore_ascii_case("chunked") {
                return Err(HttpError::UnsupportedEncoding(te));
            }
            Framing::Chunked
        }
        (None, Some(0)) | (None, None) => Framing::None,
        (None, Some(n)) => Framing::Length(n),
    };
    let keep_alive = if minor_version == 0 {
        keep_alive_token && !close
    } else {
        !close
    };
    Ok(Some((
        Head {
            method,
            path,
            minor_version,
            framing,
            keep_alive,
            expect_continue,
        },
        len,
    )))
}

/// A connection's read side with its buffer of bytes read but not yet consumed (a client
/// may send the next request right behind the current one).
#[derive(Debug)]
pub struct Reader<S> {
    io: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> Reader<S> {
    pub fn new(io: S) -> Self {
        Reader {
            io,
            buf: Vec::with_capacity(4096),
        }
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// Read more bytes into the buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> Result<usize, HttpError> {
        let mut chunk = [0u8; 8192];
        let n = self
            .io
            .read(&mut chunk)
            .await
            .map_err(|e| HttpError::Io(e.to_string()))?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The next request head; `Ok(None)` when the client closed the connection between
    /// requests.
    pub async fn head(&mut self) -> Result<Option<Head>, HttpError> {
        loop {
            // Tolerate the stray CRLF some clients send after a body (RFC 9112 §2.2).
            while self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
            }
            if !self.buf.is_empty()
                && let Some((head, len)) = parse_head(&self.buf)?
            {
                self.buf.drain(..len);
                return Ok(Some(head));
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(HttpError::BadRequest(
                        "connection closed mid-request".into(),
                    ))
                };
            }
        }
    }

    /// The body as `framing` delimits it, at most `limit` bytes.
    pub async fn body(&mut self, framing: Framing, limit: u64) -> Result<Vec<u8>, HttpError> {
        match framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(n) => {
                if n > limit {
                    return Err(HttpError::BodyTooLarge(limit));
                }
                self.exact(n as usize).await
            }
            Framing::Chunked => self.chunked(limit).await,
        }
    }

    async fn exact(&mut self, n: usize) -> Result<Vec<u8>, HttpError> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(HttpError::BadRequest("body shorter than announced".into()));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn line(&mut self, max: usize) -> Result<Vec<u8>, HttpError> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                if pos > max {
                    break;
                }
                let line = self.buf[..pos].to_vec();
                self.buf.drain(..pos + 2);
                return Ok(line);
            }
            if self.buf.len() > max + 2 {
                break;
            }
            if self.fill().await? == 0 {
                return Err(HttpError::BadRequest("chunked body cut short".into()));
            }
        }
        Err(HttpError::BadRequest("chunked body line too long".into()))
    }

    async fn chunked(&mut self, limit: u64) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        loop {
            let line = self.line(MAX_LINE).await?;
            let text = std::str::from_utf8(&line)
                .map_err(|_| HttpError::BadRequest("bad chunk size".into()))?;
            let size_text = text.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| HttpError::BadRequest(format!("bad chunk size {size_text:?}")))?;
            if size == 0 {
                break;
            }
            if body.len() as u64 + size > limit {
                return Err(HttpError::BodyTooLarge(limit));
            }
            let data = self.exact(size as usize).await?;
            body.extend_from_slice(&data);
            if !self.exact(2).await?.eq(b"\r\n") {
                return Err(HttpError::BadRequest("chunk not followed by CRLF".into()));
            }
        }
        // Trailers, ignored, up to the empty line.
        let mut trailers = 0;
        loop {
            let line = self.line(MAX_LINE).await?;
            if line.is_empty() {
                return Ok(body);
            }
            trailers += line.len();
            if trailers > MAX_TRAILERS {
                return Err(HttpError::BadRequest("too many trailers".into()));
            }
        }
    }
}

/// A response, written whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// `Allow` for 405 answers.
    pub allow: Option<&'static str>,
}

pub const TEXT: &str = "text/plain; charset=utf-8";
pub const JSON: &str = "application/json";
/// The Prometheus text exposition format.
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type,
            body: body.into(),
            allow: None,
        }
    }

    pub fn empty(status: u16) -> Self {
        Response::new(status, TEXT, Vec::new())
    }

    /// `{"message": ...}`, the shape of every error body.
    pub fn message(status: u16, message: &str) -> Self {
        let body = serde_json::json!({ "message": message }).to_string();
        Response::new(status, JSON, body)
    }

    /// Status line, headers and body as bytes.
    pub fn encode(&self, keep_alive: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Length: {}\r\n",
            self.status,
            reason(self.status),
            self.body.len()
        );
        if !self.body.is_empty() {
            out.push_str(&format!("Content-Type: {}\r\n", self.content_type));
        }
        if let Some(allow) = self.allow {
            out.push_str(&format!("Allow: {allow}\r\n"));
        }
        if !keep_alive {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// The interim response a client announcing `Expect: 100-continue` waits for.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Option<(Head, usize)>, HttpError> {
        parse_head(raw.as_bytes())
    }

    #[test]
    fn heads() {
        let raw = "POST /events?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        let (h, len) = head(raw).unwrap().unwrap();
        assert_eq!(h.method, "POST");
        assert_eq!(h.path, "/events");
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive && !h.expect_continue);
        assert_eq!(len, raw.len() - 5);

        let (h, _) = head("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let (h, _) = head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let (h, _) = head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let (h, _) =
            head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.expect_continue);

        assert_eq!(head("GET / HTTP/1.1\r\nHost: a\r\n").unwrap(), None);
    }

    #[test]
    fn bad_heads() {
        let status = |raw: &str| head(raw).unwrap_err().status();
        assert_eq!(status("GARBAGE\r\n\r\n"), 400);
        assert_eq!(
            status("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
        assert_eq!(
            status("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            501
        );
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        assert_eq!(status(&format!("GET / HTTP/1.1\r\n{many}\r\n")), 431);
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(status(&long), 431);
    }

    #[tokio::test]
    async fn bodies() {
        let raw: &[u8] =
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\n\r\n";
        let mut r = Reader::new(raw);
        let h = r.head().await.unwrap().unwrap();
        assert_eq!(r.body(h.framing, 10).await.unwrap(), b"abc");
        let h = r.head().await.unwrap().unwrap();
        assert_eq!(h.path, "/next");
        assert_eq!(r.head().await.unwrap(), None);

        let raw: &[u8] =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n";
        let mut r = Reader::new(raw);
        let h = r.head().await.unwrap().unwrap();
        assert_eq!(r.body(h.framing, 10).await.unwrap(), b"abcde");
        let mut r = Reader::new(raw);
        let h = r.head().await.unwrap().unwrap();
        assert_eq!(
            r.body(h.framing, 4).await.unwrap_err(),
            HttpError::BodyTooLarge(4)
        );

        let raw: &[u8] = b"POST / HTTP/1.1\r\nContent-Length: 30\r\n\r\nshort";
        let mut r = Reader::new(raw);
        let h = r.head().await.unwrap().unwrap();
        assert_eq!(r.body(h.framing, 10).await.unwrap_err().status(), 413);
        let mut r = Reader::new(raw);
        let h = r.head().await.unwrap().unwrap();
        assert_eq!(r.body(h.framing, 100).await.unwrap_err().status(), 400);
    }

    #[test]
    fn responses() {
        let r = Response::message(503, "full");
        let text = String::from_utf8(r.encode(false)).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 18\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"message\":\"full\"}"
        );
        let text = String::from_utf8(Response::empty(202).encode(true)).unwrap();
        assert_eq!(text, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
    }
}
