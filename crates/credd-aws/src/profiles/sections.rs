//! One AWS file's parse, section by section, with each section's result
//! kept by the SHA-256 of its text: a re-read hands the SDK's parser only
//! the sections that changed (issue 16: a config change re-read with
//! 10,000 profiles was mostly the SDK parsing, copying out and dropping
//! 10,000 sections that had not changed).
//!
//! Why the result is the SDK's own parse of the whole file:
//!
//! - The SDK's parser (`aws-runtime` `env_config/parse.rs`) reads line by
//!   line, and a line starting with `[` is a header that resets its state
//!   (no property open). So the text from one header to the next parses
//!   alone exactly as it does in the file, and the text before the first
//!   header (comments, or an error) too. [`cut`] cuts there.
//! - Across sections its normalisation (`normalize.rs` `merge_in`) only
//!   merges the sections of one name, key by key, and lets a valid
//!   `[profile default]` replace every `[default]` of a config file.
//!   [`assemble`] does both, merging in file order. (The SDK merges
//!   sections whose header text is the same in file order, and headers
//!   spelt differently but naming the same profile, `[profile a]` and
//!   `[profile  a]`, in hash-map order, which varies from run to run; file
//!   order is one of its outcomes.)
//!
//! What is parsed: with one new section, that section alone. With more
//! (the first read), one SDK parse of the new sections together, whose
//! result is given to each section by its header's name
//! ([`super::diagnostics::header`], the SDK's own reading of a header),
//! only for headers that name one section each, and only when every name
//! the SDK gave back is claimed by exactly one section; the rest, and
//! everything when that check fails, are parsed one section at a time.
//! A section the SDK cannot parse makes the whole text parsed as before,
//! for the error that names the line.
//!
//! What is kept: per section its name and the known keys' values, as
//! spans of the section's text where they are in it (the text is kept
//! anyway: the last good version), keys as a byte, sections sorted by the
//! first 128 bits of their SHA-256: about 150 bytes a profile (1.5 MB for
//! 10,000), where the SDK's maps were let go after each read to save 8 MB.

use super::diagnostics::header;
use super::{keys_in_text, parse_one, sdk_parse, Parsed, KNOWN_KEYS, SSO_SESSION_KEYS};
use aws_config::profile::ProfileFileLoadError;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use credd_core::profile::RawProfiles;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What each section of a file gave, by the SHA-256 of its text (its
/// first 128 bits), sorted by it: 24 bytes a section beside what it gave.
#[derive(Default)]
pub(super) struct Sections {
    sorted: Box<[(u128, Arc<Gives>)]>,
}

impl Sections {
    fn get(&self, digest: u128) -> Option<&Arc<Gives>> {
        self.sorted
            .binary_search_by_key(&digest, |(d, _)| *d)
            .ok()
            .map(|at| &self.sorted[at].1)
    }
}

fn digest(piece: &str) -> u128 {
    let full = Sha256::digest(piece.as_bytes());
    u128::from_be_bytes(full[..16].try_into().expect("SHA-256 has 32 bytes"))
}

/// The keys a section's result can hold, by their place here (a byte).
fn key_index(key: &str) -> u8 {
    KNOWN_KEYS
        .iter()
        .chain(SSO_SESSION_KEYS)
        .position(|k| *k == key)
        .and_then(|at| u8::try_from(at).ok())
        .expect("only known keys are asked for")
}

fn key_at(index: u8) -> &'static str {
    KNOWN_KEYS
        .iter()
        .chain(SSO_SESSION_KEYS)
        .nth(index.into())
        .expect("an index from key_index")
}

/// A string out of a section: where it is in the section's text, or, when
/// the SDK made it (a value continued over lines), the string itself.
enum Text {
    At(u32, u32),
    // Boxed twice to keep `Text` two words: it is almost never used.
    Owned(Box<Box<str>>),
}

impl Text {
    fn of(section: &str, s: &str) -> Self {
        match section.find(s) {
            Some(at) if u32::try_from(at + s.len()).is_ok() => Text::At(at as u32, s.len() as u32),
            _ => Text::Owned(Box::new(s.into())),
        }
    }
    fn get<'a>(&'a self, section: &'a str) -> &'a str {
        match self {
            Text::At(at, len) => &section[*at as usize..(*at + *len) as usize],
            Text::Owned(s) => s,
        }
    }
}

/// What one section gives when the SDK parses it alone. Holds no `Debug`:
/// the values include secret keys.
enum Gives {
    /// A comment-only preamble, a section the SDK drops, a `[services]`.
    Nothing,
    Profile {
        name: Text,
        /// Written `[default]` (not `[profile default]`).
        plain_default: bool,
        props: Box<[(u8, Text)]>,
    },
    SsoSession {
        name: Text,
        props: Box<[(u8, Text)]>,
    },
}

