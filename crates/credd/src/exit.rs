//! The exit codes of `credd`, in one table ([`TABLE`]), documented in
//! docs/configuration.md ("Exit codes", kept in step by a test below) and
//! summed up in the README. An error's kind picks its code in
//! [`of_error`]; `credd exec` and `credd docker run` pass their command's
//! status through ([`of`]).
//!
//! Layering: a leaf; it imports nothing from this crate.

use credd_daemon::control::ClientError;
use std::process::ExitCode;

/// Any other failure: the daemon refused the request (unknown profile,
/// credentials it cannot get, a profile that needs `credd mfa` or `credd
/// login`...), a file credd cannot write, a check that failed.
pub const FAILURE: u8 = 1;
/// A usage error: clap's, for flags and arguments.
pub const USAGE: u8 = 2;
/// The daemon is not running (no control socket to talk to).
pub const NOT_RUNNING: u8 = 3;
/// `credd exec`: the command could not be run.
pub const NOT_EXECUTABLE: u8 = 126;
/// `credd exec`: the command was not found.
pub const NOT_FOUND: u8 = 127;

/// Every exit code credd itself picks, with what it means, as documented
/// (the test below holds docs/configuration.md to it).
#[cfg_attr(not(test), allow(dead_code))]
pub const TABLE: &[(u8, &str)] = &[
    (0, "success"),
    (FAILURE, "error (the message says what and what to do)"),
    (USAGE, "usage error (a flag or argument)"),
    (NOT_RUNNING, "the daemon is not running"),
    (NOT_EXECUTABLE, "`credd exec`: the command cannot be run"),
    (NOT_FOUND, "`credd exec`: the command is not found"),
];

/// The exit code for an error, by its kind: the first [`ClientError`] in
/// its chain decides; everything else is [`FAILURE`].
pub fn of_error(e: &anyhow::Error) -> ExitCode {
    let client = e.chain().find_map(|c| c.downcast_ref::<ClientError>());
    ExitCode::from(match client {
        Some(ClientError::NotRunning(_)) => NOT_RUNNING,
        // The daemon's refusals, a daemon that is not ours, a broken socket:
        // errors like any other (see `TABLE`).
        Some(
            ClientError::Daemon(_)
            | ClientError::Io { .. }
            | ClientError::UntrustedDir { .. }
            | ClientError::ForeignDaemon { .. },
        )
        | None => FAILURE,
    })
}

/// A child's status as ours: its code, or 128 + the signal that killed it
/// (as shells report it).
pub fn of(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(s)) => ExitCode::from(128u8.wrapping_add(s as u8)),
        _ => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_table_is_this_table() {
        let doc = include_str!("../../../docs/configuration.md");
        let section = doc
            .split("\n### Exit codes\n")
            .nth(1)
            .expect("docs/configuration.md has an 'Exit codes' section");
        let rows: Vec<(u8, String)> = section
            .lines()
            .skip_while(|l| !l.starts_with("| code"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].parse().expect("a code"), cells[2].to_string())
            })
            .collect();
        let table: Vec<(u8, String)> = TABLE.iter().map(|(c, m)| (*c, m.to_string())).collect();
        assert_eq!(rows, table);
    }

    #[test]
    fn only_a_daemon_that_is_not_running_has_its_own_code() {
        let not_running = anyhow::Error::new(ClientError::NotRunning("/run/x".into()))
            .context("failed to ask the daemon");
        assert_eq!(of_error(&not_running), ExitCode::from(NOT_RUNNING));
        let refused = anyhow::Error::new(ClientError::Daemon("unknown profile 'x'".into()));
        assert_eq!(of_error(&refused), ExitCode::from(FAILURE));
        assert_eq!(of_error(&anyhow::anyhow!("no")), ExitCode::from(FAILURE));
    }
}
