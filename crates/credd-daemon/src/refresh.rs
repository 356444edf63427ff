//! The one refresh engine: a [`Slot`] holds one refreshing value (a role or
//! STS credential, an MFA session, an IAM Identity Center access token) with
//! its refresh state, its single-flight lock, the [`Notify`] that wakes its
//! loop and the token that retires it; [`Slot::start`] runs the loop that
//! sleeps until the next deadline or a wake and then lets the value's
//! [`Driver`] act.
//!
//! What comes next after a success or a failure is never decided here: it is
//! asked of `credd_core::schedule` ([`SlotState::succeeded`],
//! [`SlotState::failed`]) and stored as a [`Next`]: a time, or parked until
//! an event (an MFA code, a login). Events reach parked slots through
//! [`Subscribers`]: the SSO sessions tell the broker a token arrived this
//! way, with no task in between.
//!
//! Users: broker nodes (`broker.rs`) and SSO sessions (`sso.rs`). An
//! `aws login` session (a token with a rotating refresh token in a cache file
//! other programs rewrite) is a third driver of the same shape as the SSO
//! one: its value is the token and the file's stamp, [`Driver::poll_every`]
//! watches the file, and its ticks are never cancelled halfway (a rotated
//! refresh token must reach the file).

use crate::clock::Clock;
use credd_core::schedule::{Next, Park, Policy, Rule};
use credd_core::UpstreamError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// A slot's value and where its refresh stands.
#[derive(Debug)]
pub(crate) struct SlotState<V> {
    /// The user's value (a cached credential, a token and its file stamp).
    pub value: V,
    /// Finished attempts; lets single-flight waiters tell that the attempt
    /// they queued behind failed, instead of each trying again.
    pub attempts: u64,
    /// Failures since the last success.
    pub failures: u32,
    pub last_error: Option<(OffsetDateTime, UpstreamError)>,
    /// `None`: nothing scheduled yet (never fetched, or the value came from
    /// elsewhere and is refreshed on demand).
    pub next: Option<Next>,
    /// An attempt is under way.
    pub refreshing: bool,
}

impl<V> SlotState<V> {
    pub fn new(value: V) -> Self {
        Self {
            value,
            attempts: 0,
            failures: 0,
            last_error: None,
            next: None,
            refreshing: false,
        }
    }

    /// The scheduled refresh or retry, unless parked or idle.
    pub fn deadline(&self) -> Option<OffsetDateTime> {
        self.next.and_then(Next::at)
    }

    /// What the slot waits for, when parked.
    pub fn parked(&self) -> Option<Park> {
        match self.next {
            Some(Next::Parked(p)) => Some(p),
            _ => None,
        }
    }

    /// A success: failures forgotten, the next refresh as the schedule says.
    pub fn succeeded(&mut self, next: Next) {
        self.attempts += 1;
        self.refreshing = false;
        self.failures = 0;
        self.last_error = None;
        self.next = Some(next);
    }

    /// A failure at `now`: counted, kept for status and for waiters, and the
    /// next attempt asked of the schedule (`cached_expiry`: when the value
    /// still held stops being servable, if one is held).
    pub fn failed(
        &mut self,
        policy: &Policy,
        rule: Rule,
        now: OffsetDateTime,
        error: &UpstreamError,
        cached_expiry: Option<OffsetDateTime>,
    ) -> Next {
        self.attempts += 1;
        self.refreshing = false;
        self.failures += 1;
        let next = policy.after_failure(rule, error.kind, now, self.failures, cached_expiry);
        self.next = Some(next);
        self.last_error = Some((now, error.clone()));
        next
    }

    /// A new value arrived from elsewhere (another program wrote the cache
    /// file): the history of the old one no longer applies.
    pub fn restart(&mut self, next: Option<Next>) {
        self.failures = 0;
        self.last_error = None;
        self.next = next;
    }

    /// The last error while a backoff runs: requests get it at once, with no
    /// upstream call, until the retry is due.
    pub fn backing_off(&self, now: OffsetDateTime) -> Option<&UpstreamError> {
        let (_, e) = self.last_error.as_ref()?;
        (self.failures > 0 && self.deadline()? > now).then_some(e)
    }
}

/// One refreshing value: its state, single-flight lock, wake-up and
/// retirement. Shared (`Arc`) by requests and its loop.
#[derive(Debug)]
pub(crate) struct Slot<V> {
    state: Mutex<SlotState<V>>,
    /// Held for the whole of an attempt: one upstream call at a time.
    flight: tokio::sync::Mutex<()>,
    wake: Notify,
    /// The daemon's root token, whose child retires this slot.
    parent: CancellationToken,
    /// That child, made the first time it is needed (the loop starts, an
    /// attempt selects on it, the slot is retired): a child token is a
    /// 112-byte node in the root's tree, and with 10,000 profiles most
    /// slots are never started.
    retired: OnceLock<CancellationToken>,
    started: AtomicBool,
}

