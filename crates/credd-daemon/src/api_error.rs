//! Every error an HTTP listener answers with, and the one place that turns
//! it into a response: the status, the short machine-readable `code`, the
//! message that says what to do, the extra headers (`Retry-After`,
//! `Connection: close`), and the log line with the detail the body leaves
//! out. Handlers return `Result<Response, ApiError>`; the accept path in
//! [`crate::server`] logs and renders the error (axum's
//! `examples/error-handling` shape, without axum).
//!
//! The container endpoint, the relay and the guard answer
//! `{"code","message"}` JSON (the table in `docs/http-api.md`). IMDS
//! answers its own refusals in IMDS's plain-text shape (`Unauthorized`,
//! `Not Found`...) and credential failures in the JSON above; the login
//! callback answers a line of text for the person at the browser.
//! Refusals are logged with the peer and the reason, never a token's secret
//! (a token is named by its public id); the body never names the peer.
//!
//! The vocabulary of the broker's failures ([`ServeError::code`]) lives
//! here too: the broker says what went wrong, this module says how HTTP
//! reports it. Every `ServeError` is a `503` except `UnknownProfile`
//! (`404`): `ProfileMisconfigured`, `FetchInProgress` (with `Retry-After`:
//! the fetch goes on), `DaemonStopping` (`Retry-After: 1`), and for an
//! upstream failure the code of its kind:
//!
//! | `UpstreamErrorKind` | `code` |
//! |---|---|
//! | `Unreachable` | `UpstreamUnreachable` |
//! | `Throttled` | `UpstreamThrottled` |
//! | `InvalidMfa` | `InvalidMfa` |
//! | `MfaRequired` | `MfaRequired` |
//! | `Denied` | `UpstreamDenied` |
//! | `Source` | `SourceFailed` |
//! | `Config` | `UpstreamRejected` |
//! | `LoginRequired` | `SsoLoginRequired` |
//!
//! What each kind means for the next attempt is
//! `credd_core::schedule::disposition`; the message (`upstream_message` in
//! `broker.rs`) names the command that helps (`credd mfa`, `credd login`)
//! or, for a transient failure, when the next retry is.

use crate::broker::ServeError;
use crate::response::{self, Body};
use crate::tokens::AuthError;
use ::http::{header, HeaderValue, Response, StatusCode};
use credd_core::UpstreamErrorKind;
use std::net::SocketAddr;

/// An HTTP error, with what the log needs and the body does not.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    // The edge: the guard and the accept path.
    #[error("the Host header does not name this endpoint (DNS rebinding protection): use the address credd printed")]
    HostNotAllowed,
    #[error("requests from web pages are refused")]
    OriginNotAllowed,
    /// The peer socket's owner, when known.
    #[error("{}", peer_message(*.0))]
    PeerNotAllowed(Option<u32>),
    /// The cap on header lines (`limits.max_headers`).
    #[error("more than {0} header lines (limits.max_headers)")]
    TooManyHeaders(usize),
    /// Still unanswered `STOP_GRACE` after the daemon began stopping.
    #[error("credd is stopping and could not finish this request in time; retry once it is running again")]
    DaemonStopping,

    // The container endpoint.
    /// A refused token; `off_loopback`: the caller is a container behind
    /// `credd docker setup`'s DNAT, told how a container gets its token.
    #[error("{}", token_message(*.error, *.off_loopback))]
    Token {
        error: AuthError,
        off_loopback: bool,
    },
    /// A good token not scoped to `profile`; `token` is its public id.
    #[error("this token is not valid for profile '{profile}': issue one with `credd token issue --profile {profile}`")]
    TokenNotValidForProfile { token: String, profile: String },
    #[error("malformed profile name")]
    BadPath,
    #[error("this token is valid for several profiles: ask for /v1/credentials/PROFILE")]
    ProfileRequired,
    #[error("only GET is served here")]
    MethodNotAllowed,
    #[error("no such route: credentials are at /v1/credentials/PROFILE")]
    NotFound,
    /// The broker could not serve the credential.
    #[error(transparent)]
    Serve(#[from] ServeError),

    // The relay.
    #[error("the relay forwards GET /v1/credentials/PROFILE only")]
    RelayRoute,
    #[error(
        "credd relay cannot reach the credd daemon at {target}: is `credd serve` running there?"
    )]
    RelayUnreachable {
        target: String,
        source: std::io::Error,
    },
    #[error("the credd daemon at {target} did not answer in 5 s")]
    RelayTimeout { target: String },

    // IMDS's own refusals, in its plain-text shape.
    #[error("{}", .0.text())]
    Imds(ImdsError),

    // The login callback, answering a browser.
    #[error("{}", .0.text().trim_end())]
    Page(PageError),
}

