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
use std::collections::BTreeMap;
use std::fmt;

/// The raw sections, as read by the AWS SDK's profile parser.
pub type RawProfiles = BTreeMap<String, BTreeMap<String, String>>;

/// credd's own profile keys (the AWS CLI and SDKs ignore unknown keys).
pub const KEY_SESSION_DURATION: &str = "credd_session_duration";
pub const KEY_ROOT_USER: &str = "credd_root_user";
pub const KEY_MFA_PROCESS: &str = "mfa_process";

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
        }
    }
    /// Whether credentials from this base are role credentials (so a role
    /// assumed with them is "chained" and capped at 1 h by AWS).
    fn is_role(&self) -> bool {
        matches!(self, Base::WebIdentity { .. })
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
    #[error("IAM Identity Center (SSO) profiles are not supported by this build of credd yet")]
    SsoNotYetSupported,
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

/// Resolves every profile; each gets a plan or an error.
pub fn resolve_all(raw: &RawProfiles) -> BTreeMap<String, Result<Plan, ConfigError>> {
    raw.keys()
        .map(|name| (name.clone(), resolve(raw, name)))
        .collect()
}

/// Resolves one profile into a plan.
pub fn resolve(raw: &RawProfiles, profile: &str) -> Result<Plan, ConfigError> {
    let props = raw
        .get(profile)
        .ok_or_else(|| err(profile, ConfigErrorKind::Unknown))?;
    // Walk source_profile links to the base, collecting roles (top first).
    let mut visited: Vec<String> = Vec::new();
    let mut roles_top_first: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let mut current = profile.to_string();
    let base = loop {
        if visited.contains(&current) {
            let mut cycle = visited.clone();
            cycle.push(current.clone());
            return Err(err(profile, ConfigErrorKind::Cycle(cycle.join(" -> "))));
        }
        visited.push(current.clone());
        let p = raw.get(&current).ok_or_else(|| {
            err(
                visited
                    .get(visited.len().saturating_sub(2))
                    .map_or(profile, |s| s),
                ConfigErrorKind::MissingSource(current.clone()),
            )
        })?;
        let get = |k: &str| p.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
        if let Some(role_arn) = get("role_arn") {
            check_role_arn(&current, role_arn)?;
            if let Some(token_file) = get("web_identity_token_file") {
                break Base::WebIdentity {
                    profile: current.clone(),
                    role_arn: role_arn.to_string(),
                    token_file: token_file.to_string(),
                    session_name: session_name(&current, get("role_session_name")),
                };
            }
            roles_top_first.push((current.clone(), p.clone()));
            match (get("source_profile"), get("credential_source")) {
                (Some(_), Some(_)) => return Err(err(&current, ConfigErrorKind::BothSources)),
                (Some(src), None) if src == current => {
                    // AWS allows a profile to be its own source when it holds keys.
                    break static_base(&current, p)?.ok_or_else(|| {
                        err(
                            &current,
                            ConfigErrorKind::Cycle(format!("{current} -> {current}")),
                        )
                    })?;
                }
                (Some(src), None) => {
                    if !raw.contains_key(src) {
                        return Err(err(&current, ConfigErrorKind::MissingSource(src.into())));
                    }
                    current = src.to_string();
                    continue;
                }
                (None, Some(cs)) => match cs {
                    "Environment" => {
                        break Base::Environment {
                            profile: current.clone(),
                        }
                    }
                    other => {
                        return Err(err(
                            &current,
                            ConfigErrorKind::UnsupportedCredentialSource(other.into()),
                        ))
                    }
                },
                (None, None) => return Err(err(&current, ConfigErrorKind::RoleWithoutSource)),
            }
        }
        if get("sso_session").is_some()
            || get("sso_account_id").is_some()
            || get("sso_start_url").is_some()
        {
            return Err(err(&current, ConfigErrorKind::SsoNotYetSupported));
        }
        if let Some(cmd) = get("credential_process") {
            break Base::Process {
                profile: current.clone(),
                command: cmd.to_string(),
            };
        }
        if let Some(b) = static_base(&current, p)? {
            break b;
        }
        if get("web_identity_token_file").is_some() {
            return Err(err(&current, ConfigErrorKind::WebIdentityWithoutRole));
        }
        return Err(err(&current, ConfigErrorKind::NoCredentials));
    };

    // Settings that apply to the chain: the nearest profile (requested first) wins.
    let nearest = |key: &str| -> Option<(String, String)> {
        visited.iter().find_map(|name| {
            raw.get(name)
                .and_then(|p| p.get(key))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .map(|v| (name.clone(), v))
        })
    };

    let base = match base {
        Base::Session(mut s) => {
            s.mfa = nearest("mfa_serial").map(|(p, serial)| MfaSpec {
                serial,
                process: nearest(KEY_MFA_PROCESS).map(|(_, c)| c),
                profile: p,
            });
            s.root = nearest(KEY_ROOT_USER).is_some_and(|(_, v)| v.eq_ignore_ascii_case("true"))
                || s.mfa
                    .as_ref()
                    .is_some_and(|m| m.serial.ends_with(":mfa/root-account-mfa-device"));
            if let Some((p, v)) = nearest(KEY_SESSION_DURATION) {
                let secs = duration::parse(&v)
                    .map_err(|e| {
                        err(
                            &p,
                            ConfigErrorKind::BadDuration {
                                key: KEY_SESSION_DURATION,
                                err: e,
                            },
                        )
                    })?
                    .as_secs();
                s.duration_secs = duration::check_session(secs, s.root).map_err(|e| {
                    err(
                        &p,
                        ConfigErrorKind::BadDuration {
                            key: KEY_SESSION_DURATION,
                            err: e,
                        },
                    )
                })?;
            } else if s.root {
                s.duration_secs = duration::ROOT_SESSION_MAX;
            }
            Base::Session(s)
        }
        other => {
            if nearest("mfa_serial").is_some() {
                return Err(err(
                    profile,
                    ConfigErrorKind::MfaOnUnsupportedBase(other.describe()),
                ));
            }
            other
        }
    };

    let mut roles = Vec::with_capacity(roles_top_first.len());
    let mut source_is_role = base.is_role();
    for (name, p) in roles_top_first.into_iter().rev() {
        let get = |k: &str| p.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
        let requested = match get("duration_seconds") {
            Some(v) => {
                let secs = duration::parse(v)
                    .map_err(|e| {
                        err(
                            &name,
                            ConfigErrorKind::BadDuration {
                                key: "duration_seconds",
                                err: e,
                            },
                        )
                    })?
                    .as_secs();
                Some(duration::check_role(secs).map_err(|e| {
                    err(
                        &name,
                        ConfigErrorKind::BadDuration {
                            key: "duration_seconds",
                            err: e,
                        },
                    )
                })?)
            }
            None => None,
        };
        let (duration_secs, capped_from) = match requested {
            Some(r) if source_is_role && r > duration::CHAINED_ROLE_MAX => {
                (Some(duration::CHAINED_ROLE_MAX), Some(r))
            }
            other => (other, None),
        };
        roles.push(RoleStep {
            role_arn: get("role_arn").unwrap_or_default().to_string(),
            external_id: get("external_id").map(str::to_string),
            session_name: session_name(&name, get("role_session_name")),
            duration_secs,
            capped_from,
            profile: name.clone(),
        });
        source_is_role = true;
    }

    Ok(Plan {
        profile: profile.to_string(),
        region: props
            .get("region")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        base,
        roles,
    })
}

fn static_base(name: &str, p: &BTreeMap<String, String>) -> Result<Option<Base>, ConfigError> {
    let get = |k: &str| p.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => {
            if get("aws_session_token").is_some() {
                return Err(err(name, ConfigErrorKind::StaticSessionToken));
            }
            Ok(Some(Base::Session(SessionSpec {
                keys_profile: name.to_string(),
                keys: LongTermKeys {
                    access_key_id: id.to_string(),
                    secret_access_key: SecretString::new(secret),
                },
                mfa: None,
                duration_secs: duration::DEFAULT_SESSION,
                root: false,
            })))
        }
        (None, None) => Ok(None),
        _ => Err(err(name, ConfigErrorKind::HalfKeys)),
    }
}

