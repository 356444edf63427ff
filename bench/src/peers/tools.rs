//! The tools `--peers` runs side by side, and the fake user they share: one
//! throw-away HOME, how each tool is started and pointed at the upstream
//! (credd, aws-vault, granted, amazon-ecs-local-container-endpoints, the
//! IAM Roles Anywhere helper's `serve`; aws-sso-cli is in `sso.rs`), and
//! the two ways the bench asks
//! them for credentials (a GET on a new connection, a `credential_process`
//! run).

use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The role every tool assumes for profile `bench` (moto accepts any).
pub(super) const ROLE: &str = "arn:aws:iam::123456789012:role/bench";

/// What `--peers` needs from the command line.
#[derive(Debug)]
pub struct Options {
    pub credd: PathBuf,
    pub sandbox: PathBuf,
    pub peers_dir: PathBuf,
    pub python: PathBuf,
    pub moto_script: PathBuf,
    pub rounds: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub connections: Vec<usize>,
    pub calls: usize,
}

/// A tool's container-style endpoint.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    pub(super) addr: SocketAddr,
    /// Path for the warm profile `bench`.
    pub(super) path: String,
    /// The credential header line, if the endpoint wants one
    /// (`Authorization: T`, or IMDSv2's `X-aws-ec2-metadata-token: T`).
    pub(super) header: Option<String>,
}

impl Endpoint {
    /// The request the load generator repeats.
    pub(super) fn request(&self) -> Arc<[u8]> {
        let h = self
            .header
            .as_ref()
            .map(|h| format!("{h}\r\n"))
            .unwrap_or_default();
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\n{h}\r\n",
            self.path, self.addr
        )
        .into_bytes()
        .into()
    }
}

/// One tool under test: its endpoint and/or its `credential_process` argv
/// (`{}` stands for the profile), and the processes to stop at the end.
#[derive(Debug)]
pub(super) struct Tool {
    pub(super) name: &'static str,
    pub(super) endpoint: Option<Endpoint>,
    pub(super) process: Option<Vec<String>>,
    pub(super) env: Vec<(String, String)>,
    pub(super) children: Vec<Child>,
}

impl Drop for Tool {
    fn drop(&mut self) {
        for c in &mut self.children {
            stop_group(c);
        }
    }
}

/// Stops a child started in its own process group, with its descendants.
pub(super) fn stop_group(c: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", c.id())])
        .stderr(Stdio::null())
        .status();
    std::thread::sleep(Duration::from_millis(100));
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", c.id())])
        .stderr(Stdio::null())
        .status();
    let _ = c.wait();
}

/// The shared fake user: HOME, the AWS files and the environment every tool
/// runs with (nothing inherited from the caller but PATH).
#[derive(Debug)]
pub(super) struct World {
    pub(super) dir: tempfile::TempDir,
    pub(super) sts: String,
}

impl World {
    /// `extra_config` is appended to `~/.aws/config` (credd's SSO profiles).
    pub(super) fn new(
        sts: String,
        cold_profiles: &[String],
        extra_config: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("credd-peers-").tempdir()?;
        let aws = dir.path().join("home/.aws");
        std::fs::create_dir_all(&aws)?;
        std::fs::write(
            aws.join("credentials"),
            "[base]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
             aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        )?;
        let mut config = format!(
            "[profile base]\nregion = us-east-1\n\n[profile bench]\nrole_arn = {ROLE}\n\
             source_profile = base\nregion = us-east-1\n\n"
        );
        for p in cold_profiles {
            config.push_str(&format!(
                "[profile {p}]\nrole_arn = arn:aws:iam::123456789012:role/{p}\n\
                 source_profile = base\nregion = us-east-1\n\n"
            ));
        }
        config.push_str(extra_config);
        std::fs::write(aws.join("config"), config)?;
        std::fs::write(dir.path().join("credd.toml"), "")?;
        Ok(Self { dir, sts })
    }

