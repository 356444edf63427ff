//! Test doubles: a fake upstream that counts calls and can be told to fail
//! or stall, and helpers to build a broker over it with a manual clock.

use crate::broker::Broker;
use crate::clock::{Clock, ManualClock};
use crate::sessions::SessionStore;
use crate::sso::{Notifier, SsoSessions};
use async_trait::async_trait;
use credd_core::profile::{resolve_all, RawProfiles, RoleStep};
use credd_core::schedule::Policy;
use credd_core::sso::{
    ClientRegistration, FileStamp, Loaded, RegistrationRequest, SsoSession, SsoToken, StoreError,
    TokenGrant, TokenStore,
};
use credd_core::upstream::{CallContext, CallerIdentity, SourceCredentials};
use credd_core::{
    LongTermKeys, SecretString, TemporaryCredentials, Upstream, UpstreamError, UpstreamErrorKind,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const T0: OffsetDateTime = time::macros::datetime!(2026-11-23 09:00 UTC);

#[derive(Debug)]
pub struct FakeUpstream {
    pub clock: Arc<ManualClock>,
    pub calls: Mutex<BTreeMap<String, u64>>,
    pub serial: AtomicU64,
    /// Lifetime of what it issues.
    pub lifetime: Mutex<time::Duration>,
    /// Lifetime of MFA sessions, when different from `lifetime`.
    pub mfa_lifetime: Mutex<Option<time::Duration>>,
    /// When set, every call fails with this.
    pub fail: Mutex<Option<UpstreamError>>,
    /// Delay every call (lets concurrent requests pile up).
    pub delay: Mutex<std::time::Duration>,
    pub good_code: String,
    pub sso: Mutex<FakeSso>,
    pub login: Mutex<FakeLogin>,
}

/// The fake's `aws login` side: one cache file per session ARN.
#[derive(Debug)]
pub struct FakeLogin {
    pub files: BTreeMap<String, FakeLoginFile>,
    /// Lifetime of refreshed credentials (Sign-In's 15 min).
    pub credential_lifetime: time::Duration,
    /// Refreshes made (each spends a refresh token).
    pub refreshes: u64,
}

impl Default for FakeLogin {
    fn default() -> Self {
        Self {
            files: BTreeMap::new(),
            credential_lifetime: time::Duration::minutes(15),
            refreshes: 0,
        }
    }
}

/// One session's cache file.
#[derive(Debug)]
pub struct FakeLoginFile {
    pub creds: TemporaryCredentials,
    /// The session was revoked: the next refresh is refused.
    pub ended: bool,
    /// Bumped by each write (the file's stamp).
    pub generation: u64,
}

impl FakeUpstream {
    /// `aws login` (or another program's refresh) wrote a new file for
    /// `arn` whose credentials last `life`.
    pub fn sign_in(&self, arn: &str, life: time::Duration) {
        let creds = self.issue_for("F", life);
        let mut l = self.login.lock().unwrap();
        let generation = l.files.get(arn).map_or(0, |f| f.generation) + 1;
        l.files.insert(
            arn.to_string(),
            FakeLoginFile {
                creds,
                ended: false,
                generation,
            },
        );
    }

    /// The session was revoked (password changed, signed out elsewhere).
    pub fn end_login(&self, arn: &str) {
        if let Some(f) = self.login.lock().unwrap().files.get_mut(arn) {
            f.ended = true;
        }
    }

    pub fn login_refreshes(&self) -> u64 {
        self.login.lock().unwrap().refreshes
    }

    /// What the fake cache file holds now.
    pub fn login_file_expiry(&self, arn: &str) -> Option<OffsetDateTime> {
        self.login
            .lock()
            .unwrap()
            .files
            .get(arn)
            .map(|f| f.creds.expiration())
    }
}

impl FakeUpstream {
    pub fn new(clock: Arc<ManualClock>) -> Arc<Self> {
        Arc::new(Self {
            clock,
            calls: Mutex::default(),
            serial: AtomicU64::new(0),
            lifetime: Mutex::new(time::Duration::hours(1)),
            mfa_lifetime: Mutex::new(None),
            fail: Mutex::new(None),
            delay: Mutex::new(std::time::Duration::ZERO),
            good_code: "123456".into(),
            sso: Mutex::default(),
            login: Mutex::default(),
        })
    }
    pub fn count(&self, op: &str) -> u64 {
        self.calls.lock().unwrap().get(op).copied().unwrap_or(0)
    }
    async fn enter(&self, op: &str) -> Result<(), UpstreamError> {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(op.to_string())
            .or_default() += 1;
        let d = *self.delay.lock().unwrap();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
        match self.fail.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
    fn issue(&self, tag: &str) -> TemporaryCredentials {
        let life = *self.lifetime.lock().unwrap();
        self.issue_for(tag, life)
    }
    fn issue_for(&self, tag: &str, life: time::Duration) -> TemporaryCredentials {
        let n = self.serial.fetch_add(1, Ordering::SeqCst);
        TemporaryCredentials::new(
            format!("ASIA{tag}{n}"),
            SecretString::new(format!("secret-{tag}-{n}")),
            SecretString::new(format!("token-{tag}-{n}")),
            self.clock.now() + life,
            Some("123456789012".into()),
        )
        .unwrap()
    }
}

#[async_trait]
impl Upstream for FakeUpstream {
    async fn get_session_token(
        &self,
        _ctx: &CallContext,
        keys: &LongTermKeys,
        mfa: Option<(&str, &SecretString)>,
        _duration_secs: u64,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        self.enter(if mfa.is_some() {
            "GetSessionToken+MFA"
        } else {
            "GetSessionToken"
        })
        .await?;
        assert!(keys.access_key_id.starts_with("AKIA"));
        if let Some((_, code)) = mfa {
            if code.expose() != self.good_code {
                return Err(UpstreamError::new(
                    UpstreamErrorKind::InvalidMfa,
                    "invalid MFA one time pass code",
                ));
            }
            if let Some(life) = *self.mfa_lifetime.lock().unwrap() {
                return Ok(self.issue_for("M", life));
            }
        }
        Ok(self.issue("S"))
    }
    async fn assume_role(
        &self,
        _ctx: &CallContext,
        source: &TemporaryCredentials,
        role: &RoleStep,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        self.enter("AssumeRole").await?;
        assert!(source.access_key_id().starts_with("ASIA"));
        assert!(role.role_arn.starts_with("arn:aws:iam::"));
        Ok(self.issue("R"))
    }
    async fn assume_role_with_web_identity(
        &self,
        _ctx: &CallContext,
        _role_arn: &str,
        _session_name: &str,
        _token_file: &str,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        self.enter("AssumeRoleWithWebIdentity").await?;
        Ok(self.issue("W"))
    }
    async fn credential_process(
        &self,
        _ctx: &CallContext,
        _command: &str,
    ) -> Result<SourceCredentials, UpstreamError> {
        self.enter("credential_process").await?;
        Ok(SourceCredentials::LongTerm(LongTermKeys {
            access_key_id: "AKIAPROCESS".into(),
            secret_access_key: SecretString::new("long-term-canary"),
        }))
    }
    async fn environment(&self) -> Result<SourceCredentials, UpstreamError> {
        self.enter("environment").await?;
        Ok(SourceCredentials::Temporary(self.issue("E")))
    }
    async fn mfa_code(&self, _command: &str) -> Result<SecretString, UpstreamError> {
        self.enter("mfa_process").await?;
        Ok(SecretString::new(self.good_code.clone()))
    }
    async fn caller_identity(
        &self,
        _ctx: &CallContext,
        creds: &TemporaryCredentials,
    ) -> Result<CallerIdentity, UpstreamError> {
        self.enter("GetCallerIdentity").await?;
        Ok(CallerIdentity {
            account: "123456789012".into(),
            arn: format!(
                "arn:aws:sts::123456789012:assumed-role/x/{}",
                creds.access_key_id()
            ),
            user_id: "AROA:x".into(),
        })
    }
    async fn sso_role_credentials(
        &self,
        _session: &SsoSession,
        access_token: &SecretString,
        _account_id: &str,
        _role_name: &str,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        self.enter("GetRoleCredentials").await?;
        let sso = self.sso.lock().unwrap();
        if sso.revoked.iter().any(|t| t == access_token.expose())
            || !access_token.expose().starts_with("access-")
        {
            return Err(UpstreamError::new(
                UpstreamErrorKind::LoginRequired,
                "the IAM Identity Center token was refused",
            ));
        }
        drop(sso);
        Ok(self.issue("P"))
    }
    async fn sso_refresh_token(
        &self,
        _session: &SsoSession,
        client: &ClientRegistration,
        refresh_token: &SecretString,
    ) -> Result<TokenGrant, UpstreamError> {
        self.enter("CreateToken:refresh_token").await?;
        let mut sso = self.sso.lock().unwrap();
        if sso.session_ended || client.client_id != sso.client_id {
            return Err(UpstreamError::new(
                UpstreamErrorKind::LoginRequired,
                "InvalidGrantException: the refresh token is no longer valid",
            ));
        }
        assert!(refresh_token.expose().starts_with("refresh-"));
        let n = self.serial.fetch_add(1, Ordering::SeqCst);
        Ok(TokenGrant {
            access_token: SecretString::new(format!("access-{n}")),
            expires_in_secs: sso.token_lifetime_secs,
            refresh_token: sso
                .rotate
                .then(|| SecretString::new(format!("refresh-{n}"))),
        })
        .inspect(|_| sso.refreshes += 1)
    }
    /// As `AwsUpstream` does with the cache file: the file's credentials
    /// while they have more than the refresh margin left, else a refresh
    /// (counted as `CreateOAuth2Token`) written back; no file or an ended
    /// session is `LoginRequired`.
    async fn login_credentials(
        &self,
        _ctx: &CallContext,
        login: &credd_core::login::LoginRef,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        self.enter("LoginCredentials").await?;
        let now = self.clock.now();
        let mut l = self.login.lock().unwrap();
        let lifetime = l.credential_lifetime;
        let Some(file) = l.files.get_mut(&login.session.arn) else {
            return Err(UpstreamError::new(
                UpstreamErrorKind::LoginRequired,
                format!(
                    "no aws login session for profile '{}': run {}",
                    login.profile,
                    credd_core::login::LoginSession::login_commands(&login.profile)
                ),
            ));
        };
        if file.creds.expiration() - now > credd_core::login::LOGIN_REFRESH_MARGIN {
            return Ok(file.creds.clone());
        }
        if file.ended {
            return Err(UpstreamError::new(
                UpstreamErrorKind::LoginRequired,
                format!(
                    "the aws login session of profile '{}' has ended (TOKEN_EXPIRED); sign in again: run {}",
                    login.profile,
                    credd_core::login::LoginSession::login_commands(&login.profile)
                ),
            ));
        }
        let creds = self.issue_for("L", lifetime);
        file.creds = creds.clone();
        file.generation += 1;
        l.refreshes += 1;
        Ok(creds)
    }

    fn login_stamp(&self, login: &credd_core::login::LoginRef) -> Option<FileStamp> {
        let l = self.login.lock().unwrap();
        l.files.get(&login.session.arn).map(|f| FileStamp {
            modified_nanos: i128::from(f.generation),
            len: 1,
            inode: 1,
        })
    }

    async fn assume_role_with_saml(
        &self,
        _ctx: &CallContext,
        spec: &credd_core::login::SamlSpec,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        self.enter("AssumeRoleWithSAML").await?;
        // As STS: the IdP's ARN names a SAML provider, and the session lasts
        // what `duration_seconds` asked for (else the fake's lifetime).
        assert!(spec.principal_arn.contains(":saml-provider/"));
        assert!(spec.role_arn.starts_with("arn:aws:iam::"));
        let life = spec.duration_secs.map_or_else(
            || *self.lifetime.lock().unwrap(),
            |d| time::Duration::seconds(d as i64),
        );
        Ok(self.issue_for("A", life))
    }

    async fn sso_register_client(
        &self,
        _session: &SsoSession,
        request: &RegistrationRequest,
    ) -> Result<ClientRegistration, UpstreamError> {
        self.enter("RegisterClient").await?;
        let n = self.serial.fetch_add(1, Ordering::SeqCst);
        Ok(ClientRegistration {
            client_id: format!("client-{n}"),
            client_secret: SecretString::new(format!("client-secret-{n}")),
            expires_at: self.clock.now() + time::Duration::days(90),
            scopes: Some(request.scopes.clone()),
            grant_types: Some(request.grant_types.clone()),
        })
    }
}

/// The fake's IAM Identity Center side.
#[derive(Debug)]
pub struct FakeSso {
    /// The client refresh tokens are bound to.
    pub client_id: String,
    pub session_ended: bool,
    pub revoked: Vec<String>,
    pub token_lifetime_secs: i64,
    /// Whether a refresh returns a new refresh token.
    pub rotate: bool,
    pub refreshes: u64,
}

impl Default for FakeSso {
    fn default() -> Self {
        Self {
            client_id: "client-0".into(),
            session_ended: false,
            revoked: vec![],
            token_lifetime_secs: 3600,
            rotate: false,
            refreshes: 0,
        }
    }
}

/// An in-memory SSO cache; counts writes.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    pub tokens: Mutex<BTreeMap<String, (Vec<u8>, u64)>>,
    pub registrations: Mutex<BTreeMap<String, ClientRegistration>>,
    pub writes: AtomicU64,
}

impl MemoryTokenStore {
    /// Writes raw bytes, as another program would.
    pub fn put_raw(&self, session: &SsoSession, data: &[u8]) {
        let mut t = self.tokens.lock().unwrap();
        let gen = t.get(session.cache_key()).map_or(1, |(_, g)| g + 1);
        t.insert(session.cache_key().to_string(), (data.to_vec(), gen));
    }
    pub fn get(&self, session: &SsoSession) -> Option<SsoToken> {
        let t = self.tokens.lock().unwrap();
        SsoToken::from_json(&t.get(session.cache_key())?.0).ok()
    }
    fn stamp(gen: u64, len: usize) -> FileStamp {
        FileStamp {
            modified_nanos: gen as i128,
            len: len as u64,
            inode: 1,
        }
    }
}

impl TokenStore for MemoryTokenStore {
    fn load_token(&self, session: &SsoSession) -> Result<Loaded<SsoToken>, StoreError> {
        let t = self.tokens.lock().unwrap();
        Ok(match t.get(session.cache_key()) {
            None => Loaded::Missing,
            Some((data, gen)) => match SsoToken::from_json(data) {
                Ok(tok) => Loaded::Found(tok, Self::stamp(*gen, data.len())),
                Err(e) => Loaded::Corrupt(e, Self::stamp(*gen, data.len())),
            },
        })
    }
    fn save_token(&self, session: &SsoSession, token: &SsoToken) -> Result<FileStamp, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.put_raw(session, token.to_json().as_bytes());
        Ok(self.token_stamp(session).expect("just written"))
    }
    fn remove_token(&self, session: &SsoSession) -> Result<bool, StoreError> {
        Ok(self
            .tokens
            .lock()
            .unwrap()
            .remove(session.cache_key())
            .is_some())
    }
    fn token_stamp(&self, session: &SsoSession) -> Option<FileStamp> {
        let t = self.tokens.lock().unwrap();
        t.get(session.cache_key())
            .map(|(d, g)| Self::stamp(*g, d.len()))
    }
    fn load_registration(
        &self,
        session: &SsoSession,
    ) -> Result<Loaded<ClientRegistration>, StoreError> {
        Ok(
            match self.registrations.lock().unwrap().get(session.cache_key()) {
                Some(r) => Loaded::Found(r.clone(), Self::stamp(1, 1)),
                None => Loaded::Missing,
            },
        )
    }
    fn save_registration(
        &self,
        session: &SsoSession,
        registration: &ClientRegistration,
    ) -> Result<(), StoreError> {
        self.registrations
            .lock()
            .unwrap()
            .insert(session.cache_key().to_string(), registration.clone());
        Ok(())
    }
    fn token_path(&self, session: &SsoSession) -> String {
        format!("memory:{}", session.token_file_name())
    }
}

