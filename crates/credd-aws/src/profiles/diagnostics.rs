//! What is wrong with an AWS file, said by file and line: the SDK's parse
//! error located and given a fix, bytes that are not UTF-8 (tolerated in
//! comments, noted), and the sections the SDK silently drops for their name.

use super::*;

/// Turns the SDK's error for one file into one that names the file.
pub(super) fn located(path: &Path, e: ProfileFileLoadError) -> ProfileLoadError {
    // The variants cannot be matched from outside the SDK; a parse error is
    // the load error's source.
    match std::error::Error::source(&e).and_then(|s| s.downcast_ref::<ProfileParseError>()) {
        Some(parse) => parse_error(path, &parse.to_string()),
        None => ProfileLoadError::Syntax(e.to_string()),
    }
}

/// The file as UTF-8 text. A byte that is not UTF-8 in a comment line is
/// tolerated (a comment means nothing to any parser) and noted; anywhere
/// else it makes the file unusable, as it is for the AWS CLI.
///
/// The AWS CLI (botocore, through Python's configparser) refuses the whole
/// file in a UTF-8 locale, even for a byte in a comment ("Unable to parse
/// config file"), and the Rust SDK silently reads such a file as empty.
/// credd keeps serving rather than drop every profile over a comment, and
/// says where the byte is so the user can fix it for the other tools.
pub(super) fn decode(
    path: &Path,
    bytes: Zeroizing<Vec<u8>>,
) -> Result<(Zeroizing<String>, Vec<String>), ProfileLoadError> {
    if let Ok(text) = std::str::from_utf8(&bytes) {
        return Ok((Zeroizing::new(text.to_string()), Vec::new()));
    }
    let mut text = Zeroizing::new(String::with_capacity(bytes.len()));
    let mut bad_comments = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if i > 0 {
            text.push('\n');
        }
        match std::str::from_utf8(line) {
            Ok(l) => text.push_str(l),
            Err(e) => {
                let column = std::str::from_utf8(&line[..e.valid_up_to()])
                    .map_or(0, |s| s.chars().count())
                    + 1;
                if line.starts_with(b"#") || line.starts_with(b";") {
                    bad_comments.push((i + 1, column));
                    text.push_str(&String::from_utf8_lossy(line));
                } else {
                    return Err(ProfileLoadError::Encoding {
                        path: path.to_path_buf(),
                        line: i + 1,
                        column,
                    });
                }
            }
        }
    }
    let notes = bad_comments
        .iter()
        .map(|(line, column)| {
            format!(
                "{}, line {line}, column {column}: a byte that is not UTF-8 in a comment, ignored; \
                 the AWS CLI refuses the whole file, so save it as UTF-8",
                path.display()
            )
        })
        .collect();
    Ok((text, notes))
}

/// A section header line as the SDK's parser and its normalisation read it.
pub(super) struct Header<'a> {
    /// Between the brackets, trimmed: `profile dev`.
    pub name: &'a str,
    /// The first word when there are two: `profile`, `sso-session`, `services`.
    pub prefix: Option<&'a str>,
    /// The rest, or the whole name when there is one word: the section's name.
    pub suffix: &'a str,
}

/// `line` as a section header (`None`: not one, or one the SDK's parser
/// refuses), read as the SDK reads it (`env_config/parse.rs`
/// `read_profile_line` and `normalize.rs` `SectionPair::parse`): the line
/// trimmed of spaces and tabs, a comment (`#`, `;`) ending it anywhere,
/// then split at its first space or tab.
pub(super) fn header(line: &str) -> Option<Header<'_>> {
    const WS: &[char] = &[' ', '\t'];
    if !line.starts_with('[') {
        return None;
    }
    let header = line.trim_matches(WS);
    let header = header
        .find(['#', ';'])
        .map_or(header, |at| &header[..at])
        .trim_matches(WS);
    let name = header.strip_prefix('[')?.strip_suffix(']')?;
    let name = name.trim_matches(WS);
    let (prefix, suffix) = match name.split_once(WS) {
        Some((p, s)) => (Some(p.trim()), s.trim()),
        None => (None, name.trim()),
    };
    Some(Header {
        name,
        prefix,
        suffix,
    })
}

