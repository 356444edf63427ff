//! The control socket: a Unix socket (0600, in a 0700 runtime directory,
//! peer uid checked on every connection) over which the CLI talks to the
//! daemon, one JSON request and one JSON response per connection.
//! Threat-model row 4. The vocabulary is [`crate::protocol`]; the client
//! side is [`crate::control_client`].

use crate::broker::Broker;
/// The client, where the CLI has always found it.
pub use crate::control_client::{call, call_as, ClientError, Refusal};
use crate::control_replies::{envelope_value, reply, serve_error};
/// The request type, where the CLI has always found it.
pub use crate::protocol::Request;
use crate::protocol::{
    ControlError, DaemonInfo, EndpointReply, Envelope, ErrorKind, Files, Identity, MfaSerial,
    MfaStarted, Pong, Refreshed, Revoked, StatusReply, TokenIssued, TokenList,
};
use crate::tokens::TokenStore;
use crate::{fsutil, ProfileLoader};
use credd_core::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Endpoints {
    pub container_url: String,
    pub imds_url: Option<String>,
    /// The profile the IMDS emulation serves.
    pub imds_profile: Option<String>,
    /// Further container-endpoint URLs (e.g. `http://169.254.170.2/v1/credentials`).
    pub extra_urls: Vec<String>,
}

pub(crate) struct ControlState {
    /// The docker watch, when on (`docker.watch`).
    pub docker: Option<Arc<crate::docker_watch::DockerWatch>>,
    pub broker: Broker,
    pub tokens: Arc<TokenStore>,
    pub endpoints: Endpoints,
    pub loader: Arc<dyn ProfileLoader>,
    pub default_token_ttl: std::time::Duration,
    pub config_error: Mutex<Option<String>>,
    /// What was ignored in the AWS files at the last good read (see
    /// [`crate::LoadedPlans::notes`]).
    pub config_notes: Mutex<Vec<String>>,
    pub started: String,
    pub audit: Arc<crate::audit::AuditLog>,
    /// Where the CLI writes token files (`RUNTIME_DIR/tokens`), swept of
    /// dead tokens' files whenever tokens are issued, listed or revoked.
    pub token_files: std::path::PathBuf,
    /// Tells the user what a tool with no terminal cannot (see
    /// [`Request::ProcessCredentials`]).
    pub notifier: Arc<dyn crate::sso::Notifier>,
    /// When each message was last shown, so an IDE retrying every few
    /// seconds raises one notification, not one per retry.
    pub told: Mutex<std::collections::HashMap<String, time::OffsetDateTime>>,
    /// The AWS files and their stamps at the last read: see
    /// [`crate::profile_files`].
    pub(crate) files: crate::profile_files::WatchedFiles,
    /// What [`ProfileLoader::findings`] said at the last read of the files,
    /// so that `status`, `profiles` and `endpoint` do not parse them again.
    pub(crate) findings: Mutex<crate::protocol::Files>,
    /// Held from a stamp check to the end of the read it triggers, so a
    /// control request that comes while the watcher is reading waits for
    /// that read (and sees the file the user just wrote) instead of
    /// finding the stamps already taken and answering from the old set.
    pub(crate) reading: tokio::sync::Mutex<()>,
}

/// How long the same "needs you" notification stays quiet.
const RETELL_AFTER: time::Duration = time::Duration::minutes(15);

impl std::fmt::Debug for ControlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlState").finish_non_exhaustive()
    }
}

impl ControlState {
    /// Re-reads the AWS files now (at start, and on [`Request::Reload`],
    /// which `credd login` and `credd logout` send). A broken file keeps
    /// the last good profiles and is reported by `status` and `profiles`.
    pub async fn reload(&self) {
        let _reading = self.reading.lock().await;
        self.files.mark();
        self.read_profiles().await;
    }

