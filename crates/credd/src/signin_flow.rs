//! The `aws login` sign-in (AWS Sign-In with the user's console
//! credentials), run in the CLI process for `credd login --profile P` on a
//! `login_session` profile: the same-device flow (PKCE and a loopback
//! redirect) or, with `--remote`, the cross-device one (a verification code
//! pasted into the terminal), step for step as the AWS CLI v2's `aws login`
//! runs them (`awscli/customizations/login/`). The result is written as the
//! CLI writes it: the token to the login cache (`credd_aws::login_cache`,
//! shared with botocore and the CLI), then `login_session = <identity ARN>`
//! into the profile. The daemon is then told; it never signs in itself.
//!
//! Layering: a leaf; it imports leaves only (`clock`, `login_flow`), never a
//! command.

use crate::login_flow::{tell_daemon, Browser, Redirect, Retry};
use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use credd_aws::dpop::DpopKey;
use credd_aws::login_cache::{LoginCache, LoginToken};
use credd_aws::signin::{login_session_from_id_token, signin_endpoint, SignInClient};
use credd_core::login::LoginSession;
use credd_core::profile::{resolve, Base, ConfigErrorKind, RawProfiles};
use credd_core::SecretString;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::io::BufRead;
use std::path::Path;

/// The Sign-In clients of the AWS CLI (`CLIENT_ID` in its `login/utils.py`).
pub const CLIENT_SAME_DEVICE: &str = "arn:aws:signin:::devtools/same-device";
pub const CLIENT_CROSS_DEVICE: &str = "arn:aws:signin:::devtools/cross-device";
/// Where the cross-device flow's sign-in page shows the code to paste.
const CONFIRMATION_PATH: &str = "/v1/sessions/confirmation";
/// What botocore's `percent_encode_sequence` leaves alone (RFC 3986's
/// unreserved characters), so the URL is the one the CLI would print.
const QUERY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// What `credd login --profile P` does for a profile that is not an IAM
/// Identity Center one.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// An `aws login` sign-in, whose `login_session` goes into this profile
    /// (P itself, or the profile P's roles are chained on).
    SignIn(String),
    /// Not a sign-in: the caller goes on with the plan's own login (IAM
    /// Identity Center, SAML), or reports the profile's error.
    NotSignIn,
    /// Refused, as `aws login` refuses it: the message says why.
    Refused(String),
}

/// Which sign-in `credd login --profile P` is: P has `login_session` (or
/// its roles are chained on a profile that has), or P has no credentials
/// yet (not in the files at all, or settings only), which `aws login
/// --profile P` fills with a new session.
pub fn route(raw: &RawProfiles, profile: &str) -> Route {
    match resolve(raw, profile) {
        Ok(plan) => match plan.base {
            Base::Login(l) => match credential_style(raw.get(&l.profile)) {
                // botocore would use the other credentials first.
                Some(style) => Route::Refused(refusal(&l.profile, style)),
                None => Route::SignIn(l.profile),
            },
            Base::Sso(_) | Base::Saml(_) => Route::NotSignIn,
            other => {
                let style = credential_style(raw.get(profile))
                    .map(str::to_string)
                    .unwrap_or_else(|| other.describe());
                Route::Refused(refusal(profile, &style))
            }
        },
        Err(e)
            if e.profile == profile
                && matches!(
                    e.kind,
                    ConfigErrorKind::Unknown | ConfigErrorKind::NoCredentials
                ) =>
        {
            Route::SignIn(profile.to_string())
        }
        Err(_) => Route::NotSignIn,
    }
}

/// The credentials a profile's own keys already configure, named as `aws
/// login`'s `ensure_profile_does_not_have_existing_credentials` names them.
pub fn credential_style(
    props: Option<&std::collections::BTreeMap<String, String>>,
) -> Option<&'static str> {
    let props = props?;
    let has = |k: &str| props.get(k).is_some_and(|v| !v.trim().is_empty());
    if has("web_identity_token_file") {
        Some("Web Identity")
    } else if has("sso_role_name") || has("sso_account_id") {
        Some("SSO")
    } else if has("aws_access_key_id") {
        Some("Access Key")
    } else if has("role_arn") {
        Some("Assume Role")
    } else if has("credential_process") {
        Some("Credential Process")
    } else {
        None
    }
}

/// Why a profile with other credentials does not get a login session
/// (`credd login --profile P` signs in to IAM Identity Center or with
/// console credentials; P needs neither).
pub fn refusal(profile: &str, style: &str) -> String {
    format!(
        "profile '{profile}' is already configured with {style} credentials, which need no \
sign-in (and which SDKs would use instead of a login session): to sign in with your console \
credentials, as `aws login` does, run `credd login --profile NEW-NAME` for a new profile, or \
first remove the existing credentials from '{profile}'"
    )
}

