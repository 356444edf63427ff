//! The pure core of `credd sso populate`: given the text of `~/.aws/config`
//! and the accounts and roles the user is assigned in IAM Identity Center, it
//! works out which `[profile NAME]` sections to add (or whose `region` to set)
//! and produces the new text, plus a unified diff for `--dry-run`. [`apply`]
//! writes it: through [`crate::userfile`] (locked, re-planned on the newer
//! text when another tool changed the file meanwhile, atomic), keeping the
//! version it replaced as `config.credd-backup`.
//!
//! This module is a small line-based *editor*, not a parser, and that is
//! deliberate. The house rule is to read the AWS files with the SDK's own
//! parser (see [`crate::profiles`]), and that is still how credd reads them.
//! But an editor must give back the user's text byte for byte outside what it
//! adds: comments, blank lines, ordering, odd spacing, `\r\n` line endings
//! and a missing final newline. No crate keeps all of that (the SDK's parser
//! and the INI crates all throw the text away), so the few rules needed to
//! find section headers and `key = value` lines are restated here, following
//! the SDK's `env_config::parse` and `normalize` closely enough that both
//! agree on which section is which profile. The tests check the result with
//! the SDK's parser.
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

fn ends_with_blank_line(text: &str) -> bool {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let body = body.strip_suffix('\r').unwrap_or(body);
    let last = body.rsplit('\n').next().unwrap_or("");
    is_blank(last)
}

/// The SDK's notion of whitespace inside a line (`env_config::parse`).
const WHITESPACE: &[char] = &[' ', '\t'];
/// Both start a comment, as in the SDK.
const COMMENT: &[char] = &['#', ';'];

/// One line of the file, split from its terminator so that it can be given
/// back unchanged.
#[derive(Debug)]
struct Line<'a> {
    text: &'a str,
    /// `"\n"`, `"\r\n"`, or `""` for a last line without a newline.
    eol: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Header {
    /// `[profile NAME]`, or `[default]` as profile `default`.
    Profile(String),
    SsoSession(String),
    /// `[services NAME]`, and anything the SDK ignores in the config file.
    Other,
}

#[derive(Debug)]
struct Section {
    header: Header,
    /// Index of the header line.
    start: usize,
    /// Index one past the section's last line.
    end: usize,
    props: Vec<Prop>,
}

#[derive(Debug)]
struct Prop {
    /// Lowercased, as the SDK compares keys.
    key: String,
    value: String,
    line: usize,
}

#[derive(Debug)]
enum Edit {
    Replace(String),
    InsertAfter(String),
}

#[derive(Debug)]
struct Document<'a> {
    lines: Vec<Line<'a>>,
    sections: Vec<Section>,
    /// The line ending new lines get: the file's first one, `\n` if none.
    eol: &'static str,
}

