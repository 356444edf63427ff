//! The secret canary: a whole login, refresh, portal and error round with
//! every tracing event captured, checked for tokens and key secrets.
//!
//! It lives in its own test binary because tracing caches per-callsite
//! interest process-wide: tests running in parallel without a subscriber
//! would make some of these events invisible to the capture, and the
//! canary would pass vacuously or fail at random.

use bytes::Bytes;
use credd_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

async fn send(
    sandbox: &SandboxHandle,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
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
    let response = sender
        .send_request(
            request
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    drop(sender);
    let _ = driver.await;
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn post_json(sandbox: &SandboxHandle, path: &str, body: Value) -> (u16, Value) {
    let (status, body) = send(
        sandbox,
        "POST",
        path,
        &[("content-type", "application/json")],
        &body.to_string(),
    )
    .await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
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
    ] {
        assert!(!logged.contains(secret), "a secret reached the logs");
    }
}
