//! Asking the person at the terminal, for the commands people type
//! (`credd exec`, `env --static`, `write-credentials`): when the daemon says
//! a profile needs them (an MFA code, a sign-in), ask there and go on;
//! without a terminal, fail with the command to run. Also the one way an
//! MFA code is read (no echo on a terminal), shared with `credd mfa`.
//!
//! The control protocol carries only a refusal's message, and every
//! "needs you" message names the command that fixes it (`credd mfa P`,
//! `credd login ...`): [`needed`] reads that command back, so the CLI does
//! exactly what the daemon would tell the user to do.
//!
//! Layering: a leaf; it imports only `client`.

use crate::client::call;
use anyhow::{bail, Context, Result};
use credd_daemon::control::{ClientError, Request};
use credd_daemon::protocol::{MfaSerial, MfaStarted};
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

/// What the daemon says a profile needs from the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needed {
    /// A code for the MFA session behind this profile.
    Mfa { profile: String },
    /// A sign-in: `credd login` with these arguments.
    SignIn { args: Vec<String> },
}

impl Needed {
    /// The command the user would type.
    pub fn command(&self) -> String {
        match self {
            Needed::Mfa { profile } => format!("credd mfa {profile}"),
            Needed::SignIn { args } if args.is_empty() => "credd login".into(),
            Needed::SignIn { args } => format!("credd login {}", args.join(" ")),
        }
    }
}

/// The first `credd mfa P` or `credd login ...` a daemon message names
/// between backticks, if any.
pub fn needed(message: &str) -> Option<Needed> {
    // The odd pieces of a split on '`' are the quoted spans.
    for span in message.split('`').skip(1).step_by(2) {
        let words: Vec<&str> = span.split_whitespace().collect();
        match words.as_slice() {
            ["credd", "mfa", profile] => {
                return Some(Needed::Mfa {
                    profile: profile.to_string(),
                })
            }
            ["credd", "login", rest @ ..] => {
                return Some(Needed::SignIn {
                    args: rest.iter().map(|s| s.to_string()).collect(),
                })
            }
            _ => {}
        }
    }
    None
}

/// The daemon's refusal in an error's chain, if that is what it is.
pub fn daemon_message(e: &anyhow::Error) -> Option<&str> {
    e.chain()
        .find_map(|c| match c.downcast_ref::<ClientError>() {
            Some(ClientError::Daemon(m)) => Some(m.as_str()),
            _ => None,
        })
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
        let Some(need) = daemon_message(&err).and_then(needed) else {
            return Err(Unready::Other(err));
        };
        // A bare `credd login` (the login cache's own message) is the
        // sign-in behind this profile.
        let need = match need {
            Needed::SignIn { args } if args.is_empty() => Needed::SignIn {
                args: vec!["--profile".into(), profile.to_string()],
            },
            n => n,
        };
        if !has_terminal() {
            let what = match need {
                Needed::Mfa { .. } => "an MFA code",
                Needed::SignIn { .. } => "a sign-in",
            };
            return Err(Unready::NeedsUser(err.context(format!(
                "profile '{profile}' needs {what} and there is no terminal to ask on: run `{}`, then this again",
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
        };
        if let Err(e) = done {
            // A mistyped or refused code says so and the user tries again
            // (up to ROUNDS); a sign-in the user declined or that failed
            // ends here.
            match need {
                Needed::Mfa { .. } => eprintln!("credd: {e:#}"),
                Needed::SignIn { .. } => return Err(Unready::NeedsUser(e)),
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

    #[test]
    fn the_daemons_messages_name_what_is_needed() {
        assert_eq!(
            needed("MFA code needed: run `credd mfa dev`"),
            Some(Needed::Mfa {
                profile: "dev".into()
            })
        );
        assert_eq!(
            needed("the MFA code was refused (bad): run `credd mfa dev` with a fresh code"),
            Some(Needed::Mfa {
                profile: "dev".into()
            })
        );
        assert_eq!(
            needed("SSO session 'work' ended: run `credd login work`"),
            Some(Needed::SignIn {
                args: vec!["work".into()]
            })
        );
        let login = needed(
            "the aws login session of profile 'me' has ended (x); sign in again: run `aws login --profile me` or `credd login --profile me`",
        )
        .unwrap();
        assert_eq!(login.command(), "credd login --profile me");
        assert_eq!(
            needed("x: run `aws login` (or `credd login`) to sign in again"),
            Some(Needed::SignIn { args: vec![] })
        );
        for other in [
            "unknown profile 'x': it is not in the AWS config or credentials file (see `credd profiles`)",
            "STS unreachable (timeout), retrying in 5 s",
            "a `credd mfa` without a profile",
        ] {
            assert_eq!(needed(other), None, "{other}");
        }
    }

    #[test]
    fn only_the_daemons_refusals_are_read() {
        let refused = anyhow::Error::new(ClientError::Daemon(
            "MFA code needed: run `credd mfa x`".into(),
        ))
        .context("failed to get credentials");
        assert_eq!(
            daemon_message(&refused),
            Some("MFA code needed: run `credd mfa x`")
        );
        assert_eq!(daemon_message(&anyhow::anyhow!("run `credd mfa x`")), None);
    }
}
