//! IAM Identity Center over the AWS SDK: [`SsoClient`] calls the SSO portal
//! (`GetRoleCredentials`, `ListAccounts`, `ListAccountRoles`, `Logout`) and
//! SSO OIDC (`RegisterClient`, `StartDeviceAuthorization`, `CreateToken`) for
//! the CLI's login, logout and discovery and for the daemon's refreshes, and
//! turns their failures into [`SsoError`]s that say what to do.
//!
//! Both services are called unsigned: the portal is authenticated by the
//! access token in a header, OIDC by the client secret in the body. Endpoints
//! follow the SDKs' environment rules (`AWS_ENDPOINT_URL_SSO`,
//! `AWS_ENDPOINT_URL_SSO_OIDC`, `AWS_ENDPOINT_URL`,
//! `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`) but not a profile's `endpoint_url`:
//! one session serves many profiles, so no single profile's setting applies.
//!
//! Errors never carry a token: they are built from the operation, the
//! endpoint's host, AWS's error code and its message (or OIDC's
//! `error_description`).

use crate::classify::{self, short, Failure};
use aws_sdk_sso::config::http::HttpResponse;
use aws_sdk_sso::config::retry::RetryConfig;
use aws_sdk_sso::config::timeout::TimeoutConfig;
use aws_sdk_sso::config::{BehaviorVersion, Region};
use aws_sdk_sso::error::{ProvideErrorMetadata, SdkError};
use aws_types::os_shim_internal::Env;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use credd_core::sso::{ClientRegistration, RegistrationRequest, SsoSession, TokenGrant};
use credd_core::{SecretString, TemporaryCredentials, UpstreamError, UpstreamErrorKind};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::seq::SliceRandom;
use sha2::{Digest, Sha256};
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use time::OffsetDateTime;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Bounds a whole call including its retry, so a dead endpoint never holds a
/// refresh (or a waiting user) for long.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// One retry for a lost connection or a throttle; the broker's own backoff,
/// or the user, handles anything longer-lived.
const MAX_ATTEMPTS: u32 = 2;
/// The polling interval when `StartDeviceAuthorization` names none.
const DEFAULT_POLL_INTERVAL_SECS: i64 = 5;
/// A defence against a portal that hands out page tokens forever.
const MAX_PAGES: usize = 10_000;
/// The PKCE verifier's length and alphabet, as botocore's
/// `SSOTokenFetcherAuth` makes it (RFC 7636's unreserved characters).
const VERIFIER_LEN: usize = 64;
const VERIFIER_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
/// What botocore's `percent_encode` leaves alone (RFC 3986's unreserved set).
const QUERY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The two Identity Center services, as the SDKs name them for endpoint
/// configuration (`AWS_ENDPOINT_URL_SSO`, `AWS_ENDPOINT_URL_SSO_OIDC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Portal,
    Oidc,
}

impl Service {
    fn id(self) -> &'static str {
        match self {
            Self::Portal => "SSO",
            Self::Oidc => "SSO OIDC",
        }
    }
    fn env_var(self) -> &'static str {
        match self {
            Self::Portal => "AWS_ENDPOINT_URL_SSO",
            Self::Oidc => "AWS_ENDPOINT_URL_SSO_OIDC",
        }
    }
}

/// Which call failed, named in messages ("SSO GetRoleCredentials").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    GetRoleCredentials,
    ListAccounts,
    ListAccountRoles,
    Logout,
    RegisterClient,
    StartDeviceAuthorization,
    CreateToken(Grant),
}

/// `CreateToken`'s grant, which decides what its errors mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Refresh,
    DeviceCode,
    AuthorizationCode,
}

impl Op {
    fn service(self) -> Service {
        match self {
            Self::GetRoleCredentials
            | Self::ListAccounts
            | Self::ListAccountRoles
            | Self::Logout => Service::Portal,
            _ => Service::Oidc,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::GetRoleCredentials => "SSO GetRoleCredentials",
            Self::ListAccounts => "SSO ListAccounts",
            Self::ListAccountRoles => "SSO ListAccountRoles",
            Self::Logout => "SSO Logout",
            Self::RegisterClient => "SSO OIDC RegisterClient",
            Self::StartDeviceAuthorization => "SSO OIDC StartDeviceAuthorization",
            Self::CreateToken(_) => "SSO OIDC CreateToken",
        }
    }
}

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

