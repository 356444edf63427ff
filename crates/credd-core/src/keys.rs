//! The key-source seam (issue 15): how the profile loader gets long-term
//! keys that live in a key store (the OS keychain, an encrypted file)
//! rather than in `~/.aws/credentials`, without the daemon or credd-aws
//! depending on the store (the binary implements [`KeySource`] over
//! credd-keys).
//!
//! A profile is a keychain profile when its `credential_process` is credd's
//! own for the same name (`credd credential-process NAME` in `[profile
//! NAME]`, the line `credd keys import` writes) and the store has keys under
//! NAME: [`apply`] then puts the keys into the raw profile and drops that
//! `credential_process`, so resolution gives the same `Base::Session`
//! (GetSessionToken) as keys in the file would, instead of a process that
//! would ask the daemon for the profile it is resolving.

use crate::credentials::LongTermKeys;
use crate::profile::{ConfigError, ConfigErrorKind, Plan, RawProfiles};
use std::collections::BTreeMap;

/// Why a key source could not answer for one name; the message says what
/// to do (unlock the keychain, ...) and never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeySourceError(pub String);

/// Long-term keys by name, from wherever the user keeps them. Called from a
/// blocking context (it may wait on D-Bus or a file lock, within its own
/// timeout).
pub trait KeySource: Send + Sync + std::fmt::Debug {
    fn keys(&self, name: &str) -> Result<Option<LongTermKeys>, KeySourceError>;
}

/// Whether `command` is `credd credential-process NAME` for `profile`
/// (`credd` by name or by a path ending in `/credd`, nothing after NAME).
pub fn is_own_process(command: &str, profile: &str) -> bool {
    let words: Vec<&str> = command.split_whitespace().collect();
    let [program, sub, name] = words[..] else {
        return false;
    };
    let base = program.rsplit('/').next().unwrap_or(program);
    base == "credd" && sub == "credential-process" && name == profile
}

