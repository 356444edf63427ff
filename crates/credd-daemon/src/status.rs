//! Status rows, in one place: the `profiles` and `sso_sessions` arrays of the
//! control socket's `status` reply (read by `credd status` and `credd
//! profiles`), rendered from the refresh engine's slot state
//! ([`SlotView`]). The JSON of both row types is a wire format: field names,
//! order and the state strings must not change.

use crate::broker::{upstream_message, Cached};
use crate::refresh::SlotView;
use credd_core::profile::{ConfigError, Plan};
use credd_core::schedule::{disposition, Disposition, Park};
use credd_core::sso::{SsoSession, SsoToken};
use credd_core::{duration, format_expiration};
use std::sync::Arc;
use time::OffsetDateTime;

pub(crate) use crate::protocol::{ProfileRow, SessionRow, SessionState};

/// The row of a profile whose chain cannot be resolved.
pub(crate) fn misconfigured_row(name: &str, e: &ConfigError) -> ProfileRow {
    ProfileRow {
        name: name.to_string(),
        state: "misconfigured".into(),
        chain: None,
        region: None,
        expires: None,
        expires_in_secs: None,
        next_refresh: None,
        last_error: Some(e.kind.to_string()),
        notes: vec![],
    }
}

/// The row of a served profile: `chain` holds the slots of its nodes, base
/// first, `serving` the slot of the node that serves it and `cached` that
/// slot's credential (`servable`: it may be served at `now`).
pub(crate) fn profile_row(
    name: &str,
    plan: &Plan,
    chain: &[SlotView],
    serving: &SlotView,
    cached: Option<&Arc<Cached>>,
    servable: bool,
    now: OffsetDateTime,
) -> ProfileRow {
    // The first error along the chain, base first, explains best.
    let chain_error = chain.iter().find_map(|v| v.last_error.clone());
    // What the error means is the schedule's: parked until the user acts.
    let waits_for = |p: Park| {
        chain_error
            .as_ref()
            .is_some_and(|e| disposition(e.kind) == Disposition::Park(p))
    };
    let state = if serving.refreshing {
        "refreshing"
    } else if waits_for(Park::MfaCode) && !servable {
        "needs MFA"
    } else if waits_for(Park::Login) && !servable {
        "login required"
    } else if chain_error.is_some() && serving.failures > 0 {
        "failing"
    } else if servable {
        "fresh"
    } else if cached.is_some() {
        "expired"
    } else {
        "idle"
    };
    let mut notes = plan.notes();
    if let Some(c) = cached {
        let left = c.creds.expiration() - c.issued;
        if let Some(r) = plan.roles.last() {
            if let Some(asked) = r.duration_secs.or(r.capped_from) {
                if left.whole_seconds() + 60 < asked as i64 && r.capped_from.is_none() {
                    notes.push(format!(
                        "asked for {} but AWS granted {}",
                        duration::fmt_secs(asked),
                        duration::fmt_secs(left.whole_seconds().max(0) as u64)
                    ));
                }
            }
        }
    }
    ProfileRow {
        name: name.to_string(),
        state: state.into(),
        chain: Some(plan.describe_chain()),
        region: plan.region.clone(),
        expires: cached.map(|c| format_expiration(c.creds.expiration())),
        expires_in_secs: cached.map(|c| (c.creds.expiration() - now).whole_seconds()),
        next_refresh: serving.next_refresh.map(format_expiration),
        last_error: chain_error.map(|e| upstream_message(name, &e, None)),
        notes,
    }
}

