//! [`AwsUpstream`]: credd's [`Upstream`] implemented with the AWS SDK for
//! STS, plus the local sources (`credential_process`, `mfa_process`, the
//! environment) that the broker reaches through the same trait.
//!
//! Each call gets its own configuration (region, endpoint URL, credentials)
//! layered over one shared client, so that connections are pooled while no
//! call can see another call's credentials. The endpoint URL is looked up
//! afresh from the environment and the call's profile every time, by the
//! SDK's own rules, so that an edit to `~/.aws/config` applies to the next
//! refresh without a restart.

use crate::classify::{self, Operation};
use crate::local;
use crate::profiles::{load_profile_set, ProfileEnv};
use async_trait::async_trait;
use aws_config::profile::ProfileSet;
use aws_credential_types::Credentials;
use aws_runtime::env_config::EnvConfigValue;
use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_types::os_shim_internal::Env;
use credd_core::profile::RoleStep;
use credd_core::upstream::{CallContext, CallerIdentity, SourceCredentials};
use credd_core::{
    LongTermKeys, SecretString, TemporaryCredentials, Upstream, UpstreamError, UpstreamErrorKind,
};
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;

/// The region used when neither the profile nor the environment names one:
/// the one the AWS CLI's global STS endpoint lives in.
const DEFAULT_REGION: &str = "us-east-1";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Bounds a whole call including its retry, so a dead endpoint never holds a
/// refresh for long.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// One retry for a lost connection or a throttle; the broker's own backoff
/// handles anything longer-lived.
const MAX_ATTEMPTS: u32 = 2;
/// Names the credentials in the SDK's own logs and metrics.
const PROVIDER_NAME: &str = "credd";

/// Talks to STS for the broker. Cheap to share: one instance serves every
/// profile.
pub struct AwsUpstream {
    profile_env: ProfileEnv,
    /// `aws login` sessions: the cache directory and the Sign-In client.
    login: crate::signin::session::LoginSessions,
    /// The process environment (region, endpoint URLs, `credential_source =
    /// Environment`), injected so tests need not touch the real one.
    env: Env,
    pub(crate) client: aws_sdk_sts::Client,
    /// The Identity Center portal and OIDC, with the same environment; its
    /// SDK clients are built on first use and then reused.
    sso: crate::sso::SsoClient,
    pub(crate) command_timeout: Duration,
}

impl fmt::Debug for AwsUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The environment may hold the daemon's AWS keys.
        f.debug_struct("AwsUpstream")
            .field("profile_env", &self.profile_env)
            .finish_non_exhaustive()
    }
}

impl AwsUpstream {
    /// `profile_env` locates the AWS files whose `endpoint_url` settings
    /// apply; everything else comes from the process environment.
    pub fn new(profile_env: ProfileEnv) -> Self {
        Self::with_env(profile_env, Env::real())
    }

    /// An upstream whose environment is exactly `vars` and nothing of the
    /// process's (`credd demo`, which points every endpoint at its sandbox).
    pub fn with_vars(profile_env: ProfileEnv, vars: &[(&str, &str)]) -> Self {
        Self::with_env(profile_env, env_of(vars))
    }

