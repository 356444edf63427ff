//! The engine's answers as the control protocol's replies: status rows
//! field for field (the broker's and the SSO engine's own row types stay
//! theirs), and a broker refusal as a [`ControlError`] with its kind.

use crate::protocol::{ControlError, ErrorKind, ProfileRow, SessionRow};
use serde_json::Value;

/// A typed reply as the `result` of the envelope.
pub(crate) fn reply<T: serde::Serialize>(t: T) -> Result<Value, ControlError> {
    Ok(serde_json::to_value(t).expect("a reply serializes"))
}

/// The kind of a broker's refusal, with its message as it always was.
pub(crate) fn serve_error(e: crate::broker::ServeError) -> ControlError {
    use crate::broker::ServeError;
    let kind = match &e {
        ServeError::UnknownProfile(_) => ErrorKind::NotFound,
        ServeError::Upstream { error, .. }
            if matches!(
                error.kind,
                credd_core::UpstreamErrorKind::MfaRequired
                    | credd_core::UpstreamErrorKind::InvalidMfa
                    | credd_core::UpstreamErrorKind::LoginRequired
            ) =>
        {
            ErrorKind::NeedsUser
        }
        _ => ErrorKind::Unavailable,
    };
    ControlError::new(kind, e.to_string())
}

/// The broker's status row as the protocol's (the same fields).
pub(crate) fn profile_row(p: &crate::broker::ProfileStatus) -> ProfileRow {
    ProfileRow {
        name: p.name.clone(),
        state: p.state.clone(),
        chain: p.chain.clone(),
        region: p.region.clone(),
        expires: p.expires.clone(),
        expires_in_secs: p.expires_in_secs,
        next_refresh: p.next_refresh.clone(),
        last_error: p.last_error.clone(),
        notes: p.notes.clone(),
    }
}

/// The SSO engine's status row as the protocol's; the state as the engine
/// writes it.
pub(crate) fn session_row(s: &crate::sso::SessionStatus) -> SessionRow {
    SessionRow {
        session: s.session.clone(),
        start_url: s.start_url.clone(),
        region: s.region.clone(),
        state: serde_json::to_value(&s.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        token_expires: s.token_expires.clone(),
        next_refresh: s.next_refresh.clone(),
        refreshable: s.refreshable,
        last_error: s.last_error.clone(),
        login_command: s.login_command.clone(),
    }
}
