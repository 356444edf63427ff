//! The `credd` binary: parses flags, sets up logging, binds listeners and
//! hands over to credd-daemon; the client commands talk to the daemon over
//! its control socket. Errors are printed with their context chain and a
//! meaningful exit code.

mod cli;
mod commands;
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

/// Targets whose events may carry what they read from `~/.aws/config` or
/// `~/.aws/credentials`: the SDK's profile-file code warns with a file it
/// cannot decode (as a byte array, keys included) and traces the values it
/// looks up. credd-aws never lets them run with a subscriber while parsing,
/// and this drops them for good measure, whatever `-v` or `RUST_LOG` ask
/// (threat-model row 21).
const FILE_READING_TARGETS: &[&str] = &["aws_runtime::env_config", "aws_config::profile"];

fn from_aws_files(target: &str) -> bool {
    FILE_READING_TARGETS.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

fn init_tracing(verbose: u8, daemon: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let default = match (verbose, daemon) {
        (0, true) => "info",
        (0, false) => "warn",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("CREDD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    // A filter of its own rather than a directive appended to the user's:
    // no directive the user writes can turn these targets back on.
    let never = tracing_subscriber::filter::filter_fn(|m| !from_aws_files(m.target()));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour only for a person at a terminal; journald and log files get plain text.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false)
                .with_filter(never),
        )
        .with(filter)
        .init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_aws_file_targets_and_only_they_are_dropped() {
        for t in [
            "aws_runtime::env_config",
            "aws_runtime::env_config::source",
            "aws_runtime::env_config::normalize",
            "aws_config::profile::credentials",
        ] {
            assert!(super::from_aws_files(t), "{t}");
        }
        for t in [
            "aws_runtime::env_configx",
            "aws_config::sts",
            "credd_aws::profiles",
        ] {
            assert!(!super::from_aws_files(t), "{t}");
        }
    }
}
