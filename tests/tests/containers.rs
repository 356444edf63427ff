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
        let id = std::process::id() % 100_000;
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
