//! `credd write-credentials PROFILE [--as NAME]`: one section of
//! `~/.aws/credentials` with the profile's current keys, every other byte
//! of the file unchanged. An MFA code or a sign-in the profile needs is
//! asked for on the terminal first.
//!
//! Layering: a command file. It imports leaves only, never another command.

use anyhow::Result;

pub async fn run(a: crate::cli::WriteCredentialsArgs) -> Result<()> {
    let name = a
        .as_name
        .clone()
        .unwrap_or_else(|| format!("{}-temp", a.profile));
    // Kept as the daemon sent it: the credentials file gets its fields.
    let v: serde_json::Value = crate::ask::credentials(&a.profile)
        .await
        .map_err(crate::ask::Unready::into_error)?;
    let path = credd_aws::credfile::credentials_path()?;
    credd_aws::credfile::write_section(&path, &name, &a.profile, &v)?;
    eprintln!(
        "wrote [{name}] in {} (expires {}); every other section is unchanged",
        path.display(),
        v["Expiration"].as_str().unwrap_or("?")
    );
    Ok(())
}
