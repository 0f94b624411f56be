use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = picketctl::cli::Cli::parse();
    match picketctl::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `picketctl event list | head` is not a failure.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
