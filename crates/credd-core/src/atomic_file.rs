//! The one atomic file writer in credd: the new bytes go to a temporary
//! copy in the target's directory (created `O_EXCL` with the mode asked for,
//! whatever the umask), are fsynced, renamed over the target, and the
//! directory is fsynced. Readers see the old file or the new one, never a
//! torn one; a crash leaves at most a temporary copy, which the callers'
//! naming lets them recognise and sweep. Threat-model rows 13 and 22.
//!
//! Both credd-aws (the AWS files and the SSO cache, through
//! `credd_aws::userfile`, which adds locking and merging around it) and
//! credd-daemon (its 0600 state files, through `fsutil::write_private`)
//! write this way, and neither depends on the other, so it lives here beside
//! [`crate::regular_file`], the one careful reader. The temporary file
//! itself is the `tempfile` crate's.
//!
//! Writing is split in two ([`stage`], then [`Staged::commit`]) because
//! `userfile` checks, between the two, that nobody changed the file since
//! it read it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// An I/O failure, naming the file or directory it happened on.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct AtomicError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> AtomicError + '_ {
    move |source| AtomicError {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory a file is in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// New bytes for `target`, written and fsynced in a temporary copy beside
/// it, not yet in place. Dropped without [`Staged::commit`], the copy is
/// removed.
#[derive(Debug)]
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    dir: PathBuf,
    target: PathBuf,
}

/// Writes `bytes` to a new temporary file named `PREFIX` + random in the
/// directory of `target`, with `mode`, and fsyncs it.
pub fn stage(target: &Path, prefix: &str, mode: u32, bytes: &[u8]) -> Result<Staged, AtomicError> {
    let dir = parent_dir(target);
    let mut tmp = tempfile::Builder::new()
        .prefix(prefix)
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(at(dir))?;
    tmp.write_all(bytes).map_err(at(target))?;
    tmp.as_file().sync_all().map_err(at(target))?;
    Ok(Staged {
        tmp,
        dir: dir.to_path_buf(),
        target: target.to_path_buf(),
    })
}

impl Staged {
    /// Renames the copy over the target and fsyncs the directory.
    pub fn commit(self) -> Result<(), AtomicError> {
        let Self { tmp, dir, target } = self;
        tmp.persist(&target).map_err(|e| at(&target)(e.error))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(at(&dir))
    }
}

/// [`stage`] then [`Staged::commit`]: replaces `target` with `bytes`.
pub fn write(target: &Path, prefix: &str, mode: u32, bytes: &[u8]) -> Result<(), AtomicError> {
    stage(target, prefix, mode, bytes)?.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_the_file_with_the_mode_asked_for_and_leaves_no_copy() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "old").unwrap();
        write(&p, ".f.tmp-", 0o600, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "a temporary copy is left: {names:?}");
    }

    #[test]
    fn a_staged_copy_is_invisible_until_commit_and_gone_if_dropped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "old").unwrap();
        let staged = stage(&p, ".f.tmp-", 0o640, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
        drop(staged);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        stage(&p, ".f.tmp-", 0o640, b"new")
            .unwrap()
            .commit()
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o640);
    }

    #[test]
    fn a_missing_directory_is_named_in_the_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("nope/f");
        let e = write(&p, ".f.tmp-", 0o600, b"x").unwrap_err();
        assert_eq!(e.path, d.path().join("nope"));
    }
}
