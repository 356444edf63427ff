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
//!
//! An SSO profile is two things: a *token* (one per Identity Center session,
//! shared by every profile on it, and by the AWS CLI and SDKs through the
//! cache) and a *role-credential node* per session, account and role, which
//! is an ordinary broker node. The tokens are held here, by `SsoSessions`,
//! next to the broker, not in its node graph.
//!
//! Each session is a slot of the one refresh engine (`refresh.rs`)
//! under [`Rule::Token`]: the token and its file stamp are the slot's value,
//! the loop polls the cache file, and what a failed refresh means (backoff,
//! or parked until a login) is `credd_core::schedule`'s answer. Whoever
//! waits for a new token (the broker's parked nodes) subscribes with
//! [`SsoSessions::on_change`].
//!
//! - **Role credentials.** Fetching an SSO node (`broker/sources.rs`) asks
//!   `access_token` for the session's token, then calls the portal's
//!   `GetRoleCredentials`. The result is cached, renewed ahead and
//!   single-flighted like any other node (permission-set sessions last 1 to
//!   12 h). If the portal refuses the token (`LoginRequired`: revoked by a
//!   logout elsewhere, or the session ended), `token_rejected` refreshes once
//!   and the call is retried with the new token
//!   (`sso_tests::a_revoked_token_is_refreshed_once_and_the_call_retried`).
//!   Roles chained on an SSO profile are role nodes on top of it, capped at
//!   1 h by AWS.
//! - **Sessions in use.** On every `load_plans`, the broker hands `register`
//!   the sessions its SSO nodes use; each gets one entry, a slot whose value
//!   is the token, its file stamp and what is known of the file, with its
//!   flight lock and its loop (span `sso-session`); an entry no longer used
//!   is retired. A session asked for before it was registered is registered
//!   then.
//! - **Re-reading the file.** Whenever the token is needed, on every tick of
//!   the loop and so at least every [`POLL_INTERVAL`] (60 s), the entry
//!   compares the file's stamp (modification time, size, inode; one `stat`)
//!   with the one it read, and re-reads the file when it changed, so a token
//!   written by `credd login`, `aws sso login` or an SDK's refresh is used at
//!   once; a new token makes the old one's history (a backoff, an ended
//!   session) moot. Every control-socket request that reloads the profiles
//!   also calls `sync_all`, which is how `credd login` tells the daemon.
//! - **Refresh.** A token is refreshed with its refresh token (OIDC
//!   `CreateToken`) `refresh.token_window` (15 min) before it expires, or at
//!   half-life for tokens shorter than twice that (counted from when the
//!   daemon first saw it, which the file does not record), without jitter,
//!   one refresh at a time per session. Before refreshing it re-reads the
//!   file: a token another program already refreshed is used instead. The
//!   new token is written back through the `TokenStore` (atomic, 0600),
//!   keeping every field it does not change and the old refresh token when
//!   the answer carries none. A refresh needs a refresh token and an
//!   unexpired client registration in the token file (a refresh token is
//!   bound to its client); without them the token is used until it expires.
//!   A refresh that fails for another reason is retried as the schedule
//!   says: unreachable or throttled, with a backoff from 10 s doubling to a
//!   cap of 5 min; denied or an invalid request (`Denied`, `Config`), at the
//!   cap. The current token is used while it lasts, and the retry comes no
//!   later than `min_serve_life` before it expires. A token the portal
//!   refused is refreshed at once, unless its refresh is already backing
//!   off.
//! - **Re-registration.** When the cached client registration of an
//!   sso-session is within 15 min of expiring, the loop registers a new
//!   client of the same kind (`RegisterClient` for the authorization-code or
//!   the device-code grant) and caches it, so the next login, credd's or the
//!   AWS CLI's, finds a valid one. It cannot extend the current session: its
//!   refresh token stays bound to the old client.
//! - **The session ends.** The Identity Center session (8 h by default)
//!   bounds the refresh token; the client learns of its end only when a
//!   refresh is refused (`LoginRequired`). Then the session's slot is parked
//!   on a login (`Park::Login`; `credd status` shows the session `ended`),
//!   the user is told once per token (`Notifier`: `DesktopNotifier` in `credd
//!   serve`, which always logs too; `LogNotifier` in the demo), and once the
//!   access token is no longer usable every fetch that needs one fails with
//!   `LoginRequired` and a message naming the command: "SSO session 'work'
//!   ended: run `credd login work`" (`credd login --profile P` for a legacy
//!   profile; "not logged in" when there is no token; the file and the
//!   reason when the cache file cannot be used). The broker serves that as
//!   `503 SsoLoginRequired`, shows the profile `login required` in `credd
//!   status`, and parks the node (`Park::Login`): it has no next refresh.
//!   Credentials already cached are served until they stop being servable.
//! - **Resuming.** Whenever a session gets a new token (read from the file or
//!   refreshed) or ends, `SsoSessions` calls the subscribers of `on_change`
//!   (after releasing its own locks), with no task in between. The broker
//!   subscribes when it is built, holding only a weak reference, and calls
//!   `Broker::wake_parked(Park::Login)`: parked nodes that hold a cached
//!   credential are due at once, and every node's loop is woken, so service
//!   resumes after `credd login` without a restart or a request.
//! - **Corrupt files.** A token file that does not parse counts as "not
//!   logged in" with a message naming the file; it is logged once and never
//!   overwritten or deleted by the daemon (only a new login replaces it),
//!   and the session shows `cache_corrupt`.
//! - **Nothing starts a login.** The daemon has no code path that calls
//!   `StartDeviceAuthorization`, builds an authorize URL or opens a browser;
//!   logins exist only in the CLI (`credd/src/sso_cmd.rs`).
//!
//! - **The session's end, estimated** (Identity Center never tells a
//!   client): sign-in plus the session length; see `sso/sign_ins.rs`.
//!
//! `credd status` gets one row per session from `SsoSessions::status`,
//! rendered in `status.rs` (see `docs/http-api.md`, "Control socket").

