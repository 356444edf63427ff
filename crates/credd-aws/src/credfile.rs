//! `credd write-credentials`, `credd profiles link` and `credd login`'s
//! `login_session`: where the shared
//! credentials and config files are, and setting one section of them and
//! nothing else, atomically, keeping the owner's permission bits (group and
//! other bits are dropped: the file holds keys). The edit is
//! [`crate::ini_edit::replace_section`]'s; the writing (lock, re-read before
//! the rename, symlinks, temporary copies) is [`crate::userfile`]'s.

/// Re-exported: callers writing a section start its body with it.
pub use crate::ini_edit::MARKER;
use crate::ini_edit::{replace_section, SectionError};
use std::path::{Path, PathBuf};

/// Why a section of an AWS file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CredFileError {
    #[error("HOME is not set; set {var}")]
    NoHome { var: &'static str },
    #[error("the daemon's answer has no {field}")]
    MissingField { field: String },
    #[error("failed to write [{header}] in {}", path.display())]
    Write {
        header: String,
        path: PathBuf,
        #[source]
        source: SectionError,
    },
}

/// `AWS_CONFIG_FILE`, else `$HOME/.aws/config`.
pub fn config_path() -> Result<PathBuf, CredFileError> {
    if let Some(p) = std::env::var_os("AWS_CONFIG_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").ok_or(CredFileError::NoHome {
        var: "AWS_CONFIG_FILE",
    })?;
    Ok(Path::new(&home).join(".aws/config"))
}

/// `AWS_SHARED_CREDENTIALS_FILE`, else `$HOME/.aws/credentials`.
pub fn credentials_path() -> Result<PathBuf, CredFileError> {
    if let Some(p) = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").ok_or(CredFileError::NoHome {
        var: "AWS_SHARED_CREDENTIALS_FILE",
    })?;
    Ok(Path::new(&home).join(".aws/credentials"))
}

/// Sets `[name]` of the credentials file at `path` to the temporary
/// credentials `creds` (the daemon's container-endpoint JSON) got from
/// profile `source`.
pub fn write_section(
    path: &Path,
    name: &str,
    source: &str,
    creds: &serde_json::Value,
) -> Result<(), CredFileError> {
    let s = |k: &str| -> Result<String, CredFileError> {
        creds[k]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| CredFileError::MissingField {
                field: k.to_string(),
            })
    };
    let body = vec![
        format!(
            "{MARKER} write-credentials from profile '{source}'; expires {}",
            s("Expiration")?
        ),
        format!("aws_access_key_id = {}", s("AccessKeyId")?),
        format!("aws_secret_access_key = {}", s("SecretAccessKey")?),
        format!("aws_session_token = {}", s("SessionToken")?),
        format!("aws_credential_expiration = {}", s("Expiration")?),
    ];
    write_lines(path, name, &body)
}

/// Sets section `[header]` of the file at `path` to `body` (which must start
/// with a [`MARKER`] line), creating the file (0600) if needed. The write is
/// [`crate::userfile::edit`]'s: under a lock against other credd
/// commands, through a symlink, made again on the newer text when another
/// tool changed the file meanwhile, atomic, leaving no temporary copy.
pub fn write_lines(path: &Path, header: &str, body: &[String]) -> Result<(), CredFileError> {
    crate::userfile::edit(path, &crate::userfile::Options::aws_file(), |old| {
        replace_section(old.unwrap_or_default(), header, body).map(Some)
    })
    .map_err(|source| CredFileError::Write {
        header: header.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// Sets `props` (lowercase keys) in profile `profile` of the config file at
/// `path` and nothing else, adding the profile if there is none; returns
/// whether the file changed. Written as [`write_lines`] writes; decided on
/// the file as it is under the lock.
pub fn set_profile(
    path: &Path,
    profile: &str,
    props: &[(&str, &str)],
) -> Result<bool, crate::ini_edit::PropertyError> {
    let edited = crate::userfile::edit(path, &crate::userfile::Options::aws_file(), |old| {
        crate::ini_edit::set_profile_properties(old.unwrap_or_default(), profile, props)
    })?;
    Ok(edited.written)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# my keys\n[default]\naws_access_key_id = AKIA1 ; keep\naws_secret_access_key = s\n\n[other]\nx = 1\n";

    #[test]
    fn set_profile_writes_through_a_symlink_and_only_when_something_changes() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("dotfiles-config");
        std::fs::write(&real, "# mine\n[profile a]\nregion = eu-west-1\n").unwrap();
        let link = d.path().join("config");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(set_profile(&link, "a", &[("login_session", "arn:aws:iam::1:user/u")]).unwrap());
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let text = std::fs::read_to_string(&real).unwrap();
        assert_eq!(
            text,
            "# mine\n[profile a]\nregion = eu-west-1\nlogin_session = arn:aws:iam::1:user/u\n"
        );
        assert!(!set_profile(&link, "a", &[("login_session", "arn:aws:iam::1:user/u")]).unwrap());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), text);
        // No file yet: made 0600 with the one section.
        let fresh = d.path().join("new-config");
        assert!(set_profile(&fresh, "default", &[("login_session", "arn:x")]).unwrap());
        assert_eq!(
            std::fs::read_to_string(&fresh).unwrap(),
            "[default]\nlogin_session = arn:x\n"
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn keeps_mode_and_everything_else() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("credentials");
        std::fs::write(&p, FILE).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let creds = serde_json::json!({"AccessKeyId": "ASIAX", "SecretAccessKey": "S", "SessionToken": "T", "Expiration": "2026-11-23T10:00:00Z"});
        write_section(&p, "dev", "dev", &creds).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with(FILE));
        assert!(text.contains("aws_session_token = T"));
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    }
}
