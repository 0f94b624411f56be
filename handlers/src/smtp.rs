//! A small SMTP client (RFC 5321) for one message per run: greeting, EHLO, STARTTLS
//! (RFC 3207), AUTH PLAIN or LOGIN, MAIL/RCPT/DATA, QUIT; and the message itself (RFC 5322,
//! UTF-8 text in base64, RFC 2047 subjects).
//!
//! Written here rather than taken from a mail crate because a handler needs only this path,
//! and it keeps the binary on the same rustls as the HTTP handlers.
//!
//! Safety rules: replies are read with bounded line lengths and counts; data the server sends
//! before the TLS handshake is refused (STARTTLS command injection); credentials are only
//! sent over TLS unless explicitly allowed; header values cannot carry line breaks.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;

use crate::{Error, Result};

const MAX_LINE: usize = 4096;
const MAX_REPLY_LINES: usize = 128;

/// When to upgrade the connection with STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    /// Refuse to send if the server does not offer it (the default).
    Required,
    /// Use it when offered.
    Opportunistic,
    Never,
}

impl StartTls {
    pub fn parse(s: &str) -> Result<StartTls> {
        match s {
            "required" => Ok(StartTls::Required),
            "opportunistic" => Ok(StartTls::Opportunistic),
            "never" => Ok(StartTls::Never),
            other => Err(Error::Config(format!(
                "starttls {other:?} is not one of required, opportunistic, never"
            ))),
        }
    }
}

#[derive(Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub starttls: StartTls,
    pub tls: Arc<ClientConfig>,
    /// Connect, and each read or write.
    pub timeout: Duration,
    /// The name given in EHLO.
    pub helo_name: String,
    pub credentials: Option<(String, String)>,
    /// Send credentials over a connection without TLS (never by default).
    pub allow_plaintext_auth: bool,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    /// `text/html` rather than `text/plain`.
    pub html: bool,
}

/// What a delivery did, for the handler's output.
#[derive(Debug)]
pub struct Delivered {
    pub tls: bool,
    /// The server's answer to the end of DATA (often a queue id).
    pub reply: String,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(data).and_then(|()| s.flush()),
            Stream::Tls(s) => s.write_all(data).and_then(|()| s.flush()),
        }
    }
}

struct Session {
    stream: Option<Stream>,
    /// Bytes read past the last reply line.
    buf: Vec<u8>,
}

struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
    }
}

/// Deliver `message` through `server`.
pub fn send(server: &Server, message: &Message) -> Result<Delivered> {
    for addr in std::iter::once(&message.from).chain(&message.to) {
        check_address(addr)?;
    }
    if message.to.is_empty() {
        return Err(Error::Config("no recipient (--to)".into()));
    }
    let tcp = connect(server)?;
    let mut session = Session {
        stream: Some(Stream::Plain(tcp)),
        buf: Vec::new(),
    };
    session.expect("greeting", None, 2)?;
    let mut extensions = session.ehlo(&server.helo_name)?;
    let mut tls = false;
    let offered = extensions.iter().any(|e| e == "STARTTLS");
    match (server.starttls, offered) {
        (StartTls::Never, _) | (StartTls::Opportunistic, false) => {}
        (StartTls::Required, false) => {
            return Err(Error::Smtp(format!(
                "{}:{} does not offer STARTTLS (use --starttls opportunistic or never to send without TLS)",
                server.host, server.port
            )));
        }
        (_, true) => {
            session.expect("STARTTLS", Some("STARTTLS"), 2)?;
            session.start_tls(server)?;
            tls = true;
            extensions = session.ehlo(&server.helo_name)?;
        }
    }
    if let Some((user, password)) = &server.credentials {
        if !tls && !server.allow_plaintext_auth {
            return Err(Error::Smtp(
                "refusing to send credentials without TLS (--allow-plaintext-auth overrides)"
                    .into(),
            ));
        }
        session.auth(&extensions, user, password)?;
    }
    session.expect("MAIL", Some(&format!("MAIL FROM:<{}>", message.from)), 2)?;
    for to in &message.to {
        session.expect("RCPT", Some(&format!("RCPT TO:<{to}>")), 2)?;
    }
    session.expect("DATA", Some("DATA"), 3)?;
    let data = dot_stuff(&render(message, crate::datetime::now()));
    session.write(&data)?;
    let reply = session.expect("end of DATA", None, 2)?;
    // The message is accepted; a failing QUIT changes nothing.
    let _ = session.expect("QUIT", Some("QUIT"), 2);
    Ok(Delivered {
        tls,
        reply: reply.text(),
    })
}