    pub(crate) fn with_env(profile_env: ProfileEnv, env: Env) -> Self {
        let config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::from_static(DEFAULT_REGION))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .build();
        let login = crate::signin::session::LoginSessions::from_env(&env);
        Self {
            profile_env,
            login,
            sso: crate::sso::SsoClient::with_env(env.clone()),
            env,
            client: aws_sdk_sts::Client::from_conf(config),
            command_timeout: local::COMMAND_TIMEOUT,
        }
    }

    /// The per-call layer: region, endpoint URL and (unless the call is
    /// unsigned) credentials.
    pub(crate) async fn call_config(
        &self,
        op: Operation,
        ctx: &CallContext,
        credentials: Option<Credentials>,
    ) -> Result<aws_sdk_sts::config::Builder, UpstreamError> {
        let profiles = load_profile_set(&self.profile_env, Some(&ctx.profile))
            .await
            .map_err(|e| UpstreamError::new(UpstreamErrorKind::Config, e.to_string()))?;
        let region = self.region(ctx);
        let endpoint = endpoint_url(&self.env, Some(&profiles));
        tracing::debug!(
            operation = %op,
            profile = %ctx.profile,
            region = %region,
            endpoint = endpoint.as_deref().unwrap_or("(AWS)"),
            "calling STS"
        );
        let mut builder = aws_sdk_sts::Config::builder().region(Region::new(region));
        builder.set_endpoint_url(endpoint);
        if let Some(credentials) = credentials {
            builder = builder.credentials_provider(credentials);
        }
        Ok(builder)
    }

    fn region(&self, ctx: &CallContext) -> String {
        let non_empty = |s: &String| !s.trim().is_empty();
        ctx.region
            .clone()
            .filter(non_empty)
            .or_else(|| self.env.get("AWS_REGION").ok().filter(non_empty))
            .or_else(|| self.env.get("AWS_DEFAULT_REGION").ok().filter(non_empty))
            .map_or_else(|| DEFAULT_REGION.to_string(), |r| r.trim().to_string())
    }
}

/// The STS endpoint URL by the SDKs' rules: unless configured endpoints are
/// ignored (`AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`, or the profile's
/// `ignore_configured_endpoint_urls`), the first of `AWS_ENDPOINT_URL_STS`,
/// `AWS_ENDPOINT_URL`, the profile's `[services]` `sts.endpoint_url` and its
/// `endpoint_url`. `None` means AWS's own endpoint for the region.
/// An SDK environment holding exactly `vars`.
pub(crate) fn env_of(vars: &[(&str, &str)]) -> Env {
    Env::from(
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::HashMap<_, _>>(),
    )
}

pub(crate) fn endpoint_url(env: &Env, profiles: Option<&ProfileSet>) -> Option<String> {
    let ignore = EnvConfigValue::new()
        .env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .profile("ignore_configured_endpoint_urls")
        .validate(env, profiles, parse_bool)
        .unwrap_or_else(|e| {
            // The SDKs also ignore an invalid value rather than fail.
            tracing::warn!(error = %e, "invalid 'ignore configured endpoint URLs' setting");
            None
        })
        .unwrap_or(false);
    if ignore {
        return None;
    }
    EnvConfigValue::new()
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .service_id("STS")
        .load(env, profiles)
        .map(|(url, _)| url.trim().to_string())
        .filter(|url| !url.is_empty())
}

#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a boolean (true or false)")]
struct NotABool(String);

fn parse_bool(s: &str) -> Result<bool, NotABool> {
    match s.trim() {
        v if v.eq_ignore_ascii_case("true") => Ok(true),
        v if v.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(NotABool(other.to_string())),
    }
}

pub(crate) fn long_term(keys: &LongTermKeys) -> Credentials {
    Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.expose(),
        None,
        None,
        PROVIDER_NAME,
    )
}

/// No expiry is given to the SDK: whether the source is still valid is for
/// STS to say (it answers `ExpiredToken`), not for the local clock.
pub(crate) fn temporary(creds: &TemporaryCredentials) -> Credentials {
    Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key().expose(),
        Some(creds.session_token().expose().to_string()),
        None,
        PROVIDER_NAME,
    )
}

pub(crate) fn duration(op: Operation, secs: u64) -> Result<i32, UpstreamError> {
    i32::try_from(secs).map_err(|_| {
        UpstreamError::new(
            UpstreamErrorKind::Config,
            format!("STS {op}: a duration of {secs} s is out of range"),
        )
    })
}

