//! The `aws login` token cache: [`LoginToken`] (one cache file's JSON) and
//! [`LoginCache`] (the directory, `${AWS_LOGIN_CACHE_DIRECTORY:-~/.aws/login/cache}`,
//! shared with the AWS CLI and every SDK that reads `login_session`
//! profiles).
//!
//! A file is `<hex sha256 of the login_session value>.json`, written as
//! botocore's `JSONFileCache` writes it: Python's `json.dumps` (credd-core's
//! `pyjson`), keys in the CLI's order, fields credd does not know kept.
//! Every refresh rotates the refresh token, and botocore, the CLI and credd
//! all rewrite the same file, so a change is read-modify-write
//! ([`LoginCache::update`]) through [`crate::userfile`]: the directory lock
//! against other credd processes, the file re-read under it (a token another
//! program wrote is what the decision is made on), the new version staged
//! and, if the file changed again meanwhile (botocore takes no lock),
//! theirs kept rather than overwritten. Files are 0600, the directory 0700
//! when credd creates it, and a directory owned by someone else or writable
//! by others is refused (it could swap the file). A file that cannot be
//! parsed is reported by path, never echoed, never rewritten by a read.

use crate::dpop::{DpopKey, DpopKeyError};
use crate::signin::TokenOutput;
use credd_core::credentials::format_expiration;
use credd_core::login::LoginSession;
use credd_core::regular_file::{self, Links};
use credd_core::sso::{parse_cache_time, python_style_object, FileStamp};
use credd_core::{SecretString, TemporaryCredentials};
use serde_json::{Map, Value};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Cache files are a few KiB; anything far larger is not read.
const MAX_CACHE_FILE: u64 = 64 * 1024;

/// What went wrong with a login cache file. Messages name the file and the
/// way out; none carries the file's content.
#[derive(Debug, thiserror::Error)]
pub enum LoginCacheError {
    #[error("{path}: {detail}; run `aws login` (or `credd login`) to sign in again")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{0}")]
    File(#[from] crate::userfile::UserFileError),
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error(
        "cannot find the login cache: HOME is not set and AWS_LOGIN_CACHE_DIRECTORY is not either"
    )]
    NoHome,
}

/// One `aws login` cache file.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginToken {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: SecretString,
    pub account_id: Option<String>,
    pub expires_at: OffsetDateTime,
    /// `aws_sigv4`.
    pub token_type: Option<String>,
    pub client_id: String,
    pub refresh_token: SecretString,
    pub id_token: Option<SecretString>,
    /// The PEM as the file holds it; parsed by [`LoginToken::dpop_key`].
    pub dpop_key: SecretString,
    /// The Sign-In region the session was created in (newer CLIs); it
    /// overrides the profile's region for refreshes.
    pub sign_in_region: Option<String>,
    /// Top-level fields credd does not know, kept across rewrites.
    pub extra: Map<String, Value>,
    /// Fields of `accessToken` credd does not know.
    pub access_extra: Map<String, Value>,
}

impl fmt::Debug for LoginToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginToken")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .field("expires_at", &format_expiration(self.expires_at))
            .field("client_id", &self.client_id)
            .field("sign_in_region", &self.sign_in_region)
            .finish_non_exhaustive()
    }
}

const ACCESS_KNOWN: &[&str] = &[
    "accessKeyId",
    "secretAccessKey",
    "sessionToken",
    "accountId",
    "expiresAt",
];
const KNOWN: &[&str] = &[
    "accessToken",
    "tokenType",
    "clientId",
    "refreshToken",
    "idToken",
    "dpopKey",
    "signInRegion",
];