/// The row of an IAM Identity Center session: `token` as last read,
/// `corrupt` the message when its cache file cannot be used, `due` when the
/// loop will refresh it.
pub(crate) fn session_row(
    session: &SsoSession,
    login_command: &str,
    token: Option<&SsoToken>,
    corrupt: Option<&str>,
    slot: &SlotView,
    due: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> SessionRow {
    let ended = slot.parked == Some(Park::Login);
    let state = if corrupt.is_some() {
        SessionState::CacheCorrupt
    } else {
        match token {
            None => SessionState::LoggedOut,
            Some(_) if ended => SessionState::Ended,
            Some(t) if t.usable(now) || t.refreshable(now) => SessionState::Active,
            Some(_) => SessionState::Ended,
        }
    };
    SessionRow {
        session: session.cache_key().to_string(),
        start_url: session.start_url.clone(),
        region: session.region.clone(),
        state,
        token_expires: token.map(|t| format_expiration(t.expires_at)),
        next_refresh: due.map(format_expiration),
        refreshable: token.is_some_and(|t| t.refreshable(now)),
        last_error: slot
            .last_error
            .as_ref()
            .map(|e| e.message.clone())
            .or_else(|| corrupt.map(str::to_string)),
        login_command: login_command.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refresh::SlotState;
    use credd_core::schedule::Next;
    use credd_core::sso::{ClientRegistration, TokenGrant};
    use credd_core::{SecretString, UpstreamError, UpstreamErrorKind};
    use time::macros::datetime;
    use time::Duration;

    const NOW: OffsetDateTime = datetime!(2026-11-23 09:00 UTC);

    fn session() -> SsoSession {
        SsoSession {
            name: Some("work".into()),
            start_url: "https://d-1234567890.awsapps.com/start".into(),
            region: "eu-west-1".into(),
            scopes: None,
            session_length: None,
        }
    }

    fn token() -> SsoToken {
        let reg = ClientRegistration {
            client_id: "c".into(),
            client_secret: SecretString::new("s"),
            expires_at: NOW + Duration::days(90),
            scopes: None,
            grant_types: None,
        };
        let grant = TokenGrant {
            access_token: SecretString::new("a"),
            expires_in_secs: 3600,
            refresh_token: Some(SecretString::new("r")),
        };
        SsoToken::from_grant(&session(), grant, Some(&reg), NOW)
    }

    /// The control socket's `status` reply carries these rows: their JSON,
    /// byte for byte, is a wire format the CLI reads.
    #[test]
    fn rows_serialize_as_the_status_reply_always_did() {
        let error = credd_core::profile::ConfigError {
            profile: "bad".into(),
            kind: credd_core::profile::ConfigErrorKind::Unknown,
        };
        assert_eq!(
            serde_json::to_string(&misconfigured_row("bad", &error)).unwrap(),
            r#"{"name":"bad","state":"misconfigured","chain":null,"region":null,"expires":null,"expires_in_secs":null,"next_refresh":null,"last_error":"no such profile in the AWS config or credentials file","notes":[]}"#
        );

        let mut st = SlotState::new(());
        st.succeeded(Next::At(NOW + Duration::minutes(45)));
        let row = session_row(
            &session(),
            "credd login work",
            Some(&token()),
            None,
            &st.view(),
            st.deadline(),
            NOW,
        );
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            r#"{"session":"work","start_url":"https://d-1234567890.awsapps.com/start","region":"eu-west-1","state":"active","token_expires":"2026-11-23T10:00:00Z","next_refresh":"2026-11-23T09:45:00Z","refreshable":true,"last_error":null,"login_command":"credd login work"}"#
        );
    }

    #[test]
    fn a_session_parked_on_a_login_is_ended_and_says_why() {
        let mut st = SlotState::new(());
        let refused = UpstreamError::new(UpstreamErrorKind::LoginRequired, "refresh refused");
        st.failed(
            &credd_core::schedule::Policy::default(),
            credd_core::schedule::Rule::Token,
            NOW,
            &refused,
            None,
        );
        let row = session_row(&session(), "x", Some(&token()), None, &st.view(), None, NOW);
        assert_eq!(row.state, SessionState::Ended);
        assert_eq!(row.last_error.as_deref(), Some("refresh refused"));
        let row = session_row(
            &session(),
            "x",
            None,
            Some("corrupt"),
            &st.view(),
            None,
            NOW,
        );
        assert_eq!(row.state, SessionState::CacheCorrupt);
        let row = session_row(
            &session(),
            "x",
            None,
            None,
            &SlotState::new(()).view(),
            None,
            NOW,
        );
        assert_eq!(row.state, SessionState::LoggedOut);
        assert_eq!(serde_json::to_value(&row).unwrap()["state"], "logged_out");
    }
}
