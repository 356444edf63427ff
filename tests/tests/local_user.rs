//! Another local user (threat-model rows 19 and 20), with a real second
//! uid (`nobody`, through `setpriv`; these tests run as root):
//!
//! - a runtime directory another user made first, with a fake control
//!   socket that records what it receives: the CLI sends it nothing;
//! - a control socket in our own directory served by another uid: the CLI
//!   sends it nothing;
//! - a token (or an IMDS session) used from another user's socket: refused
//!   on the loopback listeners.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use support::*;

const NOBODY: &str = "65534";

/// Runs `program` as uid/gid 65534 with the given environment cleared.
fn as_nobody(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
        program,
    ])
    .env_clear()
    .env("PATH", "/usr/bin:/bin");
    c
}

fn my_uid() -> u32 {
    credd_daemon::fsutil::my_uid()
}

/// A world-writable sticky directory like `/tmp`, for the other user.
fn shared_tmp() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    t
}

/// A fake credd control socket run by another uid: it answers every
/// request with the attacker's "credentials" and counts the connections and
/// bytes it received. A `PROBE` line (from the test) is not counted: it
/// gets the counts back, and since connections are handled one at a time,
/// the counts include every connection made before the probe.
const FAKE_DAEMON: &str = r#"
import json, os, socket, sys
path = sys.argv[1]
d = os.path.dirname(path)
os.makedirs(d, exist_ok=True)
os.chmod(d, 0o755)
s = socket.socket(socket.AF_UNIX)
s.bind(path)
os.chmod(path, 0o777)
s.listen(16)
print("READY", flush=True)
conns = 0
total = 0
while True:
    c, _ = s.accept()
    c.settimeout(5)
    data = b""
    try:
        while not data.endswith(b"\n"):
            b = c.recv(65536)
            if not b:
                break
            data += b
    except OSError:
        pass
    if data == b"PROBE\n":
        c.sendall(json.dumps({"connections": conns, "bytes": total}).encode() + b"\n")
    else:
        conns += 1
        total += len(data)
        if data:
            c.sendall(b'{"ok":true,"result":{"Version":1,"AccessKeyId":"ASIAATTACKERKEY00001","SecretAccessKey":"attacker","SessionToken":"attacker","Expiration":"2099-01-01T00:00:00Z"}}\n')
    c.close()
"#;

struct Fake {
    child: Child,
    socket: PathBuf,
}

