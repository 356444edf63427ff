//! The pure core of `credd sso populate`: given the text of `~/.aws/config`
//! and the accounts and roles the user is assigned in IAM Identity Center, it
//! works out which `[profile NAME]` sections to add (or whose `region` to set)
//! and produces the new text, plus a unified diff for `--dry-run`. [`apply`]
//! writes it: through [`crate::userfile`] (locked, re-planned on the newer
//! text when another tool changed the file meanwhile, atomic), keeping the
//! version it replaced as `config.credd-backup`.
//!
//! The text is read and edited with [`crate::ini_edit::Document`], which
//! gives back every byte of the user's file outside what it adds; the tests
//! check the result with the SDK's parser.
//!
//! Rules, in short:
//! - Profile names come from [`profile_name`]; assignments whose names
//!   collide are told apart by account id.
//! - A profile that already exists with the same `sso_session`,
//!   `sso_account_id` and `sso_role_name` is left alone (`unchanged`), except
//!   that `--region` sets its `region` in place (`updated`).
//! - A profile that already exists with anything else in those keys belongs
//!   to someone else: it is `skipped` with the reason, and not touched.
//! - New profiles are appended at the end of the file in one block, under a
//!   comment naming the command, sorted by account name and then role name.
//!   No timestamp, so that the output is deterministic and re-running the
//!   command changes nothing.

use crate::ini_edit::{ends_with_blank_line, Document, Edit, Header, Prop};
use std::collections::BTreeMap;

/// One account/role pair the user may sign in to through the SSO session, as
/// listed by the SSO portal (`ListAccounts` + `ListAccountRoles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub account_id: String,
    pub account_name: String,
    pub role_name: String,
}

/// The flags of `credd sso populate SESSION [--prefix P] [--region R]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PopulateOptions {
    /// The `[sso-session NAME]` the new profiles sign in through.
    pub session: String,
    /// Put in front of every generated profile name (sanitized with it).
    pub prefix: Option<String>,
    /// Written as `region = R` into new profiles, and set on the profiles
    /// this command added before.
    pub region: Option<String>,
}

/// What [`plan`] would do. The name lists are in assignment order (account
/// name, then role name); `new_text == existing` exactly when `added` and
/// `updated` are both empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopulatePlan {
    /// The whole config file as it should be written.
    pub new_text: String,
    /// Profiles appended to the file.
    pub added: Vec<String>,
    /// Existing profiles of this session/account/role whose `region` line
    /// was set or added to match `--region`.
    pub updated: Vec<String>,
    /// Existing profiles that already say what would be written.
    pub unchanged: Vec<String>,
    /// `(profile, why)`: assignments that were not written, and why.
    pub skipped: Vec<(String, String)>,
}

impl PopulatePlan {
    /// Whether writing `new_text` would change the file.
    pub fn changes_anything(&self) -> bool {
        !self.added.is_empty() || !self.updated.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PopulateError {
    /// The profiles would refer to an SSO session the file does not define,
    /// so none of them could sign in.
    #[error(
        "the AWS config file has no [sso-session {session}] section: \
         run `aws configure sso-session` or add [sso-session {session}] \
         (with sso_start_url and sso_region), then run this again"
    )]
    NoSuchSession { session: String },
}

/// The profile name for an assignment: `{prefix}{account_name}-{role_name}`,
/// with every character other than `A-Z a-z 0-9 _ . -` (whitespace
/// included) replaced by `-`, runs of `-` collapsed into one and `-` trimmed
/// from both ends. Case is kept, as the portal shows it.
///
/// The result is always a name the SDK accepts in `[profile NAME]`. It can
/// be empty (when nothing usable is left); [`plan`] skips such assignments.
pub fn profile_name(a: &Assignment, prefix: Option<&str>) -> String {
    sanitize(&format!(
        "{}{}-{}",
        prefix.unwrap_or(""),
        a.account_name,
        a.role_name
    ))
}

/// The name used instead of [`profile_name`] when two different assignments
/// would get the same one (two accounts called `Dev`, say). Every member of
/// the clash gets the account id, so which one keeps the short name does not
/// depend on the order the portal lists them in.
fn disambiguated_name(a: &Assignment, prefix: Option<&str>) -> String {
    sanitize(&format!(
        "{}{}-{}-{}",
        prefix.unwrap_or(""),
        a.account_name,
        a.account_id,
        a.role_name
    ))
}

fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for ch in raw.chars() {
        let ch = if ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-') {
            ch
        } else {
            '-'
        };
        if !(ch == '-' && out.ends_with('-')) {
            out.push(ch);
        }
    }
    out.trim_matches('-').to_string()
}

/// Works out the new config text. `existing` is the current file (empty if
/// there is none). Fails only when the file does not define
/// `[sso-session SESSION]`; every per-profile problem is reported in
/// [`PopulatePlan::skipped`] instead.
///
/// Nothing outside the added block and the `region` lines of `updated`
/// profiles changes: the returned text keeps every other byte, including
/// `\r\n` line endings (new lines use the file's first line ending) and a
/// missing final newline (one is added only when something is appended).
/// Running `plan` again on its own output adds and updates nothing and
/// returns the same text.
pub fn plan(
    existing: &str,
    assignments: &[Assignment],
    opts: &PopulateOptions,
) -> Result<PopulatePlan, PopulateError> {
    let doc = Document::parse(existing);
    if !doc
        .sections
        .iter()
        .any(|s| s.header == Header::SsoSession(opts.session.clone()))
    {
        return Err(PopulateError::NoSuchSession {
            session: opts.session.clone(),
        });
    }

    let mut sorted: Vec<&Assignment> = assignments.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.account_name, &a.role_name, &a.account_id).cmp(&(
            &b.account_name,
            &b.role_name,
            &b.account_id,
        ))
    });
    // The portal should not list a pair twice, but one profile per pair is
    // the point, whatever it sends.
    sorted.dedup_by(|a, b| a.account_id == b.account_id && a.role_name == b.role_name);

    let prefix = opts.prefix.as_deref();
    let mut clashes: BTreeMap<String, usize> = BTreeMap::new();
    for a in &sorted {
        *clashes.entry(profile_name(a, prefix)).or_default() += 1;
    }

    let mut result = PopulatePlan {
        new_text: String::new(),
        added: Vec::new(),
        updated: Vec::new(),
        unchanged: Vec::new(),
        skipped: Vec::new(),
    };
    let mut edits: BTreeMap<usize, Edit> = BTreeMap::new();
    let mut to_append: Vec<(String, &Assignment)> = Vec::new();
    // Which assignment each name went to, to catch clashes that survive the
    // account id (same account, role names that differ only in punctuation).
    let mut taken: BTreeMap<String, &Assignment> = BTreeMap::new();

    for a in sorted {
        let plain = profile_name(a, prefix);
        let name = if clashes[&plain] > 1 {
            disambiguated_name(a, prefix)
        } else {
            plain
        };
        if name.is_empty() {
            result.skipped.push((
                name,
                format!(
                    "account {} ({:?}) role {:?} leaves no usable profile name; pass --prefix",
                    a.account_id, a.account_name, a.role_name
                ),
            ));
            continue;
        }
        if let Some(other) = taken.get(&name) {
            let why = format!(
                "the name is already used for account {} role {}",
                other.account_id, other.role_name
            );
            result.skipped.push((name, why));
            continue;
        }
        taken.insert(name.clone(), a);

        let sections = doc.profile_sections(&name);
        if sections.is_empty() {
            to_append.push((name, a));
            continue;
        }
        let props = Document::merged(&sections);
        let mismatches = ownership_mismatches(&props, a, &opts.session);
        if !mismatches.is_empty() {
            let why = format!(
                "already exists with other settings ({}); left as it is",
                mismatches.join(", ")
            );
            result.skipped.push((name, why));
            continue;
        }
        let Some(region) = &opts.region else {
            result.unchanged.push(name);
            continue;
        };
        if props.get("region").map(|p| p.value.as_str()) == Some(region.as_str()) {
            result.unchanged.push(name);
            continue;
        }
        match doc.region_edit(&sections, region) {
            Ok((line, edit)) => {
                edits.insert(line, edit);
                result.updated.push(name);
            }
            Err(why) => result.skipped.push((name, why.to_string())),
        }
    }

    let mut text = doc.render(&edits);
    if !to_append.is_empty() {
        let eol = doc.eol;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push_str(eol);
        }
        if !text.is_empty() && !ends_with_blank_line(&text) {
            text.push_str(eol);
        }
        text.push_str(&format!(
            "# Added by `credd sso populate {}`{eol}",
            opts.session
        ));
        for (i, (name, a)) in to_append.iter().enumerate() {
            if i > 0 {
                text.push_str(eol);
            }
            text.push_str(&format!("[profile {name}]{eol}"));
            text.push_str(&format!("sso_session = {}{eol}", opts.session));
            text.push_str(&format!("sso_account_id = {}{eol}", a.account_id));
            text.push_str(&format!("sso_role_name = {}{eol}", a.role_name));
            if let Some(region) = &opts.region {
                text.push_str(&format!("region = {region}{eol}"));
            }
        }
        result.added = to_append.into_iter().map(|(name, _)| name).collect();
    }
    result.new_text = text;
    Ok(result)
}

