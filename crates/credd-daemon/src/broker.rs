//! The broker: one cached credential per node of the profile graph, filled
//! by exactly one upstream call at a time (single flight) and renewed ahead
//! of expiry by the node's loop in the refresh engine. Its job: one upstream
//! call per credential per renewal, never a request waiting on STS while
//! something servable is cached, never an expired credential served, and
//! never a request waiting on an MFA prompt.
//!
//! # Nodes
//!
//! `Plan::nodes()` (credd-core) turns a plan into a list of node specs, base
//! first, each role pointing at its parent. A node is identified by a
//! `NodeId` that says what the credential *is*, not which profile asked for
//! it:
//!
//! | base or step | `NodeId` |
//! |---|---|
//! | `GetSessionToken` over static keys | `session:<access key id>` |
//! | MFA session over static keys | `mfa:<access key id>:<mfa serial>` |
//! | `credential_source = Environment` | `environment` |
//! | web identity | `web-identity:<profile>` |
//! | `credential_process` | `process:<command>` |
//! | IAM Identity Center role credentials | `sso:<session>:<account id>:<role name>` |
//! | a role | `role:<profile>` |
//!
//! (`<session>`: the sso-session's name, or the start URL of a legacy
//! profile.) `load_plans` (`broker/graph.rs`) builds one graph from every
//! plan, deduplicating nodes by id. So every profile whose chain starts at
//! the same keys and `mfa_serial` shares one MFA session node (one code, one
//! `GetSessionToken`), a role profile used as `source_profile` by several
//! others is one node, a `credential_process` command runs once for all
//! profiles that name it, and profiles with the same SSO session, account
//! and role share one node. Each profile maps to its top node (`serving`).
//! Which nodes a reload keeps is in `broker/graph.rs`.
//!
//! A node is a `Slot` of the one refresh engine (`refresh.rs`): under a
//! `std::sync::Mutex`, its cached credential (an `Arc<Cached>` with the
//! container response body pre-rendered, so the hot path clones bytes), a
//! count of finished attempts, the failure count, the last error and what
//! comes next (a time, or parked until an event); plus the flight lock (a
//! `tokio::sync::Mutex<()>`), the `Notify` that wakes its loop and the
//! cancellation token that retires it. Beside the slot, `served` holds a
//! lock-free copy of the cached credential for the request path.
//!
//! # Single flight
//!
//! A request first takes the fast path (`lookup`, `cached`): if the top
//! node's credential has more than `min_serve_life` left, it is returned at
//! once, read from `served` without taking the node's mutex. Otherwise
//! (`node_get`):
//!
//! 1. if the node is backing off after a failure (its next attempt is still
//!    in the future), return the last error at once: requests never call
//!    upstream during a backoff (a node parked on a code or a login is not
//!    backing off: a request tries it again); otherwise note the node's
//!    attempt counter;
//! 2. wait for the node's flight lock;
//! 3. look again: if a servable credential arrived while waiting, return it;
//!    if the attempt counter moved, the attempt this request queued behind
//!    has just failed: return its error instead of calling upstream again;
//! 4. otherwise call upstream while holding the lock (`fetch_locked`,
//!    `broker/renew.rs`). A role node first gets its parent's credential
//!    through the same `node_get`, so a cold chain makes one call per node.
//!
//! However many requests arrive for a cold profile, exactly one upstream
//! call is made per node, and a failure is shared by everyone who waited for
//! it (`broker_tests::single_flight_one_upstream_call_for_a_thousand_cold_requests`,
//! `a_failed_attempt_is_shared_by_its_waiters`;
//! `e2e::a_thousand_concurrent_cold_requests_make_one_assume_role` counts at
//! moto). The node's loop takes the same lock, so a request that finds
//! nothing servable during a renewal waits for that renewal rather than
//! starting another.
//!
//! The HTTP endpoints do not wait on that call for long: `get_within` runs
//! the request's `get` in a tracked task (`request-fetch`) and waits at most
//! `limits.cold_wait` (1 s) for it. Past that the request is answered
//! `503 FetchInProgress` with `Retry-After` while the task goes on (the
//! flight lock keeps it to one upstream call), so an SDK's own retry, 1-2 s
//! later, finds the credential cached. When the daemon stops, the task gets
//! the same grace as requests (`server::STOP_GRACE`) and is then abandoned;
//! a request still waiting on it is answered `503 DaemonStopping`. The
//! control socket (`credd credential-process` and the rest) waits for the
//! call itself.
//!
//! # MFA
//!
//! A request never waits on a person. When the MFA node has nothing servable and there
//! is no `mfa_process`, the fetch fails at once, without an upstream call,
//! with `MfaRequired`: "MFA code needed: run `credd mfa PROFILE`"
//! (`broker/sources.rs`). `credd mfa` sends the code over the control
//! socket; `submit_mfa` takes the MFA node's flight lock, calls
//! `GetSessionToken` with the code, records the result (which persists the
//! session, `sessions.rs`) and wakes every node's loop; nodes parked on the
//! code are fetched again by their next request. With `mfa_process`, the
//! command is run when a code is needed, so the session is renewed ahead
//! like any other node.
//!
//! Without it the user is asked without waiting (`broker/mfa_prompt.rs`):
//! a notification naming `credd mfa PROFILE`, or, with `mfa_prompt =
//! dialog`, a dialog whose code goes to `submit_mfa` while the request has
//! already had its 503. After a successful `submit_mfa` the nodes above the
//! session that failed for want of a code are due at once
//! (`broker/user_sessions.rs`), so `credd status` stops saying `needs MFA`
//! without waiting for a request.
//!
//! What comes after a success or a failure is `credd_core::schedule`'s
//! answer, recorded in `broker/renew.rs` (with the refresh-ahead rules);
//! how each kind of node gets its credentials is in `broker/sources.rs`,
//! status rows in `status.rs`, and how HTTP reports a `ServeError` in
//! `api_error.rs`.

