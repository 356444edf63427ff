//! How each kind of broker node gets its credentials from upstream: STS
//! session tokens (with an MFA code from the user or `mfa_process`), the
//! environment, `credential_process`, web identity, IAM Identity Center role
//! credentials (with one refresh of a refused access token), and roles
//! assumed from their parent node. Long-term keys are never served.

use super::{Broker, Graph, Node};
use credd_core::profile::{Base, NodeKind};
use credd_core::upstream::{CallContext, SourceCredentials};
use credd_core::{duration, SecretString, TemporaryCredentials, UpstreamError, UpstreamErrorKind};
use std::sync::Arc;

impl Broker {
    pub(super) async fn call_upstream(
        &self,
        graph: &Arc<Graph>,
        node: &Arc<Node>,
        mfa_code: Option<&SecretString>,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        let up = &self.inner.upstream;
        let ctx = &node.ctx;
        match &node.spec.kind {
            NodeKind::Base(Base::Session(s)) => match &s.mfa {
                None => {
                    up.get_session_token(ctx, &s.keys, None, s.duration_secs)
                        .await
                }
                Some(m) => {
                    let code = match (mfa_code, &m.process) {
                        (Some(c), _) => c.clone(),
                        (None, Some(cmd)) => up.mfa_code(cmd).await?,
                        (None, None) => {
                            // Asks the user without waiting for them.
                            self.mfa_needed(node, m);
                            return Err(UpstreamError::new(
                                UpstreamErrorKind::MfaRequired,
                                format!("MFA code needed: run `credd mfa {}`", m.profile),
                            ));
                        }
                    };
                    up.get_session_token(ctx, &s.keys, Some((&m.serial, &code)), s.duration_secs)
                        .await
                }
            },
            NodeKind::Base(Base::Environment { .. }) => {
                let src = up.environment().await?;
                self.temporary(ctx, src).await
            }
            NodeKind::Base(Base::Process { command, .. }) => {
                let src = up.credential_process(ctx, command).await?;
                self.temporary(ctx, src).await
            }
            NodeKind::Base(Base::WebIdentity {
                role_arn,
                token_file,
                session_name,
                ..
            }) => {
                up.assume_role_with_web_identity(ctx, role_arn, session_name, token_file)
                    .await
            }
            NodeKind::Base(Base::Sso(r)) => {
                let sso = &self.inner.sso;
                let token = sso.access_token(&r.session, &r.profile).await?;
                match up
                    .sso_role_credentials(&r.session, &token, &r.account_id, &r.role_name)
                    .await
                {
                    Err(e) if e.kind == UpstreamErrorKind::LoginRequired => {
                        // Revoked (a logout elsewhere) or the session ended:
                        // one refresh decides which.
                        let token = sso
                            .token_rejected(&r.session, &r.profile, &token, &e.message)
                            .await?;
                        up.sso_role_credentials(&r.session, &token, &r.account_id, &r.role_name)
                            .await
                    }
                    other => other,
                }
            }
            NodeKind::Base(Base::Login(l)) => up.login_credentials(ctx, l).await,
            NodeKind::Base(Base::Saml(spec)) => up.assume_role_with_saml(ctx, spec).await,
            NodeKind::Role(step) => {
                let parent_id = node.spec.parent.as_ref().expect("a role has a source");
                let parent = graph.nodes.get(parent_id).expect("graph is closed").clone();
                let source = self.node_get(graph, &parent).await?;
                up.assume_role(ctx, &source.creds, step).await
            }
        }
    }

    /// Long-term keys from a source are never served: they are exchanged
    /// for a session token first (threat-model row 9).
    async fn temporary(
        &self,
        ctx: &CallContext,
        src: SourceCredentials,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        match src {
            SourceCredentials::Temporary(c) => Ok(c),
            SourceCredentials::LongTerm(k) => {
                self.inner
                    .upstream
                    .get_session_token(ctx, &k, None, duration::DEFAULT_SESSION)
                    .await
            }
        }
    }
}
