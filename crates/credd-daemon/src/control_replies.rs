//! The engine's answers as the control protocol's replies: status rows
//! field for field (the broker's and the SSO engine's own row types stay
//! theirs), a broker refusal as a [`ControlError`] with its kind and what it
//! needs from the person, and the envelope as the bytes' `Value`.

use crate::protocol::{ControlError, Envelope, ErrorKind};
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

/// The envelope as a `Value`, whose maps are sorted: the bytes the replies
/// have always had (see `crate::protocol`). The result is a `Value` already
/// and is moved in, not serialized a second time: with 10,000 profiles the
/// status answer's rows are about 7 MB as a `Value`, and a second copy of
/// them was the daemon's largest transient allocation, on a worker thread
/// whose heap glibc then kept (docs/benchmarks.md, "Fourth pass").
pub(crate) fn envelope_value(mut resp: Envelope) -> Value {
    let result = resp.result.take();
    let mut v = serde_json::to_value(&resp).expect("serializes");
    if let (Some(result), Value::Object(map)) = (result, &mut v) {
        map.insert("result".to_string(), result);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes are those of the whole envelope serialized through a `Value`,
    /// as they always were, for a success and for a refusal.
    #[test]
    fn the_envelope_with_its_result_moved_in_is_the_envelope_serialized_whole() {
        let make = |ok: bool| Envelope {
            ok,
            result: ok.then(|| serde_json::json!({"z": [1, {"b": null, "a": "x"}], "a": true})),
            error: (!ok).then(|| "no".to_string()),
            needs: None,
        };
        for ok in [true, false] {
            let whole = serde_json::to_vec(&serde_json::to_value(make(ok)).unwrap()).unwrap();
            let moved = serde_json::to_vec(&envelope_value(make(ok))).unwrap();
            assert_eq!(
                String::from_utf8(moved).unwrap(),
                String::from_utf8(whole).unwrap()
            );
        }
    }
}
