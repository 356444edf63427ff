//! `credd credential-process PROFILE`: the AWS `credential_process`
//! protocol. Never reads stdin and never prompts: an IDE runs this with no
//! terminal and a time limit.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::client::call;
use anyhow::Result;
use credd_daemon::control::Request;

pub async fn run(a: crate::cli::ProfileArg) -> Result<()> {
    // Passed through as the daemon sent it (the credential_process document).
    let v: serde_json::Value = call(Request::ProcessCredentials { profile: a.profile }).await?;
    println!("{}", serde_json::to_string(&v)?);
    Ok(())
}
