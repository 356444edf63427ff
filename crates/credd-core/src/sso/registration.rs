//! What credd registers as with SSO OIDC (`RegisterClient`): the AWS CLI's
//! shapes for the authorization-code flow and the device-code flow.

use super::SsoSession;

/// What a client registers as: the CLI's shape for the authorization-code
/// flow (PKCE with a loopback redirect) or the device-code flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRequest {
    pub client_name: String,
    pub scopes: Vec<String>,
    pub grant_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub issuer_url: Option<String>,
}

pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
pub const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The redirect URI the CLI registers (the port is added per login).
pub const REDIRECT_URI: &str = "http://127.0.0.1/oauth/callback";

impl RegistrationRequest {
    /// As `aws sso login` registers for the authorization-code flow.
    pub fn auth_code(session: &SsoSession) -> Self {
        Self {
            client_name: client_name(session),
            scopes: session.effective_scopes(),
            grant_types: vec![GRANT_AUTHORIZATION_CODE.into(), GRANT_REFRESH_TOKEN.into()],
            redirect_uris: vec![REDIRECT_URI.into()],
            issuer_url: Some(session.start_url.clone()),
        }
    }
    /// As `aws sso login --use-device-code` registers.
    pub fn device_code(session: &SsoSession) -> Self {
        Self {
            client_name: client_name(session),
            scopes: session.effective_scopes(),
            grant_types: vec![GRANT_DEVICE_CODE.into(), GRANT_REFRESH_TOKEN.into()],
            redirect_uris: vec![],
            issuer_url: None,
        }
    }
}

fn client_name(session: &SsoSession) -> String {
    match &session.name {
        Some(n) => format!("credd-{n}"),
        None => "credd".into(),
    }
}
