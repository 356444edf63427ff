//! Desktop notifications for what needs the user (an SSO session that
//! ended): `notify-send` on a Linux desktop, `osascript` on macOS, and a log
//! line always, so a headless machine still has a record.
//!
//! The desktop's own command is run rather than linking a notification
//! library: a D-Bus client stack inside a credential daemon is attack surface
//! for a once-a-day message, and a command can be stood in for by a test.
//! The text never holds a secret; it is passed as arguments, never through
//! a shell.

use crate::sso::Notifier;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, Clone)]
pub struct DesktopNotifier {
    /// The program and the arguments before title and body, when a desktop
    /// is present.
    command: Option<(PathBuf, Vec<String>)>,
}

impl DesktopNotifier {
    /// Looks for a desktop in this process's environment.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        Self::detect(
            var("PATH").as_deref().map(Path::new),
            cfg!(target_os = "macos"),
            var("DISPLAY").is_some()
                || var("WAYLAND_DISPLAY").is_some()
                || var("DBUS_SESSION_BUS_ADDRESS").is_some(),
        )
    }

    fn detect(path: Option<&Path>, macos: bool, desktop: bool) -> Self {
        let find = |name: &str| {
            let path = path?;
            std::env::split_paths(path.as_os_str())
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        };
        let command = if macos {
            find("osascript").map(|p| (p, vec![]))
        } else if desktop {
            find("notify-send").map(|p| (p, vec!["--app-name=credd".to_string()]))
        } else {
            None
        };
        Self { command }
    }

    pub fn has_desktop(&self) -> bool {
        self.command.is_some()
    }
}

impl DesktopNotifier {
    /// The helper command that shows one notification, if there is a desktop.
    fn command(&self, title: &str, body: &str) -> Option<Command> {
        let (program, pre) = self.command.as_ref()?;
        let mut cmd = Command::new(program);
        if program.ends_with("osascript") {
            // AppleScript string literals: escape backslashes and quotes.
            let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
            cmd.arg("-e").arg(format!(
                "display notification \"{}\" with title \"{}\"",
                q(body),
                q(title)
            ));
        } else {
            cmd.args(pre).arg(title).arg(body);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Nothing of the daemon's own for a desktop helper.
        credd_core::child_env::scrub(&mut cmd);
        Some(cmd)
    }
}

impl Notifier for DesktopNotifier {
    fn notify(&self, title: &str, body: &str) {
        tracing::warn!(title, "{body}");
        let Some(mut cmd) = self.command(title, body) else {
            return;
        };
        match cmd.spawn() {
            // Reaped in the background: a notification must never block the
            // daemon.
            Ok(mut child) => {
                std::thread::spawn(move || child.wait());
            }
            Err(e) => tracing::debug!(error = %e, "could not show a desktop notification"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn notify_send_is_used_on_a_linux_desktop_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = dir.path().join("notify-send");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\n", out.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

        let headless = DesktopNotifier::detect(Some(dir.path()), false, false);
        assert!(!headless.has_desktop());
        headless.notify("t", "b");

        let n = DesktopNotifier::detect(Some(dir.path()), false, true);
        assert!(n.has_desktop());
        n.notify(
            "credd: AWS sign-in needed",
            "SSO session 'work' ended: run `credd login work`",
        );
        for _ in 0..200 {
            if std::fs::read_to_string(&out).is_ok_and(|s| s.lines().count() == 3) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "--app-name=credd\ncredd: AWS sign-in needed\nSSO session 'work' ended: run `credd login work`\n"
        );
        assert!(!DesktopNotifier::detect(None, false, true).has_desktop());
        // The helper gets none of the daemon's keys nor its service socket.
        let cmd = n.command("t", "b").unwrap();
        assert_eq!(
            credd_core::child_env::removed_from(&cmd),
            credd_core::child_env::REMOVED
        );
    }
}
