//! Persisted sessions: MFA sessions, and only they, are written after every
//! successful fetch (the broker's `record`, `broker/renew.rs`) to
//! `STATE_DIR/sessions/<sha256 of the NodeId>.json` (0600, atomic, through
//! `fsutil`; see `docs/security.md`), so a daemon restart does not ask for a
//! new code.
//!
//! When a node is created, at start or on reload (`broker/graph.rs`), a
//! stored session that has not expired is loaded into its cache and its next
//! refresh scheduled (parked until `credd mfa` without `mfa_process`)
//! (`broker_tests::mfa_session_survives_a_restart`,
//! `e2e::mfa_profiles_need_credd_mfa_once_and_survive_a_restart`). An expired
//! file is deleted. A corrupt one (not this JSON, written for another node,
//! a bad timestamp) is set aside as `NAME.corrupt-UNIXTIME`. One that is not
//! a private regular file (a symlink, a FIFO, not the user's, open to group
//! or others, larger than 64 KiB) is ignored with a warning and left where it
//! is. Either way it is a cache miss, never a crash. Other credentials are
//! fetched again after a restart; client-token records persist separately,
//! in `STATE_DIR/tokens.json` (`tokens.rs`).
//!
//! Also here, [`SignInStore`]: when each IAM Identity Center session was
//! signed in, in `STATE_DIR/sso-signins.json` (0600 in the 0700 state
//! directory, written atomically while holding a `flock` on that directory,
//! re-read under the lock so that the CLI's `credd login` and the daemon
//! never lose each other's entries). It holds times and the session's cache
//! key only, never a token: the cache the AWS CLI shares stays the AWS
//! CLI's (`docs/security.md`). The estimated end is sign-in plus the
//! session length (`credd_core::sso::signin`).

use crate::fsutil;
use credd_core::credentials::parse_timestamp;
use credd_core::profile::NodeId;
use credd_core::sso::SignIn;
use credd_core::{format_expiration, SecretString, TemporaryCredentials};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

const CAP: u64 = 64 * 1024;

#[derive(Debug)]
pub struct SessionStore {
    dir: Option<PathBuf>,
}

#[derive(Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
struct OnDisk {
    node: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
    issued: String,
    #[serde(default)]
    account_id: Option<String>,
}

impl SessionStore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir: Some(dir) }
    }
    /// No session files (the tests' store).
    #[cfg(test)]
    pub fn disabled() -> Self {
        Self { dir: None }
    }

    fn path(&self, node: &NodeId) -> Option<PathBuf> {
        let name = hex::encode(Sha256::digest(node.0.as_bytes()));
        self.dir.as_ref().map(|d| d.join(format!("{name}.json")))
    }

    pub fn save(
        &self,
        node: &NodeId,
        creds: &TemporaryCredentials,
        issued: OffsetDateTime,
    ) -> Result<(), fsutil::FsError> {
        let Some(path) = self.path(node) else {
            return Ok(());
        };
        let doc = OnDisk {
            node: node.0.clone(),
            access_key_id: creds.access_key_id().to_string(),
            secret_access_key: creds.secret_access_key().expose().to_string(),
            session_token: creds.session_token().expose().to_string(),
            expiration: format_expiration(creds.expiration()),
            issued: format_expiration(issued),
            account_id: creds.account_id().map(str::to_string),
        };
        let bytes = serde_json::to_vec(&doc).expect("serializes");
        let r = fsutil::write_private(&path, &bytes);
        let mut bytes = bytes;
        bytes.iter_mut().for_each(|b| *b = 0);
        r
    }

    /// The persisted session for `node`, if present, well-formed and still
    /// valid at `now`.
    pub fn load(
        &self,
        node: &NodeId,
        now: OffsetDateTime,
    ) -> Option<(TemporaryCredentials, OffsetDateTime)> {
        let path = self.path(node)?;
        let bytes = match fsutil::read_private(&path, CAP) {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "ignoring persisted session");
                return None;
            }
        };
        let parsed = serde_json::from_slice::<OnDisk>(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|d| {
                if d.node != node.0 {
                    return Err("written for another session".into());
                }
                let exp = parse_timestamp(&d.expiration).map_err(|e| e.to_string())?;
                let issued = parse_timestamp(&d.issued).map_err(|e| e.to_string())?;
                let c = TemporaryCredentials::new(
                    d.access_key_id.clone(),
                    SecretString::new(d.secret_access_key.clone()),
                    SecretString::new(d.session_token.clone()),
                    exp,
                    d.account_id.clone(),
                )
                .map_err(|e| e.to_string())?;
                Ok((c, issued))
            });
        match parsed {
            Ok((c, issued)) if c.expiration() > now => Some((c, issued)),
            Ok(_) => {
                let _ = std::fs::remove_file(&path);
                None
            }
            Err(e) => {
                // serde's messages name the field or position, never the value.
                let aside = fsutil::set_aside(&path, now.unix_timestamp());
                tracing::warn!(node = %node, error = %e, aside = ?aside, "persisted session is corrupt; set it aside");
                None
            }
        }
    }
}

/// The sign-in times of the IAM Identity Center sessions, by cache key
/// (the sso-session's name, or a legacy profile's start URL).
#[derive(Debug, Clone)]
pub struct SignInStore {
    path: Option<PathBuf>,
}

#[derive(Serialize, Deserialize, Default)]
struct SignInsOnDisk {
    #[serde(default)]
    sessions: BTreeMap<String, SignInOnDisk>,
}

#[derive(Serialize, Deserialize)]
struct SignInOnDisk {
    signed_in: String,
    #[serde(default)]
    token_expires: Option<String>,
}

/// The file's name in the state directory.
pub const SIGN_INS_FILE: &str = "sso-signins.json";

