//! The audit log: one JSON line per credential vended (time, profile,
//! client token id, endpoint, peer), in `STATE_DIR/audit.log` (0600),
//! rotated by size. Nothing secret is ever in a record: the token *id* is
//! public, the token itself is not recorded.
//!
//! Requests hand records to a bounded channel and never wait on the disk; a
//! writer task appends them. If the writer falls behind, records are dropped
//! and the drop is counted and logged rather than slowing requests down.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;

/// Rotate when the log passes this size; keep this many old files.
pub const MAX_BYTES: u64 = 1024 * 1024;
pub const KEEP: usize = 3;
const QUEUE: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// RFC 3339, UTC, whole seconds.
    pub time: String,
    pub profile: String,
    /// The client token's public id (`credd token list`), when one was used.
    pub token_id: Option<String>,
    /// `container`, `imds` or `control`.
    pub endpoint: String,
    /// `IP:PORT` of a TCP peer, or `uid N` on the control socket.
    pub peer: String,
}

/// What a request hands to the log. Nothing is formatted or copied on the
/// request path: the writer thread turns it into a [`Record`] line.
#[derive(Debug)]
pub struct Vend {
    pub at: time::OffsetDateTime,
    pub profile: String,
    pub token: Option<std::sync::Arc<credd_core::token::TokenRecord>>,
    pub endpoint: &'static str,
    pub peer: Peer,
}

#[derive(Debug, Clone, Copy)]
pub enum Peer {
    Tcp(std::net::SocketAddr),
    Uid(u32),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(a) => a.fmt(f),
            Peer::Uid(u) => write!(f, "uid {u}"),
        }
    }
}

/// A [`Record`] line borrowed from a [`Vend`] (same fields, same order).
#[derive(Serialize)]
struct Line<'a> {
    time: &'a str,
    profile: &'a str,
    token_id: Option<&'a str>,
    endpoint: &'a str,
    peer: &'a str,
}

#[derive(Debug)]
pub struct AuditLog {
    tx: Option<std::sync::mpsc::SyncSender<Vend>>,
    dropped: AtomicU64,
}

/// How long the writer lets records gather before it writes them: bounds
/// its wake-ups (and the requests' wake-up work) under load.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

impl AuditLog {
    /// A log that records nothing (tests of other parts).
    pub fn disabled() -> Self {
        Self {
            tx: None,
            dropped: AtomicU64::new(0),
        }
    }

    /// Starts the writer thread for `path`; it stops when `cancel` fires,
    /// after writing what is queued.
    pub fn start(
        path: PathBuf,
        cancel: CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        tasks.spawn_blocking(move || writer(path, rx, cancel));
        Self {
            tx: Some(tx),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn record(&self, r: Vend) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(r).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "audit log writer is behind; records dropped");
            }
        }
    }
}

/// The open log and its size, so that a batch costs one write(2).
struct Out {
    file: std::fs::File,
    len: u64,
}