/// The profile a sign-in is for, checked before any call.
#[derive(Debug)]
pub struct Target {
    pub profile: String,
    /// Its `login_session` now.
    pub current: Option<LoginSession>,
    /// The Sign-In region: `--region`, else the profile's.
    pub region: String,
    /// The profile has no region: the one used is written beside
    /// `login_session` (as `aws login` writes the region it asked for), so
    /// that every later refresh goes to the same regional endpoint.
    pub write_region: bool,
}

impl Target {
    pub fn new(raw: &RawProfiles, profile: &str, region: Option<&str>) -> Result<Self> {
        let props = raw.get(profile);
        let get = |k: &str| {
            props
                .and_then(|p| p.get(k))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let own = get("region");
        let region = match (region, &own) {
            (Some(r), _) => r.trim().to_string(),
            (None, Some(r)) => r.clone(),
            (None, None) => bail!(
                "profile '{profile}' has no region, and AWS Sign-In is regional: run \
`credd login --profile {profile} --region REGION` (the region is then written to the profile)"
            ),
        };
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            bail!("'{region}' is not an AWS region (e.g. us-east-1)");
        }
        Ok(Self {
            profile: profile.to_string(),
            current: get("login_session").map(LoginSession::new),
            write_region: own.is_none(),
            region,
        })
    }
}

/// How the user approves the sign-in.
#[derive(Debug, Clone, Copy)]
pub enum Flow {
    /// In a browser on this machine, which comes back to a loopback port.
    SameDevice(Browser),
    /// On any device; the page shows a code the user pastes here.
    CrossDevice,
}

/// A completed sign-in: the identity and its token, not yet written.
#[derive(Debug)]
pub struct SignedIn {
    pub session: LoginSession,
    pub token: LoginToken,
}

/// The authorize URL, as the CLI's `_get_authorization_uri` builds it: the
/// parameters percent-encoded in this order, then the challenge as is.
pub fn authorize_url(
    endpoint: &str,
    client_id: &str,
    state: &str,
    challenge: &str,
    redirect_uri: &str,
) -> String {
    let enc = |v: &str| utf8_percent_encode(v, QUERY_ENCODE).to_string();
    format!(
        "{}/v1/authorize?response_type=code&client_id={}&state={}&code_challenge_method=SHA-256\
&scope=openid&redirect_uri={}&code_challenge={challenge}",
        endpoint.trim_end_matches('/'),
        enc(client_id),
        enc(state),
        enc(redirect_uri),
    )
}

/// The code the cross-device page shows: base64 of `state=S&code=C` (the
/// CLI's `parse_verification_code`). Returns the code and the state.
pub fn parse_verification_code(pasted: &str) -> Result<(SecretString, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(pasted.trim())
        .map_err(|_| anyhow!("that is not the code the sign-in page shows (not base64)"))?;
    let (mut code, mut state) = (None, None);
    for (k, v) in form_urlencoded::parse(&bytes) {
        match &*k {
            "code" => code = Some(SecretString::new(v.into_owned())),
            "state" => state = Some(v.into_owned()),
            _ => {}
        }
    }
    match (code, state) {
        (Some(c), Some(s)) => Ok((c, s)),
        _ => bail!("that is not the code the sign-in page shows (no code or state in it)"),
    }
}

/// Runs the sign-in against `endpoint` (the Sign-In service's base URL) and
/// exchanges the code for the first token. `again` is the command that
/// starts it over.
pub async fn sign_in(endpoint: &str, flow: Flow, again: &str) -> Result<SignedIn> {
    let endpoint = endpoint.trim_end_matches('/');
    let key = DpopKey::generate();
    let (verifier, challenge) = credd_aws::sso::pkce_pair();
    let state = uuid::Uuid::new_v4().to_string();
    let (client_id, code, redirect_uri) = match flow {
        Flow::SameDevice(browser) => {
            let redirect = Redirect::listen().await?;
            let redirect_uri = redirect.uri();
            let url = authorize_url(
                endpoint,
                CLIENT_SAME_DEVICE,
                &state,
                &challenge,
                &redirect_uri,
            );
            let code = redirect
                .code(
                    &url,
                    "AWS with your console credentials",
                    browser,
                    &state,
                    &Retry {
                        command: again,
                        other_flow: "--remote",
                    },
                )
                .await?;
            (CLIENT_SAME_DEVICE, code, redirect_uri)
        }
        Flow::CrossDevice => {
            let redirect_uri = format!("{endpoint}{CONFIRMATION_PATH}");
            let url = authorize_url(
                endpoint,
                CLIENT_CROSS_DEVICE,
                &state,
                &challenge,
                &redirect_uri,
            );
            eprintln!(
                "To sign in to AWS with your console credentials, open this page on any device:\n\n  {url}\n\n\
Once signed in, the page shows an authorization code: paste it here."
            );
            let pasted = read_line("Authorization code: ")?
                .ok_or_else(|| anyhow!("no authorization code was entered: run `{again}` again"))?;
            let (code, got) = parse_verification_code(pasted.expose())?;
            if got != state {
                bail!("that code is from another sign-in (its state differs): run `{again}` again");
            }
            (CLIENT_CROSS_DEVICE, code, redirect_uri)
        }
    };
    let output = SignInClient::default()
        .exchange_code(endpoint, &key, client_id, &code, &verifier, &redirect_uri)
        .await
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| {
            format!(
                "failed to exchange the authorization code for credentials (run `{again}` again)"
            )
        })?;
    let arn = output
        .id_token
        .as_ref()
        .ok_or_else(|| anyhow!("it has no ID token"))
        .and_then(|t| login_session_from_id_token(t.expose()).map_err(|e| anyhow!("{e}")))
        .context("the Sign-In service's answer names no identity")?;
    let token = LoginToken::from_output(output, client_id, &key, crate::clock::now());
    Ok(SignedIn {
        session: LoginSession::new(arn),
        token,
    })
}

