//! The `credd` binary: parses flags, sets up logging, binds listeners and
//! hands over to credd-daemon; the client commands talk to the daemon over
//! its control socket. Errors are printed with their context chain and a
//! meaningful exit code.

mod cli;
mod commands;
mod credfile;
mod demo;
mod docker;
mod doctor;
mod exec;
mod relay_cmd;
mod serve;
mod service;
mod sso_cmd;

use clap::Parser;
use std::process::ExitCode;

/// Exit codes beyond 0/1 (2 is clap's usage error).
pub mod exit {
    /// The daemon is not running.
    pub const NOT_RUNNING: u8 = 3;
    /// `credd exec`: the command could not be run.
    pub const NOT_EXECUTABLE: u8 = 126;
    pub const NOT_FOUND: u8 = 127;

    /// A child's status as ours: its code, or 128 + the signal that killed it
    /// (as shells report it).
    pub fn of(status: std::process::ExitStatus) -> std::process::ExitCode {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(c), _) => std::process::ExitCode::from(c as u8),
            (None, Some(s)) => std::process::ExitCode::from(128u8.wrapping_add(s as u8)),
            _ => std::process::ExitCode::FAILURE,
        }
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(
        cli.verbose,
        matches!(
            cli.command,
            cli::Command::Serve(_) | cli::Command::Relay { .. } | cli::Command::Demo(_)
        ),
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("credd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(commands::run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("credd: {e:#}");
            if e.chain().any(|c| {
                matches!(
                    c.downcast_ref(),
                    Some(credd_daemon::control::ClientError::NotRunning(_))
                )
            }) {
                ExitCode::from(exit::NOT_RUNNING)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn init_tracing(verbose: u8, daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (verbose, daemon) {
        (0, true) => "info",
        (0, false) => "warn",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("CREDD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal; journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
