//! The IAM Identity Center sign-in flow, run in the CLI process: the
//! authorization code with PKCE and a loopback redirect, or the device
//! code; used by `credd login` and by `credd demo` (with a stand-in browser).
//!
//! Tokens go to `~/.aws/sso/cache` exactly as the AWS CLI v2 writes them, so
//! `aws` and every SDK use them too; the daemon is then told to re-read the
//! cache. The daemon itself never starts a login.
//!
//! The loopback redirect ([`Redirect`]), the browser ([`Browser`]) and
//! [`tell_daemon`] are shared with the `aws login` sign-in of
//! `signin_flow.rs`, which imports this leaf (not the other way round).
//!
//! Layering: a leaf; it imports leaves only (`client`), never a command.

use anyhow::{anyhow, bail, Context, Result};
use credd_aws::sso::{PollOutcome, SsoClient};
use credd_aws::sso_cache::FileTokenStore;
use credd_aws::{load_profiles, ProfileEnv};
use credd_core::profile::{resolve, sso_sessions, Base, RawProfiles};
use credd_core::sso::{
    ClientRegistration, Loaded, RegistrationRequest, SsoSession, TokenStore,
    GRANT_AUTHORIZATION_CODE, GRANT_DEVICE_CODE,
};
use credd_core::SecretString;
use credd_daemon::callback::{CallbackResult, CallbackServer};
use credd_daemon::control::{ClientError, Request};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// How long a login waits for the browser (the AWS CLI waits 10 minutes).
const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);

pub fn store() -> Result<FileTokenStore> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("HOME is not set: cannot find ~/.aws/sso/cache"))?;
    Ok(FileTokenStore::new(FileTokenStore::default_dir(&home)))
}

