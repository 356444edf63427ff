//! The reminder task on a manual clock: the rising cadence over a key's
//! last weeks (and past its limit), one look per reminder or cadence step
//! (no polling), a restart that neither repeats nor forgets, a rotated key
//! that starts afresh, and the state file's mode.

use super::*;
use crate::clock::ManualClock;
use crate::testing::{settle, RecordingNotifier, T0};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use time::Duration as D;

#[derive(Debug, Default)]
struct FakeKeys {
    keys: Mutex<Vec<KeyAge>>,
    looks: AtomicUsize,
}

impl KeyAges for FakeKeys {
    fn ages(&self) -> Result<Vec<KeyAge>, String> {
        self.looks.fetch_add(1, Ordering::SeqCst);
        Ok(self.keys.lock().unwrap().clone())
    }
}

struct World {
    clock: Arc<ManualClock>,
    keys: Arc<FakeKeys>,
    notifier: Arc<RecordingNotifier>,
    changed: Arc<Notify>,
    config: RemindersConfig,
    _dir: tempfile::TempDir,
}

fn world(since: OffsetDateTime) -> World {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(FakeKeys::default());
    keys.keys.lock().unwrap().push(KeyAge {
        name: "dev".into(),
        since,
    });
    World {
        clock: Arc::new(ManualClock::new(T0)),
        keys,
        notifier: Arc::new(RecordingNotifier::default()),
        changed: Arc::new(Notify::new()),
        config: RemindersConfig {
            max_age: D::days(90),
            max_age_text: "90d".into(),
            state_file: dir.path().join("state").join("key-reminders.json"),
        },
        _dir: dir,
    }
}

impl World {
    fn start(&self) -> CancellationToken {
        let cancel = CancellationToken::new();
        tokio::spawn(run(
            self.keys.clone(),
            self.changed.clone(),
            self.clock.clone(),
            self.notifier.clone(),
            self.config.clone(),
            cancel.clone(),
        ));
        cancel
    }

    fn sent(&self) -> usize {
        self.notifier.sent.lock().unwrap().len()
    }

    /// Lets the task's blocking look finish.
    async fn settle(&self) {
        for _ in 0..20 {
            settle().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// The key's age (whole days) at each reminder while the clock moves in
/// 6-hour steps over `days`.
async fn days_of_reminders(w: &World, since: OffsetDateTime, days: i64) -> Vec<i64> {
    let mut at = vec![];
    for _ in 0..days * 4 {
        let before = w.sent();
        w.clock.advance(D::hours(6));
        w.settle().await;
        if w.sent() > before {
            assert_eq!(w.sent(), before + 1, "one reminder per look");
            at.push((w.clock.now() - since).whole_days());
        }
    }
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_rise_as_the_limit_nears_and_a_restart_neither_repeats_nor_forgets() {
    // A key added 50 days before T0: the reminders start at day 62.
    let since = T0 - D::days(50);
    let w = world(since);
    let cancel = w.start();
    w.settle().await;
    assert_eq!(w.sent(), 0);
    let at = days_of_reminders(&w, since, 50).await;
    // Weekly from day 62, twice a week from day 76, three times a week from
    // day 83, daily from day 87 and past the limit (day 90).
    assert_eq!(
        at,
        [62, 69, 76, 79, 83, 85, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100]
    );
    let (title, body) = w.notifier.sent.lock().unwrap().last().cloned().unwrap();
    assert!(title.contains("'dev'"), "{title}");
    assert!(body.contains("`credd keys rotate dev`"), "{body}");
    // No polling: one look at the start, then one per reminder (each step
    // of the cadence, days 62, 76, 83 and 87, brought one here).
    let looks = w.keys.looks.load(Ordering::SeqCst);
    assert_eq!(
        looks,
        1 + at.len(),
        "{looks} looks for {} reminders",
        at.len()
    );

    // A restart half a day after the last reminder: nothing until it is due.
    cancel.cancel();
    w.settle().await;
    w.clock.advance(D::hours(12));
    let sent = w.sent();
    let cancel = w.start();
    w.settle().await;
    assert_eq!(w.sent(), sent, "a restart repeated a reminder");
    // ... and the next one still comes a day after the last.
    w.clock.advance(D::hours(12));
    w.settle().await;
    assert_eq!(w.sent(), sent + 1, "a restart forgot the next reminder");
    cancel.cancel();

    // The state: 0600 in a 0700 directory, names and dates only.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let file = &w.config.state_file;
    assert_eq!(mode(file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    let text = std::fs::read_to_string(file).unwrap();
    assert!(
        text.contains("\"dev\"") && text.contains("reminded"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_starts_afresh_and_a_change_wakes_the_task() {
    let since = T0 - D::days(100);
    let w = world(since);
    let cancel = w.start();
    w.settle().await;
    assert_eq!(
        w.sent(),
        1,
        "a key past its limit is reminded about at once"
    );
    // Rotated: a new date, told through `changed`; no reminder for a new key.
    w.keys.keys.lock().unwrap()[0].since = T0;
    let looks = w.keys.looks.load(Ordering::SeqCst);
    w.changed.notify_one();
    w.settle().await;
    assert_eq!(w.keys.looks.load(Ordering::SeqCst), looks + 1);
    w.clock.advance(D::days(2));
    w.settle().await;
    assert_eq!(w.sent(), 1);
    let text = std::fs::read_to_string(&w.config.state_file).unwrap();
    assert!(
        !text.contains("\"dev\""),
        "the old key's reminder is kept: {text}"
    );
    // A new key, added old (IAM's date): reminded at once after the change.
    w.keys.keys.lock().unwrap().push(KeyAge {
        name: "ops".into(),
        since: T0 - D::days(200),
    });
    w.changed.notify_one();
    w.settle().await;
    assert_eq!(w.sent(), 2);
    assert!(w.notifier.sent.lock().unwrap()[1]
        .1
        .contains("credd keys rotate ops"));
    cancel.cancel();
}
