//! `aws login` session nodes against `FakeUpstream`'s login side and a
//! manual clock: renewed so the shared file never gets down to botocore's
//! 5 min, one node for every profile on a session, roles chained on it,
//! parked on an ended session with one notification, and woken by a new
//! sign-in (the cache file's stamp) without a restart or a request.

use crate::clock::Clock;
use crate::sessions::SessionStore;
use crate::testing::*;
use credd_core::schedule::Policy;
use credd_core::UpstreamErrorKind;
use time::Duration;

const ARN: &str = "arn:aws:iam::123456789012:user/dev";

fn profiles() -> credd_core::profile::RawProfiles {
    raw(&[
        ("me", &[("login_session", ARN), ("region", "eu-west-1")]),
        ("me-too", &[("login_session", ARN), ("region", "eu-west-1")]),
        (
            "admin",
            &[
                ("role_arn", "arn:aws:iam::111111111111:role/Admin"),
                ("source_profile", "me"),
            ],
        ),
    ])
}

fn login_harness() -> Harness {
    harness_with(&profiles(), SessionStore::disabled(), Policy::default())
}

#[tokio::test]
async fn the_file_keeps_more_than_botocores_5_minutes_while_credd_holds_the_session() {
    let h = login_harness();
    h.upstream.sign_in(ARN, Duration::minutes(15));
    let first = h.broker.get("me").await.unwrap();
    assert_eq!(
        first.creds.access_key_id(),
        "ASIAF0",
        "the file's own credentials"
    );
    assert_eq!(h.upstream.login_refreshes(), 0);
    // Half-life of 15 min: nothing at 7 min, a refresh at 7.5 min.
    h.clock.advance(Duration::minutes(7));
    settle().await;
    assert_eq!(h.upstream.login_refreshes(), 0);
    h.clock.advance(Duration::seconds(30));
    settle().await;
    assert_eq!(h.upstream.login_refreshes(), 1, "renewed in the background");
    // For two hours, in 20 s steps, the file never has 5 min or less left,
    // so a botocore process reading it never refreshes itself.
    for _ in 0..360 {
        h.clock.advance(Duration::seconds(20));
        settle().await;
        let left = h.upstream.login_file_expiry(ARN).unwrap() - h.clock.now();
        assert!(left > Duration::minutes(5), "{left}");
        let served = h.broker.cached("me").expect("always servable");
        assert!(served.creds.expiration() - h.clock.now() > Duration::minutes(5));
    }
    // About one refresh per 7.5 min, not more.
    let n = h.upstream.login_refreshes();
    assert!((15..=18).contains(&n), "{n} refreshes in two hours");
}

#[tokio::test]
async fn one_node_serves_every_profile_on_the_session_and_roles_chain_on_it() {
    let h = login_harness();
    h.upstream.sign_in(ARN, Duration::minutes(15));
    let a = h.broker.get("me").await.unwrap();
    let b = h.broker.get("me-too").await.unwrap();
    assert_eq!(a.creds.access_key_id(), b.creds.access_key_id());
    assert_eq!(h.upstream.count("LoginCredentials"), 1);
    let role = h.broker.get("admin").await.unwrap();
    assert!(role.creds.access_key_id().starts_with("ASIAR"));
    assert_eq!(h.upstream.count("AssumeRole"), 1);
    assert_eq!(
        h.upstream.count("LoginCredentials"),
        1,
        "the role used the cached session"
    );
    // Status: one session row naming every profile on it.
    let rows = h.broker.login_status();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].session, ARN);
    assert_eq!(rows[0].state, "active");
    assert_eq!(rows[0].profiles, ["admin", "me", "me-too"]);
    assert_eq!(
        rows[0].credentials_expire.as_deref(),
        Some(credd_core::format_expiration(a.creds.expiration()).as_str())
    );
    assert!(rows[0].next_refresh.is_some());
}

