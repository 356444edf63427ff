//! The IAM Identity Center side of `--peers`: aws-sso-cli speaks only
//! Identity Center, so it and credd (as a second column, `credd-sso`, the
//! same daemon serving an SSO profile) get the same `credd-sandbox` (its
//! portal and OIDC APIs) behind a fault proxy that slows or stops it in
//! step with the STS proxy. Both sign in without a browser through their
//! own device flow, which the sandbox (`--auto-approve-device`) approves at
//! once. The sandbox's one account (`111122223333`) has the warm role
//! `bench` and one never-used role per cold profile.

use super::tools::{kv, stop_group, wait_for, Endpoint, Tool, World};
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicU8;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The sandbox's account, as both tools name it.
pub(super) const ACCOUNT: &str = "111122223333";
/// The SSO session credd's SSO profiles use.
const SESSION: &str = "bench-sso";
/// What the sandbox checks of a start URL: that there is one.
const START_URL: &str = "https://d-1234567890.awsapps.com/start";
/// The bearer token aws-sso-cli's ECS server is set up to require.
const ECS_BEARER: &str = "credd-bench-aws-sso-ecs-bearer";

/// The role ARN aws-sso-cli is asked for (role `role` in the account).
pub(super) fn role_arn(role: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{role}")
}

/// `~/.aws/config` sections for credd: the SSO session and one profile per
/// role, `sso-ROLE` (`bench` is already the AssumeRole column's profile).
pub(super) fn credd_config(roles: &[String]) -> String {
    let mut c = format!(
        "[sso-session {SESSION}]\nsso_start_url = {START_URL}\nsso_region = us-east-1\n\
         sso_registration_scopes = sso:account:access\n\n"
    );
    for r in roles {
        c.push_str(&format!(
            "[profile sso-{r}]\nsso_session = {SESSION}\nsso_account_id = {ACCOUNT}\n\
             sso_role_name = {r}\nregion = us-east-1\n\n"
        ));
    }
    c
}

/// `credd-sandbox` behind its fault proxy; dropping it stops the sandbox.
#[derive(Debug)]
pub(super) struct SsoUpstream {
    sandbox: Child,
    sandbox_addr: SocketAddr,
    /// The proxy: what both tools get as their SSO and SSO OIDC endpoint.
    pub(super) addr: SocketAddr,
    fault: Arc<AtomicU8>,
}

impl Drop for SsoUpstream {
    fn drop(&mut self) {
        stop_group(&mut self.sandbox);
    }
}

/// One HTTP/1.1 request on a new connection, straight to `addr`: status and
/// body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status code")?;
    Ok((status, body.to_string()))
}

impl SsoUpstream {
    /// Starts the sandbox (approving device sign-ins at once) with `roles`
    /// in its one account, and the proxy on `rt`.
    pub(super) fn start(
        bin: &Path,
        roles: &[String],
        rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<Self> {
        let mut sandbox = Command::new(bin)
            .arg("--auto-approve-device")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut line = String::new();
        BufReader::new(sandbox.stdout.take().context("sandbox stdout")?).read_line(&mut line)?;
        let Some(url) = line.trim().strip_prefix("SANDBOX_URL=http://") else {
            stop_group(&mut sandbox);
            bail!("credd-sandbox did not start: {line:?}");
        };
        let sandbox_addr: SocketAddr = url.parse()?;
        // One account holding every role, listed in one page (aws-sso-cli
        // lists them all at sign-in).
        let patch = serde_json::json!({
            "accounts": [{"id": ACCOUNT, "name": "bench", "email": "bench@example.com", "roles": roles}],
            "page_size": 1000,
        });
        let (st, body) = http(sandbox_addr, "POST", "/_sandbox/config", &patch.to_string())?;
        if st != 200 {
            bail!("sandbox config: {st} {body}");
        }
        // The same behaviour as the STS proxy: pass, hold 2 s, or close.
        let (addr, fault) = crate::upstream::fault_proxy(rt, sandbox_addr)?;
        Ok(Self {
            sandbox,
            sandbox_addr,
            addr,
            fault,
        })
    }

    pub(super) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(super) fn set(&self, fault: crate::upstream::Fault) {
        fault.switch(&self.fault);
    }

    /// Calls the sandbox answered so far (portal and OIDC operations; the
    /// per-grant `CreateToken:...` counters repeat `CreateToken` and are
    /// left out), asked directly, past the proxy.
    pub(super) fn calls(&self) -> anyhow::Result<u64> {
        let (st, body) = http(self.sandbox_addr, "GET", "/_sandbox/counts", "")?;
        if st != 200 {
            bail!("sandbox counts: {st} {body}");
        }
        let v: serde_json::Value = serde_json::from_str(&body)?;
        Ok(v.as_object()
            .context("counts is not an object")?
            .iter()
            .filter(|(k, _)| !k.contains(':'))
            .filter_map(|(_, n)| n.as_u64())
            .sum())
    }

    /// The portal's own latency through the proxy, on a new connection: a
    /// GetRoleCredentials without a token (answered 401 at once).
    pub(super) fn portal_latency(&self) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        let (st, _) = http(
            self.addr,
            "GET",
            &format!("/federation/credentials?role_name=bench&account_id={ACCOUNT}"),
            "",
        )?;
        let took = t0.elapsed();
        if st != 401 {
            bail!("the portal answered {st} to a request without a token");
        }
        Ok(took)
    }
}

