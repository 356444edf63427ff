//! [`SsoClient`]'s and [`AwsUpstream`]'s Identity Center calls against a
//! canned local HTTP server: what each request carries (path, query, bearer
//! header, JSON body, no signature), how answers become credentials, tokens
//! and registrations, how pages are followed, and how error responses become
//! classified errors without secrets. Behaviour against a full fake of the
//! services is the sandbox's and the end-to-end suite's job.

use crate::fake_http::{Canned, FakeServer};
use crate::profiles::ProfileEnv;
use crate::sso::{PollOutcome, SsoClient, SsoError};
use crate::sts::AwsUpstream;
use aws_types::os_shim_internal::Env;
use credd_core::sso::{ClientRegistration, RegistrationRequest, SsoSession};
use credd_core::{SecretString, Upstream, UpstreamErrorKind};
use std::sync::Mutex;
use time::macros::datetime;

fn ok(body: &str) -> Canned {
    Canned {
        status: 200,
        content_type: "application/json",
        headers: vec![],
        body: body.to_string(),
    }
}

/// An error as the services send it: the shape's name in `x-amzn-ErrorType`.
fn error(status: u16, code: &str, body: &str) -> Canned {
    Canned {
        status,
        content_type: "application/json",
        headers: vec![("x-amzn-ErrorType".into(), code.into())],
        body: body.to_string(),
    }
}

/// A canned portal and OIDC, and clients pointed at it.
struct Fake(FakeServer);

impl std::ops::Deref for Fake {
    type Target = FakeServer;
    fn deref(&self) -> &FakeServer {
        &self.0
    }
}

impl Fake {
    async fn start(responses: Vec<Canned>) -> Self {
        Self(FakeServer::start(responses).await)
    }

    /// A client whose portal and OIDC calls both come here.
    fn client(&self) -> SsoClient {
        SsoClient::with_env(Env::from_slice(&[("AWS_ENDPOINT_URL", &self.url)]))
    }
}

fn work() -> SsoSession {
    SsoSession {
        name: Some("work".into()),
        start_url: "https://d-1234567890.awsapps.com/start".into(),
        region: "eu-west-1".into(),
        scopes: Some(vec!["sso:account:access".into()]),
        session_length: None,
    }
}

fn registration() -> ClientRegistration {
    ClientRegistration {
        client_id: "client-1".into(),
        client_secret: SecretString::new("canary-client-secret"),
        expires_at: datetime!(2027-02-21 12:00 UTC),
        scopes: None,
        grant_types: None,
    }
}

fn access_token() -> SecretString {
    SecretString::new("canary-access-token")
}

/// Every way an error can be shown, checked for canary secrets.
fn assert_no_secret(e: &SsoError) {
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("canary"), "{shown}");
}

const ROLE_CREDENTIALS: &str = r#"{"roleCredentials": {"accessKeyId": "ASIAROLE", "secretAccessKey": "role-secret", "sessionToken": "role-token", "expiration": 1795521600000}}"#;

#[tokio::test]
async fn get_role_credentials_request_and_epoch_millisecond_expiry() {
    let fake = Fake::start(vec![ok(ROLE_CREDENTIALS)]).await;
    let creds = fake
        .client()
        .get_role_credentials(&work(), &access_token(), "111122223333", "PowerUser Access")
        .await
        .unwrap();
    assert_eq!(creds.access_key_id(), "ASIAROLE");
    assert_eq!(creds.secret_access_key().expose(), "role-secret");
    assert_eq!(creds.session_token().expose(), "role-token");
    // 1795521600000 ms after the epoch.
    assert_eq!(creds.expiration(), datetime!(2026-11-24 12:00 UTC));
    assert_eq!(creds.account_id(), Some("111122223333"));

    let req = &fake.requests()[0];
    assert_eq!(req.method, "GET");
    assert_eq!(req.path(), "/federation/credentials");
    assert_eq!(
        req.query("role_name").as_deref(),
        Some("PowerUser%20Access")
    );
    assert_eq!(req.query("account_id").as_deref(), Some("111122223333"));
    assert_eq!(
        req.header("x-amz-sso_bearer_token"),
        Some("canary-access-token")
    );
    assert_eq!(req.header("authorization"), None, "the portal is unsigned");
}

