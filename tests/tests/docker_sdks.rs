//! A real SDK inside real containers on a real engine (`support::dockerd`,
//! `support::images`): the Go SDK v2 whoami client, unmodified, loads its
//! configuration from the variables and files `credd docker run` /
//! `credd docker args` give the container, fetches credentials from credd
//! at 169.254.170.2 (through `credd docker setup`'s DNAT), and calls STS
//! (moto, reached from the container through the bridge). Every test
//! asserts the assumed role's ARN that STS returns, not merely a 200.
//! Needs root, `docker.io`, `busybox-static` and the static Go client
//! (`cargo xtask setup`); without them the tests fail saying so.

mod support;

use std::time::{Duration, Instant};
use support::images::{import_go_image, moto_count};
use support::world::{assert_arn, World, DEV_ARN};
use support::*;

/// `support::world`'s engine with credd set up and serving, plus the Go
/// image every test here runs.
struct GoWorld {
    w: World,
    image: &'static str,
}

fn world() -> GoWorld {
    let w = World::new(&[]);
    let image = import_go_image(&w.dk);
    GoWorld { w, image }
}

impl std::ops::Deref for GoWorld {
    type Target = World;
    fn deref(&self) -> &World {
        &self.w
    }
}

impl std::ops::DerefMut for GoWorld {
    fn deref_mut(&mut self) -> &mut World {
        &mut self.w
    }
}

impl GoWorld {
    fn dev_assume_roles(&self) -> u64 {
        moto_count(&self.dk, &self.env, "AssumeRole")
    }
}

