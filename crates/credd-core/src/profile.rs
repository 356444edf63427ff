//! The profile graph: turns the key/value sections of `~/.aws/config` and
//! `~/.aws/credentials` (already parsed by the AWS SDK's own parser, in
//! credd-aws) into a [`Plan`] per profile: a base source plus the roles
//! assumed on top of it, or a [`ConfigError`] that says what to fix.
//!
//! The precedence follows the AWS CLI: `role_arn` (with `web_identity_token_file`,
//! `source_profile` or `credential_source`), then SSO keys, then
//! `credential_process`, then static keys.

use crate::credentials::{LongTermKeys, SecretString};
use crate::duration;
pub use crate::login::{LoginRef, LoginSession, SamlSpec};
use crate::sso::SsoSession;
use std::collections::BTreeMap;
use std::fmt;

mod resolve;
pub use resolve::{resolve, resolve_all};

/// The raw sections, as read by the AWS SDK's profile parser. `[sso-session
/// NAME]` sections are kept in the same map under the key
/// `sso-session NAME` ([`sso_session_key`]), which no profile can have:
/// profile names cannot contain a space.
pub type RawProfiles = BTreeMap<String, BTreeMap<String, String>>;

/// The prefix of the [`RawProfiles`] keys that hold sso-session sections.
pub const SSO_SESSION_PREFIX: &str = "sso-session ";

/// The [`RawProfiles`] key of the sso-session called `name`.
pub fn sso_session_key(name: &str) -> String {
    format!("{SSO_SESSION_PREFIX}{name}")
}

/// Whether a [`RawProfiles`] key is a profile (not an sso-session section).
pub fn is_profile_key(key: &str) -> bool {
    !key.starts_with(SSO_SESSION_PREFIX)
}

/// Every sso-session section, resolved (or why it cannot be used).
pub fn sso_sessions(raw: &RawProfiles) -> BTreeMap<String, Result<SsoSession, ConfigErrorKind>> {
    raw.iter()
        .filter_map(|(k, props)| {
            let name = k.strip_prefix(SSO_SESSION_PREFIX)?;
            Some((name.to_string(), session_from(name, props)))
        })
        .collect()
}

fn session_from(
    name: &str,
    props: &BTreeMap<String, String>,
) -> Result<SsoSession, ConfigErrorKind> {
    let get = |k: &str| props.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let start_url = get("sso_start_url")
        .ok_or_else(|| ConfigErrorKind::SsoSessionIncomplete(name.into(), "sso_start_url"))?;
    let region = get("sso_region")
        .ok_or_else(|| ConfigErrorKind::SsoSessionIncomplete(name.into(), "sso_region"))?;
    check_start_url(start_url)?;
    check_region("sso_region", region)?;
    let session_length = match get(crate::sso::KEY_SESSION_LENGTH) {
        None => None,
        Some(raw) => Some(crate::sso::parse_session_length(raw).map_err(|_| {
            ConfigErrorKind::BadValue(
                crate::sso::KEY_SESSION_LENGTH,
                raw.to_string(),
                "expected how long the administrator lets a sign-in last, 1h to 90d, e.g. 8h",
            )
        })?),
    };
    Ok(SsoSession {
        name: Some(name.to_string()),
        start_url: start_url.to_string(),
        region: region.to_string(),
        scopes: props.get("sso_registration_scopes").map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        }),
        session_length,
    })
}

/// A start URL must at least be an http(s) URL: a typo here would otherwise
/// surface as a baffling error in the browser.
fn check_start_url(url: &str) -> Result<(), ConfigErrorKind> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace) => {
            Ok(())
        }
        _ => Err(ConfigErrorKind::BadValue(
            "sso_start_url",
            url.to_string(),
            "expected a URL such as https://d-1234567890.awsapps.com/start",
        )),
    }
}

/// A region must look like one (`eu-west-1`, `us-gov-west-1`); a typo that
/// still looks like one is caught when the endpoint cannot be reached.
fn check_region(key: &'static str, region: &str) -> Result<(), ConfigErrorKind> {
    let parts: Vec<&str> = region.split('-').collect();
    let last = parts[parts.len() - 1];
    let ok = parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && !last.is_empty()
        && last.chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ConfigErrorKind::BadValue(
            key,
            region.to_string(),
            "expected a region such as eu-west-1",
        ))
    }
}

/// credd's own profile keys (the AWS CLI and SDKs ignore unknown keys).
pub const KEY_SESSION_DURATION: &str = "credd_session_duration";
pub const KEY_ROOT_USER: &str = "credd_root_user";
pub const KEY_MFA_PROCESS: &str = "mfa_process";
/// How the daemon asks for this profile's MFA code (`notify`, `dialog`,
/// `terminal`); the daemon's `mfa_prompt` when absent.
pub const KEY_MFA_PROMPT: &str = "credd_mfa_prompt";

