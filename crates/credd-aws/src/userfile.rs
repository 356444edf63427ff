//! The one way credd changes a file the user (and other tools) also edit:
//! `~/.aws/credentials` and `~/.aws/config` (`write-credentials`,
//! `profiles link`, `sso populate`), the SSO token cache, and the token
//! files of `credd token issue --file`. Threat-model rows 13 and 22.
//!
//! An edit is read-modify-write, made safe against three things:
//!
//! - **Other credd commands**: an advisory lock (`flock`) on the directory
//!   the file really is in, held from the read to the rename. Not on the file
//!   itself: it is replaced by a rename, so a waiter would lock the old
//!   inode. Not on a sidecar lock file either: that would be one more file in
//!   `~/.aws` (or the shared SSO cache, which other tools list) that could
//!   never be removed. The lock dies with its holder, so a `kill -9` leaves
//!   nothing held. Where the file system cannot lock a directory (some NFS
//!   set-ups) the write goes on unlocked and the re-read below still holds.
//!   Token files (`--file` may name a shared directory) are written unlocked.
//! - **Other tools**, which take no lock (the AWS CLI's `aws configure set`
//!   and botocore rewrite the file in place): just before the rename the file
//!   is read again, and if it is not what the edit started from the edit is
//!   made again on the new text (a merge: credd's edits are functions of the
//!   text) or, where that makes no sense, refused. What is left is the
//!   instant between that check and the rename, which no lock another tool
//!   ignores can close.
//! - **Crashes**: the new text goes (through [`credd_core::atomic_file`], the
//!   one atomic writer) to a temporary file in the same
//!   directory (`.NAME.credd-tmp-XXXXXX`, mode of the old file's owner bits
//!   or 0600), fsynced, renamed over the file, and the directory fsynced.
//!   Readers see the old file or the new one. A temporary copy left by a
//!   killed writer is removed by the next write in that directory, under the
//!   lock (so it cannot be another writer's live copy); unlocked, and for
//!   the name patterns of earlier credd versions, once it is a minute old.
//!
//! A symlinked file (a dotfiles repository) is written through: the link is
//! resolved and its target replaced in the target's directory; the link
//! stays. The SSO cache and token files ask for the opposite (a symlink
//! there is replaced, never followed).
//!
//! `flock` comes from `rustix` (already a dependency, a safe wrapper over
//! the same call `fs4` makes), rather than a new crate.

use credd_core::atomic_file;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Far more than any AWS file; a larger one is not read (or rewritten).
pub const MAX_FILE: u64 = 8 * 1024 * 1024;

