//! The console federation endpoint (`GET /federation`, what
//! `https://signin.aws.amazon.com/federation` does for `aws-vault login`
//! and `credd console`): `Action=getSigninToken` turns temporary
//! credentials into a signin token, `Action=login` redeems that token once
//! and redirects to the console destination.

use crate::error::ApiError;
use crate::http::{json_response, redirect, Req, Response};
use crate::state::{random_b64, Shared, SigninToken};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// How long a signin token can be redeemed (AWS: 15 minutes).
const SIGNIN_TOKEN_LIFETIME: Duration = Duration::from_secs(900);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    session_id: String,
    session_key: String,
    session_token: String,
}

/// `Action=getSigninToken&Session=<JSON>[&SessionDuration=N]`: accepts the
/// credentials of a role or a federated user, refuses anything else.
pub fn get_signin_token(shared: &Shared, req: &Req) -> Result<Response, ApiError> {
    let session: Session = req
        .query_param("Session")
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| {
            ApiError::plain(
                400,
                "Session must be JSON with sessionId, sessionKey and sessionToken",
            )
        })?;
    if let Some(text) = req.query_param("SessionDuration") {
        let valid = text
            .parse::<u64>()
            .is_ok_and(|secs| (900..=43200).contains(&secs));
        if !valid {
            return Err(ApiError::plain(
                400,
                "SessionDuration must be between 900 and 43200 seconds",
            ));
        }
    }
    let mut state = shared.lock();
    let now = state.now();
    let issued = state
        .keys
        .get(&session.session_id)
        .filter(|k| {
            k.secret_access_key == session.session_key && k.session_token == session.session_token
        })
        .ok_or_else(|| ApiError::plain(400, "The session credentials are not valid"))?;
    if issued.expires_at <= now {
        return Err(ApiError::plain(400, "The session credentials have expired"));
    }
    let arn = &issued.identity.arn;
    if !arn.contains(":assumed-role/") && !arn.contains(":federated-user/") {
        // AWS answers a bare 400 here; the sandbox says why, to help tests.
        return Err(ApiError::plain(
            400,
            "The federation endpoint accepts role or federated-user credentials, not an IAM user's session credentials (GetSessionToken): call GetFederationToken first",
        ));
    }
    let token = random_b64(192);
    state.signin.signin_tokens.insert(
        token.clone(),
        SigninToken {
            expires_at: now + SIGNIN_TOKEN_LIFETIME,
            used: false,
        },
    );
    Ok(json_response(
        StatusCode::OK,
        &json!({ "SigninToken": token }),
    ))
}

/// `Action=login&Issuer=I&Destination=URL&SigninToken=T`: a valid, unused,
/// unexpired token is spent and the browser sent to the destination.
pub fn login(shared: &Shared, req: &Req) -> Result<Response, ApiError> {
    let destination = req
        .query_param("Destination")
        .filter(|d| d.starts_with("https://") || d.starts_with("http://"))
        .ok_or_else(|| ApiError::plain(400, "Destination must be a URL"))?
        .to_owned();
    let token = req.query_param("SigninToken").unwrap_or_default();
    let mut state = shared.lock();
    let now = state.now();
    let record = state
        .signin
        .signin_tokens
        .get_mut(token)
        .filter(|t| !t.used && t.expires_at > now)
        .ok_or_else(|| ApiError::plain(400, "The signin token is invalid, expired or used"))?;
    record.used = true;
    Ok(redirect(&destination))
}
