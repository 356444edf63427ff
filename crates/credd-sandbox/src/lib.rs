//! credd-sandbox: a local stand-in for the STS, SSO OIDC, SSO portal, AWS
//! Sign-In and console federation endpoints, for tests and `credd demo`.
//!
//! Invariant: a loopback-only, in-memory fake of STS, SSO OIDC, the SSO
//! portal, AWS Sign-In and the console federation endpoint,
//! wire-compatible with botocore and the AWS SDKs, whose clock, lifetimes,
//! faults and counters tests control; it holds no real secret and never
//! talks to AWS.
//!
//! One HTTP/1 server on loopback serves all of them on distinct paths, so
//! a client points `AWS_ENDPOINT_URL_SSO`, `AWS_ENDPOINT_URL_SSO_OIDC`,
//! `AWS_ENDPOINT_URL_STS` and `AWS_ENDPOINT_URL_SIGNIN` at the same
//! [`SandboxHandle::url`]:
//!
//! - SSO OIDC: `POST /client/register`, `POST /device_authorization`,
//!   `POST /token`, plus `GET /authorize` (the browser side of the
//!   authorization-code flow) and `GET /device?user_code=` (the browser side
//!   of the device flow; visiting it approves).
//! - SSO portal: `GET /federation/credentials`, `GET /assignment/accounts`,
//!   `GET /assignment/roles`, `POST /logout`.
//! - STS: `POST /` with `Action=...` (awsQuery): AssumeRole,
//!   GetSessionToken, AssumeRoleWithWebIdentity, AssumeRoleWithSAML,
//!   GetFederationToken, DecodeAuthorizationMessage, GetCallerIdentity.
//! - AWS Sign-In (`aws login`, `AWS_ENDPOINT_URL_SIGNIN`): `GET
//!   /v1/authorize` (same-device: redirect to the loopback callback;
//!   cross-device: to `GET /v1/sessions/confirmation`, the page showing the
//!   code to paste), `POST /v1/token` (CreateOAuth2Token, DPoP-proven).
//! - Console federation: `GET /federation?Action=getSigninToken` and
//!   `GET /federation?Action=login`.
//! - Control: `/_sandbox/...`, the HTTP twin of [`SandboxHandle`]'s
//!   methods, for tests in other processes: `GET counts`, `DELETE counts`,
//!   `POST end-session`, `POST seed-login`, `POST change-login-credentials`, `POST approve`,
//!   `POST deny`, `GET pending`, `POST encode-message` (any JSON ->
//!   `{"message": encoded}` for DecodeAuthorizationMessage),
//!   `POST fault` ([`FaultSpec`]), `DELETE faults`, `POST config`
//!   ([`ConfigPatch`]), `POST advance-clock` (`{"seconds": N}`).
//!
//! Also the client side of a sign-in: [`browser::visit`], a stand-in
//! browser that follows the sign-in page's redirects to the callback.

pub mod browser;
mod config;
mod control;
mod dpop;
mod error;
mod fault;
mod federation;
mod http;
mod oidc;
mod portal;
mod saml;
mod server;
mod signin;
mod state;
mod sts;
mod totp;

pub use config::{Account, ConfigPatch, SandboxConfig, DEMO_ACCESS_KEY_ID};
pub use fault::{ErrorSpec, Fault, FaultKind, FaultSpec};
pub use oidc::pkce_challenge;
pub use signin::{CLIENT_CROSS_DEVICE, CLIENT_SAME_DEVICE};
pub use totp::{totp_code, InvalidSecret};

use state::{ActiveFault, Shared, State};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

/// How long [`SandboxHandle::shutdown`] waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Starts sandboxes.
#[derive(Debug, Clone, Copy)]
pub struct Sandbox;

impl Sandbox {
    /// Starts a sandbox on `127.0.0.1` and a free port.
    pub async fn start(config: SandboxConfig) -> io::Result<SandboxHandle> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts a sandbox on `addr`, which must be a loopback address: the
    /// sandbox vends credentials to anyone who asks and must not be
    /// reachable from another machine.
    pub async fn start_on(addr: SocketAddr, config: SandboxConfig) -> io::Result<SandboxHandle> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the sandbox listens on loopback only, not {addr}"),
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: std::sync::Mutex::new(State::new(config)),
            base_url: format!("http://{addr}"),
        });
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(
            server::accept_loop(listener, shared.clone(), cancel.clone(), tracker.clone())
                .instrument(tracing::info_span!("credd_sandbox", %addr)),
        );
        tracing::info!(%addr, "sandbox listening");
        Ok(SandboxHandle {
            shared,
            addr,
            cancel,
            tracker,
        })
    }
}

