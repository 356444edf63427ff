//! Sessions as first-class citizens of `credd status`: one row shape
//! ([`UserSessionRow`]: kind, name, profiles, ends, needed then, state) for
//! every session a person keeps alive: MFA sessions (from their broker
//! node), IAM Identity Center sessions (from the SSO engine's rows) and
//! `aws login` sessions (from `broker/login.rs`'s rows). The warning
//! scheduler (`warnings.rs`) reads the same rows.
//!
//! Also here: what a successful `credd mfa` does to the profiles riding on
//! the session (their "needs MFA" is cleared and they are fetched at once,
//! so `credd status` says so without waiting for a request), and whether a
//! session is in use (a profile on it served in the last [`IN_USE`]).

use super::{Broker, Graph, Node};
use crate::protocol::{LoginSessionRow, SessionRow, UserSessionRow};
use credd_core::profile::{Base, NodeId, NodeKind};
use credd_core::schedule::{Next, Park};
use credd_core::sso::SessionEnd;
use credd_core::warnings::SessionKind;
use credd_core::{format_expiration, UpstreamErrorKind};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// A session is in use when a profile on it was served this recently; only
/// sessions in use are warned about.
pub const IN_USE: Duration = Duration::hours(2);

/// How long an `aws login` session lasts from its sign-in (AWS Sign-In's
/// limit; the cache file does not record it).
pub const LOGIN_SESSION: Duration = Duration::hours(12);

impl Broker {
    /// Notes that `node` served a request at `now` (one relaxed store).
    pub(super) fn mark_used(node: &Node, now: OffsetDateTime) {
        node.last_used
            .store(now.unix_timestamp(), Ordering::Relaxed);
    }

    /// The profiles whose chain holds `id`, and whether one was served
    /// within [`IN_USE`] of `now`.
    pub(super) fn riders(graph: &Graph, id: &NodeId, now: OffsetDateTime) -> (Vec<String>, bool) {
        let mut in_use = false;
        let profiles = graph
            .plans
            .iter()
            .filter_map(|(name, p)| p.as_ref().ok().map(|p| (name, p)))
            .filter(|(_, p)| p.nodes().iter().any(|s| &s.id == id))
            .map(|(name, _)| {
                if let Some(n) = graph.serving.get(name) {
                    let used = n.last_used.load(Ordering::Relaxed);
                    in_use |= used > 0 && now.unix_timestamp() - used <= IN_USE.whole_seconds();
                }
                name.clone()
            })
            .collect();
        (profiles, in_use)
    }

    /// Every session a person keeps alive, MFA first, then SSO, then
    /// `aws login`, each sorted by name.
    pub fn user_sessions(
        &self,
        sso: &[SessionRow],
        login: &[LoginSessionRow],
    ) -> Vec<UserSessionRow> {
        let graph = self.graph();
        let now = self.now();
        let mut rows = self.mfa_rows(&graph, now);
        let ends = self.sso().ends();
        for s in sso {
            let ids: Vec<&NodeId> = graph
                .nodes
                .values()
                .filter(|n| matches!(&n.spec.kind, NodeKind::Base(Base::Sso(r)) if r.session.cache_key() == s.session))
                .map(|n| &n.spec.id)
                .collect();
            let mut profiles = vec![];
            let mut in_use = false;
            for id in ids {
                let (p, u) = Self::riders(&graph, id, now);
                profiles.extend(p);
                in_use |= u;
            }
            profiles.sort();
            profiles.dedup();
            // A refused refresh is the real end; a token that cannot be
            // refreshed ends with its expiry; one that refreshes lasts as
            // long as the session, whose end the cache does not record: it
            // is estimated from the sign-in (`sso.rs`).
            let token_end = s
                .token_expires
                .as_deref()
                .and_then(|t| credd_core::credentials::parse_timestamp(t).ok());
            let (end, source) = match ends.get(&s.session) {
                Some(SessionEnd::Ended(at)) => (Some(*at), None),
                _ if !s.refreshable => (token_end, None),
                Some(SessionEnd::Estimated {
                    at,
                    signed_in,
                    length,
                    source,
                }) => (
                    Some(*at),
                    Some(format!(
                        "estimated: signed in {} + {} ({})",
                        format_expiration(*signed_in),
                        credd_core::duration::fmt_secs(length.whole_seconds().max(0) as u64),
                        source.as_str()
                    )),
                ),
                None => (None, None),
            };
            let mut r = row(
                SessionKind::Sso,
                s.session.clone(),
                None,
                profiles,
                end,
                now,
                format!("a new sign-in: `{}`", s.login_command),
                s.login_command.clone(),
                s.state.label().into(),
                in_use,
            );
            r.ends_estimated = source.is_some();
            r.ends_source = source;
            rows.push(r);
        }
        for l in login {
            let node = graph.nodes.values().find(|n| {
                matches!(&n.spec.kind, NodeKind::Base(Base::Login(x)) if x.session.arn == l.session)
            });
            let (in_use, end) = match node {
                Some(n) => (
                    Self::riders(&graph, &n.spec.id, now).1,
                    n.login
                        .as_ref()
                        .and_then(|w| w.signed_in())
                        .map(|t| t + LOGIN_SESSION),
                ),
                None => (false, None),
            };
            rows.push(row(
                SessionKind::Login,
                l.session.clone(),
                None,
                l.profiles.clone(),
                end,
                now,
                format!("a new sign-in: `{}`", l.login_command),
                l.login_command.clone(),
                l.state.clone(),
                in_use,
            ));
        }
        rows
    }

