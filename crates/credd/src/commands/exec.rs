//! `credd exec PROFILE -- CMD`: runs CMD pointed at the endpoint with a token
//! scoped to PROFILE, revoked when CMD exits; credd exits with CMD's status.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::child_env::{child_env, Options};
use crate::cli::ExecArgs;
use crate::client::call;
use anyhow::{Context, Result};
use credd_daemon::control::Request;
use credd_daemon::protocol::Revoked;
use std::process::ExitCode;

pub async fn run(a: ExecArgs) -> Result<ExitCode> {
    let program = a.command[0].clone();
    let env = child_env(
        &a.profile,
        &Options {
            imds: a.imds,
            keep_aws_config: a.keep_aws_config,
            token_ttl: a.token_ttl.clone(),
            label: format!("exec {program}"),
        },
    )
    .await?;
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&a.command[1..]);
    for (k, v) in &env.vars {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
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