/// Which section a header names, by the SDK's rules for `kind`: the
/// name a parse of it alone could give back (`None`: nothing, by its
/// header). `Alone` for text that is not a clean header (the preamble, a
/// header the parser refuses).
#[derive(PartialEq, Eq, Hash, Clone, Copy)]
enum Claim<'a> {
    Profile(&'a str),
    SsoSession(&'a str),
    None,
    Alone,
}

fn claim(kind: EnvConfigFileKind, section: &str) -> Claim<'_> {
    let first = section.lines().next().unwrap_or_default();
    let Some(h) = header(first) else {
        return Claim::Alone;
    };
    match (kind, h.prefix) {
        (EnvConfigFileKind::Config, Some("profile")) => Claim::Profile(h.suffix),
        (EnvConfigFileKind::Config, Some("sso-session")) => Claim::SsoSession(h.suffix),
        (EnvConfigFileKind::Config, None) if h.suffix == "default" => Claim::Profile("default"),
        (EnvConfigFileKind::Credentials, None) => Claim::Profile(h.suffix),
        _ => Claim::None,
    }
}

/// The text cut before each line that starts with `[`: first the
/// preamble (empty when the text starts with a header), then one piece per
/// header, each with its lines' endings.
fn cut(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let headers = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(at, _)| at + 1))
        .filter(|&at| text.as_bytes().get(at) == Some(&b'['));
    for at in headers {
        out.push(&text[start..at]);
        start = at;
    }
    out.push(&text[start..]);
    out
}

/// Whether the SDK's parser skips every line of `piece` (blank, or a
/// comment: `parse.rs` `is_empty_line`, `is_comment_line`).
fn only_comments(piece: &str) -> bool {
    piece
        .lines()
        .all(|l| l.trim_matches([' ', '\t']).is_empty() || l.starts_with(['#', ';']))
}

/// `text` parsed as [`parse_one`] parses it, the sections found in `last`
/// taken from there; also what each section gave, for the next read.
pub(super) async fn parse(
    text: &str,
    kind: EnvConfigFileKind,
    last: Option<&Sections>,
) -> Result<(Parsed, Sections), ProfileFileLoadError> {
    let pieces = cut(text);
    let digests: Vec<u128> = pieces.iter().map(|p| digest(p)).collect();
    let mut by_text: HashMap<u128, Arc<Gives>> = HashMap::with_capacity(pieces.len());
    let mut new: Vec<usize> = Vec::new();
    let mut seen = std::collections::HashSet::with_capacity(pieces.len());
    for (i, d) in digests.iter().enumerate() {
        if !seen.insert(*d) {
            continue;
        }
        match last.and_then(|l| l.get(*d)) {
            Some(g) => {
                by_text.insert(*d, g.clone());
            }
            None => new.push(i),
        }
    }
    match parse_new(&pieces, &new, kind).await {
        Ok(given) => {
            for (i, g) in given {
                by_text.insert(digests[i], Arc::new(g));
            }
        }
        // A section the parser refuses: the whole text again, for the
        // error that names its line in the file (or, should the whole
        // text parse after all, its result, which is right by definition).
        Err(_) => return Ok((parse_one(text, kind).await?, Sections::default())),
    }
    let given: Vec<&Gives> = digests.iter().map(|d| &*by_text[d]).collect();
    let parsed = assemble(&pieces, &given);
    let mut sorted: Vec<(u128, Arc<Gives>)> = by_text.into_iter().collect();
    sorted.sort_unstable_by_key(|(d, _)| *d);
    Ok((
        parsed,
        Sections {
            sorted: sorted.into_boxed_slice(),
        },
    ))
}

