//! Refresh arithmetic, pure: when to renew a credential or token, what a
//! failure of each kind means for the next attempt (retry with backoff, retry
//! at the slowest pace, or park until the user acts), and whether a cached
//! value may still be served.
//!
//! SDKs call the endpoint again once a credential has less than 5 to 15 min
//! left (see `sdk-client-contract.md`), so credd renews ahead: about 35 min
//! before expiry (with jitter) for long-lived credentials, at half-life for
//! short ones, so that what it serves keeps at least 25 min of life wherever
//! the upstream lifetime allows. IAM Identity Center access tokens follow the
//! same rule with their own window ([`Rule::Token`]): 15 min, botocore's.
//! `aws login` credentials ([`Rule::Login`]) are renewed 10 min ahead (at
//! half-life for their usual 15 min), so botocore, which refreshes the
//! shared file at 5 min, never has to.
//!
//! Every refreshing thing in the daemon (role/STS nodes, MFA sessions, SSO
//! sessions, `aws login` sessions) asks this module what comes next
//! and stores the answer, a [`Next`], in its refresh slot: the daemon decides
//! nothing about failure kinds itself.
//!
//! # Failures by kind
//!
//! An upstream failure arrives classified by `UpstreamErrorKind`: credd-aws
//! sorts STS failures in `classify.rs` (by the AWS error code, the HTTP
//! status or the transport error) and Identity Center ones with
//! `SsoError::kind` (`sso/errors.rs`: a refused access or refresh token, or
//! a sign-in that expired or was denied, is `LoginRequired`; access denied
//! to a role is `Denied`; any other rejected request is `Config`; the rest
//! as for STS). [`disposition`] says what each kind means, once, for broker
//! nodes and SSO tokens alike; `UpstreamErrorKind::retryable` reads it too.
//!
//! | kind | typical cause | next attempt |
//! |---|---|---|
//! | `Unreachable` | connect error, timeout, 5xx, not an STS answer | backoff |
//! | `Throttled` | `Throttling`, 429 | backoff |
//! | `Source` | a local source failed, or gave expired credentials | backoff |
//! | `Denied` | `AccessDenied`, invalid or expired keys | at `backoff_cap` |
//! | `Config` | validation error, bad endpoint URL | at `backoff_cap` |
//! | `InvalidMfa` | wrong or reused code | parked: `credd mfa` |
//! | `MfaRequired` | no code at hand | parked: `credd mfa` |
//! | `LoginRequired` | SSO: no token, the session ended, a corrupt cache file | parked: a login |
//!
//! The backoff runs from `backoff_base` (5 s), doubling, to `backoff_cap`
//! (5 min); a token's ([`Rule::Token`]) starts one step further along, as a
//! failed token refresh leaves the current token in service. Every retry
//! comes no later than the moment the cached value stops being servable
//! (`min_serve_life` before it expires). Parked means no time at all: the
//! slot waits for the event ([`Park`]).

use crate::upstream::UpstreamErrorKind;
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
    /// Renew IAM Identity Center access tokens this long before expiry
    /// (half-life for shorter ones); no jitter: one token per session.
    pub token_window: Duration,
}

/// Which refresh-ahead rule applies to a refreshing value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// AWS credentials (STS, SSO role credentials, credential_process):
    /// `window` ahead with `jitter`; their backoff starts at `backoff_base`.
    Credentials,
    /// An OAuth access token with a refresh token (IAM Identity Center,
    /// `aws login`): `token_window` ahead, no jitter, and a backoff that
    /// starts one step further along (2 x `backoff_base`), because a failed
    /// token refresh leaves the current token in service.
    Token,
    /// The credentials of an `aws login` session, which botocore and the CLI
    /// read from the same cache file and refresh themselves once it has 5
    /// min or less left: renewed [`LOGIN_REFRESH_MARGIN`] (10 min) before
    /// expiry, at half-life when they live less than twice that (15 min
    /// credentials: 7.5 min in), no jitter (one writer per session), so that
    /// the file always has more than 5 min left while credd holds the
    /// session and no other program refreshes (a second refresher would
    /// spend the rotating refresh token twice). Backoff as for `Token`.
    Login,
}

