//! Project automation for credd (std, and `toml` for `tidy`).
//!
//! - `cargo xtask test [-- ARGS...]`: installs the system packages the tests use (Debian
//!   packages, see [`SYSTEM_PACKAGES`]) and the pinned test clients (a Python virtualenv
//!   with moto, boto3 and the AWS CLI; the JS SDK with `npm ci`; the Go SDK v2 and Java
//!   SDK v2 clients, built from `tests/clients/go` and `tests/clients/java`), then builds
//!   and runs every test in the workspace. ARGS go to `cargo test`.
//! - `cargo xtask lint`: `cargo fmt --check`, `cargo clippy -D warnings`, `tidy`, then
//!   `cargo check --target x86_64-apple-darwin` of the key store and the daemon (`mac.rs`).
//! - `cargo xtask tidy`: the crate-boundary checks of [`tidy`].
//! - `cargo xtask setup`: only the installs, and the variables to export to run
//!   `cargo test` by hand.
//! - `cargo xtask system-packages`: only the system packages.

mod clients;
mod lint;
mod mac;
mod test;
mod tidy;
mod util;

use clients::{print_exports, setup};
use lint::lint;
use std::env;
use std::fmt;
use std::io::{self, Write};
use std::process::{Command, ExitCode, Stdio};
use test::test;
use util::*;

/// Oldest Python that the pinned moto, boto3 and awscli support.
const MIN_PYTHON: (u32, u32) = (3, 10);
/// Oldest Node.js that the pinned AWS SDK for JavaScript v3 supports.
const MIN_NODE_MAJOR: u32 = 20;
/// Debian package that provides `python3 -m venv` (with ensurepip) for Debian's python3.
const DEBIAN_VENV_PACKAGE: &str = "python3-venv";
/// Oldest Go that builds the pinned AWS SDK for Go v2 (the `go` line of
/// tests/clients/go/go.mod).
const MIN_GO: (u32, u32) = (1, 24);
/// Oldest Java for the Java SDK v2 client (`maven.compiler.release` in its pom.xml).
const MIN_JAVA_MAJOR: u32 = 17;
/// Debian packages for the Java client: a JDK (javac) and Maven.
const DEBIAN_JDK_PACKAGE: &str = "openjdk-17-jdk-headless";
const DEBIAN_MAVEN_PACKAGE: &str = "maven";

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [-- ARGS...]  install the missing system packages the tests use (apt-get, as root
                     or through `sudo -n`) and the pinned test clients (Python venv at .venv,
                     JS SDK in tests/clients/node_modules, Go SDK v2 client in
                     tests/clients/go/bin, Java SDK v2 client in tests/clients/java/target),
                     then `cargo build --workspace --all-targets` and
                     `cargo test --workspace --all-targets [ARGS...]`
                     (plus the doctests when no ARGS are given)
  lint               `cargo fmt --all -- --check`,
                     `cargo clippy --workspace --all-targets -- -D warnings`, tidy, then
                     `cargo check --target x86_64-apple-darwin -p credd-core -p credd-keys
                     -p credd-daemon`
                     (adds the target with rustup when missing)
  tidy               check the crate boundaries: per-crate dependency allow-lists, every
                     source file named in docs/architecture.md, no bare tokio::spawn
                     outside the supervisor, the clock ban in clippy.toml
  mac-check          only the macOS compile check of lint
  setup              only install the system packages and the test clients, and print
                     the variables that `cargo test` needs to find them
  system-packages    only install the missing system packages the tests use
  help               this message
";

/// A failed step: what failed, and what to do about it.
#[derive(Debug)]
struct Failure {
    message: String,
    /// Exit code to leave with (a child's own code is passed through).
    code: u8,
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

type Result<T, E = Failure> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("test") => rest_after_dashdash(&args[1..]).and_then(|extra| test(&extra)),
        Some("lint") if args.len() == 1 => lint(),
        Some("tidy") if args.len() == 1 => tidy::tidy(),
        Some("mac-check") if args.len() == 1 => mac::mac_check(),
        Some("setup") if args.len() == 1 => setup().map(|env| print_exports(&env)),
        Some("system-packages") if args.len() == 1 => system_packages(),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(_) => Err(Failure {
            message: format!(
                "unknown command or arguments: `{}`\n\n{USAGE}",
                args.join(" ")
            ),
            code: 2,
        }),
        None => Err(Failure {
            message: USAGE.to_string(),
            code: 2,
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let _ = io::stdout().flush();
            eprintln!("\nxtask: error: {failure}");
            ExitCode::from(failure.code)
        }
    }
}

