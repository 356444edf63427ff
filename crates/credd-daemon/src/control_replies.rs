//! The engine's answers as the control protocol's replies: status rows
//! field for field (the broker's and the SSO engine's own row types stay
//! theirs), and a broker refusal as a [`ControlError`] with its kind.

use crate::protocol::{ControlError, ErrorKind};
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
