//! [`AwsUpstream`]'s STS calls against a canned local HTTP server: what each
//! request carries (parameters, signing identity, region, no signature for
//! web identity), how responses become credentials, and how error responses
//! become classified errors without secrets. Behaviour against a real STS
//! implementation is the end-to-end suite's job.

use crate::fake_http::{Canned, FakeServer, Recorded};
use crate::profiles::ProfileEnv;
use crate::sts::AwsUpstream;
use aws_types::os_shim_internal::Env;
use credd_core::profile::RoleStep;
use credd_core::upstream::CallContext;
use credd_core::{LongTermKeys, SecretString, TemporaryCredentials, Upstream, UpstreamErrorKind};
use time::macros::datetime;

/// A canned STS: XML answers, and an upstream pointed at it.
struct FakeSts(FakeServer);

impl std::ops::Deref for FakeSts {
    type Target = FakeServer;
    fn deref(&self) -> &FakeServer {
        &self.0
    }
}

impl FakeSts {
    async fn start(responses: &[(u16, &str)]) -> Self {
        let canned = responses
            .iter()
            .map(|(status, body)| Canned {
                status: *status,
                content_type: "text/xml",
                headers: vec![],
                body: body.to_string(),
            })
            .collect();
        Self(FakeServer::start(canned).await)
    }

    fn upstream(&self) -> AwsUpstream {
        AwsUpstream::with_env(
            ProfileEnv::default(),
            Env::from_slice(&[("AWS_ENDPOINT_URL_STS", &self.url)]),
        )
    }
}

const CREDENTIALS_XML: &str = "<Credentials>\
    <AccessKeyId>ASIAOUT</AccessKeyId><SecretAccessKey>secret-out</SecretAccessKey>\
    <SessionToken>token-out</SessionToken><Expiration>2026-11-23T10:00:00Z</Expiration>\
    </Credentials>";

fn ok(action: &str, extra: &str) -> String {
    format!(
        "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result>\
         {CREDENTIALS_XML}{extra}</{action}Result>\
         <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>"
    )
}

fn error(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>r</RequestId></ErrorResponse>"
    )
}

fn ctx(region: Option<&str>) -> CallContext {
    CallContext {
        profile: "dev".into(),
        region: region.map(str::to_string),
    }
}

fn keys() -> LongTermKeys {
    LongTermKeys {
        access_key_id: "AKIAIN".into(),
        secret_access_key: SecretString::new("canary-secret-in"),
    }
}

fn source() -> TemporaryCredentials {
    TemporaryCredentials::new(
        "ASIAIN",
        SecretString::new("canary-secret-in"),
        SecretString::new("canary-token-in"),
        datetime!(2026-11-23 09:00 UTC),
        None,
    )
    .unwrap()
}

fn role() -> RoleStep {
    RoleStep {
        profile: "dev".into(),
        role_arn: "arn:aws:iam::444455556666:role/Dev".into(),
        external_id: Some("ext-1".into()),
        session_name: "credd-dev".into(),
        duration_secs: Some(3600),
        capped_from: None,
    }
}

#[tokio::test]
async fn get_session_token_with_mfa() {
    let fake = FakeSts::start(&[(200, &ok("GetSessionToken", ""))]).await;
    let code = SecretString::new("123456");
    let creds = fake
        .upstream()
        .get_session_token(
            &ctx(Some("eu-west-1")),
            &keys(),
            Some(("arn:aws:iam::111122223333:mfa/me", &code)),
            43_200,
        )
        .await
        .unwrap();
    assert_eq!(creds.access_key_id(), "ASIAOUT");
    assert_eq!(creds.secret_access_key().expose(), "secret-out");
    assert_eq!(creds.session_token().expose(), "token-out");
    assert_eq!(creds.expiration(), datetime!(2026-11-23 10:00 UTC));
    assert_eq!(creds.account_id(), Some("111122223333"));

    let req = &fake.requests()[0];
    for param in [
        "Action=GetSessionToken",
        "DurationSeconds=43200",
        "SerialNumber=arn%3Aaws%3Aiam%3A%3A111122223333%3Amfa%2Fme",
        "TokenCode=123456",
    ] {
        assert!(req.body.contains(param), "{param} in {}", req.body);
    }
    let auth = req.header("authorization").unwrap();
    assert!(auth.contains("Credential=AKIAIN/"), "{auth}");
    assert!(auth.contains("/eu-west-1/sts/aws4_request"), "{auth}");
    assert_eq!(req.header("x-amz-security-token"), None);
}