impl LoginToken {
    /// Parses a cache file. The error says which field is wrong, never what
    /// it holds.
    pub fn from_json(data: &[u8]) -> Result<Self, String> {
        let v: Value =
            serde_json::from_slice(data).map_err(|_| "it is not valid JSON".to_string())?;
        let Value::Object(mut m) = v else {
            return Err("it is not a JSON object".into());
        };
        let Some(Value::Object(mut access)) = m.remove("accessToken") else {
            return Err("it has no accessToken object".into());
        };
        let take = |m: &mut Map<String, Value>, k: &str| -> Result<String, String> {
            match m.remove(k) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s),
                _ => Err(format!("it has no {k}")),
            }
        };
        let opt = |m: &mut Map<String, Value>, k: &str| match m.remove(k) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let expires = take(&mut access, "expiresAt")?;
        let token = Self {
            access_key_id: take(&mut access, "accessKeyId")?,
            secret_access_key: SecretString::new(take(&mut access, "secretAccessKey")?),
            session_token: SecretString::new(take(&mut access, "sessionToken")?),
            account_id: opt(&mut access, "accountId"),
            expires_at: parse_cache_time(&expires)
                .ok_or_else(|| "its accessToken.expiresAt is not a timestamp".to_string())?,
            token_type: opt(&mut m, "tokenType"),
            client_id: take(&mut m, "clientId")?,
            refresh_token: SecretString::new(take(&mut m, "refreshToken")?),
            id_token: opt(&mut m, "idToken").map(SecretString::new),
            dpop_key: SecretString::new(take(&mut m, "dpopKey")?),
            sign_in_region: opt(&mut m, "signInRegion").filter(|r| !r.trim().is_empty()),
            extra: Map::new(),
            access_extra: Map::new(),
        };
        Ok(Self {
            extra: m
                .into_iter()
                .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
                .collect(),
            access_extra: access
                .into_iter()
                .filter(|(k, _)| !ACCESS_KNOWN.contains(&k.as_str()))
                .collect(),
            ..token
        })
    }

    /// The file's text: `json.dumps` of the CLI's dict, in its key order
    /// (`accessToken`, `tokenType`, `clientId`, `refreshToken`, `idToken`,
    /// `dpopKey`), then `signInRegion` and any fields credd does not know.
    pub fn to_json(&self) -> String {
        let s = |v: &str| Value::String(v.to_string());
        // serde_json's map is sorted: the access token object is written in
        // the CLI's order by hand.
        let mut access_pairs: Vec<(String, Value)> = vec![
            ("accessKeyId".into(), s(&self.access_key_id)),
            ("secretAccessKey".into(), s(self.secret_access_key.expose())),
            ("sessionToken".into(), s(self.session_token.expose())),
        ];
        if let Some(a) = &self.account_id {
            access_pairs.push(("accountId".into(), s(a)));
        }
        access_pairs.push(("expiresAt".into(), s(&format_expiration(self.expires_at))));
        for (k, v) in &self.access_extra {
            access_pairs.push((k.clone(), v.clone()));
        }
        let access_text = python_style_object(&access_pairs);
        let mut pairs: Vec<(String, Value)> = vec![("accessToken".into(), Value::Null)];
        if let Some(t) = &self.token_type {
            pairs.push(("tokenType".into(), s(t)));
        }
        pairs.push(("clientId".into(), s(&self.client_id)));
        pairs.push(("refreshToken".into(), s(self.refresh_token.expose())));
        if let Some(t) = &self.id_token {
            pairs.push(("idToken".into(), s(t.expose())));
        }
        pairs.push(("dpopKey".into(), s(self.dpop_key.expose())));
        if let Some(r) = &self.sign_in_region {
            pairs.push(("signInRegion".into(), s(r)));
        }
        for (k, v) in &self.extra {
            pairs.push((k.clone(), v.clone()));
        }
        // The placeholder stands for the hand-ordered access token object.
        let text = python_style_object(&pairs);
        text.replacen(
            "\"accessToken\": null",
            &format!("\"accessToken\": {access_text}"),
            1,
        )
    }

    /// The session's credentials as credd serves them.
    pub fn credentials(&self) -> Result<TemporaryCredentials, String> {
        TemporaryCredentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.clone(),
            self.session_token.clone(),
            self.expires_at,
            self.account_id.clone(),
        )
        .map_err(|_| "its accessToken has no session token".to_string())
    }

    /// The DPoP key the session's refresh token is bound to.
    pub fn dpop_key(&self) -> Result<DpopKey, DpopKeyError> {
        DpopKey::from_pem(self.dpop_key.expose())
    }

    /// A new session's file (`credd login`): as the CLI's
    /// `_exchange_auth_code_for_access_token` builds it, the account taken
    /// from the identity's ARN, the expiry `expiresIn` from `now` to the
    /// second.
    pub fn from_output(
        output: TokenOutput,
        client_id: &str,
        key: &DpopKey,
        now: OffsetDateTime,
    ) -> Self {
        let account_id = output
            .id_token
            .as_ref()
            .and_then(|t| crate::signin::login_session_from_id_token(t.expose()).ok())
            .and_then(|arn| arn.split(':').nth(4).map(str::to_string))
            .filter(|a| !a.is_empty());
        Self {
            access_key_id: output.access_key_id,
            secret_access_key: output.secret_access_key,
            session_token: output.session_token,
            account_id,
            expires_at: expiry(now, output.expires_in),
            token_type: Some(output.token_type),
            client_id: client_id.to_string(),
            refresh_token: output.refresh_token,
            id_token: output.id_token,
            dpop_key: key.to_pem(),
            sign_in_region: None,
            extra: Map::new(),
            access_extra: Map::new(),
        }
    }

    /// The token after a refresh, as botocore's `refresh_credentials`
    /// updates it: new credentials and expiry, the rotated refresh token;
    /// the account, client, id token, key and everything else kept.
    pub fn refreshed(&self, output: TokenOutput, now: OffsetDateTime) -> Self {
        Self {
            access_key_id: output.access_key_id,
            secret_access_key: output.secret_access_key,
            session_token: output.session_token,
            expires_at: expiry(now, output.expires_in),
            refresh_token: output.refresh_token,
            ..self.clone()
        }
    }
}

