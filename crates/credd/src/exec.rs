//! `credd exec PROFILE -- CMD`: runs CMD pointed at the endpoint with a token
//! scoped to PROFILE (in a 0600 file, never in argv or env), revoked when CMD
//! exits; credd exits with CMD's status.

use crate::cli::ExecArgs;
use crate::commands::{call, endpoint_url, issue_token_file};
use anyhow::{Context, Result};
use credd_daemon::control::Request;
use std::process::ExitCode;

/// Variables removed so that SDKs do not pick other credentials before the
/// endpoint (the environment provider comes first in every default chain).
pub const REMOVED: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

pub async fn run(a: ExecArgs) -> Result<ExitCode> {
    let ep = call(Request::Endpoint {
        profile: Some(a.profile.clone()),
    })
    .await?;
    let program = a.command[0].clone();
    let (token_file, id) =
        issue_token_file(&a.profile, &a.token_ttl, format!("exec {program}")).await?;
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&a.command[1..]);
    for v in REMOVED {
        cmd.env_remove(v);
    }
    cmd.env(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        endpoint_url(ep["container_url"].as_str().unwrap_or_default(), &a.profile),
    );
    cmd.env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file);
    if let Some(r) = ep["region"].as_str() {
        cmd.env("AWS_REGION", r);
        cmd.env("AWS_DEFAULT_REGION", r);
    }
    let result = supervise(cmd, &program).await;
    // Whatever happened to the command, its token dies with it.
    if let Err(e) = call(Request::TokenRevoke { id: id.clone() }).await {
        tracing::warn!(error = %e, "could not revoke the command's token; it expires on its own");
    }
    let _ = std::fs::remove_file(&token_file);
    result
}

async fn supervise(mut cmd: tokio::process::Command, program: &str) -> Result<ExitCode> {
    use tokio::signal::unix::{signal, SignalKind};
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
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let status = loop {
        tokio::select! {
            s = child.wait() => break s.context("failed to wait for the command")?,
            _ = int.recv() => {}
            _ = term.recv() => forward(&child, rustix::process::Signal::TERM),
            _ = hup.recv() => forward(&child, rustix::process::Signal::HUP),
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
