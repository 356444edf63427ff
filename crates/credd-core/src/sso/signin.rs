//! When an IAM Identity Center session ends, as far as a client can know:
//! pure policy, with the times given.
//!
//! Identity Center never tells a client when its session ends: the cache
//! holds the access token's `expiresAt` and the client registration's
//! `registrationExpiresAt`, and the refresh token simply stops working when
//! the administrator's session length (1 h to 90 days, 8 h by default) has
//! passed since the sign-in. So the end is *estimated*: the sign-in time
//! credd saw, plus a length the user sets (`credd_session_length` in the
//! `[sso-session]` section, else `[sso] session_length` in `credd.toml`).
//! A refused refresh is the real end, whatever the estimate said; that is
//! the daemon's (`credd-daemon/src/sso.rs`).
//!
//! Which tokens count as a new sign-in is [`is_new_sign_in`]: the daemon
//! calls it for every token in the cache that it did not write itself.

use super::SsoToken;
use time::{Duration, OffsetDateTime};

/// The `[sso-session NAME]` key that says how long its sign-ins last.
pub const KEY_SESSION_LENGTH: &str = "credd_session_length";

/// Identity Center's default session length, and its bounds (the
/// administrator picks 1 hour to 90 days; the client is never told).
pub const DEFAULT_SESSION_LENGTH: Duration = Duration::hours(8);
const MIN_SESSION_LENGTH: Duration = Duration::hours(1);
const MAX_SESSION_LENGTH: Duration = Duration::days(90);

/// Parses a session length (`8h`, `12h`, `7d`) within Identity Center's
/// bounds, so a typo is refused where it is written rather than giving a
/// warning at a nonsense time.
pub fn parse_session_length(raw: &str) -> Result<Duration, String> {
    let d = crate::duration::parse(raw.trim()).map_err(|e| e.to_string())?;
    let d = Duration::seconds(d.as_secs() as i64);
    if !(MIN_SESSION_LENGTH..=MAX_SESSION_LENGTH).contains(&d) {
        return Err(format!(
            "{raw}: Identity Center sessions last 1h to 90d (the administrator's setting)"
        ));
    }
    Ok(d)
}

/// Where a session's length comes from, for `credd status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthSource {
    /// `credd_session_length` in the session's `[sso-session]` section.
    SsoSession,
    /// `[sso] session_length` in `credd.toml` (8 h unless set: Identity
    /// Center's default).
    CreddToml,
}

impl LengthSource {
    /// As `credd status` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            LengthSource::SsoSession => "credd_session_length in ~/.aws/config",
            LengthSource::CreddToml => "[sso] session_length in credd.toml",
        }
    }
}

/// A session's length: its own setting, else `credd.toml`'s.
pub fn session_length(
    session: &super::SsoSession,
    configured: Duration,
) -> (Duration, LengthSource) {
    match session.session_length {
        Some(d) => (d, LengthSource::SsoSession),
        None => (configured, LengthSource::CreddToml),
    }
}

/// When a session signed in at `signed_in` is expected to end.
pub fn estimated_end(signed_in: OffsetDateTime, length: Duration) -> OffsetDateTime {
    signed_in + length
}

/// A recorded sign-in: when, and the `expiresAt` of the last access token
/// credd saw from it (how a restarted daemon recognises the same token).
/// Never a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignIn {
    pub at: OffsetDateTime,
    pub token_expires: Option<OffsetDateTime>,
}

/// A session's end as `credd status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Sign-in plus the configured length: a guess, the administrator's
    /// setting being unknown to clients.
    Estimated {
        at: OffsetDateTime,
        signed_in: OffsetDateTime,
        length: Duration,
        source: LengthSource,
    },
    /// A refresh was refused at this time: the session has ended.
    Ended(OffsetDateTime),
}

