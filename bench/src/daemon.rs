//! The real `credd` under test: the release binary started as
//! `credd serve --listen 127.0.0.1:0` in a throw-away HOME (with
//! `CREDD_RUNTIME_DIR`, `CREDD_STATE_DIR` and an empty `CREDD_CONFIG`), with an
//! `~/.aws/config` of N profiles whose `credential_process` is a tiny shell
//! script printing Version 1 JSON that expires 11 hours ahead. No STS is
//! involved: each profile is fetched once (by the warm-up) and then served
//! from credd's cache, which is the path being measured.

use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running daemon in its own temp HOME; dropping it stops it (SIGTERM,
/// then SIGKILL) and deletes the directory.
#[derive(Debug)]
pub struct Daemon {
    bin: PathBuf,
    dir: tempfile::TempDir,
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
    /// From spawning `credd serve` to the first `credd status` answered.
    pub ready_after: Duration,
    /// With [`Daemon::start_probing`]: from the spawn to the first
    /// credential served (`credd credential-process PROFILE` answering).
    pub served_after: Option<Duration>,
}

/// While waiting for a starting `credd serve`: an error if it exited (with
/// its log) or has not `done` its part within 30 s (then it is killed).
fn still_starting(
    child: &mut Child,
    started: Instant,
    log: &Path,
    done: &str,
) -> anyhow::Result<()> {
    if let Some(st) = child.try_wait()? {
        bail!(
            "credd serve exited with {st}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    if started.elapsed() > Duration::from_secs(30) {
        let _ = child.kill();
        bail!("credd serve {done} within 30 s");
    }
    Ok(())
}

/// The profile names: `p01`, `p02`, ...
pub fn profile_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("p{i:02}")).collect()
}

impl Daemon {
    /// Writes the temp HOME, starts `credd serve` and waits until
    /// `credd status --json` answers (profiles are loaded by then).
    pub fn start(
        bin: &Path,
        profiles: &[String],
        log_filter: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::start_probing(bin, profiles, log_filter, None)
    }

    /// As [`Daemon::start`]; with `serve_probe`, first polls
    /// `credd credential-process PROFILE` until it answers, and records
    /// when in `served_after` (ready to serve), then waits for the status
    /// as `start` does (whose answer, one row per profile, costs more than
    /// serving one credential).
    pub fn start_probing(
        bin: &Path,
        profiles: &[String],
        log_filter: Option<&str>,
        serve_probe: Option<&str>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("credd-bench-").tempdir()?;
        let root = dir.path();
        std::fs::create_dir_all(root.join("home/.aws"))?;
        std::fs::write(root.join("credd.toml"), "")?;
        let script = write_credential_script(root)?;
        let mut config = String::new();
        for p in profiles {
            config.push_str(&format!(
                "[profile {p}]\ncredential_process = '{}' {p}\nregion = us-east-1\n\n",
                script.display()
            ));
        }
        std::fs::write(root.join("home/.aws/config"), config)?;

        let log = root.join("serve.log");
        let logf = std::fs::File::create(&log)?;
        let mut cmd = env_cmd(bin, root);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf);
        if let Some(f) = log_filter {
            cmd.env("CREDD_LOG", f);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let started = Instant::now();
        let mut served_after = None;
        if let Some(p) = serve_probe {
            loop {
                let o = env_cmd(bin, root)
                    .args(["credential-process", p])
                    .stderr(Stdio::null())
                    .output()?;
                if o.status.success() {
                    served_after = Some(started.elapsed());
                    break;
                }
                still_starting(&mut child, started, &log, "served nothing")?;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let addr = loop {
            let o = env_cmd(bin, root).args(["status", "--json"]).output()?;
            if o.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&o.stdout)
                    .context("`credd status --json` printed something that is not JSON")?;
                let url = v["daemon"]["container_url"]
                    .as_str()
                    .context("`credd status --json` has no daemon.container_url")?;
                break url
                    .trim_start_matches("http://")
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .parse::<SocketAddr>()
                    .with_context(|| format!("container_url {url:?}"))?;
            }
            still_starting(&mut child, started, &log, "did not become ready")?;
            std::thread::sleep(Duration::from_millis(5));
        };
        let ready_after = started.elapsed();
        Ok(Self {
            bin: bin.to_path_buf(),
            dir,
            child,
            addr,
            log,
            ready_after,
            served_after,
        })
    }