    pub(super) fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub(super) fn cmd(&self, bin: &Path, extra: &[(String, String)]) -> Command {
        let mut c = Command::new(bin);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("LANG", "C.UTF-8")
            .env("AWS_ENDPOINT_URL_STS", &self.sts)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", "us-east-1")
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        c
    }
}

pub(super) fn kv(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_string(), v.into())
}

/// One GET on a new connection: status code, body, time to the last byte.
pub(super) fn get(e: &Endpoint, path: &str) -> anyhow::Result<(u16, Vec<u8>, Duration)> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(e.addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let h = e
        .header
        .as_ref()
        .map(|h| format!("{h}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\n{h}Connection: close\r\n\r\n",
        e.addr
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let took = t0.elapsed();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let status = std::str::from_utf8(&out[..split])?
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status code")?;
    Ok((status, out[split + 4..].to_vec(), took))
}

/// Runs the tool's credential_process for `profile`: success (stdout holds
/// an AccessKeyId) and the wall time of the whole process.
pub(super) fn process_call(
    w: &World,
    t: &Tool,
    bin_argv: &[String],
    profile: &str,
) -> (bool, Duration) {
    let argv: Vec<String> = bin_argv.iter().map(|a| a.replace("{}", profile)).collect();
    let t0 = Instant::now();
    let out = w
        .cmd(Path::new(&argv[0]), &t.env)
        .args(&argv[1..])
        .stderr(Stdio::null())
        .output();
    let took = t0.elapsed();
    let ok = out
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("AccessKeyId"))
        .unwrap_or(false);
    (ok, took)
}

pub(super) fn wait_for<T>(
    what: &str,
    child: &mut Child,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if let Some(st) = child.try_wait()? {
            bail!("{what} exited with {st}");
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("{what} was not ready within 30 s");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `sso`: the SSO endpoint (credd-sandbox's proxy) when credd also serves
/// the SSO column; it signs in to the SSO session before it starts.
pub(super) fn start_credd(
    w: &World,
    bin: &Path,
    cold: &[String],
    sso: Option<String>,
) -> anyhow::Result<Tool> {
    let mut env = vec![
        kv("CREDD_RUNTIME_DIR", w.path("run").display().to_string()),
        kv("CREDD_STATE_DIR", w.path("state").display().to_string()),
        kv("CREDD_CONFIG", w.path("credd.toml").display().to_string()),
    ];
    if let Some(url) = sso {
        env.push(kv("AWS_ENDPOINT_URL_SSO", url.clone()));
        env.push(kv("AWS_ENDPOINT_URL_SSO_OIDC", url));
        super::sso::credd_login(w, bin, &env)?;
    }
    let mut child = w
        .cmd(bin, &env)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.path("credd.log"))?)
        .process_group(0)
        .spawn()?;
    let addr = wait_for("credd serve", &mut child, || {
        let o = w.cmd(bin, &env).args(["status", "--json"]).output().ok()?;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        let url = v["daemon"]["container_url"].as_str()?;
        url.trim_start_matches("http://")
            .split('/')
            .next()?
            .parse()
            .ok()
    })?;
    let mut cmd = w.cmd(bin, &env);
    cmd.args(["token", "issue", "--label", "peers", "--profile", "bench"]);
    for p in cold {
        cmd.args(["--profile", p]);
    }
    let o = cmd.output()?;
    if !o.status.success() {
        bail!("credd token issue: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(Tool {
        name: "credd",
        endpoint: Some(Endpoint {
            addr,
            path: "/v1/credentials/bench".into(),
            header: Some(format!(
                "Authorization: {}",
                String::from_utf8(o.stdout)?.trim()
            )),
        }),
        process: Some(vec![
            bin.display().to_string(),
            "credential-process".into(),
            "{}".into(),
        ]),
        env,
        children: vec![child],
    })
}

pub(super) fn vault_env(w: &World) -> Vec<(String, String)> {
    // aws-vault offers a prompt driver only when its program is on PATH:
    // a stub `zenity` that fails (it is never run: no MFA is configured).
    let stubs = w.path("stub-bin");
    if !stubs.join("zenity").exists() {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::create_dir_all(&stubs);
        let _ = std::fs::write(stubs.join("zenity"), "#!/bin/sh\nexit 1\n");
        let _ =
            std::fs::set_permissions(stubs.join("zenity"), std::fs::Permissions::from_mode(0o700));
    }
    let path = format!(
        "{}:{}",
        stubs.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    vec![
        kv("PATH", path),
        // aws-vault reads the global AWS_ENDPOINT_URL, not the STS one.
        kv("AWS_ENDPOINT_URL", w.sts.clone()),
        kv("AWS_VAULT_BACKEND", "file"),
        kv("AWS_VAULT_FILE_PASSPHRASE", "bench"),
        kv("AWS_VAULT_FILE_DIR", w.path("vault").display().to_string()),
        // `exec --server` refuses its default terminal prompt; no MFA is
        // configured, so this driver is never run.
        kv("AWS_VAULT_PROMPT", "zenity"),
    ]
}

/// `aws-vault exec PROFILE --server -- sh`: the shell writes the endpoint's
/// URL and token (given to it in its environment) to a file and sleeps.
pub(super) fn start_vault_server(
    w: &World,
    bin: &Path,
    profile: &str,
    lazy: bool,
) -> anyhow::Result<(Endpoint, Child)> {
    let file = w.path(&format!("vault-{profile}.env"));
    let _ = std::fs::remove_file(&file);
    let mut cmd = w.cmd(bin, &vault_env(w));
    cmd.args(["exec", profile, "--server"]);
    if lazy {
        cmd.arg("--lazy");
    }
    let mut child = cmd
        .args(["--", "sh", "-c"])
        .arg(format!(
            "printf '%s %s\\n' \"$AWS_CONTAINER_CREDENTIALS_FULL_URI\" \"$AWS_CONTAINER_AUTHORIZATION_TOKEN\" > {}.tmp && mv {0}.tmp {0}; exec sleep 100000",
            file.display()
        ))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.path(&format!("vault-{profile}.log")))?)
        .process_group(0)
        .spawn()?;
    let line = wait_for("aws-vault exec --server", &mut child, || {
        std::fs::read_to_string(&file).ok()
    })?;
    let (url, token) = line.trim().split_once(' ').context("aws-vault env")?;
    let hostport = url.trim_start_matches("http://");
    let (addr, path) = hostport.split_at(hostport.find('/').unwrap_or(hostport.len()));
    Ok((
        Endpoint {
            addr: addr.parse()?,
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            header: Some(format!("Authorization: {token}")),
        },
        child,
    ))
}

pub(super) fn start_vault(w: &World, bin: &Path) -> anyhow::Result<Tool> {
    let env = vault_env(w);
    let o = w
        .cmd(bin, &env)
        .args(["add", "base", "--env"])
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        .output()?;
    if !o.status.success() {
        bail!("aws-vault add: {}", String::from_utf8_lossy(&o.stderr));
    }
    let (endpoint, child) = start_vault_server(w, bin, "bench", false)?;
    Ok(Tool {
        name: "aws-vault",
        endpoint: Some(endpoint),
        process: Some(vec![
            bin.display().to_string(),
            "export".into(),
            "--format=json".into(),
            "{}".into(),
        ]),
        env,
        children: vec![child],
    })
}

pub(super) fn start_granted(bin: &Path) -> Tool {
    Tool {
        name: "granted",
        endpoint: None,
        process: Some(vec![
            bin.display().to_string(),
            "credential-process".into(),
            "--profile".into(),
            "{}".into(),
        ]),
        env: vec![kv("GRANTED_DISABLE_UPDATE_CHECK", "true")],
        children: vec![],
    }
}

pub(super) fn start_ecs_local(w: &World, bin: &Path) -> anyhow::Result<Tool> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let env = vec![
        kv("AWS_PROFILE", "base"),
        kv("STS_ENDPOINT", w.sts.clone()),
        kv("IAM_ENDPOINT", w.sts.clone()),
        kv("ECS_LOCAL_METADATA_PORT", port.to_string()),
    ];
    let mut child = w
        .cmd(bin, &env)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.path("ecs-local.log"))?)
        .process_group(0)
        .spawn()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    wait_for("amazon-ecs-local-container-endpoints", &mut child, || {
        TcpStream::connect(addr).ok()
    })?;
    Ok(Tool {
        name: "ecs-local-endpoints",
        endpoint: Some(Endpoint {
            addr,
            path: format!("/role-arn/{ROLE}"),
            header: None,
        }),
        process: None,
        env,
        children: vec![child],
    })
}

