//! AWS Sign-In for `aws login` sessions: [`SignInClient`] makes the one call
//! a session needs, `CreateOAuth2Token` (the authorization-code exchange of
//! `credd login`, and the refresh-token grant of every refresh), with its
//! DPoP proof; the endpoint (`signin_endpoint`; the console's federation
//! endpoint is `federation.rs`'s);
//! what the id token says (`login_session_from_id_token`); and
//! [`SignInError`], a refused or failed call told by what it means for the
//! user.
//!
//! The call goes through `aws-sdk-signin` (the smithy-rs client the
//! workspace's other SDKs share), unsigned, with an interceptor that adds
//! the `DPoP` header last, over the request's final URL, as botocore's
//! `before-call` handler does. Each attempt gets a fresh proof (its own
//! `jti`). The endpoint is always given explicitly: `AWS_ENDPOINT_URL_SIGNIN`
//! as it is, else `https://{region}.signin.aws.amazon.com`, the URL the CLI
//! and botocore sign in at.
//!
//! Messages carry the service's error code and text, never a token.

use crate::classify::{self, Failure};
use crate::dpop::DpopKey;
use aws_sdk_signin::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_signin::config::{BehaviorVersion, ConfigBag, Intercept, Region, RuntimeComponents};
use aws_sdk_signin::operation::create_o_auth2_token::CreateOAuth2TokenError;
use aws_sdk_signin::types::CreateOAuth2TokenRequestBody;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use credd_core::{SecretString, UpstreamError, UpstreamErrorKind};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The client ids of the CLI's two flows.
pub const CLIENT_ID_SAME_DEVICE: &str = "arn:aws:signin:::devtools/same-device";
pub const CLIENT_ID_CROSS_DEVICE: &str = "arn:aws:signin:::devtools/cross-device";

/// The same bounds as the Identity Center calls: a dead endpoint never holds
/// a refresh for long, and one retry for a lost connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ATTEMPTS: u32 = 2;

/// The wall clock, as a function so tests can set it: the DPoP proof's
/// `iat` and the comparison of the cache file's `expiresAt` (which other
/// programs wrote against the same wall clock) need wall time.
pub type Now = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// The real wall clock.
pub fn wall_clock() -> Now {
    // The one wall-clock read of the login path: `expiresAt` in the shared
    // cache file and the proof's `iat` are wall time by definition (botocore
    // compares them with its own `datetime.now`). Tests inject a fixed clock.
    #[allow(clippy::disallowed_methods)]
    Arc::new(OffsetDateTime::now_utc)
}

/// A successful `CreateOAuth2Token` answer (the bare token output).
#[derive(Clone)]
pub struct TokenOutput {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: SecretString,
    /// `aws_sigv4`.
    pub token_type: String,
    pub expires_in: i64,
    pub refresh_token: SecretString,
    pub id_token: Option<SecretString>,
}

impl fmt::Debug for TokenOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenOutput")
            .field("access_key_id", &self.access_key_id)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// A failed Sign-In call, by what it means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// The session ended (`TOKEN_EXPIRED`, `USER_CREDENTIALS_CHANGED`) or
    /// the authorization code did (`AUTHCODE_EXPIRED`): sign in again.
    #[error("AWS Sign-In refused the session ({code}): {message}")]
    LoginRequired { code: String, message: String },
    /// `INSUFFICIENT_PERMISSIONS` or another refusal.
    #[error("AWS Sign-In denied the request ({code}): {message}")]
    Denied { code: String, message: String },
    /// A request the service found invalid (`ValidationException`,
    /// `INVALID_REQUEST`), or one that could not be built.
    #[error("AWS Sign-In rejected the request ({code}): {message}")]
    Invalid { code: String, message: String },
    #[error("AWS Sign-In is throttling requests: {message}")]
    Throttled { message: String },
    /// Timeout, connection failure, 5xx, an unreadable answer.
    #[error("AWS Sign-In at {endpoint} could not be reached: {detail}")]
    Unreachable { endpoint: String, detail: String },
}

impl SignInError {
    /// As the broker sees it, for `profile`: an ended session names the two
    /// commands that start a new one.
    pub fn into_upstream(self, profile: &str) -> UpstreamError {
        let kind = match &self {
            Self::LoginRequired { .. } => UpstreamErrorKind::LoginRequired,
            Self::Denied { .. } => UpstreamErrorKind::Denied,
            Self::Invalid { .. } => UpstreamErrorKind::Config,
            Self::Throttled { .. } => UpstreamErrorKind::Throttled,
            Self::Unreachable { .. } => UpstreamErrorKind::Unreachable,
        };
        let code = match &self {
            Self::LoginRequired { code, .. }
            | Self::Denied { code, .. }
            | Self::Invalid { code, .. } => Some(code.clone()),
            _ => None,
        };
        let message = match &self {
            Self::LoginRequired { .. } => format!(
                "the aws login session of profile '{profile}' has ended ({self}); sign in again: run `aws login --profile {profile}` or `credd login --profile {profile}`"
            ),
            _ => format!("profile '{profile}': {self}"),
        };
        let e = UpstreamError::new(kind, message);
        match code {
            Some(c) => e.with_code(c),
            None => e,
        }
    }
}

