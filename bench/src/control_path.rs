//! `credd-bench --control-path`: what one `credd credential-process
//! PROFILE` costs end to end (process start, the control socket, the
//! daemon's answer, the JSON on stdout) as the number of profiles in
//! `~/.aws/config` grows. The daemons for every profile count run at the
//! same time and the calls alternate between them, so whatever else the
//! machine does falls on each count alike; the report gives the median of
//! `--samples` calls per count and its ratio to the smallest count (target:
//! 10,000 / 20 ≤ 1.3, issue 12). See `docs/benchmarks.md`.

use crate::daemon::{self, Daemon};
use anyhow::{bail, Context};
use std::path::Path;
use std::time::{Duration, Instant};

/// The target for the largest count over the smallest.
const TARGET_RATIO: f64 = 1.3;

/// One timed `credd credential-process PROFILE` against `d`.
fn one_call(d: &Daemon, profile: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let o = d
        .cli()
        .args(["credential-process", profile])
        .output()
        .context("cannot run credd credential-process")?;
    let took = started.elapsed();
    if !o.status.success() {
        bail!(
            "credd credential-process {profile} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).context("credential-process printed no JSON")?;
    if v["Version"] != 1 || v["AccessKeyId"].as_str().is_none() {
        bail!("credential-process {profile} printed an unexpected document");
    }
    Ok(took)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Starts one daemon per profile count, warms `p01` in each, then times
/// `samples` calls per daemon, alternating, and prints a markdown report.
pub fn run(bin: &Path, counts: &[usize], samples: usize, warmup: usize) -> anyhow::Result<()> {
    if counts.is_empty() || samples == 0 {
        bail!("--control-profiles and --samples must not be empty or zero");
    }
    let mut daemons = Vec::new();
    for &n in counts {
        eprintln!("starting credd with {n} profiles...");
        let names = daemon::profile_names(n);
        let started = Instant::now();
        let d = Daemon::start(bin, &names, None)?;
        eprintln!("  ready in {:.1} s", started.elapsed().as_secs_f64());
        // The first call fetches p01 (credential_process); the rest are
        // served from the cache, which is the path measured.
        for _ in 0..warmup.max(1) {
            one_call(&d, &names[0])?;
        }
        daemons.push((n, d, names[0].clone()));
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(samples); daemons.len()];
    for i in 0..samples {
        // The order rotates every round, so no count always goes first.
        for k in 0..daemons.len() {
            let j = (i + k) % daemons.len();
            let (_, d, p) = &daemons[j];
            times[j].push(one_call(d, p)?);
        }
    }
    let medians: Vec<Duration> = times.iter_mut().map(|t| median(t)).collect();
    let base = medians[0];
    println!("## credd credential-process latency by profile count\n");
    println!(
        "{} calls per count, alternating between the daemons; median, p90 and ratio to {} profiles.\n",
        samples, daemons[0].0
    );
    println!("| profiles | median ms | p90 ms | ratio |");
    println!("|---:|---:|---:|---:|");
    for (j, (n, _, _)) in daemons.iter().enumerate() {
        let t = &times[j];
        let p90 = t[(t.len() * 9 / 10).min(t.len() - 1)];
        println!(
            "| {n} | {:.2} | {:.2} | {:.2} |",
            ms(medians[j]),
            ms(p90),
            medians[j].as_secs_f64() / base.as_secs_f64()
        );
    }
    let worst = medians[medians.len() - 1].as_secs_f64() / base.as_secs_f64();
    println!(
        "\n{}: {} / {} profiles = {:.2} (target ≤ {TARGET_RATIO})",
        if worst <= TARGET_RATIO {
            "PASS"
        } else {
            "FAIL"
        },
        daemons[daemons.len() - 1].0,
        daemons[0].0,
        worst
    );
    Ok(())
}
