//! Every error the sandbox answers with, and how each service renders it on
//! the wire: restJson1 with `x-amzn-ErrorType` for SSO OIDC, the portal and
//! AWS Sign-In, awsQuery `ErrorResponse` XML for STS, plain JSON for the
//! control API and the browser pages.

use crate::http::{json_response, xml_response, Response};
use http::StatusCode;

/// The SSO OIDC exceptions the sandbox raises, named as in the botocore
/// `sso-oidc` model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OidcError {
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
    AccessDenied,
    InvalidGrant,
    InvalidClient,
    InvalidRequest,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidRedirectUri,
    InvalidClientMetadata,
}

impl OidcError {
    /// The shape name clients read from `x-amzn-ErrorType`.
    pub fn shape(self) -> &'static str {
        match self {
            OidcError::AuthorizationPending => "AuthorizationPendingException",
            OidcError::SlowDown => "SlowDownException",
            OidcError::ExpiredToken => "ExpiredTokenException",
            OidcError::AccessDenied => "AccessDeniedException",
            OidcError::InvalidGrant => "InvalidGrantException",
            OidcError::InvalidClient => "InvalidClientException",
            OidcError::InvalidRequest => "InvalidRequestException",
            OidcError::UnauthorizedClient => "UnauthorizedClientException",
            OidcError::UnsupportedGrantType => "UnsupportedGrantTypeException",
            OidcError::InvalidRedirectUri => "InvalidRedirectUriException",
            OidcError::InvalidClientMetadata => "InvalidClientMetadataException",
        }
    }

    /// The OAuth 2.0 error code the real service puts in the body's `error`.
    pub fn code(self) -> &'static str {
        match self {
            OidcError::AuthorizationPending => "authorization_pending",
            OidcError::SlowDown => "slow_down",
            OidcError::ExpiredToken => "expired_token",
            OidcError::AccessDenied => "access_denied",
            OidcError::InvalidGrant => "invalid_grant",
            OidcError::InvalidClient => "invalid_client",
            OidcError::InvalidRequest => "invalid_request",
            OidcError::UnauthorizedClient => "unauthorized_client",
            OidcError::UnsupportedGrantType => "unsupported_grant_type",
            OidcError::InvalidRedirectUri => "invalid_redirect_uri",
            OidcError::InvalidClientMetadata => "invalid_client_metadata",
        }
    }

    /// The status the model gives the shape: only InvalidClientException is
    /// not a 400.
    pub fn status(self) -> u16 {
        match self {
            OidcError::InvalidClient => 401,
            _ => 400,
        }
    }

    /// The OAuth code for a shape name given by a test's fault, falling back
    /// to the shape name itself for shapes the sandbox never raises.
    fn code_for_shape(shape: &str) -> String {
        const ALL: [OidcError; 11] = [
            OidcError::AuthorizationPending,
            OidcError::SlowDown,
            OidcError::ExpiredToken,
            OidcError::AccessDenied,
            OidcError::InvalidGrant,
            OidcError::InvalidClient,
            OidcError::InvalidRequest,
            OidcError::UnauthorizedClient,
            OidcError::UnsupportedGrantType,
            OidcError::InvalidRedirectUri,
            OidcError::InvalidClientMetadata,
        ];
        ALL.iter()
            .find(|e| e.shape() == shape)
            .map(|e| e.code().to_owned())
            .unwrap_or_else(|| shape.to_owned())
    }
}

/// An error answer, tagged with the wire format of the service it came from.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// SSO OIDC: `x-amzn-ErrorType: <shape>`, body `{error, error_description}`.
    #[error("{shape} ({status}): {description}")]
    Oidc {
        status: u16,
        shape: String,
        code: String,
        description: String,
    },
    /// SSO portal: `x-amzn-ErrorType: <shape>`, body `{message}`.
    #[error("{shape} ({status}): {message}")]
    Portal {
        status: u16,
        shape: String,
        message: String,
    },
    /// AWS Sign-In: `x-amzn-ErrorType: <shape>`, body `{error, message}`;
    /// botocore reads `error` (an `OAuth2ErrorCode` such as `TOKEN_EXPIRED`)
    /// from the parsed exception's response.
    #[error("{shape} ({status}): {error}: {message}")]
    Signin {
        status: u16,
        shape: String,
        error: String,
        message: String,
    },
    /// STS: `ErrorResponse` XML with `Code` and `Message`.
    #[error("{code} ({status}): {message}")]
    Sts {
        status: u16,
        code: String,
        message: String,
    },
    /// The control API, the browser pages and unknown paths: `{message}`.
    #[error("{status}: {message}")]
    Plain { status: u16, message: String },
}

impl ApiError {
    pub fn oidc(kind: OidcError, description: impl Into<String>) -> Self {
        ApiError::Oidc {
            status: kind.status(),
            shape: kind.shape().to_owned(),
            code: kind.code().to_owned(),
            description: description.into(),
        }
    }

