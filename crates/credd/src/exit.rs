//! The exit codes of `credd`, in one table (documented in
//! docs/configuration.md and in `credd --help`): 0 success, 1 any other
//! failure, 2 a usage error (clap's), then the codes below.
//!
//! Layering: a leaf; it imports nothing from this crate.

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