/// The Sign-In endpoint for `region`, from the process environment:
/// `AWS_ENDPOINT_URL_SIGNIN` as it is, else AWS's.
pub fn signin_endpoint(region: &str) -> String {
    signin_endpoint_with(configured_endpoint(&|k| std::env::var(k).ok()), region)
}

/// `AWS_ENDPOINT_URL_SIGNIN`, unless configured endpoints are ignored
/// (`AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), as the SDKs read it.
pub(crate) fn configured_endpoint(get: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let ignore = get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    get("AWS_ENDPOINT_URL_SIGNIN")
        .map(|u| u.trim().to_string())
        .filter(|u| !ignore && !u.is_empty())
}

pub(crate) fn signin_endpoint_with(configured: Option<String>, region: &str) -> String {
    match configured.map(|u| u.trim().trim_end_matches('/').to_string()) {
        Some(u) if !u.is_empty() => u,
        _ => format!("https://{}.signin.aws.amazon.com", region.trim()),
    }
}

/// Why an id token says no identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the id token from AWS Sign-In {0}")]
pub struct IdTokenError(&'static str);

/// The identity ARN (`sub`) an id token names: the `login_session` value.
/// Not verified, as the CLI does not: it came over TLS from Sign-In, and
/// only names the cache file.
pub fn login_session_from_id_token(id_token: &str) -> Result<String, IdTokenError> {
    let mut parts = id_token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError("is not a JWT"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| IdTokenError("has a payload that is not base64url"))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| IdTokenError("has a payload that is not JSON"))?;
    v.get("sub")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or(IdTokenError("names no identity (sub)"))
}

/// Adds the DPoP proof over the request as it is about to be sent.
#[derive(Debug)]
struct Dpop {
    key: DpopKey,
    now: NowDebug,
}

struct NowDebug(Now);
impl fmt::Debug for NowDebug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Now")
    }
}

impl Intercept for Dpop {
    fn name(&self) -> &'static str {
        "DPoP"
    }
    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_signin::error::BoxError> {
        let request = context.request_mut();
        let htu = request.uri().to_string();
        let proof = self
            .key
            .proof("POST", &htu, (self.now.0)().unix_timestamp());
        request.headers_mut().insert("DPoP", proof);
        Ok(())
    }
}

/// The Sign-In client: one SDK client, per-call endpoint and region.
#[derive(Clone)]
pub struct SignInClient {
    client: aws_sdk_signin::Client,
    now: Now,
}

impl fmt::Debug for SignInClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignInClient").finish_non_exhaustive()
    }
}

impl Default for SignInClient {
    fn default() -> Self {
        Self::new(wall_clock())
    }
}

