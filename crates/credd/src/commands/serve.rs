//! `credd serve`: resolves settings (defaults < file < env < flags), binds
//! the listeners and runs the daemon until SIGINT or SIGTERM.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::cli::ServeArgs;
use crate::environment::env_var;
use anyhow::{bail, Context, Result};
use credd_aws::AwsProfileLoader;
use credd_daemon::config::{self, DaemonConfig, FileConfig, ImdsConfig};
use credd_daemon::{clock::SystemClock, Listeners, Services};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub fn resolve(args: &ServeArgs) -> Result<DaemonConfig> {
    let (path, default_location) = match &args.config {
        Some(p) => (p.clone(), false),
        None => config::config_path(&env_var),
    };
    let file = FileConfig::load(&path, default_location)
        .with_context(|| "failed to read the settings file (see docs/configuration.md)")?;
    let allow = file.allow_non_loopback;
    let listen_text = args
        .listen
        .clone()
        .or_else(|| env_var("CREDD_LISTEN"))
        .unwrap_or_else(|| file.listen.clone());
    let listen = config::listen_addr("listen", &listen_text, allow)?;
    let extra_listen = file
        .extra_listen
        .iter()
        .chain(args.also_listen.iter())
        .map(|a| config::listen_addr("extra_listen", a, allow))
        .collect::<Result<Vec<_>, _>>()?;
    let imds_listen = args
        .imds_listen
        .clone()
        .or_else(|| (!file.imds.listen.is_empty()).then(|| file.imds.listen.clone()));
    let imds_profile = args
        .imds_profile
        .clone()
        .or_else(|| (!file.imds.profile.is_empty()).then(|| file.imds.profile.clone()));
    let imds = match (imds_listen, imds_profile) {
        (Some(l), Some(p)) => Some(ImdsConfig {
            listen: config::listen_addr("imds.listen", &l, allow)?,
            profile: p,
            allow_imdsv1: args.allow_imdsv1 || file.imds.allow_imdsv1,
        }),
        (None, None) => None,
        (Some(_), None) => bail!("the IMDS emulation needs a profile: add --imds-profile NAME (or imds.profile in credd.toml)"),
        (None, Some(_)) => bail!("the IMDS emulation has a profile but no address: add --imds-listen 127.0.0.1:9912 (or imds.listen in credd.toml)"),
    };
    let ttl = credd_core::duration::parse(&file.tokens.default_ttl)
        .map_err(|e| anyhow::anyhow!("tokens.default_ttl: {e}"))?;
    Ok(DaemonConfig {
        listen,
        extra_listen,
        imds,
        policy: file.policy()?,
        limits: file.limits()?,
        default_token_ttl: ttl,
        runtime_dir: config::runtime_dir(&env_var),
        state_dir: config::state_dir(&env_var),
        docker: file.docker_watch(env_var("DOCKER_HOST").as_deref())?,
        warnings: file.warnings()?,
        sso_session_length: file.sso_session_length()?,
        mfa_prompt: file.mfa_prompt()?,
    })
}