impl<V: Send + 'static> Slot<V> {
    /// A slot that stops when it is retired or `parent` (the daemon's root
    /// token) is cancelled.
    pub fn new(value: V, parent: CancellationToken) -> Self {
        Self {
            state: Mutex::new(SlotState::new(value)),
            flight: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            parent,
            retired: OnceLock::new(),
            started: AtomicBool::new(false),
        }
    }

    /// The state, locked. Never held across an `.await`.
    pub fn state(&self) -> MutexGuard<'_, SlotState<V>> {
        self.state.lock().unwrap()
    }

    /// The single-flight lock.
    pub async fn flight(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.flight.lock().await
    }

    /// Makes the loop look again now (a new deadline, an event).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops the loop for good (the value is no longer used).
    pub fn retire(&self) {
        self.retired().cancel();
    }

    pub fn retired(&self) -> &CancellationToken {
        self.retired.get_or_init(|| self.parent.child_token())
    }

    /// Starts the slot's loop, once, in `tasks` under `span`; later calls
    /// only wake it.
    pub fn start<D: Driver>(
        self: &Arc<Self>,
        tasks: &TaskTracker,
        clock: Arc<dyn Clock>,
        span: tracing::Span,
        driver: D,
    ) {
        if self.started.swap(true, Ordering::SeqCst) {
            self.wake();
            return;
        }
        let slot = self.clone();
        tasks.spawn(async move { slot.run(clock, driver).await }.instrument(span));
    }

    /// Sleeps until the driver's deadline (at most [`Driver::poll_every`]),
    /// or a wake, then lets the driver act, until retired. The driver's
    /// action itself is not cancelled here: a driver whose attempt may be
    /// abandoned selects on [`Slot::retired`] itself.
    async fn run<D: Driver>(&self, clock: Arc<dyn Clock>, driver: D) {
        loop {
            let now = clock.now();
            let deadline = match (driver.deadline(now), driver.poll_every()) {
                (Some(d), Some(p)) => Some(d.max(now).min(now + p)),
                (None, Some(p)) => Some(now + p),
                (d, None) => d,
            };
            let sleep = async {
                match deadline {
                    Some(d) => clock.sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.retired().cancelled() => return,
                _ = self.wake.notified() => {}
                _ = sleep => {}
            }
            if self.retired().is_cancelled() {
                return;
            }
            driver.tick().await;
        }
    }
}

/// What a slot's loop does for one kind of value.
#[async_trait::async_trait]
pub(crate) trait Driver: Send + Sync + 'static {
    /// When to act next, looking at the slot's state; `None`: only a wake
    /// (or the poll) makes the loop act.
    fn deadline(&self, now: OffsetDateTime) -> Option<OffsetDateTime>;

    /// Look at least this often (a cache file other programs rewrite).
    fn poll_every(&self) -> Option<Duration> {
        None
    }

    /// Called at the deadline, on a wake and on each poll: checks what is
    /// due and does it (under the slot's flight lock).
    async fn tick(&self);
}

type Callback = Box<dyn Fn() + Send + Sync>;

/// Who to tell when a value changes (a new SSO token, a session ended):
/// the way slots parked on an event are woken, called synchronously by the
/// changing side after it has released its own locks.
#[derive(Default)]
pub(crate) struct Subscribers {
    list: Mutex<Vec<Callback>>,
}

impl std::fmt::Debug for Subscribers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscribers")
            .field("count", &self.list.lock().unwrap().len())
            .finish()
    }
}

impl Subscribers {
    pub fn subscribe(&self, f: impl Fn() + Send + Sync + 'static) {
        self.list.lock().unwrap().push(Box::new(f));
    }

    /// Calls every subscriber. They must not subscribe from inside.
    pub fn notify(&self) {
        for f in self.list.lock().unwrap().iter() {
            f();
        }
    }
}

/// What a status row shows of a slot, read in one place.
#[derive(Debug, Clone)]
pub(crate) struct SlotView {
    pub next_refresh: Option<OffsetDateTime>,
    pub parked: Option<Park>,
    pub failures: u32,
    pub last_error: Option<UpstreamError>,
    pub refreshing: bool,
}

