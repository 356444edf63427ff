//! The CLI's side of the control socket: one request, one answer, after
//! checking that the socket's directory is private and that the daemon
//! behind it runs as the same user (threat-model row 19). Re-exported from
//! [`crate::control`], where the CLI has always found it.

use crate::fsutil;
use crate::protocol::{Envelope, Needs, Request};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("credd is not running (no daemon at {0}): start it with `credd serve`")]
    NotRunning(PathBuf),
    /// The daemon refused, or answered nothing readable.
    #[error("{0}")]
    Daemon(Refusal),
    #[error("talking to the daemon at {path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("refusing to talk to a daemon through {dir}: {err}. Nothing was sent. Another user may have made it to pose as credd: remove it (it may take root), or set CREDD_RUNTIME_DIR to a directory of your own")]
    UntrustedDir { dir: PathBuf, err: fsutil::FsError },
    #[error("refusing to talk to the daemon at {path}: it runs as uid {uid}, not as you (uid {me}). Nothing was sent. Another user may be posing as credd: stop it (it may take root), or set CREDD_RUNTIME_DIR to a directory of your own")]
    ForeignDaemon { path: PathBuf, uid: u32, me: u32 },
}

/// The daemon's refusal: its message for a person and, when the person can
/// fix it, what it needs ([`Needs`], typed: the CLI decides from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub needs: Option<Needs>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for Refusal {
    fn from(message: String) -> Self {
        Self {
            message,
            needs: None,
        }
    }
}

impl From<&str> for Refusal {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
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
    // Before anything is sent: the directory must be ours and private, and
    // the process behind the socket must run as us (threat-model row 19).
    if let Some(dir) = socket.parent() {
        match fsutil::check_trusted_dir(dir) {
            Ok(()) => {}
            Err(fsutil::FsError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(ClientError::NotRunning(socket.to_path_buf()))
            }
            Err(err) => {
                return Err(ClientError::UntrustedDir {
                    dir: dir.to_path_buf(),
                    err,
                })
            }
        }
    }
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
    let me = fsutil::my_uid();
    match stream.peer_cred() {
        Ok(c) if c.uid() == me => {}
        Ok(c) => {
            return Err(ClientError::ForeignDaemon {
                path: socket.to_path_buf(),
                uid: c.uid(),
                me,
            })
        }
        Err(e) => return Err(io(e)),
    }
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
    let v: Envelope = serde_json::from_str(&line).map_err(|e| {
        ClientError::Daemon(format!("unreadable answer from the daemon: {e}").into())
    })?;
    if v.ok {
        Ok(v.result.unwrap_or(Value::Null))
    } else {
        Err(ClientError::Daemon(Refusal {
            message: v.error.unwrap_or_else(|| "unknown error".into()),
            needs: v.needs,
        }))
    }
}

/// [`call`], with the answer read as the reply type `T` of the request
/// (see [`crate::protocol`]).
pub async fn call_as<T: serde::de::DeserializeOwned>(
    socket: &Path,
    req: &Request,
) -> Result<T, ClientError> {
    let v = call(socket, req).await?;
    serde_json::from_value(v)
        .map_err(|e| ClientError::Daemon(format!("unreadable answer from the daemon: {e}").into()))
}
