//! A detached container keeps getting fresh credentials, on a real engine
//! (`support::dockerd`): a long-running boto3 service (one client, one
//! call a second, `tests/clients/debian/sdk_loop.py` in the Debian image of
//! `support::debian`) started with `credd docker run -d --restart always`,
//! across a renewal of the role's credentials by credd, a `credd serve`
//! restart and a `dockerd` restart, with zero failed calls after each
//! settles. moto issues the role's credentials for 2 minutes
//! (`MOTO_COUNTING_ROLE_SECONDS`), so credd renews them about a minute in,
//! while the container runs. Every call logs the assumed role's ARN STS
//! returned and the access key id it was signed with (never the secret).
//! Needs root, `docker.io` and the Debian image's inputs.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::debian::{import_debian_image, PY_IMAGE};
use support::images::moto_count;
use support::world::{World, DEV_ARN};
use support::*;

/// The role's credentials live this long (moto), so credd renews them at
/// about half of it (short-lived: `credd-core`'s schedule).
const ROLE_SECONDS: &str = "120";

/// `docker logs NAME`: one line per call, `OK ARN KEY` or `FAIL error`.
fn calls(w: &World, name: &str) -> Vec<String> {
    let o = w.dk.docker(&["logs", name]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits for the first `OK` after line `from` (the service has settled),
/// then until `done` holds for the lines after it or `limit` passes;
/// returns those lines.
fn settle_then_watch(
    w: &World,
    from: usize,
    limit: Duration,
    when: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let start = Instant::now();
    let settled = loop {
        let log = calls(w, "svc");
        if let Some(i) = log.iter().skip(from).position(|l| l.starts_with("OK ")) {
            break from + i + 1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{when}: no successful call within 90 s: {:?}",
            &log[from.min(log.len())..]
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let start = Instant::now();
    loop {
        let after = calls(w, "svc")[settled..].to_vec();
        if done(&after) || start.elapsed() > limit {
            return after;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every call after settling succeeded with `dev`'s role; the key ids used.
fn assert_all_ok(after: &[String], when: &str) -> BTreeSet<String> {
    let fails: Vec<&String> = after.iter().filter(|l| !l.starts_with("OK ")).collect();
    assert!(
        fails.is_empty() && after.len() >= 3,
        "{when}: {} failed calls of {} after settling: {fails:?}",
        fails.len(),
        after.len()
    );
    let mut keys = BTreeSet::new();
    for l in after {
        let mut f = l.split_whitespace().skip(1);
        assert_eq!(f.next(), Some(DEV_ARN), "{when}: {l}");
        keys.insert(f.next().unwrap_or_default().to_string());
    }
    keys
}

#[test]
fn a_detached_boto3_service_keeps_fresh_credentials_across_a_refresh_and_restarts() {
    let mut w = World::bare(&[("MOTO_COUNTING_ROLE_SECONDS", ROLE_SECONDS)]);
    // Serve credentials with as little as 20 s left, so the 2-minute ones
    // stay servable until their renewal (the default is 1 min).
    std::fs::write(
        w.env.path("credd.toml"),
        "[refresh]\nmin_serve_life = \"20s\"\n",
    )
    .unwrap();
    w.setup();
    w.daemon = Some(w.dk.serve(&w.env));
    import_debian_image(&w.dk, PY_IMAGE, None);
    let sts = w.sts_env();
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
            PY_IMAGE,
            "python3-sdk",
            "/usr/local/lib/credd/sdk_loop.py",
        ],
    );
    assert!(o.status.success(), "{}", stderr_of(&o));

    // A renewal while it runs: the service's calls move to a new key, and
    // none fails. (The renewal is due about 48-60 s after the first
    // AssumeRole; 110 s is the bound.)
    let after = settle_then_watch(&w, 0, Duration::from_secs(110), "a refresh", |a| {
        a.iter()
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect::<BTreeSet<_>>()
            .len()
            >= 2
    });
    let keys = assert_all_ok(&after, "across a refresh");
    assert!(
        keys.len() >= 2,
        "no renewal seen in {} calls: {keys:?}",
        after.len()
    );
    assert!(moto_count(&w.dk, &w.env, "AssumeRole") >= 2);

    // `credd serve` killed (as a crash would) and started again: the
    // container's token is durable, the new daemon serves it.
    drop(w.daemon.take());
    std::thread::sleep(Duration::from_secs(2));
    let mark = calls(&w, "svc").len();
    w.daemon = Some(w.dk.serve(&w.env));
    let after = settle_then_watch(
        &w,
        mark,
        Duration::from_secs(6),
        "after a credd serve restart",
        |_| false,
    );
    assert_all_ok(&after, "after a credd serve restart");

    // dockerd restarts: the container stops and comes back with it; then
    // what the boot unit does after every docker start, setup again.
    w.dk.restart();
    w.setup();
    let mark = calls(&w, "svc").len();
    let after = settle_then_watch(
        &w,
        mark,
        Duration::from_secs(6),
        "after a dockerd restart",
        |_| false,
    );
    assert_all_ok(&after, "after a dockerd restart");
}
