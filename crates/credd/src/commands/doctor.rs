//! `credd doctor`: checks the container path of docs/docker.md, one line
//! per check with `ok`/`FAIL` (and `skip` where it needs root), each
//! failure with its fix; exits non-zero when any check fails.
//!
//! The check that matters most is the order of the nat rules: a container
//! publishing port 80 makes docker DNAT every local address's port 80 to
//! it, and unless credd's jump comes first in PREROUTING and OUTPUT the
//! requests meant for credd, with their token, go to that container.
//! Reading the nat table needs root; the HTTP probes do not, and from the
//! host they see the shadowing too (something other than credd answers at
//! 169.254.170.2:80).
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::docker_nat::{
    jump_line, nat_rules, order_problem, ADDR, CHAIN, HOOKS, IFACE, LEGACY_ADDR, PORT,
};
use anyhow::Result;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitCode};
use std::time::Duration;

const FIX_SETUP: &str = "run `sudo credd docker setup`, and install systemd/credd-docker-setup.service so it re-runs after every docker start (docs/docker.md)";

#[derive(Default)]
struct Report {
    failed: usize,
}

impl Report {
    fn ok(&mut self, what: &str) {
        println!("ok    {what}");
    }
    fn fail(&mut self, what: &str, fix: &str) {
        self.failed += 1;
        println!("FAIL  {what}\n      fix: {fix}");
    }
    fn skip(&mut self, what: &str) {
        println!("skip  {what}");
    }
    fn finish(self) -> ExitCode {
        if self.failed == 0 {
            println!("all checks passed");
            ExitCode::SUCCESS
        } else {
            println!("{} check(s) failed", self.failed);
            ExitCode::FAILURE
        }
    }
}

pub fn run() -> Result<ExitCode> {
    let mut r = Report::default();
    let root = rustix::process::geteuid().is_root();
    println!("credd doctor: the container path ({ADDR}, docs/docker.md)");
    let local = addresses(&mut r);
    if root {
        nat(&mut r);
    } else {
        r.skip("nat PREROUTING/OUTPUT order: reading iptables needs root (run `sudo credd doctor`); the probe through port 80 below still sees a shadowed path from this host");
    }
    if !local {
        // The address may be routed off this machine: probe nothing there.
        r.skip(&format!(
            "probes of {ADDR}:{PORT} and {ADDR}:80: the address is not on this machine"
        ));
        return Ok(r.finish());
    }
    let listener = probe(&format!("{ADDR}:{PORT}"));
    match &listener {
        Ok(()) => r.ok(&format!("credd's container listener answers at {ADDR}:{PORT}")),
        Err(e) => r.fail(
            &format!("credd's container listener at {ADDR}:{PORT}: {e}"),
            &format!("start credd with `extra_listen = [\"{ADDR}:{PORT}\"]` in credd.toml (or `credd serve --also-listen {ADDR}:{PORT}`)"),
        ),
    }
    match probe(&format!("{ADDR}:80")) {
        Ok(()) => r.ok(&format!("http://{ADDR}/ (port 80) reaches credd from this host")),
        Err(e) if listener.is_ok() => r.fail(
            &format!("http://{ADDR}/ (port 80) from this host: {e}: the DNAT is missing or shadowed (a container publishing port 80 would receive the callers' tokens)"),
            FIX_SETUP,
        ),
        Err(e) => r.fail(
            &format!("http://{ADDR}/ (port 80) from this host: {e}"),
            "fix the listener above first",
        ),
    }
    Ok(r.finish())
}

