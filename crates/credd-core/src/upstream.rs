//! The boundary to AWS: what the broker asks of an upstream, and how upstream
//! failures are classified so the refresher can decide retry or give-up by
//! variant. credd-aws implements it with the AWS SDK; tests use fakes.

use crate::credentials::{LongTermKeys, SecretString, TemporaryCredentials};
use crate::login::{LoginRef, SamlSpec};
use crate::profile::RoleStep;
use crate::sso::{ClientRegistration, RegistrationRequest, SsoSession, TokenGrant};
use async_trait::async_trait;

/// What an upstream call is made for: the profile whose settings (region,
/// `endpoint_url`) apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    pub profile: String,
    pub region: Option<String>,
}

/// What `credential_process` or the environment yields: temporary
/// credentials are used as they are; long-term keys go through GetSessionToken.
#[derive(Debug, Clone)]
pub enum SourceCredentials {
    Temporary(TemporaryCredentials),
    LongTerm(LongTermKeys),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

#[async_trait]
pub trait Upstream: Send + Sync + 'static {
    async fn get_session_token(
        &self,
        ctx: &CallContext,
        keys: &LongTermKeys,
        mfa: Option<(&str, &SecretString)>,
        duration_secs: u64,
    ) -> Result<TemporaryCredentials, UpstreamError>;

    async fn assume_role(
        &self,
        ctx: &CallContext,
        source: &TemporaryCredentials,
        role: &RoleStep,
    ) -> Result<TemporaryCredentials, UpstreamError>;

    /// Reads `token_file` afresh and calls `AssumeRoleWithWebIdentity`.
    async fn assume_role_with_web_identity(
        &self,
        ctx: &CallContext,
        role_arn: &str,
        session_name: &str,
        token_file: &str,
    ) -> Result<TemporaryCredentials, UpstreamError>;

    async fn credential_process(
        &self,
        ctx: &CallContext,
        command: &str,
    ) -> Result<SourceCredentials, UpstreamError>;

    /// The daemon's own `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`.
    async fn environment(&self) -> Result<SourceCredentials, UpstreamError>;

    /// Runs an `mfa_process` command and returns the code it printed.
    async fn mfa_code(&self, command: &str) -> Result<SecretString, UpstreamError>;

    async fn caller_identity(
        &self,
        ctx: &CallContext,
        creds: &TemporaryCredentials,
    ) -> Result<CallerIdentity, UpstreamError>;

    /// IAM Identity Center role credentials: the portal's `GetRoleCredentials`
    /// with the session's access token. A refused token is
    /// [`UpstreamErrorKind::LoginRequired`].
    async fn sso_role_credentials(
        &self,
        session: &SsoSession,
        access_token: &SecretString,
        account_id: &str,
        role_name: &str,
    ) -> Result<TemporaryCredentials, UpstreamError>;

    /// SSO OIDC `CreateToken` with the refresh-token grant. A refused refresh
    /// token (the Identity Center session ended) is
    /// [`UpstreamErrorKind::LoginRequired`].
    async fn sso_refresh_token(
        &self,
        session: &SsoSession,
        client: &ClientRegistration,
        refresh_token: &SecretString,
    ) -> Result<TokenGrant, UpstreamError>;

    /// The credentials of an `aws login` session: the cache file's, re-read
    /// under its lock, refreshed through AWS Sign-In (`CreateOAuth2Token`
    /// with a DPoP proof) when they are close to expiry, the rotated token
    /// written back before the lock is released. An ended session
    /// (`TOKEN_EXPIRED`, `USER_CREDENTIALS_CHANGED`, no cache file) is
    /// [`UpstreamErrorKind::LoginRequired`].
    async fn login_credentials(
        &self,
        ctx: &CallContext,
        login: &LoginRef,
    ) -> Result<TemporaryCredentials, UpstreamError>;

    /// The stamp of a login session's cache file (one `stat`), so that a
    /// session parked on `LoginRequired` wakes when a new `aws login` or
    /// `credd login` rewrites it. `None`: no file, or no way to tell.
    fn login_stamp(&self, _login: &LoginRef) -> Option<crate::sso::FileStamp> {
        None
    }

    /// Runs `credd_saml_process` (no shell, time-limited) and calls
    /// `AssumeRoleWithSAML` with the assertion it printed.
    async fn assume_role_with_saml(
        &self,
        ctx: &CallContext,
        spec: &SamlSpec,
    ) -> Result<TemporaryCredentials, UpstreamError>;

    /// SSO OIDC `RegisterClient`.
    async fn sso_register_client(
        &self,
        session: &SsoSession,
        request: &RegistrationRequest,
    ) -> Result<ClientRegistration, UpstreamError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// Could not connect, timed out, 5xx: retry with backoff.
    Unreachable,
    /// Throttled: retry with backoff.
    Throttled,
    /// The MFA code was wrong or already used: ask for a new one.
    InvalidMfa,
    /// An MFA code is needed and none is at hand: run `credd mfa`.
    MfaRequired,
    /// Credentials refused (access denied, expired or invalid keys): retrying
    /// will not help until the user changes something.
    Denied,
    /// The local source failed (credential_process, token file, environment).
    Source,
    /// Bad request / config (invalid duration, bad ARN).
    Config,
    /// The IAM Identity Center session has ended, or there never was one:
    /// only an explicit `credd login` helps, and credd never starts one itself.
    LoginRequired,
}

impl UpstreamErrorKind {
    /// Whether retrying with backoff may help; what each kind means is
    /// decided once, in [`crate::schedule::disposition`].
    pub fn retryable(self) -> bool {
        crate::schedule::disposition(self) == crate::schedule::Disposition::Backoff
    }
}

/// An upstream failure. The message never contains a secret: it is built
/// from error codes and AWS's own message text, which carries none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UpstreamError {
    pub kind: UpstreamErrorKind,
    pub code: Option<String>,
    pub message: String,
}

impl UpstreamError {
    pub fn new(kind: UpstreamErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: None,
            message: message.into(),
        }
    }
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}
