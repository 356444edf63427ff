//! The HTTP control API under `/_sandbox/`, so tests in other processes
//! (Python, shell) can drive a sandbox the way Rust tests drive
//! [`crate::SandboxHandle`]: counters, session end, a seeded `aws login`, a
//! login user's password change, approvals, encoded authorization messages, faults, configuration and the clock.

use crate::config::ConfigPatch;
use crate::error::ApiError;
use crate::fault::{Fault, FaultSpec};
use crate::http::{json_response, Req, Response};
use crate::state::{ActiveFault, Shared};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

fn body<T: for<'de> Deserialize<'de>>(req: &Req) -> Result<T, ApiError> {
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::plain(400, format!("invalid JSON: {e}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceClock {
    seconds: u64,
}

pub fn handle(shared: &Shared, req: &Req) -> Result<Response, ApiError> {
    let route = req.path.trim_start_matches("/_sandbox/");
    let ok = |value: serde_json::Value| Ok(json_response(StatusCode::OK, &value));
    match (&req.method, route) {
        (&Method::GET, "counts") => ok(json!(shared.lock().counts)),
        (&Method::DELETE, "counts") => {
            shared.lock().counts.clear();
            ok(json!({}))
        }
        (&Method::POST, "end-session") => ok(json!({ "ended": shared.lock().end_sessions() })),
        (&Method::POST, "seed-login") => ok(crate::signin::seed_login(shared)),
        (&Method::POST, "change-login-credentials") => ok(json!({
            "changed": shared.lock().change_login_credentials()
        })),
        (&Method::POST, "encode-message") => {
            let message: serde_json::Value = body(req)?;
            let key = shared.lock().message_key;
            ok(json!({ "message": crate::sts::encode_message(&key, &message) }))
        }
        (&Method::POST, "approve") => ok(json!({ "approved": shared.lock().decide_pending(true) })),
        (&Method::POST, "deny") => ok(json!({ "denied": shared.lock().decide_pending(false) })),
        (&Method::GET, "pending") => ok(json!({ "pending": shared.lock().pending_count() })),
        (&Method::POST, "fault") => {
            let fault =
                Fault::try_from(body::<FaultSpec>(req)?).map_err(|e| ApiError::plain(400, e))?;
            let remaining = fault.times;
            shared.lock().faults.push(ActiveFault { fault, remaining });
            ok(json!({}))
        }
        (&Method::DELETE, "faults") => {
            shared.lock().faults.clear();
            ok(json!({}))
        }
        (&Method::POST, "config") => {
            let patch: ConfigPatch = body(req)?;
            shared.lock().config.apply(patch);
            ok(json!({}))
        }
        (&Method::POST, "advance-clock") => {
            let advance: AdvanceClock = body(req)?;
            let mut state = shared.lock();
            state.clock_offset += Duration::from_secs(advance.seconds);
            ok(json!({ "now": state.now().unix_timestamp() }))
        }
        _ => Err(ApiError::plain(
            404,
            format!("no control endpoint {} /_sandbox/{route}", req.method),
        )),
    }
}
