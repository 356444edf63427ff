//! No container token outlives its container, on a real Docker engine
//! (`support::dockerd`) with the real `credd` binary: the daemon watches
//! the engine (`docker.watch`) and revokes the token of `credd docker run
//! -d` and of `docker run $(credd docker args ...)` when its container is
//! *removed*, not when it exits (a `--restart always` container keeps a
//! working token across restarts), including a removal that happened while
//! `credd serve` was down; a `docker args` token no container ever claims
//! is revoked after `docker.claim_within`. `credd docker ps` lists the
//! containers holding live tokens. Needs root, `docker.io` and
//! `busybox-static`; without them the tests fail saying so.

mod support;

use std::time::{Duration, Instant};
use support::dockerd::{Dockerd, IMAGE};
use support::*;

const ADDR: &str = "169.254.170.2";

/// An engine, moto, `credd docker setup` and `credd serve` watching the
/// engine: every credd command (the daemon included) gets `DOCKER_HOST`,
/// as a user's shell would.
fn world(toml: &str) -> (Dockerd, Env, Daemon) {
    let dk = Dockerd::start(&[]);
    let mut env = Env::with_moto(CONFIG, dk.moto());
    env.vars.push((
        "DOCKER_HOST".into(),
        format!("unix://{}", dk.socket().display()),
    ));
    std::fs::write(env.path("credd.toml"), toml).unwrap();
    let o = dk
        .host_cmd(&env, credd_bin())
        .args(["docker", "setup"])
        .output()
        .unwrap();
    assert!(o.status.success(), "setup: {}", stderr_of(&o));
    let d = dk.serve(&env);
    (dk, env, d)
}

/// The live tokens' ids.
fn live(env: &Env) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&env.credd_ok(&["token", "list", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// The HTTP status credd's container path (through the DNAT) answers
/// `token` with, from the engine's host.
fn status_for(dk: &Dockerd, env: &Env, token: &str) -> String {
    let script = format!(
        "import urllib.request,urllib.error\n\
         r=urllib.request.Request('http://{ADDR}/v1/credentials/dev',headers={{'Authorization':{token:?}}})\n\
         try:\n  print(urllib.request.urlopen(r,timeout=5).status)\n\
         except urllib.error.HTTPError as e:\n  print(e.code)\n"
    );
    let o = dk
        .host_cmd(env, python())
        .args(["-c", &script])
        .output()
        .unwrap();
    stdout_of(&o).trim().to_string()
}

/// Waits (generously) until `cond`; panics with `what` otherwise.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not within 60 s: {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The token a running container was given (read inside it).
fn token_in(dk: &Dockerd, name: &str) -> String {
    dk.docker_ok(&["exec", name, "cat", "/run/secrets/credd-token"])
        .trim()
        .to_string()
}

/// A container's fetch of its credentials, the way an SDK does it.
const FETCH: &str = "timeout 10 wget -q -O - --header \"Authorization: $(cat $AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)\" \"$AWS_CONTAINER_CREDENTIALS_FULL_URI\"; echo";

fn credd_docker_run(env: &Env, args: &[&str]) -> String {
    let mut all = vec!["docker", "run", "dev"];
    all.extend_from_slice(args);
    env.credd_ok(&all)
}

fn docker_ps_json(env: &Env) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&env.credd_ok(&["docker", "ps", "--json"])).unwrap();
    v.as_array().cloned().unwrap_or_default()
}

