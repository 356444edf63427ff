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

mod endpoint;
mod errors;
use endpoint::*;
pub use errors::{LoginReason, SsoError};

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

#[cfg(test)]
#[path = "sso_unit_tests.rs"]
mod tests;
