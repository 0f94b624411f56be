//! Running one command: a check or a hook (sensu-compat 5.5).
//!
//! `sh -c <command>` in a process group of its own, stdout and stderr written to **one** pipe
//! (so the merged output keeps the order in which the command wrote it, as Go's shared
//! buffer does), stdin from the event JSON or `/dev/null`, output capture bounded, and on
//! timeout the whole group SIGKILLed: a check that forked helpers (`cmd1 | cmd2`, `sleep &`)
//! leaves nothing behind.
//!
//! Differences from Sensu, on purpose:
//! - every command gets its own process group, not only those with a timeout, so an agent
//!   shutdown can stop any of them (the child cannot get a parent-death signal without unsafe
//!   code, which the workspace forbids);
//! - a command killed by a signal reports status 3 and names the signal in its output (Go
//!   returns `-1`, which Sensu then stores as 4294967295);
//! - output is capped at [`MAX_OUTPUT_BYTES`] (Sensu buffered everything), and once the shell
//!   has exited its output is read for at most [`DRAIN_GRACE`] more: a background process
//!   that keeps the pipe open (`daemon &`) cannot hold the result back (Go's `cmd.Wait` waited
//!   for it, forever without a timeout).

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Output kept per execution. The transport's frame limit is 1 MiB for the whole event
/// (entity, check, hooks), so one output must stay well below it.
pub const MAX_OUTPUT_BYTES: usize = 512 * 1024;

/// Output of an execution whose timeout expired, before what it printed (Sensu's text).
pub const TIMEOUT_OUTPUT: &str = "Execution timed out\n";

/// Status of an execution whose timeout expired (Sensu: critical).
pub const TIMEOUT_STATUS: u32 = 2;

/// Status when no exit code exists: spawn failure, death by signal, agent shutdown.
pub const UNKNOWN_STATUS: u32 = 3;

/// Sensu's undocumented load-testing command: answered with [`TEST_CHECK_OUTPUT`] and status 0
/// without spawning anything.
pub const TEST_CHECK_COMMAND: &str = "!sensu_test_check!";

/// The canned output of [`TEST_CHECK_COMMAND`].
pub const TEST_CHECK_OUTPUT: &str =
    "picket test check: OK (canned result of !sensu_test_check!, nothing was executed)\n";

/// How long output is still read after the shell exited, for processes it left running that
/// still hold the pipe. Output already written is in the pipe and read at once; this only
/// bounds the wait for an end-of-file that a background process may never give.
pub const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Environment variables whose values are path lists: a new value is prepended to the
/// existing one instead of replacing it (Sensu's `MergeEnvironments`).
const PATH_LISTS: &[&str] = &["PATH", "CPATH", "LD_LIBRARY_PATH"];

/// One command to run.
#[derive(Debug, Clone)]
pub struct Execution {
    pub command: String,
    /// Variables set on top of the agent's own environment, already merged (see
    /// [`merge_env`]).
    pub env: Vec<(String, String)>,
    /// Written to the command's stdin, which is `/dev/null` when `None`.
    pub stdin: Option<Vec<u8>>,
    /// `None` (a timeout of 0 in the definition) lets the command run as long as it likes.
    pub timeout: Option<Duration>,
    /// Bytes of output kept; the rest is read and counted, so the command never blocks on a
    /// full pipe.
    pub max_output: usize,
    /// The shell, `sh` (looked up in `PATH`, as Go's `exec.Command` does). Tests point it at a
    /// missing file to provoke a spawn failure.
    pub shell: String,
}

impl Execution {
    pub fn new(command: impl Into<String>) -> Self {
        Execution {
            command: command.into(),
            env: Vec::new(),
            stdin: None,
            timeout: None,
            max_output: MAX_OUTPUT_BYTES,
            shell: "sh".to_string(),
        }
    }

    /// A timeout in whole seconds as the definitions carry it; 0 means none.
    pub fn with_timeout_secs(mut self, seconds: u32) -> Self {
        self.timeout = (seconds > 0).then(|| Duration::from_secs(seconds.into()));
        self
    }
}

