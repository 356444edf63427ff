//! Profile resolution: one profile's sections, and those it points to
//! (`source_profile`, `sso_session`), into a [`Plan`] or the [`ConfigError`]
//! that says what to fix, following the AWS CLI's precedence (see
//! [`super`]). The types it builds are [`super`]'s.

use super::*;

/// Resolves every profile; each gets a plan or an error.
pub fn resolve_all(raw: &RawProfiles) -> BTreeMap<String, Result<Plan, ConfigError>> {
    raw.keys()
        .filter(|k| is_profile_key(k))
        .map(|name| (name.clone(), resolve(raw, name)))
        .collect()
}

/// Resolves one profile into a plan.
pub fn resolve(raw: &RawProfiles, profile: &str) -> Result<Plan, ConfigError> {
    let props = raw
        .get(profile)
        .filter(|_| is_profile_key(profile))
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
            if let Some(principal_arn) = get(crate::login::KEY_SAML_PRINCIPAL_ARN) {
                break Base::Saml(saml_spec(&current, role_arn, principal_arn, p)?);
            }
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
            || get("sso_role_name").is_some()
        {
            break Base::Sso(sso_role(raw, &current, p)?);
        }
        if let Some(arn) = get("login_session") {
            break Base::Login(LoginRef {
                profile: current.clone(),
                session: LoginSession::new(arn),
            });
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
                prompt: nearest(KEY_MFA_PROMPT).map(|(_, c)| c),
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

/// The SSO settings of one profile, checked the way the AWS CLI checks them.
fn sso_role(
    raw: &RawProfiles,
    name: &str,
    p: &BTreeMap<String, String>,
) -> Result<SsoRole, ConfigError> {
    let get = |k: &str| p.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let (account_id, role_name) = match (get("sso_account_id"), get("sso_role_name")) {
        (Some(a), Some(r)) => (a, r),
        (Some(_), None) => {
            return Err(err(
                name,
                ConfigErrorKind::SsoIncomplete("sso_account_id", "sso_role_name"),
            ))
        }
        (None, _) => {
            return Err(err(
                name,
                ConfigErrorKind::SsoIncomplete("sso_role_name", "sso_account_id"),
            ))
        }
    };
    if account_id.len() != 12 || !account_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(err(
            name,
            ConfigErrorKind::BadValue(
                "sso_account_id",
                account_id.to_string(),
                "expected a 12-digit account id",
            ),
        ));
    }
    let session = match get("sso_session") {
        Some(s) => {
            let props = raw.get(&sso_session_key(s)).ok_or_else(|| {
                let known = raw
                    .keys()
                    .filter_map(|k| k.strip_prefix(SSO_SESSION_PREFIX))
                    .map(str::to_string)
                    .collect();
                err(name, ConfigErrorKind::MissingSsoSession(s.into(), known))
            })?;
            let session = session_from(s, props).map_err(|k| err(name, k))?;
            // The CLI refuses a profile whose own start URL or region
            // contradicts its session.
            for (key, value) in [
                ("sso_start_url", &session.start_url),
                ("sso_region", &session.region),
            ] {
                if get(key).is_some_and(|v| v != value) {
                    return Err(err(name, ConfigErrorKind::SsoConflict(key, s.into())));
                }
            }
            session
        }
        None => {
            let (Some(start_url), Some(region)) = (get("sso_start_url"), get("sso_region")) else {
                return Err(err(name, ConfigErrorKind::SsoLegacyIncomplete));
            };
            check_start_url(start_url).map_err(|k| err(name, k))?;
            check_region("sso_region", region).map_err(|k| err(name, k))?;
            SsoSession {
                name: None,
                start_url: start_url.into(),
                region: region.into(),
                scopes: None,
                session_length: None,
            }
        }
    };
    Ok(SsoRole {
        profile: name.to_string(),
        session,
        account_id: account_id.to_string(),
        role_name: role_name.to_string(),
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

/// A SAML profile: `role_arn` with `credd_saml_principal_arn` and
/// `credd_saml_process`; `duration_seconds` follows the role limits, which
/// are AWS's limits for `AssumeRoleWithSAML` too (900 s to 12 h).
fn saml_spec(
    name: &str,
    role_arn: &str,
    principal_arn: &str,
    p: &BTreeMap<String, String>,
) -> Result<SamlSpec, ConfigError> {
    let get = |k: &str| p.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    if !principal_arn.starts_with("arn:") || !principal_arn.contains(":saml-provider/") {
        return Err(err(
            name,
            ConfigErrorKind::BadValue(
                crate::login::KEY_SAML_PRINCIPAL_ARN,
                principal_arn.to_string(),
                "expected the IdP's ARN, arn:aws:iam::<account>:saml-provider/<name>",
            ),
        ));
    }
    let process = get(crate::login::KEY_SAML_PROCESS).ok_or_else(|| {
        err(
            name,
            ConfigErrorKind::BadValue(
                crate::login::KEY_SAML_PROCESS,
                String::new(),
                "a SAML profile needs the command that prints the base64 SAMLResponse",
            ),
        )
    })?;
    let duration_secs = match get("duration_seconds") {
        Some(v) => {
            let bad = |e| {
                err(
                    name,
                    ConfigErrorKind::BadDuration {
                        key: "duration_seconds",
                        err: e,
                    },
                )
            };
            let secs = duration::parse(v).map_err(bad)?.as_secs();
            Some(duration::check_role(secs).map_err(bad)?)
        }
        None => None,
    };
    Ok(SamlSpec {
        profile: name.to_string(),
        role_arn: role_arn.to_string(),
        principal_arn: principal_arn.to_string(),
        process: process.to_string(),
        duration_secs,
    })
}
