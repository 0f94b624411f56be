//! `picketctl`: Picket's operator command line, sensuctl's commands and habits over the REST
//! API only (sensu-compat 7).
//!
//! Layout:
//! - `cli`: the clap definitions (every command and flag, completions generated from them);
//! - `commands`: what each command does;
//! - `config`: the `cluster` and `profile` files (mode 0600);
//! - `client`: the blocking HTTP client, token refresh, pagination;
//! - `resources`: resource types, their REST paths and table columns;
//! - `files`: reading `create -f`/`delete -f` inputs (files, directories, stdin);
//! - `output`: tabular, JSON, wrapped JSON and YAML output.

pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod files;
pub mod output;
pub mod resources;

/// Every way a command fails; `main` prints it on one line and exits with [`Error::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused: its own message.
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("cannot reach {url}: {message}")]
    Transport { url: String, message: String },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// An output write failed; a closed pipe (`| head`) is not reported.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    #[error("{0}")]
    Input(String),
    #[error("unexpected answer: {0}")]
    Protocol(String),
    #[error("not implemented: {0}")]
    NotImplemented(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }

    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}
