//! IAM Identity Center (SSO) sessions: what a session is ([`SsoSession`]),
//! the token and client registration the AWS CLI v2 keeps in
//! `~/.aws/sso/cache` (their file names and exact JSON shapes), when a token
//! must be refreshed, and the [`TokenStore`] boundary through which the daemon
//! reads and writes that cache without doing file I/O itself.
//!
//! The shapes follow the AWS CLI v2 (`awscli/customizations/sso/utils.py`,
//! botocore's `SSOTokenFetcher`): one line of JSON, timestamps written as
//! `YYYY-MM-DDTHH:MM:SSZ` (the Rust SDK rejects `+00:00`), and file names that
//! are the SHA-1 of the session name (or of the start URL for legacy
//! profiles). Fields credd does not know are kept on write-back so that a
//! newer CLI's additions are never lost.
//!
//! Parts: Python-compatible JSON in `sso/pyjson.rs`, the store boundary in
//! `sso/store.rs`, what a client registers as in `sso/registration.rs`, when a
//! session is expected to end in `sso/signin.rs`. When
//! a token is refreshed is `crate::schedule`'s one rule (`Rule::Token`).

mod pyjson;
mod registration;
mod signin;
mod store;

use pyjson::python_json_key;
pub use pyjson::python_style_object;
pub use registration::{
    RegistrationRequest, GRANT_AUTHORIZATION_CODE, GRANT_DEVICE_CODE, GRANT_REFRESH_TOKEN,
    REDIRECT_URI,
};
pub use signin::{
    estimated_end, is_new_sign_in, parse_session_length, session_length, LengthSource, SessionEnd,
    SignIn, DEFAULT_SESSION_LENGTH, KEY_SESSION_LENGTH,
};
pub use store::{FileStamp, Loaded, StoreError, TokenStore};

use crate::credentials::{format_expiration, parse_timestamp, SecretString};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};
use std::fmt;
use time::{Duration, OffsetDateTime};

/// The default `sso_registration_scopes` of an sso-session.
pub const DEFAULT_SCOPE: &str = "sso:account:access";

/// Start refreshing the access token this long before it expires (botocore
/// refreshes with 15 minutes left; the Rust and JS SDKs with 5): the default
/// of `schedule::Policy::token_window`, applied by the one refresh-ahead rule
/// in [`crate::schedule`].
pub const TOKEN_REFRESH_WINDOW: Duration = Duration::minutes(15);

/// Re-register the client when its registration expires within this long
/// (the AWS CLI's margin).
pub const REGISTRATION_RENEW_WINDOW: Duration = Duration::minutes(15);

/// A token is not handed out with less than this left: a role-credential
/// call made with it could fail in flight.
pub const TOKEN_MIN_LIFE: Duration = Duration::seconds(60);

/// One IAM Identity Center session: an `[sso-session NAME]` section, or the
/// `sso_start_url`/`sso_region` of a legacy profile (then `name` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SsoSession {
    pub name: Option<String>,
    pub start_url: String,
    pub region: String,
    /// `sso_registration_scopes`, split on commas; `None` when the key is
    /// absent (the CLI hashes `null` then, not `[]`).
    pub scopes: Option<Vec<String>>,
    /// `credd_session_length`: how long the administrator lets a sign-in
    /// last (see [`SessionLength`]); `None`: `credd.toml`'s `[sso]` default.
    pub session_length: Option<Duration>,
}

