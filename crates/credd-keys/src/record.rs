//! The serialized form of a stored key, shared by both backends: what a
//! keychain item's secret and the encrypted file's plaintext hold. Dates
//! are RFC 3339 strings so that the record reads the same everywhere.

use crate::{Backend, KeyError, StoredKey};
use credd_core::{LongTermKeys, SecretString};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use zeroize::Zeroize;

/// What is known about a stored key besides its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMeta {
    pub name: String,
    pub access_key_id: String,
    /// When the key was added to the store (or created, when IAM said so).
    pub added: OffsetDateTime,
    pub backend: Backend,
}

/// One key as serialized. The secret is zeroed when the record is dropped.
#[derive(Serialize, Deserialize)]
pub(crate) struct Record {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub added: String,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.secret_access_key.zeroize();
    }
}

impl Record {
    pub(crate) fn new(keys: &LongTermKeys, added: OffsetDateTime) -> Self {
        Self {
            access_key_id: keys.access_key_id.clone(),
            secret_access_key: keys.secret_access_key.expose().to_string(),
            added: added.format(&Rfc3339).unwrap_or_default(),
        }
    }

    pub(crate) fn meta(&self, name: &str, backend: Backend) -> KeyMeta {
        KeyMeta {
            name: name.to_string(),
            access_key_id: self.access_key_id.clone(),
            added: OffsetDateTime::parse(&self.added, &Rfc3339)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            backend,
        }
    }

    pub(crate) fn stored(&self, name: &str, backend: Backend) -> StoredKey {
        StoredKey {
            keys: LongTermKeys {
                access_key_id: self.access_key_id.clone(),
                secret_access_key: SecretString::new(self.secret_access_key.clone()),
            },
            meta: self.meta(name, backend),
        }
    }
}

/// Parses a record from a keychain item; a malformed one is named without
/// its content (which may hold a secret).
pub(crate) fn parse(bytes: &str, what: &'static str) -> Result<Record, KeyError> {
    serde_json::from_str(bytes).map_err(|e| KeyError::Backend {
        what,
        detail: format!(
            "a stored item is not a credd key record (line {}, column {}): remove it with `credd keys remove` and add it again",
            e.line(),
            e.column()
        ),
    })
}
