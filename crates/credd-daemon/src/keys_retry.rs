//! Reading a key store again after it was unlocked (issue 15): a profile
//! whose long-term keys live in a locked keychain fails with a 503 naming
//! the fix (`ConfigErrorKind::KeysUnavailable`, set at the last reload).
//! Once the user unlocks it, nothing in the AWS files changes, so no reload
//! would come by itself; instead, a request for such a profile
//! ([`KeysRetry::kick`], from `Broker::get`) asks for one, and the task
//! [`run`] re-reads the profiles in the background. The request still gets
//! its fast 503 (the retry never blocks it); the client's next try is
//! served once the store answered.
//!
//! At most one retry per [`RETRY_GAP`]: a client hammering a profile whose
//! keychain stays locked costs one store look every 10 s, each bounded by
//! `keys.timeout`. Nothing here wakes without a request: an idle daemon
//! with a locked keychain stays asleep (issue 16 counts wake-ups). The
//! Secret Service's unlock signal would need a D-Bus subscription the
//! `keyring` crate does not offer.

use crate::control::ControlState;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The shortest time between two retries.
pub const RETRY_GAP: Duration = Duration::from_secs(10);

/// A request's wish that the key store be read again.
#[derive(Debug, Default)]
pub struct KeysRetry {
    wanted: Notify,
    last: Mutex<Option<Instant>>,
}

impl KeysRetry {
    /// From the request path: asks for a retry unless one was asked for in
    /// the last [`RETRY_GAP`]. Never blocks (a short mutex, a permit).
    pub fn kick(&self) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < RETRY_GAP) {
            return;
        }
        *last = Some(Instant::now());
        self.wanted.notify_one();
    }
}

/// Re-reads the profiles (and so the key store) each time a retry is
/// wanted, until `cancel`.
pub(crate) async fn run(
    retry: Arc<KeysRetry>,
    state: Arc<ControlState>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = retry.wanted.notified() => {
                tracing::info!("a profile's key store could not answer at the last read: reading the profiles again");
                state.reload().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_kick_asks_once_per_gap() {
        let r = KeysRetry::default();
        r.kick();
        r.kick();
        // One permit for the first kick...
        tokio::time::timeout(Duration::from_millis(50), r.wanted.notified())
            .await
            .expect("the first kick asked for a retry");
        // ... and none for the second, within the gap.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), r.wanted.notified())
                .await
                .is_err()
        );
        // Past the gap, a kick asks again.
        *r.last.lock().unwrap() = Some(Instant::now() - RETRY_GAP);
        r.kick();
        tokio::time::timeout(Duration::from_millis(50), r.wanted.notified())
            .await
            .expect("a kick after the gap asked again");
    }
}
