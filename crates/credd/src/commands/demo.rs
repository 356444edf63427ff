//! `credd demo`: credd end to end on a machine with no AWS account. It
//! starts the sandbox (credd-sandbox) in-process on loopback, writes a
//! throwaway AWS config in a private temporary directory (an sso-session,
//! an SSO profile, a role chained on it, an MFA profile, an `aws login`
//! session), signs in to both (the sandbox approves at once; a stand-in
//! browser follows the redirects),
//! starts the daemon against it and prints what to paste next. With short
//! lifetimes, refreshes happen live until Ctrl-C. The user's own `~/.aws`
//! is never read or written.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::cli::DemoArgs;
use anyhow::{anyhow, bail, Context, Result};
use credd_aws::sso::SsoClient;
use credd_aws::sso_cache::FileTokenStore;
use credd_aws::ProfileEnv;
use credd_core::sso::{SsoToken, TokenStore};
use credd_daemon::control::{self, Request};
use credd_daemon::protocol::{Identity, StatusReply, TokenIssued};
use credd_daemon::{clock::SystemClock, Listeners, Services};
use credd_sandbox::{Sandbox, SandboxConfig, DEMO_ACCESS_KEY_ID};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MFA_SERIAL: &str = "arn:aws:iam::111122223333:mfa/demo-user";
const PROFILES: [&str; 4] = ["demo", "demo-admin", "demo-mfa", "demo-console"];

