//! IAM Identity Center sessions held by the daemon: the access token of each
//! session, read from the cache the AWS CLI shares (`~/.aws/sso/cache`),
//! refreshed with the refresh token ahead of expiry and written back
//! atomically, and re-read whenever another program (`credd login`,
//! `aws sso login`, an SDK) rewrites the file.
//!
//! Invariant: nothing here ever starts a login or opens a browser. When the
//! Identity Center session ends (the refresh is refused), the session is
//! marked ended, the user is told once (a desktop notification where there
//! is a desktop, a log line always) and every request gets an error naming
//! `credd login`; a new token in the cache resumes service without a
//! restart.

use crate::clock::Clock;
use credd_core::sso::{FileStamp, Loaded, RegistrationRequest, SsoSession, SsoToken, TokenStore};
use credd_core::{format_expiration, SecretString, Upstream, UpstreamError, UpstreamErrorKind};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// How often the cache file is checked for a change made by another program.
pub const POLL_INTERVAL: Duration = Duration::seconds(30);

/// Tells the user something that needs them (the session ended).
pub trait Notifier: Send + Sync + std::fmt::Debug + 'static {
    fn notify(&self, title: &str, body: &str);
}

/// A notifier that only logs (tests, headless machines).
#[derive(Debug, Default)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn notify(&self, title: &str, body: &str) {
        tracing::warn!(title, "{body}");
    }
}

/// Where a session stands, for `credd status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// No token in the cache.
    LoggedOut,
    /// A usable token.
    Active,
    /// The token expired and cannot be refreshed, or a refresh was refused.
    Ended,
    /// The cache file cannot be read; it is left as it is.
    CacheCorrupt,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionStatus {
    pub session: String,
    pub start_url: String,
    pub region: String,
    pub state: SessionState,
    pub token_expires: Option<String>,
    pub next_refresh: Option<String>,
    pub refreshable: bool,
    pub last_error: Option<String>,
    pub login_command: String,
}

#[derive(Debug)]
struct EntryState {
    token: Option<SsoToken>,
    stamp: Option<FileStamp>,
    /// What the cache file held when it could not be used, logged once.
    corrupt: Option<String>,
    /// The portal refused this access token (revoked or the session ended).
    rejected: Option<String>,
    /// A refresh was refused: only a new login helps.
    ended: bool,
    notified: bool,
    failures: u32,
    /// When the current token is due for refresh, fixed when it arrives
    /// (half-life needs the time it was first seen, which the file lacks).
    refresh_due: Option<OffsetDateTime>,
    retry_at: Option<OffsetDateTime>,
    last_error: Option<String>,
}

impl EntryState {
    /// When the refresher should refresh, if the token can be refreshed.
    fn due(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let t = self.token.as_ref()?;
        if self.ended || !t.refreshable(now) {
            return None;
        }
        if self.rejected.is_some() {
            return Some(now);
        }
        Some(self.retry_at.or(self.refresh_due).unwrap_or(now))
    }
}

#[derive(Debug)]
struct Entry {
    session: SsoSession,
    /// A profile on this session, for the login command of legacy sessions.
    profile: String,
    state: Mutex<EntryState>,
    flight: tokio::sync::Mutex<()>,
    wake: Notify,
    retired: CancellationToken,
}

/// Every IAM Identity Center session the profiles use.
#[derive(Clone)]
pub struct SsoSessions {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SsoSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoSessions").finish_non_exhaustive()
    }
}

