//! The shared edge of the handler binaries: run, report one line, exit.

use std::process::ExitCode;

/// Run a handler's body; on error print `<name>: <reason>` on stderr and exit 1, so the
/// backend's handler log carries the whole reason in one line.
pub fn run(name: &str, body: impl FnOnce() -> crate::Result<String>) -> ExitCode {
    match body() {
        Ok(done) => {
            if !done.is_empty() {
                println!("{done}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name}: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its sources, each said once.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = s.source();
    }
    reason
}
