//! The broker's profile graph and its upkeep: which nodes exist for the
//! current plans, which profile each serves, and how a new set of plans is
//! installed so that nodes whose source is unchanged keep their cached
//! credential and refresh loop (and retired ones stop), with persisted MFA
//! sessions brought back for new nodes.
//!
//! The AWS files are re-read at start, before most control-socket requests
//! (`ControlState::reload`), and when they change (the `profiles-watch` task
//! in `lib.rs` compares their size, mtime and inode when told of a change,
//! and once a minute; see
//! `docs/configuration.md`, "Files"); each good read ends in `load_plans`. A node
//! whose id and source are unchanged (which profile names it aside) is kept
//! with its cache and its loop; the others are retired (`Slot::retire`
//! cancels the slot's token, a child of the broker's: its loop ends, and
//! abandons the attempt it has under way). A new MFA session node first looks
//! for a persisted session (`sessions.rs`). The Identity Center sessions
//! the new graph's SSO nodes use are handed to `SsoSessions::register`.

use super::{Broker, Cached, Node};
use crate::refresh::Slot;
use arc_swap::ArcSwapOption;
use credd_core::format_expiration;
use credd_core::profile::{Base, ConfigError, NodeId, NodeKind, NodeSpec, Plan};
use credd_core::schedule::{Park, Rule};
use credd_core::upstream::CallContext;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use time::OffsetDateTime;

#[derive(Debug, Default)]
pub(super) struct Graph {
    pub plans: BTreeMap<String, Result<Plan, ConfigError>>,
    pub nodes: HashMap<NodeId, Arc<Node>>,
    pub serving: HashMap<String, Arc<Node>>,
}

impl Broker {
    /// Installs a new set of plans (at start, and each time a CLI command
    /// makes the daemon re-read the AWS files). Nodes whose source is
    /// unchanged keep their cache and task.
    pub fn load_plans(&self, plans: BTreeMap<String, Result<Plan, ConfigError>>) {
        let old = self.graph();
        let now = self.now();
        let mut nodes: HashMap<NodeId, Arc<Node>> = HashMap::new();
        let mut serving = HashMap::new();
        for plan in plans.values().filter_map(|p| p.as_ref().ok()) {
            let specs = plan.nodes();
            for spec in &specs {
                if nodes.contains_key(&spec.id) {
                    continue;
                }
                let node = match old.nodes.get(&spec.id) {
                    Some(n) if same_source(&n.spec, spec) => n.clone(),
                    _ => {
                        let n = Arc::new(Node {
                            ctx: CallContext {
                                profile: node_profile(spec).to_string(),
                                region: plans
                                    .get(node_profile(spec))
                                    .and_then(|p| p.as_ref().ok())
                                    .and_then(|p| p.region.clone()),
                            },
                            spec: spec.clone(),
                            slot: Arc::new(Slot::new(None, self.inner.cancel.clone())),
                            served: ArcSwapOption::empty(),
                            login: super::login::LoginWatch::for_kind(&spec.kind).map(Box::new),
                            last_used: Default::default(),
                        });
                        self.restore(&n, now);
                        n
                    }
                };
                nodes.insert(spec.id.clone(), node);
            }
            let top = specs.last().expect("a plan has nodes");
            serving.insert(plan.profile.clone(), nodes[&top.id].clone());
        }
        for (id, n) in &old.nodes {
            if !nodes.get(id).is_some_and(|m| Arc::ptr_eq(m, n)) {
                n.slot.retire();
            }
        }
        let mut sso: Vec<(credd_core::sso::SsoSession, String)> = Vec::new();
        for n in nodes.values() {
            if let NodeKind::Base(Base::Sso(r)) = &n.spec.kind {
                if !sso.iter().any(|(s, _)| s == &r.session) {
                    sso.push((r.session.clone(), r.profile.clone()));
                }
            }
        }
        self.inner.sso.register(sso);
        self.inner.graph.store(Arc::new(Graph {
            plans,
            nodes,
            serving,
        }));
    }

    /// Brings back a persisted MFA session for a new node.
    fn restore(&self, node: &Arc<Node>, now: OffsetDateTime) {
        let NodeKind::Base(Base::Session(s)) = &node.spec.kind else {
            return;
        };
        let Some(mfa) = &s.mfa else { return };
        if let Some((creds, issued)) = self.inner.sessions.load(&node.spec.id, now) {
            tracing::info!(node = %node.spec.id, expires = %format_expiration(creds.expiration()), "restored MFA session");
            let mut st = node.slot.state();
            // Without `mfa_process` only `credd mfa` renews it.
            let parked_by = mfa.process.is_none().then_some(Park::MfaCode);
            st.next = Some(self.inner.policy.after_success(
                Rule::Credentials,
                issued,
                creds.expiration(),
                rand::random(),
                parked_by,
            ));
            let c = Cached::new(creds, issued);
            node.served.store(Some(c.clone()));
            st.value = Some(c);
            drop(st);
            self.ensure_refresher(node);
        }
    }
}

/// Whether an existing node can be kept for a new spec: same id and the same
/// source. Which profile names an MFA session does not make it another one.
fn same_source(a: &NodeSpec, b: &NodeSpec) -> bool {
    fn norm(s: &NodeSpec) -> NodeSpec {
        let mut s = s.clone();
        match &mut s.kind {
            NodeKind::Base(Base::Session(x)) => {
                x.keys_profile.clear();
                if let Some(m) = &mut x.mfa {
                    m.profile.clear();
                }
            }
            NodeKind::Base(Base::Sso(r)) => r.profile.clear(),
            NodeKind::Base(Base::Login(l)) => l.profile.clear(),
            _ => {}
        }
        s
    }
    norm(a) == norm(b)
}

fn node_profile(spec: &NodeSpec) -> &str {
    match &spec.kind {
        NodeKind::Base(Base::Session(s)) => &s.keys_profile,
        NodeKind::Base(Base::Environment { profile })
        | NodeKind::Base(Base::WebIdentity { profile, .. })
        | NodeKind::Base(Base::Process { profile, .. }) => profile,
        NodeKind::Base(Base::Sso(r)) => &r.profile,
        NodeKind::Base(Base::Login(l)) => &l.profile,
        NodeKind::Base(Base::Saml(s)) => &s.profile,
        NodeKind::Role(r) => &r.profile,
    }
}
