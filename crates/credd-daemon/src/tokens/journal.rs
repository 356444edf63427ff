//! The token store's journal, `STATE_DIR/tokens.journal` (0600): one JSON
//! line per change (issue, revoke, a container bound) made since
//! `tokens.json` was last written whole. Issuing a token appends one line
//! (and `fdatasync`s it before the token is returned) instead of rewriting
//! every record: issuing N tokens costs O(N), not O(N²). The store folds the
//! journal into `tokens.json` once it holds as many lines as the file has
//! records (amortized O(1) a change) and at start.
//!
//! Crash safety: a line is acknowledged only once it is on disk whole, so a
//! line cut short by a crash (no final newline) was never acknowledged and
//! is dropped on reading; a line that does not parse is corruption, and the
//! journal is set aside from there on. Replaying a journal over a
//! `tokens.json` that already holds its changes (a crash between writing
//! the file and removing the journal) changes nothing: every entry sets or
//! removes one record, and the last one for a token wins.

use crate::fsutil::FsError;
use credd_core::token::TokenRecord;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One change to the token records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub(super) enum Entry {
    Issue { record: TokenRecord },
    Revoke { id: String },
    Bind { id: String, container: String },
}

/// What a journal's bytes hold.
#[derive(Debug, Default)]
pub(super) struct Read {
    pub entries: Vec<Entry>,
    /// Bytes after the last newline: a line cut short by a crash.
    pub torn: bool,
    /// The first whole line that does not parse (1-based) and why; the
    /// entries before it are good.
    pub corrupt: Option<(usize, String)>,
}

/// Splits a journal into its entries; see the module doc for what a torn
/// or corrupt line means.
pub(super) fn parse(bytes: &[u8]) -> Read {
    let mut out = Read::default();
    let mut lines = bytes.split(|b| *b == b'\n').peekable();
    let mut n = 0;
    while let Some(line) = lines.next() {
        n += 1;
        if lines.peek().is_none() {
            // After the last newline: empty for a whole journal.
            out.torn = !line.is_empty();
            break;
        }
        match serde_json::from_slice::<Entry>(line) {
            Ok(e) => out.entries.push(e),
            Err(e) => {
                out.corrupt = Some((n, e.to_string()));
                break;
            }
        }
    }
    out
}

/// The journal file as the store writes it.
#[derive(Debug)]
pub(super) struct Journal {
    pub path: PathBuf,
    /// Open for appending since the first append after the last fold.
    file: Option<File>,
    /// Lines in the file (as far as this process knows).
    pub lines: usize,
    /// The file ends at a line's end (or is absent), so an append starts a
    /// new line. False after a failed append or a torn line read at start:
    /// the next change is then written whole (which removes the journal).
    pub clean: bool,
}

impl Journal {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            lines: 0,
            clean: true,
        }
    }

    /// Appends `entry` as one line and syncs it to disk before returning.
    pub fn append(&mut self, entry: &Entry) -> Result<(), FsError> {
        let mut line = serde_json::to_vec(entry).expect("entries serialize");
        line.push(b'\n');
        let path = self.path.clone();
        let wrote = self.open().and_then(|f| {
            f.write_all(&line)
                .and_then(|()| f.sync_data())
                .map_err(|e| io(&path, e))
        });
        match wrote {
            Ok(()) => {
                self.lines += 1;
                Ok(())
            }
            Err(e) => {
                // Part of the line may be in the file: write whole next time.
                self.file = None;
                self.clean = false;
                Err(e)
            }
        }
    }

    fn open(&mut self) -> Result<&mut File, FsError> {
        if self.file.is_none() {
            self.file = Some(open_append(&self.path)?);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    /// Removes the file, once `tokens.json` holds everything in it (a
    /// symlink put in its place is removed, not followed).
    pub fn remove(&mut self) -> Result<(), FsError> {
        self.file = None;
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&self.path, e)),
        }
        self.lines = 0;
        self.clean = true;
        Ok(())
    }
}

