//! Broker behaviour with a fake upstream and a manual clock: single flight,
//! refresh ahead, backoff, never serving expired credentials, shared and
//! persisted MFA sessions, clock jumps.

use crate::broker::ServeError;
use crate::clock::Clock;
use crate::sessions::SessionStore;
use crate::testing::*;
use credd_core::schedule::Policy;
use credd_core::{SecretString, UpstreamError, UpstreamErrorKind};
use time::Duration;

#[tokio::test]
async fn single_flight_one_upstream_call_for_a_thousand_cold_requests() {
    let h = harness();
    *h.upstream.delay.lock().unwrap() = std::time::Duration::from_millis(50);
    let mut joins = Vec::new();
    for _ in 0..1000 {
        let b = h.broker.clone();
        joins.push(tokio::spawn(async move {
            b.get("dev")
                .await
                .map(|c| c.creds.access_key_id().to_string())
        }));
    }
    let mut keys = std::collections::HashSet::new();
    for j in joins {
        keys.insert(j.await.unwrap().unwrap());
    }
    assert_eq!(keys.len(), 1, "everyone got the same credential");
    assert_eq!(h.upstream.count("AssumeRole"), 1);
    assert_eq!(h.upstream.count("GetSessionToken"), 1);
}

#[tokio::test]
async fn a_failed_attempt_is_shared_by_its_waiters() {
    let h = harness();
    *h.upstream.delay.lock().unwrap() = std::time::Duration::from_millis(30);
    *h.upstream.fail.lock().unwrap() = Some(UpstreamError::new(
        UpstreamErrorKind::Unreachable,
        "connection refused",
    ));
    let mut joins = Vec::new();
    for _ in 0..200 {
        let b = h.broker.clone();
        joins.push(tokio::spawn(async move {
            b.get("base").await.err().map(|e| e.to_string())
        }));
    }
    for j in joins {
        let msg = j.await.unwrap().expect("fails");
        assert!(
            msg.contains("STS unreachable") && msg.contains("retrying in"),
            "{msg}"
        );
    }
    assert_eq!(h.upstream.count("GetSessionToken"), 1);
}

#[tokio::test]
async fn refreshes_ahead_without_making_requests_wait() {
    let h = harness();
    let first = h.broker.get("dev").await.unwrap();
    let exp = first.creds.expiration();
    assert_eq!(h.upstream.count("AssumeRole"), 1);
    // 1 h credentials renew at half-life: 30 minutes in.
    h.clock.advance(Duration::minutes(29));
    settle().await;
    assert_eq!(h.upstream.count("AssumeRole"), 1);
    h.clock.advance(Duration::minutes(1));
    settle().await;
    assert_eq!(
        h.upstream.count("AssumeRole"),
        2,
        "renewed in the background"
    );
    let second = h.broker.cached("dev").expect("served from cache");
    assert_ne!(second.creds.access_key_id(), first.creds.access_key_id());
    assert!(second.creds.expiration() > exp);
    assert!(second.creds.expiration() - h.clock.now() >= Duration::minutes(25));
    h.cancel.cancel();
}

#[tokio::test]
async fn long_lived_sessions_renew_35_minutes_before_expiry() {
    let h = harness();
    *h.upstream.lifetime.lock().unwrap() = Duration::hours(12);
    h.broker.get("base").await.unwrap();
    h.clock.advance(Duration::hours(12) - Duration::minutes(36));
    settle().await;
    assert_eq!(h.upstream.count("GetSessionToken"), 1);
    h.clock.advance(Duration::minutes(1));
    settle().await;
    assert_eq!(h.upstream.count("GetSessionToken"), 2);
    h.cancel.cancel();
}