mod graph;
mod login;
pub(crate) mod mfa_prompt;
mod needs;
mod renew;
mod sources;
mod user_sessions;

use graph::Graph;

use crate::clock::Clock;
use crate::refresh::{Slot, SlotState};
use crate::sessions::SessionStore;
use crate::sso::SsoSessions;
use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use credd_core::profile::{ConfigError, ConfigErrorKind, NodeSpec};
use credd_core::schedule::{Park, Policy};
use credd_core::upstream::{CallContext, CallerIdentity};
use credd_core::{
    format_expiration, TemporaryCredentials, Upstream, UpstreamError, UpstreamErrorKind,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::protocol::ProfileRow;

/// A credential as cached, with the container endpoint's body pre-rendered
/// so the hot path only clones bytes.
#[derive(Debug)]
pub struct Cached {
    pub creds: TemporaryCredentials,
    pub issued: OffsetDateTime,
    pub container_body: Bytes,
}

impl Cached {
    fn new(creds: TemporaryCredentials, issued: OffsetDateTime) -> Arc<Self> {
        let body = serde_json::to_vec(&creds.container_json()).expect("serializes");
        Arc::new(Self {
            creds,
            issued,
            container_body: Bytes::from(body),
        })
    }

    /// The IMDS credential document: the container fields plus `Code`,
    /// `LastUpdated` and `Type`.
    pub fn imds_json(&self) -> serde_json::Value {
        let mut v = self.creds.container_json();
        v["Code"] = "Success".into();
        v["LastUpdated"] = format_expiration(self.issued).into();
        v["Type"] = "AWS-HMAC".into();
        v
    }
}

/// A node's slot holds its cached credential, if any.
type NodeSlot = Slot<Option<Arc<Cached>>>;

#[derive(Debug)]
struct Node {
    spec: NodeSpec,
    ctx: CallContext,
    slot: Arc<NodeSlot>,
    /// The slot's cached credential, readable without its mutex (the
    /// request hot path).
    served: ArcSwapOption<Cached>,
    /// An `aws login` session node's watch of its cache file; boxed, as
    /// few nodes have one (100 bytes less per node without).
    login: Option<Box<login::LoginWatch>>,
    /// When a request was last served from it as a profile's top node
    /// (unix seconds, 0: never): whether its sessions are in use
    /// (`broker/user_sessions.rs`).
    last_used: std::sync::atomic::AtomicI64,
}

/// Why a profile cannot be served right now.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    #[error("unknown profile '{0}': it is not in the AWS config or credentials file (see `credd profiles`)")]
    UnknownProfile(String),
    #[error("profile '{profile}' cannot be served: {}", .error.kind)]
    Misconfigured { profile: String, error: ConfigError },
    #[error("{}", upstream_message(.profile, .error, *.retry_in_secs))]
    Upstream {
        profile: String,
        error: UpstreamError,
        retry_in_secs: Option<i64>,
        /// What the person must do, when that is what it takes
        /// (`broker/needs.rs`); boxed, so that every `Result` carrying a
        /// `ServeError` stays small.
        needs: Option<Box<crate::protocol::Needs>>,
    },
    /// The credential was not ready within `limits.cold_wait`; the fetch
    /// goes on, and a retry after `retry_after_secs` should find it.
    #[error("credd is still fetching the credentials for profile '{profile}' (the upstream service is slow to answer); retry in {retry_after_secs} s: the fetch goes on meanwhile")]
    FetchInProgress {
        profile: String,
        retry_after_secs: u64,
    },
    /// The daemon is stopping; the fetch was abandoned.
    #[error("credd is stopping and could not finish fetching the credentials for profile '{0}'; retry once it is running again")]
    Stopping(String),
}