fn connect(server: &Server) -> Result<TcpStream> {
    let addrs = (server.host.as_str(), server.port)
        .to_socket_addrs()
        .map_err(|e| Error::Smtp(format!("resolving {}: {e}", server.host)))?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, server.timeout) {
            Ok(s) => {
                s.set_read_timeout(Some(server.timeout))
                    .map_err(Error::SmtpIo)?;
                s.set_write_timeout(Some(server.timeout))
                    .map_err(Error::SmtpIo)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(Error::Smtp(format!(
        "connecting to {}:{}: {}",
        server.host,
        server.port,
        last.map_or_else(|| "no address".to_string(), |e| e.to_string())
    )))
}

impl Session {
    fn stream(&mut self) -> Result<&mut Stream> {
        self.stream
            .as_mut()
            .ok_or_else(|| Error::Smtp("connection lost".into()))
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.stream()?.write_all(data).map_err(Error::SmtpIo)
    }

    fn read_line(&mut self) -> Result<String> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                return Ok(line.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.buf.len() > MAX_LINE {
                return Err(Error::Smtp("reply line too long".into()));
            }
            let mut chunk = [0u8; 2048];
            let n = self
                .stream()?
                .read(&mut chunk)
                .map_err(|e| match e.kind() {
                    // A read timeout surfaces as WouldBlock on Unix: say what it means.
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                        Error::Smtp("no answer from the server within the timeout".into())
                    }
                    _ => Error::SmtpIo(e),
                })?;
            if n == 0 {
                return Err(Error::Smtp("the server closed the connection".into()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn read_reply(&mut self) -> Result<Reply> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line()?;
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| Error::Smtp(format!("malformed reply {line:?}")))?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or_default().to_string());
            if !more {
                return Ok(Reply { code, lines });
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(Error::Smtp("reply has too many lines".into()));
            }
        }
    }

    /// Send `command` (if any), read the reply and insist on its class (2xx, 3xx).
    fn expect(&mut self, what: &str, command: Option<&str>, class: u16) -> Result<Reply> {
        if let Some(c) = command {
            self.write(format!("{c}\r\n").as_bytes())?;
        }
        let reply = self.read_reply()?;
        if reply.code / 100 != class {
            return Err(Error::Smtp(format!("{what} refused: {}", reply.text())));
        }
        Ok(reply)
    }

    /// EHLO; the extension keywords, upper-cased, with their parameters (`AUTH PLAIN LOGIN`).
    fn ehlo(&mut self, name: &str) -> Result<Vec<String>> {
        let reply = self.expect("EHLO", Some(&format!("EHLO {name}")), 2)?;
        Ok(reply
            .lines
            .iter()
            .skip(1)
            .map(|l| l.trim().to_ascii_uppercase())
            .collect())
    }

    fn start_tls(&mut self, server: &Server) -> Result<()> {
        if !self.buf.is_empty() {
            return Err(Error::Smtp(
                "the server sent data before the TLS handshake".into(),
            ));
        }
        let Some(Stream::Plain(mut tcp)) = self.stream.take() else {
            return Err(Error::Smtp("STARTTLS on a TLS connection".into()));
        };
        let name = ServerName::try_from(server.host.clone())
            .map_err(|e| Error::Tls(format!("{}: {e}", server.host)))?;
        let mut conn = ClientConnection::new(server.tls.clone(), name)
            .map_err(|e| Error::Tls(e.to_string()))?;
        // Finish the handshake here so a bad certificate is reported as such.
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .map_err(|e| Error::Tls(format!("handshake with {}: {e}", server.host)))?;
        }
        self.stream = Some(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))));
        Ok(())
    }

    fn auth(&mut self, extensions: &[String], user: &str, password: &str) -> Result<()> {
        let mechanisms: Vec<&str> = extensions
            .iter()
            .filter_map(|e| e.strip_prefix("AUTH").filter(|r| r.starts_with([' ', '='])))
            .flat_map(|r| r[1..].split_whitespace())
            .collect();
        if mechanisms.contains(&"PLAIN") {
            let token = B64.encode(format!("\0{user}\0{password}"));
            // The command carries the secret: errors name the mechanism only.
            self.expect("AUTH PLAIN", Some(&format!("AUTH PLAIN {token}")), 2)?;
        } else if mechanisms.contains(&"LOGIN") {
            self.expect("AUTH LOGIN", Some("AUTH LOGIN"), 3)?;
            self.expect("AUTH LOGIN user", Some(&B64.encode(user)), 3)?;
            self.expect("AUTH LOGIN password", Some(&B64.encode(password)), 2)?;
        } else {
            return Err(Error::Smtp(format!(
                "the server offers no AUTH mechanism this client speaks (PLAIN, LOGIN): {mechanisms:?}"
            )));
        }
        Ok(())
    }
}

