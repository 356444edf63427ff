//! `credd audit [--since D] [--json]`: what credd vended, from the audit log.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::client::parse_ttl;
use crate::output::table;
use anyhow::Result;

pub fn run(a: crate::cli::AuditArgs) -> Result<()> {
    let path = crate::environment::state_dir().join("audit.log");
    let cutoff = match &a.since {
        Some(d) => {
            let secs = parse_ttl(d)?;
            Some(crate::clock::now() - time::Duration::seconds(secs as i64))
        }
        None => None,
    };
    let records: Vec<_> = credd_daemon::audit::read_all(&path)
        .into_iter()
        .filter(|r| match cutoff {
            Some(c) => credd_core::credentials::parse_timestamp(&r.time).is_ok_and(|t| t >= c),
            None => true,
        })
        .collect();
    if a.json {
        for r in &records {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    if records.is_empty() {
        eprintln!(
            "no credentials vended{} (log: {})",
            a.since
                .as_deref()
                .map(|s| format!(" in the last {s}"))
                .unwrap_or_default(),
            path.display()
        );
        return Ok(());
    }
    let mut t = table(&["TIME", "PROFILE", "ENDPOINT", "TOKEN", "PEER", "VENDS"]);
    for r in records {
        t.add_row(vec![
            r.time,
            r.profile,
            r.endpoint,
            r.token_id.unwrap_or_else(|| "-".into()),
            r.peer,
            r.count.to_string(),
        ]);
    }
    println!("{t}");
    Ok(())
}
