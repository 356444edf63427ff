//! The one byte-preserving editor of the AWS config and credentials files:
//! every edit credd makes to `~/.aws/config` or `~/.aws/credentials` gives
//! back every byte outside what it changes (comments, blank lines, order, odd
//! spacing, `\r\n` endings, a missing final newline, bytes that are not
//! UTF-8 in comments). Writing the result is [`crate::userfile`]'s.
//!
//! This is a small line-based *editor*, not a parser, and that is
//! deliberate. The house rule is to read the AWS files with the SDK's own
//! parser (see [`crate::profiles`]), and that is still how credd reads them.
//! No crate keeps the user's text (the SDK's parser and the INI crates all
//! throw it away), so the few rules needed to find section headers and
//! `key = value` lines are restated here, following the SDK's
//! `env_config::parse` and `normalize` closely enough that both agree on
//! which section is which profile.
//!
//! Three entry points share the line model:
//! - [`Document`]: the file as profiles and properties, for `credd sso
//!   populate` (which sections exist, set a `region`, render with edits).
//! - [`set_profile_properties`]: set a few keys of one profile and nothing
//!   else (`credd login` writing `login_session`, as `aws login` does).
//! - [`replace_section`]: set one whole `[name]` section (`credd
//!   write-credentials`, `credd profiles link`), refusing a section credd did
//!   not write (no [`MARKER`] line). It matches headers byte for byte, as it
//!   always has, so that a file that is not UTF-8 is edited all the same.

use crate::userfile::UserFileError;
use std::collections::BTreeMap;

/// Starts the first line of every section credd writes; a section without
/// it is the user's and is never overwritten.
pub const MARKER: &str = "# written by credd";

/// Why a section could not be set.
#[derive(Debug, thiserror::Error)]
pub enum SectionError {
    #[error("[{name}] already exists and was not written by credd; refusing to overwrite it (pick another name with --as)")]
    NotOurs { name: String },
    #[error(transparent)]
    File(#[from] UserFileError),
}

/// The name inside a `[...]` header line (spaces, tabs and `\r` trimmed);
/// bytes, so that a file with a non-UTF-8 comment is edited all the same.
fn header_name(line: &[u8]) -> Option<&[u8]> {
    line.trim_ascii()
        .strip_prefix(b"[")
        .and_then(|r| r.strip_suffix(b"]"))
        .map(<[u8]>::trim_ascii)
}

/// Returns the new file text with `[name]` set to `body` lines. Works on
/// bytes and gives back every byte outside the section as it was.
pub fn replace_section(text: &[u8], name: &str, body: &[String]) -> Result<Vec<u8>, SectionError> {
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    let start = lines
        .iter()
        .position(|l| header_name(l) == Some(name.as_bytes()));
    let mut section = format!("[{name}]\n");
    for l in body {
        section.push_str(l);
        section.push('\n');
    }
    match start {
        None => {
            let mut out = text.to_vec();
            if !out.is_empty() && !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            if !out.is_empty() {
                out.push(b'\n');
            }
            out.extend_from_slice(section.as_bytes());
            Ok(out)
        }
        Some(s) => {
            let end = lines[s + 1..]
                .iter()
                .position(|l| header_name(l).is_some())
                .map(|i| s + 1 + i)
                .unwrap_or(lines.len());
            let ours = lines[s + 1..end]
                .iter()
                .any(|l| l.trim_ascii_start().starts_with(MARKER.as_bytes()));
            if !ours {
                return Err(SectionError::NotOurs {
                    name: name.to_string(),
                });
            }
            // Keep blank lines that separated our section from the next one.
            let trailing_blank = lines[s + 1..end]
                .iter()
                .rev()
                .take_while(|l| l.trim_ascii().is_empty())
                .count();
            let mut out: Vec<u8> = lines[..s].concat();
            out.extend_from_slice(section.as_bytes());
            out.extend_from_slice(&lines[end - trailing_blank..end].concat());
            out.extend_from_slice(&lines[end..].concat());
            Ok(out)
        }
    }
}

pub(crate) fn ends_with_blank_line(text: &str) -> bool {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let body = body.strip_suffix('\r').unwrap_or(body);
    let last = body.rsplit('\n').next().unwrap_or("");
    is_blank(last)
}

/// The SDK's notion of whitespace inside a line (`env_config::parse`).
pub(crate) const WHITESPACE: &[char] = &[' ', '\t'];
/// Both start a comment, as in the SDK.
pub(crate) const COMMENT: &[char] = &['#', ';'];

/// One line of the file, split from its terminator so that it can be given
/// back unchanged.
#[derive(Debug)]
pub(crate) struct Line<'a> {
    pub(crate) text: &'a str,
    /// `"\n"`, `"\r\n"`, or `""` for a last line without a newline.
    pub(crate) eol: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Header {
    /// `[profile NAME]`, or `[default]` as profile `default`.
    Profile(String),
    SsoSession(String),
    /// `[services NAME]`, and anything the SDK ignores in the config file.
    Other,
}

#[derive(Debug)]
pub(crate) struct Section {
    pub(crate) header: Header,
    /// Index of the header line.
    pub(crate) start: usize,
    /// Index one past the section's last line.
    pub(crate) end: usize,
    pub(crate) props: Vec<Prop>,
}

#[derive(Debug)]
pub(crate) struct Prop {
    /// Lowercased, as the SDK compares keys.
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) line: usize,
}

