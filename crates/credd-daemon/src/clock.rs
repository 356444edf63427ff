//! Injected time. The broker, the refresh engine's loops (`refresh.rs`),
//! `SsoSessions` and the docker watch read the time only through a [`Clock`]
//! (`now()`, `sleep_until(deadline)`), handed to `run` in `Services`; the
//! client-token store and the IMDS sessions are given a `now` read from it,
//! and the arithmetic is the pure `Policy` in `credd_core::schedule`. So
//! refresh-ahead, backoff, expiry and clock jumps are tested by moving a
//! [`ManualClock`] rather than by sleeping.
//!
//! - [`SystemClock`] sleeps until the deadline on one monotonic timer, and
//!   also wakes when [`watch_jumps`] reports a jump; after either it re-reads
//!   the wall clock. A monotonic timer does not count a suspend, so without
//!   the jump report a deadline that passed while the laptop slept would be
//!   late by the length of the sleep. (Before, every sleeper woke every 30 s
//!   to look: with 50 profiles, 100 wake-ups a minute on an idle laptop.)
//! - [`watch_jumps`] (task `clock-watch`) compares wall-clock and monotonic
//!   time once a minute (`credd_core::schedule::clock_jump`), the only
//!   periodic wake-up of an idle daemon; when they differ by more than 30 s
//!   (suspend/resume, or the clock was set) it wakes every
//!   [`SystemClock`] sleeper (broker nodes, SSO sessions, the docker watch)
//!   and `run` wakes every broker node's loop (`Broker::wake_all`). So a
//!   deadline that passed during a suspend is acted on within a minute of
//!   resuming.
//! - [`ManualClock`] only moves when a test moves it; `sleep_until` wakes on
//!   every change.
//!
//! Waits that are not wall-clock deadlines use tokio's timers, not the
//! `Clock`: the header-read watchdog, `limits.cold_wait`, the shutdown
//! grace, the AWS-files poll and the STS client's timeouts.

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

/// Wall-clock time. Sleeps on one monotonic timer until the deadline, or
/// until [`watch_jumps`] reports that the wall clock jumped (a laptop that
/// slept through the deadline, or a clock that was set), then re-reads the
/// wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    // The one production read of the wall clock; everything else asks a `Clock`.
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
    async fn sleep_until(&self, deadline: OffsetDateTime) {
        loop {
            let left = deadline - self.now();
            if left <= time::Duration::ZERO {
                return;
            }
            // Registered before the timer starts, so a jump reported while
            // it runs is not missed.
            let jumped = jumps().notified();
            tokio::pin!(jumped);
            jumped.as_mut().enable();
            tokio::select! {
                _ = tokio::time::sleep(left.unsigned_abs()) => {}
                _ = jumped => {}
            }
        }
    }
}

/// Where [`watch_jumps`] tells every [`SystemClock`] sleeper that the wall
/// clock jumped. Process-wide because `SystemClock` is a plain value handed
/// around by copy, and a jump is a fact about the machine.
fn jumps() -> &'static tokio::sync::Notify {
    static JUMPS: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();
    JUMPS.get_or_init(tokio::sync::Notify::new)
}

/// How often [`watch_jumps`] looks, in the daemon: once a minute, the
/// longest a deadline that passed during a suspend waits after resuming.
pub const JUMP_WATCH: std::time::Duration = std::time::Duration::from_secs(60);

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

/// Watches for the wall clock moving differently from the monotonic clock
/// (suspend/resume, or the time being set) every `interval`, wakes every
/// [`SystemClock`] sleeper and calls `on_jump` with the difference, so every
/// session is re-checked at once rather than at its next scheduled refresh.
pub async fn watch_jumps(
    clock: std::sync::Arc<dyn Clock>,
    interval: std::time::Duration,
    cancel: tokio_util::sync::CancellationToken,
    on_jump: impl Fn(time::Duration) + Send,
) {
    let threshold = time::Duration::seconds(30);
    let mut wall = clock.now();
    let mut mono = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let (w, m) = (clock.now(), tokio::time::Instant::now());
        let mono_elapsed = time::Duration::try_from(m - mono).unwrap_or(time::Duration::MAX);
        if let Some(d) = credd_core::schedule::clock_jump(w - wall, mono_elapsed, threshold) {
            jumps().notify_waiters();
            on_jump(d);
        }
        (wall, mono) = (w, m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test(start_paused = true)]
    async fn a_wall_clock_jump_is_reported_once() {
        let clock = Arc::new(ManualClock::new(
            time::macros::datetime!(2026-11-23 09:00 UTC),
        ));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let cancel = tokio_util::sync::CancellationToken::new();
        let s = seen.clone();
        let task = tokio::spawn(watch_jumps(
            clock.clone(),
            std::time::Duration::from_secs(10),
            cancel.clone(),
            move |d| s.lock().unwrap().push(d),
        ));
        // Ordinary time: wall and monotonic move together.
        for _ in 0..3 {
            clock.advance(time::Duration::seconds(10));
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        }
        assert!(seen.lock().unwrap().is_empty());
        // The laptop slept two hours: the wall clock moved, the timer did not.
        clock.advance(time::Duration::hours(2));
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert!(seen.lock().unwrap()[0] > time::Duration::minutes(119));
        cancel.cancel();
        task.await.unwrap();
    }
}
