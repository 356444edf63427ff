//! Which version of the AWS files the profile set was read from, so that
//! the set is re-read when, and only when, a file changed: the watcher
//! ([`Events`]: inotify on Linux, FSEvents on macOS, through the `notify`
//! crate) looks when the system says a file in their directories changed,
//! and otherwise once a minute, for file systems that send no events (NFS,
//! some FUSE mounts). A control request that serves from the set looks
//! first (two `stat(2)` calls: the same cost with 20 or 10,000 profiles),
//! so a command run right after an edit sees it. Nothing re-reads the files
//! as a side effect of serving; an event only triggers the same stamp check.
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

    /// The directories to watch: each file's own, and, for a file that is a
    /// symbolic link (a dotfiles repository), its target's, so an edit made
    /// through either path is seen. Watching the directory rather than the
    /// file sees an editor's save-by-rename and a file created later.
    pub(crate) fn dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for p in &self.paths {
            let real = std::fs::canonicalize(p).ok();
            for f in std::iter::once(p.clone()).chain(real) {
                if let Some(d) = f.parent().filter(|d| !d.as_os_str().is_empty()) {
                    if !out.iter().any(|o| o == d) {
                        out.push(d.to_path_buf());
                    }
                }
            }
        }
        out
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

/// The file-change notifications for the AWS files' directories: each
/// event (other than a read) puts one token in `tx`, so a burst of events
/// (an editor's write, rename and chmod) wakes the watcher once.
///
/// Some events say a write is finished: a file written in place was closed
/// (`IN_CLOSE_WRITE`), a file was renamed into place (an editor's or a
/// tool's atomic save) or removed. Those set [`Events::take_complete`], so
/// the watcher reads at once instead of letting the burst settle; the
/// others (the first byte of a write, a new empty file) may be a file
/// halfway written.
pub(crate) struct Events {
    watcher: Option<::notify::RecommendedWatcher>,
    complete: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Keeps the channel open when there is no watcher, so the caller's
    /// `recv` waits instead of returning `None` at once (a busy loop).
    _open: tokio::sync::mpsc::Sender<()>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("watching", &self.watcher.is_some())
            .finish_non_exhaustive()
    }
}

impl Events {
    /// A watcher that sends to `tx`; with no watcher (the platform refused
    /// one: out of inotify instances), the caller polls.
    pub(crate) fn new(tx: tokio::sync::mpsc::Sender<()>) -> Self {
        use ::notify::{event::AccessKind, event::AccessMode, event::ModifyKind, EventKind};
        use std::sync::atomic::Ordering;
        let open = tx.clone();
        let complete = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = complete.clone();
        let watcher =
            ::notify::recommended_watcher(move |ev: ::notify::Result<::notify::Event>| {
                // Reads (an SDK opening ~/.aws/config) change nothing; a write
                // being closed does. An error (the queue overflowed) may hide a
                // change, so it counts as one (not a finished one).
                let (relevant, finished) = match ev {
                    Ok(e) => match e.kind {
                        EventKind::Access(AccessKind::Close(AccessMode::Write)) => (true, true),
                        EventKind::Access(_) => (false, false),
                        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => {
                            (true, true)
                        }
                        _ => (true, false),
                    },
                    Err(_) => (true, false),
                };
                if finished {
                    // Before the token, so the watcher that takes the token
                    // sees the mark.
                    seen.store(true, Ordering::Release);
                }
                if relevant {
                    let _ = tx.try_send(());
                }
            });
        let watcher = watcher
            .inspect_err(|e| {
                tracing::warn!(error = %e, "cannot watch the AWS files for changes: looking every minute instead");
            })
            .ok();
        Self {
            watcher,
            complete,
            _open: open,
        }
    }

    /// Whether an event since the last call said a write is finished (see
    /// [`Events`]); clears the mark.
    pub(crate) fn take_complete(&self) -> bool {
        self.complete
            .swap(false, std::sync::atomic::Ordering::AcqRel)
    }

    /// Watches each of `dirs` (again: one `inotify_add_watch` each, which
    /// keeps an existing watch and replaces one lost when the directory was
    /// removed and made again, possibly with the same inode); returns
    /// whether every one is watched (a directory that does not exist yet,
    /// `~/.aws` before the first `aws configure`, is not). Called after
    /// each event and each fallback look, not per request.
    pub(crate) fn watch(&mut self, dirs: &[PathBuf]) -> bool {
        use ::notify::Watcher;
        let Some(w) = self.watcher.as_mut() else {
            return false;
        };
        let mut all = true;
        for d in dirs {
            let is_dir = std::fs::metadata(d).is_ok_and(|m| m.is_dir());
            if !is_dir || w.watch(d, ::notify::RecursiveMode::NonRecursive).is_err() {
                all = false;
            }
        }
        all
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

    async fn next(rx: &mut tokio::sync::mpsc::Receiver<()>, what: &str) {
        tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no event within 10 s for {what}"))
            .unwrap()
    }

    #[tokio::test]
    async fn an_edit_a_rename_and_a_new_directory_each_send_an_event() {
        let dir = tempfile::tempdir().unwrap();
        let aws = dir.path().join(".aws");
        let config = aws.join("config");
        let files = WatchedFiles::new(vec![config.clone()]);
        assert_eq!(files.dirs(), vec![aws.clone()]);
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let mut events = Events::new(tx);
        assert!(!events.watch(&files.dirs()), "~/.aws does not exist yet");
        std::fs::create_dir(&aws).unwrap();
        assert!(events.watch(&files.dirs()), "watched once it exists");
        std::fs::write(&config, "[default]\n").unwrap();
        next(&mut rx, "a new file").await;
        while rx.try_recv().is_ok() {}
        // An editor's save: a new file renamed over the old one.
        let tmp = dir.path().join("config.tmp");
        std::fs::write(&tmp, "[profile a]\n").unwrap();
        std::fs::rename(&tmp, &config).unwrap();
        next(&mut rx, "a rename over the file").await;
        // The directory removed and made again is watched again.
        std::fs::remove_dir_all(&aws).unwrap();
        std::fs::create_dir(&aws).unwrap();
        assert!(events.watch(&files.dirs()));
        while rx.try_recv().is_ok() {}
        std::fs::write(&config, "[default]\n").unwrap();
        next(&mut rx, "a write in the re-made directory").await;
    }

    #[tokio::test]
    async fn only_a_closed_or_renamed_file_is_taken_for_a_finished_write() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "[default]\n").unwrap();
        let files = WatchedFiles::new(vec![config.clone()]);
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let mut events = Events::new(tx);
        assert!(events.watch(&files.dirs()));
        assert!(!events.take_complete(), "nothing happened yet");
        // A write in progress: the file is open, half its text written.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&config)
            .unwrap();
        f.write_all(b"[profile half").unwrap();
        next(&mut rx, "a write in progress").await;
        assert!(!events.take_complete(), "a file still open is not finished");
        f.write_all(b"-saved]\n").unwrap();
        drop(f);
        // The close comes as its own event, after the writes' ones.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !events.take_complete() {
            assert!(
                std::time::Instant::now() < deadline,
                "no finished write within 10 s of the close"
            );
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), rx.recv()).await;
        }
        // An atomic save: a new file renamed over the old one.
        let tmp = dir.path().join("config.tmp");
        std::fs::write(&tmp, "[profile a]\n").unwrap();
        while rx.try_recv().is_ok() {}
        let _ = events.take_complete();
        std::fs::rename(&tmp, &config).unwrap();
        next(&mut rx, "a rename over the file").await;
        assert!(
            events.take_complete(),
            "a file renamed into place is finished"
        );
    }
}
