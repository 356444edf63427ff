//! `credd status` and `credd profiles [link]`: what the daemon serves,
//! read from its status answer.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::client::call;
use crate::output::{fit, human_secs, table};
use anyhow::{bail, Context, Result};
use credd_core::overlay::Findings;
use credd_daemon::control::Request;
use credd_daemon::protocol::{DaemonInfo, EndpointReply, Files, StatusReply};
use serde_json::Value;

pub async fn status(j: crate::cli::JsonArg) -> Result<()> {
    if j.json {
        // The daemon's document as it sent it.
        let v: Value = call(Request::Status).await?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_status(&call(Request::Status).await?);
    }
    Ok(())
}

pub async fn profiles(p: crate::cli::ProfilesArgs) -> Result<()> {
    if let Some(crate::cli::ProfilesAction::Link { name, as_name }) = p.action {
        return link(&name, as_name).await;
    }
    let v: StatusReply = call(Request::Profiles).await?;
    if p.json {
        // The list of profiles as before; the warnings about the
        // files on stderr, so the document keeps its shape (through a
        // `Value`, keys sorted as the daemon sends them).
        for s in v.files.findings().shadows {
            eprintln!("warning: {}", s.message);
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::to_value(&v.profiles)?)?
        );
    } else {
        print_profiles(&v);
    }
    Ok(())
}