/// The IAM Roles Anywhere helper's `serve` (IMDSv2), with a throw-away
/// self-signed certificate, against the fake `CreateSession` at `ra`.
pub(super) fn start_roles_anywhere(w: &World, bin: &Path, ra: SocketAddr) -> anyhow::Result<Tool> {
    let (cert, key) = (w.path("ra-cert.pem"), w.path("ra-key.pem"));
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=credd-bench"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()?;
    if !o.status.success() {
        bail!("openssl req: {}", String::from_utf8_lossy(&o.stderr));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = w
        .cmd(bin, &[])
        .arg("serve")
        .arg("--certificate")
        .arg(&cert)
        .arg("--private-key")
        .arg(&key)
        .args([
            "--trust-anchor-arn",
            "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/fake",
            "--profile-arn",
            "arn:aws:rolesanywhere:us-east-1:123456789012:profile/fake",
            "--role-arn",
            ROLE,
            "--region",
            "us-east-1",
        ])
        .arg("--endpoint")
        .arg(format!("http://{ra}"))
        .arg("--port")
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.path("rolesanywhere.log"))?)
        .process_group(0)
        .spawn()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    wait_for("rolesanywhere-credential-helper serve", &mut child, || {
        TcpStream::connect(addr).ok()
    })?;
    // IMDSv2: a session token first (PUT, TTL header), then GETs with it.
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "PUT /latest/api/token HTTP/1.1\r\nHost: {addr}\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let token = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .filter(|t| out.starts_with("HTTP/1.1 200") && !t.is_empty())
        .with_context(|| format!("IMDSv2 token: {out}"))?;
    Ok(Tool {
        name: "rolesanywhere-serve",
        endpoint: Some(Endpoint {
            addr,
            path: "/latest/meta-data/iam/security-credentials/bench".into(),
            header: Some(format!("X-aws-ec2-metadata-token: {token}")),
        }),
        process: None,
        env: vec![],
        children: vec![child],
    })
}