/// One line from standard input (a terminal or a pipe), after `prompt` on
/// stderr; `None` at end of input. Held as a secret: the pasted code
/// carries the authorization code.
fn read_line(prompt: &str) -> Result<Option<SecretString>> {
    eprint!("{prompt}");
    let mut buf = String::new();
    // Blocking is fine here: nothing else runs while the user types, and
    // block_in_place keeps the runtime's other workers free.
    let n = tokio::task::block_in_place(|| std::io::stdin().lock().read_line(&mut buf))
        .context("failed to read standard input")?;
    // The buffer moves into a secret (zeroized when dropped), and so does
    // its trimmed copy.
    let line = SecretString::new(buf);
    let text = line.expose().trim();
    Ok((n > 0 && !text.is_empty()).then(|| SecretString::new(text)))
}

/// Asks a yes/no question on the terminal; no answer (end of input) is no.
fn confirm(question: &str) -> Result<bool> {
    let answer = read_line(&format!("{question} (y/n): "))?;
    Ok(answer.is_some_and(|a| matches!(a.expose().to_ascii_lowercase().as_str(), "y" | "yes")))
}

/// What `credd login --profile P` was asked for.
#[derive(Debug)]
pub struct Options<'a> {
    /// The profile named on the command line (P's roles may be chained on
    /// `target.profile`).
    pub asked: &'a str,
    pub target: Target,
    pub flow: Flow,
    /// Replace another identity's `login_session` without asking.
    pub yes: bool,
    pub config_file: &'a Path,
}

