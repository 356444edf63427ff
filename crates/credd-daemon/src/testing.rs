//! Test doubles: a fake upstream that counts calls and can be told to fail
//! or stall, and helpers to build a broker over it with a manual clock.

use crate::broker::Broker;
use crate::clock::{Clock, ManualClock};
use crate::sessions::SessionStore;
use async_trait::async_trait;
use credd_core::profile::{resolve_all, RawProfiles, RoleStep};
use credd_core::schedule::Policy;
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
    let broker = Broker::new(
        upstream.clone(),
        clock.clone() as Arc<dyn Clock>,
        policy,
        sessions,
        tasks.clone(),
        cancel.clone(),
    );
    broker.load_plans(resolve_all(raw));
    Harness {
        clock,
        upstream,
        broker,
        cancel,
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