use crate::clock::Clock;
use crate::refresh::{Driver, Slot, SlotState, Subscribers};
use crate::sessions::SignInStore;
use credd_core::schedule::{Next, Park, Policy, Rule};
use credd_core::sso::{
    FileStamp, Loaded, RegistrationRequest, SsoSession, SsoToken, TokenStore,
    DEFAULT_SESSION_LENGTH,
};
use credd_core::{format_expiration, SecretString, Upstream, UpstreamError, UpstreamErrorKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

mod sign_ins;

use crate::protocol::SessionRow;

/// How often the cache file is checked for a change made by another program.
/// Once a minute, so an idle laptop is not woken more often (issue 16); a
/// control request looks at once (`ControlState::dispatch`'s `sync_all`).
pub const POLL_INTERVAL: Duration = Duration::seconds(60);

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

/// A session slot's value: the token as last read or refreshed, and what
/// is known about its cache file.
#[derive(Debug, Default)]
struct TokenValue {
    token: Option<SsoToken>,
    stamp: Option<FileStamp>,
    /// What the cache file held when it could not be used, logged once.
    corrupt: Option<String>,
    /// The portal refused this access token (revoked or the session ended).
    rejected: Option<String>,
    /// The user was told the session ended.
    notified: bool,
    /// When this session's sign-in happened (recorded or first seen).
    signed_in: Option<OffsetDateTime>,
    /// When a refresh was refused: the session's real end.
    ended_at: Option<OffsetDateTime>,
}

type EntryState = SlotState<TokenValue>;

/// When the loop should refresh, if the token can be refreshed: never while
/// parked on a login (a refresh was refused), at once for a rejected token
/// (unless its refresh is already backing off: retrying at once would spin
/// against a failing endpoint), else at the scheduled time (fixed when the
/// token arrived: half-life needs the time it was first seen, which the file
/// lacks).
fn due(st: &EntryState, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let t = st.value.token.as_ref()?;
    if st.parked().is_some() || !t.refreshable(now) {
        return None;
    }
    if st.value.rejected.is_some() && st.failures == 0 {
        return Some(now);
    }
    Some(st.deadline().unwrap_or(now))
}

#[derive(Debug)]
struct Entry {
    session: SsoSession,
    /// A profile on this session, for the login command of legacy sessions.
    profile: String,
    slot: Arc<Slot<TokenValue>>,
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
    policy: Policy,
    /// Sign-in times, kept across restarts.
    sign_ins: SignInStore,
    /// `[sso] session_length`: for sessions without `credd_session_length`.
    length: Duration,
    entries: Mutex<HashMap<SsoSession, Arc<Entry>>>,
    /// Told when a session's token changes or it ends, so parked nodes retry.
    changed: Subscribers,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl SsoSessions {
    pub fn new(
        upstream: Arc<dyn Upstream>,
        clock: Arc<dyn Clock>,
        store: Arc<dyn TokenStore>,
        notifier: Arc<dyn Notifier>,
        policy: Policy,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                upstream,
                clock,
                store,
                notifier,
                policy,
                sign_ins: SignInStore::disabled(),
                length: DEFAULT_SESSION_LENGTH,
                entries: Mutex::default(),
                changed: Subscribers::default(),
                tasks,
                cancel,
            }),
        }
    }

    /// Records sign-in times in `store` (the daemon's state directory) and
    /// estimates ends with `length` where a session sets none. Called once,
    /// before the sessions are shared.
    pub fn with_sign_ins(mut self, store: SignInStore, length: Duration) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("called before the sessions are shared");
        inner.sign_ins = store;
        inner.length = length;
        self
    }

    /// Calls `f` whenever a session gains a new token or ends (after the
    /// session's own locks are released; `f` must not call back in here).
    pub fn on_change(&self, f: impl Fn() + Send + Sync + 'static) {
        self.inner.changed.subscribe(f);
    }

    fn bump(&self) {
        self.inner.changed.notify();
    }

    fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// The refresh of a token first seen (or refreshed) at `now`.
    fn refresh_due(&self, token: &SsoToken, now: OffsetDateTime) -> Next {
        let policy = &self.inner.policy;
        policy.after_success(Rule::Token, now, token.expires_at, 0.0, None)
    }

    /// Keeps one entry (and one refresher) per session in use; `sessions`
    /// pairs each session with a profile that uses it.
    pub fn register(&self, sessions: Vec<(SsoSession, String)>) {
        let mut entries = self.inner.entries.lock().unwrap();
        let keep: HashMap<SsoSession, String> = sessions.into_iter().collect();
        entries.retain(|s, e| {
            let kept = keep.contains_key(s);
            if !kept {
                e.slot.retire();
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
                slot: Arc::new(Slot::new(TokenValue::default(), self.inner.cancel.clone())),
            });
            self.sync(&entry);
            let span = tracing::info_span!("sso-session", session = %session.cache_key());
            let driver = SessionDriver {
                sessions: self.clone(),
                entry: entry.clone(),
            };
            entry
                .slot
                .start(&self.inner.tasks, self.inner.clock.clone(), span, driver);
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
            let st = entry.slot.state();
            if stamp == st.value.stamp && (stamp.is_some() || st.value.token.is_none()) {
                return false;
            }
        }
        let loaded = self.inner.store.load_token(&entry.session);
        let mut guard = entry.slot.state();
        let st = &mut *guard;
        let changed = match loaded {
            Ok(Loaded::Missing) => {
                st.value.stamp = None;
                st.value.corrupt = None;
                st.value.token.take().is_some()
            }
            Ok(Loaded::Found(token, stamp)) => {
                let same = st.value.token.as_ref().is_some_and(|t| {
                    t.access_token == token.access_token && t.expires_at == token.expires_at
                });
                st.value.stamp = Some(stamp);
                st.value.corrupt = None;
                if !same {
                    tracing::info!(expires = %format_expiration(token.expires_at),
                        "picked up a token from the SSO cache");
                    st.value.signed_in = Some(self.note_sign_in(entry, st, &token));
                    st.value.ended_at = None;
                    // Another program's token: the old one's history (a
                    // backoff, an ended session) no longer applies.
                    st.restart(Some(self.refresh_due(&token, self.now())));
                    st.value.token = Some(token);
                    st.value.rejected = None;
                    st.value.notified = false;
                }
                !same
            }
            Ok(Loaded::Corrupt(err, stamp)) => {
                let what = format!(
                    "the SSO cache file {} cannot be used ({err}); it is left as it is: run `{}` to replace it",
                    self.inner.store.token_path(&entry.session),
                    entry.session.login_command(&entry.profile)
                );
                if st.value.corrupt.as_deref() != Some(what.as_str()) {
                    tracing::warn!("{what}");
                }
                st.value.stamp = Some(stamp);
                st.value.corrupt = Some(what);
                st.value.token.take().is_some()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the SSO cache");
                false
            }
        };
        drop(guard);
        if changed {
            self.bump();
            entry.slot.wake();
        }
        changed
    }

    fn login_required(&self, entry: &Entry, st: &EntryState) -> UpstreamError {
        let cmd = entry.session.login_command(&entry.profile);
        let label = entry.session.label();
        let message = if let Some(c) = &st.value.corrupt {
            c.clone()
        } else if st.value.token.is_none() {
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
            let st = entry.slot.state();
            if let Some(t) = &st.value.token {
                if st.value.rejected.is_none() && t.usable(self.now()) {
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
            let mut st = entry.slot.state();
            if st
                .value
                .token
                .as_ref()
                .is_some_and(|t| &t.access_token == token)
            {
                st.value.rejected = Some(why.to_string());
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
        let _flight = entry.slot.flight().await;
        // Another caller, or another program, may have refreshed meanwhile.
        self.sync(entry);
        let now = self.now();
        let (registration, refresh_token) = {
            let st = entry.slot.state();
            let Some(t) = &st.value.token else {
                return Err(self.login_required(entry, &st));
            };
            let fresh = st.value.rejected.is_none() && t.usable(now);
            // Someone refreshed while this caller queued: use theirs.
            if fresh && (needed || due(&st, now).is_none_or(|d| d > now)) {
                return Ok(t.access_token.clone());
            }
            if st.parked() == Some(Park::Login) || !t.refreshable(now) {
                return if fresh {
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
        let policy = &self.inner.policy;
        let mut st = entry.slot.state();
        match result {
            Ok(grant) => {
                let mut token = st.value.token.clone().expect("checked above");
                token.apply_refresh(grant, now);
                match self.inner.store.save_token(&entry.session, &token) {
                    Ok(stamp) => st.value.stamp = Some(stamp),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not write the refreshed SSO token back; it is kept in memory")
                    }
                }
                tracing::info!(expires = %format_expiration(token.expires_at), "refreshed the SSO access token");
                let access = token.access_token.clone();
                if let Some(at) = st.value.signed_in {
                    self.keep_sign_in(entry.session.cache_key(), at, &token);
                }
                st.succeeded(self.refresh_due(&token, now));
                st.value.token = Some(token);
                st.value.rejected = None;
                drop(st);
                self.bump();
                Ok(access)
            }
            Err(e) => {
                let expires = st.value.token.as_ref().map(|t| t.expires_at);
                match st.failed(policy, Rule::Token, now, &e, expires) {
                    Next::Parked(_) => {
                        // The refresh was refused: only a new login helps.
                        let err = self.login_required(entry, &st);
                        let first = !st.value.notified;
                        st.value.notified = true;
                        st.value.ended_at.get_or_insert(now);
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
                    Next::At(_) => {
                        tracing::warn!(error = %e, failures = st.failures, "refreshing the SSO access token failed");
                        match &st.value.token {
                            Some(t) if st.value.rejected.is_none() && t.usable(now) => {
                                Ok(t.access_token.clone())
                            }
                            _ => Err(e),
                        }
                    }
                }
            }
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

    /// Who tells the user something needs them (also for `aws login`
    /// sessions, `broker/login.rs`).
    pub(crate) fn notifier(&self) -> Arc<dyn Notifier> {
        self.inner.notifier.clone()
    }

    /// One row per session, for `credd status`.
    pub fn status(&self) -> Vec<SessionRow> {
        let now = self.now();
        let entries = self.entries();
        let mut out: Vec<SessionRow> = entries
            .iter()
            .map(|e| {
                self.sync(e);
                let st = e.slot.state();
                crate::status::session_row(
                    &e.session,
                    &e.session.login_command(&e.profile),
                    st.value.token.as_ref(),
                    st.value.corrupt.as_deref(),
                    &st.view(),
                    due(&st, now),
                    now,
                )
            })
            .collect();
        out.sort_by(|a, b| a.session.cmp(&b.session));
        out
    }
}

/// A session's side of the refresh loop: picks up a rewritten cache file,
/// refreshes the token ahead of expiry, re-registers the client before its
/// registration lapses. Never cancelled halfway: a rotated refresh token
/// must reach the file.
struct SessionDriver {
    sessions: SsoSessions,
    entry: Arc<Entry>,
}

#[async_trait::async_trait]
impl Driver for SessionDriver {
    fn deadline(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        due(&self.entry.slot.state(), now)
    }

    fn poll_every(&self) -> Option<Duration> {
        Some(POLL_INTERVAL)
    }

    async fn tick(&self) {
        let (sessions, entry) = (&self.sessions, &self.entry);
        sessions.sync(entry);
        let now = sessions.now();
        if due(&entry.slot.state(), now).is_some_and(|d| d <= now) {
            let _ = sessions.refresh(entry, false).await;
        }
        sessions.renew_registration(entry).await;
    }
}