/// What `StartDeviceAuthorization` returned: the code to show the user, the
/// page to send them to, and how to poll.
#[derive(Debug, Clone)]
pub struct DeviceAuthorization {
    pub device_code: SecretString,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in_secs: i64,
    /// Seconds between polls; 5 when the service names none.
    pub interval_secs: i64,
}

/// One device-code poll's answer.
#[derive(Debug, Clone)]
pub enum PollOutcome {
    /// The user has not finished signing in: poll again after the interval.
    Pending,
    /// Polling too fast: add 5 seconds to the interval, then poll again.
    SlowDown,
    Granted(TokenGrant),
}

/// An account the token can reach (`ListAccounts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// A PKCE pair for the authorization-code login: a 64-character verifier
/// from the unreserved characters, as the AWS CLI makes it, and its S256
/// challenge (base64url of its SHA-256, without padding).
pub fn pkce_pair() -> (SecretString, String) {
    let mut rng = rand::rngs::OsRng;
    let verifier: String = (0..VERIFIER_LEN)
        .map(|_| char::from(*VERIFIER_ALPHABET.choose(&mut rng).expect("non-empty")))
        .collect();
    let challenge = pkce_challenge(&verifier);
    (SecretString::new(verifier), challenge)
}

fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The Identity Center services for one process environment. Cheap to make;
/// each SDK client is built on first use.
pub struct SsoClient {
    /// Endpoint overrides come from here, injected so tests need not touch
    /// the real environment.
    env: Env,
    portal: OnceLock<aws_sdk_sso::Client>,
    oidc: OnceLock<aws_sdk_ssooidc::Client>,
}

impl fmt::Debug for SsoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The environment may hold AWS keys.
        f.debug_struct("SsoClient").finish_non_exhaustive()
    }
}

/// Where one call goes, and how messages name it.
#[derive(Debug, Clone)]
struct Endpoint {
    /// A configured override; `None` leaves the SDK to use AWS's endpoint.
    configured: Option<String>,
    /// `scheme://host[:port]`.
    base: String,
    host: String,
}

/// One call's context for error messages.
struct Site<'a> {
    op: Op,
    session: &'a SsoSession,
    endpoint: Endpoint,
    /// What the call is about, for `Denied` ("role R in account A").
    subject: Option<String>,
}

impl SsoClient {
    /// Endpoints from the process environment.
    pub fn from_env() -> Self {
        Self::with_env(Env::real())
    }

    /// Endpoints from `vars` only (`credd demo`, pointed at its sandbox).
    pub fn with_vars(vars: &[(&str, &str)]) -> Self {
        Self::with_env(crate::sts::env_of(vars))
    }

    pub(crate) fn with_env(env: Env) -> Self {
        Self {
            env,
            portal: OnceLock::new(),
            oidc: OnceLock::new(),
        }
    }

    fn portal(&self) -> &aws_sdk_sso::Client {
        self.portal.get_or_init(|| {
            aws_sdk_sso::Client::from_conf(
                aws_sdk_sso::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .timeout_config(timeouts())
                    .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
                    .build(),
            )
        })
    }

    fn oidc(&self) -> &aws_sdk_ssooidc::Client {
        self.oidc.get_or_init(|| {
            aws_sdk_ssooidc::Client::from_conf(
                aws_sdk_ssooidc::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .timeout_config(timeouts())
                    .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
                    .build(),
            )
        })
    }