impl<V> SlotState<V> {
    pub fn view(&self) -> SlotView {
        SlotView {
            next_refresh: self.deadline(),
            parked: self.parked(),
            failures: self.failures,
            last_error: self.last_error.as_ref().map(|(_, e)| e.clone()),
            refreshing: self.refreshing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::testing::{settle, T0};
    use credd_core::UpstreamErrorKind;
    use std::sync::atomic::AtomicU32;

    /// Counts its ticks; a due deadline is consumed like a refresh would.
    struct Counting {
        slot: Arc<Slot<u32>>,
        ticks: Arc<AtomicU32>,
        clock: Arc<ManualClock>,
    }

    #[async_trait::async_trait]
    impl Driver for Counting {
        fn deadline(&self, _now: OffsetDateTime) -> Option<OffsetDateTime> {
            self.slot.state().deadline()
        }
        async fn tick(&self) {
            self.ticks.fetch_add(1, Ordering::SeqCst);
            let mut st = self.slot.state();
            if st.deadline().is_some_and(|d| d <= self.clock.now()) {
                st.next = None;
            }
        }
    }

    fn started(clock: &Arc<ManualClock>) -> (Arc<Slot<u32>>, Arc<AtomicU32>, TaskTracker) {
        let slot = Arc::new(Slot::new(0, CancellationToken::new()));
        let ticks = Arc::new(AtomicU32::new(0));
        let tasks = TaskTracker::new();
        let driver = Counting {
            slot: slot.clone(),
            ticks: ticks.clone(),
            clock: clock.clone(),
        };
        slot.start(&tasks, clock.clone(), tracing::Span::none(), driver);
        (slot, ticks, tasks)
    }

    #[tokio::test]
    async fn the_loop_acts_at_the_deadline_or_on_a_wake_and_stops_when_retired() {
        let clock = Arc::new(ManualClock::new(T0));
        let (slot, ticks, tasks) = started(&clock);
        settle().await;
        clock.advance(Duration::hours(1));
        settle().await;
        assert_eq!(ticks.load(Ordering::SeqCst), 0, "nothing scheduled");
        let at = clock.now() + Duration::minutes(10);
        slot.state().next = Some(Next::At(at));
        slot.wake();
        settle().await;
        assert_eq!(ticks.load(Ordering::SeqCst), 1, "a wake acts at once");
        assert_eq!(slot.state().deadline(), Some(at), "not due yet");
        clock.advance(Duration::minutes(9));
        settle().await;
        assert_eq!(ticks.load(Ordering::SeqCst), 1, "not yet");
        clock.advance(Duration::minutes(1));
        settle().await;
        assert_eq!(ticks.load(Ordering::SeqCst), 2, "at the deadline");
        assert_eq!(slot.state().deadline(), None);
        slot.state().next = Some(Next::Parked(Park::Login));
        slot.wake();
        settle().await;
        clock.advance(Duration::hours(5));
        settle().await;
        assert_eq!(ticks.load(Ordering::SeqCst), 3, "parked: only the wake");
        slot.retire();
        tasks.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), tasks.wait())
            .await
            .expect("the loop ends when retired");
    }

    #[test]
    fn failures_count_back_off_and_a_success_forgets_them() {
        let policy = Policy::default();
        let mut st = SlotState::new(());
        let e = UpstreamError::new(UpstreamErrorKind::Unreachable, "down");
        let cached = Some(T0 + Duration::hours(1));
        assert_eq!(
            st.failed(&policy, Rule::Credentials, T0, &e, cached),
            Next::At(T0 + Duration::seconds(5))
        );
        assert_eq!(
            st.failed(&policy, Rule::Credentials, T0, &e, cached),
            Next::At(T0 + Duration::seconds(10))
        );
        assert_eq!((st.failures, st.attempts), (2, 2));
        assert_eq!(st.backing_off(T0).map(|e| e.message.as_str()), Some("down"));
        assert!(st.backing_off(T0 + Duration::seconds(10)).is_none());
        let view = st.view();
        assert_eq!(view.next_refresh, Some(T0 + Duration::seconds(10)));
        assert_eq!(view.failures, 2);
        let login = UpstreamError::new(UpstreamErrorKind::LoginRequired, "log in");
        st.failed(&policy, Rule::Credentials, T0, &login, cached);
        assert_eq!(st.parked(), Some(Park::Login));
        assert_eq!(st.deadline(), None);
        assert!(st.backing_off(T0).is_none(), "parked is not a backoff");
        st.succeeded(Next::At(T0 + Duration::minutes(30)));
        assert_eq!((st.failures, st.attempts), (0, 4));
        assert!(st.last_error.is_none() && st.parked().is_none());
    }

    #[test]
    fn subscribers_are_all_told() {
        let subs = Subscribers::default();
        let n = Arc::new(AtomicU32::new(0));
        for _ in 0..3 {
            let n = n.clone();
            subs.subscribe(move || {
                n.fetch_add(1, Ordering::SeqCst);
            });
        }
        subs.notify();
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }
}
