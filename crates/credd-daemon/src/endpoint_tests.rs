//! Both endpoints routed in memory (no socket), through the same
//! [`Endpoint`] the accept loop uses (guard, then handler, errors
//! rendered): guards, auth, statuses and bodies. Threat-model rows 1, 2, 5
//! and 6.

use crate::container::ContainerEndpoint;
use crate::guard::Guard;
use crate::imds::ImdsEndpoint;
use crate::server::{Endpoint, Handler};
use crate::testing::*;
use crate::tokens::TokenStore;
use ::http::{Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;

const ADDR: &str = "127.0.0.1:9911";

fn peer() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

// The tests below say `ep.route(&req, peer)` and reach the handler's
// fields through `ep`: an endpoint in a test is its handler behind its
// guard.
impl<H: Handler> Endpoint<H> {
    async fn route<B: Send + Sync>(
        &self,
        req: &Request<B>,
        peer: SocketAddr,
    ) -> Response<crate::response::Body> {
        self.answer(req, peer).await
    }
}

impl<H> std::ops::Deref for Endpoint<H> {
    type Target = H;
    fn deref(&self) -> &H {
        self.handler()
    }
}

fn container(h: &Harness) -> (Endpoint<ContainerEndpoint>, String, String) {
    let tokens = Arc::new(TokenStore::in_memory());
    let (dev, _) = tokens
        .issue(vec!["dev".into()], T0, None, "t".into())
        .unwrap();
    let (base, _) = tokens
        .issue(
            vec!["base".into()],
            T0,
            Some(time::Duration::hours(1)),
            "t".into(),
        )
        .unwrap();
    (
        Endpoint::new(
            Guard::sdks(ADDR.parse().unwrap()),
            ContainerEndpoint {
                broker: h.broker.clone(),
                tokens,
                audit: Arc::new(crate::audit::AuditLog::disabled()),
                cold_wait: crate::config::Limits::default().cold_wait,
            },
        ),
        dev.expose().to_string(),
        base.expose().to_string(),
    )
}

fn get(path: &str, host: Option<&str>, auth: Option<&str>) -> Request<()> {
    let mut b = Request::get(path);
    if let Some(h) = host {
        b = b.header("host", h);
    }
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(()).unwrap()
}

async fn body(r: Response<crate::response::Body>) -> (StatusCode, String, serde_json::Value) {
    use http_body_util::BodyExt;
    let status = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
        String::from_utf8_lossy(&bytes).into(),
    ));
    (status, ct, v)
}

#[tokio::test]
async fn serves_exactly_what_sdks_need() {
    let h = harness();
    let (ep, dev, _) = container(&h);
    let (s, ct, v) = body(
        ep.route(&get("/v1/credentials/dev", Some(ADDR), Some(&dev)), peer())
            .await,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ct, "application/json");
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "AccessKeyId",
            "AccountId",
            "Expiration",
            "SecretAccessKey",
            "Token"
        ]
    );
    let exp = v["Expiration"].as_str().unwrap();
    assert_eq!(exp.len(), 20, "{exp}");
    assert!(exp.ends_with('Z') && !exp.contains('.') && !exp.contains('+'));
    // The single-profile form works for a token scoped to one profile.
    let (s, _, v2) = body(
        ep.route(
            &get("/v1/credentials", Some("localhost:9911"), Some(&dev)),
            peer(),
        )
        .await,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v2["AccessKeyId"], v["AccessKeyId"]);
    h.cancel.cancel();
}

#[tokio::test]
async fn dns_rebinding_and_web_pages_are_refused() {
    let h = harness();
    let (ep, dev, _) = container(&h);
    for host in [
        Some("evil.test"),
        Some("evil.test:9911"),
        Some("localhost6:9911"),
        Some("127.0.0.1.nip.io:9911"),
        Some("localhost.:9911"),
        Some("127.0.0.1.:9911"),
        None,
    ] {
        let (s, ct, v) = body(
            ep.route(&get("/v1/credentials/dev", host, Some(&dev)), peer())
                .await,
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{host:?}");
        assert_eq!(ct, "application/json");
        assert_eq!(v["code"], "HostNotAllowed");
    }
    let mut req = get("/v1/credentials/dev", Some(ADDR), Some(&dev));
    req.headers_mut()
        .insert("origin", "https://evil.test".parse().unwrap());
    let (s, _, v) = body(ep.route(&req, peer()).await).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("OriginNotAllowed"))
    );
    assert_eq!(
        h.upstream.count("AssumeRole"),
        0,
        "nothing was fetched for them"
    );
}