impl SsoSession {
    /// The string whose SHA-1 names the token file: the session name, or the
    /// start URL for a legacy profile.
    pub fn cache_key(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.start_url)
    }

    /// How messages name this session: `'work'`, or the start URL.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("'{n}'"),
            None => format!("at {}", self.start_url),
        }
    }

    /// The command that logs this session in, for error messages.
    /// `profile` is used for legacy sessions, which have no name to pass.
    pub fn login_command(&self, profile: &str) -> String {
        match &self.name {
            Some(n) => format!("credd login {n}"),
            None => format!("credd login --profile {profile}"),
        }
    }

    /// `<sha1 hex>.json`: the token's file name in `~/.aws/sso/cache`.
    pub fn token_file_name(&self) -> String {
        format!("{}.json", sha1_hex(self.cache_key().as_bytes()))
    }

    /// The scopes actually registered: the configured ones, or the default.
    pub fn effective_scopes(&self) -> Vec<String> {
        match &self.scopes {
            Some(s) if !s.is_empty() => s.clone(),
            _ => vec![DEFAULT_SCOPE.to_string()],
        }
    }

    /// The client registration's file name, as botocore computes it:
    /// `sha1(json.dumps({"region", "scopes", "session_name", "startUrl",
    /// "tool": "botocore"}, sort_keys=True))`. Only sso-session sessions have
    /// one; legacy profiles register afresh at each login.
    pub fn registration_file_name(&self) -> Option<String> {
        let name = self.name.as_ref()?;
        Some(format!(
            "{}.json",
            sha1_hex(
                python_json_key(&self.region, self.scopes.as_deref(), name, &self.start_url)
                    .as_bytes()
            )
        ))
    }
}

fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// An OIDC client registration (`RegisterClient`'s answer).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRegistration {
    pub client_id: String,
    pub client_secret: SecretString,
    pub expires_at: OffsetDateTime,
    pub scopes: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
}

impl fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRegistration")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("expires_at", &format_expiration(self.expires_at))
            .finish()
    }
}

impl ClientRegistration {
    /// Whether it must be renewed now (expired or within the CLI's margin).
    pub fn needs_renewal(&self, now: OffsetDateTime) -> bool {
        self.expires_at - REGISTRATION_RENEW_WINDOW <= now
    }

    /// The registration cache file's JSON, as the CLI writes it.
    pub fn to_json(&self) -> String {
        let mut m: Vec<(String, Value)> = vec![
            ("clientId".into(), self.client_id.clone().into()),
            (
                "clientSecret".into(),
                self.client_secret.expose().to_string().into(),
            ),
            (
                "expiresAt".into(),
                format_expiration(self.expires_at).into(),
            ),
        ];
        if let Some(s) = &self.scopes {
            m.push(("scopes".into(), s.clone().into()));
        }
        if let Some(g) = &self.grant_types {
            m.push(("grantTypes".into(), g.clone().into()));
        }
        python_style_object(&m)
    }

    pub fn from_json(data: &[u8]) -> Result<Self, CacheParseError> {
        let v: Value =
            serde_json::from_slice(data).map_err(|e| CacheParseError::NotJson(e.to_string()))?;
        let m = v.as_object().ok_or(CacheParseError::NotAnObject)?;
        Ok(Self {
            client_id: req_str(m, "clientId")?.to_string(),
            client_secret: SecretString::new(req_str(m, "clientSecret")?),
            expires_at: req_time(m, "expiresAt")?,
            scopes: str_list(m, "scopes"),
            grant_types: str_list(m, "grantTypes"),
        })
    }
}

/// What a token grant (`CreateToken`) returned.
#[derive(Clone)]
pub struct TokenGrant {
    pub access_token: SecretString,
    pub expires_in_secs: i64,
    pub refresh_token: Option<SecretString>,
}

impl fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGrant")
            .field("access_token", &self.access_token)
            .field("expires_in_secs", &self.expires_in_secs)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

/// A cached SSO access token (`~/.aws/sso/cache/<sha1>.json`).
#[derive(Clone, PartialEq)]
pub struct SsoToken {
    pub start_url: String,
    pub region: String,
    pub access_token: SecretString,
    pub expires_at: OffsetDateTime,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub registration_expires_at: Option<OffsetDateTime>,
    pub refresh_token: Option<SecretString>,
    /// Fields credd does not know, kept as they were.
    pub extra: Map<String, Value>,
}

impl fmt::Debug for SsoToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsoToken")
            .field("start_url", &self.start_url)
            .field("region", &self.region)
            .field("access_token", &self.access_token)
            .field("expires_at", &format_expiration(self.expires_at))
            .field("client_id", &self.client_id)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "** redacted **"),
            )
            .finish_non_exhaustive()
    }
}