    fn site<'a>(&self, op: Op, session: &'a SsoSession, subject: Option<String>) -> Site<'a> {
        let endpoint = resolve_endpoint(&self.env, op.service(), &session.region);
        tracing::debug!(
            operation = op.name(),
            session = %session.label(),
            endpoint = %endpoint.base,
            "calling IAM Identity Center"
        );
        Site {
            op,
            session,
            endpoint,
            subject,
        }
    }

    fn portal_config(site: &Site<'_>) -> aws_sdk_sso::config::Builder {
        let mut b = aws_sdk_sso::Config::builder().region(Region::new(site.session.region.clone()));
        b.set_endpoint_url(site.endpoint.configured.clone());
        b
    }

    fn oidc_config(site: &Site<'_>) -> aws_sdk_ssooidc::config::Builder {
        let mut b =
            aws_sdk_ssooidc::Config::builder().region(Region::new(site.session.region.clone()));
        b.set_endpoint_url(site.endpoint.configured.clone());
        b
    }

    /// `GetRoleCredentials`: the role's temporary credentials.
    pub async fn get_role_credentials(
        &self,
        session: &SsoSession,
        access_token: &SecretString,
        account_id: &str,
        role_name: &str,
    ) -> Result<TemporaryCredentials, SsoError> {
        let site = self.site(
            Op::GetRoleCredentials,
            session,
            Some(format!("role {role_name} in account {account_id}")),
        );
        let out = self
            .portal()
            .get_role_credentials()
            .role_name(role_name)
            .account_id(account_id)
            .access_token(access_token.expose())
            .customize()
            .config_override(Self::portal_config(&site))
            .send()
            .await
            .map_err(|e| site.sdk_error(&e))?;
        let creds = out
            .role_credentials
            .ok_or_else(|| site.bad_answer("holds no role credentials"))?;
        let aws_sdk_sso::types::RoleCredentials {
            access_key_id,
            secret_access_key,
            session_token,
            expiration,
            ..
        } = creds;
        let (Some(access_key_id), Some(secret_access_key), Some(session_token)) =
            (access_key_id, secret_access_key, session_token)
        else {
            return Err(site.bad_answer("lacks a key id, secret key or session token"));
        };
        // The portal gives the expiry in epoch milliseconds.
        let expiration =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(expiration) * 1_000_000)
                .map_err(|_| site.bad_answer("has an expiration out of range"))?;
        TemporaryCredentials::new(
            access_key_id,
            SecretString::new(secret_access_key),
            SecretString::new(session_token),
            expiration,
            Some(account_id.to_string()),
        )
        .map_err(|_| site.bad_answer("holds credentials without a session token"))
    }

    /// `ListAccounts`, every page. `progress` is told the number of accounts
    /// found so far after each page.
    pub async fn list_accounts(
        &self,
        session: &SsoSession,
        access_token: &SecretString,
        progress: Option<&(dyn Fn(usize) + Sync)>,
    ) -> Result<Vec<Account>, SsoError> {
        let site = self.site(Op::ListAccounts, session, None);
        let mut accounts = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let out = self
                .portal()
                .list_accounts()
                .access_token(access_token.expose())
                .set_next_token(next.clone())
                .customize()
                .config_override(Self::portal_config(&site))
                .send()
                .await
                .map_err(|e| site.sdk_error(&e))?;
            accounts.extend(
                out.account_list
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|a| {
                        Some(Account {
                            id: a.account_id?,
                            name: a.account_name,
                            email: a.email_address,
                        })
                    }),
            );
            if let Some(progress) = progress {
                progress(accounts.len());
            }
            match out.next_token {
                // The SDK's paginators stop on a repeated token too.
                Some(t) if !t.is_empty() && next.as_deref() != Some(t.as_str()) => next = Some(t),
                _ => break,
            }
        }
        Ok(accounts)
    }

    /// `ListAccountRoles`, every page: the names of the roles the token can
    /// use in `account_id`.
    pub async fn list_account_roles(
        &self,
        session: &SsoSession,
        access_token: &SecretString,
        account_id: &str,
    ) -> Result<Vec<String>, SsoError> {
        let site = self.site(
            Op::ListAccountRoles,
            session,
            Some(format!("account {account_id}")),
        );
        let mut roles = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let out = self
                .portal()
                .list_account_roles()
                .access_token(access_token.expose())
                .account_id(account_id)
                .set_next_token(next.clone())
                .customize()
                .config_override(Self::portal_config(&site))
                .send()
                .await
                .map_err(|e| site.sdk_error(&e))?;
            roles.extend(
                out.role_list
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|r| r.role_name),
            );
            match out.next_token {
                Some(t) if !t.is_empty() && next.as_deref() != Some(t.as_str()) => next = Some(t),
                _ => break,
            }
        }
        Ok(roles)
    }

    /// `Logout`: ends the token's session on the service side.
    pub async fn logout(
        &self,
        session: &SsoSession,
        access_token: &SecretString,
    ) -> Result<(), SsoError> {
        let site = self.site(Op::Logout, session, None);
        self.portal()
            .logout()
            .access_token(access_token.expose())
            .customize()
            .config_override(Self::portal_config(&site))
            .send()
            .await
            .map_err(|e| site.sdk_error(&e))?;
        Ok(())
    }

    /// `RegisterClient` as a public client; the registration keeps the
    /// scopes and grant types asked for, as the CLI's cache records them.
    pub async fn register_client(
        &self,
        session: &SsoSession,
        request: &RegistrationRequest,
    ) -> Result<ClientRegistration, SsoError> {
        let site = self.site(Op::RegisterClient, session, None);
        let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        let out = self
            .oidc()
            .register_client()
            .client_name(&request.client_name)
            .client_type("public")
            .set_scopes(non_empty(&request.scopes))
            .set_grant_types(non_empty(&request.grant_types))
            .set_redirect_uris(non_empty(&request.redirect_uris))
            .set_issuer_url(request.issuer_url.clone())
            .customize()
            .config_override(Self::oidc_config(&site))
            .send()
            .await
            .map_err(|e| site.sdk_error(&e))?;
        let (Some(client_id), Some(client_secret)) = (out.client_id, out.client_secret) else {
            return Err(site.bad_answer("lacks the client id or secret"));
        };
        // Epoch seconds.
        let expires_at = OffsetDateTime::from_unix_timestamp(out.client_secret_expires_at)
            .map_err(|_| site.bad_answer("has a secret expiry out of range"))?;
        Ok(ClientRegistration {
            client_id,
            client_secret: SecretString::new(client_secret),
            expires_at,
            scopes: non_empty(&request.scopes),
            grant_types: non_empty(&request.grant_types),
        })
    }

    /// `StartDeviceAuthorization` for the device-code login.
    pub async fn start_device_authorization(
        &self,
        session: &SsoSession,
        registration: &ClientRegistration,
    ) -> Result<DeviceAuthorization, SsoError> {
        let site = self.site(Op::StartDeviceAuthorization, session, None);
        let out = self
            .oidc()
            .start_device_authorization()
            .client_id(&registration.client_id)
            .client_secret(registration.client_secret.expose())
            .start_url(&session.start_url)
            .customize()
            .config_override(Self::oidc_config(&site))
            .send()
            .await
            .map_err(|e| site.sdk_error(&e))?;
        let (Some(device_code), Some(user_code), Some(verification_uri)) =
            (out.device_code, out.user_code, out.verification_uri)
        else {
            return Err(site.bad_answer("lacks the device code, user code or verification URI"));
        };
        Ok(DeviceAuthorization {
            device_code: SecretString::new(device_code),
            user_code,
            verification_uri,
            verification_uri_complete: out.verification_uri_complete,
            expires_in_secs: i64::from(out.expires_in),
            interval_secs: match i64::from(out.interval) {
                i if i > 0 => i,
                _ => DEFAULT_POLL_INTERVAL_SECS,
            },
        })
    }

    /// One `CreateToken` with the device-code grant. The caller sleeps
    /// between polls.
    pub async fn poll_device_token(
        &self,
        session: &SsoSession,
        registration: &ClientRegistration,
        authorization: &DeviceAuthorization,
    ) -> Result<PollOutcome, SsoError> {
        let site = self.site(Op::CreateToken(Grant::DeviceCode), session, None);
        let result = self
            .oidc()
            .create_token()
            .client_id(&registration.client_id)
            .client_secret(registration.client_secret.expose())
            .grant_type(credd_core::sso::GRANT_DEVICE_CODE)
            .device_code(authorization.device_code.expose())
            .customize()
            .config_override(Self::oidc_config(&site))
            .send()
            .await;
        match result {
            Ok(out) => site.grant(out).map(PollOutcome::Granted),
            Err(e) => match e.code() {
                Some("AuthorizationPendingException") => Ok(PollOutcome::Pending),
                Some("SlowDownException") => Ok(PollOutcome::SlowDown),
                _ => Err(site.sdk_error(&e)),
            },
        }
    }

    /// The page that starts an authorization-code login, as the AWS CLI
    /// builds it: the OIDC endpoint's `/authorize`, scopes space-separated
    /// under `scopes` (plural).
    pub fn authorize_url(
        &self,
        session: &SsoSession,
        registration: &ClientRegistration,
        redirect_uri: &str,
        state: &str,
        code_challenge: &str,
    ) -> String {
        let base = resolve_endpoint(&self.env, Service::Oidc, &session.region).base;
        let scopes = session.effective_scopes().join(" ");
        let query = [
            ("response_type", "code"),
            ("client_id", registration.client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("state", state),
            ("code_challenge_method", "S256"),
            ("scopes", scopes.as_str()),
            ("code_challenge", code_challenge),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_ENCODE)))
        .collect::<Vec<_>>()
        .join("&");
        format!("{base}/authorize?{query}")
    }

    /// `CreateToken` with the authorization-code grant, after the redirect.
    pub async fn create_token_auth_code(
        &self,
        session: &SsoSession,
        registration: &ClientRegistration,
        code: &str,
        verifier: &SecretString,
        redirect_uri: &str,
    ) -> Result<TokenGrant, SsoError> {
        let site = self.site(Op::CreateToken(Grant::AuthorizationCode), session, None);
        let out = self
            .oidc()
            .create_token()
            .client_id(&registration.client_id)
            .client_secret(registration.client_secret.expose())
            .grant_type(credd_core::sso::GRANT_AUTHORIZATION_CODE)
            .code(code)
            .code_verifier(verifier.expose())
            .redirect_uri(redirect_uri)
            .customize()
            .config_override(Self::oidc_config(&site))
            .send()
            .await
            .map_err(|e| site.sdk_error(&e))?;
        site.grant(out)
    }

    /// `CreateToken` with the refresh-token grant.
    pub async fn refresh_token(
        &self,
        session: &SsoSession,
        registration: &ClientRegistration,
        refresh_token: &SecretString,
    ) -> Result<TokenGrant, SsoError> {
        let site = self.site(Op::CreateToken(Grant::Refresh), session, None);
        let out = self
            .oidc()
            .create_token()
            .client_id(&registration.client_id)
            .client_secret(registration.client_secret.expose())
            .grant_type(credd_core::sso::GRANT_REFRESH_TOKEN)
            .refresh_token(refresh_token.expose())
            .customize()
            .config_override(Self::oidc_config(&site))
            .send()
            .await
            .map_err(|e| site.sdk_error(&e))?;
        site.grant(out)
    }
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The endpoint override by the SDKs' environment rules: unless
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true, the service's own variable,
/// then `AWS_ENDPOINT_URL`.
fn configured_endpoint(env: &Env, service: Service) -> Option<String> {
    let ignore = env
        .get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .ok()
        // The SDKs ignore a value that is not a boolean rather than fail.
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if ignore {
        return None;
    }
    aws_runtime::env_config::EnvConfigValue::new()
        .env("AWS_ENDPOINT_URL")
        .service_id(service.id())
        .load(env, None)
        .map(|(url, _)| url.trim().to_string())
        .filter(|url| !url.is_empty())
}

