//! Project automation for credd, std only.
//!
//! - `cargo xtask test [-- ARGS...]`: installs the system packages the tests use (Debian
//!   packages, see [`SYSTEM_PACKAGES`]) and the pinned test clients (a Python virtualenv
//!   with moto, boto3 and the AWS CLI; the JS SDK with `npm ci`; the Go SDK v2 and Java
//!   SDK v2 clients, built from `tests/clients/go` and `tests/clients/java`), then builds
//!   and runs every test in the workspace. ARGS go to `cargo test`.
//! - `cargo xtask lint`: `cargo fmt --check` and `cargo clippy -D warnings`.
//! - `cargo xtask setup`: only the installs, and the variables to export to run
//!   `cargo test` by hand.
//! - `cargo xtask system-packages`: only the system packages.

use std::env;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

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
  lint               `cargo fmt --all -- --check` and
                     `cargo clippy --workspace --all-targets -- -D warnings`
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
// Paths and small helpers

fn repo_root() -> PathBuf {
    // xtask/ sits at the workspace root.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn venv_bin(root: &Path, name: &str) -> PathBuf {
    if cfg!(windows) {
        root.join(".venv")
            .join("Scripts")
            .join(format!("{name}.exe"))
    } else {
        root.join(".venv").join("bin").join(name)
    }
}

fn header(title: &str) {
    let _ = io::stderr().flush();
    println!("\n==> {title}");
    let _ = io::stdout().flush();
}

fn note(text: &str) {
    println!("    {text}");
    let _ = io::stdout().flush();
}

fn describe(cmd: &Command) -> String {
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
fn run(cmd: &mut Command, advice: &str) -> Result<()> {
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

fn spawn_failure(shown: &str, err: &io::Error) -> Failure {
    Failure::new(format!("could not run `{shown}`: {err}"))
}

fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    match status.code() {
        Some(code) => u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1),
        None => 1, // killed by a signal
    }
}

/// Runs `cmd` quietly and returns its trimmed stdout, or None if it could not run or failed.
fn capture(cmd: &mut Command) -> Option<String> {
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
fn fnv1a(chunks: &[&[u8]]) -> String {
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

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|err| Failure::new(format!("cannot read {}: {err}", path.display())))
}

fn stamp_matches(stamp: &Path, expected: &str) -> bool {
    fs::read_to_string(stamp).is_ok_and(|s| s.trim() == expected)
}

fn write_stamp(stamp: &Path, value: &str) -> Result<()> {
    fs::write(stamp, format!("{value}\n"))
        .map_err(|err| Failure::new(format!("cannot write {}: {err}", stamp.display())))
}

fn parse_version(text: &str) -> Vec<u32> {
    text.trim()
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map_while(|part| part.parse().ok())
        .collect()
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
fn system_packages() -> Result<()> {
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

// ---------------------------------------------------------------------------------------
// Client installs

/// What `cargo test` needs to find the installed clients.
#[derive(Debug)]
struct ClientEnv {
    vars: Vec<(&'static str, String)>,
}

fn setup() -> Result<ClientEnv> {
    system_packages()?;
    let root = repo_root();
    let clients = root.join("tests").join("clients");
    python_clients(&root, &clients)?;
    js_clients(&clients)?;
    let go_whoami = go_client(&clients)?;
    let java_whoami = java_client(&clients)?;
    Ok(ClientEnv {
        vars: vec![
            (
                "CREDD_TEST_PYTHON",
                venv_bin(&root, "python").display().to_string(),
            ),
            (
                "CREDD_TEST_AWS_CLI",
                venv_bin(&root, "aws").display().to_string(),
            ),
            ("CREDD_TEST_NODE", "node".to_string()),
            ("CREDD_TEST_CLIENTS", clients.display().to_string()),
            ("CREDD_TEST_GO_WHOAMI", go_whoami.display().to_string()),
            ("CREDD_TEST_JAVA_WHOAMI", java_whoami.display().to_string()),
        ],
    })
}

fn print_exports(env: &ClientEnv) {
    header("Variables for running `cargo test` by hand");
    for (name, value) in &env.vars {
        println!("export {name}={value}");
    }
}

fn python_clients(root: &Path, clients: &Path) -> Result<()> {
    header("Python test clients: virtualenv .venv with tests/clients/requirements.txt");
    let requirements = clients.join("requirements.txt");
    let venv = root.join(".venv");
    let python = venv_bin(root, "python");

    let version = capture(
        Command::new(&python).args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"]),
    );
    let venv_usable = version.is_some()
        && capture(Command::new(&python).args(["-m", "pip", "--version"])).is_some();
    if !venv_usable {
        if venv.exists() {
            note(".venv exists but is broken (no working python or pip in it): recreating it");
            fs::remove_dir_all(&venv).map_err(|err| {
                Failure::new(format!(
                    "cannot remove the broken {}: {err}; remove it by hand and re-run",
                    venv.display()
                ))
            })?;
        }
        create_venv(root, &venv)?;
    }
    let version = capture(
        Command::new(&python).args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"]),
    )
    .ok_or_else(|| {
        Failure::new(format!(
            "{} does not run after creating the virtualenv; remove {} and re-run",
            python.display(),
            venv.display()
        ))
    })?;

    let wanted = fnv1a(&[version.as_bytes(), &read(&requirements)?]);
    let stamp = venv.join(".credd-requirements.stamp");
    if stamp_matches(&stamp, &wanted) && venv_bin(root, "aws").exists() {
        note(&format!(
            "up to date (Python {version}; stamp {} matches requirements.txt)",
            stamp.display()
        ));
        return Ok(());
    }
    let _ = fs::remove_file(&stamp);
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "-r",
            ])
            .arg(&requirements)
            .current_dir(root),
        "pip could not install the pinned test clients: check the network access to PyPI \
         and the error above, then re-run `cargo xtask test`",
    )?;
    write_stamp(&stamp, &wanted)?;
    note(&format!("installed into {}", venv.display()));
    Ok(())
}

