//! Handlers (sensu-compat 3.4).
//!
//! * `pipe`: `sh -c command`, stdin = the mutated data, env = process env + `env_vars`;
//!   `timeout: 0` = no limit, otherwise the process group is killed at the timeout. The exit
//!   status and output are only logged: neither is an error.
//! * `tcp` / `udp`: dial `socket.host:socket.port` within `timeout` (0 → 60 s), write the
//!   data once, close; failing to connect or to write all of it is an error. One connection
//!   per event, as Sensu: receivers take the close as the end of the event, so a connection
//!   is never reused (it would merge events for them).
//! * `set`: expanded before execution ([`crate::resolve`]); running one is an error.

use std::time::Duration;

use proto_spec::v2::Handler;
use proto_spec::v2::handler::{HANDLER_TYPE_PIPE, HANDLER_TYPE_TCP, HANDLER_TYPE_UDP};
use tokio::io::AsyncWriteExt;

use crate::DEFAULT_SOCKET_TIMEOUT;
use crate::exec::{self, Execution};

/// Output of a pipe handler kept for the log.
pub const MAX_LOGGED_OUTPUT: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("handler {name:?} could not run its command: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("handler {name:?} has no socket")]
    NoSocket { name: String },
    #[error("handler {name:?} could not reach {addr}: {message}")]
    Connect {
        name: String,
        addr: String,
        message: String,
    },
    #[error("handler {name:?} could not write to {addr}: {message}")]
    Write {
        name: String,
        addr: String,
        message: String,
    },
    #[error("handler {name:?} has type {kind:?}, which cannot be executed")]
    Unsupported { name: String, kind: String },
}

/// How a handler execution ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Handled {
    /// The pipe handler ran past its timeout and was killed.
    pub timed_out: bool,
    /// The pipe handler's exit status (`None` for sockets or a killed command).
    pub status: Option<i32>,
    pub output: String,
}

pub async fn handle(handler: &Handler, data: &[u8]) -> Result<Handled, HandlerError> {
    let name = handler.metadata.name.clone();
    match handler.type_.as_str() {
        HANDLER_TYPE_PIPE => pipe(handler, data).await,
        HANDLER_TYPE_TCP | HANDLER_TYPE_UDP => {
            let Some(socket) = &handler.socket else {
                return Err(HandlerError::NoSocket { name });
            };
            let addr = if socket.host.contains(':') && !socket.host.starts_with('[') {
                format!("[{}]:{}", socket.host, socket.port)
            } else {
                format!("{}:{}", socket.host, socket.port)
            };
            let timeout = if handler.timeout == 0 {
                DEFAULT_SOCKET_TIMEOUT
            } else {
                Duration::from_secs(u64::from(handler.timeout))
            };
            if handler.type_ == HANDLER_TYPE_TCP {
                tcp(&name, &addr, timeout, data).await?;
            } else {
                udp(&name, &addr, timeout, data).await?;
            }
            Ok(Handled::default())
        }
        other => Err(HandlerError::Unsupported {
            name,
            kind: other.to_string(),
        }),
    }
}

async fn pipe(handler: &Handler, data: &[u8]) -> Result<Handled, HandlerError> {
    let timeout = (handler.timeout > 0).then(|| Duration::from_secs(u64::from(handler.timeout)));
    let out = exec::run(Execution {
        command: &handler.command,
        stdin: data,
        env_vars: handler.env_vars.as_deref().unwrap_or_default(),
        timeout,
        max_output: MAX_LOGGED_OUTPUT,
    })
    .await
    .map_err(|source| HandlerError::Spawn {
        name: handler.metadata.name.clone(),
        source,
    })?;
    Ok(Handled {
        timed_out: out.timed_out,
        status: out.status,
        output: String::from_utf8_lossy(&out.output).into_owned(),
    })
}