#[tokio::test]
async fn a_token_less_container_is_told_how_a_container_gets_one() {
    let h = harness();
    let (ep, _, _) = container(&h);
    let req = get("/v1/credentials/dev", Some(ADDR), None);
    // On loopback: the host's way.
    let (_, _, v) = body(ep.route(&req, peer()).await).await;
    let m = v["message"].as_str().unwrap();
    assert!(
        m.contains("credd env PROFILE") && !m.contains("docker"),
        "{m}"
    );
    // From a container behind the DNAT (a bridge address): the container's way.
    let from_bridge: SocketAddr = "172.17.0.2:40000".parse().unwrap();
    let (s, _, v) = body(ep.route(&req, from_bridge).await).await;
    let m = v["message"].as_str().unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        m.contains("credd docker run PROFILE") && m.contains("credd docker args PROFILE"),
        "{m}"
    );
}

#[tokio::test]
async fn tokens_are_required_scoped_and_checked() {
    let h = harness();
    let (ep, dev, base) = container(&h);
    let cases: Vec<(Option<String>, StatusCode, &str)> = vec![
        (None, StatusCode::UNAUTHORIZED, "TokenRequired"),
        (
            Some(String::new()),
            StatusCode::UNAUTHORIZED,
            "TokenInvalid",
        ),
        (
            Some(dev[..dev.len() - 1].to_string()),
            StatusCode::UNAUTHORIZED,
            "TokenInvalid",
        ),
        (
            Some(format!("{dev}0")),
            StatusCode::UNAUTHORIZED,
            "TokenInvalid",
        ),
        (
            Some(dev[..10].to_string()),
            StatusCode::UNAUTHORIZED,
            "TokenInvalid",
        ),
        (
            Some(format!("Bearer {dev}")),
            StatusCode::UNAUTHORIZED,
            "TokenInvalid",
        ),
        (
            Some(base.clone()),
            StatusCode::FORBIDDEN,
            "TokenNotValidForProfile",
        ),
    ];
    for (auth, status, code) in cases {
        let (s, ct, v) = body(
            ep.route(
                &get("/v1/credentials/dev", Some(ADDR), auth.as_deref()),
                peer(),
            )
            .await,
        )
        .await;
        assert_eq!((s, v["code"].as_str().unwrap()), (status, code), "{auth:?}");
        assert_eq!(ct, "application/json");
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    let (s, _, v) = body(
        ep.route(&get("/v1/credentials/nope", Some(ADDR), Some(&dev)), peer())
            .await,
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str().unwrap()),
        (StatusCode::NOT_FOUND, "UnknownProfile")
    );
    // An expired token (1 h) stops working.
    h.clock.advance(time::Duration::hours(2));
    let (s, _, v) = body(
        ep.route(
            &get("/v1/credentials/base", Some(ADDR), Some(&base)),
            peer(),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "TokenExpired")
    );
    assert_eq!(h.upstream.count("AssumeRole"), 0);
    // Six bad tokens and one expired one; a good token for the wrong profile is a 403, not a failure.
    assert_eq!(ep.tokens.failures(), 7);
}

