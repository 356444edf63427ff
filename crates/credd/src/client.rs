//! The control client, as every command uses it: where the socket is, one
//! request and its answer, and the token files commands hand to children.
//!
//! Layering: a leaf. It imports only other leaves (`environment`), never a
//! command file.

use anyhow::{Context, Result};
use credd_daemon::control::{self, Request};
use credd_daemon::protocol::TokenIssued;
use serde::de::DeserializeOwned;
use std::path::PathBuf;

pub fn socket_path() -> PathBuf {
    credd_daemon::control_socket_path(&crate::environment::runtime_dir())
}

/// Sends `req` and reads the answer as its reply type (see
/// [`credd_daemon::protocol`]; `serde_json::Value` passes it through as sent).
pub async fn call<T: DeserializeOwned>(req: Request) -> Result<T> {
    Ok(control::call_as(&socket_path(), &req).await?)
}

pub fn parse_ttl(s: &str) -> Result<u64> {
    Ok(credd_core::duration::parse(s)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .as_secs())
}

/// A token issued into its file: `RUNTIME_DIR/tokens/ID`.
pub struct IssuedToken {
    pub path: PathBuf,
    pub id: String,
    /// The value, for a child that reads it from a variable too.
    pub token: String,
}

/// Issues a token for `profile` and writes it to a 0600 file; a container's
/// token is bound to `docker_engine` (revoked when its container is removed).
pub async fn issue_token_file(
    profile: &str,
    ttl: &str,
    label: String,
    docker_engine: Option<String>,
) -> Result<IssuedToken> {
    let v: TokenIssued = call(Request::TokenIssue {
        profiles: vec![profile.to_string()],
        ttl_secs: Some(parse_ttl(ttl)?),
        label,
        docker_engine,
    })
    .await?;
    let (token, id) = (v.token, v.record.id);
    let dir = crate::environment::runtime_dir().join("tokens");
    let path = dir.join(&id);
    credd_daemon::fsutil::write_private(&path, token.as_bytes())
        .context("failed to write the token file")?;
    Ok(IssuedToken { path, id, token })
}

pub fn endpoint_url(base: &str, profile: &str) -> String {
    format!("{base}/{}", credd_daemon::segment::encode(profile))
}

/// The profile's credentials as the daemon serves them (for commands that
/// call AWS themselves with them: `console`, `decode-message`).
pub async fn daemon_credentials(profile: &str) -> Result<credd_core::TemporaryCredentials> {
    use anyhow::anyhow;
    let c: credd_daemon::protocol::Credentials = call(Request::Credentials {
        profile: profile.to_string(),
    })
    .await?;
    let expiration = credd_core::credentials::parse_timestamp(&c.expiration)
        .map_err(|_| anyhow!("the daemon's credentials have an unreadable expiration"))?;
    credd_core::TemporaryCredentials::new(
        c.access_key_id,
        credd_core::SecretString::new(c.secret_access_key),
        credd_core::SecretString::new(c.session_token),
        expiration,
        None,
    )
    .map_err(|e| anyhow!("{e}"))
}
