//! The hints printed under an error: "did you mean" for an unknown profile
//! name (the daemon's list, `strsim`), and the `--` that `credd exec` needs
//! before its command.
//!
//! Layering: a leaf; it imports only `client` and `ask`.

use crate::client::call;
use credd_daemon::control::Request;
use serde_json::Value;

/// "did you mean 'dev'?" when `e` is the daemon saying a profile is
/// unknown and one of its profiles is close; asks the daemon for the list.
pub async fn did_you_mean(e: &anyhow::Error) -> Option<String> {
    let name = unknown_profile(crate::ask::daemon_message(e)?)?;
    let list: Value = call(Request::Profiles).await.ok()?;
    let names: Vec<&str> = list["profiles"]
        .as_array()?
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    closest(name, &names).map(|n| format!("did you mean '{n}'?"))
}

/// The name in the daemon's "unknown profile 'NAME'..." refusals.
fn unknown_profile(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown profile '")?;
    Some(&rest[..rest.find('\'')?])
}

/// The candidate most like `name`, if it is like enough to be a typo
/// (Jaro-Winkler 0.8 or more, or one edit or swap away for short names).
pub fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .filter(|c| **c != name)
        .map(|c| (*c, strsim::jaro_winkler(name, c)))
        .filter(|(c, score)| *score >= 0.8 || strsim::damerau_levenshtein(name, c) <= 1)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

/// For a usage error of `credd exec`: the same line with `--` where the
/// command starts, when a command follows the profile. `args` are the
/// process arguments without the program name.
pub fn exec_dashes(args: &[String]) -> Option<String> {
    // `exec` must be the command itself, not a word further on.
    let at = args.iter().position(|a| !a.starts_with('-'))?;
    if args[at] != "exec" {
        return None;
    }
    if args.iter().any(|a| a == "--") {
        return None;
    }
    let mut ours: Vec<&str> = vec![];
    let mut rest = args[at + 1..].iter();
    let mut profile = None;
    while let Some(a) = rest.next() {
        match a.as_str() {
            // exec's own options (and -v, global), and the one taking a value.
            "--imds" | "--keep-aws-config" | "-v" | "-vv" | "--verbose" => ours.push(a),
            "--token-ttl" => {
                ours.push(a);
                ours.push(rest.next()?);
            }
            o if o.starts_with("--token-ttl=") => ours.push(a),
            _ => {
                profile = Some(a.as_str());
                break;
            }
        }
    }
    let command: Vec<&str> = rest.map(String::as_str).collect();
    if command.is_empty() {
        return None;
    }
    let mut line = vec!["credd", "exec"];
    line.extend(ours);
    line.push(profile?);
    line.push("--");
    line.extend(command);
    Some(format!(
        "the command goes after `--` (what follows is the command's own, options included): {}",
        line.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn a_typo_finds_its_profile_and_nonsense_finds_none() {
        let names = ["dev", "prod", "staging-admin", "mfa"];
        assert_eq!(closest("staging-admn", &names), Some("staging-admin"));
        assert_eq!(closest("dve", &names), Some("dev"));
        assert_eq!(closest("prd", &names), Some("prod"));
        assert_eq!(closest("zzzzzz", &names), None);
        assert_eq!(closest("dev", &["dev"]), None);
        assert_eq!(
            unknown_profile(
                "unknown profile 'dve': see `credd profiles` for the ones credd can serve"
            ),
            Some("dve")
        );
        assert_eq!(unknown_profile("MFA code needed"), None);
    }

    #[test]
    fn the_exec_hint_puts_the_dashes_before_the_command() {
        assert_eq!(
            exec_dashes(&args("exec dev aws s3 ls --recursive")).unwrap(),
            "the command goes after `--` (what follows is the command's own, options included): credd exec dev -- aws s3 ls --recursive"
        );
        assert!(
            exec_dashes(&args("-v exec --token-ttl 1h --imds dev --region x"))
                .unwrap()
                .ends_with("credd exec --token-ttl 1h --imds dev -- --region x")
        );
        assert_eq!(exec_dashes(&args("exec dev")), None);
        assert_eq!(exec_dashes(&args("exec dev -- ls")), None);
        assert_eq!(exec_dashes(&args("status --bogus")), None);
        assert_eq!(exec_dashes(&args("mfa exec extra words")), None);
    }
}
