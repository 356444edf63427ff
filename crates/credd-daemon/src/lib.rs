//! credd-daemon: the broker (cache, refresher tasks, single flight), the
//! HTTP endpoints (container credentials, IMDSv2 emulation) and the control
//! socket.
//!
//! Invariant: it talks to AWS, reads `~/.aws` and uses the SSO cache only
//! through the credd-core seams it is handed ([`credd_core::Upstream`],
//! [`ProfileLoader`], [`credd_core::sso::TokenStore`]), so every part of it
//! runs against fakes in tests. (It is not the only crate that imports
//! hyper: the sandbox serves its fakes with it too.)
//!
//! Its public surface is what the binary and the tests use: [`run`] with
//! [`Services`] and [`Listeners`], the [`ProfileLoader`] seam, the control
//! protocol ([`protocol`], [`control`]'s client), settings ([`config`]), the
//! HTTP edge the relay reuses (`server`, `guard`, `api_error`, `response`,
//! `segment`), and the few pieces the CLI shares with the daemon (`fsutil`,
//! `audit::read_all`, `callback`, `relay`). The broker, the refresh engine,
//! the SSO sessions, the endpoints and the token store are crate-private.
//!
//! # Shutdown, task by task
//!
//! `credd serve` creates one root `CancellationToken` and cancels it on SIGINT or SIGTERM
//! (the signal wait runs beside `run` in `commands/serve.rs`). [`run`] spawns every
//! long-lived task on one `TaskTracker`, each inside a named `tracing` span and each with a
//! child token: the container accept loops (one per container listener) and the IMDS one
//! (`container`, `imds`) and their connections (`conn`), the control socket
//! (`control-socket`, `control`), the audit writer, the clock watch (`clock-watch`), the
//! AWS-files watch (`profiles-watch`), the key store retry (`keys-retry`), the docker engine watch (`docker-watch`), the
//! refresh engine's loops for broker nodes (`refresher`; their tokens are children of the
//! broker's, itself a child of the root) and SSO sessions (`sso-session`, children of
//! `SsoSessions`' token; a new token reaches the broker through `SsoSessions::on_change`,
//! with no task of its own). On cancellation, accept loops stop, open connections get
//! hyper's graceful shutdown: a request still unanswered 2 s later (`server::STOP_GRACE`;
//! say one waiting on STS, whose fetch task, `request-fetch`, gets the same grace) is
//! answered `503 DaemonStopping` rather than cut, then the connection closes; the audit
//! writer writes what it has counted, and `run` waits up to 5 s for the tracker to empty
//! (logging a warning otherwise), removes `control.sock` and returns; the process exits 0.

pub mod api_error;
pub mod audit;
mod broker;
pub mod callback;
pub mod clock;
pub mod config;
mod container;
pub mod control;
mod control_client;
mod control_replies;
pub mod docker_watch;
pub mod fsutil;
pub mod guard;
mod imds;
pub mod key_reminders;
mod keys_retry;
pub mod notify;
mod peer_uid;
mod profile_files;
pub mod protocol;
mod refresh;
pub mod relay;
pub mod response;
pub mod segment;
pub mod server;
mod sessions;
mod sso;
mod status;
mod tokens;
mod warnings;
pub use broker::mfa_prompt::{Dialog, MfaPrompt};
pub use warnings::WarningsConfig;

// What the binary and the tests use from the private modules above.
pub use container::CREDENTIALS_PATH;
pub use sessions::SignInStore;
pub use sso::{LogNotifier, Notifier};

