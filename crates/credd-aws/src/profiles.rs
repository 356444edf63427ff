//! Reading `~/.aws/config` and `~/.aws/credentials`: where the files are
//! ([`ProfileEnv`]), parsing and merging them with the AWS SDK's own parser, and
//! turning parse failures into errors that name the file and line to fix.
//!
//! credd reads the files itself (see [`credd_core::regular_file`]: no FIFO
//! or device is opened blocking, nothing over [`FILE_CAP`] is read), checks
//! that they are UTF-8 and hands the SDK's parser only text. The SDK never
//! sees a path, so it has nothing to read and nothing to warn about: its own
//! warning for a file that is not UTF-8 printed the whole file, long-term
//! keys included, as a byte array (threat-model row 21); every parse also
//! runs with the SDK's log events switched off, as the daemon's log filter
//! does for its targets.
//!
//! A file that cannot be used now (half saved, a bad byte, a FIFO) is
//! replaced by its last good version, kept per path for the life of the
//! process, so that every reader (the daemon's profile reload and each STS
//! call's endpoint lookup) keeps working with what worked; the problem is
//! reported by file, line and column, never by quoting the line.
//!
//! The SDK's parser is used rather than a generic INI reader because the AWS
//! files have their own rules (`[profile x]` vs `[x]`, `[profile default]`
//! replacing `[default]`, sub-properties, the credentials file winning over the
//! config file); matching them exactly is what keeps credd's view of a profile
//! the same as the AWS CLI's.

use aws_config::profile::{ProfileFileLoadError, ProfileParseError, ProfileSet};
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_types::os_shim_internal::{Env, Fs};
use credd_core::overlay::{ProfileSettings, CARRIED_KEYS, CREDENTIAL_KEYS};
use credd_core::profile::{sso_session_key, RawProfiles};
use credd_core::regular_file::{self, FileError, Links};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing::instrument::WithSubscriber;
use zeroize::Zeroizing;

mod diagnostics;
use diagnostics::*;
mod sections;

/// The largest AWS file credd reads: far above any real one (a config with
/// a profile for each of a thousand roles is well under 1 MiB), far below
/// what would hurt the daemon (a config linked to a device is refused
/// before this matters).
pub const FILE_CAP: u64 = 4 * 1024 * 1024;

/// The profile keys copied into [`RawProfiles`].
///
/// The SDK's `Profile` offers lookup by key but no iteration, so credd can
/// only see the keys it asks for. Unknown keys (including misspelt ones) are
/// therefore invisible, exactly as they are to the AWS CLI.
pub const KNOWN_KEYS: &[&str] = &[
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "role_arn",
    "source_profile",
    "credential_source",
    "external_id",
    "role_session_name",
    "duration_seconds",
    "mfa_serial",
    "mfa_process",
    "credd_session_duration",
    "credd_root_user",
    "web_identity_token_file",
    credd_core::login::KEY_SAML_PRINCIPAL_ARN,
    credd_core::login::KEY_SAML_PROCESS,
    "credential_process",
    "region",
    "endpoint_url",
    "ignore_configured_endpoint_urls",
    "sso_session",
    "sso_account_id",
    "sso_role_name",
    "sso_start_url",
    "sso_region",
    "sso_registration_scopes",
    "services",
    // `aws login` sessions (the identity's ARN; the cache file is named by it).
    "login_session",
];

/// The keys of an `[sso-session NAME]` section.
pub const SSO_SESSION_KEYS: &[&str] = &[
    "sso_start_url",
    "sso_region",
    "sso_registration_scopes",
    credd_core::sso::KEY_SESSION_LENGTH,
];

const CONFIG_ENV: &str = "AWS_CONFIG_FILE";
const CREDENTIALS_ENV: &str = "AWS_SHARED_CREDENTIALS_FILE";
const DEFAULT_CONFIG: &str = ".aws/config";
const DEFAULT_CREDENTIALS: &str = ".aws/credentials";