fn io(path: &Path, source: std::io::Error) -> FsError {
    FsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens (creating it 0600 if absent) the journal for appending, refusing
/// what `fsutil::read_private` refuses: a symlink, a file that is not
/// regular (opened without blocking, so a FIFO cannot hang the daemon),
/// another user's, or one others can read. A new file's directory entry
/// is synced, so an acknowledged line cannot vanish with its file.
fn open_append(path: &Path) -> Result<File, FsError> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::WRONLY
        | OFlags::APPEND
        | OFlags::CREATE
        | OFlags::NOFOLLOW
        | OFlags::NONBLOCK
        | OFlags::NOCTTY
        | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(0o600)).map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            FsError::Symlink {
                path: path.to_path_buf(),
            }
        } else {
            io(path, e.into())
        }
    })?;
    let file = File::from(fd);
    let m = file.metadata().map_err(|e| io(path, e))?;
    if !m.file_type().is_file() {
        return Err(FsError::NotRegular {
            path: path.to_path_buf(),
            what: "not a regular file",
        });
    }
    check_private(path, &m)?;
    let dir = credd_core::atomic_file::parent_dir(path);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))?;
    Ok(file)
}

/// Whether a file credd refuses to read is at `path` (a symlink, not a
/// regular file, another user's, open to others), without reading it: the
/// check before a change is stored, whose cost must not grow with the file.
/// Opened without blocking, so a FIFO cannot hang the daemon.
pub(super) fn check(path: &Path) -> Result<(), FsError> {
    use credd_core::regular_file as rf;
    match rf::open(path, rf::Links::Refuse)? {
        Some((_, m)) => check_private(path, &m),
        None => Ok(()),
    }
}

/// `fsutil::read_private`'s owner and mode rules.
fn check_private(path: &Path, m: &std::fs::Metadata) -> Result<(), FsError> {
    let me = crate::fsutil::my_uid();
    if m.uid() != me {
        return Err(FsError::ForeignOwner {
            path: path.to_path_buf(),
            owner: m.uid(),
            me,
        });
    }
    let mode = m.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(FsError::LooseMode {
            path: path.to_path_buf(),
            mode,
            want: 0o600,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoke(id: &str) -> Entry {
        Entry::Revoke { id: id.into() }
    }

    #[test]
    fn whole_lines_are_read_a_torn_tail_is_dropped_and_corruption_stops() {
        let mut bytes = Vec::new();
        for id in ["a", "b"] {
            bytes.extend(serde_json::to_vec(&revoke(id)).unwrap());
            bytes.push(b'\n');
        }
        let whole = parse(&bytes);
        assert_eq!(whole.entries, [revoke("a"), revoke("b")]);
        assert!(!whole.torn && whole.corrupt.is_none());
        assert!(parse(b"").entries.is_empty() && !parse(b"").torn);

        let mut torn = bytes.clone();
        torn.extend(b"{\"op\":\"revoke\",\"i");
        let r = parse(&torn);
        assert_eq!(r.entries, [revoke("a"), revoke("b")], "the torn line only");
        assert!(r.torn && r.corrupt.is_none());

        let mut bad = b"{\"op\":\"revoke\",\"id\":\"a\"}\n{garbage}\n".to_vec();
        bad.extend(&bytes);
        let r = parse(&bad);
        assert_eq!(r.entries, [revoke("a")]);
        assert_eq!(r.corrupt.as_ref().map(|c| c.0), Some(2));
    }

    #[test]
    fn appends_are_0600_lines_and_refuse_what_reads_refuse() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.journal");
        let old = rustix::process::umask(rustix::fs::Mode::empty());
        let mut j = Journal::new(path.clone());
        j.append(&revoke("a")).unwrap();
        rustix::process::umask(old);
        j.append(&revoke("b")).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let r = parse(&std::fs::read(&path).unwrap());
        assert_eq!(r.entries, [revoke("a"), revoke("b")]);
        assert_eq!(j.lines, 2);
        j.remove().unwrap();
        assert!(!path.exists() && j.lines == 0);

        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut j = Journal::new(path.clone());
        assert!(matches!(
            j.append(&revoke("a")),
            Err(FsError::LooseMode { .. })
        ));
        assert!(!j.clean, "written whole next time");
        std::fs::remove_file(&path).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(matches!(
            Journal::new(path.clone()).append(&revoke("a")),
            Err(FsError::Symlink { .. })
        ));
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        Journal::new(path.clone()).remove().unwrap();
        assert!(victim.exists() && std::fs::symlink_metadata(&path).is_err());
    }
}
