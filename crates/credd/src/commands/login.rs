//! `credd login`, `credd logout`, `credd sso accounts` and `credd sso
//! populate`: the IAM Identity Center commands, over the sign-in flow of
//! [`crate::login_flow`]; and `credd login --profile P` for `aws login`
//! (`login_session`) profiles, over [`crate::signin_flow`].
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::cli::{LoginArgs, SsoCommand};
use crate::login_flow::{
    device_login, pick_session, pkce_login, profiles, store, tell_daemon, Browser,
};
use crate::signin_flow::{self, Flow, Route, Target};
use anyhow::{anyhow, bail, Context, Result};
use credd_aws::sso::SsoClient;
use credd_core::format_expiration;
use credd_core::profile::RawProfiles;
use credd_core::profile::{sso_sessions, Base};
use credd_core::sso::{Loaded, SsoSession, SsoToken, TokenStore};
use std::path::{Path, PathBuf};

pub async fn login(a: LoginArgs) -> Result<()> {
    let (raw, config) = profiles().await?;
    if let Some(p) = a.profile.as_deref() {
        match signin_flow::route(&raw, p) {
            Route::SignIn(profile) => return console_login(&a, p, &raw, &profile, &config).await,
            Route::Refused(why) => bail!("{why}"),
            Route::NotSignIn => {}
        }
        if a.remote || a.region.is_some() || a.yes {
            bail!(
                "--remote, --region and --yes are for profiles signed in with console credentials (login_session); for IAM Identity Center use --device-code"
            );
        }
    }
    let (session, _) = pick_session(&raw, &config, a.session.as_deref(), a.profile.as_deref())?;
    let store = store()?;
    let client = SsoClient::from_env();
    // The CLI uses the device code for legacy profiles; so does credd.
    let device = a.device_code || session.name.is_none();
    let browser = Browser::System {
        open: !a.no_browser,
    };
    let (grant, reg) = if device {
        device_login(&store, &client, &session, browser).await?
    } else {
        pkce_login(&store, &client, &session, browser).await?
    };
    let token = SsoToken::from_grant(&session, grant, Some(&reg), crate::clock::now());
    store
        .save_token(&session, &token)
        .map_err(|e| anyhow!("{e}"))
        .context("failed to write the token to the SSO cache")?;
    crate::login_flow::record_sign_in(&session, &token);
    eprintln!(
        "Logged in to SSO session {} ({}). The token is valid until {}; credd refreshes it until \
the Identity Center session ends. Written to {}.",
        session.label(),
        session.start_url,
        format_expiration(token.expires_at),
        store.token_path(&session),
    );
    tell_daemon().await;
    Ok(())
}

/// `credd login --profile P` for an `aws login` session (see
/// [`crate::signin_flow`]).
async fn console_login(
    a: &LoginArgs,
    asked: &str,
    raw: &RawProfiles,
    profile: &str,
    config: &Path,
) -> Result<()> {
    let flow = if a.remote {
        Flow::CrossDevice
    } else {
        Flow::SameDevice(Browser::System {
            open: !a.no_browser,
        })
    };
    signin_flow::login(signin_flow::Options {
        asked,
        target: Target::new(raw, profile, a.region.as_deref())?,
        flow,
        yes: a.yes,
        config_file: config,
    })
    .await
}

pub async fn logout(session: Option<String>) -> Result<()> {
    let (raw, config) = profiles().await?;
    let targets: Vec<(SsoSession, String)> = match session.as_deref() {
        Some(_) => vec![pick_session(&raw, &config, session.as_deref(), None)?],
        // As `aws sso logout`: every session credd knows of.
        None => {
            let mut all: Vec<(SsoSession, String)> = sso_sessions(&raw)
                .into_iter()
                .filter_map(|(n, s)| s.ok().map(|s| (s, n)))
                .collect();
            for (name, plan) in credd_core::profile::resolve_all(&raw) {
                if let Ok(p) = plan {
                    if let Base::Sso(r) = p.base {
                        if !all.iter().any(|(s, _)| s == &r.session) {
                            all.push((r.session, name));
                        }
                    }
                }
            }
            all
        }
    };
    let store = store()?;
    let client = SsoClient::from_env();
    let mut any = false;
    for (s, _) in &targets {
        let token = match store.load_token(s).map_err(|e| anyhow!("{e}"))? {
            Loaded::Missing => continue,
            Loaded::Found(t, _) => Some(t),
            Loaded::Corrupt(..) => None,
        };
        if let Some(t) = token.filter(|t| t.usable(crate::clock::now())) {
            if let Err(e) = client.logout(s, &t.access_token).await {
                eprintln!("warning: the portal's Logout for {} failed: {e}", s.label());
            }
        }
        store.remove_token(s).map_err(|e| anyhow!("{e}"))?;
        eprintln!("Logged out of SSO session {}.", s.label());
        any = true;
    }
    if !any {
        eprintln!("No SSO session was logged in.");
    }
    tell_daemon().await;
    Ok(())
}

