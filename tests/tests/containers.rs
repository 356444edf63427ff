//! Containers without a docker engine: a network namespace stands in for a
//! container on a bridge network (veth pair, the link-local address
//! 169.254.170.2 on the host side). Unmodified boto3 inside it gets
//! credentials through `http://169.254.170.2/...` and calls STS on moto; a
//! process in it without a token gets nothing. Needs root and iproute2
//! (CI runs as root; .ci/run installs iproute2).

mod support;

use std::process::Command;
use support::*;

const LINK_LOCAL: &str = "169.254.170.2";

/// A namespace and veth pair, removed on drop.
struct Netns {
    name: String,
    host_if: String,
}

impl Netns {
    fn new() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let id = (std::process::id() % 10_000) * 10 + N.fetch_add(1, Ordering::SeqCst);
        let n = Netns {
            name: format!("credd-t{id}"),
            host_if: format!("cdh{id}"),
        };
        let peer = format!("cdn{id}");
        let ip = |args: &[&str]| {
            let o = Command::new("ip").args(args).output().unwrap_or_else(|e| {
                panic!("`ip` not found ({e}): install iproute2 (.ci/run does)")
            });
            assert!(
                o.status.success(),
                "ip {args:?}: {} (this test needs root: CI runs as root)",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        ip(&["netns", "add", &n.name]);
        ip(&[
            "link", "add", &n.host_if, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &n.name]);
        ip(&[
            "addr",
            "add",
            &format!("{LINK_LOCAL}/24"),
            "dev",
            &n.host_if,
        ]);
        ip(&["link", "set", &n.host_if, "up"]);
        ip(&[
            "-n",
            &n.name,
            "addr",
            "add",
            "169.254.170.3/24",
            "dev",
            &peer,
        ]);
        ip(&["-n", &n.name, "link", "set", &peer, "up"]);
        ip(&["-n", &n.name, "link", "set", "lo", "up"]);
        n
    }
    /// A command run inside the namespace ("the container") with a clean
    /// environment plus `vars`.
    fn run(
        &self,
        program: &std::path::Path,
        args: &[&str],
        vars: &[(&str, String)],
    ) -> std::process::Output {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, "env", "-i"])
            .arg(format!(
                "PATH={}",
                std::env::var("PATH").unwrap_or_default()
            ))
            .arg("HOME=/nonexistent");
        for (k, v) in vars {
            c.arg(format!("{k}={v}"));
        }
        c.arg(program).args(args).output().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn boto3_in_a_container_namespace_gets_credentials_through_169_254_170_2() {
    let ns = Netns::new();
    let env = Env::with_moto(CONFIG, Moto::start_on(LINK_LOCAL));
    let d = env.serve(&["--also-listen", &format!("{LINK_LOCAL}:80")]);
    let status: serde_json::Value =
        serde_json::from_str(&env.credd_ok(&["status", "--json"])).unwrap();
    assert_eq!(
        status["daemon"]["extra_urls"][0],
        format!("http://{LINK_LOCAL}/v1/credentials")
    );
    let token_file = env.path("container-token");
    env.credd_ok(&[
        "token",
        "issue",
        "--profile",
        "dev",
        "--file",
        token_file.to_str().unwrap(),
    ]);
    let script = clients().join("whoami.py");
    let base = vec![
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("http://{LINK_LOCAL}/v1/credentials/dev"),
        ),
        ("AWS_ENDPOINT_URL_STS", env.moto.url.clone()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
    ];
    let mut with_token = base.clone();
    with_token.push((
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        token_file.display().to_string(),
    ));
    let o = ns.run(&python(), &[script.to_str().unwrap()], &with_token);
    assert!(
        o.status.success() && stdout_of(&o).contains("assumed-role/dev/credd-dev"),
        "boto3 in the namespace: {}\n{}",
        stdout_of(&o),
        stderr_of(&o)
    );
    // Without a token: nothing.
    let o = ns.run(&python(), &[script.to_str().unwrap()], &base);
    assert!(!o.status.success());
    assert!(stderr_of(&o).contains("401"), "{}", stderr_of(&o));
    assert!(!stdout_of(&o).contains("arn:"));
    // The container listener keeps the Host allow-list: its own address only.
    let (s, _) = get(
        format!("{LINK_LOCAL}:80").parse().unwrap(),
        "/v1/health",
        Some("evil.test"),
        None,
    );
    assert_eq!(s, 403);
    let (s, _) = get(
        format!("{LINK_LOCAL}:80").parse().unwrap(),
        "/v1/health",
        Some(LINK_LOCAL),
        None,
    );
    assert_eq!(s, 200);
    drop(d);
}

/// A stand-in for the docker CLI: records its argv and whether the token
/// file it is asked to mount is readable, then exits 3.
fn fake_docker(env: &Env) -> std::path::PathBuf {
    let p = env.path("docker");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {argv}\nfor a in \"$@\"; do case \"$a\" in *:/run/secrets/credd-token:ro) f=${{a%%:*}}; test -r \"$f\" && echo readable > {mnt};; esac; done\nexit 3\n",
            argv = env.path("docker-argv").display(),
            mnt = env.path("docker-mount").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn docker_run_mounts_a_token_that_dies_with_the_container() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let docker = fake_docker(&env);
    let o = env
        .cmd(credd_bin())
        .args([
            "docker",
            "run",
            "dev",
            "--rm",
            "-e",
            "X=1",
            "amazon/aws-cli",
            "sts",
            "get-caller-identity",
        ])
        .env("CREDD_DOCKER", &docker)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "docker's status passes through: {}",
        stderr_of(&o)
    );
    let argv = std::fs::read_to_string(env.path("docker-argv")).unwrap();
    let lines: Vec<&str> = argv.lines().collect();
    assert_eq!(lines[0], "run");
    assert!(
        lines.windows(2).any(|w| w == ["--network", "host"]),
        "no container listener: host networking: {argv}"
    );
    assert!(
        argv.contains("AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:"),
        "{argv}"
    );
    assert!(argv.contains("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/run/secrets/credd-token"));
    assert!(argv.contains("AWS_REGION=eu-west-1"));
    assert!(
        !argv.contains("credd_"),
        "the token is never on docker's argv"
    );
    assert!(
        lines.ends_with(&[
            "--rm",
            "-e",
            "X=1",
            "amazon/aws-cli",
            "sts",
            "get-caller-identity"
        ]),
        "{argv}"
    );
    assert_eq!(
        std::fs::read_to_string(env.path("docker-mount"))
            .unwrap()
            .trim(),
        "readable"
    );
    assert_eq!(
        env.credd_ok(&["token", "list", "--json"]).trim(),
        "[]",
        "revoked when the container exited"
    );
    // Detached: the token outlives `docker run`.
    let o = env
        .cmd(credd_bin())
        .args(["docker", "run", "dev", "-d", "img"])
        .env("CREDD_DOCKER", &docker)
        .output()
        .unwrap();
    assert!(stderr_of(&o).contains("detached"), "{}", stderr_of(&o));
    assert_ne!(env.credd_ok(&["token", "list", "--json"]).trim(), "[]");
}

