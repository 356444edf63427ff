//! `credd docker`: credentials for containers.
//!
//! - `setup [--undo] [--print]` (root): puts 169.254.170.2 on a dummy
//!   interface `credd0` and DNATs its port 80 to credd's unprivileged
//!   container listener (169.254.170.2:9913), so containers on a bridge
//!   network reach credd at the address SDKs accept over plain http. The
//!   DNAT lives in a nat chain of its own, `CREDD`, jumped to from the *top*
//!   of PREROUTING and OUTPUT: docker's own DNAT for a container publishing
//!   port 80 must never see a request meant for credd (it would carry the
//!   caller's token to that container). Idempotent; also repairs the order
//!   when docker has put its rules first; says every change.
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
/// The address containers ask (the ECS container-credentials address).
pub const ADDR: &str = "169.254.170.2";
/// An address older versions also added, though nothing ever answered
/// there; setup and `--undo` remove it.
pub const LEGACY_ADDR: &str = "169.254.170.23";
/// The unprivileged port credd's container listener uses behind the DNAT.
pub const PORT: u16 = 9913;
/// credd's own nat chain; PREROUTING and OUTPUT jump to it first.
pub const CHAIN: &str = "CREDD";
/// The built-in nat chains credd's jumps go to the top of: PREROUTING for
/// containers on bridge networks, OUTPUT for the host and host-network ones.
pub const HOOKS: [&str; 2] = ["PREROUTING", "OUTPUT"];
/// Where the token file appears inside the container.
pub const TOKEN_IN_CONTAINER: &str = "/run/secrets/credd-token";
/// Where the overlay config (the profile's non-credential settings, see
/// `credd exec --help`) and the empty credentials file appear.
pub const CONFIG_IN_CONTAINER: &str = "/run/secrets/credd-aws-config";
pub const CREDENTIALS_IN_CONTAINER: &str = "/run/secrets/credd-aws-credentials";

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// The DNAT rule inside [`CHAIN`] (as `iptables` arguments after the chain).
fn dnat_rule() -> String {
    format!("-d {ADDR}/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination {ADDR}:{PORT}")
}

/// The jump from a built-in chain, as `iptables -S` prints it.
pub fn jump_line(hook: &str) -> String {
    format!("-A {hook} -j {CHAIN}")
}

/// The rule older versions appended to PREROUTING and OUTPUT (after
/// docker's own, hence shadowed by a container publishing port 80).
fn legacy_rule(hook: &str) -> String {
    format!("{hook} -d {ADDR}/32 -p tcp --dport 80 -j DNAT --to-destination {ADDR}:{PORT}")
}

