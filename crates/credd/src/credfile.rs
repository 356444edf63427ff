//! `credd write-credentials` and `credd profiles link`: replace one section
//! of the shared credentials or config file and nothing else, atomically,
//! keeping the owner's permission bits (group and other bits are dropped:
//! the file holds keys).
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

fn header_name(line: &str) -> Option<&str> {
    let t = line.trim();
    t.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .map(str::trim)
}

/// Returns the new file text with `[name]` set to `body` lines.
pub fn replace_section(text: &str, name: &str, body: &[String]) -> Result<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let start = lines.iter().position(|l| header_name(l) == Some(name));
    let mut section = format!("[{name}]\n");
    for l in body {
        section.push_str(l);
        section.push('\n');
    }
    match start {
        None => {
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&section);
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
                .any(|l| l.trim_start().starts_with(MARKER));
            if !ours {
                bail!(
                    "[{name}] already exists and was not written by credd; refusing to overwrite it (pick another name with --as)"
                );
            }
            // Keep blank lines that separated our section from the next one.
            let trailing_blank = lines[s + 1..end]
                .iter()
                .rev()
                .take_while(|l| l.trim().is_empty())
                .count();
            let mut out: String = lines[..s].concat();
            out.push_str(&section);
            out.push_str(&lines[end - trailing_blank..end].concat());
            out.push_str(&lines[end..].concat());
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
/// with a [`MARKER`] line), creating the file (0600) if needed.
pub fn write_lines(path: &Path, header: &str, body: &[String]) -> Result<()> {
    let (text, mode) = match std::fs::read_to_string(path) {
        Ok(t) => {
            use std::os::unix::fs::MetadataExt;
            (t, std::fs::metadata(path)?.mode() & 0o777)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), 0o600),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    };
    let new = replace_section(&text, header, body)?;
    write_with_mode(path, &new, mode)
}

/// Replaces the whole file at `path` with `text`, atomically, keeping its
/// mode (0600 for a new file).
pub fn write_whole(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mode = match std::fs::metadata(path) {
        Ok(m) => m.mode() & 0o777,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0o600,
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    };
    write_with_mode(path, text, mode)
}

fn write_with_mode(path: &Path, new: &str, mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mut tmp = tempfile::Builder::new()
        .prefix(".credentials-credd-")
        .permissions(std::fs::Permissions::from_mode(mode & 0o700))
        .tempfile_in(dir)
        .with_context(|| format!("failed to create a temp file in {}", dir.display()))?;
    tmp.write_all(new.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("failed to replace {}", path.display()))?;
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
        let once = replace_section(FILE, "dev", &body()).unwrap();
        assert!(once.starts_with(FILE));
        assert!(once.ends_with("\n[dev]\n# written by credd x\naws_access_key_id = ASIA\n"));
        let with_after = format!("{once}\n[after]\ny = 2\n");
        let twice = replace_section(
            &with_after,
            "dev",
            &[format!("{MARKER} y"), "aws_access_key_id = ASIB".into()],
        )
        .unwrap();
        assert!(twice.starts_with(FILE));
        assert!(twice.contains("ASIB") && !twice.contains("ASIA\n"));
        assert!(twice.ends_with("\n\n[after]\ny = 2\n"), "{twice}");
    }

    #[test]
    fn never_overwrites_a_section_it_did_not_write() {
        let e = replace_section(FILE, "default", &body())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not written by credd"), "{e}");
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
