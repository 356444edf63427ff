//! IAM Identity Center sessions in the broker, with a fake upstream, an
//! in-memory SSO cache and a manual clock: role credentials from the cached
//! token, the access token refreshed ahead of expiry and written back, a
//! token written by another program picked up, the session-ended path
//! (notification, error naming `credd login`, recovery without a restart),
//! corrupt cache files, revoked tokens and client re-registration; the
//! session's estimated end (a foreign sign-in noticed, the sign-in time kept
//! across a restart, a refused refresh as the real end).

use crate::broker::ServeError;
use crate::clock::Clock;
use crate::sessions::SessionStore;
use crate::testing::*;
use credd_core::schedule::Policy;
use credd_core::sso::{ClientRegistration, SsoSession, SsoToken, TokenGrant};
use credd_core::SecretString;
use std::sync::atomic::Ordering;
use time::Duration;

fn session() -> SsoSession {
    SsoSession {
        name: Some("work".into()),
        start_url: "https://d-1234567890.awsapps.com/start".into(),
        region: "eu-west-1".into(),
        scopes: Some(vec!["sso:account:access".into()]),
        session_length: None,
    }
}

fn profiles() -> credd_core::profile::RawProfiles {
    raw(&[
        (
            "sso-session work",
            &[
                ("sso_start_url", "https://d-1234567890.awsapps.com/start"),
                ("sso_region", "eu-west-1"),
                ("sso_registration_scopes", "sso:account:access"),
            ],
        ),
        (
            "dev",
            &[
                ("sso_session", "work"),
                ("sso_account_id", "111122223333"),
                ("sso_role_name", "PowerUserAccess"),
            ],
        ),
        (
            "dev-admin",
            &[
                ("role_arn", "arn:aws:iam::444455556666:role/Admin"),
                ("source_profile", "dev"),
            ],
        ),
    ])
}

fn sso_harness() -> Harness {
    let policy = Policy {
        jitter: Duration::ZERO,
        ..Policy::default()
    };
    harness_with(&profiles(), SessionStore::disabled(), policy)
}

/// A token as `credd login` or `aws sso login` writes it, issued now.
fn login(h: &Harness, tag: &str, life: Duration) {
    let reg = ClientRegistration {
        client_id: h.upstream.sso.lock().unwrap().client_id.clone(),
        client_secret: SecretString::new("client-secret"),
        expires_at: T0 + Duration::days(90),
        scopes: None,
        grant_types: None,
    };
    let token = SsoToken::from_grant(
        &session(),
        TokenGrant {
            access_token: SecretString::new(format!("access-{tag}")),
            expires_in_secs: life.whole_seconds(),
            refresh_token: Some(SecretString::new(format!("refresh-{tag}"))),
        },
        Some(&reg),
        h.clock.now(),
    );
    h.sso_store.put_raw(&session(), token.to_json().as_bytes());
}

fn message(e: ServeError) -> String {
    e.to_string()
}

#[tokio::test]
async fn sso_profiles_are_served_from_the_cached_token() {
    let h = sso_harness();
    login(&h, "a", Duration::hours(1));
    let dev = h.broker.get("dev").await.unwrap();
    assert!(dev.creds.access_key_id().starts_with("ASIAP"));
    let admin = h.broker.get("dev-admin").await.unwrap();
    assert!(admin.creds.access_key_id().starts_with("ASIAR"));
    assert_eq!(
        h.upstream.count("GetRoleCredentials"),
        1,
        "one shared SSO node"
    );
    assert_eq!(h.upstream.count("CreateToken:refresh_token"), 0);
    assert_eq!(
        h.sso_store.writes.load(Ordering::SeqCst),
        0,
        "nothing written"
    );
    let status = h.broker.sso().status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].state, crate::status::SessionState::Active);
    assert_eq!(
        status[0].next_refresh.as_deref(),
        Some("2026-11-23T09:45:00Z"),
        "15 minutes before the token expires"
    );
}

