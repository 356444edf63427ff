//! [`Keychain`]: the OS keychain as a [`KeyStore`], through the `keyring`
//! crate: on Linux the Secret Service (GNOME Keyring, KWallet) over D-Bus
//! with the pure-Rust zbus client (no libdbus needed to build), on macOS the
//! user's login Keychain (`apple-native`; it compiles there but is not
//! tested on this project's Linux machines: docs/configuration.md says so).
//!
//! Layout, under one service name (`credd`): an item `key:NAME` whose secret
//! is the JSON [`Record`] (key id, secret, added date), and one item `index`
//! listing each name with its key id and date (no secret), because
//! `keyring` has no way to enumerate items and `credd keys list` must
//! work the same on every platform.
//!
//! The index is read-modified-written under an exclusive `flock`
//! ([`Keychain::with_index_lock`]: `STATE_DIR/keychain-index.lock`), and
//! re-read under it: the keychain has no transaction, and two `credd keys
//! add` at once would otherwise each write back an index missing the other's
//! name (the key itself would stay stored, but unlisted).
//!
//! Every call runs on a thread of its own and is abandoned after the
//! timeout: a Secret Service whose collection is locked may wait forever on
//! an unlock prompt that no one can see (a daemon under systemd), and the
//! caller must get [`KeyError::Timeout`] instead of hanging.

use crate::record::{self, Record};
use crate::{check_name, Backend, KeyError, KeyMeta, KeyStore, StoredKey};
use credd_core::LongTermKeys;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;
use time::OffsetDateTime;

const WHAT: &str = "OS keychain";
const INDEX: &str = "index";

/// The OS keychain, under the service name `service` (`credd` outside
/// tests).
#[derive(Debug, Clone)]
pub struct Keychain {
    service: String,
    timeout: Duration,
    index_lock: Option<PathBuf>,
}

/// One index entry: what `list` shows without reading any secret.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct IndexEntry {
    access_key_id: String,
    added: String,
}

impl Keychain {
    pub fn new(service: impl Into<String>, timeout: Duration) -> Self {
        Self {
            service: service.into(),
            timeout,
            index_lock: None,
        }
    }

    /// Serializes changes to the index with an exclusive lock on
    /// `lock_file` (in a 0700 directory of the user's; created 0600).
    pub fn with_index_lock(mut self, lock_file: PathBuf) -> Self {
        self.index_lock = Some(lock_file);
        self
    }

    /// Holds the index lock (when one is set) until dropped; waits as long
    /// as a keychain call may take.
    fn lock_index(&self) -> Result<Option<std::fs::File>, KeyError> {
        let Some(path) = &self.index_lock else {
            return Ok(None);
        };
        let dir = credd_core::atomic_file::parent_dir(path);
        crate::lock::private_dir(dir, "credd's state directory")?;
        // Another command holds it for at most a read and a write of the
        // index, each bounded by the timeout.
        crate::lock::exclusive(path, path, self.timeout * 3).map(Some)
    }

    /// Whether a keychain answers here at all (locked counts as answering:
    /// the user then gets the clear "locked" error rather than a silent
    /// switch to another backend).
    pub fn answers(&self) -> bool {
        match self.read(INDEX) {
            Ok(_) | Err(KeyError::Locked { .. }) => true,
            Err(_) => false,
        }
    }

