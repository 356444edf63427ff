//! The end-to-end harness: a counting moto server as STS, the real `credd`
//! binary in an isolated HOME/runtime/state, and the real clients (boto3,
//! the AWS CLI, the JS SDK v3, the Rust SDK) run as a user would run them.
//! `cargo xtask test` installs the clients and says where they are through
//! `CREDD_TEST_*`; without it the repo's `.venv` and `tests/clients` are used.

#![allow(dead_code)]

pub mod clients;
pub mod debian;
pub mod dockerd;
pub mod images;
pub mod world;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const LONG_TERM_ID: &str = "AKIAIOSFODNN7EXAMPLE";
/// A canary: must never appear in a log, an error, argv or env.
pub const LONG_TERM_SECRET: &str = "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";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn tool(var: &str, default: PathBuf) -> PathBuf {
    let p = std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
    assert!(
        p.exists() || p.components().count() == 1,
        "{} not found ({var}): run the suite with `cargo xtask test`, which installs the test clients",
        p.display()
    );
    p
}

pub fn python() -> PathBuf {
    tool("CREDD_TEST_PYTHON", repo().join(".venv/bin/python"))
}
pub fn aws_cli() -> PathBuf {
    tool("CREDD_TEST_AWS_CLI", repo().join(".venv/bin/aws"))
}
pub fn node() -> PathBuf {
    tool("CREDD_TEST_NODE", PathBuf::from("node"))
}
pub fn clients() -> PathBuf {
    tool("CREDD_TEST_CLIENTS", repo().join("tests/clients"))
}
pub fn rust_whoami() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rust-whoami"))
}

/// The `credd` binary built next to this test (`cargo xtask test` builds
/// the workspace first).
pub fn credd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CREDD_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("credd");
    assert!(
        p.exists(),
        "{} missing: run `cargo build -p credd` (cargo xtask test does)",
        p.display()
    );
    p
}

/// moto behind a counting proxy (`tests/clients/moto_counting.py`).
pub struct Moto {
    child: Option<Child>,
    _stdin: Option<ChildStdin>,
    pub url: String,
}

