//! How the daemon asks for an MFA code that a background consumer (an IDE's
//! `credential_process`, a container, an SDK on the endpoint) needs, where
//! `MfaRequired` arises (`broker/sources.rs`: an MFA session with nothing
//! servable and no `mfa_process`, which still wins when set):
//!
//! - `notify` (the default): a desktop notification and a log line naming
//!   `credd mfa PROFILE`;
//! - `dialog`: a password dialog the daemon raises (`zenity --entry
//!   --hide-text` or `kdialog --password` on a Linux desktop, `osascript`'s
//!   `display dialog ... with hidden answer` on macOS); the code typed goes
//!   straight into the MFA session (`Broker::submit_mfa`), never to a log;
//!   cancelled (or not six digits) = as if none was typed. With no dialog
//!   program, a notification instead;
//! - `terminal`: only `credd` commands on a TTY ask; the daemon notifies.
//!
//! The code, from `credd mfa` or the dialog, goes to `submit_mfa` (here,
//! with `mfa_serial` and `mfa_node`).
//!
//! Per profile `credd_mfa_prompt`, else `credd.toml`'s `mfa_prompt`. A
//! request never waits on any of this: it gets its fast `MfaRequired` (503)
//! at once while the dialog is up. One dialog at a time per MFA session,
//! and at most one ask per session every [`QUIET`] (an IDE retrying every
//! few seconds must not flood the desktop). Nobody is asked for a session
//! no profile was served from in the last two hours (a refresh loop
//! reaching the session's end at night is not a consumer).

use super::{Broker, Graph, Node, ServeError};
use credd_core::profile::{Base, NodeKind};
use credd_core::profile::{MfaSpec, NodeId};
use credd_core::SecretString;
use credd_core::{UpstreamError, UpstreamErrorKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use time::{Duration, OffsetDateTime};

/// The quiet period between two asks for the same MFA session.
pub const QUIET: Duration = Duration::minutes(5);

/// How long a dialog may stay up before it is closed (as cancelled).
const DIALOG_LIMIT: std::time::Duration = std::time::Duration::from_secs(180);

/// `mfa_prompt` / `credd_mfa_prompt`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MfaPrompt {
    #[default]
    Notify,
    Dialog,
    Terminal,
}

impl std::str::FromStr for MfaPrompt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "notify" => Ok(Self::Notify),
            "dialog" => Ok(Self::Dialog),
            "terminal" => Ok(Self::Terminal),
            other => Err(format!(
                "'{other}' is not a prompt: use \"notify\", \"dialog\" or \"terminal\""
            )),
        }
    }
}

/// The dialog program found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    program: PathBuf,
}

impl Dialog {
    /// Looks for a dialog program: `osascript` on macOS; on Linux, with a
    /// desktop (`DISPLAY` or `WAYLAND_DISPLAY`), `zenity`, else `kdialog`.
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let desktop = var("DISPLAY").is_some() || var("WAYLAND_DISPLAY").is_some();
        Self::detect(
            var("PATH").as_deref().map(Path::new),
            cfg!(target_os = "macos"),
            desktop,
        )
    }

    fn detect(path: Option<&Path>, macos: bool, desktop: bool) -> Option<Self> {
        let find = |name: &str| {
            std::env::split_paths(path?.as_os_str())
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        };
        let program = if macos {
            find("osascript")
        } else if desktop {
            find("zenity").or_else(|| find("kdialog"))
        } else {
            None
        }?;
        Some(Self { program })
    }

    /// The command that asks; the text goes as an argument, never through
    /// a shell or into a script's source.
    fn command(&self, text: &str) -> tokio::process::Command {
        let mut cmd = std::process::Command::new(&self.program);
        let name = self.program.file_name().and_then(|n| n.to_str());
        match name {
            Some("osascript") => {
                cmd.args([
                    "-e",
                    "on run argv",
                    "-e",
                    "text returned of (display dialog (item 1 of argv) default answer \"\" with hidden answer with title \"credd\")",
                    "-e",
                    "end run",
                    text,
                ]);
            }
            Some("kdialog") => {
                cmd.args(["--title", "credd: MFA code", "--password", text]);
            }
            _ => {
                cmd.args([
                    "--entry",
                    "--hide-text",
                    "--title=credd: MFA code",
                    &format!("--text={text}"),
                ]);
            }
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        // Nothing of the daemon's own for a desktop helper.
        credd_core::child_env::scrub(&mut cmd);
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        cmd
    }
}

