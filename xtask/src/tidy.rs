//! `cargo xtask tidy` (also the last step of `cargo xtask lint`): the crate
//! boundaries `docs/architecture.md` states, checked so that they hold.
//!
//! - **Dependencies**: each shipped crate's `[dependencies]` (and
//!   target-specific ones; dev-dependencies are free) against
//!   [`CORE_ALLOWED`] (credd-core's whole list: pure policy, no runtime) and
//!   [`RESTRICTED`] (who may import aws-*, hyper, tokio, the other crates...).
//! - **The code map**: every source file under `crates/*/src` is named in
//!   `docs/architecture.md` as `CRATE/src/PATH.rs`, so the map cannot drift
//!   from the tree.
//! - **Tasks**: no bare `tokio::spawn` outside the supervisor
//!   ([`SPAWN_ALLOWED`]): every task is tracked, cancelled and joined there.
//!   Test-only files (`#[cfg(test)] mod x;`) and inline test modules are
//!   skipped.
//! - **Clocks**: `clippy.toml` bans the wall-clock reads ([`BANNED_CLOCKS`]),
//!   so time is injected; clippy itself enforces the ban, this checks that
//!   the ban is there.
//!
//! The checks are plain text scans (std and `toml` only): they run in a
//! fraction of a second and need no build. Each returns its findings as
//! sentences naming the file and the fix, so one run lists everything.

use crate::util::{header, repo_root};
use crate::{Failure, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// credd-core's complete dependency list: domain types and pure policy, so
/// no async runtime, no HTTP, no AWS SDK. A new entry here is a design
/// decision, to be made in review.
const CORE_ALLOWED: &[&str] = &[
    "async-trait",
    "hex",
    "rustix",
    "serde",
    "serde_json",
    "sha1",
    "sha2",
    "subtle",
    "tempfile",
    "thiserror",
    "time",
    "zeroize",
];

/// Dependencies only some crates may have. A name matches an entry when it
/// is the entry or starts with it followed by `-` (`hyper` covers
/// `hyper-util`; `aws` covers every `aws-*`).
const RESTRICTED: &[(&str, &[&str])] = &[
    // Everything that talks to AWS or reads ~/.aws lives in credd-aws.
    ("aws", &["credd-aws"]),
    // DPoP keys and proofs (`aws login` sessions): the client side in
    // credd-aws, the verifying side in the sandbox.
    ("p256", &["credd-aws", "credd-sandbox"]),
    ("sec1", &["credd-aws", "credd-sandbox"]),
    // The HTTP servers: the daemon's endpoints and the sandbox's fakes.
    ("hyper", &["credd-daemon", "credd-sandbox"]),
    // The docker engine watch is the daemon's.
    ("bollard", &["credd-daemon"]),
    // The AWS files' change notification is the daemon's (profile_files.rs).
    ("notify", &["credd-daemon"]),
    // Only the binary parses a command line and wires the crates together.
    ("clap", &["credd"]),
    // The allocator is the binary's choice (Linux only).
    ("tikv-jemalloc", &["credd"]),
    ("credd-daemon", &["credd"]),
    ("credd-aws", &["credd"]),
    // Long-term keys off the disk: only the binary opens a key store (the
    // daemon gets keys through credd-core's `KeySource` seam).
    ("credd-keys", &["credd"]),
    // The OS keychain and the key file's crypto are credd-keys' alone.
    ("keyring", &["credd-keys"]),
    ("chacha20poly1305", &["credd-keys"]),
    ("argon2", &["credd-keys"]),
    // The fake AWS ships only inside `credd demo`.
    ("credd-sandbox", &["credd"]),
];

/// The files that may call `tokio::spawn`: the daemon's supervisor (its
/// root `TaskTracker` and cancellation token).
const SPAWN_ALLOWED: &[&str] = &[
    "crates/credd-daemon/src/lib.rs",
    "crates/credd-daemon/src/supervisor.rs",
];

/// The clock reads `clippy.toml` must ban (`disallowed-methods`).
/// `Instant::now` is not among them: it measures durations (timeouts, lock
/// waits), never an expiry, and tokio's `Instant` is paused in tests.
const BANNED_CLOCKS: &[&str] = &[
    "std::time::SystemTime::now",
    "time::OffsetDateTime::now_utc",
];

pub(crate) fn tidy() -> Result<()> {
    header("Tidy: crate boundaries, code map, tasks, clocks");
    let root = repo_root();
    let findings = run_all(&root)?;
    if findings.is_empty() {
        println!("tidy: all rules hold");
        return Ok(());
    }
    for f in &findings {
        eprintln!("tidy: {f}");
    }
    Err(Failure::new(format!(
        "{} tidy finding(s) above; each names the file and the fix",
        findings.len()
    )))
}

fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))
}

