//! `credd docker args | run | ps`: credentials for containers.
//!
//! - `args PROFILE`: the `docker run` flags an SDK needs.
//! - `run PROFILE [DOCKER ARGS...] IMAGE [CMD...]`: `docker run` with them,
//!   the container's token revoked when it exits.
//! - `ps`: the containers holding live tokens.
//!
//! The token reaches the container as a read-only mounted file, never on
//! docker's argv or in its environment.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::client::{call, endpoint_url, issue_token_file, parse_ttl};
use crate::docker_nat::ADDR;
use anyhow::{Context, Result};
use credd_daemon::control::Request;
use credd_daemon::protocol::{DockerPs, EndpointReply, Revoked};
use std::path::Path;
use std::process::{Command, ExitCode};

/// Where the token file appears inside the container.
pub const TOKEN_IN_CONTAINER: &str = "/run/secrets/credd-token";
/// Where the overlay config (the profile's non-credential settings, see
/// `credd exec --help`) and the empty credentials file appear.
pub const CONFIG_IN_CONTAINER: &str = "/run/secrets/credd-aws-config";
pub const CREDENTIALS_IN_CONTAINER: &str = "/run/secrets/credd-aws-credentials";

/// The engine the docker CLI will talk to, as the daemon names engines
/// (`unix:///path`): `DOCKER_HOST`, else `/var/run/docker.sock` unless a
/// docker context other than the default is in use (then unknown: `None`).
fn cli_engine() -> Option<std::path::PathBuf> {
    if let Some(h) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        return h.strip_prefix("unix://").map(std::path::PathBuf::from);
    }
    if std::env::var("DOCKER_CONTEXT").is_ok_and(|c| !c.is_empty() && c != "default") {
        return None;
    }
    let config = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")));
    if let Some(dir) = config {
        let current = std::fs::read(dir.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["currentContext"].as_str().map(str::to_string));
        if current.is_some_and(|c| !c.is_empty() && c != "default") {
            return None;
        }
    }
    Some("/var/run/docker.sock".into())
}

/// The daemon's engine, when it is the one the docker CLI will use (the
/// same socket, symlinks resolved): the token is then bound to it.
fn same_engine(daemon: Option<&str>) -> Option<String> {
    let daemon = daemon?;
    let ours = cli_engine()?;
    let theirs = Path::new(daemon.strip_prefix("unix://")?);
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    (canon(&ours) == canon(theirs)).then(|| daemon.to_string())
}

/// How a container's token ends, for the CLI's message.
pub enum Lifetime {
    /// Revoked when its container is removed (or unclaimed after this many seconds).
    Watched { claim_within_secs: u64 },
    /// Nothing watches the engine: it lives until it expires.
    Ttl,
}

