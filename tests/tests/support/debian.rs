//! A Debian-based image with the Python SDKs, for the real-engine tests
//! (`support::dockerd`): Debian bookworm (`debootstrap --variant=minbase`
//! with `python3`), the current boto3 and AWS CLI, and separately the last
//! botocore before `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (1.31.85).
//!
//! No registry is reachable, so the root file system is made here and
//! brought in with `docker import`. PyPI is reachable from the host, not
//! necessarily from a container, so the SDKs are installed on the host with
//! `pip install --target` for the image's CPython 3.11 (`--platform`,
//! `--python-version`, wheels only) into directories of the root file
//! system. What is where in the image:
//!
//! - `/opt/sdk/current`: `tests/clients/debian/requirements-current.txt`;
//!   `/opt/sdk/botocore-1.31`: `requirements-botocore-1.31.txt`;
//! - `python3-sdk` and `python3-botocore-1.31` (in `/usr/local/bin`):
//!   Debian's `python3` with one of them on `PYTHONPATH`; `aws`: the
//!   current AWS CLI;
//! - `/usr/local/lib/credd/whoami.py` and `sdk_loop.py` (from
//!   `tests/clients`).
//!
//! The tarball is built once and cached under `target/credd-test-images/`,
//! keyed by a hash of every input (this builder's [`RECIPE`], the suite, the
//! requirement files, the scripts): about a minute and 350 MB, then each
//! engine imports it in seconds. A file lock keeps two test processes from
//! building it at once. Without `debootstrap` or the network the test fails
//! saying so (never a silent pass).

use super::dockerd::Dockerd;
use super::{clients, python, repo};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python image's name in the engine.
pub const PY_IMAGE: &str = "credd-test-debian:1";
/// Debian suite of the image: the one this project's machines run, whose
/// `python3` (3.11) the wheels below are chosen for.
const SUITE: &str = "bookworm";
const PY_VERSION: &str = "3.11";
/// Bump when the build below changes in a way the inputs do not show.
const RECIPE: &str = "debian-py-1";

fn inputs() -> Vec<PathBuf> {
    let c = clients();
    vec![
        c.join("debian/requirements-current.txt"),
        c.join("debian/requirements-botocore-1.31.txt"),
        c.join("debian/sdk_loop.py"),
        c.join("whoami.py"),
    ]
}

fn run(cmd: &mut Command, what: &str) {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{what} failed ({cmd:?}):\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The cached tarball of the image's root file system, built if missing.
pub fn debian_tarball() -> PathBuf {
    let mut h = Sha256::new();
    h.update(RECIPE);
    h.update(SUITE);
    for p in inputs() {
        h.update(p.to_string_lossy().rsplit('/').next().unwrap_or_default());
        h.update(std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())));
    }
    let key = hex::encode(&h.finalize()[..8]);
    let cache = repo().join("target/credd-test-images");
    std::fs::create_dir_all(&cache).unwrap();
    let tar = cache.join(format!("debian-{SUITE}-py-{key}.tar"));
    // Two test binaries may want it at once: one builds, the other waits.
    let lock = std::fs::File::create(cache.join("debian.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    if !tar.exists() {
        build(&cache, &tar);
    }
    tar
}

fn build(cache: &Path, tar: &Path) {
    let found = |p: &str| {
        std::env::var_os("PATH")
            .map(|v| std::env::split_paths(&v).any(|d| d.join(p).is_file()))
            .unwrap_or(false)
    };
    assert!(
        found("debootstrap"),
        "the Python container tests build a Debian image: install Debian's debootstrap \
         as root (`apt-get install debootstrap`; `cargo xtask system-packages` does). Not skipped"
    );
    eprintln!(
        "building the Debian test image (once; cached as {})",
        tar.display()
    );
    // On target/'s file system, next to the cache (not /tmp: 500 MB).
    let work = tempfile::Builder::new()
        .prefix("debian-build-")
        .tempdir_in(cache)
        .unwrap();
    let root = work.path().join("root");
    let mirror = std::env::var("CREDD_TEST_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".to_string());
    run(
        Command::new("debootstrap")
            .args(["--variant=minbase", "--include=python3", SUITE])
            .arg(&root)
            .arg(&mirror),
        "debootstrap (needs the Debian mirror; CREDD_TEST_DEBIAN_MIRROR names another)",
    );
    let c = clients();
    for (req, dir) in [
        ("requirements-current.txt", "current"),
        ("requirements-botocore-1.31.txt", "botocore-1.31"),
    ] {
        run(
            Command::new(python())
                .args(["-m", "pip", "install", "--quiet", "--no-compile"])
                .args(["--disable-pip-version-check", "--no-deps"])
                .args(["--only-binary=:all:", "--platform", "manylinux2014_x86_64"])
                .args(["--implementation", "cp", "--python-version", PY_VERSION])
                .arg("--target")
                .arg(root.join("opt/sdk").join(dir))
                .arg("-r")
                .arg(c.join("debian").join(req)),
            &format!("pip install -r {req} (needs PyPI)"),
        );
        // Entry-point scripts name the host's python: unused in the image.
        let _ = std::fs::remove_dir_all(root.join("opt/sdk").join(dir).join("bin"));
    }
    // What an image does not need: package caches, docs, man pages.
    for d in [
        "var/cache/apt",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
    ] {
        let _ = std::fs::remove_dir_all(root.join(d));
    }
    let bin = root.join("usr/local/bin");
    let lib = root.join("usr/local/lib/credd");
    for d in [&bin, &lib, &root.join("run/secrets")] {
        std::fs::create_dir_all(d).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    for (name, body) in [
        (
            "python3-sdk",
            "PYTHONPATH=/opt/sdk/current exec python3 \"$@\"",
        ),
        (
            "python3-botocore-1.31",
            "PYTHONPATH=/opt/sdk/botocore-1.31 exec python3 \"$@\"",
        ),
        (
            "aws",
            "PYTHONPATH=/opt/sdk/current exec python3 -m awscli \"$@\"",
        ),
    ] {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::copy(c.join("whoami.py"), lib.join("whoami.py")).unwrap();
    std::fs::copy(c.join("debian/sdk_loop.py"), lib.join("sdk_loop.py")).unwrap();
    let part = tar.with_extension("part");
    run(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["--numeric-owner", "-cf"])
            .arg(&part)
            .arg("."),
        "tar of the Debian root",
    );
    std::fs::rename(&part, tar).unwrap();
}

/// Imports the image into the engine as `tag`, with `entrypoint` (e.g.
/// `["aws"]` for a stand-in of `amazon/aws-cli`) when given.
pub fn import_debian_image(dk: &Dockerd, tag: &str, entrypoint: Option<&[&str]>) {
    let tar = debian_tarball();
    let mut args = vec!["import".to_string()];
    if let Some(ep) = entrypoint {
        args.push("--change".into());
        args.push(format!(
            "ENTRYPOINT [{}]",
            ep.iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    args.push(tar.to_string_lossy().into_owned());
    args.push(tag.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    dk.docker_ok(&args);
}
