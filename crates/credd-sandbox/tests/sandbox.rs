//! Raw-HTTP tests of the sandbox's three services and its control API,
//! against a server started on 127.0.0.1:0, with a tiny hyper client so that
//! what is checked is exactly what goes over the wire.

mod support;

use credd_sandbox::{
    pkce_challenge, totp_code, Fault, FaultKind, Sandbox, SandboxConfig, SandboxHandle,
    DEMO_ACCESS_KEY_ID,
};
use serde_json::{json, Value};
use std::time::Duration;
use support::{get_with_token, post_json, send, sts, Reply};

struct Client {
    id: String,
    secret: String,
}

async fn register(sandbox: &SandboxHandle, extra: Value) -> Client {
    let mut body =
        json!({ "clientName": "test", "clientType": "public", "scopes": ["sso:account:access"] });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let reply = post_json(sandbox, "/client/register", body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    Client {
        id: v["clientId"].as_str().unwrap().to_owned(),
        secret: v["clientSecret"].as_str().unwrap().to_owned(),
    }
}

async fn start_device(sandbox: &SandboxHandle, client: &Client) -> Value {
    let reply = post_json(
        sandbox,
        "/device_authorization",
        json!({ "clientId": client.id, "clientSecret": client.secret, "startUrl": "https://d-123.awsapps.com/start" }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

async fn poll(sandbox: &SandboxHandle, client: &Client, device_code: &str) -> Reply {
    post_json(
        sandbox,
        "/token",
        json!({
            "clientId": client.id,
            "clientSecret": client.secret,
            "grantType": "urn:ietf:params:oauth:grant-type:device_code",
            "deviceCode": device_code,
        }),
    )
    .await
}

async fn refresh(sandbox: &SandboxHandle, client: &Client, refresh_token: &str) -> Reply {
    post_json(
        sandbox,
        "/token",
        json!({
            "clientId": client.id,
            "clientSecret": client.secret,
            "grantType": "refresh_token",
            "refreshToken": refresh_token,
        }),
    )
    .await
}

/// A full device-code login, approved through the handle; returns the
/// CreateToken body.
async fn device_login(sandbox: &SandboxHandle, client: &Client) -> Value {
    let device = start_device(sandbox, client).await;
    assert_eq!(sandbox.approve_pending(), 1);
    let reply = poll(sandbox, client, device["deviceCode"].as_str().unwrap()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

#[tokio::test]
async fn device_flow_is_pending_until_approved_then_issues_tokens_once() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let client = register(&sandbox, json!({})).await;
    let device = start_device(&sandbox, &client).await;
    let user_code = device["userCode"].as_str().unwrap();
    assert_eq!(
        device["verificationUriComplete"],
        format!("{}/device?user_code={user_code}", sandbox.url())
    );
    assert_eq!(device["expiresIn"], 600);
    assert_eq!(device["interval"], 1);
    let code = device["deviceCode"].as_str().unwrap();

    let pending = poll(&sandbox, &client, code).await;
    assert_eq!(pending.status, 400);
    assert_eq!(pending.error_type(), "AuthorizationPendingException");
    assert_eq!(pending.json()["error"], "authorization_pending");

    // The browser leg: a GET on the verification URI approves.
    let page = send(
        &sandbox,
        "GET",
        &format!("/device?user_code={user_code}"),
        &[],
        "",
    )
    .await;
    assert_eq!(page.status, 200);
    let token = poll(&sandbox, &client, code).await;
    assert_eq!(token.status, 200, "{}", token.body);
    let token = token.json();
    assert_eq!(token["tokenType"], "Bearer");
    assert_eq!(token["expiresIn"], 3600);
    assert!(token["accessToken"].as_str().unwrap().len() > 64);
    assert!(token["refreshToken"].as_str().unwrap().len() > 64);

    let again = poll(&sandbox, &client, code).await;
    assert_eq!(again.error_type(), "InvalidGrantException");
}

#[tokio::test]
async fn device_flow_denied_expired_and_slow_down() {
    let sandbox = Sandbox::start(SandboxConfig {
        enforce_slow_down: true,
        device_poll_interval: Duration::from_secs(5),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let client = register(&sandbox, json!({})).await;

    let device = start_device(&sandbox, &client).await;
    let code = device["deviceCode"].as_str().unwrap();
    assert_eq!(
        poll(&sandbox, &client, code).await.error_type(),
        "AuthorizationPendingException"
    );
    let fast = poll(&sandbox, &client, code).await;
    assert_eq!(fast.status, 400);
    assert_eq!(fast.error_type(), "SlowDownException");
    assert_eq!(fast.json()["error"], "slow_down");
    sandbox.advance_clock(Duration::from_secs(6));
    assert_eq!(
        poll(&sandbox, &client, code).await.error_type(),
        "AuthorizationPendingException"
    );
    sandbox.advance_clock(Duration::from_secs(600));
    let expired = poll(&sandbox, &client, code).await;
    assert_eq!(expired.error_type(), "ExpiredTokenException");
    assert_eq!(expired.json()["error"], "expired_token");

    let device = start_device(&sandbox, &client).await;
    assert_eq!(sandbox.deny_pending(), 1);
    let denied = poll(&sandbox, &client, device["deviceCode"].as_str().unwrap()).await;
    assert_eq!(denied.error_type(), "AccessDeniedException");
    assert_eq!(denied.json()["error"], "access_denied");
}

#[tokio::test]
async fn wrong_client_secret_is_invalid_client_401() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let client = register(&sandbox, json!({})).await;
    let reply = post_json(
        &sandbox,
        "/device_authorization",
        json!({ "clientId": client.id, "clientSecret": "nope", "startUrl": "https://x" }),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error_type(), "InvalidClientException");
    assert_eq!(reply.json()["error"], "invalid_client");
}

/// Registers an authorization-code client and runs `/authorize`, returning
/// the client and the redirect's `Location`.
async fn authorize(sandbox: &SandboxHandle, challenge: &str) -> (Client, String) {
    let client = register(
        sandbox,
        json!({
            "grantTypes": ["authorization_code", "refresh_token"],
            "redirectUris": ["http://127.0.0.1/oauth/callback"],
            "issuerUrl": "https://d-123.awsapps.com/start",
        }),
    )
    .await;
    let path = format!(
        "/authorize?response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A4567%2Foauth%2Fcallback&state=st-1&code_challenge_method=S256&scopes=sso%3Aaccount%3Aaccess&code_challenge={challenge}",
        client.id
    );
    let reply = send(sandbox, "GET", &path, &[], "").await;
    assert_eq!(reply.status, 302, "{}", reply.body);
    let location = reply.headers["location"].to_str().unwrap().to_owned();
    (client, location)
}

fn query_value(location: &str, name: &str) -> String {
    let query = location.split_once('?').unwrap().1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn redeem(sandbox: &SandboxHandle, client: &Client, code: &str, verifier: &str) -> Reply {
    post_json(
        sandbox,
        "/token",
        json!({
            "clientId": client.id,
            "clientSecret": client.secret,
            "grantType": "authorization_code",
            "code": code,
            "codeVerifier": verifier,
            "redirectUri": "http://127.0.0.1:4567/oauth/callback",
        }),
    )
    .await
}

#[tokio::test]
async fn pkce_authorization_code_happy_path_and_wrong_verifier() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let verifier = "a-verifier-that-is-long-enough-for-rfc-7636-0123456789";
    // The RFC 7636 appendix B pair pins the S256 transform itself.
    assert_eq!(
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    let (client, location) = authorize(&sandbox, &pkce_challenge(verifier)).await;
    assert!(
        location.starts_with("http://127.0.0.1:4567/oauth/callback?code="),
        "{location}"
    );
    assert_eq!(query_value(&location, "state"), "st-1");
    let code = query_value(&location, "code");
    let token = redeem(&sandbox, &client, &code, verifier).await;
    assert_eq!(token.status, 200, "{}", token.body);
    assert!(token.json()["refreshToken"].is_string());
    // Codes are single-use.
    assert_eq!(
        redeem(&sandbox, &client, &code, verifier)
            .await
            .error_type(),
        "InvalidGrantException"
    );

    let (client, location) = authorize(&sandbox, &pkce_challenge(verifier)).await;
    let wrong = redeem(
        &sandbox,
        &client,
        &query_value(&location, "code"),
        "another-verifier",
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.error_type(), "InvalidGrantException");
    assert_eq!(wrong.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn authorize_rejects_unknown_clients_and_foreign_redirects() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let unknown = send(
        &sandbox,
        "GET",
        "/authorize?response_type=code&client_id=nope&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Foauth%2Fcallback&state=s&code_challenge_method=S256&code_challenge=x",
        &[],
        "",
    )
    .await;
    assert_eq!(unknown.status, 400);
    let (client, _) = authorize(&sandbox, "x").await;
    let foreign = send(
        &sandbox,
        "GET",
        &format!("/authorize?response_type=code&client_id={}&redirect_uri=http%3A%2F%2Fevil.example%2Foauth%2Fcallback&state=s&code_challenge_method=S256&code_challenge=x", client.id),
        &[],
        "",
    )
    .await;
    assert_eq!(foreign.status, 400);
}

#[tokio::test]
async fn manual_authorize_waits_for_the_test_then_redirects() {
    let sandbox = Sandbox::start(SandboxConfig {
        auto_approve: false,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let client = register(
        &sandbox,
        json!({ "grantTypes": ["authorization_code"], "redirectUris": ["http://127.0.0.1/cb"] }),
    )
    .await;
    let path = format!(
        "/authorize?response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&state=s1&code_challenge_method=S256&code_challenge=abc",
        client.id
    );
    for approve in [true, false] {
        let browser = send(&sandbox, "GET", &path, &[], "");
        let decide = async {
            while sandbox.pending_approvals() == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if approve {
                sandbox.approve_pending()
            } else {
                sandbox.deny_pending()
            }
        };
        let (reply, decided) = tokio::join!(browser, decide);
        assert_eq!(decided, 1);
        assert_eq!(reply.status, 302);
        let location = reply.headers["location"].to_str().unwrap();
        assert_eq!(query_value(location, "state"), "s1");
        if approve {
            assert!(!query_value(location, "code").is_empty(), "{location}");
        } else {
            assert_eq!(query_value(location, "error"), "access_denied");
        }
    }
}

#[tokio::test]
async fn refresh_rotates_and_is_bound_to_its_client() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let client = register(&sandbox, json!({})).await;
    let other = register(&sandbox, json!({})).await;
    let token = device_login(&sandbox, &client).await;
    let first = token["refreshToken"].as_str().unwrap();

    let stolen = refresh(&sandbox, &other, first).await;
    assert_eq!(stolen.status, 400);
    assert_eq!(stolen.error_type(), "InvalidGrantException");

    let renewed = refresh(&sandbox, &client, first).await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    let second = renewed.json()["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    // The rotated-out token is spent.
    assert_eq!(
        refresh(&sandbox, &client, first).await.error_type(),
        "InvalidGrantException"
    );

    sandbox.update(|c| c.rotate_refresh_tokens = false);
    let kept = refresh(&sandbox, &client, &second).await;
    assert_eq!(kept.status, 200);
    assert!(kept.json().get("refreshToken").is_none(), "{}", kept.body);
    assert_eq!(refresh(&sandbox, &client, &second).await.status, 200);
}

#[tokio::test]
async fn end_session_breaks_refresh_and_the_portal() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let client = register(&sandbox, json!({})).await;
    let token = device_login(&sandbox, &client).await;
    let access = token["accessToken"].as_str().unwrap();
    let path = "/federation/credentials?role_name=ReadOnly&account_id=111122223333";
    assert_eq!(get_with_token(&sandbox, path, access).await.status, 200);

    assert_eq!(sandbox.end_session(), 1);
    let refreshed = refresh(&sandbox, &client, token["refreshToken"].as_str().unwrap()).await;
    assert_eq!(refreshed.status, 400);
    assert_eq!(refreshed.error_type(), "InvalidGrantException");
    let portal = get_with_token(&sandbox, path, access).await;
    assert_eq!(portal.status, 401);
    assert_eq!(portal.error_type(), "UnauthorizedException");
    assert!(portal.json()["message"].is_string());
}

#[tokio::test]
async fn session_lifetime_bounds_refresh_and_access_tokens() {
    let sandbox = Sandbox::start(SandboxConfig {
        session_lifetime: Duration::from_secs(1800),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let client = register(&sandbox, json!({})).await;
    let token = device_login(&sandbox, &client).await;
    // The access token cannot outlive the session that issued it.
    assert_eq!(token["expiresIn"], 1800);
    sandbox.advance_clock(Duration::from_secs(1801));
    let refreshed = refresh(&sandbox, &client, token["refreshToken"].as_str().unwrap()).await;
    assert_eq!(refreshed.error_type(), "InvalidGrantException");
}

#[tokio::test]
async fn role_credentials_expire_in_epoch_millis_and_unassigned_roles_are_forbidden() {
    let sandbox = Sandbox::start(SandboxConfig {
        role_credentials_lifetime: Duration::from_secs(900),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let client = register(&sandbox, json!({})).await;
    let access = device_login(&sandbox, &client).await["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = get_with_token(
        &sandbox,
        "/federation/credentials?role_name=PowerUserAccess&account_id=111122223333",
        &access,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let creds = &reply.json()["roleCredentials"];
    let expected = sandbox.now().unix_timestamp() * 1000 + 900_000;
    let expiration = creds["expiration"].as_i64().unwrap();
    assert!(
        (expiration - expected).abs() < 5_000,
        "{expiration} vs {expected}"
    );
    assert!(creds["accessKeyId"].as_str().unwrap().starts_with("ASIA"));

    let forbidden = get_with_token(
        &sandbox,
        "/federation/credentials?role_name=PowerUserAccess&account_id=444455556666",
        &access,
    )
    .await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.error_type(), "ForbiddenException");
    assert_eq!(
        get_with_token(
            &sandbox,
            "/federation/credentials?role_name=ReadOnly&account_id=444455556666",
            "bogus"
        )
        .await
        .status,
        401
    );
}

#[tokio::test]
async fn pagination_returns_every_account_exactly_once() {
    let accounts: Vec<_> = (0..7)
        .map(|i| {
            credd_sandbox::Account::new(
                &format!("{:012}", 100 + i),
                &format!("acct{i}"),
                &["ReadOnly"],
            )
        })
        .collect();
    let sandbox = Sandbox::start(SandboxConfig {
        page_size: 3,
        ..SandboxConfig::default().with_accounts(accounts.clone())
    })
    .await
    .unwrap();
    let client = register(&sandbox, json!({})).await;
    let access = device_login(&sandbox, &client).await["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &next {
            None => "/assignment/accounts?max_result=10".to_owned(),
            Some(token) => format!("/assignment/accounts?max_result=10&next_token={token}"),
        };
        let page = get_with_token(&sandbox, &path, &access).await.json();
        pages += 1;
        for account in page["accountList"].as_array().unwrap() {
            seen.push(account["accountId"].as_str().unwrap().to_owned());
        }
        match page.get("nextToken").and_then(Value::as_str) {
            Some(token) => next = Some(token.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        accounts.iter().map(|a| a.id.clone()).collect::<Vec<_>>()
    );

    let roles = get_with_token(
        &sandbox,
        "/assignment/roles?account_id=000000000100&max_result=1",
        &access,
    )
    .await
    .json();
    assert_eq!(
        roles["roleList"],
        json!([{ "roleName": "ReadOnly", "accountId": "000000000100" }])
    );
    assert!(roles.get("nextToken").is_none());
}

#[tokio::test]
async fn logout_ends_the_access_token_and_its_refresh_token() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let client = register(&sandbox, json!({})).await;
    let token = device_login(&sandbox, &client).await;
    let access = token["accessToken"].as_str().unwrap();
    let logout = send(
        &sandbox,
        "POST",
        "/logout",
        &[("x-amz-sso_bearer_token", access)],
        "",
    )
    .await;
    assert_eq!(logout.status, 200);
    assert_eq!(
        get_with_token(&sandbox, "/assignment/accounts", access)
            .await
            .status,
        401
    );
    let refreshed = refresh(&sandbox, &client, token["refreshToken"].as_str().unwrap()).await;
    assert_eq!(refreshed.error_type(), "InvalidGrantException");
}

#[tokio::test]
async fn sts_assume_role_and_caller_identity_follow_the_signing_key() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let me = sts(
        &sandbox,
        Some((DEMO_ACCESS_KEY_ID, None)),
        "Action=GetCallerIdentity",
    )
    .await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert!(me.body.contains(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
    ));
    assert_eq!(me.xml("Arn"), "arn:aws:iam::111122223333:user/demo-user");
    assert_eq!(me.xml("Account"), "111122223333");
    assert!(!me.xml("RequestId").is_empty());

    let assumed = sts(
        &sandbox,
        Some((DEMO_ACCESS_KEY_ID, None)),
        "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A444455556666%3Arole%2Fteam%2FAdmin&RoleSessionName=ci-run&DurationSeconds=900",
    )
    .await;
    assert_eq!(assumed.status, 200, "{}", assumed.body);
    assert_eq!(
        assumed.xml("Arn"),
        "arn:aws:sts::444455556666:assumed-role/Admin/ci-run"
    );
    assert!(assumed.xml("AssumedRoleId").ends_with(":ci-run"));
    let expiration = time::OffsetDateTime::parse(
        &assumed.xml("Expiration"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(assumed.xml("Expiration").ends_with('Z'));
    assert!(((expiration - sandbox.now()).whole_seconds() - 900).abs() < 5);
    let akid = assumed.xml("AccessKeyId");
    let token = assumed.xml("SessionToken");

    let as_role = sts(
        &sandbox,
        Some((&akid, Some(&token))),
        "Action=GetCallerIdentity",
    )
    .await;
    assert_eq!(
        as_role.xml("Arn"),
        "arn:aws:sts::444455556666:assumed-role/Admin/ci-run"
    );
    assert_eq!(as_role.xml("Account"), "444455556666");

    // A temporary key without its session token, or with another, is not
    // accepted.
    let no_token = sts(&sandbox, Some((&akid, None)), "Action=GetCallerIdentity").await;
    assert_eq!(no_token.status, 403);
    assert_eq!(no_token.xml("Code"), "InvalidClientTokenId");
    let unknown = sts(
        &sandbox,
        Some(("AKIAUNKNOWN000000000", None)),
        "Action=GetCallerIdentity",
    )
    .await;
    assert_eq!(unknown.status, 403);
    assert_eq!(unknown.xml("Code"), "InvalidClientTokenId");
    assert!(unknown
        .body
        .starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"));
    assert_eq!(unknown.xml("Type"), "Sender");
    let unsigned = sts(&sandbox, None, "Action=GetCallerIdentity").await;
    assert_eq!(unsigned.xml("Code"), "MissingAuthenticationToken");

    // Once expired, the key is refused for every signed call.
    sandbox.advance_clock(Duration::from_secs(901));
    let expired = sts(
        &sandbox,
        Some((&akid, Some(&token))),
        "Action=GetCallerIdentity",
    )
    .await;
    assert_eq!(expired.status, 400);
    assert_eq!(expired.xml("Code"), "ExpiredToken");
    let chained = sts(
        &sandbox,
        Some((&akid, Some(&token))),
        "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A444455556666%3Arole%2FOther&RoleSessionName=x1",
    )
    .await;
    assert_eq!(chained.xml("Code"), "ExpiredToken");
}

#[tokio::test]
async fn caller_identity_reads_presigned_query_credentials_and_portal_keys() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let client = register(&sandbox, json!({})).await;
    let access = device_login(&sandbox, &client).await["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let creds = get_with_token(
        &sandbox,
        "/federation/credentials?role_name=ReadOnly&account_id=444455556666",
        &access,
    )
    .await
    .json()["roleCredentials"]
        .clone();
    let akid = creds["accessKeyId"].as_str().unwrap();
    let token = creds["sessionToken"].as_str().unwrap();
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "GetCallerIdentity")
        .append_pair("Version", "2011-06-15")
        .append_pair(
            "X-Amz-Credential",
            &format!("{akid}/20250101/us-east-1/sts/aws4_request"),
        )
        .append_pair("X-Amz-Security-Token", token)
        .finish();
    let reply = send(&sandbox, "GET", &format!("/?{query}"), &[], "").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.xml("Arn"),
        "arn:aws:sts::444455556666:assumed-role/ReadOnly/demo-user"
    );
}

#[tokio::test]
async fn get_session_token_mfa_code_is_accepted_once() {
    const SERIAL: &str = "arn:aws:iam::111122223333:mfa/demo-user";
    const SECRET: &str = "JBSWY3DPEHPK3PXP";
    let sandbox = Sandbox::start(SandboxConfig::default().with_totp(SERIAL, SECRET))
        .await
        .unwrap();
    let serial = form_urlencoded::byte_serialize(SERIAL.as_bytes()).collect::<String>();
    let now = sandbox.now().unix_timestamp() as u64;
    let code = totp_code(SECRET, now).unwrap();
    let form = format!("Action=GetSessionToken&SerialNumber={serial}&TokenCode={code}");
    let key = Some((DEMO_ACCESS_KEY_ID, None));

    let ok = sts(&sandbox, key, &form).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let akid = ok.xml("AccessKeyId");
    let reused = sts(&sandbox, key, &form).await;
    assert_eq!(reused.status, 403);
    assert_eq!(reused.xml("Code"), "AccessDenied");
    assert!(reused
        .xml("Message")
        .starts_with("MultiFactorAuthentication failed"));
    let wrong_code = if code == "000000" { "111111" } else { "000000" };
    let wrong = sts(
        &sandbox,
        key,
        &format!("Action=GetSessionToken&SerialNumber={serial}&TokenCode={wrong_code}"),
    )
    .await;
    assert_eq!(wrong.xml("Code"), "AccessDenied");

    // The session key speaks for the long-term user.
    let me = sts(
        &sandbox,
        Some((&akid, Some(&ok.xml("SessionToken")))),
        "Action=GetCallerIdentity",
    )
    .await;
    assert_eq!(me.xml("Arn"), "arn:aws:iam::111122223333:user/demo-user");

    // The next time step's code works once the clock moves on.
    sandbox.advance_clock(Duration::from_secs(30));
    let next = totp_code(SECRET, now + 30).unwrap();
    let later = sts(
        &sandbox,
        key,
        &format!("Action=GetSessionToken&SerialNumber={serial}&TokenCode={next}"),
    )
    .await;
    assert_eq!(later.status, 200, "{}", later.body);
}

#[tokio::test]
async fn web_identity_is_unsigned_and_reports_the_subject() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    use base64::Engine as _;
    let claims =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"repo:acme/app"}"#);
    let jwt = format!("eyJhbGciOiJub25lIn0.{claims}.sig");
    let reply = sts(
        &sandbox,
        None,
        &format!("Action=AssumeRoleWithWebIdentity&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2FCi&RoleSessionName=gha&WebIdentityToken={jwt}"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.xml("SubjectFromWebIdentityToken"), "repo:acme/app");
    assert_eq!(
        reply.xml("Arn"),
        "arn:aws:sts::111122223333:assumed-role/Ci/gha"
    );
    let empty = sts(
        &sandbox,
        None,
        "Action=AssumeRoleWithWebIdentity&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2FCi&RoleSessionName=gha&WebIdentityToken=",
    )
    .await;
    assert_eq!(empty.status, 400);
}

#[tokio::test]
async fn faults_fire_the_given_number_of_times_then_stop_and_everything_is_counted() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    sandbox.inject_fault(Fault {
        operation: "GetCallerIdentity".into(),
        kind: FaultKind::Throttle,
        times: Some(2),
    });
    let key = Some((DEMO_ACCESS_KEY_ID, None));
    for _ in 0..2 {
        let throttled = sts(&sandbox, key, "Action=GetCallerIdentity").await;
        assert_eq!(throttled.status, 400);
        assert_eq!(throttled.xml("Code"), "Throttling");
    }
    assert_eq!(
        sts(&sandbox, key, "Action=GetCallerIdentity").await.status,
        200
    );

    // A fault on one CreateToken grant leaves the others alone.
    sandbox.inject_fault(Fault {
        operation: "CreateToken:refresh_token".into(),
        kind: FaultKind::Error {
            status: 500,
            code: "InternalServerException".into(),
            message: "boom".into(),
        },
        times: Some(1),
    });
    let client = register(&sandbox, json!({})).await;
    let token = device_login(&sandbox, &client).await;
    let failed = refresh(&sandbox, &client, token["refreshToken"].as_str().unwrap()).await;
    assert_eq!(failed.status, 500);
    assert_eq!(failed.error_type(), "InternalServerException");
    assert_eq!(failed.json()["error_description"], "boom");
    assert_eq!(
        refresh(&sandbox, &client, token["refreshToken"].as_str().unwrap())
            .await
            .status,
        200
    );

    sandbox.inject_fault(Fault {
        operation: "ListAccounts".into(),
        kind: FaultKind::Throttle,
        times: None,
    });
    let access = token["accessToken"].as_str().unwrap();
    for _ in 0..3 {
        let reply = get_with_token(&sandbox, "/assignment/accounts", access).await;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.error_type(), "TooManyRequestsException");
    }
    sandbox.clear_faults();
    assert_eq!(
        get_with_token(&sandbox, "/assignment/accounts", access)
            .await
            .status,
        200
    );

    let counts = sandbox.counts();
    let expected = [
        ("GetCallerIdentity", 3),
        ("RegisterClient", 1),
        ("StartDeviceAuthorization", 1),
        ("CreateToken", 3),
        ("CreateToken:device_code", 1),
        ("CreateToken:refresh_token", 2),
        ("ListAccounts", 4),
    ];
    for (operation, count) in expected {
        assert_eq!(
            counts.get(operation).copied(),
            Some(count),
            "{operation}: {counts:?}"
        );
    }
    assert_eq!(counts.len(), expected.len(), "{counts:?}");
}

#[tokio::test(start_paused = true)]
async fn latency_fault_delays_the_answer() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    sandbox.inject_fault(Fault {
        operation: "*".into(),
        kind: FaultKind::Latency(Duration::from_secs(30)),
        times: Some(1),
    });
    let started = tokio::time::Instant::now();
    let reply = sts(
        &sandbox,
        Some((DEMO_ACCESS_KEY_ID, None)),
        "Action=GetCallerIdentity",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test]
// The sandbox runs on wall time (moved by an offset): so does this test.
#[allow(clippy::disallowed_methods)]
async fn http_control_api_drives_the_same_state() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let reply = post_json(
        &sandbox,
        "/_sandbox/fault",
        json!({ "operation": "AssumeRole", "error": { "status": 403, "code": "AccessDenied", "message": "nope" }, "times": 1 }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let form = "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A444455556666%3Arole%2FAdmin&RoleSessionName=s1";
    let key = Some((DEMO_ACCESS_KEY_ID, None));
    let denied = sts(&sandbox, key, form).await;
    assert_eq!(
        (denied.status, denied.xml("Code")),
        (403, "AccessDenied".to_owned())
    );
    assert_eq!(sts(&sandbox, key, form).await.status, 200);

    let counts = send(&sandbox, "GET", "/_sandbox/counts", &[], "")
        .await
        .json();
    assert_eq!(counts, json!({ "AssumeRole": 2 }));

    let patch = post_json(
        &sandbox,
        "/_sandbox/config",
        json!({ "role_credentials_lifetime_secs": 120, "page_size": 1 }),
    )
    .await;
    assert_eq!(patch.status, 200);
    assert_eq!(
        sandbox.config().role_credentials_lifetime,
        Duration::from_secs(120)
    );
    assert_eq!(sandbox.config().page_size, 1);
    let typo = post_json(&sandbox, "/_sandbox/config", json!({ "role_lifetime": 1 })).await;
    assert_eq!(typo.status, 400);

    let client = register(&sandbox, json!({})).await;
    start_device(&sandbox, &client).await;
    assert_eq!(
        send(&sandbox, "GET", "/_sandbox/pending", &[], "")
            .await
            .json()["pending"],
        1
    );
    assert_eq!(
        post_json(&sandbox, "/_sandbox/approve", json!({}))
            .await
            .json()["approved"],
        1
    );
    assert_eq!(
        post_json(&sandbox, "/_sandbox/end-session", json!({}))
            .await
            .status,
        200
    );
    assert_eq!(
        send(&sandbox, "DELETE", "/_sandbox/faults", &[], "")
            .await
            .status,
        200
    );
    let advanced = post_json(
        &sandbox,
        "/_sandbox/advance-clock",
        json!({ "seconds": 60 }),
    )
    .await;
    assert_eq!(advanced.status, 200);
    assert!(sandbox.now() - time::OffsetDateTime::now_utc() > time::Duration::seconds(55));
}

#[tokio::test]
async fn only_loopback_and_shutdown_stops_serving() {
    let err = Sandbox::start_on("0.0.0.0:0".parse().unwrap(), SandboxConfig::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let addr = sandbox.addr();
    assert_eq!(sandbox.url(), format!("http://{addr}"));
    sandbox.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