// The profile seam lives in credd-core beside `Upstream` and `TokenStore`;
// re-exported so that the daemon's modules and its users name it as before.
pub use credd_core::loader::{BoxFuture, LoadedPlans, Plans, ProfileLoader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// How long the watcher lets a burst of file events settle before it
/// looks at the files, when no event said the write is finished.
const PROFILE_SETTLE: std::time::Duration = std::time::Duration::from_millis(250);
/// How often the daemon looks at the AWS files when the system tells it
/// of changes (see [`profile_files`]): a fallback for file systems that
/// send no events, so once a minute.
const PROFILE_POLL: std::time::Duration = std::time::Duration::from_secs(60);
/// How often it looks while a directory of the AWS files cannot be watched
/// (`~/.aws` does not exist yet): as before notification, so a first
/// `aws configure` is seen within seconds.
const PROFILE_POLL_UNWATCHED: std::time::Duration = std::time::Duration::from_secs(2);

/// Re-reads the AWS files whenever they change, so that a profile added or
/// edited in `~/.aws/config` is served at once, with no CLI command and no
/// restart. A broken file keeps the last good profiles (see
/// [`control::ControlState::reload`]); the check never opens a file, so a
/// FIFO or device put in a file's place never stalls this loop
/// (threat-model row 23).
async fn watch_profiles(state: Arc<control::ControlState>, cancel: CancellationToken) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let mut events = profile_files::Events::new(tx);
    loop {
        let poll = if events.watch(&state.files.dirs()) {
            PROFILE_POLL
        } else {
            PROFILE_POLL_UNWATCHED
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = rx.recv() => {
                // An event can come at the first byte of a write (an editor's
                // or a tool's truncate, then the text): unless an event says
                // the write is finished (the file closed or renamed into
                // place), let the burst settle before looking, so a file
                // caught empty halfway is not taken for the user's new, good
                // version. A finished write is read at once.
                let settled = tokio::time::Instant::now() + PROFILE_SETTLE;
                while !events.take_complete() {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep_until(settled) => break,
                        more = rx.recv() => if more.is_none() { break },
                    }
                }
                while rx.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(poll) => {}
        }
        state.reload_if_changed().await;
    }
}

/// What the daemon is given from outside: the AWS side, the SSO token
/// cache, time, and a way to tell the user something.
pub struct Services {
    pub upstream: Arc<dyn credd_core::Upstream>,
    pub profiles: Arc<dyn ProfileLoader>,
    pub clock: Arc<dyn clock::Clock>,
    pub sso_store: Arc<dyn credd_core::sso::TokenStore>,
    pub notifier: Arc<dyn Notifier>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}

/// Listeners bound before the daemon starts (from flags, or handed in by
/// the service manager).
#[derive(Debug)]
pub struct Listeners {
    pub container: TcpListener,
    /// More container-endpoint listeners, e.g. `169.254.170.2:80` for
    /// containers on a bridge network (see docs/docker.md).
    pub extra: Vec<TcpListener>,
    pub imds: Option<TcpListener>,
    /// The control socket, when the service manager handed it in (socket
    /// activation). `None`: the daemon binds `control.sock` in the runtime
    /// directory itself. A handed-in socket belongs to the service manager,
    /// so the daemon leaves its file in place when it stops.
    pub control: Option<std::os::unix::net::UnixListener>,
}

