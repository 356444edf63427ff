//! `credd login --profile P` for a SAML profile: runs its
//! `credd_saml_process` in the foreground with the user's terminal (stdin
//! and stderr inherited, stdout captured and checked, never shown), so a
//! helper that needs a browser or a push approval can ask, and then has the
//! daemon refresh the profile at once. The helper caches its IdP session (as
//! saml2aws does), so the daemon's own unattended runs succeed from then on.
//! The assertion itself is dropped here: the daemon's run makes its own.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::client::call;
use anyhow::{anyhow, Context, Result};
use credd_core::login::SamlSpec;
use credd_daemon::control::{ClientError, Request};
use credd_daemon::protocol::Refreshed;

/// The SAML profile `credd login --profile P` names, if it is one; `None`
/// for anything else, including a profile that does not resolve (the
/// Identity Center login then says what is wrong with it).
pub async fn spec_of(profile: Option<&str>) -> Option<SamlSpec> {
    let profile = profile?;
    let env = credd_aws::ProfileEnv::from_process_env();
    let loaded = credd_aws::load_profiles(&env).await.ok()?;
    match credd_core::profile::resolve(&loaded.raw, profile)
        .ok()?
        .base
    {
        credd_core::profile::Base::Saml(spec) => Some(spec),
        _ => None,
    }
}

pub async fn login(spec: SamlSpec) -> Result<()> {
    eprintln!(
        "Running the SAML helper of profile '{}' (it may open a browser or ask for an approval)...",
        spec.profile
    );
    let command = spec.process.clone();
    tokio::task::spawn_blocking(move || credd_aws::saml::run_interactive(&command))
        .await
        .context("the SAML helper's run was interrupted")?
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| {
            format!(
                "the SAML helper of profile '{}' (credd_saml_process) did not print an assertion",
                spec.profile
            )
        })?;
    let r: Refreshed = match call(Request::Refresh {
        profile: spec.profile.clone(),
    })
    .await
    {
        Ok(r) => r,
        Err(e)
            if e.chain()
                .any(|c| matches!(c.downcast_ref(), Some(ClientError::NotRunning(_)))) =>
        {
            eprintln!(
                "The SAML helper works. (The credd daemon is not running; it runs the helper when it starts.)"
            );
            return Ok(());
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "the SAML helper works, but the daemon could not renew profile '{}'",
                    spec.profile
                )
            })
        }
    };
    eprintln!(
        "Signed in: profile '{}' is served until {}, and credd re-runs the helper for each refresh.",
        spec.profile, r.expires
    );
    Ok(())
}
