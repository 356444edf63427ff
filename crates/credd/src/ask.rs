//! Asking the person at the terminal, for the commands people type
//! (`credd exec`, `env --static`, `write-credentials`): when the daemon says
//! a profile needs them (an MFA code, a sign-in), ask there and go on;
//! without a terminal, fail with the command to run. Also the one way an
//! MFA code is read (no echo on a terminal), shared with `credd mfa`.
//!
//! The daemon's refusal says what it needs, typed (`needs` in the control
//! protocol's error envelope, decided by the broker: `broker/needs.rs`):
//! [`needed`] turns that into what to do here, and the message is only
//! shown, never read. A refusal without `needs` (any other failure, or a
//! daemon older than this binary) is not asked about.
//!
//! Layering: a leaf; it imports only `client`.

use crate::client::call;
use anyhow::{bail, Context, Result};
use credd_daemon::control::{ClientError, Refusal, Request};
use credd_daemon::protocol::{MfaSerial, MfaStarted, Needs, NeedsKind};
use serde_json::Value;
use std::io::IsTerminal;

/// How many times the user is asked before credd gives up (a mistyped
/// code, a sign-in that did not take).
const ROUNDS: usize = 3;

/// Whether there is a person to ask: standard input and standard error are
/// both terminals (standard output may be a pipe: `eval "$(credd env ...)"`).
pub fn has_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// What this command can do about what the daemon says a profile needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needed {
    /// A code for the MFA session behind this profile.
    Mfa { profile: String },
    /// A sign-in: `credd login` with these arguments.
    SignIn { args: Vec<String> },
    /// Something only the person can do elsewhere (unlock the keychain, a
    /// kind this binary does not know): the command to run afterwards.
    Elsewhere { what: &'static str, command: String },
}

impl Needed {
    /// The command the user would type.
    pub fn command(&self) -> String {
        match self {
            Needed::Mfa { profile } => format!("credd mfa {profile}"),
            Needed::SignIn { args } if args.is_empty() => "credd login".into(),
            Needed::SignIn { args } => format!("credd login {}", args.join(" ")),
            Needed::Elsewhere { command, .. } => command.clone(),
        }
    }

    /// What is needed, for a person.
    fn what(&self) -> &'static str {
        match self {
            Needed::Mfa { .. } => "an MFA code",
            Needed::SignIn { .. } => "a sign-in",
            Needed::Elsewhere { what, .. } => what,
        }
    }
}

/// What to do for `profile` about the daemon's typed `needs`. The MFA
/// code is asked for the profile being served (the daemon finds its MFA
/// session from it); a sign-in runs the daemon's command, whose words are
/// `credd login` and its arguments.
pub fn needed(profile: &str, needs: &Needs) -> Needed {
    let words: Vec<&str> = needs.command.split_whitespace().collect();
    match (needs.kind, words.as_slice()) {
        (NeedsKind::Mfa, _) => Needed::Mfa {
            profile: profile.to_string(),
        },
        (NeedsKind::SignIn, ["credd", "login", args @ ..]) => Needed::SignIn {
            args: args.iter().map(|s| s.to_string()).collect(),
        },
        (NeedsKind::KeychainUnlock, _) => Needed::Elsewhere {
            what: "its keychain unlocked",
            command: needs.command.clone(),
        },
        _ => Needed::Elsewhere {
            what: "you",
            command: needs.command.clone(),
        },
    }
}

/// The daemon's refusal in an error's chain, if that is what it is.
fn refusal(e: &anyhow::Error) -> Option<&Refusal> {
    e.chain()
        .find_map(|c| match c.downcast_ref::<ClientError>() {
            Some(ClientError::Daemon(r)) => Some(r),
            _ => None,
        })
}

/// The daemon's refusal's message in an error's chain, if that is what it is.
pub fn daemon_message(e: &anyhow::Error) -> Option<&str> {
    refusal(e).map(|r| r.message.as_str())
}