/// The profiles of `raw` whose keys may be in a key store.
pub fn candidates(raw: &RawProfiles) -> Vec<String> {
    raw.iter()
        .filter(|(name, props)| {
            crate::profile::is_profile_key(name)
                && props
                    .get("credential_process")
                    .is_some_and(|c| is_own_process(c, name))
                && !props.contains_key("aws_access_key_id")
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// What the key store said for each candidate.
#[derive(Debug, Default)]
pub struct Applied {
    /// Profiles whose keys came from the store.
    pub from_store: Vec<String>,
    /// Profiles whose store could not answer, with why.
    pub unavailable: BTreeMap<String, KeySourceError>,
}

/// Puts the keys found for each candidate into `raw` (and drops its own
/// `credential_process`); a candidate whose store failed loses that line
/// too (it would only call back into the daemon) and is recorded, so that
/// [`mark_unavailable`] can give its plans the store's message.
pub fn apply(
    raw: &mut RawProfiles,
    found: BTreeMap<String, Result<Option<LongTermKeys>, KeySourceError>>,
) -> Applied {
    let mut applied = Applied::default();
    for (name, result) in found {
        let Some(props) = raw.get_mut(&name) else {
            continue;
        };
        match result {
            Ok(Some(keys)) => {
                props.remove("credential_process");
                props.insert("aws_access_key_id".into(), keys.access_key_id.clone());
                props.insert(
                    "aws_secret_access_key".into(),
                    keys.secret_access_key.expose().to_string(),
                );
                applied.from_store.push(name);
            }
            // Not in the store: the line stays a plain credential_process
            // (the user may have written it for another reason).
            Ok(None) => {}
            Err(e) => {
                props.remove("credential_process");
                applied.unavailable.insert(name, e);
            }
        }
    }
    applied
}

/// Replaces the plans that failed because their keys' store could not
/// answer (the profile itself, or one chained on it) with the store's
/// message, which says what to do.
pub fn mark_unavailable(
    plans: &mut BTreeMap<String, Result<Plan, ConfigError>>,
    unavailable: &BTreeMap<String, KeySourceError>,
) {
    for result in plans.values_mut() {
        if let Err(e) = result {
            if let Some(why) = unavailable.get(&e.profile) {
                e.kind = ConfigErrorKind::KeysUnavailable(why.0.clone());
            }
        }
    }
}

/// How often to remind about a key of age `age` when keys should be
/// rotated at `max_age`: nothing until four weeks before, then weekly,
/// twice a week from two weeks before, three times a week from one week
/// before, and daily from three days before and once past the limit (the
/// rising cadence of the Identity Center guide's token reminders).
pub fn reminder_every(age: time::Duration, max_age: time::Duration) -> Option<time::Duration> {
    let left = max_age - age;
    let day = time::Duration::DAY;
    if left > day * 28 {
        None
    } else if left > day * 14 {
        Some(day * 7)
    } else if left > day * 7 {
        Some(day * 7 / 2)
    } else if left > day * 3 {
        Some(day * 7 / 3)
    } else {
        Some(day)
    }
}

/// Whether a reminder is due now, `since_last` after the previous one
/// (`None`: never reminded).
pub fn reminder_due(
    age: time::Duration,
    max_age: time::Duration,
    since_last: Option<time::Duration>,
) -> bool {
    match (reminder_every(age, max_age), since_last) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(every), Some(since)) => since >= every,
    }
}

/// The next time to look at a key whose age counts from `since`, last
/// reminded at `last` (`None`: never), at `now`: the earlier of the next
/// reminder at today's cadence and the next step of the cadence (where it
/// shortens, a reminder may fall due sooner). The reminder task sleeps
/// until the earliest of these over every key, and no longer wakes before.
pub fn reminder_next(
    since: time::OffsetDateTime,
    max_age: time::Duration,
    last: Option<time::OffsetDateTime>,
    now: time::OffsetDateTime,
) -> time::OffsetDateTime {
    let limit = since + max_age;
    let step = [28, 14, 7, 3]
        .into_iter()
        .map(|d| limit - time::Duration::DAY * d)
        .find(|t| *t > now);
    let at_cadence = match (reminder_every(now - since, max_age), last) {
        (Some(every), Some(l)) => Some(l + every),
        (Some(_), None) => Some(now),
        (None, _) => None,
    };
    // Past the last step the cadence is daily and `at_cadence` is set; the
    // fallback only guards arithmetic on absurd dates.
    [step, at_cadence]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + time::Duration::DAY)
}

/// "1 day", "12 days", "less than a day".
pub fn format_days(d: i64) -> String {
    match d {
        ..=0 => "less than a day".into(),
        1 => "1 day".into(),
        _ => format!("{d} days"),
    }
}

