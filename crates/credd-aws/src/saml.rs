//! SAML profiles (`role_arn` + `credd_saml_principal_arn` +
//! `credd_saml_process`): running the helper that prints a base64
//! SAMLResponse, checking what it printed, and the unsigned
//! `AssumeRoleWithSAML`.
//!
//! The helper runs in two places. In the daemon, for every refresh, exactly
//! as `credential_process` runs (no shell, stdin closed, a time limit, a
//! scrubbed environment): it must never wait for the user there. In `credd
//! login --profile P` ([`run_interactive`]) it runs in the foreground with
//! the user's terminal, so a helper that needs a browser or a push approval
//! can ask; it then caches its IdP session (as saml2aws does) and the
//! daemon's own runs succeed. The assertion is a bearer secret: it is held
//! in a [`SecretString`], never logged, never quoted in an error (only the
//! helper's stderr is), and never written anywhere.

use crate::classify::{self, Operation};
use crate::local;
use crate::sts::AwsUpstream;
use base64::Engine;
use credd_core::login::SamlSpec;
use credd_core::upstream::CallContext;
use credd_core::{SecretString, TemporaryCredentials, UpstreamError, UpstreamErrorKind};
use std::io::Read;
use std::process::Stdio;
use zeroize::Zeroizing;

/// AWS's limit on the `SAMLAssertion` parameter (100,000 characters).
const MAX_ASSERTION: usize = 100_000;

/// What a SAML helper printed on stdout, checked: trimmed, non-empty,
/// standard base64 of something that looks like XML. The reason is about
/// the shape only, never the content.
pub fn parse_assertion(stdout: &[u8]) -> Result<SecretString, &'static str> {
    let text = std::str::from_utf8(stdout)
        .map_err(|_| "its output is not text (expected a base64 SAMLResponse)")?
        .trim();
    if text.is_empty() {
        return Err("it printed nothing on stdout (expected a base64 SAMLResponse)");
    }
    if text.len() > MAX_ASSERTION {
        return Err("it printed more than AWS accepts as a SAML assertion (100,000 characters)");
    }
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| "its output is not base64 (expected a base64 SAMLResponse)")?,
    );
    // A SAMLResponse is an XML document; anything else (a JSON document, a
    // prompt's text) is a helper printing the wrong thing.
    if decoded.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'<') {
        return Err("its output is base64, but not of an XML SAMLResponse");
    }
    Ok(SecretString::new(text))
}

/// Why [`run_interactive`] failed, in words for the user (never the
/// helper's stdout).
#[derive(Debug, thiserror::Error)]
pub enum SamlHelperError {
    #[error("credd_saml_process has an unbalanced quote or a trailing backslash")]
    Unparsable,
    #[error("credd_saml_process is empty")]
    Empty,
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{program}` failed ({status})")]
    Failed {
        program: String,
        status: std::process::ExitStatus,
    },
    #[error("`{program}`: {reason}")]
    Output {
        program: String,
        reason: &'static str,
    },
}

/// Runs a profile's `credd_saml_process` in the foreground for `credd
/// login`: stdin and stderr are the user's terminal (the helper may prompt
/// or print a URL there), stdout is captured and checked. No shell, and the
/// same scrubbed environment as the daemon's runs, so that what succeeds
/// here succeeds there. Blocking: call it from a blocking context.
pub fn run_interactive(command: &str) -> Result<SecretString, SamlHelperError> {
    let argv = shlex::split(command).ok_or(SamlHelperError::Unparsable)?;
    let (program, args) = argv.split_first().ok_or(SamlHelperError::Empty)?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    credd_core::child_env::scrub(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| SamlHelperError::Spawn {
        program: program.clone(),
        source,
    })?;
    let mut stdout = Zeroizing::new(Vec::new());
    if let Some(mut out) = child.stdout.take() {
        // At most twice what AWS accepts is kept (more fails the check
        // below); the rest is drained so the helper never blocks on a full
        // pipe.
        let _ = (&mut out)
            .take(MAX_ASSERTION as u64 * 2)
            .read_to_end(&mut stdout);
        let _ = std::io::copy(&mut out, &mut std::io::sink());
    }
    let status = child.wait().map_err(|source| SamlHelperError::Spawn {
        program: program.clone(),
        source,
    })?;
    if !status.success() {
        return Err(SamlHelperError::Failed {
            program: program.clone(),
            status,
        });
    }
    parse_assertion(&stdout).map_err(|reason| SamlHelperError::Output {
        program: program.clone(),
        reason,
    })
}

/// What the user runs when the helper cannot succeed unattended.
fn login_hint(profile: &str) -> String {
    format!(
        "if the SAML helper needs you (a browser, a push approval), run `credd login --profile {profile}`"
    )
}

impl AwsUpstream {
    /// The assertion from the profile's helper, run the daemon's way.
    async fn saml_assertion(&self, spec: &SamlSpec) -> Result<SecretString, UpstreamError> {
        let what = format!("credd_saml_process of profile '{}'", spec.profile);
        let out = local::run(&what, &spec.process, self.command_timeout)
            .await
            .map_err(|e| {
                let message = format!("{}; {}", e.message, login_hint(&spec.profile));
                UpstreamError::new(e.kind, message)
            })?;
        parse_assertion(&out.stdout).map_err(|reason| {
            UpstreamError::new(
                UpstreamErrorKind::Source,
                format!(
                    "{what} (`{}`): {reason}; {}",
                    out.program,
                    login_hint(&spec.profile)
                ),
            )
        })
    }

