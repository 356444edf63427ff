//! Threat-model rows (`shared/reference/threat-model.md`), each proved
//! against the real `credd` binary over real sockets.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;
use support::*;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o777
}

#[test]
fn host_allow_list_and_origin_through_the_real_binary() {
    // Row 1: DNS rebinding.
    let env = Env::new();
    let d = env.serve(&[]);
    let token = env
        .credd_ok(&["token", "issue", "--profile", "dev"])
        .trim()
        .to_string();
    let addr = d.addr();
    let port = addr.port();
    let (ok, body) = get(
        addr,
        "/v1/credentials/dev",
        Some(&addr.to_string()),
        Some(&token),
    );
    assert_eq!(ok, 200, "{body}");
    let (ok, _) = get(
        addr,
        "/v1/credentials/dev",
        Some(&format!("localhost:{port}")),
        Some(&token),
    );
    assert_eq!(ok, 200);
    for host in [
        "evil.test".to_string(),
        format!("evil.test:{port}"),
        format!("localhost6:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        format!("localhost.:{port}"),
        format!("127.0.0.1.:{port}"),
    ] {
        let (status, body) = get(addr, "/v1/credentials/dev", Some(&host), Some(&token));
        assert_eq!(status, 403, "{host}: {body}");
        assert!(!body.contains("AccessKeyId"));
    }
    // Missing Host: HTTP/1.0 without one is refused too.
    let (status, body) = raw_request(
        addr,
        &format!("GET /v1/credentials/dev HTTP/1.0\r\nAuthorization: {token}\r\n\r\n"),
    );
    assert_ne!(status, 200, "{body}");
    assert!(!body.contains("AccessKeyId"));
    let (status, body) = raw_request(
        addr,
        &format!("GET /v1/credentials/dev HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.test\r\nAuthorization: {token}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("OriginNotAllowed"));
}

fn raw_full(addr: std::net::SocketAddr, req: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

#[test]
fn imds_session_rules_through_the_real_binary() {
    // Row 2: SSRF / open proxy into the IMDS emulation.
    let env = Env::new();
    let d = env.serve(&["--imds-listen", "127.0.0.1:0", "--imds-profile", "dev"]);
    let addr: std::net::SocketAddr = d
        .imds_url
        .clone()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let put = |extra: &str| {
        raw_full(addr, &format!("PUT /latest/api/token HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"))
    };
    let status = |resp: &str| resp.split_whitespace().nth(1).unwrap_or("0").to_string();
    assert_eq!(
        status(&put(
            "X-aws-ec2-metadata-token-ttl-seconds: 60\r\nX-Forwarded-For: 203.0.113.9\r\n"
        )),
        "403"
    );
    for bad in ["0", "21601", "-1", "ten"] {
        assert_eq!(
            status(&put(&format!(
                "X-aws-ec2-metadata-token-ttl-seconds: {bad}\r\n"
            ))),
            "400",
            "{bad}"
        );
    }
    assert_eq!(status(&put("")), "400");
    let ok = put("X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n");
    assert_eq!(status(&ok), "200");
    assert!(
        ok.to_ascii_lowercase()
            .contains("x-aws-ec2-metadata-token-ttl-seconds: 21600"),
        "TTL echoed: {ok}"
    );
    let token = ok.split("\r\n\r\n").nth(1).unwrap().to_string();
    let creds = "/latest/meta-data/iam/security-credentials/dev";
    let getv = |tok: Option<&str>| {
        let h = tok
            .map(|t| format!("X-aws-ec2-metadata-token: {t}\r\n"))
            .unwrap_or_default();
        raw_full(
            addr,
            &format!("GET {creds} HTTP/1.1\r\nHost: {addr}\r\n{h}Connection: close\r\n\r\n"),
        )
    };
    assert_eq!(status(&getv(None)), "401");
    assert_eq!(status(&getv(Some("forged"))), "401");
    let good = getv(Some(&token));
    assert_eq!(status(&good), "200");
    assert!(good.contains("\"Code\": \"Success\""), "{good}");
    // A GET cannot mint a token; only PUT can.
    let g = raw_full(addr, &format!("GET /latest/api/token HTTP/1.1\r\nHost: {addr}\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nConnection: close\r\n\r\n"));
    assert_eq!(status(&g), "401");
}

#[test]
fn tokens_wrong_length_prefix_empty_and_scope() {
    // Rows 5 and 6: token guessing and the confused deputy.
    let env = Env::new();
    let d = env.serve(&[]);
    let addr = d.addr();
    let host = addr.to_string();
    let dev = env
        .credd_ok(&["token", "issue", "--profile", "dev"])
        .trim()
        .to_string();
    let base = env
        .credd_ok(&["token", "issue", "--profile", "base"])
        .trim()
        .to_string();
    let cases: Vec<(String, u16)> = vec![
        (String::new(), 401),
        (dev[..dev.len() - 1].to_string(), 401),
        (format!("{dev}f"), 401),
        (dev[..23].to_string(), 401),
        (dev.replace("credd_", "credx_"), 401),
        (base.clone(), 403),
    ];
    for (tok, want) in cases {
        let (status, body) = get(addr, "/v1/credentials/dev", Some(&host), Some(&tok));
        assert_eq!(status, want, "{tok:?}: {body}");
        assert!(body.contains("\"code\"") && body.contains("\"message\""));
    }
    let (status, _) = get(addr, "/v1/credentials/dev", Some(&host), None);
    assert_eq!(status, 401);
    let (status, body) = get(addr, "/v1/credentials/nope", Some(&host), Some(&dev));
    assert_eq!(
        (status, body.contains("UnknownProfile")),
        (404, true),
        "{body}"
    );
    // Routes of other tools that take any role ARN do not exist here.
    let (status, _) = get(
        addr,
        "/role-arn/arn:aws:iam::123456789012:role/admin",
        Some(&host),
        Some(&dev),
    );
    assert_eq!(status, 404);
    // Revoked and expired tokens stop working.
    let list: serde_json::Value =
        serde_json::from_str(&env.credd_ok(&["token", "list", "--json"])).unwrap();
    let base_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["profiles"][0] == "base")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.credd_ok(&["token", "revoke", &base_id]);
    let (status, _) = get(addr, "/v1/credentials/base", Some(&host), Some(&base));
    assert_eq!(status, 401);
    let short = env
        .credd_ok(&["token", "issue", "--profile", "dev", "--ttl", "1s"])
        .trim()
        .to_string();
    std::thread::sleep(Duration::from_millis(2100));
    let (status, body) = get(addr, "/v1/credentials/dev", Some(&host), Some(&short));
    assert_eq!(
        (status, body.contains("TokenExpired")),
        (401, true),
        "{body}"
    );
    let status_json: serde_json::Value =
        serde_json::from_str(&env.credd_ok(&["status", "--json"])).unwrap();
    assert!(
        status_json["daemon"]["token_failures"].as_u64().unwrap() >= 8,
        "failures are counted"
    );
}

#[test]
fn canary_secrets_never_reach_logs_argv_or_env() {
    // Rows 10 and 12, on every path we can drive: success, MFA, bad tokens,
    // unknown and broken profiles, whoami, env --static, credential-process.
    let env = Env::new();
    let d = env.serve(&[]);
    let addr = d.addr();
    let token = env
        .credd_ok(&["token", "issue", "--profile", "dev", "--profile", "mfa"])
        .trim()
        .to_string();
    let (s, body) = get(
        addr,
        "/v1/credentials/dev",
        Some(&addr.to_string()),
        Some(&token),
    );
    assert_eq!(s, 200);
    let served: serde_json::Value = serde_json::from_str(&body).unwrap();
    let _ = get(
        addr,
        "/v1/credentials/mfa",
        Some(&addr.to_string()),
        Some(&token),
    );
    let _ = get(
        addr,
        "/v1/credentials/dev",
        Some(&addr.to_string()),
        Some(&format!("{token}x")),
    );
    let _ = get(addr, "/v1/credentials/dev", Some("evil.test"), Some(&token));
    let mfa_code = "918273";
    env.credd_ok(&["mfa", "mfa", "--code", mfa_code]);
    let via_mfa: serde_json::Value =
        serde_json::from_str(&env.credd_ok(&["credential-process", "mfa"])).unwrap();
    env.credd_ok(&["whoami", "dev"]);
    let statics = env.credd_ok(&["env", "dev", "--static"]);
    assert!(statics.contains(served["SecretAccessKey"].as_str().unwrap()));
    let _ = env.credd(&["credential-process", "typo"]);
    let _ = env.credd(&["exec", "dev", "--", "true"]);

    let canaries = [
        LONG_TERM_SECRET.to_string(),
        served["SecretAccessKey"].as_str().unwrap().to_string(),
        served["Token"].as_str().unwrap().to_string(),
        via_mfa["SecretAccessKey"].as_str().unwrap().to_string(),
        via_mfa["SessionToken"].as_str().unwrap().to_string(),
        token.clone(),
        token.rsplit('_').next().unwrap().to_string(),
        format!("code={mfa_code}"),
        format!("\"{mfa_code}\""),
    ];
    let logs = d.logs();
    assert!(
        logs.contains("credentials renewed"),
        "trace logging was on: {logs}"
    );
    let environ = std::fs::read(format!("/proc/{}/environ", d.pid())).unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", d.pid())).unwrap();
    for c in &canaries {
        assert!(
            !logs.contains(c.as_str()),
            "canary {c:.12}… found in the daemon's log"
        );
        assert!(
            !String::from_utf8_lossy(&environ).contains(c.as_str()),
            "canary in the daemon's environment"
        );
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(c.as_str()),
            "canary in the daemon's argv"
        );
    }
    // Token files and state never hold the client token's secret in clear.
    let tokens = std::fs::read_to_string(env.path("state/tokens.json")).unwrap();
    assert!(!tokens.contains(token.rsplit('_').next().unwrap()));
}

#[test]
fn files_are_private_under_umask_000() {
    // Row 13: loose modes. (Symlinks and torn writes: fsutil unit tests.)
    let env = Env::new();
    let d = Daemon::start(&env, &[], true);
    env.credd_ok(&["mfa", "mfa", "--code", "123456"]);
    env.credd_ok(&["env", "dev"]);
    assert_eq!(mode(&env.path("run")), 0o700);
    assert_eq!(mode(&env.path("run/control.sock")), 0o600);
    assert_eq!(mode(&env.path("state")), 0o700);
    assert_eq!(mode(&env.path("state/tokens.json")), 0o600);
    assert_eq!(mode(&env.path("state/sessions")), 0o700);
    let sessions: Vec<_> = std::fs::read_dir(env.path("state/sessions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(sessions.len(), 1);
    assert_eq!(mode(&sessions[0]), 0o600);
    for t in std::fs::read_dir(env.path("run/tokens")).unwrap() {
        assert_eq!(mode(&t.unwrap().path()), 0o600);
    }
    drop(d);
}

#[test]
fn corrupt_state_files_do_not_stop_the_daemon() {
    // Rows 13 and 14: corrupt, truncated, symlinked and loose state files
    // are cache misses, set aside or refused, never a crash.
    let env = Env::new();
    let state = env.path("state");
    std::fs::create_dir_all(state.join("sessions")).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let write = |p: std::path::PathBuf, bytes: &[u8], m: u32| {
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    write(state.join("tokens.json"), b"[{\"id\": \"trunc", 0o600);
    // The MFA session file for profile `mfa`, by its documented name.
    use sha2::Digest;
    let node = "mfa:AKIAIOSFODNN7EXAMPLE:arn:aws:iam::123456789012:mfa/me";
    let session = state
        .join("sessions")
        .join(format!("{}.json", hex::encode(sha2::Sha256::digest(node))));
    write(session.clone(), b"\0\0\0\0", 0o600);
    let d = env.serve(&[]);
    let o = env.credd(&["credential-process", "mfa"]);
    assert!(
        stderr_of(&o).contains("credd mfa mfa"),
        "a corrupt session is a miss: {}",
        stderr_of(&o)
    );
    assert!(!session.exists(), "set aside");
    let aside = std::fs::read_dir(state.join("sessions")).unwrap().count();
    assert_eq!(aside, 1, "kept for the user to look at");
    assert!(std::fs::read_dir(&state).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("tokens.json.corrupt-")));
    assert!(d.logs().contains("corrupt"), "a clear log line");
    drop(d);

    // A loose-mode session file is refused (and left alone).
    env.credd_ok(&["--help"]);
    let d = env.serve(&[]);
    env.credd_ok(&["mfa", "mfa", "--code", "123456"]);
    drop(d);
    std::fs::set_permissions(&session, std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = env.serve(&[]);
    let o = env.credd(&["credential-process", "mfa"]);
    assert!(stderr_of(&o).contains("credd mfa mfa"), "{}", stderr_of(&o));
    assert!(
        d.logs().contains("chmod"),
        "the log says how to fix it: {}",
        d.logs()
    );
    drop(d);

    // A planted symlink in place of the token store is not followed.
    let victim = env.path("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::fs::remove_file(state.join("tokens.json")).ok();
    std::os::unix::fs::symlink(&victim, state.join("tokens.json")).unwrap();
    let _d = env.serve(&[]);
    env.credd_ok(&["token", "issue", "--profile", "dev"]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!std::fs::symlink_metadata(state.join("tokens.json"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn oversized_headers_slow_clients_and_idle_floods() {
    // Row 15: resource exhaustion.
    let env = Env::new();
    std::fs::write(
        env.path("credd.toml"),
        "[limits]\nheader_read_timeout = \"1s\"\nmax_connections = 512\n",
    )
    .unwrap();
    let d = env.serve(&[]);
    let addr = d.addr();
    let host = addr.to_string();
    let token = env
        .credd_ok(&["token", "issue", "--profile", "dev"])
        .trim()
        .to_string();
    let served = || get(addr, "/v1/credentials/dev", Some(&host), Some(&token)).0 == 200;
    assert!(served());

    // A 100 KB header is refused without a credential.
    let big = "a".repeat(100 * 1024);
    let (status, body) = raw_request(addr, &format!("GET /v1/credentials/dev HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\nX-Big: {big}\r\n\r\n"));
    assert_ne!(status, 200);
    assert!(!body.contains("AccessKeyId"));
    // Too many header lines, likewise.
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (status, _) = raw_request(addr, &format!("GET /v1/credentials/dev HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\n{many}\r\n"));
    assert_ne!(status, 200);

    // A client dripping one byte at a time is cut off before it finishes.
    let mut s = TcpStream::connect(addr).unwrap();
    let req = format!(
        "GET /v1/credentials/dev HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\n\r\n"
    );
    let mut closed = false;
    for b in req.as_bytes() {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        s.set_nonblocking(false).unwrap();
    }
    assert!(
        closed,
        "the slow client was disconnected before sending its whole request"
    );

    // 10,000 idle connections, and a real client is still served.
    let mut idle = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        match TcpStream::connect(addr) {
            Ok(c) => idle.push(c),
            Err(e) => panic!("connect {}: {e}", idle.len()),
        }
    }
    assert!(served(), "served while 10k idle connections are open");
    assert!(served());
    drop(idle);
    assert!(served());
}

#[test]
fn daemon_is_not_dumpable() {
    // Row 11: core dumps are off for the daemon (PR_SET_DUMPABLE is set
    // too; as root here, /proc cannot show it).
    let env = Env::new();
    let d = env.serve(&[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], &["0", "0"], "{core}");
}

#[test]
fn another_uid_cannot_use_the_control_socket() {
    // Row 4. The runtime directory is 0700, so another user cannot even
    // reach the socket; and if the modes were loosened by mistake, the
    // daemon still checks the peer's uid and answers nothing.
    let env = Env::new();
    let _d = env.serve(&[]);
    let as_nobody = |args: &[&str]| {
        env.cmd("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(credd_bin())
            .args(args)
            .output()
            .expect("setpriv (util-linux) runs the CLI as another uid; this test needs root")
    };
    let o = as_nobody(&["credential-process", "dev"]);
    assert!(!o.status.success());
    assert!(stdout_of(&o).is_empty(), "{}", stdout_of(&o));
    // Loosen every mode on the way to the socket, as a careless admin might.
    for (p, m) in [
        (env.dir.path().to_path_buf(), 0o711),
        (env.path("run"), 0o711),
        (env.path("run/control.sock"), 0o666),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    // The CLI now refuses a directory that is not its user's before
    // connecting (row 19), so a raw client as uid 65534 asks instead.
    let o = as_nobody(&["credential-process", "dev"]);
    assert!(!o.status.success());
    assert!(stdout_of(&o).is_empty(), "{}", stdout_of(&o));
    assert!(stderr_of(&o).contains("owned by uid"), "{}", stderr_of(&o));
    let o = env
        .cmd("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["/usr/bin/python3", "-c"])
        .arg(
            "import socket, sys\n\
             s = socket.socket(socket.AF_UNIX)\n\
             s.connect(sys.argv[1])\n\
             try:\n    s.sendall(b'{\"op\":\"credentials\",\"profile\":\"dev\"}\\n')\n    print(len(s.recv(65536)))\n\
             except OSError:\n    print(0)\n",
        )
        .arg(env.path("run/control.sock"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o), "0", "the daemon answered another uid");
    // The owner is still served.
    assert!(env
        .credd_ok(&["credential-process", "dev"])
        .contains("AccessKeyId"));
}
