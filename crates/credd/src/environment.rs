//! The environment reader: the one place the CLI reads its own process
//! environment for settings (the daemon's config takes a lookup function,
//! so tests can pass another), and the directories that follow from it.
//!
//! Layering: a leaf; it imports nothing from this crate.

use std::path::PathBuf;

/// One variable of this process's environment.
pub fn env_var(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// `RUNTIME_DIR` (`CREDD_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/credd`...).
pub fn runtime_dir() -> PathBuf {
    credd_daemon::config::runtime_dir(&env_var)
}

/// `STATE_DIR` (`CREDD_STATE_DIR`, else `~/.local/state/credd`...).
pub fn state_dir() -> PathBuf {
    credd_daemon::config::state_dir(&env_var)
}