fn create_venv(root: &Path, venv: &Path) -> Result<()> {
    let python3 = "python3";
    let version = capture(
        Command::new(python3).args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"]),
    )
    .ok_or_else(|| {
        Failure::new(format!(
            "python3 not found on PATH: install Python {}.{}+ (Debian/Ubuntu: \
             `apt-get install python3 {DEBIAN_VENV_PACKAGE}`), then re-run",
            MIN_PYTHON.0, MIN_PYTHON.1
        ))
    })?;
    let parts = parse_version(&version);
    let (major, minor) = (
        parts.first().copied().unwrap_or(0),
        parts.get(1).copied().unwrap_or(0),
    );
    if (major, minor) < MIN_PYTHON {
        return Err(Failure::new(format!(
            "python3 is Python {version}, the pinned test clients need Python {}.{}+: \
             install a newer Python 3 as `python3` on PATH, then re-run",
            MIN_PYTHON.0, MIN_PYTHON.1
        )));
    }
    // Debian and Ubuntu split venv support (ensurepip) out of python3.
    if capture(Command::new(python3).args(["-c", "import venv, ensurepip"])).is_none() {
        return Err(Failure::new(format!(
            "python3 (Python {version}) has no venv support (the modules venv/ensurepip are \
             missing). On Debian/Ubuntu install the Debian package {DEBIAN_VENV_PACKAGE}: \
             `apt-get install {DEBIAN_VENV_PACKAGE}`, then re-run"
        )));
    }
    note(&format!("creating .venv with python3 (Python {version})"));
    let result = run(
        Command::new(python3)
            .args(["-m", "venv"])
            .arg(venv)
            .current_dir(root),
        &format!(
            "On Debian/Ubuntu this usually means the package {DEBIAN_VENV_PACKAGE} is \
             missing: `apt-get install {DEBIAN_VENV_PACKAGE}`, then re-run"
        ),
    );
    if result.is_err() {
        // Do not leave a half-made venv behind for the next run to trip over.
        let _ = fs::remove_dir_all(venv);
    }
    result
}