#[tokio::test]
async fn get_session_token_without_mfa_has_no_account() {
    let fake = FakeSts::start(&[(200, &ok("GetSessionToken", ""))]).await;
    let creds = fake
        .upstream()
        .get_session_token(&ctx(None), &keys(), None, 3600)
        .await
        .unwrap();
    assert_eq!(creds.account_id(), None);
    let req = &fake.requests()[0];
    assert!(!req.body.contains("SerialNumber"), "{}", req.body);
    assert!(req
        .header("authorization")
        .unwrap()
        .contains("/us-east-1/sts/"));
}

#[tokio::test]
async fn assume_role_signs_with_the_source_session() {
    let user = "<AssumedRoleUser><AssumedRoleId>AROA:credd-dev</AssumedRoleId>\
                <Arn>arn:aws:sts::444455556666:assumed-role/Dev/credd-dev</Arn></AssumedRoleUser>";
    let fake = FakeSts::start(&[(200, &ok("AssumeRole", user))]).await;
    let creds = fake
        .upstream()
        .assume_role(&ctx(None), &source(), &role())
        .await
        .unwrap();
    assert_eq!(creds.account_id(), Some("444455556666"));
    assert_eq!(creds.access_key_id(), "ASIAOUT");
    let req = &fake.requests()[0];
    for param in [
        "Action=AssumeRole",
        "RoleArn=arn%3Aaws%3Aiam%3A%3A444455556666%3Arole%2FDev",
        "RoleSessionName=credd-dev",
        "ExternalId=ext-1",
        "DurationSeconds=3600",
    ] {
        assert!(req.body.contains(param), "{param} in {}", req.body);
    }
    assert_eq!(req.header("x-amz-security-token"), Some("canary-token-in"));
    assert!(req
        .header("authorization")
        .unwrap()
        .contains("Credential=ASIAIN/"));
}