#[tokio::test]
async fn unavailable_says_what_to_do() {
    let h = harness();
    let (ep, _, _) = container(&h);
    let (tok, _) = ep
        .tokens
        .issue(vec!["mfa-a".into()], T0, None, "t".into())
        .unwrap();
    let (s, ct, v) = body(
        ep.route(
            &get("/v1/credentials/mfa-a", Some(ADDR), Some(tok.expose())),
            peer(),
        )
        .await,
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ct, "application/json");
    assert_eq!(v["code"], "MfaRequired");
    assert_eq!(v["message"], "MFA code needed: run `credd mfa mfa-a`");
    let (s, _, _) = body(
        ep.route(
            &Request::post("/v1/credentials/dev")
                .header("host", ADDR)
                .body(())
                .unwrap(),
            peer(),
        )
        .await,
    )
    .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, _, _) = body(
        ep.route(
            &get("/role-arn/arn:aws:iam::1:role/x", Some(ADDR), None),
            peer(),
        )
        .await,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

fn imds(h: &Harness, v1: bool) -> Endpoint<ImdsEndpoint> {
    Endpoint::new(
        Guard::sdks("127.0.0.1:9912".parse().unwrap()),
        ImdsEndpoint::new(
            h.broker.clone(),
            "dev".into(),
            v1,
            Arc::new(crate::audit::AuditLog::disabled()),
        ),
    )
}

fn put(ttl: Option<&str>, xff: bool) -> Request<()> {
    let mut b = Request::put("/latest/api/token").header("host", "127.0.0.1:9912");
    if let Some(t) = ttl {
        b = b.header("x-aws-ec2-metadata-token-ttl-seconds", t);
    }
    if xff {
        b = b.header("x-forwarded-for", "203.0.113.1");
    }
    b.body(()).unwrap()
}

fn iget(path: &str, token: Option<&str>) -> Request<()> {
    let mut b = Request::get(path).header("host", "127.0.0.1:9912");
    if let Some(t) = token {
        b = b.header("x-aws-ec2-metadata-token", t);
    }
    b.body(()).unwrap()
}

#[tokio::test]
async fn imdsv2_session_rules() {
    let h = harness();
    let ep = imds(&h, false);
    for (ttl, xff, status) in [
        (Some("21600"), true, 403),
        (Some("0"), false, 400),
        (Some("21601"), false, 400),
        (None, false, 400),
        (Some("abc"), false, 400),
        (Some("-5"), false, 400),
    ] {
        let r = ep.route(&put(ttl, xff), peer()).await;
        assert_eq!(r.status().as_u16(), status, "{ttl:?} {xff}");
    }
    let r = ep.route(&put(Some("60"), false), peer()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-aws-ec2-metadata-token-ttl-seconds"], "60");
    let (_, _, tok) = body(r).await;
    let tok = tok.as_str().unwrap().to_string();
    assert!(!tok.ends_with('\n') && tok.len() >= 32);

    let listing = "/latest/meta-data/iam/security-credentials/";
    assert_eq!(
        ep.route(&iget(listing, None), peer()).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ep.route(&iget(listing, Some("forged")), peer())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let (s, _, v) = body(ep.route(&iget(listing, Some(&tok)), peer()).await).await;
    assert_eq!((s, v.as_str().unwrap()), (StatusCode::OK, "dev"));
    for path in [
        "/latest/meta-data/iam/security-credentials/dev",
        "/latest/meta-data/iam/security-credentials-extended/dev/",
    ] {
        let (s, _, v) = body(ep.route(&iget(path, Some(&tok)), peer()).await).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert_eq!(v["Code"], "Success");
        assert_eq!(v["Type"], "AWS-HMAC");
        assert!(v["LastUpdated"].as_str().unwrap().ends_with('Z'));
        assert!(v["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
    }
    let (_, _, region) = body(
        ep.route(
            &iget("/latest/meta-data/placement/region", Some(&tok)),
            peer(),
        )
        .await,
    )
    .await;
    assert_eq!(region, "us-east-1");
    let (_, _, az) = body(
        ep.route(
            &iget("/latest/meta-data/placement/availability-zone/", Some(&tok)),
            peer(),
        )
        .await,
    )
    .await;
    assert_eq!(az, "us-east-1a");
    let (_, _, doc) = body(
        ep.route(
            &iget("/latest/dynamic/instance-identity/document", Some(&tok)),
            peer(),
        )
        .await,
    )
    .await;
    assert_eq!(doc["region"], "us-east-1");
    for other in [
        "/latest/meta-data/iam/security-credentials/other",
        "/latest/meta-data/iam/security-credentials/junk/dev",
    ] {
        let (s, _, _) = body(ep.route(&iget(other, Some(&tok)), peer()).await).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{other}");
    }
    // The session token expires with its TTL.
    h.clock.advance(time::Duration::seconds(61));
    assert_eq!(
        ep.route(&iget(listing, Some(&tok)), peer()).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Host checks apply here too.
    let evil = Request::get(listing)
        .header("host", "evil.test")
        .header("x-aws-ec2-metadata-token", &tok)
        .body(())
        .unwrap();
    assert_eq!(
        ep.route(&evil, peer()).await.status(),
        StatusCode::FORBIDDEN
    );
    h.cancel.cancel();
}

#[tokio::test]
async fn imdsv1_only_when_enabled() {
    let h = harness();
    let listing = "/latest/meta-data/iam/security-credentials/";
    assert_eq!(
        imds(&h, true)
            .route(&iget(listing, None), peer())
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        imds(&h, false)
            .route(&iget(listing, None), peer())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}