/// Whether 169.254.170.2 is on this machine (on any interface).
fn addresses(r: &mut Report) -> bool {
    let show = |a: &str| {
        Command::new("ip")
            .args(["-o", "addr", "show", "to", &format!("{a}/32")])
            .output()
    };
    let mut local = false;
    match show(ADDR) {
        Err(e) => r.fail(
            &format!("address {ADDR}: cannot run `ip` ({e})"),
            "install iproute2",
        ),
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            match text.split_whitespace().nth(1) {
                Some(dev) if o.status.success() => {
                    local = true;
                    let dev = dev.trim_end_matches(':');
                    if dev == IFACE || dev == "lo" {
                        r.ok(&format!("address {ADDR}/32 on {dev}"))
                    } else {
                        r.fail(
                            &format!("address {ADDR}/32 is on {dev}, not on {IFACE} or lo"),
                            &format!("remove it there (`sudo ip addr del {ADDR}/32 dev {dev}`), then {FIX_SETUP}"),
                        )
                    }
                }
                _ => r.fail(&format!("address {ADDR}/32 is on no interface"), FIX_SETUP),
            }
        }
    }
    if let Ok(o) = show(LEGACY_ADDR) {
        if !o.stdout.is_empty() {
            r.skip(&format!("{LEGACY_ADDR} is still on an interface (an older credd added it; nothing serves it): `sudo credd docker setup` removes it"));
        }
    }
    local
}

fn nat(r: &mut Report) {
    match nat_rules(CHAIN) {
        Err(_) => r.fail(&format!("nat chain {CHAIN} is missing"), FIX_SETUP),
        Ok(rules) => {
            let dnat = format!("--to-destination {ADDR}:{PORT}");
            if rules.len() == 1 && rules[0].contains(&dnat) {
                r.ok(&format!(
                    "nat chain {CHAIN}: DNAT {ADDR}:80 -> {ADDR}:{PORT}"
                ))
            } else {
                r.fail(
                    &format!(
                        "nat chain {CHAIN} does not hold exactly credd's DNAT rule: {rules:?}"
                    ),
                    FIX_SETUP,
                )
            }
        }
    }
    for hook in HOOKS {
        match nat_rules(hook) {
            Err(e) => r.fail(&format!("nat {hook}: {e:#}"), "install iptables"),
            Ok(rules) => match order_problem(hook, &rules) {
                None => r.ok(&format!("nat {hook}: credd's jump (`{}`) is first", jump_line(hook))),
                Some(p) if p.starts_with("no jump") => {
                    r.fail(&format!("nat {hook}: {p}"), FIX_SETUP)
                }
                Some(p) => r.fail(
                    &format!("nat {hook}: {p}: requests to {ADDR}:80 can reach something else first (engines and firewall reloads may put their rules on top)"),
                    FIX_SETUP,
                ),
            },
        }
        // An older credd appended its DNAT straight to the built-in chain.
        if let Ok(rules) = nat_rules(hook) {
            if rules.iter().any(|l| {
                l.starts_with(&format!("-A {hook} "))
                    && l.contains(&format!("--to-destination {ADDR}:{PORT}"))
            }) {
                r.fail(
                    &format!("nat {hook} still holds an older credd's DNAT rule (appended after docker's)"),
                    "run `sudo credd docker setup`: it replaces it",
                );
            }
        }
    }
}

/// `GET /v1/health` without a token (nothing secret is ever sent), with
/// the bare address as Host (as behind the DNAT): `Ok` when credd's
/// answer comes back. Hand-written on a `TcpStream` because credd-daemon is
/// the only crate that imports an HTTP stack, and this needs only the
/// status line and a short body.
fn probe(addr: &str) -> std::result::Result<(), String> {
    let sa: SocketAddr = addr.parse().map_err(|e| format!("{e}"))?;
    let timeout = Duration::from_secs(2);
    let mut s =
        TcpStream::connect_timeout(&sa, timeout).map_err(|e| format!("cannot connect ({e})"))?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    s.write_all(
        format!("GET /v1/health HTTP/1.1\r\nHost: {ADDR}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("cannot send ({e})"))?;
    let mut buf = Vec::new();
    let _ = s.take(64 * 1024).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    if text.is_empty() {
        return Err("no HTTP answer within 2 s: something other than credd holds it".into());
    }
    let status = text.lines().next().unwrap_or_default().trim().to_string();
    if status.starts_with("HTTP/1.1 200") && text.ends_with(r#"{"status":"ok"}"#) {
        Ok(())
    } else {
        Err(format!("something other than credd answers (`{status}`)"))
    }
}
