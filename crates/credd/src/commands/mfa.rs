//! `credd mfa PROFILE [CODE]`: starts an MFA session in the daemon.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::client::call;
use anyhow::{bail, Result};
use credd_daemon::control::Request;
use credd_daemon::protocol::{MfaSerial, MfaStarted};

pub async fn run(a: crate::cli::MfaArgs) -> Result<()> {
    let serial: MfaSerial = call(Request::MfaSerial {
        profile: a.profile.clone(),
    })
    .await?;
    let code = match a.code {
        Some(c) => c,
        // No echo on a terminal; a line of standard input otherwise.
        None => crate::ask::read_mfa_code(&serial.serial, &a.profile)?,
    };
    if code.is_empty() || !code.chars().all(|c| c.is_ascii_digit()) {
        bail!(
            "an MFA code is digits only (got {} characters); try again with a fresh code",
            code.len()
        );
    }
    let v: MfaStarted = call(Request::Mfa {
        profile: a.profile.clone(),
        code,
    })
    .await?;
    eprintln!(
        "MFA session started for '{}'; it lasts until {}. Profiles built on it refresh without a new code until then.",
        a.profile,
        v.expires
    );
    Ok(())
}
