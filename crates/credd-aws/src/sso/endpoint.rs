//! Where each Identity Center call goes and how its failures are told: the
//! two services and their operations, endpoint resolution from the
//! environment (the SDKs' `AWS_ENDPOINT_URL_*` rules), the SDK timeouts, and
//! [`Site`], one call's context that turns an SDK error into an [`SsoError`].

use super::*;

/// The two Identity Center services, as the SDKs name them for endpoint
/// configuration (`AWS_ENDPOINT_URL_SSO`, `AWS_ENDPOINT_URL_SSO_OIDC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Service {
    Portal,
    Oidc,
}

impl Service {
    pub(super) fn id(self) -> &'static str {
        match self {
            Self::Portal => "SSO",
            Self::Oidc => "SSO OIDC",
        }
    }
    pub(super) fn env_var(self) -> &'static str {
        match self {
            Self::Portal => "AWS_ENDPOINT_URL_SSO",
            Self::Oidc => "AWS_ENDPOINT_URL_SSO_OIDC",
        }
    }
}

/// Which call failed, named in messages ("SSO GetRoleCredentials").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
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
pub(super) enum Grant {
    Refresh,
    DeviceCode,
    AuthorizationCode,
}

impl Op {
    pub(super) fn service(self) -> Service {
        match self {
            Self::GetRoleCredentials
            | Self::ListAccounts
            | Self::ListAccountRoles
            | Self::Logout => Service::Portal,
            _ => Service::Oidc,
        }
    }
    pub(super) fn name(self) -> &'static str {
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

/// Where one call goes, and how messages name it.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    /// A configured override; `None` leaves the SDK to use AWS's endpoint.
    pub(super) configured: Option<String>,
    /// `scheme://host[:port]`.
    pub(super) base: String,
    pub(super) host: String,
}

/// One call's context for error messages.
pub(super) struct Site<'a> {
    pub(super) op: Op,
    pub(super) session: &'a SsoSession,
    pub(super) endpoint: Endpoint,
    /// What the call is about, for `Denied` ("role R in account A").
    pub(super) subject: Option<String>,
}

pub(super) fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The endpoint override by the SDKs' environment rules: unless
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true, the service's own variable,
/// then `AWS_ENDPOINT_URL`.
pub(super) fn configured_endpoint(env: &Env, service: Service) -> Option<String> {
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

pub(super) fn resolve_endpoint(env: &Env, service: Service, region: &str) -> Endpoint {
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
pub(super) fn aws_endpoint(service: Service, region: &str) -> Option<String> {
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
pub(super) fn now<F: Future>(fut: F) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    match std::pin::pin!(fut).poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// OIDC errors carry their text in `error_description`, which the SDK does
/// not surface generically. Read from an error response only (4xx/5xx),
/// whose body holds no secret.
pub(super) fn error_description<E>(err: &SdkError<E, HttpResponse>) -> Option<String> {
    let response = err.raw_response()?;
    if response.status().as_u16() < 400 {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(response.body().bytes()?).ok()?;
    body.get("error_description")?.as_str().map(str::to_string)
}

pub(super) fn is_dns_failure(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("dns error")
        || d.contains("failed to lookup address")
        || d.contains("name or service not known")
        || d.contains("nodename nor servname")
}

impl Site<'_> {
    /// The command that logs this session in. A legacy session has no name
    /// to pass and the profile is not known here, so only the verb is given.
    pub(super) fn login(&self) -> String {
        match &self.session.name {
            Some(_) => self.session.login_command(""),
            None => "credd login".to_string(),
        }
    }

    pub(super) fn sdk_error<E>(&self, err: &SdkError<E, HttpResponse>) -> SsoError
    where
        E: ProvideErrorMetadata + Error + 'static,
    {
        let description = error_description(err);
        self.classify(&classify::reduce(err), description.as_deref())
    }

    /// A success status whose content is unusable.
    pub(super) fn bad_answer(&self, what: &str) -> SsoError {
        SsoError::Unreachable {
            host: self.endpoint.host.clone(),
            operation: self.op.name(),
            code: None,
            detail: format!("the response {what}"),
            hint: None,
        }
    }

    pub(super) fn grant(
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
    pub(super) fn reach_hint(&self, dns: bool) -> String {
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

    pub(super) fn classify(&self, failure: &Failure<'_>, description: Option<&str>) -> SsoError {
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

    pub(super) fn service_error(
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
