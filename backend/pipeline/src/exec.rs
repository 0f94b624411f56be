//! Runs a command the way Sensu's pipelined does: `sh -c <command>`, the payload on stdin,
//! stdout and stderr interleaved into one buffer, the process environment plus `env_vars`.
//!
//! The shell leads its own process group, so a timeout kills everything it started
//! (`SIGKILL` to the group), not just the shell. Output is read through one pipe shared by
//! stdout and stderr and capped at `max_output` bytes (the rest is drained and dropped so the
//! command never blocks on a full pipe). After the shell exits, output still held open by a
//! background child is waited for at most [`OUTPUT_GRACE`]; then the group is killed.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long to keep reading after the shell has exited, for children that kept the pipe.
pub const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// One command execution.
#[derive(Debug, Clone)]
pub struct Execution<'a> {
    pub command: &'a str,
    pub stdin: &'a [u8],
    /// `KEY=VALUE` entries added to the process environment (entries without `=` ignored).
    pub env_vars: &'a [String],
    /// `None`: no limit.
    pub timeout: Option<Duration>,
    pub max_output: usize,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Exit status; `None` when the shell died from a signal (including the timeout's kill).
    pub status: Option<i32>,
    /// stdout and stderr, interleaved, at most `max_output` bytes.
    pub output: Vec<u8>,
    pub timed_out: bool,
    pub duration: Duration,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.status == Some(0) && !self.timed_out
    }
}

pub async fn run(ex: Execution<'_>) -> std::io::Result<Outcome> {
    let started = Instant::now();
    let (reader, writer) = std::io::pipe()?;
    let writer2 = writer.try_clone()?;
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(ex.command)
        .stdin(Stdio::piped())
        .stdout(writer)
        .stderr(writer2)
        // pgid = the shell's pid, so kill(-pid) reaches everything it started.
        .process_group(0);
    for kv in ex.env_vars {
        if let Some((k, v)) = kv.split_once('=')
            && !k.is_empty()
        {
            cmd.env(k, v);
        }
    }
    let spawned = cmd.spawn();
    // The command still owns our copies of the pipe's write end: without dropping them the
    // read below would never see end-of-file.
    drop(cmd);
    let mut child = spawned?;
    let pid = child.id().unwrap_or(0);

    let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into())?;
    let max = ex.max_output;
    let mut reading = tokio::spawn(async move {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = max.saturating_sub(out.len());
                    out.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        out
    });

    if let Some(mut stdin) = child.stdin.take() {
        let payload = ex.stdin.to_vec();
        // A command that does not read its stdin closes the pipe early: not an error.
        tokio::spawn(async move {
            let _ = stdin.write_all(&payload).await;
            let _ = stdin.shutdown().await;
        });
    }

    let mut timed_out = false;
    let status = match ex.timeout {
        Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                timed_out = true;
                kill_group(pid);
                child.wait().await?
            }
        },
        None => child.wait().await?,
    };
    let output = match tokio::time::timeout(OUTPUT_GRACE, &mut reading).await {
        Ok(out) => out.unwrap_or_default(),
        Err(_) => {
            // A background child still holds the pipe: end it with the rest of the group.
            kill_group(pid);
            match tokio::time::timeout(OUTPUT_GRACE, &mut reading).await {
                Ok(out) => out.unwrap_or_default(),
                Err(_) => {
                    reading.abort();
                    Vec::new()
                }
            }
        }
    };
    Ok(Outcome {
        status: status.code(),
        output,
        timed_out,
        duration: started.elapsed(),
    })
}

fn kill_group(pgid: u32) {
    use rustix::process::{Pid, Signal, kill_process_group};
    let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) else {
        return;
    };
    if let Err(e) = kill_process_group(pid, Signal::KILL) {
        // ESRCH: the whole group is already gone.
        if e != rustix::io::Errno::SRCH {
            tracing::warn!(pgid, error = %e, "Could not kill the process group of a command");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex<'a>(command: &'a str, stdin: &'a [u8], env: &'a [String]) -> Execution<'a> {
        Execution {
            command,
            stdin,
            env_vars: env,
            timeout: Some(Duration::from_secs(10)),
            max_output: 1 << 20,
        }
    }

    #[tokio::test]
    async fn stdin_env_and_combined_output() {
        let env = vec!["PICKET_TEST_VAR=hello".to_string()];
        let out = run(ex(
            "cat; echo \"$PICKET_TEST_VAR\" >&2; exit 3",
            b"payload\n",
            &env,
        ))
        .await
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.output), "payload\nhello\n");
        assert_eq!(out.status, Some(3));
        assert!(!out.timed_out);
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // A grandchild that would write the marker after 2 s unless the group is killed.
        let command = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let mut e = ex(&command, b"", &[]);
        e.timeout = Some(Duration::from_millis(300));
        let started = Instant::now();
        let out = run(e).await.unwrap();
        assert!(out.timed_out);
        assert_eq!(out.status, None);
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "the grandchild outlived the timeout");
    }

    #[tokio::test]
    async fn output_is_capped() {
        let mut e = ex("head -c 100000 /dev/zero", b"", &[]);
        e.max_output = 1000;
        let out = run(e).await.unwrap();
        assert_eq!(out.output.len(), 1000);
        assert_eq!(out.status, Some(0));
    }
}
