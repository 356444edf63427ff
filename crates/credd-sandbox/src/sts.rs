//! The fake STS (awsQuery: form-encoded `Action=...` in, XML out):
//! AssumeRole, GetSessionToken, AssumeRoleWithWebIdentity,
//! GetCallerIdentity, GetFederationToken and DecodeAuthorizationMessage
//! (with the encoding `/_sandbox/encode-message` uses); AssumeRoleWithSAML
//! is in [`crate::saml`]. Signed calls are attributed to the access key in the
//! SigV4 credential scope, which must be one the sandbox issued (and not
//! expired) or a registered long-term key; signatures are not verified.

use crate::error::ApiError;
use crate::http::{xml_escape, xml_response, Req, Response};
use crate::portal::stable_id;
use crate::state::{Identity, NewCredentials, Shared, State};
use crate::totp;
use base64::Engine as _;
use http::StatusCode;
use std::time::Duration;
use time::macros::format_description;

/// The XML namespace of every STS response.
pub const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The query and form parameters of an awsQuery request, in that order.
pub fn params(req: &Req) -> Vec<(String, String)> {
    let mut all = req.query.clone();
    all.extend(req.form());
    all
}

pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The access key id and session token a request was signed with: from the
/// `Authorization` header's `Credential=AKID/...` or, for presigned URLs,
/// the `X-Amz-Credential` query parameter.
fn signer(req: &Req, params: &[(String, String)]) -> Option<(String, Option<String>)> {
    let from_header = req.header("authorization").and_then(|auth| {
        let rest = &auth[auth.find("Credential=")? + "Credential=".len()..];
        Some(rest.split('/').next()?.trim().to_owned())
    });
    let key = from_header
        .or_else(|| {
            Some(
                param(params, "X-Amz-Credential")?
                    .split('/')
                    .next()?
                    .to_owned(),
            )
        })
        .filter(|k| !k.is_empty())?;
    let token = req
        .header("x-amz-security-token")
        .or_else(|| param(params, "X-Amz-Security-Token"))
        .map(str::to_owned);
    Some((key, token))
}

/// Who signed the request, and whether that key is a long-term one; the
/// errors are those real STS gives for unknown, mismatched and expired keys.
pub(crate) fn authenticate(
    state: &State,
    req: &Req,
    params: &[(String, String)],
) -> Result<(Identity, bool), ApiError> {
    let (key, token) = signer(req, params).ok_or_else(|| {
        ApiError::sts(
            403,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        )
    })?;
    let invalid_key = || {
        ApiError::sts(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    };
    if let Some(issued) = state.keys.get(&key) {
        if token.as_deref() != Some(issued.session_token.as_str()) {
            return Err(invalid_key());
        }
        if issued.expires_at <= state.now() {
            return Err(ApiError::sts(
                400,
                "ExpiredToken",
                "The security token included in the request is expired",
            ));
        }
        return Ok((issued.identity.clone(), false));
    }
    if let Some(arn) = state.config.long_term_keys.get(&key) {
        if token.is_some() {
            return Err(invalid_key());
        }
        let account = arn.split(':').nth(4).unwrap_or_default().to_owned();
        let identity = Identity {
            arn: arn.clone(),
            user_id: format!("AIDA{}", stable_id(arn)),
            account,
        };
        return Ok((identity, true));
    }
    Err(invalid_key())
}

pub(crate) fn validation(message: impl Into<String>) -> ApiError {
    ApiError::sts(400, "ValidationError", message)
}

pub(crate) fn duration(
    params: &[(String, String)],
    default: u64,
    max: u64,
) -> Result<Duration, ApiError> {
    let Some(text) = param(params, "DurationSeconds") else {
        return Ok(Duration::from_secs(default));
    };
    let secs: u64 = text
        .parse()
        .map_err(|_| validation(format!("Invalid DurationSeconds {text}")))?;
    if secs < 900 {
        return Err(validation(format!(
            "1 validation error detected: Value '{secs}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"
        )));
    }
    if secs > max {
        return Err(validation(format!(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role ({max})."
        )));
    }
    Ok(Duration::from_secs(secs))
}

/// The account id and role name of `arn:aws:iam::ACCOUNT:role/[PATH/]NAME`.
pub(crate) fn parse_role_arn(arn: &str) -> Result<(String, String), ApiError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].starts_with("role/");
    let name = parts
        .last()
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or_default();
    if !valid || name.is_empty() {
        return Err(validation(format!("{arn} is invalid")));
    }
    Ok((parts[4].to_owned(), name.to_owned()))
}

