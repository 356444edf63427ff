//! The exclusive `flock` both backends take around a read-modify-write: the
//! encrypted file's `NAME.lock` beside it, and the keychain's index lock in
//! credd's state directory (the keychain has no transaction, and two
//! `credd keys add` at once would each write back an index without the
//! other's name). The lock file lives in a 0700 directory the user owns (an
//! existing one another user owns or could write to is refused), is created
//! 0600 without following a symlink, and the lock dies with its holder.

use crate::KeyError;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError {
    let path = path.to_path_buf();
    move |source| KeyError::Io { path, source }
}

/// Creates `dir` 0700 if missing, and refuses one that is not the user's
/// alone to write. `what`: whose directory, for the message.
pub(crate) fn private_dir(dir: &Path, what: &str) -> Result<(), KeyError> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    let meta = fs::metadata(dir).map_err(io(dir))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(KeyError::Unsafe {
            path: dir.to_path_buf(),
            detail: format!("{what} is owned by another user or writable by others: use a directory only you can write to (chmod 700)"),
        });
    }
    Ok(())
}

/// Holds the exclusive lock on `lock_path` until the returned file is
/// dropped, waiting up to `timeout` for another credd command; then
/// [`KeyError::Busy`] naming `target` (what the lock guards).
pub(crate) fn exclusive(
    lock_path: &Path,
    target: &Path,
    timeout: Duration,
) -> Result<File, KeyError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(lock_path)
        .map_err(io(lock_path))?;
    let start = Instant::now();
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {}
            Err(e) => return Err(io(lock_path)(e.into())),
        }
        if start.elapsed() >= timeout {
            return Err(KeyError::Busy {
                path: PathBuf::from(target),
                secs: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