    /// A path in the daemon's temp directory (removed with it).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A `credd` client command as this daemon's user (its HOME, runtime
    /// and state directories).
    pub fn cli(&self) -> Command {
        env_cmd(&self.bin, self.dir.path())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `credd token issue --profile A --profile B ...`: the token on stdout.
    pub fn issue_token(&self, profiles: &[String]) -> anyhow::Result<String> {
        let mut cmd = env_cmd(&self.bin, self.dir.path());
        cmd.args(["token", "issue", "--label", "bench"]);
        for p in profiles {
            cmd.args(["--profile", p]);
        }
        let o = cmd.output()?;
        if !o.status.success() {
            bail!(
                "credd token issue failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(String::from_utf8(o.stdout)?.trim().to_string())
    }

    /// One `GET /v1/credentials/PROFILE` on a fresh connection; the body of
    /// a 200, an error otherwise.
    pub fn get_credentials(&self, profile: &str, token: &str) -> anyhow::Result<Vec<u8>> {
        let mut s = TcpStream::connect(self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "GET /v1/credentials/{profile} HTTP/1.1\r\nHost: {}\r\nAuthorization: {token}\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("no end of headers in credd's answer")?;
        let head = String::from_utf8_lossy(&out[..split]).to_string();
        let body = out[split + 4..].to_vec();
        if !head.starts_with("HTTP/1.1 200 ") {
            bail!(
                "GET /v1/credentials/{profile}: {}\n{}",
                head.lines().next().unwrap_or_default(),
                String::from_utf8_lossy(&body)
            );
        }
        Ok(body)
    }

    /// `VmRSS` from `/proc/PID/status`, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS line in /proc/PID/status")
    }

    pub fn log_bytes(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command with only this fake user's environment (nothing AWS-ish
/// inherited from the caller).
fn env_cmd(bin: &Path, root: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", root.join("home"))
        .env("CREDD_RUNTIME_DIR", root.join("run"))
        .env("CREDD_STATE_DIR", root.join("state"))
        .env("CREDD_CONFIG", root.join("credd.toml"))
        .env("LANG", "C.UTF-8");
    c
}

/// `cred.sh PROFILE`: prints a Version 1 `credential_process` document with
/// a session token as long as a real STS one and an `Expiration` 11 hours
/// from when the bench started (the run is far shorter than that).
// The bench is a client of the daemon, not part of it: real time.
#[allow(clippy::disallowed_methods)]
fn write_credential_script(root: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let expiration = (time::OffsetDateTime::now_utc() + time::Duration::hours(11)).format(&fmt)?;
    let token = "IQoJb3JpZ2luX2VjEBenchSessionToken".repeat(24);
    let script = format!(
        "#!/bin/sh\n\
         # credd-bench: fake temporary credentials for profile $1\n\
         p=$(printf '%s' \"$1\" | tr -dc 'a-z0-9' | tr 'a-z' 'A-Z')\n\
         printf '{{\"Version\":1,\"AccessKeyId\":\"ASIABENCH%s\",\"SecretAccessKey\":\"benchSECRETwJalrXUtnFEMIK7MDENGbPxRfiCY%s\",\"SessionToken\":\"{token}%s\",\"Expiration\":\"{expiration}\"}}\\n' \"$p\" \"$p\" \"$p\"\n"
    );
    let path = root.join("cred.sh");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
    Ok(path)
}
