//! `credd whoami PROFILE [--json]`: `sts:GetCallerIdentity` with the
//! profile's credentials (the daemon makes the call), for a person (the
//! account, ARN and user id, aligned) or as STS's own document.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::client::call;
use anyhow::Result;
use credd_daemon::control::Request;
use credd_daemon::protocol::Identity;

pub async fn run(a: crate::cli::WhoamiArgs) -> Result<()> {
    let id: Identity = call(Request::Whoami { profile: a.profile }).await?;
    if a.json {
        // STS's names, as `aws sts get-caller-identity` prints them.
        println!("{}", serde_json::to_string_pretty(&id)?);
    } else {
        print!("{}", human(&id));
    }
    Ok(())
}

/// Three aligned lines: what a person looks for first, first.
fn human(id: &Identity) -> String {
    let rows = [
        ("Account", id.account.as_str()),
        ("ARN", id.arn.as_str()),
        ("User ID", id.user_id.as_str()),
    ];
    let width = rows.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{:<width$}  {v}\n", format!("{k}:")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_human_form_is_aligned() {
        let id = Identity {
            account: "123456789012".into(),
            arn: "arn:aws:sts::123456789012:assumed-role/Dev/me".into(),
            user_id: "AROAEXAMPLE:me".into(),
        };
        assert_eq!(
            human(&id),
            "Account:  123456789012\n\
             ARN:      arn:aws:sts::123456789012:assumed-role/Dev/me\n\
             User ID:  AROAEXAMPLE:me\n"
        );
    }
}