#[tokio::test]
async fn failures_back_off_and_never_empty_a_valid_cache() {
    let h = harness();
    let c = h.broker.get("base").await.unwrap();
    *h.upstream.fail.lock().unwrap() = Some(UpstreamError::new(
        UpstreamErrorKind::Throttled,
        "Rate exceeded",
    ));
    h.clock.advance(Duration::minutes(30));
    settle().await;
    assert_eq!(
        h.upstream.count("GetSessionToken"),
        2,
        "the refresh at half-life failed"
    );
    // Still serving the old one.
    assert_eq!(
        h.broker.cached("base").unwrap().creds.access_key_id(),
        c.creds.access_key_id()
    );
    // Backoff: 5 s, then 10 s, then 20 s.
    for (wait, expected) in [(4, 2), (1, 3), (9, 3), (1, 4), (20, 5)] {
        h.clock.advance(Duration::seconds(wait));
        settle().await;
        assert_eq!(
            h.upstream.count("GetSessionToken"),
            expected,
            "after +{wait}s"
        );
    }
    let status = h
        .broker
        .status()
        .into_iter()
        .find(|s| s.name == "base")
        .unwrap();
    assert_eq!(status.state, "failing");
    assert!(status.last_error.unwrap().contains("throttling"));
    h.cancel.cancel();
}

#[tokio::test]
async fn never_serves_an_expired_credential() {
    let h = harness();
    h.broker.get("base").await.unwrap();
    *h.upstream.fail.lock().unwrap() = Some(UpstreamError::new(
        UpstreamErrorKind::Unreachable,
        "timeout",
    ));
    // Clock jumps +2 h (a laptop that slept): the cached credential is dead.
    h.clock.advance(Duration::hours(2));
    assert!(h.broker.cached("base").is_none());
    let e = h.broker.get("base").await.unwrap_err();
    assert!(matches!(e, ServeError::Upstream { .. }), "{e}");
    // Upstream comes back: served again, fresh, once the backoff is over.
    *h.upstream.fail.lock().unwrap() = None;
    h.clock.advance(Duration::seconds(6));
    let c = h.broker.get("base").await.unwrap();
    assert!(c.creds.expiration() > h.clock.now() + Duration::minutes(50));
    h.cancel.cancel();
}

#[tokio::test]
async fn clock_jumping_back_keeps_serving_and_refreshes_later() {
    let h = harness();
    let c = h.broker.get("dev").await.unwrap();
    h.clock.advance(-Duration::minutes(10));
    assert!(h.broker.cached("dev").is_some());
    h.clock.advance(Duration::minutes(39));
    settle().await;
    assert_eq!(
        h.upstream.count("AssumeRole"),
        1,
        "refresh at +30 min on the wall clock"
    );
    h.clock.advance(Duration::minutes(2));
    settle().await;
    assert_eq!(h.upstream.count("AssumeRole"), 2);
    assert_ne!(
        h.broker.cached("dev").unwrap().creds.access_key_id(),
        c.creds.access_key_id()
    );
    h.cancel.cancel();
}

#[tokio::test]
async fn mfa_is_asked_once_shared_and_never_prompted_by_a_request() {
    let h = harness();
    let e = h.broker.get("mfa-a").await.unwrap_err().to_string();
    assert_eq!(e, "MFA code needed: run `credd mfa mfa-a`");
    assert_eq!(h.upstream.count("GetSessionToken+MFA"), 0);
    let bad = h
        .broker
        .submit_mfa("mfa-a", SecretString::new("000000"))
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("fresh code"), "{bad}");
    h.broker
        .submit_mfa("mfa-a", SecretString::new("123456"))
        .await
        .unwrap();
    h.broker.get("mfa-a").await.unwrap();
    h.broker.get("mfa-b").await.unwrap();
    assert_eq!(
        h.upstream.count("GetSessionToken+MFA"),
        2,
        "one bad, one good: shared by a and b"
    );
    assert_eq!(h.upstream.count("AssumeRole"), 2);
    h.cancel.cancel();
}

