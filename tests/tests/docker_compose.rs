//! The compose files of docs/docker.md, as written, with Debian's
//! `docker-compose` (1.29) on a real engine (`support::dockerd`): the Linux
//! way (after `credd docker setup`) and the relay way (Docker Desktop's
//! shape: `credd relay` in a container, the daemon on the host's loopback
//! reached through `host-gateway`).
//!
//! Each file is taken from the docs byte for byte into `compose.yaml`; the
//! only addition is `compose.override.yaml` (read by compose on its own)
//! pointing the app's STS at moto. No registry is reachable, so the images
//! the docs name are local stand-ins tagged with those names: the Debian
//! test image (`support::debian`) as `debian:bookworm-slim`, and as
//! `amazon/aws-cli` with the AWS CLI as its entrypoint. `./credd-linux` is
//! the `credd` built here. Every test asserts the role's ARN from STS.
//! Needs root, `docker.io`, `docker-compose` and the Debian image's inputs.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;
use support::debian::import_debian_image;
use support::images::moto_count;
use support::world::{World, DEV_ARN};
use support::*;

/// The ```yaml block of docs/docker.md whose first line is `first`.
fn compose_from_docs(first: &str) -> String {
    let doc = std::fs::read_to_string(repo().join("docs/docker.md")).unwrap();
    let block = doc
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.starts_with(first))
        .unwrap_or_else(|| panic!("docs/docker.md has no compose file starting {first:?}"));
    block.to_string()
}

fn need_compose() {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("docker-compose").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "the compose tests need `docker-compose`: install Debian's docker-compose as root \
         (`cargo xtask system-packages` does). Not skipped"
    );
}

/// A project directory as the docs describe it: `compose.yaml` from the
/// docs, the token from `credd token issue` (the command in the file's
/// comment), `credd-linux`, and the test's override (moto as STS).
fn project(w: &World, compose: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("credd-compose-")
        .tempdir()
        .unwrap();
    std::fs::write(dir.path().join("compose.yaml"), compose).unwrap();
    std::fs::write(
        dir.path().join("compose.override.yaml"),
        format!(
            "services:\n  app:\n    environment:\n      AWS_ENDPOINT_URL_STS: {}\n",
            w.sts
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(credd_bin(), dir.path().join("credd-linux")).unwrap();
    let o = w
        .user_cmd(dir.path(), "credd")
        .args([
            "token",
            "issue",
            "--profile",
            "dev",
            "--ttl",
            "8h",
            "--file",
            "./credd-token",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "credd token issue: {}", stderr_of(&o));
    dir
}

/// `docker-compose up -d`, then the app's exit code and output once it ends;
/// `docker-compose down` after.
fn compose_up(w: &World, dir: &Path) -> (String, String) {
    let compose = |args: &[&str]| {
        let o = w
            .user_cmd(dir, "docker-compose")
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "docker-compose {args:?}: {}{}",
            stdout_of(&o),
            stderr_of(&o)
        );
        stdout_of(&o)
    };
    compose(&["up", "-d"]);
    let app = compose(&["ps", "-q", "app"]);
    assert!(!app.is_empty(), "no app container");
    let code = w.dk.docker_ok(&["wait", &app]).trim().to_string();
    let logs = w.dk.docker(&["logs", &app]);
    let out = format!("{}\n{}", stdout_of(&logs), stderr_of(&logs));
    compose(&["down"]);
    (code, out)
}

fn assert_dev_arn(code: &str, out: &str, what: &str) {
    let arn = out
        .find('{')
        .and_then(|i| serde_json::from_str::<serde_json::Value>(&out[i..]).ok())
        .and_then(|v| v["Arn"].as_str().map(str::to_string));
    assert!(
        code == "0" && arn.as_deref() == Some(DEV_ARN),
        "{what}: exit {code}: {out}"
    );
}

#[test]
fn the_linux_compose_file_runs_as_written_after_docker_setup() {
    need_compose();
    let w = World::new(&[]);
    import_debian_image(&w.dk, "amazon/aws-cli", Some(&["aws"]));
    let dir = project(
        &w,
        &compose_from_docs("# compose.yaml (Linux, after `sudo credd docker setup`)"),
    );
    let (code, out) = compose_up(&w, dir.path());
    assert_dev_arn(&code, &out, "the Linux compose file");
    assert_eq!(moto_count(&w.dk, &w.env, "AssumeRole"), 1);
}

/// Docker Desktop's `host.docker.internal`, stood in for: a forwarder from
/// the bridge's address to the daemon on the host's loopback
/// (`tests/clients/tcp_forward.py`), killed on drop.
struct Desktop {
    child: Child,
    _stdin: ChildStdin,
}

impl Drop for Desktop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_relay_compose_file_runs_as_written_in_docker_desktops_shape() {
    need_compose();
    // Desktop has no `credd docker setup`: the daemon listens on the host's
    // loopback only, and the relay is the containers' way in.
    let mut w = World::bare(&[]);
    let log = w.env.path("serve-relay.log");
    let logf = std::fs::File::create(&log).unwrap();
    let child =
        w.dk.host_cmd(&w.env, credd_bin())
            .args(["serve", "--listen", "127.0.0.1:9911"])
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .unwrap();
    let env = &w.env;
    w.daemon = Some(Daemon::when_ready(
        child,
        log,
        Duration::from_secs(30),
        || Some(env.credd(&["status", "--json"])),
    ));
    // host-gateway is the default bridge's address (docker0's).
    let gateway = w
        .sts
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let mut fwd = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", w.dk.ns))
        .arg("--")
        .arg(python())
        .arg(clients().join("tcp_forward.py"))
        .args([gateway.as_str(), "9911", "9911"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = fwd.stdin.take().unwrap();
    let mut line = String::new();
    BufReader::new(fwd.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY", "the forwarder did not start");
    let _desktop = Desktop {
        child: fwd,
        _stdin: stdin,
    };
    import_debian_image(&w.dk, "debian:bookworm-slim", None);
    import_debian_image(&w.dk, "amazon/aws-cli", Some(&["aws"]));
    let dir = project(
        &w,
        &compose_from_docs("# compose.yaml (Docker Desktop: the relay)"),
    );
    let (code, out) = compose_up(&w, dir.path());
    assert_dev_arn(&code, &out, "the relay compose file");
    assert_eq!(moto_count(&w.dk, &w.env, "AssumeRole"), 1);
    // Nothing else could have served it: no setup, so nothing of credd's
    // at 169.254.170.2 on the engine's host; the relay was the way in.
    assert!(
        !w.dk.nat().contains("CREDD"),
        "credd docker setup ran: {}",
        w.dk.nat()
    );
}
