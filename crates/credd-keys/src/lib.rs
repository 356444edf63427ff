//! credd-keys: where long-term IAM user keys live when they are not in
//! `~/.aws/credentials` (issue 15).
//!
//! Invariant: a key store hands out a secret only to the caller that asked
//! for it by name; nothing here logs, prints or puts a secret in an error
//! message, and no call waits on the OS keychain longer than its timeout
//! (a locked keychain is an error that says what to do, never a hang).
//!
//! One trait, [`KeyStore`], and its backends:
//! - [`keychain::Keychain`]: the OS keychain through the `keyring` crate
//!   (the Secret Service over D-Bus on Linux, the Keychain on macOS);
//! - [`file::EncryptedFile`]: one passphrase-encrypted file, for machines
//!   with neither.
//!
//! The daemon never depends on this crate: the binary adapts a store to
//! credd-core's [`credd_core::keys::KeySource`] seam.

pub mod file;
pub mod keychain;
mod lock;
mod record;

#[cfg(test)]
mod file_tests;
#[cfg(all(test, target_os = "linux"))]
mod keychain_tests;

use credd_core::LongTermKeys;
use std::path::PathBuf;
use time::OffsetDateTime;

pub use record::KeyMeta;

/// Which backend holds the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Keychain,
    File,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Keychain => "keychain",
            Backend::File => "file",
        }
    }
}

/// One stored key pair and what is known about it.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub keys: LongTermKeys,
    pub meta: KeyMeta,
}

/// Why a store could not answer. No variant carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the {what} is locked: unlock it (log in to the desktop, or `gnome-keyring-daemon --unlock`), then try again")]
    Locked { what: &'static str },
    #[error("the {what} did not answer within {secs} s (is it locked and waiting for a password prompt nobody can see?): unlock it, or set [keys] backend = \"file\" in credd.toml")]
    Timeout { what: &'static str, secs: u64 },
    #[error("no {what} answers here ({detail}): start one, or set [keys] backend = \"file\" in credd.toml")]
    NoKeychain { what: &'static str, detail: String },
    #[error("the {what} refused the request: {detail}")]
    Backend { what: &'static str, detail: String },
    #[error("{}: wrong passphrase, or the file was altered; nothing was changed (check CREDD_KEYS_PASSPHRASE)", path.display())]
    WrongPassphrase { path: PathBuf },
    #[error("{}: {detail}; the file was left as it is: restore it from a backup, or move it away and add the keys again with `credd keys add`", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("{}: another credd command has held the key file's lock for {secs} s: try again when it has finished", path.display())]
    Busy { path: PathBuf, secs: u64 },
    #[error("{}: {detail}", path.display())]
    Unsafe { path: PathBuf, detail: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("'{0}' is not a usable key name: use letters, digits, '.', '_', '-' and '@'")]
    BadName(String),
}

/// Named long-term keys with metadata. Every method may block on the OS
/// (D-Bus, a file lock) but never past the backend's timeout.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    fn backend(&self) -> Backend;
    /// The keys stored under `name`, if any.
    fn get(&self, name: &str) -> Result<Option<StoredKey>, KeyError>;
    /// Stores (or replaces) `name`'s keys, recording `added` as their date.
    fn put(&self, name: &str, keys: &LongTermKeys, added: OffsetDateTime) -> Result<(), KeyError>;
    /// Removes `name`; false when there was nothing to remove.
    fn delete(&self, name: &str) -> Result<bool, KeyError>;
    /// Every stored key's metadata (never a secret), by name.
    fn list(&self) -> Result<Vec<KeyMeta>, KeyError>;
}

/// Key names become keychain account names and JSON keys: AWS profile
/// names in practice, so the same characters.
pub fn check_name(name: &str) -> Result<(), KeyError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadName(name.to_string()))
    }
}

/// The access key id with all but its first four and last four characters
/// masked (`AKIA************WXYZ`), for listings.
pub fn mask_key_id(id: &str) -> String {
    let n = id.chars().count();
    if n <= 8 {
        return "*".repeat(n);
    }
    id.chars()
        .enumerate()
        .map(|(i, c)| if i < 4 || i >= n - 4 { c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_ids_masked() {
        assert!(check_name("dev").is_ok());
        assert!(check_name("a/b").is_err());
        assert!(check_name("").is_err());
        assert_eq!(mask_key_id("AKIAIOSFODNN7EXAMPLE"), "AKIA************MPLE");
        assert_eq!(mask_key_id("short"), "*****");
    }
}
