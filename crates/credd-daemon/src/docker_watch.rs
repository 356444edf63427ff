//! Watches the docker engine so that no container token outlives its
//! container (docs/docker.md, "How long a container's token lives";
//! threat-model row 26).
//!
//! `credd docker run` and `credd docker args` label the container
//! `credd.token=<token id>` (the id, never the secret) and issue a token
//! *bound* to this engine. This task subscribes to the engine's events
//! (`type=container`, `event=create|destroy`, `label=credd.token`): a
//! container created with a bound token's label is recorded in the token's
//! record; when the last container with that label is **removed**
//! (`destroy`; not `die`, so a `--restart always` container that exits and
//! comes back keeps its token) the token is revoked. At start and on every
//! reconnect it lists the labelled containers (stopped ones too) and
//! revokes bound tokens whose container is gone (removed while the daemon
//! or the engine was down), and tokens no container claimed within
//! `docker.claim_within` (a `docker args` whose `docker run` never came).
//! Between events it sleeps until the next unclaimed token's deadline, and
//! has no timer at all when no token waits for its container (a laptop
//! daemon must not wake for nothing: issue 16); the control socket tells it
//! when a bound token is issued ([`DockerWatch::token_issued`]).
//!
//! The engine is reached over its unix socket only, through `bollard`.
//! When it cannot be reached the task retries with a capped backoff and
//! says why once (and in `credd status`), not on every try.

use crate::clock::Clock;
use crate::protocol::{ContainerRow, DockerPs, DockerWatchStatus};
use crate::tokens::TokenStore;
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The label `credd docker run`/`args` put on a container: its token's id.
pub const LABEL: &str = "credd.token";

/// Where the engine is, and how long a bound token may wait for its
/// container.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The engine's unix socket, or why it cannot be watched (e.g. a
    /// `DOCKER_HOST` that is not `unix://`).
    pub socket: Result<PathBuf, String>,
    pub claim_within: Duration,
}

impl WatchConfig {
    /// How the engine is named in token bindings and to the CLI:
    /// `unix:///var/run/docker.sock`.
    pub fn engine(&self) -> Option<String> {
        self.socket
            .as_ref()
            .ok()
            .map(|p| format!("unix://{}", p.display()))
    }
}

/// The watcher and what it last found, shared with the control socket.
pub struct DockerWatch {
    pub config: WatchConfig,
    tokens: Arc<TokenStore>,
    clock: Arc<dyn Clock>,
    /// One line for `credd status`: watching, or why not.
    state: Mutex<String>,
    /// Poked when a token bound to this engine is issued: its claim
    /// deadline may be the next one. `notify_one` keeps the wake-up if the
    /// watch is busy (or reconnecting) when it comes.
    issued: tokio::sync::Notify,
}

impl std::fmt::Debug for DockerWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerWatch")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why a watch session ended.
#[derive(Debug, thiserror::Error)]
enum WatchError {
    #[error("{0}")]
    Connect(String),
    #[error("the docker engine at {path}: {source}")]
    Engine {
        path: String,
        source: bollard::errors::Error,
    },
    #[error("the docker engine at {0} closed its event stream")]
    Ended(String),
    #[error("{0}")]
    Store(#[from] crate::tokens::StoreError),
}

/// Retry delays while the engine is down: 1 s doubling to 60 s.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// The longest the watch sleeps while a token waits for its container: the
/// sleep is on the monotonic clock, which stands still while a laptop is
/// suspended, so the deadline is looked at again on the wall clock this
/// often (only while some token is pending).
const CLAIM_RECHECK: Duration = Duration::from_secs(60);

impl DockerWatch {
    pub fn new(config: WatchConfig, tokens: Arc<TokenStore>, clock: Arc<dyn Clock>) -> Self {
        let state = match &config.socket {
            Ok(p) => format!("connecting to unix://{}", p.display()),
            Err(e) => e.clone(),
        };
        Self {
            config,
            tokens,
            clock,
            state: Mutex::new(state),
            issued: tokio::sync::Notify::new(),
        }
    }

    /// A token bound to this engine was just issued: the watch looks again
    /// at when the next unclaimed token is due.
    pub fn token_issued(&self) {
        self.issued.notify_one();
    }

    /// What `credd status` says about the watcher.
    pub fn status(&self) -> DockerWatchStatus {
        DockerWatchStatus {
            engine: self.config.engine(),
            state: self.state.lock().unwrap().clone(),
            claim_within_secs: self.config.claim_within.as_secs(),
        }
    }

    fn set_state(&self, s: String) -> bool {
        let mut st = self.state.lock().unwrap();
        let changed = *st != s;
        *st = s;
        changed
    }

