//! Turning AWS SDK failures into [`UpstreamError`]s: which kind (so the
//! refresher can tell retry from give-up) and a short message built only
//! from parts that cannot carry a secret.
//!
//! The SDK error itself is never formatted with `Debug` or
//! `DisplayErrorContext` (which appends `Debug`): either may reach request or
//! response data, and a successful STS response body is full of secrets.

use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use credd_core::{UpstreamError, UpstreamErrorKind};
use std::error::Error;
use std::fmt;

/// The STS API a failure came from, named in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    GetSessionToken,
    AssumeRole,
    AssumeRoleWithWebIdentity,
    AssumeRoleWithSaml,
    GetCallerIdentity,
    GetFederationToken,
    DecodeAuthorizationMessage,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::GetSessionToken => "GetSessionToken",
            Self::AssumeRole => "AssumeRole",
            Self::AssumeRoleWithWebIdentity => "AssumeRoleWithWebIdentity",
            Self::AssumeRoleWithSaml => "AssumeRoleWithSAML",
            Self::GetCallerIdentity => "GetCallerIdentity",
            Self::GetFederationToken => "GetFederationToken",
            Self::DecodeAuthorizationMessage => "DecodeAuthorizationMessage",
        })
    }
}

/// What is known about a failure, already reduced to secret-free parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure<'a> {
    /// The request could not be built (bad endpoint URL, bad parameter).
    Construction(String),
    /// No complete answer within the operation timeout.
    Timeout,
    /// No HTTP response: refused, reset, DNS, TLS.
    Dispatch(String),
    /// A response that is not a readable STS answer (a proxy's HTML page...).
    BadResponse { status: u16 },
    /// An STS error response.
    Service {
        status: Option<u16>,
        code: Option<&'a str>,
        message: Option<&'a str>,
    },
}

/// Reduces an SDK error to a [`Failure`] and classifies it.
pub(crate) fn from_sdk<E>(op: Operation, err: &SdkError<E, HttpResponse>) -> UpstreamError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    classify(op, &reduce(err))
}

/// Reduces an SDK error (of any AWS service: the error type is shared) to
/// its secret-free parts.
pub(crate) fn reduce<E>(err: &SdkError<E, HttpResponse>) -> Failure<'_>
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match err {
        SdkError::ConstructionFailure(_) => Failure::Construction(source_chain(err)),
        SdkError::TimeoutError(_) => Failure::Timeout,
        SdkError::DispatchFailure(d) => match d.as_connector_error() {
            Some(c) if c.is_timeout() => Failure::Timeout,
            Some(c) => Failure::Dispatch(chain_of(c)),
            None => Failure::Dispatch(source_chain(err)),
        },
        SdkError::ResponseError(_) => Failure::BadResponse {
            status: status.unwrap_or_default(),
        },
        // A success status with a body that is not the expected answer (a
        // captive portal, a mistyped endpoint) comes back as an unhandled
        // service error without a code.
        _ if err.code().is_none() && status.is_some_and(|s| s < 400) => Failure::BadResponse {
            status: status.unwrap_or_default(),
        },
        _ => Failure::Service {
            status,
            code: err.code(),
            message: err.message(),
        },
    }
}

pub(crate) fn classify(op: Operation, failure: &Failure<'_>) -> UpstreamError {
    use UpstreamErrorKind::*;
    match failure {
        Failure::Construction(detail) => UpstreamError::new(
            Config,
            format!("STS {op}: could not build the request: {detail}"),
        ),
        Failure::Timeout => UpstreamError::new(Unreachable, format!("STS {op}: timed out")),
        Failure::Dispatch(detail) => UpstreamError::new(
            Unreachable,
            format!("STS {op}: could not reach the endpoint: {detail}"),
        ),
        Failure::BadResponse { status } => UpstreamError::new(
            Unreachable,
            format!(
                "STS {op}: the answer (HTTP {status}) is not an STS response; is the endpoint URL right?"
            ),
        ),
        Failure::Service {
            status,
            code,
            message,
        } => {
            let kind = service_kind(op, *code, message.unwrap_or(""), *status);
            let message = short(message.unwrap_or("no message"), 300);
            match code {
                Some(code) => {
                    UpstreamError::new(kind, format!("STS {op}: {code}: {message}")).with_code(*code)
                }
                None => UpstreamError::new(
                    kind,
                    format!(
                        "STS {op}: HTTP {}: {message}",
                        status.map_or_else(|| "error".to_string(), |s| s.to_string())
                    ),
                ),
            }
        }
    }
}

fn service_kind(
    op: Operation,
    code: Option<&str>,
    message: &str,
    status: Option<u16>,
) -> UpstreamErrorKind {
    use UpstreamErrorKind::*;
    let code = code.unwrap_or("");
    let denied = matches!(code, "AccessDenied" | "AccessDeniedException");
    if message.contains("invalid MFA one time pass code")
        || (denied && message.contains("MultiFactorAuthentication"))
    {
        return InvalidMfa;
    }
    match code {
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "PriorRequestNotComplete" => Throttled,
        // For web identity these describe the token file's content, which
        // whatever writes the file (a Kubernetes projection, a login helper)
        // will replace: a local-source failure, retried. For SAML they
        // describe the assertion `credd_saml_process` printed, which its next
        // run replaces.
        "ExpiredTokenException" | "InvalidIdentityToken" | "IDPRejectedClaim"
            if matches!(
                op,
                Operation::AssumeRoleWithWebIdentity | Operation::AssumeRoleWithSaml
            ) =>
        {
            Source
        }
        "AccessDenied"
        | "AccessDeniedException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "UnrecognizedClientException"
        | "InvalidAccessKeyId" => Denied,
        "InternalFailure"
        | "InternalError"
        | "ServiceUnavailable"
        | "IDPCommunicationError"
        | "RequestTimeout"
        | "RequestTimeoutException" => Unreachable,
        "ValidationError"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "MissingParameter"
        | "MalformedPolicyDocument"
        | "PackedPolicyTooLarge"
        | "RegionDisabledException" => Config,
        _ => match status {
            Some(429) => Throttled,
            Some(s) if s >= 500 => Unreachable,
            Some(401 | 403) => Denied,
            Some(_) => Config,
            // An error without a response was never answered.
            None => Unreachable,
        },
    }
}