/// Parses the sections `new` (indexes into `pieces`), each as if alone.
async fn parse_new(
    pieces: &[&str],
    new: &[usize],
    kind: EnvConfigFileKind,
) -> Result<Vec<(usize, Gives)>, ProfileFileLoadError> {
    let mut out = Vec::with_capacity(new.len());
    let mut alone: Vec<usize> = Vec::new();
    let mut batch: Vec<(usize, Claim<'_>)> = Vec::new();
    if new.len() > 1 {
        let claims: Vec<Claim<'_>> = new.iter().map(|&i| claim(kind, pieces[i])).collect();
        let mut count: HashMap<Claim<'_>, usize> = HashMap::new();
        for c in &claims {
            *count.entry(*c).or_default() += 1;
        }
        for (&i, c) in new.iter().zip(claims) {
            let unique = c == Claim::None || count[&c] == 1;
            // A section cut at the end of a file without a last newline
            // would join the next one's first line.
            if unique && c != Claim::Alone && pieces[i].ends_with('\n') {
                batch.push((i, c));
            } else {
                alone.push(i);
            }
        }
    } else {
        alone.extend_from_slice(new);
    }
    if batch.len() > 1 {
        match parse_batch(pieces, &batch, kind).await? {
            Some(given) => out.extend(given),
            None => alone.extend(batch.iter().map(|(i, _)| *i)),
        }
    } else {
        alone.extend(batch.iter().map(|(i, _)| *i));
    }
    for i in alone {
        out.push((i, parse_alone(pieces[i], kind).await?));
    }
    Ok(out)
}

/// One SDK parse of the sections of `batch` together, each given what the
/// SDK gave back under the name its header claims; `None` when a name
/// came back that no section claims (then they are parsed one by one).
async fn parse_batch(
    pieces: &[&str],
    batch: &[(usize, Claim<'_>)],
    kind: EnvConfigFileKind,
) -> Result<Option<Vec<(usize, Gives)>>, ProfileFileLoadError> {
    let text: String = batch.iter().map(|(i, _)| pieces[*i]).collect();
    let files = EnvConfigFiles::builder().with_contents(kind, &text).build();
    let set = sdk_parse(&files, None).await?;
    let asked = keys_in_text(&text);
    // Each claim but `None` is in the batch once (see `parse_new`).
    let claims: std::collections::HashSet<Claim<'_>> = batch.iter().map(|(_, c)| *c).collect();
    let claimed = |want: Claim<'_>| claims.contains(&want);
    if !set.profiles().all(|n| claimed(Claim::Profile(n)))
        || !set.sso_sessions().all(|n| claimed(Claim::SsoSession(n)))
    {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(batch.len());
    for (i, c) in batch {
        let piece = pieces[*i];
        let gives = match c {
            Claim::Profile(name) => match set.get_profile(name) {
                Some(p) => Gives::Profile {
                    name: Text::of(piece, p.name()),
                    plain_default: plain_default(piece),
                    props: take(piece, &asked, |k| p.get(k)),
                },
                None => Gives::Nothing,
            },
            Claim::SsoSession(name) => match set.sso_session(name) {
                Some(s) => Gives::SsoSession {
                    name: Text::of(piece, name),
                    props: take(piece, SSO_SESSION_KEYS, |k| s.get(k)),
                },
                None => Gives::Nothing,
            },
            Claim::None | Claim::Alone => Gives::Nothing,
        };
        out.push((*i, gives));
    }
    Ok(Some(out))
}

/// One section parsed on its own.
async fn parse_alone(piece: &str, kind: EnvConfigFileKind) -> Result<Gives, ProfileFileLoadError> {
    if only_comments(piece) {
        return Ok(Gives::Nothing);
    }
    let files = EnvConfigFiles::builder().with_contents(kind, piece).build();
    let set = sdk_parse(&files, None).await?;
    if let Some(p) = set.profiles().next().and_then(|n| set.get_profile(n)) {
        let asked = keys_in_text(piece);
        return Ok(Gives::Profile {
            name: Text::of(piece, p.name()),
            plain_default: plain_default(piece),
            props: take(piece, &asked, |k| p.get(k)),
        });
    }
    if let Some((name, s)) = set
        .sso_sessions()
        .next()
        .and_then(|n| set.sso_session(n).map(|s| (n, s)))
    {
        return Ok(Gives::SsoSession {
            name: Text::of(piece, name),
            props: take(piece, SSO_SESSION_KEYS, |k| s.get(k)),
        });
    }
    Ok(Gives::Nothing)
}

fn plain_default(piece: &str) -> bool {
    header(piece.lines().next().unwrap_or_default()).is_some_and(|h| h.prefix.is_none())
}

fn take<'a>(
    piece: &str,
    keys: &[&'static str],
    get: impl Fn(&str) -> Option<&'a str>,
) -> Box<[(u8, Text)]> {
    keys.iter()
        .filter_map(|k| get(k).map(|v| (key_index(k), Text::of(piece, v))))
        .collect()
}

/// The file's profiles and sso-sessions from what each of its sections
/// gave, merged as the SDK merges them (see the module's header).
fn assemble(pieces: &[&str], given: &[&Gives]) -> Parsed {
    let replaced_default = given.iter().zip(pieces).any(|(g, p)| {
        matches!(g, Gives::Profile { name, plain_default: false, .. } if name.get(p) == "default")
    });
    let mut profiles: RawProfiles = BTreeMap::new();
    let mut sso_sessions: RawProfiles = BTreeMap::new();
    let put = |into: &mut RawProfiles, piece: &str, name: &Text, props: &[(u8, Text)]| {
        let map = into.entry(name.get(piece).to_string()).or_default();
        for (k, v) in props {
            map.insert(key_at(*k).to_string(), v.get(piece).to_string());
        }
    };
    for (g, piece) in given.iter().zip(pieces) {
        match g {
            Gives::Nothing => {}
            Gives::Profile {
                plain_default: true,
                ..
            } if replaced_default => {}
            Gives::Profile { name, props, .. } => put(&mut profiles, piece, name, props),
            Gives::SsoSession { name, props } => put(&mut sso_sessions, piece, name, props),
        }
    }
    Parsed {
        profiles: Arc::new(profiles),
        sso_sessions,
    }
}

#[cfg(test)]
#[path = "sections_tests.rs"]
mod tests;
