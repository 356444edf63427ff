//! The control socket: a Unix socket (0600, in a 0700 runtime directory,
//! peer uid checked on every connection) over which the CLI talks to the
//! daemon, one JSON request and one JSON response per connection.
//! Threat-model row 4.

use crate::broker::Broker;
use crate::tokens::TokenStore;
use crate::{fsutil, ProfileLoader};
use credd_core::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

const MAX_REQUEST: usize = 64 * 1024;

/// What the CLI can ask. Requests are never logged (an MFA code travels here).
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Ping,
    Status,
    Profiles,
    Credentials {
        profile: String,
    },
    Mfa {
        profile: String,
        code: String,
    },
    MfaSerial {
        profile: String,
    },
    TokenIssue {
        profiles: Vec<String>,
        ttl_secs: Option<u64>,
        label: String,
    },
    TokenList,
    TokenRevoke {
        id: String,
    },
    Whoami {
        profile: String,
    },
    Endpoint {
        profile: Option<String>,
    },
    Reload,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the operation name: arguments may include an MFA code.
        let v = serde_json::to_value(self).unwrap_or_default();
        write!(f, "Request({})", v["op"].as_str().unwrap_or("?"))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoints {
    pub container_url: String,
    pub imds_url: Option<String>,
    /// Further container-endpoint URLs (e.g. `http://169.254.170.2/v1/credentials`).
    pub extra_urls: Vec<String>,
}

pub struct ControlState {
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
}

impl std::fmt::Debug for ControlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlState").finish_non_exhaustive()
    }
}