/// `Display` of an error and its sources, for errors that hold no request
/// or response data (connection and construction errors).
fn chain_of(err: &dyn Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        parts.push(e.to_string());
        next = e.source();
    }
    short(&parts.join(": "), 200)
}

/// The sources of an SDK error, without its own generic top line.
fn source_chain<E: Error + 'static>(err: &E) -> String {
    err.source().map_or_else(|| err.to_string(), chain_of)
}

/// One line of at most `max` characters, for text that ends up in a status
/// line or a log.
pub(crate) fn short(s: &str, max: usize) -> String {
    let line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        line
    } else {
        let mut cut: String = line.chars().take(max).collect();
        cut.push_str("...");
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use UpstreamErrorKind::*;

    fn service(op: Operation, status: u16, code: &str, message: &str) -> UpstreamError {
        classify(
            op,
            &Failure::Service {
                status: Some(status),
                code: Some(code),
                message: Some(message),
            },
        )
    }

    #[test]
    fn service_errors_are_classified_by_code() {
        let op = Operation::AssumeRole;
        let cases = [
            (400, "Throttling", "Rate exceeded", Throttled),
            (400, "ThrottlingException", "Rate exceeded", Throttled),
            (503, "RequestLimitExceeded", "slow down", Throttled),
            (
                403,
                "AccessDenied",
                "User: arn:aws:iam::1:user/me is not authorized to perform: sts:AssumeRole",
                Denied,
            ),
            (
                403,
                "AccessDenied",
                "MultiFactorAuthentication failed with invalid MFA one time pass code. ",
                InvalidMfa,
            ),
            (
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
                Denied,
            ),
            (
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match",
                Denied,
            ),
            (
                400,
                "ExpiredToken",
                "The security token included in the request is expired",
                Denied,
            ),
            (
                400,
                "ValidationError",
                "1 validation error detected: Value 10 at 'durationSeconds'",
                Config,
            ),
            (500, "InternalFailure", "oops", Unreachable),
            (502, "SomethingNew", "bad gateway", Unreachable),
            (429, "SomethingNew", "slow", Throttled),
            (403, "SomethingNew", "no", Denied),
            (400, "SomethingNew", "no", Config),
        ];
        for (status, code, message, kind) in cases {
            let e = service(op, status, code, message);
            assert_eq!(e.kind, kind, "{code}: {message}");
            assert_eq!(e.code.as_deref(), Some(code));
            assert!(
                e.message.starts_with(&format!("STS AssumeRole: {code}: ")),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn invalid_mfa_is_recognised_in_get_session_token() {
        let e = service(
            Operation::GetSessionToken,
            403,
            "AccessDenied",
            "MultiFactorAuthentication failed with invalid MFA one time pass code.",
        );
        assert_eq!(e.kind, InvalidMfa);
        assert_eq!(
            e.message,
            "STS GetSessionToken: AccessDenied: MultiFactorAuthentication failed with invalid MFA one time pass code."
        );
    }

    #[test]
    fn web_identity_token_problems_are_the_source() {
        let op = Operation::AssumeRoleWithWebIdentity;
        assert_eq!(
            service(op, 400, "ExpiredTokenException", "Token expired").kind,
            Source
        );
        assert_eq!(service(op, 400, "InvalidIdentityToken", "bad").kind, Source);
        assert_eq!(
            service(op, 400, "IDPCommunicationError", "idp down").kind,
            Unreachable
        );
        assert_eq!(
            service(Operation::AssumeRole, 400, "ExpiredTokenException", "x").kind,
            Denied
        );
    }

    #[test]
    fn transport_failures_are_unreachable_and_retryable() {
        let op = Operation::GetCallerIdentity;
        let e = classify(op, &Failure::Timeout);
        assert_eq!(
            (e.kind, e.message.as_str()),
            (Unreachable, "STS GetCallerIdentity: timed out")
        );
        let e = classify(
            op,
            &Failure::Dispatch("io error: Connection refused (os error 111)".into()),
        );
        assert_eq!(e.kind, Unreachable);
        assert!(e.kind.retryable());
        assert!(e.message.contains("Connection refused"));
        let e = classify(op, &Failure::BadResponse { status: 200 });
        assert_eq!(e.kind, Unreachable);
        assert!(e.message.contains("HTTP 200"));
        assert_eq!(
            classify(op, &Failure::Construction("bad url".into())).kind,
            Config
        );
    }

    #[test]
    fn errors_without_code_fall_back_to_status() {
        let e = classify(
            Operation::AssumeRole,
            &Failure::Service {
                status: Some(503),
                code: None,
                message: None,
            },
        );
        assert_eq!(e.kind, Unreachable);
        assert_eq!(e.code, None);
        assert_eq!(e.message, "STS AssumeRole: HTTP 503: no message");
    }

    #[test]
    fn long_messages_are_cut_to_one_line() {
        let long = format!("first\nsecond {}", "x".repeat(400));
        let s = short(&long, 20);
        assert_eq!(s, "first second xxxxxxx...");
    }
}