#[tokio::test]
async fn the_access_token_is_refreshed_ahead_of_expiry_and_written_back() {
    let h = sso_harness();
    login(&h, "a", Duration::hours(1));
    h.broker.get("dev").await.unwrap();
    h.clock.advance(Duration::minutes(44));
    settle().await;
    assert_eq!(h.upstream.count("CreateToken:refresh_token"), 0, "not yet");
    h.clock.advance(Duration::minutes(1));
    settle().await;
    assert_eq!(h.upstream.count("CreateToken:refresh_token"), 1);
    let stored = h.sso_store.get(&session()).expect("written back");
    assert!(stored.access_token.expose().starts_with("access-"));
    assert_ne!(stored.access_token.expose(), "access-a");
    assert_eq!(
        stored.expires_at,
        T0 + Duration::minutes(45) + Duration::hours(1)
    );
    assert_eq!(
        stored.refresh_token.as_ref().unwrap().expose(),
        "refresh-a",
        "no refresh token came back: the old one is kept"
    );
    assert!(stored.client_id.is_some(), "the client fields are kept");
    // The new token is used for the next role credentials without another
    // refresh, and a rotated refresh token replaces the old one.
    h.upstream.sso.lock().unwrap().rotate = true;
    h.clock.advance(Duration::minutes(45));
    settle().await;
    assert_eq!(h.upstream.count("CreateToken:refresh_token"), 2);
    let stored = h.sso_store.get(&session()).unwrap();
    assert_ne!(stored.refresh_token.as_ref().unwrap().expose(), "refresh-a");
}

#[tokio::test]
async fn a_token_written_by_another_program_is_picked_up() {
    let h = sso_harness();
    login(&h, "a", Duration::hours(1));
    h.broker.get("dev").await.unwrap();
    // `aws sso login` replaces the file; the daemon notices on its next look.
    h.clock.advance(Duration::minutes(10));
    login(&h, "from-cli", Duration::hours(8));
    h.clock.advance(crate::sso::POLL_INTERVAL);
    settle().await;
    let s = &h.broker.sso().status()[0];
    assert_eq!(s.token_expires.as_deref(), Some("2026-11-23T17:10:00Z"));
    assert_eq!(h.upstream.count("CreateToken:refresh_token"), 0);
}

#[tokio::test]
async fn not_logged_in_is_an_error_naming_credd_login_and_calls_nothing() {
    let h = sso_harness();
    let e = message(h.broker.get("dev-admin").await.unwrap_err());
    assert_eq!(
        e,
        "SSO session 'work': not logged in: run `credd login work`"
    );
    assert_eq!(h.upstream.count("CreateToken:refresh_token"), 0);
    assert_eq!(h.upstream.count("GetRoleCredentials"), 0);
    assert_eq!(h.upstream.count("RegisterClient"), 0);
    let status = h.broker.status();
    let dev = status.iter().find(|p| p.name == "dev-admin").unwrap();
    assert_eq!(dev.state, "login required");
    // `credd login`: the next request works, with no daemon restart.
    login(&h, "b", Duration::hours(1));
    h.broker.sso().sync_all();
    settle().await;
    assert!(h.broker.get("dev-admin").await.is_ok());
}