fn js_clients(clients: &Path) -> Result<()> {
    header("JS test clients: npm ci in tests/clients");
    let node_version = capture(Command::new("node").arg("--version")).ok_or_else(|| {
        Failure::new(format!(
            "node not found on PATH: install Node.js {MIN_NODE_MAJOR}+ with npm, then re-run"
        ))
    })?;
    let major = parse_version(&node_version).first().copied().unwrap_or(0);
    if major < MIN_NODE_MAJOR {
        return Err(Failure::new(format!(
            "node is {node_version}, the pinned AWS SDK for JavaScript needs Node.js \
             {MIN_NODE_MAJOR}+: install a newer Node.js, then re-run"
        )));
    }
    let npm_version = capture(Command::new("npm").arg("--version")).ok_or_else(|| {
        Failure::new(format!(
            "npm not found on PATH: install npm (it comes with Node.js {MIN_NODE_MAJOR}+), \
             then re-run"
        ))
    })?;

    let lock = clients.join("package-lock.json");
    let manifest = clients.join("package.json");
    let wanted = fnv1a(&[node_version.as_bytes(), &read(&manifest)?, &read(&lock)?]);
    let node_modules = clients.join("node_modules");
    let stamp = node_modules.join(".credd-npm.stamp");
    if stamp_matches(&stamp, &wanted) {
        note(&format!(
            "up to date (node {node_version}; stamp {} matches package-lock.json)",
            stamp.display()
        ));
        return Ok(());
    }
    note(&format!("node {node_version}, npm {npm_version}"));
    run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(clients)
            .stdin(Stdio::null()),
        "npm could not install tests/clients/package-lock.json: check the network access \
         to the npm registry and the error above, then re-run `cargo xtask test`",
    )?;
    write_stamp(&stamp, &wanted)?;
    Ok(())
}

/// `go` on PATH, or the official toolchain's place when PATH lacks it.
fn find_go() -> Option<(OsString, String)> {
    ["go", "/usr/local/go/bin/go"].into_iter().find_map(|go| {
        capture(Command::new(go).args(["env", "GOVERSION"])).map(|v| (OsString::from(go), v))
    })
}

/// Builds the Go SDK v2 client (`tests/clients/go`) into `tests/clients/go/bin/whoami`,
/// statically linked (`CGO_ENABLED=0`): the same binary runs on the host and, with
/// nothing else, inside the real-engine tests' container images (`tests/tests/docker_sdks.rs`).
fn go_client(clients: &Path) -> Result<PathBuf> {
    header("Go SDK v2 test client: go build in tests/clients/go");
    let dir = clients.join("go");
    let bin_dir = dir.join("bin");
    let binary = bin_dir.join("whoami");
    let wanted_go = format!("{}.{}", MIN_GO.0, MIN_GO.1);
    let (go, version) = find_go().ok_or_else(|| {
        Failure::new(format!(
            "go not found on PATH (nor /usr/local/go/bin/go): install Go {wanted_go} or newer \
             (Debian 13: `apt-get install golang-go`; Debian 12's golang-go is 1.19, too old \
             for the pinned SDK: install the Go toolchain into /usr/local/go instead), then re-run"
        ))
    })?;
    let parts = parse_version(&version);
    let have = (
        parts.first().copied().unwrap_or(0),
        parts.get(1).copied().unwrap_or(0),
    );
    if have < MIN_GO {
        return Err(Failure::new(format!(
            "{} is {version}, the pinned AWS SDK for Go v2 (tests/clients/go/go.mod) needs Go \
             {wanted_go} or newer: install a newer Go, then re-run",
            Path::new(&go).display()
        )));
    }
    let wanted = fnv1a(&[
        version.as_bytes(),
        b"CGO_ENABLED=0",
        &read(&dir.join("go.mod"))?,
        &read(&dir.join("go.sum"))?,
        &read(&dir.join("main.go"))?,
    ]);
    let stamp = bin_dir.join(".credd-go.stamp");
    if stamp_matches(&stamp, &wanted) && binary.exists() {
        note(&format!(
            "up to date ({version}; stamp {} matches go.mod, go.sum and main.go)",
            stamp.display()
        ));
        return Ok(binary);
    }
    let _ = fs::remove_file(&stamp);
    run(
        Command::new(&go)
            .args(["build", "-trimpath", "-mod=readonly", "-o"])
            .arg(&binary)
            .arg(".")
            .current_dir(&dir)
            // Build with this Go, never a toolchain downloaded on the side; and with
            // exactly the modules go.sum pins (-mod=readonly fails instead of updating).
            .env("GOTOOLCHAIN", "local")
            // Static: no libc needed in the container images.
            .env("CGO_ENABLED", "0")
            .stdin(Stdio::null()),
        "go could not build tests/clients/go: check the network access to the Go module \
         proxy (GOPROXY) and the error above, then re-run `cargo xtask test`",
    )?;
    write_stamp(&stamp, &wanted)?;
    note(&format!("built {}", binary.display()));
    Ok(binary)
}

