//! `credd-bench --scale`: how credd's cost grows with the work (issue 16,
//! section 2). For each of `--scale-profiles` (20, 2,000, 10,000 by
//! default) a fresh daemon is started and measured for:
//!
//! - **startup to serving**: from spawning `credd serve` to the first
//!   credential served (`credd credential-process p01` answering, polled
//!   every 5 ms; its one `credential_process` run included);
//! - **startup to status**: from the same spawn to the first
//!   `credd status --json` that answers (polled every 5 ms after the
//!   above): that answer has one row per profile, so with 10,000 profiles
//!   it is itself about a third of this time;
//! - **idle RSS** with one profile cached, after 2 s idle;
//! - **a config change re-read**: a new profile written into
//!   `~/.aws/config` the way an editor saves (a new file renamed over the
//!   old), then the time until `GET /v1/credentials/NEW` stops answering
//!   404 (the daemon knows it) and until it answers 200 (fetched through
//!   its `credential_process`); median of 5 edits.
//!
//! With the largest count, the hot path's p99 (32 keep-alive connections
//! on `p01`, as the main bench) is measured alternately without and with
//! `--scale-tokens` more tokens issued (10,000) and `--scale-idle`
//! container connections open (500; each sends one request every 2 s, as
//! credd closes a connection idle for `limits.header_read_timeout`, 5 s).

