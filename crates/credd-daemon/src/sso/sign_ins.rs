//! When each IAM Identity Center session was signed in, and when it is
//! expected to end: the part of `SsoSessions` that dates a sign-in (a token
//! in the cache that credd did not write, judged by
//! `credd_core::sso::is_new_sign_in`), keeps it in the daemon's state
//! (`sessions::SignInStore`, so a restart keeps it) and gives each
//! session's end, estimated (sign-in + session length) or real (a refused
//! refresh), to the session rows and the warnings.

use super::{Entry, EntryState, SsoSessions};
use credd_core::schedule::Park;
use credd_core::sso::{is_new_sign_in, session_length, SessionEnd, SignIn, SsoToken};
use std::collections::HashMap;
use time::OffsetDateTime;

impl SsoSessions {
    /// Each session's end, by cache key: estimated from its sign-in, or
    /// the time a refresh was refused.
    pub fn ends(&self) -> HashMap<String, SessionEnd> {
        self.entries()
            .iter()
            .filter_map(|e| {
                let st = e.slot.state();
                let end = match (st.value.ended_at, st.value.signed_in) {
                    (Some(at), _) => SessionEnd::Ended(at),
                    (None, Some(signed_in)) if st.value.token.is_some() => {
                        let (length, source) = session_length(&e.session, self.inner.length);
                        SessionEnd::Estimated {
                            at: credd_core::sso::estimated_end(signed_in, length),
                            signed_in,
                            length,
                            source,
                        }
                    }
                    _ => return None,
                };
                Some((e.session.cache_key().to_string(), end))
            })
            .collect()
    }

    /// A token credd did not write arrived for `entry`: dates its sign-in
    /// (now, when it is a new one) and keeps the record.
    pub(super) fn note_sign_in(
        &self,
        entry: &Entry,
        st: &EntryState,
        token: &SsoToken,
    ) -> OffsetDateTime {
        let now = self.now();
        let key = entry.session.cache_key();
        let recorded = self.inner.sign_ins.get(key);
        let (length, _) = session_length(&entry.session, self.inner.length);
        let previous = st.value.token.as_ref();
        let previous_ended = st.parked() == Some(Park::Login)
            || previous.is_some_and(|t| !t.usable(now) && !t.refreshable(now));
        let at = match recorded {
            Some(r) if !is_new_sign_in(token, previous, previous_ended, recorded, length, now) => {
                r.at
            }
            _ => {
                tracing::info!(session = %key, "a new IAM Identity Center sign-in: its end is estimated from now");
                now
            }
        };
        self.keep_sign_in(key, at, token);
        at
    }

    /// Writes the sign-in record (with the token's expiry, by which a
    /// restarted daemon knows the token) when it changed.
    pub(super) fn keep_sign_in(&self, key: &str, at: OffsetDateTime, token: &SsoToken) {
        let record = SignIn {
            at,
            token_expires: Some(token.expires_at),
        };
        if self.inner.sign_ins.get(key) != Some(record) {
            if let Err(e) = self.inner.sign_ins.record(key, record) {
                tracing::warn!(error = %e, "could not record the sign-in time; the estimate is kept in memory");
            }
        }
    }
}