/// Builds the Java SDK v2 client (`tests/clients/java`) into a runnable jar, and
/// records a class-data archive next to it so that each test run starts faster.
fn java_client(clients: &Path) -> Result<PathBuf> {
    header("Java SDK v2 test client: mvn package in tests/clients/java");
    let dir = clients.join("java");
    let target = dir.join("target");
    let jar = target.join("credd-java-whoami.jar");
    let archive = target.join("credd-java-whoami.jsa");
    let install = format!(
        "install a JDK {MIN_JAVA_MAJOR}+ and Maven (Debian/Ubuntu: `apt-get install \
         {DEBIAN_JDK_PACKAGE} {DEBIAN_MAVEN_PACKAGE}`), then re-run"
    );
    // `java --version` prints on stdout (JDK 9+); its first line names the runtime.
    let java_version = capture(Command::new("java").arg("--version"))
        .ok_or_else(|| Failure::new(format!("java not found on PATH: {install}")))?;
    let java_line = java_version.lines().next().unwrap_or_default().to_string();
    let major = parse_version(&java_line).first().copied().unwrap_or(0);
    if major < MIN_JAVA_MAJOR {
        return Err(Failure::new(format!(
            "java is `{java_line}`, the Java SDK v2 client needs Java {MIN_JAVA_MAJOR}+: {install}"
        )));
    }
    capture(Command::new("javac").arg("-version")).ok_or_else(|| {
        Failure::new(format!(
            "javac not found on PATH (a Java runtime without the JDK): {install}"
        ))
    })?;
    capture(Command::new("mvn").args(["--batch-mode", "--version"]))
        .ok_or_else(|| Failure::new(format!("mvn (Maven) not found on PATH: {install}")))?;

    let source = dir.join("src/main/java/credd/test/Whoami.java");
    let wanted = fnv1a(&[
        java_version.as_bytes(),
        &read(&dir.join("pom.xml"))?,
        &read(&source)?,
    ]);
    let stamp = target.join(".credd-java.stamp");
    if stamp_matches(&stamp, &wanted) && jar.exists() {
        note(&format!(
            "up to date ({java_line}; stamp {} matches pom.xml and Whoami.java)",
            stamp.display()
        ));
        // The JVM ignores an archive made from another jar: record it again after a
        // `mvn package` by hand.
        if !newer_than(&archive, &jar) {
            record_class_archive(&jar, &archive)?;
        }
        return Ok(jar);
    }
    let _ = fs::remove_file(&stamp);
    run(
        Command::new("mvn")
            .args(["-q", "-B", "package"])
            .current_dir(&dir)
            .stdin(Stdio::null()),
        "Maven could not build tests/clients/java: check the network access to Maven \
         Central and the error above, then re-run `cargo xtask test`",
    )?;
    record_class_archive(&jar, &archive)?;
    write_stamp(&stamp, &wanted)?;
    note(&format!("built {}", jar.display()));
    Ok(jar)
}

/// Whether `path` exists and was modified after `than`.
fn newer_than(path: &Path, than: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(path), modified(than)), (Some(a), Some(b)) if a > b)
}