/// The daemon's prompt settings and what it is asking now.
#[derive(Debug, Default)]
pub struct Prompter {
    pub default: MfaPrompt,
    pub dialog: Option<Dialog>,
    /// Per MFA session: when it was last asked for, and whether a dialog
    /// is up.
    asked: Mutex<HashMap<NodeId, (OffsetDateTime, bool)>>,
}

impl Prompter {
    pub fn new(default: MfaPrompt, dialog: Option<Dialog>) -> Self {
        Self {
            default,
            dialog,
            asked: Mutex::default(),
        }
    }

    /// Whether to ask now for `id` (no dialog up, quiet period over); if
    /// so, notes the ask (with `dialog` up).
    fn claim(&self, id: &NodeId, now: OffsetDateTime, dialog: bool) -> bool {
        let mut asked = self.asked.lock().expect("not poisoned");
        match asked.get(id) {
            Some((_, true)) => false,
            Some((at, false)) if now - *at < QUIET => false,
            _ => {
                asked.insert(id.clone(), (now, dialog));
                true
            }
        }
    }

    fn dialog_closed(&self, id: &NodeId) {
        if let Some(e) = self.asked.lock().expect("not poisoned").get_mut(id) {
            e.1 = false;
        }
    }

    /// A new MFA session began: the next need asks at once.
    pub(super) fn forget(&self, id: &NodeId) {
        self.asked.lock().expect("not poisoned").remove(id);
    }
}

impl Broker {
    /// Starts the MFA session behind `profile` with `code`.
    pub async fn submit_mfa(
        &self,
        profile: &str,
        code: SecretString,
    ) -> Result<OffsetDateTime, ServeError> {
        let graph = self.graph();
        let node = self.mfa_node(&graph, profile)?;
        let _flight = node.slot.flight().await;
        let result = self.call_upstream(&graph, &node, Some(&code)).await;
        let out = self.record(&node, result);
        if out.is_ok() {
            self.inner.prompter.load().forget(&node.spec.id);
            // The profiles on it stop waiting for a code now, not at their
            // next request.
            self.mfa_session_changed(&graph, &node);
        }
        // Profiles on this session may be parked waiting for it.
        for n in graph.nodes.values() {
            n.slot.wake();
        }
        out.map(|c| c.creds.expiration())
            .map_err(|e| self.serve_error(profile, &node, e))
    }

    /// The MFA serial `credd mfa PROFILE` should prompt for.
    pub fn mfa_serial(&self, profile: &str) -> Result<String, ServeError> {
        let graph = self.graph();
        let node = self.mfa_node(&graph, profile)?;
        match &node.spec.kind {
            NodeKind::Base(Base::Session(s)) => {
                Ok(s.mfa.as_ref().expect("mfa node").serial.clone())
            }
            _ => unreachable!("mfa_node returns session nodes"),
        }
    }

    fn mfa_node(&self, graph: &Graph, profile: &str) -> Result<Arc<Node>, ServeError> {
        let plan = match graph.plans.get(profile) {
            None => return Err(ServeError::UnknownProfile(profile.into())),
            Some(Err(error)) => {
                return Err(ServeError::Misconfigured {
                    profile: profile.into(),
                    error: error.clone(),
                })
            }
            Some(Ok(p)) => p,
        };
        match &plan.base {
            Base::Session(s) if s.mfa.is_some() => Ok(graph.nodes[&plan.base.node_id()].clone()),
            _ => Err(ServeError::Upstream {
                profile: profile.into(),
                error: UpstreamError::new(
                    UpstreamErrorKind::Config,
                    format!("profile '{profile}' has no mfa_serial in its chain, so it needs no MFA code"),
                ),
                retry_in_secs: None,
                needs: None,
            }),
        }
    }

    /// Installs the prompt settings (at start; tests set their own).
    pub fn set_mfa_prompter(&self, p: Prompter) {
        self.inner.prompter.store(std::sync::Arc::new(p));
    }

