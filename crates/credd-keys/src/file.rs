//! [`EncryptedFile`]: every key in one passphrase-encrypted file, for
//! machines without a keychain (a server, a container, a bare window
//! manager).
//!
//! Crypto, all RustCrypto: Argon2id (`argon2`) turns the passphrase and a
//! random 16-byte salt into a 256-bit key; XChaCha20-Poly1305
//! (`chacha20poly1305`) seals the JSON of every record under a random
//! 24-byte nonce. Why these: Argon2id is the memory-hard KDF RFC 9106
//! recommends for passwords, and an extended-nonce AEAD makes a random nonce
//! per write safe without a counter; both crates are audited and widely
//! used, and smaller than `age` (whose scrypt recipient would also do) for
//! the one file format needed here. Every write draws a fresh salt and
//! nonce; the KDF cost is stored in the file so it can be raised later.
//!
//! Safety of the file: it is written 0600 in a 0700 directory owned by the
//! user (an existing directory that another user owns or could write to is
//! refused), atomically (credd-core's `atomic_file`), and every change is a
//! read-modify-write under an exclusive `flock` on `NAME.lock` beside it, so
//! two writers never lose each other's key. A wrong passphrase, a truncated
//! or altered file: a clear error, and the file is never rewritten then.

use crate::record::Record;
use crate::{check_name, Backend, KeyError, KeyMeta, KeyStore, StoredKey};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use credd_core::{LongTermKeys, SecretString};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Bound into every ciphertext (associated data), so a blob sealed for
/// another purpose under the same passphrase does not decrypt as a key file.
const AAD: &[u8] = b"credd-keys file v1";
/// The largest key file read (a few hundred keys fit in far less).
const MAX_FILE: u64 = 4 << 20;

/// The file's outer JSON: everything but the ciphertext is public.
#[derive(Serialize, Deserialize, Debug)]
struct Envelope {
    format: String,
    version: u32,
    kdf: Kdf,
    nonce: String,
    ciphertext: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
struct KdfCost {
    m_kib: u32,
    t: u32,
    p: u32,
}

#[derive(Serialize, Deserialize, Debug)]
struct Kdf {
    alg: String,
    #[serde(flatten)]
    cost: KdfCost,
    salt: String,
}

/// The passphrase-encrypted key file at `path`.
pub struct EncryptedFile {
    path: PathBuf,
    passphrase: SecretString,
    cost: KdfCost,
    lock_timeout: Duration,
}

impl std::fmt::Debug for EncryptedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EncryptedFile {
    /// The file at `path`, opened with `passphrase` (nothing is read yet).
    /// Argon2id at the `argon2` crate's defaults (19 MiB, 2 passes).
    pub fn new(path: PathBuf, passphrase: SecretString) -> Self {
        Self {
            path,
            passphrase,
            cost: KdfCost {
                m_kib: Params::DEFAULT_M_COST,
                t: Params::DEFAULT_T_COST,
                p: Params::DEFAULT_P_COST,
            },
            lock_timeout: Duration::from_secs(10),
        }
    }

    /// A cheaper KDF, for tests only (debug builds make Argon2 slow).
    pub fn with_cost(mut self, m_kib: u32, t: u32) -> Self {
        self.cost = KdfCost { m_kib, t, p: 1 };
        self
    }

