//! `aws login` sessions (`login_session = <identity ARN>` in a profile) and
//! SAML profiles (`credd_saml_principal_arn` + `credd_saml_process`): the
//! types a plan's base carries. How a login session's cache file is read,
//! refreshed and written is credd-aws's (`login_cache`, `signin`); the
//! broker holds one node per session, shared by every profile on it.

use sha2::{Digest, Sha256};

/// How long before expiry credd refreshes an `aws login` session's
/// credentials: well ahead of botocore's 5 min (`_REFRESH_THRESHOLD`), so
/// that while credd holds a session, programs reading the same cache file
/// find enough life left and never refresh (and spend the rotating refresh
/// token) themselves. credd-aws refreshes when the file has no more than
/// this left; the schedule renews the node before it has less.
pub const LOGIN_REFRESH_MARGIN: time::Duration = time::Duration::minutes(10);

/// One `aws login` session: the value of `login_session`, the ARN of the
/// console identity that signed in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LoginSession {
    pub arn: String,
}

impl LoginSession {
    pub fn new(arn: impl Into<String>) -> Self {
        Self { arn: arn.into() }
    }
    /// The cache file's stem: the hex SHA-256 of the `login_session` value,
    /// as botocore's `generate_login_cache_key` computes it.
    pub fn cache_key(&self) -> String {
        hex::encode(Sha256::digest(self.arn.as_bytes()))
    }
    /// Whether the identity is itself a role session (an assumed or federated
    /// role), so a role assumed from it is "chained" and capped at 1 h.
    pub fn is_role(&self) -> bool {
        self.arn.contains(":assumed-role/")
    }
    /// The commands that start a new session for `profile`.
    pub fn login_commands(profile: &str) -> String {
        format!("`aws login --profile {profile}` or `credd login --profile {profile}`")
    }
}

/// A profile whose base is a login session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRef {
    /// The profile that names the session (its region applies to the
    /// Sign-In endpoint unless the token carries `signInRegion`).
    pub profile: String,
    pub session: LoginSession,
}

/// credd's SAML profile keys, beside the standard `role_arn`.
pub const KEY_SAML_PRINCIPAL_ARN: &str = "credd_saml_principal_arn";
pub const KEY_SAML_PROCESS: &str = "credd_saml_process";

/// A profile served through `AssumeRoleWithSAML`: `credd_saml_process` prints a
/// base64 SAMLResponse, re-run for each refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlSpec {
    pub profile: String,
    pub role_arn: String,
    /// The IdP's ARN (`arn:aws:iam::<account>:saml-provider/<name>`).
    pub principal_arn: String,
    /// Run without a shell, like `credential_process`.
    pub process: String,
    /// `duration_seconds`, if set (AWS's SAML rules: 900 s to 12 h, and no
    /// more than the role's maximum).
    pub duration_secs: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_is_the_hex_sha256_of_the_session_value() {
        // echo -n 'arn:aws:iam::123456789012:user/dev' | sha256sum
        let s = LoginSession::new("arn:aws:iam::123456789012:user/dev");
        assert_eq!(
            s.cache_key(),
            "893f13863f68a08133e541260597f1d60f5bf9b326625782990032cbad201e26"
        );
        assert!(!s.is_role());
        assert!(LoginSession::new("arn:aws:sts::123456789012:assumed-role/Admin/dev").is_role());
    }
}
