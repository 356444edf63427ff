//! The engine's answers as the control protocol's replies: status rows
//! field for field (the broker's and the SSO engine's own row types stay
//! theirs), and a broker refusal as a [`ControlError`] with its kind and what it
//! needs from the person.

use crate::protocol::{ControlError, ErrorKind};
use serde_json::Value;

/// A typed reply as the `result` of the envelope.
pub(crate) fn reply<T: serde::Serialize>(t: T) -> Result<Value, ControlError> {
    Ok(serde_json::to_value(t).expect("a reply serializes"))
}

/// The kind of a broker's refusal, with its message as it always was and
/// what it needs from the person as the broker decided it
/// (`broker/needs.rs`).
pub(crate) fn serve_error(e: crate::broker::ServeError) -> ControlError {
    use crate::broker::ServeError;
    let needs = e.needs();
    let kind = match &e {
        ServeError::UnknownProfile(_) => ErrorKind::NotFound,
        _ if needs.is_some() => ErrorKind::NeedsUser,
        _ => ErrorKind::Unavailable,
    };
    ControlError {
        kind,
        message: e.to_string(),
        needs,
    }
}
