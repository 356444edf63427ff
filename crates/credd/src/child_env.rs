//! What a child of `credd exec` (and `credd env`, `credd docker`) gets: the
//! endpoint with a token scoped to the profile ([`child_env`]).
//!
//! Nothing in the user's files or environment may win over credd in the
//! child: SDKs look at the environment and at the profile's settings
//! (keys, `role_arn`, `sso_session`, `credential_process`...) before the
//! container endpoint. So the child gets an overlay config (`AWS_CONFIG_FILE`)
//! holding only the chosen profile's non-credential settings as `[default]`,
//! an empty credentials file (`AWS_SHARED_CREDENTIALS_FILE`), and none of
//! the variables that name other credentials or another profile.
//!
//! Layering: a leaf shared by `exec`, `env`, `docker` and `profiles link`;
//! it imports leaves only (`client`, `environment`).

use crate::client::{call, endpoint_url, issue_token_file, parse_ttl, IssuedToken};
use anyhow::{bail, Context, Result};
use credd_core::overlay::ProfileSettings;
use credd_daemon::control::Request;
use credd_daemon::protocol::EndpointReply;
use std::path::{Path, PathBuf};

/// Variables removed so that SDKs do not pick other credentials or another
/// profile before the endpoint (the environment and the profile come first
/// in every default chain).
pub const REMOVED: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    // The Java SDK v1's names for the keys.
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    // Web identity from the environment comes before the container endpoint.
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
];

/// Removed as well with `--imds`: the container endpoint comes before IMDS,
/// and IMDS must not be disabled.
const REMOVED_FOR_IMDS: &[&str] = &[
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
];

/// How the child is pointed at credd.
#[derive(Debug, Clone)]
pub struct Options {
    /// Through the IMDSv2 emulation instead of the container endpoint.
    pub imds: bool,
    /// Leave the user's AWS files visible (no overlay).
    pub keep_aws_config: bool,
    pub token_ttl: String,
    pub label: String,
}

/// The variables to set (`Some`) and unset (`None`), in order, and the
/// token issued for them.
#[derive(Debug, Default)]
pub struct ChildEnv {
    pub vars: Vec<(String, Option<String>)>,
    /// The token's id and file, when one was issued (not with `--imds`).
    pub token: Option<(String, PathBuf)>,
}

/// What `credd exec` sets for its child and `credd env` prints.
pub async fn child_env(profile: &str, o: &Options) -> Result<ChildEnv> {
    let ep: EndpointReply = call(Request::Endpoint {
        profile: Some(profile.to_string()),
    })
    .await?;
    if o.imds {
        check_imds(&ep, profile)?;
    }
    parse_ttl(&o.token_ttl)?;
    let mut env = ChildEnv::default();
    let unset = |env: &mut ChildEnv, names: &[&str]| {
        for v in names {
            env.vars.push((v.to_string(), None));
        }
    };
    unset(&mut env, REMOVED);
    if o.imds {
        unset(&mut env, REMOVED_FOR_IMDS);
        let url = ep.imds_url.clone().unwrap_or_default();
        env.vars
            .push(("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), Some(url)));
    } else {
        let IssuedToken {
            path: file,
            id,
            token,
        } = issue_token_file(profile, &o.token_ttl, o.label.clone(), None).await?;
        let url = endpoint_url(&ep.container_url, profile);
        env.vars
            .push(("AWS_CONTAINER_CREDENTIALS_FULL_URI".into(), Some(url)));
        env.vars.push((
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".into(),
            Some(file.display().to_string()),
        ));
        // The same token in the variable too: the legacy JS container
        // provider (the VS Code AWS Toolkit) reads only the variable. SDKs
        // that read both get the same value whichever they prefer.
        env.vars
            .push(("AWS_CONTAINER_AUTHORIZATION_TOKEN".into(), Some(token)));
        env.token = Some((id, file));
    }
    if o.keep_aws_config {
        // The user chose to see their files: say what in them wins.
        for s in ep.files.findings().shadows {
            eprintln!("credd: warning (--keep-aws-config): {}", s.message);
        }
    } else {
        let (config, credentials) = write_overlay(profile, &settings_of(&ep), &[])?;
        env.vars
            .push(("AWS_CONFIG_FILE".into(), Some(config.display().to_string())));
        env.vars.push((
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            Some(credentials.display().to_string()),
        ));
    }
    if let Some(r) = &ep.region {
        env.vars.push(("AWS_REGION".into(), Some(r.clone())));
        env.vars
            .push(("AWS_DEFAULT_REGION".into(), Some(r.clone())));
    }
    Ok(env)
}

/// `--imds` only works when the daemon runs the emulation for this profile.
fn check_imds(ep: &EndpointReply, profile: &str) -> Result<()> {
    match (ep.imds_url.as_deref(), ep.imds_profile.as_deref()) {
        (Some(_), Some(p)) if p == profile => Ok(()),
        (Some(_), Some(p)) => bail!(
            "the daemon's IMDS emulation serves profile '{p}', not '{profile}': use the container endpoint \
             (drop --imds) or restart the daemon with `--imds-profile {profile}`"
        ),
        _ => bail!(
            "the daemon does not run the IMDS emulation: start it with \
             `credd serve --imds-listen 127.0.0.1:9912 --imds-profile {profile}` (or imds.listen and \
             imds.profile in credd.toml), or drop --imds to use the container endpoint"
        ),
    }
}

/// The profile's non-credential settings from the daemon's answer.
pub fn settings_of(ep: &EndpointReply) -> ProfileSettings {
    ep.settings.clone().unwrap_or_default()
}

/// The directory for overlay files: `RUNTIME_DIR/aws` (0700).
fn overlay_dir() -> PathBuf {
    crate::environment::runtime_dir().join("aws")
}

/// Writes the overlay config for `profile` (without `omit`) and the empty
/// credentials file, and returns their paths.
///
/// The overlay is named by a digest of its contents, so every child of the
/// same profile and settings shares one file and repeated `credd env` calls
/// do not pile files up; it is never removed while in use by another child
/// (there is nothing secret in it). Both files are 0600, written atomically.
pub fn write_overlay(
    profile: &str,
    settings: &ProfileSettings,
    omit: &[&str],
) -> Result<(PathBuf, PathBuf)> {
    use sha2::Digest;
    let text = settings.overlay(profile, omit);
    let digest = hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8]);
    let dir = overlay_dir();
    let config = dir.join(format!("{digest}.config"));
    let credentials = dir.join("empty-credentials");
    write(&config, text.as_bytes())?;
    write(&credentials, b"")?;
    Ok((config, credentials))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    credd_daemon::fsutil::write_private(path, bytes)
        .with_context(|| format!("failed to write {}", path.display()))
}
