//! The client-token store: records (digests, scopes, expiry) in memory and in
//! `STATE_DIR/tokens.json` (0600), with the changes since that file was last
//! written whole in `STATE_DIR/tokens.journal` (see [`journal`]). Secrets
//! exist only in the caller's hands.

use crate::fsutil;
use arc_swap::ArcSwap;
use credd_core::token::{self, TokenRecord};
use credd_core::SecretString;
use journal::{Entry, Journal};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    Missing,
    /// Not a credd token, unknown, wrong secret, or revoked.
    Invalid,
    Expired,
    /// A good token that is not scoped to this profile.
    Forbidden,
}

#[derive(Debug)]
pub struct TokenStore {
    path: Option<PathBuf>,
    /// Read on every request without a lock (a snapshot); writers, rare,
    /// replace it only once the file says the same (see [`Self::issue`]).
    records: ArcSwap<Snapshot>,
    /// Serializes issue and revoke from the first read to the answer, so
    /// that no write can carry an older list over a newer one.
    write: Mutex<Disk>,
    failures: AtomicU64,
}

/// What the store knows about its file beyond the records.
#[derive(Debug)]
struct Disk {
    /// The file was refused when the daemon started (its mode, owner or
    /// type): its tokens are not in memory, and it is merged in, not
    /// replaced, once it can be read.
    unread: bool,
    /// Revoked in memory but not yet in the file (a write failed): kept out
    /// of any merge and dropped from the file by the next good write.
    revoked_unsaved: HashSet<String>,
    /// The changes since `tokens.json` was last written whole.
    journal: Journal,
}

impl Disk {
    fn new(path: Option<&Path>) -> Self {
        let journal = path.map_or_else(PathBuf::new, |p| p.with_extension("journal"));
        Self {
            unread: false,
            revoked_unsaved: HashSet::new(),
            journal: Journal::new(journal),
        }
    }
}

/// Why a token change could not be stored. The message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file is there but credd refuses it; it is left as it is.
    #[error("{0}; credd leaves it as it is and stores no token change until then (tokens issued before keep working)")]
    Refused(fsutil::FsError),
    #[error("{0}")]
    Write(fsutil::FsError),
    /// A revocation took effect in this daemon but could not be stored.
    #[error("the token is revoked in the running daemon but not on disk ({0}); fix that and revoke it again, or it works again after a restart")]
    RevokedNotStored(Box<StoreError>),
}

/// The largest token file (or journal) credd reads: about 90,000 tokens,
/// far above any real use, far below what would hurt the daemon.
const CAP: u64 = 32 * 1024 * 1024;

/// The journal is folded into `tokens.json` once it has as many lines as
/// the file has records, and at least this many: a fold writes every
/// record, so it comes after as many cheap appends (amortized O(1)).
const FOLD_AT_LEAST: usize = 64;

mod journal;
mod records;
use records::{Records, Snapshot};

fn parse(bytes: &[u8], now: OffsetDateTime) -> Result<Records, serde_json::Error> {
    Ok(serde_json::from_slice::<Vec<TokenRecord>>(bytes)?
        .into_iter()
        .filter(|r| !r.expired(now))
        .map(|r| (r.id.clone(), Arc::new(r)))
        .collect())
}

/// Applies one journal entry; returns the id a revocation names.
fn apply(records: &mut Records, entry: Entry, now: OffsetDateTime) -> Option<String> {
    match entry {
        Entry::Issue { record } => {
            if !record.expired(now) {
                records.insert(record.id.clone(), Arc::new(record));
            }
            None
        }
        Entry::Revoke { id } => {
            records.remove(&id);
            Some(id)
        }
        Entry::Bind { id, container } => {
            if let Some(r) = records.get_mut(&id) {
                let mut rec = TokenRecord::clone(r);
                if let Some(b) = &mut rec.docker {
                    b.container = Some(container);
                    *r = Arc::new(rec);
                }
            }
            None
        }
    }
}

