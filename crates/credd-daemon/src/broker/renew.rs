//! How a broker node's credential is renewed: one attempt under the node's
//! flight lock, its outcome recorded in the node's slot as
//! `credd_core::schedule` says (a refresh time, a backoff, or parked until
//! `credd mfa` or a login), MFA sessions persisted, and the node's loop in
//! the refresh engine that renews it ahead of expiry while requests are
//! served from the cache.

use super::{Broker, Cached, Graph, Node};
use crate::refresh::Driver;
use credd_core::profile::{Base, NodeKind};
use credd_core::schedule::{Park, Rule};
use credd_core::{format_expiration, TemporaryCredentials, UpstreamError, UpstreamErrorKind};
use std::sync::Arc;
use time::OffsetDateTime;
use tracing::Instrument;

impl Broker {
    /// Calls upstream for `node` and records the outcome. The caller holds
    /// the node's flight lock.
    pub(super) async fn fetch_locked(
        &self,
        graph: &Arc<Graph>,
        node: &Arc<Node>,
    ) -> Result<Arc<Cached>, UpstreamError> {
        node.slot.state().refreshing = true;
        let result = self
            .call_upstream(graph, node, None)
            .instrument(tracing::info_span!("fetch", node = %node.spec.id))
            .await;
        self.record(node, result)
    }

    pub(super) fn record(
        &self,
        node: &Arc<Node>,
        result: Result<TemporaryCredentials, UpstreamError>,
    ) -> Result<Arc<Cached>, UpstreamError> {
        let now = self.now();
        let policy = &self.inner.policy;
        let out = {
            let mut st = node.slot.state();
            match result {
                Ok(creds) if creds.expiration() <= now => {
                    let e = UpstreamError::new(
                        UpstreamErrorKind::Source,
                        format!(
                            "the source returned credentials that expired at {}",
                            format_expiration(creds.expiration())
                        ),
                    );
                    // What is cached does not bound this retry: the source
                    // itself is at fault, and is asked again on backoff.
                    st.failed(policy, Rule::Credentials, now, &e, None);
                    Err(e)
                }
                Ok(creds) => {
                    // An MFA session without `mfa_process` is renewed only by
                    // `credd mfa`.
                    let parked_by = matches!(&node.spec.kind,
                        NodeKind::Base(Base::Session(s)) if s.mfa.as_ref().is_some_and(|m| m.process.is_none()))
                    .then_some(Park::MfaCode);
                    st.succeeded(policy.after_success(
                        Rule::Credentials,
                        now,
                        creds.expiration(),
                        rand::random(),
                        parked_by,
                    ));
                    let cached = Cached::new(creds, now);
                    node.served.store(Some(cached.clone()));
                    st.value = Some(cached.clone());
                    tracing::info!(node = %node.spec.id, expires = %format_expiration(cached.creds.expiration()),
                        next_refresh = ?st.deadline().map(format_expiration), "credentials renewed");
                    Ok(cached)
                }
                Err(e) => {
                    let cached_exp = st.value.as_ref().map(|c| c.creds.expiration());
                    st.failed(policy, Rule::Credentials, now, &e, cached_exp);
                    tracing::warn!(node = %node.spec.id, failures = st.failures, error = %e,
                        retry_at = ?st.deadline().map(format_expiration), "upstream call failed");
                    Err(e)
                }
            }
        };
        if let Ok(c) = &out {
            if let NodeKind::Base(Base::Session(s)) = &node.spec.kind {
                if s.mfa.is_some() {
                    if let Err(e) = self.inner.sessions.save(&node.spec.id, &c.creds, c.issued) {
                        tracing::warn!(error = %e, "could not persist the MFA session");
                    }
                }
            }
        }
        self.ensure_refresher(node);
        out
    }

    /// Starts (or wakes) the loop that renews `node` ahead of expiry.
    pub(super) fn ensure_refresher(&self, node: &Arc<Node>) {
        let span = tracing::info_span!("refresher", node = %node.spec.id);
        let driver = NodeDriver {
            broker: self.clone(),
            node: node.clone(),
        };
        node.slot
            .start(&self.inner.tasks, self.inner.clock.clone(), span, driver);
    }
}

/// A node's side of the refresh loop: at its deadline (or a wake), renew it
/// under its flight lock while requests are served from the cache.
struct NodeDriver {
    broker: Broker,
    node: Arc<Node>,
}

#[async_trait::async_trait]
impl Driver for NodeDriver {
    fn deadline(&self, _now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.node.slot.state().deadline()
    }

    async fn tick(&self) {
        let (node, broker) = (&self.node, &self.broker);
        let retired = node.slot.retired();
        let _flight = tokio::select! {
            _ = retired.cancelled() => return,
            g = node.slot.flight() => g,
        };
        let due = node
            .slot
            .state()
            .deadline()
            .is_some_and(|d| d <= broker.now());
        if !due {
            return;
        }
        // A retired node's attempt is abandoned: its credential is no longer
        // served to anyone.
        let graph = broker.graph();
        tokio::select! {
            _ = retired.cancelled() => {}
            _ = broker.fetch_locked(&graph, node) => {}
        }
    }
}
