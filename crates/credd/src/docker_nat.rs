//! The nat rules behind `credd docker setup` and `credd doctor`: credd's own
//! chain `CREDD`, jumped to from the top of PREROUTING and OUTPUT, DNATs
//! 169.254.170.2:80 to credd's unprivileged container listener; docker's
//! own DNAT for a container publishing port 80 must never come first.
//!
//! Layering: a leaf; it imports nothing from this crate.

use anyhow::{bail, Context, Result};
use std::process::Command;

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

pub fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// The DNAT rule inside [`CHAIN`] (as `iptables` arguments after the chain).
pub fn dnat_rule() -> String {
    format!("-d {ADDR}/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination {ADDR}:{PORT}")
}

/// The jump from a built-in chain, as `iptables -S` prints it.
pub fn jump_line(hook: &str) -> String {
    format!("-A {hook} -j {CHAIN}")
}

/// The rule older versions appended to PREROUTING and OUTPUT (after
/// docker's own, hence shadowed by a container publishing port 80).
pub fn legacy_rule(hook: &str) -> String {
    format!("{hook} -d {ADDR}/32 -p tcp --dport 80 -j DNAT --to-destination {ADDR}:{PORT}")
}

pub fn iptables(args: &str) -> Vec<String> {
    words(&format!("iptables -t nat {args}"))
}

pub fn output(cmd: &[String]) -> Result<std::process::Output> {
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
pub fn run_quiet(cmd: &[String]) -> Result<bool> {
    let o = output(cmd)?;
    Ok(o.status.success() && (cmd[0] != "ip" || !o.stdout.is_empty()))
}

pub fn run_loud(cmd: &[String]) -> Result<()> {
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

pub fn rules_of(listing: &str) -> Vec<String> {
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
