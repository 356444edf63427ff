//! The client-token store: records (digests, scopes, expiry) in memory and in
//! `STATE_DIR/tokens.json` (0600). Secrets exist only in the caller's hands.

use crate::fsutil;
use arc_swap::ArcSwap;
use credd_core::token::{self, TokenRecord};
use credd_core::SecretString;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
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
    records: ArcSwap<HashMap<String, Arc<TokenRecord>>>,
    /// Serializes issue and revoke from the first read to the answer, so
    /// that no write can carry an older list over a newer one.
    write: Mutex<Disk>,
    failures: AtomicU64,
}

/// What the store knows about its file beyond the records.
#[derive(Debug, Default)]
struct Disk {
    /// The file was refused when the daemon started (its mode, owner or
    /// type): its tokens are not in memory, and it is merged in, not
    /// replaced, once it can be read.
    unread: bool,
    /// Revoked in memory but not yet in the file (a write failed): kept out
    /// of any merge and dropped from the file by the next good write.
    revoked_unsaved: HashSet<String>,
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

const CAP: u64 = 4 * 1024 * 1024;

type Records = HashMap<String, Arc<TokenRecord>>;

fn parse(bytes: &[u8], now: OffsetDateTime) -> Result<Records, serde_json::Error> {
    Ok(serde_json::from_slice::<Vec<TokenRecord>>(bytes)?
        .into_iter()
        .filter(|r| !r.expired(now))
        .map(|r| (r.id.clone(), Arc::new(r)))
        .collect())
}

impl TokenStore {
    /// Loads `STATE_DIR/tokens.json`; a corrupt file is set aside and the
    /// store starts empty (tokens are cheap to issue again). A file refused
    /// for its mode, owner or type is left alone, and token changes are
    /// refused until it is fixed.
    pub fn open(path: PathBuf, now: OffsetDateTime) -> Self {
        let mut disk = Disk::default();
        let records = match fsutil::read_private(&path, CAP) {
            Ok(Some(bytes)) => match parse(&bytes, now) {
                Ok(r) => r,
                Err(e) => {
                    let aside = fsutil::set_aside(&path, now.unix_timestamp());
                    tracing::warn!(path = %path.display(), error = %e, aside = ?aside, "token store is corrupt; set it aside and started empty");
                    HashMap::new()
                }
            },
            Ok(None) => HashMap::new(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot use the token store; leaving it as it is, and no token can be issued until it is fixed");
                disk.unread = true;
                HashMap::new()
            }
        };
        Self {
            path: Some(path),
            records: ArcSwap::from_pointee(records),
            write: Mutex::new(disk),
            failures: AtomicU64::new(0),
        }
    }

    /// A store that is not persisted (tests).
    pub fn in_memory() -> Self {
        Self {
            path: None,
            records: ArcSwap::from_pointee(HashMap::new()),
            write: Mutex::new(Disk::default()),
            failures: AtomicU64::new(0),
        }
    }

    /// Mints a token and stores its record durably (fsynced, renamed,
    /// directory fsynced) before it is usable or returned.
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
        let mut next = Records::clone(&self.records.load());
        self.reconcile(&mut disk, &mut next, now)?;
        next.insert(rec.id.clone(), Arc::new(rec.clone()));
        self.save(&mut disk, &next, now)?;
        self.records.store(Arc::new(next));
        Ok((secret, rec))
    }

