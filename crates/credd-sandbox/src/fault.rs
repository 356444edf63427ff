//! Faults a test injects into named operations (an error, a throttle, or
//! added latency, a given number of times) and their JSON form for the
//! HTTP control API.

use serde::Deserialize;
use std::time::Duration;

/// What happens to a request a fault matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status and error code (the shape name for SSO OIDC
    /// and the portal, the `Code` for STS) in the service's error format.
    Error {
        status: u16,
        code: String,
        message: String,
    },
    /// Answer with the service's throttling error: STS `Throttling` (400),
    /// portal `TooManyRequestsException` (429), OIDC `SlowDownException` (400).
    Throttle,
    /// Wait this long, then answer normally.
    Latency(Duration),
}

/// A fault on one operation, such as `GetRoleCredentials`, or on one grant
/// of CreateToken, such as `CreateToken:refresh_token`; `*` matches every
/// operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub operation: String,
    pub kind: FaultKind,
    /// How many requests it applies to; `None` means until cleared.
    pub times: Option<u32>,
}

impl Fault {
    /// Whether this fault applies to a request for `operation`, whose
    /// CreateToken grant, if any, is `detail` (`CreateToken:refresh_token`).
    pub(crate) fn matches(&self, operation: &str, detail: Option<&str>) -> bool {
        self.operation == "*"
            || self.operation == operation
            || Some(self.operation.as_str()) == detail
    }
}

/// The JSON body of `POST /_sandbox/fault`, for example
/// `{"operation":"GetRoleCredentials","error":{"status":500,"code":"InternalServerException","message":"boom"},"times":1}`,
/// `{"operation":"AssumeRole","throttle":true}` or
/// `{"operation":"CreateToken","latency_ms":1500}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub operation: String,
    #[serde(default)]
    pub error: Option<ErrorSpec>,
    #[serde(default)]
    pub throttle: bool,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    #[serde(default)]
    pub times: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorSpec {
    pub status: u16,
    pub code: String,
    #[serde(default)]
    pub message: String,
}

impl TryFrom<FaultSpec> for Fault {
    type Error = String;

    fn try_from(spec: FaultSpec) -> Result<Self, String> {
        let kind = match (spec.error, spec.throttle, spec.latency_ms) {
            (Some(e), false, None) => FaultKind::Error {
                status: e.status,
                code: e.code,
                message: e.message,
            },
            (None, true, None) => FaultKind::Throttle,
            (None, false, Some(ms)) => FaultKind::Latency(Duration::from_millis(ms)),
            _ => return Err("give exactly one of error, throttle, latency_ms".to_owned()),
        };
        Ok(Fault {
            operation: spec.operation,
            kind,
            times: spec.times,
        })
    }
}