pub(crate) fn upstream_message(profile: &str, e: &UpstreamError, retry_in: Option<i64>) -> String {
    match e.kind {
        UpstreamErrorKind::MfaRequired => {
            format!("MFA code needed: run `credd mfa {profile}`")
        }
        // Already says which session and which command.
        UpstreamErrorKind::LoginRequired => e.message.clone(),
        UpstreamErrorKind::InvalidMfa => format!(
            "the MFA code was refused ({}): run `credd mfa {profile}` with a fresh code",
            e.message
        ),
        UpstreamErrorKind::Unreachable | UpstreamErrorKind::Throttled => {
            // SSO failures name their operation first ("SSO GetRoleCredentials",
            // "SSO OIDC CreateToken", in credd-aws).
            let service = if e.message.starts_with("SSO ") {
                "IAM Identity Center"
            } else if e.message.contains("AWS Sign-In") {
                "AWS Sign-In"
            } else {
                "STS"
            };
            let what = if e.kind == UpstreamErrorKind::Throttled {
                format!("{service} is throttling")
            } else {
                format!("{service} unreachable")
            };
            match retry_in {
                Some(s) if s > 0 => format!("{what} ({}), retrying in {s} s", e.message),
                _ => format!("{what} ({}), retrying", e.message),
            }
        }
        _ => format!("profile '{profile}': {}", e.message),
    }
}

#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

struct Inner {
    upstream: Arc<dyn Upstream>,
    clock: Arc<dyn Clock>,
    policy: Policy,
    sessions: SessionStore,
    sso: SsoSessions,
    /// Read on every request without a lock; replaced whole on reload.
    graph: ArcSwap<Graph>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    /// Told when a session a person keeps alive changes (a new MFA session,
    /// a sign-in, an SSO token) or the clock jumps: the warning scheduler
    /// (`warnings.rs`) looks again.
    sessions_changed: Arc<tokio::sync::Notify>,
    /// How an MFA code is asked for (`broker/mfa_prompt.rs`).
    prompter: ArcSwap<mfa_prompt::Prompter>,
    /// Asked when a request meets a profile whose key store could not
    /// answer (`keys_retry.rs`).
    keys_retry: Arc<crate::keys_retry::KeysRetry>,
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What [`Broker::lookup`] found.
#[derive(Debug)]
pub enum Lookup {
    /// No such profile in the AWS files.
    Unknown,
    /// The profile exists; nothing servable is cached (or it cannot be served).
    NotCached,
    Cached(Arc<Cached>),
}

impl Broker {
    pub fn new(
        upstream: Arc<dyn Upstream>,
        clock: Arc<dyn Clock>,
        policy: Policy,
        sessions: SessionStore,
        sso: SsoSessions,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        let this = Self {
            inner: Arc::new(Inner {
                upstream,
                clock,
                policy,
                sessions,
                sso,
                graph: ArcSwap::from_pointee(Graph::default()),
                tasks,
                cancel,
                sessions_changed: Default::default(),
                keys_retry: Default::default(),
                prompter: Default::default(),
            }),
        };
        // Profiles parked on an ended or missing SSO login retry as soon as
        // a token arrives (`credd login`, `aws sso login`). Weak: the SSO
        // sessions must not keep the broker alive.
        let weak: Weak<Inner> = Arc::downgrade(&this.inner);
        this.inner.sso.on_change(move || {
            if let Some(inner) = weak.upgrade() {
                inner.sessions_changed.notify_waiters();
                Broker { inner }.wake_parked(Park::Login);
            }
        });
        this
    }

    /// The IAM Identity Center sessions the profiles use.
    pub fn sso(&self) -> &SsoSessions {
        &self.inner.sso
    }

    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    fn graph(&self) -> Arc<Graph> {
        self.inner.graph.load_full()
    }

