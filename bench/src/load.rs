//! The load generator: N keep-alive HTTP/1.1 connections, each sending one
//! pre-built `GET` and reading the answer (status line, `Content-Length`,
//! body) in a closed loop. A warm-up is run on the same connections and not
//! counted; then every request that both starts and completes inside the
//! measured window is counted and its latency (write of the request to the
//! last byte of the body) recorded.
//!
//! It is deliberately cheap: raw `tokio::net::TcpStream`, one buffer per
//! connection, no header map, so that as much of the shared CPU as possible
//! goes to the server under test.

use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What one measurement run produced.
#[derive(Debug, Clone, Copy)]
pub struct RunStats {
    pub requests: u64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// The request every connection sends.
pub fn request(addr: SocketAddr, path: &str, token: &str) -> Arc<[u8]> {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {token}\r\n\r\n")
        .into_bytes()
        .into()
}

/// Runs `connections` closed loops against `addr` for `warmup` + `duration`.
/// Every answer must be a 200 whose body is `expected` (checked in full on
/// each connection's first answer, by length afterwards).
pub async fn run(
    addr: SocketAddr,
    req: Arc<[u8]>,
    expected: Arc<[u8]>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<RunStats> {
    run_checked(addr, req, expected, true, connections, warmup, duration).await
}

/// As [`run`], but every answer is only checked for a 200 with `expected`'s
/// length: for a peer that fetches new credentials on every request
/// (`--peers`), whose bytes differ from answer to answer.
pub async fn run_same_length(
    addr: SocketAddr,
    req: Arc<[u8]>,
    expected: Arc<[u8]>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<RunStats> {
    run_checked(addr, req, expected, false, connections, warmup, duration).await
}

async fn run_checked(
    addr: SocketAddr,
    req: Arc<[u8]>,
    expected: Arc<[u8]>,
    exact_first: bool,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<RunStats> {
    // Connect everything first so connection setup is not in the window.
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let s = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        s.set_nodelay(true)?;
        streams.push(s);
    }
    let from = Instant::now() + warmup;
    let until = from + duration;
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|s| {
            tokio::spawn(connection(
                s,
                req.clone(),
                expected.clone(),
                exact_first,
                from,
                until,
            ))
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_unstable();
    let requests = all.len() as u64;
    if requests == 0 {
        bail!("no request completed in the measured window");
    }
    Ok(RunStats {
        requests,
        rps: requests as f64 / duration.as_secs_f64(),
        p50_us: percentile(&all, 0.50) as f64 / 1000.0,
        p99_us: percentile(&all, 0.99) as f64 / 1000.0,
    })
}

/// Nearest-rank percentile of sorted nanoseconds.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One connection's closed loop; returns the latencies (ns) of the requests
/// inside `[from, until]`.
async fn connection(
    mut s: TcpStream,
    req: Arc<[u8]>,
    expected: Arc<[u8]>,
    exact_first: bool,
    from: Instant,
    until: Instant,
) -> anyhow::Result<Vec<u64>> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut lat = Vec::with_capacity(1 << 16);
    let mut first = exact_first;
    loop {
        let t0 = Instant::now();
        if t0 >= until {
            break;
        }
        s.write_all(&req).await?;
        let (head, body_len) = read_response(&mut s, &mut buf).await?;
        let t1 = Instant::now();
        if body_len != expected.len() {
            bail!(
                "answer of {body_len} bytes, expected {}: {}",
                expected.len(),
                String::from_utf8_lossy(&buf[..head + body_len.min(512)])
            );
        }
        if first {
            if buf[head..head + body_len] != expected[..] {
                bail!("the body differs from the expected one");
            }
            first = false;
        }
        if t0 >= from && t1 <= until {
            lat.push((t1 - t0).as_nanos() as u64);
        }
    }
    Ok(lat)
}

/// Reads one response into `buf` (the loop is closed, so nothing follows
/// it); returns the header length (including the blank line) and the body
/// length. Anything but a 200 with `Content-Length` is an error.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<(usize, usize)> {
    let mut filled = 0;
    let mut framing: Option<(usize, usize)> = None;
    loop {
        if let Some((head, body)) = framing {
            if filled >= head + body {
                if filled > head + body {
                    bail!("more bytes than one response: the server sent something unasked");
                }
                return Ok((head, body));
            }
        }
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = s.read(&mut buf[filled..]).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        filled += n;
        if framing.is_none() {
            if let Some(end) = find(&buf[..filled], b"\r\n\r\n") {
                let head = &buf[..end];
                if !head.starts_with(b"HTTP/1.1 200 ") {
                    bail!(
                        "not a 200: {}",
                        String::from_utf8_lossy(&buf[..filled.min(512)])
                    );
                }
                let len = content_length(head).context("no Content-Length in the answer")?;
                framing = Some((end + 4, len));
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> Option<usize> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        if !line[..colon].eq_ignore_ascii_case(b"content-length") {
            return None;
        }
        std::str::from_utf8(&line[colon + 1..])
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}
