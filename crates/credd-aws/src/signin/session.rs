//! [`LoginSessions`]: `AwsUpstream::login_credentials`, an `aws login`
//! session's credentials from its cache file, refreshed through Sign-In
//! when they are close to expiry.
//!
//! Under the cache directory's lock the file is re-read (a token the CLI or
//! an SDK wrote meanwhile is simply picked up); if its credentials have more
//! than [`LOGIN_REFRESH_MARGIN`] left they are returned as they are;
//! otherwise the file's `refreshToken` is spent with its `dpopKey` and
//! `clientId`, and the rotated token is written back before the lock is
//! released, so a second credd process waiting on the lock reads the new
//! token instead of spending the old one again. botocore takes no lock: its
//! rewrite between our read and our rename is kept (see `login_cache`), and
//! credd refreshing 10 min ahead keeps botocore from refreshing at all.
//!
//! The file I/O and the lock are blocking, so the whole update runs on a
//! blocking thread, which drives the Sign-In call on the runtime's handle.
//! That also means a caller that stops waiting (a retired broker node, a
//! request past its cold wait) never cuts a refresh halfway: once the
//! refresh token is spent, the rotated one still reaches the file.

use crate::login_cache::{LoginCache, LoginCacheError};
use crate::signin::{signin_endpoint_with, Now, SignInClient};
use credd_core::login::{LoginRef, LoginSession, LOGIN_REFRESH_MARGIN};
use credd_core::upstream::CallContext;
use credd_core::{TemporaryCredentials, UpstreamError, UpstreamErrorKind};