async fn link(name: &str, as_name: Option<String>) -> Result<()> {
    // Ask the daemon first: it knows whether NAME exists and its region.
    let ep: EndpointReply = call(Request::Endpoint {
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
    let files = match &ep.files {
        Files::Found(f) => Some(f),
        Files::Unreadable { .. } => None,
    };
    if files.is_some_and(|f| f.credentials_sections.contains(&new)) {
        bail!(
            "[{new}] in {} holds credentials, which SDKs would use instead of credd's credential_process: \
             remove that section, or pick another name with --as",
            files.map_or("the credentials file", |f| f.credentials_file.as_str())
        );
    }
    let mut body = vec![
        format!(
            "{} profiles link for profile '{name}'",
            credd_aws::credfile::MARKER
        ),
        format!("credential_process = {quoted} credential-process {name}"),
    ];
    // The source profile's settings (region, endpoints, retries...), so the
    // linked profile behaves as the source does.
    body.extend(crate::child_env::settings_of(&ep).lines(&[]));
    let path = credd_aws::credfile::config_path()?;
    credd_aws::credfile::write_lines(&path, &format!("profile {new}"), &body)?;
    eprintln!(
        "wrote [profile {new}] in {}: tools using it get '{name}' from credd (AWS_PROFILE={new})",
        path.display()
    );
    Ok(())
}

fn print_status(v: &StatusReply) {
    let d = &v.daemon;
    let head = format!(
        "credd {} (pid {}), endpoint {}{}",
        d.version,
        d.pid,
        d.container_url,
        d.imds_url
            .as_deref()
            .map(|u| format!(", IMDS {u}"))
            .unwrap_or_default()
    );
    println!("{}", fit("", &head));
    if let Some(w) = &d.docker_watch {
        println!("{}", fit("", &format!("docker: {}", w.state)));
    }
    print_config_problems(d);
    print_shadows(&v.files.findings());
    for note in crate::keystore::age_notes(crate::clock::now()) {
        println!("{}", fit("", &format!("warning: {note}")));
    }
    let mut t = table(&["PROFILE", "STATE", "EXPIRES IN", "NEXT REFRESH", "SOURCE"]);
    let mut notes = Vec::new();
    for p in &v.profiles {
        let name = &p.name;
        t.add_row(vec![
            name.to_string(),
            p.state.clone(),
            p.expires_in_secs
                .map(human_secs)
                .unwrap_or_else(|| "-".into()),
            p.next_refresh.clone().unwrap_or_else(|| "-".into()),
            p.chain.clone().unwrap_or_else(|| "-".into()),
        ]);
        if let Some(e) = &p.last_error {
            notes.push(format!("{name}: {e}"));
        }
        for n in &p.notes {
            notes.push(format!("{name}: {n}"));
        }
    }
    println!("{t}");
    for n in notes {
        println!("{}", fit("  ", &n));
    }
    if !v.sso_sessions.is_empty() {
        let mut t = table(&[
            "SSO SESSION",
            "STATE",
            "TOKEN EXPIRES",
            "NEXT REFRESH",
            "START URL",
        ]);
        let mut hints = Vec::new();
        for s in &v.sso_sessions {
            let state = s.state.label();
            t.add_row(vec![
                s.session.clone(),
                state.to_string(),
                s.token_expires.clone().unwrap_or_else(|| "-".into()),
                s.next_refresh.clone().unwrap_or_else(|| "-".into()),
                s.start_url.clone(),
            ]);
            if state != "active" {
                hints.push(format!(
                    "{}: run `{}`{}",
                    s.session,
                    s.login_command,
                    s.last_error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ));
            }
        }
        println!("\n{t}");
        for h in hints {
            println!("{}", fit("  ", &h));
        }
    }
    print_login_sessions(v);
    print_sessions(v);
}

/// Every session a person keeps alive (MFA, SSO, `aws login`), in one
/// table: which profiles ride on it, when it ends, what it needs then.
fn print_sessions(v: &StatusReply) {
    if v.sessions.is_empty() {
        return;
    }
    let mut t = table(&["SESSION", "KIND", "STATE", "ENDS IN", "PROFILES"]);
    let mut then = Vec::new();
    for s in &v.sessions {
        t.add_row(vec![
            s.name.clone(),
            s.kind.clone(),
            s.state.clone(),
            // `~`: an estimated end (an Identity Center session's sign-in
            // plus its configured length).
            s.ends_in_secs
                .map(|x| {
                    format!(
                        "{}{}",
                        if s.ends_estimated { "~" } else { "" },
                        human_secs(x)
                    )
                })
                .unwrap_or_else(|| "-".into()),
            s.profiles.join(", "),
        ]);
        if let Some(src) = &s.ends_source {
            then.push(format!("{}: ends {src}", s.name));
        }
        then.push(format!("{}: then needs {}", s.name, s.needed_then));
    }
    println!("\n{t}");
    for h in then {
        println!("{}", fit("  ", &h));
    }
}

/// The `aws login` sessions (`credd status` and `credd profiles`): each
/// session's credentials, when credd last got and next renews them, the
/// profiles on it, and the way out when one needs a new sign-in.
fn print_login_sessions(v: &StatusReply) {
    if v.login_sessions.is_empty() {
        return;
    }
    let mut t = table(&[
        "LOGIN SESSION",
        "STATE",
        "EXPIRES IN",
        "LAST REFRESH",
        "NEXT REFRESH",
        "PROFILES",
    ]);
    let mut hints = Vec::new();
    for s in &v.login_sessions {
        t.add_row(vec![
            s.session.clone(),
            s.state.clone(),
            s.expires_in_secs
                .map(human_secs)
                .unwrap_or_else(|| "-".into()),
            s.last_refresh.clone().unwrap_or_else(|| "-".into()),
            s.next_refresh.clone().unwrap_or_else(|| "-".into()),
            s.profiles.join(", "),
        ]);
        if s.state == "login required" || s.state == "failing" {
            hints.push(format!(
                "{}: {}",
                s.session,
                s.last_error
                    .clone()
                    .unwrap_or_else(|| format!("run `{}`", s.login_command))
            ));
        }
    }
    println!("\n{t}");
    for h in hints {
        println!("{}", fit("  ", &h));
    }
}

/// The warning about what in the user's files wins over credd outside
/// `credd exec`/`credd env` (said once, before the tables).
fn print_shadows(files: &Findings) {
    if files.shadows.is_empty() {
        return;
    }
    println!(
        "{}",
        fit(
            "",
            "warning: your AWS files hold credentials that win over credd:"
        )
    );
    for s in &files.shadows {
        println!("{}", fit("  ", &s.message));
    }
    println!();
}

/// What is wrong with the AWS files, for `status` and `profiles` alike: a
/// file that cannot be used now (the last good version is served) and what
/// was ignored in them. The daemon's messages name file, line and column.
fn print_config_problems(d: &DaemonInfo) {
    if let Some(e) = &d.config_error {
        let problem = format!(
            "AWS config problem (serving the profiles from the last good version, if any): {e}"
        );
        println!("{}", fit("", &problem));
    }
    if !d.config_notes.is_empty() {
        println!("Ignored in the AWS files:");
        for n in &d.config_notes {
            println!("{}", fit("  ", n));
        }
    }
}

fn print_profiles(v: &StatusReply) {
    print_config_problems(&v.daemon);
    print_shadows(&v.files.findings());
    let mut t = table(&["PROFILE", "SERVED FROM"]);
    let mut bad = Vec::new();
    for p in &v.profiles {
        let name = p.name.clone();
        if p.state == "misconfigured" {
            bad.push(format!(
                "{name}: {}",
                p.last_error.as_deref().unwrap_or("?")
            ));
        } else {
            t.add_row(vec![name, p.chain.clone().unwrap_or_default()]);
        }
    }
    println!("{t}");
    if !bad.is_empty() {
        println!("\nNot servable:");
        for b in bad {
            println!("{}", fit("  ", &b));
        }
    }
    print_login_sessions(v);
}
