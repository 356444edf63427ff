//! Injected time. The broker asks a [`Clock`] for "now" and sleeps through
//! it, so refresh-ahead, backoff and expiry are tested by moving a
//! [`ManualClock`] rather than by sleeping.

use async_trait::async_trait;
use std::sync::Mutex;
use time::OffsetDateTime;
use tokio::sync::watch;

#[async_trait]
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
    /// Returns once `now() >= deadline`.
    async fn sleep_until(&self, deadline: OffsetDateTime);
}

/// Wall-clock time. Sleeps in slices of at most 30 s and re-reads the wall
/// clock after each, so a laptop that slept through a deadline (or whose
/// clock jumped) wakes up within 30 s of resuming instead of waiting out a
/// monotonic timer that did not count the suspend.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
    async fn sleep_until(&self, deadline: OffsetDateTime) {
        loop {
            let left = deadline - self.now();
            if left <= time::Duration::ZERO {
                return;
            }
            let slice = left.min(time::Duration::seconds(30));
            tokio::time::sleep(slice.unsigned_abs()).await;
        }
    }
}

/// A clock that only moves when a test moves it.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
    tx: watch::Sender<OffsetDateTime>,
}

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        let (tx, _) = watch::channel(start);
        Self {
            now: Mutex::new(start),
            tx,
        }
    }
    pub fn set(&self, t: OffsetDateTime) {
        *self.now.lock().unwrap() = t;
        self.tx.send_replace(t);
    }
    pub fn advance(&self, d: time::Duration) {
        let t = self.now() + d;
        self.set(t);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap()
    }
    async fn sleep_until(&self, deadline: OffsetDateTime) {
        let mut rx = self.tx.subscribe();
        loop {
            if *rx.borrow_and_update() >= deadline {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}
