//! Console sign-in and the STS helpers behind `credd console` and `credd
//! decode-message`: `GetFederationToken` (for an IAM user's long-term keys,
//! whose session-token credentials the federation endpoint refuses), the
//! federation endpoint's `getSigninToken`, the login URL, and
//! `DecodeAuthorizationMessage`.
//!
//! The sign-in token and the login URL are bearer secrets (whoever opens the
//! URL within 15 minutes is signed in to the console): both are held in a
//! [`SecretString`], never logged, and errors name only the endpoint's host
//! and the HTTP status, never a URL with its query or a response body.

use crate::classify::{self, Operation};
use crate::sts::AwsUpstream;
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use credd_core::upstream::{CallContext, SourceCredentials};
use credd_core::{
    LongTermKeys, SecretString, TemporaryCredentials, UpstreamError, UpstreamErrorKind,
};
use std::time::Duration;

/// The console's federation endpoint outside tests.
const AWS_FEDERATION: &str = "https://signin.aws.amazon.com/federation";
/// Names credd as the sign-in's issuer (the page the console offers when
/// the session ends).
pub const ISSUER: &str = "credd";
/// The whole `getSigninToken` call, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// More than any sign-in token answer.
const BODY_LIMIT: usize = 64 << 10;
/// The policy passed to `GetFederationToken`: the session's permissions are
/// the intersection of this and the user's own, so allowing everything
/// leaves exactly the user's (as aws-vault does).
pub const ALLOW_ALL_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// The federation endpoint: `{AWS_ENDPOINT_URL_SIGNIN}/federation` when that
/// variable is set (tests point it at the sandbox), else the partition's
/// (by the region: China and GovCloud have their own). `signin_url` is the
/// value of `AWS_ENDPOINT_URL_SIGNIN`, if set.
pub fn federation_endpoint(signin_url: Option<&str>, region: Option<&str>) -> String {
    match signin_url {
        Some(base) if !base.trim().is_empty() => {
            format!("{}/federation", base.trim().trim_end_matches('/'))
        }
        _ => match Partition::of(region) {
            Partition::Aws => AWS_FEDERATION.to_string(),
            Partition::China => "https://signin.amazonaws.cn/federation".to_string(),
            Partition::GovCloud => "https://signin.amazonaws-us-gov.com/federation".to_string(),
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Partition {
    Aws,
    China,
    GovCloud,
}

impl Partition {
    fn of(region: Option<&str>) -> Self {
        match region {
            Some(r) if r.starts_with("cn-") => Self::China,
            Some(r) if r.starts_with("us-gov-") => Self::GovCloud,
            _ => Self::Aws,
        }
    }
}

/// Where the console opens: its home page, or a service's home in a region.
pub fn console_destination(region: Option<&str>, service: Option<&str>) -> String {
    let page = service.unwrap_or("console");
    match (Partition::of(region), region) {
        (Partition::China, Some(r)) => {
            format!("https://console.amazonaws.cn/{page}/home?region={r}")
        }
        (Partition::GovCloud, Some(r)) => {
            format!("https://console.amazonaws-us-gov.com/{page}/home?region={r}")
        }
        (_, Some(r)) => format!("https://{r}.console.aws.amazon.com/{page}/home?region={r}"),
        (_, None) => match service {
            Some(s) => format!("https://console.aws.amazon.com/{s}/home"),
            None => "https://console.aws.amazon.com/".to_string(),
        },
    }
}

/// Why a sign-in token could not be had; never quotes the URL or the body.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("the federation endpoint URL {0} is not a valid URL")]
    BadEndpoint(String),
    #[error("could not reach the federation endpoint at {host}: {detail}")]
    Unreachable { host: String, detail: String },
    #[error("the federation endpoint at {host} did not answer within {} s", CALL_TIMEOUT.as_secs())]
    Timeout { host: String },
    #[error(
        "the federation endpoint at {host} refused the credentials (HTTP {status}): \
         it accepts role and federated-user credentials only"
    )]
    Refused { host: String, status: u16 },
    #[error("the federation endpoint at {host} answered without a sign-in token")]
    BadAnswer { host: String },
}

/// The host part of a URL, for messages.
fn host_of(url: &str) -> String {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "(unparsable URL)".to_string())
}

fn query(endpoint: &str, pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    format!("{endpoint}?{}", q.finish())
}