    /// An MFA code is needed for `node` and nothing can supply it: tell the
    /// user, or raise the dialog, without waiting for either.
    pub(super) fn mfa_needed(&self, node: &Node, m: &MfaSpec) {
        // A refresh loop at the session's end is not a consumer: nobody is
        // asked for a session no profile was served from lately.
        let now = self.now();
        if !Self::riders(&self.graph(), &node.spec.id, now).1 {
            tracing::debug!(node = %node.spec.id, "MFA code needed, but no profile on the session is in use: not asking");
            return;
        }
        let p = self.inner.prompter.load_full();
        let mode = match m.prompt.as_deref().map(str::parse::<MfaPrompt>) {
            Some(Ok(mode)) => mode,
            Some(Err(e)) => {
                tracing::warn!(profile = %m.profile, "credd_mfa_prompt: {e}; using the default");
                p.default
            }
            None => p.default,
        };
        let dialog = match (mode, &p.dialog) {
            (MfaPrompt::Dialog, Some(d)) => Some(d.clone()),
            _ => None,
        };
        if !p.claim(&node.spec.id, now, dialog.is_some()) {
            return;
        }
        let profile = m.profile.clone();
        let Some(dialog) = dialog else {
            if mode == MfaPrompt::Dialog {
                tracing::info!("mfa_prompt is dialog but no dialog program was found (zenity, kdialog, osascript): notifying instead");
            }
            self.inner.sso.notifier().notify(
                "credd: MFA code needed",
                &format!("A program needs profile {profile}: run `credd mfa {profile}` with a code from {}", m.serial),
            );
            return;
        };
        let this = self.clone();
        let id = node.spec.id.clone();
        let cancel = self.inner.cancel.clone();
        let text = format!("MFA code for AWS profile {profile} ({})", m.serial);
        tracing::info!(profile = %profile, "asking for an MFA code in a dialog");
        self.inner.tasks.spawn(async move {
            let asked = async {
                let out = tokio::time::timeout(DIALOG_LIMIT, dialog.command(&text).output()).await;
                match out {
                    Ok(Ok(o)) if o.status.success() => code_from(&o.stdout),
                    _ => None,
                }
            };
            let code = tokio::select! {
                _ = cancel.cancelled() => None,
                c = asked => c,
            };
            this.inner.prompter.load().dialog_closed(&id);
            match code {
                None => tracing::info!(profile = %profile, "the MFA dialog was cancelled or gave no code"),
                Some(code) => match this.submit_mfa(&profile, code).await {
                    Ok(_) => tracing::info!(profile = %profile, "MFA session started from the dialog"),
                    Err(e) => {
                        tracing::warn!(profile = %profile, error = %e, "the code from the dialog was refused");
                        this.inner.sso.notifier().notify("credd: MFA code refused", &e.to_string());
                    }
                },
            }
        });
    }
}

/// Six digits (surrounding blanks aside) from the dialog's output, else
/// nothing. The output is wiped either way.
fn code_from(out: &[u8]) -> Option<SecretString> {
    let text = String::from_utf8_lossy(out);
    let t = text.trim();
    let ok = t.len() == 6 && t.bytes().all(|b| b.is_ascii_digit());
    let code = ok.then(|| SecretString::new(t.to_string()));
    drop(text);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_parse_and_refuse_typos() {
        assert_eq!("dialog".parse::<MfaPrompt>(), Ok(MfaPrompt::Dialog));
        assert_eq!(" notify ".parse::<MfaPrompt>(), Ok(MfaPrompt::Notify));
        assert!("dailog"
            .parse::<MfaPrompt>()
            .unwrap_err()
            .contains("\"dialog\""));
    }

    #[test]
    fn codes_are_six_digits() {
        assert!(code_from(b"123456\n").is_some());
        assert!(code_from(b"12345\n").is_none());
        assert!(code_from(b"abcdef").is_none());
        assert!(code_from(b"").is_none());
    }

    #[test]
    fn dialogs_are_found_on_a_desktop_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kdialog"), "").unwrap();
        assert_eq!(Dialog::detect(Some(dir.path()), false, false), None);
        let k = Dialog::detect(Some(dir.path()), false, true).unwrap();
        assert!(k.program.ends_with("kdialog"));
        std::fs::write(dir.path().join("zenity"), "").unwrap();
        let z = Dialog::detect(Some(dir.path()), false, true).unwrap();
        assert!(z.program.ends_with("zenity"), "zenity first");
        let cmd = z.command("MFA code for AWS profile dev");
        let args: Vec<_> = cmd.as_std().get_args().collect();
        assert_eq!(args[..2], ["--entry", "--hide-text"]);
        assert_eq!(
            credd_core::child_env::removed_from(cmd.as_std()),
            credd_core::child_env::REMOVED
        );
    }

    #[test]
    fn one_ask_per_quiet_period_and_one_dialog_at_a_time() {
        let p = Prompter::default();
        let id = NodeId("mfa:AKIA:arn".into());
        let t0 = time::macros::datetime!(2026-11-23 09:00 UTC);
        assert!(p.claim(&id, t0, true));
        assert!(!p.claim(&id, t0 + Duration::hours(1), false), "dialog up");
        p.dialog_closed(&id);
        assert!(!p.claim(&id, t0 + Duration::minutes(4), false));
        assert!(p.claim(&id, t0 + Duration::minutes(5), false));
        p.forget(&id);
        assert!(p.claim(&id, t0 + Duration::minutes(6), false));
    }
}

