//! The fake SSO OIDC service (restJson1, unsigned): RegisterClient,
//! StartDeviceAuthorization, CreateToken with the device-code,
//! authorization-code (PKCE S256) and refresh-token grants, the `/authorize`
//! endpoint a browser visits, and the device verification page.

use crate::error::{ApiError, OidcError};
use crate::http::{html_response, json_response, redirect, Req, Response};
use crate::state::{
    random_b64, random_upper, AccessToken, AuthCode, Client, DeviceAuth, DeviceStatus,
    PendingAuthorize, RefreshToken, Shared, State,
};
use base64::Engine as _;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";

/// How long an authorization code from `/authorize` stays redeemable.
const AUTH_CODE_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterClientRequest {
    client_name: Option<String>,
    client_type: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartDeviceAuthorizationRequest {
    client_id: Option<String>,
    client_secret: Option<String>,
    start_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateTokenRequest {
    client_id: Option<String>,
    client_secret: Option<String>,
    grant_type: Option<String>,
    device_code: Option<String>,
    code: Option<String>,
    code_verifier: Option<String>,
    redirect_uri: Option<String>,
    refresh_token: Option<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(req: &Req) -> Result<T, ApiError> {
    let body: &[u8] = if req.body.is_empty() {
        b"{}"
    } else {
        &req.body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::oidc(OidcError::InvalidRequest, format!("invalid JSON body: {e}")))
}

fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| {
        ApiError::oidc(
            OidcError::InvalidRequest,
            format!("missing required parameter {name}"),
        )
    })
}

/// The loopback redirect URIs the real service accepts for native apps;
/// RFC 8252 lets the port vary, so only scheme and host are pinned.
pub(crate) fn is_loopback_redirect(uri: &str) -> bool {
    uri.strip_prefix("http://127.0.0.1")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':') || rest.starts_with('/'))
}

/// The path of a loopback URI, ignoring its port.
fn loopback_path(uri: &str) -> &str {
    let rest = uri.strip_prefix("http://127.0.0.1").unwrap_or(uri);
    let rest = rest.trim_start_matches(|c: char| c == ':' || c.is_ascii_digit());
    rest.split(['?', '#']).next().unwrap_or("")
}

pub fn register_client(shared: &Shared, req: &Req) -> Result<Response, ApiError> {
    let body: RegisterClientRequest = parse(req)?;
    required(body.client_name, "clientName")?;
    let client_type = required(body.client_type, "clientType")?;
    if client_type != "public" {
        return Err(ApiError::oidc(
            OidcError::InvalidClientMetadata,
            "clientType must be public",
        ));
    }
    let mut grant_types = body.grant_types;
    if grant_types.is_empty() {
        // Clients that name no grants, like the CLI's device flow, get the
        // device-code grant and may refresh.
        grant_types = vec![GRANT_DEVICE_CODE.to_owned(), GRANT_REFRESH_TOKEN.to_owned()];
    }
    if let Some(unknown) = grant_types.iter().find(|g| {
        ![
            GRANT_DEVICE_CODE,
            GRANT_AUTHORIZATION_CODE,
            GRANT_REFRESH_TOKEN,
        ]
        .contains(&g.as_str())
    }) {
        return Err(ApiError::oidc(
            OidcError::UnsupportedGrantType,
            format!("unsupported grant type {unknown}"),
        ));
    }
    if grant_types.iter().any(|g| g == GRANT_AUTHORIZATION_CODE) && body.redirect_uris.is_empty() {
        return Err(ApiError::oidc(
            OidcError::InvalidRedirectUri,
            "authorization_code requires redirectUris",
        ));
    }
    if body.redirect_uris.iter().any(|u| !is_loopback_redirect(u)) {
        return Err(ApiError::oidc(
            OidcError::InvalidRedirectUri,
            "redirect URIs must be http://127.0.0.1",
        ));
    }

    let mut state = shared.lock();
    let now = state.now();
    let expires_at = now + state.config.registration_lifetime;
    let client_id = random_b64(16);
    let client_secret = random_b64(96);
    state.clients.insert(
        client_id.clone(),
        Client {
            secret: client_secret.clone(),
            grant_types,
            redirect_uris: body.redirect_uris,
            scopes: body.scopes,
            expires_at,
        },
    );
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "clientId": client_id,
            "clientSecret": client_secret,
            "clientIdIssuedAt": now.unix_timestamp(),
            "clientSecretExpiresAt": expires_at.unix_timestamp(),
            "authorizationEndpoint": format!("{}/authorize", shared.base_url),
            "tokenEndpoint": format!("{}/token", shared.base_url),
        }),
    ))
}