/// Identifies one cached credential in the broker. Profiles that share a
/// source share its node (one MFA session per key and serial).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub String);

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaSpec {
    pub serial: String,
    /// A command that prints a code (`mfa_process`), run without a shell.
    pub process: Option<String>,
    /// `credd_mfa_prompt`, as written (the daemon reads it).
    pub prompt: Option<String>,
    /// The profile that set `mfa_serial` (named in "run `credd mfa ...`").
    pub profile: String,
}

/// `sts:GetSessionToken` over long-term keys, with or without MFA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    /// The profile whose keys these are.
    pub keys_profile: String,
    pub keys: LongTermKeys,
    pub mfa: Option<MfaSpec>,
    pub duration_secs: u64,
    pub root: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// Long-term keys, never served as they are: always via GetSessionToken.
    Session(SessionSpec),
    /// `credential_source = Environment`: the daemon's own `AWS_*` variables.
    Environment { profile: String },
    /// `AssumeRoleWithWebIdentity`; the token file is re-read at each refresh.
    WebIdentity {
        profile: String,
        role_arn: String,
        token_file: String,
        session_name: String,
    },
    /// `credential_process`, run without a shell; cached until its `Expiration`.
    Process { profile: String, command: String },
    /// IAM Identity Center role credentials (`GetRoleCredentials`) with the
    /// session's access token.
    Sso(SsoRole),
    /// An `aws login` session (`login_session`): the cached credentials,
    /// refreshed through AWS Sign-In.
    Login(LoginRef),
    /// `AssumeRoleWithSAML` with the assertion `credd_saml_process` prints.
    Saml(SamlSpec),
}

/// An SSO profile: `sso_account_id` + `sso_role_name` on a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoRole {
    pub profile: String,
    pub session: SsoSession,
    pub account_id: String,
    pub role_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleStep {
    pub profile: String,
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: String,
    /// The duration asked for, after any cap.
    pub duration_secs: Option<u64>,
    /// Set when AWS's 1 h cap on chained roles cut the requested duration.
    pub capped_from: Option<u64>,
}

/// How one profile's credentials are made: `base`, then each role in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub profile: String,
    pub region: Option<String>,
    pub base: Base,
    pub roles: Vec<RoleStep>,
}

/// One node of a plan, base first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Base(Base),
    Role(RoleStep),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub id: NodeId,
    pub kind: NodeKind,
    pub parent: Option<NodeId>,
}

impl Base {
    pub fn node_id(&self) -> NodeId {
        match self {
            Base::Session(s) => match &s.mfa {
                Some(m) => NodeId(format!("mfa:{}:{}", s.keys.access_key_id, m.serial)),
                None => NodeId(format!("session:{}", s.keys.access_key_id)),
            },
            Base::Environment { .. } => NodeId("environment".into()),
            Base::WebIdentity { profile, .. } => NodeId(format!("web-identity:{profile}")),
            Base::Process { command, .. } => NodeId(format!("process:{command}")),
            Base::Sso(r) => NodeId(format!(
                "sso:{}:{}:{}",
                r.session.cache_key(),
                r.account_id,
                r.role_name
            )),
            Base::Login(l) => NodeId(format!("login:{}", l.session.cache_key())),
            Base::Saml(s) => NodeId(format!("saml:{}", s.profile)),
        }
    }
    /// A short human description for `credd status` and `credd profiles`.
    pub fn describe(&self) -> String {
        match self {
            Base::Session(s) => match &s.mfa {
                Some(m) => format!(
                    "MFA session ({}) over keys of '{}'",
                    m.serial, s.keys_profile
                ),
                None => format!("session token over keys of '{}'", s.keys_profile),
            },
            Base::Environment { .. } => "environment variables".into(),
            Base::WebIdentity { role_arn, .. } => format!("web identity -> {role_arn}"),
            Base::Process { command, .. } => format!("credential_process `{command}`"),
            Base::Sso(r) => format!(
                "IAM Identity Center {} in {} (session {})",
                r.role_name,
                r.account_id,
                r.session.label()
            ),
            Base::Login(l) => format!("aws login session {}", l.session.arn),
            Base::Saml(s) => format!("SAML -> {} (IdP {})", s.role_arn, s.principal_arn),
        }
    }
    /// Whether credentials from this base are role credentials (so a role
    /// assumed with them is "chained" and capped at 1 h by AWS).
    fn is_role(&self) -> bool {
        match self {
            Base::WebIdentity { .. } | Base::Sso(_) | Base::Saml(_) => true,
            Base::Login(l) => l.session.is_role(),
            Base::Session(_) | Base::Environment { .. } | Base::Process { .. } => false,
        }
    }
}

