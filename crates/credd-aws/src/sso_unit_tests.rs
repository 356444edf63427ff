//! Unit tests of [`super`] (sso.rs), in their own file to keep that one
//! about the code; they see its private items as an inline module would.

use super::*;

fn work() -> SsoSession {
    SsoSession {
        name: Some("work".into()),
        start_url: "https://d-1234567890.awsapps.com/start".into(),
        region: "eu-west-1".into(),
        scopes: None,
        session_length: None,
    }
}

fn registration() -> ClientRegistration {
    ClientRegistration {
        client_id: "cid".into(),
        client_secret: SecretString::new("canary-client-secret"),
        expires_at: OffsetDateTime::UNIX_EPOCH,
        scopes: None,
        grant_types: None,
    }
}

#[test]
fn endpoints_follow_the_sdk_environment_rules() {
    let ep = |vars: &[(&str, &str)], service| {
        resolve_endpoint(&Env::from_slice(vars), service, "eu-west-1")
    };
    let portal = ep(&[], Service::Portal);
    assert_eq!(portal.configured, None);
    assert_eq!(portal.base, "https://portal.sso.eu-west-1.amazonaws.com");
    assert_eq!(portal.host, "portal.sso.eu-west-1.amazonaws.com");
    assert_eq!(
        ep(&[], Service::Oidc).base,
        "https://oidc.eu-west-1.amazonaws.com"
    );
    assert_eq!(
        resolve_endpoint(&Env::from_slice(&[]), Service::Oidc, "cn-north-1").base,
        "https://oidc.cn-north-1.amazonaws.com.cn",
        "the SDK's rules know other partitions"
    );

    let all = [
        ("AWS_ENDPOINT_URL", "http://global:1"),
        ("AWS_ENDPOINT_URL_SSO", "http://portal:2/prefix"),
        ("AWS_ENDPOINT_URL_SSO_OIDC", "http://oidc:3"),
    ];
    let portal = ep(&all, Service::Portal);
    assert_eq!(portal.configured.as_deref(), Some("http://portal:2/prefix"));
    assert_eq!(portal.base, "http://portal:2");
    assert_eq!(portal.host, "portal:2");
    assert_eq!(
        ep(&all, Service::Oidc).configured.as_deref(),
        Some("http://oidc:3")
    );
    assert_eq!(
        ep(&all[..1], Service::Oidc).configured.as_deref(),
        Some("http://global:1"),
        "the global variable applies to both services"
    );
    assert_eq!(
        ep(&all[..2], Service::Oidc).configured.as_deref(),
        Some("http://global:1"),
        "AWS_ENDPOINT_URL_SSO is the portal's alone"
    );
    let mut ignoring = all.to_vec();
    ignoring.push(("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "True"));
    assert_eq!(ep(&ignoring, Service::Portal).configured, None);
    assert_eq!(ep(&ignoring, Service::Oidc).configured, None);
    ignoring.pop();
    ignoring.push(("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "yes"));
    assert!(
        ep(&ignoring, Service::Oidc).configured.is_some(),
        "a value that is not a boolean is ignored, as the SDKs do"
    );
}

#[test]
fn authorize_url_is_the_clis() {
    let client = SsoClient::with_env(Env::from_slice(&[]));
    let mut session = work();
    let url = client.authorize_url(
        &session,
        &registration(),
        "http://127.0.0.1:51234/oauth/callback",
        "5f0e8c1a-4e4b-4f57-9d3e-0b7d8e2f6a11",
        "ImpiCd8pp4MveCNnbIS7-GXEtB0xF5HMIDoWqvGA5ig",
    );
    assert_eq!(
        url,
        "https://oidc.eu-west-1.amazonaws.com/authorize?response_type=code&client_id=cid\
             &redirect_uri=http%3A%2F%2F127.0.0.1%3A51234%2Foauth%2Fcallback\
             &state=5f0e8c1a-4e4b-4f57-9d3e-0b7d8e2f6a11&code_challenge_method=S256\
             &scopes=sso%3Aaccount%3Aaccess\
             &code_challenge=ImpiCd8pp4MveCNnbIS7-GXEtB0xF5HMIDoWqvGA5ig"
    );
    session.scopes = Some(vec!["sso:account:access".into(), "codewhisperer:x".into()]);
    let client = SsoClient::with_env(Env::from_slice(&[(
        "AWS_ENDPOINT_URL_SSO_OIDC",
        "http://127.0.0.1:9999/ignored-path",
    )]));
    let url = client.authorize_url(&session, &registration(), "r", "s", "c");
    assert!(
        url.starts_with("http://127.0.0.1:9999/authorize?"),
        "only the scheme and authority of an override are kept, as botocore does: {url}"
    );
    assert!(
        url.contains("&scopes=sso%3Aaccount%3Aaccess%20codewhisperer%3Ax&"),
        "{url}"
    );
    assert!(!url.contains("canary"));
}

#[test]
fn pkce_pairs_are_the_clis_shape() {
    // The known answer, from Python's
    // `base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest())[:-1]`.
    assert_eq!(
        pkce_challenge(std::str::from_utf8(VERIFIER_ALPHABET).unwrap()),
        "RZ77XZltYSfl0BLxuGd8pHGJ4EoMoVDVuSWHgNq3RY8"
    );
    let (v1, c1) = pkce_pair();
    let (v2, _) = pkce_pair();
    assert_eq!(v1.expose().len(), 64);
    assert!(v1.expose().bytes().all(|b| VERIFIER_ALPHABET.contains(&b)));
    assert_ne!(v1.expose(), v2.expose());
    assert_eq!(c1, pkce_challenge(v1.expose()));
    assert_eq!(c1.len(), 43);
}

fn site<'a>(op: Op, session: &'a SsoSession, subject: Option<&str>) -> Site<'a> {
    Site {
        op,
        session,
        endpoint: resolve_endpoint(&Env::from_slice(&[]), op.service(), &session.region),
        subject: subject.map(str::to_string),
    }
}

fn service(site: &Site<'_>, status: u16, code: &str, message: Option<&str>) -> SsoError {
    site.classify(
        &Failure::Service {
            status: Some(status),
            code: Some(code),
            message,
        },
        None,
    )
}

#[test]
fn portal_errors_are_classified() {
    use UpstreamErrorKind::*;
    let session = work();
    let s = site(
        Op::GetRoleCredentials,
        &session,
        Some("role Admin in account 111122223333"),
    );
    let e = service(
        &s,
        401,
        "UnauthorizedException",
        Some("Session token not found or invalid"),
    );
    assert_eq!(e.kind(), LoginRequired);
    assert_eq!(
        e.to_string(),
        "the IAM Identity Center token of session 'work' was refused: run `credd login work` \
             (SSO GetRoleCredentials: UnauthorizedException: Session token not found or invalid)"
    );
    let e = service(&s, 403, "ForbiddenException", Some("No access"));
    assert_eq!(e.kind(), Denied);
    assert!(
        e.to_string()
            .starts_with("no access to role Admin in account 111122223333 ("),
        "{e}"
    );
    assert_eq!(
        service(&s, 404, "ResourceNotFoundException", None).kind(),
        Denied
    );
    assert_eq!(
        service(&s, 429, "TooManyRequestsException", None).kind(),
        Throttled
    );
    assert_eq!(
        service(&s, 400, "InvalidRequestException", None).kind(),
        Config
    );
    assert_eq!(service(&s, 503, "SomethingNew", None).kind(), Unreachable);
    let up = UpstreamError::from(service(&s, 401, "UnauthorizedException", None));
    assert_eq!(up.kind, LoginRequired);
    assert_eq!(up.code.as_deref(), Some("UnauthorizedException"));
}

#[test]
fn oidc_errors_depend_on_the_grant() {
    use UpstreamErrorKind::*;
    let session = work();
    let refresh = site(Op::CreateToken(Grant::Refresh), &session, None);
    for code in [
        "InvalidGrantException",
        "ExpiredTokenException",
        "InvalidClientException",
        "UnauthorizedClientException",
        "AccessDeniedException",
    ] {
        let e = service(&refresh, 400, code, None);
        assert_eq!(e.kind(), LoginRequired, "{code}");
        assert!(e.is_login_required());
        assert!(e.to_string().contains("run `credd login work`"), "{e}");
    }
    assert_eq!(
        service(&refresh, 400, "SlowDownException", None).kind(),
        Throttled
    );
    assert_eq!(
        service(&refresh, 500, "InternalServerException", None).kind(),
        Unreachable
    );
    assert_eq!(
        service(&refresh, 400, "InvalidRequestException", None).kind(),
        Config
    );

    let device = site(Op::CreateToken(Grant::DeviceCode), &session, None);
    assert_eq!(
        service(&device, 400, "ExpiredTokenException", None).to_string(),
        "the sign-in request expired: run `credd login work` again"
    );
    assert_eq!(
        service(&device, 400, "AccessDeniedException", None).to_string(),
        "sign-in was denied in the browser"
    );
    let register = site(Op::RegisterClient, &session, None);
    let e = service(&register, 400, "InvalidScopeException", Some("bad scope"));
    assert_eq!(
        e.to_string(),
        "SSO OIDC RegisterClient: InvalidScopeException: bad scope"
    );
    assert_eq!(e.code(), Some("InvalidScopeException"));
}

#[test]
fn unreachable_names_the_host_and_what_to_check() {
    let session = SsoSession {
        region: "eu-wset-1".into(),
        ..work()
    };
    let s = site(Op::GetRoleCredentials, &session, None);
    let e = s.classify(
        &Failure::Dispatch(
            "dns error: failed to lookup address information: Name or service not known".into(),
        ),
        None,
    );
    assert_eq!(e.kind(), UpstreamErrorKind::Unreachable);
    assert!(
        e.to_string()
            .contains("could not reach portal.sso.eu-wset-1.amazonaws.com"),
        "{e}"
    );
    assert!(
        e.to_string()
            .ends_with("; sso_region 'eu-wset-1' may be misspelt in the sso-session"),
        "{e}"
    );
    let e = s.classify(&Failure::Dispatch("Connection refused".into()), None);
    assert!(e.to_string().ends_with("; is sso_region right?"), "{e}");
    let legacy = SsoSession {
        name: None,
        ..work()
    };
    let e = service(
        &site(Op::ListAccounts, &legacy, None),
        401,
        "UnauthorizedException",
        None,
    );
    assert!(
        e.to_string().contains(&format!(
            "session at {} was refused: run `credd login`",
            legacy.start_url
        )),
        "{e}"
    );
}