    /// Runs until `cancel`: one session per connection, reconnecting with
    /// backoff.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let Ok(path) = self.config.socket.clone() else {
            tracing::warn!(reason = %*self.state.lock().unwrap(), "not watching docker: container tokens live until they expire");
            return;
        };
        let mut backoff = BACKOFF_FIRST;
        loop {
            let r = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.session(&path, &mut backoff) => r,
            };
            let Err(e) = r;
            let msg = e.to_string();
            if self.set_state(msg.clone()) {
                // Said once per new reason; retries stay quiet.
                tracing::info!(reason = %msg, "docker watch: cannot watch the engine; retrying in the background (container tokens are revoked once it is back)");
            } else {
                tracing::debug!(reason = %msg, "docker watch: still cannot watch the engine");
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
    }

    /// One connection: subscribe, reconcile, then follow the events until
    /// the stream fails. Returns only with an error (cancellation drops it).
    async fn session(
        &self,
        path: &std::path::Path,
        backoff: &mut Duration,
    ) -> Result<std::convert::Infallible, WatchError> {
        let docker = connect(path).await?;
        let engine_err = |source| WatchError::Engine {
            path: path.display().to_string(),
            source,
        };
        // Events are asked for from a second before the listing, so that a
        // removal between the two is not missed (handling one twice is
        // harmless: revoking is idempotent).
        let since = (self.clock.now().unix_timestamp() - 1).to_string();
        let mut events = docker.events(Some(EventsOptions {
            since: Some(since),
            until: None,
            filters: Some(HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                (
                    "event".to_string(),
                    vec!["create".to_string(), "destroy".to_string()],
                ),
                ("label".to_string(), vec![LABEL.to_string()]),
            ])),
        }));
        self.reconcile(&docker).await.map_err(|e| match e {
            ReconcileError::Engine(e) => engine_err(e),
            ReconcileError::Store(e) => WatchError::Store(e),
        })?;
        *backoff = BACKOFF_FIRST;
        if self.set_state(format!("watching unix://{}", path.display())) {
            tracing::info!(engine = %path.display(), "docker watch: watching the engine; a container's token is revoked when the container is removed");
        }
        loop {
            // Unclaimed tokens are looked at again when the first of them is
            // due; with none pending there is no timer.
            let due = next_claim_wait(
                &self.tokens.list(self.clock.now()),
                self.config.engine().as_deref(),
                self.clock.now(),
                self.config.claim_within,
            );
            let wait = async move {
                match due {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // A new bound token: its deadline may come first.
                _ = self.issued.notified() => {}
                ev = events.next() => match ev {
                    None => return Err(WatchError::Ended(path.display().to_string())),
                    Some(Err(e)) => return Err(engine_err(e)),
                    Some(Ok(ev)) => {
                        let action = ev.action.unwrap_or_default();
                        let actor = ev.actor.unwrap_or_default();
                        let Some(id) = actor.attributes.as_ref().and_then(|a| a.get(LABEL)).cloned() else { continue };
                        let container = actor.id.unwrap_or_default();
                        match action.as_str() {
                            "create" => self.claimed(&id, &container)?,
                            "destroy" => self.removed(&docker, &id, &container).await.map_err(|e| match e {
                                ReconcileError::Engine(e) => engine_err(e),
                                ReconcileError::Store(e) => WatchError::Store(e),
                            })?,
                            _ => {}
                        }
                    }
                },
                _ = wait => {
                    if self.unclaimed_past_grace() {
                        self.reconcile(&docker).await.map_err(|e| match e {
                            ReconcileError::Engine(e) => engine_err(e),
                            ReconcileError::Store(e) => WatchError::Store(e),
                        })?;
                    }
                }
            }
        }
    }

    /// Whether this engine's binding is on `r`.
    fn ours(&self, r: &credd_core::token::TokenRecord) -> bool {
        r.docker
            .as_ref()
            .is_some_and(|b| Some(&b.engine) == self.config.engine().as_ref())
    }

    fn unclaimed_past_grace(&self) -> bool {
        let now = self.clock.now();
        let grace = time::Duration::seconds(self.config.claim_within.as_secs() as i64);
        self.tokens.list(now).iter().any(|r| {
            self.ours(r)
                && r.docker.as_ref().is_some_and(|b| b.container.is_none())
                && now - r.created >= grace
        })
    }

    /// A container with token `id`'s label was created: the token is
    /// claimed (its record names the container).
    fn claimed(&self, id: &str, container: &str) -> Result<(), WatchError> {
        let now = self.clock.now();
        if let Some(r) = self.tokens.list(now).into_iter().find(|r| r.id == id) {
            if self.ours(&r) && r.docker.as_ref().is_some_and(|b| b.container.is_none()) {
                self.tokens.bind_container(id, container, now)?;
                tracing::debug!(
                    token = id,
                    container = short(container),
                    "docker watch: the token's container was created"
                );
            }
        }
        Ok(())
    }

    /// A container with token `id`'s label was removed: the token goes
    /// once no container with that label is left.
    async fn removed(
        &self,
        docker: &Docker,
        id: &str,
        container: &str,
    ) -> Result<(), ReconcileError> {
        let now = self.clock.now();
        let Some(r) = self.tokens.list(now).into_iter().find(|r| r.id == id) else {
            return Ok(());
        };
        if !self.ours(&r) {
            return Ok(());
        }
        let left = labelled(docker, Some(id)).await?;
        if left.is_empty() {
            self.revoke(
                id,
                &format!("its container {} was removed", short(container)),
            )?;
        }
        Ok(())
    }

    fn revoke(&self, id: &str, why: &str) -> Result<(), crate::tokens::StoreError> {
        if self.tokens.revoke(id, self.clock.now())? {
            tracing::info!(token = id, "docker watch: revoked the token: {why}");
        }
        Ok(())
    }

    /// Brings the bound tokens in line with the containers that exist now.
    async fn reconcile(&self, docker: &Docker) -> Result<(), ReconcileError> {
        let containers = labelled(docker, None).await?;
        let now = self.clock.now();
        for r in self.tokens.list(now).into_iter().filter(|r| self.ours(r)) {
            let present = containers.get(&r.id).map(|c| c.id.as_str());
            match decide(&r, present, now, self.config.claim_within) {
                Decision::Keep => {}
                Decision::Claim(c) => {
                    self.tokens.bind_container(&r.id, &c, now)?;
                }
                Decision::Revoke(why) => self.revoke(&r.id, &why)?,
            }
        }
        Ok(())
    }

    /// `credd docker ps`: the live tokens bound to this engine, each with
    /// its container as the engine describes it now.
    pub async fn ps(&self) -> DockerPs {
        let now = self.clock.now();
        let (containers, error) = match &self.config.socket {
            Err(e) => (HashMap::new(), Some(e.clone())),
            Ok(path) => match connect(path).await {
                Err(e) => (HashMap::new(), Some(e.to_string())),
                Ok(d) => match labelled(&d, None).await {
                    Ok(c) => (c, None),
                    Err(e) => (HashMap::new(), Some(e.to_string())),
                },
            },
        };
        let grace = time::Duration::seconds(self.config.claim_within.as_secs() as i64);
        let rows: Vec<ContainerRow> = self
            .tokens
            .list(now)
            .into_iter()
            .filter(|r| self.ours(r))
            .map(|r| {
                let c = containers.get(&r.id);
                let bound = r.docker.as_ref().and_then(|b| b.container.clone());
                let id = c.map(|c| c.id.clone()).or(bound);
                ContainerRow {
                    container: id.as_deref().map(short),
                    name: c.map(|c| c.name.clone()),
                    image: c.map(|c| c.image.clone()),
                    state: c.map(|c| c.state.clone()),
                    token: r.id,
                    profiles: r.profiles,
                    label: r.label,
                    token_age_secs: (now - r.created).whole_seconds(),
                    expires: r.expires.map(credd_core::format_expiration),
                    unclaimed_revoked_at: id
                        .is_none()
                        .then(|| credd_core::format_expiration(r.created + grace)),
                    container_id: id,
                }
            })
            .collect();
        DockerPs {
            engine: self.config.engine(),
            error,
            containers: rows,
        }
    }
}