fn run_all(root: &Path) -> Result<Vec<String>> {
    let mut findings = Vec::new();
    let mut manifests = Vec::new();
    let mut sources = Vec::new();
    let crates_dir = root.join("crates");
    let mut crate_dirs: Vec<PathBuf> = fs::read_dir(&crates_dir)
        .map_err(|e| Failure::new(format!("cannot list {}: {e}", crates_dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    crate_dirs.sort();
    for dir in &crate_dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        manifests.push((name, read_text(&dir.join("Cargo.toml"))?));
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        files.sort();
        for f in files {
            let rel = f
                .strip_prefix(root)
                .unwrap_or(&f)
                .to_string_lossy()
                .to_string();
            sources.push((rel, read_text(&f)?));
        }
    }
    findings.extend(check_dependencies(&manifests));
    let doc = read_text(&root.join("docs/architecture.md"))?;
    let paths: Vec<String> = sources.iter().map(|(p, _)| p.clone()).collect();
    findings.extend(check_code_map(&doc, &paths));
    findings.extend(check_spawns(&sources));
    let clippy = fs::read_to_string(root.join("clippy.toml")).unwrap_or_default();
    findings.extend(check_clippy_toml(&clippy));
    Ok(findings)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `name` is `entry` or `entry-...`.
fn matches_entry(name: &str, entry: &str) -> bool {
    name == entry || name.strip_prefix(entry).is_some_and(|r| r.starts_with('-'))
}

/// The names a manifest's non-dev dependencies are known by on crates.io
/// (a `package = "..."` rename is followed).
fn shipped_dependencies(manifest: &str) -> std::result::Result<Vec<String>, String> {
    let doc: toml::Table = manifest.parse().map_err(|e| format!("{e}"))?;
    let mut tables = Vec::new();
    for key in ["dependencies", "build-dependencies"] {
        if let Some(t) = doc.get(key).and_then(toml::Value::as_table) {
            tables.push(t.clone());
        }
    }
    if let Some(targets) = doc.get("target").and_then(toml::Value::as_table) {
        for cfg in targets.values().filter_map(toml::Value::as_table) {
            for key in ["dependencies", "build-dependencies"] {
                if let Some(t) = cfg.get(key).and_then(toml::Value::as_table) {
                    tables.push(t.clone());
                }
            }
        }
    }
    let mut names: Vec<String> = tables
        .iter()
        .flat_map(|t| t.iter())
        .map(|(k, v)| {
            v.get("package")
                .and_then(toml::Value::as_str)
                .unwrap_or(k)
                .to_string()
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// `manifests`: (crate name, Cargo.toml text) of every crate under `crates/`.
fn check_dependencies(manifests: &[(String, String)]) -> Vec<String> {
    let mut findings = Vec::new();
    for (krate, text) in manifests {
        let deps = match shipped_dependencies(text) {
            Ok(d) => d,
            Err(e) => {
                findings.push(format!("crates/{krate}/Cargo.toml does not parse: {e}"));
                continue;
            }
        };
        for dep in &deps {
            if krate == "credd-core" && !CORE_ALLOWED.contains(&dep.as_str()) {
                findings.push(format!(
                    "credd-core depends on `{dep}`, which is not in its allow-list \
                     (xtask/src/tidy.rs CORE_ALLOWED): core is pure policy; put the \
                     code that needs it in credd-aws or credd-daemon"
                ));
            }
            for (entry, allowed) in RESTRICTED {
                if matches_entry(dep, entry) && !allowed.contains(&krate.as_str()) {
                    findings.push(format!(
                        "{krate} depends on `{dep}`, which only {} may import \
                         (xtask/src/tidy.rs RESTRICTED)",
                        allowed.join(", ")
                    ));
                }
            }
        }
    }
    findings
}

/// `paths`: every source file, as `crates/CRATE/src/...rs`.
fn check_code_map(doc: &str, paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .filter(|p| {
            let short = p.strip_prefix("crates/").unwrap_or(p);
            !doc.contains(short)
        })
        .map(|p| {
            format!(
                "{p} is not in the code map: name it in docs/architecture.md as `{}` \
                 with one line on what it owns",
                p.strip_prefix("crates/").unwrap_or(p)
            )
        })
        .collect()
}

/// Files compiled only for tests: `NAME.rs` next to (or under the directory
/// of) a file that declares `#[cfg(test)] mod NAME;`.
fn test_only_files(sources: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in sources {
        let Some((parent, file)) = path.rsplit_once('/') else {
            continue;
        };
        // A module file of lib.rs/main.rs/mod.rs sits beside it; of any
        // other file, in the directory named after that file.
        let base = if matches!(file, "lib.rs" | "main.rs" | "mod.rs") {
            parent.to_string()
        } else {
            format!("{parent}/{}", file.trim_end_matches(".rs"))
        };
        let mut test_attr = false;
        let mut path_attr: Option<String> = None;
        for line in text.lines().map(str::trim) {
            if line == "#[cfg(test)]" {
                test_attr = true;
                continue;
            }
            if test_attr {
                // `#[path = "x_tests.rs"]` is relative to the declaring file's directory.
                if let Some(p) = line
                    .strip_prefix("#[path = \"")
                    .and_then(|r| r.strip_suffix("\"]"))
                {
                    path_attr = Some(format!("{parent}/{p}"));
                    continue;
                }
                let decl = line
                    .strip_prefix("pub(crate) ")
                    .or_else(|| line.strip_prefix("pub "))
                    .unwrap_or(line);
                if let Some(name) = decl.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                    match path_attr.take() {
                        Some(p) => out.push(p),
                        None => {
                            out.push(format!("{base}/{name}.rs"));
                            out.push(format!("{base}/{name}/mod.rs"));
                        }
                    }
                }
            }
            test_attr = false;
            path_attr = None;
        }
    }
    out
}

/// `sources`: (path, text) of every source file under `crates/*/src`.
fn check_spawns(sources: &[(String, String)]) -> Vec<String> {
    let test_only = test_only_files(sources);
    let mut findings = Vec::new();
    for (path, text) in sources {
        if SPAWN_ALLOWED.contains(&path.as_str()) || test_only.contains(path) {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            // Inline test modules come last in a file, by the house rule.
            if line.trim_end() == "#[cfg(test)]"
                && text
                    .lines()
                    .nth(i + 1)
                    .is_some_and(|n| n.trim_start().starts_with("mod "))
            {
                break;
            }
            let code = line.split("//").next().unwrap_or("");
            if code.contains("tokio::spawn(") || code.contains("tokio::task::spawn(") {
                findings.push(format!(
                    "{path}:{}: a bare tokio::spawn; hand the task to the supervisor's \
                     TaskTracker with a child cancellation token (allowed only in {})",
                    i + 1,
                    SPAWN_ALLOWED.join(", ")
                ));
            }
        }
    }
    findings
}

fn check_clippy_toml(text: &str) -> Vec<String> {
    let banned: Vec<String> = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("disallowed-methods").cloned())
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            v.as_str().map(str::to_string).or_else(|| {
                v.get("path")
                    .and_then(toml::Value::as_str)
                    .map(str::to_string)
            })
        })
        .collect();
    BANNED_CLOCKS
        .iter()
        .filter(|m| !banned.iter().any(|b| b == *m))
        .map(|m| {
            format!(
                "clippy.toml does not ban `{m}` (disallowed-methods): direct clock reads \
                 belong in clock.rs only"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(crate_name: &str, deps: &str) -> (String, String) {
        (
            crate_name.to_string(),
            format!("[package]\nname = \"{crate_name}\"\n\n[dependencies]\n{deps}\n\n[dev-dependencies]\ntokio = \"1\"\n"),
        )
    }

    #[test]
    fn core_may_not_take_a_runtime_and_dev_dependencies_are_free() {
        let ok = manifest("credd-core", "time = \"0.3\"\nthiserror = \"2\"");
        assert!(check_dependencies(&[ok]).is_empty());
        let bad = manifest("credd-core", "time = \"0.3\"\ntokio = \"1\"");
        let f = check_dependencies(&[bad]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("credd-core depends on `tokio`"), "{f:?}");
    }

    #[test]
    fn only_credd_aws_imports_aws_and_renames_are_followed() {
        let aws = manifest("credd-aws", "aws-config = \"1\"");
        assert!(check_dependencies(&[aws]).is_empty());
        let daemon = manifest(
            "credd-daemon",
            "sts = { package = \"aws-sdk-sts\", version = \"1\" }",
        );
        let f = check_dependencies(&[daemon]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].contains("`aws-sdk-sts`") && f[0].contains("only credd-aws"),
            "{f:?}"
        );
    }

    #[test]
    fn hyper_only_in_the_daemon_and_the_sandbox_target_tables_included() {
        let sandbox = manifest("credd-sandbox", "hyper-util = \"0.1\"");
        assert!(check_dependencies(&[sandbox]).is_empty());
        let cli = (
            "credd".to_string(),
            "[package]\nname = \"credd\"\n[target.'cfg(unix)'.dependencies]\nhyper = \"1\"\n"
                .to_string(),
        );
        let f = check_dependencies(&[cli]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].starts_with("credd depends on `hyper`"), "{f:?}");
        // `hyperx` is another crate, not hyper.
        assert!(!matches_entry("hyperx", "hyper"));
    }

    #[test]
    fn every_source_file_is_in_the_code_map() {
        let doc = "| `credd-core/src/lib.rs` | the crate |\n";
        let paths = [
            "crates/credd-core/src/lib.rs".to_string(),
            "crates/credd-core/src/new.rs".to_string(),
        ];
        let f = check_code_map(doc, &paths);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].starts_with("crates/credd-core/src/new.rs is not in the code map"));
    }

    #[test]
    fn a_bare_spawn_is_caught_outside_the_supervisor_and_tests() {
        let src = |p: &str, t: &str| (p.to_string(), t.to_string());
        let sources = [
            src("crates/credd-daemon/src/lib.rs", "#[cfg(test)]\nmod fake;\nfn a() { tokio::spawn(x); }\n"),
            src("crates/credd-daemon/src/fake.rs", "fn f() { tokio::spawn(y); }\n"),
            src(
                "crates/credd-daemon/src/sso.rs",
                "#[cfg(test)]\n#[path = \"sso_unit.rs\"]\nmod tests;\n",
            ),
            src("crates/credd-daemon/src/sso_unit.rs", "fn t() { tokio::spawn(v); }\n"),
            src(
                "crates/credd-daemon/src/relay.rs",
                "// tokio::spawn( in a comment\nfn g() {\n    tokio::spawn(z);\n}\n#[cfg(test)]\nmod tests {\n    fn t() { tokio::spawn(w); }\n}\n",
            ),
        ];
        let f = check_spawns(&sources);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].starts_with("crates/credd-daemon/src/relay.rs:3:"),
            "{f:?}"
        );
    }

    #[test]
    fn clippy_toml_must_ban_the_wall_clock() {
        let both = "disallowed-methods = [\n  { path = \"std::time::SystemTime::now\", reason = \"r\" },\n  \"time::OffsetDateTime::now_utc\",\n]\n";
        assert!(check_clippy_toml(both).is_empty());
        let one = "disallowed-methods = [\"std::time::SystemTime::now\"]\n";
        let f = check_clippy_toml(one);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("time::OffsetDateTime::now_utc"), "{f:?}");
        assert_eq!(check_clippy_toml("").len(), 2);
    }
}
