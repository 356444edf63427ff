//! `credd keys import` (issue 15), the text side: takes one profile's two
//! key lines out of `~/.aws/credentials` and gives back every other byte,
//! and adds `credential_process = credd credential-process NAME` to
//! `[profile NAME]` in `~/.aws/config` so that the AWS CLI and SDKs keep
//! working through credd. Pure functions over the files' bytes, on
//! [`crate::ini_edit`]'s line model; the caller writes through
//! [`crate::userfile`] (lock, re-read, atomic rename).
//!
//! The credentials file names sections as they are (`[dev]`, where the
//! config file says `[profile dev]`), so its headers are read here and not
//! with `ini_edit::parse_header`.

use crate::ini_edit::{is_blank, strip_comment, Document, Edit, Header, COMMENT, WHITESPACE};
use credd_core::{LongTermKeys, SecretString};
use std::collections::BTreeMap;

/// Why a profile's keys cannot be moved (nothing was changed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("the credentials file has no [{0}] section with aws_access_key_id and aws_secret_access_key")]
    NoKeys(String),
    #[error("[{0}] in the credentials file {1}; move its keys by hand (`credd keys add {0}`), then delete them from the file")]
    Unusual(String, &'static str),
    #[error("[profile {0}] in the config file already {1}; its keys would not be used: remove it from the config file or import another profile")]
    ConfigConflict(String, &'static str),
    #[error("the credentials file is not UTF-8 text")]
    NotText,
}

/// The section name of a credentials-file header line.
fn credentials_name(line: &str) -> Option<String> {
    let inner = strip_comment(line, false)
        .strip_prefix('[')?
        .strip_suffix(']')?;
    Some(inner.trim_matches(WHITESPACE).to_string())
}

/// The sections of a credentials file that hold long-term keys.
pub fn sections_with_keys(text: &[u8]) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(text) else {
        return Vec::new();
    };
    let doc = Document::parse(text);
    let mut names: Vec<String> = doc
        .sections
        .iter()
        .filter(|s| s.props.iter().any(|p| p.key == "aws_access_key_id"))
        .filter_map(|s| credentials_name(doc.lines[s.start].text))
        .collect();
    names.dedup();
    names
}

/// `text` without `name`'s `aws_access_key_id` and `aws_secret_access_key`
/// lines, and the keys they held. Refuses anything it could not remove
/// cleanly: the keys split over two sections or repeated, a session token,
/// a comment or continuation on a key line.
pub fn take_keys(text: &[u8], name: &str) -> Result<(Vec<u8>, LongTermKeys), ImportError> {
    let text = std::str::from_utf8(text).map_err(|_| ImportError::NotText)?;
    let doc = Document::parse(text);
    let sections: Vec<_> = doc
        .sections
        .iter()
        .filter(|s| credentials_name(doc.lines[s.start].text).as_deref() == Some(name))
        .collect();
    let unusual = |why| ImportError::Unusual(name.to_string(), why);
    let props: Vec<_> = sections.iter().flat_map(|s| &s.props).collect();
    let find = |key: &str| -> Result<Option<usize>, ImportError> {
        let mut hits = props.iter().filter(|p| p.key == key);
        match (hits.next(), hits.next()) {
            (None, _) => Ok(None),
            (Some(p), None) => Ok(Some(p.line)),
            (Some(_), Some(_)) => Err(unusual("sets its keys more than once")),
        }
    };
    let (Some(id_line), Some(secret_line)) =
        (find("aws_access_key_id")?, find("aws_secret_access_key")?)
    else {
        return Err(ImportError::NoKeys(name.to_string()));
    };
    if find("aws_session_token")?.is_some() {
        return Err(unusual("holds a session token: those keys are temporary"));
    }
    for &line in &[id_line, secret_line] {
        let t = doc.lines[line].text;
        let continued = doc
            .lines
            .get(line + 1)
            .is_some_and(|l| l.text.starts_with(WHITESPACE) && !is_blank(l.text));
        if continued || t.split_once('=').is_some_and(|(_, v)| v.contains(COMMENT)) {
            return Err(unusual("has a comment or continuation on a key line"));
        }
    }
    let value = |line: usize| {
        let t = doc.lines[line].text;
        t.split_once('=')
            .map(|(_, v)| v.trim_matches(WHITESPACE).to_string())
            .unwrap_or_default()
    };
    let keys = LongTermKeys {
        access_key_id: value(id_line),
        secret_access_key: SecretString::new(value(secret_line)),
    };
    if keys.access_key_id.is_empty() || keys.secret_access_key.is_empty() {
        return Err(unusual("has an empty key"));
    }
    let mut out = String::with_capacity(text.len());
    for (i, line) in doc.lines.iter().enumerate() {
        if i != id_line && i != secret_line {
            out.push_str(line.text);
            out.push_str(line.eol);
        }
    }
    Ok((out.into_bytes(), keys))
}

/// The command `credd keys import` puts in the config file.
pub fn own_process(name: &str) -> String {
    format!("credd credential-process {name}")
}

