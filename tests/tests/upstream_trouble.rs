//! Upstream trouble, through the real binary against the credd sandbox as
//! STS (its faults throttle or slow down AssumeRole, and it counts calls):
//!
//! - during STS throttling, requests get the last error at once: no
//!   upstream call while the broker backs off;
//! - against a slow STS, a cold request is answered within `cold_wait`
//!   (503 `FetchInProgress` with `Retry-After`) while the fetch goes on,
//!   so real boto3's own retry gets the credential, from one call;
//! - on SIGTERM, a request still waiting for STS gets a 503, not a cut.

mod support;

use credd_sandbox::{Fault, FaultKind, Sandbox, SandboxConfig, SandboxHandle, DEMO_ACCESS_KEY_ID};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::*;

fn config() -> String {
    format!(
        r#"[profile base]
aws_access_key_id = {DEMO_ACCESS_KEY_ID}
aws_secret_access_key = sandboxSECRETnotARealKey0000000000000000
region = us-east-1

[profile dev]
role_arn = arn:aws:iam::111122223333:role/ReadOnly
source_profile = base
region = us-east-1

[profile ops]
role_arn = arn:aws:iam::111122223333:role/PowerUserAccess
source_profile = base
region = us-east-1
"#
    )
}

/// A user whose STS is a sandbox running in this test.
struct Trouble {
    env: Env,
    sandbox: SandboxHandle,
    _rt: tokio::runtime::Runtime,
}

impl Trouble {
    fn new(credd_toml: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sandbox = rt
            .block_on(Sandbox::start(SandboxConfig::default()))
            .unwrap();
        let env = Env::with_moto(&config(), Moto::external(sandbox.url()));
        std::fs::write(env.path("credd.toml"), credd_toml).unwrap();
        Trouble {
            env,
            sandbox,
            _rt: rt,
        }
    }
    fn fault(&self, kind: FaultKind, times: Option<u32>) {
        self.sandbox.inject_fault(Fault {
            operation: "AssumeRole".into(),
            kind,
            times,
        });
    }
    fn token(&self, profile: &str) -> String {
        self.env
            .credd_ok(&["token", "issue", "--profile", profile])
            .trim()
            .to_string()
    }
}

/// One GET with a token; the whole response (head and body).
fn fetch(addr: SocketAddr, profile: &str, token: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET /v1/credentials/{profile} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

fn status(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn body(resp: &str) -> serde_json::Value {
    let b = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(b).unwrap_or_else(|e| panic!("not JSON ({e}): {resp:?}"))
}

#[test]
fn requests_during_throttling_backoff_make_no_upstream_call() {
    // A long cold_wait, so the first answer is the throttle itself.
    let t = Trouble::new("[limits]\ncold_wait = \"60s\"\n");
    let d = t.env.serve(&[]);
    let token = t.token("dev");
    t.fault(FaultKind::Throttle, None);

    let first = fetch(d.addr(), "dev", &token);
    assert_eq!(status(&first), 503, "{first}");
    assert_eq!(body(&first)["code"], "UpstreamThrottled", "{first}");
    // The STS client may retry a throttle once inside that first attempt.
    let calls = t.sandbox.count("AssumeRole");
    assert!(calls >= 1);

    for _ in 0..39 {
        let r = fetch(d.addr(), "dev", &token);
        assert_eq!(status(&r), 503, "{r}");
        let b = body(&r);
        assert_eq!(b["code"], "UpstreamThrottled", "{r}");
        assert!(
            b["message"].as_str().unwrap().contains("retrying in"),
            "{r}"
        );
    }
    assert_eq!(
        t.sandbox.count("AssumeRole"),
        calls,
        "requests during the backoff called STS"
    );
}

#[test]
fn a_slow_sts_gets_a_quick_503_and_boto3_retries_into_the_credential() {
    let t = Trouble::new("# defaults\n");
    let d = t.env.serve(&[]);
    let token = t.token("dev");

    // A raw request against a slow STS: answered 503 FetchInProgress with
    // Retry-After (the default cold_wait is 1 s), not after the STS call.
    t.fault(FaultKind::Latency(Duration::from_secs(4)), Some(1));
    let r = fetch(d.addr(), "dev", &token);
    assert_eq!(status(&r), 503, "{r}");
    assert_eq!(body(&r)["code"], "FetchInProgress", "{r}");
    assert!(r.contains("\r\nretry-after: 1\r\n"), "{r}");
    assert!(
        body(&r)["message"]
            .as_str()
            .unwrap()
            .contains("retry in 1 s"),
        "{r}"
    );
    // The fetch went on without the client: it is served, from one call.
    let start = Instant::now();
    loop {
        let r = fetch(d.addr(), "dev", &token);
        if status(&r) == 200 {
            break;
        }
        assert_eq!(body(&r)["code"], "FetchInProgress", "{r}");
        assert!(start.elapsed() < Duration::from_secs(60), "never served");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(t.sandbox.count("AssumeRole"), 1);

    // Real boto3 (2 s timeout, 3 tries) against an STS slower than its
    // timeout: its retry gets the credential, and STS saw one call.
    t.fault(FaultKind::Latency(Duration::from_secs(3)), Some(1));
    let o = t.env.exec_boto3("ops");
    assert!(
        o.status.success(),
        "boto3 failed: {}\n{}",
        stderr_of(&o),
        d.logs()
    );
    assert!(
        stdout_of(&o).contains("assumed-role/PowerUserAccess"),
        "{}",
        stdout_of(&o)
    );
    assert_eq!(t.sandbox.count("AssumeRole"), 2, "one call for ops");
}

#[test]
fn sigterm_answers_a_request_still_waiting_for_sts() {
    // A long cold_wait, so the request is still waiting when SIGTERM comes.
    let t = Trouble::new("[limits]\ncold_wait = \"60s\"\n");
    let d = t.env.serve(&[]);
    let token = t.token("dev");
    t.fault(FaultKind::Latency(Duration::from_secs(30)), Some(1));
    let addr = d.addr();
    let waiting = std::thread::spawn(move || fetch(addr, "dev", &token));
    // Wait until the request is waiting on STS.
    let start = Instant::now();
    while t.sandbox.count("AssumeRole") == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "no STS call");
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = d.stop();
    assert!(st.success(), "{st}");
    let r = waiting.join().unwrap();
    assert_eq!(status(&r), 503, "cut with no answer: {r:?}");
    assert_eq!(body(&r)["code"], "DaemonStopping", "{r}");
}