/// `test -- a b` -> `[a, b]`; `test` -> `[]`; anything else is a usage error.
fn rest_after_dashdash(args: &[String]) -> Result<Vec<String>> {
    match args.split_first() {
        None => Ok(Vec::new()),
        Some((first, rest)) if first == "--" => Ok(rest.to_vec()),
        Some((first, _)) => Err(Failure {
            message: format!(
                "unexpected argument {first:?}: pass arguments for cargo test after `--`, \
                 e.g. `cargo xtask test -- -p credd-core`\n\n{USAGE}"
            ),
            code: 2,
        }),
    }
}

// ---------------------------------------------------------------------------------------
// System packages

/// How xtask tells that a system package is installed.
#[derive(Debug, Clone, Copy)]
enum Probe {
    /// Every one of these commands is on PATH.
    Commands(&'static [&'static str]),
    /// `python3 -c "import MODULES"` succeeds.
    PythonImports(&'static str),
}

/// A Debian/Ubuntu package the test suite uses.
#[derive(Debug)]
struct SystemPackage {
    /// The name `apt-get install` takes.
    debian: &'static str,
    probe: Probe,
    /// What needs it: said when it is missing.
    used_by: &'static str,
}

/// Every system package the tests use, one row each, sorted by package name: a new
/// dependency is one more row, put in its place (so that rows added at the same time
/// do not collide). `cargo xtask test` installs the missing ones with apt-get.
const SYSTEM_PACKAGES: &[SystemPackage] = &[
    SystemPackage {
        debian: "busybox-static",
        probe: Probe::Commands(&["busybox"]),
        used_by: "tests/tests/docker_engine.rs (the containers' root file system)",
    },
    SystemPackage {
        debian: "dbus",
        probe: Probe::Commands(&["dbus-daemon", "dbus-send"]),
        used_by: "tests/tests/keychain.rs and credd-keys' keychain tests (a private session bus)",
    },
    SystemPackage {
        debian: "debootstrap",
        probe: Probe::Commands(&["debootstrap"]),
        used_by: "tests/tests/support/debian.rs (the Python SDKs' Debian image)",
    },
    SystemPackage {
        debian: "docker-compose",
        probe: Probe::Commands(&["docker-compose"]),
        used_by: "tests/tests/docker_compose.rs (docs/docker.md's compose files)",
    },
    SystemPackage {
        debian: "docker.io",
        probe: Probe::Commands(&["dockerd", "docker"]),
        used_by: "tests/tests/docker_engine.rs (a private dockerd)",
    },
    SystemPackage {
        debian: "gnome-keyring",
        probe: Probe::Commands(&["gnome-keyring-daemon"]),
        used_by: "tests/tests/keychain.rs and credd-keys' keychain tests (a real Secret Service)",
    },
    SystemPackage {
        debian: "iproute2",
        probe: Probe::Commands(&["ip"]),
        used_by: "tests/tests/containers.rs (network namespaces)",
    },
    SystemPackage {
        debian: "iptables",
        probe: Probe::Commands(&["iptables"]),
        used_by: "tests/tests/containers.rs (`credd docker setup`)",
    },
    SystemPackage {
        debian: "make",
        probe: Probe::Commands(&["make"]),
        used_by: "building credd itself on Linux: tikv-jemalloc-sys compiles jemalloc (crates/credd/Cargo.toml)",
    },
    SystemPackage {
        debian: "maven",
        probe: Probe::Commands(&["mvn"]),
        used_by: "building the AWS SDK for Java v2 client (tests/clients/java)",
    },
    SystemPackage {
        debian: "mount",
        probe: Probe::Commands(&["mount"]),
        used_by: "tests/tests/service.rs (the unit's sandbox, with bind mounts)",
    },
    SystemPackage {
        debian: "nodejs",
        probe: Probe::Commands(&["node"]),
        used_by: "the AWS SDK for JavaScript v3 client",
    },
    SystemPackage {
        debian: "npm",
        probe: Probe::Commands(&["npm"]),
        used_by: "installing tests/clients/package-lock.json",
    },
    SystemPackage {
        debian: "openjdk-17-jdk-headless",
        probe: Probe::Commands(&["java", "javac"]),
        used_by: "the AWS SDK for Java v2 client (tests/clients/java)",
    },
    SystemPackage {
        debian: "python3",
        probe: Probe::Commands(&["python3"]),
        used_by: "moto, boto3 and the AWS CLI (the .venv)",
    },
    SystemPackage {
        debian: DEBIAN_VENV_PACKAGE,
        probe: Probe::PythonImports("venv, ensurepip"),
        used_by: "creating the .venv",
    },
    SystemPackage {
        debian: "systemd",
        probe: Probe::Commands(&["systemd-analyze", "systemd-socket-activate"]),
        used_by: "tests/tests/service.rs (unit checks, socket activation)",
    },
    SystemPackage {
        debian: "util-linux",
        probe: Probe::Commands(&["unshare", "mountpoint"]),
        used_by: "tests/tests/service.rs (a mount namespace for the unit's sandbox)",
    },
];

