//! The warning scheduler against the broker's fakes and a manual clock: a
//! 12-hour MFA session in use warns at 1 h, 15 min and 5 min before its
//! end, once each, naming `credd mfa`; nothing for a session not in use or a
//! kind turned off; a new session starts a new cadence.

use super::*;
use crate::testing::*;
use credd_core::SecretString;
use time::Duration;

fn spawn_scheduler(h: &Harness, config: WarningsConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(
        h.broker.clone(),
        h.clock.clone(),
        config,
        h.cancel.child_token(),
    ))
}

fn warnings(h: &Harness) -> Vec<(String, String)> {
    h.notifier
        .sent
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t.contains("ends in"))
        .cloned()
        .collect()
}

/// Twelve hours in 5-minute steps, a consumer fetching `profile` every
/// step when `fetch`; returns the minutes before the end of each warning.
async fn day(h: &Harness, fetch: Option<&str>) -> Vec<i64> {
    let end = T0 + Duration::hours(12);
    let mut at = vec![];
    for _ in 0..(12 * 12 + 2) {
        if let Some(p) = fetch {
            let _ = h.broker.get(p).await;
        }
        let before = warnings(h).len();
        h.clock.advance(Duration::minutes(5));
        settle().await;
        if warnings(h).len() > before {
            at.push((end - h.clock.now()).whole_minutes());
        }
    }
    at
}