#[test]
fn the_go_sdk_in_a_container_gets_the_roles_arn_every_documented_way() {
    let w = world();
    let sts = w.sts_env();
    w.dk.docker_ok(&["network", "create", "credd-sdk-net"]);
    for (net, name) in [
        (&[][..], "default bridge"),
        (&["--network", "credd-sdk-net"][..], "user-defined network"),
        (&["--network", "host"][..], "host network"),
    ] {
        let mut args = vec!["--rm", "-e", &sts];
        args.extend_from_slice(net);
        args.extend_from_slice(&[w.image, "whoami"]);
        let o = w.credd_run("dev", &args);
        assert_arn(&o, DEV_ARN, &format!("credd docker run, {name}"));
        let o = w.args_run("dev", &args);
        assert_arn(
            &o,
            DEV_ARN,
            &format!("docker run $(credd docker args), {name}"),
        );
    }
    // Each SDK fetched through credd: dev assumed once for all six.
    assert_eq!(w.dev_assume_roles(), 1);
    // `credd docker run` (foreground) revoked its tokens; `docker args`'
    // three remain until their TTL (documented).
    let v: serde_json::Value =
        serde_json::from_str(&w.env.credd_ok(&["token", "list", "--json"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3, "{v}");
}

#[test]
fn containers_without_the_right_token_get_nothing() {
    let w = world();
    let sts = w.sts_env();
    // No token: plain `docker run` with the endpoint but no token file. The
    // SDK fails, and what it prints says how a container gets one.
    let o = w.dk.docker(&[
        "run",
        "--rm",
        "-e",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.2/v1/credentials/dev",
        "-e",
        "AWS_REGION=eu-west-1",
        "-e",
        &sts,
        w.image,
        "whoami",
    ]);
    assert!(!o.status.success(), "no token: {}", stdout_of(&o));
    assert!(!stdout_of(&o).contains("arn:"), "{}", stdout_of(&o));
    let said = stderr_of(&o);
    assert!(said.contains("credd docker run"), "no token: {said}");
    // A token for dev, used to ask for base (another profile): refused.
    let o = w.credd_run(
        "dev",
        &[
            "--rm",
            "-e",
            &sts,
            "-e",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.2/v1/credentials/base",
            w.image,
            "whoami",
        ],
    );
    assert!(!o.status.success(), "other profile: {}", stdout_of(&o));
    assert!(!stdout_of(&o).contains("arn:"), "{}", stdout_of(&o));
    assert!(
        stderr_of(&o).contains("TokenNotValidForProfile"),
        "other profile: {}",
        stderr_of(&o)
    );
    // Neither reached STS with anything of credd's.
    assert_eq!(moto_count(&w.dk, &w.env, "GetCallerIdentity"), 0);
}

#[test]
fn a_container_running_as_another_uid_gets_what_the_docs_promise() {
    let w = world();
    let sts = w.sts_env();
    // docs/docker.md: the token file is the user's, 0600; a container
    // process running as another non-root uid cannot read it. (credd runs as
    // root here, so uid 1000 is "another uid".)
    let o = w.credd_run(
        "dev",
        &[
            "--rm",
            "--user",
            "1000:1000",
            "-e",
            &sts,
            w.image,
            "sh",
            "-c",
            "id -u; cat \"$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE\" >/dev/null && echo READ; /usr/local/bin/whoami",
        ],
    );
    let out = stdout_of(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.starts_with("1000") && !out.contains("READ") && !out.contains("arn:"),
        "{out}"
    );
    assert!(
        stderr_of(&o).contains("credd-token: permission denied"),
        "the SDK says why: {}",
        stderr_of(&o)
    );
    // The remedy the docs give: run as the user's own uid.
    let uid = rustix::process::geteuid().as_raw().to_string();
    let o = w.credd_run(
        "dev",
        &["--rm", "--user", &uid, "-e", &sts, w.image, "whoami"],
    );
    assert_arn(&o, DEV_ARN, "--user $(id -u)");
}

#[test]
fn fifty_containers_started_at_once_all_get_credentials_with_one_assume_role() {
    let w = world();
    let sts = w.sts_env();
    let n = 50;
    // `credd docker run -d` of 50 at once (in parallel), then wait for each.
    let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    std::thread::scope(|s| {
        let hs: Vec<_> = names
            .iter()
            .map(|name| {
                let (w, sts) = (&w, &sts);
                s.spawn(move || {
                    w.credd_run("dev", &["-d", "--name", name, "-e", sts, w.image, "whoami"])
                })
            })
            .collect();
        for h in hs {
            let o = h.join().unwrap();
            assert!(o.status.success(), "{}", stderr_of(&o));
        }
    });
    let mut args = vec!["wait"];
    args.extend(names.iter().map(String::as_str));
    let codes = w.dk.docker_ok(&args);
    let mut failed = vec![];
    for (name, code) in names.iter().zip(codes.lines()) {
        let logs = w.dk.docker(&["logs", name]);
        if code.trim() != "0" || stdout_of(&logs) != DEV_ARN {
            failed.push(format!(
                "{name}: exit {code}: {}{}",
                stdout_of(&logs),
                stderr_of(&logs)
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {n} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert_eq!(
        w.dev_assume_roles(),
        1,
        "the upstream is called once per profile"
    );
    // Every SDK reached STS with what credd gave it; an SDK may retry a call
    // to moto under load (its own standard retry), so this is a floor.
    let calls = moto_count(&w.dk, &w.env, "GetCallerIdentity");
    assert!(calls >= n, "only {calls} of {n} SDKs reached STS");
}

/// `docker logs NAME`: one line per fetch, `OK ARN` or `FAIL error`.
fn fetch_log(w: &World, name: &str) -> Vec<String> {
    let o = w.dk.docker(&["logs", name]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until the container's loop logs an `OK` after line `from`, then
/// lets it run `secs` more and returns the lines logged after the settle
/// point (the first `OK`).
fn settle_then_watch(w: &World, name: &str, from: usize, secs: u64, when: &str) -> Vec<String> {
    let start = Instant::now();
    let settled = loop {
        let log = fetch_log(w, name);
        if let Some(i) = log
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, l)| l.starts_with("OK "))
            .map(|(i, _)| i)
        {
            break i + 1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{when}: no successful fetch within 60 s: {:?}",
            &log[from.min(log.len())..]
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    std::thread::sleep(Duration::from_secs(secs));
    fetch_log(w, name)[settled..].to_vec()
}

fn assert_no_failures(after: &[String], when: &str) {
    let fails: Vec<&String> = after.iter().filter(|l| !l.starts_with("OK ")).collect();
    assert!(
        fails.is_empty() && after.len() >= 2,
        "{when}: {} failed fetches of {} after settling: {fails:?}",
        fails.len(),
        after.len()
    );
    assert!(
        after.iter().all(|l| l == &format!("OK {DEV_ARN}")),
        "{when}: {after:?}"
    );
}

#[test]
fn a_detached_container_keeps_getting_credentials_across_credd_and_dockerd_restarts() {
    let mut w = world();
    let sts = w.sts_env();
    // (Inside `sh`, the binary by its path: Debian's busybox runs its own
    // `whoami` applet first.)
    // A long-running service: fetches through the SDK every second and
    // logs the result; `--restart always` brings it back with dockerd.
    let o = w.credd_run(
        "dev",
        &[
            "-d",
            "--restart",
            "always",
            "--name",
            "svc",
            "-e",
            &sts,
            w.image,
            "sh",
            "-c",
            "while true; do if /usr/local/bin/whoami >/tmp/o 2>/tmp/e; then echo \"OK $(cat /tmp/o)\"; else echo \"FAIL $(cat /tmp/e)\"; fi; sleep 1; done",
        ],
    );
    assert!(o.status.success(), "{}", stderr_of(&o));
    let after = settle_then_watch(&w, "svc", 0, 6, "at start");
    assert_no_failures(&after, "at start");

    // `credd serve` restarts (killed, as a crash would): the container's
    // token is durable, the new daemon serves it.
    drop(w.daemon.take());
    std::thread::sleep(Duration::from_secs(2));
    let mark = fetch_log(&w, "svc").len();
    w.daemon = Some(w.dk.serve(&w.env));
    let after = settle_then_watch(&w, "svc", mark, 6, "after a credd serve restart");
    assert_no_failures(&after, "after a credd serve restart");

    // dockerd restarts (the container stops and comes back with it); then
    // what the boot unit does after every docker start: setup again.
    w.dk.restart();
    w.setup();
    let mark = fetch_log(&w, "svc").len();
    let after = settle_then_watch(&w, "svc", mark, 6, "after a dockerd restart");
    assert_no_failures(&after, "after a dockerd restart");
}

/// What `credd docker run` adds to a plain `docker run`: not a test (no
/// timed assertion), a measurement. Run it by hand (docs/benchmarks.md):
/// `cargo test -p credd-e2e --test docker_sdks -- --ignored --nocapture bench_`
#[test]
#[ignore = "a benchmark: run by hand, see docs/benchmarks.md"]
fn bench_credd_docker_run_overhead() {
    let w = world();
    let runs: usize = std::env::var("CREDD_BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(21);
    let time = |credd: bool| -> f64 {
        let args = ["--rm", w.image, "echo"];
        let start = Instant::now();
        let o = if credd {
            w.credd_run("dev", &args)
        } else {
            let mut a = vec!["run"];
            a.extend_from_slice(&args);
            w.dk.docker(&a)
        };
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        assert!(o.status.success(), "{}", stderr_of(&o));
        ms
    };
    // Warm: the image's layers, credd's cached credentials.
    time(false);
    time(true);
    let (mut plain, mut credd) = (vec![], vec![]);
    for i in 0..runs {
        // Alternating, the order flipped every run, so drift favours neither.
        if i % 2 == 0 {
            plain.push(time(false));
            credd.push(time(true));
        } else {
            credd.push(time(true));
            plain.push(time(false));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let mut diffs: Vec<f64> = credd.iter().zip(&plain).map(|(c, p)| c - p).collect();
    let (mp, mc, md) = (median(&mut plain), median(&mut credd), median(&mut diffs));
    println!(
        "docker run --rm IMAGE echo, {runs} runs each, alternating:\n  \
         plain docker run        median {mp:.1} ms\n  \
         credd docker run dev    median {mc:.1} ms\n  \
         added (median of paired differences) {md:.1} ms; ratio of medians {:.3}",
        mc / mp
    );
}
