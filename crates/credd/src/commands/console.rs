//! `credd console PROFILE [--print] [--service NAME] [--region R]
//! [--duration D]`: the AWS console signed in as a profile, like
//! `aws-vault login`.
//!
//! Role-like credentials (everything the daemon serves except an IAM user's
//! `GetSessionToken` credentials) go to the federation endpoint as they are.
//! A profile of bare long-term keys first gets `GetFederationToken`
//! credentials, made here with the keys from the AWS files, because the
//! federation endpoint refuses the session-token credentials of an IAM user.
//! The login URL is a bearer secret: printed only with `--print`, never
//! logged, and handed to the browser as the path of a private page that
//! redirects to it (threat-model row 30), not on the browser's command line.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::client::{call, daemon_credentials};
use anyhow::{anyhow, Context, Result};
use credd_aws::federation;
use credd_aws::{AwsUpstream, ProfileEnv};
use credd_core::upstream::CallContext;
use credd_core::SecretString;
use credd_daemon::control::Request;
use credd_daemon::protocol::EndpointReply;
use std::time::Duration;

/// How long the redirect page stays on disk: long enough for a browser that
/// is starting up to read it, short enough that it is not left lying around.
const PAGE_LIFETIME: Duration = Duration::from_secs(10);

pub async fn run(a: crate::cli::ConsoleArgs) -> Result<()> {
    let duration = a
        .duration
        .as_deref()
        .map(crate::client::parse_ttl)
        .transpose()?;
    let profile_env = ProfileEnv::from_process_env();
    let bare = federation::bare_user_keys(&profile_env, &a.profile).await;
    let ep: EndpointReply = call(Request::Endpoint {
        profile: Some(a.profile.clone()),
    })
    .await?;
    let region = a.region.clone().or(ep.region.clone());
    let (creds, session_duration) = match &bare {
        Some((keys, mfa)) => {
            check_duration(
                duration,
                129_600,
                "an IAM user's GetFederationToken session",
            )?;
            if *mfa {
                eprintln!(
                    "note: profile '{}' has an mfa_serial, but GetFederationToken cannot use MFA: \
                     the console session is made without it (use a role with MFA to require it)",
                    a.profile
                );
            }
            // The console session lasts as long as these credentials.
            let upstream = AwsUpstream::new(profile_env);
            let ctx = CallContext {
                profile: a.profile.clone(),
                region: ep.region.clone(),
            };
            let name = federation::federated_name(&login_name());
            let creds = upstream
                .get_federation_token(&ctx, keys, &name, duration)
                .await
                .map_err(|e| anyhow!("{}", e.message))
                .with_context(|| {
                    format!(
                        "failed to get federation-token credentials for profile '{}' (the IAM user \
                         needs sts:GetFederationToken; MFA cannot be used with it)",
                        a.profile
                    )
                })?;
            (creds, None)
        }
        None => {
            check_duration(duration, 43_200, "a console session with role credentials")?;
            (daemon_credentials(&a.profile).await?, duration)
        }
    };
    let endpoint = federation::federation_endpoint(
        crate::environment::env_var("AWS_ENDPOINT_URL_SIGNIN").as_deref(),
        region.as_deref(),
    );
    let token = federation::signin_token(&endpoint, &creds, session_duration)
        .await
        .with_context(|| format!("failed to sign profile '{}' in to the console", a.profile))?;
    let destination = federation::console_destination(region.as_deref(), a.service.as_deref());
    let url = federation::login_url(&endpoint, &token, &destination);
    if a.print {
        println!("{}", url.expose());
        return Ok(());
    }
    open_in_browser(&url).await
}

/// AWS's limits, checked before any call so the message says what to pass.
fn check_duration(secs: Option<u64>, max: u64, what: &str) -> Result<()> {
    match secs {
        Some(s) if !(900..=max).contains(&s) => anyhow::bail!(
            "--duration: {what} lasts 900 to {max} seconds (15m to {}h), got {s}",
            max / 3600
        ),
        _ => Ok(()),
    }
}

/// The federated user's name: the local login name, as aws-vault uses.
fn login_name() -> String {
    crate::environment::env_var("USER")
        .or_else(|| crate::environment::env_var("LOGNAME"))
        .unwrap_or_else(|| "credd".to_string())
}

