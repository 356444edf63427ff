//! The loopback redirect listener of the authorization-code (PKCE) login:
//! `credd login` binds `127.0.0.1:0`, the browser is sent back to
//! `http://127.0.0.1:PORT/oauth/callback?code=..&state=..`, and the first
//! such request ends the wait. It lives here because this crate is the one
//! that owns HTTP serving.
//!
//! Only `GET /oauth/callback` with the exact `Host` is answered (the
//! listener's guard, for a browser: see [`crate::guard::Callers`]); the
//! code is only handed over, never logged, and the `state` check is the
//! caller's.

use crate::api_error::{ApiError, PageError};
use crate::guard::{Callers, Guard, HostAllowList};
use crate::response::{self, Body};
use crate::server::{self, Endpoint};
use ::http::{Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

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
    /// Binds `127.0.0.1:0` and starts answering, through the same accept
    /// path as the daemon's listeners, until [`Self::wait`] returns or this
    /// is dropped.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let cancel = CancellationToken::new();
        let endpoint = Endpoint::new(
            Guard::new(HostAllowList::for_addr(addr), Callers::Browser),
            Callback {
                tx: Mutex::new(Some(tx)),
            },
        );
        // The peer-uid check stays off here as before: this listener lives
        // in the `credd login` process for one sign-in, and what it accepts
        // is checked against the login's own `state`.
        let limits = crate::config::Limits {
            same_user_only: false,
            ..crate::config::Limits::default()
        };
        // The tasks end with `cancel`; nothing waits for them.
        let tasks = TaskTracker::new();
        tasks.spawn(
            server::serve(
                listener,
                Arc::new(endpoint),
                limits,
                cancel.clone(),
                tasks.clone(),
            )
            .instrument(tracing::debug_span!("login-callback", %addr)),
        );
        tasks.close();
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

/// The handler: the first complete callback is handed to [`CallbackServer::wait`].
struct Callback {
    tx: Mutex<Option<oneshot::Sender<CallbackResult>>>,
}

impl server::Handler for Callback {
    async fn handle<B: Send + Sync>(
        &self,
        req: &Request<B>,
        _peer: SocketAddr,
    ) -> Result<Response<Body>, ApiError> {
        answer(req, &self.tx)
    }
}

fn answer<B>(
    req: &Request<B>,
    tx: &Mutex<Option<oneshot::Sender<CallbackResult>>>,
) -> Result<Response<Body>, ApiError> {
    if req.method() != ::http::Method::GET || req.uri().path() != CALLBACK_PATH {
        return Err(PageError::NotFound.into());
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
        _ => return Err(PageError::MissingCodeOrState.into()),
    };
    if let Some(tx) = tx.lock().unwrap().take() {
        let _ = tx.send(result);
    }
    Ok(response::html(
        StatusCode::OK,
        format!("<!doctype html><meta charset=utf-8><title>credd</title><p>{page}</p>\n"),
    ))
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
    async fn the_guard_answers_the_browser_in_text_and_lets_a_navigation_with_origin_in() {
        let cb = CallbackServer::start().await.unwrap();
        let addr = cb.addr;
        let wrong = get(addr, "evil.example", "/oauth/callback?code=c&state=s").await;
        assert!(wrong.starts_with("HTTP/1.1 403 "), "{wrong}");
        assert!(wrong.contains("content-type: text/plain"), "{wrong}");
        assert!(wrong.ends_with("\r\n\r\nwrong Host\n"), "{wrong}");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!(
                "GET /oauth/callback?code=c&state=s HTTP/1.1\r\nHost: localhost:{}\r\nOrigin: null\r\nConnection: close\r\n\r\n",
                addr.port()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut page = String::new();
        s.read_to_string(&mut page).await.unwrap();
        assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
        assert!(
            page.contains("content-type: text/html; charset=utf-8"),
            "{page}"
        );
        assert_eq!(
            cb.wait().await,
            Some(CallbackResult::Code {
                code: "c".into(),
                state: "s".into()
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