struct Inner {
    upstream: Arc<dyn Upstream>,
    clock: Arc<dyn Clock>,
    store: Arc<dyn TokenStore>,
    notifier: Arc<dyn Notifier>,
    entries: Mutex<HashMap<SsoSession, Arc<Entry>>>,
    /// Bumped when a session's token changes or it ends, so parked nodes retry.
    changed: watch::Sender<u64>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl SsoSessions {
    pub fn new(
        upstream: Arc<dyn Upstream>,
        clock: Arc<dyn Clock>,
        store: Arc<dyn TokenStore>,
        notifier: Arc<dyn Notifier>,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                upstream,
                clock,
                store,
                notifier,
                entries: Mutex::default(),
                changed: watch::Sender::new(0),
                tasks,
                cancel,
            }),
        }
    }

    /// Changes whenever a session gains a new token or ends.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    fn bump(&self) {
        self.inner.changed.send_modify(|g| *g += 1);
    }

    fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    fn refresh_due(&self, token: &SsoToken, now: OffsetDateTime) -> OffsetDateTime {
        credd_core::schedule::Policy::default().refresh_ahead(
            credd_core::schedule::Rule::Token,
            now,
            token.expires_at,
            0.0,
        )
    }

    /// Keeps one entry (and one refresher) per session in use; `sessions`
    /// pairs each session with a profile that uses it.
    pub fn register(&self, sessions: Vec<(SsoSession, String)>) {
        let mut entries = self.inner.entries.lock().unwrap();
        let keep: HashMap<SsoSession, String> = sessions.into_iter().collect();
        entries.retain(|s, e| {
            let kept = keep.contains_key(s);
            if !kept {
                e.retired.cancel();
            }
            kept
        });
        for (session, profile) in keep {
            if entries.contains_key(&session) {
                continue;
            }
            let entry = Arc::new(Entry {
                session: session.clone(),
                profile,
                state: Mutex::new(EntryState {
                    token: None,
                    stamp: None,
                    corrupt: None,
                    rejected: None,
                    ended: false,
                    notified: false,
                    failures: 0,
                    refresh_due: None,
                    retry_at: None,
                    last_error: None,
                }),
                flight: tokio::sync::Mutex::new(()),
                wake: Notify::new(),
                retired: self.inner.cancel.child_token(),
            });
            self.sync(&entry);
            let this = self.clone();
            let e = entry.clone();
            let span = tracing::info_span!("sso-session", session = %session.cache_key());
            self.inner
                .tasks
                .spawn(async move { this.refresher(e).await }.instrument(span));
            entries.insert(session, entry);
        }
    }

    fn entry(&self, session: &SsoSession, profile: &str) -> Arc<Entry> {
        if let Some(e) = self.inner.entries.lock().unwrap().get(session) {
            return e.clone();
        }
        let mut all: Vec<(SsoSession, String)> = self
            .inner
            .entries
            .lock()
            .unwrap()
            .values()
            .map(|e| (e.session.clone(), e.profile.clone()))
            .collect();
        all.push((session.clone(), profile.to_string()));
        self.register(all);
        self.inner.entries.lock().unwrap()[session].clone()
    }

    /// The entries, copied out so that no lock is held while they are used.
    fn entries(&self) -> Vec<Arc<Entry>> {
        self.inner
            .entries
            .lock()
            .unwrap()
            .values()
            .cloned()
            .collect()
    }

    /// Re-reads every session's cache file now (after `credd login`).
    pub fn sync_all(&self) {
        let entries = self.entries();
        for e in entries {
            self.sync(&e);
        }
    }

    /// Picks up a rewritten cache file. Returns whether the token changed.
    fn sync(&self, entry: &Entry) -> bool {
        let stamp = self.inner.store.token_stamp(&entry.session);
        {
            let st = entry.state.lock().unwrap();
            if stamp == st.stamp && (stamp.is_some() || st.token.is_none()) {
                return false;
            }
        }
        let loaded = self.inner.store.load_token(&entry.session);
        let mut st = entry.state.lock().unwrap();
        let changed = match loaded {
            Ok(Loaded::Missing) => {
                st.stamp = None;
                st.corrupt = None;
                st.token.take().is_some()
            }
            Ok(Loaded::Found(token, stamp)) => {
                let same = st.token.as_ref().is_some_and(|t| {
                    t.access_token == token.access_token && t.expires_at == token.expires_at
                });
                st.stamp = Some(stamp);
                st.corrupt = None;
                if !same {
                    tracing::info!(expires = %format_expiration(token.expires_at),
                        "picked up a token from the SSO cache");
                    st.refresh_due = Some(self.refresh_due(&token, self.now()));
                    st.token = Some(token);
                    st.rejected = None;
                    st.ended = false;
                    st.notified = false;
                    st.failures = 0;
                    st.retry_at = None;
                    st.last_error = None;
                }
                !same
            }
            Ok(Loaded::Corrupt(err, stamp)) => {
                let what = format!(
                    "the SSO cache file {} cannot be used ({err}); it is left as it is: run `{}` to replace it",
                    self.inner.store.token_path(&entry.session),
                    entry.session.login_command(&entry.profile)
                );
                if st.corrupt.as_deref() != Some(what.as_str()) {
                    tracing::warn!("{what}");
                }
                st.stamp = Some(stamp);
                st.corrupt = Some(what);
                st.token.take().is_some()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the SSO cache");
                false
            }
        };
        drop(st);
        if changed {
            self.bump();
            entry.wake.notify_one();
        }
        changed
    }

    fn login_required(&self, entry: &Entry, st: &EntryState) -> UpstreamError {
        let cmd = entry.session.login_command(&entry.profile);
        let label = entry.session.label();
        let message = if let Some(c) = &st.corrupt {
            c.clone()
        } else if st.token.is_none() {
            format!("SSO session {label}: not logged in: run `{cmd}`")
        } else {
            format!("SSO session {label} ended: run `{cmd}`")
        };
        UpstreamError::new(UpstreamErrorKind::LoginRequired, message)
    }

    /// A usable access token for `session`, refreshed first if it is due.
    /// Never prompts: without one, the error names `credd login`.
    pub async fn access_token(
        &self,
        session: &SsoSession,
        profile: &str,
    ) -> Result<SecretString, UpstreamError> {
        let entry = self.entry(session, profile);
        self.sync(&entry);
        {
            let st = entry.state.lock().unwrap();
            if let Some(t) = &st.token {
                if st.rejected.is_none() && t.usable(self.now()) {
                    return Ok(t.access_token.clone());
                }
            }
        }
        self.refresh(&entry, true).await
    }

    /// The portal refused `token`: it was revoked, or the session ended.
    /// Tries one refresh; the error of that is the answer.
    pub async fn token_rejected(
        &self,
        session: &SsoSession,
        profile: &str,
        token: &SecretString,
        why: &str,
    ) -> Result<SecretString, UpstreamError> {
        let entry = self.entry(session, profile);
        self.sync(&entry);
        {
            let mut st = entry.state.lock().unwrap();
            if st.token.as_ref().is_some_and(|t| &t.access_token == token) {
                st.rejected = Some(why.to_string());
            }
        }
        self.refresh(&entry, true).await
    }

    /// Refreshes the access token (one at a time per session). `needed`:
    /// the caller has no usable token, so a refused refresh ends the session
    /// visibly at once.
    async fn refresh(
        &self,
        entry: &Arc<Entry>,
        needed: bool,
    ) -> Result<SecretString, UpstreamError> {
        let _flight = entry.flight.lock().await;
        // Another caller, or another program, may have refreshed meanwhile.
        self.sync(entry);
        let now = self.now();
        let (registration, refresh_token) = {
            let st = entry.state.lock().unwrap();
            let Some(t) = &st.token else {
                return Err(self.login_required(entry, &st));
            };
            let fresh = st.rejected.is_none() && t.usable(now);
            // Someone refreshed while this caller queued: use theirs.
            if fresh && (needed || st.due(now).is_none_or(|d| d > now)) {
                return Ok(t.access_token.clone());
            }
            if st.ended || !t.refreshable(now) {
                return if st.rejected.is_none() && t.usable(now) {
                    Ok(t.access_token.clone())
                } else {
                    Err(self.login_required(entry, &st))
                };
            }
            (
                t.registration().expect("refreshable"),
                t.refresh_token.clone().expect("refreshable"),
            )
        };
        let result = self
            .inner
            .upstream
            .sso_refresh_token(&entry.session, &registration, &refresh_token)
            .instrument(tracing::info_span!("refresh-token"))
            .await;
        let now = self.now();
        let mut st = entry.state.lock().unwrap();
        match result {
            Ok(grant) => {
                let mut token = st.token.clone().expect("checked above");
                token.apply_refresh(grant, now);
                match self.inner.store.save_token(&entry.session, &token) {
                    Ok(stamp) => st.stamp = Some(stamp),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not write the refreshed SSO token back; it is kept in memory")
                    }
                }
                tracing::info!(expires = %format_expiration(token.expires_at), "refreshed the SSO access token");
                let access = token.access_token.clone();
                st.refresh_due = Some(self.refresh_due(&token, now));
                st.token = Some(token);
                st.rejected = None;
                st.failures = 0;
                st.retry_at = None;
                st.last_error = None;
                drop(st);
                self.bump();
                Ok(access)
            }
            Err(e) if e.kind == UpstreamErrorKind::LoginRequired => {
                st.ended = true;
                st.last_error = Some(e.message.clone());
                let err = self.login_required(entry, &st);
                let first = !st.notified;
                st.notified = true;
                drop(st);
                if first {
                    tracing::warn!(reason = %e, "the IAM Identity Center session ended");
                    self.inner
                        .notifier
                        .notify("credd: AWS sign-in needed", &err.message);
                }
                self.bump();
                Err(err)
            }
            Err(e) => {
                st.failures += 1;
                let backoff = Duration::seconds(5 * 2i64.pow(st.failures.min(6)));
                st.retry_at = Some(now + backoff.min(Duration::minutes(5)));
                st.last_error = Some(e.message.clone());
                tracing::warn!(error = %e, failures = st.failures, "refreshing the SSO access token failed");
                match &st.token {
                    Some(t) if st.rejected.is_none() && t.usable(now) => Ok(t.access_token.clone()),
                    _ => Err(e),
                }
            }
        }
    }

    /// When the refresher should next act for `entry`.
    fn next_deadline(&self, entry: &Entry) -> OffsetDateTime {
        let now = self.now();
        let poll = now + POLL_INTERVAL;
        let st = entry.state.lock().unwrap();
        st.due(now).map_or(poll, |d| d.max(now).min(poll))
    }

    /// Refreshes the token ahead of expiry, re-registers the client before
    /// its registration lapses, and watches the cache file.
    async fn refresher(&self, entry: Arc<Entry>) {
        loop {
            let deadline = self.next_deadline(&entry);
            tokio::select! {
                _ = entry.retired.cancelled() => return,
                _ = entry.wake.notified() => {}
                _ = self.inner.clock.sleep_until(deadline) => {}
            }
            self.sync(&entry);
            let now = self.now();
            let due = entry
                .state
                .lock()
                .unwrap()
                .due(now)
                .is_some_and(|d| d <= now);
            if due {
                let _ = self.refresh(&entry, false).await;
            }
            self.renew_registration(&entry).await;
        }
    }

    /// Registers a new client when the cached registration is about to
    /// lapse, so that the next login (credd's or the AWS CLI's) finds a
    /// valid one. A refresh token stays bound to the client it was issued
    /// to, so this cannot extend the current session past its client.
    async fn renew_registration(&self, entry: &Entry) {
        let now = self.now();
        let current = match self.inner.store.load_registration(&entry.session) {
            Ok(Loaded::Found(r, _)) => r,
            _ => return,
        };
        if !current.needs_renewal(now) {
            return;
        }
        let request = match current.grant_types.as_deref() {
            Some(g) if g.iter().any(|x| x == credd_core::sso::GRANT_DEVICE_CODE) => {
                RegistrationRequest::device_code(&entry.session)
            }
            _ => RegistrationRequest::auth_code(&entry.session),
        };
        match self
            .inner
            .upstream
            .sso_register_client(&entry.session, &request)
            .await
        {
            Ok(r) => match self.inner.store.save_registration(&entry.session, &r) {
                Ok(()) => {
                    tracing::info!(expires = %format_expiration(r.expires_at), "registered a new SSO OIDC client")
                }
                Err(e) => tracing::warn!(error = %e, "could not save the new client registration"),
            },
            Err(e) => tracing::warn!(error = %e, "re-registering the SSO OIDC client failed"),
        }
    }

    /// One row per session, for `credd status`.
    pub fn status(&self) -> Vec<SessionStatus> {
        let now = self.now();
        let entries = self.entries();
        let mut out: Vec<SessionStatus> = entries
            .iter()
            .map(|e| {
                self.sync(e);
                let st = e.state.lock().unwrap();
                let state = if st.corrupt.is_some() {
                    SessionState::CacheCorrupt
                } else {
                    match &st.token {
                        None => SessionState::LoggedOut,
                        Some(_) if st.ended => SessionState::Ended,
                        Some(t) if t.usable(now) || t.refreshable(now) => SessionState::Active,
                        Some(_) => SessionState::Ended,
                    }
                };
                SessionStatus {
                    session: e.session.cache_key().to_string(),
                    start_url: e.session.start_url.clone(),
                    region: e.session.region.clone(),
                    state,
                    token_expires: st.token.as_ref().map(|t| format_expiration(t.expires_at)),
                    next_refresh: st.due(now).map(format_expiration),
                    refreshable: st.token.as_ref().is_some_and(|t| t.refreshable(now)),
                    last_error: st.last_error.clone().or_else(|| st.corrupt.clone()),
                    login_command: e.session.login_command(&e.profile),
                }
            })
            .collect();
        out.sort_by(|a, b| a.session.cmp(&b.session));
        out
    }
}
