//! Private files and directories: 0700 directories, 0600 files written
//! atomically (temp file, fsync, rename, directory fsync), reads that refuse
//! symlinks, foreign owners and group/world-readable files, with a size cap.
//! Threat-model rows 13 and 14.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: owned by uid {owner}, not by this user (uid {me}); refusing to use it")]
    ForeignOwner { path: PathBuf, owner: u32, me: u32 },
    #[error("{path}: mode {mode:o} lets other users in; run `chmod {want:o} {path}` or remove it")]
    LooseMode { path: PathBuf, mode: u32, want: u32 },
    #[error("{path}: is a symbolic link; refusing to follow it")]
    Symlink { path: PathBuf },
    #[error("{path}: larger than {cap} bytes; refusing to read it")]
    TooLarge { path: PathBuf, cap: u64 },
    #[error("{path}: is {what}, not a regular file; replace it with a file or remove it")]
    NotRegular { path: PathBuf, what: &'static str },
}

impl From<credd_core::regular_file::FileError> for FsError {
    fn from(e: credd_core::regular_file::FileError) -> Self {
        use credd_core::regular_file::FileError as F;
        match e {
            F::Io { path, source } => FsError::Io { path, source },
            F::NotRegular { path, what } => FsError::NotRegular { path, what },
            F::TooLarge { path, cap } => FsError::TooLarge { path, cap },
            F::Symlink { path } => FsError::Symlink { path },
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FsError + '_ {
    move |source| FsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn my_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Creates `dir` (and parents) as 0700 if missing; refuses an existing one
/// that is a symlink, owned by someone else or open to group/others.
pub fn private_dir(dir: &Path) -> Result<(), FsError> {
    match fs::symlink_metadata(dir) {
        Ok(m) => check_private(dir, &m, 0o700, true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir))?;
            // The mode passed to mkdir is filtered by the umask; set it exactly.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
        }
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Checks, changing nothing, that `dir` can be trusted with the control
/// socket before the CLI sends anything there: a real directory (lstat, so
/// not a symlink), owned by this user, that no other user can write to or
/// list. Group/other execute alone (0711) lets nobody create, replace or
/// find anything in it, so it is allowed. Threat-model row 19.
pub fn check_trusted_dir(dir: &Path) -> Result<(), FsError> {
    let m = fs::symlink_metadata(dir).map_err(io_err(dir))?;
    if m.file_type().is_symlink() {
        return Err(FsError::Symlink {
            path: dir.to_path_buf(),
        });
    }
    if !m.is_dir() {
        return Err(io_err(dir)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a directory",
        )));
    }
    if m.uid() != my_uid() {
        return Err(FsError::ForeignOwner {
            path: dir.to_path_buf(),
            owner: m.uid(),
            me: my_uid(),
        });
    }
    let mode = m.mode() & 0o777;
    if mode & 0o066 != 0 {
        return Err(FsError::LooseMode {
            path: dir.to_path_buf(),
            mode,
            want: 0o700,
        });
    }
    Ok(())
}

fn check_private(path: &Path, m: &fs::Metadata, want: u32, dir: bool) -> Result<(), FsError> {
    if m.file_type().is_symlink() {
        return Err(FsError::Symlink {
            path: path.to_path_buf(),
        });
    }
    if m.uid() != my_uid() {
        return Err(FsError::ForeignOwner {
            path: path.to_path_buf(),
            owner: m.uid(),
            me: my_uid(),
        });
    }
    let mode = m.mode() & 0o777;
    if mode & 0o077 != 0 {
        if dir {
            // Our own directory with loose bits (e.g. made under umask 000 by
            // an older version): tighten it rather than fail.
            fs::set_permissions(path, fs::Permissions::from_mode(want)).map_err(io_err(path))?;
            return Ok(());
        }
        return Err(FsError::LooseMode {
            path: path.to_path_buf(),
            mode,
            want,
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically with mode 0600: readers see the old
/// file or the new one, never a torn one, whatever the umask.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    private_dir(credd_core::atomic_file::parent_dir(path))?;
    // The one atomic writer (credd-core), shared with credd-aws.
    credd_core::atomic_file::write(path, ".credd-tmp-", 0o600, bytes).map_err(|e| FsError::Io {
        path: e.path,
        source: e.source,
    })
}

/// Reads a private file: `Ok(None)` if absent; an error if it is a symlink,
/// not ours, group/world-readable or larger than `cap`.
pub fn read_private(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, FsError> {
    // Opened without blocking and checked to be a regular file first: a
    // FIFO planted here must not hang the daemon (threat-model row 23).
    use credd_core::regular_file as rf;
    let Some((file, m)) = rf::open(path, rf::Links::Refuse)? else {
        return Ok(None);
    };
    check_private(path, &m, 0o600, false)?;
    Ok(Some(rf::read_open(path, file, &m, cap)?))
}

/// Moves a bad file aside (`NAME.corrupt-UNIXTIME`) so it is kept for the
/// user to look at but no longer read.
pub fn set_aside(path: &Path, now_unix: i64) -> Option<PathBuf> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{now_unix}"));
    let aside = PathBuf::from(aside);
    fs::rename(path, &aside).ok().map(|_| aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_0600_in_0700_dirs_even_under_umask_000() {
        let t = tempfile::tempdir().unwrap();
        let old = rustix::process::umask(rustix::fs::Mode::empty());
        let dir = t.path().join("a/b");
        let f = dir.join("x.json");
        write_private(&f, b"{}").unwrap();
        rustix::process::umask(old);
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(read_private(&f, 10).unwrap().unwrap(), b"{}");
        // No temp files left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn refuses_symlinks_loose_modes_and_huge_files() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        write_private(&real, b"secret").unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(
            read_private(&link, 100),
            Err(FsError::Symlink { .. })
        ));
        fs::set_permissions(&real, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_private(&real, 100),
            Err(FsError::LooseMode { .. })
        ));
        fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            read_private(&real, 3),
            Err(FsError::TooLarge { .. })
        ));
        assert!(read_private(&t.path().join("absent"), 3).unwrap().is_none());
    }

    #[test]
    fn trusted_dir_is_ours_private_and_not_a_link() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("run");
        private_dir(&d).unwrap();
        check_trusted_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o711)).unwrap();
        check_trusted_dir(&d).unwrap();
        for loose in [0o770, 0o755, 0o703, 0o1777] {
            fs::set_permissions(&d, fs::Permissions::from_mode(loose)).unwrap();
            assert!(
                matches!(check_trusted_dir(&d), Err(FsError::LooseMode { .. })),
                "{loose:o}"
            );
        }
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        assert!(matches!(
            check_trusted_dir(&link),
            Err(FsError::Symlink { .. })
        ));
        assert!(check_trusted_dir(&t.path().join("absent")).is_err());
    }

    #[test]
    fn replacing_a_planted_symlink_does_not_write_through_it() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        fs::write(&victim, b"keep me").unwrap();
        let target = t.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        write_private(&target, b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
        assert!(!fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