#[tokio::test]
async fn web_identity_is_unsigned_and_rereads_the_token() {
    let user = "<AssumedRoleUser><AssumedRoleId>AROA:s</AssumedRoleId>\
                <Arn>arn:aws:sts::777788889999:assumed-role/Wi/s</Arn></AssumedRoleUser>";
    let fake = FakeSts::start(&[(200, &ok("AssumeRoleWithWebIdentity", user))]).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let token_path = token_file.to_str().unwrap();
    let up = fake.upstream();
    let role_arn = "arn:aws:iam::777788889999:role/Wi";
    for token in ["first-token", "second-token"] {
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        let creds = up
            .assume_role_with_web_identity(&ctx(None), role_arn, "s", token_path)
            .await
            .unwrap();
        assert_eq!(creds.account_id(), Some("777788889999"));
    }
    let reqs = fake.requests();
    let param = |r: &Recorded, name: &str| {
        r.body
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    assert_eq!(
        param(&reqs[0], "WebIdentityToken").as_deref(),
        Some("first-token")
    );
    assert_eq!(
        param(&reqs[1], "WebIdentityToken").as_deref(),
        Some("second-token")
    );
    assert_eq!(
        param(&reqs[1], "Action").as_deref(),
        Some("AssumeRoleWithWebIdentity")
    );
    assert_eq!(reqs[1].header("authorization"), None);

    let e = up
        .assume_role_with_web_identity(&ctx(None), role_arn, "s", "/nonexistent/token")
        .await
        .unwrap_err();
    assert_eq!(e.kind, UpstreamErrorKind::Source);
    assert!(e.message.contains("/nonexistent/token"), "{}", e.message);
}

#[tokio::test]
async fn caller_identity() {
    let body = "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
        <GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:user/me</Arn>\
        <UserId>AIDAEXAMPLE</UserId><Account>111122223333</Account></GetCallerIdentityResult>\
        <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>";
    let fake = FakeSts::start(&[(200, body)]).await;
    let id = fake
        .upstream()
        .caller_identity(&ctx(None), &source())
        .await
        .unwrap();
    assert_eq!(id.account, "111122223333");
    assert_eq!(id.arn, "arn:aws:iam::111122223333:user/me");
    assert_eq!(id.user_id, "AIDAEXAMPLE");
}

#[tokio::test]
async fn error_responses_are_classified_without_secrets() {
    let cases = [
        (
            403,
            "AccessDenied",
            "User: arn:aws:iam::1:user/me is not authorized to perform: sts:AssumeRole",
            UpstreamErrorKind::Denied,
        ),
        (
            403,
            "AccessDenied",
            "MultiFactorAuthentication failed with invalid MFA one time pass code.",
            UpstreamErrorKind::InvalidMfa,
        ),
        (
            400,
            "ExpiredToken",
            "The security token included in the request is expired",
            UpstreamErrorKind::Denied,
        ),
        (
            400,
            "Throttling",
            "Rate exceeded",
            UpstreamErrorKind::Throttled,
        ),
    ];
    for (status, code, message, kind) in cases {
        let fake = FakeSts::start(&[(status, &error(code, message))]).await;
        let e = fake
            .upstream()
            .assume_role(&ctx(None), &source(), &role())
            .await
            .unwrap_err();
        assert_eq!(e.kind, kind, "{code}: {message}");
        assert_eq!(e.code.as_deref(), Some(code));
        assert_eq!(e.message, format!("STS AssumeRole: {code}: {message}"));
        let shown = format!("{e:?} {e}");
        assert!(!shown.contains("canary"), "{shown}");
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let up = AwsUpstream::with_env(
        ProfileEnv::default(),
        Env::from_slice(&[("AWS_ENDPOINT_URL", &url)]),
    );
    let e = up
        .get_session_token(&ctx(None), &keys(), None, 3600)
        .await
        .unwrap_err();
    assert_eq!(e.kind, UpstreamErrorKind::Unreachable, "{}", e.message);
    assert!(
        e.message
            .starts_with("STS GetSessionToken: could not reach the endpoint"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("canary"), "{}", e.message);
}

#[tokio::test]
async fn a_non_sts_answer_is_explained() {
    let fake = FakeSts::start(&[(200, "<html>captive portal</html>")]).await;
    let e = fake
        .upstream()
        .get_session_token(&ctx(None), &keys(), None, 3600)
        .await
        .unwrap_err();
    assert_eq!(e.kind, UpstreamErrorKind::Unreachable, "{}", e.message);
    assert!(e.message.contains("not an STS response"), "{}", e.message);
}

#[tokio::test]
async fn the_profiles_endpoint_url_is_used() {
    let fake = FakeSts::start(&[(200, &ok("GetSessionToken", ""))]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile dev]\nservices = local\n[profile other]\nendpoint_url = http://127.0.0.1:9\n\
             [services local]\nsts =\n  endpoint_url = {}\n",
            fake.url
        ),
    )
    .unwrap();
    let up = AwsUpstream::with_env(
        ProfileEnv {
            home: Some(dir.path().to_path_buf()),
            config_file: Some(config),
            credentials_file: None,
        },
        Env::from_slice(&[]),
    );
    up.get_session_token(&ctx(None), &keys(), None, 3600)
        .await
        .unwrap();
    assert_eq!(fake.requests().len(), 1);
}
