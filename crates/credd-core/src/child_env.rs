//! What the daemon's helper processes (`credential_process`, `mfa_process`,
//! the desktop-notification command) must not inherit from it.

/// The daemon's own AWS keys (a helper could pick them up and print them
/// back), the passphrase of the encrypted key file (issue 15, same reason)
/// and its service manager's notification socket (the daemon's, not its
/// children's).
pub const REMOVED: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "CREDD_KEYS_PASSPHRASE",
    "NOTIFY_SOCKET",
];

/// Removes [`REMOVED`] from `cmd`'s environment.
pub fn scrub(cmd: &mut std::process::Command) {
    for var in REMOVED {
        cmd.env_remove(var);
    }
}

/// The variables `cmd` is set to remove, in order: for tests of the
/// commands built with [`scrub`] (here and, through the `testing` feature
/// their dev-dependencies turn on, in credd-aws and credd-daemon).
#[cfg(any(test, feature = "testing"))]
pub fn removed_from(cmd: &std::process::Command) -> Vec<String> {
    cmd.get_envs()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_the_keys_and_the_notify_socket() {
        let mut cmd = std::process::Command::new("tool");
        scrub(&mut cmd);
        assert_eq!(
            removed_from(&cmd),
            [
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "CREDD_KEYS_PASSPHRASE",
                "NOTIFY_SOCKET"
            ]
        );
    }
}