    /// Runs `f` on its own thread and gives up after the timeout (the
    /// thread is left to finish or block on its own; it holds no lock).
    fn bounded<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, keyring::Error> + Send + 'static,
    ) -> Result<T, KeyError> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("credd-keychain".into())
            .spawn(move || {
                let _ = tx.send(f());
            })
            .map_err(|e| KeyError::Backend {
                what: WHAT,
                detail: format!("cannot start a thread: {e}"),
            })?;
        match rx.recv_timeout(self.timeout) {
            Ok(r) => r.map_err(classify),
            Err(_) => Err(KeyError::Timeout {
                what: WHAT,
                secs: self.timeout.as_secs().max(1),
            }),
        }
    }

    fn entry(service: &str, user: &str) -> Result<keyring::Entry, keyring::Error> {
        keyring::Entry::new(service, user)
    }

    /// The secret of item `user`, `None` when there is none.
    fn read(&self, user: &str) -> Result<Option<String>, KeyError> {
        let (service, user) = (self.service.clone(), user.to_string());
        self.bounded(move || match Self::entry(&service, &user)?.get_password() {
            Ok(s) => Ok(Some(s)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e),
        })
    }

    fn write(&self, user: &str, secret: String) -> Result<(), KeyError> {
        let (service, user) = (self.service.clone(), user.to_string());
        self.bounded(move || {
            let mut secret = secret;
            let r = Self::entry(&service, &user)?.set_password(&secret);
            zeroize::Zeroize::zeroize(&mut secret);
            r
        })
    }

    fn remove(&self, user: &str) -> Result<bool, KeyError> {
        let (service, user) = (self.service.clone(), user.to_string());
        self.bounded(
            move || match Self::entry(&service, &user)?.delete_credential() {
                Ok(()) => Ok(true),
                Err(keyring::Error::NoEntry) => Ok(false),
                Err(e) => Err(e),
            },
        )
    }

    fn index(&self) -> Result<BTreeMap<String, IndexEntry>, KeyError> {
        match self.read(INDEX)? {
            None => Ok(BTreeMap::new()),
            Some(text) => serde_json::from_str(&text).map_err(|_| KeyError::Backend {
                what: WHAT,
                detail: "credd's index item is not valid JSON: remove the 'index' item of service 'credd' and add the keys again".into(),
            }),
        }
    }

    fn save_index(&self, index: &BTreeMap<String, IndexEntry>) -> Result<(), KeyError> {
        if index.is_empty() {
            self.remove(INDEX).map(|_| ())
        } else {
            self.write(INDEX, serde_json::to_string(index).unwrap_or_default())
        }
    }
}

fn item(name: &str) -> String {
    format!("key:{name}")
}

/// `keyring`'s errors into ours. The platform's message is kept (it names
/// no secret: it is about D-Bus or the Keychain, never the item's value).
fn classify(e: keyring::Error) -> KeyError {
    let detail = e.to_string();
    let lower = detail.to_ascii_lowercase();
    match e {
        keyring::Error::NoStorageAccess(_)
            if lower.contains("lock") || lower.contains("prompt") || lower.contains("dismiss") =>
        {
            KeyError::Locked { what: WHAT }
        }
        keyring::Error::NoStorageAccess(_) | keyring::Error::PlatformFailure(_)
            if lower.contains("dbus")
                || lower.contains("d-bus")
                || lower.contains("no such file")
                || lower.contains("connection")
                || lower.contains("serviceunknown")
                || lower.contains("not provided by any") =>
        {
            KeyError::NoKeychain { what: WHAT, detail }
        }
        _ if lower.contains("locked") => KeyError::Locked { what: WHAT },
        _ => KeyError::Backend { what: WHAT, detail },
    }
}

impl KeyStore for Keychain {
    fn backend(&self) -> Backend {
        Backend::Keychain
    }

    fn get(&self, name: &str) -> Result<Option<StoredKey>, KeyError> {
        check_name(name)?;
        match self.read(&item(name))? {
            None => Ok(None),
            Some(mut text) => {
                let parsed = record::parse(&text, WHAT);
                zeroize::Zeroize::zeroize(&mut text);
                Ok(Some(parsed?.stored(name, Backend::Keychain)))
            }
        }
    }

    fn put(&self, name: &str, keys: &LongTermKeys, added: OffsetDateTime) -> Result<(), KeyError> {
        check_name(name)?;
        let rec = Record::new(keys, added);
        let text = serde_json::to_string(&rec).unwrap_or_default();
        self.write(&item(name), text)?;
        let _held = self.lock_index()?;
        let mut index = self.index()?;
        index.insert(
            name.to_string(),
            IndexEntry {
                access_key_id: rec.access_key_id.clone(),
                added: rec.added.clone(),
            },
        );
        self.save_index(&index)
    }

    fn delete(&self, name: &str) -> Result<bool, KeyError> {
        check_name(name)?;
        let removed = self.remove(&item(name))?;
        let _held = self.lock_index()?;
        let mut index = self.index()?;
        let listed = index.remove(name).is_some();
        if listed {
            self.save_index(&index)?;
        }
        Ok(removed || listed)
    }

    fn list(&self) -> Result<Vec<KeyMeta>, KeyError> {
        Ok(self
            .index()?
            .into_iter()
            .map(|(name, e)| {
                Record {
                    access_key_id: e.access_key_id,
                    secret_access_key: String::new(),
                    added: e.added,
                }
                .meta(&name, Backend::Keychain)
            })
            .collect())
    }
}
