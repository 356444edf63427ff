//! The CLI's side of the control socket: one request, one answer, after
//! checking that the socket's directory is private and that the daemon
//! behind it runs as the same user (threat-model row 19). Re-exported from
//! [`crate::control`], where the CLI has always found it.

use crate::fsutil;
use crate::protocol::{Needs, Request};
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
    call_as(socket, req).await
}

/// Sends one request and returns the daemon's answer line, unread.
async fn exchange(socket: &Path, req: &Request) -> Result<String, ClientError> {
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
    Ok(line)
}

/// [`call`], with the answer read as the reply type `T` of the request
/// (see [`crate::protocol`]).
pub async fn call_as<T: serde::de::DeserializeOwned>(
    socket: &Path,
    req: &Request,
) -> Result<T, ClientError> {
    let line = exchange(socket, req).await?;
    read_reply(&line)
}

/// A [`crate::protocol::Envelope`] whose result is read straight into `T`: one parse of the
/// line, not a `Value` tree first and `T` from it (the status answer with
/// 10,000 profiles is 2.7 MB).
#[derive(serde::Deserialize)]
struct Reply<T> {
    ok: bool,
    #[serde(default = "none")]
    result: Option<T>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    needs: Option<Needs>,
}

fn none<T>() -> Option<T> {
    None
}

fn read_reply<T: serde::de::DeserializeOwned>(line: &str) -> Result<T, ClientError> {
    let unreadable = |e: serde_json::Error| {
        ClientError::Daemon(format!("unreadable answer from the daemon: {e}").into())
    };
    let v: Reply<T> = serde_json::from_str(line).map_err(unreadable)?;
    if !v.ok {
        return Err(ClientError::Daemon(Refusal {
            message: v.error.unwrap_or_else(|| "unknown error".into()),
            needs: v.needs,
        }));
    }
    match v.result {
        Some(t) => Ok(t),
        // No result (or `null`): whatever `T` makes of `null`.
        None => serde_json::from_value(Value::Null).map_err(unreadable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Envelope, NeedsKind};

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Pong {
        pong: bool,
    }

    fn line(env: &Envelope) -> String {
        String::from_utf8(crate::control_replies::envelope_bytes(env)).unwrap()
    }

    #[test]
    fn a_reply_is_read_straight_into_its_type() {
        let ok = Envelope {
            ok: true,
            result: Some(serde_json::json!({"pong": true})),
            error: None,
            needs: None,
        };
        assert_eq!(read_reply::<Pong>(&line(&ok)).unwrap(), Pong { pong: true });
        assert_eq!(
            read_reply::<Value>(&line(&ok)).unwrap(),
            serde_json::json!({"pong": true})
        );
        let refused = Envelope {
            ok: false,
            result: None,
            error: Some("profile 'dev' needs an MFA code".into()),
            needs: Some(Needs {
                kind: NeedsKind::Mfa,
                session: "dev".into(),
                command: "credd mfa dev".into(),
            }),
        };
        match read_reply::<Pong>(&line(&refused)) {
            Err(ClientError::Daemon(r)) => {
                assert_eq!(r.message, "profile 'dev' needs an MFA code");
                assert_eq!(r.needs.unwrap().command, "credd mfa dev");
            }
            other => panic!("{other:?}"),
        }
        // No result: `null` for a `Value`, unreadable for a struct.
        let empty = r#"{"ok":true}"#;
        assert_eq!(read_reply::<Value>(empty).unwrap(), Value::Null);
        assert!(matches!(
            read_reply::<Pong>(empty),
            Err(ClientError::Daemon(r)) if r.message.starts_with("unreadable answer")
        ));
        assert!(matches!(
            read_reply::<Pong>(r#"{"ok":true,"result":{"pong":"yes"}}"#),
            Err(ClientError::Daemon(r)) if r.message.starts_with("unreadable answer")
        ));
    }
}
