//! What a refusal needs from the person ([`Needs`]: an MFA code, a
//! sign-in, an unlocked keychain), decided once, from the failure's kind
//! and the profile's plan, where the broker turns a failure into a
//! [`ServeError`]. The control socket's error envelope and the HTTP 503
//! body carry it as it is decided here, so no client reads it back out of
//! the message's words (issue 14).

use super::{Graph, ServeError};
use crate::protocol::{Needs, NeedsKind};
use credd_core::profile::{Base, ConfigErrorKind, NodeKind};
use credd_core::{UpstreamError, UpstreamErrorKind};

/// What `error`, met serving `profile`, needs from the person, if anything.
pub(super) fn upstream(graph: &Graph, profile: &str, error: &UpstreamError) -> Option<Needs> {
    let plan_base = &graph.plans.get(profile)?.as_ref().ok()?.base;
    // The shared node's own spec (the one `credd status` rows are made
    // from), so that `session` and `command` are the row's whichever
    // profile on the session asked.
    let base = match graph.nodes.get(&plan_base.node_id()).map(|n| &n.spec.kind) {
        Some(NodeKind::Base(b)) => b,
        _ => plan_base,
    };
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

#[cfg(test)]
mod tests {
    use crate::protocol::NeedsKind;
    use crate::sessions::SessionStore;
    use crate::testing::*;
    use credd_core::schedule::Policy;

    #[tokio::test]
    async fn an_mfa_profile_needs_a_code_for_its_sessions_row_and_other_failures_need_nothing() {
        let h = harness();
        let e = h.broker.get("mfa-b").await.unwrap_err();
        let needs = e.needs().expect("a code is needed");
        assert_eq!(needs.kind, NeedsKind::Mfa);
        assert_eq!(needs.command, "credd mfa mfa-b");
        let rows = h.broker.user_sessions(&[], &[]);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(
            needs.session, rows[0].name,
            "the session as `credd status` names it"
        );
        // An unknown profile, a fetch that works: nothing asked of anyone.
        assert_eq!(h.broker.get("nope").await.unwrap_err().needs(), None);
        assert!(h.broker.get("dev").await.is_ok());
    }

    #[tokio::test]
    async fn a_role_on_an_aws_login_session_with_no_sign_in_needs_the_sessions_sign_in() {
        const ARN: &str = "arn:aws:iam::123456789012:user/dev";
        let profiles = raw(&[
            ("me", &[("login_session", ARN), ("region", "eu-west-1")]),
            (
                "admin",
                &[
                    ("role_arn", "arn:aws:iam::111111111111:role/Admin"),
                    ("source_profile", "me"),
                ],
            ),
        ]);
        let h = harness_with(&profiles, SessionStore::disabled(), Policy::default());
        let needs = h.broker.get("admin").await.unwrap_err().needs().unwrap();
        assert_eq!(needs.kind, NeedsKind::SignIn);
        assert_eq!(needs.session, ARN);
        assert_eq!(needs.command, "credd login --profile me");
        assert_eq!(needs.command, h.broker.login_status()[0].login_command);
    }
}