/// What an execution produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// stdout and stderr interleaved, lossily decoded as UTF-8, with notes appended (timeout,
    /// signal, truncation).
    pub output: String,
    pub status: u32,
    /// Seconds, as the event's `duration`.
    pub duration: f64,
    pub timed_out: bool,
    /// The agent is shutting down: the command was killed and its result means nothing.
    pub cancelled: bool,
    /// The shell was started (false: no pipe, or the spawn failed); counted in the agent's
    /// metrics as a check that failed to start.
    pub spawned: bool,
}

impl Outcome {
    fn failed(output: String, started: Instant) -> Self {
        Outcome {
            output,
            status: UNKNOWN_STATUS,
            duration: started.elapsed().as_secs_f64(),
            timed_out: false,
            cancelled: false,
            spawned: false,
        }
    }
}

/// How the wait for the shell ended.
enum End {
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Cancelled,
}

/// Run `ex` to completion, its timeout, or `cancel`. Never fails: every problem becomes a
/// status and an output, as the event needs them.
pub async fn execute(ex: &Execution, cancel: &CancellationToken) -> Outcome {
    let started = Instant::now();
    if ex.command == TEST_CHECK_COMMAND {
        return Outcome {
            output: TEST_CHECK_OUTPUT.to_string(),
            status: 0,
            duration: 0.0,
            timed_out: false,
            cancelled: false,
            spawned: true,
        };
    }

    // One pipe for both streams: the kernel keeps the order of the writes.
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return Outcome::failed(format!("cannot create a pipe: {e}"), started),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return Outcome::failed(format!("cannot create a pipe: {e}"), started),
    };
    let mut cmd = tokio::process::Command::new(&ex.shell);
    cmd.arg("-c")
        .arg(&ex.command)
        .envs(ex.env.iter().map(|(k, v)| (k, v)))
        .stdin(if ex.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2))
        // pgid = the shell's pid, so kill(-pid) reaches everything it started.
        .process_group(0);
    let spawned = cmd.spawn();
    // The Command holds our copies of the pipe's write end; only once they are closed does
    // the reader see end-of-file when the command's processes are done.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return Outcome::failed(format!("cannot execute {:?} -c: {e}", ex.shell), started);
        }
    };
    // Unreaped until `wait` returns, so the pid (= pgid) cannot be reused before we are
    // done signalling it.
    let pid = child.id();

    if let (Some(input), Some(mut stdin)) = (ex.stdin.clone(), child.stdin.take()) {
        // A separate task: a command that never reads its stdin must not block us when the
        // input exceeds the pipe's buffer. Write errors (the command exited or closed stdin)
        // are normal.
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }

    let mut capture = Capture::new(ex.max_output);
    let mut rx = match pipe::Receiver::from_owned_fd(OwnedFd::from(reader)) {
        Ok(rx) => Some(rx),
        Err(e) => {
            capture.note(&format!("cannot read the command's output: {e}"));
            None
        }
    };
    let deadline = ex.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut buf = vec![0u8; 16 * 1024];

    let end = loop {
        tokio::select! {
            r = read_some(&mut rx, &mut buf) => capture.took(r, &buf, &mut rx),
            status = child.wait() => break End::Exited(status),
            _ = sleep_until_opt(deadline) => break End::TimedOut,
            _ = cancel.cancelled() => break End::Cancelled,
        }
    };

    // `killed`: the group was SIGKILLed, for the agent's shutdown (true) or the timeout.
    let mut kill_error = None;
    let (status, killed) = match end {
        End::Exited(status) => (Some(status), None),
        End::TimedOut | End::Cancelled => {
            if let Some(pid) = pid {
                kill_error = kill_group(pid).err();
            }
            // Reap the shell (immediate after SIGKILL).
            let _ = child.wait().await;
            (None, Some(matches!(end, End::Cancelled)))
        }
    };

    // Whatever is still in the pipe, for a short while at most.
    let drain_until = tokio::time::Instant::now() + DRAIN_GRACE;
    while rx.is_some() {
        tokio::select! {
            r = read_some(&mut rx, &mut buf) => capture.took(r, &buf, &mut rx),
            _ = tokio::time::sleep_until(drain_until) => {
                debug!(command = %ex.command, "Processes started by the command still hold its output pipe; not waiting for them");
                break;
            }
        }
    }
    let duration = started.elapsed().as_secs_f64();
    let mut output = captured_output(capture, killed, kill_error, pid, &ex.command);

    match (status, killed) {
        (Some(Ok(exit)), _) => {
            let (status, note) = exit_status(exit);
            if let Some(note) = note {
                append_line(&mut output, &note);
            }
            Outcome {
                output,
                status,
                duration,
                timed_out: false,
                cancelled: false,
                spawned: true,
            }
        }
        (Some(Err(e)), _) => {
            append_line(&mut output, &format!("cannot wait for the command: {e}"));
            Outcome {
                spawned: true,
                ..Outcome::failed(output, started)
            }
        }
        (None, cancelled) => {
            let cancelled = cancelled.unwrap_or_default();
            Outcome {
                output,
                status: if cancelled {
                    UNKNOWN_STATUS
                } else {
                    TIMEOUT_STATUS
                },
                duration,
                timed_out: !cancelled,
                cancelled,
                spawned: true,
            }
        }
    }
}

