//! The fake AWS Sign-In service behind `aws login`: `GET /v1/authorize`
//! (the browser side, same-device and cross-device), the cross-device
//! confirmation page `GET /v1/sessions/confirmation`, and CreateOAuth2Token
//! (`POST /v1/token`, restJson1, unsigned) with both grants, each call
//! proven with a DPoP proof ([`crate::dpop`]).
//!
//! A code exchange starts an `aws login` session bound to the thumbprint of
//! its DPoP key; every refresh rotates the refresh token, and a rotated-out
//! token presented again is reuse: counted as `RefreshTokenReuse`, and the
//! whole family (the session) revoked. Credentials are real sandbox STS
//! keys for the configured `login_identity`.

use crate::dpop;
use crate::error::ApiError;
use crate::http::{html_response, redirect, Req, Response};
use crate::oidc::{is_loopback_redirect, pkce_challenge};
use crate::portal::stable_id;
use crate::state::{
    random_b64, Identity, LoginRefreshToken, LoginSession, PendingAuthorize, Shared, SigninCode,
    State,
};
use base64::Engine as _;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const CLIENT_SAME_DEVICE: &str = "arn:aws:signin:::devtools/same-device";
pub const CLIENT_CROSS_DEVICE: &str = "arn:aws:signin:::devtools/cross-device";
const CONFIRMATION_PATH: &str = "/v1/sessions/confirmation";

/// How long an authorization code stays redeemable.
const CODE_LIFETIME: Duration = Duration::from_secs(300);
/// How long a DPoP `jti` is remembered: past this its `iat` is stale anyway.
const JTI_MEMORY_SECS: i64 = 2 * dpop::MAX_SKEW_SECS;

/// The CreateOAuth2Token grant a request names, as used in counter and
/// fault names (`CreateOAuth2Token:refresh_token`).
pub fn grant_label(req: &Req) -> Option<&'static str> {
    let body: serde_json::Value = serde_json::from_slice(&req.body).ok()?;
    match body.get("grantType")?.as_str()? {
        "authorization_code" => Some("CreateOAuth2Token:authorization_code"),
        "refresh_token" => Some("CreateOAuth2Token:refresh_token"),
        _ => None,
    }
}

/// `http://HOST`, as the client addressed this server; the sandbox's own
/// address when a client sent no `Host`.
fn addressed_base(shared: &Shared, req: &Req) -> String {
    req.header("host")
        .map(|host| format!("http://{host}"))
        .unwrap_or_else(|| shared.base_url.clone())
}