pub(crate) fn session_name(params: &[(String, String)]) -> Result<String, ApiError> {
    let name = param(params, "RoleSessionName")
        .ok_or_else(|| validation("1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null"))?;
    let ok = (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if !ok {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
        )));
    }
    Ok(name.to_owned())
}

/// Checks `TokenCode` against the TOTP secret registered for
/// `SerialNumber`, if there is one, and burns the matched time step so the
/// code cannot be replayed.
fn check_mfa(state: &mut State, params: &[(String, String)]) -> Result<(), ApiError> {
    let Some(serial) = param(params, "SerialNumber") else {
        return Ok(());
    };
    let Some(secret) = state.config.totp_secrets.get(serial) else {
        return Ok(());
    };
    let failed = || {
        ApiError::sts(
            403,
            "AccessDenied",
            "MultiFactorAuthentication failed with invalid MFA one time pass code. ",
        )
    };
    let code = param(params, "TokenCode").ok_or_else(failed)?;
    let key = totp::decode_base32(secret).map_err(|_| failed())?;
    let now_step = state.now().unix_timestamp().max(0) as u64 / totp::STEP_SECONDS;
    let step = [now_step.saturating_sub(1), now_step, now_step + 1]
        .into_iter()
        .find(|&s| totp::code_at_step(&key, s) == code)
        .ok_or_else(failed)?;
    if !state.used_totp.insert((serial.to_owned(), step)) {
        return Err(failed());
    }
    Ok(())
}

/// Answers one STS action; the caller has already counted it and applied
/// faults.
pub fn handle(
    shared: &Shared,
    req: &Req,
    action: &str,
    request_id: &str,
) -> Result<Response, ApiError> {
    let params = params(req);
    let mut state = shared.lock();
    let result = match action {
        "AssumeRole" => assume_role(&mut state, req, &params)?,
        "GetSessionToken" => get_session_token(&mut state, req, &params)?,
        "AssumeRoleWithWebIdentity" => assume_role_with_web_identity(&mut state, &params)?,
        "AssumeRoleWithSAML" => crate::saml::assume_role_with_saml(&mut state, &params)?,
        "GetFederationToken" => get_federation_token(&mut state, req, &params)?,
        "DecodeAuthorizationMessage" => {
            authenticate(&state, req, &params)?;
            let encoded = param(&params, "EncodedMessage")
                .ok_or_else(|| validation("EncodedMessage is required"))?;
            let decoded = decode_message(&state.message_key, encoded).ok_or_else(|| {
                ApiError::sts(
                    400,
                    "InvalidAuthorizationMessageException",
                    "Message is not valid",
                )
            })?;
            format!(
                "    <DecodedMessage>{}</DecodedMessage>\n",
                xml_escape(&decoded)
            )
        }
        "GetCallerIdentity" => {
            let (identity, _) = authenticate(&state, req, &params)?;
            format!(
                "    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n",
                xml_escape(&identity.arn),
                xml_escape(&identity.user_id),
                xml_escape(&identity.account)
            )
        }
        other => {
            return Err(ApiError::sts(
                400,
                "InvalidAction",
                format!("Could not find operation {other} for version 2011-06-15"),
            ))
        }
    };
    Ok(xml_response(
        StatusCode::OK,
        format!(
            "<{action}Response xmlns=\"{NAMESPACE}\">\n  <{action}Result>\n{result}  </{action}Result>\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n"
        ),
    ))
}