/// `now + expiresIn`, truncated to the second as `strftime` writes it.
fn expiry(now: OffsetDateTime, expires_in: i64) -> OffsetDateTime {
    let t = now + time::Duration::seconds(expires_in);
    t.replace_nanosecond(0).unwrap_or(t)
}

/// What [`LoginCache::update`] did.
#[derive(Debug)]
pub struct Updated<T> {
    /// What the closure returned.
    pub value: T,
    /// Whether a new version was written. `false` when the closure wrote
    /// nothing, or when another program rewrote the file between the read
    /// and the rename: theirs was kept (see the module header).
    pub written: bool,
}

/// The login cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginCache {
    dir: PathBuf,
}

impl LoginCache {
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `AWS_LOGIN_CACHE_DIRECTORY` (with `~` expanded), else
    /// `$HOME/.aws/login/cache`, as botocore's
    /// `get_login_token_cache_directory`. Home is `HOME`, as for the SSO
    /// cache.
    pub fn from_env() -> Result<Self, LoginCacheError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub(crate) fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LoginCacheError> {
        let home = get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        if let Some(dir) = get("AWS_LOGIN_CACHE_DIRECTORY").filter(|d| !d.is_empty()) {
            let expanded = match (dir.strip_prefix("~/"), &home) {
                (Some(rest), Some(h)) => h.join(rest),
                _ if dir == "~" => home.clone().ok_or(LoginCacheError::NoHome)?,
                _ => PathBuf::from(dir),
            };
            return Ok(Self::at(expanded));
        }
        let home = home.ok_or(LoginCacheError::NoHome)?;
        Ok(Self::at(home.join(".aws").join("login").join("cache")))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, session: &LoginSession) -> PathBuf {
        self.dir.join(format!("{}.json", session.cache_key()))
    }