/// The sections the SDK drops for their name, by its rules
/// (`aws-runtime` `env_config/normalize.rs`, which only logs them), so that
/// `credd profiles` can show them.
pub(super) fn ignored_sections(path: &Path, kind: EnvConfigFileKind, text: &str) -> Vec<String> {
    let valid = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-/.%@:+".contains(c))
    };
    let mut out = Vec::new();
    let mut prefixed_default = None;
    let mut plain_default = None;
    for (i, line) in text.lines().enumerate() {
        let Some(Header {
            name,
            prefix,
            suffix,
        }) = header(line)
        else {
            continue;
        };
        let why = match (kind, prefix) {
            (EnvConfigFileKind::Config, Some(_)) if !valid(suffix) => Some(format!(
                "`{suffix}` is not a valid name (letters, digits and _-/.%@:+ only)"
            )),
            (EnvConfigFileKind::Config, None) if suffix != "default" => Some(format!(
                "in the config file a profile is written [profile {suffix}] (only [default] may omit `profile`)"
            )),
            (EnvConfigFileKind::Credentials, Some("profile")) => Some(format!(
                "in the credentials file a profile is written [{suffix}], without `profile`"
            )),
            (EnvConfigFileKind::Credentials, Some(_)) => {
                Some("such sections belong in the config file".to_string())
            }
            (EnvConfigFileKind::Credentials, None) if !valid(suffix) => Some(format!(
                "`{suffix}` is not a valid name (letters, digits and _-/.%@:+ only)"
            )),
            _ => None,
        };
        if let Some(why) = why {
            out.push(format!(
                "{}, line {}: section [{name}] ignored: {why}",
                path.display(),
                i + 1
            ));
        }
        match (kind, prefix, suffix) {
            (EnvConfigFileKind::Config, Some("profile"), "default") => {
                prefixed_default.get_or_insert(i + 1);
            }
            (EnvConfigFileKind::Config, None, "default") => {
                plain_default.get_or_insert(i + 1);
            }
            _ => {}
        }
    }
    if let (Some(_), Some(line)) = (prefixed_default, plain_default) {
        out.push(format!(
            "{}, line {line}: section [default] ignored: [profile default] in the same file takes its place",
            path.display()
        ));
    }
    out
}

/// The SDK's parse error keeps its location private; its `Display` is
/// `error parsing PATH on line N:\n  MESSAGE` (PATH empty: credd hands it
/// text), so the line and message are read from that.
pub(super) fn parse_error(path: &Path, text: &str) -> ProfileLoadError {
    let located = text.split_once(":\n").and_then(|(head, problem)| {
        let (_, line) = head
            .strip_prefix("error parsing ")?
            .rsplit_once("on line ")?;
        Some((line.trim().parse().ok()?, problem.trim()))
    });
    match located {
        Some((line, problem)) => ProfileLoadError::Parse {
            path: path.to_path_buf(),
            line,
            problem: problem.to_string(),
            fix: fix_for(problem),
        },
        None => ProfileLoadError::Syntax(text.split_whitespace().collect::<Vec<_>>().join(" ")),
    }
}

pub(super) fn fix_for(problem: &str) -> &'static str {
    if problem.contains("must end with ']'") {
        "close the section header with ']', e.g. `[profile dev]`"
    } else if problem.contains("must start with '['") {
        "start the section header with '[', e.g. `[profile dev]`"
    } else if problem.contains("found continuation") {
        "an indented line must follow a `key =` line: remove the leading whitespace"
    } else if problem.contains("Expected a profile definition") {
        "settings must come after a section header: add `[profile NAME]` (config) or `[NAME]` (credentials) above it"
    } else if problem.contains("Expected an '='") {
        "write settings as `key = value`"
    } else if problem.contains("did not have a name") {
        "put the setting's name before the '='"
    } else {
        "fix the syntax on that line"
    }
}
