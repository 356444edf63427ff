//! `credd docker`: credentials for containers.
//!
//! - `setup [--undo] [--print]` (root): puts 169.254.170.2 and
//!   169.254.170.23 on a dummy interface `credd0` and DNATs port 80 of
//!   169.254.170.2 to credd's unprivileged container listener
//!   (169.254.170.2:9913), so containers on a bridge network reach credd at
//!   the address SDKs accept over plain http. Idempotent; says every change.
//! - `args PROFILE`: the `docker run` flags an SDK needs.
//! - `run PROFILE [DOCKER ARGS...] IMAGE [CMD...]`: `docker run` with them,
//!   the container's token revoked when it exits.
//!
//! The token reaches the container as a read-only mounted file, never on
//! docker's argv or in its environment.

use crate::commands::{call, endpoint_url, issue_token_file, parse_ttl};
use anyhow::{bail, Context, Result};
use credd_daemon::control::Request;
use std::path::Path;
use std::process::{Command, ExitCode};

pub const IFACE: &str = "credd0";
pub const ADDRS: [&str; 2] = ["169.254.170.2", "169.254.170.23"];
/// The unprivileged port credd's container listener uses behind the DNAT.
pub const PORT: u16 = 9913;
/// Where the token file appears inside the container.
pub const TOKEN_IN_CONTAINER: &str = "/run/secrets/credd-token";
/// Where the overlay config (the profile's non-credential settings, see
/// `credd exec --help`) and the empty credentials file appear.
pub const CONFIG_IN_CONTAINER: &str = "/run/secrets/credd-aws-config";
pub const CREDENTIALS_IN_CONTAINER: &str = "/run/secrets/credd-aws-credentials";