    /// Re-reads the AWS files when one changed since the last read (always,
    /// for a loader that names no files); returns whether it read them. The
    /// check is two `stat(2)` calls, whatever the number of profiles.
    pub async fn reload_if_changed(&self) -> bool {
        let _reading = self.reading.lock().await;
        if !self.files.is_empty() {
            if !self.files.changed() {
                return false;
            }
            tracing::info!("the AWS config or credentials file changed: re-reading the profiles");
        }
        self.read_profiles().await;
        true
    }

    async fn read_profiles(&self) {
        let findings = self.read_findings().await;
        *self.findings.lock().unwrap() = findings;
        match self.loader.load().await {
            Ok(loaded) => {
                self.broker.load_plans(loaded.plans);
                // A login by another command may have written a new token.
                self.broker.sso().sync_all();
                let error = (!loaded.stale.is_empty()).then(|| loaded.stale.join("; "));
                self.report(error, loaded.notes);
            }
            Err(e) => {
                let notes = self.config_notes.lock().unwrap().clone();
                self.report(Some(e), notes);
            }
        }
    }

    /// Raises `message` on the desktop unless it was raised within
    /// [`RETELL_AFTER`].
    fn tell_once(&self, message: &str, now: time::OffsetDateTime) {
        let mut told = self.told.lock().unwrap();
        if told.get(message).is_some_and(|t| now - *t < RETELL_AFTER) {
            return;
        }
        told.retain(|_, t| now - *t < RETELL_AFTER);
        told.insert(message.to_string(), now);
        drop(told);
        self.notifier
            .notify("credd: AWS credentials need you", message);
    }

    /// The findings as of the last read of the files.
    fn findings(&self) -> Files {
        self.findings.lock().unwrap().clone()
    }

    async fn read_findings(&self) -> Files {
        match self.loader.findings().await {
            Ok(f) => Files::Found(f),
            Err(e) => Files::Unreadable { error: e },
        }
    }

    /// Logs a change in what is wrong with the AWS files. The messages name
    /// files, lines and columns and never quote the files.
    fn report(&self, error: Option<String>, notes: Vec<String>) {
        {
            let mut current = self.config_error.lock().unwrap();
            if *current != error {
                if let Some(e) = &error {
                    tracing::warn!(error = %e, "cannot use the AWS config as it is; serving the profiles from the last good version of each file (none for a file never read whole)");
                }
                *current = error;
            }
        }
        let mut old = self.config_notes.lock().unwrap();
        if *old != notes {
            if !notes.is_empty() {
                tracing::warn!(
                    count = notes.len(),
                    "some of the AWS config was ignored; `credd profiles` says what"
                );
            }
            *old = notes;
        }
    }

    /// Whether `profile` is in the AWS files: one map lookup, not a list of
    /// every profile.
    fn knows(&self, profile: &str, now: time::OffsetDateTime) -> bool {
        !matches!(
            self.broker.lookup(profile, now),
            crate::broker::Lookup::Unknown
        )
    }

    /// The engine the docker watch follows, if any.
    fn docker_engine(&self) -> Option<String> {
        self.docker.as_ref().and_then(|d| d.config.engine())
    }

    fn sweep_token_files(&self, now: time::OffsetDateTime) {
        let n = self.tokens.sweep_files(&self.token_files, now);
        if n > 0 {
            tracing::info!(
                removed = n,
                "removed the files of expired or revoked tokens"
            );
        }
    }