#[tokio::test]
async fn the_session_ending_notifies_once_then_fails_with_the_login_command_and_recovers() {
    let h = sso_harness();
    login(&h, "a", Duration::hours(1));
    h.broker.get("dev").await.unwrap();
    h.upstream.sso.lock().unwrap().session_ended = true;
    // The refresh at 45 min is refused: the session has ended.
    h.clock.advance(Duration::minutes(45));
    settle().await;
    assert_eq!(h.upstream.count("CreateToken:refresh_token"), 1);
    {
        let sent = h.notifier.sent.lock().unwrap();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(
            sent[0].1,
            "SSO session 'work' ended: run `credd login work`"
        );
    }
    assert_eq!(
        h.broker.sso().status()[0].state,
        crate::status::SessionState::Ended
    );
    // Cached role credentials are still served until they run out...
    assert!(h.broker.get("dev").await.is_ok());
    // (the role credentials were renewed at 09:25 with the token that was
    // still valid then, so they last until 10:45)...
    // ...then requests get the message, and no refresh is tried again.
    h.clock.advance(Duration::minutes(61));
    settle().await;
    let e = h.broker.get("dev").await.unwrap_err();
    assert_eq!(e.code(), "SsoLoginRequired");
    assert_eq!(
        message(e),
        "SSO session 'work' ended: run `credd login work`"
    );
    let row = h
        .broker
        .status()
        .into_iter()
        .find(|p| p.name == "dev")
        .unwrap();
    assert_eq!(row.state, "login required");
    assert_eq!(h.upstream.count("CreateToken:refresh_token"), 1);
    assert_eq!(h.notifier.sent.lock().unwrap().len(), 1, "told once");
    // The user logs in again: service resumes without a restart, and the
    // parked role profile is woken by the new token.
    {
        let mut sso = h.upstream.sso.lock().unwrap();
        sso.session_ended = false;
    }
    login(&h, "again", Duration::hours(8));
    let before = h.upstream.count("GetRoleCredentials");
    h.broker.sso().sync_all();
    settle().await;
    assert_eq!(
        h.upstream.count("GetRoleCredentials"),
        before + 1,
        "the parked node renews on its own once the token arrives"
    );
    assert!(h.broker.get("dev").await.is_ok());
    assert!(h.broker.get("dev-admin").await.is_ok());
    assert_eq!(
        h.broker.sso().status()[0].state,
        crate::status::SessionState::Active
    );
}

#[tokio::test]
async fn a_corrupt_cache_file_is_a_clear_miss_and_is_never_overwritten() {
    let h = sso_harness();
    let junk = br#"{"startUrl": "https://d-1234567890.awsapps.com/start", "accessToken": "sec"#;
    h.sso_store.put_raw(&session(), junk);
    let e = message(h.broker.get("dev").await.unwrap_err());
    assert!(e.contains("cannot be used"), "{e}");
    assert!(e.contains("run `credd login work`"), "{e}");
    assert!(!e.contains("sec\""), "{e}");
    h.clock.advance(Duration::hours(1));
    settle().await;
    assert_eq!(h.sso_store.writes.load(Ordering::SeqCst), 0);
    assert_eq!(
        h.sso_store.tokens.lock().unwrap()["work"].0,
        junk.to_vec(),
        "left byte for byte"
    );
    assert_eq!(
        h.broker.sso().status()[0].state,
        crate::status::SessionState::CacheCorrupt
    );
}

#[tokio::test]
async fn a_revoked_token_is_refreshed_once_and_the_call_retried() {
    let h = sso_harness();
    login(&h, "a", Duration::hours(1));
    h.upstream
        .sso
        .lock()
        .unwrap()
        .revoked
        .push("access-a".into());
    let c = h.broker.get("dev").await.unwrap();
    assert!(c.creds.access_key_id().starts_with("ASIAP"));
    assert_eq!(h.upstream.count("GetRoleCredentials"), 2);
    assert_eq!(h.upstream.count("CreateToken:refresh_token"), 1);
}

#[tokio::test]
async fn the_client_is_re_registered_before_its_registration_lapses() {
    let h = sso_harness();
    login(&h, "a", Duration::hours(8));
    h.sso_store.registrations.lock().unwrap().insert(
        "work".into(),
        ClientRegistration {
            client_id: "old".into(),
            client_secret: SecretString::new("old-secret"),
            expires_at: T0 + Duration::minutes(40),
            scopes: Some(vec!["sso:account:access".into()]),
            grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        },
    );
    h.broker.get("dev").await.unwrap();
    h.clock.advance(Duration::minutes(24));
    settle().await;
    assert_eq!(
        h.upstream.count("RegisterClient"),
        0,
        "not within 15 min yet"
    );
    h.clock.advance(Duration::minutes(2));
    settle().await;
    assert_eq!(h.upstream.count("RegisterClient"), 1);
    let reg = h.sso_store.registrations.lock().unwrap()["work"].clone();
    assert_ne!(reg.client_id, "old");
    assert_eq!(
        reg.grant_types.as_deref(),
        Some(
            &[
                "authorization_code".to_string(),
                "refresh_token".to_string()
            ][..]
        )
    );
    h.clock.advance(Duration::minutes(30));
    settle().await;
    assert_eq!(h.upstream.count("RegisterClient"), 1, "once");
}