    /// The credential for `profile`: from the cache when servable, otherwise
    /// fetched now (one upstream call however many requests wait).
    pub async fn get(&self, profile: &str) -> Result<Arc<Cached>, ServeError> {
        let graph = self.graph();
        let Some(node) = graph.serving.get(profile).cloned() else {
            return Err(match graph.plans.get(profile) {
                Some(Err(error)) => {
                    if matches!(error.kind, ConfigErrorKind::KeysUnavailable(_)) {
                        // Read the store again in the background (unlocked by now?).
                        self.inner.keys_retry.kick();
                    }
                    ServeError::Misconfigured {
                        profile: profile.into(),
                        error: error.clone(),
                    }
                }
                _ => ServeError::UnknownProfile(profile.into()),
            });
        };
        Self::mark_used(&node, self.now());
        self.node_get(&graph, &node)
            .await
            .map_err(|error| self.serve_error(profile, &node, error))
    }

    /// [`Self::get`] for the HTTP endpoints, whose clients give up after 1-2
    /// seconds: waits at most `cold_wait` for a credential that is not
    /// cached, then answers [`ServeError::FetchInProgress`] while the fetch
    /// carries on in a tracked task (still single flight: concurrent
    /// fetches queue on the node's flight lock and share its outcome), so
    /// the client's retry finds the credential.
    pub async fn get_within(
        &self,
        profile: &str,
        cold_wait: std::time::Duration,
    ) -> Result<Arc<Cached>, ServeError> {
        let this = self.clone();
        let name = profile.to_string();
        let cancel = self.inner.cancel.clone();
        let fetch = self.inner.tasks.spawn(
            async move {
                // On shutdown the fetch gets the same grace as requests,
                // then is abandoned and the request answered 503.
                let stop = async {
                    cancel.cancelled().await;
                    tokio::time::sleep(crate::server::STOP_GRACE).await;
                };
                tokio::select! {
                    r = this.get(&name) => Some(r),
                    _ = stop => None,
                }
            }
            .instrument(tracing::info_span!("request-fetch", profile)),
        );
        match tokio::time::timeout(cold_wait, fetch).await {
            Ok(Ok(Some(r))) => r,
            Ok(_) => Err(ServeError::Stopping(profile.into())),
            Err(_) => Err(ServeError::FetchInProgress {
                profile: profile.into(),
                retry_after_secs: cold_wait.as_secs().max(1),
            }),
        }
    }

    fn serve_error(&self, profile: &str, node: &Node, error: UpstreamError) -> ServeError {
        let retry_in_secs = node
            .slot
            .state()
            .deadline()
            .map(|t| (t - self.now()).whole_seconds().max(1));
        ServeError::Upstream {
            needs: needs::upstream(&self.graph(), profile, &error).map(Box::new),
            profile: profile.into(),
            error,
            retry_in_secs,
        }
    }

    /// The fast path: a servable cached credential, without waiting.
    pub fn cached(&self, profile: &str) -> Option<Arc<Cached>> {
        self.cached_at(profile, self.inner.clock.now())
    }

    /// The request path's one look at the graph, with the caller's "now"
    /// (one clock read per request): whether `profile` exists and, if so,
    /// its servable cached credential.
    pub fn lookup(&self, profile: &str, now: OffsetDateTime) -> Lookup {
        let graph = self.inner.graph.load();
        let Some(node) = graph.serving.get(profile) else {
            return if graph.plans.contains_key(profile) {
                Lookup::NotCached
            } else {
                Lookup::Unknown
            };
        };
        Self::mark_used(node, now);
        // The lock-free copy of `state.cached`: requests never take the
        // node's mutex while a servable credential is cached.
        match node.served.load_full() {
            Some(c) if self.inner.policy.servable(now, c.creds.expiration()) => Lookup::Cached(c),
            _ => Lookup::NotCached,
        }
    }

    /// [`Self::cached`] with the caller's "now".
    pub fn cached_at(&self, profile: &str, now: OffsetDateTime) -> Option<Arc<Cached>> {
        match self.lookup(profile, now) {
            Lookup::Cached(c) => Some(c),
            _ => None,
        }
    }

