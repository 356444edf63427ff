//! The HTTP listeners: one accept loop per listener with a connection cap
//! (the oldest connection not in the middle of a request is closed to make
//! room), hyper's header
//! size/count limits and header-read timeout, and the guards both endpoints
//! share: an exact `Host` allow-list and a refusal of any request carrying
//! `Origin` (threat-model rows 1 and 15). Routing lives in
//! [`crate::container`] and [`crate::imds`].

use crate::config::Limits;
use ::http::{header, HeaderValue, Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub type Body = Full<Bytes>;

/// A JSON response with exactly `Content-Type: application/json`.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `{"code", "message"}` with a status; the message says what to do.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::to_vec(&serde_json::json!({"code": code, "message": message}))
        .expect("serializes");
    json(status, body)
}

pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// The `Host` values a listener answers to: its literal address and port,
/// `localhost:PORT` on loopback, and the bare address on port 80.
#[derive(Debug, Clone)]
pub struct HostAllowList(HashSet<String>);

impl HostAllowList {
    pub fn for_addr(addr: SocketAddr) -> Self {
        let mut set = HashSet::new();
        let ip = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        set.insert(format!("{ip}:{}", addr.port()));
        if addr.ip().is_loopback() {
            set.insert(format!("localhost:{}", addr.port()));
        }
        // The ECS link-local addresses are reached on port 80, directly or
        // through `credd docker setup`'s DNAT to an unprivileged port.
        if crate::config::is_local(&addr) && !addr.ip().is_loopback() {
            set.insert(ip.clone());
        }
        if addr.port() == 80 {
            set.insert(ip);
            if addr.ip().is_loopback() {
                set.insert("localhost".into());
            }
        }
        Self(set)
    }
    pub fn allows(&self, host: Option<&HeaderValue>) -> bool {
        host.and_then(|h| h.to_str().ok()).is_some_and(|h| {
            // The set is lower-case; copy only a Host that is not.
            self.0.contains(h)
                || (h.bytes().any(|b| b.is_ascii_uppercase())
                    && self.0.contains(&h.to_ascii_lowercase()))
        })
    }
}

/// The checks every request passes before routing.
// The refusal is built once per refused request; boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub fn guard<B>(hosts: &HostAllowList, req: &Request<B>) -> Result<(), Response<Body>> {
    if !hosts.allows(req.headers().get(header::HOST)) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "HostNotAllowed",
            "the Host header does not name this endpoint (DNS rebinding protection): use the address credd printed",
        ));
    }
    if req.headers().contains_key(header::ORIGIN) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "OriginNotAllowed",
            "requests from web pages are refused",
        ));
    }
    Ok(())
}

/// What a listener does with a request.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl std::future::Future<Output = Response<Body>> + Send;
}

struct Conn {
    cancel: CancellationToken,
    busy: Arc<AtomicBool>,
}

/// Serves `listener` until `cancel`; every connection is a tracked task.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: Limits,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    let conns: Arc<Mutex<BTreeMap<u64, Conn>>> = Arc::default();
    let mut next_id: u64 = 0;
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let conn_cancel = cancel.child_token();
        let busy = Arc::new(AtomicBool::new(false));
        {
            let mut map = conns.lock().unwrap();
            if map.len() >= limits.max_connections {
                let idle = map
                    .iter()
                    .find(|(_, c)| !c.busy.load(Ordering::Relaxed))
                    .map(|(id, _)| *id);
                match idle {
                    Some(old) => {
                        if let Some(c) = map.remove(&old) {
                            c.cancel.cancel();
                        }
                    }
                    None => {
                        tracing::warn!(%peer, "connection cap reached and every connection busy; refusing");
                        continue;
                    }
                }
            }
            map.insert(
                id,
                Conn {
                    cancel: conn_cancel.clone(),
                    busy: busy.clone(),
                },
            );
        }
        let handler = handler.clone();
        let conns = conns.clone();
        tasks.spawn(
            async move {
                let svc = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    let busy = busy.clone();
                    async move {
                        busy.store(true, Ordering::Relaxed);
                        let resp = handler.handle(req, peer).await;
                        busy.store(false, Ordering::Relaxed);
                        Ok::<_, Infallible>(resp)
                    }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_read_timeout)
                    .max_buf_size(limits.max_header_bytes)
                    .max_headers(limits.max_headers)
                    .keep_alive(true);
                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                tokio::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    }
                    _ = conn_cancel.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), conn).await;
                    }
                }
                conns.lock().unwrap().remove(&id);
            }
            .instrument(tracing::debug_span!("conn", %peer)),
        );
    }
}

/// Decodes `%XX` escapes in a path segment; `None` if malformed or not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes a profile name for a URL path segment.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_allow_list_is_exact() {
        let l = HostAllowList::for_addr("127.0.0.1:9911".parse().unwrap());
        let ok = |h: &str| l.allows(Some(&HeaderValue::from_str(h).unwrap()));
        assert!(ok("127.0.0.1:9911"));
        assert!(ok("localhost:9911"));
        assert!(ok("LOCALHOST:9911"));
        for bad in [
            "evil.test",
            "evil.test:9911",
            "localhost6:9911",
            "127.0.0.1.nip.io:9911",
            "localhost.:9911",
            "127.0.0.1.:9911",
            "127.0.0.1",
            "127.0.0.1:9912",
            "",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        assert!(!l.allows(None));
        let c = HostAllowList::for_addr("169.254.170.2:80".parse().unwrap());
        assert!(c.allows(Some(&HeaderValue::from_static("169.254.170.2"))));
        let v6 = HostAllowList::for_addr("[::1]:9911".parse().unwrap());
        assert!(v6.allows(Some(&HeaderValue::from_static("[::1]:9911"))));
    }

    #[test]
    fn percent_round_trip() {
        assert_eq!(percent_encode("dev admin/x"), "dev%20admin%2Fx");
        assert_eq!(percent_decode("dev%20admin%2Fx").unwrap(), "dev admin/x");
        assert!(percent_decode("%zz").is_none());
        assert!(percent_decode("%4").is_none());
    }
}