/// One change `setup` makes: a check (passes when already done), the
/// command that makes it and the one that takes it back.
struct Step {
    what: String,
    check: Vec<String>,
    apply: Vec<String>,
    undo: Vec<String>,
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn addr_steps(iface: &str) -> Vec<Step> {
    ADDRS
        .iter()
        .map(|a| Step {
            what: format!("address {a}/32 on {iface}"),
            check: words(&format!("ip -o addr show dev {iface} to {a}/32")),
            apply: words(&format!("ip addr replace {a}/32 dev {iface}")),
            undo: words(&format!("ip addr del {a}/32 dev {iface}")),
        })
        .collect()
}

fn dnat_steps() -> Vec<Step> {
    // Containers (PREROUTING) and host-network processes (OUTPUT) asking
    // 169.254.170.2:80 reach credd's listener on 169.254.170.2:PORT. The
    // target is not loopback, so route_localnet stays off and the ECS
    // agent's DROP rule for non-local traffic to 127.0.0.0/8 is not needed.
    ["PREROUTING", "OUTPUT"]
        .iter()
        .map(|chain| {
            let rule = format!(
                "{chain} -d {}/32 -p tcp --dport 80 -j DNAT --to-destination {}:{PORT}",
                ADDRS[0], ADDRS[0]
            );
            Step {
                what: format!("DNAT {}:80 -> {}:{PORT} ({chain})", ADDRS[0], ADDRS[0]),
                check: words(&format!("iptables -t nat -C {rule}")),
                apply: words(&format!("iptables -t nat -A {rule}")),
                undo: words(&format!("iptables -t nat -D {rule}")),
            }
        })
        .collect()
}

fn iface_step() -> Step {
    Step {
        what: format!("dummy interface {IFACE}"),
        check: words(&format!("ip link show {IFACE}")),
        apply: words(&format!("ip link add {IFACE} type dummy")),
        undo: words(&format!("ip link del {IFACE}")),
    }
}

fn output(cmd: &[String]) -> Result<std::process::Output> {
    Command::new(&cmd[0])
        .args(&cmd[1..])
        .output()
        .with_context(|| {
            format!(
                "failed to run `{}` (is {} installed?)",
                cmd.join(" "),
                cmd[0]
            )
        })
}

/// Whether a check passes: exit 0, and for `ip ... show` some output
/// (`ip addr show to A` succeeds with nothing when A is absent).
fn run_quiet(cmd: &[String]) -> Result<bool> {
    let o = output(cmd)?;
    Ok(o.status.success() && (cmd[0] != "ip" || !o.stdout.is_empty()))
}

fn run_loud(cmd: &[String]) -> Result<()> {
    let o = output(cmd)?;
    if !o.status.success() {
        bail!(
            "`{}` failed: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(())
}

pub fn setup(undo: bool, print: bool) -> Result<()> {
    if print {
        let mut all = vec![iface_step()];
        all.extend(addr_steps(IFACE));
        all.extend(dnat_steps());
        for s in &all {
            let cmd = if undo { &s.undo } else { &s.apply };
            println!("{}", cmd.join(" "));
        }
        println!("# (where the kernel has no dummy interfaces, the addresses go on lo instead)");
        return Ok(());
    }
    if !rustix::process::geteuid().is_root() {
        bail!("`credd docker setup` changes network settings: run it with sudo (see what it would do with --print)");
    }
    if undo {
        for s in dnat_steps().iter().chain(addr_steps("lo").iter()) {
            if run_quiet(&s.check)? {
                run_loud(&s.undo)?;
                println!("removed: {}  ({})", s.what, s.undo.join(" "));
            } else {
                println!("absent:  {}", s.what);
            }
        }
        let i = iface_step();
        if run_quiet(&i.check)? {
            run_loud(&i.undo)?;
            println!(
                "removed: {} and its addresses  ({})",
                i.what,
                i.undo.join(" ")
            );
        } else {
            println!("absent:  {}", i.what);
        }
        return Ok(());
    }
    let i = iface_step();
    let iface = if run_quiet(&i.check)? {
        println!("present: {}", i.what);
        IFACE
    } else if run_quiet(&i.apply)? {
        println!("done:    {}  ({})", i.what, i.apply.join(" "));
        IFACE
    } else {
        println!("note:    this kernel has no dummy interfaces; the addresses go on lo");
        "lo"
    };
    if iface == IFACE {
        run_loud(&words(&format!("ip link set {IFACE} up")))?;
    }
    for s in addr_steps(iface).iter().chain(dnat_steps().iter()) {
        if run_quiet(&s.check)? {
            println!("present: {}", s.what);
            continue;
        }
        run_loud(&s.apply)?;
        println!("done:    {}  ({})", s.what, s.apply.join(" "));
    }
    println!(
        "\nNow let credd listen there: add to credd.toml\n  extra_listen = [\"{}:{PORT}\"]\nor run `credd serve --also-listen {}:{PORT}`. \
         Containers then use http://{}/v1/credentials/PROFILE (see `credd docker args PROFILE`).",
        ADDRS[0], ADDRS[0], ADDRS[0]
    );
    Ok(())
}

/// The flags for a container, and the token's id and file.
pub async fn flags(profile: &str, ttl: &str) -> Result<(Vec<String>, String, std::path::PathBuf)> {
    let ep = call(Request::Endpoint {
        profile: Some(profile.to_string()),
    })
    .await?;
    let bridge = ep["extra_urls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u.as_str())
        .find(|u| {
            u.starts_with(&format!("http://{}/", ADDRS[0]))
                || u.starts_with(&format!("http://{}:", ADDRS[0]))
        })
        .map(|u| {
            // Behind the DNAT, containers use port 80: the bare address.
            let path = &u[u.find("/v1/").unwrap_or(u.len())..];
            format!("http://{}{path}", ADDRS[0])
        });
    parse_ttl(ttl)?;
    let (file, id) = issue_token_file(profile, ttl, format!("docker {profile}")).await?;
    let mut f = Vec::new();
    let url = match bridge {
        Some(base) => endpoint_url(&base, profile),
        None => {
            // No container listener: the container shares the host's
            // loopback, where credd listens.
            f.push("--network".into());
            f.push("host".into());
            endpoint_url(ep["container_url"].as_str().unwrap_or_default(), profile)
        }
    };
    f.push("-e".into());
    f.push(format!("AWS_CONTAINER_CREDENTIALS_FULL_URI={url}"));
    f.push("-e".into());
    f.push(format!(
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={TOKEN_IN_CONTAINER}"
    ));
    f.push("-v".into());
    f.push(format!("{}:{TOKEN_IN_CONTAINER}:ro", file.display()));
    // The container's SDK must not find other credentials or another
    // profile first, even with the user's ~/.aws mounted: the config and
    // credentials files it reads are credd's overlay and an empty file
    // (ca_bundle, a path on this machine, is left out).
    let (config, credentials) = crate::exec::write_overlay(
        profile,
        &crate::exec::settings_of(&ep),
        credd_core::overlay::HOST_PATH_KEYS,
    )?;
    for (host, inside, var) in [
        (&config, CONFIG_IN_CONTAINER, "AWS_CONFIG_FILE"),
        (
            &credentials,
            CREDENTIALS_IN_CONTAINER,
            "AWS_SHARED_CREDENTIALS_FILE",
        ),
    ] {
        f.push("-e".into());
        f.push(format!("{var}={inside}"));
        f.push("-v".into());
        f.push(format!("{}:{inside}:ro", host.display()));
    }
    if let Some(r) = ep["region"].as_str() {
        f.push("-e".into());
        f.push(format!("AWS_REGION={r}"));
        f.push("-e".into());
        f.push(format!("AWS_DEFAULT_REGION={r}"));
    }
    Ok((f, id, file))
}

pub async fn args(profile: &str, ttl: &str) -> Result<()> {
    let (f, id, _) = flags(profile, ttl).await?;
    println!(
        "{}",
        f.iter()
            .map(|a| shell_word(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!("token {id} expires in {ttl}; revoke it with `credd token revoke {id}`");
    Ok(())
}

fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/:._-=,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub async fn run(profile: &str, ttl: &str, docker_args: &[String]) -> Result<ExitCode> {
    let (f, id, file) = flags(profile, ttl).await?;
    // A detached container outlives `docker run`: its token must too. (A
    // `-d` meant for the container's own command also counts: the token
    // then simply lives until its TTL.)
    let detached = docker_args.iter().any(|a| {
        a == "--detach"
            || (a.starts_with('-')
                && !a.starts_with("--")
                && a.len() <= 5
                && a[1..].chars().all(|c| c.is_ascii_alphabetic())
                && a.contains('d'))
    });
    let docker = std::env::var_os("CREDD_DOCKER").unwrap_or_else(|| "docker".into());
    let mut cmd = Command::new(&docker);
    // `-e AWS_PROFILE` (no value) passes docker's own variable through:
    // docker gets none of those that would win over credd.
    for v in crate::exec::REMOVED {
        cmd.env_remove(v);
    }
    let status = cmd
        .arg("run")
        .args(&f)
        .args(docker_args)
        .status()
        .with_context(|| {
            format!(
                "failed to run {} (is docker installed?)",
                Path::new(&docker).display()
            )
        })?;
    if detached {
        eprintln!("detached: the container's token {id} stays valid until it expires ({ttl}); revoke it with `credd token revoke {id}`");
    } else {
        if let Err(e) = call(Request::TokenRevoke { id }).await {
            eprintln!(
                "credd: could not revoke the container's token ({e:#}); it expires on its own"
            );
        }
        let _ = std::fs::remove_file(file);
    }
    Ok(crate::exit::of(status))
}