    /// `AssumeRoleWithSAML` with a fresh assertion; the call is unsigned
    /// (the assertion is the authentication).
    pub(crate) async fn saml_credentials(
        &self,
        ctx: &CallContext,
        spec: &SamlSpec,
    ) -> Result<TemporaryCredentials, UpstreamError> {
        let op = Operation::AssumeRoleWithSaml;
        let assertion = self.saml_assertion(spec).await?;
        let config = self.call_config(op, ctx, None).await?;
        let out = self
            .client
            .assume_role_with_saml()
            .role_arn(&spec.role_arn)
            .principal_arn(&spec.principal_arn)
            .saml_assertion(assertion.expose())
            .set_duration_seconds(
                spec.duration_secs
                    .map(|d| crate::sts::duration(op, d))
                    .transpose()?,
            )
            .customize()
            .config_override(config)
            .send()
            .await
            .map_err(|e| classify::from_sdk(op, &e))?;
        let account = out
            .assumed_role_user
            .as_ref()
            .and_then(|u| crate::sts::account_of(&u.arn))
            .or_else(|| crate::sts::account_of(&spec.role_arn));
        crate::sts::issued(op, out.credentials, account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn an_assertion_is_trimmed_base64_of_xml() {
        let xml = "<samlp:Response>canary</samlp:Response>";
        let out = format!("  {}\n", b64(xml));
        let a = parse_assertion(out.as_bytes()).unwrap();
        assert_eq!(a.expose(), b64(xml));
    }

    #[test]
    fn anything_else_is_refused_without_quoting_it() {
        for (out, want) in [
            (String::new(), "printed nothing"),
            ("   \n".to_string(), "printed nothing"),
            ("not base64 canary!".to_string(), "not base64"),
            (b64("{\"canary\": 1}"), "not of an XML"),
        ] {
            let e = parse_assertion(out.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{out:?}: {e}");
            assert!(!e.contains("canary"), "{e}");
        }
        let e = parse_assertion(&[0xff, 0xfe]).unwrap_err();
        assert!(e.contains("not text"), "{e}");
        let huge = "A".repeat(MAX_ASSERTION + 4);
        assert!(parse_assertion(huge.as_bytes())
            .unwrap_err()
            .contains("100,000"));
    }

    #[test]
    fn the_interactive_run_captures_stdout_and_reports_failure_by_status() {
        let xml = b64("<Response/>");
        let ok = run_interactive(&format!("printf %s {xml}")).unwrap();
        assert_eq!(ok.expose(), xml);
        let failed = run_interactive("sh -c 'echo canary-stdout; exit 3'").unwrap_err();
        let msg = failed.to_string();
        assert!(msg.contains("failed") && msg.contains('3'), "{msg}");
        assert!(!msg.contains("canary"), "{msg}");
        // A helper printing without end is drained, then refused.
        let flood = run_interactive("sh -c 'yes QUFBQQ | head -c 1000000'").unwrap_err();
        assert!(flood.to_string().contains("100,000"), "{flood}");
        assert!(matches!(
            run_interactive("'unbalanced"),
            Err(SamlHelperError::Unparsable)
        ));
        assert!(matches!(
            run_interactive("/nonexistent/credd-saml-helper"),
            Err(SamlHelperError::Spawn { .. })
        ));
    }
}