/// Where the daemon answers, once it is ready.
#[derive(Debug, Clone)]
pub struct Ready {
    pub container: SocketAddr,
    pub extra: Vec<SocketAddr>,
    pub imds: Option<SocketAddr>,
    pub control_socket: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Fs(#[from] fsutil::FsError),
    #[error("cannot bind the control socket {path}: {source}")]
    Control {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read a listener's address: {0}")]
    Listener(std::io::Error),
    #[error("limits.same_user_only is on, but this system cannot tell which user a loopback connection comes from ({0}); every connection would be refused: set `same_user_only = false` under [limits] in credd.toml (see docs/security.md, row 20)")]
    PeerUid(peer_uid::PeerUidError),
}

pub fn control_socket_path(runtime_dir: &std::path::Path) -> PathBuf {
    runtime_dir.join("control.sock")
}

/// Makes this process undumpable and disables core files, so a crash or a
/// same-user debugger attach does not spill credentials (threat-model row 11).
pub fn harden_process() {
    #[cfg(target_os = "linux")]
    {
        let _ =
            rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    }
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
}

/// Runs the daemon until `shutdown` is cancelled, then stops every task
/// (grace period 5 s).
pub async fn run(
    config: config::DaemonConfig,
    services: Services,
    listeners: Listeners,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), DaemonError> {
    fsutil::private_dir(&config.runtime_dir)?;
    fsutil::private_dir(&config.state_dir)?;
    if cfg!(target_os = "linux") && config.limits.same_user_only {
        peer_uid::self_check().map_err(DaemonError::PeerUid)?;
    }
    let tasks = TaskTracker::new();
    let now = services.clock.now();
    let tokens = Arc::new(tokens::TokenStore::open(
        config.state_dir.join("tokens.json"),
        now,
    ));
    let broker = broker::Broker::new(
        services.upstream.clone(),
        services.clock.clone(),
        config.policy,
        sessions::SessionStore::new(config.state_dir.join("sessions")),
        sso::SsoSessions::new(
            services.upstream.clone(),
            services.clock.clone(),
            services.sso_store.clone(),
            services.notifier.clone(),
            config.policy,
            tasks.clone(),
            shutdown.child_token(),
        )
        .with_sign_ins(
            sessions::SignInStore::new(&config.state_dir),
            config.sso_session_length,
        ),
        tasks.clone(),
        shutdown.child_token(),
    );
    broker.set_mfa_prompter(broker::mfa_prompt::Prompter::new(
        config.mfa_prompt,
        broker::mfa_prompt::Dialog::from_env(),
    ));
    let container_addr = listeners
        .container
        .local_addr()
        .map_err(DaemonError::Listener)?;
    let imds_addr = match &listeners.imds {
        Some(l) => Some(l.local_addr().map_err(DaemonError::Listener)?),
        None => None,
    };
    let extra_addrs = listeners
        .extra
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<Vec<_>, _>>()
        .map_err(DaemonError::Listener)?;
    let control_path = control_socket_path(&config.runtime_dir);
    let control_handed_in = listeners.control.is_some();
    let (control_listener, control_path) = match listeners.control {
        Some(l) => adopt_control(l, control_path)?,
        None => (
            control::bind(&control_path)
                .await
                .map_err(|source| DaemonError::Control {
                    path: control_path.clone(),
                    source,
                })?,
            control_path,
        ),
    };

    let audit = Arc::new(audit::AuditLog::start(
        config.state_dir.join("audit.log"),
        shutdown.child_token(),
        &tasks,
    ));
    let docker = config.docker.clone().map(|c| {
        Arc::new(docker_watch::DockerWatch::new(
            c,
            tokens.clone(),
            services.clock.clone(),
        ))
    });
    let control_state = Arc::new(control::ControlState {
        docker: docker.clone(),
        token_files: config.runtime_dir.join("tokens"),
        audit: audit.clone(),
        broker: broker.clone(),
        tokens: tokens.clone(),
        endpoints: control::Endpoints {
            container_url: format!("http://{container_addr}{}", container::CREDENTIALS_PATH),
            imds_url: imds_addr.map(|a| format!("http://{a}")),
            imds_profile: imds_addr
                .and(config.imds.as_ref())
                .map(|i| i.profile.clone()),
            extra_urls: extra_addrs
                .iter()
                .map(|a| match a.port() {
                    80 => format!("http://{}{}", a.ip(), container::CREDENTIALS_PATH),
                    _ => format!("http://{a}{}", container::CREDENTIALS_PATH),
                })
                .collect(),
        },
        loader: services.profiles.clone(),
        default_token_ttl: config.default_token_ttl,
        config_error: Default::default(),
        config_notes: Default::default(),
        started: credd_core::format_expiration(now),
        notifier: services.notifier.clone(),
        told: Default::default(),
        files: profile_files::WatchedFiles::new(services.profiles.watched_files()),
        findings: Default::default(),
        reading: Default::default(),
    });
    // Stamped before the first read, so that a change during it is seen.
    control_state.reload().await;
    if !control_state.files.is_empty() {
        tasks.spawn(
            watch_profiles(control_state.clone(), shutdown.child_token())
                .instrument(tracing::info_span!("profiles-watch")),
        );
    }

    let container = Arc::new(server::Endpoint::new(
        guard::Guard::sdks(container_addr),
        container::ContainerEndpoint {
            broker: broker.clone(),
            tokens: tokens.clone(),
            audit: audit.clone(),
            cold_wait: config.limits.cold_wait,
        },
    ));
    tasks.spawn(
        server::serve(
            listeners.container,
            container,
            config.limits,
            shutdown.child_token(),
            tasks.clone(),
        )
        .instrument(tracing::info_span!("container", addr = %container_addr)),
    );
    for (l, addr) in listeners.extra.into_iter().zip(extra_addrs.iter().copied()) {
        let ep = Arc::new(server::Endpoint::new(
            guard::Guard::sdks(addr),
            container::ContainerEndpoint {
                broker: broker.clone(),
                tokens: tokens.clone(),
                audit: audit.clone(),
                cold_wait: config.limits.cold_wait,
            },
        ));
        tasks.spawn(
            server::serve(l, ep, config.limits, shutdown.child_token(), tasks.clone())
                .instrument(tracing::info_span!("container", %addr)),
        );
    }
    if let (Some(l), Some(addr), Some(imds)) = (listeners.imds, imds_addr, &config.imds) {
        let mut ep = imds::ImdsEndpoint::new(
            broker.clone(),
            imds.profile.clone(),
            imds.allow_imdsv1,
            audit.clone(),
        );
        ep.cold_wait = config.limits.cold_wait;
        let ep = Arc::new(server::Endpoint::new(guard::Guard::sdks(addr), ep));
        tasks.spawn(
            server::serve(l, ep, config.limits, shutdown.child_token(), tasks.clone())
                .instrument(tracing::info_span!("imds", %addr)),
        );
    }
    tasks.spawn(
        control::serve(
            control_listener,
            control_state.clone(),
            shutdown.child_token(),
            tasks.clone(),
        )
        .instrument(tracing::info_span!("control-socket")),
    );
    if let Some(d) = docker {
        tasks.spawn(
            d.run(shutdown.child_token())
                .instrument(tracing::info_span!("docker-watch")),
        );
    }
    tasks.spawn(
        warnings::run(
            broker.clone(),
            services.clock.clone(),
            config.warnings.clone(),
            shutdown.child_token(),
        )
        .instrument(tracing::info_span!("warnings")),
    );
    tasks.spawn(
        keys_retry::run(
            broker.keys_retry(),
            control_state.clone(),
            shutdown.child_token(),
        )
        .instrument(tracing::info_span!("keys-retry")),
    );
    let b = broker.clone();
    tasks.spawn(
        clock::watch_jumps(
            services.clock.clone(),
            clock::JUMP_WATCH,
            shutdown.child_token(),
            move |d| {
                tracing::info!(
                    jump_secs = d.whole_seconds(),
                    "the wall clock jumped (suspend/resume?): re-checking every session"
                );
                b.wake_all();
            },
        )
        .instrument(tracing::info_span!("clock-watch")),
    );
    on_ready(&Ready {
        container: container_addr,
        imds: imds_addr,
        extra: extra_addrs.clone(),
        control_socket: control_path.clone(),
    });

    shutdown.cancelled().await;
    tracing::info!("shutting down");
    tasks.close();
    if tokio::time::timeout(std::time::Duration::from_secs(5), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not stop within 5 s");
    }
    if !control_handed_in {
        let _ = std::fs::remove_file(&control_path);
    }
    Ok(())
}

/// Takes a control socket the service manager bound (socket activation) and
/// returns it with the path it answers at, warning when that is not where
/// the CLI looks for it.
fn adopt_control(
    listener: std::os::unix::net::UnixListener,
    expected: PathBuf,
) -> Result<(tokio::net::UnixListener, PathBuf), DaemonError> {
    let path = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(PathBuf::from))
        .unwrap_or_else(|| expected.clone());
    if path != expected {
        tracing::warn!(
            handed_in = %path.display(),
            expected = %expected.display(),
            "the control socket handed in is not where the credd CLI looks for it; set CREDD_RUNTIME_DIR to its directory"
        );
    }
    listener
        .set_nonblocking(true)
        .map_err(DaemonError::Listener)?;
    let listener = tokio::net::UnixListener::from_std(listener).map_err(DaemonError::Listener)?;
    Ok((listener, path))
}

#[cfg(test)]
mod broker_tests;
#[cfg(test)]
mod endpoint_tests;
#[cfg(test)]
mod sso_tests;
#[cfg(test)]
pub(crate) mod testing;