/// The account field of an ARN (`arn:aws:sts::123456789012:assumed-role/...`).
pub(crate) fn account_of(arn: &str) -> Option<String> {
    let account = arn.split(':').nth(4)?;
    (arn.starts_with("arn:") && !account.is_empty()).then(|| account.to_string())
}

pub(crate) fn issued(
    op: Operation,
    creds: Option<aws_sdk_sts::types::Credentials>,
    account_id: Option<String>,
) -> Result<TemporaryCredentials, UpstreamError> {
    let bad = |what: &str| {
        UpstreamError::new(
            UpstreamErrorKind::Unreachable,
            format!("STS {op}: the response {what}"),
        )
    };
    let aws_sdk_sts::types::Credentials {
        access_key_id,
        secret_access_key,
        session_token,
        expiration,
        ..
    } = creds.ok_or_else(|| bad("holds no credentials"))?;
    let expiration = OffsetDateTime::from_unix_timestamp_nanos(expiration.as_nanos())
        .map_err(|_| bad("has an expiration out of range"))?;
    TemporaryCredentials::new(
        access_key_id,
        SecretString::new(secret_access_key),
        SecretString::new(session_token),
        expiration,
        account_id,
    )
    .map_err(|_| bad("holds credentials without a session token"))
}

#[async_trait]
impl Upstream for AwsUpstream {
    async fn get_session_token(
        &self,
        ctx: &CallContext,
        keys: &LongTermKeys,
        mfa: Option<(&str, &SecretString)>,
        duration_secs: u64,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        let op = Operation::GetSessionToken;
        let config = self.call_config(op, ctx, Some(long_term(keys))).await?;
        let out = self
            .client
            .get_session_token()
            .duration_seconds(duration(op, duration_secs)?)
            .set_serial_number(mfa.map(|(serial, _)| serial.to_string()))
            .set_token_code(mfa.map(|(_, code)| code.expose().to_string()))
            .customize()
            .config_override(config)
            .send()
            .await
            .map_err(|e| classify::from_sdk(op, &e))?;
        // GetSessionToken does not say whose keys these are; a virtual MFA
        // device's ARN does, as it lives in the user's account.
        let account = mfa.and_then(|(serial, _)| account_of(serial));
        issued(op, out.credentials, account)
    }

    async fn assume_role(
        &self,
        ctx: &CallContext,
        source: &TemporaryCredentials,
        role: &RoleStep,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        let op = Operation::AssumeRole;
        let config = self.call_config(op, ctx, Some(temporary(source))).await?;
        let out = self
            .client
            .assume_role()
            .role_arn(&role.role_arn)
            .role_session_name(&role.session_name)
            .set_external_id(role.external_id.clone())
            .set_duration_seconds(role.duration_secs.map(|d| duration(op, d)).transpose()?)
            .customize()
            .config_override(config)
            .send()
            .await
            .map_err(|e| classify::from_sdk(op, &e))?;
        let account = out
            .assumed_role_user
            .as_ref()
            .and_then(|u| account_of(&u.arn))
            .or_else(|| account_of(&role.role_arn));
        issued(op, out.credentials, account)
    }

    async fn assume_role_with_web_identity(
        &self,
        ctx: &CallContext,
        role_arn: &str,
        session_name: &str,
        token_file: &str,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        let op = Operation::AssumeRoleWithWebIdentity;
        let token = tokio::fs::read_to_string(token_file)
            .await
            .map(|t| SecretString::new(t.trim()))
            .map_err(|e| {
                UpstreamError::new(
                    UpstreamErrorKind::Source,
                    format!("cannot read the web identity token file {token_file}: {e}"),
                )
            })?;
        if token.is_empty() {
            return Err(UpstreamError::new(
                UpstreamErrorKind::Source,
                format!("the web identity token file {token_file} is empty"),
            ));
        }
        // No credentials: this call is authenticated by the token alone and
        // the SDK sends it unsigned.
        let config = self.call_config(op, ctx, None).await?;
        let out = self
            .client
            .assume_role_with_web_identity()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .web_identity_token(token.expose())
            .customize()
            .config_override(config)
            .send()
            .await
            .map_err(|e| classify::from_sdk(op, &e))?;
        let account = out
            .assumed_role_user
            .as_ref()
            .and_then(|u| account_of(&u.arn))
            .or_else(|| account_of(role_arn));
        issued(op, out.credentials, account)
    }