/// What the journal at `path` says, applied to `records`: `Ok(true)` when
/// there was one to fold into `tokens.json`. A line cut short by a crash
/// was never acknowledged and is dropped; from a line that does not parse
/// on, the journal is set aside (the lines before it are kept).
fn replay(
    path: &Path,
    records: &mut Records,
    revoked: &mut HashSet<String>,
    now: OffsetDateTime,
) -> Result<bool, fsutil::FsError> {
    let bytes = match fsutil::read_private(path, CAP) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(false),
        // Removed by the next fold, never followed.
        Err(fsutil::FsError::Symlink { .. }) => return Ok(true),
        Err(e) => return Err(e),
    };
    let read = journal::parse(&bytes);
    for e in read.entries {
        if let Some(id) = apply(records, e, now) {
            revoked.insert(id);
        }
    }
    if read.torn {
        tracing::warn!(path = %path.display(), "the token journal ends in a change cut short (credd stopped while writing it); that token was never handed out, so it is dropped");
    }
    if let Some((line, error)) = read.corrupt {
        let aside = fsutil::set_aside(path, now.unix_timestamp());
        tracing::warn!(path = %path.display(), line, %error, aside = ?aside, "token journal is corrupt from this line on; set it aside and kept the changes before it");
    }
    Ok(true)
}

impl TokenStore {
    /// Loads `STATE_DIR/tokens.json`; a corrupt file is set aside and the
    /// store starts empty (tokens are cheap to issue again). A file refused
    /// for its mode, owner or type is left alone, and token changes are
    /// refused until it is fixed.
    pub fn open(path: PathBuf, now: OffsetDateTime) -> Self {
        let mut disk = Disk::new(Some(&path));
        let mut records = match fsutil::read_private(&path, CAP) {
            Ok(Some(bytes)) => match parse(&bytes, now) {
                Ok(r) => r,
                Err(e) => {
                    let aside = fsutil::set_aside(&path, now.unix_timestamp());
                    tracing::warn!(path = %path.display(), error = %e, aside = ?aside, "token store is corrupt; set it aside and started empty");
                    Records::new()
                }
            },
            Ok(None) => Records::new(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot use the token store; leaving it as it is, and no token can be issued until it is fixed");
                disk.unread = true;
                Records::new()
            }
        };
        let mut revoked = HashSet::new();
        let fold = match replay(&disk.journal.path, &mut records, &mut revoked, now) {
            Ok(fold) => fold,
            Err(e) => {
                tracing::warn!(error = %e, "cannot use the token journal; leaving it as it is, and no token can be issued until it is fixed");
                disk.unread = true;
                false
            }
        };
        if disk.unread {
            // Kept out when the files are merged in once they can be read.
            disk.revoked_unsaved = revoked;
        }
        let store = Self {
            path: Some(path),
            records: ArcSwap::from_pointee(Snapshot::new(records)),
            write: Mutex::new(disk),
            failures: AtomicU64::new(0),
        };
        if fold {
            let mut disk = store.write.lock().unwrap();
            if !disk.unread {
                let records = store.records.load();
                if let Err(e) = store.save(&mut disk, &records, now) {
                    tracing::warn!(error = %e, "cannot fold the token journal into the token store now; the next token change will");
                    disk.journal.clean = false;
                }
            }
        }
        store
    }

    /// A store that is not persisted (tests).
    pub fn in_memory() -> Self {
        Self {
            path: None,
            records: ArcSwap::from_pointee(Snapshot::default()),
            write: Mutex::new(Disk::new(None)),
            failures: AtomicU64::new(0),
        }
    }

    /// Mints a token and stores its record durably (a journal line synced
    /// to disk, or the whole file written, synced and renamed) before it is
    /// usable or returned.
    pub fn issue(
        &self,
        profiles: Vec<String>,
        now: OffsetDateTime,
        ttl: Option<time::Duration>,
        label: String,
    ) -> Result<(SecretString, TokenRecord), StoreError> {
        self.issue_bound(profiles, now, ttl, label, None)
    }