impl SignInClient {
    pub fn new(now: Now) -> Self {
        let config = aws_sdk_signin::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            // Overridden per call; the service needs one to build a request.
            .region(Region::from_static("us-east-1"))
            .timeout_config(
                aws_sdk_signin::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            )
            .retry_config(
                aws_sdk_signin::config::retry::RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS),
            )
            .build();
        Self {
            client: aws_sdk_signin::Client::from_conf(config),
            now,
        }
    }

    /// The authorization-code grant (`credd login`): the code from the
    /// redirect (same device) or the pasted verification code (cross
    /// device), with the PKCE verifier.
    pub async fn exchange_code(
        &self,
        endpoint: &str,
        key: &DpopKey,
        client_id: &str,
        code: &SecretString,
        code_verifier: &SecretString,
        redirect_uri: &str,
    ) -> Result<TokenOutput, SignInError> {
        let body = CreateOAuth2TokenRequestBody::builder()
            .client_id(client_id)
            .grant_type("authorization_code")
            .code(code.expose())
            .code_verifier(code_verifier.expose())
            .redirect_uri(redirect_uri);
        self.create_token(endpoint, key, body).await
    }

    /// The refresh-token grant. The answer carries a new refresh token: the
    /// one sent is spent.
    pub async fn refresh(
        &self,
        endpoint: &str,
        key: &DpopKey,
        client_id: &str,
        refresh_token: &SecretString,
    ) -> Result<TokenOutput, SignInError> {
        let body = CreateOAuth2TokenRequestBody::builder()
            .client_id(client_id)
            .grant_type("refresh_token")
            .refresh_token(refresh_token.expose());
        self.create_token(endpoint, key, body).await
    }

    async fn create_token(
        &self,
        endpoint: &str,
        key: &DpopKey,
        body: aws_sdk_signin::types::builders::CreateOAuth2TokenRequestBodyBuilder,
    ) -> Result<TokenOutput, SignInError> {
        let unreachable = |detail: String| SignInError::Unreachable {
            endpoint: endpoint.to_string(),
            detail,
        };
        let body = body.build().map_err(|_| SignInError::Invalid {
            code: "InvalidRequest".into(),
            message: "the token request is incomplete".into(),
        })?;
        tracing::debug!(endpoint, "calling AWS Sign-In CreateOAuth2Token");
        let result = self
            .client
            .create_o_auth2_token()
            .token_input(body)
            .customize()
            .config_override(aws_sdk_signin::config::Builder::new().endpoint_url(endpoint))
            .interceptor(Dpop {
                key: key.clone(),
                now: NowDebug(self.now.clone()),
            })
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(err) => return Err(classify_error(endpoint, &err)),
        };
        let token = out
            .token_output
            .ok_or_else(|| unreachable("the answer holds no token".into()))?;
        let access = token
            .access_token
            .ok_or_else(|| unreachable("the answer holds no credentials".into()))?;
        if access.session_token.is_empty() || token.refresh_token.is_empty() {
            return Err(unreachable(
                "the answer holds no session token or refresh token".into(),
            ));
        }
        Ok(TokenOutput {
            access_key_id: access.access_key_id,
            secret_access_key: SecretString::new(access.secret_access_key),
            session_token: SecretString::new(access.session_token),
            token_type: token.token_type,
            expires_in: i64::from(token.expires_in),
            refresh_token: SecretString::new(token.refresh_token),
            id_token: token.id_token.map(SecretString::new),
        })
    }
}

type SdkError = aws_sdk_signin::error::SdkError<
    CreateOAuth2TokenError,
    aws_sdk_signin::config::http::HttpResponse,
>;

/// What a failed call means, from the typed error where the service said
/// which (`AccessDeniedException.error`), else as STS failures are told.
fn classify_error(endpoint: &str, err: &SdkError) -> SignInError {
    let service = |code: &str, message: &str| (code.to_string(), classify::short(message, 300));
    if let Some(e) = err.as_service_error() {
        match e {
            CreateOAuth2TokenError::AccessDeniedException(d) => {
                let (code, message) = service(d.error().as_str(), d.message());
                return match code.as_str() {
                    "TOKEN_EXPIRED" | "USER_CREDENTIALS_CHANGED" | "AUTHCODE_EXPIRED" => {
                        SignInError::LoginRequired { code, message }
                    }
                    _ => SignInError::Denied { code, message },
                };
            }
            CreateOAuth2TokenError::ValidationException(v) => {
                let (code, message) = service(v.error().as_str(), v.message());
                return SignInError::Invalid { code, message };
            }
            CreateOAuth2TokenError::TooManyRequestsError(t) => {
                return SignInError::Throttled {
                    message: classify::short(t.message(), 300),
                };
            }
            _ => {}
        }
    }
    let status = err.raw_response().map(|r| r.status().as_u16());
    if status == Some(429) {
        return SignInError::Throttled {
            message: "HTTP 429".into(),
        };
    }
    let detail = match classify::reduce(err) {
        Failure::Timeout => "timed out".to_string(),
        Failure::Dispatch(d) => d,
        Failure::Construction(d) => {
            return SignInError::Invalid {
                code: "InvalidRequest".into(),
                message: d,
            }
        }
        Failure::BadResponse { status } => format!("HTTP {status}, not a Sign-In answer"),
        Failure::Service {
            status,
            code,
            message,
        } => {
            let text = format!(
                "HTTP {}{}{}",
                status.unwrap_or_default(),
                code.map(|c| format!(" {c}")).unwrap_or_default(),
                message
                    .map(|m| format!(": {}", classify::short(m, 300)))
                    .unwrap_or_default()
            );
            if status.is_some_and(|s| (400..500).contains(&s)) {
                return SignInError::Denied {
                    code: code.unwrap_or("HTTP").to_string(),
                    message: text,
                };
            }
            text
        }
    };
    SignInError::Unreachable {
        endpoint: endpoint.to_string(),
        detail,
    }
}

pub(crate) mod session;

#[cfg(test)]
#[path = "login_signin_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "login_sandbox_tests.rs"]
mod sandbox_tests;