    async fn credential_process(
        &self,
        ctx: &CallContext,
        command: &str,
    ) -> Result<SourceCredentials, UpstreamError> {
        local::credential_process(&ctx.profile, command, self.command_timeout).await
    }

    async fn environment(&self) -> Result<SourceCredentials, UpstreamError> {
        local::environment(&self.env)
    }

    async fn mfa_code(&self, command: &str) -> Result<SecretString, UpstreamError> {
        local::mfa_code(command, self.command_timeout).await
    }

    async fn caller_identity(
        &self,
        ctx: &CallContext,
        creds: &TemporaryCredentials,
    ) -> Result<CallerIdentity, UpstreamError> {
        let op = Operation::GetCallerIdentity;
        let config = self.call_config(op, ctx, Some(temporary(creds))).await?;
        let out = self
            .client
            .get_caller_identity()
            .customize()
            .config_override(config)
            .send()
            .await
            .map_err(|e| classify::from_sdk(op, &e))?;
        match (out.account, out.arn, out.user_id) {
            (Some(account), Some(arn), Some(user_id)) => Ok(CallerIdentity {
                account,
                arn,
                user_id,
            }),
            _ => Err(UpstreamError::new(
                UpstreamErrorKind::Unreachable,
                format!("STS {op}: the response lacks the account, ARN or user id"),
            )),
        }
    }

    async fn sso_role_credentials(
        &self,
        session: &credd_core::sso::SsoSession,
        access_token: &SecretString,
        account_id: &str,
        role_name: &str,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        self.sso
            .get_role_credentials(session, access_token, account_id, role_name)
            .await
            .map_err(UpstreamError::from)
    }

    async fn sso_refresh_token(
        &self,
        session: &credd_core::sso::SsoSession,
        client: &credd_core::sso::ClientRegistration,
        refresh_token: &SecretString,
    ) -> Result<credd_core::sso::TokenGrant, UpstreamError> {
        self.sso
            .refresh_token(session, client, refresh_token)
            .await
            .map_err(UpstreamError::from)
    }

    async fn sso_register_client(
        &self,
        session: &credd_core::sso::SsoSession,
        request: &credd_core::sso::RegistrationRequest,
    ) -> Result<credd_core::sso::ClientRegistration, UpstreamError> {
        self.sso
            .register_client(session, request)
            .await
            .map_err(UpstreamError::from)
    }

    async fn login_credentials(
        &self,
        ctx: &CallContext,
        login: &credd_core::login::LoginRef,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        self.login.credentials(ctx, login).await
    }

    fn login_stamp(
        &self,
        login: &credd_core::login::LoginRef,
    ) -> Option<credd_core::sso::FileStamp> {
        self.login.cache()?.stamp(&login.session)
    }

    async fn assume_role_with_saml(
        &self,
        ctx: &CallContext,
        spec: &credd_core::login::SamlSpec,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        // In `saml.rs`: the helper's run, its output's checks, the call.
        self.saml_credentials(ctx, spec).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    async fn resolve(env: &[(&str, &str)], config: &str, profile: &str) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, config).unwrap();
        let profile_env = ProfileEnv {
            home: Some(dir.path().to_path_buf()),
            config_file: Some(path),
            credentials_file: None,
        };
        let set = load_profile_set(&profile_env, Some(profile)).await.unwrap();
        endpoint_url(&Env::from_slice(env), Some(&set))
    }

    const CONFIG: &str = "\
[profile plain]
region = eu-west-1

[profile global]
endpoint_url = http://profile-global