#[test]
fn a_detached_containers_token_is_revoked_when_the_container_is_removed() {
    let (dk, env, _d) = world("# defaults\n");
    credd_docker_run(&env, &["-d", "--name", "det1", IMAGE, "sleep", "600"]);
    let token = token_in(&dk, "det1");
    assert_eq!(status_for(&dk, &env, &token), "200");
    let out = dk.docker_ok(&["exec", "det1", "sh", "-c", FETCH]);
    assert!(out.contains("AccessKeyId"), "{out}");
    let ids = live(&env);
    assert_eq!(ids.len(), 1, "{ids:?}");
    // The container carries the token's id (never its secret) as a label.
    let label = dk.docker_ok(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"credd.token\"}}",
        "det1",
    ]);
    assert_eq!(label.trim(), ids[0]);
    assert!(!dk.docker_ok(&["inspect", "det1"]).contains(&token[23..]));

    // `credd docker ps`: the container, its image, profile and token age.
    let ps = env.credd_ok(&["docker", "ps"]);
    assert!(
        ps.contains("det1") && ps.contains(IMAGE) && ps.contains("dev"),
        "{ps}"
    );
    let rows = docker_ps_json(&env);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["name"], "det1");
    assert_eq!(rows[0]["image"], IMAGE);
    assert_eq!(rows[0]["token"], ids[0].as_str());
    assert_eq!(rows[0]["profiles"][0], "dev");
    assert!(rows[0]["token_age_secs"].as_i64().is_some(), "{rows:?}");

    // Stopped is not removed: the token lives on.
    dk.docker_ok(&["stop", "-t", "0", "det1"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(live(&env), ids, "a stopped container keeps its token");

    dk.docker_ok(&["rm", "-f", "det1"]);
    eventually("the removed container's token is revoked", || {
        live(&env).is_empty()
    });
    assert_eq!(status_for(&dk, &env, &token), "401");
    assert!(docker_ps_json(&env).is_empty());
}

#[test]
fn a_docker_args_token_is_revoked_when_its_container_is_removed() {
    let (dk, env, _d) = world("# defaults\n");
    let flags = env.credd_ok(&["docker", "args", "dev"]);
    assert!(flags.contains("--label credd.token="), "{flags}");
    let mut args = vec!["run", "-d", "--name", "args1"];
    args.extend(flags.split_whitespace());
    args.extend([IMAGE, "sleep", "600"]);
    dk.docker_ok(&args);
    let token = token_in(&dk, "args1");
    assert_eq!(status_for(&dk, &env, &token), "200");
    eventually("docker ps shows the container", || {
        docker_ps_json(&env).iter().any(|r| r["name"] == "args1")
    });
    dk.docker_ok(&["rm", "-f", "args1"]);
    eventually("the docker args token is revoked", || live(&env).is_empty());
    assert_eq!(status_for(&dk, &env, &token), "401");
}

#[test]
fn a_restart_always_container_keeps_a_working_token_across_restarts() {
    let (dk, env, _d) = world("# defaults\n");
    // Fetches, then exits non-zero: docker starts it again, and again.
    let script = format!("{FETCH}; sleep 1; exit 3");
    credd_docker_run(
        &env,
        &[
            "-d",
            "--restart",
            "always",
            "--name",
            "phoenix",
            IMAGE,
            "sh",
            "-c",
            &script,
        ],
    );
    eventually("the container restarted three times", || {
        dk.docker_ok(&["inspect", "-f", "{{.RestartCount}}", "phoenix"])
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
            >= 3
    });
    // Every run (the first and each restart) got credentials.
    eventually("each run fetched credentials", || {
        let logs = dk.docker(&["logs", "phoenix"]);
        stdout_of(&logs).matches("AccessKeyId").count() >= 4
    });
    assert_eq!(live(&env).len(), 1, "the token survives the restarts");
    dk.docker_ok(&["rm", "-f", "phoenix"]);
    eventually("revoked once removed", || live(&env).is_empty());
}

#[test]
fn a_container_removed_while_the_daemon_was_down_loses_its_token_at_start() {
    let (dk, env, d) = world("# defaults\n");
    credd_docker_run(&env, &["-d", "--name", "gone", IMAGE, "sleep", "600"]);
    let token = token_in(&dk, "gone");
    eventually("the daemon has seen the container", || {
        docker_ps_json(&env).iter().any(|r| r["name"] == "gone")
    });
    // A second one that stays: its token must survive the reconcile.
    credd_docker_run(&env, &["-d", "--name", "stays", IMAGE, "sleep", "600"]);
    let kept = token_in(&dk, "stays");
    drop(d);
    dk.docker_ok(&["rm", "-f", "gone"]);
    let _d = dk.serve(&env);
    eventually(
        "the token of the container removed meanwhile is revoked",
        || live(&env).len() == 1,
    );
    assert_eq!(status_for(&dk, &env, &token), "401");
    assert_eq!(status_for(&dk, &env, &kept), "200");
}

#[test]
fn a_docker_args_token_no_container_claims_is_revoked_after_the_grace_period() {
    let (_dk, env, _d) = world("[docker]\nclaim_within = \"3s\"\n");
    let o = env.credd(&["docker", "args", "dev"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("revoked if no container"),
        "{}",
        stderr_of(&o)
    );
    assert_eq!(live(&env).len(), 1);
    eventually("the unclaimed token is revoked", || live(&env).is_empty());
}

#[test]
fn status_says_when_the_engine_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::new();
    let sock = dir.path().join("nothing.sock");
    env.vars
        .push(("DOCKER_HOST".into(), format!("unix://{}", sock.display())));
    let _d = env.serve(&[]);
    let s = env.credd_ok(&["status"]);
    assert!(
        s.contains("docker: ") && s.contains(&sock.display().to_string()),
        "{s}"
    );
}

#[test]
fn the_watch_reconnects_after_a_dockerd_restart() {
    let (mut dk, env, _d) = world("# defaults\n");
    // --restart always: the engine starts it again after its own restart.
    credd_docker_run(
        &env,
        &[
            "-d",
            "--restart",
            "always",
            "--name",
            "survivor",
            IMAGE,
            "sleep",
            "600",
        ],
    );
    let token = token_in(&dk, "survivor");
    eventually("the daemon has seen the container", || {
        docker_ps_json(&env).iter().any(|r| r["name"] == "survivor")
    });
    dk.restart();
    eventually("the container is back", || {
        dk.docker(&["inspect", "-f", "{{.State.Running}}", "survivor"])
            .stdout
            .starts_with(b"true")
    });
    assert_eq!(live(&env).len(), 1, "an engine restart revokes nothing");
    assert_eq!(status_for(&dk, &env, &token), "200");
    // The watch is back on the restarted engine: a removal is seen.
    dk.docker_ok(&["rm", "-f", "survivor"]);
    eventually("revoked after the engine's restart", || {
        live(&env).is_empty()
    });
    assert_eq!(status_for(&dk, &env, &token), "401");
}
