//! The fake SSO portal (restJson1, unsigned, bearer token in
//! `x-amz-sso_bearer_token`): GetRoleCredentials, ListAccounts,
//! ListAccountRoles and Logout over the configured account directory.

use crate::error::ApiError;
use crate::http::{json_response, Req, Response};
use crate::state::{Identity, Shared, State};
use base64::Engine as _;
use http::StatusCode;
use serde_json::json;

const BEARER_HEADER: &str = "x-amz-sso_bearer_token";

/// Resolves the bearer token of a request to its user session, or the 401
/// the real portal answers for a token that is unknown, expired, logged out
/// or whose session has ended.
fn authorize(state: &State, req: &Req) -> Result<String, ApiError> {
    let token = req
        .header(BEARER_HEADER)
        .ok_or_else(ApiError::unauthorized)?;
    let record = state
        .access_tokens
        .get(token)
        .ok_or_else(ApiError::unauthorized)?;
    if record.revoked || record.expires_at <= state.now() || !state.session_live(record.session) {
        return Err(ApiError::unauthorized());
    }
    Ok(token.to_owned())
}

fn required<'a>(req: &'a Req, name: &str) -> Result<&'a str, ApiError> {
    req.query_param(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::portal(
                400,
                "InvalidRequestException",
                format!("{name} is required"),
            )
        })
}

fn forbidden() -> ApiError {
    ApiError::portal(403, "ForbiddenException", "No access")
}

pub fn get_role_credentials(shared: &Shared, req: &Req) -> Result<Response, ApiError> {
    let mut state = shared.lock();
    authorize(&state, req)?;
    let role_name = required(req, "role_name")?;
    let account_id = required(req, "account_id")?;
    let assigned = state
        .config
        .accounts
        .iter()
        .any(|a| a.id == account_id && a.roles.iter().any(|r| r == role_name));
    if !assigned {
        return Err(forbidden());
    }
    let identity = Identity {
        arn: format!(
            "arn:aws:sts::{account_id}:assumed-role/{role_name}/{}",
            state.config.user_name
        ),
        user_id: format!("AROA{}:{}", stable_id(role_name), state.config.user_name),
        account: account_id.to_owned(),
    };
    let lifetime = state.config.role_credentials_lifetime;
    let credentials = state.issue_key(identity, lifetime);
    let expiration_ms = credentials.expires_at.unix_timestamp_nanos() / 1_000_000;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "roleCredentials": {
                "accessKeyId": credentials.access_key_id,
                "secretAccessKey": credentials.secret_access_key,
                "sessionToken": credentials.session_token,
                "expiration": expiration_ms as i64,
            }
        }),
    ))
}

/// A deterministic, id-shaped string derived from a name, for the unique
/// ids (AROA..., AIDA...) that GetCallerIdentity reports.
pub fn stable_id(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(name.as_bytes());
    digest
        .iter()
        .take(17)
        .map(|b| char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[usize::from(b % 32)]))
        .collect()
}

/// Slices `items` at the offset in `next_token`, returning the page and the
/// token of the next one. Tokens are opaque to clients, like the real ones.
fn paginate<T: Clone>(
    items: &[T],
    req: &Req,
    page_size: usize,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let invalid =
        |what: &str| ApiError::portal(400, "InvalidRequestException", format!("invalid {what}"));
    let start = match req.query_param("next_token").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.strip_prefix("offset:")
                    .and_then(|n| n.parse::<usize>().ok())
            })
            .filter(|&n| n <= items.len())
            .ok_or_else(|| invalid("next_token"))?,
    };
    let max = match req.query_param("max_result") {
        None => page_size,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|&m| m >= 1)
            .ok_or_else(|| invalid("max_result"))?,
    };
    let size = max.min(page_size).max(1);
    let end = (start + size).min(items.len());
    let next = (end < items.len())
        .then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{end}")));
    Ok((items[start..end].to_vec(), next))
}

pub fn list_accounts(shared: &Shared, req: &Req) -> Result<Response, ApiError> {
    let state = shared.lock();
    authorize(&state, req)?;
    let accounts: Vec<serde_json::Value> = state
        .config
        .accounts
        .iter()
        .map(|a| json!({ "accountId": a.id, "accountName": a.name, "emailAddress": a.email }))
        .collect();
    let (page, next) = paginate(&accounts, req, state.config.page_size)?;
    let mut body = json!({ "accountList": page });
    if let Some(next) = next {
        body["nextToken"] = json!(next);
    }
    Ok(json_response(StatusCode::OK, &body))
}

pub fn list_account_roles(shared: &Shared, req: &Req) -> Result<Response, ApiError> {
    let state = shared.lock();
    authorize(&state, req)?;
    let account_id = required(req, "account_id")?;
    let account = state
        .config
        .accounts
        .iter()
        .find(|a| a.id == account_id)
        .ok_or_else(forbidden)?;
    let roles: Vec<serde_json::Value> = account
        .roles
        .iter()
        .map(|r| json!({ "roleName": r, "accountId": account.id }))
        .collect();
    let (page, next) = paginate(&roles, req, state.config.page_size)?;
    let mut body = json!({ "roleList": page });
    if let Some(next) = next {
        body["nextToken"] = json!(next);
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// Logout ends the access token and the refresh token issued with it;
/// role credentials already vended keep working until they expire, as with
/// the real service.
pub fn logout(shared: &Shared, req: &Req) -> Result<Response, ApiError> {
    let mut state = shared.lock();
    let token = authorize(&state, req)?;
    let refresh = state.access_tokens.get_mut(&token).and_then(|t| {
        t.revoked = true;
        t.refresh_token.clone()
    });
    if let Some(refresh) = refresh.and_then(|r| state.refresh_tokens.get_mut(&r)) {
        refresh.revoked = true;
    }
    Ok(http::Response::new(http_body_util::Full::new(
        bytes::Bytes::new(),
    )))
}
