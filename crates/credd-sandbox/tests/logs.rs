//! The secret canary: a whole login, refresh, portal and error round, and
//! an `aws login`, SAML and console federation round, with every tracing
//! event captured, checked for tokens, codes, assertions and key secrets.
//!
//! It lives in its own test binary because tracing caches per-callsite
//! interest process-wide: tests running in parallel without a subscriber
//! would make some of these events invisible to the capture, and the
//! canary would pass vacuously or fail at random.

mod support;

use base64::Engine as _;
use credd_sandbox::{pkce_challenge, Sandbox, SandboxConfig, SandboxHandle, CLIENT_SAME_DEVICE};
use serde_json::{json, Value};
use support::Dpop;

async fn send(
    sandbox: &SandboxHandle,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let reply = support::send(sandbox, method, path, headers, body).await;
    (reply.status, reply.body)
}

async fn post_json(sandbox: &SandboxHandle, path: &str, body: Value) -> (u16, Value) {
    let reply = support::post_json(sandbox, path, body).await;
    (
        reply.status,
        serde_json::from_str(&reply.body).unwrap_or(Value::Null),
    )
}

async fn signin_token(sandbox: &SandboxHandle, key: &Dpop, body: Value) -> (u16, Value) {
    let proof = key.fresh(sandbox);
    let headers = [
        ("content-type", "application/json"),
        ("dpop", proof.as_str()),
    ];
    let (status, body) = send(sandbox, "POST", "/v1/token", &headers, &body.to_string()).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// An `aws login`, a refresh, a reuse, a SAML assumption and a console
/// federation round: every secret of issue 13 the sandbox sees.
async fn issue_13_secrets(sandbox: &SandboxHandle) -> Vec<String> {
    let verifier = "v".repeat(64);
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_SAME_DEVICE)
        .append_pair("state", "s")
        .append_pair("code_challenge_method", "SHA-256")
        .append_pair("scope", "openid")
        .append_pair("redirect_uri", "http://127.0.0.1:9/oauth/callback")
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .finish();
    let reply = support::send(sandbox, "GET", &format!("/v1/authorize?{query}"), &[], "").await;
    let location = reply.headers["location"].to_str().unwrap().to_owned();
    let code = form_urlencoded::parse(location.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let key = Dpop::new();
    let (status, out) = signin_token(
        sandbox,
        &key,
        json!({
            "clientId": CLIENT_SAME_DEVICE, "grantType": "authorization_code", "code": code,
            "codeVerifier": verifier, "redirectUri": "http://127.0.0.1:9/oauth/callback",
        }),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let first = out["refreshToken"].as_str().unwrap().to_owned();
    let refresh = |token: &str| json!({ "clientId": CLIENT_SAME_DEVICE, "grantType": "refresh_token", "refreshToken": token });
    let (status, next) = signin_token(sandbox, &key, refresh(&first)).await;
    assert_eq!(status, 200);
    // Refused refreshes: another key, then reuse, which revokes the family.
    assert_eq!(
        signin_token(sandbox, &Dpop::new(), refresh(&first)).await.0,
        400
    );
    assert_eq!(signin_token(sandbox, &key, refresh(&first)).await.0, 400);

    let assertion = base64::engine::general_purpose::STANDARD.encode(
        "<Response><Assertion><Attribute Name=\"https://aws.amazon.com/SAML/Attributes/Role\"><AttributeValue>arn:aws:iam::111122223333:role/R,arn:aws:iam::111122223333:saml-provider/P</AttributeValue></Attribute><Attribute Name=\"https://aws.amazon.com/SAML/Attributes/RoleSessionName\"><AttributeValue>dev</AttributeValue></Attribute></Assertion></Response>",
    );
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithSAML")
        .append_pair("RoleArn", "arn:aws:iam::111122223333:role/R")
        .append_pair("PrincipalArn", "arn:aws:iam::111122223333:saml-provider/P")
        .append_pair("SAMLAssertion", &assertion)
        .finish();
    let role = support::sts(sandbox, None, &form).await;
    assert_eq!(role.status, 200, "{}", role.body);
    let session = json!({
        "sessionId": role.xml("AccessKeyId"),
        "sessionKey": role.xml("SecretAccessKey"),
        "sessionToken": role.xml("SessionToken"),
    });
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "getSigninToken")
        .append_pair("Session", &session.to_string())
        .finish();
    let (status, body) = send(sandbox, "GET", &format!("/federation?{query}"), &[], "").await;
    assert_eq!(status, 200, "{body}");
    let signin: Value = serde_json::from_str(&body).unwrap();
    let signin = signin["SigninToken"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let path = format!("/federation?Action=login&Issuer=i&Destination=https%3A%2F%2Fconsole.aws.amazon.com%2F&SigninToken={signin}");
        send(sandbox, "GET", &path, &[], "").await;
    }
    vec![
        code,
        first,
        next["refreshToken"].as_str().unwrap().to_owned(),
        out["accessToken"]["secretAccessKey"]
            .as_str()
            .unwrap()
            .to_owned(),
        out["accessToken"]["sessionToken"]
            .as_str()
            .unwrap()
            .to_owned(),
        assertion,
        role.xml("SecretAccessKey"),
        role.xml("SessionToken"),
        signin,
    ]
}

/// Collects everything tracing writes, for the secret-canary test.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_or_key_secret_reaches_the_logs() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // The current-thread test runtime runs the server tasks on this thread,
    // so a thread-local subscriber sees their events too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let (_, client) = post_json(
        &sandbox,
        "/client/register",
        json!({ "clientName": "t", "clientType": "public", "scopes": ["sso:account:access"] }),
    )
    .await;
    let (id, secret) = (
        client["clientId"].as_str().unwrap(),
        client["clientSecret"].as_str().unwrap(),
    );
    let (_, device) = post_json(
        &sandbox,
        "/device_authorization",
        json!({ "clientId": id, "clientSecret": secret, "startUrl": "https://x" }),
    )
    .await;
    assert_eq!(sandbox.approve_pending(), 1);
    let (status, token) = post_json(&sandbox, "/token", json!({
        "clientId": id, "clientSecret": secret,
        "grantType": "urn:ietf:params:oauth:grant-type:device_code", "deviceCode": device["deviceCode"],
    })).await;
    assert_eq!(status, 200);
    let access = token["accessToken"].as_str().unwrap();
    let refresh_token = token["refreshToken"].as_str().unwrap();
    let (status, creds) = send(
        &sandbox,
        "GET",
        "/federation/credentials?role_name=ReadOnly&account_id=111122223333",
        &[("x-amz-sso_bearer_token", access)],
        "",
    )
    .await;
    assert_eq!(status, 200);
    let creds: Value = serde_json::from_str(&creds).unwrap();
    let (status, _) = post_json(&sandbox, "/token", json!({
        "clientId": id, "clientSecret": secret, "grantType": "refresh_token", "refreshToken": "not-a-token",
    })).await;
    assert_eq!(status, 400);
    sandbox.end_session();
    let (status, _) = send(
        &sandbox,
        "GET",
        "/assignment/accounts",
        &[("x-amz-sso_bearer_token", access)],
        "",
    )
    .await;
    assert_eq!(status, 401);
    let issue_13 = issue_13_secrets(&sandbox).await;

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("sandbox request"),
        "the canary must see the request logs: {logged}"
    );
    for secret in [
        secret,
        access,
        refresh_token,
        creds["roleCredentials"]["secretAccessKey"]
            .as_str()
            .unwrap(),
        creds["roleCredentials"]["sessionToken"].as_str().unwrap(),
    ]
    .into_iter()
    .chain(issue_13.iter().map(String::as_str))
    {
        assert!(!logged.contains(secret), "a secret reached the logs");
    }
}
