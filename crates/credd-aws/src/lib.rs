//! credd-aws: everything that talks to AWS or reads `~/.aws` lives here; it is
//! the only crate that imports `aws-*`.
//!
//! - [`profiles`] reads `~/.aws/config` and `~/.aws/credentials` with the AWS
//!   SDK's own parser and hands credd-core plain key/value sections;
//!   [`profile_loader`] is the daemon's [`credd_core::ProfileLoader`] over them.
//! - [`populate`] works out the profiles `credd sso populate` adds to
//!   `~/.aws/config`, as an edit that keeps every other byte of the file.
//! - [`ini_edit`] is the one byte-preserving editor of the AWS files, and
//!   [`credfile`] sets one section of them (`write-credentials`, `profiles link`).
//! - [`sts`] implements [`credd_core::Upstream`]: the STS calls, plus the local
//!   sources (`credential_process`, `mfa_process`, the environment).
//! - [`saml`] runs a SAML profile's helper and calls `AssumeRoleWithSAML`;
//!   [`federation`] makes console sign-in URLs (`GetFederationToken`, the
//!   federation endpoint) and decodes authorization messages.
//! - [`sso`] calls the IAM Identity Center portal and OIDC services for login,
//!   logout, discovery and the daemon's token refreshes.
//! - [`sso_cache`] keeps SSO tokens in `~/.aws/sso/cache`, shared with the AWS CLI.
//! - [`login_cache`] keeps `aws login` sessions in `~/.aws/login/cache`,
//!   shared with the AWS CLI and botocore; [`signin`] refreshes them through
//!   AWS Sign-In with [`dpop`] proofs.
//! - [`userfile`] is the one writer of files the user and other tools also
//!   edit (the AWS files, the SSO cache, token files): locked, re-read before
//!   the rename, atomic, through symlinks, leaving no temporary copy.
//!
//! Secrets never reach an error message or a log line: upstream failures are
//! described by AWS's error code and message, and local commands by their exit
//! status and the first line of their stderr, never their stdout.

mod classify;
pub mod credfile;
pub mod dpop;
#[cfg(test)]
mod fake_http;
pub mod federation;
pub mod iam_rotate;
pub mod ini_edit;
pub mod key_import;
mod local;
pub mod login_cache;
pub mod populate;
pub mod profile_loader;
pub mod profiles;
pub mod saml;
pub mod signin;
pub mod sso;
pub mod sso_cache;
#[cfg(test)]
mod sso_tests;
pub mod sts;
#[cfg(test)]
mod sts_tests;
pub mod userfile;

pub use dpop::{DpopKey, DpopKeyError};
pub use login_cache::{LoginCache, LoginCacheError, LoginToken, Updated};
pub use profile_loader::AwsProfileLoader;
pub use profiles::{load_profiles, LoadedProfiles, ProfileEnv, ProfileLoadError};
pub use signin::{SignInClient, SignInError, TokenOutput};
pub use sso::{SsoClient, SsoError};
pub use sso_cache::FileTokenStore;
pub use sts::AwsUpstream;