    /// [`Self::issue`], for a container's token when `docker` is given: the
    /// docker watch revokes it once its container is removed.
    pub fn issue_bound(
        &self,
        profiles: Vec<String>,
        now: OffsetDateTime,
        ttl: Option<time::Duration>,
        label: String,
        docker: Option<token::DockerBinding>,
    ) -> Result<(SecretString, TokenRecord), StoreError> {
        // Whole seconds: the records are shown to people and compared as text.
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let mut random = [0u8; 40];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut random[..]);
        let (secret, mut rec) = token::mint(random, profiles, now, ttl.map(|t| now + t), label);
        rec.docker = docker;
        let mut disk = self.write.lock().unwrap();
        let mut next = Snapshot::clone(&self.records.load());
        self.reconcile(&mut disk, &mut next, now)?;
        next.insert(rec.id.clone(), Arc::new(rec.clone()));
        let entry = Entry::Issue {
            record: rec.clone(),
        };
        self.store_change(&mut disk, &next, entry, now)?;
        self.records.store(Arc::new(next));
        Ok((secret, rec))
    }

    /// Revokes token `id`: at once in memory, and durably on disk before
    /// `Ok(true)` is returned. `Ok(false)`: no such token.
    pub fn revoke(&self, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let mut disk = self.write.lock().unwrap();
        let mut next = Snapshot::clone(&self.records.load());
        let checked = self.reconcile(&mut disk, &mut next, now);
        let removed = next.remove(id);
        if removed {
            // Refused from now on, whatever happens to the file.
            self.records.store(Arc::new(next.clone()));
        }
        let pending = disk.revoked_unsaved.contains(id);
        if let Err(e) = checked {
            if removed || disk.unread {
                disk.revoked_unsaved.insert(id.to_string());
            }
            return Err(if removed {
                StoreError::RevokedNotStored(Box::new(e))
            } else {
                e
            });
        }
        if !removed && !pending {
            return Ok(false);
        }
        let entry = Entry::Revoke { id: id.to_string() };
        if let Err(e) = self.store_change(&mut disk, &next, entry, now) {
            disk.revoked_unsaved.insert(id.to_string());
            return Err(StoreError::RevokedNotStored(Box::new(e)));
        }
        Ok(true)
    }

    /// Records the container a docker-bound token was given to (its first
    /// one), durably: a removal while the daemon is down is then told from
    /// a container that never came. `Ok(false)`: no such token, not bound,
    /// or already claimed.
    pub fn bind_container(
        &self,
        id: &str,
        container: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut disk = self.write.lock().unwrap();
        let mut next = Snapshot::clone(&self.records.load());
        self.reconcile(&mut disk, &mut next, now)?;
        let Some(rec) = next.get(id) else {
            return Ok(false);
        };
        let mut rec = TokenRecord::clone(rec);
        match &mut rec.docker {
            Some(b) if b.container.is_none() => b.container = Some(container.to_string()),
            _ => return Ok(false),
        }
        next.insert(id.to_string(), Arc::new(rec));
        let entry = Entry::Bind {
            id: id.to_string(),
            container: container.to_string(),
        };
        self.store_change(&mut disk, &next, entry, now)?;
        self.records.store(Arc::new(next));
        Ok(true)
    }

    /// Looks at the files before a change is stored: one credd refuses to
    /// read is left alone (its mode, owner or type is the user's to fix),
    /// except a symlink, which is replaced and never written through. The
    /// check opens nothing but `tokens.json` (no read: the same cost with
    /// 10 tokens or 10,000), unless the files were refused at start and
    /// can be read now: then their tokens are merged in.
    fn reconcile(
        &self,
        disk: &mut Disk,
        next: &mut Snapshot,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !disk.unread {
            return match journal::check(path) {
                Err(fsutil::FsError::Symlink { .. }) => Ok(()),
                other => other.map_err(StoreError::Refused),
            };
        }
        let mut on_disk = match fsutil::read_private(path, CAP) {
            // A symlink in credd's own 0700 state directory is not followed
            // and is replaced by the write (it holds nothing of credd's).
            Err(fsutil::FsError::Symlink { .. }) | Ok(None) => Records::new(),
            Ok(Some(bytes)) => match parse(&bytes, now) {
                Ok(on_disk) => on_disk,
                Err(e) => {
                    let aside = fsutil::set_aside(path, now.unix_timestamp());
                    tracing::warn!(path = %path.display(), error = %e, aside = ?aside, "token store is corrupt; set it aside");
                    Records::new()
                }
            },
            Err(e) => return Err(StoreError::Refused(e)),
        };
        let mut revoked = HashSet::new();
        replay(&disk.journal.path, &mut on_disk, &mut revoked, now).map_err(StoreError::Refused)?;
        // Nothing was issued while the files were refused: what they hold,
        // less what was revoked in the meantime, is every live token.
        for (id, r) in on_disk {
            if !disk.revoked_unsaved.contains(&id) && !next.contains(&id) {
                next.insert(id, r);
            }
        }
        Ok(())
    }

    /// Stores one change: a line appended to the journal, or, when the
    /// journal is due to be folded (or cannot be appended to as it is, or
    /// the files need merging), every record written whole.
    fn store_change(
        &self,
        disk: &mut Disk,
        next: &Snapshot,
        entry: Entry,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        // A missing or symlinked `tokens.json` is written (replaced) first.
        let whole = disk.unread
            || !disk.revoked_unsaved.is_empty()
            || !disk.journal.clean
            || disk.journal.lines >= next.len().max(FOLD_AT_LEAST)
            || !std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
        if whole {
            return self.save(disk, next, now);
        }
        disk.journal.append(&entry).map_err(StoreError::Write)
    }

    /// Writes every live record to `tokens.json` (atomically), then removes
    /// the journal it now holds.
    fn save(
        &self,
        disk: &mut Disk,
        next: &Snapshot,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut list: Vec<&TokenRecord> = next
            .values()
            .filter(|r| !r.expired(now))
            .map(|r| &**r)
            .collect();
        list.sort_by_key(|r| (r.created, r.id.clone()));
        let bytes = serde_json::to_vec(&list).expect("records serialize");
        fsutil::write_private(path, &bytes).map_err(StoreError::Write)?;
        disk.unread = false;
        disk.revoked_unsaved.clear();
        // Replaying it over the new file would change nothing, so a journal
        // left by a failure here is harmless; it is written whole next time.
        if let Err(e) = disk.journal.remove() {
            tracing::warn!(error = %e, "cannot remove the token journal folded into the token store");
            disk.journal.clean = false;
        }
        Ok(())
    }

    /// Revokes the token whose whole value (`credd_ID_SECRET`) is
    /// `presented`: found by its id and checked by digest in constant time,
    /// as a request is, so a value with a wrong secret revokes nothing.
    /// Returns the id revoked.
    pub fn revoke_value(
        &self,
        presented: &str,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        let Some(p) = token::parse(presented.trim()) else {
            return Ok(None);
        };
        let id = match self.records.load().get(p.id) {
            Some(r) if r.matches(&p) => r.id.clone(),
            _ => return Ok(None),
        };
        Ok(self.revoke(&id, now)?.then_some(id))
    }

    /// Revokes every live token `which` selects (by label, or all of them);
    /// returns the ids revoked.
    pub fn revoke_matching(
        &self,
        which: impl Fn(&TokenRecord) -> bool,
        now: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError> {
        let mut done = Vec::new();
        for r in self.list(now).into_iter().filter(|r| which(r)) {
            if self.revoke(&r.id, now)? {
                done.push(r.id);
            }
        }
        Ok(done)
    }

    /// Removes the token files (`credd exec`, `credd env`, `credd docker`
    /// write one per token, named by its id, in `dir`) whose token is
    /// revoked or expired: normally the CLI removes its own, but not when it
    /// was killed. Only regular files named like a token id are touched.
    /// Returns how many were removed.
    pub fn sweep_files(&self, dir: &std::path::Path, now: OffsetDateTime) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        let records = self.records.load();
        let mut removed = 0;
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str() else { continue };
            if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            if records.get(id).is_some_and(|r| !r.expired(now)) {
                continue;
            }
            // `file_type` does not follow symlinks.
            if e.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    pub fn list(&self, now: OffsetDateTime) -> Vec<TokenRecord> {
        let mut v: Vec<TokenRecord> = self
            .records
            .load()
            .values()
            .filter(|r| !r.expired(now))
            .map(|r| TokenRecord::clone(r))
            .collect();
        v.sort_by_key(|r| r.created);
        v
    }

    /// Checks an `Authorization` value for `profile`. Failures are counted.
    pub fn authorize(
        &self,
        header: Option<&[u8]>,
        profile: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Arc<TokenRecord>, AuthError> {
        let r = self.check(header, profile, now);
        if r.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn check(
        &self,
        header: Option<&[u8]>,
        profile: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Arc<TokenRecord>, AuthError> {
        let raw = header.ok_or(AuthError::Missing)?;
        let text = std::str::from_utf8(raw).map_err(|_| AuthError::Invalid)?;
        let presented = token::parse(text.trim()).ok_or(AuthError::Invalid)?;
        let records = self.records.load();
        let rec = records.get(presented.id).ok_or(AuthError::Invalid)?;
        if !rec.matches(&presented) {
            return Err(AuthError::Invalid);
        }
        if rec.expired(now) {
            return Err(AuthError::Expired);
        }
        if let Some(p) = profile {
            if !rec.allows(p) {
                return Err(AuthError::Forbidden);
            }
        }
        Ok(rec.clone())
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;