    /// Revokes token `id`: at once in memory, and durably on disk before
    /// `Ok(true)` is returned. `Ok(false)`: no such token.
    pub fn revoke(&self, id: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let mut disk = self.write.lock().unwrap();
        let mut next = Records::clone(&self.records.load());
        let checked = self.reconcile(&mut disk, &mut next, now);
        let removed = next.remove(id).is_some();
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
        if let Err(e) = self.save(&mut disk, &next, now) {
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
        let mut next = Records::clone(&self.records.load());
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
        self.save(&mut disk, &next, now)?;
        self.records.store(Arc::new(next));
        Ok(true)
    }

    /// Looks at the file before it is replaced: one credd refuses to read
    /// is left alone (its mode, owner or type is the user's to fix), except
    /// a symlink, which is replaced and never written through; one refused
    /// at start and readable now has its tokens merged in.
    fn reconcile(
        &self,
        disk: &mut Disk,
        next: &mut Records,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = match fsutil::read_private(path, CAP) {
            // A symlink in credd's own 0700 state directory is not followed
            // and is replaced by the write (it holds nothing of credd's).
            Err(fsutil::FsError::Symlink { .. }) => None,
            other => other.map_err(StoreError::Refused)?,
        };
        if !disk.unread {
            return Ok(());
        }
        if let Some(bytes) = bytes {
            match parse(&bytes, now) {
                Ok(on_disk) => {
                    for (id, r) in on_disk {
                        if !disk.revoked_unsaved.contains(&id) {
                            next.entry(id).or_insert(r);
                        }
                    }
                }
                Err(e) => {
                    let aside = fsutil::set_aside(path, now.unix_timestamp());
                    tracing::warn!(path = %path.display(), error = %e, aside = ?aside, "token store is corrupt; set it aside");
                }
            }
        }
        Ok(())
    }

    fn save(&self, disk: &mut Disk, next: &Records, now: OffsetDateTime) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut list: Vec<&TokenRecord> = next
            .values()
            .filter(|r| !r.expired(now))
            .map(|r| &**r)
            .collect();
        list.sort_by_key(|r| (r.created, r.id.clone()));
        let bytes = serde_json::to_vec_pretty(&list).expect("records serialize");
        fsutil::write_private(path, &bytes).map_err(StoreError::Write)?;
        disk.unread = false;
        disk.revoked_unsaved.clear();
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
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-23 09:00 UTC);

