//! The [`TokenStore`] boundary: how the daemon reads and writes the SSO
//! cache directory without doing file I/O itself, and how it tells that
//! another program rewrote a file ([`FileStamp`]).

use super::{CacheParseError, ClientRegistration, SsoSession, SsoToken};
use std::fmt;

/// Identifies one version of a cache file, to tell when another program
/// (the AWS CLI, an SDK) has rewritten it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub modified_nanos: i128,
    pub len: u64,
    pub inode: u64,
}

/// What a store read found.
#[derive(Debug)]
pub enum Loaded<T> {
    Missing,
    Found(T, FileStamp),
    /// The file exists but cannot be used; it is left as it is.
    Corrupt(CacheParseError, FileStamp),
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StoreError {
    pub path: String,
    pub message: String,
}

/// The SSO cache directory (`~/.aws/sso/cache`), shared with the AWS CLI.
/// Implemented over files in credd-aws; writes are atomic and 0600.
pub trait TokenStore: Send + Sync + fmt::Debug + 'static {
    fn load_token(&self, session: &SsoSession) -> Result<Loaded<SsoToken>, StoreError>;
    fn save_token(&self, session: &SsoSession, token: &SsoToken) -> Result<FileStamp, StoreError>;
    fn remove_token(&self, session: &SsoSession) -> Result<bool, StoreError>;
    /// The stamp of the token file, if it exists (cheap: one `stat`).
    fn token_stamp(&self, session: &SsoSession) -> Option<FileStamp>;
    fn load_registration(
        &self,
        session: &SsoSession,
    ) -> Result<Loaded<ClientRegistration>, StoreError>;
    fn save_registration(
        &self,
        session: &SsoSession,
        registration: &ClientRegistration,
    ) -> Result<(), StoreError>;
    /// Where the token lives, for messages.
    fn token_path(&self, session: &SsoSession) -> String;
}