/// The infix of credd's temporary copies: `.NAME.credd-tmp-XXXXXX`.
const TMP_INFIX: &str = ".credd-tmp-";
/// Temporary names of earlier credd versions (credentials/config, and the
/// SSO cache / token files), swept once they are a minute old.
const LEGACY_TMP_PREFIXES: &[&str] = &[".credentials-credd-", ".credd-tmp-"];
/// How many times an edit is made again because the file kept changing.
const MAX_MERGES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum UserFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path}: another credd command has been writing in {dir} for {waited_secs} s; try again"
    )]
    Busy {
        path: PathBuf,
        dir: PathBuf,
        waited_secs: u64,
    },
    #[error(
        "{path}: changed by another program while credd was writing it; nothing was written, run the command again"
    )]
    Changed { path: PathBuf },
    #[error("{path}: is not a regular file; refusing to read or replace it")]
    NotRegular { path: PathBuf },
    #[error("{path}: larger than {cap} bytes; refusing to rewrite it")]
    TooLarge { path: PathBuf, cap: u64 },
    #[error("{path}: owned by uid {owner}, not by this user (uid {me}); refusing to use it")]
    ForeignOwner { path: PathBuf, owner: u32, me: u32 },
    #[error("{path}: more than 40 symbolic links deep (a loop?)")]
    LinkLoop { path: PathBuf },
    #[error(
        "{dir}: other users can write to this directory (mode {mode:o}, no sticky bit), so they could swap {path}; choose a directory only you can write to"
    )]
    UnsafeDir {
        dir: PathBuf,
        path: PathBuf,
        mode: u32,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> UserFileError + '_ {
    move |source| UserFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn from_atomic(e: atomic_file::AtomicError) -> UserFileError {
    UserFileError::Io {
        path: e.path,
        source: e.source,
    }
}

fn my_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// How a file is written.
#[derive(Debug, Clone)]
pub struct Options {
    /// Write through a symlink at the path (the AWS files) rather than
    /// replace the link (caches, token files).
    pub follow_symlinks: bool,
    /// Mode of a new file. An existing file keeps its owner bits; group and
    /// other bits are dropped (these files hold keys or tokens).
    pub new_mode: u32,
    /// When the file changed between the read and the rename: make the edit
    /// again on the new text (`true`), or refuse ([`UserFileError::Changed`]).
    pub merge: bool,
    /// Refuse a directory others can write to without the sticky bit, and
    /// one owned by another user (token files: `--file` can point anywhere).
    pub check_dir: bool,
    /// Take the directory lock (see the module header).
    pub lock: bool,
    /// How long to wait for another credd command's lock.
    pub lock_timeout: Duration,
}

impl Options {
    /// `~/.aws/config` and `~/.aws/credentials`: through symlinks, merged.
    pub fn aws_file() -> Self {
        Self {
            follow_symlinks: true,
            new_mode: 0o600,
            merge: true,
            check_dir: false,
            lock: true,
            lock_timeout: Duration::from_secs(10),
        }
    }
    /// A file credd owns whole (SSO cache, token files): a symlink is
    /// replaced, a concurrent change by someone else is not overwritten.
    pub fn private_file() -> Self {
        Self {
            follow_symlinks: false,
            new_mode: 0o600,
            merge: false,
            check_dir: false,
            lock: true,
            lock_timeout: Duration::from_secs(10),
        }
    }
}

/// What [`edit`] did.
#[derive(Debug)]
pub struct Edited {
    /// The file actually written (the symlink's target, if any).
    pub target: PathBuf,
    /// The text the written version was made from (`None`: no file).
    pub before: Option<Vec<u8>>,
    /// Whether anything was written (the edit may change nothing).
    pub written: bool,
    /// How many times the edit was made again on another program's change.
    pub merges: usize,
}

/// Where `path` really is: symlinks followed to the end (a dangling link
/// gives the path it points to, which is then created).
pub fn resolve(path: &Path) -> Result<PathBuf, UserFileError> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let t = fs::read_link(&p).map_err(io_err(&p))?;
                p = if t.is_absolute() {
                    t
                } else {
                    p.parent().unwrap_or(Path::new(".")).join(t)
                };
            }
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(io_err(&p)(e)),
        }
    }
    Err(UserFileError::LinkLoop {
        path: path.to_path_buf(),
    })
}

/// Reads the file as it is now: `None` if absent. Opened without blocking
/// (a FIFO at the path must not hang credd) and without following a
/// symlink (the caller resolved the ones it follows); only a regular file
/// under [`MAX_FILE`] is read.
fn read_current(path: &Path) -> Result<Option<(Vec<u8>, fs::Metadata)>, UserFileError> {
    use credd_core::regular_file::{self, FileError, Links};
    let from = |e: FileError| match e {
        FileError::Io { path, source } => UserFileError::Io { path, source },
        FileError::TooLarge { path, cap } => UserFileError::TooLarge { path, cap },
        FileError::NotRegular { path, .. } | FileError::Symlink { path } => {
            UserFileError::NotRegular { path }
        }
    };
    // The same careful open as every other read of a file someone else may
    // have put in place (row 23): no blocking, regular files only.
    let (file, m) = match regular_file::open(path, Links::Refuse) {
        Ok(Some(opened)) => opened,
        Ok(None) => return Ok(None),
        // A symlink where none is followed: it is replaced, never written through.
        Err(FileError::Symlink { .. }) => return Ok(None),
        Err(e) => return Err(from(e)),
    };
    let buf = regular_file::read_open(path, file, &m, MAX_FILE).map_err(from)?;
    Ok(Some((buf, m)))
}