    /// `credd token revoke VALUE | --label L | --all`. Neither the answer
    /// nor an error repeats a token value.
    fn revoke_by(
        &self,
        token: Option<String>,
        label: Option<String>,
        all: bool,
        now: time::OffsetDateTime,
    ) -> Result<Revoked, ControlError> {
        let store_err =
            |e: crate::tokens::StoreError| ControlError::new(ErrorKind::Unsupported, e.to_string());
        let revoked: Vec<String> = if let Some(v) = token {
            match self.tokens.revoke_value(&v, now).map_err(store_err)? {
                Some(id) => vec![id],
                None => {
                    return Err(ControlError::not_found("no live token has that value (it may be revoked or expired already; see `credd token list`)"))
                }
            }
        } else if all {
            self.tokens
                .revoke_matching(|_| true, now)
                .map_err(store_err)?
        } else if let Some(l) = &label {
            let ids = self
                .tokens
                .revoke_matching(|r| &r.label == l, now)
                .map_err(store_err)?;
            if ids.is_empty() {
                return Err(ControlError::not_found(format!(
                    "no live token has the label '{l}' (see `credd token list`)"
                )));
            }
            ids
        } else {
            return Err(ControlError::bad_request(
                "say which tokens: a token value, a label, or all",
            ));
        };
        self.sweep_token_files(now);
        Ok(Revoked {
            revoked: revoked.first().cloned(),
            ids: revoked,
        })
    }

