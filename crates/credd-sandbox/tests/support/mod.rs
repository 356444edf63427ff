//! Raw-HTTP helpers shared by the sandbox's integration tests: a tiny hyper
//! client, so that what is checked is exactly what goes over the wire, and
//! the reply with accessors for JSON, error shapes and flat STS XML; and a
//! client's DPoP key, signing proofs with RustCrypto's `p256`.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use credd_sandbox::SandboxHandle;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn error_type(&self) -> &str {
        self.headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The text of the first `<name>` element, enough for the flat XML STS
    /// returns.
    pub fn xml(&self, name: &str) -> String {
        let open = format!("<{name}>");
        let start = self
            .body
            .find(&open)
            .unwrap_or_else(|| panic!("no <{name}> in {}", self.body))
            + open.len();
        let end = self.body[start..].find(&format!("</{name}>")).unwrap() + start;
        self.body[start..end].to_owned()
    }
}

pub async fn send(
    sandbox: &SandboxHandle,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(sandbox.addr())
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", sandbox.addr().to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    drop(sender);
    let _ = driver.await;
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

pub async fn post_json(sandbox: &SandboxHandle, path: &str, body: Value) -> Reply {
    send(
        sandbox,
        "POST",
        path,
        &[("content-type", "application/json")],
        &body.to_string(),
    )
    .await
}

pub async fn get_with_token(sandbox: &SandboxHandle, path: &str, token: &str) -> Reply {
    send(
        sandbox,
        "GET",
        path,
        &[("x-amz-sso_bearer_token", token)],
        "",
    )
    .await
}

/// An STS call signed (in form only) with `key`: the sandbox reads the key
/// id from the credential scope, as real STS does before checking the
/// signature.
pub async fn sts(sandbox: &SandboxHandle, key: Option<(&str, Option<&str>)>, form: &str) -> Reply {
    let authorization;
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some((akid, token)) = key {
        authorization = format!(
            "AWS4-HMAC-SHA256 Credential={akid}/20250101/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
        );
        headers.push(("authorization", &authorization));
        if let Some(token) = token {
            headers.push(("x-amz-security-token", token));
        }
    }
    send(
        sandbox,
        "POST",
        "/",
        &headers,
        &format!("{form}&Version=2011-06-15"),
    )
    .await
}

/// The real wall clock, which clients stamp DPoP proofs with.
// A test plays a client here: it reads the wall clock as botocore does.
#[allow(clippy::disallowed_methods)]
pub fn wall_clock() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A client's DPoP key.
pub struct Dpop(pub SigningKey);

impl Dpop {
    pub fn new() -> Self {
        Dpop(SigningKey::random(&mut rand::rngs::OsRng))
    }

    pub fn jwk(&self) -> Value {
        let point = self.0.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
            "crv": "P-256",
        })
    }

    /// A proof signed by `signer` (normally this key) for `htu` at `iat`.
    pub fn proof_by(&self, signer: &SigningKey, htu: &str, iat: i64, jti: &str) -> String {
        let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!(
            "{}.{}",
            b64(json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk() })),
            b64(json!({ "htm": "POST", "htu": htu, "iat": iat, "jti": jti }))
        );
        let signature: Signature = signer.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// A good, fresh proof for the sandbox's token endpoint.
    pub fn fresh(&self, sandbox: &SandboxHandle) -> String {
        let jti = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        self.proof_by(&self.0, &htu(sandbox), wall_clock(), &jti)
    }
}

pub fn htu(sandbox: &SandboxHandle) -> String {
    format!("{}/v1/token", sandbox.url())
}