/// Where the AWS files are: the parts of the environment the AWS CLI and SDKs
/// consult to find them. Passed in (rather than read inside [`load_profiles`])
/// so that tests and the daemon's config can point it anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileEnv {
    /// `HOME`, which `~` in the paths below expands to.
    pub home: Option<PathBuf>,
    /// `AWS_CONFIG_FILE`; `~/.aws/config` when unset.
    pub config_file: Option<PathBuf>,
    /// `AWS_SHARED_CREDENTIALS_FILE`; `~/.aws/credentials` when unset.
    pub credentials_file: Option<PathBuf>,
}

impl ProfileEnv {
    /// Reads `HOME`, `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE`;
    /// empty values count as unset, as they do for the SDKs.
    pub fn from_process_env() -> Self {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            home: var("HOME"),
            config_file: var(CONFIG_ENV),
            credentials_file: var(CREDENTIALS_ENV),
        }
    }

    /// The config file this environment selects, `~` expanded.
    pub fn config_path(&self) -> PathBuf {
        self.resolve(self.config_file.as_deref(), DEFAULT_CONFIG)
    }

    /// The credentials file this environment selects, `~` expanded.
    pub fn credentials_path(&self) -> PathBuf {
        self.resolve(self.credentials_file.as_deref(), DEFAULT_CREDENTIALS)
    }

    /// Mirrors the SDK's own expansion, so that the path credd reports is the
    /// one the SDK actually read.
    fn resolve(&self, explicit: Option<&Path>, default: &str) -> PathBuf {
        let path = explicit.map_or_else(|| Path::new("~").join(default), Path::to_path_buf);
        let mut components = path.components();
        match (components.next(), &self.home) {
            (Some(Component::Normal(first)), Some(home)) if first == "~" => {
                home.join(components.as_path())
            }
            _ => path,
        }
    }
}

/// The profiles of both files, merged the way the AWS CLI merges them, and
/// where they were read from (for messages and file watching).
#[derive(Clone, PartialEq, Eq)]
pub struct LoadedProfiles {
    pub raw: RawProfiles,
    pub config_path: PathBuf,
    pub credentials_path: PathBuf,
    /// Why a file could not be used now: each such file was replaced by
    /// its last good version (empty: both files were read as they are).
    pub stale: Vec<String>,
    /// What the files hold that was ignored (sections with names the SDK
    /// drops, bytes that are not UTF-8 in comments), by file and line.
    pub notes: Vec<String>,
}