fn on_path(command: &str) -> bool {
    env::var_os("PATH")
        .iter()
        .flat_map(env::split_paths)
        .any(|dir| dir.join(command).is_file())
}

fn probe_passes(probe: Probe) -> bool {
    match probe {
        Probe::Commands(commands) => commands.iter().all(|c| on_path(c)),
        Probe::PythonImports(modules) => {
            capture(Command::new("python3").args(["-c", &format!("import {modules}")])).is_some()
        }
    }
}

/// The rows whose probe fails, in table order.
fn missing_packages(passes: impl Fn(Probe) -> bool) -> Vec<&'static SystemPackage> {
    SYSTEM_PACKAGES
        .iter()
        .filter(|p| !passes(p.probe))
        .collect()
}

/// Installs the rows of [`SYSTEM_PACKAGES`] that are missing: `apt-get update`, then
/// `apt-get install`, as root or through `sudo -n`; anything else is a failure that
/// names the packages.
pub(crate) fn system_packages() -> Result<()> {
    header("System packages the tests use (Debian/Ubuntu names)");
    let missing = missing_packages(probe_passes);
    if missing.is_empty() {
        let names: Vec<&str> = SYSTEM_PACKAGES.iter().map(|p| p.debian).collect();
        note(&format!("all present: {}", names.join(", ")));
        return Ok(());
    }
    for p in &missing {
        note(&format!("missing: {} (for {})", p.debian, p.used_by));
    }
    let names: Vec<&str> = missing.iter().map(|p| p.debian).collect();
    let by_hand = format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        names.join(" ")
    );
    if !on_path("apt-get") {
        return Err(Failure::new(format!(
            "the tests need these packages (Debian/Ubuntu names): {}; this system has no \
             apt-get: install their equivalents with its package manager, then re-run",
            names.join(", ")
        )));
    }
    let is_root = capture(Command::new("id").arg("-u")).as_deref() == Some("0");
    let mut prefix: Vec<&str> = Vec::new();
    if !is_root {
        let sudo_works = on_path("sudo")
            && Command::new("sudo")
                .args(["-n", "true"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if !sudo_works {
            return Err(Failure::new(format!(
                "the tests need these packages: {}; installing them needs root, and this is \
                 not root and `sudo -n` cannot run without a password. Run as root \
                 `{by_hand}` (or run this again as root, or after `sudo -v`), then re-run",
                names.join(", ")
            )));
        }
        prefix = vec!["sudo", "-n"];
    }
    let apt = |args: &[&str]| {
        let mut argv: Vec<&str> = prefix.clone();
        argv.extend(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        argv.extend(args);
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]).stdin(Stdio::null());
        cmd
    };
    let advice = format!(
        "check the network access to the Debian mirrors and the error above; by hand: \
         `{by_hand}`"
    );
    run(&mut apt(&["update", "-q"]), &advice)?;
    let mut install = apt(&["install", "-y", "-q", "--no-install-recommends"]);
    install.args(&names);
    run(&mut install, &advice)?;
    let still: Vec<&str> = missing_packages(probe_passes)
        .iter()
        .map(|p| p.debian)
        .collect();
    if !still.is_empty() {
        return Err(Failure::new(format!(
            "installed {}, but the commands of these are still not found: {}; check that \
             they are on PATH (e.g. /usr/sbin for iptables)",
            names.join(", "),
            still.join(", ")
        )));
    }
    note(&format!("installed {}", names.join(", ")));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_packages_are_one_sorted_table() {
        let names: Vec<&str> = SYSTEM_PACKAGES.iter().map(|p| p.debian).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            names, sorted,
            "keep SYSTEM_PACKAGES sorted, one row per package"
        );
        for wanted in [
            "iproute2",
            "iptables",
            "nodejs",
            "npm",
            "python3-venv",
            "systemd",
        ] {
            assert!(names.contains(&wanted), "{wanted} is not in the table");
        }
    }

    #[test]
    fn missing_packages_are_the_rows_whose_probe_fails() {
        let missing = missing_packages(|probe| match probe {
            Probe::Commands(c) => !c.contains(&"iptables") && !c.contains(&"unshare"),
            Probe::PythonImports(_) => true,
        });
        let names: Vec<&str> = missing.iter().map(|p| p.debian).collect();
        assert_eq!(names, ["iptables", "util-linux"]);
        assert!(missing_packages(|_| true).is_empty());
    }

    #[test]
    fn dashdash_separates_cargo_test_args() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(rest_after_dashdash(&[]).unwrap(), Vec::<String>::new());
        assert_eq!(
            rest_after_dashdash(&args(&["--", "-p", "x"])).unwrap(),
            args(&["-p", "x"])
        );
        assert!(rest_after_dashdash(&args(&["-p"])).is_err());
    }
}