    async fn dispatch(&self, req: Request, uid: u32) -> Result<Value, ControlError> {
        let now = self.broker.now();
        if !matches!(
            req,
            Request::Ping
                | Request::TokenList
                | Request::TokenRevoke { .. }
                | Request::TokenRevokeBy { .. }
                | Request::DockerPs
        ) {
            if matches!(req, Request::Reload) {
                self.reload().await;
            } else if !self.reload_if_changed().await {
                // A token another program (`aws sso login`) wrote to the SSO
                // cache: one stat per session, not per profile.
                self.broker.sso().sync_all();
            }
        }
        if matches!(req, Request::TokenIssue { .. } | Request::TokenList) {
            self.sweep_token_files(now);
        }
        match req {
            Request::Ping | Request::Reload => reply(Pong { pong: true }),
            Request::Status | Request::Profiles => {
                let sso_sessions = self.broker.sso().status();
                let login_sessions = self.broker.login_status();
                let sessions = self.broker.user_sessions(&sso_sessions, &login_sessions);
                reply(StatusReply {
                files: self.findings(),
                daemon: DaemonInfo {
                    version: env!("CARGO_PKG_VERSION").into(),
                    pid: std::process::id(),
                    started: self.started.clone(),
                    container_url: self.endpoints.container_url.clone(),
                    imds_url: self.endpoints.imds_url.clone(),
                    extra_urls: self.endpoints.extra_urls.clone(),
                    token_failures: self.tokens.failures(),
                    config_error: self.config_error.lock().unwrap().clone(),
                    config_notes: self.config_notes.lock().unwrap().clone(),
                    docker_watch: self.docker.as_ref().map(|d| d.status()),
                },
                profiles: self.broker.status(),
                sso_sessions,
                login_sessions,
                sessions,
            })
            }
            Request::Credentials { profile } => {
                let c = self.broker.get(&profile).await.map_err(serve_error)?;
                self.audit.record(crate::audit::Vend {
                    at: now,
                    profile: &profile,
                    token: None,
                    endpoint: "control",
                    peer: crate::audit::Peer::Uid(uid),
                });
                Ok(c.creds.process_json())
            }
            Request::ProcessCredentials { profile } => {
                // Never waits on a prompt: a profile that needs the user
                // fails at once (the broker does not call upstream for it).
                let c = match self.broker.get(&profile).await {
                    Ok(c) => c,
                    Err(e) => {
                        // A code needed (`MfaRequired`) is told by the broker's
                        // MFA prompt (`broker/mfa_prompt.rs`: a notification or
                        // a dialog, once per quiet period): telling it here too
                        // would tell the user twice.
                        let needs_user = matches!(&e, crate::broker::ServeError::Upstream { error, .. }
                            if matches!(error.kind, credd_core::UpstreamErrorKind::InvalidMfa
                                | credd_core::UpstreamErrorKind::LoginRequired));
                        let err = serve_error(e);
                        if needs_user {
                            self.tell_once(&err.message, now);
                        }
                        return Err(err);
                    }
                };
                self.audit.record(crate::audit::Vend {
                    at: now,
                    profile: &profile,
                    token: None,
                    endpoint: "control",
                    peer: crate::audit::Peer::Uid(uid),
                });
                Ok(c.creds.process_json())
            }
            Request::Mfa { profile, code } => {
                let code = SecretString::new(code);
                let exp = self
                    .broker
                    .submit_mfa(&profile, code)
                    .await
                    .map_err(serve_error)?;
                reply(MfaStarted {
                    expires: credd_core::format_expiration(exp),
                })
            }
            Request::MfaSerial { profile } => {
                let serial = self
                    .broker
                    .mfa_serial(&profile)
                    .map_err(serve_error)?;
                reply(MfaSerial { serial })
            }
            Request::TokenIssue {
                profiles,
                ttl_secs,
                label,
                docker_engine,
            } => {
                for p in &profiles {
                    if p != "*" && !self.knows(p, now) {
                        return Err(ControlError::not_found(format!(
                            "unknown profile '{p}': see `credd profiles` for the ones credd can serve"
                        )));
                    }
                }
                if profiles.is_empty() {
                    return Err(ControlError::bad_request(
                        "a token needs at least one profile",
                    ));
                }
                let ttl = ttl_secs
                    .map(std::time::Duration::from_secs)
                    .unwrap_or(self.default_token_ttl);
                let ttl = (!ttl.is_zero()).then(|| time::Duration::seconds(ttl.as_secs() as i64));
                // Bound only to the engine this daemon watches: a binding
                // nothing watches would be revoked by nothing.
                let docker = match (&docker_engine, self.docker_engine()) {
                    (None, _) => None,
                    (Some(e), Some(ours)) if *e == ours => {
                        Some(credd_core::token::DockerBinding {
                            engine: ours,
                            container: None,
                        })
                    }
                    (Some(e), _) => {
                        return Err(ControlError::new(ErrorKind::Unsupported, format!(
                            "this daemon does not watch the docker engine {e}; ask `credd docker args` again"
                        )))
                    }
                };
                let (secret, rec) = self
                    .tokens
                    .issue_bound(profiles, now, ttl, label, docker)
                    .map_err(|e| {
                        ControlError::new(
                            ErrorKind::Unsupported,
                            format!("cannot store the token: {e}"),
                        )
                    })?;
                if let (Some(_), Some(watch)) = (&rec.docker, &self.docker) {
                    // Its claim deadline may be the watch's next wake-up.
                    watch.token_issued();
                }
                reply(TokenIssued {
                    token: secret.expose().to_string(),
                    record: rec,
                })
            }
            Request::TokenList => reply(TokenList {
                tokens: self.tokens.list(now),
            }),
            Request::DockerPs => match &self.docker {
                Some(d) => reply(d.ps().await),
                None => Err(ControlError::new(ErrorKind::Unsupported, "credd does not watch docker (docker.watch = false in credd.toml), so it binds no token to a container: see `credd token list`")),
            },
            Request::TokenRevoke { id } if !id.starts_with(credd_core::token::PREFIX) => {
                // Only an id-shaped argument is repeated in the answer: a
                // secret pasted without its prefix must not be.
                if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ControlError::bad_request("that is neither a token id (16 hex digits) nor a whole token (credd_...); see `credd token list`"));
                }
                let found = self
                    .tokens
                    .revoke(&id, now)
                    .map_err(|e| ControlError::new(ErrorKind::Unsupported, e.to_string()))?;
                self.sweep_token_files(now);
                if found {
                    reply(Revoked {
                        revoked: Some(id.clone()),
                        ids: vec![id],
                    })
                } else {
                    Err(ControlError::not_found(format!(
                        "no token with id '{id}' (see `credd token list`)"
                    )))
                }
            }
            // A whole token value where the id goes (older clients).
            Request::TokenRevoke { id: value } => {
                reply(self.revoke_by(Some(value), None, false, now)?)
            }
            Request::TokenRevokeBy { token, label, all } => {
                reply(self.revoke_by(token, label, all, now)?)
            }
            Request::Whoami { profile } => {
                let id = self
                    .broker
                    .whoami(&profile)
                    .await
                    .map_err(serve_error)?;
                reply(Identity {
                    account: id.account,
                    arn: id.arn,
                    user_id: id.user_id,
                })
            }
            Request::Refresh { profile } => {
                let c = self
                    .broker
                    .refresh_now(&profile)
                    .await
                    .map_err(serve_error)?;
                reply(Refreshed {
                    expires: credd_core::format_expiration(c.creds.expiration()),
                })
            }
            Request::Endpoint { profile } => {
                if let Some(p) = &profile {
                    if !self.knows(p, now) {
                        return Err(ControlError::not_found(format!(
                            "unknown profile '{p}': see `credd profiles` for the ones credd can serve"
                        )));
                    }
                }
                let settings = match &profile {
                    Some(p) => self
                        .loader
                        .settings(p)
                        .await
                        .map_err(|e| ControlError::new(ErrorKind::Unavailable, e))?,
                    None => None,
                };
                reply(EndpointReply {
                    container_url: self.endpoints.container_url.clone(),
                    imds_url: self.endpoints.imds_url.clone(),
                    imds_profile: self.endpoints.imds_profile.clone(),
                    extra_urls: self.endpoints.extra_urls.clone(),
                    docker_engine: self.docker_engine(),
                    docker_claim_within_secs: self
                        .docker
                        .as_ref()
                        .map(|d| d.config.claim_within.as_secs()),
                    region: profile.and_then(|p| self.broker.region(&p)),
                    settings,
                    files: self.findings(),
                })
            }
        }
    }
}