/// Signs credd in to the SSO session through the sandbox (`credd login
/// --device-code --no-browser`; the sandbox approves the device at once),
/// before the daemon starts: it reads the token from the CLI's cache.
pub(super) fn credd_login(
    w: &World,
    bin: &Path,
    env: &[(String, String)],
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let o = w
        .cmd(bin, env)
        .args(["login", SESSION, "--device-code", "--no-browser"])
        .output()?;
    if !o.status.success() {
        bail!(
            "credd login {SESSION}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(t0.elapsed())
}

/// The credd column for the SSO role: the daemon `credd` already runs,
/// with a token for the SSO profiles (`sso-ROLE` for each of `roles`).
pub(super) fn credd_sso_tool(
    w: &World,
    credd: &Tool,
    bin: &Path,
    roles: &[String],
) -> anyhow::Result<Tool> {
    let e = credd.endpoint.clone().context("credd has no endpoint")?;
    let mut cmd = w.cmd(bin, &credd.env);
    cmd.args(["token", "issue", "--label", "peers-sso"]);
    for r in roles {
        cmd.args(["--profile", &format!("sso-{r}")]);
    }
    let o = cmd.output()?;
    if !o.status.success() {
        bail!("credd token issue: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(Tool {
        name: "credd-sso",
        endpoint: Some(Endpoint {
            addr: e.addr,
            path: "/v1/credentials/sso-bench".into(),
            header: Some(format!(
                "Authorization: {}",
                String::from_utf8(o.stdout)?.trim()
            )),
        }),
        process: Some(vec![
            bin.display().to_string(),
            "credential-process".into(),
            "sso-{}".into(),
        ]),
        env: credd.env.clone(),
        children: vec![],
    })
}

fn aws_sso_env(w: &World, sso: &SsoUpstream) -> Vec<(String, String)> {
    vec![
        // Read by the patched build only (bench/peers/aws-sso.patch).
        kv("AWS_ENDPOINT_URL_SSO", sso.url()),
        kv("AWS_ENDPOINT_URL_SSO_OIDC", sso.url()),
        kv(
            "AWS_SSO_CONFIG",
            w.path("home/.aws-sso/config.yaml").display().to_string(),
        ),
    ]
}

/// aws-sso-cli: its own config (`~/.aws-sso/config.yaml`: the sandbox's
/// Identity Center, the `json` secure store so no keyring is needed, the
/// device flow, profiles named as their role), `aws-sso login` through its
/// device flow, a bearer token for its ECS server (`setup ecs auth`), the
/// server (`ecs server --disable-ssl`, as credd's endpoint is plain HTTP on
/// loopback), and the warm role loaded in its default slot (`ecs load`).
pub(super) fn start_aws_sso(w: &World, bin: &Path, sso: &SsoUpstream) -> anyhow::Result<Tool> {
    use std::os::unix::fs::PermissionsExt;
    let dir = w.path("home/.aws-sso");
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    std::fs::write(
        dir.join("config.yaml"),
        format!(
            "SSOConfig:\n  Default:\n    SSORegion: us-east-1\n    StartUrl: {START_URL}\n\
             DefaultSSO: Default\nDefaultRegion: us-east-1\nSecureStore: json\n\
             AuthWorkflow: device_code\nUrlAction: print\nAutoConfigCheck: false\n\
             ProfileFormat: '{{{{ .RoleName }}}}'\n"
        ),
    )?;
    let env = aws_sso_env(w, sso);
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let o = w.cmd(bin, &env).args(args).output()?;
        if !o.status.success() {
            bail!(
                "aws-sso {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(())
    };
    run(&["login"])?;
    run(&["setup", "ecs", "auth", "--bearer-token", ECS_BEARER])?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut child = w
        .cmd(bin, &env)
        .args([
            "ecs",
            "server",
            "--disable-ssl",
            "--port",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.path("aws-sso-ecs.log"))?)
        .process_group(0)
        .spawn()?;
    wait_for("aws-sso ecs server", &mut child, || {
        TcpStream::connect(addr).ok()
    })?;
    let server = addr.to_string();
    if let Err(e) = run(&[
        "ecs",
        "load",
        "--arn",
        &role_arn("bench"),
        "--server",
        &server,
    ]) {
        stop_group(&mut child);
        return Err(e);
    }
    Ok(Tool {
        name: "aws-sso",
        endpoint: Some(Endpoint {
            addr,
            path: "/".into(),
            header: Some(format!("Authorization: Bearer {ECS_BEARER}")),
        }),
        process: Some(vec![
            bin.display().to_string(),
            "process".into(),
            "--arn".into(),
            format!("arn:aws:iam::{ACCOUNT}:role/{{}}"),
        ]),
        env,
        children: vec![child],
    })
}

/// aws-sso-cli's cold path on its ECS server: a role is served only once
/// `aws-sso ecs load` has fetched it (from the portal) and put it in the
/// server, here in a slot of its own. Returns the load's time (part of the
/// cold answer) and the slot's path.
pub(super) fn aws_sso_load(w: &World, t: &Tool, role: &str) -> anyhow::Result<(Duration, String)> {
    let bin = t.process.as_ref().context("aws-sso argv")?[0].clone();
    let e = t.endpoint.as_ref().context("aws-sso endpoint")?;
    let t0 = Instant::now();
    let o = w
        .cmd(Path::new(&bin), &t.env)
        .args(["ecs", "load", "--slotted", "--arn", &role_arn(role)])
        .args(["--server", &e.addr.to_string()])
        .output()?;
    let took = t0.elapsed();
    if !o.status.success() {
        bail!(
            "aws-sso ecs load {role}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok((took, format!("/slot/{role}")))
}
