//! `credd-bench --peers`: credd side by side with the tools its users would
//! otherwise run, in one run, alternating the tools round by round. Every
//! tool gets the same throw-away HOME (one `~/.aws`: long-term keys in
//! profile `base`, profile `bench` assuming a role from it) and the same
//! upstream (moto behind [`crate::upstream`]'s fault proxy, given as
//! `AWS_ENDPOINT_URL_STS`, or `STS_ENDPOINT` for the ECS local endpoints).
//!
//! Measured: the container path (req/s and p99 at each connection count),
//! one `credential_process` call (a new process each time), the cold path
//! (the first request for a profile never asked for before, against the
//! upstream's own AssumeRole latency), and a slow (2 s) and a down upstream
//! (time to an answer for an already cached profile, and whether one came).
//!
//! aws-sso-cli speaks only IAM Identity Center: it and a second credd
//! column (`credd-sso`, the same daemon serving an SSO profile) share one
//! `credd-sandbox` behind a second fault proxy, switched with the first
//! (`sso.rs`).
//!
//! The peers are built by `bench/peers/setup.sh` (pinned, outside the repo);
//! a peer whose binary is missing is reported as not run, with the reason.

mod sso;
mod tools;

use crate::load;
use crate::upstream::{Fault, Upstream};
use anyhow::bail;
use sso::SsoUpstream;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
pub use tools::Options;
use tools::{
    cold_endpoint, get, process_call, start_credd, start_ecs_local, start_granted,
    start_roles_anywhere, start_vault, Tool, World,
};

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|_| "unknown".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn p99(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = (0.99 * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Every value measured, by row then tool.
type Table = BTreeMap<String, BTreeMap<&'static str, String>>;

pub fn run(o: &Options, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let started = Instant::now();
    let load_start = loadavg();
    let up = Upstream::start(&o.python, &o.moto_script, rt)?;
    let names = [
        "credd",
        "aws-vault",
        "granted",
        "ecs-local-endpoints",
        "rolesanywhere-serve",
        "credd-sso",
        "aws-sso",
    ];
    let cold_of = |n: &'static str| {
        (1..=o.rounds)
            .map(move |r| format!("cold-{n}-{r}"))
            .chain((1..=o.rounds).map(move |r| format!("coldp-{n}-{r}")))
    };
    let is_sso = |n: &str| n == "credd-sso" || n == "aws-sso";
    // AssumeRole profiles (moto) for the STS tools; roles in the sandbox's
    // account for the two Identity Center columns.
    let cold: Vec<String> = names
        .iter()
        .filter(|n| !is_sso(n))
        .flat_map(|n| cold_of(n))
        .collect();
    let sso_roles: Vec<String> = std::iter::once("bench".to_string())
        .chain(names.iter().filter(|n| is_sso(n)).flat_map(|n| cold_of(n)))
        .collect();
    let sso_up = match SsoUpstream::start(&o.sandbox, &sso_roles, rt) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("credd-sandbox: {e:#}: aws-sso and credd-sso not run");
            None
        }
    };
    let extra = if sso_up.is_some() {
        sso::credd_config(&sso_roles)
    } else {
        String::new()
    };
    let w = World::new(up.url(), &cold, &extra)?;
    let ra = up.roles_anywhere(rt)?;
    // Every call an upstream answered: moto's STS, the fake Roles Anywhere
    // and the sandbox's portal and OIDC.
    let sts = || -> anyhow::Result<u64> {
        Ok(up.sts_calls()?
            + ra.calls.load(std::sync::atomic::Ordering::SeqCst)
            + sso_up.as_ref().map(|s| s.calls()).transpose()?.unwrap_or(0))
    };
    let bin = |n: &str| o.peers_dir.join("bin").join(n);
    let mut tools = Vec::new();
    let mut not_run: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, r: anyhow::Result<Tool>| match r {
        Ok(t) => tools.push(t),
        Err(e) => {
            eprintln!("{name}: not run: {e:#}");
            not_run.push((name.to_string(), format!("{e:#}")));
        }
    };
    let credd = start_credd(&w, &o.credd, &cold, sso_up.as_ref().map(|s| s.url()));
    let credd_sso = match (&credd, &sso_up) {
        (Ok(c), Some(_)) => Some(sso::credd_sso_tool(&w, c, &o.credd, &sso_roles)),
        _ => None,
    };
    add("credd", credd);
    let vault = bin("aws-vault");
    add(
        "aws-vault",
        if vault.exists() {
            start_vault(&w, &vault)
        } else {
            Err(anyhow::anyhow!("{} not built", vault.display()))
        },
    );
    let granted = bin("granted");
    add(
        "granted",
        if granted.exists() {
            Ok(start_granted(&granted))
        } else {
            Err(anyhow::anyhow!("{} not built", granted.display()))
        },
    );
    let ecs = bin("amazon-ecs-local-container-endpoints");
    add(
        "ecs-local-endpoints",
        if ecs.exists() {
            start_ecs_local(&w, &ecs)
        } else {
            Err(anyhow::anyhow!("{} not built", ecs.display()))
        },
    );
    let helper = bin("rolesanywhere-credential-helper");
    add(
        "rolesanywhere-serve",
        if helper.exists() {
            start_roles_anywhere(&w, &helper, ra.addr)
        } else {
            Err(anyhow::anyhow!("{} not built", helper.display()))
        },
    );

    if let Some(t) = credd_sso {
        add("credd-sso", t);
    }
    let aws_sso = bin("aws-sso");
    match &sso_up {
        Some(s) if aws_sso.exists() => add("aws-sso", sso::start_aws_sso(&w, &aws_sso, s)),
        Some(_) => add(
            "aws-sso",
            Err(anyhow::anyhow!("{} not built", aws_sso.display())),
        ),
        None => add(
            "aws-sso",
            Err(anyhow::anyhow!("credd-sandbox did not start")),
        ),
    }

    // Warm every tool on `bench` once, and keep the first answer's bytes.
    let mut expected: BTreeMap<&str, Arc<[u8]>> = BTreeMap::new();
    for t in &tools {
        if let Some(e) = &t.endpoint {
            let (st, body, _) = get(e, &e.path)?;
            if st != 200 {
                bail!(
                    "{}: warming GET {} gave {st}: {}",
                    t.name,
                    e.path,
                    String::from_utf8_lossy(&body)
                );
            }
            expected.insert(t.name, body.into());
        }
        if let Some(argv) = &t.process {
            let (ok, _) = process_call(&w, t, argv, "bench");
            if !ok {
                eprintln!("{}: warming credential_process for bench failed", t.name);
            }
        }
    }
    let upstream_lat: Vec<f64> = (0..20)
        .map(|_| up.assume_role_latency().map(|d| d.as_secs_f64() * 1e3))
        .collect::<anyhow::Result<_>>()?;
    let upstream_ms = median(upstream_lat);
    eprintln!("upstream AssumeRole: median {upstream_ms:.1} ms");
    let portal_ms = match &sso_up {
        Some(s) => median(
            (0..20)
                .map(|_| s.portal_latency().map(|d| d.as_secs_f64() * 1e3))
                .collect::<anyhow::Result<_>>()?,
        ),
        None => f64::NAN,
    };

    let mut http: BTreeMap<(usize, &str), Vec<load::RunStats>> = BTreeMap::new();
    let mut proc_ms: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut proc_fail: BTreeMap<&str, usize> = BTreeMap::new();
    let mut cold_http: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut cold_proc: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    // STS calls moto saw, and the requests or calls that caused them.
    let mut sts_http: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
    let mut sts_proc: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
    let mut sts_cold: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut sts_cold_proc: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for round in 1..=o.rounds {
        // Alternate: rotate the tools' order every round.
        let order: Vec<usize> = (0..tools.len())
            .map(|i| (i + round - 1) % tools.len())
            .collect();
        for &c in &o.connections {
            for &i in &order {
                let t = &tools[i];
                let Some(e) = &t.endpoint else { continue };
                let req = e.request();
                let exp = expected[t.name].clone();
                let calls_before = sts()?;
                let s = rt.block_on(load::run_same_length(
                    e.addr, req, exp, c, o.warmup, o.duration,
                ));
                match s {
                    Ok(s) => {
                        eprintln!(
                            "round {round} {c:>3} conn {:<20} {:>8.0} req/s p99 {:>8.1} us",
                            t.name, s.rps, s.p99_us
                        );
                        let calls = sts()?.saturating_sub(calls_before);
                        let e = sts_http.entry(t.name).or_default();
                        e.0 += calls;
                        // The warm-up's requests made calls too.
                        e.1 += s.rps * (o.duration + o.warmup).as_secs_f64();
                        http.entry((c, t.name)).or_default().push(s);
                    }
                    Err(err) => eprintln!("round {round} {c} conn {}: {err:#}", t.name),
                }
            }
        }
        for &i in &order {
            let t = &tools[i];
            let Some(argv) = &t.process else { continue };
            let calls_before = sts()?;
            for _ in 0..o.calls {
                let (ok, d) = process_call(&w, t, argv, "bench");
                if ok {
                    proc_ms
                        .entry(t.name)
                        .or_default()
                        .push(d.as_secs_f64() * 1e3);
                } else {
                    *proc_fail.entry(t.name).or_default() += 1;
                }
            }
            let e = sts_proc.entry(t.name).or_default();
            e.0 += sts()?.saturating_sub(calls_before);
            e.1 += o.calls as f64;
        }
        for &i in &order {
            let t = &mut tools[i];
            let name = t.name;
            let bin_path = if name == "aws-vault" {
                vault.clone()
            } else {
                o.credd.clone()
            };
            let p = format!("cold-{name}-{round}");
            let calls_before = sts()?;
            if let Some((e, path, pre)) = cold_endpoint(&w, t, &bin_path, &p)? {
                let (st, _, d) = get(&e, &path)?;
                let d = d + pre;
                if st == 200 {
                    cold_http
                        .entry(name)
                        .or_default()
                        .push(d.as_secs_f64() * 1e3);
                    sts_cold
                        .entry(name)
                        .or_default()
                        .push(sts()?.saturating_sub(calls_before));
                } else {
                    eprintln!("{name}: cold GET {path}: {st}");
                }
            }
            if let Some(argv) = t.process.clone() {
                let calls_before = sts()?;
                let (ok, d) = process_call(&w, t, &argv, &format!("coldp-{name}-{round}"));
                if ok {
                    cold_proc
                        .entry(name)
                        .or_default()
                        .push(d.as_secs_f64() * 1e3);
                    sts_cold_proc
                        .entry(name)
                        .or_default()
                        .push(sts()?.saturating_sub(calls_before));
                }
            }
        }
    }

    // Faults, once per tool: the warm profile with a slow, then a down STS.
    let mut faults: Table = Table::new();
    for (fault, label) in [(Fault::Slow, "slow (2 s)"), (Fault::Down, "down")] {
        up.set(fault);
        if let Some(s) = &sso_up {
            s.set(fault);
        }
        for t in &tools {
            if let Some(e) = &t.endpoint {
                let r = get(e, &e.path);
                let cell = match r {
                    Ok((200, _, d)) => format!("{:.1} ms, served", d.as_secs_f64() * 1e3),
                    Ok((st, _, d)) => format!("{:.1} ms, **{st}**", d.as_secs_f64() * 1e3),
                    Err(err) => format!("error: {err}"),
                };
                faults
                    .entry(format!("endpoint, STS {label}: time to answer"))
                    .or_default()
                    .insert(t.name, cell);
            }
            if let Some(argv) = &t.process {
                let (ok, d) = process_call(&w, t, argv, "bench");
                faults
                    .entry(format!("credential_process, STS {label}: time to answer"))
                    .or_default()
                    .insert(
                        t.name,
                        format!(
                            "{:.1} ms, {}",
                            d.as_secs_f64() * 1e3,
                            if ok { "served" } else { "**failed**" }
                        ),
                    );
            }
        }
    }
    up.set(Fault::None);
    if let Some(s) = &sso_up {
        s.set(Fault::None);
    }

    let mut table = Table::new();
    for &c in &o.connections {
        for (name, v) in http.iter().filter(|((cc, _), _)| *cc == c) {
            let rps = median(v.iter().map(|s| s.rps).collect());
            let p = median(v.iter().map(|s| s.p99_us).collect());
            table
                .entry(format!("endpoint, {c} conn: req/s"))
                .or_default()
                .insert(name.1, format!("{rps:.0}"));
            table
                .entry(format!("endpoint, {c} conn: p99 (µs)"))
                .or_default()
                .insert(name.1, format!("{p:.0}"));
        }
    }
    for (name, v) in &proc_ms {
        table
            .entry("credential_process: median (ms)".into())
            .or_default()
            .insert(name, format!("{:.1}", median(v.clone())));
        table
            .entry("credential_process: p99 (ms)".into())
            .or_default()
            .insert(name, format!("{:.1}", p99(v.clone())));
    }
    for (name, n) in &proc_fail {
        table
            .entry("credential_process: failed calls".into())
            .or_default()
            .insert(name, n.to_string());
    }
    // The upstream's own latency is in the header line: a cold answer is
    // that plus the tool's own work (the probe opens a new connection, so a
    // tool that keeps one open to STS can come in under it).
    for (name, v) in &cold_http {
        table
            .entry("cold, endpoint: first request (ms)".into())
            .or_default()
            .insert(name, format!("{:.1}", median(v.clone())));
    }
    for (name, (calls, reqs)) in &sts_http {
        table
            .entry("endpoint: STS calls per request".into())
            .or_default()
            .insert(name, format!("{:.4}", *calls as f64 / reqs.max(1.0)));
    }
    for (name, (calls, n)) in &sts_proc {
        table
            .entry("credential_process: STS calls per call".into())
            .or_default()
            .insert(name, format!("{:.2}", *calls as f64 / n.max(1.0)));
    }
    for (name, v) in &sts_cold {
        table
            .entry("cold, endpoint: STS calls made".into())
            .or_default()
            .insert(name, format!("{v:?}"));
    }
    for (name, v) in &cold_proc {
        table
            .entry("cold, credential_process: first call (ms)".into())
            .or_default()
            .insert(name, format!("{:.1}", median(v.clone())));
    }
    for (name, v) in &sts_cold_proc {
        table
            .entry("cold, credential_process: STS calls made".into())
            .or_default()
            .insert(name, format!("{v:?}"));
    }
    table.extend(faults);

    let cols: Vec<&str> = tools.iter().map(|t| t.name).collect();
    println!("\n## credd-bench --peers\n");
    println!("Machine: {}", crate::machine());
    // No noise guard here (five tools, not two): the load average says how
    // busy the machine was with other work.
    println!(
        "Load average (1, 5, 15 min) at start: {load_start}; at the end: {}",
        loadavg()
    );
    println!(
        "{} rounds (tools rotated every round); endpoint runs {} s + {} s warm-up; {} credential_process calls per tool and round; upstream moto behind the fault proxy, its own AssumeRole latency {upstream_ms:.1} ms (median of 20); for credd-sso and aws-sso credd-sandbox behind a second one, its portal's own latency {portal_ms:.1} ms (median of 20 GetRoleCredentials refused for want of a token); {:.0} s in all.\n",
        o.rounds,
        o.duration.as_secs_f64(),
        o.warmup.as_secs_f64(),
        o.calls,
        started.elapsed().as_secs_f64()
    );
    println!("| measure | {} |", cols.join(" | "));
    println!("|---|{}", "---:|".repeat(cols.len()));
    for (row, cells) in &table {
        let v: Vec<String> = cols
            .iter()
            .map(|c| cells.get(c).cloned().unwrap_or_else(|| "n/a".into()))
            .collect();
        println!("| {row} | {} |", v.join(" | "));
    }
    for (name, why) in &not_run {
        println!("\nNot run: {name}: {why}");
    }
    Ok(())
}