/// Binds the control socket at `path` (0600), refusing to start when a
/// daemon already answers there and replacing a stale socket file.
pub(crate) async fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        fsutil::private_dir(dir).map_err(std::io::Error::other)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "another credd is already running (control socket {})",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

pub(crate) async fn serve(
    listener: UnixListener,
    state: Arc<ControlState>,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    let me = fsutil::my_uid();
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        match stream.peer_cred() {
            Ok(c) if c.uid() == me => {}
            Ok(c) => {
                tracing::warn!(
                    uid = c.uid(),
                    "control connection from another user refused"
                );
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the peer's credentials; refused");
                continue;
            }
        }
        let state = state.clone();
        let cancel = cancel.clone();
        tasks.spawn(
            async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = handle(stream, &state, me) => {}
                }
            }
            .instrument(tracing::info_span!("control")),
        );
    }
}

async fn handle(stream: UnixStream, state: &ControlState, uid: u32) {
    let (r, mut w) = stream.into_split();
    let mut line = Vec::new();
    let mut reader = BufReader::new(r).take(MAX_REQUEST as u64);
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reader.read_until(b'\n', &mut line),
    )
    .await;
    let resp = match read {
        Ok(Ok(_)) => match serde_json::from_slice::<Request>(&line) {
            Ok(req) => {
                tracing::debug!(?req, "control request");
                match state.dispatch(req, uid).await {
                    Ok(v) => Envelope {
                        ok: true,
                        result: Some(v),
                        error: None,
                        needs: None,
                    },
                    Err(e) => Envelope {
                        ok: false,
                        result: None,
                        error: Some(e.message),
                        needs: e.needs,
                    },
                }
            }
            Err(e) => Envelope {
                ok: false,
                result: None,
                error: Some(format!("bad request: {e}")),
                needs: None,
            },
        },
        _ => return,
    };
    line.iter_mut().for_each(|b| *b = 0);
    let mut out = serde_json::to_vec(&envelope_value(resp)).expect("serializes");
    out.push(b'\n');
    let _ = w.write_all(&out).await;
    let _ = w.shutdown().await;
}
