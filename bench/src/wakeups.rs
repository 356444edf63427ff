//! `credd-bench --wakeups`: what an idle daemon costs a laptop's battery.
//! Starts credd with `--wakeup-profiles` profiles (50 by default), fetches
//! each once so every one is cached and has a refresh scheduled, then does
//! nothing for `--wakeup-secs` (600 by default) while it reads, once a
//! minute, every daemon thread's `voluntary_ctxt_switches` and
//! `nonvoluntary_ctxt_switches` (`/proc/PID/task/TID/status`) and the
//! process's CPU time (`/proc/PID/stat`). A thread that blocks and is woken
//! again counts one voluntary switch, so the voluntary count over the idle
//! window is the number of wake-ups. Reading `/proc` does not wake the
//! daemon. See `docs/benchmarks.md`.

use crate::daemon::{self, Daemon};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Context switches per thread name at one instant: (voluntary, involuntary).
fn switches(pid: u32) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(status) = std::fs::read_to_string(t?.path().join("status")) else {
            continue; // the thread ended between the listing and the read
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        let name = field("Name:").unwrap_or_default();
        let vol = field("voluntary_ctxt_switches:").and_then(|v| v.parse().ok());
        let inv = field("nonvoluntary_ctxt_switches:").and_then(|v| v.parse().ok());
        let e = out.entry(name).or_default();
        e.0 += vol.unwrap_or(0);
        e.1 += inv.unwrap_or(0);
    }
    Ok(out)
}

fn total(m: &BTreeMap<String, (u64, u64)>) -> (u64, u64) {
    m.values().fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1))
}

pub fn run(bin: &Path, profiles: usize, secs: u64, settle: u64) -> anyhow::Result<()> {
    let names = daemon::profile_names(profiles);
    eprintln!("starting credd with {profiles} profiles...");
    let d = Daemon::start(bin, &names, None)?;
    let token = d.issue_token(&names)?;
    for p in &names {
        d.get_credentials(p, &token)
            .with_context(|| format!("warming {p}"))?;
    }
    // Let the warm-up's connections close and the audit writer drain.
    std::thread::sleep(Duration::from_secs(settle));
    let pid = d.pid();
    let start_sw = switches(pid)?;
    let start_cpu = crate::cpu::pid_ticks(pid).unwrap_or(0);
    let started = Instant::now();
    let mut per_minute = Vec::new();
    let mut last = total(&start_sw).0;
    eprintln!("idle for {secs} s...");
    while started.elapsed() < Duration::from_secs(secs) {
        let left = Duration::from_secs(secs).saturating_sub(started.elapsed());
        std::thread::sleep(left.min(Duration::from_secs(60)));
        let now = total(&switches(pid)?).0;
        per_minute.push(now - last);
        last = now;
    }
    let end_sw = switches(pid)?;
    let end_cpu = crate::cpu::pid_ticks(pid).unwrap_or(0);
    let elapsed = started.elapsed().as_secs_f64();
    let (v0, i0) = total(&start_sw);
    let (v1, i1) = total(&end_sw);
    println!("## credd idle: wake-ups and CPU\n");
    println!(
        "{profiles} profiles, all cached; {elapsed:.0} s idle after a {settle} s settle; credd `{}`.\n",
        bin.display()
    );
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| wake-ups (voluntary switches), all threads | {} |",
        v1 - v0
    );
    println!(
        "| wake-ups per minute | {:.2} |",
        (v1 - v0) as f64 * 60.0 / elapsed
    );
    println!("| involuntary switches | {} |", i1 - i0);
    println!(
        "| CPU time (user + system) | {:.0} ms |",
        (end_cpu.saturating_sub(start_cpu)) as f64 * 1000.0 / crate::cpu::TICKS_PER_SEC
    );
    println!(
        "| RSS at the end | {:.1} MB |",
        d.rss_kib()? as f64 / 1024.0
    );
    println!("\nPer thread name (voluntary switches over the window):\n");
    println!("| thread | wake-ups |");
    println!("|---|---:|");
    for (name, (v, _)) in &end_sw {
        let before = start_sw.get(name).map(|x| x.0).unwrap_or(0);
        println!("| {name} | {} |", v.saturating_sub(before));
    }
    println!(
        "\nPer minute: {}",
        per_minute
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