/// Records notifications instead of showing them.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    pub sent: Mutex<Vec<(String, String)>>,
}

impl Notifier for RecordingNotifier {
    fn notify(&self, title: &str, body: &str) {
        self.sent
            .lock()
            .unwrap()
            .push((title.to_string(), body.to_string()));
    }
}

pub use credd_core::profile::raw_from as raw;

/// The profiles most tests use: static keys, a role on them, an MFA role,
/// a chained role and a credential_process profile.
pub fn sample() -> RawProfiles {
    raw(&[
        (
            "base",
            &[
                ("aws_access_key_id", "AKIABASE"),
                ("aws_secret_access_key", "long-term-canary"),
            ],
        ),
        (
            "dev",
            &[
                ("role_arn", "arn:aws:iam::111111111111:role/Dev"),
                ("source_profile", "base"),
            ],
        ),
        (
            "mfa-a",
            &[
                ("role_arn", "arn:aws:iam::111111111111:role/A"),
                ("source_profile", "base"),
                ("mfa_serial", "arn:aws:iam::1:mfa/me"),
            ],
        ),
        (
            "mfa-b",
            &[
                ("role_arn", "arn:aws:iam::111111111111:role/B"),
                ("source_profile", "base"),
                ("mfa_serial", "arn:aws:iam::1:mfa/me"),
            ],
        ),
        (
            "chained",
            &[
                ("role_arn", "arn:aws:iam::222222222222:role/C"),
                ("source_profile", "dev"),
            ],
        ),
        ("proc", &[("credential_process", "tool")]),
    ])
}