fn resolve_endpoint(env: &Env, service: Service, region: &str) -> Endpoint {
    let configured = configured_endpoint(env, service);
    let url = configured
        .clone()
        .or_else(|| aws_endpoint(service, region))
        .unwrap_or_else(|| match service {
            Service::Portal => format!("https://portal.sso.{region}.amazonaws.com"),
            Service::Oidc => format!("https://oidc.{region}.amazonaws.com"),
        });
    let (base, host) = match url.parse::<http::Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => {
                (format!("{scheme}://{authority}"), authority.to_string())
            }
            _ => (url.clone(), url.clone()),
        },
        Err(_) => (url.clone(), url.clone()),
    };
    Endpoint {
        configured,
        base,
        host,
    }
}

/// AWS's own endpoint for `region`, by the SDK's endpoint rules (which know
/// the partitions' DNS suffixes).
fn aws_endpoint(service: Service, region: &str) -> Option<String> {
    match service {
        Service::Portal => {
            use aws_sdk_sso::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
            let params = Params::builder().region(region).build().ok()?;
            now(DefaultResolver::new().resolve_endpoint(&params))?
                .ok()
                .map(|e| e.url().to_string())
        }
        Service::Oidc => {
            use aws_sdk_ssooidc::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
            let params = Params::builder().region(region).build().ok()?;
            now(DefaultResolver::new().resolve_endpoint(&params))?
                .ok()
                .map(|e| e.url().to_string())
        }
    }
}

