//! The audit log: one JSON line per credential vended (time, profile,
//! client token id, endpoint, peer), in `STATE_DIR/audit.log` (0600),
//! rotated by size. Nothing secret is ever in a record: the token *id* is
//! public, the token itself is not recorded.
//!
//! Vends that are the same in every field within one second (an SDK asking
//! again and again over one connection) share one line whose `count` says
//! how many there were; a line without `count` is one vend. Requests never
//! wait on the disk and never format anything: a vend is counted in a small
//! per-thread table in memory, and a writer thread writes the table out once
//! a second (and at shutdown). If a table fills up, vends are dropped and
//! the drop is counted and logged rather than slowing requests down.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio_util::sync::CancellationToken;

/// Rotate when the log passes this size; keep this many old files.
pub const MAX_BYTES: u64 = 1024 * 1024;
pub const KEEP: usize = 3;
/// Distinct lines a table holds between two writes; more are dropped.
const TABLE_CAP: usize = 4096;
/// Tables, so that request threads rarely share a lock.
const SHARDS: usize = 8;

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
    /// Vends this line stands for (all in the second `time`); absent means 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// What a request hands to the log. Nothing is formatted or copied on the
/// request path: the writer thread turns it into a [`Record`] line.
#[derive(Debug)]
pub struct Vend<'a> {
    pub at: time::OffsetDateTime,
    pub profile: &'a str,
    pub token: Option<Arc<credd_core::token::TokenRecord>>,
    pub endpoint: &'static str,
    pub peer: Peer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// One future line: a vend and how many more like it came in its second.
#[derive(Debug)]
struct Tally {
    /// Unix time of the vends, whole seconds (all a line records).
    second: i64,
    profile: String,
    token: Option<Arc<credd_core::token::TokenRecord>>,
    endpoint: &'static str,
    peer: Peer,
    count: u64,
}

impl Tally {
    fn same(&self, second: i64, v: &Vend<'_>) -> bool {
        self.second == second
            && self.peer == v.peer
            && std::ptr::eq(self.endpoint, v.endpoint)
            && match (&self.token, &v.token) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.id == b.id,
                (None, None) => true,
                _ => false,
            }
            && self.profile == v.profile
    }
}

/// A [`Record`] line borrowed from a [`Tally`] (same fields, same order).
#[derive(Serialize)]
struct Line<'a> {
    time: &'a str,
    profile: &'a str,
    token_id: Option<&'a str>,
    endpoint: &'a str,
    peer: &'a str,
    #[serde(skip_serializing_if = "is_one")]
    count: u64,
}

#[derive(Debug, Default)]
struct Shared {
    tables: [Mutex<Vec<Tally>>; SHARDS],
    /// The writer, to wake when a table gets its first line.
    writer: OnceLock<std::thread::Thread>,
    stopping: AtomicBool,
    dropped: AtomicU64,
}

impl Shared {
    /// Tells the writer to write what is counted and end.
    fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }

    fn take(&self) -> Vec<Tally> {
        let mut all = Vec::new();
        for t in &self.tables {
            let mut t = t.lock().unwrap();
            if all.is_empty() {
                all = std::mem::take(&mut *t);
            } else {
                all.append(&mut t);
            }
        }
        // Tables are in arrival order; across tables, by second.
        all.sort_by_key(|t| t.second);
        all
    }
}

#[derive(Debug)]
pub struct AuditLog {
    shared: Option<Arc<Shared>>,
}

/// Which table the current thread counts into.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl AuditLog {
    /// A log that records nothing (tests of other parts).
    pub fn disabled() -> Self {
        Self { shared: None }
    }

    /// Starts the writer thread for `path`; it stops when `cancel` fires,
    /// after writing what is counted.
    pub fn start(
        path: PathBuf,
        cancel: CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) -> Self {
        let shared = Arc::new(Shared::default());
        let w = shared.clone();
        tasks.spawn_blocking(move || writer(path, &w));
        // The writer sleeps until there is something to write; this wakes
        // it for the last write.
        let s = shared.clone();
        tasks.spawn(async move {
            cancel.cancelled().await;
            s.stop();
        });
        Self {
            shared: Some(shared),
        }
    }

    pub fn record(&self, v: Vend<'_>) {
        let Some(shared) = &self.shared else { return };
        let second = v.at.unix_timestamp();
        let mut table = shared.tables[shard()].lock().unwrap();
        if let Some(t) = table.iter_mut().rev().find(|t| t.same(second, &v)) {
            t.count += 1;
            return;
        }
        if table.len() >= TABLE_CAP {
            drop(table);
            let n = shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "audit log writer is behind; records dropped");
            }
            return;
        }
        let first = table.is_empty();
        table.push(Tally {
            second,
            profile: v.profile.to_owned(),
            token: v.token,
            endpoint: v.endpoint,
            peer: v.peer,
            count: 1,
        });
        drop(table);
        if first {
            shared.wake();
        }
    }
}