/// Every account and role the session's user is assigned.
async fn assignments(
    session: Option<&str>,
) -> Result<(
    SsoSession,
    Vec<(credd_aws::sso::Account, Vec<String>)>,
    PathBuf,
)> {
    let (raw, config) = profiles().await?;
    let (s, hint) = pick_session(&raw, &config, session, None)?;
    let store = store()?;
    let token = match store.load_token(&s).map_err(|e| anyhow!("{e}"))? {
        Loaded::Found(t, _) if t.usable(crate::clock::now()) => t,
        _ => bail!(
            "SSO session {} has no valid token: run `{}`",
            s.label(),
            s.login_command(&hint)
        ),
    };
    let client = SsoClient::from_env();
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message("listing accounts");
    let accounts = client
        .list_accounts(
            &s,
            &token.access_token,
            Some(&|n| pb.set_message(format!("listing accounts ({n})"))),
        )
        .await
        .map_err(|e| anyhow!("{e}"))?;
    pb.finish_and_clear();
    let bar = indicatif::ProgressBar::new(accounts.len() as u64);
    if accounts.len() > 5 {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} accounts")
                .expect("a valid template"),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut out = Vec::with_capacity(accounts.len());
    for a in accounts {
        let roles = client
            .list_account_roles(&s, &token.access_token, &a.id)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        bar.inc(1);
        out.push((a, roles));
    }
    bar.finish_and_clear();
    Ok((s, out, config))
}

pub async fn sso(cmd: SsoCommand) -> Result<()> {
    match cmd {
        SsoCommand::Accounts { session, json } => {
            let (s, list, _) = assignments(session.as_deref()).await?;
            if json {
                let v: Vec<serde_json::Value> = list
                    .iter()
                    .map(|(a, roles)| {
                        serde_json::json!({
                            "accountId": a.id, "accountName": a.name.as_deref().unwrap_or(&a.id),
                            "emailAddress": a.email, "roles": roles,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let mut t = crate::output::table(&["ACCOUNT", "NAME", "ROLES"]);
                for (a, roles) in &list {
                    t.add_row(vec![
                        a.id.clone(),
                        a.name.clone().unwrap_or_default(),
                        roles.join(", "),
                    ]);
                }
                println!("{t}");
                eprintln!(
                    "\n{} accounts. Add a profile for each role with `credd sso populate {}`.",
                    list.len(),
                    s.cache_key()
                );
            }
            Ok(())
        }
        SsoCommand::Populate {
            session,
            dry_run,
            prefix,
            region,
        } => populate(session, dry_run, prefix, region).await,
    }
}

async fn populate(
    session: String,
    dry_run: bool,
    prefix: Option<String>,
    region: Option<String>,
) -> Result<()> {
    use credd_aws::populate::{self, Assignment, PopulateOptions};
    let (_, list, config) = assignments(Some(&session)).await?;
    let assignments: Vec<Assignment> = list
        .iter()
        .flat_map(|(a, roles)| {
            roles.iter().map(|r| Assignment {
                account_id: a.id.clone(),
                account_name: a.name.clone().unwrap_or_else(|| a.id.clone()),
                role_name: r.clone(),
            })
        })
        .collect();
    let existing = match std::fs::read_to_string(&config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", config.display())),
    };
    let opts = PopulateOptions {
        session: session.clone(),
        prefix,
        region,
    };
    let plan = populate::plan(&existing, &assignments, &opts).map_err(|e| anyhow!("{e}"))?;
    for (name, why) in &plan.skipped {
        eprintln!("skipped [profile {name}]: {why}");
    }
    if dry_run {
        let d = populate::diff(&existing, &plan.new_text, &config.display().to_string());
        if d.is_empty() {
            eprintln!("no changes: {} is up to date", config.display());
        } else {
            print!("{d}");
        }
        return Ok(());
    }
    if !plan.changes_anything() {
        eprintln!(
            "no changes: {} already has a profile for every role ({} unchanged)",
            config.display(),
            plan.unchanged.len()
        );
        return Ok(());
    }
    // Planned again under the lock, on the file as it is then (another
    // command or tool may have changed it since the read above).
    let applied = populate::apply(&config, &assignments, &opts).map_err(|e| anyhow!("{e}"))?;
    let plan = applied.plan;
    eprintln!(
        "{}: added {}, updated {}, unchanged {}{}",
        config.display(),
        plan.added.len(),
        plan.updated.len(),
        plan.unchanged.len(),
        applied
            .backup
            .map(|b| format!("; the previous file is {}", b.display()))
            .unwrap_or_default()
    );
    for n in &plan.added {
        eprintln!("  + [profile {n}]");
    }
    for n in &plan.updated {
        eprintln!("  ~ [profile {n}]");
    }
    tell_daemon().await;
    Ok(())
}
