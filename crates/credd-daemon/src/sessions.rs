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

use crate::fsutil;
use credd_core::credentials::parse_timestamp;
use credd_core::profile::NodeId;
use credd_core::{format_expiration, SecretString, TemporaryCredentials};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
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
}
