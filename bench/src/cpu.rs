//! How much of the machine something else used during a run: the CPU time
//! `/proc/stat` counts as busy minus what the bench, the bare server and
//! credd themselves used (`/proc/PID/stat`), as a share of all CPU time. On
//! a 2-core machine a compiler or test run in the background moves the
//! numbers far more than anything being measured, so every run reports it,
//! along with the time the hypervisor gave to other guests (steal).

/// CPU counters at one instant, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    busy: u64,
    idle: u64,
    steal: u64,
    ours: u64,
}

/// Reads the counters; `pids` are the processes that belong to the run
/// (this one is always included).
pub fn snapshot(pids: &[u32]) -> Snapshot {
    let (busy, idle, steal) = machine().unwrap_or((0, 0, 0));
    let ours = std::iter::once("self".to_string())
        .chain(pids.iter().map(u32::to_string))
        .filter_map(|p| process_ticks(&p))
        .sum();
    Snapshot {
        busy,
        idle,
        steal,
        ours,
    }
}

/// Percent of CPU time between `a` and `b` stolen by the hypervisor.
pub fn steal_pct(a: Snapshot, b: Snapshot) -> f64 {
    let steal = b.steal.saturating_sub(a.steal);
    let all = b.busy.saturating_sub(a.busy) + b.idle.saturating_sub(a.idle) + steal;
    if all == 0 {
        return 0.0;
    }
    100.0 * steal as f64 / all as f64
}

/// Percent of all CPU time between `a` and `b` used by other processes
/// (kernel work not charged to a process, such as softirqs, is left out).
pub fn foreign_pct(a: Snapshot, b: Snapshot) -> f64 {
    let busy = b.busy.saturating_sub(a.busy);
    let all = busy + b.idle.saturating_sub(a.idle);
    if all == 0 {
        return 0.0;
    }
    let foreign = busy.saturating_sub(b.ours.saturating_sub(a.ours));
    100.0 * foreign as f64 / all as f64
}

/// (user + nice + system, idle + iowait, steal) from the `cpu` line of
/// `/proc/stat`.
fn machine() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    Some((get(0) + get(1) + get(2), get(3) + get(4), get(7)))
}

/// Linux reports process and machine CPU time in USER_HZ ticks, which is
/// 100 per second on every architecture Linux supports today.
pub const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime of a process (all its threads), in ticks.
pub fn pid_ticks(pid: u32) -> Option<u64> {
    process_ticks(&pid.to_string())
}

fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces and parens);
    // utime and stime are fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}