#[tokio::test]
async fn an_mfa_session_in_use_is_warned_about_three_times_ahead() {
    let h = harness();
    *h.upstream.mfa_lifetime.lock().unwrap() = Some(Duration::hours(12));
    let task = spawn_scheduler(&h, WarningsConfig::default());
    settle().await;
    h.broker
        .submit_mfa("mfa-a", SecretString::new("123456"))
        .await
        .unwrap();
    assert_eq!(day(&h, Some("mfa-a")).await, vec![60, 15, 5]);
    let w = warnings(&h);
    assert_eq!(w[0].0, "credd: MFA session ends in 1 h");
    assert!(w[0].1.contains("run `credd mfa mfa-a`"), "{w:?}");
    assert_eq!(w[2].0, "credd: MFA session ends in 5 min");
    h.cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn nothing_for_a_session_not_in_use_or_a_kind_turned_off() {
    let h = harness();
    *h.upstream.mfa_lifetime.lock().unwrap() = Some(Duration::hours(12));
    let task = spawn_scheduler(&h, WarningsConfig::default());
    h.broker
        .submit_mfa("mfa-a", SecretString::new("123456"))
        .await
        .unwrap();
    assert_eq!(day(&h, None).await, Vec::<i64>::new(), "never served");
    h.cancel.cancel();
    task.await.unwrap();

    let h = harness();
    *h.upstream.mfa_lifetime.lock().unwrap() = Some(Duration::hours(12));
    let off = WarningsConfig {
        mfa: false,
        ..WarningsConfig::default()
    };
    let task = spawn_scheduler(&h, off);
    h.broker
        .submit_mfa("mfa-a", SecretString::new("123456"))
        .await
        .unwrap();
    assert_eq!(
        day(&h, Some("mfa-b")).await,
        Vec::<i64>::new(),
        "mfa = false"
    );
    h.cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_new_code_starts_a_new_cadence() {
    let h = harness();
    *h.upstream.mfa_lifetime.lock().unwrap() = Some(Duration::hours(2));
    let task = spawn_scheduler(&h, WarningsConfig::default());
    h.broker
        .submit_mfa("mfa-a", SecretString::new("123456"))
        .await
        .unwrap();
    // 70 min in: the 1 h warning came.
    for _ in 0..14 {
        let _ = h.broker.get("mfa-a").await;
        h.clock.advance(Duration::minutes(5));
        settle().await;
    }
    assert_eq!(warnings(&h).len(), 1);
    // A new code: a new 2 h session; its 1 h warning comes again, later.
    h.broker
        .submit_mfa("mfa-a", SecretString::new("123456"))
        .await
        .unwrap();
    settle().await;
    let mut after = 0;
    for _ in 0..15 {
        let _ = h.broker.get("mfa-a").await;
        h.clock.advance(Duration::minutes(5));
        settle().await;
        if warnings(&h).len() == 2 && after == 0 {
            after = h.clock.now().unix_timestamp();
        }
    }
    assert_eq!(
        after - T0.unix_timestamp(),
        (70 + 60) * 60,
        "1 h before the new end ({} warnings)",
        warnings(&h).len()
    );
    h.cancel.cancel();
    task.await.unwrap();
}

fn sso_harness() -> Harness {
    let profiles: &[(&str, &[(&str, &str)])] = &[
        (
            "sso-session work",
            &[
                ("sso_start_url", "https://d-1234567890.awsapps.com/start"),
                ("sso_region", "eu-west-1"),
            ],
        ),
        (
            "sso-dev",
            &[
                ("sso_session", "work"),
                ("sso_account_id", "111122223333"),
                ("sso_role_name", "Dev"),
            ],
        ),
    ];
    let policy = credd_core::schedule::Policy {
        jitter: Duration::ZERO,
        ..Default::default()
    };
    harness_with(
        &raw(profiles),
        crate::sessions::SessionStore::disabled(),
        policy,
    )
}

/// Another tool's `aws sso login` at the harness's clock: a 1 h token with a
/// refresh token.
fn sso_sign_in(h: &Harness) {
    use credd_core::sso::{ClientRegistration, SsoSession, SsoToken, TokenGrant};
    let session = SsoSession {
        name: Some("work".into()),
        start_url: "https://d-1234567890.awsapps.com/start".into(),
        region: "eu-west-1".into(),
        scopes: None,
        session_length: None,
    };
    let reg = ClientRegistration {
        client_id: h.upstream.sso.lock().unwrap().client_id.clone(),
        client_secret: SecretString::new("s"),
        expires_at: h.clock.now() + Duration::days(90),
        scopes: None,
        grant_types: None,
    };
    let t = SsoToken::from_grant(
        &session,
        TokenGrant {
            access_token: SecretString::new("access-morning"),
            expires_in_secs: 3600,
            refresh_token: Some(SecretString::new("refresh-morning")),
        },
        Some(&reg),
        h.clock.now(),
    );
    h.sso_store.put_raw(&session, t.to_json().as_bytes());
    h.broker.sso().sync_all();
}

/// An Identity Center session whose token keeps refreshing has no end in
/// the cache: its end is estimated (sign-in + 8 h) and warned about on the
/// MFA cadence, naming `credd login work`; `sso = false` silences it.
#[tokio::test]
async fn an_sso_session_is_warned_about_before_its_estimated_end() {
    let h = sso_harness();
    let task = spawn_scheduler(&h, WarningsConfig::default());
    sso_sign_in(&h);
    settle().await;
    let row = h
        .broker
        .user_sessions(&h.broker.sso().status(), &[])
        .into_iter()
        .find(|r| r.kind == "sso")
        .unwrap();
    assert_eq!(row.ends.as_deref(), Some("2026-11-23T17:00:00Z"));
    assert!(row.ends_estimated, "{row:?}");
    assert!(
        row.ends_source
            .as_deref()
            .is_some_and(|s| s.contains("signed in 2026-11-23T09:00:00Z + 8h")
                && s.contains("[sso] session_length")),
        "{row:?}"
    );
    // The day ends at 21:00, the session at 17:00: warnings 4 h earlier.
    let at: Vec<i64> = day(&h, Some("sso-dev"))
        .await
        .into_iter()
        .map(|m| m - 4 * 60)
        .collect();
    assert_eq!(at, vec![60, 15, 5]);
    let w = warnings(&h);
    assert_eq!(w[0].0, "credd: IAM Identity Center session ends in 1 h");
    assert!(w[0].1.contains("run `credd login work`"), "{w:?}");
    assert!(w[0].1.contains("estimated"), "{w:?}");
    h.cancel.cancel();
    task.await.unwrap();

    let h = sso_harness();
    let off = WarningsConfig {
        sso: false,
        ..WarningsConfig::default()
    };
    let task = spawn_scheduler(&h, off);
    sso_sign_in(&h);
    assert_eq!(
        day(&h, Some("sso-dev")).await,
        Vec::<i64>::new(),
        "sso = false"
    );
    h.cancel.cancel();
    task.await.unwrap();
}