fn check_role_arn(profile: &str, arn: &str) -> Result<(), ConfigError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() == 6 && parts[0] == "arn" && parts[2] == "iam" && parts[5].starts_with("role/") {
        Ok(())
    } else {
        Err(err(
            profile,
            ConfigErrorKind::BadValue(
                "role_arn",
                arn.to_string(),
                "expected arn:aws:iam::ACCOUNT:role/NAME",
            ),
        ))
    }
}

/// A role session name: the configured one, or `credd-PROFILE` reduced to the
/// characters and length STS accepts (`[\w+=,.@-]{2,64}`).
fn session_name(profile: &str, configured: Option<&str>) -> String {
    if let Some(s) = configured {
        return s.to_string();
    }
    let clean: String = format!("credd-{profile}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::raw_from as raw;

    const ROLE_A: &str = "arn:aws:iam::111111111111:role/A";
    const ROLE_B: &str = "arn:aws:iam::222222222222:role/B";

    fn base_keys() -> (&'static str, &'static [(&'static str, &'static str)]) {
        (
            "base",
            &[
                ("aws_access_key_id", "AKIAEXAMPLE"),
                ("aws_secret_access_key", "secret"),
            ],
        )
    }

    #[test]
    fn static_keys_become_a_session() {
        let r = raw(&[base_keys()]);
        let p = resolve(&r, "base").unwrap();
        match &p.base {
            Base::Session(s) => {
                assert_eq!(s.duration_secs, 43_200);
                assert!(s.mfa.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.serving_node().0, "session:AKIAEXAMPLE");
    }

    #[test]
    fn mfa_session_is_shared_by_profiles_on_the_same_keys() {
        let r = raw(&[
            base_keys(),
            (
                "a",
                &[
                    ("role_arn", ROLE_A),
                    ("source_profile", "base"),
                    ("mfa_serial", "arn:aws:iam::1:mfa/me"),
                ],
            ),
            (
                "b",
                &[
                    ("role_arn", ROLE_B),
                    ("source_profile", "base"),
                    ("mfa_serial", "arn:aws:iam::1:mfa/me"),
                ],
            ),
        ]);
        let a = resolve(&r, "a").unwrap().nodes();
        let b = resolve(&r, "b").unwrap().nodes();
        assert_eq!(a[0].id, b[0].id);
        assert_eq!(a[0].id.0, "mfa:AKIAEXAMPLE:arn:aws:iam::1:mfa/me");
        assert_ne!(a[1].id, b[1].id);
        assert_eq!(a[1].parent.as_ref(), Some(&a[0].id));
    }

    #[test]
    fn chains_of_any_depth_and_the_one_hour_cap() {
        let r = raw(&[
            base_keys(),
            (
                "a",
                &[
                    ("role_arn", ROLE_A),
                    ("source_profile", "base"),
                    ("duration_seconds", "7200"),
                ],
            ),
            (
                "b",
                &[
                    ("role_arn", ROLE_B),
                    ("source_profile", "a"),
                    ("duration_seconds", "7200"),
                    ("region", "eu-west-1"),
                ],
            ),
        ]);
        let p = resolve(&r, "b").unwrap();
        assert_eq!(p.roles.len(), 2);
        assert_eq!(p.roles[0].duration_secs, Some(7200));
        assert_eq!(p.roles[0].capped_from, None);
        assert_eq!(p.roles[1].duration_secs, Some(3600));
        assert_eq!(p.roles[1].capped_from, Some(7200));
        assert_eq!(p.region.as_deref(), Some("eu-west-1"));
        assert!(p.notes()[0].contains("caps chained role sessions at 1h"));
        assert_eq!(p.nodes().len(), 3);
    }

    #[test]
    fn cycle_is_a_clear_error() {
        let r = raw(&[
            ("a", &[("role_arn", ROLE_A), ("source_profile", "b")]),
            ("b", &[("role_arn", ROLE_B), ("source_profile", "a")]),
        ]);
        let e = resolve(&r, "a").unwrap_err();
        assert_eq!(
            e.to_string(),
            "profile 'a': source_profile cycle: a -> b -> a"
        );
    }

    #[test]
    fn self_source_with_keys_is_allowed() {
        let r = raw(&[(
            "me",
            &[
                ("aws_access_key_id", "AKIAX"),
                ("aws_secret_access_key", "s"),
                ("role_arn", ROLE_A),
                ("source_profile", "me"),
            ],
        )]);
        let p = resolve(&r, "me").unwrap();
        assert_eq!(p.roles.len(), 1);
    }

    #[test]
    fn typos_and_unsupported_sources_are_named() {
        let r = raw(&[
            ("typo", &[("role_arn", ROLE_A), ("source_profil", "base")]),
            (
                "missing",
                &[("role_arn", ROLE_A), ("source_profile", "nope")],
            ),
            (
                "imds",
                &[
                    ("role_arn", ROLE_A),
                    ("credential_source", "Ec2InstanceMetadata"),
                ],
            ),
            ("empty", &[("region", "eu-west-1")]),
            ("half", &[("aws_access_key_id", "AKIA")]),
            (
                "badarn",
                &[
                    ("role_arn", "arn:aws:iam::1:user/x"),
                    ("source_profile", "half"),
                ],
            ),
            (
                "sso",
                &[
                    ("sso_session", "work"),
                    ("sso_account_id", "1"),
                    ("sso_role_name", "R"),
                ],
            ),
            (
                "baddur",
                &[
                    ("role_arn", ROLE_A),
                    ("credential_source", "Environment"),
                    ("duration_seconds", "10"),
                ],
            ),
        ]);
        let msg = |p: &str| resolve(&r, p).unwrap_err().to_string();
        assert!(
            msg("typo").contains("none of source_profile"),
            "{}",
            msg("typo")
        );
        assert!(msg("missing").contains("'nope' does not exist"));
        assert!(msg("imds").contains("Ec2InstanceMetadata is not supported"));
        assert!(msg("empty").contains("has no credentials"));
        assert!(msg("half").contains("without aws_secret_access_key"));
        assert!(msg("badarn").contains("role_arn"));
        assert!(msg("sso").contains("SSO"));
        assert!(
            msg("baddur").contains("between 900 and 43200"),
            "{}",
            msg("baddur")
        );
        assert!(resolve(&r, "nope")
            .unwrap_err()
            .to_string()
            .contains("no such profile"));
    }

    #[test]
    fn mfa_durations_follow_aws_rules() {
        let r = raw(&[
            (
                "root",
                &[
                    ("aws_access_key_id", "AKIAR"),
                    ("aws_secret_access_key", "s"),
                    ("mfa_serial", "arn:aws:iam::1:mfa/root-account-mfa-device"),
                ],
            ),
            (
                "long",
                &[
                    ("aws_access_key_id", "AKIAL"),
                    ("aws_secret_access_key", "s"),
                    ("mfa_serial", "arn:aws:iam::1:mfa/me"),
                    ("credd_session_duration", "36h"),
                    ("mfa_process", "ykman oath accounts code -s aws"),
                ],
            ),
            (
                "toolong",
                &[
                    ("aws_access_key_id", "AKIAT"),
                    ("aws_secret_access_key", "s"),
                    ("credd_session_duration", "37h"),
                ],
            ),
        ]);
        match resolve(&r, "root").unwrap().base {
            Base::Session(s) => assert!(s.root && s.duration_secs == 3600),
            b => panic!("{b:?}"),
        }
        match resolve(&r, "long").unwrap().base {
            Base::Session(s) => {
                assert_eq!(s.duration_secs, 129_600);
                assert_eq!(
                    s.mfa.unwrap().process.as_deref(),
                    Some("ykman oath accounts code -s aws")
                );
            }
            b => panic!("{b:?}"),
        }
        assert!(resolve(&r, "toolong")
            .unwrap_err()
            .to_string()
            .contains("129600"));
    }

    #[test]
    fn web_identity_and_process_and_environment() {
        let r = raw(&[
            (
                "wi",
                &[("role_arn", ROLE_A), ("web_identity_token_file", "/t")],
            ),
            (
                "wi2",
                &[
                    ("role_arn", ROLE_B),
                    ("source_profile", "wi"),
                    ("duration_seconds", "7200"),
                ],
            ),
            ("proc", &[("credential_process", "my-tool --json")]),
            (
                "env",
                &[
                    ("role_arn", ROLE_A),
                    ("credential_source", "Environment"),
                    ("external_id", "x"),
                ],
            ),
        ]);
        assert!(matches!(
            resolve(&r, "wi").unwrap().base,
            Base::WebIdentity { .. }
        ));
        let wi2 = resolve(&r, "wi2").unwrap();
        assert_eq!(
            wi2.roles[0].capped_from,
            Some(7200),
            "web identity gives role credentials"
        );
        assert!(matches!(
            resolve(&r, "proc").unwrap().base,
            Base::Process { .. }
        ));
        let env = resolve(&r, "env").unwrap();
        assert_eq!(env.roles[0].external_id.as_deref(), Some("x"));
        assert_eq!(env.roles[0].session_name, "credd-env");
    }
}