fn config_text(login_identity: &str) -> String {
    format!(
        "# Written by `credd demo` in a temporary directory; your own ~/.aws is untouched.\n\
[sso-session demo]\n\
sso_start_url = https://d-0000000000.awsapps.com/start\n\
sso_region = us-east-1\n\
sso_registration_scopes = sso:account:access\n\n\
# An IAM Identity Center role.\n\
[profile demo]\n\
sso_session = demo\n\
sso_account_id = 111122223333\n\
sso_role_name = PowerUserAccess\n\
region = us-east-1\n\n\
# A role chained on it.\n\
[profile demo-admin]\n\
role_arn = arn:aws:iam::444455556666:role/Admin\n\
source_profile = demo\n\
region = us-east-1\n\n\
# A role behind an MFA session on long-term keys.\n\
[profile demo-mfa]\n\
role_arn = arn:aws:iam::111122223333:role/Deploy\n\
source_profile = demo-keys\n\
mfa_serial = {MFA_SERIAL}\n\
region = us-east-1\n\n\
# A console identity signed in as `aws login` does (login_session).\n\
[profile demo-console]\n\
login_session = {login_identity}\n\
region = us-east-1\n"
    )
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

pub async fn run(a: DemoArgs) -> Result<ExitCode> {
    credd_daemon::harden_process();
    let dir = tempfile::Builder::new()
        .prefix("credd-demo-")
        .tempdir()
        .context("failed to make a temporary directory")?;
    let home = dir.path().to_path_buf();

    // 1. The sandbox: short lifetimes so that refreshes show within minutes.
    let secret = base32_secret();
    let mut sandbox_config = SandboxConfig::default().with_totp(MFA_SERIAL, &secret);
    if !a.self_check {
        sandbox_config.access_token_lifetime = Duration::from_secs(180);
        sandbox_config.role_credentials_lifetime = Duration::from_secs(240);
        sandbox_config.login_credential_secs = 240;
    }
    let login_identity = sandbox_config.login_identity.clone();
    let sandbox = Sandbox::start(sandbox_config)
        .await
        .context("failed to start the sandbox")?;
    let url = sandbox.url();
    // The daemon's upstream sees only these variables: the login cache is
    // named here (under the temporary home), not found through HOME.
    let login_cache = home.join(".aws/login/cache");
    let login_cache_var = login_cache.display().to_string();
    let vars: Vec<(&str, &str)> = vec![
        ("AWS_LOGIN_CACHE_DIRECTORY", login_cache_var.as_str()),
        ("AWS_ENDPOINT_URL_SSO", url.as_str()),
        ("AWS_ENDPOINT_URL_SSO_OIDC", url.as_str()),
        ("AWS_ENDPOINT_URL_STS", url.as_str()),
        ("AWS_ENDPOINT_URL_SIGNIN", url.as_str()),
    ];

    // 2. A throwaway config.
    let aws = home.join(".aws");
    write_private(&aws.join("config"), &config_text(&login_identity))?;
    write_private(
        &aws.join("credentials"),
        &format!(
            "# Sandbox keys: they only work against the sandbox.\n[demo-keys]\n\
aws_access_key_id = {DEMO_ACCESS_KEY_ID}\naws_secret_access_key = sandbox-only-not-a-real-secret\n"
        ),
    )?;
    let profile_env = ProfileEnv {
        home: Some(home.clone()),
        config_file: Some(aws.join("config")),
        credentials_file: Some(aws.join("credentials")),
    };

    // 3. Sign in, as `credd login demo` does, with a stand-in browser.
    let raw = credd_aws::load_profiles(&profile_env).await?.raw;
    let (session, _) =
        crate::login_flow::pick_session(&raw, &aws.join("config"), Some("demo"), None)?;
    let store = Arc::new(FileTokenStore::new(FileTokenStore::default_dir(&home)));
    let client = SsoClient::with_vars(&vars);
    eprintln!(
        "credd demo: signing in to the sandbox's IAM Identity Center (approved automatically)..."
    );
    let (grant, reg) = crate::login_flow::pkce_login(
        store.as_ref(),
        &client,
        &session,
        crate::login_flow::Browser::StandIn,
    )
    .await?;
    let token = SsoToken::from_grant(&session, grant, Some(&reg), crate::clock::now());
    store
        .save_token(&session, &token)
        .map_err(|e| anyhow!("{e}"))?;

    // And as `credd login --profile demo-console` does, to the sandbox's
    // Sign-In (the same stand-in browser), into the throwaway login cache.
    eprintln!(
        "credd demo: signing in with the sandbox's console identity (approved automatically)..."
    );
    let signed = crate::signin_flow::sign_in(
        &url,
        crate::signin_flow::Flow::SameDevice(crate::login_flow::Browser::StandIn),
        "credd demo",
    )
    .await?;
    if signed.session.arn != login_identity {
        bail!(
            "the sandbox signed in as {}, not {login_identity}",
            signed.session.arn
        );
    }
    credd_aws::login_cache::LoginCache::at(&login_cache)
        .save(&signed.session, &signed.token)
        .map_err(|e| anyhow!("{e}"))
        .context("failed to write the demo's login cache")?;

    // 4. The daemon, in this process, on a free loopback port.
    let run_dir = home.join("run");
    let state_dir = home.join("state");
    let listener = tokio::net::TcpListener::bind(a.listen.as_str())
        .await
        .with_context(|| format!("failed to listen on {}", a.listen))?;
    let endpoint = listener.local_addr()?;
    let config = credd_daemon::config::DaemonConfig {
        listen: endpoint,
        extra_listen: vec![],
        imds: None,
        policy: credd_core::schedule::Policy {
            // Lifetimes are minutes here: renew at half-life, visibly.
            jitter: time::Duration::seconds(5),
            ..Default::default()
        },
        limits: Default::default(),
        default_token_ttl: Duration::from_secs(12 * 3600),
        runtime_dir: run_dir.clone(),
        state_dir,
        docker: None,
        warnings: Default::default(),
        sso_session_length: credd_core::sso::DEFAULT_SESSION_LENGTH,
        mfa_prompt: Default::default(),
    };
    let services = Services {
        upstream: Arc::new(credd_aws::sts::AwsUpstream::with_vars(
            profile_env.clone(),
            &vars,
        )),
        profiles: Arc::new(credd_aws::AwsProfileLoader::new(profile_env.clone())),
        clock: Arc::new(SystemClock),
        sso_store: store.clone(),
        notifier: Arc::new(credd_daemon::LogNotifier),
    };
    let shutdown = CancellationToken::new();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    // The daemon runs on a tracker of its own, as `credd serve` runs it, and
    // is joined before the demo exits.
    let tasks = tokio_util::task::TaskTracker::new();
    let daemon = {
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            credd_daemon::run(
                config,
                services,
                Listeners {
                    container: listener,
                    extra: vec![],
                    imds: None,
                    control: None,
                },
                shutdown,
                move |r| {
                    let _ = ready_tx.send(r.control_socket.clone());
                },
            )
            .await
        })
    };
    let socket = ready_rx
        .await
        .map_err(|_| anyhow!("the daemon stopped before it was ready"))?;

    // 5. The MFA profile: the code a phone would show, from the sandbox's secret.
    let code = credd_sandbox::totp_code(&secret, crate::clock::now().unix_timestamp() as u64)
        .map_err(|e| anyhow!("{e:?}"))?;
    control::call(
        &socket,
        &Request::Mfa {
            profile: "demo-mfa".into(),
            code,
        },
    )
    .await
    .context("failed to start the demo MFA session")?;

    // 6. A token for the endpoint, in a 0600 file.
    let issued: TokenIssued = control::call_as(
        &socket,
        &Request::TokenIssue {
            profiles: PROFILES.iter().map(|p| p.to_string()).collect(),
            ttl_secs: Some(12 * 3600),
            label: "credd demo".into(),
            docker_engine: None,
        },
    )
    .await?;
    let token_value = issued.token;
    let token_file = home.join("endpoint-token");
    write_private(&token_file, &token_value)?;
    let full_uri = format!("http://{endpoint}/v1/credentials/demo");

    let checks = self_check(&socket, &full_uri, &token_value, &login_identity).await;
    match (&checks, a.self_check) {
        (Ok(lines), true) => {
            for l in lines {
                eprintln!("  ok  {l}");
            }
            eprintln!("credd demo: self-check passed");
            shutdown.cancel();
            let _ = daemon.await;
            return Ok(ExitCode::SUCCESS);
        }
        (Err(e), true) => {
            shutdown.cancel();
            let _ = daemon.await;
            return Err(anyhow!("{e:#}")).context("credd demo: self-check failed");
        }
        (Err(e), false) => eprintln!("warning: {e:#}"),
        (Ok(_), false) => {}
    }
    print_next(&home, &run_dir, &url, &full_uri, &token_file);

    // 7. Live until Ctrl-C: a status line per profile every 20 s, and the
    // daemon's own log lines as tokens and credentials are renewed.
    let mut tick = tokio::time::interval(Duration::from_secs(20));
    let mut signals =
        crate::signals::Signals::install().context("failed to watch for SIGINT and SIGTERM")?;
    loop {
        tokio::select! {
            _ = signals.next() => break,
            _ = tick.tick() => {
                if let Ok(v) = control::call_as(&socket, &Request::Status).await {
                    print_status_line(&v);
                }
            }
        }
    }
    eprintln!("\ncredd demo: stopping; the temporary directory is removed.");
    shutdown.cancel();
    let _ = daemon.await;
    let _ = sandbox.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// What must work for the README's first command to be honest: each