/// Runs the jar once with `-XX:ArchiveClassesAtExit` (AppCDS) so that later runs map
/// the SDK's classes instead of loading them: the client matrix starts the JVM dozens
/// of times. The run signs a request to a closed local port (static dummy keys, STS at
/// 127.0.0.1:9), which loads the credential, signing, HTTP and STS classes, and fails
/// as intended; only the archive matters. Without an archive the tests still run, slower.
fn record_class_archive(jar: &Path, archive: &Path) -> Result<()> {
    let _ = fs::remove_file(archive);
    let home = jar.with_file_name("cds-home");
    fs::create_dir_all(&home)
        .map_err(|err| Failure::new(format!("cannot create {}: {err}", home.display())))?;
    let mut flag = OsString::from("-XX:ArchiveClassesAtExit=");
    flag.push(archive);
    let status = Command::new("java")
        .args([
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-XX:-UsePerfData",
            "-Xlog:cds=off,cds+dynamic=off",
        ])
        .arg(flag)
        .arg("-jar")
        .arg(jar)
        .env_clear()
        .env("PATH", env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDCLASSARCHIVE")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-secret")
        .env("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = fs::remove_dir_all(&home);
    match status {
        Ok(_) if archive.exists() => note(&format!("class-data archive {}", archive.display())),
        _ => {
            note("no class-data archive (the JVM did not write one): the Java client starts slower")
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Commands

fn test(extra: &[String]) -> Result<()> {
    let clients = setup()?;
    let root = repo_root();

    header("Test environment");
    for (name, value) in &clients.vars {
        note(&format!("{name}={value}"));
    }
    let with_env = |cmd: &mut Command| {
        for (name, value) in &clients.vars {
            cmd.env(name, value);
        }
        cmd.current_dir(&root);
    };

    header("Build: cargo build --workspace --all-targets");
    let mut build = Command::new(cargo());
    build.args(["build", "--workspace", "--all-targets"]);
    with_env(&mut build);
    run(&mut build, "fix the build errors above")?;

    let mut totals = TestTotals::default();
    if extra.is_empty() {
        header("Doctests: cargo test --workspace --doc");
        let mut doc = Command::new(cargo());
        doc.args(["test", "--workspace", "--doc"]);
        with_env(&mut doc);
        run_tests(&mut doc, &mut totals)?;
    }

    let shown_extra = if extra.is_empty() {
        String::new()
    } else {
        format!(" {}", extra.join(" "))
    };
    // `--workspace` wins over `-p` in cargo: leave it out when ARGS pick packages.
    let scope = if selects_packages(extra) {
        ""
    } else {
        " --workspace"
    };
    header(&format!(
        "Tests: cargo test{scope} --all-targets{shown_extra}"
    ));
    let mut tests = Command::new(cargo());
    tests.arg("test");
    if !scope.is_empty() {
        tests.arg("--workspace");
    }
    tests.arg("--all-targets").args(extra);
    with_env(&mut tests);
    let outcome = run_tests(&mut tests, &mut totals);

    header("Summary");
    // One plain closing line, summed over every test binary that ran.
    println!(
        "tests: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    let _ = io::stdout().flush();
    outcome
}

/// Whether cargo-test ARGS (before any `--`) name packages with `-p`/`--package`.
fn selects_packages(extra: &[String]) -> bool {
    extra.iter().take_while(|arg| *arg != "--").any(|arg| {
        arg == "-p"
            || arg == "--package"
            || arg.starts_with("--package=")
            || (arg.starts_with("-p") && !arg.starts_with("--"))
    })
}

#[derive(Debug, Default)]
struct TestTotals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestTotals {
    /// Adds one libtest closing line:
    /// `test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ...`
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match kind {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

/// Runs `cargo test`, passing its stdout through line by line while counting results.
fn run_tests(cmd: &mut Command, totals: &mut TestTotals) -> Result<()> {
    let shown = describe(cmd);
    note(&format!("$ {shown}"));
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|err| spawn_failure(&shown, &err))?;
    if let Some(stdout) = child.stdout.take() {
        let mut reader = BufReader::new(stdout);
        let mut out = io::stdout();
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let _ = out.write_all(&line);
                    let _ = out.flush();
                    totals.add_line(&String::from_utf8_lossy(&line));
                }
            }
        }
    }
    let status = child
        .wait()
        .map_err(|err| Failure::new(format!("waiting for `{shown}`: {err}")))?;
    if status.success() {
        return Ok(());
    }
    Err(Failure {
        message: format!(
            "`{shown}` failed ({status}): see the failing tests above; re-run one with \
             `cargo xtask test -- -p PACKAGE TEST_NAME`"
        ),
        code: exit_code_of(status),
    })
}

fn lint() -> Result<()> {
    let root = repo_root();
    header("Format: cargo fmt --all -- --check");
    run(
        Command::new(cargo())
            .args(["fmt", "--all", "--", "--check"])
            .current_dir(&root),
        "run `cargo fmt --all` to format the code (if cargo fmt itself is missing: \
         `rustup component add rustfmt`)",
    )?;
    header("Lint: cargo clippy --workspace --all-targets -- -D warnings");
    run(
        Command::new(cargo())
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
            .current_dir(&root),
        "fix the clippy findings above (if cargo clippy itself is missing: \
         `rustup component add clippy`)",
    )?;
    header("Lint passed");
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
    fn totals_sum_libtest_closing_lines() {
        let mut totals = TestTotals::default();
        totals.add_line(
            "test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; \
             finished in 0.01s\n",
        );
        totals.add_line("test result: FAILED. 2 passed; 3 failed; 0 ignored; 0 measured");
        totals.add_line("running 7 tests");
        assert_eq!((totals.passed, totals.failed, totals.ignored), (7, 3, 1));
    }

    #[test]
    fn package_selection_drops_workspace() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(selects_packages(&args(&["-p", "credd-core"])));
        assert!(selects_packages(&args(&["--package=credd-core", "x"])));
        assert!(selects_packages(&args(&["-pcredd-core"])));
        assert!(!selects_packages(&args(&["single_flight", "--", "-p"])));
        assert!(!selects_packages(&args(&["--test", "e2e"])));
    }

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