[profile both]
endpoint_url = http://profile-global
services = local

[profile ignoring]
endpoint_url = http://profile-global
ignore_configured_endpoint_urls = true

[services local]
sts =
  endpoint_url = http://profile-sts
s3 =
  endpoint_url = http://profile-s3
";

    #[tokio::test]
    async fn endpoint_precedence_follows_the_sdk() {
        let sts_env = ("AWS_ENDPOINT_URL_STS", "http://env-sts");
        let global_env = ("AWS_ENDPOINT_URL", "http://env-global");
        assert_eq!(resolve(&[], CONFIG, "plain").await, None);
        assert_eq!(
            resolve(&[], CONFIG, "global").await.as_deref(),
            Some("http://profile-global")
        );
        assert_eq!(
            resolve(&[], CONFIG, "both").await.as_deref(),
            Some("http://profile-sts"),
            "a [services] entry for sts beats the profile's endpoint_url"
        );
        assert_eq!(
            resolve(&[global_env], CONFIG, "both").await.as_deref(),
            Some("http://env-global"),
            "the environment beats the profile"
        );
        assert_eq!(
            resolve(&[global_env, sts_env], CONFIG, "both")
                .await
                .as_deref(),
            Some("http://env-sts"),
            "the service variable beats the global one"
        );
        assert_eq!(
            resolve(&[sts_env], CONFIG, "plain").await.as_deref(),
            Some("http://env-sts")
        );
    }

    #[tokio::test]
    async fn configured_endpoints_can_be_ignored() {
        let sts_env = ("AWS_ENDPOINT_URL_STS", "http://env-sts");
        let ignore = ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true");
        assert_eq!(resolve(&[sts_env, ignore], CONFIG, "both").await, None);
        assert_eq!(resolve(&[sts_env], CONFIG, "ignoring").await, None);
        assert_eq!(
            resolve(
                &[sts_env, ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "FALSE")],
                CONFIG,
                "ignoring"
            )
            .await
            .as_deref(),
            Some("http://env-sts"),
            "the environment's 'false' beats the profile's 'true'"
        );
        assert_eq!(
            resolve(
                &[sts_env, ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "yes")],
                CONFIG,
                "plain"
            )
            .await
            .as_deref(),
            Some("http://env-sts"),
            "an invalid value is ignored, as the SDKs do"
        );
    }

    #[test]
    fn region_precedence() {
        let ctx = |region: Option<&str>| CallContext {
            profile: "p".into(),
            region: region.map(str::to_string),
        };
        let up = |env: &[(&str, &str)]| {
            AwsUpstream::with_env(ProfileEnv::default(), Env::from_slice(env))
        };
        let both = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "eu-west-2"),
        ];
        assert_eq!(up(&both).region(&ctx(Some("ap-south-1"))), "ap-south-1");
        assert_eq!(up(&both).region(&ctx(None)), "eu-west-1");
        assert_eq!(up(&both[1..]).region(&ctx(Some(" "))), "eu-west-2");
        assert_eq!(up(&[]).region(&ctx(None)), "us-east-1");
    }

    #[test]
    fn accounts_come_from_arns() {
        assert_eq!(
            account_of("arn:aws:sts::123456789012:assumed-role/Dev/credd-dev").as_deref(),
            Some("123456789012")
        );
        assert_eq!(
            account_of("arn:aws:iam::111122223333:mfa/me").as_deref(),
            Some("111122223333")
        );
        assert_eq!(account_of("GAHT12345678"), None);
        assert_eq!(account_of("arn:aws:s3:::bucket"), None);
    }

    #[test]
    fn debug_does_not_show_the_environment() {
        let up = AwsUpstream::with_env(
            ProfileEnv::default(),
            Env::from_slice(&[("AWS_SECRET_ACCESS_KEY", "canary")]),
        );
        assert!(!format!("{up:?}").contains("canary"));
    }
}