impl<'a> Document<'a> {
    fn parse(text: &'a str) -> Self {
        let lines: Vec<Line<'a>> = text
            .split_inclusive('\n')
            .map(|raw| {
                if let Some(t) = raw.strip_suffix("\r\n") {
                    Line {
                        text: t,
                        eol: "\r\n",
                    }
                } else if let Some(t) = raw.strip_suffix('\n') {
                    Line { text: t, eol: "\n" }
                } else {
                    Line { text: raw, eol: "" }
                }
            })
            .collect();
        let eol = match lines.iter().map(|l| l.eol).find(|e| !e.is_empty()) {
            Some("\r\n") => "\r\n",
            _ => "\n",
        };

        // The same order of tests as the SDK's parser: blank and comment
        // lines first, then headers, continuations and properties.
        let mut sections: Vec<Section> = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let t = line.text;
            if t.trim_matches(WHITESPACE).is_empty() || t.starts_with(COMMENT) {
                continue;
            }
            if t.starts_with('[') {
                if let Some(last) = sections.last_mut() {
                    last.end = i;
                }
                sections.push(Section {
                    header: parse_header(t),
                    start: i,
                    end: lines.len(),
                    props: Vec::new(),
                });
            } else if t.starts_with(WHITESPACE) {
                // A continuation or sub-property: part of the previous
                // property, which none of the keys read here has.
            } else if let Some(section) = sections.last_mut() {
                let body = strip_comment(t, true);
                if let Some((k, v)) = body.split_once('=') {
                    section.props.push(Prop {
                        key: k.trim_matches(WHITESPACE).to_ascii_lowercase(),
                        value: v.trim_matches(WHITESPACE).to_string(),
                        line: i,
                    });
                }
            }
        }
        Self {
            lines,
            sections,
            eol,
        }
    }

    fn profile_sections(&self, name: &str) -> Vec<&Section> {
        self.sections
            .iter()
            .filter(|s| matches!(&s.header, Header::Profile(n) if n == name))
            .collect()
    }

    /// A profile's keys as the SDK sees them when it is split over several
    /// sections: later values win.
    fn merged<'s>(sections: &[&'s Section]) -> BTreeMap<String, &'s Prop> {
        sections
            .iter()
            .flat_map(|s| &s.props)
            .map(|p| (p.key.clone(), p))
            .collect()
    }

    /// How to make a profile's region `region`: rewrite the value of its
    /// `region` line, or add one after its last line of settings. Declines
    /// whenever the edit could lose something of the user's.
    fn region_edit(
        &self,
        sections: &[&Section],
        region: &str,
    ) -> Result<(usize, Edit), &'static str> {
        let [section] = sections else {
            return Err("set over more than one section; set its region by hand");
        };
        let eq_region = |p: &&Prop| p.key == "region";
        match section.props.iter().rev().find(eq_region) {
            Some(prop) => {
                let text = self.lines[prop.line].text;
                // A trailing comment would be lost, and a continuation line
                // would be glued onto the new value.
                let continued = self
                    .lines
                    .get(prop.line + 1)
                    .is_some_and(|l| l.text.starts_with(WHITESPACE) && !is_blank(l.text));
                if text.contains(COMMENT) || continued {
                    return Err("its region line has a comment or continuation; set it by hand");
                }
                let (key, value) = text.split_once('=').expect("a parsed property has '='");
                let gap = value.len() - value.trim_start_matches(WHITESPACE).len();
                Ok((
                    prop.line,
                    Edit::Replace(format!("{key}={}{region}", &value[..gap])),
                ))
            }
            None => {
                // After the last line that belongs to the profile's settings
                // (continuations included), so that trailing comments and
                // blank lines stay between it and the next section.
                let after = (section.start..section.end)
                    .rev()
                    .find(|&i| {
                        let t = self.lines[i].text;
                        !is_blank(t) && !t.starts_with(COMMENT)
                    })
                    .unwrap_or(section.start);
                Ok((after, Edit::InsertAfter(format!("region = {region}"))))
            }
        }
    }

    fn render(&self, edits: &BTreeMap<usize, Edit>) -> String {
        let mut out = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            match edits.get(&i) {
                None => {
                    out.push_str(line.text);
                    out.push_str(line.eol);
                }
                Some(Edit::Replace(text)) => {
                    out.push_str(text);
                    out.push_str(line.eol);
                }
                Some(Edit::InsertAfter(text)) => {
                    out.push_str(line.text);
                    out.push_str(if line.eol.is_empty() {
                        self.eol
                    } else {
                        line.eol
                    });
                    // Takes over the host line's ending, so a file without a
                    // final newline still has none.
                    out.push_str(text);
                    out.push_str(line.eol);
                }
            }
        }
        out
    }
}

fn is_blank(t: &str) -> bool {
    t.trim_matches(WHITESPACE).is_empty()
}

/// The SDK's `prepare_line`: trims, and cuts at the first comment character;
/// in property lines only one that follows whitespace starts a comment (so
/// that values such as base64 keep their `#`), in headers any does.
fn strip_comment(line: &str, comments_need_whitespace: bool) -> &str {
    let line = line.trim_matches(WHITESPACE);
    let mut prev_whitespace = false;
    for (idx, ch) in line.char_indices() {
        if COMMENT.contains(&ch) && (prev_whitespace || !comments_need_whitespace) {
            return line[..idx].trim_matches(WHITESPACE);
        }
        prev_whitespace = ch.is_whitespace();
    }
    line
}

