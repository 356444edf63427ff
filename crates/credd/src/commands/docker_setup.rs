//! `setup [--undo] [--print]` (root): puts 169.254.170.2 on a dummy
//!   interface `credd0` and DNATs its port 80 to credd's unprivileged
//!   container listener (169.254.170.2:9913), so containers on a bridge
//!   network reach credd at the address SDKs accept over plain http. The
//!   DNAT lives in a nat chain of its own, `CREDD`, jumped to from the *top*
//!   of PREROUTING and OUTPUT: docker's own DNAT for a container publishing
//!   port 80 must never see a request meant for credd (it would carry the
//!   caller's token to that container). Idempotent; also repairs the order
//!   when docker has put its rules first; says every change.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::docker_nat::*;
use anyhow::{bail, Result};

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