impl Fake {
    fn start(socket: &Path) -> Fake {
        let mut child = as_nobody("/usr/bin/python3")
            .arg("-c")
            .arg(FAKE_DAEMON)
            .arg(socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("setpriv (util-linux) and python3 run the fake daemon as nobody; this test needs root");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "READY", "the fake daemon did not start");
        Fake {
            child,
            socket: socket.to_path_buf(),
        }
    }
    /// (connections, bytes) received so far.
    fn received(&self) -> (u64, u64) {
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        s.write_all(b"PROBE\n").unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        (
            v["connections"].as_u64().unwrap(),
            v["bytes"].as_u64().unwrap(),
        )
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command of this user with neither `CREDD_RUNTIME_DIR` nor
/// `XDG_RUNTIME_DIR` (cron, `su`, ssh without pam_systemd), and `TMPDIR`
/// pointing at the shared directory.
fn fallback(env: &Env, tmp: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = env.cmd(program);
    c.env_remove("CREDD_RUNTIME_DIR").env("TMPDIR", tmp);
    c
}

/// `credd serve` in the fallback environment, once it answers.
fn serve_fallback(env: &Env, tmp: &Path) -> Daemon {
    let log = env.path("serve-fallback.log");
    let logf = std::fs::File::create(&log).unwrap();
    let child = fallback(env, tmp, credd_bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .unwrap();
    Daemon::when_ready(child, log, Duration::from_secs(30), || {
        fallback(env, tmp, credd_bin())
            .args(["status", "--json"])
            .output()
            .ok()
    })
}

#[test]
fn a_runtime_dir_another_user_made_first_gets_nothing() {
    // Row 19. Another user creates the old fallback `$TMPDIR/credd-UID`
    // first, with a fake control socket in it.
    let env = Env::new();
    let tmp = shared_tmp();
    let squatted = tmp.path().join(format!("credd-{}", my_uid()));
    let fake = Fake::start(&squatted.join("control.sock"));

    // No runtime dir in the environment: the CLI must not use the one
    // another user could make.
    let o = fallback(&env, tmp.path(), credd_bin())
        .args(["credential-process", "dev"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", stdout_of(&o));
    assert!(!stdout_of(&o).contains("ATTACKER"), "{}", stdout_of(&o));
    assert_eq!(fake.received(), (0, 0), "the fake daemon got a request");

    // Pointed at it explicitly (CREDD_RUNTIME_DIR), the CLI refuses it with
    // a clear message, and still sends nothing.
    let o = env
        .cmd(credd_bin())
        .env("CREDD_RUNTIME_DIR", &squatted)
        .args(["mfa", "mfa", "--code", "123456"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr_of(&o);
    assert!(err.contains(&format!("owned by uid {NOBODY}")), "{err}");
    assert!(err.contains("Nothing was sent"), "{err}");
    assert_eq!(fake.received(), (0, 0), "the fake daemon got a request");

    // The real daemon, started afterwards in the same environment, works.
    let d = serve_fallback(&env, tmp.path());
    let o = fallback(&env, tmp.path(), credd_bin())
        .args(["credential-process", "dev"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        stdout_of(&o).contains("\"AccessKeyId\":\"ASIA"),
        "{}",
        stdout_of(&o)
    );
    assert!(!stdout_of(&o).contains("ATTACKER"));
    // It lives under the user's home (here CREDD_STATE_DIR), not in TMPDIR.
    assert!(env.path("state/run/control.sock").exists());
    assert_eq!(fake.received(), (0, 0));
    drop(d);
}

#[test]
fn a_control_socket_served_by_another_uid_gets_nothing() {
    // Row 19, second half: the directory is ours, but the socket in it was
    // put there by (or is served by) another user.
    let env = Env::new();
    let tmp = shared_tmp();
    let theirs = tmp.path().join("theirs/control.sock");
    let mut fake = Fake::start(&theirs);
    let run = env.path("run");
    credd_daemon::fsutil::private_dir(&run).unwrap();
    std::fs::rename(&theirs, run.join("control.sock")).unwrap();
    fake.socket = run.join("control.sock");

    let o = env.credd(&["credential-process", "dev"]);
    assert!(!o.status.success(), "{}", stdout_of(&o));
    assert!(!stdout_of(&o).contains("ATTACKER"), "{}", stdout_of(&o));
    let err = stderr_of(&o);
    assert!(err.contains(&format!("runs as uid {NOBODY}")), "{err}");
    assert!(err.contains("Nothing was sent"), "{err}");
    let (_, bytes) = fake.received();
    assert_eq!(bytes, 0, "the fake daemon got a request");
}

/// An HTTP request to 127.0.0.1:PORT made by `python3` (as this user or,
/// with `nobody`, as uid 65534); headers as JSON on stdin, so that no
/// token is on a command line. Returns (status, body).
const CLIENT: &str = r#"
import http.client, json, sys
port, method, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
headers = json.loads(sys.stdin.read())
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request(method, path, headers=headers)
r = c.getresponse()
print(r.status)
print(r.read().decode())
"#;

fn http_as(
    nobody: bool,
    port: u16,
    method: &str,
    path: &str,
    headers: serde_json::Value,
) -> (u16, String) {
    let mut c = if nobody {
        as_nobody("/usr/bin/python3")
    } else {
        let mut c = Command::new("/usr/bin/python3");
        c.env_clear();
        c
    };
    let mut child = c
        .arg("-c")
        .arg(CLIENT)
        .args([&port.to_string(), method, path])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(headers.to_string().as_bytes())
        .unwrap();
    let o: Output = child.wait_with_output().unwrap();
    assert!(o.status.success(), "client failed: {}", stderr_of(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let (status, body) = out.split_once('\n').unwrap();
    (status.trim().parse().unwrap(), body.trim().to_string())
}

fn issue_token(env: &Env, profile: &str) -> String {
    env.credd_ok(&["token", "issue", "--profile", profile])
        .trim()
        .to_string()
}

#[test]
fn a_token_replayed_from_another_users_socket_is_refused() {
    // Row 20: another user who collected a token (by squatting the port
    // while the daemon was down) replays it.
    let env = Env::new();
    let d = env.serve(&[]);
    let port = d.addr().port();
    let token = issue_token(&env, "dev");
    let path = "/v1/credentials/dev";
    let auth = serde_json::json!({ "Authorization": token });

    let (status, body) = http_as(false, port, "GET", path, auth.clone());
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"AccessKeyId\":\"ASIA"), "{body}");

    let (status, body) = http_as(true, port, "GET", path, auth.clone());
    assert_eq!(status, 403, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "PeerNotAllowed", "{body}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains(&format!("uid {NOBODY}")),
        "{body}"
    );
    assert!(!body.contains("ASIA"), "{body}");
    assert!(d
        .logs()
        .contains("refused a connection from another user's socket"));

    // Ours still works after the refusal.
    assert_eq!(http_as(false, port, "GET", path, auth).0, 200);
}

#[test]
fn the_peer_uid_check_can_be_turned_off() {
    let env = Env::new();
    std::fs::write(env.path("credd.toml"), "[limits]\nsame_user_only = false\n").unwrap();
    let d = env.serve(&[]);
    let token = issue_token(&env, "dev");
    let (status, body) = http_as(
        true,
        d.addr().port(),
        "GET",
        "/v1/credentials/dev",
        serde_json::json!({ "Authorization": token }),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn the_imds_emulation_refuses_another_users_socket() {
    // The IMDS emulation has no per-client token: any process of the user
    // is served, and on loopback another user's socket is not.
    let env = Env::new();
    let d = env.serve(&["--imds-listen", "127.0.0.1:0", "--imds-profile", "dev"]);
    let imds: std::net::SocketAddr = d
        .imds_url
        .as_deref()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let ttl = serde_json::json!({ "X-aws-ec2-metadata-token-ttl-seconds": "21600" });

    let (status, session) = http_as(false, imds.port(), "PUT", "/latest/api/token", ttl.clone());
    assert_eq!(status, 200, "{session}");
    let creds = "/latest/meta-data/iam/security-credentials/dev";
    let (status, body) = http_as(
        false,
        imds.port(),
        "GET",
        creds,
        serde_json::json!({ "X-aws-ec2-metadata-token": session }),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ASIA"), "{body}");

    let (status, body) = http_as(true, imds.port(), "PUT", "/latest/api/token", ttl);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("PeerNotAllowed"), "{body}");
    // Even with a session token our user obtained.
    let (status, body) = http_as(
        true,
        imds.port(),
        "GET",
        creds,
        serde_json::json!({ "X-aws-ec2-metadata-token": session }),
    );
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("ASIA"), "{body}");
}
