//! `credd status`, `credd profiles [link]` and `credd whoami`: what the
//! daemon serves, read from its status answer.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::client::call;
use crate::output::{human_secs, table};
use anyhow::{bail, Context, Result};
use credd_daemon::control::Request;
use serde_json::Value;

pub async fn status(j: crate::cli::JsonArg) -> Result<()> {
    let v = call(Request::Status).await?;
    if j.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_status(&v);
    }
    Ok(())
}

pub async fn profiles(p: crate::cli::ProfilesArgs) -> Result<()> {
    if let Some(crate::cli::ProfilesAction::Link { name, as_name }) = p.action {
        return link(&name, as_name).await;
    }
    let v = call(Request::Profiles).await?;
    if p.json {
        // The list of profiles as before; the warnings about the
        // files on stderr, so the document keeps its shape.
        for s in v["files"]["shadows"].as_array().into_iter().flatten() {
            eprintln!("warning: {}", s["message"].as_str().unwrap_or_default());
        }
        println!("{}", serde_json::to_string_pretty(&v["profiles"])?);
    } else {
        print_profiles(&v);
    }
    Ok(())
}

pub async fn whoami(a: crate::cli::ProfileArg) -> Result<()> {
    let v = call(Request::Whoami { profile: a.profile }).await?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

async fn link(name: &str, as_name: Option<String>) -> Result<()> {
    // Ask the daemon first: it knows whether NAME exists and its region.
    let ep = call(Request::Endpoint {
        profile: Some(name.to_string()),
    })
    .await?;
    let new = as_name.unwrap_or_else(|| format!("{name}-credd"));
    if new == name {
        bail!(
            "the linked profile needs a name of its own (--as): '{name}' already holds the source"
        );
    }
    let bin = std::env::current_exe().context("failed to find the credd binary's path")?;
    let bin = bin.display().to_string();
    let quoted = if bin.contains(' ') {
        format!("\"{bin}\"")
    } else {
        bin
    };
    // Keys under the new name in the credentials file would win over the
    // credential_process written here, in every SDK.
    let files = &ep["files"];
    if files["credentials_sections"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s.as_str() == Some(new.as_str()))
    {
        bail!(
            "[{new}] in {} holds credentials, which SDKs would use instead of credd's credential_process: \
             remove that section, or pick another name with --as",
            files["credentials_file"].as_str().unwrap_or("the credentials file")
        );
    }
    let mut body = vec![
        format!(
            "{} profiles link for profile '{name}'",
            crate::credfile::MARKER
        ),
        format!("credential_process = {quoted} credential-process {name}"),
    ];
    // The source profile's settings (region, endpoints, retries...), so the
    // linked profile behaves as the source does.
    body.extend(crate::child_env::settings_of(&ep).lines(&[]));
    let path = crate::credfile::config_path()?;
    crate::credfile::write_lines(&path, &format!("profile {new}"), &body)?;
    eprintln!(
        "wrote [profile {new}] in {}: tools using it get '{name}' from credd (AWS_PROFILE={new})",
        path.display()
    );
    Ok(())
}

fn print_status(v: &Value) {
    let d = &v["daemon"];
    println!(
        "credd {} (pid {}), endpoint {}{}",
        d["version"].as_str().unwrap_or("?"),
        d["pid"],
        d["container_url"].as_str().unwrap_or("?"),
        d["imds_url"]
            .as_str()
            .map(|u| format!(", IMDS {u}"))
            .unwrap_or_default()
    );
    if let Some(w) = d["docker_watch"].as_object() {
        println!(
            "docker: {}",
            w.get("state").and_then(|s| s.as_str()).unwrap_or("?")
        );
    }
    print_config_problems(d);
    print_shadows(v);
    let mut t = table(&["PROFILE", "STATE", "EXPIRES IN", "NEXT REFRESH", "SOURCE"]);
    let mut notes = Vec::new();
    for p in v["profiles"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default();
        t.add_row(vec![
            name.to_string(),
            p["state"].as_str().unwrap_or_default().to_string(),
            p["expires_in_secs"]
                .as_i64()
                .map(human_secs)
                .unwrap_or_else(|| "-".into()),
            p["next_refresh"].as_str().unwrap_or("-").to_string(),
            p["chain"].as_str().unwrap_or("-").to_string(),
        ]);
        if let Some(e) = p["last_error"].as_str() {
            notes.push(format!("{name}: {e}"));
        }
        for n in p["notes"].as_array().into_iter().flatten() {
            notes.push(format!("{name}: {}", n.as_str().unwrap_or_default()));
        }
    }
    println!("{t}");
    for n in notes {
        println!("  {n}");
    }
    let sessions = v["sso_sessions"].as_array().cloned().unwrap_or_default();
    if !sessions.is_empty() {
        let mut t = table(&[
            "SSO SESSION",
            "STATE",
            "TOKEN EXPIRES",
            "NEXT REFRESH",
            "START URL",
        ]);
        let mut hints = Vec::new();
        for s in &sessions {
            let state = s["state"].as_str().unwrap_or_default().replace('_', " ");
            t.add_row(vec![
                s["session"].as_str().unwrap_or_default().to_string(),
                state.clone(),
                s["token_expires"].as_str().unwrap_or("-").to_string(),
                s["next_refresh"].as_str().unwrap_or("-").to_string(),
                s["start_url"].as_str().unwrap_or_default().to_string(),
            ]);
            if state != "active" {
                hints.push(format!(
                    "{}: run `{}`{}",
                    s["session"].as_str().unwrap_or_default(),
                    s["login_command"].as_str().unwrap_or("credd login"),
                    s["last_error"]
                        .as_str()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ));
            }
        }
        println!("\n{t}");
        for h in hints {
            println!("  {h}");
        }
    }
}

/// The warning about what in the user's files wins over credd outside
/// `credd exec`/`credd env` (said once, before the tables).
fn print_shadows(v: &Value) {
    let shadows = v["files"]["shadows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if shadows.is_empty() {
        return;
    }
    println!("warning: your AWS files hold credentials that win over credd:");
    for s in &shadows {
        println!("  {}", s["message"].as_str().unwrap_or_default());
    }
    println!();
}

/// What is wrong with the AWS files, for `status` and `profiles` alike: a
/// file that cannot be used now (the last good version is served) and what
/// was ignored in them. The daemon's messages name file, line and column.
fn print_config_problems(d: &Value) {
    if let Some(e) = d["config_error"].as_str() {
        println!(
            "AWS config problem (serving the profiles from the last good version, if any): {e}"
        );
    }
    let notes = d["config_notes"].as_array().cloned().unwrap_or_default();
    if !notes.is_empty() {
        println!("Ignored in the AWS files:");
        for n in notes {
            println!("  {}", n.as_str().unwrap_or_default());
        }
    }
}

fn print_profiles(v: &Value) {
    print_config_problems(&v["daemon"]);
    print_shadows(v);
    let mut t = table(&["PROFILE", "SERVED FROM"]);
    let mut bad = Vec::new();
    for p in v["profiles"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default().to_string();
        if p["state"] == "misconfigured" {
            bad.push(format!(
                "{name}: {}",
                p["last_error"].as_str().unwrap_or("?")
            ));
        } else {
            t.add_row(vec![
                name,
                p["chain"].as_str().unwrap_or_default().to_string(),
            ]);
        }
    }
    println!("{t}");
    if !bad.is_empty() {
        println!("\nNot servable:");
        for b in bad {
            println!("  {b}");
        }
    }
}