/// What [`apply`] could not do.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Plan(#[from] PopulateError),
    #[error(transparent)]
    File(#[from] crate::userfile::UserFileError),
    #[error(
        "{path}: line {line} is not UTF-8 text; save the file as UTF-8 (or remove that line) and run this again"
    )]
    NotUtf8 {
        path: std::path::PathBuf,
        line: usize,
    },
}

/// What [`apply`] did.
#[derive(Debug)]
pub struct Applied {
    /// The plan made from the version of the file that was replaced.
    pub plan: PopulatePlan,
    /// The file written (the symlink's target, if the config is a link).
    pub target: std::path::PathBuf,
    /// Where the replaced version was kept (`None` when there was no file or
    /// nothing changed).
    pub backup: Option<std::path::PathBuf>,
}

/// Plans and writes the profiles into the config file at `path`, as one
/// [`crate::userfile::edit`]: the file is read under the lock, planned, the
/// version it replaces is copied to `NAME.credd-backup` next to it (0600),
/// and if another program changed it meanwhile the plan is made again on the
/// newer text. Nothing is written when the plan changes nothing.
pub fn apply(
    path: &std::path::Path,
    assignments: &[Assignment],
    opts: &PopulateOptions,
) -> Result<Applied, ApplyError> {
    let mut last: Option<PopulatePlan> = None;
    let mut backup = None;
    let edited = crate::userfile::edit(
        path,
        &crate::userfile::Options::aws_file(),
        |old| -> Result<Option<Vec<u8>>, ApplyError> {
            let old = old.unwrap_or_default();
            let text = std::str::from_utf8(old).map_err(|e| ApplyError::NotUtf8 {
                path: path.to_path_buf(),
                line: 1 + old[..e.valid_up_to()]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count(),
            })?;
            let p = plan(text, assignments, opts)?;
            let new = p
                .changes_anything()
                .then(|| p.new_text.clone().into_bytes());
            if new.is_some() && !old.is_empty() {
                let target = crate::userfile::resolve(path)?;
                let mut name = target.file_name().unwrap_or_default().to_os_string();
                name.push(".credd-backup");
                let b = target.with_file_name(name);
                crate::userfile::write_in_edit(&b, old)?;
                backup = Some(b);
            }
            last = Some(p);
            Ok(new)
        },
    )?;
    Ok(Applied {
        plan: last.expect("the edit ran at least once"),
        target: edited.target,
        backup: if edited.written { backup } else { None },
    })
}

/// A unified diff from `old` to `new` for `--dry-run`, both sides labelled
/// `path_label`. Empty when the texts are equal, so the caller can print
/// "no changes" instead.
pub fn diff(old: &str, new: &str, path_label: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(path_label, path_label)
        .to_string()
}

/// The keys that make an existing profile "this assignment through this
/// session", described as they differ; empty when the profile matches.
fn ownership_mismatches(
    props: &BTreeMap<String, &Prop>,
    a: &Assignment,
    session: &str,
) -> Vec<String> {
    [
        ("sso_session", session),
        ("sso_account_id", a.account_id.as_str()),
        ("sso_role_name", a.role_name.as_str()),
    ]
    .into_iter()
    .filter_map(|(key, want)| match props.get(key) {
        Some(p) if p.value == want => None,
        Some(p) => Some(format!("{key} = {}, not {want}", p.value)),
        None => Some(format!("no {key}")),
    })
    .collect()
}

#[cfg(test)]
#[path = "populate_tests.rs"]
mod tests;
