//! The HTTP listeners: one accept loop per listener with a connection cap
//! (the oldest connection not in the middle of a request is closed to make
//! room) and a header-read watchdog, hyper's header size/count limits, and
//! the guards both endpoints
//! share: an exact `Host` allow-list and a refusal of any request carrying
//! `Origin` (threat-model rows 1 and 15). Routing lives in
//! [`crate::container`] and [`crate::imds`].

use crate::config::Limits;
use ::http::{header, HeaderValue, Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
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
pub struct HostAllowList(Vec<String>);

impl HostAllowList {
    pub fn for_addr(addr: SocketAddr) -> Self {
        let mut set = Vec::new();
        let ip = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        set.push(format!("{ip}:{}", addr.port()));
        if addr.ip().is_loopback() {
            set.push(format!("localhost:{}", addr.port()));
        }
        // The ECS link-local addresses are reached on port 80, directly or
        // through `credd docker setup`'s DNAT to an unprivileged port.
        if crate::config::is_local(&addr) && !addr.ip().is_loopback() {
            set.push(ip.clone());
        }
        if addr.port() == 80 {
            set.push(ip);
            if addr.ip().is_loopback() {
                set.push("localhost".into());
            }
        }
        set.dedup();
        Self(set)
    }
    pub fn allows(&self, host: Option<&HeaderValue>) -> bool {
        // At most four lower-case names: a scan beats hashing.
        host.is_some_and(|h| {
            let h = h.as_bytes();
            self.0.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(h))
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

/// hyper's own cap on header lines when none is set.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// The answer to a request with more header lines than allowed; the
/// connection is closed after it, as hyper does for its own cap.
fn too_many_headers(max: usize) -> Response<Body> {
    let mut r = error(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "TooManyHeaders",
        &format!("more than {max} header lines (limits.max_headers)"),
    );
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// How long a request may still take once the daemon is stopping; past it
/// the request gets [`stopping`] instead of being cut with no answer.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The answer to a request still waiting (on STS, say) when the daemon
/// stops: a 503 that says so, then the connection closes.
pub fn stopping() -> Response<Body> {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "DaemonStopping",
        "credd is stopping and could not finish this request in time; retry once it is running again",
    );
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// The answer to every request on a connection whose socket belongs to
/// another user (threat-model row 20).
fn other_user(uid: Option<u32>) -> Response<Body> {
    let message = match uid {
        Some(uid) => format!(
            "this connection comes from a socket owned by uid {uid}; credd serves only the user it runs as (and root) (limits.same_user_only)"
        ),
        None => "credd could not tell which user this connection comes from, so it is refused; if this keeps happening, the kernel lacks sock_diag (inet_diag): set limits.same_user_only = false".to_string(),
    };
    let mut r = error(StatusCode::FORBIDDEN, "PeerNotAllowed", &message);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Whether the socket at `peer` belongs to this user (or to root); logged
/// when not. Root is let in: it can read the token files and the daemon's
/// memory anyway, and it is who host-network containers of a rootful
/// docker run as (`credd docker run` without `docker setup`).
fn same_user(local: SocketAddr, peer: SocketAddr, me: u32) -> Result<(), Option<u32>> {
    match crate::peer_uid::owner(local, peer) {
        Ok(uid) if uid == me || uid == 0 => Ok(()),
        Ok(uid) => {
            tracing::warn!(%peer, uid, "refused a connection from another user's socket");
            Err(Some(uid))
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot tell who owns the peer's socket; refused");
            Err(None)
        }
    }
}

/// What a listener does with a request.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl std::future::Future<Output = Response<Body>> + Send;
}

/// What the accept loop asks of a connection task.
const RUN: u8 = 0;
/// Finish the request in flight, then close (cap eviction, shutdown).
const GRACEFUL: u8 = 1;
/// Close now (no complete request head within the header-read timeout).
const CLOSE: u8 = 2;

/// One connection's state, shared by its task, its requests and the accept
/// loop. A request touches only `busy` and `requests`: two relaxed atomic
/// writes and an increment, instead of the timer hyper would arm and
/// disarm around every request head.
#[derive(Default)]
struct ConnState {
    signal: AtomicU8,
    waker: atomic_waker::AtomicWaker,
    /// A request head has been read and its response is being made.
    busy: AtomicBool,
    /// Requests started on this connection.
    requests: AtomicU64,
}

impl ConnState {
    fn send(&self, signal: u8) {
        self.signal.fetch_max(signal, Ordering::AcqRel);
        self.waker.wake();
    }
}

enum Outcome {
    Done(hyper::Result<()>),
    Graceful,
    Close,
}

/// The accept loop's view of one connection, for the cap and the watchdog.
struct Slot {
    state: Arc<ConnState>,
    /// `requests` when the watchdog last saw it change, and since when the
    /// connection has been waiting for a request head.
    seen: u64,
    waiting_since: tokio::time::Instant,
}

/// How often the watchdog looks at the open connections: a connection is
/// closed between `timeout` and `timeout + tick` after it last started a
/// request (or was accepted). Only while connections are open.
fn watchdog_tick(timeout: std::time::Duration) -> std::time::Duration {
    (timeout / 4).clamp(
        std::time::Duration::from_millis(10),
        std::time::Duration::from_secs(1),
    )
}

/// Serves `listener` until `cancel`; every connection is a tracked task.
///
/// The header-read timeout is enforced here rather than by hyper's own
/// timer: a watchdog in this loop closes any connection that has not
/// started a request for `limits.header_read_timeout` (slow or stalled
/// request heads, and idle keep-alive connections), and never one whose
/// request is being answered. See `docs/benchmarks.md` for why.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: Limits,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    let conns: Arc<Mutex<BTreeMap<u64, Slot>>> = Arc::default();
    let mut next_id: u64 = 0;
    // Once per connection, on loopback only: link-local listeners serve
    // containers, whose traffic comes from other network namespaces (and
    // carries their own scoped tokens).
    let local = listener.local_addr().ok();
    let check_uid = cfg!(target_os = "linux")
        && limits.same_user_only
        && local.is_some_and(|a| a.ip().is_loopback());
    let me = crate::fsutil::my_uid();
    let tick = watchdog_tick(limits.header_read_timeout);
    let mut next_sweep = tokio::time::Instant::now() + tick;
    loop {
        let watching = !conns.lock().unwrap().is_empty();
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(next_sweep), if watching => {
                let now = tokio::time::Instant::now();
                sweep(&conns, now, limits.header_read_timeout);
                next_sweep = now + tick;
                continue;
            }
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
        let state = Arc::new(ConnState::default());
        {
            let mut map = conns.lock().unwrap();
            if !watching {
                next_sweep = tokio::time::Instant::now() + tick;
            }
            if map.len() >= limits.max_connections {
                let idle = map
                    .iter()
                    .find(|(_, c)| !c.state.busy.load(Ordering::Relaxed))
                    .map(|(id, _)| *id);
                match idle {
                    Some(old) => {
                        if let Some(c) = map.remove(&old) {
                            c.state.send(GRACEFUL);
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
                Slot {
                    state: state.clone(),
                    seen: 0,
                    waiting_since: tokio::time::Instant::now(),
                },
            );
        }
        let conns = conns.clone();
        let ctx = Arc::new((handler.clone(), state, cancel.clone()));
        tasks.spawn(
            async move {
                let refused = match local {
                    Some(local) if check_uid => same_user(local, peer, me).err(),
                    _ => None,
                };
                if let Some(uid) = refused {
                    let svc = hyper::service::service_fn(move |_req| async move {
                        Ok::<_, Infallible>(other_user(uid))
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .max_buf_size(limits.max_header_bytes)
                        .serve_connection(TokioIo::new(stream), svc);
                    let _ = tokio::time::timeout(limits.header_read_timeout, conn).await;
                    conns.lock().unwrap().remove(&id);
                    return;
                }
                let svc_ctx = ctx.clone();
                let svc = hyper::service::service_fn(move |req| {
                    let ctx = svc_ctx.clone();
                    async move {
                        let (handler, state, cancel) = &*ctx;
                        state.busy.store(true, Ordering::Relaxed);
                        state.requests.fetch_add(1, Ordering::Relaxed);
                        let resp = if req.headers().len() > limits.max_headers {
                            too_many_headers(limits.max_headers)
                        } else {
                            // A request still unanswered `STOP_GRACE` after
                            // the daemon starts stopping gets a 503 rather
                            // than a cut connection. `biased`: the handler
                            // is polled first, so an answer from the cache
                            // never touches the stop signal.
                            let stop = async {
                                cancel.cancelled().await;
                                tokio::time::sleep(STOP_GRACE).await;
                            };
                            tokio::select! {
                                biased;
                                r = handler.handle(req, peer) => r,
                                _ = stop => stopping(),
                            }
                        };
                        state.busy.store(false, Ordering::Relaxed);
                        Ok::<_, Infallible>(resp)
                    }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    // The watchdog in this loop does this job (see above).
                    .header_read_timeout(None)
                    .max_buf_size(limits.max_header_bytes)
                    .keep_alive(true);
                // Up to hyper's default of 100 header lines, hyper parses
                // into a buffer on the stack and the service counts; a
                // lower cap given to hyper costs a 3 KB copy per request.
                if limits.max_headers > HYPER_DEFAULT_MAX_HEADERS {
                    builder.max_headers(limits.max_headers);
                }
                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                tokio::pin!(conn);
                let state = &ctx.1;
                let outcome = std::future::poll_fn(|cx| {
                    state.waker.register(cx.waker());
                    match state.signal.load(Ordering::Acquire) {
                        RUN => conn.as_mut().poll(cx).map(Outcome::Done),
                        GRACEFUL => Poll::Ready(Outcome::Graceful),
                        _ => Poll::Ready(Outcome::Close),
                    }
                })
                .await;
                match outcome {
                    Outcome::Done(Ok(())) => {}
                    Outcome::Done(Err(e)) => {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    Outcome::Close => {
                        tracing::debug!("no request head within the header-read timeout; closed");
                    }
                    Outcome::Graceful => {
                        conn.as_mut().graceful_shutdown();
                        // Long enough for a request to get `stopping()`.
                        let _ = tokio::time::timeout(
                            STOP_GRACE + std::time::Duration::from_secs(1),
                            conn,
                        )
                        .await;
                    }
                }
                conns.lock().unwrap().remove(&id);
            }
            .instrument(tracing::debug_span!("conn", %peer)),
        );
    }
    for slot in conns.lock().unwrap().values() {
        slot.state.send(GRACEFUL);
    }
}

/// The watchdog: closes every connection that has waited for a request head
/// for `timeout` or longer.
fn sweep(
    conns: &Mutex<BTreeMap<u64, Slot>>,
    now: tokio::time::Instant,
    timeout: std::time::Duration,
) {
    conns.lock().unwrap().retain(|_, slot| {
        let requests = slot.state.requests.load(Ordering::Relaxed);
        if slot.state.busy.load(Ordering::Relaxed) || requests != slot.seen {
            slot.seen = requests;
            slot.waiting_since = now;
            return true;
        }
        if now.duration_since(slot.waiting_since) < timeout {
            return true;
        }
        slot.state.send(CLOSE);
        false
    });
}

/// Decodes `%XX` escapes in a path segment; `None` if malformed or not UTF-8.
/// A segment without escapes is borrowed, not copied.
pub fn percent_decode(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !s.contains('%') {
        return Some(std::borrow::Cow::Borrowed(s));
    }
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
    String::from_utf8(out).ok().map(std::borrow::Cow::Owned)
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
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers `ok` after `delay`.
    struct Slow(Duration);

    impl Handler for Slow {
        async fn handle(&self, _req: Request<Incoming>, _peer: SocketAddr) -> Response<Body> {
            tokio::time::sleep(self.0).await;
            text(StatusCode::OK, "ok")
        }
    }

    async fn start(
        delay: Duration,
        timeout: Duration,
    ) -> (SocketAddr, CancellationToken, TaskTracker) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            header_read_timeout: timeout,
            ..Limits::default()
        };
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(serve(
            listener,
            Arc::new(Slow(delay)),
            limits,
            cancel.clone(),
            tasks.clone(),
        ));
        (addr, cancel, tasks)
    }

    /// Reads until the server closes the connection (or 10 s pass: a
    /// failure); returns what was read.
    async fn read_to_close(s: &mut tokio::net::TcpStream) -> String {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .expect("the server closed the connection")
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    #[tokio::test]
    async fn stalled_heads_and_idle_connections_are_closed_but_a_slow_answer_is_not() {
        let timeout = Duration::from_millis(300);
        let (addr, cancel, _tasks) = start(Duration::from_millis(1200), timeout).await;

        // Silent from the start.
        let t0 = Instant::now();
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Half a request head.
        let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // A whole request whose answer takes four timeouts.
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(REQUEST).await.unwrap();

        assert_eq!(read_to_close(&mut silent).await, "");
        assert!(t0.elapsed() >= timeout, "closed before the timeout");
        assert_eq!(read_to_close(&mut half).await, "");
        // The slow answer arrives whole; then the connection, idle, is closed.
        let answer = read_to_close(&mut slow).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
        cancel.cancel();
    }

    #[tokio::test]
    async fn more_header_lines_than_allowed_get_431_and_a_close() {
        let (addr, cancel, _tasks) = start(Duration::ZERO, Duration::from_secs(60)).await;
        let max = Limits::default().max_headers;
        let ask = |lines: usize| async move {
            let extra: String = (1..lines).map(|i| format!("X-H{i}: v\r\n")).collect();
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET / HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            read_to_close(&mut s).await
        };
        // `Host` plus `Connection` plus the extras.
        let at_cap = ask(max - 1).await;
        assert!(at_cap.starts_with("HTTP/1.1 200 OK"), "{at_cap}");
        let over = ask(max).await;
        assert!(over.starts_with("HTTP/1.1 431 "), "{over}");
        assert!(over.contains("TooManyHeaders"), "{over}");
        // Past hyper's own cap too.
        assert!(ask(250).await.starts_with("HTTP/1.1 431 "));
        cancel.cancel();
    }

    #[tokio::test]
    async fn shutdown_lets_the_request_in_flight_finish_and_closes_idle_connections() {
        let (addr, cancel, tasks) =
            start(Duration::from_millis(500), Duration::from_secs(60)).await;
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut busy = tokio::net::TcpStream::connect(addr).await.unwrap();
        busy.write_all(REQUEST).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
        let answer = read_to_close(&mut busy).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert_eq!(read_to_close(&mut idle).await, "");
        tasks.close();
        tokio::time::timeout(Duration::from_secs(10), tasks.wait())
            .await
            .expect("every connection task ended");
    }

    #[tokio::test]
    async fn shutdown_answers_a_request_still_waiting_after_the_grace_with_503() {
        let (addr, cancel, tasks) = start(Duration::from_secs(600), Duration::from_secs(60)).await;
        let mut busy = tokio::net::TcpStream::connect(addr).await.unwrap();
        busy.write_all(REQUEST).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
        let answer = read_to_close(&mut busy).await;
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.contains("DaemonStopping"), "{answer}");
        assert!(answer.contains("retry-after: 1"), "{answer}");
        tasks.close();
        tokio::time::timeout(Duration::from_secs(10), tasks.wait())
            .await
            .expect("every connection task ended");
    }

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
        assert!(matches!(
            percent_decode("dev-admin"),
            Some(std::borrow::Cow::Borrowed("dev-admin"))
        ));
    }
}