/// The login-session side of `AwsUpstream`.
#[derive(Clone, Debug)]
pub(crate) struct LoginSessions {
    /// The reason, when no cache directory can be named (no HOME): every
    /// login profile then fails with it.
    cache: Result<LoginCache, String>,
    client: SignInClient,
    endpoint_override: Option<String>,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`: the region of a profile
    /// without one. No default: a Sign-In session lives in one region, and
    /// botocore fails the same way without one.
    env_region: Option<String>,
    now: NowHolder,
}

#[derive(Clone)]
struct NowHolder(Now);
impl std::fmt::Debug for NowHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Now")
    }
}

impl LoginSessions {
    pub(crate) fn new(
        cache: Result<LoginCache, String>,
        endpoint_override: Option<String>,
        now: Now,
    ) -> Self {
        Self {
            cache,
            client: SignInClient::new(now.clone()),
            endpoint_override,
            env_region: None,
            now: NowHolder(now),
        }
    }

    /// `AwsUpstream`'s: the cache directory, the Sign-In endpoint and the
    /// default region from its environment, the wall clock.
    pub(crate) fn from_env(env: &aws_types::os_shim_internal::Env) -> Self {
        let lookup = |k: &str| env.get(k).ok().filter(|v| !v.trim().is_empty());
        Self {
            env_region: lookup("AWS_REGION").or_else(|| lookup("AWS_DEFAULT_REGION")),
            ..Self::new(
                LoginCache::from_lookup(lookup).map_err(|e| e.to_string()),
                crate::signin::configured_endpoint(&lookup),
                crate::signin::wall_clock(),
            )
        }
    }

    pub(crate) fn cache(&self) -> Option<&LoginCache> {
        self.cache.as_ref().ok()
    }

    pub(crate) async fn credentials(
        &self,
        ctx: &CallContext,
        login: &LoginRef,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        let cache = self
            .cache
            .clone()
            .map_err(|e| UpstreamError::new(UpstreamErrorKind::Config, e))?;
        let this = self.clone();
        let ctx = ctx.clone();
        let login = login.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            this.credentials_blocking(&cache, &handle, &ctx, &login)
        })
        .await
        .map_err(|_| {
            UpstreamError::new(
                UpstreamErrorKind::Source,
                "the login session refresh was interrupted",
            )
        })?
    }

    fn credentials_blocking(
        &self,
        cache: &LoginCache,
        handle: &tokio::runtime::Handle,
        ctx: &CallContext,
        login: &LoginRef,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        let profile = &login.profile;
        let path = cache.path(&login.session);
        let file_error = |e: LoginCacheError| {
            let kind = match e {
                LoginCacheError::Corrupt { .. } => UpstreamErrorKind::LoginRequired,
                _ => UpstreamErrorKind::Source,
            };
            UpstreamError::new(kind, format!("profile '{profile}': {e}"))
        };
        let updated = cache.update(&login.session, |token| -> Result<_, Fail> {
            let Some(token) = token else {
                return Err(Fail::Upstream(UpstreamError::new(
                    UpstreamErrorKind::LoginRequired,
                    no_session_message(profile, &login.session),
                )));
            };
            let now = (self.now.0)();
            let bad = |what: String| {
                UpstreamError::new(
                    UpstreamErrorKind::LoginRequired,
                    format!(
                        "profile '{profile}': {}: {what}; sign in again: run {}",
                        path.display(),
                        LoginSession::login_commands(profile)
                    ),
                )
            };
            if token.expires_at - now > LOGIN_REFRESH_MARGIN {
                return Ok((None, token.credentials().map_err(bad)?));
            }
            let key = token.dpop_key().map_err(|e| bad(e.to_string()))?;
            let endpoint = endpoint_for(
                self.endpoint_override.as_deref(),
                token.sign_in_region.as_deref(),
                ctx.region
                    .as_deref()
                    .filter(|r| !r.trim().is_empty())
                    .or(self.env_region.as_deref()),
            )
            .ok_or_else(|| {
                UpstreamError::new(
                    UpstreamErrorKind::Config,
                    format!(
                        "profile '{profile}': no region to refresh its aws login session in; set `region` in the profile (or AWS_REGION)"
                    ),
                )
            })?;
            let output = handle
                .block_on(self.client.refresh(
                    &endpoint,
                    &key,
                    &token.client_id,
                    &token.refresh_token,
                ))
                .map_err(|e| e.into_upstream(profile))?;
            let fresh = token.refreshed(output, (self.now.0)());
            let creds = fresh.credentials().map_err(bad)?;
            tracing::info!(profile = %profile, expires = %credd_core::format_expiration(fresh.expires_at), "aws login session refreshed");
            Ok((Some(fresh), creds))
        });
        match updated {
            Ok(u) => Ok(u.value),
            Err(Fail::Upstream(e)) => Err(e),
            Err(Fail::Cache(e)) => Err(file_error(e)),
        }
    }
}

/// Where a session is refreshed: the configured Sign-In endpoint as it is,
/// else AWS's in the token's `signInRegion` (the region it was created in),
/// else in the profile's. `None`: no region at all.
pub(crate) fn endpoint_for(
    configured: Option<&str>,
    token_region: Option<&str>,
    profile_region: Option<&str>,
) -> Option<String> {
    let region = [token_region, profile_region]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|r| !r.is_empty());
    match (configured, region) {
        (Some(u), r) => Some(signin_endpoint_with(Some(u.to_string()), r.unwrap_or(""))),
        (None, Some(r)) => Some(signin_endpoint_with(None, r)),
        (None, None) => None,
    }
}

/// An update's failure: the cache file's, or the refresh's.
enum Fail {
    Cache(LoginCacheError),
    Upstream(UpstreamError),
}

impl From<LoginCacheError> for Fail {
    fn from(e: LoginCacheError) -> Self {
        Self::Cache(e)
    }
}

impl From<UpstreamError> for Fail {
    fn from(e: UpstreamError) -> Self {
        Self::Upstream(e)
    }
}

/// No cache file: the session was never signed in here, or was signed out.
pub(crate) fn no_session_message(profile: &str, session: &LoginSession) -> String {
    format!(
        "no aws login session for profile '{profile}' ({}): run {}",
        session.arn,
        LoginSession::login_commands(profile)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_types::os_shim_internal::Env;

    #[test]
    fn the_environment_gives_the_cache_the_endpoint_and_the_default_region() {
        let s = LoginSessions::from_env(&Env::from_slice(&[
            ("HOME", "/h"),
            ("AWS_REGION", " "),
            ("AWS_DEFAULT_REGION", "eu-north-1"),
            ("AWS_ENDPOINT_URL_SIGNIN", "http://127.0.0.1:7"),
        ]));
        assert_eq!(
            s.cache().unwrap().dir(),
            std::path::Path::new("/h/.aws/login/cache")
        );
        assert_eq!(s.env_region.as_deref(), Some("eu-north-1"));
        assert_eq!(s.endpoint_override.as_deref(), Some("http://127.0.0.1:7"));
        let s = LoginSessions::from_env(&Env::from_slice(&[("AWS_REGION", "us-west-2")]));
        assert!(s.cache().is_none(), "no HOME, no cache directory");
        assert_eq!(s.env_region.as_deref(), Some("us-west-2"));
        assert_eq!(s.endpoint_override, None);
    }
}
