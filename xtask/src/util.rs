//! Paths, process running and small helpers every xtask command uses.

use crate::{Failure, Result};
use std::env;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub(crate) fn repo_root() -> PathBuf {
    // xtask/ sits at the workspace root.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

pub(crate) fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

pub(crate) fn venv_bin(root: &Path, name: &str) -> PathBuf {
    if cfg!(windows) {
        root.join(".venv")
            .join("Scripts")
            .join(format!("{name}.exe"))
    } else {
        root.join(".venv").join("bin").join(name)
    }
}

pub(crate) fn header(title: &str) {
    let _ = io::stderr().flush();
    println!("\n==> {title}");
    let _ = io::stdout().flush();
}

pub(crate) fn note(text: &str) {
    println!("    {text}");
    let _ = io::stdout().flush();
}

pub(crate) fn describe(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    // Show `cargo`, not the toolchain path that `$CARGO` holds.
    let mut text = if program.file_stem().is_some_and(|stem| stem == "cargo") {
        "cargo".to_string()
    } else {
        program.to_string_lossy().into_owned()
    };
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `cmd` with inherited stdio; a non-zero exit is a failure carrying `advice`.
pub(crate) fn run(cmd: &mut Command, advice: &str) -> Result<()> {
    let shown = describe(cmd);
    note(&format!("$ {shown}"));
    let status = cmd.status().map_err(|err| spawn_failure(&shown, &err))?;
    if status.success() {
        return Ok(());
    }
    Err(Failure {
        message: format!("`{shown}` failed ({status}). {advice}"),
        code: exit_code_of(status),
    })
}

pub(crate) fn spawn_failure(shown: &str, err: &io::Error) -> Failure {
    Failure::new(format!("could not run `{shown}`: {err}"))
}

pub(crate) fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    match status.code() {
        Some(code) => u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1),
        None => 1, // killed by a signal
    }
}

/// Runs `cmd` quietly and returns its trimmed stdout, or None if it could not run or failed.
pub(crate) fn capture(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// FNV-1a, 64 bit: enough to notice that a lock file changed (not a security boundary).
pub(crate) fn fnv1a(chunks: &[&[u8]]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in chunks {
        for byte in *chunk {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        // Separate the chunks so that moving bytes between them changes the hash.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|err| Failure::new(format!("cannot read {}: {err}", path.display())))
}

pub(crate) fn stamp_matches(stamp: &Path, expected: &str) -> bool {
    fs::read_to_string(stamp).is_ok_and(|s| s.trim() == expected)
}

pub(crate) fn write_stamp(stamp: &Path, value: &str) -> Result<()> {
    fs::write(stamp, format!("{value}\n"))
        .map_err(|err| Failure::new(format!("cannot write {}: {err}", stamp.display())))
}

pub(crate) fn parse_version(text: &str) -> Vec<u32> {
    text.trim()
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map_while(|part| part.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_prefixes() {
        assert_eq!(parse_version("v20.20.2"), vec![20, 20, 2]);
        assert_eq!(parse_version("3.11.7\n"), vec![3, 11, 7]);
        assert_eq!(parse_version("Python 3.9"), vec![3, 9]);
    }

    #[test]
    fn stamp_hash_depends_on_every_chunk() {
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
        assert_eq!(fnv1a(&[b"x"]), fnv1a(&[b"x"]));
    }
}
