//! The shared upstream of `--peers`: moto (the repo's `moto_counting.py`)
//! behind a small TCP proxy that can pass traffic through, hold every new
//! connection for a fixed delay (a slow STS), or close it at once (STS
//! down). Every tool under test is pointed at the proxy, so all of them see
//! the same upstream and the same faults.

use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the proxy does with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward to moto.
    None,
    /// Wait `SLOW` before forwarding (every request on a new connection).
    Slow,
    /// Close the connection without reading or answering.
    Down,
}

/// The delay of [`Fault::Slow`], as the issue asks (2 s).
pub const SLOW: Duration = Duration::from_secs(2);

/// moto plus the proxy; dropping it stops moto (its stdin closes).
#[derive(Debug)]
pub struct Upstream {
    moto: Child,
    _stdin: ChildStdin,
    /// The proxy's address: what every tool gets as its STS endpoint.
    pub addr: SocketAddr,
    moto_addr: SocketAddr,
    fault: Arc<AtomicU8>,
}

impl Fault {
    /// Turns the switch of a [`fault_proxy`] to this fault.
    pub fn switch(self, to: &AtomicU8) {
        let v = match self {
            Fault::None => 0,
            Fault::Slow => 1,
            Fault::Down => 2,
        };
        to.store(v, Ordering::SeqCst);
    }
}

/// A loopback proxy to `target` on `rt`, and its switch (see
/// [`Fault::switch`]): each new connection is passed through, held
/// [`SLOW`] first, or closed at once. The STS proxy and the peers' sandbox
/// proxy are both one.
pub fn fault_proxy(
    rt: &tokio::runtime::Runtime,
    target: SocketAddr,
) -> anyhow::Result<(SocketAddr, Arc<AtomicU8>)> {
    let fault = Arc::new(AtomicU8::new(0));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let f = fault.clone();
    rt.spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let mode = f.load(Ordering::SeqCst);
            tokio::spawn(async move {
                match mode {
                    2 => return,
                    1 => tokio::time::sleep(SLOW).await,
                    _ => {}
                }
                if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    Ok((addr, fault))
}

impl Upstream {
    /// Starts moto with `python` and the proxy on the given runtime.
    pub fn start(
        python: &Path,
        moto_script: &Path,
        rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<Self> {
        let mut moto = Command::new(python)
            .arg(moto_script)
            .args(["0", "--exit-with-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start moto with {}", python.display()))?;
        let stdin = moto.stdin.take().context("moto stdin")?;
        let mut line = String::new();
        BufReader::new(moto.stdout.take().context("moto stdout")?).read_line(&mut line)?;
        let Some(url) = line.trim().strip_prefix("READY http://") else {
            bail!("moto did not start: {line:?}");
        };
        let moto_addr: SocketAddr = url.trim_end_matches('/').parse()?;
        let (addr, fault) = fault_proxy(rt, moto_addr)?;
        Ok(Self {
            moto,
            _stdin: stdin,
            addr,
            moto_addr,
            fault,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        fault.switch(&self.fault);
    }

    /// STS calls moto has answered so far, all actions together (from
    /// `moto_counting.py`'s `/_counts`, asked directly, past the proxy).
    pub fn sts_calls(&self) -> anyhow::Result<u64> {
        let mut s = std::net::TcpStream::connect(self.moto_addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET /_counts HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.moto_addr
        )?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        let body = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| &out[i + 4..])
            .context("no body in /_counts")?;
        let v: serde_json::Value = serde_json::from_slice(body)?;
        Ok(v.as_object()
            .context("/_counts is not an object")?
            .values()
            .filter_map(|n| n.as_u64())
            .sum())
    }

    /// The upstream's own latency: one unsigned `AssumeRole` POST (moto does
    /// not check signatures) on a new connection through the proxy, as a
    /// client without keep-alive sees it.
    pub fn assume_role_latency(&self) -> anyhow::Result<Duration> {
        let body = "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fprobe&RoleSessionName=probe";
        let t0 = Instant::now();
        let mut s = std::net::TcpStream::connect(self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=AKIAPROBE/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        let took = t0.elapsed();
        if !out.starts_with(b"HTTP/1.1 200") && !out.starts_with(b"HTTP/1.0 200") {
            bail!(
                "moto's AssumeRole answered: {}",
                String::from_utf8_lossy(&out[..out.len().min(300)])
            );
        }
        Ok(took)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.moto.kill();
        let _ = self.moto.wait();
    }
}

/// A stand-in for IAM Roles Anywhere's `CreateSession` (`POST /sessions`),
/// which neither moto nor the sandbox has: it answers every request with a
/// fresh credential set an hour long, obeys the same fault switch as the
/// STS proxy, and counts its calls. It lets the Roles Anywhere helper's
/// `serve` run here without AWS (it checks nothing of the request).
#[derive(Debug)]
pub struct FakeRolesAnywhere {
    pub addr: SocketAddr,
    pub calls: Arc<std::sync::atomic::AtomicU64>,
}

impl Upstream {
    pub fn roles_anywhere(
        &self,
        rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<FakeRolesAnywhere> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (f, n) = (self.fault.clone(), calls.clone());
        rt.spawn(async move {
            while let Ok((mut c, _)) = listener.accept().await {
                let (f, n) = (f.clone(), n.clone());
                tokio::spawn(async move {
                    match f.load(Ordering::SeqCst) {
                        2 => return,
                        1 => tokio::time::sleep(SLOW).await,
                        _ => {}
                    }
                    // One request per connection: read the head and the body.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(k) = c.read(&mut chunk).await else { return };
                        if k == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..k]);
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    n.fetch_add(1, Ordering::SeqCst);
                    let body = roles_anywhere_body(n.load(Ordering::SeqCst));
                    let _ = c
                        .write_all(
                            format!(
                                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .await;
                });
            }
        });
        Ok(FakeRolesAnywhere { addr, calls })
    }
}

/// A `CreateSession` answer whose credentials expire an hour from now.
// The bench is a client of the daemon, not part of it: real time.
#[allow(clippy::disallowed_methods)]
fn roles_anywhere_body(serial: u64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let exp = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&fmt)
        .unwrap_or_default();
    let token = "IQoJb3JpZ2luX2VjEFakeRolesAnywhere".repeat(24);
    format!(
        "{{\"credentialSet\":[{{\"assumedRoleUser\":{{\"arn\":\"arn:aws:sts::123456789012:assumed-role/bench/ra\",\"assumedRoleId\":\"AROAFAKE:ra\"}},\
         \"credentials\":{{\"accessKeyId\":\"ASIAFAKERA{serial:010}\",\"secretAccessKey\":\"fakeRolesAnywhereSecretKey0000000000000000\",\
         \"sessionToken\":\"{token}\",\"expiration\":\"{exp}\"}},\"packedPolicySize\":0,\"roleArn\":\"arn:aws:iam::123456789012:role/bench\"}}],\
         \"subjectArn\":\"arn:aws:rolesanywhere:us-east-1:123456789012:subject/fake\"}}"
    )
}