fn iptables(args: &str) -> Vec<String> {
    words(&format!("iptables -t nat {args}"))
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

/// The rules of a nat chain, as `iptables -t nat -S CHAIN` prints them
/// (`-A ...` lines only, in order).
pub fn nat_rules(chain: &str) -> Result<Vec<String>> {
    let cmd = iptables(&format!("-S {chain}"));
    let o = output(&cmd)?;
    if !o.status.success() {
        bail!(
            "`{}` failed: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(rules_of(&String::from_utf8_lossy(&o.stdout)))
}

fn rules_of(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter(|l| l.starts_with("-A "))
        .map(str::to_string)
        .collect()
}

/// What is wrong with a built-in chain's order, given its rules: `None`
/// when credd's jump is its first rule and appears once.
pub fn order_problem(hook: &str, rules: &[String]) -> Option<String> {
    let jump = jump_line(hook);
    let at: Vec<usize> = (0..rules.len()).filter(|&i| rules[i] == jump).collect();
    match at.first() {
        None => Some(format!("no jump to {CHAIN} in nat {hook}")),
        Some(0) if at.len() == 1 => None,
        Some(0) => Some(format!("{} jumps to {CHAIN} in nat {hook}", at.len())),
        Some(_) => Some(format!(
            "`{}` comes before credd's jump in nat {hook}",
            rules[0]
        )),
    }
}

/// The commands a fresh setup runs, for `--print`.
fn print_setup() {
    let lines = [
        format!("ip link add {IFACE} type dummy"),
        format!("ip link set {IFACE} up"),
        format!("ip addr replace {ADDR}/32 dev {IFACE}"),
        format!("iptables -t nat -N {CHAIN}"),
        format!("iptables -t nat -A {CHAIN} {}", dnat_rule()),
        format!("iptables -t nat -I PREROUTING 1 -j {CHAIN}"),
        format!("iptables -t nat -I OUTPUT 1 -j {CHAIN}"),
    ];
    for l in lines {
        println!("{l}");
    }
    println!("# (where the kernel has no dummy interfaces, the address goes on lo instead)");
    println!("# (a jump that is present but not first is re-inserted first, then its other copies deleted)");
}

fn print_undo() {
    let lines = [
        format!("iptables -t nat -D PREROUTING -j {CHAIN}"),
        format!("iptables -t nat -D OUTPUT -j {CHAIN}"),
        format!("iptables -t nat -F {CHAIN}"),
        format!("iptables -t nat -X {CHAIN}"),
        format!("ip addr del {ADDR}/32 dev lo"),
        format!("ip link del {IFACE}"),
    ];
    for l in lines {
        println!("{l}");
    }
    println!(
        "# (also removes {LEGACY_ADDR} and the DNAT rules older versions appended to PREROUTING/OUTPUT)"
    );
}

/// Removes what older versions added and this one no longer wants: the
/// DNAT rules appended to PREROUTING/OUTPUT and the 169.254.170.23 address.
///
/// On `lo` (where older versions put it when the kernel had no dummy
/// interfaces) the address could also be another tool's: `setup` only
/// points at it there, `--undo` (`on_lo`) removes it.
fn remove_legacy(on_lo: bool) -> Result<()> {
    for hook in HOOKS {
        let rule = legacy_rule(hook);
        while run_quiet(&iptables(&format!("-C {rule}")))? {
            let cmd = iptables(&format!("-D {rule}"));
            run_loud(&cmd)?;
            println!(
                "removed: an older credd's DNAT rule in {hook}, shadowed by docker's  ({})",
                cmd.join(" ")
            );
        }
    }
    for dev in [IFACE, "lo"] {
        if run_quiet(&words(&format!(
            "ip -o addr show dev {dev} to {LEGACY_ADDR}/32"
        )))? {
            if dev == "lo" && !on_lo {
                println!(
                    "note:    {LEGACY_ADDR}/32 is on lo; credd no longer uses it (an older version added it): \
                     `sudo credd docker setup --undo` or `sudo ip addr del {LEGACY_ADDR}/32 dev lo` removes it"
                );
                continue;
            }
            let cmd = words(&format!("ip addr del {LEGACY_ADDR}/32 dev {dev}"));
            run_loud(&cmd)?;
            println!(
                "removed: address {LEGACY_ADDR}/32 on {dev} (nothing serves it)  ({})",
                cmd.join(" ")
            );
        }
    }
    Ok(())
}

/// Makes credd's jump the first rule of `hook`, exactly once. A jump that
/// is present but not first is inserted anew at the top before the old
/// copies go, so no request slips past credd in between.
fn jump_first(hook: &str) -> Result<()> {
    let rules = nat_rules(hook)?;
    let Some(problem) = order_problem(hook, &rules) else {
        println!("present: jump to {CHAIN} first in nat {hook}");
        return Ok(());
    };
    if rules.first() != Some(&jump_line(hook)) {
        let cmd = iptables(&format!("-I {hook} 1 -j {CHAIN}"));
        run_loud(&cmd)?;
        println!(
            "done:    jump to {CHAIN} first in nat {hook} (was: {problem})  ({})",
            cmd.join(" ")
        );
    }
    // Delete the other copies, highest rule number first (numbers are 1-based).
    let rules = nat_rules(hook)?;
    let jump = jump_line(hook);
    for n in (1..rules.len()).rev().filter(|&i| rules[i] == jump) {
        let cmd = iptables(&format!("-D {hook} {}", n + 1));
        run_loud(&cmd)?;
        println!(
            "removed: a later copy of the jump to {CHAIN} in nat {hook}  ({})",
            cmd.join(" ")
        );
    }
    Ok(())
}

pub fn setup(undo: bool, print: bool) -> Result<()> {
    if print {
        if undo {
            print_undo();
        } else {
            print_setup();
        }
        return Ok(());
    }
    if !rustix::process::geteuid().is_root() {
        bail!("`credd docker setup` changes network settings: run it with sudo (see what it would do with --print)");
    }
    if undo {
        return undo_all();
    }
    let iface = if run_quiet(&words(&format!("ip link show {IFACE}")))? {
        println!("present: dummy interface {IFACE}");
        IFACE
    } else if run_quiet(&words(&format!("ip link add {IFACE} type dummy")))? {
        println!("done:    dummy interface {IFACE}  (ip link add {IFACE} type dummy)");
        IFACE
    } else {
        println!("note:    this kernel has no dummy interfaces; the address goes on lo");
        "lo"
    };
    if iface == IFACE {
        run_loud(&words(&format!("ip link set {IFACE} up")))?;
    }
    if run_quiet(&words(&format!("ip -o addr show dev {iface} to {ADDR}/32")))? {
        println!("present: address {ADDR}/32 on {iface}");
    } else {
        let cmd = words(&format!("ip addr replace {ADDR}/32 dev {iface}"));
        run_loud(&cmd)?;
        println!("done:    address {ADDR}/32 on {iface}  ({})", cmd.join(" "));
    }
    if run_quiet(&iptables(&format!("-S {CHAIN}")))? {
        println!("present: nat chain {CHAIN}");
    } else {
        let cmd = iptables(&format!("-N {CHAIN}"));
        run_loud(&cmd)?;
        println!("done:    nat chain {CHAIN}  ({})", cmd.join(" "));
    }
    // The chain holds exactly the one DNAT rule: anything else in it
    // (a hand edit, an older layout) goes.
    let want = format!("-A {CHAIN} {}", dnat_rule());
    let have = nat_rules(CHAIN)?;
    if have == [want.clone()] {
        println!("present: DNAT {ADDR}:80 -> {ADDR}:{PORT} in {CHAIN}");
    } else {
        if !have.is_empty() {
            run_loud(&iptables(&format!("-F {CHAIN}")))?;
            println!("removed: {} unexpected rule(s) in {CHAIN}", have.len());
        }
        let cmd = iptables(&format!("-A {CHAIN} {}", dnat_rule()));
        run_loud(&cmd)?;
        println!(
            "done:    DNAT {ADDR}:80 -> {ADDR}:{PORT} in {CHAIN}  ({})",
            cmd.join(" ")
        );
    }
    for hook in HOOKS {
        jump_first(hook)?;
    }
    remove_legacy(false)?;
    println!(
        "\nNow let credd listen there: add to credd.toml\n  extra_listen = [\"{ADDR}:{PORT}\"]\nor run `credd serve --also-listen {ADDR}:{PORT}`. \
         Containers then use http://{ADDR}/v1/credentials/PROFILE (see `credd docker args PROFILE`).\n\
         docker puts its own rules first again when it restarts: install systemd/credd-docker-setup.service \
         so this re-runs after every docker start (`credd doctor` checks the order)."
    );
    Ok(())
}

fn undo_all() -> Result<()> {
    for hook in HOOKS {
        let cmd = iptables(&format!("-D {hook} -j {CHAIN}"));
        let mut n = 0;
        while run_quiet(&iptables(&format!("-C {hook} -j {CHAIN}")))? {
            run_loud(&cmd)?;
            n += 1;
        }
        if n > 0 {
            println!(
                "removed: jump to {CHAIN} in nat {hook}  ({})",
                cmd.join(" ")
            );
        } else {
            println!("absent:  jump to {CHAIN} in nat {hook}");
        }
    }
    if run_quiet(&iptables(&format!("-S {CHAIN}")))? {
        run_loud(&iptables(&format!("-F {CHAIN}")))?;
        run_loud(&iptables(&format!("-X {CHAIN}")))?;
        println!("removed: nat chain {CHAIN} and its DNAT rule  (iptables -t nat -F {CHAIN}; iptables -t nat -X {CHAIN})");
    } else {
        println!("absent:  nat chain {CHAIN}");
    }
    remove_legacy(true)?;
    let cmd = words(&format!("ip addr del {ADDR}/32 dev lo"));
    if run_quiet(&words(&format!("ip -o addr show dev lo to {ADDR}/32")))? {
        run_loud(&cmd)?;
        println!("removed: address {ADDR}/32 on lo  ({})", cmd.join(" "));
    }
    if run_quiet(&words(&format!("ip link show {IFACE}")))? {
        let cmd = words(&format!("ip link del {IFACE}"));
        run_loud(&cmd)?;
        println!(
            "removed: dummy interface {IFACE} and its addresses  ({})",
            cmd.join(" ")
        );
    } else {
        println!("absent:  dummy interface {IFACE}");
    }
    Ok(())
}

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
            u.starts_with(&format!("http://{ADDR}/")) || u.starts_with(&format!("http://{ADDR}:"))
        })
        .map(|u| {
            // Behind the DNAT, containers use port 80: the bare address.
            let path = &u[u.find("/v1/").unwrap_or(u.len())..];
            format!("http://{ADDR}{path}")
        });
    parse_ttl(ttl)?;
    let engine = same_engine(ep["docker_engine"].as_str());
    let lifetime = match (&engine, ep["docker_claim_within_secs"].as_u64()) {
        (Some(_), Some(s)) => Lifetime::Watched {
            claim_within_secs: s,
        },
        _ => Lifetime::Ttl,
    };
    let (file, id) = issue_token_file(profile, ttl, format!("docker {profile}"), engine).await?;
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
    let v = call(Request::DockerPs).await?;
    if let Some(e) = v["error"].as_str() {
        eprintln!("credd: the docker engine did not answer ({e}); showing what credd recorded");
    }
    let rows = v["containers"].as_array().cloned().unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!(
            "no container holds a live credd token (engine {})",
            v["engine"].as_str().unwrap_or("?")
        );
        return Ok(());
    }
    let mut t = crate::commands::table(&[
        "CONTAINER",
        "NAME",
        "IMAGE",
        "PROFILE",
        "TOKEN",
        "TOKEN AGE",
    ]);
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        let container = match r["container"].as_str() {
            Some(c) => c.to_string(),
            None => format!(
                "(none yet; revoked at {} unless one starts)",
                r["unclaimed_revoked_at"].as_str().unwrap_or("?")
            ),
        };
        t.add_row(vec![
            container,
            s("name"),
            s("image"),
            r["profiles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(","),
            s("token"),
            credd_core::duration::fmt_secs(r["token_age_secs"].as_u64().unwrap_or(0)),
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
        match lifetime {
            Lifetime::Watched { .. } => eprintln!("detached: the container's token {id} is revoked when the container is removed (at the latest it expires in {ttl})"),
            Lifetime::Ttl => eprintln!("detached: the container's token {id} stays valid until it expires ({ttl}): credd does not watch this docker engine; revoke it with `credd token revoke {id}`"),
        }
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

#[cfg(test)]
mod setup_tests {
    use super::*;

    fn rules(s: &str) -> Vec<String> {
        rules_of(s)
    }

    #[test]
    fn credds_jump_must_be_first_and_alone() {
        let ok = rules("-P PREROUTING ACCEPT\n-A PREROUTING -j CREDD\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n");
        assert_eq!(order_problem("PREROUTING", &ok), None);
        let shadowed =
            rules("-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n-A PREROUTING -j CREDD\n");
        assert_eq!(
            order_problem("PREROUTING", &shadowed).unwrap(),
            "`-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER` comes before credd's jump in nat PREROUTING"
        );
        assert!(order_problem("OUTPUT", &rules("-A OUTPUT -j DOCKER\n"))
            .unwrap()
            .starts_with("no jump"));
        assert!(
            order_problem("OUTPUT", &rules("-A OUTPUT -j CREDD\n-A OUTPUT -j CREDD\n"))
                .unwrap()
                .starts_with("2 jumps")
        );
        // A jump with a match is not credd's plain jump.
        assert!(order_problem("OUTPUT", &rules("-A OUTPUT -d 10.0.0.1/32 -j CREDD\n")).is_some());
    }

    #[test]
    fn the_legacy_rule_is_what_older_versions_appended() {
        assert_eq!(
            legacy_rule("OUTPUT"),
            "OUTPUT -d 169.254.170.2/32 -p tcp --dport 80 -j DNAT --to-destination 169.254.170.2:9913"
        );
        assert!(dnat_rule().ends_with("--to-destination 169.254.170.2:9913"));
    }
}
