//! The one way credd opens a file someone else may have put in place
//! (`~/.aws/config`, `~/.aws/credentials`, `STATE_DIR/tokens.json` and the
//! other state files): without blocking, regular files only, size capped.
//! Threat-model row 23.
//!
//! With [`crate::atomic_file`], the only I/O in credd-core. It lives here, std and rustix only,
//! because both credd-aws (the AWS files) and credd-daemon (its state
//! files) must read the same careful way and neither depends on the other.
//!
//! Why by hand: a plain `open(2)` of a FIFO blocks until a writer comes, and
//! a device such as `/dev/zero` reads forever; no crate we use checks the
//! file type between open and read, so this opens with `O_NONBLOCK` (which
//! makes opening a FIFO return at once), checks `fstat` on the opened
//! descriptor (no race with a rename), clears `O_NONBLOCK` again and reads
//! at most `cap + 1` bytes.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is {what}, not a regular file; credd reads only regular files there: replace it with a file or remove it", path.display())]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("{} is larger than {cap} bytes; refusing to read it", path.display())]
    TooLarge { path: PathBuf, cap: u64 },
    #[error("{} is a symbolic link; refusing to follow it", path.display())]
    Symlink { path: PathBuf },
}

/// Whether a symbolic link at the path itself is followed (the AWS files:
/// dotfile repositories link them) or refused (credd's own state files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    Follow,
    Refuse,
}

/// Opens `path` for reading if it is a regular file. `Ok(None)`: there is
/// nothing at the path (or a dangling link when links are followed).
pub fn open(path: &Path, links: Links) -> Result<Option<(File, Metadata)>, FileError> {
    use rustix::fs::OFlags;
    let mut flags = OFlags::NONBLOCK | OFlags::NOCTTY;
    if links == Links::Refuse {
        flags |= OFlags::NOFOLLOW;
    }
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            if links == Links::Refuse
                && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
            {
                return Err(FileError::Symlink {
                    path: path.to_path_buf(),
                });
            }
            return Err(io_error(path, e));
        }
    };
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    let t = meta.file_type();
    if !t.is_file() {
        let what = if t.is_fifo() {
            "a FIFO (named pipe)"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_dir() {
            "a directory"
        } else {
            "not a file"
        };
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            what,
        });
    }
    // Reads of a regular file never block; the flag is cleared so that the
    // descriptor behaves as an ordinary one for whoever uses it next.
    let fl = rustix::fs::fcntl_getfl(&file).map_err(|e| io_error(path, e.into()))?;
    rustix::fs::fcntl_setfl(&file, fl - OFlags::NONBLOCK).map_err(|e| io_error(path, e.into()))?;
    Ok(Some((file, meta)))
}

/// Reads a regular file of at most `cap` bytes; see [`open`].
pub fn read(path: &Path, cap: u64, links: Links) -> Result<Option<Vec<u8>>, FileError> {
    let Some((file, meta)) = open(path, links)? else {
        return Ok(None);
    };
    read_open(path, file, &meta, cap).map(Some)
}

/// Reads an already [`open`]ed file, capped: the size is checked before
/// and while reading (the file may grow in between).
pub fn read_open(path: &Path, file: File, meta: &Metadata, cap: u64) -> Result<Vec<u8>, FileError> {
    let too_large = || FileError::TooLarge {
        path: path.to_path_buf(),
        cap,
    };
    if meta.len() > cap {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_error(path, e))?;
    if buf.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(buf)
}

fn io_error(path: &Path, source: io::Error) -> FileError {
    FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn regular_files_are_read_and_missing_ones_are_none() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read(&p, 5, Links::Refuse).unwrap().unwrap(), b"hello");
        assert!(matches!(
            read(&p, 4, Links::Refuse),
            Err(FileError::TooLarge { cap: 4, .. })
        ));
        assert!(read(&d.path().join("no"), 5, Links::Follow)
            .unwrap()
            .is_none());
        let link = d.path().join("l");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert_eq!(read(&link, 5, Links::Follow).unwrap().unwrap(), b"hello");
        assert!(matches!(
            read(&link, 5, Links::Refuse),
            Err(FileError::Symlink { .. })
        ));
    }

    #[test]
    fn a_fifo_a_device_and_a_directory_are_refused_at_once() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let t0 = Instant::now();
        let e = read(&fifo, 10, Links::Follow).unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert!(e.to_string().contains("is a FIFO (named pipe)"), "{e}");
        assert!(e.to_string().contains(&fifo.display().to_string()), "{e}");
        let zero = d.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = read(&zero, 10, Links::Follow).unwrap_err();
        assert!(e.to_string().contains("a character device"), "{e}");
        let e = read(d.path(), 10, Links::Follow).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
    }
}