/// A running sandbox. Every method is synchronous and cheap; dropping the
/// handle stops the server (use [`SandboxHandle::shutdown`] to wait for it).
pub struct SandboxHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

// Written by hand: the state holds live tokens that must not be printed.
impl fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl SandboxHandle {
    /// `http://127.0.0.1:PORT`, the endpoint URL for every service.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (up to a grace
    /// period) and returns when every server task has ended.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("sandbox tasks still running after the shutdown grace period");
        }
    }

    /// A copy of the current configuration.
    pub fn config(&self) -> SandboxConfig {
        self.shared.lock().config.clone()
    }

    /// Replaces the configuration; it applies to requests from now on.
    pub fn set_config(&self, config: SandboxConfig) {
        self.shared.lock().config = config;
    }

    /// Changes the configuration in place.
    pub fn update(&self, change: impl FnOnce(&mut SandboxConfig)) {
        change(&mut self.shared.lock().config);
    }

    /// Ends every Identity Center and `aws login` session so far: each
    /// access token and refresh token issued until now stops working (SSO
    /// refresh answers InvalidGrantException, the portal 401, Sign-In
    /// refresh `TOKEN_EXPIRED`). Returns how many ended.
    pub fn end_session(&self) -> usize {
        self.shared.lock().end_sessions()
    }

    /// Signs the `login_identity` in as if `aws login` had just run, without
    /// a browser, and returns the cache file the CLI would write for it
    /// (with its `dpopKey`), for a test to put in `AWS_LOGIN_CACHE_DIRECTORY`
    /// as `<hex sha256 of the identity ARN>.json`. The JSON is a value:
    /// the test writes it in whatever layout it checks.
    pub fn seed_login(&self) -> serde_json::Value {
        signin::seed_login(&self.shared)
    }

    /// Changes the password of every live `aws login` session's user: their
    /// next refresh answers `USER_CREDENTIALS_CHANGED`. Returns how many.
    pub fn change_login_credentials(&self) -> usize {
        self.shared.lock().change_login_credentials()
    }

    /// Approves every pending device authorization and held `/authorize`
    /// request; returns how many.
    pub fn approve_pending(&self) -> usize {
        self.shared.lock().decide_pending(true)
    }

    /// Denies every pending device authorization and held `/authorize`
    /// request; returns how many.
    pub fn deny_pending(&self) -> usize {
        self.shared.lock().decide_pending(false)
    }

    /// How many device authorizations and `/authorize` requests wait for a
    /// decision, so a test can wait for a browser to arrive.
    pub fn pending_approvals(&self) -> usize {
        self.shared.lock().pending_count()
    }

    /// Encodes `message` (the JSON AWS hides in an "encoded authorization
    /// failure message") so that DecodeAuthorizationMessage answers it.
    pub fn encode_message(&self, message: &serde_json::Value) -> String {
        sts::encode_message(&self.shared.lock().message_key, message)
    }

    /// Adds a fault; faults are tried in the order they were added.
    pub fn inject_fault(&self, fault: Fault) {
        let remaining = fault.times;
        self.shared
            .lock()
            .faults
            .push(ActiveFault { fault, remaining });
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Requests received per operation, faulted ones included. CreateToken
    /// is also counted per grant: `CreateToken:device_code`,
    /// `CreateToken:authorization_code`, `CreateToken:refresh_token`, and
    /// so is Sign-In's `CreateOAuth2Token` (`CreateOAuth2Token:refresh_token`).
    /// Besides operations: `RefreshTokenReuse`, each rotated-out Sign-In
    /// refresh token presented again.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.shared.lock().counts.clone()
    }

    /// Requests received for one operation.
    pub fn count(&self, operation: &str) -> u64 {
        self.shared
            .lock()
            .counts
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    pub fn reset_counts(&self) {
        self.shared.lock().counts.clear();
    }

    /// Moves the sandbox clock forward, so expiry is tested without
    /// sleeping. Every lifetime and TOTP step is measured on this clock.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.lock().clock_offset += by;
    }

    /// The sandbox clock's current time.
    pub fn now(&self) -> OffsetDateTime {
        self.shared.lock().now()
    }

    /// Every access token issued so far, live or not, so a test can seed a
    /// token cache or call the portal directly.
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.shared.lock().access_tokens.keys().cloned().collect()
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.tracker.close();
    }
}