/// `GET /v1/authorize`: checks the request as the CLI builds it, then
/// redirects with a code at once, or holds it for a test's decision when
/// approvals are held (`auto_approve` off), like SSO's `/authorize`.
pub async fn authorize(
    shared: &Shared,
    req: &Req,
    cancel: &CancellationToken,
) -> Result<Response, ApiError> {
    let param = |name: &str| req.query_param(name).unwrap_or_default().to_owned();
    let bad = |msg: &str| ApiError::plain(400, msg);
    if param("response_type") != "code" {
        return Err(bad("response_type must be code"));
    }
    if param("code_challenge_method") != "SHA-256" {
        return Err(bad("code_challenge_method must be SHA-256"));
    }
    if !param("scope").split(' ').any(|s| s == "openid") {
        return Err(bad("scope must include openid"));
    }
    let client_id = param("client_id");
    let redirect_uri = param("redirect_uri");
    let state_param = param("state");
    let challenge = param("code_challenge");
    if state_param.is_empty() {
        return Err(bad("missing state"));
    }
    // base64url of a SHA-256 digest, without padding.
    if challenge.len() != 43 {
        return Err(bad("code_challenge must be base64url(sha256(verifier))"));
    }
    let redirect_ok = match client_id.as_str() {
        CLIENT_SAME_DEVICE => is_loopback_redirect(&redirect_uri),
        CLIENT_CROSS_DEVICE => {
            redirect_uri == format!("{}{CONFIRMATION_PATH}", addressed_base(shared, req))
                || redirect_uri == format!("{}{CONFIRMATION_PATH}", shared.base_url)
        }
        _ => return Err(bad("unknown client_id")),
    };
    if !redirect_ok {
        return Err(bad(
            "redirect_uri must be http://127.0.0.1 (same-device) or this server's /v1/sessions/confirmation (cross-device)",
        ));
    }
    let decision = {
        let mut state = shared.lock();
        if state.config.auto_approve {
            None
        } else {
            let (decide, decision) = tokio::sync::oneshot::channel();
            state.pending_authorize.push(PendingAuthorize { decide });
            Some(decision)
        }
    };
    let approved = match decision {
        None => true,
        Some(decision) => tokio::select! {
            d = decision => d.unwrap_or(false),
            () = cancel.cancelled() => return Err(ApiError::plain(503, "sandbox shutting down")),
        },
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    if approved {
        let code = random_b64(32);
        let mut state = shared.lock();
        let expires_at = state.now() + CODE_LIFETIME;
        state.signin.codes.insert(
            code.clone(),
            SigninCode {
                client_id,
                redirect_uri: redirect_uri.clone(),
                code_challenge: challenge,
                expires_at,
            },
        );
        query.append_pair("code", &code);
    } else {
        query.append_pair("error", "access_denied");
    }
    query.append_pair("state", &state_param);
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    Ok(redirect(&format!(
        "{redirect_uri}{separator}{}",
        query.finish()
    )))
}

/// `GET /v1/sessions/confirmation?code=&state=`: the page the cross-device
/// flow lands on, showing the code the user pastes into the CLI:
/// `base64("state=S&code=C")`, which the CLI decodes with `parse_qsl`.
pub fn confirmation(req: &Req) -> Result<Response, ApiError> {
    if req.query_param("error").is_some() {
        return Ok(html_response(
            StatusCode::FORBIDDEN,
            "<!doctype html><title>credd sandbox</title><p>Sign-in was denied.</p>\n".to_owned(),
        ));
    }
    let (Some(code), Some(state)) = (req.query_param("code"), req.query_param("state")) else {
        return Err(ApiError::plain(400, "missing code or state"));
    };
    let pair = form_urlencoded::Serializer::new(String::new())
        .append_pair("state", state)
        .append_pair("code", code)
        .finish();
    let verification = base64::engine::general_purpose::STANDARD.encode(pair);
    Ok(html_response(
        StatusCode::OK,
        format!(
            "<!doctype html><title>credd sandbox</title><p>Paste this code into the CLI:</p>\n<code id=\"verification-code\">{verification}</code>\n"
        ),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenInput {
    client_id: Option<String>,
    grant_type: Option<String>,
    code: Option<String>,
    code_verifier: Option<String>,
    redirect_uri: Option<String>,
    refresh_token: Option<String>,
}

fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::signin_invalid(format!("missing required member {name}")))
}

/// `POST /v1/token`: CreateOAuth2Token, the body being the bare token input.
pub fn create_token(shared: &Shared, req: &Req) -> Result<Response, ApiError> {
    let input: TokenInput = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::signin_invalid(format!("invalid JSON body: {e}")))?;
    let client_id = required(input.client_id, "clientId")?;
    if client_id != CLIENT_SAME_DEVICE && client_id != CLIENT_CROSS_DEVICE {
        return Err(ApiError::signin_invalid("unknown clientId"));
    }
    let grant_type = required(input.grant_type, "grantType")?;
    let proof_text = req
        .header("dpop")
        .ok_or_else(|| ApiError::signin_invalid("missing DPoP proof"))?;
    let htu = format!("{}{}", addressed_base(shared, req), req.path);

    let mut state = shared.lock();
    let real_now = state.real_now().unix_timestamp();
    let proof = dpop::verify(proof_text, &htu, real_now)
        .map_err(|e| ApiError::signin_invalid(e.to_string()))?;
    state
        .signin
        .seen_jti
        .retain(|_, iat| real_now - *iat <= JTI_MEMORY_SECS);
    if state
        .signin
        .seen_jti
        .insert(proof.jti.clone(), proof.iat)
        .is_some()
    {
        return Err(ApiError::signin_invalid(
            "the DPoP proof's jti was already used",
        ));
    }

    match grant_type.as_str() {
        "authorization_code" => {
            let code = required(input.code, "code")?;
            let verifier = required(input.code_verifier, "codeVerifier")?;
            let redirect_uri = required(input.redirect_uri, "redirectUri")?;
            let expired = || {
                ApiError::signin_denied(
                    "AUTHCODE_EXPIRED",
                    "The authorization code is expired or was already used. Sign in again with aws login.",
                )
            };
            // A code is single-use whether or not this attempt succeeds.
            let grant = state.signin.codes.remove(&code).ok_or_else(expired)?;
            if grant.expires_at <= state.now() {
                return Err(expired());
            }
            if grant.client_id != client_id || grant.redirect_uri != redirect_uri {
                return Err(ApiError::signin_invalid(
                    "clientId or redirectUri differ from the authorization request",
                ));
            }
            if pkce_challenge(&verifier) != grant.code_challenge {
                return Err(ApiError::signin_denied(
                    "INVALID_REQUEST",
                    "The code verifier does not match the code challenge.",
                ));
            }
            let ends_at = state.now() + Duration::from_secs(state.config.login_session_secs);
            let identity = state.config.login_identity.clone();
            state.signin.sessions.push(LoginSession {
                identity,
                client_id,
                thumbprint: proof.thumbprint,
                ends_at,
                ended: false,
                credentials_changed: false,
            });
            let session = state.signin.sessions.len() - 1;
            Ok(issue(shared, &mut state, session))
        }
        "refresh_token" => {
            let refresh_token = required(input.refresh_token, "refreshToken")?;
            let expired = || {
                ApiError::signin_denied(
                    "TOKEN_EXPIRED",
                    "The session has expired or was revoked. Sign in again with aws login.",
                )
            };
            let record = state
                .signin
                .refresh_tokens
                .get(&refresh_token)
                .ok_or_else(expired)?;
            let (session, reused) = (record.session, record.used);
            if reused {
                // A rotated-out token came back: whoever holds the family is
                // suspect, so all of it stops working (RFC 9700 4.14.2).
                state.count("RefreshTokenReuse");
                state.signin.sessions[session].ended = true;
                return Err(expired());
            }
            let now = state.now();
            let login = &state.signin.sessions[session];
            if login.client_id != client_id {
                return Err(ApiError::signin_invalid(
                    "the refresh token was issued to another clientId",
                ));
            }
            if login.ended || login.ends_at <= now {
                return Err(expired());
            }
            if login.credentials_changed {
                return Err(ApiError::signin_denied(
                    "USER_CREDENTIALS_CHANGED",
                    "The user's credentials changed. Sign in again with aws login.",
                ));
            }
            if login.thumbprint != proof.thumbprint {
                return Err(ApiError::signin_denied(
                    "INVALID_REQUEST",
                    "The DPoP proof is signed by another key than the one this session is bound to.",
                ));
            }
            if let Some(record) = state.signin.refresh_tokens.get_mut(&refresh_token) {
                record.used = true;
            }
            Ok(issue(shared, &mut state, session))
        }
        other => Err(ApiError::signin_invalid(format!(
            "unsupported grantType {other}"
        ))),
    }
}

/// Signs the user in without a browser, as if `aws login` had just run:
/// makes a fresh DPoP key, starts a session bound to it and returns the
/// cache file the CLI would write (`accessToken{accessKeyId,
/// secretAccessKey, sessionToken, accountId, expiresAt}`, `tokenType`,
/// `clientId`, `refreshToken`, `idToken`, `dpopKey` as a SEC1 PEM).
pub fn seed_login(shared: &Shared) -> serde_json::Value {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let point = key.public_key().to_encoded_point(false);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        unreachable!("an uncompressed point has both coordinates")
    };
    let thumbprint = dpop::thumbprint(&b64.encode(x), &b64.encode(y));
    let pem = sec1_pem(&key, point.as_bytes());
    let mut state = shared.lock();
    let now = state.now();
    let identity = state.config.login_identity.clone();
    let ends_at = now + Duration::from_secs(state.config.login_session_secs);
    state.signin.sessions.push(LoginSession {
        identity: identity.clone(),
        client_id: CLIENT_SAME_DEVICE.to_owned(),
        thumbprint,
        ends_at,
        ended: false,
        credentials_changed: false,
    });
    let session = state.signin.sessions.len() - 1;
    let output = issue_output(shared, &mut state, session);
    let expires_at = now + Duration::from_secs(output["expiresIn"].as_u64().unwrap_or(0));
    json!({
        "accessToken": {
            "accessKeyId": output["accessToken"]["accessKeyId"],
            "secretAccessKey": output["accessToken"]["secretAccessKey"],
            "sessionToken": output["accessToken"]["sessionToken"],
            "accountId": identity_of(&identity).account,
            "expiresAt": crate::sts::format_timestamp(expires_at),
        },
        "tokenType": "aws_sigv4",
        "clientId": CLIENT_SAME_DEVICE,
        "refreshToken": output["refreshToken"],
        "idToken": output["idToken"],
        "dpopKey": pem,
    })
}