#[tokio::test]
async fn an_unreachable_portal_is_named_as_such_and_retried() {
    let h = sso_harness();
    login(&h, "a", Duration::hours(1));
    *h.upstream.fail.lock().unwrap() = Some(credd_core::UpstreamError::new(
        credd_core::UpstreamErrorKind::Unreachable,
        "SSO GetRoleCredentials: could not reach portal.sso.eu-west-1.amazonaws.com: connection refused",
    ));
    let e = message(h.broker.get("dev").await.unwrap_err());
    assert!(
        e.starts_with(
            "IAM Identity Center unreachable (SSO GetRoleCredentials: could not reach portal.sso"
        ),
        "{e}"
    );
    assert!(e.contains("retrying in"), "{e}");
}

#[tokio::test]
async fn a_failed_token_refresh_backs_off_on_the_token_rule_and_keeps_the_token_in_service() {
    let h = sso_harness();
    login(&h, "a", Duration::hours(1));
    h.broker.get("dev").await.unwrap();
    h.clock.advance(Duration::minutes(44));
    settle().await;
    *h.upstream.fail.lock().unwrap() = Some(credd_core::UpstreamError::new(
        credd_core::UpstreamErrorKind::Unreachable,
        "SSO OIDC CreateToken: could not reach oidc.eu-west-1.amazonaws.com",
    ));
    h.clock.advance(Duration::minutes(1));
    settle().await;
    assert_eq!(h.upstream.count("CreateToken:refresh_token"), 1);
    let row = &h.broker.sso().status()[0];
    assert_eq!(
        row.state,
        crate::status::SessionState::Active,
        "still usable"
    );
    assert_eq!(
        row.next_refresh.as_deref(),
        Some("2026-11-23T09:45:10Z"),
        "the token rule's first retry: 10 s"
    );
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("could not reach")),
        "{row:?}"
    );
    // 10 s, then 20 s.
    for (wait, expected) in [(9, 1), (1, 2), (19, 2), (1, 3)] {
        h.clock.advance(Duration::seconds(wait));
        settle().await;
        assert_eq!(
            h.upstream.count("CreateToken:refresh_token"),
            expected,
            "after {wait} s more"
        );
    }
    assert_eq!(
        h.sso_store.get(&session()).unwrap().access_token.expose(),
        "access-a"
    );
    // The portal answers again: the next retry succeeds and clears the error.
    *h.upstream.fail.lock().unwrap() = None;
    h.clock.advance(Duration::seconds(40));
    settle().await;
    assert_eq!(h.upstream.count("CreateToken:refresh_token"), 4);
    let row = &h.broker.sso().status()[0];
    assert_eq!(row.last_error, None);
    assert_ne!(
        h.sso_store.get(&session()).unwrap().access_token.expose(),
        "access-a"
    );
}

/// An `SsoSessions` of its own over the harness's fakes, recording sign-ins
/// in `state` (a daemon's state directory); `stop` ends its loops (a daemon
/// that stops).
fn sessions_in(
    h: &Harness,
    state: &std::path::Path,
    stop: &tokio_util::sync::CancellationToken,
) -> crate::sso::SsoSessions {
    let policy = Policy {
        jitter: Duration::ZERO,
        ..Policy::default()
    };
    crate::sso::SsoSessions::new(
        h.upstream.clone(),
        h.clock.clone(),
        h.sso_store.clone(),
        h.notifier.clone(),
        policy,
        tokio_util::task::TaskTracker::new(),
        stop.clone(),
    )
    .with_sign_ins(
        crate::sessions::SignInStore::new(state),
        credd_core::sso::DEFAULT_SESSION_LENGTH,
    )
}

fn estimate(s: &crate::sso::SsoSessions) -> Option<(time::OffsetDateTime, time::OffsetDateTime)> {
    match s.ends().get("work")? {
        SessionEnd::Estimated { at, signed_in, .. } => Some((*signed_in, *at)),
        SessionEnd::Ended(_) => None,
    }
}

use credd_core::sso::{LengthSource, SessionEnd};