/// Checks a client's id and secret and that its registration is current.
fn authenticate_client<'a>(
    state: &'a State,
    client_id: &str,
    client_secret: &str,
) -> Result<&'a Client, ApiError> {
    let client = state
        .clients
        .get(client_id)
        .filter(|c| c.secret == client_secret)
        .ok_or_else(|| ApiError::oidc(OidcError::InvalidClient, "Invalid client credentials"))?;
    if client.expires_at <= state.now() {
        return Err(ApiError::oidc(
            OidcError::InvalidClient,
            "Client registration has expired",
        ));
    }
    Ok(client)
}

fn allow_grant(client: &Client, grant: &str) -> Result<(), ApiError> {
    if client.grant_types.iter().any(|g| g == grant) {
        Ok(())
    } else {
        Err(ApiError::oidc(
            OidcError::UnauthorizedClient,
            format!("client is not registered for {grant}"),
        ))
    }
}

pub fn start_device_authorization(shared: &Shared, req: &Req) -> Result<Response, ApiError> {
    let body: StartDeviceAuthorizationRequest = parse(req)?;
    let client_id = required(body.client_id, "clientId")?;
    let client_secret = required(body.client_secret, "clientSecret")?;
    required(body.start_url, "startUrl")?;

    let mut state = shared.lock();
    allow_grant(
        authenticate_client(&state, &client_id, &client_secret)?,
        GRANT_DEVICE_CODE,
    )?;
    let device_code = random_b64(48);
    let user_code = format!("{}-{}", random_upper(4), random_upper(4));
    let lifetime = state.config.device_code_lifetime;
    let interval = state.config.device_poll_interval.as_secs().max(1);
    let status = if state.config.auto_approve_device {
        DeviceStatus::Approved
    } else {
        DeviceStatus::Pending
    };
    let expires_at = state.now() + lifetime;
    state.devices.insert(
        device_code.clone(),
        DeviceAuth {
            client_id,
            user_code: user_code.clone(),
            expires_at,
            status,
            last_poll: None,
        },
    );
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "deviceCode": device_code,
            "userCode": user_code,
            "verificationUri": format!("{}/device", shared.base_url),
            "verificationUriComplete": format!("{}/device?user_code={user_code}", shared.base_url),
            "expiresIn": lifetime.as_secs(),
            "interval": interval,
        }),
    ))
}

/// The CreateToken grant a request names, as used in counter and fault
/// names (`CreateToken:device_code`); `None` for unknown grants.
pub fn grant_label(req: &Req) -> Option<&'static str> {
    let body: serde_json::Value = serde_json::from_slice(&req.body).ok()?;
    match body.get("grantType")?.as_str()? {
        GRANT_DEVICE_CODE => Some("CreateToken:device_code"),
        GRANT_AUTHORIZATION_CODE => Some("CreateToken:authorization_code"),
        GRANT_REFRESH_TOKEN => Some("CreateToken:refresh_token"),
        _ => None,
    }
}