/// Whether `token`, found in the cache and not written by credd, starts a
/// new session (so its sign-in time is `now`):
///
/// - a token whose expiry is the one recorded is the recorded session's
///   (written by `credd login`, or seen before a restart);
/// - with nothing recorded, it is a sign-in (dated when credd first saw it);
/// - while the daemon holds the session (`previous`): a sign-in when the
///   previous one had ended (`previous_ended`) or the refresh token is
///   another one (a refresh by another tool that rotates the refresh token
///   counts as a sign-in too: the estimate then runs late, and the refused
///   refresh still tells the real end); the same refresh token is another
///   tool's refresh;
/// - after a restart (no `previous`): another tool's refresh while the
///   recorded session's estimate still runs, a sign-in once it has passed.
pub fn is_new_sign_in(
    token: &SsoToken,
    previous: Option<&SsoToken>,
    previous_ended: bool,
    recorded: Option<SignIn>,
    length: Duration,
    now: OffsetDateTime,
) -> bool {
    let Some(rec) = recorded else {
        return true;
    };
    if rec.token_expires == Some(token.expires_at) {
        return false;
    }
    match previous {
        Some(prev) => {
            previous_ended
                || match (&prev.refresh_token, &token.refresh_token) {
                    (Some(a), Some(b)) => a != b,
                    _ => true,
                }
        }
        None => now >= estimated_end(rec.at, length),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SsoSession, SsoToken, TokenGrant};
    use super::*;
    use crate::SecretString;
    use time::macros::datetime;

    const NINE: OffsetDateTime = datetime!(2026-11-23 09:00 UTC);

    fn work() -> SsoSession {
        SsoSession {
            name: Some("work".into()),
            start_url: "https://d-1234567890.awsapps.com/start".into(),
            region: "eu-west-1".into(),
            scopes: None,
            session_length: None,
        }
    }

    fn token(access: &str, refresh: &str, at: OffsetDateTime) -> SsoToken {
        let grant = TokenGrant {
            access_token: SecretString::new(access),
            expires_in_secs: 3600,
            refresh_token: Some(SecretString::new(refresh)),
        };
        SsoToken::from_grant(&work(), grant, None, at)
    }

    #[test]
    fn a_session_length_comes_from_the_session_else_credd_toml() {
        let mut s = work();
        assert_eq!(
            session_length(&s, DEFAULT_SESSION_LENGTH),
            (Duration::hours(8), LengthSource::CreddToml)
        );
        s.session_length = Some(Duration::hours(12));
        assert_eq!(
            session_length(&s, Duration::hours(10)),
            (Duration::hours(12), LengthSource::SsoSession)
        );
        assert_eq!(
            estimated_end(NINE, Duration::hours(8)),
            datetime!(2026-11-23 17:00 UTC)
        );
    }

    #[test]
    fn credd_session_length_is_read_from_the_sso_session_section_within_bounds() {
        let raw = |len: &str| {
            let mut props = std::collections::BTreeMap::new();
            props.insert("sso_start_url".to_string(), work().start_url);
            props.insert("sso_region".to_string(), "eu-west-1".to_string());
            props.insert(KEY_SESSION_LENGTH.to_string(), len.to_string());
            let mut raw = crate::profile::RawProfiles::new();
            raw.insert(crate::profile::sso_session_key("work"), props);
            crate::profile::sso_sessions(&raw).remove("work").unwrap()
        };
        assert_eq!(
            raw("12h").unwrap().session_length,
            Some(Duration::hours(12))
        );
        assert_eq!(raw("90d").unwrap().session_length, Some(Duration::days(90)));
        assert_eq!(raw(" ").unwrap().session_length, None, "empty: unset");
        for bad in ["30m", "91d", "soon"] {
            let e = raw(bad).unwrap_err().to_string();
            assert!(e.contains(KEY_SESSION_LENGTH), "{bad}: {e}");
        }
    }

    #[test]
    fn which_foreign_tokens_are_new_sign_ins() {
        let eight = Duration::hours(8);
        let t0 = token("a0", "r0", NINE);
        let rec = SignIn {
            at: NINE,
            token_expires: Some(t0.expires_at),
        };
        let later = NINE + Duration::hours(2);
        // Nothing recorded: a sign-in.
        assert!(is_new_sign_in(&t0, None, false, None, eight, NINE));
        // The recorded token (credd login wrote the record): not again.
        assert!(!is_new_sign_in(&t0, None, false, Some(rec), eight, NINE));
        // Another tool refreshed with the same refresh token: not a sign-in.
        let refreshed = token("a1", "r0", later);
        assert!(!is_new_sign_in(
            &refreshed,
            Some(&t0),
            false,
            Some(rec),
            eight,
            later
        ));
        // A new refresh token, or after the previous one ended: a sign-in.
        let signed = token("a2", "r2", later);
        assert!(is_new_sign_in(
            &signed,
            Some(&t0),
            false,
            Some(rec),
            eight,
            later
        ));
        assert!(is_new_sign_in(
            &refreshed,
            Some(&t0),
            true,
            Some(rec),
            eight,
            later
        ));
        // After a restart: within the recorded estimate, a refresh; past it,
        // a sign-in.
        assert!(!is_new_sign_in(
            &signed,
            None,
            false,
            Some(rec),
            eight,
            later
        ));
        let past = NINE + Duration::hours(9);
        assert!(is_new_sign_in(&signed, None, false, Some(rec), eight, past));
    }
}