/// The output to report: what was captured, after the timeout text when the group was killed.
fn captured_output(
    capture: Capture,
    killed: Option<bool>,
    kill_error: Option<std::io::Error>,
    pid: Option<u32>,
    command: &str,
) -> String {
    let captured = capture.finish();
    let Some(cancelled) = killed else {
        return captured;
    };
    let mut output = if cancelled {
        "Execution cancelled: the agent is shutting down\n".to_string()
    } else {
        TIMEOUT_OUTPUT.to_string()
    };
    if let Some(e) = kill_error {
        warn!(command, error = %e, "Could not kill the process group of a command");
        output.push_str(&format!(
            "Unable to kill the process group #{}: {e}\n",
            pid.unwrap_or_default()
        ));
    }
    output.push_str(&captured);
    output
}

/// SIGKILL the process group `pgid`. A group that is already gone is not an error.
fn kill_group(pgid: u32) -> std::io::Result<()> {
    use rustix::process::{Pid, Signal, kill_process_group};
    let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) else {
        return Err(std::io::Error::other(format!("invalid process id {pgid}")));
    };
    match kill_process_group(pid, Signal::KILL) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::SRCH => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn read_some(rx: &mut Option<pipe::Receiver>, buf: &mut [u8]) -> std::io::Result<usize> {
    match rx {
        Some(rx) => rx.read(buf).await,
        // Never completes: the select's other branches decide.
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Exit status → check status, plus a note for the output when there is no exit code.
fn exit_status(exit: ExitStatus) -> (u32, Option<String>) {
    if let Some(code) = exit.code() {
        // 0-255 on Unix; never negative.
        return (u32::try_from(code).unwrap_or(UNKNOWN_STATUS), None);
    }
    match exit.signal() {
        Some(sig) => (
            UNKNOWN_STATUS,
            Some(format!("Terminated by signal {sig} ({})", signal_name(sig))),
        ),
        None => (
            UNKNOWN_STATUS,
            Some("Terminated without an exit status".to_string()),
        ),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "signal",
    }
}

/// Append `line` on a line of its own.
fn append_line(output: &mut String, line: &str) {
    if !output.is_empty() && !output.ends_with('\n') {
        output.push('\n');
    }
    output.push_str(line);
    output.push('\n');
}

/// The bounded output buffer.
struct Capture {
    bytes: Vec<u8>,
    limit: usize,
    dropped: u64,
    notes: Vec<String>,
}

impl Capture {
    fn new(limit: usize) -> Self {
        Capture {
            bytes: Vec::new(),
            limit,
            dropped: 0,
            notes: Vec::new(),
        }
    }

    fn push(&mut self, data: &[u8]) {
        let room = self.limit.saturating_sub(self.bytes.len());
        let keep = data.len().min(room);
        self.bytes.extend_from_slice(&data[..keep]);
        self.dropped += (data.len() - keep) as u64;
    }

    /// Account for one read; end-of-file or an error closes the pipe.
    fn took(&mut self, r: std::io::Result<usize>, buf: &[u8], rx: &mut Option<pipe::Receiver>) {
        match r {
            Ok(0) => *rx = None,
            Ok(n) => self.push(&buf[..n]),
            Err(e) => {
                self.note(&format!("error reading the command's output: {e}"));
                *rx = None;
            }
        }
    }

    fn note(&mut self, note: &str) {
        self.notes.push(note.to_string());
    }

    fn finish(self) -> String {
        let mut out = String::from_utf8_lossy(&self.bytes).into_owned();
        if self.dropped > 0 {
            append_line(
                &mut out,
                &format!(
                    "[output truncated: {} more bytes were dropped; the agent keeps {} bytes]",
                    self.dropped, self.limit
                ),
            );
        }
        for n in &self.notes {
            append_line(&mut out, n);
        }
        out
    }
}

/// The variables to set on top of the process environment for these `KEY=VALUE` layers,
/// applied in order: a later layer overrides an earlier one, except that the path lists
/// (`PATH`, `CPATH`, `LD_LIBRARY_PATH`) get the new value prepended (Sensu's
/// `MergeEnvironments`). Entries without `=` are ignored, as Sensu does. `current` reads the
/// agent's own environment.
pub fn merge_env(
    current: impl Fn(&str) -> Option<OsString>,
    layers: &[&[String]],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for layer in layers {
        for entry in layer.iter() {
            let Some((key, value)) = entry.split_once('=') else {
                continue;
            };
            if key.is_empty() {
                continue;
            }
            let existing = out.iter().position(|(k, _)| k == key);
            let new_value = if PATH_LISTS.contains(&key) {
                let before = match existing {
                    Some(i) => Some(out[i].1.clone()),
                    None => current(key).map(|v| v.to_string_lossy().into_owned()),
                };
                match before {
                    // No trailing ':' when there was nothing: an empty PATH entry would mean
                    // the current directory.
                    Some(b) if !b.is_empty() => format!("{value}:{b}"),
                    _ => value.to_string(),
                }
            } else {
                value.to_string()
            };
            match existing {
                Some(i) => out[i].1 = new_value,
                None => out.push((key.to_string(), new_value)),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn merge_env_rules() {
        let base = env(&[("PATH", "/usr/bin:/bin"), ("HOME", "/root")]);
        let secrets = strings(&["TOKEN=s3cret", "PATH=/opt/secret/bin"]);
        let vars = strings(&[
            "HOME=/home/check",
            "MALFORMED",
            "=nokey",
            "EMPTY=",
            "EQ=a=b",
            "PATH=/opt/check/bin",
            "CPATH=/opt/include",
        ]);
        let merged = merge_env(&base, &[&secrets, &vars]);
        let get = |k: &str| {
            merged
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("TOKEN"), Some("s3cret"));
        assert_eq!(get("HOME"), Some("/home/check"));
        assert_eq!(get("EMPTY"), Some(""));
        assert_eq!(get("EQ"), Some("a=b"));
        assert_eq!(get("MALFORMED"), None);
        assert_eq!(get(""), None);
        assert_eq!(
            get("PATH"),
            Some("/opt/check/bin:/opt/secret/bin:/usr/bin:/bin")
        );
        // No trailing separator when the agent has no CPATH.
        assert_eq!(get("CPATH"), Some("/opt/include"));
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(exit_status(ExitStatus::from_raw(0)), (0, None));
        assert_eq!(exit_status(ExitStatus::from_raw(2 << 8)), (2, None));
        assert_eq!(exit_status(ExitStatus::from_raw(255 << 8)), (255, None));
        let (status, note) = exit_status(ExitStatus::from_raw(9));
        assert_eq!(status, 3);
        assert_eq!(note.as_deref(), Some("Terminated by signal 9 (SIGKILL)"));
    }

    #[test]
    fn capture_is_bounded() {
        let mut c = Capture::new(4);
        c.push(b"ab");
        c.push(b"cdef");
        c.push(b"gh");
        let out = c.finish();
        assert!(
            out.starts_with("abcd\n[output truncated: 4 more bytes"),
            "{out}"
        );
    }
}
