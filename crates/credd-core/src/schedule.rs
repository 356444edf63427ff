//! Refresh arithmetic, pure: when to renew a credential, how long to back off
//! after a failure, and whether a cached credential may still be served.
//!
//! SDKs call the endpoint again once a credential has less than 5 to 15 min
//! left (see `sdk-client-contract.md`), so credd renews ahead: about 35 min
//! before expiry (with jitter) for long-lived credentials, at half-life for
//! short ones, so that what it serves keeps at least 25 min of life wherever
//! the upstream lifetime allows.

use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Renew this long before expiry (long-lived credentials).
    pub window: Duration,
    /// Up to this much earlier again, spread by jitter.
    pub jitter: Duration,
    /// Never serve a credential with less than this left.
    pub min_serve_life: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            window: Duration::minutes(35),
            jitter: Duration::minutes(5),
            min_serve_life: Duration::seconds(60),
            backoff_base: Duration::seconds(5),
            backoff_cap: Duration::minutes(5),
        }
    }
}

impl Policy {
    /// When to renew a credential fetched at `issued` that expires at `expires`.
    /// `jitter` is a number in `[0, 1)` supplied by the caller.
    pub fn next_refresh(
        &self,
        issued: OffsetDateTime,
        expires: OffsetDateTime,
        jitter: f64,
    ) -> OffsetDateTime {
        let jitter = jitter.clamp(0.0, 1.0);
        let lifetime = expires - issued;
        if lifetime <= Duration::ZERO {
            return issued;
        }
        if lifetime >= self.window * 2 {
            expires - self.window - self.jitter * jitter
        } else {
            // Short-lived: half-life, less up to a tenth of the lifetime
            // (never more than the configured jitter).
            issued + lifetime / 2 - std::cmp::min(lifetime / 10, self.jitter) * jitter
        }
    }

    /// The delay before retry number `failures` (1 = first failure):
    /// exponential from `backoff_base`, capped at `backoff_cap`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        let d = self.backoff_base * 2_i32.pow(exp);
        d.min(self.backoff_cap)
    }

    /// When to retry after a failure, never later than the moment the cached
    /// credential (if any) stops being servable.
    pub fn retry_at(
        &self,
        now: OffsetDateTime,
        failures: u32,
        cached_expiry: Option<OffsetDateTime>,
    ) -> OffsetDateTime {
        let at = now + self.backoff(failures);
        match cached_expiry {
            Some(exp) => {
                let last_useful = exp - self.min_serve_life;
                if last_useful > now && last_useful < at {
                    last_useful
                } else {
                    at
                }
            }
            None => at,
        }
    }

    /// Whether a credential expiring at `expires` may be served at `now`.
    pub fn servable(&self, now: OffsetDateTime, expires: OffsetDateTime) -> bool {
        expires - now > self.min_serve_life
    }
}

/// How far the wall clock moved beyond (or behind) the monotonic clock over
/// one interval, when that is more than `threshold`: the laptop slept, or
/// the clock was set. `None` when the two agree.
pub fn clock_jump(
    wall_elapsed: Duration,
    monotonic_elapsed: Duration,
    threshold: Duration,
) -> Option<Duration> {
    let drift = wall_elapsed - monotonic_elapsed;
    (drift.abs() > threshold).then_some(drift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-23 09:00 UTC);

    #[test]
    fn long_lived_renews_35_minutes_ahead_with_jitter() {
        let p = Policy::default();
        let exp = T0 + Duration::hours(12);
        assert_eq!(p.next_refresh(T0, exp, 0.0), exp - Duration::minutes(35));
        assert_eq!(p.next_refresh(T0, exp, 1.0), exp - Duration::minutes(40));
        let mid = p.next_refresh(T0, exp, 0.5);
        assert!(mid < exp - Duration::minutes(35) && mid > exp - Duration::minutes(40));
    }

    #[test]
    fn one_hour_credentials_keep_25_minutes_when_served() {
        let p = Policy::default();
        let exp = T0 + Duration::hours(1);
        for j in [0.0, 0.3, 0.99] {
            let at = p.next_refresh(T0, exp, j);
            assert!(exp - at >= Duration::minutes(25), "{j}: {at}");
            assert!(at > T0);
        }
    }

    #[test]
    fn short_lived_renews_at_half_life() {
        let p = Policy::default();
        let exp = T0 + Duration::minutes(15);
        assert_eq!(p.next_refresh(T0, exp, 0.0), T0 + Duration::seconds(450));
        assert_eq!(p.next_refresh(T0, T0, 0.0), T0);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = Policy::default();
        let got: Vec<i64> = (1..=9).map(|n| p.backoff(n).whole_seconds()).collect();
        assert_eq!(got, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(p.backoff(u32::MAX).whole_seconds(), 300);
    }

    #[test]
    fn retry_never_later_than_the_cached_credential_is_useful() {
        let p = Policy::default();
        let exp = T0 + Duration::seconds(100);
        // 8 failures -> 300 s, but the credential stops being servable at 40 s.
        assert_eq!(p.retry_at(T0, 8, Some(exp)), T0 + Duration::seconds(40));
        assert_eq!(p.retry_at(T0, 1, Some(exp)), T0 + Duration::seconds(5));
        assert_eq!(p.retry_at(T0, 1, None), T0 + Duration::seconds(5));
    }

    #[test]
    fn clock_jumps_are_told_from_ordinary_drift() {
        let t = Duration::seconds(30);
        assert_eq!(
            clock_jump(Duration::seconds(10), Duration::seconds(10), t),
            None
        );
        assert_eq!(
            clock_jump(Duration::seconds(12), Duration::seconds(10), t),
            None
        );
        assert_eq!(
            clock_jump(Duration::hours(2), Duration::seconds(10), t),
            Some(Duration::hours(2) - Duration::seconds(10))
        );
        assert_eq!(
            clock_jump(Duration::minutes(-10), Duration::seconds(10), t),
            Some(Duration::minutes(-10) - Duration::seconds(10))
        );
    }

    #[test]
    fn never_serves_expired_or_nearly_expired() {
        let p = Policy::default();
        assert!(p.servable(T0, T0 + Duration::minutes(2)));
        assert!(!p.servable(T0, T0 + Duration::seconds(60)));
        assert!(!p.servable(T0, T0 - Duration::seconds(1)));
    }
}