pub async fn run(args: ServeArgs) -> Result<()> {
    credd_daemon::harden_process();
    crate::purge_freed_memory();
    let config = resolve(&args)?;
    let keys = crate::keystore::settings(args.config.as_deref())?;
    let handed = crate::activation::handed_in_listeners()
        .context("failed to take the sockets handed in by the service manager (LISTEN_FDS)")?;
    let container = match handed.endpoint {
        Some(l) => handed_in_tcp(l, "endpoint", &args)?,
        None => tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| {
                format!(
                    "failed to listen on {} (is another credd running? pick another with --listen)",
                    config.listen
                )
            })?,
    };
    let mut extra = Vec::new();
    for addr in &config.extra_listen {
        extra.push(tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("failed to listen on {addr} (for 169.254.170.2, run `sudo credd docker setup` first; port 80 needs root or CAP_NET_BIND_SERVICE)")
        })?);
    }
    let imds = match (handed.imds, &config.imds) {
        (Some(l), Some(_)) => Some(handed_in_tcp(l, "imds", &args)?),
        (Some(_), None) => bail!(
            "the service manager handed in an 'imds' socket but the IMDS emulation is off: \
             set imds.listen and imds.profile in credd.toml (the handed-in socket is used instead of imds.listen)"
        ),
        (None, Some(i)) => Some(
            tokio::net::TcpListener::bind(i.listen)
                .await
                .with_context(|| {
                    format!("failed to listen on {} for the IMDS emulation", i.listen)
                })?,
        ),
        (None, None) => None,
    };
    let profile_env = credd_aws::profiles::ProfileEnv::from_process_env();
    let notifier = Arc::new(credd_daemon::notify::DesktopNotifier::from_env());
    let clock = Arc::new(SystemClock);
    // Long-term keys from the key store (issue 15): the profile loader reads
    // them, and the reminder task their ages; every load tells the task.
    let reminders_config = crate::keystore::reminders(&keys, &config.state_dir)?;
    let daemon_keys = Arc::new(crate::keystore::DaemonKeys::new(keys, notifier.clone()));
    let keys_changed = Arc::new(tokio::sync::Notify::new());
    let services = Services {
        upstream: Arc::new(credd_aws::sts::AwsUpstream::new(profile_env.clone())),
        profiles: Arc::new(crate::keystore::Reloads::new(
            AwsProfileLoader::new(profile_env).with_keys(daemon_keys.clone()),
            keys_changed.clone(),
        )),
        clock: clock.clone(),
        sso_store: Arc::new(crate::login_flow::store()?),
        notifier: notifier.clone(),
    };
    let shutdown = CancellationToken::new();
    // The key reminders run beside the daemon in this task, from the
    // moment it is ready (not before: a daemon that fails to start says
    // nothing) until it stops.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let reminders_stop = shutdown.child_token();
    let reminders = {
        let stop = reminders_stop.clone();
        async move {
            if ready_rx.await.is_ok() {
                credd_daemon::key_reminders::run(
                    daemon_keys,
                    keys_changed,
                    clock,
                    notifier,
                    reminders_config,
                    stop,
                )
                .await;
            }
        }
        .instrument(tracing::info_span!("key-reminders"))
    };
    // SIGINT/SIGTERM cancel the daemon's root token; the daemon then stops
    // its tasks and `run` returns. The signal wait runs beside `run` in this
    // task (no task of its own), so nothing outlives the daemon.
    let stop = shutdown.clone();
    let signalled = async move {
        let Ok(mut signals) = crate::signals::Signals::install() else {
            tracing::error!("cannot install signal handlers");
            return std::future::pending().await;
        };
        let sig = signals.next().await;
        tracing::info!("{} received", sig.name());
        crate::activation::notify_stopping();
        stop.cancel();
    };
    let daemon = credd_daemon::run(
        config,
        services,
        Listeners {
            container,
            extra,
            imds,
            control: handed.control,
        },
        shutdown,
        |ready| {
            tracing::info!(
                container = %format!("http://{}/v1/credentials/PROFILE", ready.container),
                imds = ?ready.imds.map(|a| format!("http://{a}")),
                control = %ready.control_socket.display(),
                "credd ready"
            );
            crate::activation::notify_ready(ready);
            let _ = ready_tx.send(());
        },
    );
    let daemon = async {
        let stopped = async {
            let r = daemon.await;
            reminders_stop.cancel();
            r
        };
        tokio::join!(stopped, reminders).0
    };
    tokio::pin!(daemon);
    tokio::select! {
        r = &mut daemon => r,
        () = signalled => daemon.await,
    }
    .context("the daemon stopped with an error")
}

/// Turns a listening socket handed in by the service manager into the
/// daemon's listener, holding it to the same rule as `--listen`: loopback or
/// the ECS link-local addresses only, unless `allow_non_loopback` is set in
/// credd.toml (threat-model row 7).
fn handed_in_tcp(
    l: std::net::TcpListener,
    name: &str,
    args: &ServeArgs,
) -> Result<tokio::net::TcpListener> {
    let addr = l
        .local_addr()
        .with_context(|| format!("cannot read the address of the '{name}' socket handed in"))?;
    let (path, default_location) = match &args.config {
        Some(p) => (p.clone(), false),
        None => config::config_path(&env_var),
    };
    let allow = FileConfig::load(&path, default_location)
        .map(|f| f.allow_non_loopback)
        .unwrap_or(false);
    config::listen_addr(
        &format!("the '{name}' socket handed in"),
        &addr.to_string(),
        allow,
    )?;
    tracing::info!(%addr, name, "using a socket handed in by the service manager");
    l.set_nonblocking(true)
        .context("failed to make a handed-in socket non-blocking")?;
    tokio::net::TcpListener::from_std(l).context("failed to use a handed-in socket")
}
