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

/// The user's day (issue 14; `docs/user-day.md`): 09:00 to 21:00 on the
/// manual clock; an Identity Center session of 8 h with refresh tokens and
/// an MFA session of 12 h, three profiles on each; a container and an IDE
/// fetching every profile every 5 minutes. The simulated user acts only on
/// what credd tells them (a notification), within one step. Counts what
/// they had to do and what failed.
#[tokio::test]
async fn a_users_day() {
    use credd_core::sso::{ClientRegistration, SsoSession, SsoToken, TokenGrant};
    let sso_profiles: &[(&str, &[(&str, &str)])] = &[
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
        (
            "sso-admin",
            &[
                ("role_arn", "arn:aws:iam::444455556666:role/Admin"),
                ("source_profile", "sso-dev"),
            ],
        ),
        (
            "sso-ro",
            &[
                ("role_arn", "arn:aws:iam::444455556666:role/ReadOnly"),
                ("source_profile", "sso-dev"),
            ],
        ),
        (
            "mfa-c",
            &[
                ("role_arn", "arn:aws:iam::111111111111:role/C"),
                ("source_profile", "base"),
                ("mfa_serial", "arn:aws:iam::1:mfa/me"),
            ],
        ),
    ];
    let mut all = sample();
    all.extend(raw(sso_profiles));
    let policy = credd_core::schedule::Policy {
        jitter: Duration::ZERO,
        ..Default::default()
    };
    let h = harness_with(&all, crate::sessions::SessionStore::disabled(), policy);
    *h.upstream.mfa_lifetime.lock().unwrap() = Some(Duration::hours(12));
    let session = SsoSession {
        name: Some("work".into()),
        start_url: "https://d-1234567890.awsapps.com/start".into(),
        region: "eu-west-1".into(),
        scopes: None,
    };
    let sign_in = |tag: &str| {
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
                access_token: SecretString::new(format!("access-{tag}")),
                expires_in_secs: 3600,
                refresh_token: Some(SecretString::new(format!("refresh-{tag}"))),
            },
            Some(&reg),
            h.clock.now(),
        );
        h.upstream.sso.lock().unwrap().session_ended = false;
        h.sso_store.put_raw(&session, t.to_json().as_bytes());
        h.broker.sso().sync_all();
    };
    let task = spawn_scheduler(&h, WarningsConfig::default());
    // 09:00: one sign-in, one MFA code.
    let (mut sign_ins, mut codes) = (1, 1);
    let mut session_start = h.clock.now();
    sign_in("morning");
    h.broker
        .submit_mfa("mfa-a", SecretString::new("123456"))
        .await
        .unwrap();
    settle().await;
    let profiles = ["sso-dev", "sso-admin", "sso-ro", "mfa-a", "mfa-b", "mfa-c"];
    let (mut fetches, mut failed_while_valid, mut failed_after_end) = (0, 0, 0);
    let mut handled = 0;
    let end_of_day = T0 + Duration::hours(12);
    while h.clock.now() < end_of_day {
        // Identity Center ends the session 8 h after its sign-in.
        if h.clock.now() >= session_start + Duration::hours(8) {
            h.upstream.sso.lock().unwrap().session_ended = true;
        }
        let sso_valid = h.clock.now() < session_start + Duration::hours(8);
        let mfa_valid = h.clock.now() < T0 + Duration::hours(12);
        for consumer in 0..2 {
            for p in profiles {
                fetches += 1;
                if h.broker.get(p).await.is_err() {
                    let valid = if p.starts_with("sso") {
                        sso_valid
                    } else {
                        mfa_valid
                    };
                    if valid {
                        failed_while_valid += 1;
                        eprintln!("{consumer} {p} failed at {}", h.clock.now());
                    } else {
                        failed_after_end += 1;
                    }
                }
            }
        }
        // The user reads what credd sent and does what it names.
        let sent = h.notifier.sent.lock().unwrap().clone();
        for (title, body) in &sent[handled..] {
            if title.contains("sign-in needed") || body.contains("ended: run `credd login work`") {
                sign_ins += 1;
                session_start = h.clock.now();
                sign_in(&format!("s{sign_ins}"));
            } else if title.contains("MFA code needed") {
                codes += 1;
            }
        }
        handled = sent.len();
        h.clock.advance(Duration::minutes(5));
        settle().await;
    }
    let warned: Vec<String> = warnings(&h).into_iter().map(|(t, _)| t).collect();
    eprintln!(
        "fetches {fetches}, failed while valid {failed_while_valid}, after end {failed_after_end}, sign-ins {sign_ins}, codes {codes}, warnings {warned:?}, notifications {:?}",
        h.notifier.sent.lock().unwrap()
    );
    assert_eq!(failed_while_valid, 0);
    assert_eq!(codes, 1, "one MFA code for the day");
    assert_eq!(
        warned,
        [
            "credd: MFA session ends in 1 h",
            "credd: MFA session ends in 15 min",
            "credd: MFA session ends in 5 min"
        ]
    );
    // The 8 h Identity Center session: a second sign-in, told when it
    // ended (its end is not in the cache, so no warning ahead).
    assert_eq!(sign_ins, 2);
    assert_eq!(fetches, 12 * 12 * 12);
    h.cancel.cancel();
    task.await.unwrap();
}