/// What the reconcile does with one bound token.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Keep,
    /// Record this container as the token's.
    Claim(String),
    /// Revoke, for this reason (logged).
    Revoke(String),
}

/// The reconcile's rule for a token bound to this engine, given the id of
/// a container that carries its label now (stopped ones count), if any.
/// Pure, so it is tested without an engine or a clock.
fn decide(
    r: &credd_core::token::TokenRecord,
    present: Option<&str>,
    now: time::OffsetDateTime,
    claim_within: Duration,
) -> Decision {
    let seen = r.docker.as_ref().and_then(|b| b.container.as_deref());
    match (present, seen) {
        (Some(c), None) => Decision::Claim(c.to_string()),
        (Some(_), Some(_)) => Decision::Keep,
        // Seen once and gone now: removed while credd was not watching.
        (None, Some(c)) => Decision::Revoke(format!(
            "its container {} was removed while credd was not watching",
            short(c)
        )),
        (None, None)
            if now - r.created >= time::Duration::seconds(claim_within.as_secs() as i64) =>
        {
            Decision::Revoke(format!(
                "no container claimed it within {} (docker.claim_within)",
                credd_core::duration::fmt_secs(claim_within.as_secs())
            ))
        }
        (None, None) => Decision::Keep,
    }
}

/// How long until the first token bound to `engine` and not yet claimed by
/// a container is due for revocation (zero if one is overdue), capped at
/// [`CLAIM_RECHECK`]; `None` when no token waits for its container, so the
/// watch needs no timer. Pure, so it is tested without an engine or a clock.
fn next_claim_wait(
    records: &[credd_core::token::TokenRecord],
    engine: Option<&str>,
    now: time::OffsetDateTime,
    claim_within: Duration,
) -> Option<Duration> {
    let grace = time::Duration::seconds(claim_within.as_secs() as i64);
    records
        .iter()
        .filter(|r| {
            r.docker
                .as_ref()
                .is_some_and(|b| Some(b.engine.as_str()) == engine && b.container.is_none())
        })
        .map(|r| r.created + grace - now)
        .min()
        .map(|left| {
            // Overdue: at once (the reconcile revokes it). Else whole
            // milliseconds, rounded up so the wake-up is never early.
            let ms = left.whole_milliseconds() + i128::from(left.subsec_microseconds() % 1000 != 0);
            Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(CLAIM_RECHECK)
        })
}

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error("{0}")]
    Engine(#[from] bollard::errors::Error),
    #[error("{0}")]
    Store(#[from] crate::tokens::StoreError),
}

/// A labelled container as `docker ps` would show it.
#[derive(Debug, Clone)]
struct Container {
    id: String,
    name: String,
    image: String,
    state: String,
}

/// Containers (all, stopped ones too) with credd's label (with value `id`
/// when given), by token id.
async fn labelled(
    docker: &Docker,
    id: Option<&str>,
) -> Result<HashMap<String, Container>, bollard::errors::Error> {
    let filter = match id {
        Some(id) => format!("{LABEL}={id}"),
        None => LABEL.to_string(),
    };
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_string(), vec![filter])])),
            ..Default::default()
        }))
        .await?;
    let mut out = HashMap::new();
    for c in list {
        let Some(token) = c.labels.as_ref().and_then(|l| l.get(LABEL)).cloned() else {
            continue;
        };
        out.insert(
            token,
            Container {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            },
        );
    }
    Ok(out)
}

