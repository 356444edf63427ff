//! The sandbox's knobs: token and credential lifetimes, approval modes, the
//! account directory, MFA secrets, long-term keys, the `aws login` identity
//! and lifetimes, and the JSON patch through
//! which the HTTP control API changes them.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// One AWS account in the directory the portal serves, with the permission
/// sets (role names) the sandbox user is assigned in it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub email: String,
    pub roles: Vec<String>,
}

impl Account {
    /// Builds an account whose email address is derived from its name, which
    /// is all the fixtures need.
    pub fn new(id: &str, name: &str, roles: &[&str]) -> Self {
        Account {
            id: id.to_owned(),
            name: name.to_owned(),
            email: format!("{name}@example.com"),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }
}

/// Everything a test can tune. Every field is public so tests can use struct
/// update syntax over [`SandboxConfig::default`].
#[derive(Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// How long an OIDC access token is good for (capped by the session).
    pub access_token_lifetime: Duration,
    /// The Identity Center user session that bounds refresh-token use.
    pub session_lifetime: Duration,
    /// How long portal role credentials (GetRoleCredentials) last.
    pub role_credentials_lifetime: Duration,
    /// How long a RegisterClient registration (client secret) lasts.
    pub registration_lifetime: Duration,
    /// How long a device code stays redeemable.
    pub device_code_lifetime: Duration,
    /// The polling interval announced by StartDeviceAuthorization.
    pub device_poll_interval: Duration,
    /// Answer SlowDownException when a device code is polled faster than
    /// `device_poll_interval`.
    pub enforce_slow_down: bool,
    /// Return a new refresh token on every refresh and retire the old one;
    /// when false no refresh token is returned and the old one stays valid.
    pub rotate_refresh_tokens: bool,
    /// `/authorize` redirects at once; when false it waits for
    /// `approve_pending`/`deny_pending`.
    pub auto_approve: bool,
    /// Device authorizations are approved as soon as they are created, for
    /// demos without a browser; when false they wait for a GET on the
    /// verification URI or `approve_pending`.
    pub auto_approve_device: bool,
    /// The largest page ListAccounts and ListAccountRoles return.
    pub page_size: usize,
    /// The Identity Center user name, the session name of portal roles.
    pub user_name: String,
    /// The accounts and roles the user is assigned.
    pub accounts: Vec<Account>,
    /// Base32 TOTP secrets by MFA serial number; a serial listed here must
    /// come with a valid, unused code.
    pub totp_secrets: BTreeMap<String, String>,
    /// Long-term access key ids and the IAM user ARN each belongs to.
    pub long_term_keys: BTreeMap<String, String>,
    /// External ids that AssumeRole requires, by role ARN.
    pub external_ids: BTreeMap<String, String>,
    /// Added to every request before it is answered.
    pub latency: Duration,
    /// The console identity an `aws login` signs in as: the `sub` of the
    /// Sign-In `idToken`, and what GetCallerIdentity answers for the
    /// credentials Sign-In issues. Named (like the two below) as the
    /// Sign-In contract and the control API name it.
    pub login_identity: String,
    /// How long credentials from Sign-In's CreateOAuth2Token last (AWS: 900).
    pub login_credential_secs: u64,
    /// How long an `aws login` session lasts from its code exchange; its
    /// refresh tokens stop working after that (AWS: up to 12 hours).
    pub login_session_secs: u64,
}

/// The long-term access key id present in the default configuration.
pub const DEMO_ACCESS_KEY_ID: &str = "AKIASANDBOXDEMO00001";

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            access_token_lifetime: Duration::from_secs(3600),
            session_lifetime: Duration::from_secs(8 * 3600),
            role_credentials_lifetime: Duration::from_secs(3600),
            registration_lifetime: Duration::from_secs(90 * 24 * 3600),
            device_code_lifetime: Duration::from_secs(600),
            device_poll_interval: Duration::from_secs(1),
            enforce_slow_down: false,
            rotate_refresh_tokens: true,
            auto_approve: true,
            auto_approve_device: false,
            page_size: 2,
            user_name: "demo-user".to_owned(),
            accounts: vec![
                Account::new("111122223333", "dev", &["PowerUserAccess", "ReadOnly"]),
                Account::new("444455556666", "prod", &["ReadOnly"]),
            ],
            totp_secrets: BTreeMap::new(),
            long_term_keys: BTreeMap::from([(
                DEMO_ACCESS_KEY_ID.to_owned(),
                "arn:aws:iam::111122223333:user/demo-user".to_owned(),
            )]),
            external_ids: BTreeMap::new(),
            latency: Duration::ZERO,
            login_identity: "arn:aws:iam::111122223333:user/demo-user".to_owned(),
            login_credential_secs: 900,
            login_session_secs: 43200,
        }
    }
}

impl SandboxConfig {
    /// Registers a TOTP secret (base32) for an MFA serial number.
    pub fn with_totp(mut self, serial: &str, secret_base32: &str) -> Self {
        self.totp_secrets
            .insert(serial.to_owned(), secret_base32.to_owned());
        self
    }

