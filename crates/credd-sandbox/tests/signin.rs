//! Raw-HTTP tests of the sandbox's issue-13 services: AWS Sign-In (`aws
//! login`: authorize, the cross-device page, CreateOAuth2Token with DPoP,
//! PKCE, rotation and reuse detection), the STS operations
//! AssumeRoleWithSAML, GetFederationToken and DecodeAuthorizationMessage,
//! and the console federation endpoint. DPoP proofs are signed here with
//! RustCrypto's `p256`, as a client would.

mod support;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use credd_sandbox::{
    pkce_challenge, Fault, FaultKind, Sandbox, SandboxConfig, SandboxHandle, CLIENT_CROSS_DEVICE,
    CLIENT_SAME_DEVICE, DEMO_ACCESS_KEY_ID,
};
use p256::ecdsa::SigningKey;
use serde_json::{json, Value};
use std::time::Duration;
use support::{htu, post_json, send, sts, wall_clock, Dpop, Reply};

const VERIFIER: &str = "verifier-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ";
const CALLBACK: &str = "http://127.0.0.1:45678/oauth/callback";
const IDENTITY: &str = "arn:aws:iam::123456789012:user/dev";

async fn token(sandbox: &SandboxHandle, proof: Option<&str>, body: Value) -> Reply {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(proof) = proof {
        headers.push(("dpop", proof));
    }
    send(sandbox, "POST", "/v1/token", &headers, &body.to_string()).await
}