#[tokio::test]
async fn roles_on_an_mfa_session_refresh_until_the_session_ends() {
    let h = harness();
    *h.upstream.mfa_lifetime.lock().unwrap() = Some(Duration::hours(12));
    h.broker
        .submit_mfa("mfa-a", SecretString::new("123456"))
        .await
        .unwrap();
    h.broker.get("mfa-a").await.unwrap();
    // 11 h in 20-minute steps: the 1 h role renews about every 30 minutes.
    for _ in 0..33 {
        h.clock.advance(Duration::minutes(20));
        settle().await;
        assert!(h.broker.cached("mfa-a").is_some(), "always servable");
    }
    // Each half-life renewal lands on the next 20-minute step: one per 40 minutes.
    assert!(
        h.upstream.count("AssumeRole") >= 16,
        "{}",
        h.upstream.count("AssumeRole")
    );
    assert_eq!(
        h.upstream.count("GetSessionToken+MFA"),
        1,
        "no new code needed"
    );
    // The session ends: the role's refresh fails and status says MFA is needed.
    h.clock.advance(Duration::hours(2));
    settle().await;
    let s = h
        .broker
        .status()
        .into_iter()
        .find(|s| s.name == "mfa-a")
        .unwrap();
    assert_eq!(s.state, "needs MFA", "{s:?}");
    let e = h.broker.get("mfa-a").await.unwrap_err().to_string();
    assert!(e.contains("credd mfa mfa-a"), "{e}");
    h.cancel.cancel();
}

#[tokio::test]
async fn mfa_process_is_used_when_configured() {
    let mut raw = sample();
    raw.get_mut("mfa-a").unwrap().insert(
        "mfa_process".into(),
        "ykman oath accounts code -s aws".into(),
    );
    let h = harness_with(&raw, SessionStore::disabled(), Policy::default());
    h.broker.get("mfa-a").await.unwrap();
    assert_eq!(h.upstream.count("mfa_process"), 1);
    h.cancel.cancel();
}

#[tokio::test]
async fn mfa_session_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = || SessionStore::new(dir.path().join("sessions"));
    let h = harness_with(&sample(), store(), Policy::default());
    h.broker
        .submit_mfa("mfa-a", SecretString::new("123456"))
        .await
        .unwrap();
    h.cancel.cancel();
    let h2 = harness_with(&sample(), store(), Policy::default());
    h2.broker.get("mfa-b").await.unwrap();
    assert_eq!(
        h2.upstream.count("GetSessionToken+MFA"),
        0,
        "restored from disk"
    );
    assert_eq!(h2.upstream.count("AssumeRole"), 1);
    h2.cancel.cancel();
}

#[tokio::test]
async fn long_term_keys_are_never_served() {
    // Row 9: static keys and a credential_process that returns long-term
    // keys are both exchanged for a session token first.
    let h = harness();
    for p in ["base", "proc"] {
        let c = h.broker.get(p).await.unwrap();
        assert!(c.creds.access_key_id().starts_with("ASIA"), "{p}");
        let body = String::from_utf8(c.container_body.to_vec()).unwrap();
        assert!(
            !body.contains("AKIA") && !body.contains("long-term-canary"),
            "{body}"
        );
    }
    assert_eq!(h.upstream.count("GetSessionToken"), 2);
    h.cancel.cancel();
}

#[tokio::test]
async fn unknown_and_misconfigured_profiles_say_so() {
    let raw = raw(&[
        (
            "broken",
            &[
                ("role_arn", "arn:aws:iam::1:role/x"),
                ("source_profile", "broken2"),
            ],
        ),
        (
            "broken2",
            &[
                ("role_arn", "arn:aws:iam::1:role/y"),
                ("source_profile", "broken"),
            ],
        ),
    ]);
    let h = harness_with(&raw, SessionStore::disabled(), Policy::default());
    assert!(matches!(
        h.broker.get("nope").await,
        Err(ServeError::UnknownProfile(_))
    ));
    let e = h.broker.get("broken").await.unwrap_err().to_string();
    assert!(e.contains("cycle"), "{e}");
}