async fn tcp(name: &str, addr: &str, timeout: Duration, data: &[u8]) -> Result<(), HandlerError> {
    let connect_err = |message: String| HandlerError::Connect {
        name: name.to_string(),
        addr: addr.to_string(),
        message,
    };
    let write_err = |message: String| HandlerError::Write {
        name: name.to_string(),
        addr: addr.to_string(),
        message,
    };
    let mut stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| connect_err(format!("timed out after {timeout:?}")))?
        .map_err(|e| connect_err(e.to_string()))?;
    tokio::time::timeout(timeout, async {
        stream.write_all(data).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| write_err(format!("timed out after {timeout:?}")))?
    .map_err(|e| write_err(e.to_string()))
}

async fn udp(name: &str, addr: &str, timeout: Duration, data: &[u8]) -> Result<(), HandlerError> {
    let connect_err = |message: String| HandlerError::Connect {
        name: name.to_string(),
        addr: addr.to_string(),
        message,
    };
    let target = tokio::time::timeout(timeout, tokio::net::lookup_host(addr))
        .await
        .map_err(|_| connect_err(format!("name resolution timed out after {timeout:?}")))?
        .map_err(|e| connect_err(e.to_string()))?
        .next()
        .ok_or_else(|| connect_err("no address".to_string()))?;
    let local: std::net::SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local)
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    socket
        .connect(target)
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    let sent = tokio::time::timeout(timeout, socket.send(data))
        .await
        .map_err(|_| connect_err(format!("timed out after {timeout:?}")))?
        .map_err(|e| HandlerError::Write {
            name: name.to_string(),
            addr: addr.to_string(),
            message: e.to_string(),
        })?;
    if sent != data.len() {
        return Err(HandlerError::Write {
            name: name.to_string(),
            addr: addr.to_string(),
            message: format!("short write: {sent} of {} bytes", data.len()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_spec::ObjectMeta;
    use proto_spec::v2::HandlerSocket;
    use tokio::io::AsyncReadExt;

    fn handler(type_: &str) -> Handler {
        Handler {
            metadata: ObjectMeta {
                name: "h".into(),
                namespace: "default".into(),
                ..Default::default()
            },
            type_: type_.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn pipe_receives_stdin_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut h = handler("pipe");
        h.command = format!(
            "cat > {}; echo \"$GREETING\" >> {}; exit 2",
            out.display(),
            out.display()
        );
        h.env_vars = Some(vec!["GREETING=hi there".into()]);
        let r = handle(&h, b"{\"data\":1}\n").await.unwrap();
        assert_eq!(r.status, Some(2));
        assert!(!r.timed_out);
        assert_eq!(
            std::fs::read_to_string(out).unwrap(),
            "{\"data\":1}\nhi there\n"
        );
    }

    #[tokio::test]
    async fn pipe_timeout_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        let mut h = handler("pipe");
        h.command = format!("sh -c 'sleep 2; touch {}' & sleep 30", marker.display());
        h.timeout = 1;
        let started = std::time::Instant::now();
        let r = handle(&h, b"").await.unwrap();
        assert!(r.timed_out);
        assert!(started.elapsed() < Duration::from_secs(4));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn tcp_writes_once_and_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            buf
        });
        let mut h = handler("tcp");
        h.socket = Some(HandlerSocket {
            host: "127.0.0.1".into(),
            port: u32::from(port),
        });
        handle(&h, b"hello tcp").await.unwrap();
        assert_eq!(reader.await.unwrap(), b"hello tcp");
    }

    #[tokio::test]
    async fn tcp_connection_refused_is_an_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut h = handler("tcp");
        h.timeout = 2;
        h.socket = Some(HandlerSocket {
            host: "127.0.0.1".into(),
            port: u32::from(port),
        });
        assert!(matches!(
            handle(&h, b"x").await,
            Err(HandlerError::Connect { .. })
        ));
    }

    #[tokio::test]
    async fn udp_sends_one_datagram() {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = sock.local_addr().unwrap().port();
        let mut h = handler("udp");
        h.socket = Some(HandlerSocket {
            host: "127.0.0.1".into(),
            port: u32::from(port),
        });
        handle(&h, b"hello udp").await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"hello udp");
    }

    #[tokio::test]
    async fn sets_cannot_run() {
        assert!(matches!(
            handle(&handler("set"), b"").await,
            Err(HandlerError::Unsupported { .. })
        ));
    }
}
