//! Unit tests of `docker_watch.rs`: the reconcile rule, when the watch
//! wakes for unclaimed tokens, and where the engine's socket is.

use super::*;

fn bound(container: Option<&str>) -> credd_core::token::TokenRecord {
    let (_, mut r) = credd_core::token::mint(
        [7; 40],
        vec!["dev".into()],
        time::macros::datetime!(2026-12-01 10:00 UTC),
        None,
        "docker dev".into(),
    );
    r.docker = Some(credd_core::token::DockerBinding {
        engine: "unix:///var/run/docker.sock".into(),
        container: container.map(str::to_string),
    });
    r
}

#[test]
fn a_token_goes_when_its_seen_container_is_gone_or_none_came_in_time() {
    let t0 = time::macros::datetime!(2026-12-01 10:00 UTC);
    let grace = Duration::from_secs(300);
    let soon = t0 + time::Duration::seconds(10);
    let late = t0 + time::Duration::seconds(300);
    // A container carries its label: claimed, then kept (stopped or
    // restarting containers are listed too, so they keep it).
    assert_eq!(
        decide(&bound(None), Some("c1"), late, grace),
        Decision::Claim("c1".into())
    );
    assert_eq!(
        decide(&bound(Some("c1")), Some("c1"), late, grace),
        Decision::Keep
    );
    // Seen, now gone: removed while credd was down, revoked at once.
    assert!(
        matches!(decide(&bound(Some("c1")), None, soon, grace), Decision::Revoke(w) if w.contains("removed"))
    );
    // Never seen: kept for the grace period, then revoked.
    assert_eq!(decide(&bound(None), None, soon, grace), Decision::Keep);
    assert!(
        matches!(decide(&bound(None), None, late, grace), Decision::Revoke(w) if w.contains("5m"))
    );
}

#[test]
fn the_watch_sleeps_until_the_first_unclaimed_token_is_due_and_has_no_timer_without_one() {
    let t0 = time::macros::datetime!(2026-12-01 10:00 UTC);
    let grace = Duration::from_secs(300);
    let engine = Some("unix:///var/run/docker.sock");
    let at = |secs: i64| t0 + time::Duration::seconds(secs);
    let mut claimed = bound(Some("c1"));
    claimed.created = t0;
    let plain = credd_core::token::mint([8; 40], vec!["dev".into()], t0, None, "x".into()).1;
    let mut other_engine = bound(None);
    other_engine.docker.as_mut().unwrap().engine = "unix:///other.sock".into();
    // Nothing waits for a container (claimed, unbound, another
    // engine's): no timer at all.
    assert_eq!(
        next_claim_wait(
            &[claimed.clone(), plain.clone(), other_engine.clone()],
            engine,
            at(10),
            grace
        ),
        None
    );
    assert_eq!(next_claim_wait(&[], engine, at(10), grace), None);
    // Two pending (created at t0 and t0 + 200 s): the first is due at
    // t0 + 300 s, looked at again at most once a minute meanwhile.
    let mut early = bound(None);
    early.created = t0;
    let mut late = bound(None);
    late.created = at(200);
    let all = [claimed, plain, other_engine, late, early];
    assert_eq!(
        next_claim_wait(&all, engine, at(10), grace),
        Some(CLAIM_RECHECK)
    );
    assert_eq!(
        next_claim_wait(&all, engine, at(270), grace),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        next_claim_wait(
            &all,
            engine,
            at(270) + time::Duration::milliseconds(500),
            grace
        ),
        Some(Duration::from_millis(29_500))
    );
    // Overdue: at once.
    assert_eq!(
        next_claim_wait(&all, engine, at(400), grace),
        Some(Duration::ZERO)
    );
}

#[test]
fn the_socket_comes_from_docker_host_unix_only() {
    assert_eq!(
        socket_from_env(None).unwrap(),
        PathBuf::from("/var/run/docker.sock")
    );
    assert_eq!(
        socket_from_env(Some("")).unwrap(),
        PathBuf::from("/var/run/docker.sock")
    );
    assert_eq!(
        socket_from_env(Some("unix:///run/user/1000/docker.sock")).unwrap(),
        PathBuf::from("/run/user/1000/docker.sock")
    );
    let e = socket_from_env(Some("tcp://10.0.0.1:2376")).unwrap_err();
    assert!(
        e.contains("unix://") && e.contains("tcp://10.0.0.1:2376"),
        "{e}"
    );
    assert_eq!(short("0123456789abcdef0123"), "0123456789ab");
}