/// `getSigninToken` for temporary credentials. `session_duration` (900 s to
/// 12 h) applies to role credentials only: a federated user's console
/// session lasts as long as its `GetFederationToken` credentials.
pub async fn signin_token(
    endpoint: &str,
    creds: &TemporaryCredentials,
    session_duration: Option<u64>,
) -> Result<SecretString, FederationError> {
    let host = host_of(endpoint);
    let session = SecretString::new(
        serde_json::json!({
            "sessionId": creds.access_key_id(),
            "sessionKey": creds.secret_access_key().expose(),
            "sessionToken": creds.session_token().expose(),
        })
        .to_string(),
    );
    let duration = session_duration.map(|d| d.to_string());
    let mut pairs = vec![("Action", "getSigninToken")];
    if let Some(d) = &duration {
        pairs.push(("SessionDuration", d));
    }
    pairs.push(("Session", session.expose()));
    let url = SecretString::new(query(endpoint, &pairs));
    let (status, body) = get(url.expose(), &host).await?;
    if status != 200 {
        return Err(FederationError::Refused { host, status });
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "SigninToken")]
        signin_token: String,
    }
    serde_json::from_slice::<Answer>(&body)
        .ok()
        .filter(|a| !a.signin_token.is_empty())
        .map(|a| SecretString::new(a.signin_token))
        .ok_or(FederationError::BadAnswer { host })
}

/// The console login URL for a sign-in token: a secret, like the token.
pub fn login_url(endpoint: &str, token: &SecretString, destination: &str) -> SecretString {
    SecretString::new(query(
        endpoint,
        &[
            ("Action", "login"),
            ("Issuer", ISSUER),
            ("Destination", destination),
            ("SigninToken", token.expose()),
        ],
    ))
}

/// One GET with the SDK's own HTTP client (the same TLS stack as every STS
/// call, so no second HTTP client in credd): the status and at most
/// [`BODY_LIMIT`] bytes of body.
async fn get(url: &str, host: &str) -> Result<(u16, zeroize::Zeroizing<Vec<u8>>), FederationError> {
    use aws_smithy_http_client::tls;
    let request = http::Request::get(url)
        .body(SdkBody::empty())
        .ok()
        .and_then(|r| aws_smithy_runtime_api::http::Request::try_from(r).ok())
        .ok_or_else(|| FederationError::BadEndpoint(host.to_string()))?;
    let connector = aws_smithy_http_client::Connector::builder()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build();
    let call = async {
        let response = connector
            .call(request)
            .await
            .map_err(|e| FederationError::Unreachable {
                host: host.to_string(),
                // A connector error holds no request data.
                detail: classify::short(&e.to_string(), 200),
            })?;
        let status = response.status().as_u16();
        let body = ByteStream::new(response.into_body())
            .collect()
            .await
            .map_err(|_| FederationError::BadAnswer {
                host: host.to_string(),
            })?
            .into_bytes();
        let mut kept = zeroize::Zeroizing::new(body.to_vec());
        kept.truncate(BODY_LIMIT);
        Ok((status, kept))
    };
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| FederationError::Timeout {
            host: host.to_string(),
        })?
}

impl AwsUpstream {
    /// `GetFederationToken` with an IAM user's long-term keys: `name` is the
    /// federated user's name (at most 32 characters of `[\w+=,.@-]`), the
    /// policy [`ALLOW_ALL_POLICY`]. MFA cannot be used with this call.
    pub async fn get_federation_token(
        &self,
        ctx: &CallContext,
        keys: &LongTermKeys,
        name: &str,
        duration_secs: Option<u64>,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        let op = Operation::GetFederationToken;
        let config = self
            .call_config(op, ctx, Some(crate::sts::long_term(keys)))
            .await?;
        let out = self
            .client
            .get_federation_token()
            .name(federated_name(name))
            .policy(ALLOW_ALL_POLICY)
            .set_duration_seconds(
                duration_secs
                    .map(|d| crate::sts::duration(op, d))
                    .transpose()?,
            )
            .customize()
            .config_override(config)
            .send()
            .await
            .map_err(|e| classify::from_sdk(op, &e))?;
        let account = out
            .federated_user
            .as_ref()
            .and_then(|u| crate::sts::account_of(&u.arn));
        crate::sts::issued(op, out.credentials, account)
    }

    /// `DecodeAuthorizationMessage` with the profile's credentials: the
    /// decoded JSON document as STS returned it. An IAM user's long-term
    /// keys are used as they are: `GetSessionToken` credentials may call no
    /// STS API but `AssumeRole` and `GetCallerIdentity`.
    pub async fn decode_authorization_message(
        &self,
        ctx: &CallContext,
        creds: &SourceCredentials,
        message: &str,
    ) -> Result<String, UpstreamError> {
        let op = Operation::DecodeAuthorizationMessage;
        let signing = match creds {
            SourceCredentials::Temporary(t) => crate::sts::temporary(t),
            SourceCredentials::LongTerm(k) => crate::sts::long_term(k),
        };
        let config = self.call_config(op, ctx, Some(signing)).await?;
        let out = self
            .client
            .decode_authorization_message()
            .encoded_message(message)
            .customize()
            .config_override(config)
            .send()
            .await
            .map_err(|e| classify::from_sdk(op, &e))?;
        out.decoded_message.ok_or_else(|| {
            UpstreamError::new(
                UpstreamErrorKind::Unreachable,
                format!("STS {op}: the response holds no decoded message"),
            )
        })
    }
}