    fn node_get<'a>(
        &'a self,
        graph: &'a Arc<Graph>,
        node: &'a Arc<Node>,
    ) -> BoxFut<'a, Result<Arc<Cached>, UpstreamError>> {
        Box::pin(async move {
            let seen = {
                let st = node.slot.state();
                if let Some(c) = self.servable(&st) {
                    return Ok(c);
                }
                // Backing off after a failure: the last error, at once and
                // without an upstream call; the refresher retries when the
                // backoff ends (a fix by the user, `credd mfa` or a login
                // wakes the node sooner).
                if let Some(e) = st.backing_off(self.now()) {
                    return Err(e.clone());
                }
                st.attempts
            };
            let _flight = node.slot.flight().await;
            {
                let st = node.slot.state();
                if let Some(c) = self.servable(&st) {
                    return Ok(c);
                }
                if st.attempts != seen {
                    // The attempt we queued behind has just failed: share its
                    // answer rather than calling upstream again.
                    if let Some((_, e)) = &st.last_error {
                        return Err(e.clone());
                    }
                }
            }
            self.fetch_locked(graph, node).await
        })
    }

    fn servable(&self, st: &SlotState<Option<Arc<Cached>>>) -> Option<Arc<Cached>> {
        let c = st.value.as_ref()?;
        self.inner
            .policy
            .servable(self.inner.clock.now(), c.creds.expiration())
            .then(|| c.clone())
    }

    /// Renews the base of `profile`'s chain now, whatever its schedule or
    /// backoff says, then wakes every node and serves the profile: `credd
    /// login` for a SAML profile, once its helper can run unattended again.
    pub async fn refresh_now(&self, profile: &str) -> Result<Arc<Cached>, ServeError> {
        let graph = self.graph();
        let plan = match graph.plans.get(profile) {
            None => return Err(ServeError::UnknownProfile(profile.into())),
            Some(Err(error)) => {
                return Err(ServeError::Misconfigured {
                    profile: profile.into(),
                    error: error.clone(),
                })
            }
            Some(Ok(p)) => p,
        };
        let node = graph.nodes[&plan.base.node_id()].clone();
        {
            let _flight = node.slot.flight().await;
            self.fetch_locked(&graph, &node)
                .await
                .map_err(|e| self.serve_error(profile, &node, e))?;
        }
        for n in graph.nodes.values() {
            n.slot.wake();
        }
        self.get(profile).await
    }

    /// `sts:GetCallerIdentity` with the profile's credentials.
    pub async fn whoami(&self, profile: &str) -> Result<CallerIdentity, ServeError> {
        let c = self.get(profile).await?;
        let graph = self.graph();
        let node = graph.serving[profile].clone();
        self.inner
            .upstream
            .caller_identity(&node.ctx, &c.creds)
            .await
            .map_err(|e| self.serve_error(profile, &node, e))
    }

    pub fn region(&self, profile: &str) -> Option<String> {
        self.graph()
            .plans
            .get(profile)
            .and_then(|p| p.as_ref().ok())
            .and_then(|p| p.region.clone())
    }

    /// One row per profile for `credd status` and `credd profiles`.
    pub fn status(&self) -> Vec<ProfileRow> {
        let graph = self.graph();
        let now = self.now();
        graph
            .plans
            .iter()
            .map(|(name, plan)| match plan {
                Err(e) => crate::status::misconfigured_row(name, e),
                Ok(plan) => {
                    let chain: Vec<_> = plan
                        .nodes()
                        .iter()
                        .map(|s| graph.nodes[&s.id].slot.state().view())
                        .collect();
                    let st = graph.serving[name].slot.state();
                    let cached = st.value.as_ref();
                    let servable = cached
                        .is_some_and(|c| self.inner.policy.servable(now, c.creds.expiration()));
                    crate::status::profile_row(
                        name,
                        plan,
                        &chain,
                        &st.view(),
                        cached,
                        servable,
                        now,
                    )
                }
            })
            .collect()
    }

    /// An event arrived that slots parked on `why` wait for (a new SSO
    /// token, a session ended): those holding a credential try again now,
    /// so that it is renewed without waiting for a request; every node
    /// looks again.
    pub fn wake_parked(&self, why: Park) {
        let now = self.now();
        for n in self.graph().nodes.values() {
            {
                let mut st = n.slot.state();
                if st.parked() == Some(why) && st.value.is_some() {
                    st.next = Some(credd_core::schedule::Next::At(now));
                }
            }
            n.slot.wake();
        }
    }

    /// What a request kicks to have the key store read again.
    pub fn keys_retry(&self) -> Arc<crate::keys_retry::KeysRetry> {
        self.inner.keys_retry.clone()
    }

    /// Wakes whoever waits for a change of the sessions a person keeps
    /// alive (`Self::sessions_changed`).
    pub fn sessions_changed(&self) -> Arc<tokio::sync::Notify> {
        self.inner.sessions_changed.clone()
    }

    /// Re-checks every node at once (after a resume or a clock jump).
    pub fn wake_all(&self) {
        self.inner.sessions_changed.notify_waiters();
        for n in self.graph().nodes.values() {
            n.slot.wake();
        }
    }
}