/// What an error's body is.
enum Shape {
    /// `{"code","message"}` with this code and the error's `Display`.
    Json(&'static str),
    /// Exactly this text.
    Text(&'static str),
}

/// IMDS's refusals: the body is the status's reason phrase, as on EC2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImdsError {
    /// A token `PUT` carrying `X-Forwarded-For` (it came through a proxy).
    Forbidden,
    /// A token `PUT` without a TTL in `1..=21600`.
    BadRequest,
    /// A `GET` without a live session token.
    Unauthorized,
    NotFound,
    MethodNotAllowed,
}

impl ImdsError {
    fn status(self) -> StatusCode {
        match self {
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
    fn text(self) -> &'static str {
        match self {
            Self::Forbidden => "Forbidden",
            Self::BadRequest => "Bad Request",
            Self::Unauthorized => "Unauthorized",
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
        }
    }
}

/// The login callback's refusals, one line of text each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageError {
    WrongHost,
    NotFound,
    MissingCodeOrState,
}

impl PageError {
    fn status(self) -> StatusCode {
        match self {
            Self::WrongHost => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MissingCodeOrState => StatusCode::BAD_REQUEST,
        }
    }
    fn text(self) -> &'static str {
        match self {
            Self::WrongHost => "wrong Host\n",
            Self::NotFound => "not found\n",
            Self::MissingCodeOrState => "missing code or state\n",
        }
    }
}

impl From<ImdsError> for ApiError {
    fn from(e: ImdsError) -> Self {
        Self::Imds(e)
    }
}

impl From<PageError> for ApiError {
    fn from(e: PageError) -> Self {
        Self::Page(e)
    }
}

fn peer_message(uid: Option<u32>) -> String {
    match uid {
        Some(uid) => format!(
            "this connection comes from a socket owned by uid {uid}; credd serves only the user it runs as (and root) (limits.same_user_only)"
        ),
        None => "credd could not tell which user this connection comes from, so it is refused; if this keeps happening, the kernel lacks sock_diag (inet_diag): set limits.same_user_only = false".to_string(),
    }
}

fn token_message(e: AuthError, off_loopback: bool) -> &'static str {
    match e {
        // Off loopback the caller is a container (behind `credd docker
        // setup`'s DNAT): point it at what gives a container its token.
        AuthError::Missing if off_loopback => "no Authorization header: a container gets its token from `credd docker run PROFILE ...` or `docker run $(credd docker args PROFILE) ...` (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)",
        AuthError::Missing => "no Authorization header: set AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (see `credd env PROFILE`)",
        AuthError::Invalid => "the token is not valid (unknown, revoked or malformed): issue a new one with `credd token issue`",
        AuthError::Expired => "the token has expired: issue a new one with `credd token issue`",
        AuthError::Forbidden => "this token is not valid for this profile",
    }
}

impl ServeError {
    /// A short machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::UnknownProfile(_) => "UnknownProfile",
            ServeError::Misconfigured { .. } => "ProfileMisconfigured",
            ServeError::FetchInProgress { .. } => "FetchInProgress",
            ServeError::Stopping(_) => "DaemonStopping",
            ServeError::Upstream { error, .. } => match error.kind {
                UpstreamErrorKind::MfaRequired => "MfaRequired",
                UpstreamErrorKind::InvalidMfa => "InvalidMfa",
                UpstreamErrorKind::Unreachable => "UpstreamUnreachable",
                UpstreamErrorKind::Throttled => "UpstreamThrottled",
                UpstreamErrorKind::Denied => "UpstreamDenied",
                UpstreamErrorKind::Source => "SourceFailed",
                UpstreamErrorKind::Config => "UpstreamRejected",
                UpstreamErrorKind::LoginRequired => "SsoLoginRequired",
            },
        }
    }
}

