//! The client commands: each sends one request over the control socket and
//! prints the answer for a person (or as JSON with `--json`).

use crate::cli::{Command, EnvArgs, Shell, TokenCommand};
use anyhow::{bail, Context, Result};
use credd_daemon::control::{self, Request};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn socket_path() -> PathBuf {
    credd_daemon::control_socket_path(&credd_daemon::config::runtime_dir(&crate::serve::env_var))
}

pub async fn call(req: Request) -> Result<Value> {
    Ok(control::call(&socket_path(), &req).await?)
}

pub fn parse_ttl(s: &str) -> Result<u64> {
    Ok(credd_core::duration::parse(s)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .as_secs())
}

pub async fn run(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Serve(a) => crate::serve::run(a).await.map(|_| ExitCode::SUCCESS),
        Command::Service(s) => crate::service::run(s).await,
        Command::Exec(a) => crate::exec::run(a).await,
        Command::Env(a) => env(a).await.map(|_| ExitCode::SUCCESS),
        Command::CredentialProcess(a) => {
            // Never reads stdin and never prompts: an IDE runs this with no
            // terminal and a time limit.
            let v = call(Request::ProcessCredentials { profile: a.profile }).await?;
            println!("{}", serde_json::to_string(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::WriteCredentials(a) => {
            let name = a
                .as_name
                .clone()
                .unwrap_or_else(|| format!("{}-temp", a.profile));
            let v = call(Request::Credentials {
                profile: a.profile.clone(),
            })
            .await?;
            let path = credd_aws::credfile::credentials_path()?;
            credd_aws::credfile::write_section(&path, &name, &a.profile, &v)?;
            eprintln!(
                "wrote [{name}] in {} (expires {}); every other section is unchanged",
                path.display(),
                v["Expiration"].as_str().unwrap_or("?")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Mfa(a) => mfa(a).await.map(|_| ExitCode::SUCCESS),
        Command::Login(a) => crate::sso_cmd::login(a).await.map(|_| ExitCode::SUCCESS),
        Command::Logout { session } => crate::sso_cmd::logout(session)
            .await
            .map(|_| ExitCode::SUCCESS),
        Command::Sso(c) => crate::sso_cmd::sso(c).await.map(|_| ExitCode::SUCCESS),
        Command::Demo(a) => crate::demo::run(a).await,
        Command::Status(j) => {
            let v = call(Request::Status).await?;
            if j.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_status(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Profiles(crate::cli::ProfilesArgs {
            action: Some(crate::cli::ProfilesAction::Link { name, as_name }),
            ..
        }) => link(&name, as_name).await.map(|_| ExitCode::SUCCESS),
        Command::Profiles(j) => {
            let v = call(Request::Profiles).await?;
            if j.json {
                // The list of profiles as before; the warnings about the
                // files on stderr, so the document keeps its shape.
                for s in v["files"]["shadows"].as_array().into_iter().flatten() {
                    eprintln!("warning: {}", s["message"].as_str().unwrap_or_default());
                }
                println!("{}", serde_json::to_string_pretty(&v["profiles"])?);
            } else {
                print_profiles(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Whoami(a) => {
            let v = call(Request::Whoami { profile: a.profile }).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(t) => token(t).await.map(|_| ExitCode::SUCCESS),
        Command::Audit(a) => audit(a).map(|_| ExitCode::SUCCESS),
        Command::Relay { listen, to } => crate::relay_cmd::run(&listen, &to)
            .await
            .map(|_| ExitCode::SUCCESS),
        Command::Docker(d) => match d {
            crate::cli::DockerCommand::Setup { undo, print } => {
                crate::docker::setup(undo, print).map(|_| ExitCode::SUCCESS)
            }
            crate::cli::DockerCommand::Args { profile, token_ttl } => {
                crate::docker::args(&profile, &token_ttl)
                    .await
                    .map(|_| ExitCode::SUCCESS)
            }
            crate::cli::DockerCommand::Run {
                profile,
                token_ttl,
                docker_args,
            } => crate::docker::run(&profile, &token_ttl, &docker_args).await,
            crate::cli::DockerCommand::Ps { json } => {
                crate::docker::ps(json).await.map(|_| ExitCode::SUCCESS)
            }
        },
        Command::Doctor => crate::doctor::run(),
    }
}

async fn mfa(a: crate::cli::MfaArgs) -> Result<()> {
    let serial = call(Request::MfaSerial {
        profile: a.profile.clone(),
    })
    .await?;
    let code = match a.code {
        Some(c) => c,
        None => {
            eprint!(
                "MFA code for {} (profile '{}'): ",
                serial["serial"].as_str().unwrap_or("?"),
                a.profile
            );
            std::io::stderr().flush().ok();
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("failed to read the MFA code from the terminal")?;
            line.trim().to_string()
        }
    };
    if code.is_empty() || !code.chars().all(|c| c.is_ascii_digit()) {
        bail!(
            "an MFA code is digits only (got {} characters); try again with a fresh code",
            code.len()
        );
    }
    let v = call(Request::Mfa {
        profile: a.profile.clone(),
        code,
    })
    .await?;
    eprintln!(
        "MFA session started for '{}'; it lasts until {}. Profiles built on it refresh without a new code until then.",
        a.profile,
        v["expires"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// Issues a token for `profile` and writes it to a 0600 file; a container's
/// token is bound to `docker_engine` (revoked when its container is removed).
pub async fn issue_token_file(
    profile: &str,
    ttl: &str,
    label: String,
    docker_engine: Option<String>,
) -> Result<(PathBuf, String)> {
    let v = call(Request::TokenIssue {
        profiles: vec![profile.to_string()],
        ttl_secs: Some(parse_ttl(ttl)?),
        label,
        docker_engine,
    })
    .await?;
    let token = v["token"].as_str().context("the daemon sent no token")?;
    let id = v["record"]["id"]
        .as_str()
        .context("the daemon sent no id")?
        .to_string();
    let dir = credd_daemon::config::runtime_dir(&crate::serve::env_var).join("tokens");
    let path = dir.join(&id);
    credd_daemon::fsutil::write_private(&path, token.as_bytes())
        .context("failed to write the token file")?;
    Ok((path, id))
}

pub fn endpoint_url(base: &str, profile: &str) -> String {
    format!("{base}/{}", credd_daemon::segment::encode(profile))
}

async fn env(a: EnvArgs) -> Result<()> {
    let mut vars: Vec<(String, Option<String>)> = Vec::new();
    if a.static_keys {
        let ep = call(Request::Endpoint {
            profile: Some(a.profile.clone()),
        })
        .await?;
        let c = call(Request::Credentials {
            profile: a.profile.clone(),
        })
        .await?;
        if a.format == Shell::Json {
            println!("{}", serde_json::to_string_pretty(&c)?);
            return Ok(());
        }
        // Keys in the environment win over every profile, but an explicit
        // AWS_PROFILE makes the AWS CLI ignore them.
        for v in ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"] {
            vars.push((v.into(), None));
        }
        for (var, key) in [
            ("AWS_ACCESS_KEY_ID", "AccessKeyId"),
            ("AWS_SECRET_ACCESS_KEY", "SecretAccessKey"),
            ("AWS_SESSION_TOKEN", "SessionToken"),
            ("AWS_CREDENTIAL_EXPIRATION", "Expiration"),
        ] {
            vars.push((var.into(), c[key].as_str().map(str::to_string)));
        }
        if let Some(r) = ep["region"].as_str() {
            vars.push(("AWS_REGION".into(), Some(r.to_string())));
            vars.push(("AWS_DEFAULT_REGION".into(), Some(r.to_string())));
        }
    } else {
        let env = crate::exec::child_env(
            &a.profile,
            &crate::exec::Options {
                imds: a.imds,
                keep_aws_config: a.keep_aws_config,
                token_ttl: a.token_ttl.clone(),
                label: format!("env {}", a.profile),
            },
        )
        .await?;
        vars = env.vars;
    }
    let vars: Vec<(&str, Option<String>)> =
        vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    print!("{}", render_env(a.format, &vars));
    Ok(())
}

/// Renders variables in the AWS CLI's export shapes (`None` = unset; `null`
/// in JSON).
pub fn render_env(format: Shell, vars: &[(&str, Option<String>)]) -> String {
    let mut out = String::new();
    if format == Shell::Json {
        let m: serde_json::Map<String, Value> = vars
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.as_ref().map_or(Value::Null, |v| Value::String(v.clone())),
                )
            })
            .collect();
        return serde_json::to_string_pretty(&m).expect("serializes") + "\n";
    }
    for (k, v) in vars {
        let line = match (format, v) {
            (Shell::Sh, Some(v)) => format!("export {k}={}", sh_quote(v)),
            (Shell::Sh, None) => format!("unset {k}"),
            (Shell::Fish, Some(v)) => format!("set -gx {k} {}", sh_quote(v)),
            (Shell::Fish, None) => format!("set -e {k}"),
            (Shell::Powershell, Some(v)) => {
                format!("$Env:{k}=\"{}\"", v.replace('`', "``").replace('"', "`\""))
            }
            (Shell::Powershell, None) => {
                format!("Remove-Item Env:{k} -ErrorAction SilentlyContinue")
            }
            (Shell::Cmd, Some(v)) => format!("set {k}={v}"),
            (Shell::Cmd, None) => format!("set {k}="),
            (Shell::Json, _) => unreachable!(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn sh_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/:._-+=%@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

async fn token(t: TokenCommand) -> Result<()> {
    match t {
        TokenCommand::Issue(a) => {
            let ttl = a.ttl.as_deref().map(parse_ttl).transpose()?;
            let v = call(Request::TokenIssue {
                profiles: a.profiles,
                ttl_secs: ttl,
                label: a.label,
                docker_engine: None,
            })
            .await?;
            let token = v["token"].as_str().context("no token in the answer")?;
            match a.file {
                Some(path) => {
                    // Never through a symlink, never changing a directory
                    // credd did not create, refusing one others can write
                    // to; no lock (the directory may be a shared one).
                    let opts = credd_aws::userfile::Options {
                        check_dir: true,
                        merge: true,
                        lock: false,
                        ..credd_aws::userfile::Options::private_file()
                    };
                    credd_aws::userfile::replace(&path, &opts, token.as_bytes()).with_context(
                        || {
                            format!(
                                "failed to write the token file (token {} was issued: revoke it with `credd token revoke {}`)",
                                v["record"]["id"].as_str().unwrap_or("?"),
                                v["record"]["id"].as_str().unwrap_or("?")
                            )
                        },
                    )?;
                    eprintln!(
                        "token {} written to {} (expires {})",
                        v["record"]["id"].as_str().unwrap_or("?"),
                        path.display(),
                        v["record"]["expires"].as_str().unwrap_or("never")
                    );
                }
                None => {
                    println!("{token}");
                    eprintln!(
                        "token id {} (expires {}); revoke with `credd token revoke {}`",
                        v["record"]["id"].as_str().unwrap_or("?"),
                        v["record"]["expires"].as_str().unwrap_or("never"),
                        v["record"]["id"].as_str().unwrap_or("?"),
                    );
                }
            }
        }
        TokenCommand::List(j) => {
            let v = call(Request::TokenList).await?;
            if j.json {
                println!("{}", serde_json::to_string_pretty(&v["tokens"])?);
            } else {
                let mut t = table(&["ID", "PROFILES", "EXPIRES", "LABEL"]);
                for r in v["tokens"].as_array().into_iter().flatten() {
                    let profiles: Vec<&str> = r["profiles"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.as_str())
                        .collect();
                    t.add_row(vec![
                        r["id"].as_str().unwrap_or_default().to_string(),
                        profiles.join(","),
                        r["expires"].as_str().unwrap_or("never").to_string(),
                        r["label"].as_str().unwrap_or_default().to_string(),
                    ]);
                }
                println!("{t}");
            }
        }
        TokenCommand::Revoke(a) => {
            // A whole token is sent as a value, never as an id (which an
            // error message would repeat).
            let req = match a.id {
                Some(v) if v.trim().starts_with(credd_core::token::PREFIX) => {
                    Request::TokenRevokeBy {
                        token: Some(v),
                        label: None,
                        all: false,
                    }
                }
                Some(id) => Request::TokenRevoke { id },
                None => Request::TokenRevokeBy {
                    token: None,
                    label: a.label,
                    all: a.all,
                },
            };
            let v = call(req).await?;
            let ids: Vec<&str> = v["ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match ids.as_slice() {
                [] => eprintln!("no token to revoke"),
                [one] => eprintln!("token {one} revoked"),
                many => eprintln!("{} tokens revoked: {}", many.len(), many.join(", ")),
            }
        }
    }
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
            credd_aws::credfile::MARKER
        ),
        format!("credential_process = {quoted} credential-process {name}"),
    ];
    // The source profile's settings (region, endpoints, retries...), so the
    // linked profile behaves as the source does.
    body.extend(crate::exec::settings_of(&ep).lines(&[]));
    let path = credd_aws::credfile::config_path()?;
    credd_aws::credfile::write_lines(&path, &format!("profile {new}"), &body)?;
    eprintln!(
        "wrote [profile {new}] in {}: tools using it get '{name}' from credd (AWS_PROFILE={new})",
        path.display()
    );
    Ok(())
}

// A one-shot command, not the daemon: it reads the wall clock directly.
#[allow(clippy::disallowed_methods)]
fn audit(a: crate::cli::AuditArgs) -> Result<()> {
    let path = credd_daemon::config::state_dir(&crate::serve::env_var).join("audit.log");
    let cutoff = match &a.since {
        Some(d) => {
            let secs = parse_ttl(d)?;
            Some(time::OffsetDateTime::now_utc() - time::Duration::seconds(secs as i64))
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

pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

fn human_secs(s: i64) -> String {
    if s <= 0 {
        return "expired".into();
    }
    credd_core::duration::fmt_secs(s as u64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_shapes_match_the_aws_cli() {
        let vars = [
            ("AWS_ACCESS_KEY_ID", Some("ASIA1".to_string())),
            ("AWS_SESSION_TOKEN", Some("a b'c".to_string())),
            ("AWS_PROFILE", None),
        ];
        assert_eq!(
            render_env(Shell::Sh, &vars),
            "export AWS_ACCESS_KEY_ID=ASIA1\nexport AWS_SESSION_TOKEN='a b'\\''c'\nunset AWS_PROFILE\n"
        );
        assert!(
            render_env(Shell::Powershell, &vars).starts_with("$Env:AWS_ACCESS_KEY_ID=\"ASIA1\"\n")
        );
        assert!(render_env(Shell::Cmd, &vars).starts_with("set AWS_ACCESS_KEY_ID=ASIA1\n"));
        assert!(render_env(Shell::Fish, &vars).starts_with("set -gx AWS_ACCESS_KEY_ID ASIA1\n"));
        let j: Value = serde_json::from_str(&render_env(Shell::Json, &vars)).unwrap();
        assert_eq!(j["AWS_ACCESS_KEY_ID"], "ASIA1");
        assert!(j["AWS_PROFILE"].is_null() && j.get("AWS_PROFILE").is_some());
    }
}