pub struct Harness {
    pub clock: Arc<ManualClock>,
    pub upstream: Arc<FakeUpstream>,
    pub broker: Broker,
    pub cancel: CancellationToken,
    pub sso_store: Arc<MemoryTokenStore>,
    pub notifier: Arc<RecordingNotifier>,
}

pub fn harness_with(raw: &RawProfiles, sessions: SessionStore, policy: Policy) -> Harness {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(std::env::var("CREDD_TEST_LOG").unwrap_or_else(|_| "off".into()))
        .try_init();
    let clock = Arc::new(ManualClock::new(T0));
    let upstream = FakeUpstream::new(clock.clone());
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    let sso_store = Arc::new(MemoryTokenStore::default());
    let notifier = Arc::new(RecordingNotifier::default());
    let broker = Broker::new(
        upstream.clone(),
        clock.clone() as Arc<dyn Clock>,
        policy,
        sessions,
        SsoSessions::new(
            upstream.clone(),
            clock.clone(),
            sso_store.clone(),
            notifier.clone(),
            policy,
            tasks.clone(),
            cancel.child_token(),
        ),
        tasks.clone(),
        cancel.clone(),
    );
    broker.load_plans(resolve_all(raw));
    Harness {
        clock,
        upstream,
        broker,
        cancel,
        sso_store,
        notifier,
    }
}

pub fn harness() -> Harness {
    let policy = Policy {
        jitter: time::Duration::ZERO,
        ..Policy::default()
    };
    harness_with(&sample(), SessionStore::disabled(), policy)
}

/// Lets spawned tasks run until nothing is ready (the clock does not move).
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}
