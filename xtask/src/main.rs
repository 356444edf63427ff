//! Project automation for credd, std only.
//!
//! - `cargo xtask test [-- ARGS...]`: installs the pinned test clients (a Python
//!   virtualenv with moto, boto3 and the AWS CLI; the JS SDK with `npm ci`), then builds
//!   and runs every test in the workspace. ARGS go to `cargo test`.
//! - `cargo xtask lint`: `cargo fmt --check` and `cargo clippy -D warnings`.
//! - `cargo xtask setup`: only the client installs, and the variables to export to run
//!   `cargo test` by hand.

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

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [-- ARGS...]  install the pinned test clients (Python venv at .venv, JS SDK in
                     tests/clients/node_modules), then `cargo build --workspace --all-targets`
                     and `cargo test --workspace --all-targets [ARGS...]`
                     (plus the doctests when no ARGS are given)
  lint               `cargo fmt --all -- --check` and
                     `cargo clippy --workspace --all-targets -- -D warnings`
  setup              only install the test clients and print the variables that
                     `cargo test` needs to find them
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
// Client installs

/// What `cargo test` needs to find the installed clients.
#[derive(Debug)]
struct ClientEnv {
    vars: Vec<(&'static str, String)>,
}

fn setup() -> Result<ClientEnv> {
    let root = repo_root();
    let clients = root.join("tests").join("clients");
    python_clients(&root, &clients)?;
    js_clients(&clients)?;
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

// ---------------------------------------------------------------------------------------
// Commands

fn test(extra: &[String]) -> Result<()> {
    let clients = setup()?;
    docker_engine_packages()?;
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

/// The real-engine container tests (`tests/tests/docker_engine.rs`) start their own
/// `dockerd` and build their image from a static busybox: Debian's `docker.io` and
/// `busybox-static`, installed here when missing and we are root. Kept apart from the
/// other system packages on purpose (that check is being reworked into a table).
/// Without root nothing is installed and the note says those tests will fail.
fn docker_engine_packages() -> Result<()> {
    const PACKAGES: [&str; 2] = ["docker.io", "busybox-static"];
    let on_path = |name: &str| {
        capture(Command::new("sh").args(["-c", &format!("command -v {name}")])).is_some()
    };
    if on_path("dockerd") && on_path("docker") && Path::new("/bin/busybox").exists() {
        return Ok(());
    }
    header("System packages for the real-engine tests");
    if capture(Command::new("id").arg("-u")).as_deref() != Some("0") {
        note(&format!(
            "not root: not installing {}; tests/tests/docker_engine.rs will fail until they are installed \
             (`sudo apt-get install {}`)",
            PACKAGES.join(", "),
            PACKAGES.join(" ")
        ));
        return Ok(());
    }
    run(
        Command::new("apt-get")
            .args(["update", "-q"])
            .stdin(Stdio::null()),
        "check that the Debian mirrors are reachable, then re-run",
    )?;
    run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null()),
        "install them by hand (`apt-get install docker.io busybox-static`), then re-run",
    )
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
