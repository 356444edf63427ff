//! The baseline: a bare hyper 1 HTTP/1.1 server that answers every request
//! with 200, `Content-Type: application/json` and a fixed body (the exact
//! bytes credd returned). No routing, no Host check, no token check: what is
//! left is hyper, tokio and the socket, which is the floor credd is measured
//! against.
//!
//! By default it runs in a child process (this binary re-executed with a
//! hidden flag), so that it is placed exactly like credd: its own process,
//! a multi-thread tokio runtime with the default worker count (one per core),
//! `TCP_NODELAY` on accepted sockets. `--bare-in-process` runs it on a
//! separate runtime thread inside the bench instead.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The hidden flag that makes this binary the bare server's child process.
pub const CHILD_FLAG: &str = "--serve-bare-body";

/// A running bare server; dropping it stops it.
#[derive(Debug)]
pub struct BareServer {
    pub addr: SocketAddr,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Thread {
        stop: Option<oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
    Process {
        child: Child,
        /// Closing it tells the child to exit.
        stdin: Option<ChildStdin>,
    },
}

impl BareServer {
    /// Starts a child process serving `body` (written to `body_file` first).
    pub fn spawn_process(body: &[u8], body_file: &Path) -> anyhow::Result<Self> {
        std::fs::write(body_file, body)?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg(CHILD_FLAG)
            .arg(body_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the bare server process")?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("READY ")
            .with_context(|| format!("the bare server did not start: {line:?}"))?
            .parse()?;
        Ok(Self {
            addr,
            kind: Kind::Process { child, stdin },
        })
    }

    pub fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Process { child, .. } => Some(child.id()),
            Kind::Thread { .. } => None,
        }
    }

    /// Binds 127.0.0.1:0 on a runtime thread in this process and serves
    /// `body` until dropped.
    pub fn start_in_process(body: Bytes) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("bare-server")
            .build()?;
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bare-server-main".into())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::select! {
                        _ = stopped => {}
                        _ = accept_loop(listener, body) => {}
                    }
                });
                rt.shutdown_background();
            })?;
        Ok(Self {
            addr,
            kind: Kind::Thread {
                stop: Some(stop),
                thread: Some(thread),
            },
        })
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        match &mut self.kind {
            Kind::Thread { stop, thread } => {
                if let Some(s) = stop.take() {
                    let _ = s.send(());
                }
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
            Kind::Process { child, stdin } => {
                drop(stdin.take());
                let _ = child.wait();
            }
        }
    }
}

/// The child process: serve the body in `body_file` on 127.0.0.1:0, print
/// `READY ADDR`, exit when stdin closes.
pub fn child_main(body_file: &Path) -> anyhow::Result<()> {
    let body = Bytes::from(std::fs::read(body_file)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    rt.spawn(accept_loop(listener, body));
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {addr}")?;
    out.flush()?;
    drop(out);
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    rt.shutdown_background();
    Ok(())
}

async fn accept_loop(listener: TcpListener, body: Bytes) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |_req| {
                let mut r = Response::new(Full::new(body.clone()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                async move { Ok::<_, Infallible>(r) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