/// Connects to the engine, with a message that says what to do when it
/// cannot: the socket is tried first, for a plain reason (docker not
/// running, not in the docker group) rather than an HTTP client's.
async fn connect(path: &std::path::Path) -> Result<Docker, WatchError> {
    let shown = path.display();
    match tokio::net::UnixStream::connect(path).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(WatchError::Connect(format!(
                "cannot connect to the docker engine at unix://{shown}: permission denied (you are not in the docker group: \
                 `sudo usermod -aG docker $USER`, then log in again; or set docker.watch = false in credd.toml). \
                 Until then container tokens live until they expire"
            )))
        }
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Err(WatchError::Connect(format!(
                "no docker engine answers at unix://{shown} (is docker running?); credd keeps trying"
            )))
        }
        Err(e) => {
            return Err(WatchError::Connect(format!(
                "cannot connect to the docker engine at unix://{shown}: {e}"
            )))
        }
    }
    let engine_err = |source| WatchError::Engine {
        path: shown.to_string(),
        source,
    };
    let d = Docker::connect_with_unix(&shown.to_string(), 60, bollard::API_DEFAULT_VERSION)
        .map_err(engine_err)?;
    // An older engine refuses a newer API version: settle on one both speak.
    d.negotiate_version().await.map_err(engine_err)
}

/// A container id as `docker ps` shows it (12 hex digits).
pub fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// Where the engine is, as the docker CLI finds it: `DOCKER_HOST` (only
/// `unix://` can be watched), else `/var/run/docker.sock`.
pub fn socket_from_env(docker_host: Option<&str>) -> Result<PathBuf, String> {
    match docker_host.filter(|h| !h.is_empty()) {
        None => Ok(PathBuf::from("/var/run/docker.sock")),
        Some(h) => match h.strip_prefix("unix://") {
            Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
            _ => Err(format!(
                "DOCKER_HOST is {h}: credd watches a local engine's unix:// socket only, so container tokens live until they expire \
                 (set docker.socket in credd.toml to watch a local engine, or docker.watch = false to say this is meant)"
            )),
        },
    }
}

#[cfg(test)]
#[path = "docker_watch_tests.rs"]
mod tests;