impl Drop for AuditLog {
    /// Without a stop (a test, a runtime torn down without cancelling), the
    /// last handle going away still lets the writer write and end.
    fn drop(&mut self) {
        if let Some(s) = &self.shared {
            s.stop();
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

/// How long after a second ends its lines are written: vends still being
/// counted at the turn of the second land in the same line.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

fn writer(path: PathBuf, shared: &Shared) {
    use std::fmt::Write as _;
    let _ = shared.writer.set(std::thread::current());
    let mut out: Option<Out> = None;
    let mut buf = Vec::new();
    // Lines of one second share their timestamp text.
    let mut time = (i64::MIN, String::new());
    let mut peer = String::new();
    loop {
        let stopping = shared.stopping.load(Ordering::Acquire);
        let empty = shared.tables.iter().all(|t| t.lock().unwrap().is_empty());
        if empty {
            if stopping {
                break;
            }
            std::thread::park();
            continue;
        }
        if !stopping {
            // Wait for the current second to end, so that its vends are
            // counted in one line; a stop cuts this short.
            // Only aligns the flush to the end of the current second (the
            // lines' timestamps come from the vends): not worth a clock here.
            #[allow(clippy::disallowed_methods)]
            let now = time::OffsetDateTime::now_utc();
            let into = std::time::Duration::from_nanos(u64::from(now.nanosecond()));
            let deadline = std::time::Instant::now()
                + (std::time::Duration::from_secs(1).saturating_sub(into))
                + SETTLE;
            while !shared.stopping.load(Ordering::Acquire) {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::park_timeout(left);
            }
        }
        buf.clear();
        for t in shared.take() {
            if t.second != time.0 {
                let at = time::OffsetDateTime::from_unix_timestamp(t.second)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                time = (t.second, credd_core::format_expiration(at));
            }
            peer.clear();
            let _ = write!(peer, "{}", t.peer);
            let line = Line {
                time: &time.1,
                profile: &t.profile,
                token_id: t.token.as_ref().map(|t| t.id.as_str()),
                endpoint: t.endpoint,
                peer: &peer,
                count: t.count,
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
            count: 1,
        }
    }

    /// A log writing to a fresh directory, and what stops it.
    fn started() -> (
        tempfile::TempDir,
        PathBuf,
        CancellationToken,
        tokio_util::task::TaskTracker,
        AuditLog,
    ) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        let cancel = CancellationToken::new();
        let tasks = tokio_util::task::TaskTracker::new();
        let log = AuditLog::start(p.clone(), cancel.clone(), &tasks);
        (d, p, cancel, tasks, log)
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repeated_vends_share_a_line_with_their_count_and_none_is_lost() {
        let (_d, p, cancel, tasks, log) = started();
        let at = time::OffsetDateTime::from_unix_timestamp(1_795_424_400).unwrap()
            + time::Duration::milliseconds(250);
        let (_, record) =
            credd_core::token::mint([7; 40], vec!["dev".into()], at, None, String::new());
        let id = record.id.clone();
        let token = Arc::new(record);
        let vend = |port: u16, at: time::OffsetDateTime| Vend {
            at,
            profile: "dev",
            token: Some(token.clone()),
            endpoint: "container",
            peer: Peer::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
        };
        // Four threads (so several tables), 2,500 vends each, one peer.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..2500 {
                        log.record(vend(5000, at));
                    }
                });
            }
        });
        // Another peer, and the same peer in the next second.
        for _ in 0..7 {
            log.record(vend(5001, at));
        }
        log.record(vend(5000, at + time::Duration::seconds(1)));
        cancel.cancel();
        tasks.close();
        tasks.wait().await;

        let all = read_all(&p);
        let sum = |peer: &str, time: &str| -> u64 {
            all.iter()
                .filter(|r| r.peer == peer && r.time == time)
                .map(|r| r.count)
                .sum()
        };
        assert_eq!(sum("127.0.0.1:5000", "2026-11-23T09:00:00Z"), 10_000);
        assert_eq!(sum("127.0.0.1:5001", "2026-11-23T09:00:00Z"), 7);
        assert_eq!(sum("127.0.0.1:5000", "2026-11-23T09:00:01Z"), 1);
        assert!(all.len() <= 4 + 1 + 1, "coalesced: {all:?}");
        assert!(all
            .iter()
            .all(|r| r.token_id.as_deref() == Some(id.as_str())));
        // A single vend's line has no count; a repeated one has.
        let raw = std::fs::read_to_string(&p).unwrap();
        let last = raw.lines().last().unwrap();
        assert!(
            last.contains("09:00:01Z") && !last.contains("count"),
            "{last}"
        );
        assert!(raw.lines().any(|l| l.contains(r#""count":"#)), "{raw}");
    }

    #[allow(clippy::disallowed_methods)] // real time: the writer runs on it
    #[tokio::test]
    async fn a_vend_is_written_within_about_a_second_without_a_stop() {
        let (_d, p, cancel, tasks, log) = started();
        // Let the writer go to sleep first: the vend must wake it.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        for profile in ["a", "b"] {
            log.record(Vend {
                at: time::OffsetDateTime::now_utc(),
                profile,
                token: None,
                endpoint: "control",
                peer: Peer::Uid(1000),
            });
            let mut waited = 0;
            while !read_all(&p).iter().any(|r| r.profile == profile) {
                assert!(waited < 100, "{profile} not written within 10 s");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                waited += 1;
            }
        }
        assert_eq!(read_all(&p)[1].peer, "uid 1000");
        cancel.cancel();
        tasks.close();
        tasks.wait().await;
    }

    #[allow(clippy::disallowed_methods)] // real time: the writer runs on it
    #[tokio::test]
    async fn the_writer_drains_on_shutdown() {
        let (_d, p, cancel, tasks, log) = started();
        for i in 0..100 {
            log.record(Vend {
                at: time::OffsetDateTime::now_utc(),
                profile: &format!("p{i}"),
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