#[tokio::test]
async fn a_refused_access_token_means_login() {
    let fake = Fake::start(vec![error(
        401,
        "UnauthorizedException",
        r#"{"message": "Session token not found or invalid"}"#,
    )])
    .await;
    let e = fake
        .client()
        .get_role_credentials(&work(), &access_token(), "111122223333", "Admin")
        .await
        .unwrap_err();
    assert!(matches!(e, SsoError::LoginRequired { .. }), "{e:?}");
    assert_no_secret(&e);
    assert_eq!(fake.requests().len(), 1, "a 401 is not retried");

    // Through the daemon's trait, with its own environment.
    let up = AwsUpstream::with_env(
        ProfileEnv::default(),
        Env::from_slice(&[("AWS_ENDPOINT_URL_SSO", &fake.url)]),
    );
    let e = up
        .sso_role_credentials(&work(), &access_token(), "111122223333", "Admin")
        .await
        .unwrap_err();
    assert_eq!(e.kind, UpstreamErrorKind::LoginRequired);
    assert_eq!(e.code.as_deref(), Some("UnauthorizedException"));
    assert!(
        e.message
            .starts_with("the IAM Identity Center token of session 'work' was refused"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("canary"), "{}", e.message);
}

#[tokio::test]
async fn forbidden_and_throttled_roles() {
    let fake = Fake::start(vec![error(
        403,
        "ForbiddenException",
        r#"{"message": "No access"}"#,
    )])
    .await;
    let e = fake
        .client()
        .get_role_credentials(&work(), &access_token(), "111122223333", "Admin")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), UpstreamErrorKind::Denied);
    assert!(
        e.to_string()
            .starts_with("no access to role Admin in account 111122223333"),
        "{e}"
    );

    let fake = Fake::start(vec![error(
        429,
        "TooManyRequestsException",
        r#"{"message": "slow"}"#,
    )])
    .await;
    let e = fake
        .client()
        .get_role_credentials(&work(), &access_token(), "111122223333", "Admin")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), UpstreamErrorKind::Throttled);
}

const TOKEN: &str = r#"{"accessToken": "new-access", "tokenType": "Bearer", "expiresIn": 28800, "refreshToken": "new-refresh"}"#;

#[tokio::test]
async fn refresh_sends_the_refresh_grant() {
    let fake = Fake::start(vec![ok(TOKEN)]).await;
    let up = AwsUpstream::with_env(
        ProfileEnv::default(),
        Env::from_slice(&[("AWS_ENDPOINT_URL_SSO_OIDC", &fake.url)]),
    );
    let grant = up
        .sso_refresh_token(
            &work(),
            &registration(),
            &SecretString::new("canary-refresh-token"),
        )
        .await
        .unwrap();
    assert_eq!(grant.access_token.expose(), "new-access");
    assert_eq!(grant.expires_in_secs, 28800);
    assert_eq!(
        grant.refresh_token.as_ref().map(SecretString::expose),
        Some("new-refresh")
    );

    let req = &fake.requests()[0];
    assert_eq!((req.method.as_str(), req.path()), ("POST", "/token"));
    assert_eq!(req.header("authorization"), None, "OIDC is unsigned");
    let body = req.json();
    assert_eq!(body["grantType"], "refresh_token");
    assert_eq!(body["clientId"], "client-1");
    assert_eq!(body["clientSecret"], "canary-client-secret");
    assert_eq!(body["refreshToken"], "canary-refresh-token");
}

#[tokio::test]
async fn a_refused_refresh_token_means_login() {
    let fake = Fake::start(vec![error(
        400,
        "InvalidGrantException",
        r#"{"error": "invalid_grant", "error_description": "Invalid grant provided"}"#,
    )])
    .await;
    let refresh_token = SecretString::new("canary-refresh-token");
    let e = fake
        .client()
        .refresh_token(&work(), &registration(), &refresh_token)
        .await
        .unwrap_err();
    assert!(e.is_login_required(), "{e:?}");
    assert_eq!(e.code(), Some("InvalidGrantException"));
    assert_eq!(
        e.to_string(),
        "IAM Identity Center session 'work' has ended (its refresh token was refused): \
         run `credd login work` \
         (SSO OIDC CreateToken: InvalidGrantException: Invalid grant provided)"
    );
    assert_no_secret(&e);

    let up = AwsUpstream::with_env(
        ProfileEnv::default(),
        Env::from_slice(&[("AWS_ENDPOINT_URL", &fake.url)]),
    );
    let e = up
        .sso_refresh_token(&work(), &registration(), &refresh_token)
        .await
        .unwrap_err();
    assert_eq!(e.kind, UpstreamErrorKind::LoginRequired);
    assert!(!e.kind.retryable());
}

