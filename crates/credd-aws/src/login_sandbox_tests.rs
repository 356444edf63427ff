//! Login sessions refreshed against the sandbox's AWS Sign-In, which
//! verifies every DPoP proof, rotates the refresh token on each answer and
//! revokes a token family when a rotated-out token comes back: credd's
//! refreshes are accepted, written back and never reuse a token, also with
//! two refreshers at once; an ended session and a changed password ask for
//! a new sign-in.

use super::session::LoginSessions;
use super::*;
use crate::login_cache::{LoginCache, LoginToken};
use credd_core::login::{LoginRef, LoginSession};
use credd_core::upstream::CallContext;
use credd_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

const ARN: &str = "arn:aws:iam::111122223333:user/demo-user";

struct World {
    _dir: tempfile::TempDir,
    cache: LoginCache,
    sandbox: SandboxHandle,
}

async fn world() -> World {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = LoginCache::at(dir.path().join("cache"));
    let file = serde_json::to_vec(&sandbox.seed_login()).unwrap();
    let token = LoginToken::from_json(&file).unwrap();
    cache.save(&session(), &token).unwrap();
    World {
        _dir: dir,
        cache,
        sandbox,
    }
}

impl World {
    fn sessions(&self) -> LoginSessions {
        LoginSessions::new(
            Ok(self.cache.clone()),
            Some(self.sandbox.url()),
            wall_clock(),
        )
    }
    /// Makes the file's credentials close to expiry, so the next read
    /// refreshes (the sandbox checks `iat` against the real clock, so the
    /// clock cannot be moved instead).
    fn age_file(&self) {
        self.cache
            .update(&session(), |t| -> Result<_, crate::LoginCacheError> {
                let mut t = t.unwrap();
                t.expires_at = (wall_clock())() + time::Duration::minutes(2);
                Ok((Some(t), ()))
            })
            .unwrap();
    }
    fn refresh_token(&self) -> String {
        let t = self.cache.load(&session()).unwrap().unwrap();
        t.refresh_token.expose().to_string()
    }
}

fn session() -> LoginSession {
    LoginSession::new(ARN)
}

fn login() -> LoginRef {
    LoginRef {
        profile: "demo".into(),
        session: session(),
    }
}

fn ctx() -> CallContext {
    CallContext {
        profile: "demo".into(),
        region: Some("us-east-1".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_are_accepted_rotated_and_written_back_without_reuse() {
    let w = world().await;
    let sessions = w.sessions();
    // Fresh from the sign-in: used as it is.
    let first = sessions.credentials(&ctx(), &login()).await.unwrap();
    assert_eq!(w.sandbox.count("CreateOAuth2Token"), 0);
    for round in 1..=3 {
        let before = w.refresh_token();
        w.age_file();
        let creds = sessions.credentials(&ctx(), &login()).await.unwrap();
        assert_eq!(
            w.sandbox.count("CreateOAuth2Token"),
            round,
            "{:?}",
            w.sandbox.counts()
        );
        assert_ne!(creds.access_key_id(), first.access_key_id());
        assert!(creds.expiration() - (wall_clock())() > time::Duration::minutes(14));
        assert_ne!(w.refresh_token(), before, "rotated and written back");
        // Read again: the new file is used, no call.
        sessions.credentials(&ctx(), &login()).await.unwrap();
        assert_eq!(w.sandbox.count("CreateOAuth2Token"), round);
    }
    assert_eq!(w.sandbox.count("RefreshTokenReuse"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_refreshers_at_once_spend_the_token_once() {
    let w = world().await;
    w.age_file();
    let (a, b) = (w.sessions(), w.sessions());
    let (c, l) = (ctx(), login());
    let (x, y) = tokio::join!(a.credentials(&c, &l), b.credentials(&c, &l));
    assert_eq!(x.unwrap().access_key_id(), y.unwrap().access_key_id());
    assert_eq!(w.sandbox.count("CreateOAuth2Token"), 1);
    assert_eq!(w.sandbox.count("RefreshTokenReuse"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_or_a_changed_password_asks_for_a_new_sign_in() {
    for end in ["end-session", "change-password"] {
        let w = world().await;
        match end {
            "end-session" => assert_eq!(w.sandbox.end_session(), 1),
            _ => assert_eq!(w.sandbox.change_login_credentials(), 1),
        }
        w.age_file();
        let before = std::fs::read(w.cache.path(&session())).unwrap();
        let err = w
            .sessions()
            .credentials(&ctx(), &login())
            .await
            .unwrap_err();
        assert_eq!(
            err.kind,
            credd_core::UpstreamErrorKind::LoginRequired,
            "{end}: {err}"
        );
        let code = if end == "end-session" {
            "TOKEN_EXPIRED"
        } else {
            "USER_CREDENTIALS_CHANGED"
        };
        assert_eq!(err.code.as_deref(), Some(code), "{err}");
        assert!(err.message.contains("aws login --profile demo"), "{err}");
        assert_eq!(std::fs::read(w.cache.path(&session())).unwrap(), before);
    }
}