/// `credd login --profile P` for a login session: sign in, then write the
/// token and the profile as `aws login` does, then tell the daemon.
pub async fn login(o: Options<'_>) -> Result<()> {
    let t = &o.target;
    let again = format!("credd login --profile {}", o.asked);
    if o.asked != t.profile {
        eprintln!(
            "Profile '{}' is served from the login session of profile '{}': signing in for it.",
            o.asked, t.profile
        );
    }
    let endpoint = signin_endpoint(&t.region);
    let signed = sign_in(&endpoint, o.flow, &again).await?;
    let arn = &signed.session.arn;
    if let Some(current) = t.current.as_ref().filter(|c| *c != &signed.session) {
        let question = format!(
            "Profile '{}' is configured to use session {}. Replace it with {arn}?",
            t.profile, current.arn
        );
        if !o.yes && !confirm(&question)? {
            bail!(
                "profile '{}' is left as it was (login_session {}); nothing was written. Run \
`{again} --yes` to replace it without asking",
                t.profile,
                current.arn
            );
        }
    }
    let cache = LoginCache::from_env()
        .map_err(|e| anyhow!("{e}"))
        .context("failed to find the login cache")?;
    cache
        .save(&signed.session, &signed.token)
        .map_err(|e| anyhow!("{e}"))
        .context("failed to write the login cache")?;
    let mut props = vec![("login_session", arn.as_str())];
    if t.write_region {
        props.push(("region", t.region.as_str()));
    }
    credd_aws::credfile::set_profile(o.config_file, &t.profile, &props)
        .with_context(|| format!("failed to set login_session in {}", o.config_file.display()))?;
    eprintln!(
        "Signed in as {arn}. Profile '{}' uses this session (login_session in {}); its credentials \
are written to {}, where the AWS CLI and SDKs find them too, and credd refreshes them until the \
session ends.",
        t.profile,
        o.config_file.display(),
        cache.path(&signed.session).display(),
    );
    tell_daemon().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use credd_core::profile::raw_from;

    #[test]
    fn the_authorize_url_is_the_clis() {
        let url = authorize_url(
            "http://127.0.0.1:9/",
            CLIENT_SAME_DEVICE,
            "0b6e6bd6-6d3c-4b5b-9b0a-4f7c0c1d2e3f",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "http://127.0.0.1:5555/oauth/callback",
        );
        assert_eq!(
            url,
            "http://127.0.0.1:9/v1/authorize?response_type=code\
&client_id=arn%3Aaws%3Asignin%3A%3A%3Adevtools%2Fsame-device\
&state=0b6e6bd6-6d3c-4b5b-9b0a-4f7c0c1d2e3f&code_challenge_method=SHA-256&scope=openid\
&redirect_uri=http%3A%2F%2F127.0.0.1%3A5555%2Foauth%2Fcallback\
&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_pasted_code_gives_the_code_and_the_state() {
        // base64("state=S-1&code=the+code%2F1"), as the page shows it.
        let pasted =
            base64::engine::general_purpose::STANDARD.encode("state=S-1&code=the+code%2F1");
        let (code, state) = parse_verification_code(&format!("  {pasted}\n")).unwrap();
        assert_eq!((code.expose(), state.as_str()), ("the code/1", "S-1"));
        for bad in ["not base64!", "c3RhdGU9UzE="] {
            let e = parse_verification_code(bad).unwrap_err().to_string();
            assert!(e.contains("not the code the sign-in page shows"), "{e}");
        }
    }

    #[test]
    fn which_profiles_are_signed_in_and_which_are_refused() {
        let raw = raw_from(&[
            (
                "console",
                &[
                    ("login_session", "arn:aws:iam::1:user/a"),
                    ("region", "eu-west-1"),
                ],
            ),
            (
                "on-console",
                &[
                    ("role_arn", "arn:aws:iam::1:role/r"),
                    ("source_profile", "console"),
                ],
            ),
            ("settings-only", &[("region", "eu-west-1")]),
            (
                "keys",
                &[
                    ("aws_access_key_id", "AKIA"),
                    ("aws_secret_access_key", "s"),
                ],
            ),
            (
                "both",
                &[
                    ("login_session", "arn:aws:iam::1:user/a"),
                    ("credential_process", "x"),
                ],
            ),
            (
                "sso",
                &[
                    ("sso_session", "w"),
                    ("sso_account_id", "1"),
                    ("sso_role_name", "r"),
                ],
            ),
        ]);
        assert_eq!(route(&raw, "console"), Route::SignIn("console".into()));
        assert_eq!(route(&raw, "on-console"), Route::SignIn("console".into()));
        assert_eq!(
            route(&raw, "settings-only"),
            Route::SignIn("settings-only".into())
        );
        assert_eq!(route(&raw, "new"), Route::SignIn("new".into()));
        let Route::Refused(why) = route(&raw, "keys") else {
            panic!("a profile with keys is refused")
        };
        assert!(
            why.contains("'keys' is already configured with Access Key credentials"),
            "{why}"
        );
        assert_eq!(route(&raw, "sso"), Route::NotSignIn);
        let Route::Refused(why) = route(&raw, "both") else {
            panic!("a login_session beside credential_process is refused")
        };
        assert!(
            why.contains("already configured with Credential Process credentials")
                && why.contains("credd login --profile NEW-NAME"),
            "{why}"
        );
        assert_eq!(credential_style(raw.get("keys")), Some("Access Key"));
        assert_eq!(credential_style(raw.get("sso")), Some("SSO"));
    }

    #[test]
    fn the_region_is_the_flags_else_the_profiles_else_an_error() {
        let raw = raw_from(&[
            ("a", &[("region", "eu-west-1"), ("login_session", "arn:x")]),
            ("b", &[]),
        ]);
        let t = Target::new(&raw, "a", None).unwrap();
        assert_eq!((t.region.as_str(), t.write_region), ("eu-west-1", false));
        assert_eq!(t.current, Some(LoginSession::new("arn:x")));
        let t = Target::new(&raw, "a", Some("us-west-2")).unwrap();
        assert_eq!((t.region.as_str(), t.write_region), ("us-west-2", false));
        let t = Target::new(&raw, "b", Some("us-west-2")).unwrap();
        assert_eq!((t.region.as_str(), t.write_region), ("us-west-2", true));
        assert_eq!(t.current, None);
        let e = Target::new(&raw, "b", None).unwrap_err().to_string();
        assert!(e.contains("credd login --profile b --region REGION"), "{e}");
        let e = Target::new(&raw, "b", Some("eu west"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an AWS region"), "{e}");
    }
}