#[cfg(test)]
mod dialog_tests {
    use super::*;
    use crate::testing::*;
    use credd_core::profile::{Base, NodeKind};
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, body: &str) -> Dialog {
        let p = dir.join("zenity");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        Dialog::detect(Some(dir), false, true).unwrap()
    }

    async fn until(mut f: impl FnMut() -> bool) -> bool {
        for _ in 0..500 {
            if f() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn the_code_typed_in_the_dialog_starts_the_session_and_no_request_waits() {
        let dir = tempfile::tempdir().unwrap();
        let asked = dir.path().join("asked");
        let d = script(
            dir.path(),
            &format!("echo \"$@\" >> {}; sleep 0.3; echo 123456", asked.display()),
        );
        let h = harness();
        h.broker
            .set_mfa_prompter(Prompter::new(MfaPrompt::Dialog, Some(d)));
        let started = std::time::Instant::now();
        let e = h.broker.get("mfa-a").await.unwrap_err().to_string();
        assert!(e.contains("credd mfa mfa-a"), "{e}");
        // Another consumer while the dialog is up: its own fast error, no
        // second dialog.
        assert!(h.broker.get("mfa-b").await.is_err());
        assert!(started.elapsed() < std::time::Duration::from_millis(250));
        assert!(until(|| h.upstream.count("GetSessionToken+MFA") == 1).await);
        h.broker.get("mfa-a").await.unwrap();
        h.broker.get("mfa-b").await.unwrap();
        let text = std::fs::read_to_string(&asked).unwrap();
        assert_eq!(text.lines().count(), 1, "one dialog: {text}");
        assert!(
            text.contains("--hide-text") && text.contains("mfa-a"),
            "{text}"
        );
        assert!(
            h.notifier.sent.lock().unwrap().is_empty(),
            "no notification"
        );
        h.cancel.cancel();
    }

    #[tokio::test]
    async fn a_cancelled_dialog_is_as_if_none_and_not_raised_again_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let asked = dir.path().join("asked");
        let d = script(
            dir.path(),
            &format!("echo x >> {}; exit 1", asked.display()),
        );
        let h = harness();
        h.broker
            .set_mfa_prompter(Prompter::new(MfaPrompt::Dialog, Some(d)));
        assert!(h.broker.get("mfa-a").await.is_err());
        assert!(until(|| asked.exists()).await);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            h.broker.get("mfa-a").await.is_err(),
            "no code: still needed"
        );
        h.clock.advance(Duration::minutes(1));
        assert!(h.broker.get("mfa-a").await.is_err());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(std::fs::read_to_string(&asked).unwrap().lines().count(), 1);
        assert_eq!(h.upstream.count("GetSessionToken+MFA"), 0);
        // Past the quiet period it asks again.
        h.clock.advance(QUIET);
        assert!(h.broker.get("mfa-a").await.is_err());
        assert!(until(|| std::fs::read_to_string(&asked).unwrap().lines().count() == 2).await);
        h.cancel.cancel();
    }

    #[tokio::test]
    async fn notify_is_the_default_and_names_the_command() {
        let h = harness();
        assert!(h.broker.get("mfa-a").await.is_err());
        assert!(h.broker.get("mfa-b").await.is_err());
        let sent = h.notifier.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1, "one per quiet period: {sent:?}");
        assert_eq!(sent[0].0, "credd: MFA code needed");
        assert!(sent[0].1.contains("run `credd mfa mfa-a`"), "{sent:?}");
        h.cancel.cancel();
    }

    #[tokio::test]
    async fn nobody_is_asked_for_a_session_not_in_use() {
        let h = harness();
        *h.upstream.mfa_lifetime.lock().unwrap() = Some(Duration::hours(2));
        h.broker
            .submit_mfa("mfa-a", SecretString::new("123456"))
            .await
            .unwrap();
        // Never requested: the role's loop alone reaches the session's end.
        h.clock.advance(Duration::hours(3));
        settle().await;
        let node = {
            let g = h.broker.graph();
            g.nodes
                .values()
                .find(|n| n.spec.id.0.starts_with("mfa:"))
                .unwrap()
                .clone()
        };
        let NodeKind::Base(Base::Session(s)) = &node.spec.kind else {
            unreachable!()
        };
        h.broker.mfa_needed(&node, s.mfa.as_ref().unwrap());
        assert!(h.notifier.sent.lock().unwrap().is_empty());
        // A request: the consumer is told.
        assert!(h.broker.get("mfa-a").await.is_err());
        assert_eq!(h.notifier.sent.lock().unwrap().len(), 1);
        h.cancel.cancel();
    }
}
