//! The IAM Identity Center commands, run in the CLI process: `credd login`
//! (authorization code with PKCE and a loopback redirect, or the device
//! code), `credd logout`, `credd sso accounts` and `credd sso populate`.
//!
//! Tokens go to `~/.aws/sso/cache` exactly as the AWS CLI v2 writes them, so
//! `aws` and every SDK use them too; the daemon is then told to re-read the
//! cache. The daemon itself never starts a login.

use crate::cli::{LoginArgs, SsoCommand};
use anyhow::{anyhow, bail, Context, Result};
use credd_aws::sso::{PollOutcome, SsoClient};
use credd_aws::sso_cache::FileTokenStore;
use credd_aws::{load_profiles, ProfileEnv};
use credd_core::profile::{resolve, sso_sessions, Base, RawProfiles};
use credd_core::sso::{
    ClientRegistration, Loaded, RegistrationRequest, SsoSession, SsoToken, TokenStore,
    GRANT_AUTHORIZATION_CODE, GRANT_DEVICE_CODE,
};
use credd_core::{format_expiration, SecretString};
use credd_daemon::callback::{CallbackResult, CallbackServer};
use credd_daemon::control::{ClientError, Request};
use std::path::PathBuf;
use std::time::Duration;
use time::OffsetDateTime;

/// How long a login waits for the browser (the AWS CLI waits 10 minutes).
const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);

pub fn store() -> Result<FileTokenStore> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("HOME is not set: cannot find ~/.aws/sso/cache"))?;
    Ok(FileTokenStore::new(FileTokenStore::default_dir(&home)))
}

async fn profiles() -> Result<(RawProfiles, PathBuf)> {
    let env = ProfileEnv::from_process_env();
    let loaded = load_profiles(&env)
        .await
        .context("failed to read the AWS config")?;
    Ok((loaded.raw, loaded.config_path))
}