pub use crate::login::LOGIN_REFRESH_MARGIN;

/// What a parked refresh waits for instead of a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Park {
    /// A new MFA code (`credd mfa`): nothing is retried on its own.
    MfaCode,
    /// A new login (`credd login`, `aws sso login`): a new token in the
    /// cache wakes it.
    Login,
}

/// What comes next for a refreshing value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Refresh (or retry) at this time.
    At(OffsetDateTime),
    /// Wait for an event; no time is scheduled.
    Parked(Park),
}

impl Next {
    /// The scheduled time, unless parked.
    pub fn at(self) -> Option<OffsetDateTime> {
        match self {
            Next::At(t) => Some(t),
            Next::Parked(_) => None,
        }
    }
}

/// What a failure of one kind means for the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Transient (network, throttling, a local source that may recover):
    /// retry with exponential backoff.
    Backoff,
    /// Refused or misconfigured: retrying soon will not help until the user
    /// changes something, so retry at the slowest pace (`backoff_cap`).
    Slow,
    /// Only the user can help; nothing is retried until the event.
    Park(Park),
}

/// The meaning of each failure kind, in one place.
pub fn disposition(kind: UpstreamErrorKind) -> Disposition {
    use UpstreamErrorKind as K;
    match kind {
        K::Unreachable | K::Throttled | K::Source => Disposition::Backoff,
        K::Denied | K::Config => Disposition::Slow,
        K::MfaRequired | K::InvalidMfa => Disposition::Park(Park::MfaCode),
        K::LoginRequired => Disposition::Park(Park::Login),
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            window: Duration::minutes(35),
            jitter: Duration::minutes(5),
            min_serve_life: Duration::seconds(60),
            backoff_base: Duration::seconds(5),
            backoff_cap: Duration::minutes(5),
            token_window: crate::sso::TOKEN_REFRESH_WINDOW,
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
        self.refresh_ahead(Rule::Credentials, issued, expires, jitter)
    }

    /// The one refresh-ahead rule: `window` before expiry (less up to
    /// `jitter`) when the value lives at least twice the window, otherwise
    /// at half-life (less up to a tenth of the lifetime, never more than the
    /// jitter). `jitter` is a number in `[0, 1)` supplied by the caller.
    pub fn refresh_ahead(
        &self,
        rule: Rule,
        issued: OffsetDateTime,
        expires: OffsetDateTime,
        jitter: f64,
    ) -> OffsetDateTime {
        let (window, max_jitter) = match rule {
            Rule::Credentials => (self.window, self.jitter),
            Rule::Token => (self.token_window, Duration::ZERO),
            Rule::Login => (LOGIN_REFRESH_MARGIN, Duration::ZERO),
        };
        let jitter = jitter.clamp(0.0, 1.0);
        let lifetime = expires - issued;
        if lifetime <= Duration::ZERO {
            return issued;
        }
        if lifetime >= window * 2 {
            expires - window - max_jitter * jitter
        } else {
            issued + lifetime / 2 - std::cmp::min(lifetime / 10, max_jitter) * jitter
        }
    }

    /// What comes next after a success at `issued`: the refresh-ahead time,
    /// or parked when renewing needs the user (`parked_by`: an MFA session
    /// without `mfa_process` is renewed only by a new code).
    pub fn after_success(
        &self,
        rule: Rule,
        issued: OffsetDateTime,
        expires: OffsetDateTime,
        jitter: f64,
        parked_by: Option<Park>,
    ) -> Next {
        match parked_by {
            Some(p) => Next::Parked(p),
            None => Next::At(self.refresh_ahead(rule, issued, expires, jitter)),
        }
    }

    /// What comes next after failure number `failures` (1 = first) of
    /// `kind` at `now`, while the cached value (if any) expires at
    /// `cached_expiry`: see [`disposition`]. A retry is never later than the
    /// moment the cached value stops being servable.
    pub fn after_failure(
        &self,
        rule: Rule,
        kind: UpstreamErrorKind,
        now: OffsetDateTime,
        failures: u32,
        cached_expiry: Option<OffsetDateTime>,
    ) -> Next {
        let step = match rule {
            Rule::Credentials => failures,
            Rule::Token | Rule::Login => failures.saturating_add(1),
        };
        match disposition(kind) {
            Disposition::Park(p) => Next::Parked(p),
            Disposition::Backoff => Next::At(self.retry_at(now, step, cached_expiry)),
            Disposition::Slow => Next::At(self.retry_at(now, u32::MAX, cached_expiry)),
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
    fn login_credentials_always_keep_more_than_botocores_5_minutes() {
        let p = Policy::default();
        // 15 min credentials (Sign-In's): half-life, 7.5 min left.
        let exp = T0 + Duration::minutes(15);
        let at = p.refresh_ahead(Rule::Login, T0, exp, 0.9);
        assert_eq!(at, T0 + Duration::seconds(450));
        // Credentials another program wrote, picked up with 11 min left:
        // renewed while more than 5 min remain.
        let exp = T0 + Duration::minutes(11);
        assert!(exp - p.refresh_ahead(Rule::Login, T0, exp, 0.5) > Duration::minutes(5));
        // Long-lived ones: exactly the margin before expiry, no jitter.
        let exp = T0 + Duration::hours(1);
        assert_eq!(
            p.refresh_ahead(Rule::Login, T0, exp, 0.99),
            exp - LOGIN_REFRESH_MARGIN
        );
        // A failed refresh backs off like a token's (the credentials in
        // service stay in service).
        assert_eq!(
            p.after_failure(Rule::Login, UpstreamErrorKind::Unreachable, T0, 1, None),
            Next::At(T0 + Duration::seconds(10))
        );
        assert_eq!(
            p.after_failure(Rule::Login, UpstreamErrorKind::LoginRequired, T0, 1, None),
            Next::Parked(Park::Login)
        );
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

    #[test]
    fn tokens_renew_15_minutes_ahead_or_at_half_life_without_jitter() {
        // Moved from the SSO token's own rule (`SsoToken::refresh_at`).
        let p = Policy::default();
        let hour = T0 + Duration::hours(1);
        for j in [0.0, 0.99] {
            assert_eq!(
                p.refresh_ahead(Rule::Token, T0, hour, j),
                T0 + Duration::minutes(45)
            );
        }
        // Short-lived (10 min left at 45 min): half-life.
        let t = T0 + Duration::minutes(45);
        assert_eq!(
            p.refresh_ahead(Rule::Token, t, T0 + Duration::minutes(55), 0.5),
            T0 + Duration::minutes(50)
        );
        // The window is the policy's.
        let p = Policy {
            token_window: Duration::minutes(5),
            ..p
        };
        assert_eq!(
            p.refresh_ahead(Rule::Token, T0, hour, 0.0),
            hour - Duration::minutes(5)
        );
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let p = Policy::default();
        let long = T0 + Duration::hours(12);
        let short = T0 + Duration::minutes(20);
        for i in 0..=100 {
            let j = f64::from(i) / 100.0;
            let at = p.refresh_ahead(Rule::Credentials, T0, long, j);
            assert!(
                at <= long - p.window && at >= long - p.window - p.jitter,
                "{j}"
            );
            let at = p.refresh_ahead(Rule::Credentials, T0, short, j);
            let half = T0 + Duration::minutes(10);
            assert!(at <= half && at >= half - Duration::minutes(2), "{j}: {at}");
        }
        // Out-of-range jitter is clamped, never pushes past the bounds.
        assert_eq!(
            p.refresh_ahead(Rule::Credentials, T0, long, 7.0),
            long - p.window - p.jitter
        );
        assert_eq!(
            p.refresh_ahead(Rule::Credentials, T0, long, -1.0),
            long - p.window
        );
    }

    #[test]
    fn success_schedules_the_refresh_or_parks_until_a_code() {
        let p = Policy::default();
        let exp = T0 + Duration::hours(12);
        assert_eq!(
            p.after_success(Rule::Credentials, T0, exp, 0.0, None),
            Next::At(exp - Duration::minutes(35))
        );
        assert_eq!(
            p.after_success(Rule::Credentials, T0, exp, 0.0, Some(Park::MfaCode)),
            Next::Parked(Park::MfaCode)
        );
        assert_eq!(Next::Parked(Park::Login).at(), None);
        assert_eq!(Next::At(T0).at(), Some(T0));
    }

    #[test]
    fn every_failure_kind_has_its_meaning() {
        use UpstreamErrorKind as K;
        let p = Policy::default();
        let cached = Some(T0 + Duration::hours(1));
        let next = |k| p.after_failure(Rule::Credentials, k, T0, 1, cached);
        for k in [K::Unreachable, K::Throttled, K::Source] {
            assert_eq!(disposition(k), Disposition::Backoff, "{k:?}");
            assert_eq!(next(k), Next::At(T0 + Duration::seconds(5)), "{k:?}");
        }
        for k in [K::Denied, K::Config] {
            assert_eq!(disposition(k), Disposition::Slow, "{k:?}");
            assert_eq!(next(k), Next::At(T0 + Duration::minutes(5)), "{k:?}");
        }
        for k in [K::MfaRequired, K::InvalidMfa] {
            assert_eq!(next(k), Next::Parked(Park::MfaCode), "{k:?}");
        }
        assert_eq!(next(K::LoginRequired), Next::Parked(Park::Login));
        // Token refreshes mean the same, and park the same way.
        assert_eq!(
            p.after_failure(Rule::Token, K::LoginRequired, T0, 1, None),
            Next::Parked(Park::Login)
        );
        assert_eq!(
            p.after_failure(Rule::Token, K::Denied, T0, 1, None),
            Next::At(T0 + Duration::minutes(5))
        );
    }

    #[test]
    fn failures_back_off_to_the_cap_on_each_rule() {
        use UpstreamErrorKind as K;
        let p = Policy::default();
        let delays = |rule| -> Vec<i64> {
            (1..=8)
                .map(|n| {
                    let at = p.after_failure(rule, K::Unreachable, T0, n, None).at();
                    (at.expect("scheduled") - T0).whole_seconds()
                })
                .collect()
        };
        assert_eq!(
            delays(Rule::Credentials),
            vec![5, 10, 20, 40, 80, 160, 300, 300]
        );
        // The SSO token path's numbers from before the one engine: 10 s first.
        assert_eq!(
            delays(Rule::Token),
            vec![10, 20, 40, 80, 160, 300, 300, 300]
        );
        // Configurable in one place: both paths follow the policy.
        let p = Policy {
            backoff_base: Duration::seconds(1),
            backoff_cap: Duration::seconds(6),
            ..p
        };
        let got: Vec<_> = (1..=4)
            .map(|n| p.after_failure(Rule::Token, K::Throttled, T0, n, None))
            .collect();
        let want: Vec<_> = [2, 4, 6, 6]
            .iter()
            .map(|s| Next::At(T0 + Duration::seconds(*s)))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            p.after_failure(Rule::Token, K::Throttled, T0, u32::MAX, None),
            Next::At(T0 + Duration::seconds(6))
        );
    }

    #[test]
    fn a_failure_retries_no_later_than_the_cached_value_stops_being_servable() {
        use UpstreamErrorKind as K;
        let p = Policy::default();
        let exp = T0 + Duration::seconds(100);
        for rule in [Rule::Credentials, Rule::Token] {
            for k in [K::Unreachable, K::Denied] {
                assert_eq!(
                    p.after_failure(rule, k, T0, 8, Some(exp)),
                    Next::At(T0 + Duration::seconds(40)),
                    "{rule:?} {k:?}"
                );
            }
        }
        // Already past the last useful moment: the ordinary backoff.
        assert_eq!(
            p.after_failure(Rule::Credentials, K::Unreachable, T0, 1, Some(T0)),
            Next::At(T0 + Duration::seconds(5))
        );
    }
}