    /// Registers a long-term access key id and the IAM user it belongs to.
    pub fn with_long_term_key(mut self, access_key_id: &str, user_arn: &str) -> Self {
        self.long_term_keys
            .insert(access_key_id.to_owned(), user_arn.to_owned());
        self
    }

    /// Replaces the account directory.
    pub fn with_accounts(mut self, accounts: Vec<Account>) -> Self {
        self.accounts = accounts;
        self
    }

    /// Applies a patch received over the HTTP control API.
    pub fn apply(&mut self, patch: ConfigPatch) {
        let secs = Duration::from_secs;
        if let Some(v) = patch.access_token_lifetime_secs {
            self.access_token_lifetime = secs(v);
        }
        if let Some(v) = patch.session_lifetime_secs {
            self.session_lifetime = secs(v);
        }
        if let Some(v) = patch.role_credentials_lifetime_secs {
            self.role_credentials_lifetime = secs(v);
        }
        if let Some(v) = patch.registration_lifetime_secs {
            self.registration_lifetime = secs(v);
        }
        if let Some(v) = patch.device_code_lifetime_secs {
            self.device_code_lifetime = secs(v);
        }
        if let Some(v) = patch.device_poll_interval_secs {
            self.device_poll_interval = secs(v);
        }
        if let Some(v) = patch.enforce_slow_down {
            self.enforce_slow_down = v;
        }
        if let Some(v) = patch.rotate_refresh_tokens {
            self.rotate_refresh_tokens = v;
        }
        if let Some(v) = patch.auto_approve {
            self.auto_approve = v;
        }
        if let Some(v) = patch.auto_approve_device {
            self.auto_approve_device = v;
        }
        if let Some(v) = patch.page_size {
            self.page_size = v;
        }
        if let Some(v) = patch.user_name {
            self.user_name = v;
        }
        if let Some(v) = patch.accounts {
            self.accounts = v;
        }
        if let Some(v) = patch.totp_secrets {
            self.totp_secrets.extend(v);
        }
        if let Some(v) = patch.long_term_keys {
            self.long_term_keys.extend(v);
        }
        if let Some(v) = patch.external_ids {
            self.external_ids.extend(v);
        }
        if let Some(v) = patch.latency_ms {
            self.latency = Duration::from_millis(v);
        }
        if let Some(v) = patch.login_identity {
            self.login_identity = v;
        }
        if let Some(v) = patch.login_credential_secs {
            self.login_credential_secs = v;
        }
        if let Some(v) = patch.login_session_secs {
            self.login_session_secs = v;
        }
    }
}

// Written by hand so that TOTP secrets never reach a log line through a
// `{:?}` of the configuration.
impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("session_lifetime", &self.session_lifetime)
            .field("role_credentials_lifetime", &self.role_credentials_lifetime)
            .field("registration_lifetime", &self.registration_lifetime)
            .field("device_code_lifetime", &self.device_code_lifetime)
            .field("device_poll_interval", &self.device_poll_interval)
            .field("enforce_slow_down", &self.enforce_slow_down)
            .field("rotate_refresh_tokens", &self.rotate_refresh_tokens)
            .field("auto_approve", &self.auto_approve)
            .field("auto_approve_device", &self.auto_approve_device)
            .field("page_size", &self.page_size)
            .field("user_name", &self.user_name)
            .field("accounts", &self.accounts)
            .field(
                "totp_serials",
                &self.totp_secrets.keys().collect::<Vec<_>>(),
            )
            .field("long_term_keys", &self.long_term_keys)
            .field("external_ids", &self.external_ids)
            .field("latency", &self.latency)
            .field("login_identity", &self.login_identity)
            .field("login_credential_secs", &self.login_credential_secs)
            .field("login_session_secs", &self.login_session_secs)
            .finish()
    }
}

/// A partial configuration as JSON, for `POST /_sandbox/config`; lifetimes
/// are in seconds. Unknown fields are rejected so that a typo in a test
/// fails loudly instead of silently changing nothing.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    pub access_token_lifetime_secs: Option<u64>,
    pub session_lifetime_secs: Option<u64>,
    pub role_credentials_lifetime_secs: Option<u64>,
    pub registration_lifetime_secs: Option<u64>,
    pub device_code_lifetime_secs: Option<u64>,
    pub device_poll_interval_secs: Option<u64>,
    pub enforce_slow_down: Option<bool>,
    pub rotate_refresh_tokens: Option<bool>,
    pub auto_approve: Option<bool>,
    pub auto_approve_device: Option<bool>,
    pub page_size: Option<usize>,
    pub user_name: Option<String>,
    pub accounts: Option<Vec<Account>>,
    pub totp_secrets: Option<BTreeMap<String, String>>,
    pub long_term_keys: Option<BTreeMap<String, String>>,
    pub external_ids: Option<BTreeMap<String, String>>,
    pub latency_ms: Option<u64>,
    pub login_identity: Option<String>,
    pub login_credential_secs: Option<u64>,
    pub login_session_secs: Option<u64>,
}