pub fn create_token(shared: &Shared, req: &Req) -> Result<Response, ApiError> {
    let body: CreateTokenRequest = parse(req)?;
    let client_id = required(body.client_id, "clientId")?;
    let client_secret = required(body.client_secret, "clientSecret")?;
    let grant_type = required(body.grant_type, "grantType")?;

    let mut state = shared.lock();
    let client = authenticate_client(&state, &client_id, &client_secret)?;
    let may_refresh =
        client.grant_types.iter().any(|g| g == GRANT_REFRESH_TOKEN) || !client.scopes.is_empty();
    match grant_type.as_str() {
        GRANT_DEVICE_CODE => {
            allow_grant(client, GRANT_DEVICE_CODE)?;
            let device_code = required(body.device_code, "deviceCode")?;
            redeem_device_code(&mut state, &client_id, &device_code)?;
            let session = state.start_session();
            Ok(issue_tokens(&mut state, session, &client_id, may_refresh))
        }
        GRANT_AUTHORIZATION_CODE => {
            allow_grant(client, GRANT_AUTHORIZATION_CODE)?;
            let code = required(body.code, "code")?;
            let verifier = required(body.code_verifier, "codeVerifier")?;
            let redirect_uri = required(body.redirect_uri, "redirectUri")?;
            // A code is single-use whether or not this attempt succeeds.
            let grant = state.auth_codes.remove(&code).ok_or_else(|| {
                ApiError::oidc(OidcError::InvalidGrant, "Invalid authorization code")
            })?;
            if grant.client_id != client_id
                || grant.redirect_uri != redirect_uri
                || grant.expires_at <= state.now()
            {
                return Err(ApiError::oidc(
                    OidcError::InvalidGrant,
                    "Invalid authorization code",
                ));
            }
            if pkce_challenge(&verifier) != grant.code_challenge {
                return Err(ApiError::oidc(
                    OidcError::InvalidGrant,
                    "Invalid code verifier",
                ));
            }
            let session = state.start_session();
            Ok(issue_tokens(&mut state, session, &client_id, may_refresh))
        }
        GRANT_REFRESH_TOKEN => {
            allow_grant(client, GRANT_REFRESH_TOKEN)?;
            let refresh_token = required(body.refresh_token, "refreshToken")?;
            let invalid =
                || ApiError::oidc(OidcError::InvalidGrant, "Invalid refresh token provided");
            let record = state
                .refresh_tokens
                .get(&refresh_token)
                .ok_or_else(invalid)?;
            if record.revoked || record.client_id != client_id {
                return Err(invalid());
            }
            let session = record.session;
            if !state.session_live(session) {
                return Err(invalid());
            }
            if state.config.rotate_refresh_tokens {
                if let Some(r) = state.refresh_tokens.get_mut(&refresh_token) {
                    r.revoked = true;
                }
                Ok(issue_tokens(&mut state, session, &client_id, true))
            } else {
                Ok(issue_access_token(
                    &mut state,
                    session,
                    Some(refresh_token),
                    false,
                ))
            }
        }
        other => Err(ApiError::oidc(
            OidcError::UnsupportedGrantType,
            format!("unsupported grant type {other}"),
        )),
    }
}

/// The device-code state machine of RFC 8628 section 3.5.
fn redeem_device_code(
    state: &mut State,
    client_id: &str,
    device_code: &str,
) -> Result<(), ApiError> {
    let now = state.now();
    let interval = state.config.device_poll_interval;
    let enforce = state.config.enforce_slow_down;
    let device = state
        .devices
        .get_mut(device_code)
        .filter(|d| d.client_id == client_id)
        .ok_or_else(|| ApiError::oidc(OidcError::InvalidGrant, "Invalid device code provided"))?;
    if device.expires_at <= now {
        return Err(ApiError::oidc(
            OidcError::ExpiredToken,
            "Device code has expired",
        ));
    }
    let previous = device.last_poll.replace(now);
    match device.status {
        DeviceStatus::Approved => {
            device.status = DeviceStatus::Redeemed;
            Ok(())
        }
        DeviceStatus::Denied => Err(ApiError::oidc(
            OidcError::AccessDenied,
            "Authorization denied",
        )),
        DeviceStatus::Redeemed => Err(ApiError::oidc(
            OidcError::InvalidGrant,
            "Device code has already been used",
        )),
        DeviceStatus::Pending => {
            if enforce && previous.is_some_and(|p| now - p < interval) {
                Err(ApiError::oidc(
                    OidcError::SlowDown,
                    "Client is polling too quickly",
                ))
            } else {
                Err(ApiError::oidc(
                    OidcError::AuthorizationPending,
                    "Authorization is pending",
                ))
            }
        }
    }
}

/// Issues tokens for a completed login or a rotating refresh: an access
/// token and, when the client may refresh, a new refresh token.
fn issue_tokens(
    state: &mut State,
    session: usize,
    client_id: &str,
    with_refresh: bool,
) -> Response {
    let refresh = with_refresh.then(|| {
        let token = format!("aorA{}", random_b64(96));
        state.refresh_tokens.insert(
            token.clone(),
            RefreshToken {
                session,
                client_id: client_id.to_owned(),
                revoked: false,
            },
        );
        token
    });
    issue_access_token(state, session, refresh, true)
}