/// What the daemon's refusal in an error's chain needs from the person.
pub fn daemon_needs(e: &anyhow::Error) -> Option<&Needs> {
    refusal(e).and_then(|r| r.needs.as_ref())
}

/// Why [`credentials`] could not get them.
#[derive(Debug)]
pub enum Unready {
    /// The profile needs the user, who could not be asked or did not get
    /// it through: the error names the command to run.
    NeedsUser(anyhow::Error),
    /// Any other refusal or failure (the daemon keeps trying on its own).
    Other(anyhow::Error),
}

impl Unready {
    pub fn into_error(self) -> anyhow::Error {
        match self {
            Unready::NeedsUser(e) | Unready::Other(e) => e,
        }
    }
}

/// The profile's credentials (the `credential_process` document) from the
/// daemon's cache; when the daemon says the profile needs an MFA code or a
/// sign-in, asks for it on the terminal first (or fails naming the command
/// when there is none).
pub async fn credentials(profile: &str) -> std::result::Result<Value, Unready> {
    let mut round = 0;
    loop {
        round += 1;
        let err = match call::<Value>(Request::Credentials {
            profile: profile.to_string(),
        })
        .await
        {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(need) = daemon_needs(&err).map(|n| needed(profile, n)) else {
            return Err(Unready::Other(err));
        };
        if let Needed::Elsewhere { what, command } = &need {
            return Err(Unready::NeedsUser(err.context(format!(
                "profile '{profile}' needs {what}: then run `{command}`, and this again"
            ))));
        }
        if !has_terminal() {
            return Err(Unready::NeedsUser(err.context(format!(
                "profile '{profile}' needs {} and there is no terminal to ask on: run `{}`, then this again",
                need.what(),
                need.command()
            ))));
        }
        if round > ROUNDS {
            return Err(Unready::NeedsUser(err.context(format!(
                "profile '{profile}' still cannot be served after {ROUNDS} tries"
            ))));
        }
        let done = match &need {
            Needed::Mfa { profile } => start_mfa(profile).await.map(drop),
            Needed::SignIn { args } => sign_in(args).await,
            Needed::Elsewhere { .. } => unreachable!("returned above"),
        };
        if let Err(e) = done {
            // A mistyped or refused code says so and the user tries again
            // (up to ROUNDS); a sign-in the user declined or that failed
            // ends here.
            match need {
                Needed::Mfa { .. } => eprintln!("credd: {e:#}"),
                _ => return Err(Unready::NeedsUser(e)),
            }
        }
    }
}

/// Asks for a code for the MFA session behind `profile` and starts it, as
/// `credd mfa` does.
pub async fn start_mfa(profile: &str) -> Result<MfaStarted> {
    let serial: MfaSerial = call(Request::MfaSerial {
        profile: profile.to_string(),
    })
    .await?;
    let code = read_mfa_code(&serial.serial, profile)?;
    let started: MfaStarted = call(Request::Mfa {
        profile: profile.to_string(),
        code,
    })
    .await?;
    eprintln!(
        "credd: MFA session started for '{profile}'; it lasts until {}",
        started.expires
    );
    Ok(started)
}

/// Reads an MFA code: without echo from a terminal, else a line of
/// standard input (`ykman ... | credd mfa P`). Digits only.
pub fn read_mfa_code(serial: &str, profile: &str) -> Result<String> {
    let prompt = format!("MFA code for {serial} (profile '{profile}'): ");
    let line = if std::io::stdin().is_terminal() {
        // The code is a secret for its 30 seconds: not left on the screen.
        tokio::task::block_in_place(|| rpassword::prompt_password(&prompt))
            .context("failed to read the MFA code from the terminal")?
    } else {
        use std::io::Write;
        eprint!("{prompt}");
        std::io::stderr().flush().ok();
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("failed to read the MFA code from standard input")?;
        line
    };
    let code = line.trim().to_string();
    if code.is_empty() || !code.chars().all(|c| c.is_ascii_digit()) {
        bail!(
            "an MFA code is digits only (got {} characters); try again with a fresh code",
            code.len()
        );
    }
    Ok(code)
}

/// Asks "sign in now?" and runs `credd login ARGS` (this binary) with the
/// terminal, its output on standard error so that a captured standard
/// output (`eval "$(credd env ...)"`) gets only what it asked for.
async fn sign_in(args: &[String]) -> Result<()> {
    let command = Needed::SignIn {
        args: args.to_vec(),
    }
    .command();
    if !confirm(&format!(
        "credd: this needs a sign-in (`{command}`). Sign in now? [Y/n] "
    ))? {
        bail!("not signed in: run `{command}`, then this again");
    }
    let exe = std::env::current_exe().context("failed to find the credd binary")?;
    let stderr = std::os::fd::AsFd::as_fd(&std::io::stderr())
        .try_clone_to_owned()
        .context("failed to hand the terminal to the sign-in")?;
    let status = tokio::process::Command::new(exe)
        .arg("login")
        .args(args)
        .stdout(stderr)
        .status()
        .await
        .context("failed to start the sign-in")?;
    if !status.success() {
        bail!("the sign-in did not complete: run `{command}` to try again");
    }
    Ok(())
}

/// A yes/no question on the terminal; an empty answer is yes.
fn confirm(question: &str) -> Result<bool> {
    use std::io::Write;
    eprint!("{question}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    tokio::task::block_in_place(|| std::io::stdin().read_line(&mut line))
        .context("failed to read the answer")?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "" | "y" | "yes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(kind: NeedsKind, session: &str, command: &str) -> Needs {
        Needs {
            kind,
            session: session.into(),
            command: command.into(),
        }
    }

    #[test]
    fn what_is_done_is_decided_by_the_typed_field() {
        // The MFA code is asked for the profile being served, whatever the
        // session's key profile.
        assert_eq!(
            needed("admin", &needs(NeedsKind::Mfa, "base", "credd mfa admin")),
            Needed::Mfa {
                profile: "admin".into()
            }
        );
        assert_eq!(
            needed("dev", &needs(NeedsKind::SignIn, "work", "credd login work")),
            Needed::SignIn {
                args: vec!["work".into()]
            }
        );
        let login = needed(
            "admin",
            &needs(
                NeedsKind::SignIn,
                "arn:aws:iam::123456789012:user/me",
                "credd login --profile me",
            ),
        );
        assert_eq!(login.command(), "credd login --profile me");
        assert_eq!(
            needed(
                "ops",
                &needs(NeedsKind::KeychainUnlock, "ops", "credd keys list")
            ),
            Needed::Elsewhere {
                what: "its keychain unlocked",
                command: "credd keys list".into()
            }
        );
        // A sign-in this binary cannot run, and a kind it does not know:
        // named, never run.
        for n in [
            needs(NeedsKind::SignIn, "s", "aws sso login --sso-session s"),
            needs(NeedsKind::Other, "s", "credd touch s"),
        ] {
            assert!(
                matches!(needed("p", &n), Needed::Elsewhere { ref command, .. } if *command == n.command),
                "{n:?}"
            );
        }
    }

    #[test]
    fn only_the_daemons_typed_field_decides_never_its_words() {
        let typed = anyhow::Error::new(ClientError::Daemon(Refusal {
            message: "something went wrong".into(),
            needs: Some(needs(NeedsKind::Mfa, "x", "credd mfa x")),
        }))
        .context("failed to get credentials");
        assert_eq!(daemon_message(&typed), Some("something went wrong"));
        assert_eq!(daemon_needs(&typed).unwrap().kind, NeedsKind::Mfa);
        // A message naming the command, without the field (an older daemon,
        // or any other failure): nothing to ask.
        let words = anyhow::Error::new(ClientError::Daemon(
            "MFA code needed: run `credd mfa x`".into(),
        ));
        assert_eq!(
            daemon_message(&words),
            Some("MFA code needed: run `credd mfa x`")
        );
        assert_eq!(daemon_needs(&words), None);
        assert_eq!(daemon_message(&anyhow::anyhow!("run `credd mfa x`")), None);
    }
}