/// The key as a SEC1 `EC PRIVATE KEY` PEM *with* its curve (the
/// `[0] namedCurve` parameters): awscrt, and so botocore, refuses a key
/// without them (`AWS_ERROR_CAL_UNSUPPORTED_KEY_FORMAT`), and p256's own
/// `to_sec1_pem` leaves them out.
fn sec1_pem(key: &p256::SecretKey, public_point: &[u8]) -> String {
    use sec1::der::{pem::LineEnding, Encode as _};
    // 1.2.840.10045.3.1.7, prime256v1.
    const P256: sec1::der::asn1::ObjectIdentifier =
        sec1::der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    let private = key.to_bytes();
    let der = sec1::EcPrivateKey {
        private_key: &private,
        parameters: Some(sec1::EcParameters::NamedCurve(P256)),
        public_key: Some(public_point),
    }
    .to_der();
    der.ok()
        .and_then(|der| sec1::der::pem::encode_string("EC PRIVATE KEY", LineEnding::LF, &der).ok())
        .unwrap_or_default()
}

/// Who GetCallerIdentity says a login identity's credentials belong to.
pub fn identity_of(arn: &str) -> Identity {
    let account = arn.split(':').nth(4).unwrap_or_default().to_owned();
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    let user_id = if resource == "root" {
        account.clone()
    } else if let Some(rest) = resource.strip_prefix("assumed-role/") {
        let (role, session) = rest.split_once('/').unwrap_or((rest, ""));
        format!("AROA{}:{session}", stable_id(role))
    } else {
        format!("AIDA{}", stable_id(arn))
    };
    Identity {
        arn: arn.to_owned(),
        user_id,
        account,
    }
}