#[tokio::test]
async fn no_session_parks_with_one_notification_and_a_new_sign_in_wakes_it() {
    let h = login_harness();
    let err = h.broker.get("me").await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`aws login --profile me`") && text.contains("`credd login --profile me`"),
        "{text}"
    );
    let crate::broker::ServeError::Upstream { error, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(error.kind, UpstreamErrorKind::LoginRequired);
    // A second request tries again (a parked node is not backing off), and
    // the user is told once.
    assert!(h.broker.get("me").await.is_err());
    assert_eq!(h.upstream.count("LoginCredentials"), 2);
    assert_eq!(h.notifier.sent.lock().unwrap().len(), 1);
    let rows = h.broker.login_status();
    assert_eq!(rows[0].state, "login required");
    assert!(rows[0].last_error.as_ref().unwrap().contains("aws login"));

    // Nothing changes on its own while the file is absent.
    h.clock.advance(Duration::minutes(2));
    settle().await;
    assert_eq!(h.upstream.count("LoginCredentials"), 2);

    // `aws login` writes the file: within one poll the session is picked up
    // without any request.
    h.upstream.sign_in(ARN, Duration::minutes(15));
    h.clock.advance(crate::sso::POLL_INTERVAL);
    settle().await;
    assert_eq!(h.upstream.count("LoginCredentials"), 3);
    let served = h.broker.cached("me").expect("served again");
    assert!(served.creds.access_key_id().starts_with("ASIAF"));
    assert_eq!(h.broker.login_status()[0].state, "active");
}

#[tokio::test]
async fn an_ended_session_keeps_serving_until_expiry_then_recovers_with_its_roles() {
    let h = login_harness();
    h.upstream.sign_in(ARN, Duration::minutes(15));
    h.broker.get("admin").await.unwrap();
    h.upstream.end_login(ARN);
    // The renewal at 7.5 min is refused: parked, told once, and what is
    // cached is still served.
    h.clock.advance(Duration::seconds(450));
    settle().await;
    assert_eq!(h.upstream.login_refreshes(), 0);
    assert!(h.broker.cached("me").is_some());
    assert_eq!(h.notifier.sent.lock().unwrap().len(), 1);
    let (title, body) = h.notifier.sent.lock().unwrap()[0].clone();
    assert_eq!(title, "credd: AWS sign-in needed");
    assert!(body.contains("credd login --profile me"), "{body}");
    // Past its expiry nothing is served; requests get the way out.
    h.clock.advance(Duration::minutes(8));
    settle().await;
    assert!(h.broker.cached("me").is_none());
    let text = h.broker.get("me").await.unwrap_err().to_string();
    assert!(text.contains("aws login --profile me"), "{text}");
    assert_eq!(h.notifier.sent.lock().unwrap().len(), 1, "told once");
    // A new sign-in: the session and the role on it come back.
    h.upstream.sign_in(ARN, Duration::minutes(15));
    h.clock.advance(crate::sso::POLL_INTERVAL);
    settle().await;
    assert!(h.broker.cached("me").is_some());
    let role = h.broker.get("admin").await.unwrap();
    assert!(role.creds.expiration() > h.clock.now() + Duration::minutes(5));
}

#[tokio::test]
async fn the_login_session_is_a_status_session_ending_12_hours_after_its_sign_in_and_warned_of() {
    let h = login_harness();
    h.upstream.sign_in(ARN, Duration::minutes(15));
    let tasks = tokio_util::task::TaskTracker::new();
    tasks.spawn(crate::warnings::run(
        h.broker.clone(),
        h.clock.clone(),
        crate::WarningsConfig::default(),
        h.cancel.child_token(),
    ));
    h.broker.get("admin").await.unwrap();
    settle().await;
    let row = |h: &Harness| {
        let login = h.broker.login_status();
        h.broker
            .user_sessions(&[], &login)
            .into_iter()
            .find(|r| r.kind == "login")
            .unwrap()
    };
    let r = row(&h);
    assert_eq!(r.name, ARN);
    assert_eq!(r.profiles, vec!["admin", "me", "me-too"]);
    assert_eq!(r.ends_in_secs, Some(12 * 3600));
    assert_eq!(r.command, "credd login --profile me");
    assert_eq!(r.needed_then, "a new sign-in: `credd login --profile me`");
    assert_eq!(r.state, "active");
    assert!(r.in_use);
    // A consumer keeps using it all day: one warning per window, naming
    // the sign-in.
    let mut warned_at = vec![];
    for _ in 0..(12 * 12 - 1) {
        h.clock.advance(Duration::minutes(5));
        settle().await;
        let _ = h.broker.get("me").await;
        let n = h
            .notifier
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t.contains("AWS sign-in session ends in"))
            .count();
        if n > warned_at.len() {
            warned_at.push((T0 + Duration::hours(12) - h.clock.now()).whole_minutes());
        }
    }
    assert_eq!(warned_at, vec![60, 15, 5]);
    let sent = h.notifier.sent.lock().unwrap().clone();
    assert!(
        sent.iter()
            .any(|(_, b)| b.contains("run `credd login --profile me` to renew it")),
        "{sent:?}"
    );
    assert_eq!(
        row(&h).ends_in_secs,
        Some(5 * 60),
        "the end did not move with refreshes"
    );
    h.cancel.cancel();
    tasks.close();
    tasks.wait().await;
}