#[test]
fn docker_args_use_the_link_local_address_when_it_is_served() {
    let ns = Netns::new();
    let env = Env::new();
    let _d = env.serve(&["--also-listen", &format!("{LINK_LOCAL}:9913")]);
    let out = env.credd_ok(&["docker", "args", "dev"]);
    assert!(
        out.contains(&format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://{LINK_LOCAL}/v1/credentials/dev"
        )),
        "{out}"
    );
    assert!(!out.contains("--network"), "{out}");
    assert!(!out.contains("credd_"), "{out}");
    // Behind the DNAT the Host header is the bare address: allowed.
    let (s, _) = get(
        format!("{LINK_LOCAL}:9913").parse().unwrap(),
        "/v1/health",
        Some(LINK_LOCAL),
        None,
    );
    assert_eq!(s, 200);
    drop(ns);
}

#[test]
fn docker_setup_is_idempotent_explicit_and_undoable() {
    // Run in a throwaway namespace so the host's network is never touched.
    let ns = Netns::new();
    let in_ns = |args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(credd_bin())
            .args(args)
            .output()
            .unwrap()
    };
    let print = in_ns(&["docker", "setup", "--print"]);
    let p = stdout_of(&print);
    assert!(
        p.contains("ip link add credd0 type dummy")
            && p.contains("--to-destination 169.254.170.2:9913"),
        "{p}"
    );
    let first = in_ns(&["docker", "setup"]);
    assert!(first.status.success(), "{}", stderr_of(&first));
    let f = stdout_of(&first);
    // Where the kernel lacks dummy interfaces (this sandbox), lo carries the addresses.
    let iface = if f.contains("done:    dummy interface credd0") {
        "credd0"
    } else {
        "lo"
    };
    assert!(
        iface == "credd0" || f.contains("no dummy interfaces"),
        "{f}"
    );
    let again = in_ns(&["docker", "setup"]);
    assert!(again.status.success(), "{}", stderr_of(&again));
    let a = stdout_of(&again);
    assert!(
        a.contains("present: address 169.254.170.2/32")
            && a.contains("present: DNAT")
            && !a.contains("done:"),
        "{a}"
    );
    let addrs = Command::new("ip")
        .args(["-n", &ns.name, "-o", "addr", "show", "dev", iface])
        .output()
        .unwrap();
    let addrs = stdout_of(&addrs);
    assert!(
        addrs.contains("169.254.170.2/32") && !addrs.contains("169.254.170.23/32"),
        "{addrs}"
    );
    let rules = Command::new("ip")
        .args(["netns", "exec", &ns.name, "iptables", "-t", "nat", "-S"])
        .output()
        .unwrap();
    assert_eq!(
        stdout_of(&rules)
            .matches("--to-destination 169.254.170.2:9913")
            .count(),
        1,
        "no duplicate rules (one DNAT, in the CREDD chain)"
    );
    assert_eq!(
        stdout_of(&rules).matches("-j CREDD").count(),
        2,
        "{}",
        stdout_of(&rules)
    );
    // The DNAT works: a listener on :9913 answers a client asking :80.
    let mut server = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(python())
        .args(["-m", "http.server", "9913", "--bind", LINK_LOCAL])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let probe = "import urllib.request,time\nfor i in range(50):\n  try:\n    print(urllib.request.urlopen('http://169.254.170.2/', timeout=2).status); break\n  except Exception as e:\n    time.sleep(0.1)\n";
    let o = ns.run(&python(), &["-c", probe], &[]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(stdout_of(&o), "200", "{}", stderr_of(&o));
    let undo = in_ns(&["docker", "setup", "--undo"]);
    assert!(undo.status.success(), "{}", stderr_of(&undo));
    let left = Command::new("ip")
        .args(["-n", &ns.name, "-o", "addr"])
        .output()
        .unwrap();
    assert!(
        !stdout_of(&left).contains("169.254.170.2/32"),
        "addresses removed: {}",
        stdout_of(&left)
    );
    let rules = Command::new("ip")
        .args(["netns", "exec", &ns.name, "iptables", "-t", "nat", "-S"])
        .output()
        .unwrap();
    assert!(!stdout_of(&rules).contains("DNAT"), "rules removed");
}