/// The long-term keys of `profile` when it is an IAM user's keys and
/// nothing on top (no role, no other source), read from the AWS files: the
/// daemon would serve `GetSessionToken` credentials for it, which the
/// federation endpoint refuses and which may call no STS API but
/// `AssumeRole` and `GetCallerIdentity`. `None` otherwise, or when the
/// profile does not resolve (the daemon then says why).
pub async fn bare_user_keys(
    env: &crate::ProfileEnv,
    profile: &str,
) -> Option<(LongTermKeys, bool)> {
    let loaded = crate::load_profiles(env).await.ok()?;
    let plan = credd_core::profile::resolve(&loaded.raw, profile).ok()?;
    match plan.base {
        credd_core::profile::Base::Session(s) if plan.roles.is_empty() => {
            Some((s.keys, s.mfa.is_some()))
        }
        _ => None,
    }
}

/// A name `GetFederationToken` accepts: the characters it allows (others
/// become `-`), 2 to 32 of them.
pub fn federated_name(name: &str) -> String {
    let mut n: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(32)
        .collect();
    while n.len() < 2 {
        n.push_str("credd");
        n.truncate(32);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_follows_aws_endpoint_url_signin() {
        assert_eq!(federation_endpoint(None, None), AWS_FEDERATION);
        assert_eq!(
            federation_endpoint(Some("http://127.0.0.1:9/"), Some("cn-north-1")),
            "http://127.0.0.1:9/federation"
        );
        assert_eq!(
            federation_endpoint(Some(" "), Some("eu-west-1")),
            AWS_FEDERATION
        );
        assert_eq!(
            federation_endpoint(None, Some("cn-northwest-1")),
            "https://signin.amazonaws.cn/federation"
        );
        assert_eq!(
            federation_endpoint(None, Some("us-gov-west-1")),
            "https://signin.amazonaws-us-gov.com/federation"
        );
    }

    #[test]
    fn destinations() {
        assert_eq!(
            console_destination(Some("eu-west-1"), Some("s3")),
            "https://eu-west-1.console.aws.amazon.com/s3/home?region=eu-west-1"
        );
        assert_eq!(
            console_destination(None, None),
            "https://console.aws.amazon.com/"
        );
        assert_eq!(
            console_destination(Some("us-east-2"), None),
            "https://us-east-2.console.aws.amazon.com/console/home?region=us-east-2"
        );
        assert_eq!(
            console_destination(None, Some("iam")),
            "https://console.aws.amazon.com/iam/home"
        );
        assert_eq!(
            console_destination(Some("cn-north-1"), Some("ec2")),
            "https://console.amazonaws.cn/ec2/home?region=cn-north-1"
        );
        assert_eq!(
            console_destination(Some("us-gov-east-1"), None),
            "https://console.amazonaws-us-gov.com/console/home?region=us-gov-east-1"
        );
    }

    #[test]
    fn the_login_url_encodes_every_part() {
        let url = login_url(
            "https://signin.aws.amazon.com/federation",
            &SecretString::new("tok+en/="),
            "https://console.aws.amazon.com/s3/home?region=x&y=z",
        );
        assert_eq!(
            url.expose(),
            "https://signin.aws.amazon.com/federation?Action=login&Issuer=credd\
             &Destination=https%3A%2F%2Fconsole.aws.amazon.com%2Fs3%2Fhome%3Fregion%3Dx%26y%3Dz\
             &SigninToken=tok%2Ben%2F%3D"
        );
        assert!(!format!("{url:?}").contains("tok"));
    }

    #[test]
    fn federated_names_are_valid() {
        assert_eq!(federated_name("dev"), "dev");
        assert_eq!(federated_name("jane doe/x"), "jane-doe-x");
        assert_eq!(federated_name(""), "credd");
        assert_eq!(federated_name("a"), "acredd");
        assert_eq!(federated_name(&"x".repeat(40)).len(), 32);
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_named_without_the_query() {
        let creds = TemporaryCredentials::new(
            "ASIAX",
            SecretString::new("canary-secret"),
            SecretString::new("canary-token"),
            time::macros::datetime!(2030-01-01 00:00 UTC),
            None,
        )
        .unwrap();
        // Port 9 (discard) on loopback: nothing listens there.
        let e = signin_token("http://127.0.0.1:9/federation", &creds, None)
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("127.0.0.1:9"), "{msg}");
        assert!(!msg.contains("canary"), "{msg}");
    }
}