/// Opens the URL through a 0600 page in a fresh 0700 directory under the
/// runtime directory: the browser's command line holds the page's path, not
/// the URL (which `ps` would show every user). The page is removed after
/// [`PAGE_LIFETIME`], or at Ctrl-C.
async fn open_in_browser(url: &SecretString) -> Result<()> {
    let base = crate::environment::runtime_dir().join("console");
    credd_daemon::fsutil::private_dir(&base)
        .with_context(|| format!("failed to make the private directory {}", base.display()))?;
    sweep_stale_pages(&base, crate::clock::now());
    let dir = tempfile::Builder::new()
        .prefix("page-")
        .tempdir_in(&base)
        .context("failed to make a private directory for the sign-in page")?;
    let page = dir.path().join("console.html");
    let html = SecretString::new(redirect_page(url.expose()));
    credd_daemon::fsutil::write_private(&page, html.expose().as_bytes())
        .context("failed to write the sign-in page")?;
    let path = page
        .to_str()
        .context("the runtime directory is not UTF-8")?;
    if let Err(e) = webbrowser::open(path) {
        return Err(anyhow!(
            "could not open a browser ({e}); run `credd console PROFILE --print` and open the URL yourself"
        ));
    }
    eprintln!(
        "Opened the AWS console in your browser (the sign-in link is valid for 15 minutes and works once)."
    );
    tokio::select! {
        _ = tokio::time::sleep(PAGE_LIFETIME) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(dir);
    Ok(())
}

/// Removes the pages of earlier runs that were killed before they could
/// remove their own (older than [`PAGE_LIFETIME`]).
fn sweep_stale_pages(base: &std::path::Path, now: time::OffsetDateTime) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with("page-") {
            continue;
        }
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .map(|t| now - time::OffsetDateTime::from(t) > PAGE_LIFETIME)
            .unwrap_or(false);
        if stale {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A page that replaces itself with `url` (no history entry with script,
/// the meta refresh without it).
fn redirect_page(url: &str) -> String {
    let attr = url
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let js = serde_json::to_string(url)
        .unwrap_or_default()
        .replace('<', "\\u003c");
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">\
<meta name=\"referrer\" content=\"no-referrer\">\
<meta http-equiv=\"refresh\" content=\"0;url={attr}\">\
<title>AWS console (credd)</title></head>\
<body><script>location.replace({js});</script>Signing in to the AWS console...</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_left_by_a_killed_run_are_swept() {
        let base = tempfile::tempdir().unwrap();
        let old = base.path().join("page-old");
        let other = base.path().join("not-a-page");
        std::fs::create_dir(&old).unwrap();
        std::fs::create_dir(&other).unwrap();
        std::fs::write(old.join("console.html"), "x").unwrap();
        // Fresh: kept.
        sweep_stale_pages(base.path(), crate::clock::now());
        assert!(old.exists());
        // A minute on: swept; what is not a page is left alone.
        sweep_stale_pages(
            base.path(),
            crate::clock::now() + time::Duration::minutes(1),
        );
        assert!(!old.exists());
        assert!(other.exists());
    }

    #[test]
    fn durations_are_checked_against_aws_limits() {
        assert!(check_duration(None, 43_200, "x").is_ok());
        assert!(check_duration(Some(900), 43_200, "x").is_ok());
        assert!(check_duration(Some(43_200), 43_200, "x").is_ok());
        let e = check_duration(Some(129_600), 43_200, "a role").unwrap_err();
        assert!(
            e.to_string().contains("900 to 43200 seconds (15m to 12h)"),
            "{e}"
        );
        assert!(check_duration(Some(60), 129_600, "x").is_err());
    }

    #[test]
    fn the_page_escapes_the_url_for_html_and_script() {
        let page = redirect_page("https://x/f?a=1&b=\"</script><b>");
        assert!(
            page.contains("content=\"0;url=https://x/f?a=1&amp;b=&quot;&lt;/script&gt;&lt;b&gt;\"")
        );
        assert!(
            page.contains("location.replace(\"https://x/f?a=1&b=\\\"\\u003c/script>\\u003cb>\")")
        );
        assert_eq!(page.matches("</script>").count(), 1);
    }
}