    fn mfa_rows(&self, graph: &Graph, now: OffsetDateTime) -> Vec<UserSessionRow> {
        let mut rows: Vec<UserSessionRow> = graph
            .nodes
            .values()
            .filter_map(|n| match &n.spec.kind {
                NodeKind::Base(Base::Session(s)) => s.mfa.as_ref().map(|m| (n, m)),
                _ => None,
            })
            .map(|(n, m)| {
                let (profiles, in_use) = Self::riders(graph, &n.spec.id, now);
                let st = n.slot.state();
                let view = st.view();
                let end = st.value.as_ref().map(|c| c.creds.expiration());
                let servable = end.is_some_and(|e| self.inner.policy.servable(now, e));
                let waits_for_code = view.last_error.as_ref().is_some_and(|e| {
                    matches!(
                        e.kind,
                        UpstreamErrorKind::MfaRequired | UpstreamErrorKind::InvalidMfa
                    )
                });
                let state = if view.refreshing {
                    "refreshing"
                } else if servable {
                    "active"
                } else if end.is_some() {
                    "ended"
                } else if waits_for_code || m.process.is_none() {
                    "needs MFA"
                } else {
                    "idle"
                };
                let command = format!("credd mfa {}", m.profile);
                let needed = match &m.process {
                    Some(_) => "nothing: `mfa_process` supplies the next code".to_string(),
                    None => format!("a new MFA code: `{command}`"),
                };
                row(
                    SessionKind::Mfa,
                    m.profile.clone(),
                    Some(m.serial.clone()),
                    profiles,
                    end,
                    now,
                    needed,
                    command,
                    state.into(),
                    in_use,
                )
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    /// After `credd mfa` started the session at `mfa`: the nodes above it
    /// that failed for want of a code forget that failure and are due now,
    /// so their state is recomputed (and their credential fetched) at once.
    pub(super) fn mfa_session_changed(&self, graph: &Graph, mfa: &Arc<Node>) {
        let now = self.now();
        for plan in graph.plans.values().filter_map(|p| p.as_ref().ok()) {
            let ids = plan.nodes();
            if !ids.iter().any(|s| s.id == mfa.spec.id) {
                continue;
            }
            for s in &ids {
                let Some(n) = graph.nodes.get(&s.id) else {
                    continue;
                };
                if Arc::ptr_eq(n, mfa) {
                    continue;
                }
                let mut st = n.slot.state();
                let wanted_code = st.parked() == Some(Park::MfaCode)
                    || st.last_error.as_ref().is_some_and(|(_, e)| {
                        matches!(
                            e.kind,
                            UpstreamErrorKind::MfaRequired | UpstreamErrorKind::InvalidMfa
                        )
                    });
                if wanted_code {
                    st.restart(Some(Next::At(now)));
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    kind: SessionKind,
    name: String,
    serial: Option<String>,
    profiles: Vec<String>,
    end: Option<OffsetDateTime>,
    now: OffsetDateTime,
    needed_then: String,
    command: String,
    state: String,
    in_use: bool,
) -> UserSessionRow {
    UserSessionRow {
        kind: kind.as_str().into(),
        name,
        serial,
        profiles,
        ends: end.map(format_expiration),
        ends_in_secs: end.map(|e| (e - now).whole_seconds()),
        ends_estimated: false,
        ends_source: None,
        needed_then,
        command,
        state,
        in_use,
    }
}
