//! `handlers`: Picket's first-party event handlers, as small binaries that read one Sensu
//! event (JSON) on stdin, so they run under Picket's `pipe` handlers and Sensu Go's alike.
//!
//! Layout:
//! - `event`: reading the event from stdin (bounded) and the few fields every handler needs;
//! - `template`: Go-style templates (`{{ .Entity.Name }}/{{ .Check.Name }}`) rendered with
//!   `proto_spec::tokens` against a view of the event with both JSON and Go field names;
//! - `http`: the blocking HTTP client (ureq, rustls on ring) with timeouts and a private CA;
//! - `influx`, `slack`, `pagerduty`: pure payload builders (line protocol, JSON bodies);
//! - `smtp`: a small SMTP client (EHLO, STARTTLS, AUTH PLAIN/LOGIN, one message) and the
//!   message builder;
//! - `tls`: the rustls client configuration shared by SMTP.
//!
//! The binaries in `src/bin/` only parse flags, call these and map errors to exit codes
//! (`cli`): 0 handled, 1 the destination or the event was bad, 2 bad usage (clap).

pub mod cli;
pub mod datetime;
pub mod event;
pub mod http;
pub mod influx;
pub mod pagerduty;
pub mod slack;
pub mod smtp;
pub mod template;
pub mod tls;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the event from stdin: {0}")]
    Stdin(#[source] std::io::Error),
    #[error("the event on stdin is larger than {0} bytes")]
    EventTooLarge(usize),
    #[error("the event on stdin is not JSON: {0}")]
    EventJson(#[source] serde_json::Error),
    #[error("the event has no {0}")]
    MissingField(&'static str),
    #[error("{0}")]
    Template(#[from] proto_spec::tokens::TokenError),
    #[error("{0}")]
    Config(String),
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("SMTP: {0}")]
    Smtp(String),
    #[error("SMTP: {0}")]
    SmtpIo(#[source] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