#[tokio::test]
async fn register_client_request_and_epoch_second_expiry() {
    let fake = Fake::start(vec![ok(
        r#"{"clientId": "client-2", "clientSecret": "secret-2", "clientIdIssuedAt": 1763812800, "clientSecretExpiresAt": 1771588800}"#,
    )])
    .await;
    let session = work();
    let request = RegistrationRequest::auth_code(&session);
    let up = AwsUpstream::with_env(
        ProfileEnv::default(),
        Env::from_slice(&[("AWS_ENDPOINT_URL_SSO_OIDC", &fake.url)]),
    );
    let registration = up.sso_register_client(&session, &request).await.unwrap();
    assert_eq!(registration.client_id, "client-2");
    assert_eq!(registration.client_secret.expose(), "secret-2");
    assert_eq!(registration.expires_at, datetime!(2026-02-20 12:00 UTC));
    assert_eq!(registration.scopes, Some(request.scopes.clone()));
    assert_eq!(registration.grant_types, Some(request.grant_types.clone()));

    let req = &fake.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.path()),
        ("POST", "/client/register")
    );
    let body = req.json();
    assert_eq!(body["clientName"], "credd-work");
    assert_eq!(body["clientType"], "public");
    assert_eq!(body["scopes"], serde_json::json!(["sso:account:access"]));
    assert_eq!(
        body["grantTypes"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        body["redirectUris"],
        serde_json::json!(["http://127.0.0.1/oauth/callback"])
    );
    assert_eq!(body["issuerUrl"], "https://d-1234567890.awsapps.com/start");

    // The device-code registration sends no redirect URIs and no issuer.
    let fake = Fake::start(vec![ok(
        r#"{"clientId": "c", "clientSecret": "s", "clientSecretExpiresAt": 1771588800}"#,
    )])
    .await;
    fake.client()
        .register_client(&session, &RegistrationRequest::device_code(&session))
        .await
        .unwrap();
    let body = fake.requests()[0].json();
    assert!(body.get("redirectUris").is_none(), "{body}");
    assert!(body.get("issuerUrl").is_none(), "{body}");
}