fn query_value(location: &str, name: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn authorize_path(client_id: &str, redirect_uri: &str, challenge: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("state", "st-1")
        .append_pair("code_challenge_method", "SHA-256")
        .append_pair("scope", "openid")
        .append_pair("redirect_uri", redirect_uri)
        .finish();
    format!("/v1/authorize?{query}&code_challenge={challenge}")
}

/// The same-device browser leg: the code the callback receives.
async fn authorize(sandbox: &SandboxHandle) -> String {
    let path = authorize_path(CLIENT_SAME_DEVICE, CALLBACK, &pkce_challenge(VERIFIER));
    let reply = send(sandbox, "GET", &path, &[], "").await;
    assert_eq!(reply.status, 302, "{}", reply.body);
    let location = reply.headers["location"].to_str().unwrap();
    assert!(location.starts_with(&format!("{CALLBACK}?")), "{location}");
    assert_eq!(query_value(location, "state").as_deref(), Some("st-1"));
    query_value(location, "code").unwrap()
}

fn exchange_body(code: &str, verifier: &str) -> Value {
    json!({
        "clientId": CLIENT_SAME_DEVICE,
        "grantType": "authorization_code",
        "code": code,
        "codeVerifier": verifier,
        "redirectUri": CALLBACK,
    })
}

fn refresh_body(refresh_token: &str) -> Value {
    json!({
        "clientId": CLIENT_SAME_DEVICE,
        "grantType": "refresh_token",
        "refreshToken": refresh_token,
    })
}

/// A whole same-device login with `key`; returns the token output.
async fn login(sandbox: &SandboxHandle, key: &Dpop) -> Value {
    let code = authorize(sandbox).await;
    let reply = token(
        sandbox,
        Some(&key.fresh(sandbox)),
        exchange_body(&code, VERIFIER),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

async fn refresh(sandbox: &SandboxHandle, key: &Dpop, refresh_token: &str) -> Reply {
    token(
        sandbox,
        Some(&key.fresh(sandbox)),
        refresh_body(refresh_token),
    )
    .await
}

/// A Sign-In error: the shape and the `error` botocore reads.
fn signin_error(reply: &Reply) -> (u16, String, String) {
    (
        reply.status,
        reply.error_type().to_owned(),
        reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

fn denied(error: &str) -> (u16, String, String) {
    (400, "AccessDeniedException".into(), error.into())
}

fn invalid() -> (u16, String, String) {
    (400, "ValidationException".into(), "INVALID_REQUEST".into())
}

async fn start() -> SandboxHandle {
    Sandbox::start(SandboxConfig {
        login_identity: IDENTITY.to_owned(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

async fn caller_arn(sandbox: &SandboxHandle, access: &Value) -> Reply {
    sts(
        sandbox,
        Some((
            access["accessKeyId"].as_str().unwrap(),
            Some(access["sessionToken"].as_str().unwrap()),
        )),
        "Action=GetCallerIdentity",
    )
    .await
}

#[tokio::test]
async fn same_device_login_issues_sts_credentials_of_the_login_identity() {
    let sandbox = start().await;
    let out = login(&sandbox, &Dpop::new()).await;
    assert_eq!(out["tokenType"], "aws_sigv4");
    assert_eq!(out["expiresIn"], 900);
    assert!(out["refreshToken"].as_str().is_some_and(|t| !t.is_empty()));
    let payload = out["idToken"].as_str().unwrap().split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["sub"], IDENTITY);

    let me = caller_arn(&sandbox, &out["accessToken"]).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.xml("Arn"), IDENTITY);
    assert_eq!(me.xml("Account"), "123456789012");
    let access = &out["accessToken"];
    let assumed = sts(
        &sandbox,
        Some((
            access["accessKeyId"].as_str().unwrap(),
            Some(access["sessionToken"].as_str().unwrap()),
        )),
        "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2FDev&RoleSessionName=chained",
    )
    .await;
    assert_eq!(assumed.status, 200, "{}", assumed.body);
    assert_eq!(
        assumed.xml("Arn"),
        "arn:aws:sts::123456789012:assumed-role/Dev/chained"
    );
    assert_eq!(sandbox.count("SignInAuthorize"), 1);
    assert_eq!(sandbox.count("CreateOAuth2Token"), 1);
    assert_eq!(sandbox.count("CreateOAuth2Token:authorization_code"), 1);
}

#[tokio::test]
async fn cross_device_shows_the_code_to_paste_and_redeems_it() {
    let sandbox = start().await;
    let confirmation = format!("{}/v1/sessions/confirmation", sandbox.url());
    let path = authorize_path(
        CLIENT_CROSS_DEVICE,
        &confirmation,
        &pkce_challenge(VERIFIER),
    );
    let reply = send(&sandbox, "GET", &path, &[], "").await;
    assert_eq!(reply.status, 302, "{}", reply.body);
    let location = reply.headers["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{confirmation}?")),
        "{location}"
    );

    let page_path = location.strip_prefix(&sandbox.url()).unwrap();
    let page = send(&sandbox, "GET", page_path, &[], "").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let open = "<code id=\"verification-code\">";
    let start = page.body.find(open).unwrap() + open.len();
    let end = page.body[start..].find("</code>").unwrap() + start;
    // What the CLI does with the pasted text: base64, then parse_qsl.
    let pasted = String::from_utf8(STANDARD.decode(&page.body[start..end]).unwrap()).unwrap();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(pasted.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(pairs[0], ("state".into(), "st-1".into()));
    assert_eq!(pairs[1].0, "code");

    let reply = token(
        &sandbox,
        Some(&Dpop::new().fresh(&sandbox)),
        json!({
            "clientId": CLIENT_CROSS_DEVICE,
            "grantType": "authorization_code",
            "code": pairs[1].1,
            "codeVerifier": VERIFIER,
            "redirectUri": confirmation,
        }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Cross-device must land on this server's page; same-device on loopback.
    let foreign = authorize_path(
        CLIENT_CROSS_DEVICE,
        "https://evil.example/v1/sessions/confirmation",
        &pkce_challenge(VERIFIER),
    );
    assert_eq!(send(&sandbox, "GET", &foreign, &[], "").await.status, 400);
    let foreign = authorize_path(
        CLIENT_SAME_DEVICE,
        "https://evil.example/cb",
        &pkce_challenge(VERIFIER),
    );
    assert_eq!(send(&sandbox, "GET", &foreign, &[], "").await.status, 400);
    let unknown = authorize_path(
        "arn:aws:signin:::devtools/other",
        CALLBACK,
        "x".repeat(43).as_str(),
    );
    assert_eq!(send(&sandbox, "GET", &unknown, &[], "").await.status, 400);
    let s256 = authorize_path(CLIENT_SAME_DEVICE, CALLBACK, &pkce_challenge(VERIFIER))
        .replace("SHA-256", "plain");
    assert_eq!(send(&sandbox, "GET", &s256, &[], "").await.status, 400);
}

#[tokio::test]
async fn held_approvals_wait_for_the_test_and_a_denial_redirects_with_an_error() {
    let sandbox = start().await;
    sandbox.update(|c| c.auto_approve = false);
    let path = authorize_path(CLIENT_SAME_DEVICE, CALLBACK, &pkce_challenge(VERIFIER));
    let held = send(&sandbox, "GET", &path, &[], "");
    let decide = async {
        while sandbox.pending_approvals() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(sandbox.deny_pending(), 1);
    };
    let (reply, ()) = tokio::join!(held, decide);
    assert_eq!(reply.status, 302);
    let location = reply.headers["location"].to_str().unwrap();
    assert_eq!(
        query_value(location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_value(location, "code"), None);
}

#[tokio::test]
async fn dpop_proofs_are_refused_for_each_defect() {
    let sandbox = start().await;
    let key = Dpop::new();
    let code = authorize(&sandbox).await;
    let body = exchange_body(&code, VERIFIER);
    let now = wall_clock();
    let other = SigningKey::random(&mut rand::rngs::OsRng);
    let cases = [
        ("no proof", None),
        (
            "signed by another key",
            Some(key.proof_by(&other, &htu(&sandbox), now, "a")),
        ),
        (
            "another endpoint",
            Some(key.proof_by(&key.0, "http://127.0.0.1:1/v1/token", now, "b")),
        ),
        (
            "stale iat",
            Some(key.proof_by(&key.0, &htu(&sandbox), now - 600, "c")),
        ),
        (
            "iat in the future",
            Some(key.proof_by(&key.0, &htu(&sandbox), now + 600, "d")),
        ),
        ("not a JWT", Some("abc.def".to_owned())),
    ];
    for (what, proof) in cases {
        let reply = token(&sandbox, proof.as_deref(), body.clone()).await;
        assert_eq!(signin_error(&reply), invalid(), "{what}: {}", reply.body);
    }
    // None of those spent the code: a good proof still redeems it.
    let good = key.proof_by(&key.0, &htu(&sandbox), now, "jti-once");
    assert_eq!(token(&sandbox, Some(&good), body).await.status, 200);

    // The same proof again is a replay, refused before the token is looked at.
    let out = login(&sandbox, &key).await;
    let replay = token(
        &sandbox,
        Some(&good),
        refresh_body(out["refreshToken"].as_str().unwrap()),
    )
    .await;
    assert_eq!(signin_error(&replay), invalid(), "{}", replay.body);
    assert!(replay.json()["message"].as_str().unwrap().contains("jti"));

    // `iat` is checked against the real clock, not the sandbox's: a test
    // that advanced the sandbox clock by an hour still gets fresh proofs accepted.
    sandbox.advance_clock(Duration::from_secs(3600));
    let later = refresh(&sandbox, &key, out["refreshToken"].as_str().unwrap()).await;
    assert_eq!(later.status, 200, "{}", later.body);
}

#[tokio::test]
async fn pkce_codes_are_single_use_short_lived_and_checked() {
    let sandbox = start().await;
    let key = Dpop::new();

    let code = authorize(&sandbox).await;
    let wrong = token(
        &sandbox,
        Some(&key.fresh(&sandbox)),
        exchange_body(&code, &"w".repeat(50)),
    )
    .await;
    assert_eq!(
        signin_error(&wrong),
        denied("INVALID_REQUEST"),
        "{}",
        wrong.body
    );
    // A failed attempt spends the code.
    let retry = token(
        &sandbox,
        Some(&key.fresh(&sandbox)),
        exchange_body(&code, VERIFIER),
    )
    .await;
    assert_eq!(
        signin_error(&retry),
        denied("AUTHCODE_EXPIRED"),
        "{}",
        retry.body
    );

    let code = authorize(&sandbox).await;
    let first = token(
        &sandbox,
        Some(&key.fresh(&sandbox)),
        exchange_body(&code, VERIFIER),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = token(
        &sandbox,
        Some(&key.fresh(&sandbox)),
        exchange_body(&code, VERIFIER),
    )
    .await;
    assert_eq!(signin_error(&again), denied("AUTHCODE_EXPIRED"));

    let code = authorize(&sandbox).await;
    sandbox.advance_clock(Duration::from_secs(301));
    let late = token(
        &sandbox,
        Some(&key.fresh(&sandbox)),
        exchange_body(&code, VERIFIER),
    )
    .await;
    assert_eq!(signin_error(&late), denied("AUTHCODE_EXPIRED"));

    let code = authorize(&sandbox).await;
    let mut elsewhere = exchange_body(&code, VERIFIER);
    elsewhere["redirectUri"] = json!("http://127.0.0.1:1/other");
    let reply = token(&sandbox, Some(&key.fresh(&sandbox)), elsewhere).await;
    assert_eq!(signin_error(&reply), invalid());

    let bad_client = token(
        &sandbox,
        Some(&key.fresh(&sandbox)),
        json!({ "clientId": "someone", "grantType": "refresh_token", "refreshToken": "x" }),
    )
    .await;
    assert_eq!(signin_error(&bad_client), invalid());
}

#[tokio::test]
async fn refresh_rotates_and_is_bound_to_the_exchange_key() {
    let sandbox = start().await;
    let key = Dpop::new();
    let out = login(&sandbox, &key).await;
    let first = out["refreshToken"].as_str().unwrap();

    let stolen = refresh(&sandbox, &Dpop::new(), first).await;
    assert_eq!(
        signin_error(&stolen),
        denied("INVALID_REQUEST"),
        "{}",
        stolen.body
    );

    // The refused attempt did not spend the token.
    let next = refresh(&sandbox, &key, first).await;
    assert_eq!(next.status, 200, "{}", next.body);
    let next = next.json();
    let second = next["refreshToken"].as_str().unwrap();
    assert_ne!(second, first);
    assert_ne!(
        next["accessToken"]["accessKeyId"],
        out["accessToken"]["accessKeyId"]
    );
    assert_eq!(
        caller_arn(&sandbox, &next["accessToken"]).await.xml("Arn"),
        IDENTITY
    );
    let third = refresh(&sandbox, &key, second).await;
    assert_eq!(third.status, 200, "{}", third.body);
    assert_eq!(sandbox.count("CreateOAuth2Token:refresh_token"), 3);
    assert_eq!(sandbox.count("RefreshTokenReuse"), 0);
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_family() {
    let sandbox = start().await;
    let key = Dpop::new();
    let other_session = login(&sandbox, &key).await;
    let out = login(&sandbox, &key).await;
    let first = out["refreshToken"].as_str().unwrap();
    let rotated = refresh(&sandbox, &key, first).await.json();
    let second = rotated["refreshToken"].as_str().unwrap();

    let reuse = refresh(&sandbox, &key, first).await;
    assert_eq!(
        signin_error(&reuse),
        denied("TOKEN_EXPIRED"),
        "{}",
        reuse.body
    );
    assert_eq!(sandbox.count("RefreshTokenReuse"), 1);
    let after = refresh(&sandbox, &key, second).await;
    assert_eq!(signin_error(&after), denied("TOKEN_EXPIRED"));
    // Only that family: another session of the same user goes on.
    let unrelated = refresh(
        &sandbox,
        &key,
        other_session["refreshToken"].as_str().unwrap(),
    )
    .await;
    assert_eq!(unrelated.status, 200, "{}", unrelated.body);
    let counts: Value = send(&sandbox, "GET", "/_sandbox/counts", &[], "")
        .await
        .json();
    assert_eq!(counts["RefreshTokenReuse"], 1);
}

#[tokio::test]
async fn credentials_and_sessions_end_on_the_sandbox_clock_and_on_request() {
    let sandbox = start().await;
    sandbox.update(|c| {
        c.login_credential_secs = 600;
        c.login_session_secs = 3600;
    });
    let key = Dpop::new();
    let out = login(&sandbox, &key).await;
    assert_eq!(out["expiresIn"], 600);
    sandbox.advance_clock(Duration::from_secs(601));
    let expired = caller_arn(&sandbox, &out["accessToken"]).await;
    assert_eq!(expired.xml("Code"), "ExpiredToken");
    let next = refresh(&sandbox, &key, out["refreshToken"].as_str().unwrap()).await;
    assert_eq!(next.status, 200, "{}", next.body);
    // Credentials never outlive the session.
    sandbox.advance_clock(Duration::from_secs(2800));
    let capped = refresh(
        &sandbox,
        &key,
        next.json()["refreshToken"].as_str().unwrap(),
    )
    .await;
    assert_eq!(capped.status, 200, "{}", capped.body);
    let capped = capped.json();
    assert!(capped["expiresIn"].as_u64().unwrap() <= 200, "{capped}");
    sandbox.advance_clock(Duration::from_secs(200));
    let over = refresh(&sandbox, &key, capped["refreshToken"].as_str().unwrap()).await;
    assert_eq!(signin_error(&over), denied("TOKEN_EXPIRED"));

    let out = login(&sandbox, &key).await;
    let ended: Value = post_json(&sandbox, "/_sandbox/end-session", json!({}))
        .await
        .json();
    assert_eq!(ended["ended"], 1);
    let after = refresh(&sandbox, &key, out["refreshToken"].as_str().unwrap()).await;
    assert_eq!(signin_error(&after), denied("TOKEN_EXPIRED"));

    let out = login(&sandbox, &key).await;
    let changed: Value = post_json(&sandbox, "/_sandbox/change-login-credentials", json!({}))
        .await
        .json();
    assert_eq!(changed["changed"], 1);
    let after = refresh(&sandbox, &key, out["refreshToken"].as_str().unwrap()).await;
    assert_eq!(signin_error(&after), denied("USER_CREDENTIALS_CHANGED"));

    let out = login(&sandbox, &key).await;
    sandbox.inject_fault(Fault {
        operation: "CreateOAuth2Token:refresh_token".into(),
        kind: FaultKind::Error {
            status: 400,
            code: "USER_CREDENTIALS_CHANGED".into(),
            message: "password changed".into(),
        },
        times: Some(1),
    });
    let faulted = refresh(&sandbox, &key, out["refreshToken"].as_str().unwrap()).await;
    assert_eq!(signin_error(&faulted), denied("USER_CREDENTIALS_CHANGED"));
    assert_eq!(faulted.json()["message"], "password changed");
}

/// A SAML response naming `pair` in its Role attribute.
fn saml(pair: &str, not_on_or_after: Option<&str>, session_name: bool) -> String {
    let expiry = not_on_or_after
        .map(|t| format!("<saml2:SubjectConfirmationData NotOnOrAfter=\"{t}\"/>"))
        .unwrap_or_default();
    let name = if session_name {
        "<saml2:Attribute Name=\"https://aws.amazon.com/SAML/Attributes/RoleSessionName\"><saml2:AttributeValue>dev@example.com</saml2:AttributeValue></saml2:Attribute>"
    } else {
        ""
    };
    let xml = format!(
        "<saml2p:Response xmlns:saml2p=\"urn:oasis:names:tc:SAML:2.0:protocol\"><saml2:Issuer xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\">https://idp.example.com</saml2:Issuer><saml2:Assertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\"><saml2:Subject><saml2:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\">dev@example.com</saml2:NameID><saml2:SubjectConfirmation>{expiry}</saml2:SubjectConfirmation></saml2:Subject><saml2:AttributeStatement><saml2:Attribute Name=\"https://aws.amazon.com/SAML/Attributes/Role\"><saml2:AttributeValue>{pair}</saml2:AttributeValue></saml2:Attribute>{name}</saml2:AttributeStatement></saml2:Assertion></saml2p:Response>"
    );
    STANDARD.encode(xml)
}

const ROLE: &str = "arn:aws:iam::111122223333:role/SamlDev";
const IDP: &str = "arn:aws:iam::111122223333:saml-provider/Corp";

async fn assume_with_saml(
    sandbox: &SandboxHandle,
    assertion: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "AssumeRoleWithSAML")
        .append_pair("RoleArn", ROLE)
        .append_pair("PrincipalArn", IDP)
        .append_pair("SAMLAssertion", assertion);
    for (k, v) in extra {
        form.append_pair(k, v);
    }
    sts(sandbox, None, &form.finish()).await
}

#[tokio::test]
async fn assume_role_with_saml_checks_the_role_pair_expiry_and_duration() {
    let sandbox = start().await;
    let later = credd_sandbox_timestamp(sandbox.now() + Duration::from_secs(300));
    for pair in [format!("{ROLE},{IDP}"), format!("{IDP}, {ROLE}")] {
        let reply = assume_with_saml(&sandbox, &saml(&pair, Some(&later), true), &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.xml("Arn"),
            "arn:aws:sts::111122223333:assumed-role/SamlDev/dev@example.com"
        );
        assert_eq!(reply.xml("Subject"), "dev@example.com");
        assert_eq!(reply.xml("SubjectType"), "persistent");
        assert_eq!(reply.xml("Issuer"), "https://idp.example.com");
        assert_eq!(reply.xml("Audience"), "https://signin.aws.amazon.com/saml");
        assert!(!reply.xml("NameQualifier").is_empty());
    }
    let other_role = saml(
        &format!("arn:aws:iam::111122223333:role/Other,{IDP}"),
        None,
        true,
    );
    let refused = assume_with_saml(&sandbox, &other_role, &[]).await;
    assert_eq!(
        (refused.status, refused.xml("Code")),
        (403, "AccessDenied".into())
    );

    let no_name =
        assume_with_saml(&sandbox, &saml(&format!("{ROLE},{IDP}"), None, false), &[]).await;
    assert_eq!(no_name.xml("Code"), "InvalidIdentityToken");
    let garbage = assume_with_saml(&sandbox, "not base64!", &[]).await;
    assert_eq!(garbage.xml("Code"), "InvalidIdentityToken");

    let short = assume_with_saml(
        &sandbox,
        &saml(&format!("{ROLE},{IDP}"), None, true),
        &[("DurationSeconds", "899")],
    )
    .await;
    assert_eq!(short.xml("Code"), "ValidationError");
    let long = assume_with_saml(
        &sandbox,
        &saml(&format!("{ROLE},{IDP}"), None, true),
        &[("DurationSeconds", "43200")],
    )
    .await;
    assert_eq!(long.status, 200, "{}", long.body);

    sandbox.advance_clock(Duration::from_secs(301));
    let expired = assume_with_saml(
        &sandbox,
        &saml(&format!("{ROLE},{IDP}"), Some(&later), true),
        &[],
    )
    .await;
    assert_eq!(expired.xml("Code"), "ExpiredTokenException");
    assert_eq!(sandbox.count("AssumeRoleWithSAML"), 8);
}

fn credd_sandbox_timestamp(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn get_federation_token_is_for_long_term_keys_and_caps_root_at_an_hour() {
    let sandbox = start().await;
    sandbox.update(|c| {
        c.long_term_keys.insert(
            "AKIAROOTKEY000000001".into(),
            "arn:aws:iam::111122223333:root".into(),
        );
    });
    let fed = sts(
        &sandbox,
        Some((DEMO_ACCESS_KEY_ID, None)),
        "Action=GetFederationToken&Name=console-dev&DurationSeconds=129600&Policy=%7B%7D",
    )
    .await;
    assert_eq!(fed.status, 200, "{}", fed.body);
    assert_eq!(
        fed.xml("Arn"),
        "arn:aws:sts::111122223333:federated-user/console-dev"
    );
    assert_eq!(fed.xml("FederatedUserId"), "111122223333:console-dev");
    assert!(!fed.xml("PackedPolicySize").is_empty());
    let me = sts(
        &sandbox,
        Some((&fed.xml("AccessKeyId"), Some(&fed.xml("SessionToken")))),
        "Action=GetCallerIdentity",
    )
    .await;
    assert_eq!(
        me.xml("Arn"),
        "arn:aws:sts::111122223333:federated-user/console-dev"
    );

    let from_session = sts(
        &sandbox,
        Some((&fed.xml("AccessKeyId"), Some(&fed.xml("SessionToken")))),
        "Action=GetFederationToken&Name=again",
    )
    .await;
    assert_eq!(
        (from_session.status, from_session.xml("Code")),
        (403, "AccessDenied".into())
    );

    let root = sts(
        &sandbox,
        Some(("AKIAROOTKEY000000001", None)),
        "Action=GetFederationToken&Name=root-fed&DurationSeconds=7200",
    )
    .await;
    let expiration = time::OffsetDateTime::parse(
        &root.xml("Expiration"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(((expiration - sandbox.now()).whole_seconds() - 3600).abs() < 5);

    let bad_name = sts(
        &sandbox,
        Some((DEMO_ACCESS_KEY_ID, None)),
        "Action=GetFederationToken&Name=a",
    )
    .await;
    assert_eq!(bad_name.xml("Code"), "ValidationError");
    let too_long = sts(
        &sandbox,
        Some((DEMO_ACCESS_KEY_ID, None)),
        "Action=GetFederationToken&Name=abc&DurationSeconds=129601",
    )
    .await;
    assert_eq!(too_long.xml("Code"), "ValidationError");
}

#[tokio::test]
async fn decode_authorization_message_returns_what_was_encoded() {
    let sandbox = start().await;
    let message = json!({ "allowed": false, "context": { "action": "s3:GetObject" } });
    let by_http: Value = post_json(&sandbox, "/_sandbox/encode-message", message.clone())
        .await
        .json();
    for encoded in [
        sandbox.encode_message(&message),
        by_http["message"].as_str().unwrap().to_owned(),
    ] {
        let form = format!("Action=DecodeAuthorizationMessage&EncodedMessage={encoded}");
        let reply = sts(&sandbox, Some((DEMO_ACCESS_KEY_ID, None)), &form).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let decoded = reply.xml("DecodedMessage").replace("&quot;", "\"");
        assert_eq!(serde_json::from_str::<Value>(&decoded).unwrap(), message);
    }
    let encoded = sandbox.encode_message(&message);
    let garbled = format!("Action=DecodeAuthorizationMessage&EncodedMessage=x{encoded}");
    let reply = sts(&sandbox, Some((DEMO_ACCESS_KEY_ID, None)), &garbled).await;
    assert_eq!(
        (reply.status, reply.xml("Code")),
        (400, "InvalidAuthorizationMessageException".into())
    );
    let unsigned = sts(
        &sandbox,
        None,
        &format!("Action=DecodeAuthorizationMessage&EncodedMessage={encoded}"),
    )
    .await;
    assert_eq!(unsigned.xml("Code"), "MissingAuthenticationToken");
}

async fn signin_token(sandbox: &SandboxHandle, akid: &str, secret: &str, token: &str) -> Reply {
    let session = json!({ "sessionId": akid, "sessionKey": secret, "sessionToken": token });
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "getSigninToken")
        .append_pair("SessionDuration", "3600")
        .append_pair("Session", &session.to_string())
        .finish();
    send(sandbox, "GET", &format!("/federation?{query}"), &[], "").await
}

async fn console_login(sandbox: &SandboxHandle, signin_token: &str) -> Reply {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "login")
        .append_pair("Issuer", "credd")
        .append_pair("Destination", "https://console.aws.amazon.com/s3/home")
        .append_pair("SigninToken", signin_token)
        .finish();
    send(sandbox, "GET", &format!("/federation?{query}"), &[], "").await
}

#[tokio::test]
async fn federation_turns_role_credentials_into_a_single_use_console_login() {
    let sandbox = start().await;
    let role = sts(
        &sandbox,
        Some((DEMO_ACCESS_KEY_ID, None)),
        "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2FDev&RoleSessionName=console",
    )
    .await;
    let (akid, secret, token) = (
        role.xml("AccessKeyId"),
        role.xml("SecretAccessKey"),
        role.xml("SessionToken"),
    );
    let reply = signin_token(&sandbox, &akid, &secret, &token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let signin = reply.json()["SigninToken"].as_str().unwrap().to_owned();
    let login = console_login(&sandbox, &signin).await;
    assert_eq!(login.status, 302, "{}", login.body);
    assert_eq!(
        login.headers["location"],
        "https://console.aws.amazon.com/s3/home"
    );
    assert_eq!(
        console_login(&sandbox, &signin).await.status,
        400,
        "single use"
    );

    // A wrong secret, an IAM user's GetSessionToken credentials, and an
    // expired signin token are refused.
    assert_eq!(
        signin_token(&sandbox, &akid, "wrong", &token).await.status,
        400
    );
    let user = sts(
        &sandbox,
        Some((DEMO_ACCESS_KEY_ID, None)),
        "Action=GetSessionToken",
    )
    .await;
    let refused = signin_token(
        &sandbox,
        &user.xml("AccessKeyId"),
        &user.xml("SecretAccessKey"),
        &user.xml("SessionToken"),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("GetFederationToken"),
        "{}",
        refused.body
    );
    let fed = sts(
        &sandbox,
        Some((DEMO_ACCESS_KEY_ID, None)),
        "Action=GetFederationToken&Name=console",
    )
    .await;
    let accepted = signin_token(
        &sandbox,
        &fed.xml("AccessKeyId"),
        &fed.xml("SecretAccessKey"),
        &fed.xml("SessionToken"),
    )
    .await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    sandbox.advance_clock(Duration::from_secs(901));
    let stale = console_login(&sandbox, accepted.json()["SigninToken"].as_str().unwrap()).await;
    assert_eq!(stale.status, 400);
    assert_eq!(sandbox.count("GetSigninToken"), 4);
    assert_eq!(sandbox.count("FederationLogin"), 3);
}

#[tokio::test]
async fn a_seeded_login_is_the_cache_file_aws_login_writes_and_refreshes() {
    let sandbox = start().await;
    for seeded in [
        sandbox.seed_login(),
        post_json(&sandbox, "/_sandbox/seed-login", json!({}))
            .await
            .json(),
    ] {
        assert_eq!(seeded["clientId"], CLIENT_SAME_DEVICE);
        assert_eq!(seeded["tokenType"], "aws_sigv4");
        assert_eq!(seeded["accessToken"]["accountId"], "123456789012");
        let expires_at = time::OffsetDateTime::parse(
            seeded["accessToken"]["expiresAt"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(((expires_at - sandbox.now()).whole_seconds() - 900).abs() < 5);
        assert_eq!(
            caller_arn(&sandbox, &seeded["accessToken"])
                .await
                .xml("Arn"),
            IDENTITY
        );

        // The key is a SEC1 PEM as the CLI writes it: 64-column lines and a
        // trailing newline.
        let pem = seeded["dpopKey"].as_str().unwrap();
        assert!(pem.starts_with("-----BEGIN EC PRIVATE KEY-----\n"), "{pem}");
        assert!(pem.ends_with("-----END EC PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        // With the curve named: awscrt (botocore) refuses a SEC1 key without.
        let (label, der) = sec1::der::pem::decode_vec(pem.as_bytes()).unwrap();
        assert_eq!(label, "EC PRIVATE KEY");
        let parsed = <sec1::EcPrivateKey as sec1::der::Decode>::from_der(&der).unwrap();
        assert_eq!(
            parsed
                .parameters
                .and_then(|p| p.named_curve())
                .map(|oid| oid.to_string()),
            Some("1.2.840.10045.3.1.7".to_owned())
        );
        let key = Dpop(SigningKey::from(
            p256::SecretKey::from_sec1_pem(pem).unwrap(),
        ));
        let refreshed = refresh(&sandbox, &key, seeded["refreshToken"].as_str().unwrap()).await;
        assert_eq!(refreshed.status, 200, "{}", refreshed.body);
        let stolen = refresh(
            &sandbox,
            &Dpop::new(),
            refreshed.json()["refreshToken"].as_str().unwrap(),
        )
        .await;
        assert_eq!(signin_error(&stolen), denied("INVALID_REQUEST"));
    }
}