    #[test]
    fn scoped_expiring_revocable_and_persisted_as_digests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let store = TokenStore::open(path.clone(), NOW);
        let (tok, rec) = store
            .issue(
                vec!["a".into()],
                NOW,
                Some(time::Duration::hours(1)),
                "t".into(),
            )
            .unwrap();
        let t = tok.expose().as_bytes();
        assert!(store.authorize(Some(t), Some("a"), NOW).is_ok());
        assert_eq!(
            store.authorize(Some(t), Some("b"), NOW),
            Err(AuthError::Forbidden)
        );
        assert_eq!(
            store.authorize(None, Some("a"), NOW),
            Err(AuthError::Missing)
        );
        assert_eq!(
            store.authorize(Some(b""), Some("a"), NOW),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            store.authorize(Some(&t[..t.len() - 1]), Some("a"), NOW),
            Err(AuthError::Invalid)
        );
        let later = NOW + time::Duration::hours(2);
        assert_eq!(
            store.authorize(Some(t), Some("a"), later),
            Err(AuthError::Expired)
        );
        assert_eq!(store.failures(), 5);

        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(
            !on_disk.contains(&tok.expose()[23..]),
            "secret never stored"
        );
        let reopened = TokenStore::open(path.clone(), NOW);
        assert!(reopened.authorize(Some(t), Some("a"), NOW).is_ok());
        assert!(reopened.revoke(&rec.id, NOW).unwrap());
        assert_eq!(
            reopened.authorize(Some(t), Some("a"), NOW),
            Err(AuthError::Invalid)
        );
        assert!(TokenStore::open(path, NOW).list(NOW).is_empty());
    }

    #[test]
    fn revoke_by_value_checks_the_secret_and_by_label_or_all() {
        let store = TokenStore::in_memory();
        let issue = |label: &str| {
            store
                .issue(vec!["a".into()], NOW, None, label.into())
                .unwrap()
        };
        let (t1, r1) = issue("x");
        let forged = format!("credd_{}_{}", r1.id, "0".repeat(64));
        assert_eq!(store.revoke_value(&forged, NOW).unwrap(), None);
        assert_eq!(store.revoke_value("junk", NOW).unwrap(), None);
        assert!(store
            .authorize(Some(t1.expose().as_bytes()), None, NOW)
            .is_ok());
        assert_eq!(
            store.revoke_value(t1.expose(), NOW).unwrap(),
            Some(r1.id.clone())
        );
        assert!(store
            .authorize(Some(t1.expose().as_bytes()), None, NOW)
            .is_err());
        let (_, a) = issue("ci");
        let (_, b) = issue("ci");
        let (_, keep) = issue("other");
        let mut by_label = store.revoke_matching(|r| r.label == "ci", NOW).unwrap();
        by_label.sort();
        let mut want = vec![a.id, b.id];
        want.sort();
        assert_eq!(by_label, want);
        assert_eq!(store.revoke_matching(|_| true, NOW).unwrap(), [keep.id]);
        assert!(store.list(NOW).is_empty());
    }

    #[test]
    fn files_of_dead_tokens_are_swept_and_nothing_else() {
        let store = TokenStore::in_memory();
        let issue = |ttl: i64| {
            store
                .issue(
                    vec!["a".into()],
                    NOW,
                    Some(time::Duration::hours(ttl)),
                    "t".into(),
                )
                .unwrap()
                .1
                .id
        };
        let (live, expiring, revoked) = (issue(24), issue(1), issue(24));
        store.revoke(&revoked, NOW).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| dir.path().join(name);
        for id in [&live, &expiring, &revoked] {
            std::fs::write(file(id), "credd_secret").unwrap();
        }
        // Never issued by this daemon: also dead.
        std::fs::write(file("00112233aabbccdd"), "x").unwrap();
        // Not named like a token, a directory, a symlink: left alone.
        std::fs::write(file("notes.txt"), "keep").unwrap();
        std::fs::create_dir(file("0123456789abcdef")).unwrap();
        std::os::unix::fs::symlink(file("notes.txt"), file("fedcba9876543210")).unwrap();

        assert_eq!(store.sweep_files(dir.path(), NOW), 2, "revoked and unknown");
        assert!(file(&live).exists() && file(&expiring).exists());
        assert!(!file(&revoked).exists() && !file("00112233aabbccdd").exists());
        let later = NOW + time::Duration::hours(2);
        assert_eq!(store.sweep_files(dir.path(), later), 1, "expired");
        assert!(file(&live).exists() && !file(&expiring).exists());
        assert!(file("notes.txt").exists() && file("0123456789abcdef").is_dir());
        assert!(std::fs::symlink_metadata(file("fedcba9876543210")).is_ok());
        assert_eq!(store.sweep_files(&file("missing"), NOW), 0);
    }

    #[test]
    fn a_docker_binding_is_stored_and_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let store = TokenStore::open(path.clone(), NOW);
        let binding = token::DockerBinding {
            engine: "unix:///run/docker.sock".into(),
            container: None,
        };
        let (_, rec) = store
            .issue_bound(vec!["a".into()], NOW, None, "d".into(), Some(binding))
            .unwrap();
        let (_, plain) = store
            .issue(vec!["a".into()], NOW, None, "p".into())
            .unwrap();
        assert!(store.bind_container(&rec.id, "c1", NOW).unwrap());
        assert!(
            !store.bind_container(&rec.id, "c2", NOW).unwrap(),
            "first one wins"
        );
        assert!(
            !store.bind_container(&plain.id, "c3", NOW).unwrap(),
            "not bound"
        );
        let again = TokenStore::open(path, NOW);
        let got = again.list(NOW);
        let b = got.iter().find(|r| r.id == rec.id).unwrap();
        assert_eq!(b.docker.as_ref().unwrap().container.as_deref(), Some("c1"));
        assert!(got
            .iter()
            .find(|r| r.id == plain.id)
            .unwrap()
            .docker
            .is_none());
    }

    #[test]
    fn corrupt_store_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        fsutil::write_private(&path, b"{not json").unwrap();
        let store = TokenStore::open(path.clone(), NOW);
        assert!(store.list(NOW).is_empty());
        assert!(!path.exists());
        let kept: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(kept.len(), 1, "the bad file is kept aside");
    }

    #[test]
    fn a_refused_file_is_left_alone_and_merged_once_fixed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let hour = Some(time::Duration::hours(1));
        let first = TokenStore::open(path.clone(), NOW);
        let (kept, kept_rec) = first
            .issue(vec!["a".into()], NOW, hour, "k".into())
            .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let before = std::fs::read(&path).unwrap();

        // Refused while running: nothing written, earlier tokens still work.
        let e = first
            .issue(vec!["a".into()], NOW, hour, "x".into())
            .unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert!(first
            .authorize(Some(kept.expose().as_bytes()), Some("a"), NOW)
            .is_ok());

        // Refused at start: not read, not replaced; revoking works in memory
        // and is kept out when the file comes back.
        let second = TokenStore::open(path.clone(), NOW);
        assert!(second.list(NOW).is_empty());
        assert!(second.revoke(&kept_rec.id, NOW).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (_, new_rec) = second
            .issue(vec!["a".into()], NOW, hour, "n".into())
            .unwrap();
        let ids: Vec<String> = TokenStore::open(path, NOW)
            .list(NOW)
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [new_rec.id], "the revoked one stays out");
    }

    #[test]
    fn a_fifo_in_place_of_the_file_does_not_block_and_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let store = TokenStore::open(path.clone(), NOW);
        let e = store
            .issue(vec!["a".into()], NOW, None, "x".into())
            .unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(
            &std::fs::symlink_metadata(&path).unwrap().file_type()
        ));
    }
}