#[tokio::test]
async fn device_code_login_polls_one_call_at_a_time() {
    let fake = Fake::start(vec![
        ok(r#"{"deviceCode": "canary-device-code", "userCode": "ABCD-EFGH", "verificationUri": "https://device.sso.eu-west-1.amazonaws.com/", "verificationUriComplete": "https://device.sso.eu-west-1.amazonaws.com/?user_code=ABCD-EFGH", "expiresIn": 600, "interval": 1}"#),
        error(400, "AuthorizationPendingException", r#"{"error": "authorization_pending"}"#),
        error(400, "SlowDownException", r#"{"error": "slow_down"}"#),
        ok(TOKEN),
        error(400, "ExpiredTokenException", r#"{"error": "expired_token"}"#),
        error(400, "AccessDeniedException", r#"{"error": "access_denied"}"#),
    ])
    .await;
    let client = fake.client();
    let session = work();
    let auth = client
        .start_device_authorization(&session, &registration())
        .await
        .unwrap();
    assert_eq!(auth.device_code.expose(), "canary-device-code");
    assert_eq!(auth.user_code, "ABCD-EFGH");
    assert_eq!(auth.expires_in_secs, 600);
    assert_eq!(auth.interval_secs, 1);
    assert!(auth.verification_uri_complete.is_some());
    assert!(!format!("{auth:?}").contains("canary"));
    let reqs = fake.requests();
    assert_eq!(reqs[0].path(), "/device_authorization");
    assert_eq!(reqs[0].json()["startUrl"], session.start_url);

    let registration = registration();
    let poll = || client.poll_device_token(&session, &registration, &auth);
    assert!(matches!(poll().await.unwrap(), PollOutcome::Pending));
    assert!(matches!(poll().await.unwrap(), PollOutcome::SlowDown));
    let PollOutcome::Granted(grant) = poll().await.unwrap() else {
        panic!("not granted");
    };
    assert_eq!(grant.access_token.expose(), "new-access");
    let e = poll().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "the sign-in request expired: run `credd login work` again"
    );
    let e = poll().await.unwrap_err();
    assert_eq!(e.to_string(), "sign-in was denied in the browser");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 6, "one CreateToken per poll");
    let body = reqs[1].json();
    assert_eq!(
        body["grantType"],
        "urn:ietf:params:oauth:grant-type:device_code"
    );
    assert_eq!(body["deviceCode"], "canary-device-code");
}

#[tokio::test]
async fn authorization_code_exchange() {
    let fake = Fake::start(vec![ok(TOKEN)]).await;
    let grant = fake
        .client()
        .create_token_auth_code(
            &work(),
            &registration(),
            "canary-code",
            &SecretString::new("canary-verifier"),
            "http://127.0.0.1:4321/oauth/callback",
        )
        .await
        .unwrap();
    assert_eq!(grant.access_token.expose(), "new-access");
    let body = fake.requests()[0].json();
    assert_eq!(body["grantType"], "authorization_code");
    assert_eq!(body["code"], "canary-code");
    assert_eq!(body["codeVerifier"], "canary-verifier");
    assert_eq!(body["redirectUri"], "http://127.0.0.1:4321/oauth/callback");
}

#[tokio::test]
async fn accounts_and_roles_follow_every_page() {
    let fake = Fake::start(vec![
        ok(r#"{"nextToken": "page-2", "accountList": [{"accountId": "111122223333", "accountName": "dev", "emailAddress": "dev@example.com"}]}"#),
        ok(r#"{"accountList": [{"accountId": "444455556666", "accountName": "prod"}]}"#),
        ok(r#"{"nextToken": "r2", "roleList": [{"roleName": "Admin", "accountId": "111122223333"}]}"#),
        ok(r#"{"nextToken": "r2", "roleList": [{"roleName": "ReadOnly", "accountId": "111122223333"}]}"#),
    ])
    .await;
    let client = fake.client();
    let seen = Mutex::new(Vec::new());
    let progress = |n: usize| seen.lock().unwrap().push(n);
    let accounts = client
        .list_accounts(&work(), &access_token(), Some(&progress))
        .await
        .unwrap();
    assert_eq!(
        accounts
            .iter()
            .map(|a| (a.id.as_str(), a.name.as_deref(), a.email.as_deref()))
            .collect::<Vec<_>>(),
        [
            ("111122223333", Some("dev"), Some("dev@example.com")),
            ("444455556666", Some("prod"), None)
        ]
    );
    assert_eq!(*seen.lock().unwrap(), [1, 2]);

    let roles = client
        .list_account_roles(&work(), &access_token(), "111122223333")
        .await
        .unwrap();
    assert_eq!(
        roles,
        ["Admin", "ReadOnly"],
        "a repeated page token ends the listing"
    );

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[0].path(), "/assignment/accounts");
    assert_eq!(reqs[0].query("next_token"), None);
    assert_eq!(reqs[1].query("next_token").as_deref(), Some("page-2"));
    assert_eq!(
        reqs[1].header("x-amz-sso_bearer_token"),
        Some("canary-access-token")
    );
    assert_eq!(reqs[2].path(), "/assignment/roles");
    assert_eq!(reqs[2].query("account_id").as_deref(), Some("111122223333"));
    assert_eq!(reqs[3].query("next_token").as_deref(), Some("r2"));
}

#[tokio::test]
async fn logout_posts_the_token() {
    let fake = Fake::start(vec![ok("")]).await;
    fake.client()
        .logout(&work(), &access_token())
        .await
        .unwrap();
    let req = &fake.requests()[0];
    assert_eq!((req.method.as_str(), req.path()), ("POST", "/logout"));
    assert_eq!(
        req.header("x-amz-sso_bearer_token"),
        Some("canary-access-token")
    );
}

#[tokio::test]
async fn each_service_honours_its_own_endpoint_override() {
    let portal = Fake::start(vec![ok(ROLE_CREDENTIALS)]).await;
    let oidc = Fake::start(vec![ok(TOKEN)]).await;
    let client = SsoClient::with_env(Env::from_slice(&[
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_ENDPOINT_URL_SSO", &portal.url),
        ("AWS_ENDPOINT_URL_SSO_OIDC", &oidc.url),
    ]));
    client
        .get_role_credentials(&work(), &access_token(), "111122223333", "Admin")
        .await
        .unwrap();
    client
        .refresh_token(&work(), &registration(), &SecretString::new("r"))
        .await
        .unwrap();
    assert_eq!(portal.requests().len(), 1);
    assert_eq!(portal.requests()[0].path(), "/federation/credentials");
    assert_eq!(oidc.requests().len(), 1);
    assert_eq!(oidc.requests()[0].path(), "/token");
}

#[tokio::test]
async fn an_unreachable_endpoint_names_the_host() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = SsoClient::with_env(Env::from_slice(&[(
        "AWS_ENDPOINT_URL_SSO",
        &format!("http://{addr}"),
    )]));
    let e = client
        .get_role_credentials(&work(), &access_token(), "111122223333", "Admin")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), UpstreamErrorKind::Unreachable, "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("SSO GetRoleCredentials: could not reach {addr}: ")),
        "{e}"
    );
    assert!(
        e.to_string().ends_with(
            "is the endpoint override (AWS_ENDPOINT_URL_SSO or AWS_ENDPOINT_URL) right?"
        ),
        "{e}"
    );
    assert_no_secret(&e);
}

#[tokio::test]
async fn a_non_sso_answer_is_explained() {
    let fake = Fake::start(vec![ok("<html>captive portal</html>")]).await;
    let e = fake
        .client()
        .get_role_credentials(&work(), &access_token(), "111122223333", "Admin")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), UpstreamErrorKind::Unreachable, "{e}");
    assert!(
        e.to_string()
            .contains("is not an IAM Identity Center response"),
        "{e}"
    );
}