impl Moto {
    pub fn start() -> Self {
        Self::start_on("127.0.0.1")
    }
    /// moto listening on `host` (an address of this machine).
    pub fn start_on(host: &str) -> Self {
        Self::spawn(Command::new(python()), host)
    }
    /// moto run by `python` (a Python command, possibly behind `nsenter`),
    /// listening on `host`; stops when dropped.
    pub fn spawn(mut python: Command, host: &str) -> Self {
        let mut child = python
            .env("MOTO_COUNTING_HOST", host)
            .arg(clients().join("moto_counting.py"))
            .args(["0", "--exit-with-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start moto");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("moto did not start: {line:?}"))
            .to_string();
        Moto {
            child: Some(child),
            _stdin: Some(stdin),
            url,
        }
    }
    /// Another STS (the credd sandbox), already running at `url`.
    pub fn external(url: String) -> Self {
        Moto {
            child: None,
            _stdin: None,
            url,
        }
    }
    pub fn count(&self, action: &str) -> u64 {
        let body = http_get_plain(&self.url, "/_counts");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v[action].as_u64().unwrap_or(0)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn http_get_plain(base: &str, path: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

pub const CONFIG: &str = r#"[profile base]
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = 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
region = us-east-1

[profile dev]
role_arn = arn:aws:iam::123456789012:role/dev
source_profile = base
region = eu-west-1

[profile chained]
role_arn = arn:aws:iam::123456789012:role/chained
source_profile = dev
duration_seconds = 7200

[profile mfa]
role_arn = arn:aws:iam::123456789012:role/mfa
source_profile = base
mfa_serial = arn:aws:iam::123456789012:mfa/me
region = us-east-1

[profile typo]
role_arn = arn:aws:iam::123456789012:role/x
source_profil = base

[profile cycle-a]
role_arn = arn:aws:iam::123456789012:role/a
source_profile = cycle-b

[profile cycle-b]
role_arn = arn:aws:iam::123456789012:role/b
source_profile = cycle-a

[profile imds-only]
role_arn = arn:aws:iam::123456789012:role/x
credential_source = Ec2InstanceMetadata
"#;

/// One isolated user: HOME with `~/.aws/config`, runtime and state dirs.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub moto: Moto,
    /// More variables every command gets (e.g. the SSO endpoints).
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Self {
        Self::with_config(CONFIG)
    }
    pub fn with_config(config: &str) -> Self {
        Self::with_moto(config, Moto::start())
    }
    pub fn with_moto(config: &str, moto: Moto) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home/.aws")).unwrap();
        std::fs::write(dir.path().join("home/.aws/config"), config).unwrap();
        std::fs::write(dir.path().join("credd.toml"), "# defaults\n").unwrap();
        Env {
            dir,
            moto,
            vars: vec![],
        }
    }
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    /// A stand-in `notify-send` in this user's `bin`: it appends what the
    /// desktop would show to the file `notified`. Returns the `PATH` to
    /// give the daemon (that `bin` first) and the record's path.
    pub fn fake_notify_send(&self) -> (String, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let bin = self.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let record = self.path("notified");
        std::fs::write(
            bin.join("notify-send"),
            format!("#!/bin/sh\nprintf '%s\\n' \"$@\" >> {}\n", record.display()),
        )
        .unwrap();
        std::fs::set_permissions(
            bin.join("notify-send"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        (path, record)
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    /// A command with this user's environment and nothing AWS-ish inherited.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("CREDD_RUNTIME_DIR", self.path("run"))
            .env("CREDD_STATE_DIR", self.path("state"))
            .env("CREDD_CONFIG", self.path("credd.toml"))
            .env("AWS_ENDPOINT_URL_STS", &self.moto.url)
            .env("NODE_NO_WARNINGS", "1")
            .env("LANG", "C.UTF-8")
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        c
    }
    pub fn credd(&self, args: &[&str]) -> Output {
        self.cmd(credd_bin()).args(args).output().unwrap()
    }
    /// Runs `credd ARGS`, asserting success; returns stdout.
    pub fn credd_ok(&self, args: &[&str]) -> String {
        let o = self.credd(args);
        assert!(
            o.status.success(),
            "credd {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    pub fn serve(&self, extra: &[&str]) -> Daemon {
        Daemon::start(self, extra, false)
    }
    /// An unmodified client that prints sts:GetCallerIdentity's Arn, with
    /// this user's environment; the caller adds the variables under test.
    pub fn client(&self, c: Client) -> Command {
        match c {
            Client::Boto3 => {
                let mut cmd = self.cmd(python());
                cmd.arg(clients().join("whoami.py"));
                cmd
            }
            Client::JsSdk => {
                let mut cmd = self.cmd(node());
                cmd.arg(clients().join("whoami.mjs"));
                cmd
            }
            Client::RustSdk => self.cmd(rust_whoami()),
        }
    }
    /// `credd exec PROFILE -- boto3 whoami`, as a user would type it.
    pub fn exec_boto3(&self, profile: &str) -> Output {
        self.cmd(credd_bin())
            .args(["exec", profile, "--"])
            .arg(python())
            .arg(clients().join("whoami.py"))
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .unwrap()
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Client {
    Boto3,
    JsSdk,
    RustSdk,
}

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    pub container_url: String,
    pub imds_url: Option<String>,
}

impl Daemon {
    pub fn start(env: &Env, extra: &[&str], umask_000: bool) -> Daemon {
        Self::start_with_env(env, extra, umask_000, &[])
    }

    pub fn start_with_env(
        env: &Env,
        extra: &[&str],
        umask_000: bool,
        vars: &[(&str, &str)],
    ) -> Daemon {
        let log = env.path(&format!("serve-{}.log", rand_suffix()));
        let logf = std::fs::File::create(&log).unwrap();
        let mut c = if umask_000 {
            let mut c = env.cmd("sh");
            c.arg("-c")
                .arg("umask 000; exec \"$0\" \"$@\"")
                .arg(credd_bin());
            c
        } else {
            env.cmd(credd_bin())
        };
        c.envs(vars.iter().copied());
        c.args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env(
                "CREDD_LOG",
                "info,credd=trace,credd_daemon=trace,credd_aws=trace,credd_core=trace",
            )
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        let child = c.spawn().unwrap();
        Daemon::when_ready(child, log, Duration::from_secs(30), || {
            Some(env.credd(&["status", "--json"]))
        })
    }

    /// Waits until `status` (a `credd status --json`, run the caller's way;
    /// `None` when it did not answer) succeeds, and takes the endpoint URLs
    /// from its answer. Panics with the daemon's log when the daemon exits
    /// first or is not ready within `limit` (then it is killed: hung).
    pub fn when_ready(
        mut child: Child,
        log: PathBuf,
        limit: Duration,
        mut status: impl FnMut() -> Option<Output>,
    ) -> Daemon {
        let start = Instant::now();
        loop {
            if let Some(o) = status().filter(|o| o.status.success()) {
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                return Daemon {
                    child,
                    log,
                    container_url: v["daemon"]["container_url"].as_str().unwrap().to_string(),
                    imds_url: v["daemon"]["imds_url"].as_str().map(str::to_string),
                };
            }
            if let Some(st) = child.try_wait().unwrap() {
                panic!(
                    "credd serve exited with {st}: {}",
                    std::fs::read_to_string(&log).unwrap()
                );
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                panic!(
                    "credd serve was not ready within {limit:?} (hung?): {}",
                    std::fs::read_to_string(&log).unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    pub fn addr(&self) -> SocketAddr {
        self.container_url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
    /// Whether the daemon is still running.
    pub fn child_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// SIGTERM, and the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let st = self.child.wait().unwrap();
        std::mem::forget(self);
        st
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A raw HTTP/1.1 exchange: any Host, any headers, status and body back.
pub fn raw_request(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

pub fn get(addr: SocketAddr, path: &str, host: Option<&str>, token: Option<&str>) -> (u16, String) {
    let mut req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if let Some(h) = host {
        req.push_str(&format!("Host: {h}\r\n"));
    }
    if let Some(t) = token {
        req.push_str(&format!("Authorization: {t}\r\n"));
    }
    req.push_str("\r\n");
    raw_request(addr, &req)
}

pub fn stdout_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}
pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}