/// An unsigned JWT (`alg: none`) whose `sub` is the console identity: the
/// CLI reads the login session's name from it and verifies nothing.
fn id_token(shared: &Shared, state: &State, identity: &str, client_id: &str) -> String {
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = state.now().unix_timestamp();
    let header = b64(json!({ "alg": "none", "typ": "JWT" }));
    let payload = b64(json!({
        "iss": shared.base_url,
        "sub": identity,
        "aud": client_id,
        "iat": now,
        "exp": now + state.config.login_credential_secs as i64,
    }));
    format!("{header}.{payload}.")
}

/// Issues credentials and a new refresh token of `session`'s family, and
/// answers with the bare token output.
fn issue(shared: &Shared, state: &mut State, session: usize) -> Response {
    let output = issue_output(shared, state, session);
    crate::http::json_response(StatusCode::OK, &output)
}

/// The bare token output for a new credential and refresh token.
fn issue_output(shared: &Shared, state: &mut State, session: usize) -> serde_json::Value {
    let now = state.now();
    let login = &state.signin.sessions[session];
    let (identity, client_id, ends_at) = (
        login.identity.clone(),
        login.client_id.clone(),
        login.ends_at,
    );
    let lifetime = Duration::from_secs(state.config.login_credential_secs)
        .min((ends_at - now).try_into().unwrap_or(Duration::ZERO));
    let credentials = state.issue_key(identity_of(&identity), lifetime);
    let refresh_token = format!("lrt{}", random_b64(96));
    state.signin.refresh_tokens.insert(
        refresh_token.clone(),
        LoginRefreshToken {
            session,
            used: false,
        },
    );
    let id_token = id_token(shared, state, &identity, &client_id);
    json!({
        "accessToken": {
            "accessKeyId": credentials.access_key_id,
            "secretAccessKey": credentials.secret_access_key,
            "sessionToken": credentials.session_token,
        },
        "tokenType": "aws_sigv4",
        "expiresIn": lifetime.as_secs(),
        "refreshToken": refresh_token,
        "idToken": id_token,
    })
}
