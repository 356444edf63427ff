//! The sandbox's whole memory: registered clients, device and authorization
//! codes, user sessions and their tokens, `aws login` sessions and their
//! token families ([`SigninState`]), every access key it issued, used MFA
//! codes, faults, counters and the test-controlled clock.
//!
//! One `std::sync::Mutex` guards it all: every operation is a few map
//! lookups, so contention is irrelevant, and the handle's methods can stay
//! synchronous.

use crate::config::SandboxConfig;
use crate::fault::{Fault, FaultKind};
use base64::Engine as _;
use rand::distributions::{Alphanumeric, Uniform};
use rand::Rng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::oneshot;

/// Shared by the server tasks and the handle.
#[derive(Debug)]
pub struct Shared {
    pub state: std::sync::Mutex<State>,
    /// `http://127.0.0.1:PORT`, for verification URIs.
    pub base_url: String,
}

impl Shared {
    /// Locks the state. A panic while holding the lock leaves plain data
    /// behind, so a poisoned lock is still usable.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug)]
pub struct Client {
    pub secret: String,
    pub grant_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    Redeemed,
}

#[derive(Debug)]
pub struct DeviceAuth {
    pub client_id: String,
    pub user_code: String,
    pub expires_at: OffsetDateTime,
    pub status: DeviceStatus,
    pub last_poll: Option<OffsetDateTime>,
}

#[derive(Debug)]
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub expires_at: OffsetDateTime,
}

/// The Identity Center user session a login starts; it bounds every token
/// refreshed from that login.
#[derive(Debug)]
pub struct UserSession {
    pub ends_at: OffsetDateTime,
    pub ended: bool,
}

#[derive(Debug)]
pub struct AccessToken {
    pub session: usize,
    pub expires_at: OffsetDateTime,
    pub refresh_token: Option<String>,
    pub revoked: bool,
}

#[derive(Debug)]
pub struct RefreshToken {
    pub session: usize,
    pub client_id: String,
    pub revoked: bool,
}

/// Who an access key belongs to, as GetCallerIdentity reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub arn: String,
    pub user_id: String,
    pub account: String,
}

/// A temporary access key the sandbox issued.
#[derive(Debug)]
pub struct IssuedKey {
    /// Kept for the federation endpoint, which is given the whole key.
    pub secret_access_key: String,
    pub session_token: String,
    pub expires_at: OffsetDateTime,
    pub identity: Identity,
}

/// Temporary credentials as they go on the wire.
#[derive(Debug)]
pub struct NewCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expires_at: OffsetDateTime,
}

/// A request for approval that `/authorize` holds open in manual mode.
#[derive(Debug)]
pub struct PendingAuthorize {
    pub decide: oneshot::Sender<bool>,
}

/// An authorization code from Sign-In's `/v1/authorize`.
#[derive(Debug)]
pub struct SigninCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub expires_at: OffsetDateTime,
}

/// One `aws login` session: a code exchange and the family of refresh
/// tokens rotated from it, all bound to the DPoP key of the exchange.
#[derive(Debug)]
pub struct LoginSession {
    pub identity: String,
    pub client_id: String,
    /// The RFC 7638 thumbprint of the DPoP key used at the code exchange.
    pub thumbprint: String,
    pub ends_at: OffsetDateTime,
    /// Ended by a test, or revoked because a rotated-out token came back.
    pub ended: bool,
    /// The user's password changed: refresh answers USER_CREDENTIALS_CHANGED.
    pub credentials_changed: bool,
}

/// A Sign-In refresh token: its family (session) and whether it has
/// already been rotated out, so a second use is detected as reuse.
#[derive(Debug)]
pub struct LoginRefreshToken {
    pub session: usize,
    pub used: bool,
}

/// A federation signin token (`getSigninToken`), redeemable once.
#[derive(Debug)]
pub struct SigninToken {
    pub expires_at: OffsetDateTime,
    pub used: bool,
}

/// Everything AWS Sign-In and the federation endpoint remember.
#[derive(Debug, Default)]
pub struct SigninState {
    pub codes: HashMap<String, SigninCode>,
    pub sessions: Vec<LoginSession>,
    pub refresh_tokens: HashMap<String, LoginRefreshToken>,
    /// DPoP `jti`s seen, with their `iat`, pruned once too old to replay.
    pub seen_jti: HashMap<String, i64>,
    pub signin_tokens: HashMap<String, SigninToken>,
}

#[derive(Debug)]
pub struct ActiveFault {
    pub fault: Fault,
    pub remaining: Option<u32>,
}

#[derive(Debug, Default)]
pub struct State {
    pub config: SandboxConfig,
    pub clock_offset: Duration,
    pub clients: HashMap<String, Client>,
    pub devices: HashMap<String, DeviceAuth>,
    pub auth_codes: HashMap<String, AuthCode>,
    pub pending_authorize: Vec<PendingAuthorize>,
    pub sessions: Vec<UserSession>,
    pub access_tokens: HashMap<String, AccessToken>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub keys: HashMap<String, IssuedKey>,
    /// (MFA serial, time step) pairs already redeemed.
    pub used_totp: HashSet<(String, u64)>,
    pub faults: Vec<ActiveFault>,
    pub counts: BTreeMap<String, u64>,
    pub signin: SigninState,
    /// The HMAC key of `/_sandbox/encode-message`, so that
    /// DecodeAuthorizationMessage can tell a garbled message.
    pub message_key: [u8; 32],
}

