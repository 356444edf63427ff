//! `credd env PROFILE`: prints what `credd exec` would set, as exports.
//! With `--static`, the keys themselves: then an MFA code or a sign-in the
//! profile needs is asked for on the terminal first.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::cli::{EnvArgs, Shell};
use crate::client::call;
use crate::output::render_env;
use anyhow::{Context, Result};
use credd_daemon::control::Request;
use credd_daemon::protocol::{Credentials, EndpointReply};
use serde_json::Value;

pub async fn run(a: EnvArgs) -> Result<()> {
    let mut vars: Vec<(String, Option<String>)> = Vec::new();
    if a.static_keys {
        let ep: EndpointReply = call(Request::Endpoint {
            profile: Some(a.profile.clone()),
        })
        .await?;
        let c: Value = crate::ask::credentials(&a.profile)
            .await
            .map_err(crate::ask::Unready::into_error)?;
        if a.format == Shell::Json {
            println!("{}", serde_json::to_string_pretty(&c)?);
            return Ok(());
        }
        // Keys in the environment win over every profile, but an explicit
        // AWS_PROFILE makes the AWS CLI ignore them.
        for v in ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"] {
            vars.push((v.into(), None));
        }
        let c: Credentials = serde_json::from_value(c)
            .context("the daemon's credentials document is not the credential_process shape")?;
        for (var, value) in [
            ("AWS_ACCESS_KEY_ID", c.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", c.secret_access_key),
            ("AWS_SESSION_TOKEN", c.session_token),
            ("AWS_CREDENTIAL_EXPIRATION", c.expiration),
        ] {
            vars.push((var.into(), Some(value)));
        }
        if let Some(r) = ep.region {
            vars.push(("AWS_REGION".into(), Some(r.clone())));
            vars.push(("AWS_DEFAULT_REGION".into(), Some(r)));
        }
    } else {
        let env = crate::child_env::child_env(
            &a.profile,
            &crate::child_env::Options {
                imds: a.imds,
                keep_aws_config: a.keep_aws_config,
                token_ttl: a.token_ttl.clone(),
                label: format!("env {}", a.profile),
            },
        )
        .await?;
        vars = env.vars;
    }
    // As `credd exec` sets it: the profile, for a prompt to show.
    vars.push(("CREDD_PROFILE".into(), Some(a.profile.clone())));
    let vars: Vec<(&str, Option<String>)> =
        vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    print!("{}", render_env(a.format, &vars));
    Ok(())
}
