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

/// The envelope's line (without its newline) with the bytes
/// `to_vec(&to_value(env))` gives (every object's keys sorted, as replies
/// have always been sent: see [`crate::protocol`]), without copying the
/// result into a second `Value` first: the status answer with 10,000
/// profiles is 2.7 MB on the wire and about 7 MB as a `Value`, and that
/// copy was a quarter of its cost and its largest transient allocation
/// (a status peaked at 33 MB: docs/benchmarks.md, "Fourth pass").
pub(crate) fn envelope_bytes(env: &crate::protocol::Envelope) -> Vec<u8> {
    /// The envelope's fields in sorted order; `result` is a `Value`
    /// already (sorted), `needs` becomes one (small).
    #[derive(serde::Serialize)]
    struct Sorted<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        needs: Option<Value>,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<&'a Value>,
    }
    serde_json::to_vec(&Sorted {
        error: env.error.as_ref(),
        needs: env
            .needs
            .as_ref()
            .map(|n| serde_json::to_value(n).expect("needs serialize")),
        ok: env.ok,
        result: env.result.as_ref(),
    })
    .expect("an envelope serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Envelope, Needs, NeedsKind};

    #[test]
    fn an_envelopes_bytes_are_those_of_its_value() {
        let result =
            serde_json::json!({"zeta": [1, {"b": null, "a": "x"}], "alpha": true, "mid": 2.5});
        let envelopes = [
            Envelope {
                ok: true,
                result: Some(result),
                error: None,
                needs: None,
            },
            Envelope {
                ok: false,
                result: None,
                error: Some("profile 'dev' needs an MFA code \"now\"".into()),
                needs: Some(Needs {
                    kind: NeedsKind::Mfa,
                    session: "dev".into(),
                    command: "credd mfa dev".into(),
                }),
            },
            Envelope {
                ok: false,
                result: None,
                error: Some("bad request: x".into()),
                needs: None,
            },
        ];
        for env in &envelopes {
            let old = serde_json::to_vec(&serde_json::to_value(env).unwrap()).unwrap();
            assert_eq!(
                String::from_utf8(envelope_bytes(env)).unwrap(),
                String::from_utf8(old).unwrap()
            );
        }
    }
}
