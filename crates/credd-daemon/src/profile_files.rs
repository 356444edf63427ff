//! Which version of the AWS files the profile set was read from, so that
//! the set is re-read when, and only when, a file changed: the watcher
//! looks every 2 s, and a control request that serves from the set looks
//! first (two `stat(2)` calls: the same cost with 20 or 10,000 profiles),
//! so a command run right after an edit sees it. Nothing re-reads the files
//! as a side effect of serving.
//!
//! The owner of the profile set is [`crate::control::ControlState`]: its
//! `reload` (explicit, on [`crate::protocol::Request::Reload`] and at
//! start) and `reload_if_changed` (the watcher and control requests) are
//! the only ways the set changes.

use std::path::PathBuf;
use std::sync::Mutex;

/// What tells one version of a file from the next: size, modification
/// time and inode (editors that save by renaming change only the inode
/// when size and time happen to match). `None` when the file is missing.
type FileStamp = Option<(u64, i64, i64, u64)>;

fn stamp(paths: &[PathBuf]) -> Vec<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    paths
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
        })
        .collect()
}

/// The files a [`crate::ProfileLoader`] reads and their stamps at the last
/// read. A `stat` never opens the file, so a FIFO or device put in a
/// file's place cannot stall it (threat-model row 23).
#[derive(Debug)]
pub(crate) struct WatchedFiles {
    paths: Vec<PathBuf>,
    last: Mutex<Vec<FileStamp>>,
}

impl WatchedFiles {
    pub(crate) fn new(paths: Vec<PathBuf>) -> Self {
        let last = Mutex::new(stamp(&paths));
        Self { paths, last }
    }

    /// A loader that names no files cannot say when they change: it is
    /// read for every request that serves from it, as before watching.
    pub(crate) fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Stamps the files now, before a read, so that a change during the
    /// read is seen by the next check.
    pub(crate) fn mark(&self) {
        *self.last.lock().unwrap() = stamp(&self.paths);
    }

    /// Whether a file changed since the last mark or check; remembers the
    /// new stamps when one did, so each change is reported once.
    pub(crate) fn changed(&self) -> bool {
        let now = stamp(&self.paths);
        let mut last = self.last.lock().unwrap();
        if *last == now {
            return false;
        }
        *last = now;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_reported_once_and_a_mark_absorbs_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let files = WatchedFiles::new(vec![config.clone(), dir.path().join("credentials")]);
        assert!(!files.changed(), "nothing changed yet");
        std::fs::write(&config, "[default]\n").unwrap();
        assert!(files.changed(), "a new file is a change");
        assert!(!files.changed(), "and is reported once");
        std::fs::write(&config, "[default]\nregion = eu-west-1\n").unwrap();
        files.mark();
        assert!(!files.changed(), "a mark before a read absorbs the change");
        std::fs::remove_file(&config).unwrap();
        assert!(files.changed(), "a removed file is a change");
        assert!(!WatchedFiles::new(vec![]).changed());
        assert!(WatchedFiles::new(vec![]).is_empty());
    }
}
