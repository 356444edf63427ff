//! The warning scheduler: before a session that needs the user ends (an MFA
//! session without `mfa_process`, an IAM Identity Center session whose token
//! can no longer be refreshed, an `aws login` session), a desktop
//! notification and a log line, at the cadence of `credd.toml`'s
//! `[warnings]` (default 1 h, 15 min and 5 min before), each naming the one
//! command that renews the session. Which warning is due when is
//! `credd_core::warnings`'s (pure, tested on injected times); this task only
//! reads the broker's session rows (`broker/user_sessions.rs`), says what is
//! due and sleeps until the next deadline.
//!
//! No polling: the task sleeps until the earliest window start of any
//! session (`Clock::sleep_until`), or until the broker says a session
//! changed (`Broker::sessions_changed`: a new MFA session, a sign-in, an
//! SSO token), or the clock jumps (the same wake). A session nobody used in
//! the last two hours is not warned about: its window passes silently.
//!
//! An Identity Center session whose token still refreshes ends when its
//! administrator's limit says, which clients are never told: its row carries
//! an estimated end (the sign-in plus the session length, `sso.rs`), and
//! the warning says it is an estimate. A refused refresh ends it for real:
//! its row then ends in the past and nothing more is warned.

use crate::broker::Broker;
use crate::clock::Clock;
use crate::protocol::UserSessionRow;
use credd_core::credentials::parse_timestamp;
use credd_core::warnings::{message, Cadence, SessionKind};
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// `[warnings]` resolved: the cadence, and which kinds are warned about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningsConfig {
    pub cadence: Cadence,
    pub mfa: bool,
    pub sso: bool,
    pub login: bool,
}

impl Default for WarningsConfig {
    fn default() -> Self {
        Self {
            cadence: Cadence::default(),
            mfa: true,
            sso: true,
            login: true,
        }
    }
}

impl WarningsConfig {
    fn wants(&self, kind: &str) -> Option<SessionKind> {
        match kind {
            "mfa" if self.mfa => Some(SessionKind::Mfa),
            "sso" if self.sso => Some(SessionKind::Sso),
            "login" if self.login => Some(SessionKind::Login),
            _ => None,
        }
    }
}

/// What was said about one session: for which end, and the last window.
#[derive(Debug, Clone, Copy)]
struct Said {
    end: OffsetDateTime,
    window: Option<usize>,
}

/// The scheduler's memory, by (kind, name).
#[derive(Debug, Default)]
pub(crate) struct Warner {
    said: HashMap<(String, String), Said>,
}

impl Warner {
    /// Says every warning due at `now` among `rows`; returns the next
    /// deadline. A session that needs nothing from the user (an MFA session
    /// with `mfa_process`), has no known end, or has ended is skipped.
    pub(crate) fn step(
        &mut self,
        config: &WarningsConfig,
        rows: &[UserSessionRow],
        now: OffsetDateTime,
        notifier: &dyn crate::Notifier,
    ) -> Option<OffsetDateTime> {
        let mut next: Option<OffsetDateTime> = None;
        let mut seen = Vec::new();
        for r in rows {
            let Some(kind) = config.wants(&r.kind) else {
                continue;
            };
            if r.needed_then.starts_with("nothing") {
                continue;
            }
            let Some(end) = r.ends.as_deref().and_then(|e| parse_timestamp(e).ok()) else {
                continue;
            };
            let key = (r.kind.clone(), r.name.clone());
            seen.push(key.clone());
            let said = self.said.entry(key).or_insert(Said { end, window: None });
            if said.end != end {
                // A new session (a new code, a new sign-in): a new cadence.
                *said = Said { end, window: None };
            }
            if let Some(w) = config.cadence.due(end, now, said.window) {
                said.window = Some(w);
                if r.in_use {
                    let (title, mut body) = message(kind, &r.name, end - now, &r.command);
                    if r.ends_estimated {
                        // Identity Center does not tell clients the end.
                        body.push_str(" (The end is estimated: the sign-in plus the configured session length.)");
                    }
                    tracing::warn!(kind = kind.as_str(), session = %r.name, ends = %credd_core::format_expiration(end), "{body}");
                    notifier.notify(&title, &body);
                } else {
                    tracing::debug!(session = %r.name, "not in use: no warning for this window");
                }
            }
            if let Some(at) = config.cadence.next_at(end, now, said.window) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        self.said.retain(|k, _| seen.contains(k));
        next
    }
}

/// Runs the scheduler until `cancel`.
pub async fn run(
    broker: Broker,
    clock: Arc<dyn Clock>,
    config: WarningsConfig,
    cancel: CancellationToken,
) {
    let changed = broker.sessions_changed();
    let notifier = broker.sso().notifier();
    let mut warner = Warner::default();
    loop {
        // Registered before looking, so a change during the look is seen.
        let woken = changed.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let sso = broker.sso().status();
        let login = broker.login_status();
        let rows = broker.user_sessions(&sso, &login);
        let next = warner.step(&config, &rows, clock.now(), notifier.as_ref());
        let sleep = async {
            match next {
                Some(at) => clock.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = woken => {}
            _ = sleep => {}
        }
    }
}

#[cfg(test)]
#[path = "warnings_tests.rs"]
mod tests;