/// The config text with `credential_process = credd credential-process
/// NAME` in `[profile NAME]` (added after its last setting, or a new
/// section at the end); `None` when it is there already. Refuses a profile
/// whose config already gives it credentials another way.
pub fn add_own_process(text: &[u8], name: &str) -> Result<Option<Vec<u8>>, ImportError> {
    let text = std::str::from_utf8(text).map_err(|_| ImportError::NotText)?;
    let doc = Document::parse(text);
    let sections = doc.profile_sections(name);
    let merged = Document::merged(&sections);
    let conflict = |why| Err(ImportError::ConfigConflict(name.to_string(), why));
    if let Some(p) = merged.get("credential_process") {
        if credd_core::keys::is_own_process(&p.value, name) {
            return Ok(None);
        }
        return conflict("has a credential_process");
    }
    for (key, why) in [
        ("role_arn", "assumes a role (role_arn)"),
        ("sso_session", "signs in with IAM Identity Center"),
        ("sso_start_url", "signs in with IAM Identity Center"),
        ("login_session", "signs in with `aws login`"),
        ("web_identity_token_file", "uses web identity"),
    ] {
        if merged.contains_key(key) {
            return conflict(why);
        }
    }
    let line = format!("credential_process = {}", own_process(name));
    match sections.last() {
        Some(section) => {
            let after = (section.start..section.end)
                .rev()
                .find(|&i| {
                    let t = doc.lines[i].text;
                    !is_blank(t) && !t.starts_with(COMMENT)
                })
                .unwrap_or(section.start);
            let edits = BTreeMap::from([(after, Edit::InsertAfter(line))]);
            Ok(Some(doc.render(&edits).into_bytes()))
        }
        None => {
            let header = match name {
                "default" => "[default]".to_string(),
                _ => format!("[profile {name}]"),
            };
            let mut out = text.to_string();
            let eol = doc.eol;
            if !out.is_empty() && !out.ends_with('\n') {
                out.push_str(eol);
            }
            if !out.is_empty() && !crate::ini_edit::ends_with_blank_line(&out) {
                out.push_str(eol);
            }
            out.push_str(&format!("{header}{eol}{line}{eol}"));
            // The SDK's parser must see the new section as the profile.
            debug_assert!(matches!(
                Document::parse(&out).sections.last().map(|s| &s.header),
                Some(Header::Profile(n)) if n == name
            ));
            Ok(Some(out.into_bytes()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDS: &str = "# my keys\r\n[default]\r\naws_access_key_id = AKIADEFAULT\r\naws_secret_access_key=sd\r\n\r\n[dev]\r\nregion = eu-west-1 ; note\r\naws_access_key_id=AKIADEV\r\n  \r\naws_secret_access_key = s/d+v\r\n# end";

    #[test]
    fn takes_exactly_the_two_key_lines() {
        let (out, keys) = take_keys(CREDS.as_bytes(), "dev").unwrap();
        assert_eq!(keys.access_key_id, "AKIADEV");
        assert_eq!(keys.secret_access_key.expose(), "s/d+v");
        let expected = CREDS
            .replace("aws_access_key_id=AKIADEV\r\n", "")
            .replace("aws_secret_access_key = s/d+v\r\n", "");
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        assert_eq!(sections_with_keys(CREDS.as_bytes()), ["default", "dev"]);
        assert_eq!(
            take_keys(CREDS.as_bytes(), "ops").unwrap_err(),
            ImportError::NoKeys("ops".into())
        );
        let token = "[t]\naws_access_key_id=A\naws_secret_access_key=B\naws_session_token=C\n";
        assert!(matches!(
            take_keys(token.as_bytes(), "t"),
            Err(ImportError::Unusual(..))
        ));
        let commented = "[c]\naws_access_key_id=A # x\naws_secret_access_key=B\n";
        assert!(matches!(
            take_keys(commented.as_bytes(), "c"),
            Err(ImportError::Unusual(..))
        ));
    }

    #[test]
    fn adds_credds_process_to_the_profile_once() {
        let cfg = "[profile dev]\nregion = eu-west-1\n\n# other\n[profile ops]\nregion=x";
        let out = add_own_process(cfg.as_bytes(), "dev").unwrap().unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "[profile dev]\nregion = eu-west-1\ncredential_process = credd credential-process dev\n\n# other\n[profile ops]\nregion=x"
        );
        assert_eq!(add_own_process(&out, "dev").unwrap(), None);
        let new = add_own_process(cfg.as_bytes(), "qa").unwrap().unwrap();
        assert!(String::from_utf8(new).unwrap().ends_with(
            "region=x\n\n[profile qa]\ncredential_process = credd credential-process qa\n"
        ));
        let role = "[profile dev]\nrole_arn = arn:aws:iam::1:role/r\n";
        assert!(matches!(
            add_own_process(role.as_bytes(), "dev"),
            Err(ImportError::ConfigConflict(..))
        ));
        assert_eq!(
            String::from_utf8(add_own_process(b"", "default").unwrap().unwrap()).unwrap(),
            "[default]\ncredential_process = credd credential-process default\n"
        );
    }
}