fn open(path: &Path) -> std::io::Result<Out> {
    if let Some(dir) = path.parent() {
        crate::fsutil::private_dir(dir).map_err(std::io::Error::other)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    let len = file.metadata()?.len();
    Ok(Out { file, len })
}

fn writer(path: PathBuf, rx: std::sync::mpsc::Receiver<Vend>, cancel: CancellationToken) {
    use std::fmt::Write as _;
    use std::sync::mpsc::RecvTimeoutError;
    let mut out: Option<Out> = None;
    let mut buf = Vec::new();
    // Records of one second share their timestamp text.
    let mut time = (i64::MIN, String::new());
    let mut peer = String::new();
    loop {
        let first = match rx.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let stopping = cancel.is_cancelled();
        let Some(first) = first else {
            if stopping {
                break;
            }
            continue;
        };
        if !stopping {
            std::thread::sleep(GATHER);
        }
        buf.clear();
        for v in std::iter::once(first).chain(rx.try_iter()) {
            if v.at.unix_timestamp() != time.0 {
                time = (v.at.unix_timestamp(), credd_core::format_expiration(v.at));
            }
            peer.clear();
            let _ = write!(peer, "{}", v.peer);
            let line = Line {
                time: &time.1,
                profile: &v.profile,
                token_id: v.token.as_ref().map(|t| t.id.as_str()),
                endpoint: v.endpoint,
                peer: &peer,
            };
            if serde_json::to_writer(&mut buf, &line).is_ok() {
                buf.push(b'\n');
            }
        }
        if let Err(e) = write_batch(&path, &mut out, &buf) {
            out = None;
            tracing::warn!(error = %e, path = %path.display(), "cannot write the audit log");
        }
    }
}

fn write_batch(path: &Path, out: &mut Option<Out>, buf: &[u8]) -> std::io::Result<()> {
    if out.as_ref().is_some_and(|o| o.len >= MAX_BYTES) {
        *out = None;
        rotate(path)?;
    }
    let o = match out {
        Some(o) => o,
        None => {
            let mut o = open(path)?;
            if o.len >= MAX_BYTES {
                drop(o);
                rotate(path)?;
                o = open(path)?;
            }
            out.insert(o)
        }
    };
    o.file.write_all(buf)?;
    o.len += buf.len() as u64;
    Ok(())
}

/// Appends records, rotating first when the file is over [`MAX_BYTES`].
pub fn append(path: &Path, records: &[Record]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        crate::fsutil::private_dir(dir).map_err(std::io::Error::other)?;
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= MAX_BYTES) {
        rotate(path)?;
    }
    let mut buf = Vec::new();
    for r in records {
        serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
        buf.push(b'\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    f.write_all(&buf)
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn rotate(path: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(numbered(path, KEEP));
    for n in (1..KEEP).rev() {
        let _ = std::fs::rename(numbered(path, n), numbered(path, n + 1));
    }
    std::fs::rename(path, numbered(path, 1))
}

/// Reads every record, oldest first (rotated files included); lines that
/// do not parse are skipped.
pub fn read_all(path: &Path) -> Vec<Record> {
    let mut files: Vec<PathBuf> = (1..=KEEP).rev().map(|n| numbered(path, n)).collect();
    files.push(path.to_path_buf());
    files
        .iter()
        // Private-file rules (no symlinks, ours, 0600, size-capped) as for
        // every other state file.
        .filter_map(|p| crate::fsutil::read_private(p, 4 * MAX_BYTES).ok().flatten())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str::<Record>(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: usize) -> Record {
        Record {
            time: "2026-11-23T09:00:00Z".into(),
            profile: format!("p{i}"),
            token_id: Some("0011223344556677".into()),
            endpoint: "container".into(),
            peer: "127.0.0.1:5000".into(),
        }
    }

    #[test]
    fn appends_rotates_and_reads_back_in_order() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        let per_file = (MAX_BYTES as usize / serde_json::to_vec(&rec(0)).unwrap().len()) + 10;
        let mut n = 0;
        for _ in 0..(KEEP + 2) {
            let batch: Vec<Record> = (n..n + per_file).map(rec).collect();
            append(&p, &batch).unwrap();
            n += per_file;
        }
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert!(numbered(&p, KEEP).exists());
        assert!(!numbered(&p, KEEP + 1).exists(), "size-capped");
        let all = read_all(&p);
        assert_eq!(
            all.len(),
            (KEEP + 1) * per_file,
            "the oldest file was dropped"
        );
        assert_eq!(all.last().unwrap().profile, format!("p{}", n - 1));
        let first: usize = all[0].profile[1..].parse().unwrap();
        assert_eq!(first, per_file, "oldest kept first");
    }

    #[tokio::test]
    async fn the_writer_drains_on_shutdown() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        let cancel = CancellationToken::new();
        let tasks = tokio_util::task::TaskTracker::new();
        let log = AuditLog::start(p.clone(), cancel.clone(), &tasks);
        for i in 0..100 {
            log.record(Vend {
                at: time::OffsetDateTime::now_utc(),
                profile: format!("p{i}"),
                token: None,
                endpoint: "container",
                peer: Peer::Tcp("127.0.0.1:5000".parse().unwrap()),
            });
        }
        cancel.cancel();
        tasks.close();
        tasks.wait().await;
        let all = read_all(&p);
        assert_eq!(all.len(), 100);
        assert_eq!(all[99].profile, "p99");
        assert_eq!(all[99].peer, "127.0.0.1:5000");
        assert_eq!(all[99].endpoint, "container");
    }
}
