//! The HTTP listeners' accept path: one accept loop per listener with a
//! connection cap (the oldest connection not in the middle of a request is
//! closed to make room) and a header-read watchdog, hyper's header size
//! and count limits, and then, for every request and before any handler,
//! the listener's [`Guard`] (peer uid once per connection, `Host`,
//! `Origin`). A handler returns `Result<Response, ApiError>`; the error is
//! logged and rendered here ([`crate::api_error`]). Routing lives in the
//! handlers: [`crate::container`], [`crate::imds`], [`crate::relay`],
//! [`crate::callback`].

use crate::api_error::ApiError;
use crate::config::Limits;
use crate::guard::{same_user, Guard};
use crate::response::Body;
use ::http::{Request, Response};
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

/// hyper's own cap on header lines when none is set.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// How long a request may still take once the daemon is stopping; past it
/// the request gets [`ApiError::DaemonStopping`] instead of being cut with
/// no answer.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// What a listener does with a request that passed its guard. Generic over
/// the body, which no handler reads, so tests route a `Request<()>`
/// without a socket.
pub trait Handler: Send + Sync + 'static {
    fn handle<B: Send + Sync>(
        &self,
        req: &Request<B>,
        peer: SocketAddr,
    ) -> impl Future<Output = Result<Response<Body>, ApiError>> + Send;
}

/// One listener's request path: its guard, then its handler.
#[derive(Debug)]
pub struct Endpoint<H> {
    guard: Guard,
    handler: H,
}

impl<H> Endpoint<H> {
    pub fn new(guard: Guard, handler: H) -> Self {
        Self { guard, handler }
    }

    pub fn handler(&self) -> &H {
        &self.handler
    }
}

impl<H: Handler> Endpoint<H> {
    /// Answers one request: the guard, then the handler; an error is logged
    /// with the peer and written as its response.
    pub async fn answer<B: Send + Sync>(
        &self,
        req: &Request<B>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let result = match self.guard.check(req) {
            Ok(()) => self.handler.handle(req, peer).await,
            Err(e) => Err(e),
        };
        result.unwrap_or_else(|e| e.respond(peer))
    }
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

/// Serves `listener` with `endpoint` until `cancel`; every connection is a
/// task of `tasks`, in a `conn` span naming the peer.
///
/// The header-read timeout is enforced here rather than by hyper's own
/// timer: a watchdog in this loop closes any connection that has not
/// started a request for `limits.header_read_timeout` (slow or stalled
/// request heads, and idle keep-alive connections), and never one whose
/// request is being answered. See `docs/benchmarks.md` for why.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    endpoint: Arc<Endpoint<H>>,
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
        let ctx = Arc::new((endpoint.clone(), state, cancel.clone()));
        tasks.spawn(
            async move {
                let refused = match local {
                    Some(local) if check_uid => same_user(local, peer, me).err(),
                    _ => None,
                };
                if let Some(uid) = refused {
                    let svc = hyper::service::service_fn(move |_req| async move {
                        Ok::<_, Infallible>(ApiError::PeerNotAllowed(uid).respond(peer))
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
                        let (endpoint, state, cancel) = &*ctx;
                        state.busy.store(true, Ordering::Relaxed);
                        state.requests.fetch_add(1, Ordering::Relaxed);
                        let resp = if req.headers().len() > limits.max_headers {
                            ApiError::TooManyHeaders(limits.max_headers).respond(peer)
                        } else {
                            // A request still unanswered `STOP_GRACE` after
                            // the daemon starts stopping gets a 503 rather
                            // than a cut connection. `biased`: the endpoint
                            // is polled first, so an answer from the cache
                            // never touches the stop signal.
                            let stop = async {
                                cancel.cancelled().await;
                                tokio::time::sleep(STOP_GRACE).await;
                            };
                            tokio::select! {
                                biased;
                                r = endpoint.answer(&req, peer) => r,
                                _ = stop => ApiError::DaemonStopping.respond(peer),
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
                        // Long enough for a request to get `DaemonStopping`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::{Callers, HostAllowList};
    use crate::response::text;
    use ::http::StatusCode;
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers `ok` after `delay`.
    struct Slow(Duration);

    impl Handler for Slow {
        async fn handle<B: Send + Sync>(
            &self,
            _req: &Request<B>,
            _peer: SocketAddr,
        ) -> Result<Response<Body>, ApiError> {
            tokio::time::sleep(self.0).await;
            Ok(text(StatusCode::OK, "ok"))
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
            // The requests below say `Host: x`.
            Arc::new(Endpoint::new(
                Guard::new(HostAllowList::exactly(&["x"]), Callers::Sdks),
                Slow(delay),
            )),
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

    /// Counts the requests that reach it.
    #[derive(Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl Handler for Counting {
        async fn handle<B: Send + Sync>(
            &self,
            _req: &Request<B>,
            _peer: SocketAddr,
        ) -> Result<Response<Body>, ApiError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(text(StatusCode::OK, "ok"))
        }
    }

    #[tokio::test]
    async fn the_guard_runs_before_the_handler() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let endpoint = Arc::new(Endpoint::new(Guard::sdks(addr), Counting::default()));
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(serve(
            listener,
            endpoint.clone(),
            Limits::default(),
            cancel.clone(),
            tasks.clone(),
        ));
        let ask = |head: String| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET / HTTP/1.1\r\n{head}Connection: close\r\n\r\n").as_bytes())
                .await
                .unwrap();
            read_to_close(&mut s).await
        };
        let rebound = ask("Host: evil.test\r\n".into()).await;
        assert!(rebound.starts_with("HTTP/1.1 403 "), "{rebound}");
        assert!(
            rebound.contains(r#"{"code":"HostNotAllowed","#),
            "{rebound}"
        );
        let page = ask(format!("Host: {addr}\r\nOrigin: https://evil.test\r\n")).await;
        assert!(page.starts_with("HTTP/1.1 403 "), "{page}");
        assert!(page.contains(r#"{"code":"OriginNotAllowed","#), "{page}");
        assert_eq!(endpoint.handler().0.load(Ordering::SeqCst), 0);
        let ok = ask(format!("Host: {addr}\r\n")).await;
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert_eq!(endpoint.handler().0.load(Ordering::SeqCst), 1);
        cancel.cancel();
    }
}