impl ApiError {
    /// The status line.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::HostNotAllowed | Self::OriginNotAllowed | Self::PeerNotAllowed(_) => {
                StatusCode::FORBIDDEN
            }
            Self::TooManyHeaders(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::DaemonStopping => StatusCode::SERVICE_UNAVAILABLE,
            Self::Token { error, .. } => match error {
                AuthError::Forbidden => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            },
            Self::TokenNotValidForProfile { .. } => StatusCode::FORBIDDEN,
            Self::BadPath | Self::ProfileRequired => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotFound | Self::RelayRoute => StatusCode::NOT_FOUND,
            Self::Serve(ServeError::UnknownProfile(_)) => StatusCode::NOT_FOUND,
            Self::Serve(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::RelayUnreachable { .. } => StatusCode::BAD_GATEWAY,
            Self::RelayTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Imds(e) => e.status(),
            Self::Page(e) => e.status(),
        }
    }

    /// What the broker said the person must do (`needs` in the JSON body).
    pub fn needs(&self) -> Option<crate::protocol::Needs> {
        match self {
            Self::Serve(e) => e.needs(),
            _ => None,
        }
    }

    /// The `code` of the JSON body (`None`: a plain-text answer).
    pub fn code(&self) -> Option<&'static str> {
        match self.shape() {
            Shape::Json(code) => Some(code),
            Shape::Text(_) => None,
        }
    }

    /// How the body is written.
    fn shape(&self) -> Shape {
        Shape::Json(match self {
            Self::HostNotAllowed => "HostNotAllowed",
            Self::OriginNotAllowed => "OriginNotAllowed",
            Self::PeerNotAllowed(_) => "PeerNotAllowed",
            Self::TooManyHeaders(_) => "TooManyHeaders",
            Self::DaemonStopping => "DaemonStopping",
            Self::Token { error, .. } => match error {
                AuthError::Missing => "TokenRequired",
                AuthError::Invalid => "TokenInvalid",
                AuthError::Expired => "TokenExpired",
                AuthError::Forbidden => "TokenNotValidForProfile",
            },
            Self::TokenNotValidForProfile { .. } => "TokenNotValidForProfile",
            Self::BadPath => "BadPath",
            Self::ProfileRequired => "ProfileRequired",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::NotFound | Self::RelayRoute => "NotFound",
            Self::Serve(e) => e.code(),
            Self::RelayUnreachable { .. } => "RelayUpstreamUnreachable",
            Self::RelayTimeout { .. } => "RelayUpstreamTimeout",
            Self::Imds(e) => return Shape::Text(e.text()),
            Self::Page(e) => return Shape::Text(e.text()),
        })
    }

    /// Logs what the body leaves out, at a level that matches who should
    /// hear of it: refusals that may be an attack at `info`, a daemon the
    /// relay cannot reach at `warn`, routine misses at `debug`.
    fn log(&self, peer: SocketAddr) {
        let status = self.status().as_u16();
        match self {
            Self::HostNotAllowed | Self::OriginNotAllowed => {
                tracing::info!(%peer, status, code = self.code(), "refused by guard");
            }
            Self::Token { error, .. } => {
                tracing::info!(%peer, reason = ?error, "refused: bad or missing token");
            }
            Self::TokenNotValidForProfile { token, profile } => {
                tracing::info!(%peer, %token, %profile, "token not valid for profile");
            }
            Self::Imds(ImdsError::Unauthorized) => {
                tracing::info!(%peer, "IMDS request without a valid session token");
            }
            Self::RelayUnreachable { target, source } => {
                tracing::warn!(%peer, error = %source, %target, "relay cannot reach the daemon");
            }
            // Logged where the uid lookup was made, once per connection.
            Self::PeerNotAllowed(_) => {}
            _ => {
                tracing::debug!(%peer, status, code = self.code(), error = %self, "answered with an error")
            }
        }
    }

    /// Logs the error (with the peer, which the body never names) and
    /// writes its response.
    pub fn respond(self, peer: SocketAddr) -> Response<Body> {
        self.log(peer);
        self.into_response()
    }

    /// The response: `{"code","message"}` JSON, or IMDS's or the login
    /// page's plain text, with the headers the error calls for.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let mut r = match self.shape() {
            Shape::Text(body) => response::text(status, body),
            Shape::Json(code) => {
                let mut body = serde_json::json!({"code": code, "message": self.to_string()});
                // What the person must do, typed (`broker/needs.rs`): after
                // `code` and `message` (keys in order), so SDKs that read
                // those two read them as before and ignore it.
                if let Some(needs) = self.needs() {
                    body["needs"] = serde_json::to_value(needs).expect("serializes");
                }
                let body = serde_json::to_vec(&body).expect("serializes");
                response::json(status, body)
            }
        };
        // hyper closes after its own header cap, a connection from another
        // user has nothing more to ask, and a stopping daemon takes no more.
        if matches!(
            self,
            Self::PeerNotAllowed(_) | Self::TooManyHeaders(_) | Self::DaemonStopping
        ) {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        // SDKs retry on their own; this says when there is something to get.
        let retry_after = match &self {
            Self::Serve(ServeError::FetchInProgress {
                retry_after_secs, ..
            }) => Some(*retry_after_secs),
            Self::Serve(ServeError::Stopping(_)) | Self::DaemonStopping => Some(1),
            _ => None,
        };
        if let Some(s) = retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credd_core::UpstreamError;
    use http_body_util::BodyExt;

    /// Status, headers in the order they go on the wire, and body bytes.
    async fn wire(e: ApiError) -> (u16, Vec<(String, String)>, String) {
        let r = e.into_response();
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const JSON: (&str, &str) = ("content-type", "application/json");
    const TEXT: (&str, &str) = ("content-type", "text/plain");

    // The bytes below are what the handlers wrote before `ApiError` (the
    // `{"code","message"}` object with its keys in this order, no spaces).
    #[tokio::test]
    async fn the_guard_refusals_keep_their_bytes() {
        assert_eq!(
            wire(ApiError::HostNotAllowed).await,
            (403, h(&[JSON]), r#"{"code":"HostNotAllowed","message":"the Host header does not name this endpoint (DNS rebinding protection): use the address credd printed"}"#.into())
        );
        assert_eq!(
            wire(ApiError::OriginNotAllowed).await,
            (
                403,
                h(&[JSON]),
                r#"{"code":"OriginNotAllowed","message":"requests from web pages are refused"}"#
                    .into()
            )
        );
        assert_eq!(
            wire(ApiError::PeerNotAllowed(Some(1001))).await,
            (403, h(&[JSON, ("connection", "close")]), r#"{"code":"PeerNotAllowed","message":"this connection comes from a socket owned by uid 1001; credd serves only the user it runs as (and root) (limits.same_user_only)"}"#.into())
        );
        let (_, _, unknown_owner) = wire(ApiError::PeerNotAllowed(None)).await;
        assert!(
            unknown_owner.contains("set limits.same_user_only = false"),
            "{unknown_owner}"
        );
        assert_eq!(
            wire(ApiError::TooManyHeaders(64)).await,
            (431, h(&[JSON, ("connection", "close")]), r#"{"code":"TooManyHeaders","message":"more than 64 header lines (limits.max_headers)"}"#.into())
        );
        assert_eq!(
            wire(ApiError::DaemonStopping).await,
            (503, h(&[JSON, ("connection", "close"), ("retry-after", "1")]), r#"{"code":"DaemonStopping","message":"credd is stopping and could not finish this request in time; retry once it is running again"}"#.into())
        );
    }

    #[tokio::test]
    async fn the_container_errors_keep_their_bytes() {
        let token = |error, off_loopback| ApiError::Token {
            error,
            off_loopback,
        };
        let (s, hs, b) = wire(token(AuthError::Missing, false)).await;
        assert_eq!((s, hs), (401, h(&[JSON])));
        assert_eq!(
            b,
            r#"{"code":"TokenRequired","message":"no Authorization header: set AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (see `credd env PROFILE`)"}"#
        );
        let (_, _, b) = wire(token(AuthError::Missing, true)).await;
        assert!(b.contains("credd docker run PROFILE"), "{b}");
        for (error, status, code) in [
            (AuthError::Invalid, 401, "TokenInvalid"),
            (AuthError::Expired, 401, "TokenExpired"),
            (AuthError::Forbidden, 403, "TokenNotValidForProfile"),
        ] {
            let (s, _, b) = wire(token(error, false)).await;
            assert_eq!(s, status, "{error:?}");
            assert!(b.starts_with(&format!(r#"{{"code":"{code}","#)), "{b}");
        }
        assert_eq!(
            wire(ApiError::TokenNotValidForProfile { token: "0123".into(), profile: "dev".into() }).await,
            (403, h(&[JSON]), r#"{"code":"TokenNotValidForProfile","message":"this token is not valid for profile 'dev': issue one with `credd token issue --profile dev`"}"#.into())
        );
        for (e, status, body) in [
            (
                ApiError::BadPath,
                400,
                r#"{"code":"BadPath","message":"malformed profile name"}"#,
            ),
            (
                ApiError::ProfileRequired,
                400,
                r#"{"code":"ProfileRequired","message":"this token is valid for several profiles: ask for /v1/credentials/PROFILE"}"#,
            ),
            (
                ApiError::MethodNotAllowed,
                405,
                r#"{"code":"MethodNotAllowed","message":"only GET is served here"}"#,
            ),
            (
                ApiError::NotFound,
                404,
                r#"{"code":"NotFound","message":"no such route: credentials are at /v1/credentials/PROFILE"}"#,
            ),
            (
                ApiError::RelayRoute,
                404,
                r#"{"code":"NotFound","message":"the relay forwards GET /v1/credentials/PROFILE only"}"#,
            ),
            (
                ApiError::RelayTimeout {
                    target: "h:1".into(),
                },
                504,
                r#"{"code":"RelayUpstreamTimeout","message":"the credd daemon at h:1 did not answer in 5 s"}"#,
            ),
        ] {
            assert_eq!(wire(e).await, (status, h(&[JSON]), body.to_string()));
        }
        let (s, _, b) = wire(ApiError::RelayUnreachable {
            target: "h:1".into(),
            source: std::io::Error::other("connection refused"),
        })
        .await;
        assert_eq!(s, 502);
        // The cause is logged, not sent.
        assert_eq!(
            b,
            r#"{"code":"RelayUpstreamUnreachable","message":"credd relay cannot reach the credd daemon at h:1: is `credd serve` running there?"}"#
        );
    }

    #[tokio::test]
    async fn broker_failures_map_to_their_codes_statuses_and_retry_after() {
        let upstream = |kind| {
            ApiError::from(ServeError::Upstream {
                profile: "dev".into(),
                error: UpstreamError::new(kind, "detail"),
                retry_in_secs: None,
                needs: None,
            })
        };
        for (kind, code) in [
            (UpstreamErrorKind::MfaRequired, "MfaRequired"),
            (UpstreamErrorKind::InvalidMfa, "InvalidMfa"),
            (UpstreamErrorKind::Unreachable, "UpstreamUnreachable"),
            (UpstreamErrorKind::Throttled, "UpstreamThrottled"),
            (UpstreamErrorKind::Denied, "UpstreamDenied"),
            (UpstreamErrorKind::Source, "SourceFailed"),
            (UpstreamErrorKind::Config, "UpstreamRejected"),
            (UpstreamErrorKind::LoginRequired, "SsoLoginRequired"),
        ] {
            let (s, hs, b) = wire(upstream(kind)).await;
            assert_eq!((s, hs), (503, h(&[JSON])), "{kind:?}");
            assert!(
                b.starts_with(&format!(r#"{{"code":"{code}","message":""#)),
                "{b}"
            );
        }
        assert_eq!(
            wire(ServeError::UnknownProfile("nope".into()).into()).await,
            (404, h(&[JSON]), r#"{"code":"UnknownProfile","message":"unknown profile 'nope': it is not in the AWS config or credentials file (see `credd profiles`)"}"#.into())
        );
        let (s, hs, b) = wire(
            ServeError::FetchInProgress {
                profile: "dev".into(),
                retry_after_secs: 3,
            }
            .into(),
        )
        .await;
        assert_eq!((s, hs), (503, h(&[JSON, ("retry-after", "3")])));
        assert!(b.starts_with(r#"{"code":"FetchInProgress","#), "{b}");
        let (s, hs, b) = wire(ServeError::Stopping("dev".into()).into()).await;
        assert_eq!((s, hs), (503, h(&[JSON, ("retry-after", "1")])));
        assert!(b.starts_with(r#"{"code":"DaemonStopping","#), "{b}");
    }

    #[tokio::test]
    async fn a_failure_that_needs_the_user_says_so_typed_after_code_and_message() {
        let (s, _, b) = wire(ApiError::from(ServeError::Upstream {
            profile: "dev".into(),
            error: UpstreamError::new(UpstreamErrorKind::MfaRequired, "detail"),
            retry_in_secs: None,
            needs: Some(Box::new(crate::protocol::Needs {
                kind: crate::protocol::NeedsKind::Mfa,
                session: "base".into(),
                command: "credd mfa dev".into(),
            })),
        }))
        .await;
        assert_eq!(s, 503);
        assert_eq!(
            b,
            r#"{"code":"MfaRequired","message":"MFA code needed: run `credd mfa dev`","needs":{"command":"credd mfa dev","kind":"mfa","session":"base"}}"#
        );
    }

    #[tokio::test]
    async fn imds_and_the_login_page_answer_in_plain_text() {
        for (e, status, body) in [
            (ImdsError::Forbidden, 403, "Forbidden"),
            (ImdsError::BadRequest, 400, "Bad Request"),
            (ImdsError::Unauthorized, 401, "Unauthorized"),
            (ImdsError::NotFound, 404, "Not Found"),
            (ImdsError::MethodNotAllowed, 405, "Method Not Allowed"),
        ] {
            assert_eq!(wire(e.into()).await, (status, h(&[TEXT]), body.to_string()));
        }
        for (e, status, body) in [
            (PageError::WrongHost, 403, "wrong Host\n"),
            (PageError::NotFound, 404, "not found\n"),
            (
                PageError::MissingCodeOrState,
                400,
                "missing code or state\n",
            ),
        ] {
            assert_eq!(wire(e.into()).await, (status, h(&[TEXT]), body.to_string()));
        }
    }
}