/// profile's credentials identify as the right role at the sandbox's STS,
/// and the container endpoint answers an SDK-shaped request.
async fn self_check(
    socket: &Path,
    full_uri: &str,
    token: &str,
    login_identity: &str,
) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for (profile, want) in [
        ("demo", "assumed-role/PowerUserAccess/"),
        ("demo-admin", "assumed-role/Admin/"),
        ("demo-mfa", "assumed-role/Deploy/"),
        ("demo-console", login_identity),
    ] {
        let v: Identity = control::call_as(
            socket,
            &Request::Whoami {
                profile: profile.into(),
            },
        )
        .await
        .with_context(|| format!("whoami {profile}"))?;
        let arn = &v.arn;
        if !arn.contains(want) {
            bail!("{profile}: the sandbox's STS says {arn}, expected {want}");
        }
        lines.push(format!("{profile}: {arn}"));
    }
    let (status, body) = credd_sandbox::browser::fetch(full_uri, &[("Authorization", token)])
        .await
        .map_err(|e| anyhow!(e))?;
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if status != 200
        || doc["AccessKeyId"].as_str().is_none()
        || doc["Expiration"].as_str().is_none()
    {
        bail!("the container endpoint answered {status}");
    }
    lines.push(format!(
        "GET {full_uri}: 200 with AccessKeyId and Expiration"
    ));
    let (status, _) = credd_sandbox::browser::fetch(full_uri, &[("Authorization", "wrong")])
        .await
        .map_err(|e| anyhow!(e))?;
    if status != 401 {
        bail!("a wrong token got {status}, not 401");
    }
    lines.push("a wrong token gets 401".into());
    Ok(lines)
}

fn print_next(home: &Path, run_dir: &Path, sandbox: &str, full_uri: &str, token_file: &Path) {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("credd"));
    let (home, token, run, exe) = (
        home.display(),
        token_file.display(),
        run_dir.display(),
        exe.display(),
    );
    let lines = [
        String::new(),
        format!("credd demo is serving four profiles from a sandbox (files in {home}):"),
        "  demo          IAM Identity Center role PowerUserAccess (signed in)".into(),
        "  demo-admin    a role chained on demo".into(),
        "  demo-mfa      a role behind an MFA session (the code was entered for you)".into(),
        "  demo-console  an `aws login` session (console credentials, signed in; refreshed with DPoP)".into(),
        String::new(),
        "In another shell, point any AWS SDK at the endpoint:".into(),
        String::new(),
        format!("  export AWS_CONTAINER_CREDENTIALS_FULL_URI={full_uri}"),
        format!("  export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={token}"),
        format!("  curl -s -H \"Authorization: $(cat {token})\" {full_uri}"),
        String::new(),
        "or run a command with a profile's credentials (the sandbox's STS answers):".into(),
        String::new(),
        format!("  export CREDD_RUNTIME_DIR={run}"),
        format!("  export AWS_ENDPOINT_URL_STS={sandbox}"),
        format!("  {exe} exec demo -- aws sts get-caller-identity"),
        format!("  {exe} exec demo-console -- aws sts get-caller-identity"),
        format!("  {exe} status"),
        String::new(),
        "Tokens and credentials here live a few minutes, so refreshes show below. Ctrl-C stops the demo.".into(),
    ];
    println!("{}", lines.join("\n"));
}

fn print_status_line(v: &StatusReply) {
    let mut parts = Vec::new();
    for s in &v.sso_sessions {
        parts.push(format!(
            "sso token until {}",
            s.token_expires.as_deref().unwrap_or("-")
        ));
    }
    for s in &v.login_sessions {
        parts.push(format!(
            "login session {}: {} until {}",
            s.session,
            s.state,
            s.credentials_expire.as_deref().unwrap_or("-")
        ));
    }
    for p in &v.profiles {
        let name = p.name.as_str();
        if PROFILES.contains(&name) {
            parts.push(format!(
                "{name}: {} ({}s left)",
                p.state,
                p.expires_in_secs.unwrap_or(0)
            ));
        }
    }
    eprintln!("[status] {}", parts.join(" | "));
}

/// A random TOTP secret (base32, 160 bits), as an authenticator app gets.
fn base32_secret() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..32)
        .map(|_| ALPHABET[rand::random::<usize>() % 32] as char)
        .collect()
}