/// The flags for a container, the token's id and file, and how the token
/// ends: bound to the container (its label
/// `credd.token=ID`) when the daemon watches the engine docker will use.
pub async fn flags_bound(
    profile: &str,
    ttl: &str,
) -> Result<(Vec<String>, String, std::path::PathBuf, Lifetime)> {
    let ep: EndpointReply = call(Request::Endpoint {
        profile: Some(profile.to_string()),
    })
    .await?;
    let bridge = ep
        .extra_urls
        .iter()
        .find(|u| {
            u.starts_with(&format!("http://{ADDR}/")) || u.starts_with(&format!("http://{ADDR}:"))
        })
        .map(|u| {
            // Behind the DNAT, containers use port 80: the bare address.
            let path = &u[u.find("/v1/").unwrap_or(u.len())..];
            format!("http://{ADDR}{path}")
        });
    parse_ttl(ttl)?;
    let engine = same_engine(ep.docker_engine.as_deref());
    let lifetime = match (&engine, ep.docker_claim_within_secs) {
        (Some(_), Some(s)) => Lifetime::Watched {
            claim_within_secs: s,
        },
        _ => Lifetime::Ttl,
    };
    let issued = issue_token_file(profile, ttl, format!("docker {profile}"), engine).await?;
    let (file, id) = (issued.path, issued.id);
    // The token's id (public; never its secret) on the container: the
    // daemon's docker watch revokes the token when the container is removed.
    let mut f = vec![
        "--label".to_string(),
        format!("{}={id}", credd_daemon::docker_watch::LABEL),
    ];
    let url = match bridge {
        Some(base) => endpoint_url(&base, profile),
        None => {
            // No container listener: the container shares the host's
            // loopback, where credd listens.
            f.push("--network".into());
            f.push("host".into());
            endpoint_url(&ep.container_url, profile)
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
    let (config, credentials) = crate::child_env::write_overlay(
        profile,
        &crate::child_env::settings_of(&ep),
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
    if let Some(r) = &ep.region {
        f.push("-e".into());
        f.push(format!("AWS_REGION={r}"));
        f.push("-e".into());
        f.push(format!("AWS_DEFAULT_REGION={r}"));
    }
    Ok((f, id, file, lifetime))
}

pub async fn args(profile: &str, ttl: &str) -> Result<()> {
    let (f, id, _, lifetime) = flags_bound(profile, ttl).await?;
    println!(
        "{}",
        f.iter()
            .map(|a| shell_word(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    match lifetime {
        Lifetime::Watched { claim_within_secs } => eprintln!(
            "token {id} is revoked when its container is removed, and revoked if no container takes it within {}; \
             it expires in {ttl} at the latest",
            credd_core::duration::fmt_secs(claim_within_secs)
        ),
        Lifetime::Ttl => eprintln!(
            "token {id} expires in {ttl} (credd does not watch the docker engine this docker uses, so removing the \
             container does not revoke it); revoke it with `credd token revoke {id}`"
        ),
    }
    Ok(())
}

/// `credd docker ps`: the containers holding live tokens.
pub async fn ps(json: bool) -> Result<()> {
    let v: DockerPs = call(Request::DockerPs).await?;
    if let Some(e) = &v.error {
        eprintln!("credd: the docker engine did not answer ({e}); showing what credd recorded");
    }
    if json {
        // Through a `Value`: keys sorted, as the daemon sends them.
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::to_value(&v.containers)?)?
        );
        return Ok(());
    }
    if v.containers.is_empty() {
        eprintln!(
            "no container holds a live credd token (engine {})",
            v.engine.as_deref().unwrap_or("?")
        );
        return Ok(());
    }
    let mut t = crate::output::table(&[
        "CONTAINER",
        "NAME",
        "IMAGE",
        "PROFILE",
        "TOKEN",
        "TOKEN AGE",
    ]);
    let dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    for r in &v.containers {
        let container = match &r.container {
            Some(c) => c.clone(),
            None => format!(
                "(none yet; revoked at {} unless one starts)",
                r.unclaimed_revoked_at.as_deref().unwrap_or("?")
            ),
        };
        t.add_row(vec![
            container,
            dash(&r.name),
            dash(&r.image),
            r.profiles.join(","),
            r.token.clone(),
            credd_core::duration::fmt_secs(u64::try_from(r.token_age_secs).unwrap_or(0)),
        ]);
    }
    println!("{t}");
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
    let (f, id, file, lifetime) = flags_bound(profile, ttl).await?;
    // A detached container outlives `docker run`: its token must too.
    let detached = detaches(docker_args);
    let docker = std::env::var_os("CREDD_DOCKER").unwrap_or_else(|| "docker".into());
    let mut cmd = Command::new(&docker);
    // `-e AWS_PROFILE` (no value) passes docker's own variable through:
    // docker gets none of those that would win over credd.
    for v in crate::child_env::REMOVED {
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
        match lifetime {
            Lifetime::Watched { .. } => eprintln!("detached: the container's token {id} is revoked when the container is removed (at the latest it expires in {ttl})"),
            Lifetime::Ttl => eprintln!("detached: the container's token {id} stays valid until it expires ({ttl}): credd does not watch this docker engine; revoke it with `credd token revoke {id}`"),
        }
    } else {
        if let Err(e) = call::<Revoked>(Request::TokenRevoke { id }).await {
            eprintln!(
                "credd: could not revoke the container's token ({e:#}); it expires on its own"
            );
        }
        let _ = std::fs::remove_file(file);
    }
    Ok(crate::exit::of(status))
}

/// Short options that take a value (`-e X`, `-eX`, `-e=X`).
const VALUE_SHORT: &str = "acehlmpuvw";

/// Whether `docker run ARGS` detaches (`-d`, `-itd`, `--detach`,
/// `--detach=true`, the last one winning), reading docker's own options the
/// way docker's flag parser (pflag) does, up to the image: what follows the
/// image is the container's command (`... IMAGE ls -d /` does not detach).
/// Hand-written because it needs docker's option table, not a general
/// parser. An option this table does not know is taken as boolean: docker
/// rejects unknown options anyway, and a valued one read as boolean ends the
/// scan early, so a detached container's token is revoked at once (it gets
/// 401: loud) rather than a foreground one's living for its whole TTL.
pub fn detaches(args: &[String]) -> bool {
    let mut detach = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        if a == "--" || !a.starts_with('-') || a == "-" {
            break; // the image
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            if is_known_valued(name) {
                if value.is_none() {
                    i += 1; // its value is the next word
                }
            } else if name == "detach" {
                detach = value.is_none_or(parse_bool);
            }
            continue;
        }
        // A cluster of short options: `-itd`, `-e X`, `-eX`, `-d=false`.
        let cluster = &a[1..];
        for (at, c) in cluster.char_indices() {
            let rest = &cluster[at + c.len_utf8()..];
            if VALUE_SHORT.contains(c) {
                if rest.is_empty() {
                    i += 1;
                }
                break; // the rest of the word is its value
            }
            if c == 'd' {
                detach = match rest.strip_prefix('=') {
                    Some(v) => parse_bool(v),
                    None => true,
                };
            }
            // `-d=false`: the rest was the value. (Other letters, known
            // booleans or unknown ones, take none.)
            if rest.starts_with('=') {
                break;
            }
        }
    }
    detach
}

/// pflag's (Go's strconv.ParseBool) spellings of true; anything else,
/// including docker's invalid values (docker refuses them), counts as false.
fn parse_bool(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// `docker run`'s options that take a value, long names, from `docker run
/// --help` (docker 28). The others (`--detach`, `--rm`, `--init`, `--tty`,
/// ...) are booleans: pflag's `--x` or `--x=true|false`.
fn is_known_valued(name: &str) -> bool {
    const VALUED: &[&str] = &[
        "add-host",
        "annotation",
        "attach",
        "blkio-weight",
        "blkio-weight-device",
        "cap-add",
        "cap-drop",
        "cgroup-parent",
        "cgroupns",
        "cidfile",
        "cpu-count",
        "cpu-percent",
        "cpu-period",
        "cpu-quota",
        "cpu-rt-period",
        "cpu-rt-runtime",
        "cpu-shares",
        "cpus",
        "cpuset-cpus",
        "cpuset-mems",
        "detach-keys",
        "device",
        "device-cgroup-rule",
        "device-read-bps",
        "device-read-iops",
        "device-write-bps",
        "device-write-iops",
        "dns",
        "dns-option",
        "dns-search",
        "domainname",
        "entrypoint",
        "env",
        "env-file",
        "expose",
        "gpus",
        "group-add",
        "health-cmd",
        "health-interval",
        "health-retries",
        "health-start-interval",
        "health-start-period",
        "health-timeout",
        "hostname",
        "io-maxbandwidth",
        "io-maxiops",
        "ip",
        "ip6",
        "ipc",
        "isolation",
        "kernel-memory",
        "label",
        "label-file",
        "link",
        "link-local-ip",
        "log-driver",
        "log-opt",
        "mac-address",
        "memory",
        "memory-reservation",
        "memory-swap",
        "memory-swappiness",
        "mount",
        "name",
        "network",
        "network-alias",
        "oom-score-adj",
        "pid",
        "pids-limit",
        "platform",
        "publish",
        "pull",
        "restart",
        "runtime",
        "security-opt",
        "shm-size",
        "stop-signal",
        "stop-timeout",
        "storage-opt",
        "sysctl",
        "tmpfs",
        "ulimit",
        "user",
        "userns",
        "uts",
    ];
    const MORE: [&str; 4] = ["volume", "volume-driver", "volumes-from", "workdir"];
    VALUED.contains(&name) || MORE.contains(&name) || name == "net" || name == "dns-opt"
}

#[cfg(test)]
mod tests {
    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn detach_is_read_from_dockers_own_options_only() {
        for yes in [
            "-d img",
            "--detach img",
            "--detach=true img",
            "--detach=1 img",
            "-itd img sh",
            "-dit img",
            "-d=true img",
            "--rm -e X=1 -d img",
            "-e X -d img",
            "--name=x -d img",
            "--name x --detach img",
            "-v /a:/b -p 80:80 -d --restart always img",
            "--detach=false -d img",
        ] {
            assert!(super::detaches(&argv(yes)), "{yes}");
        }
        for no in [
            "img ls -d /",
            "--rm img ls -d /",
            "--detach=false img",
            "--detach=0 img",
            "-d=false img",
            "-d --detach=false img",
            "-e -d img",     // -d is -e's value
            "--name -d img", // and --name's
            "--env=-d img",
            "-e-d img",
            "-it img sh -c -d",
            "-- -d",
            "--detach-keys ctrl-d img",
            "-w /d img",
            "img",
        ] {
            assert!(!super::detaches(&argv(no)), "{no}");
        }
    }
}