    /// An OIDC error with a shape chosen by a test's fault.
    pub fn oidc_custom(status: u16, shape: &str, description: &str) -> Self {
        ApiError::Oidc {
            status,
            shape: shape.to_owned(),
            code: OidcError::code_for_shape(shape),
            description: description.to_owned(),
        }
    }

    pub fn portal(status: u16, shape: &str, message: impl Into<String>) -> Self {
        ApiError::Portal {
            status,
            shape: shape.to_owned(),
            message: message.into(),
        }
    }

    pub fn unauthorized() -> Self {
        ApiError::portal(
            401,
            "UnauthorizedException",
            "Session token not found or invalid",
        )
    }

    /// Sign-In's `AccessDeniedException` (400) with an `OAuth2ErrorCode`:
    /// `TOKEN_EXPIRED` and `USER_CREDENTIALS_CHANGED` mean "sign in again".
    pub fn signin_denied(error: &str, message: impl Into<String>) -> Self {
        ApiError::Signin {
            status: 400,
            shape: "AccessDeniedException".to_owned(),
            error: error.to_owned(),
            message: message.into(),
        }
    }

    /// Sign-In's `ValidationException` (400, `INVALID_REQUEST`): a malformed
    /// request or DPoP proof.
    pub fn signin_invalid(message: impl Into<String>) -> Self {
        ApiError::Signin {
            status: 400,
            shape: "ValidationException".to_owned(),
            error: "INVALID_REQUEST".to_owned(),
            message: message.into(),
        }
    }

    /// A Sign-In error chosen by a test's fault: `code` is either an
    /// `OAuth2ErrorCode` (`USER_CREDENTIALS_CHANGED`, `TOKEN_EXPIRED`, ...),
    /// answered as an `AccessDeniedException` carrying it, or a shape name
    /// (`InternalServerException`), answered with a generic `error`.
    pub fn signin_custom(status: u16, code: &str, message: &str) -> Self {
        const OAUTH2_CODES: [&str; 6] = [
            "TOKEN_EXPIRED",
            "USER_CREDENTIALS_CHANGED",
            "INSUFFICIENT_PERMISSIONS",
            "AUTHCODE_EXPIRED",
            "INVALID_REQUEST",
            "server_error",
        ];
        let (shape, error) = if OAUTH2_CODES.contains(&code) {
            ("AccessDeniedException", code)
        } else if status >= 500 {
            (code, "server_error")
        } else {
            (code, "INVALID_REQUEST")
        };
        ApiError::Signin {
            status,
            shape: shape.to_owned(),
            error: error.to_owned(),
            message: message.to_owned(),
        }
    }

    pub fn sts(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError::Sts {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn plain(status: u16, message: impl Into<String>) -> Self {
        ApiError::Plain {
            status,
            message: message.into(),
        }
    }

    /// The HTTP status of this answer.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Oidc { status, .. }
            | ApiError::Portal { status, .. }
            | ApiError::Signin { status, .. }
            | ApiError::Sts { status, .. }
            | ApiError::Plain { status, .. } => *status,
        }
    }

    /// Renders the error the way the service's clients parse it.
    pub fn into_response(self, request_id: &str) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST);
        match self {
            ApiError::Oidc {
                shape,
                code,
                description,
                ..
            } => with_error_type(
                json_response(
                    status,
                    &serde_json::json!({ "error": code, "error_description": description }),
                ),
                &shape,
            ),
            ApiError::Portal { shape, message, .. } => with_error_type(
                json_response(status, &serde_json::json!({ "message": message })),
                &shape,
            ),
            ApiError::Signin {
                shape,
                error,
                message,
                ..
            } => with_error_type(
                json_response(
                    status,
                    &serde_json::json!({ "error": error, "message": message }),
                ),
                &shape,
            ),
            ApiError::Sts { code, message, .. } => {
                // Server faults are "Receiver" in awsQuery; everything the
                // sandbox raises on its own is the caller's fault.
                let kind = if status.is_server_error() {
                    "Receiver"
                } else {
                    "Sender"
                };
                let body = format!(
                    "<ErrorResponse xmlns=\"{ns}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{code}</Code>\n    <Message>{message}</Message>\n  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
                    ns = crate::sts::NAMESPACE,
                    code = crate::http::xml_escape(&code),
                    message = crate::http::xml_escape(&message),
                );
                xml_response(status, body)
            }
            ApiError::Plain { message, .. } => {
                json_response(status, &serde_json::json!({ "message": message }))
            }
        }
    }
}

fn with_error_type(mut response: Response, shape: &str) -> Response {
    if let Ok(value) = http::HeaderValue::from_str(shape) {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    response
}
