//! The pinned test clients `cargo xtask test` and `setup` install: the Python
//! virtualenv (moto, boto3, the AWS CLI), the JS SDK, the Go SDK v2 and Java
//! SDK v2 clients, and the variables `cargo test` needs to find them.

use crate::system_packages;
use crate::util::*;
use crate::{
    Failure, Result, DEBIAN_JDK_PACKAGE, DEBIAN_MAVEN_PACKAGE, DEBIAN_VENV_PACKAGE, MIN_GO,
    MIN_JAVA_MAJOR, MIN_NODE_MAJOR, MIN_PYTHON,
};
use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What `cargo test` needs to find the installed clients.
#[derive(Debug)]
pub(crate) struct ClientEnv {
    pub(crate) vars: Vec<(&'static str, String)>,
}

pub(crate) fn setup() -> Result<ClientEnv> {
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

pub(crate) fn print_exports(env: &ClientEnv) {
    header("Variables for running `cargo test` by hand");
    for (name, value) in &env.vars {
        println!("export {name}={value}");
    }
}

pub(crate) fn python_clients(root: &Path, clients: &Path) -> Result<()> {
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

pub(crate) fn create_venv(root: &Path, venv: &Path) -> Result<()> {
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

pub(crate) fn js_clients(clients: &Path) -> Result<()> {
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
pub(crate) fn find_go() -> Option<(OsString, String)> {
    ["go", "/usr/local/go/bin/go"].into_iter().find_map(|go| {
        capture(Command::new(go).args(["env", "GOVERSION"])).map(|v| (OsString::from(go), v))
    })
}

/// Builds the Go SDK v2 client (`tests/clients/go`) into `tests/clients/go/bin/whoami`,
/// statically linked (`CGO_ENABLED=0`): the same binary runs on the host and, with
/// nothing else, inside the real-engine tests' container images (`tests/tests/docker_sdks.rs`).
pub(crate) fn go_client(clients: &Path) -> Result<PathBuf> {
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
pub(crate) fn java_client(clients: &Path) -> Result<PathBuf> {
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
pub(crate) fn newer_than(path: &Path, than: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(path), modified(than)), (Some(a), Some(b)) if a > b)
}

/// Runs the jar once with `-XX:ArchiveClassesAtExit` (AppCDS) so that later runs map
/// the SDK's classes instead of loading them: the client matrix starts the JVM dozens
/// of times. The run signs a request to a closed local port (static dummy keys, STS at
/// 127.0.0.1:9), which loads the credential, signing, HTTP and STS classes, and fails
/// as intended; only the archive matters. Without an archive the tests still run, slower.
pub(crate) fn record_class_archive(jar: &Path, archive: &Path) -> Result<()> {
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
