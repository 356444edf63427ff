//! `credd write-credentials` and `credd profiles link`: replace one section
//! of the shared credentials or config file and nothing else, atomically,
//! keeping the owner's permission bits (group and other bits are dropped:
//! the file holds keys). The writing itself (lock, re-read before the
//! rename, symlinks, temporary copies) is [`credd_aws::userfile`]'s.
//!
//! This is a small line-based editor rather than an INI crate: the INI
//! crates re-serialise the whole file and lose comments and layout, and
//! the rule here is that every byte outside our section stays as it was.
//! A section credd did not write (no marker line) is never overwritten.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Starts the first line of every section credd writes; a section without
/// it is the user's and is never overwritten.
pub const MARKER: &str = "# written by credd";

pub fn config_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("AWS_CONFIG_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").context("HOME is not set; set AWS_CONFIG_FILE")?;
    Ok(Path::new(&home).join(".aws/config"))
}

pub fn credentials_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let home =
        std::env::var_os("HOME").context("HOME is not set; set AWS_SHARED_CREDENTIALS_FILE")?;
    Ok(Path::new(&home).join(".aws/credentials"))
}

/// The name inside a `[...]` header line (spaces, tabs and `\r` trimmed);
/// bytes, so that a file with a non-UTF-8 comment is edited all the same.
fn header_name(line: &[u8]) -> Option<&[u8]> {
    line.trim_ascii()
        .strip_prefix(b"[")
        .and_then(|r| r.strip_suffix(b"]"))
        .map(<[u8]>::trim_ascii)
}

/// Returns the new file text with `[name]` set to `body` lines. Works on
/// bytes and gives back every byte outside the section as it was.
pub fn replace_section(text: &[u8], name: &str, body: &[String]) -> Result<Vec<u8>> {
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    let start = lines
        .iter()
        .position(|l| header_name(l) == Some(name.as_bytes()));
    let mut section = format!("[{name}]\n");
    for l in body {
        section.push_str(l);
        section.push('\n');
    }
    match start {
        None => {
            let mut out = text.to_vec();
            if !out.is_empty() && !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            if !out.is_empty() {
                out.push(b'\n');
            }
            out.extend_from_slice(section.as_bytes());
            Ok(out)
        }
        Some(s) => {
            let end = lines[s + 1..]
                .iter()
                .position(|l| header_name(l).is_some())
                .map(|i| s + 1 + i)
                .unwrap_or(lines.len());
            let ours = lines[s + 1..end]
                .iter()
                .any(|l| l.trim_ascii_start().starts_with(MARKER.as_bytes()));
            if !ours {
                bail!(
                    "[{name}] already exists and was not written by credd; refusing to overwrite it (pick another name with --as)"
                );
            }
            // Keep blank lines that separated our section from the next one.
            let trailing_blank = lines[s + 1..end]
                .iter()
                .rev()
                .take_while(|l| l.trim_ascii().is_empty())
                .count();
            let mut out: Vec<u8> = lines[..s].concat();
            out.extend_from_slice(section.as_bytes());
            out.extend_from_slice(&lines[end - trailing_blank..end].concat());
            out.extend_from_slice(&lines[end..].concat());
            Ok(out)
        }
    }
}

pub fn write_section(path: &Path, name: &str, source: &str, creds: &Value) -> Result<()> {
    let s = |k: &str| -> Result<String> {
        creds[k]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("the daemon's answer has no {k}"))
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
/// [`credd_aws::userfile::edit`]'s: under a lock against other credd
/// commands, through a symlink, made again on the newer text when another
/// tool changed the file meanwhile, atomic, leaving no temporary copy.
pub fn write_lines(path: &Path, header: &str, body: &[String]) -> Result<()> {
    credd_aws::userfile::edit(path, &credd_aws::userfile::Options::aws_file(), |old| {
        replace_section(old.unwrap_or_default(), header, body).map(Some)
    })
    .with_context(|| format!("failed to write [{header}] in {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# my keys\n[default]\naws_access_key_id = AKIA1 ; keep\naws_secret_access_key = s\n\n[other]\nx = 1\n";

    fn body() -> Vec<String> {
        vec![format!("{MARKER} x"), "aws_access_key_id = ASIA".into()]
    }

    #[test]
    fn appends_then_replaces_only_our_section() {
        let once =
            String::from_utf8(replace_section(FILE.as_bytes(), "dev", &body()).unwrap()).unwrap();
        assert!(once.starts_with(FILE));
        assert!(once.ends_with("\n[dev]\n# written by credd x\naws_access_key_id = ASIA\n"));
        let with_after = format!("{once}\n[after]\ny = 2\n");
        let twice = String::from_utf8(
            replace_section(
                with_after.as_bytes(),
                "dev",
                &[format!("{MARKER} y"), "aws_access_key_id = ASIB".into()],
            )
            .unwrap(),
        )
        .unwrap();
        assert!(twice.starts_with(FILE));
        assert!(twice.contains("ASIB") && !twice.contains("ASIA\n"));
        assert!(twice.ends_with("\n\n[after]\ny = 2\n"), "{twice}");
    }

    #[test]
    fn never_overwrites_a_section_it_did_not_write() {
        let e = replace_section(FILE.as_bytes(), "default", &body())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not written by credd"), "{e}");
    }

    #[test]
    fn a_non_utf8_comment_is_kept_byte_for_byte() {
        let file = b"# caf\xe9\r\n[default]\r\nx = 1\r\n";
        let out = replace_section(file, "dev", &body()).unwrap();
        assert!(out.starts_with(file));
        let again = replace_section(&out, "dev", &body()).unwrap();
        assert_eq!(again, out);
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
