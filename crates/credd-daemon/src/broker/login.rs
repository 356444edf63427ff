//! `aws login` session nodes (`login:<cache key>`, one per session, shared by
//! every profile on it): what the broker does for them beyond any node.
//!
//! - **Refresh ahead**: their outcomes are recorded under
//!   `Rule::Login` (`credd_core::schedule`): renewed 10 min before expiry,
//!   at half-life for Sign-In's 15 min credentials, so the shared cache file
//!   always has more than botocore's 5 min left and no other program
//!   refreshes (and spends the rotating refresh token) while credd holds it.
//! - **Recovery without restart**: a `LoginRequired` failure (no file, the
//!   session ended) parks the node (`Park::Login`). Its loop then polls the
//!   cache file's stamp (`Upstream::login_stamp`, one `stat`) every
//!   `sso::POLL_INTERVAL`; when the file is not the one the failed attempt
//!   saw (a new `aws login` or `credd login`), the node is due at once, and
//!   after its success the nodes parked behind it (roles chained on it) are
//!   woken. Meanwhile requests get the 503 whose message names both
//!   commands, and a request still tries again (a parked node is not
//!   backing off).
//! - **One notification** per ending, through the SSO sessions' notifier,
//!   forgotten on the next success.
//! - **Status rows** (`credd status`): one per session, with the profiles
//!   on it.

use super::{Broker, Node};
use crate::protocol::LoginSessionRow;
use credd_core::profile::{Base, NodeKind};
use credd_core::schedule::{Next, Park, Rule};
use credd_core::sso::FileStamp;
use credd_core::{format_expiration, TemporaryCredentials, UpstreamError, UpstreamErrorKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// What a login node keeps beside its slot.
#[derive(Debug, Default)]
pub(super) struct LoginWatch {
    /// The cache file's stamp when the last attempt started: another one
    /// while the node is parked means someone signed in again.
    seen: Mutex<Option<FileStamp>>,
    /// The user was told the session ended (once per ending).
    notified: AtomicBool,
    /// When the session was signed in, as far as credd knows: its first
    /// success, or the first after an ending (the cache file does not
    /// record the sign-in). The session ends 12 h later.
    signed_in: Mutex<Option<OffsetDateTime>>,
}

impl LoginWatch {
    pub(super) fn for_kind(kind: &NodeKind) -> Option<Self> {
        matches!(kind, NodeKind::Base(Base::Login(_))).then(Self::default)
    }

    /// When the session was signed in (see the field).
    pub(super) fn signed_in(&self) -> Option<OffsetDateTime> {
        *self.signed_in.lock().expect("not poisoned")
    }
}

/// The refresh-ahead rule of a node's credential.
pub(super) fn rule_for(kind: &NodeKind) -> Rule {
    match kind {
        NodeKind::Base(Base::Login(_)) => Rule::Login,
        _ => Rule::Credentials,
    }
}

impl Broker {
    /// Before an attempt on a login node: note which file it will read.
    pub(super) fn login_before_fetch(&self, node: &Node) {
        if let (Some(w), NodeKind::Base(Base::Login(l))) = (&node.login, &node.spec.kind) {
            *w.seen.lock().expect("not poisoned") = self.inner.upstream.login_stamp(l);
        }
    }

    /// After an attempt on a login node: tell the user once that the
    /// session ended; after a success, forget that. Returns whether the
    /// session is back after an ending (the caller then wakes what was
    /// parked behind it, once the success is recorded).
    pub(super) fn login_after_fetch(
        &self,
        node: &Node,
        result: &Result<TemporaryCredentials, UpstreamError>,
    ) -> bool {
        let Some(w) = &node.login else { return false };
        match result {
            Ok(_) => {
                let back = w.notified.swap(false, Ordering::SeqCst);
                let mut signed_in = w.signed_in.lock().expect("not poisoned");
                if back || signed_in.is_none() {
                    *signed_in = Some(self.now());
                }
                drop(signed_in);
                if back {
                    tracing::info!(node = %node.spec.id, "the aws login session is back");
                }
                return back;
            }
            Err(e) if e.kind == UpstreamErrorKind::LoginRequired => {
                if !w.notified.swap(true, Ordering::SeqCst) {
                    tracing::warn!(node = %node.spec.id, error = %e, "the aws login session needs a new sign-in");
                    self.inner
                        .sso
                        .notifier()
                        .notify("credd: AWS sign-in needed", &e.message);
                }
            }
            Err(_) => {}
        }
        false
    }

    /// The loop's poll of a parked login node: when its cache file changed
    /// since the failed attempt, make it due now. Returns whether it did.
    pub(super) fn login_poll(&self, node: &Node) -> bool {
        let (Some(w), NodeKind::Base(Base::Login(l))) = (&node.login, &node.spec.kind) else {
            return false;
        };
        let mut st = node.slot.state();
        if st.parked() != Some(Park::Login) {
            return false;
        }
        let now_stamp = self.inner.upstream.login_stamp(l);
        if now_stamp.is_none() || *w.seen.lock().expect("not poisoned") == now_stamp {
            return false;
        }
        tracing::info!(node = %node.spec.id, "the aws login cache file changed; trying the session again");
        st.next = Some(Next::At(self.now()));
        true
    }

    /// One row per `aws login` session, for `credd status`.
    pub fn login_status(&self) -> Vec<LoginSessionRow> {
        let graph = self.graph();
        let now = self.now();
        let mut rows: Vec<LoginSessionRow> = graph
            .nodes
            .values()
            .filter_map(|n| match &n.spec.kind {
                NodeKind::Base(Base::Login(l)) => Some((n, l)),
                _ => None,
            })
            .map(|(n, l)| {
                let profiles: Vec<String> = graph
                    .plans
                    .iter()
                    .filter_map(|(name, p)| p.as_ref().ok().map(|p| (name, p)))
                    .filter(|(_, p)| p.nodes().iter().any(|s| s.id == n.spec.id))
                    .map(|(name, _)| name.clone())
                    .collect();
                let st = n.slot.state();
                let view = st.view();
                let cached = st.value.as_ref();
                let servable =
                    cached.is_some_and(|c| self.inner.policy.servable(now, c.creds.expiration()));
                let state = if view.refreshing {
                    "refreshing"
                } else if view.parked == Some(Park::Login) {
                    "login required"
                } else if view.failures > 0 {
                    "failing"
                } else if servable {
                    "active"
                } else {
                    "idle"
                };
                let login_command = format!("credd login --profile {}", l.profile);
                LoginSessionRow {
                    session: l.session.arn.clone(),
                    state: state.into(),
                    credentials_expire: cached.map(|c| format_expiration(c.creds.expiration())),
                    expires_in_secs: cached.map(|c| (c.creds.expiration() - now).whole_seconds()),
                    last_refresh: cached.map(|c| format_expiration(c.issued)),
                    next_refresh: view.next_refresh.map(format_expiration),
                    profiles,
                    last_error: view.last_error.as_ref().map(|e| e.message.clone()),
                    login_command,
                }
            })
            .collect();
        rows.sort_by(|a, b| a.session.cmp(&b.session));
        rows
    }
}

/// Whether `node` is a login node (its loop polls the cache file).
pub(super) fn is_login(node: &Arc<Node>) -> bool {
    node.login.is_some()
}

#[cfg(test)]
#[path = "../broker_login_tests.rs"]
mod tests;
