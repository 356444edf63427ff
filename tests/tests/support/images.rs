//! Real SDKs inside real containers, for the real-engine tests
//! (`support::dockerd`): an image holding the Go SDK v2 whoami client
//! (`tests/clients/go`, built statically by `cargo xtask setup`) and
//! busybox for a shell, and moto reachable from the containers.
//!
//! No registry is reachable, so the image is `docker import` of a root file
//! system the test makes: `/usr/local/bin/whoami` (the static Go binary),
//! Debian's static busybox with a few applets, an empty `/tmp`. No CA
//! certificates: moto is plain http. The tarball is cached under `target/`,
//! keyed by both binaries' size and mtime.
//!
//! moto runs in the engine's network namespace on every address of that
//! "host" (`0.0.0.0`): `credd serve` there reaches it on `127.0.0.1`, and
//! containers, bridged (the default bridge or a user-defined network) or
//! `--network host`, at the default bridge's gateway address (an address of
//! the host: packets to it are the host's INPUT, which docker leaves alone;
//! its isolation rules are in FORWARD). The namespace is the test's own, so
//! listening on all of its addresses exposes nothing on the machine.

use super::clients::go_whoami;
use super::dockerd::Dockerd;
use super::{repo, Env, Moto};
use std::path::Path;
use std::process::Command;

/// The image: `whoami` (Go SDK v2) and busybox.
pub const GO_IMAGE: &str = "credd-test-go:1";
const APPLETS: [&str; 8] = ["sh", "cat", "echo", "sleep", "ls", "id", "date", "timeout"];

fn key(p: &Path) -> String {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    format!(
        "{}-{}",
        m.len(),
        m.modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    )
}

/// Imports [`GO_IMAGE`] into the engine (its tarball built once and cached).
pub fn import_go_image(dk: &Dockerd) -> &'static str {
    let go = go_whoami();
    // A dynamically linked build would need a libc the image does not have:
    // say so rather than fail inside the container with "no such file".
    let o = Command::new("ldd").arg(&go).output().unwrap();
    assert!(
        !o.status.success() || String::from_utf8_lossy(&o.stdout).contains("not a dynamic"),
        "{} is dynamically linked: rebuild it with `cargo xtask setup` (CGO_ENABLED=0)",
        go.display()
    );
    let busybox = Path::new("/bin/busybox");
    let cache = repo().join("target/credd-test-images");
    std::fs::create_dir_all(&cache).unwrap();
    let tar = cache.join(format!(
        "go-whoami-{}-busybox-{}-{}.tar",
        key(&go),
        key(busybox),
        APPLETS.len()
    ));
    if !tar.exists() {
        let root = tempfile::tempdir().unwrap();
        for d in ["bin", "tmp", "etc", "run/secrets", "usr/local/bin"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        // Any uid (`--user 1000:1000`) may write /tmp, as on a real system.
        std::fs::set_permissions(
            root.path().join("tmp"),
            std::fs::Permissions::from_mode(0o1777),
        )
        .unwrap();
        std::fs::copy(&go, root.path().join("usr/local/bin/whoami")).unwrap();
        std::fs::copy(busybox, root.path().join("bin/busybox")).unwrap();
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", root.path().join("bin").join(applet)).unwrap();
        }
        let part = tar.with_extension("part");
        let o = Command::new("tar")
            .arg("-C")
            .arg(root.path())
            .arg("--owner=0")
            .arg("--group=0")
            .arg("-cf")
            .arg(&part)
            .arg(".")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "tar: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::rename(&part, &tar).unwrap();
    }
    dk.docker_ok(&["import", tar.to_str().unwrap(), GO_IMAGE]);
    GO_IMAGE
}

/// moto in the engine's namespace on all its addresses: the [`Moto`]
/// (`url` on the namespace's loopback, for `credd serve`) and the STS
/// endpoint containers use (`http://GATEWAY:PORT`).
/// `vars` go to moto (e.g. `MOTO_COUNTING_ROLE_SECONDS`, see
/// `tests/clients/moto_counting.py`).
pub fn moto_for_containers_with(dk: &Dockerd, vars: &[(&str, &str)]) -> (Moto, String) {
    let mut python = Command::new("nsenter");
    python
        .arg(format!("--net=/run/netns/{}", dk.ns))
        .arg("--")
        .arg(super::python())
        .envs(vars.iter().copied());
    let mut moto = Moto::spawn(python, "0.0.0.0");
    let port = moto
        .url
        .strip_prefix("http://0.0.0.0:")
        .unwrap_or_else(|| panic!("moto did not start on 0.0.0.0: {}", moto.url))
        .to_string();
    // docker0's address (the default bridge's IPAM config of Debian's
    // docker 20.10 names no gateway).
    let o = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", dk.ns))
        .args(["--", "ip", "-4", "-o", "addr", "show", "dev", "docker0"])
        .output()
        .unwrap();
    let gateway = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_default()
        .to_string();
    assert!(!gateway.is_empty(), "the default bridge has no gateway");
    // Reached from this side of the namespace at its loopback.
    moto.url = format!("http://127.0.0.1:{port}");
    (moto, format!("http://{gateway}:{port}"))
}

/// How many times moto saw `action`, asked from the engine's namespace
/// ([`Moto::count`] connects from the test's own, where moto is not).
pub fn moto_count(dk: &Dockerd, env: &Env, action: &str) -> u64 {
    let o = dk
        .host_cmd(env, super::python())
        .args([
            "-c",
            &format!(
                "import json,urllib.request;print(json.load(urllib.request.urlopen('{}/_counts')).get('{action}',0))",
                env.moto.url
            ),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}