/// The value of a future that is already complete. The SDK's default
/// endpoint resolvers compute synchronously behind an async interface, and
/// the authorize URL is wanted outside any runtime.
fn now<F: Future>(fut: F) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    match std::pin::pin!(fut).poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// OIDC errors carry their text in `error_description`, which the SDK does
/// not surface generically. Read from an error response only (4xx/5xx),
/// whose body holds no secret.
fn error_description<E>(err: &SdkError<E, HttpResponse>) -> Option<String> {
    let response = err.raw_response()?;
    if response.status().as_u16() < 400 {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(response.body().bytes()?).ok()?;
    body.get("error_description")?.as_str().map(str::to_string)
}

fn is_dns_failure(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("dns error")
        || d.contains("failed to lookup address")
        || d.contains("name or service not known")
        || d.contains("nodename nor servname")
}

impl Site<'_> {
    /// The command that logs this session in. A legacy session has no name
    /// to pass and the profile is not known here, so only the verb is given.
    fn login(&self) -> String {
        match &self.session.name {
            Some(_) => self.session.login_command(""),
            None => "credd login".to_string(),
        }
    }

    fn sdk_error<E>(&self, err: &SdkError<E, HttpResponse>) -> SsoError
    where
        E: ProvideErrorMetadata + Error + 'static,
    {
        let description = error_description(err);
        self.classify(&classify::reduce(err), description.as_deref())
    }

    /// A success status whose content is unusable.
    fn bad_answer(&self, what: &str) -> SsoError {
        SsoError::Unreachable {
            host: self.endpoint.host.clone(),
            operation: self.op.name(),
            code: None,
            detail: format!("the response {what}"),
            hint: None,
        }
    }

    fn grant(
        &self,
        out: aws_sdk_ssooidc::operation::create_token::CreateTokenOutput,
    ) -> Result<TokenGrant, SsoError> {
        let access_token = out
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.bad_answer("holds no access token"))?;
        Ok(TokenGrant {
            access_token: SecretString::new(access_token),
            expires_in_secs: i64::from(out.expires_in),
            refresh_token: out
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(SecretString::new),
        })
    }

    /// What to check when the endpoint cannot be reached.
    fn reach_hint(&self, dns: bool) -> String {
        match (&self.endpoint.configured, dns) {
            (Some(_), _) => format!(
                "is the endpoint override ({} or AWS_ENDPOINT_URL) right?",
                self.op.service().env_var()
            ),
            (None, true) => format!(
                "sso_region '{}' may be misspelt in the sso-session",
                self.session.region
            ),
            (None, false) => "is sso_region right?".to_string(),
        }
    }

    fn classify(&self, failure: &Failure<'_>, description: Option<&str>) -> SsoError {
        let operation = self.op.name();
        let host = self.endpoint.host.clone();
        match failure {
            Failure::Construction(detail) => SsoError::Other {
                operation,
                code: None,
                detail: format!("could not build the request: {detail}"),
            },
            Failure::Timeout => SsoError::Unreachable {
                host,
                operation,
                code: None,
                detail: "timed out".into(),
                hint: None,
            },
            Failure::Dispatch(detail) => SsoError::Unreachable {
                host,
                operation,
                code: None,
                detail: detail.clone(),
                hint: Some(self.reach_hint(is_dns_failure(detail))),
            },
            Failure::BadResponse { status } => SsoError::Unreachable {
                host,
                operation,
                code: None,
                detail: format!(
                    "the answer (HTTP {status}) is not an IAM Identity Center response"
                ),
                hint: Some(self.reach_hint(false)),
            },
            Failure::Service {
                status,
                code,
                message,
            } => self.service_error(*status, *code, message.or(description)),
        }
    }

    fn service_error(
        &self,
        status: Option<u16>,
        code: Option<&str>,
        message: Option<&str>,
    ) -> SsoError {
        let operation = self.op.name();
        let session = self.session.label();
        let message = short(message.unwrap_or("no message"), 300);
        let detail = match (code, status) {
            (Some(code), _) => format!("{code}: {message}"),
            (None, Some(status)) => format!("HTTP {status}: {message}"),
            (None, None) => message,
        };
        let owned_code = code.map(str::to_string);
        let login_required = |reason: LoginReason| SsoError::LoginRequired {
            session: session.clone(),
            login: self.login(),
            operation,
            code: owned_code.clone(),
            reason,
            detail: detail.clone(),
        };
        let token_refused = || login_required(LoginReason::TokenRefused);
        let denied = || SsoError::Denied {
            session: session.clone(),
            operation,
            code: owned_code.clone(),
            reason: match &self.subject {
                Some(subject) => format!("no access to {subject}"),
                None => format!("IAM Identity Center session {session} was refused"),
            },
            detail: detail.clone(),
        };
        let throttled = || SsoError::Throttled {
            host: self.endpoint.host.clone(),
            operation,
            code: owned_code.clone(),
            detail: detail.clone(),
        };
        let unreachable = || SsoError::Unreachable {
            host: self.endpoint.host.clone(),
            operation,
            code: owned_code.clone(),
            detail: detail.clone(),
            hint: None,
        };
        let other = || SsoError::Other {
            operation,
            code: owned_code.clone(),
            detail: detail.clone(),
        };
        let portal = self.op.service() == Service::Portal;
        match (self.op, code.unwrap_or("")) {
            (_, "TooManyRequestsException" | "SlowDownException" | "ThrottlingException") => {
                throttled()
            }
            (_, "InternalServerException" | "InternalFailure" | "ServiceUnavailableException") => {
                unreachable()
            }
            (_, "UnauthorizedException") if portal => token_refused(),
            (_, "ForbiddenException" | "ResourceNotFoundException") if portal => denied(),
            (
                Op::CreateToken(Grant::Refresh),
                "InvalidGrantException"
                | "ExpiredTokenException"
                | "InvalidClientException"
                | "UnauthorizedClientException"
                | "AccessDeniedException",
            ) => login_required(LoginReason::SessionEnded),
            (Op::CreateToken(_), "ExpiredTokenException") => SsoError::SignInExpired {
                session: session.clone(),
                login: self.login(),
            },
            (Op::CreateToken(_), "AccessDeniedException") => SsoError::SignInDenied {
                session: session.clone(),
            },
            _ => match status {
                Some(429) => throttled(),
                Some(s) if s >= 500 => unreachable(),
                Some(401) if portal => token_refused(),
                Some(403) => denied(),
                _ => other(),
            },
        }
    }
}

#[cfg(test)]
#[path = "sso_unit_tests.rs"]
mod tests;
