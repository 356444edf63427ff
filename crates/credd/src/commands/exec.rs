//! `credd exec PROFILE -- CMD`: runs CMD pointed at the endpoint with a token
//! scoped to PROFILE, revoked when CMD exits; credd exits with CMD's status.
//! Without CMD, the user's `$SHELL` (else `/bin/sh`). First it makes sure the
//! daemon can serve PROFILE, asking for an MFA code or a sign-in when it
//! needs one (and failing, naming the command, without a terminal), so the
//! command never starts only to read an SDK error.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::child_env::{child_env, Options};
use crate::cli::ExecArgs;
use crate::client::call;
use anyhow::{Context, Result};
use credd_daemon::control::Request;
use credd_daemon::protocol::Revoked;
use std::process::ExitCode;

/// The variable that names the profile in the child, for a prompt
/// (`credd prompt`) to show.
pub const PROFILE_VAR: &str = "CREDD_PROFILE";

pub async fn run(a: ExecArgs) -> Result<ExitCode> {
    ready(&a.profile).await?;
    let shell = a.command.is_empty();
    let (program, args) = match a.command.split_first() {
        Some((p, rest)) => (p.clone(), rest.to_vec()),
        None => (login_shell(), vec![]),
    };
    let env = child_env(
        &a.profile,
        &Options {
            imds: a.imds,
            keep_aws_config: a.keep_aws_config,
            token_ttl: a.token_ttl.clone(),
            label: if shell {
                "exec shell".into()
            } else {
                format!("exec {program}")
            },
        },
    )
    .await?;
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&args);
    for (k, v) in &env.vars {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.env(PROFILE_VAR, &a.profile);
    if shell {
        eprintln!(
            "credd: a shell with profile '{}' ({program}); `exit` leaves it and revokes its token",
            a.profile
        );
    }
    let result = supervise(cmd, &program).await;
    // Whatever happened to the command, its token dies with it.
    if let Some((id, file)) = env.token {
        if let Err(e) = call::<Revoked>(Request::TokenRevoke { id }).await {
            tracing::warn!(error = %e, "could not revoke the command's token; it expires on its own");
        }
        let _ = std::fs::remove_file(&file);
    }
    result
}

/// Makes sure the daemon can serve `profile` before anything starts: asks
/// for what it needs from the user, or fails naming the command. Any other
/// trouble (STS slow or unreachable) is the daemon's to retry while the
/// command runs: said, not fatal.
async fn ready(profile: &str) -> Result<()> {
    use crate::ask::Unready;
    match crate::ask::credentials(profile).await {
        Ok(_) => Ok(()),
        Err(Unready::NeedsUser(e)) => Err(e),
        Err(Unready::Other(e)) => match crate::ask::daemon_message(&e) {
            Some(m) if !m.starts_with("unknown profile") => {
                eprintln!("credd: warning: {e:#}; running the command anyway (credd keeps trying)");
                Ok(())
            }
            _ => Err(e),
        },
    }
}

/// The user's shell: `$SHELL`, else `/bin/sh`.
fn login_shell() -> String {
    std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".into())
}

async fn supervise(mut cmd: tokio::process::Command, program: &str) -> Result<ExitCode> {
    use crate::signals::{Sig, Signals};
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("credd: cannot run '{program}': command not found");
            return Ok(ExitCode::from(crate::exit::NOT_FOUND));
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("credd: cannot run '{program}': permission denied");
            return Ok(ExitCode::from(crate::exit::NOT_EXECUTABLE));
        }
        Err(e) => return Err(e).with_context(|| format!("failed to run '{program}'")),
    };
    // Ctrl-C reaches the command through the terminal; credd stays to clean up.
    let mut signals = Signals::with_hangup()?;
    let status = loop {
        tokio::select! {
            s = child.wait() => break s.context("failed to wait for the command")?,
            sig = signals.next() => match sig {
                Sig::Interrupt => {}
                Sig::Terminate => forward(&child, rustix::process::Signal::TERM),
                Sig::Hangup => forward(&child, rustix::process::Signal::HUP),
            },
        }
    };
    Ok(crate::exit::of(status))
}

fn forward(child: &tokio::process::Child, sig: rustix::process::Signal) {
    if let Some(pid) = child
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
    {
        let _ = rustix::process::kill_process(pid, sig);
    }
}