use crate::daemon::{self, Daemon};
use crate::load;
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The status code of one `GET /v1/credentials/PROFILE` on a new connection.
fn status(d: &Daemon, profile: &str, token: &str) -> anyhow::Result<u16> {
    let mut s = std::net::TcpStream::connect(d.addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET /v1/credentials/{profile} HTTP/1.1\r\nHost: {}\r\nAuthorization: {token}\r\nConnection: close\r\n\r\n",
        d.addr
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let line = String::from_utf8_lossy(&out[..out.len().min(12)]).to_string();
    line.get(9..12)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status line in {line:?}"))
}

/// Adds `[profile NAME]` as an editor saves, and times until it is known
/// and until it is served.
fn reread(d: &Daemon, name: &str, token: &str) -> anyhow::Result<(Duration, Duration)> {
    let config = d.scratch("home/.aws/config");
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(&format!(
        "[profile {name}]\ncredential_process = '{}' {name}\nregion = us-east-1\n\n",
        d.scratch("cred.sh").display()
    ));
    let tmp = d.scratch("home/.aws/config.new");
    std::fs::write(&tmp, text)?;
    let started = Instant::now();
    std::fs::rename(&tmp, &config)?;
    let mut known = None;
    loop {
        let code = status(d, name, token)?;
        if code != 404 && known.is_none() {
            known = Some(started.elapsed());
        }
        if code == 200 {
            return Ok((known.unwrap_or_default(), started.elapsed()));
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("profile {name} not served 120 s after the write (last status {code})");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Issues `n` tokens for `p01` over the control socket (the CLI's protocol:
/// one JSON line each way), `n` connections in turn.
fn issue_tokens(d: &Daemon, n: usize) -> anyhow::Result<()> {
    let sock = d.scratch("run/control.sock");
    let req = b"{\"op\":\"token-issue\",\"profiles\":[\"p01\"],\"label\":\"scale\"}\n";
    for _ in 0..n {
        let mut s = std::os::unix::net::UnixStream::connect(&sock)
            .with_context(|| format!("connect {}", sock.display()))?;
        s.write_all(req)?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        if !line.starts_with("{\"ok\":true") {
            bail!(
                "token issue failed: {}",
                line.chars().take(200).collect::<String>()
            );
        }
    }
    Ok(())
}

/// One background container connection: a request every 2 s until `stop`.
async fn background(
    addr: std::net::SocketAddr,
    req: std::sync::Arc<[u8]>,
    stop: flag::Stop,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut buf = vec![0u8; 8192];
    while !stop.is_set() {
        s.write_all(&req).await?;
        // Read one answer: the head, then Content-Length bytes of body.
        let mut have = 0;
        loop {
            let n = s.read(&mut buf[have..]).await?;
            if n == 0 {
                bail!("credd closed a background connection");
            }
            have += n;
            let text = &buf[..have];
            if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&text[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if have >= end + 4 + len {
                    break;
                }
            }
        }
        for _ in 0..20 {
            if stop.is_set() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// A stop flag shared by the background connections.
mod flag {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    #[derive(Debug, Clone, Default)]
    pub struct Stop(Arc<AtomicBool>);
    impl Stop {
        pub fn set(&self) {
            self.0.store(true, Ordering::Relaxed);
        }
        pub fn is_set(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }
}

pub fn run(
    bin: &Path,
    counts: &[usize],
    tokens: usize,
    idle: usize,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    if counts.is_empty() {
        bail!("--scale-profiles must not be empty");
    }
    println!("## credd by profile count\n");
    println!("| profiles | startup to serving | startup to status | idle RSS | re-read: known | re-read: served |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut last = None;
    for &n in counts {
        eprintln!("starting credd with {n} profiles...");
        let names = daemon::profile_names(n);
        let d = Daemon::start_probing(bin, &names, None, Some(&names[0]))?;
        let ready = d.ready_after;
        let serving = d.served_after.unwrap_or_default();
        let token = d.issue_token(&names[..1])?;
        d.get_credentials(&names[0], &token)?;
        std::thread::sleep(Duration::from_secs(2));
        let rss = d.rss_kib()? as f64 * 1024.0 / 1e6;
        let all = d.issue_token(&["*".to_string()])?;
        let mut known = Vec::new();
        let mut served = Vec::new();
        for i in 0..5 {
            let (k, s) = reread(&d, &format!("added{i}"), &all)?;
            known.push(k);
            served.push(s);
            std::thread::sleep(Duration::from_millis(200));
        }
        known.sort();
        served.sort();
        println!(
            "| {n} | {:.1} ms | {:.1} ms | {rss:.1} MB | {:.1} ms | {:.1} ms |",
            ms(serving),
            ms(ready),
            ms(known[2]),
            ms(served[2])
        );
        last = Some((n, d, token));
    }
    let Some((n, d, token)) = last else {
        return Ok(());
    };
    eprintln!(
        "hot path with {n} profiles: baseline, then {tokens} tokens and {idle} connections..."
    );
    let body: std::sync::Arc<[u8]> = d.get_credentials("p01", &token)?.into();
    let req = load::request(d.addr, "/v1/credentials/p01", &token);
    let one = |label: &str| -> anyhow::Result<load::RunStats> {
        let s = rt.block_on(load::run(
            d.addr,
            req.clone(),
            body.clone(),
            32,
            Duration::from_secs(1),
            Duration::from_secs(3),
        ))?;
        eprintln!("  {label}: {:.0} req/s, p99 {:.1} µs", s.rps, s.p99_us);
        Ok(s)
    };
    let base = vec![one("baseline")?, one("baseline")?];
    let started = Instant::now();
    issue_tokens(&d, tokens)?;
    eprintln!(
        "  {tokens} tokens issued in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (mut toks, mut loaded) = (Vec::new(), Vec::new());
    // Alternate, three times: with the tokens and the connections, then
    // with the tokens only (the connections closed).
    for _ in 0..3 {
        let stop = flag::Stop::default();
        let bg: Vec<_> = (0..idle)
            .map(|_| rt.spawn(background(d.addr, req.clone(), stop.clone())))
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        loaded.push(one("tokens + connections")?);
        stop.set();
        for h in bg {
            rt.block_on(h)??;
        }
        toks.push(one("tokens only")?);
    }
    let med = |mut v: Vec<load::RunStats>| {
        v.sort_by(|a, b| a.p99_us.total_cmp(&b.p99_us));
        v[v.len() / 2]
    };
    let runs = (base.len(), toks.len(), loaded.len());
    let (b, t, l) = (med(base), med(toks), med(loaded));
    println!("\n## Hot path with {n} profiles, 32 connections (median p99 run)\n");
    println!("| | runs | req/s | p50 (µs) | p99 (µs) | p99 / baseline |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, k, x) in [
        ("baseline", runs.0, b),
        (&*format!("+ {tokens} tokens"), runs.1, t),
        (
            &*format!("+ {tokens} tokens, {idle} container connections"),
            runs.2,
            l,
        ),
    ] {
        println!(
            "| {label} | {k} | {:.0} | {:.1} | {:.1} | {:.3} |",
            x.rps,
            x.p50_us,
            x.p99_us,
            x.p99_us / b.p99_us
        );
    }
    println!(
        "\nRSS with the tokens issued: {:.1} MB",
        d.rss_kib()? as f64 * 1024.0 / 1e6
    );
    Ok(())
}