#[test]
fn the_relay_forwards_with_the_callers_token_and_nothing_else() {
    // The compose set-up of docs/docker.md, on loopback: SDK -> relay -> daemon.
    let env = Env::new();
    let d = env.serve(&[]);
    let log = env.path("relay.log");
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _relay = KillOnDrop(
        env.cmd(credd_bin())
            .args([
                "relay",
                "--listen",
                "127.0.0.1:0",
                "--to",
                &format!("http://{}", d.addr()),
            ])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut addr = None;
    for _ in 0..200 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("credd relay ready")) {
            let listen = l
                .split("listen=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            addr = Some(listen.trim_matches('"').to_string());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let relay_addr = addr.unwrap_or_else(|| {
        panic!(
            "relay did not start: {}",
            std::fs::read_to_string(&log).unwrap()
        )
    });
    let token_file = env.path("tok");
    env.credd_ok(&[
        "token",
        "issue",
        "--profile",
        "dev",
        "--file",
        token_file.to_str().unwrap(),
    ]);
    let o = env
        .client(Client::Boto3)
        .env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("http://{relay_addr}/v1/credentials/dev"),
        )
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(
        o.status.success() && stdout_of(&o).contains("assumed-role/dev/credd-dev"),
        "{}",
        stderr_of(&o)
    );
    let sa: std::net::SocketAddr = relay_addr.parse().unwrap();
    // No token through the relay: the daemon's 401 comes back.
    let (s, body) = get(sa, "/v1/credentials/dev", Some(&relay_addr), None);
    assert_eq!(s, 401, "{body}");
    // The relay keeps its own Host allow-list and forwards nothing else.
    assert_eq!(
        get(sa, "/v1/credentials/dev", Some("evil.test"), None).0,
        403
    );
    assert_eq!(
        get(sa, "/latest/meta-data/", Some(&relay_addr), None).0,
        404
    );
    // A dead daemon is a clear 502.
    drop(d);
    let (s, body) = get(sa, "/v1/credentials/dev", Some(&relay_addr), None);
    assert_eq!(s, 502, "{body}");
    assert!(body.contains("is `credd serve` running"), "{body}");
}