impl SignInStore {
    /// The store of the daemon whose state directory is `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: Some(state_dir.join(SIGN_INS_FILE)),
        }
    }

    /// Keeps nothing (tests that do not look at sign-ins).
    pub fn disabled() -> Self {
        Self { path: None }
    }

    /// The recorded sign-ins. A file that cannot be used is warned about
    /// and read as empty: the estimate then starts when credd next sees a
    /// token, never a crash.
    pub fn all(&self) -> BTreeMap<String, SignIn> {
        let Some(path) = &self.path else {
            return BTreeMap::new();
        };
        Self::read(path)
            .sessions
            .into_iter()
            .filter_map(|(k, v)| {
                let at = parse_timestamp(&v.signed_in).ok()?;
                let token_expires = v.token_expires.and_then(|t| parse_timestamp(&t).ok());
                Some((k, SignIn { at, token_expires }))
            })
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<SignIn> {
        self.all().remove(key)
    }

    fn read(path: &Path) -> SignInsOnDisk {
        match fsutil::read_private(path, CAP) {
            Ok(Some(b)) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "ignoring the unreadable sign-in record");
                SignInsOnDisk::default()
            }),
            Ok(None) => SignInsOnDisk::default(),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the sign-in record");
                SignInsOnDisk::default()
            }
        }
    }

    /// Records `sign_in` for `key`: under the state directory's lock, the
    /// file is re-read, changed in that one entry, and replaced atomically.
    pub fn record(&self, key: &str, sign_in: SignIn) -> Result<(), fsutil::FsError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = credd_core::atomic_file::parent_dir(path);
        fsutil::private_dir(dir)?;
        let _lock = DirLock::take(dir);
        let mut doc = Self::read(path);
        doc.sessions.insert(
            key.to_string(),
            SignInOnDisk {
                signed_in: format_expiration(sign_in.at),
                token_expires: sign_in.token_expires.map(format_expiration),
            },
        );
        fsutil::write_private(path, &serde_json::to_vec_pretty(&doc).expect("serializes"))
    }
}

/// An advisory `flock` on a directory, held until dropped. On the
/// directory, not a sidecar file: the file itself is replaced by a rename,
/// and a lock file would be one more file to leave behind. The lock dies
/// with its holder. Where the file system cannot lock, or another holder
/// keeps it past two seconds, the write goes on unlocked (the re-read keeps
/// the window small) rather than stalling the daemon.
struct DirLock {
    _held: Option<std::fs::File>,
}

impl DirLock {
    fn take(dir: &Path) -> Self {
        use rustix::fs::{flock, FlockOperation};
        let Ok(f) = std::fs::File::open(dir) else {
            return Self { _held: None };
        };
        for _ in 0..40 {
            match flock(&f, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Self { _held: Some(f) },
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                Err(_) => return Self { _held: None },
            }
        }
        tracing::warn!(dir = %dir.display(), "the state directory stayed locked; writing the sign-in record anyway");
        Self { _held: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-23 09:00 UTC);

    fn creds(exp: OffsetDateTime) -> TemporaryCredentials {
        TemporaryCredentials::new(
            "ASIAX",
            SecretString::new("s"),
            SecretString::new("t"),
            exp,
            None,
        )
        .unwrap()
    }

    #[test]
    fn round_trip_expiry_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::new(dir.path().join("sessions"));
        let node = NodeId("mfa:AKIA:arn".into());
        store
            .save(&node, &creds(NOW + time::Duration::hours(1)), NOW)
            .unwrap();
        let (c, issued) = store.load(&node, NOW).unwrap();
        assert_eq!(c.access_key_id(), "ASIAX");
        assert_eq!(issued, NOW);
        assert!(store.load(&node, NOW + time::Duration::hours(2)).is_none());

        let path = store.path(&node).unwrap();
        for bad in [&b""[..], b"\0\0\0", b"{\"node\": 5}", b"[[[[[[[[[[[[[[[[", b"{\"node\":\"mfa:AKIA:arn\",\"access_key_id\":\"A\",\"secret_access_key\":\"s\",\"session_token\":\"t\",\"expiration\":\"99999-01-01T00:00:00Z\",\"issued\":\"x\"}"] {
            fsutil::write_private(&path, bad).unwrap();
            assert!(store.load(&node, NOW).is_none());
            assert!(!path.exists(), "bad file set aside");
        }
        // Far-future but well-formed is accepted: AWS decides validity.
        store
            .save(&node, &creds(datetime!(2999-01-01 00:00 UTC)), NOW)
            .unwrap();
        assert!(store.load(&node, NOW).is_some());
    }

    #[test]
    fn sign_ins_survive_a_new_store_and_keep_each_others_entries() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let a = SignInStore::new(&state);
        let first = SignIn {
            at: NOW,
            token_expires: Some(NOW + time::Duration::hours(1)),
        };
        a.record("work", first).unwrap();
        // Another writer (the CLI's `credd login`) with its own store.
        let b = SignInStore::new(&state);
        let other = SignIn {
            at: NOW + time::Duration::hours(2),
            token_expires: None,
        };
        b.record("https://x.awsapps.com/start", other).unwrap();
        let all = SignInStore::new(&state).all();
        assert_eq!(all.get("work"), Some(&first));
        assert_eq!(all.get("https://x.awsapps.com/start"), Some(&other));
        use std::os::unix::fs::PermissionsExt;
        let path = state.join(SIGN_INS_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("accessToken") && !text.contains("refresh"),
            "{text}"
        );
        // A corrupt file reads as empty and is replaced by the next record.
        std::fs::write(&path, b"{not json").unwrap();
        assert!(a.all().is_empty());
        a.record("work", first).unwrap();
        assert_eq!(a.get("work"), Some(first));
        assert!(SignInStore::disabled().all().is_empty());
    }
}
