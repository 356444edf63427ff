//! `SignInClient` and `AwsUpstream`'s login sessions against a canned local
//! Sign-In (`fake_http`): the request (bare token input, a DPoP proof that
//! verifies over the request's URL), the refresh written back with the
//! rotated token, a fresh file used without a call, one call for two
//! concurrent refreshers, and what each refusal means.

use super::session::LoginSessions;
use super::*;
use crate::fake_http::{Canned, FakeServer, Recorded};
use crate::login_cache::{LoginCache, LoginToken};
use credd_core::login::{LoginRef, LoginSession};
use credd_core::upstream::CallContext;
use p256::ecdsa::signature::Verifier as _;
use std::sync::Arc;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-12-03 12:00:00 UTC);
const ARN: &str = "arn:aws:iam::123456789012:user/dev";

fn id_token(sub: &str) -> String {
    let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"{sub}","aud":"x"}}"#));
    format!("eyJhbGciOiJFUzI1NiJ9.{payload}.c2ln")
}

fn answer(n: u32) -> Canned {
    Canned {
        status: 200,
        content_type: "application/json",
        headers: vec![],
        body: format!(
            r#"{{"accessToken":{{"accessKeyId":"ASIANEW{n}","secretAccessKey":"secret-new-{n}","sessionToken":"session-new-{n}"}},"tokenType":"aws_sigv4","expiresIn":900,"refreshToken":"refresh-new-{n}","idToken":"{}"}}"#,
            id_token(ARN)
        ),
    }
}

fn refused(error: &str, errortype: &str) -> Canned {
    Canned {
        status: 400,
        content_type: "application/json",
        headers: vec![("x-amzn-errortype".into(), errortype.into())],
        body: format!(r#"{{"error":"{error}","message":"refused: {error}"}}"#),
    }
}

fn status(code: u16) -> Canned {
    Canned {
        status: code,
        content_type: "application/json",
        headers: vec![],
        body: "{}".into(),
    }
}

fn fixed(t: OffsetDateTime) -> Now {
    Arc::new(move || t)
}

/// A cache file as the CLI writes it, expiring `left` from [`NOW`].
fn token(key: &DpopKey, left: time::Duration) -> LoginToken {
    let out = TokenOutput {
        access_key_id: "ASIAOLD".into(),
        secret_access_key: SecretString::new("secret-old"),
        session_token: SecretString::new("session-old"),
        token_type: "aws_sigv4".into(),
        expires_in: left.whole_seconds(),
        refresh_token: SecretString::new("refresh-old"),
        id_token: Some(SecretString::new(id_token(ARN))),
    };
    LoginToken::from_output(out, CLIENT_ID_SAME_DEVICE, key, NOW)
}

struct World {
    _dir: tempfile::TempDir,
    cache: LoginCache,
    server: FakeServer,
    sessions: LoginSessions,
    key: DpopKey,
}

async fn world(responses: Vec<Canned>, left: time::Duration) -> World {
    let dir = tempfile::tempdir().unwrap();
    let cache = LoginCache::at(dir.path().join("login/cache"));
    let key = DpopKey::generate();
    cache.save(&session(), &token(&key, left)).unwrap();
    let server = FakeServer::start(responses).await;
    let sessions = LoginSessions::new(Ok(cache.clone()), Some(server.url.clone()), fixed(NOW));
    World {
        _dir: dir,
        cache,
        server,
        sessions,
        key,
    }
}

fn session() -> LoginSession {
    LoginSession::new(ARN)
}

fn login() -> LoginRef {
    LoginRef {
        profile: "dev".into(),
        session: session(),
    }
}

fn ctx() -> CallContext {
    CallContext {
        profile: "dev".into(),
        region: Some("eu-west-1".into()),
    }
}

/// The proof in `r` verifies with `key`, over POST and the request's URL.
fn check_dpop(r: &Recorded, key: &DpopKey, url: &str) {
    let jwt = r.header("dpop").expect("a DPoP header");
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(payload["htm"], "POST");
    assert_eq!(payload["htu"], url);
    assert_eq!(payload["iat"], NOW.unix_timestamp());
    // The JWK in the header is the key's, and the signature verifies with it.
    let point = p256::EncodedPoint::from_affine_coordinates(
        URL_SAFE_NO_PAD
            .decode(header["jwk"]["x"].as_str().unwrap())
            .unwrap()
            .as_slice()
            .into(),
        URL_SAFE_NO_PAD
            .decode(header["jwk"]["y"].as_str().unwrap())
            .unwrap()
            .as_slice()
            .into(),
        false,
    );
    let verifying = p256::ecdsa::VerifyingKey::from_encoded_point(&point).unwrap();
    let sig =
        p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    verifying
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("the proof verifies with the header's key");
    assert_eq!(
        verifying,
        p256::ecdsa::VerifyingKey::from(
            &p256::ecdsa::SigningKey::from_slice(
                &p256::SecretKey::from_sec1_pem(key.to_pem().expose())
                    .unwrap()
                    .to_bytes()
            )
            .unwrap()
        ),
        "the proof is made with the session's key"
    );
}

#[tokio::test]
async fn refresh_sends_the_bare_token_input_with_a_valid_dpop_proof() {
    let server = FakeServer::start(vec![answer(1)]).await;
    let key = DpopKey::generate();
    let client = SignInClient::new(fixed(NOW));
    let out = client
        .refresh(
            &server.url,
            &key,
            CLIENT_ID_SAME_DEVICE,
            &SecretString::new("refresh-old"),
        )
        .await
        .unwrap();
    assert_eq!(out.access_key_id, "ASIANEW1");
    assert_eq!(out.refresh_token.expose(), "refresh-new-1");
    assert_eq!(out.expires_in, 900);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path(), "/v1/token");
    assert_eq!(
        reqs[0].json(),
        serde_json::json!({"clientId": CLIENT_ID_SAME_DEVICE, "grantType": "refresh_token", "refreshToken": "refresh-old"})
    );
    check_dpop(&reqs[0], &key, &format!("{}/v1/token", server.url));
    // No AWS signature: the call is authorized by the token and the proof.
    assert!(reqs[0].header("authorization").is_none());
}