impl State {
    pub fn new(config: SandboxConfig) -> Self {
        State {
            config,
            message_key: rand::thread_rng().gen(),
            ..State::default()
        }
    }

    /// The sandbox clock: wall time moved forward by what tests advanced it.
    // The sandbox is a fake AWS with its own (offset) wall clock.
    #[allow(clippy::disallowed_methods)]
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.clock_offset
    }

    /// The real wall clock, not moved by tests: what DPoP proofs' `iat` is
    /// checked against, since clients stamp proofs with their own real time.
    // The sandbox is a fake AWS with its own wall clock.
    #[allow(clippy::disallowed_methods)]
    pub fn real_now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    pub fn count(&mut self, operation: &str) {
        *self.counts.entry(operation.to_owned()).or_default() += 1;
    }

    /// Consumes one firing of the first fault that matches, if any.
    pub fn take_fault(&mut self, operation: &str, detail: Option<&str>) -> Option<FaultKind> {
        let index = self
            .faults
            .iter()
            .position(|f| f.remaining != Some(0) && f.fault.matches(operation, detail))?;
        let active = &mut self.faults[index];
        let kind = active.fault.kind.clone();
        if let Some(n) = active.remaining.as_mut() {
            *n -= 1;
        }
        self.faults.retain(|f| f.remaining != Some(0));
        Some(kind)
    }

    /// Starts a user session, as a completed login does.
    pub fn start_session(&mut self) -> usize {
        let ends_at = self.now() + self.config.session_lifetime;
        self.sessions.push(UserSession {
            ends_at,
            ended: false,
        });
        self.sessions.len() - 1
    }

    pub fn session_live(&self, session: usize) -> bool {
        self.sessions
            .get(session)
            .is_some_and(|s| !s.ended && s.ends_at > self.now())
    }

    /// Issues a temporary key for `identity` and remembers it, so that
    /// GetCallerIdentity and signed STS calls can tell whose it is and
    /// whether it has expired.
    pub fn issue_key(&mut self, identity: Identity, lifetime: Duration) -> NewCredentials {
        let credentials = NewCredentials {
            access_key_id: format!("ASIA{}", random_upper(16)),
            secret_access_key: random_alnum(40),
            session_token: random_b64(240),
            expires_at: self.now() + lifetime,
        };
        self.keys.insert(
            credentials.access_key_id.clone(),
            IssuedKey {
                secret_access_key: credentials.secret_access_key.clone(),
                session_token: credentials.session_token.clone(),
                expires_at: credentials.expires_at,
                identity,
            },
        );
        credentials
    }
}

/// Random letters and digits, for identifiers.
pub fn random_alnum(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Random upper-case base32 characters, the alphabet of AWS key ids.
pub fn random_upper(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let dist = Uniform::from(0..ALPHABET.len());
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.sample(dist)]))
        .collect()
}

/// `bytes` random bytes in URL-safe base64, for tokens and secrets.
pub fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill(&mut buf[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

impl State {
    /// Ends every user session so far, Identity Center and `aws login`
    /// alike, so every access and refresh token issued from them stops
    /// working, as when an administrator revokes the user's sessions or the
    /// session times out.
    pub fn end_sessions(&mut self) -> usize {
        let mut ended = 0;
        for session in self.sessions.iter_mut().filter(|s| !s.ended) {
            session.ended = true;
            ended += 1;
        }
        // Login sessions past their end are not counted: nothing is ended.
        let now = self.now();
        for session in self
            .signin
            .sessions
            .iter_mut()
            .filter(|s| !s.ended && s.ends_at > now)
        {
            session.ended = true;
            ended += 1;
        }
        ended
    }

    /// Marks every live `aws login` session as having had its user's
    /// password changed: their next refresh answers USER_CREDENTIALS_CHANGED.
    pub fn change_login_credentials(&mut self) -> usize {
        let mut changed = 0;
        let now = self.now();
        for session in self
            .signin
            .sessions
            .iter_mut()
            .filter(|s| !s.ended && s.ends_at > now)
        {
            session.credentials_changed = true;
            changed += 1;
        }
        changed
    }

    /// Approves or denies every pending device authorization and every
    /// `/authorize` request waiting for a decision; returns how many.
    pub fn decide_pending(&mut self, approve: bool) -> usize {
        let now = self.now();
        let mut decided = 0;
        for device in self
            .devices
            .values_mut()
            .filter(|d| d.status == DeviceStatus::Pending && d.expires_at > now)
        {
            device.status = if approve {
                DeviceStatus::Approved
            } else {
                DeviceStatus::Denied
            };
            decided += 1;
        }
        for pending in self.pending_authorize.drain(..) {
            // A browser that gave up has dropped its receiver; it is not
            // counted as decided.
            if pending.decide.send(approve).is_ok() {
                decided += 1;
            }
        }
        decided
    }

    /// How many device authorizations and `/authorize` requests wait for a
    /// decision.
    pub fn pending_count(&self) -> usize {
        let now = self.now();
        let devices = self
            .devices
            .values()
            .filter(|d| d.status == DeviceStatus::Pending && d.expires_at > now)
            .count();
        let browsers = self
            .pending_authorize
            .iter()
            .filter(|p| !p.decide.is_closed())
            .count();
        devices + browsers
    }
}
