//! What a refusal needs from the person ([`Needs`]: an MFA code, a
//! sign-in, an unlocked keychain), decided once, from the failure's kind
//! and the profile's plan, where the broker turns a failure into a
//! [`ServeError`]. The control socket's error envelope and the HTTP 503
//! body carry it as it is decided here, so no client reads it back out of
//! the message's words (issue 14).

use super::{Graph, ServeError};
use crate::protocol::{Needs, NeedsKind};
use credd_core::profile::{Base, ConfigErrorKind};
use credd_core::{UpstreamError, UpstreamErrorKind};

/// What `error`, met serving `profile`, needs from the person, if anything.
pub(super) fn upstream(graph: &Graph, profile: &str, error: &UpstreamError) -> Option<Needs> {
    let base = &graph.plans.get(profile)?.as_ref().ok()?.base;
    match error.kind {
        UpstreamErrorKind::MfaRequired | UpstreamErrorKind::InvalidMfa => {
            // The command names the profile asked for, as the message does;
            // `credd mfa` finds its MFA session from any profile on it.
            let session = match base {
                Base::Session(s) => s.mfa.as_ref()?.profile.clone(),
                _ => return None,
            };
            Some(Needs {
                kind: NeedsKind::Mfa,
                session,
                command: format!("credd mfa {profile}"),
            })
        }
        UpstreamErrorKind::LoginRequired => {
            let (session, command) = match base {
                Base::Sso(r) => (
                    r.session.cache_key().to_string(),
                    r.session.login_command(&r.profile),
                ),
                Base::Login(l) => (
                    l.session.arn.clone(),
                    format!("credd login --profile {}", l.profile),
                ),
                Base::Saml(s) => (
                    s.profile.clone(),
                    format!("credd login --profile {}", s.profile),
                ),
                _ => return None,
            };
            Some(Needs {
                kind: NeedsKind::SignIn,
                session,
                command,
            })
        }
        _ => None,
    }
}

impl ServeError {
    /// What this refusal needs from the person: set by the broker for an
    /// upstream failure ([`upstream`]); for a profile whose keys are in a
    /// key store that could not answer, unlocking it (any `credd keys`
    /// command then makes the daemon look again).
    pub fn needs(&self) -> Option<Needs> {
        match self {
            ServeError::Upstream { needs, .. } => needs.as_deref().cloned(),
            ServeError::Misconfigured { error, .. } => match &error.kind {
                ConfigErrorKind::KeysUnavailable(_) => Some(Needs {
                    kind: NeedsKind::KeychainUnlock,
                    session: error.profile.clone(),
                    command: "credd keys list".into(),
                }),
                _ => None,
            },
            _ => None,
        }
    }
}