fn assume_role(
    state: &mut State,
    req: &Req,
    params: &[(String, String)],
) -> Result<String, ApiError> {
    authenticate(state, req, params)?;
    let role_arn = param(params, "RoleArn").ok_or_else(|| validation("RoleArn is required"))?;
    let (account, role) = parse_role_arn(role_arn)?;
    let session = session_name(params)?;
    let lifetime = duration(params, 3600, 43200)?;
    if let Some(required) = state.config.external_ids.get(role_arn) {
        if param(params, "ExternalId") != Some(required.as_str()) {
            return Err(ApiError::sts(
                403,
                "AccessDenied",
                format!(
                    "User is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
                ),
            ));
        }
    }
    check_mfa(state, params)?;
    let identity = role_identity(&account, &role, &session);
    let credentials = state.issue_key(identity.clone(), lifetime);
    Ok(credentials_xml(&credentials) + &assumed_role_user_xml(&identity))
}

fn get_session_token(
    state: &mut State,
    req: &Req,
    params: &[(String, String)],
) -> Result<String, ApiError> {
    let (identity, long_term) = authenticate(state, req, params)?;
    if !long_term {
        return Err(ApiError::sts(
            403,
            "AccessDenied",
            "Cannot call GetSessionToken with session credentials",
        ));
    }
    let lifetime = duration(params, 43200, 129_600)?;
    check_mfa(state, params)?;
    let credentials = state.issue_key(identity, lifetime);
    Ok(credentials_xml(&credentials))
}

fn assume_role_with_web_identity(
    state: &mut State,
    params: &[(String, String)],
) -> Result<String, ApiError> {
    let role_arn = param(params, "RoleArn").ok_or_else(|| validation("RoleArn is required"))?;
    let (account, role) = parse_role_arn(role_arn)?;
    let session = session_name(params)?;
    let lifetime = duration(params, 3600, 43200)?;
    let token = param(params, "WebIdentityToken").ok_or_else(|| {
        ApiError::sts(
            400,
            "InvalidIdentityToken",
            "The web identity token is missing",
        )
    })?;
    let subject = jwt_subject(token).unwrap_or_else(|| "sandbox-subject".to_owned());
    let identity = role_identity(&account, &role, &session);
    let credentials = state.issue_key(identity.clone(), lifetime);
    Ok(credentials_xml(&credentials)
        + &assumed_role_user_xml(&identity)
        + &format!(
            "    <SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken>\n    <Audience>sts.amazonaws.com</Audience>\n    <Provider>sandbox</Provider>\n",
            xml_escape(&subject)
        ))
}

/// The `sub` claim of a JWT, read without verifying it: the sandbox trusts
/// every web identity token, but reports a real subject when there is one.
fn jwt_subject(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(claims.get("sub")?.as_str()?.to_owned())
}

