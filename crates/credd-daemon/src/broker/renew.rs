//! How a broker node's credential is renewed: one attempt under the node's
//! flight lock (`fetch_locked`), its outcome recorded in the node's slot
//! (`record`) as `credd_core::schedule` says (a refresh time, a backoff, or
//! parked until `credd mfa` or a login), MFA sessions persisted, and the
//! node's `Driver` for its loop in the refresh engine, which renews it ahead
//! of expiry while requests are served from the cache.
//!
//! # Refresh ahead
//!
//! After every attempt, `record` asks the `Policy` (rule `Rule::Credentials`;
//! every value configurable, see `docs/configuration.md`, "Every setting")
//! what comes next:
//!
//! - success, credential lifetime of at least 2 x `window` (70 min): renew
//!   35 min before expiry, less up to 5 min of jitter;
//! - success, shorter lifetime: renew at half-life, less up to a tenth of the
//!   lifetime (at most 5 min) of jitter; a 1 h role credential is renewed 25
//!   to 30 min in, so what is served keeps more than 25 min of life, which
//!   covers every SDK's own refresh margin;
//! - success of an MFA session without `mfa_process`: parked until `credd
//!   mfa` (`Park::MfaCode`), as only a person can renew it. It is used until
//!   it ends, while the roles on top of it keep renewing from it
//!   (`broker_tests::roles_on_an_mfa_session_refresh_until_the_session_ends`).
//!   With `mfa_process` the command is run when a code is needed, so the
//!   session is renewed ahead like any other node;
//! - failure: what `schedule::disposition` says of its kind. Transient
//!   (`Unreachable`, `Throttled`, `Source`): back off 5 s, 10 s, 20 s, ...
//!   capped at 5 min. Refused or misconfigured (`Denied`, `Config`): retry at
//!   the cap, 5 min, from the first failure. Either way, never later than
//!   the moment the cached credential stops being servable (its expiry less
//!   `min_serve_life`). An MFA code needed or refused: parked until `credd
//!   mfa`. An SSO login needed (`LoginRequired`): parked until a new token
//!   arrives (`SsoSessions::on_change`, then `Broker::wake_parked`); an
//!   `aws login` session's node polls its cache file meanwhile
//!   (`broker/login.rs`);
//! - `aws login` session nodes follow `Rule::Login` instead: 10 min ahead,
//!   half-life for their 15 min credentials, no jitter (`broker/login.rs`);
//! - a source that returns already-expired credentials is a `Source` failure
//!   (`SourceFailed`), retried on the backoff, which what is cached does not
//!   bound here: the source itself is at fault.
//!
//! A failure never empties the cache: the old credential is served for as
//! long as it has more than `min_serve_life` (60 s) left, and never after.
//! Whether a credential is servable is checked against the clock on every
//! request.
//!
//! # The node's loop
//!
//! `ensure_refresher` starts the node's loop (`Slot::start`, span
//! `refresher`) when its first attempt is recorded or a persisted MFA
//! session is restored into it; later calls only wake it. The loop sleeps
//! until the next refresh (`Clock::sleep_until`), a wake or retirement; then
//! `NodeDriver::tick` takes the flight lock, checks that the refresh is
//! still due, and fetches. Requests keep being served from the cache
//! meanwhile. A parked node has no deadline: it is fetched again only when
//! `Broker::wake_parked` makes it due (a new SSO token), by `credd mfa`, or
//! by a request. A loop keeps its node fresh for as long as the daemon runs,
//! with no idle expiry, until a reload retires the node; a retired node's
//! loop abandons its attempt, as its credential is no longer served to
//! anyone.

use super::{Broker, Cached, Graph, Node};
use crate::refresh::Driver;
use credd_core::profile::{Base, NodeKind};
use credd_core::schedule::Park;
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
        self.login_before_fetch(node);
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
        let rule = super::login::rule_for(&node.spec.kind);
        let login_back = self.login_after_fetch(node, &result);
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
                    st.failed(policy, rule, now, &e, None);
                    Err(e)
                }
                Ok(creds) => {
                    // An MFA session without `mfa_process` is renewed only by
                    // `credd mfa`.
                    let parked_by = matches!(&node.spec.kind,
                        NodeKind::Base(Base::Session(s)) if s.mfa.as_ref().is_some_and(|m| m.process.is_none()))
                    .then_some(Park::MfaCode);
                    st.succeeded(policy.after_success(
                        rule,
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
                    st.failed(policy, rule, now, &e, cached_exp);
                    tracing::warn!(node = %node.spec.id, failures = st.failures, error = %e,
                        retry_at = ?st.deadline().map(format_expiration), "upstream call failed");
                    Err(e)
                }
            }
        };
        let a_persons_session = match &node.spec.kind {
            NodeKind::Base(Base::Login(_)) => true,
            NodeKind::Base(Base::Session(s)) => s.mfa.is_some(),
            _ => false,
        };
        if out.is_ok() && a_persons_session {
            // A session a person keeps alive began or moved: the warning
            // scheduler looks again.
            self.inner.sessions_changed.notify_waiters();
        }
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
        if login_back {
            // Roles chained on the session were parked behind it.
            self.wake_parked(Park::Login);
        }
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

    /// A login node watches its cache file (for a new sign-in while parked).
    fn poll_every(&self) -> Option<time::Duration> {
        super::login::is_login(&self.node).then_some(crate::sso::POLL_INTERVAL)
    }

    async fn tick(&self) {
        let (node, broker) = (&self.node, &self.broker);
        broker.login_poll(node);
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