/// The path for a never-asked profile `p` on this tool's endpoint, or a new
/// server for it (aws-vault serves one profile per `exec`), and the time
/// spent making it servable that belongs to the cold answer (aws-sso-cli's
/// `ecs load`, which is what goes upstream).
pub(super) fn cold_endpoint(
    w: &World,
    t: &mut Tool,
    bin: &Path,
    p: &str,
) -> anyhow::Result<Option<(Endpoint, String, Duration)>> {
    let Some(e) = t.endpoint.clone() else {
        return Ok(None);
    };
    let zero = Duration::ZERO;
    Ok(Some(match t.name {
        "credd" => (e, format!("/v1/credentials/{p}"), zero),
        "credd-sso" => (e, format!("/v1/credentials/sso-{p}"), zero),
        "aws-sso" => {
            let (took, path) = super::sso::aws_sso_load(w, t, p)?;
            (e, path, took)
        }
        // It calls CreateSession once at start-up, before it listens: it
        // has no first request that goes upstream.
        "rolesanywhere-serve" => return Ok(None),
        "ecs-local-endpoints" => (
            e,
            format!("/role-arn/arn:aws:iam::123456789012:role/{p}"),
            zero,
        ),
        _ => {
            let (e, child) = start_vault_server(w, bin, p, true)?;
            t.children.push(child);
            let path = e.path.clone();
            (e, path, zero)
        }
    }))
}
