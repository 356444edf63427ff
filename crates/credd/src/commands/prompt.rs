//! `credd prompt`: one short segment for PS1 or starship (profile, time
//! left, "MFA in 5m"), from one `status` round trip to the daemon and
//! nothing upstream. It never fails a shell: no profile, no daemon, a slow
//! daemon or anything unexpected prints nothing and exits 0.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::cli::PromptArgs;
use crate::client::call;
use credd_daemon::control::Request;
use serde_json::Value;
use std::time::Duration;

pub async fn run(a: PromptArgs) {
    let Some(profile) = a
        .profile
        .or_else(|| var("CREDD_PROFILE"))
        .or_else(|| var("AWS_PROFILE"))
    else {
        return;
    };
    let soon = crate::client::parse_ttl(&a.soon).unwrap_or(15 * 60) as i64;
    let status = tokio::time::timeout(
        Duration::from_millis(a.timeout_ms),
        call::<Value>(Request::Status),
    )
    .await;
    if let Ok(Ok(status)) = status {
        println!("{}", segment(&status, &profile, soon));
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The segment for `profile` from a `status` document: the profile, then
/// what needs the user now, else the time its credentials have left, then
/// the first session it rides on that ends within `soon` seconds.
pub fn segment(status: &Value, profile: &str, soon: i64) -> String {
    let mut parts = vec![profile.to_string()];
    let row = status["profiles"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == profile));
    let Some(row) = row else {
        parts.push("unknown".into());
        return parts.join(" ");
    };
    match row["state"].as_str().unwrap_or_default() {
        s @ ("needs MFA" | "login required" | "misconfigured" | "expired") => {
            parts.push(s.to_string())
        }
        _ => {
            if let Some(left) = row["expires_in_secs"].as_i64().filter(|s| *s > 0) {
                parts.push(short(left));
            }
        }
    }
    // The sessions a person keeps alive, in one shape (`sessions`): the
    // first one under this profile to end soon.
    let ending = status["sessions"].as_array().and_then(|rows| {
        rows.iter()
            .filter(|r| {
                r["profiles"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p == profile))
            })
            .filter_map(|r| Some((r["kind"].as_str()?, r["ends_in_secs"].as_i64()?)))
            .filter(|(_, left)| *left > 0 && *left <= soon)
            .min_by_key(|(_, left)| *left)
    });
    if let Some((kind, left)) = ending {
        let what = match kind {
            "mfa" => "MFA",
            "sso" => "SSO",
            "login" => "sign-in",
            other => other,
        };
        parts.push(format!("{what} in {}", short(left)));
    }
    parts.join(" ")
}

/// A duration as a prompt has room for: `45s`, `42m`, `3h`, `3h20m`.
fn short(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s % 3600 < 60 => format!("{}h", s / 3600),
        s => format!("{}h{}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(state: &str, left: Option<i64>) -> Value {
        json!({
            "profiles": [
                {"name": "other", "state": "fresh", "expires_in_secs": 60},
                {"name": "dev", "state": state, "expires_in_secs": left},
            ],
            "sessions": [
                {"kind": "mfa", "profiles": ["dev", "x"], "ends_in_secs": 290},
                {"kind": "sso", "profiles": ["other"], "ends_in_secs": 10},
            ],
        })
    }

    #[test]
    fn a_fresh_profile_shows_its_time_left_and_the_session_ending_soon() {
        assert_eq!(
            segment(&status("fresh", Some(2520)), "dev", 900),
            "dev 42m MFA in 4m"
        );
        // Not soon enough to mention.
        assert_eq!(segment(&status("fresh", Some(2520)), "dev", 120), "dev 42m");
        assert_eq!(segment(&status("idle", None), "dev", 120), "dev");
    }

    #[test]
    fn what_needs_the_user_wins_over_the_time_left() {
        assert_eq!(
            segment(&status("needs MFA", Some(30)), "dev", 0),
            "dev needs MFA"
        );
        assert_eq!(
            segment(&status("login required", None), "dev", 0),
            "dev login required"
        );
        assert_eq!(segment(&status("fresh", None), "nope", 0), "nope unknown");
    }

    #[test]
    fn durations_fit_a_prompt() {
        assert_eq!(short(45), "45s");
        assert_eq!(short(2520), "42m");
        assert_eq!(short(3 * 3600 + 10), "3h");
        assert_eq!(short(3 * 3600 + 1200), "3h20m");
    }
}