#[tokio::test]
async fn a_sign_in_by_another_tool_is_noticed_and_its_end_estimated() {
    let h = sso_harness();
    let dir = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let s = sessions_in(&h, dir.path(), &stop);
    // `aws sso login` at 09:30, before the daemon knew the session.
    h.clock.advance(Duration::minutes(30));
    login(&h, "a", Duration::hours(1));
    s.register(vec![(session(), "dev".into())]);
    let nine_thirty = T0 + Duration::minutes(30);
    assert_eq!(
        estimate(&s),
        Some((nine_thirty, nine_thirty + Duration::hours(8)))
    );
    // Two hours on (the daemon refreshed meanwhile: not a sign-in), another
    // `aws sso login` writes a token with a new refresh token: noticed at
    // the next look, and the estimate moves.
    for _ in 0..24 {
        h.clock.advance(Duration::minutes(5));
        settle().await;
    }
    assert!(h.upstream.count("CreateToken:refresh_token") >= 1);
    assert_eq!(
        estimate(&s).unwrap().0,
        nine_thirty,
        "own refreshes keep it"
    );
    login(&h, "b", Duration::hours(1));
    s.sync_all();
    let eleven_thirty = T0 + Duration::minutes(150);
    assert_eq!(
        estimate(&s),
        Some((eleven_thirty, eleven_thirty + Duration::hours(8)))
    );
    // The session's own `credd_session_length` wins over credd.toml's.
    let long = SsoSession {
        session_length: Some(Duration::hours(12)),
        ..session()
    };
    s.register(vec![(long, "dev".into())]);
    match s.ends()["work"] {
        SessionEnd::Estimated { at, source, .. } => {
            assert_eq!(source, LengthSource::SsoSession);
            assert_eq!(at, eleven_thirty + Duration::hours(12));
        }
        e => panic!("{e:?}"),
    }
    stop.cancel();
}

#[tokio::test]
async fn a_restart_keeps_the_sign_in_time() {
    let h = sso_harness();
    let dir = tempfile::tempdir().unwrap();
    login(&h, "a", Duration::hours(1));
    let first = tokio_util::sync::CancellationToken::new();
    let s = sessions_in(&h, dir.path(), &first);
    s.register(vec![(session(), "dev".into())]);
    // The daemon refreshes the token at 09:45 and writes it back.
    h.clock.advance(Duration::minutes(50));
    settle().await;
    assert_eq!(h.upstream.count("CreateToken:refresh_token"), 1);
    first.cancel();
    drop(s);
    // A new daemon at 11:00 reads the token the old one wrote: the same
    // session, signed in at 09:00, not a new one.
    h.clock.advance(Duration::minutes(70));
    let second = tokio_util::sync::CancellationToken::new();
    let s = sessions_in(&h, dir.path(), &second);
    s.register(vec![(session(), "dev".into())]);
    assert_eq!(estimate(&s), Some((T0, T0 + Duration::hours(8))));
    // The record holds times only.
    let text = std::fs::read_to_string(dir.path().join("sso-signins.json")).unwrap();
    assert!(
        !text.contains("access-") && !text.contains("refresh-"),
        "{text}"
    );
    second.cancel();
}

#[tokio::test]
async fn a_refused_refresh_is_the_real_end_whatever_the_estimate() {
    let h = sso_harness();
    let dir = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    login(&h, "a", Duration::hours(1));
    let s = sessions_in(&h, dir.path(), &stop);
    s.register(vec![(session(), "dev".into())]);
    h.upstream.sso.lock().unwrap().session_ended = true;
    h.clock.advance(Duration::minutes(45));
    settle().await;
    assert_eq!(
        s.ends().get("work"),
        Some(&SessionEnd::Ended(T0 + Duration::minutes(45)))
    );
    // A new sign-in: estimated again, from then.
    h.upstream.sso.lock().unwrap().session_ended = false;
    h.clock.advance(Duration::minutes(5));
    login(&h, "b", Duration::hours(1));
    s.sync_all();
    let at = T0 + Duration::minutes(50);
    assert_eq!(estimate(&s), Some((at, at + Duration::hours(8))));
    stop.cancel();
}