/// Why a cache file could not be used. Never quotes the file's contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheParseError {
    #[error("it is not valid JSON ({0})")]
    NotJson(String),
    #[error("it is not a JSON object")]
    NotAnObject,
    #[error("field '{0}' is missing or not a string")]
    Missing(&'static str),
    #[error("field '{0}' is not a timestamp")]
    BadTime(&'static str),
    /// Not read at all: not a regular file, another user's, or too large.
    #[error("{0}")]
    Untrusted(&'static str),
}

impl SsoToken {
    /// A token freshly granted at `now` for `session`.
    pub fn from_grant(
        session: &SsoSession,
        grant: TokenGrant,
        registration: Option<&ClientRegistration>,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            start_url: session.start_url.clone(),
            region: session.region.clone(),
            access_token: grant.access_token,
            expires_at: now + Duration::seconds(grant.expires_in_secs.max(0)),
            client_id: registration.map(|r| r.client_id.clone()),
            client_secret: registration.map(|r| r.client_secret.clone()),
            registration_expires_at: registration.map(|r| r.expires_at),
            refresh_token: grant.refresh_token,
            extra: Map::new(),
        }
    }

    /// Takes a refresh's answer: a new access token and expiry, and the new
    /// refresh token if one came back. When none did, the old one is kept
    /// (botocore drops it, which forces a login an hour later).
    pub fn apply_refresh(&mut self, grant: TokenGrant, now: OffsetDateTime) {
        self.access_token = grant.access_token;
        self.expires_at = now + Duration::seconds(grant.expires_in_secs.max(0));
        if let Some(r) = grant.refresh_token {
            self.refresh_token = Some(r);
        }
    }

    /// The client this token was issued to, when the file records it.
    pub fn registration(&self) -> Option<ClientRegistration> {
        Some(ClientRegistration {
            client_id: self.client_id.clone()?,
            client_secret: self.client_secret.clone()?,
            expires_at: self.registration_expires_at?,
            scopes: None,
            grant_types: None,
        })
    }

    /// Whether it can be used for a call made now.
    pub fn usable(&self, now: OffsetDateTime) -> bool {
        self.expires_at - TOKEN_MIN_LIFE > now
    }

    /// Whether it can be refreshed: a refresh token and a client registration
    /// that has not expired (a refresh token is bound to its client).
    pub fn refreshable(&self, now: OffsetDateTime) -> bool {
        self.refresh_token.is_some() && self.registration().is_some_and(|r| r.expires_at > now)
    }

    /// One line of JSON, in the CLI's key order, with unknown fields kept.
    pub fn to_json(&self) -> String {
        let mut m: Vec<(String, Value)> = vec![
            ("startUrl".into(), self.start_url.clone().into()),
            ("region".into(), self.region.clone().into()),
            (
                "accessToken".into(),
                self.access_token.expose().to_string().into(),
            ),
            (
                "expiresAt".into(),
                format_expiration(self.expires_at).into(),
            ),
        ];
        if let Some(c) = &self.client_id {
            m.push(("clientId".into(), c.clone().into()));
        }
        if let Some(c) = &self.client_secret {
            m.push(("clientSecret".into(), c.expose().to_string().into()));
        }
        if let Some(t) = self.registration_expires_at {
            m.push(("registrationExpiresAt".into(), format_expiration(t).into()));
        }
        if let Some(r) = &self.refresh_token {
            m.push(("refreshToken".into(), r.expose().to_string().into()));
        }
        for (k, v) in &self.extra {
            m.push((k.clone(), v.clone()));
        }
        python_style_object(&m)
    }

    /// Parses a token file. Timestamps may be RFC 3339 with any offset or
    /// the old CLI's `...UTC` form.
    pub fn from_json(data: &[u8]) -> Result<Self, CacheParseError> {
        let v: Value =
            serde_json::from_slice(data).map_err(|e| CacheParseError::NotJson(e.to_string()))?;
        let Value::Object(m) = v else {
            return Err(CacheParseError::NotAnObject);
        };
        let opt_str = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let token = Self {
            start_url: req_str(&m, "startUrl")?.to_string(),
            region: req_str(&m, "region")?.to_string(),
            access_token: SecretString::new(req_str(&m, "accessToken")?),
            expires_at: req_time(&m, "expiresAt")?,
            client_id: opt_str("clientId"),
            client_secret: opt_str("clientSecret").map(SecretString::new),
            registration_expires_at: match m.get("registrationExpiresAt") {
                Some(Value::String(s)) => Some(
                    parse_cache_time(s).ok_or(CacheParseError::BadTime("registrationExpiresAt"))?,
                ),
                _ => None,
            },
            refresh_token: opt_str("refreshToken").map(SecretString::new),
            extra: Map::new(),
        };
        const KNOWN: &[&str] = &[
            "startUrl",
            "region",
            "accessToken",
            "expiresAt",
            "clientId",
            "clientSecret",
            "registrationExpiresAt",
            "refreshToken",
        ];
        let extra = m
            .into_iter()
            .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
            .collect();
        Ok(Self { extra, ..token })
    }
}

fn req_str<'a>(m: &'a Map<String, Value>, k: &'static str) -> Result<&'a str, CacheParseError> {
    m.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(CacheParseError::Missing(k))
}

fn req_time(m: &Map<String, Value>, k: &'static str) -> Result<OffsetDateTime, CacheParseError> {
    parse_cache_time(req_str(m, k)?).ok_or(CacheParseError::BadTime(k))
}

fn str_list(m: &Map<String, Value>, k: &str) -> Option<Vec<String>> {
    m.get(k)?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// RFC 3339, or the `2019-11-14T04:05:45UTC` form older CLIs wrote.
pub fn parse_cache_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    parse_timestamp(s).ok().or_else(|| {
        let base = s.strip_suffix("UTC")?;
        parse_timestamp(&format!("{base}Z")).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::pyjson::py_str;
    use super::*;
    use time::macros::datetime;

    fn work() -> SsoSession {
        SsoSession {
            name: Some("work".into()),
            start_url: "https://d-1234567890.awsapps.com/start".into(),
            region: "eu-west-1".into(),
            scopes: Some(vec!["sso:account:access".into()]),
            session_length: None,
        }
    }

    #[test]
    fn token_file_is_named_by_the_sha1_of_the_session_name() {
        // sha1("work"), as Python's hashlib computes it.
        assert_eq!(
            work().token_file_name(),
            format!("{}.json", sha1_hex(b"work"))
        );
        // The known answer, from Python's `hashlib.sha1(b"work").hexdigest()`.
        assert_eq!(
            work().token_file_name(),
            "e274eeff768c6396088ec6eb091f4bf4d47ab1e0.json"
        );
        let legacy = SsoSession {
            name: None,
            ..work()
        };
        assert_eq!(
            legacy.token_file_name(),
            format!("{}.json", sha1_hex(legacy.start_url.as_bytes()))
        );
        assert_eq!(legacy.registration_file_name(), None);
    }

    #[test]
    fn registration_key_is_pythons_sorted_json() {
        assert_eq!(
            python_json_key(
                "eu-west-1",
                Some(&["sso:account:access".to_string()]),
                "work",
                "https://x/start"
            ),
            r#"{"region": "eu-west-1", "scopes": ["sso:account:access"], "session_name": "work", "startUrl": "https://x/start", "tool": "botocore"}"#
        );
        assert_eq!(
            python_json_key("r", None, "n", "u"),
            r#"{"region": "r", "scopes": null, "session_name": "n", "startUrl": "u", "tool": "botocore"}"#
        );
        assert_eq!(py_str("é\"\\"), r#""\u00e9\"\\""#);
        // The known answer, from Python's `hashlib.sha1(json.dumps(args, sort_keys=True))`.
        assert_eq!(
            work().registration_file_name().unwrap(),
            "4c9ff01d0a03c0017d53f0ef18b6e9c192c0a7d2.json"
        );
    }

    #[test]
    fn a_token_round_trips_in_the_clis_format_and_keeps_unknown_fields() {
        let text = r#"{"startUrl": "https://d-1234567890.awsapps.com/start", "region": "eu-west-1", "accessToken": "at-canary", "expiresAt": "2026-11-23T12:00:00Z", "clientId": "cid", "clientSecret": "cs-canary", "registrationExpiresAt": "2027-02-21T12:00:00Z", "refreshToken": "rt-canary", "futureField": {"a": 1}}"#;
        let t = SsoToken::from_json(text.as_bytes()).unwrap();
        assert_eq!(t.expires_at, datetime!(2026-11-23 12:00 UTC));
        assert_eq!(t.refresh_token.as_ref().unwrap().expose(), "rt-canary");
        assert_eq!(t.to_json(), text);
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("canary"), "{dbg}");
    }

    #[test]
    fn old_and_offset_timestamps_are_read_but_written_with_z() {
        let text = r#"{"startUrl": "u", "region": "r", "accessToken": "a", "expiresAt": "2026-11-23T12:00:00UTC"}"#;
        let t = SsoToken::from_json(text.as_bytes()).unwrap();
        assert_eq!(t.expires_at, datetime!(2026-11-23 12:00 UTC));
        assert!(t
            .to_json()
            .contains(r#""expiresAt": "2026-11-23T12:00:00Z""#));
        let t = SsoToken::from_json(
            br#"{"startUrl": "u", "region": "r", "accessToken": "a", "expiresAt": "2026-11-23T13:00:00+01:00"}"#,
        )
        .unwrap();
        assert_eq!(t.expires_at, datetime!(2026-11-23 12:00 UTC));
    }

    #[test]
    fn corrupt_files_are_errors_that_quote_nothing() {
        let e = SsoToken::from_json(br#"{"startUrl": "u", "region": "r", "accessToken": "sekrit""#)
            .unwrap_err();
        assert!(matches!(e, CacheParseError::NotJson(_)));
        assert!(!e.to_string().contains("sekrit"));
        assert_eq!(
            SsoToken::from_json(br#"{"startUrl": "u", "region": "r"}"#).unwrap_err(),
            CacheParseError::Missing("accessToken")
        );
        assert_eq!(
            SsoToken::from_json(
                br#"{"startUrl": "u", "region": "r", "accessToken": "a", "expiresAt": "soon"}"#
            )
            .unwrap_err(),
            CacheParseError::BadTime("expiresAt")
        );
        assert_eq!(
            SsoToken::from_json(b"[]").unwrap_err(),
            CacheParseError::NotAnObject
        );
    }

    #[test]
    fn refresh_keeps_the_old_refresh_token_when_none_comes_back() {
        let now = datetime!(2026-11-23 12:00 UTC);
        let reg = ClientRegistration {
            client_id: "c".into(),
            client_secret: SecretString::new("s"),
            expires_at: now + Duration::days(90),
            scopes: None,
            grant_types: None,
        };
        let mut t = SsoToken::from_grant(
            &work(),
            TokenGrant {
                access_token: SecretString::new("a1"),
                expires_in_secs: 3600,
                refresh_token: Some(SecretString::new("r1")),
            },
            Some(&reg),
            now,
        );
        assert!(t.refreshable(now) && t.usable(now));
        t.apply_refresh(
            TokenGrant {
                access_token: SecretString::new("a2"),
                expires_in_secs: 600,
                refresh_token: None,
            },
            now + Duration::minutes(45),
        );
        assert_eq!(t.access_token.expose(), "a2");
        assert_eq!(t.refresh_token.as_ref().unwrap().expose(), "r1");
        assert_eq!(t.expires_at, now + Duration::minutes(55));
        assert!(!t.usable(t.expires_at - Duration::seconds(30)));
        assert!(!t.refreshable(now + Duration::days(91)));
    }

    #[test]
    fn registration_round_trips_and_renews_with_margin() {
        let r = ClientRegistration {
            client_id: "c".into(),
            client_secret: SecretString::new("s"),
            expires_at: datetime!(2027-01-01 0:00 UTC),
            scopes: Some(vec!["sso:account:access".into()]),
            grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        };
        let text = r.to_json();
        assert_eq!(
            text,
            r#"{"clientId": "c", "clientSecret": "s", "expiresAt": "2027-01-01T00:00:00Z", "scopes": ["sso:account:access"], "grantTypes": ["authorization_code", "refresh_token"]}"#
        );
        assert_eq!(ClientRegistration::from_json(text.as_bytes()).unwrap(), r);
        assert!(r.needs_renewal(datetime!(2026-12-31 23:50 UTC)));
        assert!(!r.needs_renewal(datetime!(2026-12-31 23:40 UTC)));
    }
}