/// The session a command is about: named, through a profile, or the only
/// one there is. Returns it with a profile name for legacy login hints.
pub fn pick_session(
    raw: &RawProfiles,
    config: &std::path::Path,
    session: Option<&str>,
    profile: Option<&str>,
) -> Result<(SsoSession, String)> {
    let sessions = sso_sessions(raw);
    if let Some(p) = profile {
        let plan = resolve(raw, p).map_err(|e| anyhow!("{e}"))?;
        return match plan.base {
            Base::Sso(r) => Ok((r.session, p.to_string())),
            other => bail!(
                "profile '{p}' is not an IAM Identity Center profile (it is served from {})",
                other.describe()
            ),
        };
    }
    let names: Vec<&String> = sessions.keys().collect();
    let name = match session {
        Some(s) => s.to_string(),
        None => match names.as_slice() {
            [one] => one.to_string(),
            [] => bail!(
                "there is no [sso-session NAME] section in {}: add one (`aws configure sso-session`), \
or name a legacy SSO profile with --profile",
                config.display()
            ),
            many => bail!(
                "{} has several SSO sessions ({}): name one, e.g. `credd login {}`",
                config.display(),
                many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                many[0]
            ),
        },
    };
    match sessions.get(&name) {
        Some(Ok(s)) => Ok((s.clone(), name)),
        Some(Err(kind)) => bail!("{kind}"),
        None => bail!(
            "there is no [sso-session {name}] in {}{}",
            config.display(),
            if names.is_empty() {
                String::new()
            } else {
                format!(
                    " (there is: {})",
                    names
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
    }
}

/// Tells a running daemon to re-read the AWS files and the SSO cache.
async fn tell_daemon() {
    match crate::commands::call(Request::Reload).await {
        Ok(_) => {}
        Err(e)
            if e.chain()
                .any(|c| matches!(c.downcast_ref(), Some(ClientError::NotRunning(_)))) =>
        {
            eprintln!("(the credd daemon is not running; it will use the token when it starts)");
        }
        Err(e) => eprintln!("warning: could not tell the daemon: {e:#}"),
    }
}

fn spinner(message: String) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"),
    );
    pb.set_message(message);
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

fn left(deadline: tokio::time::Instant) -> String {
    let s = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .as_secs();
    format!("{}:{:02} left", s / 60, s % 60)
}

/// How the sign-in page is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Browser {
    /// The user's browser (`$BROWSER` or the desktop's default), or none.
    System { open: bool },
    /// `credd demo`: a stand-in that follows the sandbox's redirects.
    StandIn,
}

impl Browser {
    fn opens(self) -> bool {
        !matches!(self, Browser::System { open: false })
    }
    fn open(self, url: &str) {
        match self {
            Browser::System { open: false } => {}
            Browser::System { open: true } => {
                if let Err(e) = webbrowser::open(url) {
                    eprintln!("(could not open a browser: {e}; open the URL above yourself)");
                }
            }
            Browser::StandIn => {
                let url = url.to_string();
                tokio::spawn(async move {
                    if let Err(e) = credd_daemon::callback::visit(&url).await {
                        eprintln!("the stand-in browser failed: {e}");
                    }
                });
            }
        }
    }
}

/// A cached registration that suits `grant`, or a new one (saved for
/// sso-session sessions, where the AWS CLI will find it too).
// A one-shot command, not the daemon: it reads the wall clock directly.
#[allow(clippy::disallowed_methods)]
async fn registration(
    store: &dyn TokenStore,
    client: &SsoClient,
    session: &SsoSession,
    request: RegistrationRequest,
    grant: &str,
) -> Result<ClientRegistration> {
    let now = OffsetDateTime::now_utc();
    if let Ok(Loaded::Found(r, _)) = store.load_registration(session) {
        let suits = match &r.grant_types {
            Some(g) => g.iter().any(|x| x == grant),
            // The device-code registrations the CLI caches list no grants.
            None => grant == GRANT_DEVICE_CODE,
        };
        if suits && !r.needs_renewal(now) {
            return Ok(r);
        }
    }
    let r = client
        .register_client(session, &request)
        .await
        .map_err(|e| anyhow!("{e}"))
        .context("failed to register credd with IAM Identity Center")?;
    if session.name.is_some() {
        if let Err(e) = store.save_registration(session, &r) {
            eprintln!("warning: could not cache the client registration: {e}");
        }
    }
    Ok(r)
}

// A one-shot command, not the daemon: it reads the wall clock directly.
#[allow(clippy::disallowed_methods)]
pub async fn login(a: LoginArgs) -> Result<()> {
    let (raw, config) = profiles().await?;
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
    let token = SsoToken::from_grant(&session, grant, Some(&reg), OffsetDateTime::now_utc());
    store
        .save_token(&session, &token)
        .map_err(|e| anyhow!("{e}"))
        .context("failed to write the token to the SSO cache")?;
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

async fn device_login(
    store: &dyn TokenStore,
    client: &SsoClient,
    session: &SsoSession,
    browser: Browser,
) -> Result<(credd_core::sso::TokenGrant, ClientRegistration)> {
    let reg = registration(
        store,
        client,
        session,
        RegistrationRequest::device_code(session),
        GRANT_DEVICE_CODE,
    )
    .await?;
    let auth = client
        .start_device_authorization(session, &reg)
        .await
        .map_err(|e| anyhow!("{e}"))
        .context("failed to start the sign-in")?;
    eprintln!(
        "To sign in to {}, open this page (on any device):\n\n  {}\n\nand check that it shows the code\n\n  {}\n",
        session.start_url, auth.verification_uri, auth.user_code
    );
    if let Some(complete) = &auth.verification_uri_complete {
        eprintln!("Or open this link, which fills in the code:\n\n  {complete}\n");
    }
    if browser.opens() {
        eprintln!("Opening it in your browser...");
    }
    browser.open(
        auth.verification_uri_complete
            .as_deref()
            .unwrap_or(&auth.verification_uri),
    );
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(auth.expires_in_secs.max(1) as u64);
    let mut interval = Duration::from_secs(auth.interval_secs.max(1) as u64);
    let pb = spinner(format!("Waiting for the sign-in ({})", left(deadline)));
    loop {
        let wake = tokio::time::Instant::now() + interval;
        while tokio::time::Instant::now() < wake {
            tokio::time::sleep(Duration::from_millis(250).min(interval)).await;
            pb.set_message(format!("Waiting for the sign-in ({})", left(deadline)));
        }
        if tokio::time::Instant::now() >= deadline {
            pb.finish_and_clear();
            bail!("the sign-in request expired before it was approved: run `credd login` again");
        }
        match client.poll_device_token(session, &reg, &auth).await {
            Ok(PollOutcome::Pending) => {}
            Ok(PollOutcome::SlowDown) => interval += Duration::from_secs(5),
            Ok(PollOutcome::Granted(g)) => {
                pb.finish_and_clear();
                return Ok((g, reg));
            }
            Err(e) => {
                pb.finish_and_clear();
                return Err(anyhow!("{e}")).context("sign-in failed");
            }
        }
    }
}

pub async fn pkce_login(
    store: &dyn TokenStore,
    client: &SsoClient,
    session: &SsoSession,
    browser: Browser,
) -> Result<(credd_core::sso::TokenGrant, ClientRegistration)> {
    let reg = registration(
        store,
        client,
        session,
        RegistrationRequest::auth_code(session),
        GRANT_AUTHORIZATION_CODE,
    )
    .await?;
    let callback = CallbackServer::start()
        .await
        .context("failed to listen on 127.0.0.1 for the browser's redirect")?;
    let redirect = callback.redirect_uri();
    let state = hex::encode(rand::random::<[u8; 16]>());
    let (verifier, challenge) = credd_aws::sso::pkce_pair();
    let url = client.authorize_url(session, &reg, &redirect, &state, &challenge);
    eprintln!(
        "To sign in to {}, {}this page:\n\n  {url}\n",
        session.start_url,
        if browser.opens() {
            "credd opens your browser at "
        } else {
            "open "
        }
    );
    browser.open(&url);
    let deadline = tokio::time::Instant::now() + LOGIN_TIMEOUT;
    let pb = spinner(format!("Waiting for the browser ({})", left(deadline)));
    let wait = callback.wait();
    tokio::pin!(wait);
    let result = loop {
        tokio::select! {
            r = &mut wait => break r,
            _ = tokio::time::sleep_until(deadline) => {
                pb.finish_and_clear();
                bail!("no answer from the browser within 10 minutes: run `credd login` again (or use --device-code)");
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                pb.set_message(format!("Waiting for the browser ({})", left(deadline)));
            }
        }
    };
    pb.finish_and_clear();
    let code = match result {
        Some(CallbackResult::Code { code, state: s }) if s == state => SecretString::new(code),
        Some(CallbackResult::Code { .. }) => {
            bail!("the browser came back with another login's state: ignored; run `credd login` again")
        }
        Some(CallbackResult::Error { error, .. }) => {
            bail!("the sign-in was not completed ({error}): run `credd login` again")
        }
        None => bail!("the redirect listener stopped before the browser came back"),
    };
    let grant = client
        .create_token_auth_code(session, &reg, code.expose(), &verifier, &redirect)
        .await
        .map_err(|e| anyhow!("{e}"))
        .context("failed to exchange the authorization code for a token")?;
    Ok((grant, reg))
}

// A one-shot command, not the daemon: it reads the wall clock directly.
#[allow(clippy::disallowed_methods)]
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
        if let Some(t) = token.filter(|t| t.usable(OffsetDateTime::now_utc())) {
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
// A one-shot command, not the daemon: it reads the wall clock directly.
#[allow(clippy::disallowed_methods)]
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
        Loaded::Found(t, _) if t.usable(OffsetDateTime::now_utc()) => t,
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
                let mut t = crate::commands::table(&["ACCOUNT", "NAME", "ROLES"]);
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