/// Creates the directory 0700 when missing; an existing one is the user's
/// and keeps its mode (it is checked when `check` says so).
fn ensure_dir(dir: &Path, path: &Path, check: bool) -> Result<(), UserFileError> {
    match fs::metadata(dir) {
        Ok(m) => {
            if !check {
                return Ok(());
            }
            let mode = m.mode() & 0o7777;
            if m.uid() != my_uid() && m.uid() != 0 {
                return Err(UserFileError::ForeignOwner {
                    path: dir.to_path_buf(),
                    owner: m.uid(),
                    me: my_uid(),
                });
            }
            if mode & 0o022 != 0 && mode & 0o1000 == 0 {
                return Err(UserFileError::UnsafeDir {
                    dir: dir.to_path_buf(),
                    path: path.to_path_buf(),
                    mode,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir))?;
            // mkdir's mode is filtered by the umask; set it exactly.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
        }
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Holds the directory lock until dropped (closing the descriptor
/// releases it).
#[derive(Debug)]
struct Lock(#[allow(dead_code)] File);

/// Locks `dir` exclusively, waiting up to `timeout` for another credd
/// command. `None` when the file system cannot lock a directory.
fn lock(dir: &Path, target: &Path, timeout: Duration) -> Result<Option<Lock>, UserFileError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::DIRECTORY.bits() as i32)
        .open(dir)
        .map_err(io_err(dir))?;
    let start = Instant::now();
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Some(Lock(file))),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {}
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot lock the directory; writing without the lock");
                return Ok(None);
            }
        }
        if start.elapsed() >= timeout {
            return Err(UserFileError::Busy {
                path: target.to_path_buf(),
                dir: dir.to_path_buf(),
                waited_secs: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `rest` is what `tempfile` puts after a prefix (6 random
/// alphanumerics, no suffix).
fn random_part(rest: &str) -> bool {
    rest.len() == 6 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Removes temporary copies left in `dir` by killed writers: regular files
/// of this user named `.NAME.credd-tmp-XXXXXX`, all of them when `locked`
/// (the caller holds the directory lock, so none is live), else once a
/// minute old; and earlier versions' patterns (`.credentials-credd-XXXXXX`,
/// `.credd-tmp-XXXXXX`) once a minute old, as their writers took no lock.
/// Nothing else is touched. Returns how many were removed.
pub fn sweep_temporaries(dir: &Path, locked: bool) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let file_name = e.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        let current = n.starts_with('.')
            && n.rfind(TMP_INFIX)
                .is_some_and(|i| i > 0 && random_part(&n[i + TMP_INFIX.len()..]));
        let legacy = LEGACY_TMP_PREFIXES
            .iter()
            .any(|p| n.strip_prefix(p).is_some_and(random_part));
        if !current && !legacy {
            continue;
        }
        // `symlink_metadata`: a symlink with the name is not ours.
        let Ok(m) = fs::symlink_metadata(e.path()) else {
            continue;
        };
        if !m.is_file() || m.uid() != my_uid() {
            continue;
        }
        if !(current && locked) {
            // A file's age is wall time against its mtime (set by the kernel
            // from the same clock): nothing to inject.
            #[allow(clippy::disallowed_methods)]
            let old = m
                .modified()
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > Duration::from_secs(60));
            if !old {
                continue;
            }
        }
        if fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The debug-build test hook of the end-to-end tests
/// (`tests/tests/writers.rs`): with `CREDD_TEST_PAUSE_WRITES=DIR`, a writer
/// that has its temporary copy on disk creates `DIR/PID` and waits until it
/// is removed, so a test can change the file or kill the writer right there.
/// Once per process: the write made again after a merge goes straight on.
#[cfg(debug_assertions)]
fn test_pause(target: &Path) {
    static ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Some(dir) = std::env::var_os("CREDD_TEST_PAUSE_WRITES") else {
        return;
    };
    if ONCE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let f = Path::new(&dir).join(std::process::id().to_string());
    let tmp = Path::new(&dir).join(format!(".{}", std::process::id()));
    if fs::write(&tmp, target.display().to_string()).is_err() || fs::rename(&tmp, &f).is_err() {
        return;
    }
    let start = Instant::now();
    while f.exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(not(debug_assertions))]
fn test_pause(_: &Path) {}

/// Edits the file at `path`: `f` gets its current bytes (`None` if there is
/// no file) and returns the new bytes, or `None` to leave it as it is. See
/// the module header for the locking, merging and crash rules. `f` may be
/// called more than once, each time with the newer text, when another
/// program changes the file meanwhile (only with `opts.merge`).
pub fn edit<E>(
    path: &Path,
    opts: &Options,
    mut f: impl FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, E>,
) -> Result<Edited, E>
where
    E: From<UserFileError>,
{
    let target = if opts.follow_symlinks {
        resolve(path)?
    } else {
        path.to_path_buf()
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| UserFileError::NotRegular {
            path: target.clone(),
        })?;
    ensure_dir(&dir, &target, opts.check_dir)?;
    let held = if opts.lock {
        lock(&dir, &target, opts.lock_timeout)?
    } else {
        None
    };
    let swept = sweep_temporaries(&dir, held.is_some());
    if swept > 0 {
        tracing::info!(dir = %dir.display(), removed = swept, "removed temporary copies left by an interrupted credd write");
    }

    let mut current = read_current(&target)?;
    let mut merges = 0;
    loop {
        let before = current.as_ref().map(|(b, _)| b.clone());
        let Some(new) = f(before.as_deref())? else {
            return Ok(Edited {
                target,
                before,
                written: false,
                merges,
            });
        };
        // Owner bits of the file it replaces: never widen, drop group/other.
        let mode = current
            .as_ref()
            .map(|(_, m)| m.mode() & 0o700)
            .unwrap_or(opts.new_mode);
        let staged = atomic_file::stage(&target, &format!(".{name}{TMP_INFIX}"), mode, &new)
            .map_err(from_atomic)?;
        test_pause(&target);

        // Another program (which took no lock) may have changed the file
        // since it was read. Wait until it has finished (in-place writers
        // truncate, then write), then merge or refuse.
        let now = settled(&target)?;
        let same = match (&current, &now) {
            (None, None) => true,
            (Some((a, am)), Some((b, bm))) => a == b && am.ino() == bm.ino(),
            _ => false,
        };
        if !same {
            // The temporary file is removed when `staged` is dropped.
            if !opts.merge || merges >= MAX_MERGES {
                return Err(UserFileError::Changed { path: target }.into());
            }
            merges += 1;
            tracing::info!(path = %target.display(), "changed by another program during the write; editing the new version");
            current = now;
            continue;
        }
        staged.commit().map_err(from_atomic)?;
        return Ok(Edited {
            target,
            before,
            written: true,
            merges,
        });
    }
}

/// Reads the file until two reads 20 ms apart agree, so that a change in
/// progress by another program is not taken half done (up to a second).
fn settled(path: &Path) -> Result<Option<(Vec<u8>, fs::Metadata)>, UserFileError> {
    let mut last = read_current(path)?;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        let now = read_current(path)?;
        let same = match (&last, &now) {
            (None, None) => true,
            (Some((a, am)), Some((b, bm))) => {
                a == b && am.ino() == bm.ino() && am.mtime_nsec() == bm.mtime_nsec()
            }
            _ => false,
        };
        if same {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Writes `bytes` to `path` atomically (temporary copy, fsync, rename,
/// directory fsync), mode 0600 (the owner bits of a file it replaces),
/// replacing a symlink rather than following it. For a file next to the one
/// an [`edit`] is changing, from inside its closure (`sso populate`'s
/// backup): the directory lock is already held, and taking it again would
/// wait for ourselves.
pub fn write_in_edit(path: &Path, bytes: &[u8]) -> Result<(), UserFileError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mode = fs::symlink_metadata(path)
        .ok()
        .filter(fs::Metadata::is_file)
        .map(|m| m.mode() & 0o700)
        .unwrap_or(0o600);
    atomic_file::write(path, &format!(".{name}{TMP_INFIX}"), mode, bytes).map_err(from_atomic)
}

/// Replaces the whole file with `bytes` (see [`edit`]).
pub fn replace(path: &Path, opts: &Options, bytes: &[u8]) -> Result<Edited, UserFileError> {
    edit(path, opts, |_| Ok(Some(bytes.to_vec())))
}

#[cfg(test)]
#[path = "userfile_tests.rs"]
mod tests;