#[tokio::test]
async fn exchange_code_sends_the_code_verifier_and_redirect() {
    let server = FakeServer::start(vec![answer(1)]).await;
    let key = DpopKey::generate();
    let out = SignInClient::new(fixed(NOW))
        .exchange_code(
            &server.url,
            &key,
            CLIENT_ID_CROSS_DEVICE,
            &SecretString::new("the-code"),
            &SecretString::new("the-verifier"),
            "http://127.0.0.1:9/v1/sessions/confirmation",
        )
        .await
        .unwrap();
    assert_eq!(
        login_session_from_id_token(out.id_token.unwrap().expose()).unwrap(),
        ARN
    );
    let reqs = server.requests();
    assert_eq!(
        reqs[0].json(),
        serde_json::json!({"clientId": CLIENT_ID_CROSS_DEVICE, "grantType": "authorization_code", "code": "the-code", "codeVerifier": "the-verifier", "redirectUri": "http://127.0.0.1:9/v1/sessions/confirmation"})
    );
    check_dpop(&reqs[0], &key, &format!("{}/v1/token", server.url));
}

#[tokio::test]
async fn refusals_are_told_by_what_they_mean_and_carry_no_secret() {
    let key = DpopKey::generate();
    let cases: Vec<(Canned, UpstreamErrorKind)> = vec![
        (
            refused("TOKEN_EXPIRED", "AccessDeniedException"),
            UpstreamErrorKind::LoginRequired,
        ),
        (
            refused("USER_CREDENTIALS_CHANGED", "AccessDeniedException"),
            UpstreamErrorKind::LoginRequired,
        ),
        (
            refused("INSUFFICIENT_PERMISSIONS", "AccessDeniedException"),
            UpstreamErrorKind::Denied,
        ),
        (
            refused("INVALID_REQUEST", "ValidationException"),
            UpstreamErrorKind::Config,
        ),
        (status(500), UpstreamErrorKind::Unreachable),
        (status(503), UpstreamErrorKind::Unreachable),
        (status(429), UpstreamErrorKind::Throttled),
    ];
    for (canned, kind) in cases {
        let what = format!("{} {}", canned.status, canned.body);
        let server = FakeServer::start(vec![canned]).await;
        let err = SignInClient::new(fixed(NOW))
            .refresh(
                &server.url,
                &key,
                CLIENT_ID_SAME_DEVICE,
                &SecretString::new("refresh-canary"),
            )
            .await
            .unwrap_err()
            .into_upstream("dev");
        assert_eq!(err.kind, kind, "{what}: {err}");
        assert!(!err.message.contains("refresh-canary"), "{err}");
        if kind == UpstreamErrorKind::LoginRequired {
            assert!(
                err.message.contains("`aws login --profile dev`")
                    && err.message.contains("`credd login --profile dev`"),
                "{err}"
            );
        }
    }
    // Nothing listening: unreachable, naming the endpoint.
    let err = SignInClient::new(fixed(NOW))
        .refresh(
            "http://127.0.0.1:9",
            &key,
            CLIENT_ID_SAME_DEVICE,
            &SecretString::new("r"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SignInError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
}

#[test]
fn endpoints_follow_the_override_and_the_partition() {
    assert_eq!(
        signin_endpoint_with(None, "eu-west-1"),
        "https://eu-west-1.signin.aws.amazon.com"
    );
    assert_eq!(
        signin_endpoint_with(Some("http://127.0.0.1:5/".into()), "eu-west-1"),
        "http://127.0.0.1:5"
    );
    let env = |k: &str| match k {
        "AWS_ENDPOINT_URL_SIGNIN" => Some("http://x".to_string()),
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS" => Some("TRUE".to_string()),
        _ => None,
    };
    assert_eq!(configured_endpoint(&env), None);
}

#[test]
fn the_login_session_is_the_id_tokens_subject() {
    assert_eq!(login_session_from_id_token(&id_token(ARN)).unwrap(), ARN);
    assert!(login_session_from_id_token("a.b").is_err());
    assert!(login_session_from_id_token("a.!!.c").is_err());
    let no_sub = format!("a.{}.c", URL_SAFE_NO_PAD.encode(r#"{"aud":"x"}"#));
    assert!(login_session_from_id_token(&no_sub).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_life_left_is_used_without_a_call() {
    let w = world(vec![answer(1)], time::Duration::minutes(14)).await;
    let creds = w.sessions.credentials(&ctx(), &login()).await.unwrap();
    assert_eq!(creds.access_key_id(), "ASIAOLD");
    assert_eq!(creds.account_id(), Some("123456789012"));
    assert!(w.server.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_rotates_the_token_and_writes_it_back() {
    let w = world(vec![answer(1)], time::Duration::minutes(9)).await;
    let before = w.cache.load(&session()).unwrap().unwrap();
    let creds = w.sessions.credentials(&ctx(), &login()).await.unwrap();
    assert_eq!(creds.access_key_id(), "ASIANEW1");
    assert_eq!(creds.expiration(), NOW + time::Duration::seconds(900));
    let reqs = w.server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].json()["refreshToken"], "refresh-old");
    check_dpop(&reqs[0], &w.key, &format!("{}/v1/token", w.server.url));
    // The file holds the rotated token, with everything else kept.
    let after = w.cache.load(&session()).unwrap().unwrap();
    assert_eq!(after.refresh_token.expose(), "refresh-new-1");
    assert_eq!(after.access_key_id, "ASIANEW1");
    assert_eq!(after.expires_at, NOW + time::Duration::seconds(900));
    assert_eq!(after.dpop_key, before.dpop_key);
    assert_eq!(after.client_id, before.client_id);
    assert_eq!(after.id_token, before.id_token);
    assert_eq!(after.account_id.as_deref(), Some("123456789012"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_refreshers_make_one_call() {
    let w = world(vec![answer(1), answer(2)], time::Duration::minutes(3)).await;
    // A second daemon-like reader of the same directory (another process
    // would hold its own lock the same way: flock is per open file).
    let other = LoginSessions::new(Ok(w.cache.clone()), Some(w.server.url.clone()), fixed(NOW));
    let (c, l) = (ctx(), login());
    let (a, b) = tokio::join!(w.sessions.credentials(&c, &l), other.credentials(&c, &l));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        w.server.requests().len(),
        1,
        "the second re-read the file under the lock"
    );
    assert_eq!(a.access_key_id(), "ASIANEW1");
    assert_eq!(b.access_key_id(), "ASIANEW1");
    assert_eq!(
        w.cache
            .load(&session())
            .unwrap()
            .unwrap()
            .refresh_token
            .expose(),
        "refresh-new-1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_asks_for_a_login_and_leaves_the_file() {
    let w = world(
        vec![refused("TOKEN_EXPIRED", "AccessDeniedException")],
        time::Duration::minutes(2),
    )
    .await;
    let path = w.cache.path(&session());
    let before = std::fs::read(&path).unwrap();
    let err = w.sessions.credentials(&ctx(), &login()).await.unwrap_err();
    assert_eq!(err.kind, UpstreamErrorKind::LoginRequired);
    assert!(err.message.contains("aws login --profile dev"), "{err}");
    assert!(!err.message.contains("refresh-old"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // No file at all: the same, naming the session.
    std::fs::remove_file(&path).unwrap();
    let err = w.sessions.credentials(&ctx(), &login()).await.unwrap_err();
    assert_eq!(err.kind, UpstreamErrorKind::LoginRequired);
    assert!(err.message.contains(ARN), "{err}");
    assert!(err.message.contains("credd login --profile dev"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_region_is_a_config_error_and_a_corrupt_file_asks_for_a_login() {
    // Without an override, the endpoint comes from the region: no region at
    // all is refused before any call.
    let w = world(vec![answer(1)], time::Duration::minutes(2)).await;
    let no_override = LoginSessions::new(Ok(w.cache.clone()), None, fixed(NOW));
    let err = no_override
        .credentials(
            &CallContext {
                profile: "dev".into(),
                region: None,
            },
            &login(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, UpstreamErrorKind::Config, "{err}");
    assert!(err.message.contains("region"), "{err}");
    // A corrupt file is a login-required error naming the file, not its text.
    std::fs::write(
        w.cache.path(&session()),
        "{\"accessToken\": \"refresh-old\"",
    )
    .unwrap();
    let err = w.sessions.credentials(&ctx(), &login()).await.unwrap_err();
    assert_eq!(err.kind, UpstreamErrorKind::LoginRequired);
    assert!(err
        .message
        .contains(&w.cache.path(&session()).display().to_string()));
    assert!(!err.message.contains("refresh-old"), "{err}");
    assert!(w.server.requests().is_empty());
}

#[test]
fn the_tokens_sign_in_region_wins_over_the_profiles() {
    use super::session::endpoint_for;
    assert_eq!(
        endpoint_for(None, Some("eu-central-1"), Some("us-west-2")).as_deref(),
        Some("https://eu-central-1.signin.aws.amazon.com")
    );
    assert_eq!(
        endpoint_for(None, None, Some("us-west-2")).as_deref(),
        Some("https://us-west-2.signin.aws.amazon.com")
    );
    assert_eq!(
        endpoint_for(None, Some(" "), Some("us-west-2")).as_deref(),
        Some("https://us-west-2.signin.aws.amazon.com")
    );
    assert_eq!(endpoint_for(None, None, None), None);
    // The configured endpoint is used as it is, whatever the region.
    assert_eq!(
        endpoint_for(Some("http://127.0.0.1:7"), Some("eu-central-1"), None).as_deref(),
        Some("http://127.0.0.1:7")
    );
}

/// A Sign-In that takes `delay` to answer, once: lets a test stop waiting
/// while the refresh is under way.
async fn slow_signin(delay: std::time::Duration) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = Vec::new();
        // Headers, then the body by its Content-Length.
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if got.len() >= end + 4 + len {
                    break;
                }
            }
        }
        tokio::time::sleep(delay).await;
        let body = answer(7).body;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_stops_waiting_never_cuts_a_refresh_halfway() {
    let dir = tempfile::tempdir().unwrap();
    let cache = LoginCache::at(dir.path());
    let key = DpopKey::generate();
    cache
        .save(&session(), &token(&key, time::Duration::minutes(3)))
        .unwrap();
    let (url, server) = slow_signin(std::time::Duration::from_millis(400)).await;
    let sessions = LoginSessions::new(Ok(cache.clone()), Some(url), fixed(NOW));
    // The caller gives up while Sign-In is still answering (a retired node,
    // a request past its cold wait)...
    let gave_up = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        sessions.credentials(&ctx(), &login()),
    )
    .await;
    assert!(gave_up.is_err(), "the answer takes longer than the wait");
    assert_eq!(
        cache
            .load(&session())
            .unwrap()
            .unwrap()
            .refresh_token
            .expose(),
        "refresh-old"
    );
    // ...and the spent token's successor still reaches the file.
    server.await.unwrap();
    for _ in 0..100 {
        if cache
            .load(&session())
            .unwrap()
            .unwrap()
            .refresh_token
            .expose()
            == "refresh-new-7"
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the rotated refresh token never reached the file");
}

/// Collects every event at every level, from every crate (the SDK's too),
/// of the whole test process: the refresh runs on a blocking thread and the
/// SDK's connection on runtime threads, which a thread-local subscriber would
/// miss. Other tests' events land here too; the canaries below are this
/// test's own.
static CAPTURE: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_of_a_refresh_reaches_a_log_line_at_any_level() {
    let buf = CAPTURE
        .get_or_init(|| {
            let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
            let writer = Capture(buf.clone());
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other test sets a global subscriber");
            buf
        })
        .clone();
    let canary = Canned {
        body: answer(1)
            .body
            .replace("secret-new-1", "secret-canary-9")
            .replace("session-new-1", "session-canary-9")
            .replace("refresh-new-1", "refresh-canary-9"),
        ..answer(1)
    };
    let w = world(vec![canary], time::Duration::minutes(2)).await;
    w.cache
        .update(&session(), |t| -> Result<_, crate::LoginCacheError> {
            let mut t = t.unwrap();
            t.refresh_token = SecretString::new("refresh-canary-8");
            t.secret_access_key = SecretString::new("secret-canary-8");
            t.session_token = SecretString::new("session-canary-8");
            Ok((Some(t), ()))
        })
        .unwrap();
    let pem = w.key.to_pem().expose().to_string();
    let key_line = pem.lines().nth(1).unwrap().to_string();
    let creds = w.sessions.credentials(&ctx(), &login()).await.unwrap();
    assert_eq!(creds.session_token().expose(), "session-canary-9");
    let log = String::from_utf8_lossy(&buf.lock().unwrap()).to_string();
    assert!(
        log.contains("aws login session refreshed")
            && log.contains("CreateOAuth2Token")
            && log.contains("aws_smithy_runtime"),
        "the capture works: {log}"
    );
    for secret in [
        "refresh-canary-8",
        "secret-canary-8",
        "session-canary-8",
        "refresh-canary-9",
        "secret-canary-9",
        "session-canary-9",
        key_line.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}