pub(crate) fn role_identity(account: &str, role: &str, session: &str) -> Identity {
    Identity {
        arn: format!("arn:aws:sts::{account}:assumed-role/{role}/{session}"),
        user_id: format!("AROA{}:{session}", stable_id(role)),
        account: account.to_owned(),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the timestamp form STS uses and SDKs parse.
pub fn format_timestamp(at: time::OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

pub(crate) fn credentials_xml(c: &NewCredentials) -> String {
    format!(
        "    <Credentials>\n      <AccessKeyId>{}</AccessKeyId>\n      <SecretAccessKey>{}</SecretAccessKey>\n      <SessionToken>{}</SessionToken>\n      <Expiration>{}</Expiration>\n    </Credentials>\n",
        c.access_key_id,
        c.secret_access_key,
        c.session_token,
        format_timestamp(c.expires_at)
    )
}

pub(crate) fn assumed_role_user_xml(identity: &Identity) -> String {
    format!(
        "    <AssumedRoleUser>\n      <AssumedRoleId>{}</AssumedRoleId>\n      <Arn>{}</Arn>\n    </AssumedRoleUser>\n",
        xml_escape(&identity.user_id),
        xml_escape(&identity.arn)
    )
}

/// The name of a federated user: 2 to 32 of `[\w+=,.@-]`.
fn federated_name(params: &[(String, String)]) -> Result<String, ApiError> {
    let name = param(params, "Name").ok_or_else(|| {
        validation("1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null")
    })?;
    let ok = (2..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if !ok {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
        )));
    }
    Ok(name.to_owned())
}

/// GetFederationToken: long-term keys only; the root user's sessions are
/// held to one hour, as AWS does.
fn get_federation_token(
    state: &mut State,
    req: &Req,
    params: &[(String, String)],
) -> Result<String, ApiError> {
    let (caller, long_term) = authenticate(state, req, params)?;
    if !long_term {
        return Err(ApiError::sts(
            403,
            "AccessDenied",
            "Cannot call GetFederationToken with session credentials",
        ));
    }
    let name = federated_name(params)?;
    let mut lifetime = duration(params, 43200, 129_600)?;
    if caller.arn.ends_with(":root") {
        lifetime = lifetime.min(Duration::from_secs(3600));
    }
    let policy = param(params, "Policy");
    if let Some(policy) = policy {
        if serde_json::from_str::<serde_json::Value>(policy).is_err() {
            return Err(ApiError::sts(
                400,
                "MalformedPolicyDocument",
                "The policy is not in the valid JSON format.",
            ));
        }
    }
    let policy_arns = params
        .iter()
        .filter(|(k, _)| k.starts_with("PolicyArns.member.") && k.ends_with(".arn"))
        .count();
    let identity = Identity {
        arn: format!("arn:aws:sts::{}:federated-user/{name}", caller.account),
        user_id: format!("{}:{name}", caller.account),
        account: caller.account,
    };
    let credentials = state.issue_key(identity.clone(), lifetime);
    let mut xml = credentials_xml(&credentials)
        + &format!(
            "    <FederatedUser>\n      <FederatedUserId>{}</FederatedUserId>\n      <Arn>{}</Arn>\n    </FederatedUser>\n",
            xml_escape(&identity.user_id),
            xml_escape(&identity.arn)
        );
    if policy.is_some() || policy_arns > 0 {
        // AWS reports how full the packed policy is, in percent.
        let size = policy.map_or(0, str::len) * 100 / 2048 + policy_arns * 5;
        xml += &format!(
            "    <PackedPolicySize>{}</PackedPolicySize>\n",
            size.min(100)
        );
    }
    Ok(xml)
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn message_mac(key: &[u8; 32], message: &[u8]) -> HmacSha256 {
    use hmac::Mac as _;
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac
}

/// Encodes an authorization-failure message the way the sandbox's
/// DecodeAuthorizationMessage reads it: base64url of the JSON and of its
/// HMAC, so a garbled message is told from a good one.
pub fn encode_message(key: &[u8; 32], message: &serde_json::Value) -> String {
    use hmac::Mac as _;
    let text = message.to_string();
    let tag = message_mac(key, text.as_bytes()).finalize().into_bytes();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}", b64.encode(&text), b64.encode(tag))
}

/// The JSON text [`encode_message`] encoded, if `encoded` is intact.
fn decode_message(key: &[u8; 32], encoded: &str) -> Option<String> {
    use hmac::Mac as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (text, tag) = encoded.trim().split_once('.')?;
    let text = b64.decode(text).ok()?;
    message_mac(key, &text)
        .verify_slice(&b64.decode(tag).ok()?)
        .ok()?;
    String::from_utf8(text).ok()
}