    pub fn with_lock_timeout(mut self, t: Duration) -> Self {
        self.lock_timeout = t;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn derive(&self, cost: KdfCost, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let params = Params::new(cost.m_kib, cost.t, cost.p, Some(32)).map_err(|e| {
            self.corrupt(format!("its key-derivation settings are not valid ({e})"))
        })?;
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(self.passphrase.expose().as_bytes(), salt, &mut key[..])
            .map_err(|e| self.corrupt(format!("key derivation failed ({e})")))?;
        Ok(key)
    }

    fn corrupt(&self, detail: String) -> KeyError {
        KeyError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    /// The records in the file; empty when there is no file.
    fn load(&self) -> Result<BTreeMap<String, Record>, KeyError> {
        let bytes = match credd_core::regular_file::read(
            &self.path,
            MAX_FILE,
            credd_core::regular_file::Links::Refuse,
        ) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(BTreeMap::new()),
            Err(e) => {
                return Err(KeyError::Unsafe {
                    path: self.path.clone(),
                    detail: e.to_string(),
                })
            }
        };
        let env: Envelope = serde_json::from_slice(&bytes).map_err(|e| {
            self.corrupt(format!(
                "not a whole credd key file (truncated or damaged: {} at line {}, column {})",
                if e.is_eof() {
                    "it ends early"
                } else {
                    "bad JSON"
                },
                e.line(),
                e.column()
            ))
        })?;
        if env.format != "credd-keys" || env.version != 1 || env.kdf.alg != "argon2id" {
            return Err(self.corrupt(format!(
                "unknown format '{}' version {} (kdf {}): written by a newer credd?",
                env.format, env.version, env.kdf.alg
            )));
        }
        let b64 = |s: &str, what: &str| {
            B64.decode(s)
                .map_err(|_| self.corrupt(format!("its {what} is not valid base64")))
        };
        let salt = b64(&env.kdf.salt, "salt")?;
        let nonce = b64(&env.nonce, "nonce")?;
        let sealed = b64(&env.ciphertext, "ciphertext")?;
        if nonce.len() != 24 || salt.len() < 8 {
            return Err(self.corrupt("its nonce or salt has the wrong length".into()));
        }
        let key = self.derive(env.kdf.cost, &salt)?;
        let cipher = XChaCha20Poly1305::new(key.as_ref().into());
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &sealed,
                        aad: AAD,
                    },
                )
                .map_err(|_| KeyError::WrongPassphrase {
                    path: self.path.clone(),
                })?,
        );
        serde_json::from_slice(&plain)
            .map_err(|_| self.corrupt("its decrypted content is not credd's key records".into()))
    }

    fn seal(&self, records: &BTreeMap<String, Record>) -> Result<Vec<u8>, KeyError> {
        let plain = Zeroizing::new(serde_json::to_vec(records).unwrap_or_default());
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let key = self.derive(self.cost, &salt)?;
        let cipher = XChaCha20Poly1305::new(key.as_ref().into());
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: AAD,
                },
            )
            .map_err(|_| self.corrupt("encryption failed".into()))?;
        let env = Envelope {
            format: "credd-keys".into(),
            version: 1,
            kdf: Kdf {
                alg: "argon2id".into(),
                cost: self.cost,
                salt: B64.encode(salt),
            },
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(sealed),
        };
        let mut out = serde_json::to_vec_pretty(&env).unwrap_or_default();
        out.push(b'\n');
        Ok(out)
    }

    /// Holds the exclusive lock on `NAME.lock` until dropped.
    fn lock(&self) -> Result<File, KeyError> {
        let dir = credd_core::atomic_file::parent_dir(&self.path);
        crate::lock::private_dir(dir, "the key file's directory")?;
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        crate::lock::exclusive(Path::new(&lock_path), &self.path, self.lock_timeout)
    }

    /// Read-modify-write under the lock; the file is rewritten only when
    /// it decrypted (a wrong passphrase never overwrites it).
    fn update<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Record>) -> T) -> Result<T, KeyError> {
        let _held = self.lock()?;
        let mut records = self.load()?;
        let out = f(&mut records);
        let bytes = self.seal(&records)?;
        credd_core::atomic_file::write(&self.path, ".credd-keys.tmp-", 0o600, &bytes).map_err(
            |e| KeyError::Io {
                path: e.path,
                source: e.source,
            },
        )?;
        Ok(out)
    }
}

impl KeyStore for EncryptedFile {
    fn backend(&self) -> Backend {
        Backend::File
    }

    fn get(&self, name: &str) -> Result<Option<StoredKey>, KeyError> {
        check_name(name)?;
        Ok(self
            .load()?
            .get(name)
            .map(|r| r.stored(name, Backend::File)))
    }

    fn put(&self, name: &str, keys: &LongTermKeys, added: OffsetDateTime) -> Result<(), KeyError> {
        check_name(name)?;
        self.update(|records| {
            records.insert(name.to_string(), Record::new(keys, added));
        })
    }

    fn delete(&self, name: &str) -> Result<bool, KeyError> {
        check_name(name)?;
        if !self.load()?.contains_key(name) {
            return Ok(false);
        }
        self.update(|records| records.remove(name).is_some())
    }

    fn list(&self) -> Result<Vec<KeyMeta>, KeyError> {
        Ok(self
            .load()?
            .iter()
            .map(|(n, r)| r.meta(n, Backend::File))
            .collect())
    }
}