    /// Reads the session's file: `None` when there is none. A file that is
    /// not this user's small regular file, or not a login token, is an
    /// error naming it.
    pub fn load(&self, session: &LoginSession) -> Result<Option<LoginToken>, LoginCacheError> {
        let path = self.path(session);
        let Some((file, meta)) =
            regular_file::open(&path, Links::Follow).map_err(|e| LoginCacheError::Corrupt {
                path: path.clone(),
                detail: e.to_string(),
            })?
        else {
            return Ok(None);
        };
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(LoginCacheError::Corrupt {
                path,
                detail: "it belongs to another user".into(),
            });
        }
        let bytes = regular_file::read_open(&path, file, &meta, MAX_CACHE_FILE).map_err(|e| {
            LoginCacheError::Corrupt {
                path: path.clone(),
                detail: e.to_string(),
            }
        })?;
        parse(&path, &bytes).map(Some)
    }

    /// Refuses a directory someone else could swap the file in: owned by
    /// another user (root aside), or writable by others without the sticky
    /// bit, or by a group other than the user's own. A group-writable
    /// directory of the user's own group is what `aws login` creates under
    /// a `002` umask (user private groups, Ubuntu's default) and is
    /// accepted. A missing directory is fine: it is created 0700.
    fn check_dir(&self) -> Result<(), LoginCacheError> {
        let meta = match std::fs::metadata(&self.dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(LoginCacheError::Io {
                    path: self.dir.clone(),
                    detail: e.to_string(),
                })
            }
        };
        let me = rustix::process::geteuid().as_raw();
        let mode = meta.mode() & 0o7777;
        let sticky = mode & 0o1000 != 0;
        let why = if meta.uid() != me && meta.uid() != 0 {
            Some(format!(
                "it belongs to uid {}, not to this user (uid {me})",
                meta.uid()
            ))
        } else if !sticky && mode & 0o002 != 0 {
            Some(format!("every user can write to it (mode {mode:o})"))
        } else if !sticky && mode & 0o020 != 0 && meta.gid() != rustix::process::getegid().as_raw()
        {
            Some(format!(
                "the members of group {} can write to it (mode {mode:o})",
                meta.gid()
            ))
        } else {
            None
        };
        match why {
            Some(why) => Err(LoginCacheError::Io {
                path: self.dir.clone(),
                detail: format!(
                    "{why}, so they could swap the login cache files; refusing to use it: make it yours and 0700 (or set AWS_LOGIN_CACHE_DIRECTORY)"
                ),
            }),
            None => Ok(()),
        }
    }

    /// The file's stamp (one `stat`): how the daemon notices a new login
    /// while a session waits for one.
    pub fn stamp(&self, session: &LoginSession) -> Option<FileStamp> {
        std::fs::metadata(self.path(session))
            .ok()
            .map(|m| FileStamp {
                modified_nanos: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
                len: m.len(),
                inode: m.ino(),
            })
    }

    /// Writes the session's file (a new login), replacing any other.
    pub fn save(&self, session: &LoginSession, token: &LoginToken) -> Result<(), LoginCacheError> {
        self.update(session, |_| {
            Ok::<_, LoginCacheError>((Some(token.clone()), ()))
        })
        .map(drop)
    }

    /// Read-modify-write under the directory lock: `f` gets the file as it
    /// is now (re-read under the lock) and returns the version to write
    /// (`None`: leave it) and a value for the caller. Blocking: the lock
    /// may be waited for, and `f` may do a network call (from async code,
    /// run it on a blocking thread).
    pub fn update<T, E>(
        &self,
        session: &LoginSession,
        f: impl FnOnce(Option<LoginToken>) -> Result<(Option<LoginToken>, T), E>,
    ) -> Result<Updated<T>, E>
    where
        E: From<LoginCacheError>,
    {
        let path = self.path(session);
        self.check_dir()?;
        let opts = crate::userfile::Options::private_file();
        let mut f = Some(f);
        let mut value = None;
        let edited = crate::userfile::edit(&path, &opts, |bytes| -> Result<_, EditError<E>> {
            // Without `merge` the edit is made once.
            let Some(f) = f.take() else {
                return Ok(None);
            };
            let current = bytes
                .map(|b| parse(&path, b))
                .transpose()
                .map_err(|e| EditError::Caller(E::from(e)))?;
            let (new, v) = f(current).map_err(EditError::Caller)?;
            value = Some(v);
            Ok(new.map(|t| t.to_json().into_bytes()))
        });
        let written = match edited {
            Ok(e) => e.written,
            // Another program rewrote the file after it was read: theirs
            // stays; what `f` produced is still the caller's.
            Err(EditError::File(crate::userfile::UserFileError::Changed { .. }))
                if value.is_some() =>
            {
                tracing::warn!(path = %path.display(), "the login cache file was rewritten by another program meanwhile; keeping theirs");
                false
            }
            Err(EditError::File(e)) => return Err(E::from(LoginCacheError::File(e))),
            Err(EditError::Caller(e)) => return Err(e),
        };
        Ok(Updated {
            value: value.expect("the closure ran"),
            written,
        })
    }
}

/// An update's failure: the file's (the lock, the write, a change by
/// another program) or the caller's.
enum EditError<E> {
    File(crate::userfile::UserFileError),
    Caller(E),
}

impl<E> From<crate::userfile::UserFileError> for EditError<E> {
    fn from(e: crate::userfile::UserFileError) -> Self {
        Self::File(e)
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<LoginToken, LoginCacheError> {
    LoginToken::from_json(bytes).map_err(|detail| LoginCacheError::Corrupt {
        path: path.to_path_buf(),
        detail,
    })
}

#[cfg(test)]
#[path = "login_cache_tests.rs"]
mod tests;