impl Plan {
    /// The nodes, base first; the last one is what this profile serves.
    pub fn nodes(&self) -> Vec<NodeSpec> {
        let mut out = Vec::with_capacity(1 + self.roles.len());
        let base_id = self.base.node_id();
        out.push(NodeSpec {
            id: base_id.clone(),
            kind: NodeKind::Base(self.base.clone()),
            parent: None,
        });
        let mut parent = base_id;
        for r in &self.roles {
            let id = NodeId(format!("role:{}", r.profile));
            out.push(NodeSpec {
                id: id.clone(),
                kind: NodeKind::Role(r.clone()),
                parent: Some(parent),
            });
            parent = id;
        }
        out
    }
    pub fn serving_node(&self) -> NodeId {
        self.nodes().pop().expect("a plan has a base").id
    }
    /// `dev -> role arn:... -> MFA session (...)`, top first.
    pub fn describe_chain(&self) -> String {
        let mut parts: Vec<String> = self
            .roles
            .iter()
            .rev()
            .map(|r| format!("role {}", r.role_arn))
            .collect();
        parts.push(self.base.describe());
        parts.join(" <- ")
    }
    /// Notes worth showing in `credd status` (duration caps).
    pub fn notes(&self) -> Vec<String> {
        self.roles
            .iter()
            .filter_map(|r| {
                r.capped_from.map(|from| {
                    format!(
                        "profile '{}' asks for {} but AWS caps chained role sessions at 1h",
                        r.profile,
                        duration::fmt_secs(from)
                    )
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile '{profile}': {kind}")]
pub struct ConfigError {
    pub profile: String,
    pub kind: ConfigErrorKind,
}

fn known_sessions(names: &[String]) -> String {
    if names.is_empty() {
        "it has none: add one (`aws configure sso-session`)".into()
    } else {
        format!("it has: {}", names.join(", "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    #[error("no such profile in the AWS config or credentials file")]
    Unknown,
    #[error("source_profile '{0}' does not exist (is it misspelt?)")]
    MissingSource(String),
    #[error("source_profile cycle: {0}")]
    Cycle(String),
    #[error("role_arn is set but none of source_profile, credential_source or web_identity_token_file is: add one of them")]
    RoleWithoutSource,
    #[error("credential_source = {0} is not supported on a laptop: use Environment, or a source_profile")]
    UnsupportedCredentialSource(String),
    #[error("credential_source and source_profile are both set: keep one")]
    BothSources,
    /// The session named, and the ones the config file does have.
    #[error("sso_session = {0}, but there is no [sso-session {0}] section in the config file; {known}", known = known_sessions(.1))]
    MissingSsoSession(String, Vec<String>),
    #[error("[sso-session {0}] has no {1}: add it (see `aws configure sso-session`)")]
    SsoSessionIncomplete(String, &'static str),
    #[error("it sets {0} but not {1}: an SSO profile needs sso_account_id and sso_role_name")]
    SsoIncomplete(&'static str, &'static str),
    #[error("it sets both sso_session and {0}, and they disagree with [sso-session {1}]: keep only sso_session")]
    SsoConflict(&'static str, String),
    #[error("a legacy SSO profile needs both sso_start_url and sso_region (or use sso_session)")]
    SsoLegacyIncomplete,
    #[error("aws_access_key_id is set without aws_secret_access_key (or the other way round)")]
    HalfKeys,
    #[error("it holds an aws_session_token without an expiry; credd cannot tell when it ends: use long-term keys, a role or credential_process instead")]
    StaticSessionToken,
    #[error("web_identity_token_file is set without role_arn")]
    WebIdentityWithoutRole,
    #[error(
        "mfa_serial is only supported on chains that start at long-term keys (base here: {0})"
    )]
    MfaOnUnsupportedBase(String),
    #[error("{key}: {err}")]
    BadDuration {
        key: &'static str,
        err: duration::DurationError,
    },
    #[error("it has no credentials: set aws_access_key_id/aws_secret_access_key, role_arn with source_profile, credential_process or web_identity_token_file")]
    NoCredentials,
    #[error("{0} = '{1}' is not valid: {2}")]
    BadValue(&'static str, String, &'static str),
    /// Its keys are in a key store that could not answer (issue 15; the
    /// message says what to do, see [`crate::keys`]).
    #[error("its keys are in credd's key store, which could not be read: {0}")]
    KeysUnavailable(String),
}

fn err(profile: &str, kind: ConfigErrorKind) -> ConfigError {
    ConfigError {
        profile: profile.to_string(),
        kind,
    }
}

/// Builds raw sections from literals (tests and examples).
pub fn raw_from(sections: &[(&str, &[(&str, &str)])]) -> RawProfiles {
    sections
        .iter()
        .map(|(n, kv)| {
            let props = kv.iter().map(|(k, v)| (k.to_string(), v.to_string()));
            (n.to_string(), props.collect())
        })
        .collect()
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
