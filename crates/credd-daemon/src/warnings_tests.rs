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
