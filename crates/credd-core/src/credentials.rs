//! Credential types. Secrets are wrapped so that `Debug` never prints them and
//! their memory is zeroed on drop.
//!
//! The type system carries threat-model row 9 ("only STS-issued temporary
//! credentials are ever served"): the endpoints serialize only
//! [`TemporaryCredentials`], which cannot exist without a session token and an
//! expiry, and there is no conversion from [`LongTermKeys`] into it. Long-term
//! keys can only be *used* to call STS.

use std::fmt;
use time::{format_description::FormatItem, macros::format_description, OffsetDateTime};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A string that is zeroed on drop and never printed by `Debug` or `Display`.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself. Call only where the value must leave the process
    /// (an HTTP response body, a signed request, a 0600 file).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("** redacted **")
    }
}

/// Long-term IAM user keys (`AKIA...`). Never served: only used to call STS.
#[derive(Clone, PartialEq, Eq)]
pub struct LongTermKeys {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}

impl fmt::Debug for LongTermKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LongTermKeys")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .finish()
    }
}

/// Temporary credentials issued by STS (or by a `credential_process` that
/// returned a session token). The only kind of credential credd serves.
#[derive(Clone, PartialEq, Eq)]
pub struct TemporaryCredentials {
    access_key_id: String,
    secret_access_key: SecretString,
    session_token: SecretString,
    expiration: OffsetDateTime,
    account_id: Option<String>,
}

impl TemporaryCredentials {
    /// Builds temporary credentials; refuses an empty session token, since
    /// credentials without one are long-term keys and must not be served.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: SecretString,
        session_token: SecretString,
        expiration: OffsetDateTime,
        account_id: Option<String>,
    ) -> Result<Self, NotTemporary> {
        if session_token.is_empty() {
            return Err(NotTemporary);
        }
        Ok(Self {
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token,
            expiration,
            account_id,
        })
    }
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
    pub fn secret_access_key(&self) -> &SecretString {
        &self.secret_access_key
    }
    pub fn session_token(&self) -> &SecretString {
        &self.session_token
    }
    pub fn expiration(&self) -> OffsetDateTime {
        self.expiration
    }
    pub fn account_id(&self) -> Option<&str> {
        self.account_id.as_deref()
    }
    /// Seconds of life left at `now` (negative once expired).
    pub fn remaining(&self, now: OffsetDateTime) -> time::Duration {
        self.expiration - now
    }

    /// The body of the container-credentials endpoint (see
    /// `sdk-client-contract.md`): exactly the fields SDKs read, `Expiration`
    /// without fraction or offset.
    pub fn container_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key.expose(),
            "Token": self.session_token.expose(),
            "Expiration": format_expiration(self.expiration),
        });
        if let Some(a) = &self.account_id {
            v["AccountId"] = serde_json::Value::String(a.clone());
        }
        v
    }

    /// The Version 1 `credential_process` document.
    pub fn process_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key.expose(),
            "SessionToken": self.session_token.expose(),
            "Expiration": format_expiration(self.expiration),
        });
        if let Some(a) = &self.account_id {
            v["AccountId"] = serde_json::Value::String(a.clone());
        }
        v
    }
}

impl fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .field("expiration", &format_expiration(self.expiration))
            .field("account_id", &self.account_id)
            .finish()
    }
}

/// Returned when something without a session token is offered as temporary.
#[derive(Debug, thiserror::Error)]
#[error("credentials without a session token are long-term keys and are never served")]
pub struct NotTemporary;

const EXPIRATION_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// `YYYY-MM-DDTHH:MM:SSZ` in UTC: the one timestamp shape every SDK accepts.
pub fn format_expiration(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(EXPIRATION_FORMAT)
        .expect("a UTC date always formats")
}

/// Parses an RFC 3339 timestamp (any offset, optional fraction).
pub fn parse_timestamp(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn creds() -> TemporaryCredentials {
        TemporaryCredentials::new(
            "ASIAEXAMPLE",
            SecretString::new("canary-secret"),
            SecretString::new("canary-token"),
            datetime!(2026-11-23 10:00:00.5 +01:00),
            Some("123456789012".into()),
        )
        .unwrap()
    }

    #[test]
    fn debug_never_prints_secrets() {
        let s = format!("{:?} {:#?}", creds(), creds());
        assert!(!s.contains("canary"), "{s}");
        assert!(s.contains("ASIAEXAMPLE"));
        let k = LongTermKeys {
            access_key_id: "AKIA".into(),
            secret_access_key: SecretString::new("canary-long"),
        };
        assert!(!format!("{k:?}").contains("canary"));
    }

    #[test]
    fn expiration_is_utc_without_fraction() {
        assert_eq!(
            creds().container_json()["Expiration"],
            "2026-11-23T09:00:00Z"
        );
        assert_eq!(creds().process_json()["Version"], 1);
        assert_eq!(creds().container_json()["AccountId"], "123456789012");
        assert_eq!(creds().container_json()["Token"], "canary-token");
    }

    #[test]
    fn empty_session_token_is_not_temporary() {
        let r = TemporaryCredentials::new(
            "AKIA",
            SecretString::new("s"),
            SecretString::new(""),
            datetime!(2026-11-23 10:00 UTC),
            None,
        );
        assert!(r.is_err());
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let t = parse_timestamp("2026-11-23T10:00:00.123+02:00").unwrap();
        assert_eq!(format_expiration(t), "2026-11-23T08:00:00Z");
    }
}