#[derive(Debug)]
pub(crate) enum Edit {
    Replace(String),
    InsertAfter(String),
}

#[derive(Debug)]
pub(crate) struct Document<'a> {
    pub(crate) lines: Vec<Line<'a>>,
    pub(crate) sections: Vec<Section>,
    /// The line ending new lines get: the file's first one, `\n` if none.
    pub(crate) eol: &'static str,
}

impl<'a> Document<'a> {
    pub(crate) fn parse(text: &'a str) -> Self {
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

    pub(crate) fn profile_sections(&self, name: &str) -> Vec<&Section> {
        self.sections
            .iter()
            .filter(|s| matches!(&s.header, Header::Profile(n) if n == name))
            .collect()
    }

    /// A profile's keys as the SDK sees them when it is split over several
    /// sections: later values win.
    pub(crate) fn merged<'s>(sections: &[&'s Section]) -> BTreeMap<String, &'s Prop> {
        sections
            .iter()
            .flat_map(|s| &s.props)
            .map(|p| (p.key.clone(), p))
            .collect()
    }

    /// How to make a profile's region `region`: rewrite the value of its
    /// `region` line, or add one after its last line of settings. Declines
    /// whenever the edit could lose something of the user's.
    pub(crate) fn region_edit(
        &self,
        sections: &[&Section],
        region: &str,
    ) -> Result<(usize, Edit), &'static str> {
        self.property_edit(sections, "region", region)
            .map_err(|why| match why {
                MANY_SECTIONS => "set over more than one section; set its region by hand",
                _ => "its region line has a comment or continuation; set it by hand",
            })
    }

    /// How to make a profile's `key` (lowercase) `value`: rewrite the value
    /// of its `key` line, or add one after its last line of settings.
    /// Declines whenever the edit could lose something of the user's.
    pub(crate) fn property_edit(
        &self,
        sections: &[&Section],
        key: &str,
        value: &str,
    ) -> Result<(usize, Edit), &'static str> {
        let [section] = sections else {
            return Err(MANY_SECTIONS);
        };
        let region = value;
        let eq_region = |p: &&Prop| p.key == key;
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
                    return Err(COMMENTED_LINE);
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
                Ok((after, Edit::InsertAfter(format!("{key} = {region}"))))
            }
        }
    }

    pub(crate) fn render(&self, edits: &BTreeMap<usize, Edit>) -> String {
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

/// Why [`Document::property_edit`] declines (and [`set_profile_properties`] says).
const MANY_SECTIONS: &str = "is set over more than one section";
const COMMENTED_LINE: &str = "has a comment or continuation on that line";

/// Why a profile's keys could not be set.
#[derive(Debug, thiserror::Error)]
pub enum PropertyError {
    #[error("the file is not UTF-8 text; set `{key} = {value}` in [{header}] by hand")]
    NotUtf8 {
        header: String,
        key: String,
        value: String,
    },
    #[error("[{header}] {why}; set `{key} = {value}` there by hand")]
    Declined {
        header: String,
        key: String,
        value: String,
        why: &'static str,
    },
    #[error(transparent)]
    File(#[from] UserFileError),
}

/// The header of profile `name` in the config file.
pub fn profile_header(name: &str) -> String {
    if name == "default" {
        "default".to_string()
    } else {
        format!("profile {name}")
    }
}

/// Sets `key = value` for each of `props` in profile `profile` of a config
/// file's text (keys lowercase), keeping every other byte: a key's line is
/// rewritten, a missing key is added after the profile's last setting, and a
/// missing profile is appended as a new section. Keys that already have
/// their value are left alone; `None` when nothing changes (`aws login`
/// setting `login_session`, as the CLI's `ConfigFileWriter` does).
pub fn set_profile_properties(
    text: &[u8],
    profile: &str,
    props: &[(&str, &str)],
) -> Result<Option<Vec<u8>>, PropertyError> {
    let header = profile_header(profile);
    let Ok(text) = std::str::from_utf8(text) else {
        let (key, value) = props.first().copied().unwrap_or_default();
        return Err(PropertyError::NotUtf8 {
            header,
            key: key.into(),
            value: value.into(),
        });
    };
    let doc = Document::parse(text);
    let eol = doc.eol;
    let sections = doc.profile_sections(profile);
    if sections.is_empty() {
        if props.is_empty() {
            return Ok(None);
        }
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(eol);
        }
        if !out.is_empty() && !ends_with_blank_line(&out) {
            out.push_str(eol);
        }
        out.push_str(&format!("[{header}]{eol}"));
        for (k, v) in props {
            out.push_str(&format!("{k} = {v}{eol}"));
        }
        return Ok(Some(out.into_bytes()));
    }
    let current = Document::merged(&sections);
    let mut edits: BTreeMap<usize, Edit> = BTreeMap::new();
    let mut inserts: Vec<String> = Vec::new();
    let mut insert_after = None;
    for (k, v) in props {
        if current.get(*k).is_some_and(|p| p.value == *v) {
            continue;
        }
        let declined = |why| PropertyError::Declined {
            header: header.clone(),
            key: k.to_string(),
            value: v.to_string(),
            why,
        };
        match doc.property_edit(&sections, k, v).map_err(declined)? {
            (line, Edit::InsertAfter(t)) => {
                insert_after = Some(line);
                inserts.push(t);
            }
            (line, replace) => {
                edits.insert(line, replace);
            }
        }
    }
    if let Some(line) = insert_after {
        // New lines all go after the same last setting; when that line is
        // itself rewritten, after its new text.
        let added = inserts.join(eol);
        let edit = match edits.remove(&line) {
            Some(Edit::Replace(t)) => Edit::Replace(format!("{t}{eol}{added}")),
            _ => Edit::InsertAfter(added),
        };
        edits.insert(line, edit);
    }
    if edits.is_empty() {
        return Ok(None);
    }
    Ok(Some(doc.render(&edits).into_bytes()))
}

pub(crate) fn is_blank(t: &str) -> bool {
    t.trim_matches(WHITESPACE).is_empty()
}

/// The SDK's `prepare_line`: trims, and cuts at the first comment character;
/// in property lines only one that follows whitespace starts a comment (so
/// that values such as base64 keep their `#`), in headers any does.
pub(crate) fn strip_comment(line: &str, comments_need_whitespace: bool) -> &str {
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
pub(crate) fn parse_header(line: &str) -> Header {
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

    const FILE: &str = "# my keys\n[default]\naws_access_key_id = AKIA1 ; keep\naws_secret_access_key = s\n\n[other]\nx = 1\n";

    fn body() -> Vec<String> {
        vec![format!("{MARKER} x"), "aws_access_key_id = ASIA".into()]
    }

    #[test]
    fn appends_then_replaces_only_our_section() {
        let once =
            String::from_utf8(replace_section(FILE.as_bytes(), "dev", &body()).unwrap()).unwrap();
        assert!(once.starts_with(FILE));
        assert!(once.ends_with("\n[dev]\n# written by credd x\naws_access_key_id = ASIA\n"));
        let with_after = format!("{once}\n[after]\ny = 2\n");
        let twice = String::from_utf8(
            replace_section(
                with_after.as_bytes(),
                "dev",
                &[format!("{MARKER} y"), "aws_access_key_id = ASIB".into()],
            )
            .unwrap(),
        )
        .unwrap();
        assert!(twice.starts_with(FILE));
        assert!(twice.contains("ASIB") && !twice.contains("ASIA\n"));
        assert!(twice.ends_with("\n\n[after]\ny = 2\n"), "{twice}");
    }

    #[test]
    fn never_overwrites_a_section_it_did_not_write() {
        let e = replace_section(FILE.as_bytes(), "default", &body())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not written by credd"), "{e}");
    }

    #[test]
    fn set_profile_properties_edits_one_key_and_keeps_the_rest() {
        let file = "# mine\r\n[profile dev]\r\nregion = eu-west-1 \r\nlogin_session = arn:old\r\n\r\n# next\r\n[profile x]\r\ny = 1\r\n";
        let out = set_profile_properties(file.as_bytes(), "dev", &[("login_session", "arn:new")])
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            file.replace("arn:old", "arn:new")
        );
        // Already so: nothing to write.
        assert!(
            set_profile_properties(file.as_bytes(), "dev", &[("login_session", "arn:old")])
                .unwrap()
                .is_none()
        );
        // A missing key goes after the last setting, before the blank line
        // and the next section's comment; two keys together.
        let out = set_profile_properties(
            b"[profile x]\ny = 1\n\n# c\n[default]\nz = 2",
            "x",
            &[("login_session", "arn:a"), ("region", "us-east-1")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[profile x]\ny = 1\nlogin_session = arn:a\nregion = us-east-1\n\n# c\n[default]\nz = 2"
        );
        // A missing profile is appended; `default` is `[default]`.
        let out = set_profile_properties(
            b"[profile x]\ny = 1",
            "default",
            &[("login_session", "arn:a")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[profile x]\ny = 1\n\n[default]\nlogin_session = arn:a\n"
        );
        let out = set_profile_properties(b"", "new", &[("login_session", "arn:a")])
            .unwrap()
            .unwrap();
        assert_eq!(out, b"[profile new]\nlogin_session = arn:a\n");
    }

    #[test]
    fn set_profile_properties_declines_what_could_lose_the_users_text() {
        for file in [
            "[profile d]\nlogin_session = arn:old ; mine\n",
            "[profile d]\nx = 1\n[profile d]\ny = 2\n",
        ] {
            let e = set_profile_properties(file.as_bytes(), "d", &[("login_session", "arn:new")])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("[profile d]")
                    && e.contains("set `login_session = arn:new` there by hand"),
                "{e}"
            );
        }
        let e = set_profile_properties(b"# caf\xe9\n[profile d]\n", "d", &[("login_session", "a")])
            .unwrap_err();
        assert!(matches!(e, PropertyError::NotUtf8 { .. }), "{e}");
    }

    #[test]
    fn a_non_utf8_comment_is_kept_byte_for_byte() {
        let file = b"# caf\xe9\r\n[default]\r\nx = 1\r\n";
        let out = replace_section(file, "dev", &body()).unwrap();
        assert!(out.starts_with(file));
        let again = replace_section(&out, "dev", &body()).unwrap();
        assert_eq!(again, out);
    }
}