/// Issues an access token for `session`, capped at the session's end, and
/// answers CreateToken. `refresh_token` is linked to it so Logout can revoke
/// both; it goes in the body only when `return_refresh`, that is when it is
/// new.
fn issue_access_token(
    state: &mut State,
    session: usize,
    refresh_token: Option<String>,
    return_refresh: bool,
) -> Response {
    let now = state.now();
    let session_end = state.sessions[session].ends_at;
    let expires_at = (now + state.config.access_token_lifetime).min(session_end);
    let token = format!("aoaA{}", random_b64(96));
    state.access_tokens.insert(
        token.clone(),
        AccessToken {
            session,
            expires_at,
            refresh_token: refresh_token.clone(),
            revoked: false,
        },
    );
    let mut body = json!({
        "accessToken": token,
        "tokenType": "Bearer",
        // Rounded, not truncated: the session end was computed a moment
        // earlier, and 1799.9999 s should still read as 1800.
        "expiresIn": ((expires_at - now).as_seconds_f64().round() as i64).max(0),
    });
    if let (true, Some(refresh)) = (return_refresh, refresh_token) {
        body["refreshToken"] = json!(refresh);
    }
    json_response(StatusCode::OK, &body)
}

/// base64url-nopad(sha256(verifier)), the S256 method of RFC 7636.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `GET /authorize`: checks the request like the real service, then either
/// redirects with a code at once (auto-approve) or waits for a test's
/// decision.
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
    if param("code_challenge_method") != "S256" {
        return Err(bad("code_challenge_method must be S256"));
    }
    let client_id = param("client_id");
    let redirect_uri = param("redirect_uri");
    let state_param = param("state");
    let challenge = param("code_challenge");
    if challenge.is_empty() {
        return Err(bad("missing code_challenge"));
    }
    if !is_loopback_redirect(&redirect_uri) {
        return Err(bad("redirect_uri must be http://127.0.0.1"));
    }
    let decision = {
        let mut state = shared.lock();
        let client = state
            .clients
            .get(&client_id)
            .ok_or_else(|| bad("unknown client_id"))?;
        if !client
            .grant_types
            .iter()
            .any(|g| g == GRANT_AUTHORIZATION_CODE)
        {
            return Err(bad("client is not registered for authorization_code"));
        }
        if !client
            .redirect_uris
            .iter()
            .any(|u| loopback_path(u) == loopback_path(&redirect_uri))
        {
            return Err(bad("redirect_uri is not registered for this client"));
        }
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
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let mut query = form_urlencoded::Serializer::new(String::new());
    if approved {
        let code = random_b64(32);
        let mut state = shared.lock();
        let expires_at = state.now() + AUTH_CODE_LIFETIME;
        state.auth_codes.insert(
            code.clone(),
            AuthCode {
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
    Ok(redirect(&format!(
        "{redirect_uri}{separator}{}",
        query.finish()
    )))
}

/// `GET /device?user_code=...`: the "browser" of the device flow; visiting
/// it approves that authorization (`&action=deny` denies it).
pub fn device_page(shared: &Shared, req: &Req) -> Result<Response, ApiError> {
    let user_code = req
        .query_param("user_code")
        .ok_or_else(|| ApiError::plain(400, "missing user_code"))?;
    let deny = req.query_param("action") == Some("deny");
    let mut state = shared.lock();
    let now = state.now();
    let device = state
        .devices
        .values_mut()
        .find(|d| d.user_code == user_code && d.expires_at > now)
        .ok_or_else(|| ApiError::plain(404, "unknown or expired user code"))?;
    if device.status == DeviceStatus::Pending {
        device.status = if deny {
            DeviceStatus::Denied
        } else {
            DeviceStatus::Approved
        };
    }
    let verdict = if deny { "denied" } else { "approved" };
    Ok(html_response(
        StatusCode::OK,
        format!("<!doctype html><title>credd sandbox</title><p>Request {verdict}. You can close this window.</p>\n"),
    ))
}
