//! [`SsoError`]: what an Identity Center call's failure means for the user
//! (log in again, fix the configuration, wait), and its [`UpstreamErrorKind`]
//! for the daemon's refresh schedule. Messages never hold a token.

use super::*;

/// An Identity Center call that failed. Every variant names the operation;
/// the message says what to do next and never holds a token or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsoError {
    /// The access or refresh token was refused, or the session has ended:
    /// only a new `credd login` helps.
    #[error("{}: run `{login}` ({operation}: {detail})", reason.describe(session))]
    LoginRequired {
        session: String,
        login: String,
        operation: &'static str,
        code: Option<String>,
        reason: LoginReason,
        detail: String,
    },
    /// The device code or authorization code expired before sign-in finished.
    #[error("the sign-in request expired: run `{login}` again")]
    SignInExpired { session: String, login: String },
    /// The user refused the request on the sign-in page.
    #[error("sign-in was denied in the browser")]
    SignInDenied { session: String },
    /// The token is good but does not reach what was asked for.
    #[error("{reason} ({operation}: {detail})")]
    Denied {
        session: String,
        operation: &'static str,
        code: Option<String>,
        reason: String,
        detail: String,
    },
    /// The service asked to slow down: try again shortly.
    #[error("{operation}: {host} is throttling requests ({detail}); try again shortly")]
    Throttled {
        host: String,
        operation: &'static str,
        code: Option<String>,
        detail: String,
    },
    /// No usable answer: no connection, a timeout, a 5xx, or a response that
    /// is not Identity Center's.
    #[error("{operation}: could not reach {host}: {detail}{}", hint_suffix(.hint))]
    Unreachable {
        host: String,
        operation: &'static str,
        code: Option<String>,
        detail: String,
        hint: Option<String>,
    },
    /// Anything else: a request the service rejected as invalid.
    #[error("{operation}: {detail}")]
    Other {
        operation: &'static str,
        code: Option<String>,
        detail: String,
    },
}

/// Why a login is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginReason {
    /// The portal refused the access token (expired, revoked, logged out).
    TokenRefused,
    /// OIDC refused the refresh token or its client: the Identity Center
    /// session has ended.
    SessionEnded,
}

impl LoginReason {
    fn describe(self, session: &str) -> String {
        match self {
            Self::TokenRefused => {
                format!("the IAM Identity Center token of session {session} was refused")
            }
            Self::SessionEnded => format!(
                "IAM Identity Center session {session} has ended (its refresh token was refused)"
            ),
        }
    }
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map_or_else(String::new, |h| format!("; {h}"))
}

impl SsoError {
    /// AWS's error code (`UnauthorizedException`, `InvalidClientException`...),
    /// when the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::LoginRequired { code, .. }
            | Self::Denied { code, .. }
            | Self::Throttled { code, .. }
            | Self::Unreachable { code, .. }
            | Self::Other { code, .. } => code.as_deref(),
            Self::SignInExpired { .. } => Some("ExpiredTokenException"),
            Self::SignInDenied { .. } => Some("AccessDeniedException"),
        }
    }

    /// Whether only a new login can help.
    pub fn is_login_required(&self) -> bool {
        matches!(
            self,
            Self::LoginRequired { .. } | Self::SignInExpired { .. } | Self::SignInDenied { .. }
        )
    }

    /// The broker's classification: retry (unreachable, throttled) or give up.
    pub fn kind(&self) -> UpstreamErrorKind {
        match self {
            Self::LoginRequired { .. } | Self::SignInExpired { .. } | Self::SignInDenied { .. } => {
                UpstreamErrorKind::LoginRequired
            }
            Self::Denied { .. } => UpstreamErrorKind::Denied,
            Self::Throttled { .. } => UpstreamErrorKind::Throttled,
            Self::Unreachable { .. } => UpstreamErrorKind::Unreachable,
            Self::Other { .. } => UpstreamErrorKind::Config,
        }
    }
}

impl From<SsoError> for UpstreamError {
    fn from(e: SsoError) -> Self {
        let err = UpstreamError::new(e.kind(), e.to_string());
        match e.code() {
            Some(code) => err.with_code(code),
            None => err,
        }
    }
}
