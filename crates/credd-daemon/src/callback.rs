//! The loopback redirect listener of the authorization-code (PKCE) login:
//! `credd login` binds `127.0.0.1:0`, the browser is sent back to
//! `http://127.0.0.1:PORT/oauth/callback?code=..&state=..`, and the first
//! such request ends the wait. It lives here because this crate is the one
//! that owns HTTP serving.
//!
//! Only `GET /oauth/callback` with the exact `Host` is answered; the code is
//! only handed over, never logged, and the `state` check is the caller's.

use crate::server::{self, Body};
use ::http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub const CALLBACK_PATH: &str = "/oauth/callback";

/// What the browser brought back.
#[derive(Clone, PartialEq, Eq)]
pub enum CallbackResult {
    Code {
        code: String,
        state: String,
    },
    Error {
        error: String,
        state: Option<String>,
    },
}

impl std::fmt::Debug for CallbackResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code { .. } => f.write_str("Code(** redacted **)"),
            Self::Error { error, .. } => write!(f, "Error({error})"),
        }
    }
}

#[derive(Debug)]
pub struct CallbackServer {
    addr: SocketAddr,
    rx: oneshot::Receiver<CallbackResult>,
    cancel: CancellationToken,
}

impl CallbackServer {
    /// Binds `127.0.0.1:0` and starts answering.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let tx = Arc::new(Mutex::new(Some(tx)));
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let host = addr.to_string();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = listener.accept() => match r {
                        Ok((s, _)) => s,
                        Err(_) => continue,
                    },
                };
                let tx = tx.clone();
                let host = host.clone();
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let r = answer(&req, &host, &tx);
                    async move { Ok::<_, std::convert::Infallible>(r) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc),
                );
            }
        });
        Ok(Self { addr, rx, cancel })
    }

    /// The redirect URI to send to `/authorize` and `CreateToken`.
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}{CALLBACK_PATH}", self.addr.port())
    }

    /// Waits for the browser to come back.
    pub async fn wait(mut self) -> Option<CallbackResult> {
        let r = (&mut self.rx).await.ok();
        self.cancel.cancel();
        r
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

type Sender = Arc<Mutex<Option<oneshot::Sender<CallbackResult>>>>;

fn answer(req: &Request<Incoming>, host: &str, tx: &Sender) -> Response<Body> {
    let host_ok = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h == host || h == host.replace("127.0.0.1", "localhost"));
    if !host_ok {
        return server::text(StatusCode::FORBIDDEN, "wrong Host\n");
    }
    if req.method() != ::http::Method::GET || req.uri().path() != CALLBACK_PATH {
        return server::text(StatusCode::NOT_FOUND, "not found\n");
    }
    let mut code = None;
    let mut state = None;
    let mut error = None;
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()) {
        match &*k {
            "code" => code = Some(v.into_owned()),
            "state" => state = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            _ => {}
        }
    }
    let (result, page) = match (code, state, error) {
        (_, state, Some(error)) => (
            CallbackResult::Error { error, state },
            "Sign-in was not completed. Go back to the terminal for details.",
        ),
        (Some(code), Some(state), None) => (
            CallbackResult::Code { code, state },
            "Signed in. You can close this tab and go back to the terminal.",
        ),
        _ => {
            return server::text(StatusCode::BAD_REQUEST, "missing code or state\n");
        }
    };
    if let Some(tx) = tx.lock().unwrap().take() {
        let _ = tx.send(result);
    }
    let mut r = Response::new(Body::from(format!(
        "<!doctype html><meta charset=utf-8><title>credd</title><p>{page}</p>\n"
    )));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        ::http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, host: &str, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn the_first_callback_ends_the_wait() {
        let cb = CallbackServer::start().await.unwrap();
        let addr = cb.addr;
        let host = addr.to_string();
        assert!(cb.redirect_uri().ends_with("/oauth/callback"));
        assert!(get(addr, "evil.example", "/oauth/callback?code=c&state=s")
            .await
            .contains("403"));
        assert!(get(addr, &host, "/other").await.contains("404"));
        assert!(get(addr, &host, "/oauth/callback?code=c")
            .await
            .contains("400"));
        let page = get(addr, &host, "/oauth/callback?code=the%20code&state=st").await;
        assert!(
            page.contains("200 OK") && page.contains("Signed in"),
            "{page}"
        );
        assert_eq!(
            cb.wait().await,
            Some(CallbackResult::Code {
                code: "the code".into(),
                state: "st".into()
            })
        );
    }

    #[tokio::test]
    async fn the_stand_in_browser_follows_a_redirect_to_the_callback() {
        let cb = CallbackServer::start().await.unwrap();
        let target = format!("{}?code=abc&state=xyz", cb.redirect_uri());
        // A one-shot redirector, as a sign-in page that approves at once.
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let at = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(
                format!("HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        });
        let (status, body) = credd_sandbox::browser::visit(&format!("http://{at}/authorize"))
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("Signed in"), "{body}");
        assert_eq!(
            cb.wait().await,
            Some(CallbackResult::Code {
                code: "abc".into(),
                state: "xyz".into()
            })
        );
    }

    #[tokio::test]
    async fn a_denial_is_reported() {
        let cb = CallbackServer::start().await.unwrap();
        let host = cb.addr.to_string();
        get(
            cb.addr,
            &host,
            "/oauth/callback?error=access_denied&state=st",
        )
        .await;
        assert_eq!(
            cb.wait().await,
            Some(CallbackResult::Error {
                error: "access_denied".into(),
                state: Some("st".into())
            })
        );
    }
}