impl ControlState {
    /// Re-reads the AWS files. A broken file keeps the last good profiles
    /// and is reported by `status` and `profiles`.
    pub async fn reload(&self) {
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

    fn sweep_token_files(&self, now: time::OffsetDateTime) {
        let n = self.tokens.sweep_files(&self.token_files, now);
        if n > 0 {
            tracing::info!(
                removed = n,
                "removed the files of expired or revoked tokens"
            );
        }
    }

    async fn dispatch(&self, req: Request, uid: u32) -> Result<Value, String> {
        let now = self.broker.now();
        if !matches!(
            req,
            Request::Ping | Request::TokenList | Request::TokenRevoke { .. }
        ) {
            self.reload().await;
        }
        if matches!(req, Request::TokenIssue { .. } | Request::TokenList) {
            self.sweep_token_files(now);
        }
        match req {
            Request::Ping | Request::Reload => Ok(json!({"pong": true})),
            Request::Status | Request::Profiles => Ok(json!({
                "daemon": {
                    "version": env!("CARGO_PKG_VERSION"),
                    "pid": std::process::id(),
                    "started": self.started,
                    "container_url": self.endpoints.container_url,
                    "imds_url": self.endpoints.imds_url,
                    "extra_urls": self.endpoints.extra_urls,
                    "token_failures": self.tokens.failures(),
                    "config_error": *self.config_error.lock().unwrap(),
                    "config_notes": *self.config_notes.lock().unwrap(),
                },
                "profiles": self.broker.status(),
                "sso_sessions": self.broker.sso().status(),
            })),
            Request::Credentials { profile } => {
                let c = self.broker.get(&profile).await.map_err(|e| e.to_string())?;
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
                    .map_err(|e| e.to_string())?;
                Ok(json!({"expires": credd_core::format_expiration(exp)}))
            }
            Request::MfaSerial { profile } => {
                let serial = self
                    .broker
                    .mfa_serial(&profile)
                    .map_err(|e| e.to_string())?;
                Ok(json!({"serial": serial}))
            }
            Request::TokenIssue {
                profiles,
                ttl_secs,
                label,
            } => {
                let known = self.broker.profile_names();
                for p in &profiles {
                    if p != "*" && !known.contains(p) {
                        return Err(format!(
                            "unknown profile '{p}': see `credd profiles` for the ones credd can serve"
                        ));
                    }
                }
                if profiles.is_empty() {
                    return Err("a token needs at least one profile".into());
                }
                let ttl = ttl_secs
                    .map(std::time::Duration::from_secs)
                    .unwrap_or(self.default_token_ttl);
                let ttl = (!ttl.is_zero()).then(|| time::Duration::seconds(ttl.as_secs() as i64));
                let (secret, rec) = self
                    .tokens
                    .issue(profiles, now, ttl, label)
                    .map_err(|e| format!("cannot store the token: {e}"))?;
                Ok(json!({"token": secret.expose(), "record": rec}))
            }
            Request::TokenList => Ok(json!({"tokens": self.tokens.list(now)})),
            Request::TokenRevoke { id } => {
                let found = self
                    .tokens
                    .revoke(&id, now)
                    .map_err(|e| format!("cannot store the token list: {e}"))?;
                self.sweep_token_files(now);
                if found {
                    Ok(json!({"revoked": id}))
                } else {
                    Err(format!("no token with id '{id}' (see `credd token list`)"))
                }
            }
            Request::Whoami { profile } => {
                let id = self
                    .broker
                    .whoami(&profile)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(json!({"Account": id.account, "Arn": id.arn, "UserId": id.user_id}))
            }
            Request::Endpoint { profile } => {
                if let Some(p) = &profile {
                    if !self.broker.profile_names().contains(p) {
                        return Err(format!(
                            "unknown profile '{p}': see `credd profiles` for the ones credd can serve"
                        ));
                    }
                }
                Ok(json!({
                    "container_url": self.endpoints.container_url,
                    "imds_url": self.endpoints.imds_url,
                    "extra_urls": self.endpoints.extra_urls,
                    "region": profile.and_then(|p| self.broker.region(&p)),
                }))
            }
        }
    }
}

/// Binds the control socket at `path` (0600), refusing to start when a
/// daemon already answers there and replacing a stale socket file.
pub async fn bind(path: &Path) -> std::io::Result<UnixListener> {
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

pub async fn serve(
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
                    Ok(v) => json!({"ok": true, "result": v}),
                    Err(e) => json!({"ok": false, "error": e}),
                }
            }
            Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
        },
        _ => return,
    };
    line.iter_mut().for_each(|b| *b = 0);
    let mut out = serde_json::to_vec(&resp).expect("serializes");
    out.push(b'\n');
    let _ = w.write_all(&out).await;
    let _ = w.shutdown().await;
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("credd is not running (no daemon at {0}): start it with `credd serve`")]
    NotRunning(PathBuf),
    #[error("{0}")]
    Daemon(String),
    #[error("talking to the daemon at {path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
}

/// Sends one request to the daemon behind `socket` and returns its result.
pub async fn call(socket: &Path, req: &Request) -> Result<Value, ClientError> {
    let io = |err: std::io::Error| match err.kind() {
        // The daemon drops connections from other users without a word.
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
            ClientError::Daemon(
                "the daemon closed the connection without answering (is it another user's?)".into(),
            )
        }
        _ => ClientError::Io {
            path: socket.to_path_buf(),
            err,
        },
    };
    let stream = match UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ClientError::NotRunning(socket.to_path_buf()))
        }
        Err(e) => return Err(io(e)),
    };
    let (r, mut w) = stream.into_split();
    let mut out = serde_json::to_vec(req).expect("serializes");
    out.push(b'\n');
    w.write_all(&out).await.map_err(io)?;
    out.iter_mut().for_each(|b| *b = 0);
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).await.map_err(io)?;
    if line.is_empty() {
        return Err(ClientError::Daemon(
            "the daemon closed the connection without answering (is it another user's?)".into(),
        ));
    }
    let v: Value = serde_json::from_str(&line)
        .map_err(|e| ClientError::Daemon(format!("unreadable answer from the daemon: {e}")))?;
    if v["ok"].as_bool() == Some(true) {
        Ok(v["result"].clone())
    } else {
        Err(ClientError::Daemon(
            v["error"].as_str().unwrap_or("unknown error").to_string(),
        ))
    }
}