/// The title and body of a rotation reminder for key `name` of age `age`
/// (`max_age_text`: `keys.max_age` as the user wrote it). The body names
/// the command that rotates the key.
pub fn reminder_message(
    name: &str,
    age: time::Duration,
    max_age: time::Duration,
    max_age_text: &str,
) -> (String, String) {
    let title = format!("credd: rotate the key '{name}'");
    let body = if age >= max_age {
        format!(
            "the key '{name}' is {} old, {} past keys.max_age ({max_age_text}): rotate it with `credd keys rotate {name}`",
            format_days(age.whole_days()),
            format_days((age - max_age).whole_days())
        )
    } else {
        format!(
            "the key '{name}' reaches keys.max_age ({max_age_text}) in {}: rotate it with `credd keys rotate {name}`",
            format_days((max_age - age).whole_days())
        )
    };
    (title, body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reminders_rise_as_the_limit_nears() {
        use super::{reminder_due, reminder_every};
        use time::Duration as D;
        let max = D::days(90);
        assert_eq!(reminder_every(D::days(30), max), None);
        assert_eq!(reminder_every(D::days(62), max), Some(D::days(7)));
        assert_eq!(reminder_every(D::days(76), max), Some(D::hours(84)));
        assert_eq!(reminder_every(D::days(83), max), Some(D::hours(56)));
        assert_eq!(reminder_every(D::days(88), max), Some(D::days(1)));
        assert_eq!(reminder_every(D::days(400), max), Some(D::days(1)));
        assert!(!reminder_due(D::days(30), max, None));
        assert!(reminder_due(D::days(70), max, None));
        assert!(!reminder_due(D::days(70), max, Some(D::days(6))));
        assert!(reminder_due(D::days(70), max, Some(D::days(7))));
        assert!(reminder_due(D::days(95), max, Some(D::days(1))));
    }

    #[test]
    fn the_next_look_is_the_next_reminder_or_the_next_step_of_the_cadence() {
        use super::{reminder_message, reminder_next};
        use time::macros::datetime;
        use time::Duration as D;
        let since = datetime!(2026-01-01 0:00 UTC);
        let max = D::days(90);
        // Far from the limit: the first look is when the cadence starts.
        let now = since + D::days(10);
        assert_eq!(reminder_next(since, max, None, now), since + D::days(62));
        // Weekly, reminded at day 63: next at day 70.
        let last = since + D::days(63);
        assert_eq!(
            reminder_next(since, max, Some(last), since + D::days(64)),
            since + D::days(70)
        );
        // Reminded at day 74 (weekly), the step to twice a week at day 76
        // comes first.
        let last = since + D::days(74);
        assert_eq!(
            reminder_next(since, max, Some(last), since + D::days(75)),
            since + D::days(76)
        );
        // Never reminded, already due: now.
        let now = since + D::days(80);
        assert_eq!(reminder_next(since, max, None, now), now);
        // Past the limit: daily.
        let last = since + D::days(100);
        assert_eq!(
            reminder_next(since, max, Some(last), last + D::hours(1)),
            last + D::days(1)
        );
        let (title, body) = reminder_message("dev", D::days(95), max, "90d");
        assert!(title.contains("'dev'"), "{title}");
        assert!(body.contains("95 days old, 5 days past"), "{body}");
        assert!(body.contains("`credd keys rotate dev`"), "{body}");
        let (_, body) = reminder_message("dev", D::days(89), max, "90d");
        assert!(body.contains("in 1 day:"), "{body}");
    }

    use super::*;
    use crate::credentials::SecretString;
    use crate::profile::{raw_from, resolve_all, Base};

    #[test]
    fn only_credds_own_process_for_the_same_name_is_a_candidate() {
        assert!(is_own_process("credd credential-process dev", "dev"));
        assert!(is_own_process(
            "/usr/bin/credd  credential-process dev",
            "dev"
        ));
        assert!(!is_own_process("credd credential-process dev", "ops"));
        assert!(!is_own_process("credd credential-process dev --x", "dev"));
        assert!(!is_own_process("notcredd credential-process dev", "dev"));
    }

    #[test]
    fn keys_from_the_store_resolve_like_keys_in_the_file_and_a_failure_is_named() {
        let own = [("credential_process", "credd credential-process dev")];
        let own_ops = [("credential_process", "credd credential-process ops")];
        let mut raw = raw_from(&[
            ("dev", &own),
            ("ops", &own_ops),
            (
                "admin",
                &[
                    ("role_arn", "arn:aws:iam::1:role/a"),
                    ("source_profile", "ops"),
                ],
            ),
        ]);
        assert_eq!(candidates(&raw), ["dev", "ops"]);
        let mut found = BTreeMap::new();
        found.insert(
            "dev".to_string(),
            Ok(Some(LongTermKeys {
                access_key_id: "AKIASTORE".into(),
                secret_access_key: SecretString::new("s"),
            })),
        );
        found.insert(
            "ops".to_string(),
            Err(KeySourceError(
                "the OS keychain is locked: unlock it".into(),
            )),
        );
        let applied = apply(&mut raw, found);
        assert_eq!(applied.from_store, ["dev"]);
        let mut plans = resolve_all(&raw);
        mark_unavailable(&mut plans, &applied.unavailable);
        match &plans["dev"].as_ref().unwrap().base {
            Base::Session(s) => assert_eq!(s.keys.access_key_id, "AKIASTORE"),
            other => panic!("{other:?}"),
        }
        for p in ["ops", "admin"] {
            let e = plans[p].as_ref().unwrap_err();
            assert!(e.kind.to_string().contains("locked: unlock it"), "{p}: {e}");
        }
    }
}