/// Classifies a header as the SDK's `SectionPair::parse` and `merge_in` do
/// for the config file: `[default]`, `[profile NAME]`, `[sso-session NAME]`,
/// with any spaces or tabs inside the brackets. A malformed header (no `]`)
/// makes the SDK reject the file; here it is only "some other section".
fn parse_header(line: &str) -> Header {
    let Some(inner) = strip_comment(line, false)
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
    else {
        return Header::Other;
    };
    let inner = inner.trim_matches(WHITESPACE);
    match inner.split_once(WHITESPACE) {
        Some(("profile", name)) => Header::Profile(name.trim().to_string()),
        Some(("sso-session", name)) => Header::SsoSession(name.trim().to_string()),
        Some(_) => Header::Other,
        None if inner == "default" => Header::Profile("default".to_string()),
        None => Header::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION_ONLY: &str = "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n";

    fn a(id: &str, account: &str, role: &str) -> Assignment {
        Assignment {
            account_id: id.to_string(),
            account_name: account.to_string(),
            role_name: role.to_string(),
        }
    }

    fn opts(region: Option<&str>) -> PopulateOptions {
        PopulateOptions {
            session: "corp".to_string(),
            prefix: None,
            region: region.map(str::to_string),
        }
    }

    fn two() -> Vec<Assignment> {
        vec![
            a("222222222222", "prod", "ReadOnly"),
            a("111111111111", "dev", "PowerUserAccess"),
        ]
    }

    #[test]
    fn appends_after_everything_and_keeps_every_byte() {
        let existing = "# my settings\n\n[default]\nregion = us-east-1 ; home\n\n\
            [profile legacy]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n\
            [ sso-session   corp ]\nsso_start_url = https://corp.awsapps.com/start\n\
            sso_region = eu-west-1\n\n[services local]\nsts =\n  endpoint_url = http://127.0.0.1:1\n\
            # trailing comment\n";
        let p = plan(existing, &two(), &opts(Some("eu-west-1"))).unwrap();
        assert!(p.new_text.starts_with(existing), "{}", p.new_text);
        assert_eq!(
            &p.new_text[existing.len()..],
            "\n# Added by `credd sso populate corp`\n\
             [profile dev-PowerUserAccess]\nsso_session = corp\nsso_account_id = 111111111111\n\
             sso_role_name = PowerUserAccess\nregion = eu-west-1\n\n\
             [profile prod-ReadOnly]\nsso_session = corp\nsso_account_id = 222222222222\n\
             sso_role_name = ReadOnly\nregion = eu-west-1\n"
        );
        assert_eq!(p.added, ["dev-PowerUserAccess", "prod-ReadOnly"]);
        assert!(p.updated.is_empty() && p.unchanged.is_empty() && p.skipped.is_empty());
        assert!(p.changes_anything());

        // The editor's own reading of its output agrees with what it wrote.
        let doc = Document::parse(&p.new_text);
        let sections = doc.profile_sections("prod-ReadOnly");
        let props = Document::merged(&sections);
        let values: Vec<(&str, &str)> = props
            .iter()
            .map(|(k, v)| (k.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                ("region", "eu-west-1"),
                ("sso_account_id", "222222222222"),
                ("sso_role_name", "ReadOnly"),
                ("sso_session", "corp"),
            ]
        );
    }

    #[test]
    fn rerunning_changes_nothing() {
        for region in [None, Some("eu-west-1")] {
            let first = plan(SESSION_ONLY, &two(), &opts(region)).unwrap();
            let second = plan(&first.new_text, &two(), &opts(region)).unwrap();
            assert_eq!(second.new_text, first.new_text);
            assert!(second.added.is_empty() && second.updated.is_empty());
            assert!(!second.changes_anything());
            assert_eq!(second.unchanged, ["dev-PowerUserAccess", "prod-ReadOnly"]);
            assert!(second.skipped.is_empty(), "{:?}", second.skipped);
        }
    }

    #[test]
    fn a_new_assignment_later_is_appended_in_a_second_block() {
        let first = plan(SESSION_ONLY, &two(), &opts(None)).unwrap();
        let mut more = two();
        more.push(a("333333333333", "audit", "ReadOnly"));
        let second = plan(&first.new_text, &more, &opts(None)).unwrap();
        assert!(second.new_text.starts_with(&first.new_text));
        assert_eq!(second.added, ["audit-ReadOnly"]);
        assert_eq!(second.unchanged, ["dev-PowerUserAccess", "prod-ReadOnly"]);
    }

    #[test]
    fn crlf_stays_crlf() {
        let existing = "; work laptop\r\n[sso-session corp]\r\nsso_region = eu-west-1\r\n";
        let p = plan(existing, &two(), &opts(None)).unwrap();
        assert!(p.new_text.starts_with(existing));
        let added = &p.new_text[existing.len()..];
        assert_eq!(added.matches('\n').count(), added.matches("\r\n").count());
        assert!(added.starts_with("\r\n# Added by"), "{added:?}");
        assert!(added.contains("[profile prod-ReadOnly]\r\nsso_session = corp\r\n"));
        assert!(added.ends_with("sso_role_name = ReadOnly\r\n"));
        let again = plan(&p.new_text, &two(), &opts(None)).unwrap();
        assert_eq!(again.new_text, p.new_text);
    }

    #[test]
    fn a_missing_final_newline_is_added_only_when_appending() {
        let existing = "[sso-session corp]\nsso_region = eu-west-1";
        let p = plan(existing, &two(), &opts(None)).unwrap();
        assert!(p.new_text.starts_with(existing));
        assert!(p.new_text[existing.len()..].starts_with("\n\n# Added by"));
        // Nothing to add: not even the newline.
        let p = plan(existing, &[], &opts(None)).unwrap();
        assert_eq!(p.new_text, existing);
    }

    #[test]
    fn names_are_sanitized_and_keep_case() {
        let name = |acct: &str, role: &str, prefix: Option<&str>| {
            profile_name(&a("1", acct, role), prefix)
        };
        assert_eq!(name("Dev", "Admin", None), "Dev-Admin");
        assert_eq!(
            name("My  Team (EU)", "Power User", None),
            "My-Team-EU-Power-User"
        );
        assert_eq!(name("a.b_c", "r", Some("sso-")), "sso-a.b_c-r");
        assert_eq!(name(" Spaced ", "R", Some("x ")), "x-Spaced-R");
        assert_eq!(name("Zürich", "Ops", None), "Z-rich-Ops");
        assert_eq!(name("--lead", "trail--", None), "lead-trail");
        assert_eq!(name("", "", None), "");
    }

    #[test]
    fn clashing_names_get_the_account_id() {
        let assignments = [
            a("111111111111", "Dev", "Admin"),
            a("222222222222", "Dev", "Admin"),
            a("222222222222", "Dev", "ReadOnly"),
            // The same pair twice is one profile.
            a("222222222222", "Dev", "ReadOnly"),
        ];
        let p = plan(SESSION_ONLY, &assignments, &opts(None)).unwrap();
        assert_eq!(
            p.added,
            [
                "Dev-111111111111-Admin",
                "Dev-222222222222-Admin",
                "Dev-ReadOnly"
            ]
        );
        assert!(p.new_text.contains(
            "[profile Dev-222222222222-Admin]\nsso_session = corp\nsso_account_id = 222222222222\n"
        ));
    }

    #[test]
    fn a_clash_the_account_id_cannot_settle_is_skipped() {
        let assignments = [
            a("111111111111", "Dev", "Admin Access"),
            a("111111111111", "Dev", "Admin-Access"),
        ];
        let p = plan(SESSION_ONLY, &assignments, &opts(None)).unwrap();
        assert_eq!(p.added, ["Dev-111111111111-Admin-Access"]);
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].0, "Dev-111111111111-Admin-Access");
        assert!(p.skipped[0].1.contains("already used"), "{:?}", p.skipped);
    }

    #[test]
    fn a_missing_session_is_an_error_that_says_what_to_do() {
        let existing = "[default]\nregion = x\n[profile corp]\nsso_session = corp\n";
        let err = plan(existing, &two(), &opts(None)).unwrap_err();
        assert_eq!(
            err,
            PopulateError::NoSuchSession {
                session: "corp".into()
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("aws configure sso-session"), "{msg}");
        assert!(msg.contains("[sso-session corp]"), "{msg}");
        // A commented-out or indented header is no header.
        for text in [
            "# [sso-session corp]\n",
            "[default]\n  [sso-session corp]\n",
        ] {
            assert!(plan(text, &two(), &opts(None)).is_err(), "{text:?}");
        }
    }

    #[test]
    fn headers_are_read_as_the_sdk_reads_them() {
        assert_eq!(parse_header("[profile dev]"), Header::Profile("dev".into()));
        assert_eq!(
            parse_header("[ profile \t dev ] # note"),
            Header::Profile("dev".into())
        );
        assert_eq!(parse_header("[default]"), Header::Profile("default".into()));
        assert_eq!(
            parse_header("[sso-session  corp];x"),
            Header::SsoSession("corp".into())
        );
        assert_eq!(parse_header("[services local]"), Header::Other);
        assert_eq!(parse_header("[dev]"), Header::Other);
        assert_eq!(parse_header("[profile dev"), Header::Other);
    }

    #[test]
    fn someone_elses_profile_is_skipped_and_untouched() {
        let existing = format!(
            "{SESSION_ONLY}[profile dev-PowerUserAccess]\nrole_arn = arn:aws:iam::1:role/x\n\
             source_profile = default\n\
             [profile prod-ReadOnly] ; mine\nsso_session = corp\nsso_account_id = 999999999999\n\
             sso_role_name = ReadOnly\n"
        );
        let p = plan(&existing, &two(), &opts(Some("eu-west-1"))).unwrap();
        assert_eq!(p.new_text, existing);
        assert!(p.added.is_empty() && p.updated.is_empty() && p.unchanged.is_empty());
        let skipped: BTreeMap<_, _> = p.skipped.iter().cloned().collect();
        assert_eq!(
            skipped["dev-PowerUserAccess"],
            "already exists with other settings (no sso_session, no sso_account_id, \
             no sso_role_name); left as it is"
        );
        assert_eq!(
            skipped["prod-ReadOnly"],
            "already exists with other settings (sso_account_id = 999999999999, \
             not 222222222222); left as it is"
        );
    }

    #[test]
    fn region_is_set_in_place_on_our_own_profiles() {
        let existing = format!(
            "{SESSION_ONLY}[profile dev-PowerUserAccess]\nsso_session=corp\n\
             sso_account_id = 111111111111\nsso_role_name = PowerUserAccess\nRegion =  us-east-1\n\
             \n# about prod\n[profile prod-ReadOnly]\nsso_session = corp\n\
             sso_account_id = 222222222222\nsso_role_name = ReadOnly\n# end of prod\n\n\
             [profile other]\nregion = us-east-1"
        );
        let p = plan(&existing, &two(), &opts(Some("eu-west-1"))).unwrap();
        assert_eq!(p.updated, ["dev-PowerUserAccess", "prod-ReadOnly"]);
        assert!(p.added.is_empty());
        assert_eq!(
            p.new_text,
            format!(
                "{SESSION_ONLY}[profile dev-PowerUserAccess]\nsso_session=corp\n\
                 sso_account_id = 111111111111\nsso_role_name = PowerUserAccess\nRegion =  eu-west-1\n\
                 \n# about prod\n[profile prod-ReadOnly]\nsso_session = corp\n\
                 sso_account_id = 222222222222\nsso_role_name = ReadOnly\nregion = eu-west-1\n\
                 # end of prod\n\n[profile other]\nregion = us-east-1"
            )
        );
        // Without --region an existing region is nobody's business.
        let p = plan(&existing, &two(), &opts(None)).unwrap();
        assert_eq!(p.new_text, existing);
        assert_eq!(p.unchanged, ["dev-PowerUserAccess", "prod-ReadOnly"]);
    }

    #[test]
    fn region_added_to_a_last_line_without_newline_keeps_that() {
        let existing = format!(
            "{SESSION_ONLY}[profile dev-PowerUserAccess]\nsso_session = corp\n\
             sso_account_id = 111111111111\nsso_role_name = PowerUserAccess"
        );
        let one = [a("111111111111", "dev", "PowerUserAccess")];
        let p = plan(&existing, &one, &opts(Some("eu-west-1"))).unwrap();
        assert_eq!(p.new_text, format!("{existing}\nregion = eu-west-1"));
    }

    #[test]
    fn region_with_a_comment_is_left_to_the_user() {
        let existing = format!(
            "{SESSION_ONLY}[profile dev-PowerUserAccess]\nsso_session = corp\n\
             sso_account_id = 111111111111\nsso_role_name = PowerUserAccess\n\
             region = us-east-1 # for latency\n"
        );
        let one = [a("111111111111", "dev", "PowerUserAccess")];
        let p = plan(&existing, &one, &opts(Some("eu-west-1"))).unwrap();
        assert_eq!(p.new_text, existing);
        assert_eq!(p.skipped.len(), 1);
        assert!(p.skipped[0].1.contains("by hand"), "{:?}", p.skipped);
    }

    #[test]
    fn diff_shows_the_added_profiles_under_the_label() {
        let p = plan(SESSION_ONLY, &two(), &opts(None)).unwrap();
        let d = diff(SESSION_ONLY, &p.new_text, "/home/u/.aws/config");
        assert!(
            d.starts_with("--- /home/u/.aws/config\n+++ /home/u/.aws/config\n"),
            "{d}"
        );
        assert!(d.contains("\n+[profile dev-PowerUserAccess]\n"), "{d}");
        assert!(d.contains("\n+[profile prod-ReadOnly]\n"), "{d}");
        assert!(
            d.contains("\n+# Added by `credd sso populate corp`\n"),
            "{d}"
        );
        assert!(!d.contains("\n-"), "only additions: {d}");
        assert_eq!(diff(&p.new_text, &p.new_text, "x"), "");
    }

    #[test]
    fn apply_writes_through_a_symlink_and_keeps_a_backup() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real-config");
        std::fs::write(&real, SESSION_ONLY).unwrap();
        let link = d.path().join("config");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let a = apply(&link, &two(), &opts(None)).unwrap();
        assert_eq!(a.target, real);
        assert_eq!(a.plan.added.len(), 2);
        assert!(std::fs::read_to_string(&real)
            .unwrap()
            .contains("[profile prod-ReadOnly]"));
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let backup = a.backup.unwrap();
        assert_eq!(backup, d.path().join("real-config.credd-backup"));
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), SESSION_ONLY);
        // Again: nothing to do, nothing written, no new backup.
        let again = apply(&link, &two(), &opts(None)).unwrap();
        assert!(!again.plan.changes_anything() && again.backup.is_none());
        // A Latin-1 byte: a clear error naming the line, nothing written.
        let mut bad = SESSION_ONLY.as_bytes().to_vec();
        bad.extend_from_slice(b"# caf\xe9\n");
        std::fs::write(&real, &bad).unwrap();
        let e = apply(&link, &two(), &opts(None)).unwrap_err().to_string();
        assert!(e.contains("line 4 is not UTF-8"), "{e}");
        assert_eq!(std::fs::read(&real).unwrap(), bad);
    }

    #[tokio::test]
    async fn the_sdk_reads_the_result_as_intended() {
        let existing = "# mine\n[default]\nregion = us-east-1\n\
            [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n\
            [profile keep]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default";
        let p = plan(existing, &two(), &opts(Some("eu-west-1"))).unwrap();

        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(home.path().join(".aws/config"), &p.new_text).unwrap();
        let env = crate::ProfileEnv {
            home: Some(home.path().to_path_buf()),
            ..Default::default()
        };
        let loaded = crate::load_profiles(&env).await.unwrap();
        let get = |profile: &str, key: &str| {
            loaded.raw[profile]
                .get(key)
                .map(String::as_str)
                .unwrap_or("<missing>")
                .to_string()
        };
        // The sso-session section is kept under its own key, beside the profiles.
        let session_key = credd_core::profile::sso_session_key("corp");
        assert_eq!(
            loaded.raw.keys().collect::<Vec<_>>(),
            [
                "default",
                "dev-PowerUserAccess",
                "keep",
                "prod-ReadOnly",
                session_key.as_str()
            ]
        );
        for (profile, account, role) in [
            ("dev-PowerUserAccess", "111111111111", "PowerUserAccess"),
            ("prod-ReadOnly", "222222222222", "ReadOnly"),
        ] {
            assert_eq!(get(profile, "sso_session"), "corp");
            assert_eq!(get(profile, "sso_account_id"), account);
            assert_eq!(get(profile, "sso_role_name"), role);
            assert_eq!(get(profile, "region"), "eu-west-1");
        }
        // The profile that had no final newline kept its settings.
        assert_eq!(get("keep", "source_profile"), "default");
        assert_eq!(get("keep", "region"), "<missing>");
    }
}