/// A bare address, without display name or line breaks.
fn check_address(addr: &str) -> Result<()> {
    let ok = addr.contains('@')
        && !addr.starts_with('@')
        && !addr.ends_with('@')
        && !addr.contains(|c: char| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!("{addr:?} is not an e-mail address")))
    }
}

/// The message as sent in DATA (before dot-stuffing), lines ending in CRLF.
pub fn render(message: &Message, now: i64) -> String {
    let domain = message.from.rsplit('@').next().unwrap_or("localhost");
    let mut out = String::new();
    let mut header = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    };
    header("Date", &crate::datetime::rfc5322(now));
    header("From", &message.from);
    header("To", &message.to.join(", "));
    header("Subject", &encode_subject(&message.subject));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    header(
        "Message-ID",
        &format!("<{now}.{nanos}.{}@{domain}>", std::process::id()),
    );
    header("MIME-Version", "1.0");
    let kind = if message.html { "html" } else { "plain" };
    header("Content-Type", &format!("text/{kind}; charset=utf-8"));
    header("Content-Transfer-Encoding", "base64");
    out.push_str("\r\n");
    let body = B64.encode(message.body.as_bytes());
    for chunk in body.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// A subject on one header line: line breaks become spaces; anything but printable ASCII is
/// sent as RFC 2047 encoded words (each at most 75 characters, folded).
fn encode_subject(subject: &str) -> String {
    let flat: String = subject
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    if flat.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) && flat.len() <= 900 {
        return flat;
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in flat.chars() {
        // 45 bytes of UTF-8 encode to 60 base64 characters: 72 with the word's framing.
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", B64.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", B64.encode(&chunk)));
    }
    words.join("\r\n ")
}

/// DATA transparency (RFC 5321 4.5.2) and the terminating `.` line.
fn dot_stuff(data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    for line in data.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_seven_bit_with_safe_headers() {
        let m = Message {
            from: "picket@example.com".into(),
            to: vec!["a@example.com".into(), "b@example.com".into()],
            subject: "Alert\r\nBcc: evil@example.com — disk".into(),
            body: ".leading dot\nünïcode".into(),
            html: false,
        };
        let text = render(&m, 1_700_000_000);
        assert!(text.is_ascii());
        assert!(text.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
        assert!(text.contains("To: a@example.com, b@example.com\r\n"));
        assert!(!text.contains("\nBcc:"), "{text}");
        let subject = text.lines().find(|l| l.starts_with("Subject: ")).unwrap();
        assert!(subject.starts_with("Subject: =?UTF-8?B?"), "{subject}");
        let body = text.split("\r\n\r\n").nth(1).unwrap().replace("\r\n", "");
        assert_eq!(B64.decode(body).unwrap(), m.body.as_bytes());
    }

    #[test]
    fn dot_stuffing_and_addresses() {
        assert_eq!(dot_stuff("a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuff("a"), b"a\r\n.\r\n");
        assert!(check_address("ops@example.com").is_ok());
        for bad in [
            "ops",
            "a b@example.com",
            "x@y>\r\nRCPT TO:<z@w",
            "@example.com",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }
}