pub async fn profiles() -> Result<(RawProfiles, PathBuf)> {
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

/// Records that `session` was just signed in (its token `token`), in the
/// daemon's state directory, so its end can be estimated (sign-in plus the
/// session length) whether or not the daemon runs now. Only the time and
/// the token's expiry are written, never the token. A failure is only a
/// warning: the daemon dates the sign-in itself when it sees the token.
pub fn record_sign_in(session: &credd_core::sso::SsoSession, token: &credd_core::sso::SsoToken) {
    let store = credd_daemon::SignInStore::new(&crate::environment::state_dir());
    let sign_in = credd_core::sso::SignIn {
        at: crate::clock::now(),
        token_expires: Some(token.expires_at),
    };
    if let Err(e) = store.record(session.cache_key(), sign_in) {
        eprintln!("warning: could not record the sign-in time ({e}); the daemon will date it when it sees the token");
    }
}

/// Tells a running daemon to re-read the AWS files and the SSO cache.
pub async fn tell_daemon() {
    match crate::client::call::<credd_daemon::protocol::Pong>(Request::Reload).await {
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
    /// Opens `url`; the stand-in's visit runs on `tasks`, which the flow
    /// waits for once the sign-in is done.
    fn open(self, url: &str, tasks: &TaskTracker) {
        match self {
            Browser::System { open: false } => {}
            Browser::System { open: true } => {
                if let Err(e) = webbrowser::open(url) {
                    eprintln!("(could not open a browser: {e}; open the URL above yourself)");
                }
            }
            Browser::StandIn => {
                let url = url.to_string();
                tasks.spawn(async move {
                    if let Err(e) = credd_sandbox::browser::visit(&url).await {
                        eprintln!("the stand-in browser failed: {e}");
                    }
                });
            }
        }
    }
}

/// What to tell the user when a browser sign-in did not come back: the
/// command that starts it again, and the flag of the flow without a
/// loopback redirect.
#[derive(Debug, Clone, Copy)]
pub struct Retry<'a> {
    pub command: &'a str,
    pub other_flow: &'a str,
}

/// The loopback redirect of an authorization-code sign-in (PKCE), shared by
/// the IAM Identity Center login and the `aws login` (Sign-In) one: listen
/// first (the authorize URL names the port), then show or open the URL and
/// wait for the browser to come back with the code.
#[derive(Debug)]
pub struct Redirect {
    callback: CallbackServer,
}

impl Redirect {
    pub async fn listen() -> Result<Self> {
        let callback = CallbackServer::start()
            .await
            .context("failed to listen on 127.0.0.1 for the browser's redirect")?;
        Ok(Self { callback })
    }

    /// `http://127.0.0.1:PORT/oauth/callback`.
    pub fn uri(&self) -> String {
        self.callback.redirect_uri()
    }

    /// Prints `url` (the sign-in to `target`), opens it with `browser` and
    /// waits up to 10 minutes for the redirect; returns its code once its
    /// `state` is the one this sign-in sent.
    pub async fn code(
        self,
        url: &str,
        target: &str,
        browser: Browser,
        state: &str,
        retry: &Retry<'_>,
    ) -> Result<SecretString> {
        eprintln!(
            "To sign in to {target}, {}this page:\n\n  {url}\n",
            if browser.opens() {
                "credd opens your browser at "
            } else {
                "open "
            }
        );
        let tasks = TaskTracker::new();
        browser.open(url, &tasks);
        let deadline = tokio::time::Instant::now() + LOGIN_TIMEOUT;
        let pb = spinner(format!("Waiting for the browser ({})", left(deadline)));
        let wait = self.callback.wait();
        tokio::pin!(wait);
        let Retry {
            command,
            other_flow,
        } = *retry;
        let result = loop {
            tokio::select! {
                r = &mut wait => break r,
                _ = tokio::time::sleep_until(deadline) => {
                    pb.finish_and_clear();
                    bail!("no answer from the browser within 10 minutes: run `{command}` again (or use {other_flow})");
                }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    pb.set_message(format!("Waiting for the browser ({})", left(deadline)));
                }
            }
        };
        pb.finish_and_clear();
        tasks.close();
        tasks.wait().await;
        match result {
            Some(CallbackResult::Code { code, state: s }) if s == state => {
                Ok(SecretString::new(code))
            }
            Some(CallbackResult::Code { .. }) => {
                bail!("the browser came back with another login's state: ignored; run `{command}` again")
            }
            Some(CallbackResult::Error { error, .. }) => {
                bail!("the sign-in was not completed ({error}): run `{command}` again")
            }
            None => bail!("the redirect listener stopped before the browser came back"),
        }
    }
}

/// A cached registration that suits `grant`, or a new one (saved for
/// sso-session sessions, where the AWS CLI will find it too).
async fn registration(
    store: &dyn TokenStore,
    client: &SsoClient,
    session: &SsoSession,
    request: RegistrationRequest,
    grant: &str,
) -> Result<ClientRegistration> {
    let now = crate::clock::now();
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

pub async fn device_login(
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
    let tasks = TaskTracker::new();
    browser.open(
        auth.verification_uri_complete
            .as_deref()
            .unwrap_or(&auth.verification_uri),
        &tasks,
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
                tasks.close();
                tasks.wait().await;
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
    let redirect = Redirect::listen().await?;
    let redirect_uri = redirect.uri();
    let state = hex::encode(rand::random::<[u8; 16]>());
    let (verifier, challenge) = credd_aws::sso::pkce_pair();
    let url = client.authorize_url(session, &reg, &redirect_uri, &state, &challenge);
    let code = redirect
        .code(
            &url,
            &session.start_url,
            browser,
            &state,
            &Retry {
                command: "credd login",
                other_flow: "--device-code",
            },
        )
        .await?;
    let grant = client
        .create_token_auth_code(session, &reg, code.expose(), &verifier, &redirect_uri)
        .await
        .map_err(|e| anyhow!("{e}"))
        .context("failed to exchange the authorization code for a token")?;
    Ok((grant, reg))
}