impl fmt::Debug for LoadedProfiles {
    /// Shows profile and key names only: the values include secret keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: BTreeMap<&str, Vec<&str>> = self
            .raw
            .iter()
            .map(|(name, props)| (name.as_str(), props.keys().map(String::as_str).collect()))
            .collect();
        f.debug_struct("LoadedProfiles")
            .field("raw", &keys)
            .field("config_path", &self.config_path)
            .field("credentials_path", &self.credentials_path)
            .field("stale", &self.stale)
            .field("notes", &self.notes)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileLoadError {
    /// A syntax error. The offending line is not quoted: in the credentials
    /// file it may well hold a secret key.
    #[error("{}, line {line}: {problem}; {fix}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        problem: String,
        fix: &'static str,
    },
    /// A syntax error whose location could not be read from the SDK's message.
    #[error("the AWS config files could not be parsed: {0}")]
    Syntax(String),
    /// A byte that is not UTF-8 outside a comment. Not quoted either.
    #[error("{}, line {line}, column {column}: a byte that is not UTF-8; save the file as UTF-8 (the AWS CLI refuses such a file too)", path.display())]
    Encoding {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    /// Not a regular file, too large, or unreadable (permissions...).
    #[error("{0}")]
    File(#[from] FileError),
}

/// Loads and merges both files. A missing file counts as empty, as it does
/// for the AWS CLI. A file that cannot be used is replaced by its last good
/// version (and named in [`LoadedProfiles::stale`]); it is an error only
/// when there is none yet.
///
/// Each file is parsed once, when its bytes change (see [`read_files`]);
/// the merge is done here, key by key, as the SDK merges them (the
/// credentials file's value wins), so a re-read of 10,000 profiles parses
/// each file once instead of once alone and again merged.
pub async fn load_profiles(env: &ProfileEnv) -> Result<LoadedProfiles, ProfileLoadError> {
    let files = read_files(env).await?;
    let (config, creds) = (
        files.config.parsed().await?,
        files.credentials.parsed().await?,
    );
    // The findings were read before this load; the next read parses again.
    files.config.release();
    files.credentials.release();
    // A parse holds the keys of KNOWN_KEYS and CREDENTIAL_KEYS, and the
    // latter are among the former (`credential_keys_are_known_keys`): the
    // config file's maps are taken whole (a clone, not a filtered copy).
    let mut raw: RawProfiles = (*config.profiles).clone();
    for (name, props) in creds.profiles.iter() {
        let into = raw.entry(name.clone()).or_default();
        for (k, v) in props {
            into.insert(k.clone(), v.clone());
        }
    }
    // sso-session sections share the map under a key no profile can have.
    for (name, props) in &config.sso_sessions {
        raw.insert(sso_session_key(name), props.clone());
    }
    Ok(LoadedProfiles {
        raw,
        config_path: env.config_path(),
        credentials_path: env.credentials_path(),
        stale: files.stale,
        notes: files
            .config
            .notes
            .iter()
            .chain(&files.credentials.notes)
            .cloned()
            .collect(),
    })
}

/// The non-credential settings of `profile` (see
/// [`credd_core::overlay::CARRIED_KEYS`]) and the `[services NAME]` section
/// it names, for the overlay config `credd exec` gives its child. `None`
/// when the files have no such profile.
pub async fn profile_settings(
    env: &ProfileEnv,
    profile: &str,
) -> Result<Option<ProfileSettings>, ProfileLoadError> {
    let set = load_profile_set(env, None).await?;
    let Some(p) = set.get_profile(profile) else {
        return Ok(None);
    };
    let settings: BTreeMap<String, String> = CARRIED_KEYS
        .iter()
        .filter_map(|k| p.get(k).map(|v| (k.to_string(), v.to_string())))
        .collect();
    let services = match settings.get("services") {
        // The same (last good) text the profile was read from.
        Some(name) => services_section(read_files(env).await?.config.text.as_str(), name.trim()),
        None => None,
    };
    Ok(Some(ProfileSettings { settings, services }))
}

/// Every `[services NAME]` section of a config file, verbatim.
///
/// The SDK's parsed view of these sections can only be looked up by
/// service id, and there are hundreds of ids; so the section is copied as
/// text (header, comments, indented sub-properties) for the child's own SDK
/// to parse exactly as it parses the user's file. Headers are recognised as
/// the SDK's parser does: trimmed, comments after `#`/`;` dropped, words
/// split on whitespace.
fn services_section(text: &str, name: &str) -> Option<String> {
    fn header(line: &str) -> Option<Vec<&str>> {
        let t = line.trim();
        let t = t.split(['#', ';']).next().unwrap_or_default().trim();
        let inner = t.strip_prefix('[')?.strip_suffix(']')?;
        Some(inner.split_whitespace().collect())
    }
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if let Some(words) = header(line) {
            inside = words == ["services", name];
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Each file's profiles on their own (the config file, then the
/// credentials file), so that a finding can name the file it is in: the
/// same parse [`load_profiles`] merges, not another one.
pub async fn load_each_file(
    env: &ProfileEnv,
) -> Result<(Arc<RawProfiles>, Arc<RawProfiles>), ProfileLoadError> {
    let files = read_files(env).await?;
    Ok((
        files.config.parsed().await?.profiles.clone(),
        files.credentials.parsed().await?.profiles.clone(),
    ))
}

/// The SDK's parsed view of the files, with `selected` as the profile that
/// the SDK's own config lookups (such as endpoint URLs) consult. A broken
/// file is replaced by its last good version here too, so that calls keep
/// going while the user fixes it (the daemon's reload reports it).
pub(crate) async fn load_profile_set(
    env: &ProfileEnv,
    selected: Option<&str>,
) -> Result<ProfileSet, ProfileLoadError> {
    let files = read_files(env).await?;
    parse_set(&files, selected).await
}

/// One AWS file as text the SDK can be given, what in it was ignored, and
/// what the SDK's parser made of it (parsed when it was read).
struct GoodFile {
    text: Zeroizing<String>,
    notes: Vec<String>,
    /// Which file it was parsed as (the same path could be named for both).
    kind: EnvConfigFileKind,
    /// The parse, kept from the read (which parses to check the file) for
    /// the findings and the load that follow it, then let go by
    /// [`load_profiles`]: 10,000 profiles' maps would otherwise stay in
    /// memory beside the plans made from them (about 8 MB). Parsed again
    /// from `text` when asked for after that.
    parsed: Mutex<Option<Arc<Parsed>>>,
    /// What each of its sections gave, so that the next version of the
    /// file is parsed section by section, only the changed ones by the SDK
    /// (see [`sections`]), and this one again at no cost.
    sections: sections::Sections,
}

/// One file's sections, as the SDK's parser reads them.
struct Parsed {
    /// Its profiles, with the keys of [`KNOWN_KEYS`] and [`CREDENTIAL_KEYS`]
    /// (the findings need the latter).
    profiles: Arc<RawProfiles>,
    /// Its `[sso-session NAME]` sections (config file only).
    sso_sessions: RawProfiles,
}

impl GoodFile {
    async fn parsed(&self) -> Result<Arc<Parsed>, ProfileLoadError> {
        if let Some(p) = self.parsed.lock().unwrap().clone() {
            return Ok(p);
        }
        let (parsed, _) = sections::parse(&self.text, self.kind, Some(&self.sections))
            .await
            .map_err(|e| ProfileLoadError::Syntax(e.to_string()))?;
        let p = Arc::new(parsed);
        *self.parsed.lock().unwrap() = Some(p.clone());
        Ok(p)
    }
    fn release(&self) {
        *self.parsed.lock().unwrap() = None;
    }
}

/// The last good version of each AWS file this process has read, by path.
/// Process-wide rather than per reader so that the daemon's reload and the
/// STS calls fall back to the same version. Holds what the daemon's plans
/// hold anyway (the profiles' keys), for as long.
static LAST_GOOD: Mutex<BTreeMap<PathBuf, Arc<GoodFile>>> = Mutex::new(BTreeMap::new());

struct Files {
    config: Arc<GoodFile>,
    credentials: Arc<GoodFile>,
    stale: Vec<String>,
}

async fn read_files(env: &ProfileEnv) -> Result<Files, ProfileLoadError> {
    let mut stale = Vec::new();
    let mut pick = |path: PathBuf, read: Result<Arc<GoodFile>, ProfileLoadError>| {
        let mut last = LAST_GOOD.lock().unwrap();
        match read {
            Ok(good) => {
                last.insert(path, good.clone());
                Ok(good)
            }
            Err(e) => match last.get(&path) {
                Some(good) => {
                    stale.push(e.to_string());
                    Ok(good.clone())
                }
                None => Err(e),
            },
        }
    };
    let config_path = env.config_path();
    let read = read_one(&config_path, EnvConfigFileKind::Config).await;
    let config = pick(config_path, read)?;
    let credentials_path = env.credentials_path();
    let read = read_one(&credentials_path, EnvConfigFileKind::Credentials).await;
    let credentials = pick(credentials_path, read)?;
    Ok(Files {
        config,
        credentials,
        stale,
    })
}

/// Reads, decodes and parses one file on its own, so that a problem is
/// pinned to the file it is in (and the other file can still be used).
/// Bytes the same as the last good version's are not parsed again: the
/// result would be the same, and it is the cost that grows with the
/// profiles (a config change re-reads both files, a control request's
/// findings and the reload read them one after the other).
async fn read_one(path: &Path, kind: EnvConfigFileKind) -> Result<Arc<GoodFile>, ProfileLoadError> {
    // Blocking, but bounded: a regular file of at most FILE_CAP bytes.
    let bytes = match regular_file::read(path, FILE_CAP, Links::Follow)? {
        Some(b) => Zeroizing::new(b),
        None => Zeroizing::new(Vec::new()),
    };
    let last = LAST_GOOD
        .lock()
        .unwrap()
        .get(path)
        .filter(|last| {
            matches!(
                (last.kind, kind),
                (EnvConfigFileKind::Config, EnvConfigFileKind::Config)
                    | (
                        EnvConfigFileKind::Credentials,
                        EnvConfigFileKind::Credentials
                    )
            )
        })
        .cloned();
    // The text is the bytes exactly when they were UTF-8 (see `decode`).
    if let Some(last) = last
        .as_ref()
        .filter(|l| l.text.as_bytes() == bytes.as_slice())
    {
        return Ok(last.clone());
    }
    let (text, mut notes) = decode(path, bytes)?;
    let (parsed, sections) = sections::parse(&text, kind, last.as_ref().map(|l| &l.sections))
        .await
        .map_err(|e| located(path, e))?;
    notes.extend(ignored_sections(path, kind, &text));
    Ok(Arc::new(GoodFile {
        text,
        notes,
        kind,
        parsed: Mutex::new(Some(Arc::new(parsed))),
        sections,
    }))
}

/// Parses one file on its own into its profiles and sso-session sections.
async fn parse_one(text: &str, kind: EnvConfigFileKind) -> Result<Parsed, ProfileFileLoadError> {
    let files = EnvConfigFiles::builder().with_contents(kind, text).build();
    let set = sdk_parse(&files, None).await?;
    // Only the known keys the text holds at all are asked for: the SDK's
    // `get` makes a lowercased copy of the key each time, and asking each
    // of 10,000 profiles for every known key was a fifth of a re-read.
    let asked = keys_in_text(text);
    let profiles: RawProfiles = set
        .profiles()
        .filter_map(|name| set.get_profile(name))
        .map(|profile| {
            let props: BTreeMap<String, String> = asked
                .iter()
                .filter_map(|key| profile.get(key).map(|v| (key.to_string(), v.to_string())))
                .collect();
            (profile.name().to_string(), props)
        })
        .collect();
    let sso_sessions: RawProfiles = set
        .sso_sessions()
        .filter_map(|name| set.sso_session(name).map(|s| (name, s)))
        .map(|(name, section)| {
            let props: BTreeMap<String, String> = SSO_SESSION_KEYS
                .iter()
                .filter_map(|key| section.get(key).map(|v| (key.to_string(), v.to_string())))
                .collect();
            (name.to_string(), props)
        })
        .collect();
    Ok(Parsed {
        profiles: Arc::new(profiles),
        sso_sessions,
    })
}

/// The keys of [`KNOWN_KEYS`] and [`CREDENTIAL_KEYS`] that some line of
/// `text` could hold: the part of each line before its first `=`, trimmed
/// of every kind of white space and lowercased (the SDK trims no more and
/// looks keys up lowercased), so a key the SDK could give back is never
/// left out; a line that is not a property (a comment, a section header)
/// only adds a name no known key has.
fn keys_in_text(text: &str) -> Vec<&'static str> {
    let present: std::collections::HashSet<String> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, _)| key.trim().to_ascii_lowercase())
        .collect();
    KNOWN_KEYS
        .iter()
        .chain(CREDENTIAL_KEYS)
        .copied()
        .filter(|k| present.contains(*k))
        .collect()
}

async fn parse_set(files: &Files, selected: Option<&str>) -> Result<ProfileSet, ProfileLoadError> {
    let sources = EnvConfigFiles::builder()
        .with_contents(EnvConfigFileKind::Config, files.config.text.as_str())
        .with_contents(
            EnvConfigFileKind::Credentials,
            files.credentials.text.as_str(),
        )
        .build();
    // Each file parsed on its own, so this cannot fail on syntax.
    sdk_parse(&sources, selected)
        .await
        .map_err(|e| ProfileLoadError::Syntax(e.to_string()))
}

/// The SDK's parser over text only: no file system, no environment, and
/// no subscriber, so none of its log events (some of which print what they
/// parse) can reach the daemon's log, whatever its level.
async fn sdk_parse(
    files: &EnvConfigFiles,
    selected: Option<&str>,
) -> Result<ProfileSet, ProfileFileLoadError> {
    #[cfg(test)]
    tests::PARSES.with(|n| n.set(n.get() + 1));
    aws_config::profile::load(
        &Fs::from_map(HashMap::<String, Vec<u8>>::new()),
        &Env::from(HashMap::<String, String>::new()),
        files,
        selected.map(|s| Cow::Owned(s.to_string())),
    )
    .with_subscriber(tracing::subscriber::NoSubscriber::default())
    .await
}

#[cfg(test)]
#[path = "profiles_tests.rs"]
mod tests;