#[tokio::test]
async fn requests_during_backoff_get_the_last_error_without_an_upstream_call() {
    let h = harness();
    *h.upstream.fail.lock().unwrap() = Some(UpstreamError::new(
        UpstreamErrorKind::Throttled,
        "Rate exceeded",
    ));
    let first = h.broker.get("base").await.unwrap_err();
    assert_eq!(h.upstream.count("GetSessionToken"), 1);
    for _ in 0..40 {
        let e = h.broker.get("base").await.unwrap_err();
        assert_eq!(e.code(), "UpstreamThrottled");
        assert_eq!(e.to_string(), first.to_string());
    }
    assert_eq!(
        h.upstream.count("GetSessionToken"),
        1,
        "no call during backoff"
    );
    // Past the backoff (5 s), the next attempt is made again.
    *h.upstream.fail.lock().unwrap() = None;
    h.clock.advance(Duration::seconds(6));
    h.broker.get("base").await.unwrap();
    assert!(h.upstream.count("GetSessionToken") >= 2);
    h.cancel.cancel();
}

#[tokio::test]
async fn a_slow_cold_fetch_answers_in_progress_and_goes_on() {
    let h = harness();
    *h.upstream.delay.lock().unwrap() = std::time::Duration::from_millis(600);
    let wait = std::time::Duration::from_millis(50);
    let e = h.broker.get_within("base", wait).await.unwrap_err();
    assert_eq!(e.code(), "FetchInProgress", "{e}");
    assert!(matches!(
        e,
        ServeError::FetchInProgress {
            retry_after_secs: 1,
            ..
        }
    ));
    // A second impatient request joins the same flight.
    assert_eq!(
        h.broker.get_within("base", wait).await.unwrap_err().code(),
        "FetchInProgress"
    );
    // The fetch carried on without anyone waiting: a patient request
    // gets its result, and there was one upstream call in all.
    let c = h
        .broker
        .get_within("base", std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert!(c.creds.expiration() > h.clock.now());
    assert_eq!(h.upstream.count("GetSessionToken"), 1);
    h.cancel.cancel();
}

#[tokio::test]
async fn a_refusal_is_retried_at_the_slowest_pace_not_the_first_backoff_step() {
    let h = harness();
    *h.upstream.fail.lock().unwrap() = Some(UpstreamError::new(
        UpstreamErrorKind::Denied,
        "InvalidClientTokenId: the security token included in the request is invalid",
    ));
    let e = h.broker.get("base").await.unwrap_err();
    assert_eq!(e.code(), "UpstreamDenied");
    assert_eq!(h.upstream.count("GetSessionToken"), 1);
    let row = |h: &Harness| {
        h.broker
            .status()
            .into_iter()
            .find(|p| p.name == "base")
            .unwrap()
    };
    assert_eq!(row(&h).state, "failing");
    assert_eq!(
        row(&h).next_refresh.as_deref(),
        Some("2026-11-23T09:05:00Z"),
        "backoff_cap, from the first refusal"
    );
    // Not 5 s later (a transient failure's first step)...
    h.clock.advance(Duration::seconds(5));
    settle().await;
    assert!(h.broker.get("base").await.is_err());
    assert_eq!(h.upstream.count("GetSessionToken"), 1, "no call meanwhile");
    // ...but at 5 min, by the node's loop.
    h.clock.advance(Duration::minutes(5) - Duration::seconds(5));
    settle().await;
    assert_eq!(h.upstream.count("GetSessionToken"), 2);
    h.cancel.cancel();
}

#[tokio::test]
async fn a_saml_profile_is_served_chained_and_renewed_now_past_its_backoff() {
    let raw = raw(&[
        (
            "corp",
            &[
                ("role_arn", "arn:aws:iam::111111111111:role/Saml"),
                (
                    "credd_saml_principal_arn",
                    "arn:aws:iam::111111111111:saml-provider/Idp",
                ),
                ("credd_saml_process", "idp-helper"),
                ("duration_seconds", "7200"),
            ],
        ),
        (
            "corp-admin",
            &[
                ("role_arn", "arn:aws:iam::111111111111:role/Admin"),
                ("source_profile", "corp"),
            ],
        ),
    ]);
    let policy = Policy {
        jitter: Duration::ZERO,
        ..Policy::default()
    };
    let h = harness_with(&raw, SessionStore::disabled(), policy);
    h.broker.get("corp-admin").await.unwrap();
    assert_eq!(h.upstream.count("AssumeRoleWithSAML"), 1);
    assert_eq!(h.upstream.count("AssumeRole"), 1, "a role chained on it");
    let base = h.broker.get("corp").await.unwrap();
    assert_eq!(
        base.creds.expiration(),
        T0 + Duration::hours(2),
        "duration_seconds"
    );
    assert_eq!(h.upstream.count("AssumeRoleWithSAML"), 1, "shared by both");

    // The helper fails (its IdP session ended) once the credentials are gone.
    *h.upstream.fail.lock().unwrap() = Some(UpstreamError::new(
        UpstreamErrorKind::Source,
        "credd_saml_process of profile 'corp': `idp-helper` failed",
    ));
    h.clock.advance(Duration::hours(3));
    let e = h.broker.get("corp").await.unwrap_err().to_string();
    assert!(e.contains("idp-helper"), "{e}");
    let calls = h.upstream.count("AssumeRoleWithSAML");
    // Fixed by `credd login`: a plain get still answers the backoff's error
    // without calling; the refresh goes past it at once.
    *h.upstream.fail.lock().unwrap() = None;
    assert!(h.broker.get("corp").await.is_err(), "backing off");
    assert_eq!(h.upstream.count("AssumeRoleWithSAML"), calls);
    let c = h.broker.refresh_now("corp").await.unwrap();
    assert_eq!(h.upstream.count("AssumeRoleWithSAML"), calls + 1);
    assert!(c.creds.expiration() > h.broker.now());
    assert!(h.broker.get("corp-admin").await.is_ok());
    assert!(matches!(
        h.broker.refresh_now("nope").await,
        Err(ServeError::UnknownProfile(_))
    ));
}

#[tokio::test]
async fn after_credd_mfa_the_profiles_stop_needing_mfa_without_a_request() {
    let h = harness();
    *h.upstream.mfa_lifetime.lock().unwrap() = Some(Duration::hours(12));
    // A request finds no session: both profiles on it now wait for a code.
    assert!(h.broker.get("mfa-a").await.is_err());
    assert!(h.broker.get("mfa-b").await.is_err());
    let state = |name: &str| {
        h.broker
            .status()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap()
            .state
    };
    assert_eq!(state("mfa-a"), "needs MFA");
    let rows = h.broker.user_sessions(&[], &[]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].kind, "mfa");
    assert_eq!(rows[0].state, "needs MFA");
    assert_eq!(rows[0].profiles, vec!["mfa-a", "mfa-b"]);
    assert_eq!(rows[0].ends, None);
    assert!(rows[0].in_use, "requested just now");

    h.broker
        .submit_mfa("mfa-b", SecretString::new("123456"))
        .await
        .unwrap();
    settle().await;
    // No request since: the roles were fetched when the session started.
    assert_eq!(state("mfa-a"), "fresh");
    assert_eq!(state("mfa-b"), "fresh");
    assert_eq!(h.upstream.count("AssumeRole"), 2);
    let rows = h.broker.user_sessions(&[], &[]);
    assert_eq!(rows[0].state, "active");
    assert_eq!(rows[0].serial.as_deref(), Some("arn:aws:iam::1:mfa/me"));
    assert_eq!(rows[0].ends_in_secs, Some(12 * 3600));
    assert!(
        rows[0].needed_then.contains("a new MFA code: `credd mfa"),
        "{rows:?}"
    );
    h.cancel.cancel();
}
