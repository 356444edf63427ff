//! The broker: one cached credential per node of the profile graph, filled
//! by exactly one upstream call at a time (single flight) and renewed ahead
//! of expiry by a refresher task per node, so that a request never waits on
//! an upstream call while a servable credential is cached.
//!
//! Nodes are shared: every profile built on the same MFA session uses the
//! same session node, so the MFA code is asked once and roles on top keep
//! refreshing from it until the session itself ends. A request never starts
//! an MFA prompt: without `mfa_process` it gets an error naming `credd mfa`.

use crate::clock::Clock;
use crate::sessions::SessionStore;
use crate::sso::SsoSessions;
use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use credd_core::profile::{Base, ConfigError, NodeId, NodeKind, NodeSpec, Plan};
use credd_core::schedule::Policy;
use credd_core::upstream::{CallContext, CallerIdentity, SourceCredentials};
use credd_core::{
    duration, format_expiration, SecretString, TemporaryCredentials, Upstream, UpstreamError,
    UpstreamErrorKind,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

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

#[derive(Debug, Default)]
struct NodeState {
    cached: Option<Arc<Cached>>,
    /// Finished upstream attempts; lets single-flight waiters tell that the
    /// attempt they waited for failed, instead of each trying again.
    attempts: u64,
    failures: u32,
    last_error: Option<(OffsetDateTime, UpstreamError)>,
    next_refresh: Option<OffsetDateTime>,
    refreshing: bool,
}

#[derive(Debug)]
struct Node {
    spec: NodeSpec,
    ctx: CallContext,
    state: Mutex<NodeState>,
    /// `state.cached`, readable without the mutex (the request hot path).
    served: ArcSwapOption<Cached>,
    flight: tokio::sync::Mutex<()>,
    wake: Notify,
    refresher_started: std::sync::atomic::AtomicBool,
    retired: CancellationToken,
}

#[derive(Debug, Default)]
struct Graph {
    plans: BTreeMap<String, Result<Plan, ConfigError>>,
    nodes: HashMap<NodeId, Arc<Node>>,
    serving: HashMap<String, Arc<Node>>,
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

fn upstream_message(profile: &str, e: &UpstreamError, retry_in: Option<i64>) -> String {
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

impl ServeError {
    /// A short machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::UnknownProfile(_) => "UnknownProfile",
            ServeError::Misconfigured { .. } => "ProfileMisconfigured",
            ServeError::FetchInProgress { .. } => "FetchInProgress",
            ServeError::Stopping(_) => "DaemonStopping",
            ServeError::Upstream { error, .. } => match error.kind {
                UpstreamErrorKind::MfaRequired => "MfaRequired",
                UpstreamErrorKind::InvalidMfa => "InvalidMfa",
                UpstreamErrorKind::Unreachable => "UpstreamUnreachable",
                UpstreamErrorKind::Throttled => "UpstreamThrottled",
                UpstreamErrorKind::Denied => "UpstreamDenied",
                UpstreamErrorKind::Source => "SourceFailed",
                UpstreamErrorKind::Config => "UpstreamRejected",
                UpstreamErrorKind::LoginRequired => "SsoLoginRequired",
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProfileStatus {
    pub name: String,
    /// `fresh`, `refreshing`, `idle`, `needs MFA`, `failing`, `expired`, `misconfigured`.
    pub state: String,
    pub chain: Option<String>,
    pub region: Option<String>,
    pub expires: Option<String>,
    pub expires_in_secs: Option<i64>,
    pub next_refresh: Option<String>,
    pub last_error: Option<String>,
    pub notes: Vec<String>,
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
            }),
        };
        // Profiles parked on an ended or missing SSO login retry as soon as
        // a token arrives (`credd login`, `aws sso login`).
        let mut changes = this.inner.sso.subscribe();
        let cancel = this.inner.cancel.clone();
        let broker = this.clone();
        this.inner.tasks.spawn(
            async move {
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        r = changes.changed() => if r.is_err() { return },
                    }
                    broker.retry_parked_logins();
                }
            }
            .instrument(tracing::info_span!("sso-wake")),
        );
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
                            state: Mutex::new(NodeState::default()),
                            served: ArcSwapOption::empty(),
                            flight: tokio::sync::Mutex::new(()),
                            wake: Notify::new(),
                            refresher_started: false.into(),
                            retired: self.inner.cancel.child_token(),
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
                n.retired.cancel();
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
            let mut st = node.state.lock().unwrap();
            st.next_refresh = mfa.process.as_ref().map(|_| {
                self.inner
                    .policy
                    .next_refresh(issued, creds.expiration(), rand::random())
            });
            let c = Cached::new(creds, issued);
            node.served.store(Some(c.clone()));
            st.cached = Some(c);
            drop(st);
            self.ensure_refresher(node);
        }
    }

    /// The credential for `profile`: from the cache when servable, otherwise
    /// fetched now (one upstream call however many requests wait).
    pub async fn get(&self, profile: &str) -> Result<Arc<Cached>, ServeError> {
        let graph = self.graph();
        let Some(node) = graph.serving.get(profile).cloned() else {
            return Err(match graph.plans.get(profile) {
                Some(Err(error)) => ServeError::Misconfigured {
                    profile: profile.into(),
                    error: error.clone(),
                },
                _ => ServeError::UnknownProfile(profile.into()),
            });
        };
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
            .state
            .lock()
            .unwrap()
            .next_refresh
            .map(|t| (t - self.now()).whole_seconds().max(1));
        ServeError::Upstream {
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
                let st = node.state.lock().unwrap();
                if let Some(c) = self.servable(&st) {
                    return Ok(c);
                }
                // Backing off after a failure: the last error, at once and
                // without an upstream call; the refresher retries when the
                // backoff ends (a fix by the user, `credd mfa` or a login
                // wakes the node sooner).
                if let Some(e) = self.backing_off(&st) {
                    return Err(e);
                }
                st.attempts
            };
            let _flight = node.flight.lock().await;
            {
                let st = node.state.lock().unwrap();
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

    /// The last error while the node waits out its backoff.
    fn backing_off(&self, st: &NodeState) -> Option<UpstreamError> {
        let (_, e) = st.last_error.as_ref()?;
        let next = st.next_refresh?;
        (st.failures > 0 && next > self.inner.clock.now()).then(|| e.clone())
    }

    fn servable(&self, st: &NodeState) -> Option<Arc<Cached>> {
        let c = st.cached.as_ref()?;
        self.inner
            .policy
            .servable(self.inner.clock.now(), c.creds.expiration())
            .then(|| c.clone())
    }

    /// Calls upstream for `node` and records the outcome. The caller holds
    /// the node's flight lock.
    async fn fetch_locked(
        &self,
        graph: &Arc<Graph>,
        node: &Arc<Node>,
    ) -> Result<Arc<Cached>, UpstreamError> {
        node.state.lock().unwrap().refreshing = true;
        let result = self
            .call_upstream(graph, node, None)
            .instrument(tracing::info_span!("fetch", node = %node.spec.id))
            .await;
        self.record(node, result)
    }

    fn record(
        &self,
        node: &Arc<Node>,
        result: Result<TemporaryCredentials, UpstreamError>,
    ) -> Result<Arc<Cached>, UpstreamError> {
        let now = self.now();
        let policy = &self.inner.policy;
        let out = {
            let mut st = node.state.lock().unwrap();
            st.refreshing = false;
            st.attempts += 1;
            match result {
                Ok(creds) => {
                    if creds.expiration() <= now {
                        let e = UpstreamError::new(
                            UpstreamErrorKind::Source,
                            format!(
                                "the source returned credentials that expired at {}",
                                format_expiration(creds.expiration())
                            ),
                        );
                        st.failures += 1;
                        st.next_refresh = Some(policy.retry_at(now, st.failures, None));
                        st.last_error = Some((now, e.clone()));
                        Err(e)
                    } else {
                        let renewable = !matches!(&node.spec.kind,
                            NodeKind::Base(Base::Session(s)) if s.mfa.as_ref().is_some_and(|m| m.process.is_none()));
                        st.next_refresh = renewable
                            .then(|| policy.next_refresh(now, creds.expiration(), rand::random()));
                        st.failures = 0;
                        st.last_error = None;
                        let cached = Cached::new(creds, now);
                        node.served.store(Some(cached.clone()));
                        st.cached = Some(cached.clone());
                        tracing::info!(node = %node.spec.id, expires = %format_expiration(cached.creds.expiration()),
                            next_refresh = ?st.next_refresh.map(format_expiration), "credentials renewed");
                        Ok(cached)
                    }
                }
                Err(e) => {
                    st.failures += 1;
                    let cached_exp = st.cached.as_ref().map(|c| c.creds.expiration());
                    st.next_refresh = match e.kind {
                        // Waits for `credd mfa` or `credd login`; nothing to
                        // retry on our own (a new SSO token wakes the node).
                        UpstreamErrorKind::MfaRequired
                        | UpstreamErrorKind::InvalidMfa
                        | UpstreamErrorKind::LoginRequired => None,
                        k if k.retryable() => Some(policy.retry_at(now, st.failures, cached_exp)),
                        // Refused or misconfigured: retrying soon will not
                        // help until the user changes something; try again
                        // at the slowest pace.
                        _ => Some(policy.retry_at(now, u32::MAX, cached_exp)),
                    };
                    tracing::warn!(node = %node.spec.id, failures = st.failures, error = %e,
                        retry_at = ?st.next_refresh.map(format_expiration), "upstream call failed");
                    st.last_error = Some((now, e.clone()));
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

    async fn call_upstream(
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
                            return Err(UpstreamError::new(
                                UpstreamErrorKind::MfaRequired,
                                format!("MFA code needed: run `credd mfa {}`", m.profile),
                            ))
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

    fn ensure_refresher(&self, node: &Arc<Node>) {
        use std::sync::atomic::Ordering;
        if node.refresher_started.swap(true, Ordering::SeqCst) {
            node.wake.notify_one();
            return;
        }
        let this = self.clone();
        let n = node.clone();
        let span = tracing::info_span!("refresher", node = %node.spec.id);
        self.inner
            .tasks
            .spawn(async move { this.refresher(n).await }.instrument(span));
    }

    /// Sleeps until the node's next refresh (or a wake-up), then renews it
    /// while requests keep being served from the cache.
    async fn refresher(&self, node: Arc<Node>) {
        loop {
            let deadline = node.state.lock().unwrap().next_refresh;
            let sleep = async {
                match deadline {
                    Some(d) => self.inner.clock.sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = node.retired.cancelled() => return,
                _ = node.wake.notified() => continue,
                _ = sleep => {}
            }
            let _flight = tokio::select! {
                _ = node.retired.cancelled() => return,
                g = node.flight.lock() => g,
            };
            let due = node
                .state
                .lock()
                .unwrap()
                .next_refresh
                .is_some_and(|d| d <= self.now());
            if !due {
                continue;
            }
            let graph = self.graph();
            tokio::select! {
                _ = node.retired.cancelled() => return,
                _ = self.fetch_locked(&graph, &node) => {}
            }
        }
    }

    /// Starts the MFA session behind `profile` with `code`.
    pub async fn submit_mfa(
        &self,
        profile: &str,
        code: SecretString,
    ) -> Result<OffsetDateTime, ServeError> {
        let graph = self.graph();
        let node = self.mfa_node(&graph, profile)?;
        let _flight = node.flight.lock().await;
        let result = self.call_upstream(&graph, &node, Some(&code)).await;
        let out = self.record(&node, result);
        // Profiles on this session may be parked waiting for it.
        for n in graph.nodes.values() {
            n.wake.notify_one();
        }
        out.map(|c| c.creds.expiration())
            .map_err(|e| self.serve_error(profile, &node, e))
    }

    /// The MFA serial `credd mfa PROFILE` should prompt for.
    pub fn mfa_serial(&self, profile: &str) -> Result<String, ServeError> {
        let graph = self.graph();
        let node = self.mfa_node(&graph, profile)?;
        match &node.spec.kind {
            NodeKind::Base(Base::Session(s)) => {
                Ok(s.mfa.as_ref().expect("mfa node").serial.clone())
            }
            _ => unreachable!("mfa_node returns session nodes"),
        }
    }

    fn mfa_node(&self, graph: &Graph, profile: &str) -> Result<Arc<Node>, ServeError> {
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
        match &plan.base {
            Base::Session(s) if s.mfa.is_some() => Ok(graph.nodes[&plan.base.node_id()].clone()),
            _ => Err(ServeError::Upstream {
                profile: profile.into(),
                error: UpstreamError::new(
                    UpstreamErrorKind::Config,
                    format!("profile '{profile}' has no mfa_serial in its chain, so it needs no MFA code"),
                ),
                retry_in_secs: None,
            }),
        }
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
    pub fn status(&self) -> Vec<ProfileStatus> {
        let graph = self.graph();
        let now = self.now();
        graph
            .plans
            .iter()
            .map(|(name, plan)| match plan {
                Err(e) => ProfileStatus {
                    name: name.clone(),
                    state: "misconfigured".into(),
                    chain: None,
                    region: None,
                    expires: None,
                    expires_in_secs: None,
                    next_refresh: None,
                    last_error: Some(e.kind.to_string()),
                    notes: vec![],
                },
                Ok(plan) => {
                    // The first error along the chain, base first, explains
                    // best. Each node's lock is taken alone: the serving node
                    // is part of the chain.
                    let chain_error = plan.nodes().iter().find_map(|s| {
                        let n = &graph.nodes[&s.id];
                        let st = n.state.lock().unwrap();
                        st.last_error.as_ref().map(|(_, e)| e.clone())
                    });
                    let node = &graph.serving[name];
                    let st = node.state.lock().unwrap();
                    let servable = st
                        .cached
                        .as_ref()
                        .is_some_and(|c| self.inner.policy.servable(now, c.creds.expiration()));
                    let state = if st.refreshing {
                        "refreshing"
                    } else if chain_error.as_ref().is_some_and(|e| {
                        matches!(
                            e.kind,
                            UpstreamErrorKind::MfaRequired | UpstreamErrorKind::InvalidMfa
                        )
                    }) && !servable
                    {
                        "needs MFA"
                    } else if chain_error
                        .as_ref()
                        .is_some_and(|e| e.kind == UpstreamErrorKind::LoginRequired)
                        && !servable
                    {
                        "login required"
                    } else if chain_error.is_some() && st.failures > 0 {
                        "failing"
                    } else if servable {
                        "fresh"
                    } else if st.cached.is_some() {
                        "expired"
                    } else {
                        "idle"
                    };
                    let mut notes = plan.notes();
                    if let Some(c) = &st.cached {
                        let left = c.creds.expiration() - c.issued;
                        if let Some(r) = plan.roles.last() {
                            if let Some(asked) = r.duration_secs.or(r.capped_from) {
                                if left.whole_seconds() + 60 < asked as i64
                                    && r.capped_from.is_none()
                                {
                                    notes.push(format!(
                                        "asked for {} but AWS granted {}",
                                        duration::fmt_secs(asked),
                                        duration::fmt_secs(left.whole_seconds().max(0) as u64)
                                    ));
                                }
                            }
                        }
                    }
                    ProfileStatus {
                        name: name.clone(),
                        state: state.into(),
                        chain: Some(plan.describe_chain()),
                        region: plan.region.clone(),
                        expires: st
                            .cached
                            .as_ref()
                            .map(|c| format_expiration(c.creds.expiration())),
                        expires_in_secs: st
                            .cached
                            .as_ref()
                            .map(|c| (c.creds.expiration() - now).whole_seconds()),
                        next_refresh: st.next_refresh.map(format_expiration),
                        last_error: chain_error.map(|e| upstream_message(name, &e, None)),
                        notes,
                    }
                }
            })
            .collect()
    }

    /// A new SSO token arrived (or a session ended): nodes parked on
    /// "login required" try again now, so that cached credentials are
    /// renewed without waiting for a request.
    pub fn retry_parked_logins(&self) {
        let now = self.now();
        for n in self.graph().nodes.values() {
            {
                let mut st = n.state.lock().unwrap();
                let parked = st
                    .last_error
                    .as_ref()
                    .is_some_and(|(_, e)| e.kind == UpstreamErrorKind::LoginRequired);
                if parked && st.next_refresh.is_none() && st.cached.is_some() {
                    st.next_refresh = Some(now);
                }
            }
            n.wake.notify_one();
        }
    }

    /// Re-checks every node at once (after a resume or a clock jump).
    pub fn wake_all(&self) {
        for n in self.graph().nodes.values() {
            n.wake.notify_one();
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
        NodeKind::Role(r) => &r.profile,
    }
}
