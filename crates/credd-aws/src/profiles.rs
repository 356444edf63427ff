//! Reading `~/.aws/config` and `~/.aws/credentials`: where the files are
//! ([`ProfileEnv`]), parsing and merging them with the AWS SDK's own parser, and
//! turning parse failures into errors that name the file and line to fix.
//!
//! The SDK's parser is used rather than a generic INI reader because the AWS
//! files have their own rules (`[profile x]` vs `[x]`, `[profile default]`
//! replacing `[default]`, sub-properties, the credentials file winning over the
//! config file); matching them exactly is what keeps credd's view of a profile
//! the same as the AWS CLI's.

use aws_config::profile::{ProfileFileLoadError, ProfileParseError, ProfileSet};
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_types::os_shim_internal::{Env, Fs};
use credd_core::overlay::{ProfileSettings, CARRIED_KEYS, CREDENTIAL_KEYS};
use credd_core::profile::{sso_session_key, RawProfiles};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use zeroize::Zeroize;

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
];

/// The keys of an `[sso-session NAME]` section.
pub const SSO_SESSION_KEYS: &[&str] = &["sso_start_url", "sso_region", "sso_registration_scopes"];

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

    /// The SDK reads the file locations from an environment; this one holds
    /// only what `self` says, so the daemon's own variables cannot leak in.
    /// Paths that are not UTF-8 are passed lossily: the SDK's environment
    /// abstraction only holds strings.
    pub(crate) fn sdk_env(&self) -> Env {
        let mut vars = HashMap::new();
        let mut put = |name: &str, value: &Option<PathBuf>| {
            if let Some(v) = value {
                vars.insert(name.to_string(), v.to_string_lossy().into_owned());
            }
        };
        put("HOME", &self.home);
        put(CONFIG_ENV, &self.config_file);
        put(CREDENTIALS_ENV, &self.credentials_file);
        Env::from(vars)
    }
}

/// The profiles of both files, merged the way the AWS CLI merges them, and
/// where they were read from (for messages and file watching).
#[derive(Clone, PartialEq, Eq)]
pub struct LoadedProfiles {
    pub raw: RawProfiles,
    pub config_path: PathBuf,
    pub credentials_path: PathBuf,
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
    /// The file exists but could not be read (permissions, a directory...).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Loads and merges both files. A missing file counts as empty, as it does
/// for the AWS CLI; an unreadable or malformed one is an error.
pub async fn load_profiles(env: &ProfileEnv) -> Result<LoadedProfiles, ProfileLoadError> {
    let set = load_profile_set(env, None).await?;
    let mut raw: RawProfiles = set
        .profiles()
        .filter_map(|name| set.get_profile(name))
        .map(|profile| {
            let props: BTreeMap<String, String> = KNOWN_KEYS
                .iter()
                .filter_map(|key| profile.get(key).map(|v| (key.to_string(), v.to_string())))
                .collect();
            (profile.name().to_string(), props)
        })
        .collect();
    // sso-session sections share the map under a key no profile can have.
    for name in set.sso_sessions() {
        if let Some(section) = set.sso_session(name) {
            let props: BTreeMap<String, String> = SSO_SESSION_KEYS
                .iter()
                .filter_map(|key| section.get(key).map(|v| (key.to_string(), v.to_string())))
                .collect();
            raw.insert(sso_session_key(name), props);
        }
    }
    Ok(LoadedProfiles {
        raw,
        config_path: env.config_path(),
        credentials_path: env.credentials_path(),
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
        Some(name) => {
            let path = env.config_path();
            match tokio::fs::read_to_string(&path).await {
                Ok(text) => services_section(&text, name.trim()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => return Err(ProfileLoadError::Read { path, source }),
            }
        }
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

/// Each file parsed on its own (the config file, then the credentials
/// file), so that a finding can name the file it is in.
pub async fn load_each_file(
    env: &ProfileEnv,
) -> Result<(RawProfiles, RawProfiles), ProfileLoadError> {
    use aws_runtime::env_config::file::EnvConfigFiles as Files;
    let one = |config: bool| {
        Files::builder()
            .include_default_config_file(config)
            .include_default_credentials_file(!config)
            .build()
    };
    let mut out = Vec::new();
    for config in [true, false] {
        let set = aws_config::profile::load(&Fs::real(), &env.sdk_env(), &one(config), None)
            .await
            .map_err(|e| ProfileLoadError::Syntax(e.to_string()))?;
        let raw: RawProfiles = set
            .profiles()
            .filter_map(|name| set.get_profile(name))
            .map(|profile| {
                let props: BTreeMap<String, String> = KNOWN_KEYS
                    .iter()
                    .chain(CREDENTIAL_KEYS)
                    .filter_map(|key| profile.get(key).map(|v| (key.to_string(), v.to_string())))
                    .collect();
                (profile.name().to_string(), props)
            })
            .collect();
        out.push(raw);
    }
    let creds = out.pop().unwrap_or_default();
    let config = out.pop().unwrap_or_default();
    Ok((config, creds))
}

/// The SDK's parsed view of the files, with `selected` as the profile that
/// the SDK's own config lookups (such as endpoint URLs) consult.
pub(crate) async fn load_profile_set(
    env: &ProfileEnv,
    selected: Option<&str>,
) -> Result<ProfileSet, ProfileLoadError> {
    // The SDK turns every read failure of a default-located file into an
    // empty file (with a log line). That is right for a missing file, but an
    // unreadable one would silently lose the user's profiles.
    for path in [env.config_path(), env.credentials_path()] {
        match tokio::fs::read(&path).await {
            // The contents may hold secret keys; this copy is only a probe.
            Ok(mut contents) => contents.zeroize(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ProfileLoadError::Read { path, source }),
        }
    }
    aws_config::profile::load(
        &Fs::real(),
        &env.sdk_env(),
        &EnvConfigFiles::default(),
        selected.map(|s| Cow::Owned(s.to_string())),
    )
    .await
    .map_err(|e: ProfileFileLoadError| {
        // The variants cannot be matched from outside the SDK; a parse error
        // is the load error's source.
        match std::error::Error::source(&e).and_then(|s| s.downcast_ref::<ProfileParseError>()) {
            Some(parse) => parse_error(&parse.to_string()),
            // Only files given by explicit path can fail to read inside the
            // SDK, and credd never passes one.
            None => ProfileLoadError::Syntax(e.to_string()),
        }
    })
}

/// The SDK's parse error keeps its location private; its `Display` is
/// `error parsing PATH on line N:\n  MESSAGE`, so the parts are read from that.
fn parse_error(text: &str) -> ProfileLoadError {
    let located = text.split_once(":\n").and_then(|(head, problem)| {
        let (path, line) = head
            .strip_prefix("error parsing ")?
            .rsplit_once(" on line ")?;
        Some((PathBuf::from(path), line.parse().ok()?, problem.trim()))
    });
    match located {
        Some((path, line, problem)) => ProfileLoadError::Parse {
            path,
            line,
            problem: problem.to_string(),
            fix: fix_for(problem),
        },
        None => ProfileLoadError::Syntax(text.split_whitespace().collect::<Vec<_>>().join(" ")),
    }
}

fn fix_for(problem: &str) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new(config: Option<&str>, credentials: Option<&str>) -> Self {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join(".aws")).unwrap();
            if let Some(c) = config {
                fs::write(dir.path().join(DEFAULT_CONFIG), c).unwrap();
            }
            if let Some(c) = credentials {
                fs::write(dir.path().join(DEFAULT_CREDENTIALS), c).unwrap();
            }
            Self { dir }
        }
        fn env(&self) -> ProfileEnv {
            ProfileEnv {
                home: Some(self.dir.path().to_path_buf()),
                ..Default::default()
            }
        }
    }

    fn props(raw: &RawProfiles, profile: &str) -> Vec<(String, String)> {
        raw[profile]
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn config_and_credentials_are_merged() {
        let f = Files::new(
            Some(
                "[default]\nregion = us-east-1\n\
                 [profile dev]\nrole_arn = arn:aws:iam::111111111111:role/Dev\n\
                 source_profile = base\nRegion = eu-west-1\nnot_a_known_key = x\n\
                 services = local\n\
                 [profile base]\naws_access_key_id = FROM_CONFIG\nmfa_serial = arn:aws:iam::1:mfa/me\n\
                 [services local]\nsts =\n  endpoint_url = http://127.0.0.1:1\n",
            ),
            Some(
                "[base]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = canary\n\
                 # a comment\n[profile ignored]\naws_access_key_id = x\n",
            ),
        );
        let loaded = load_profiles(&f.env()).await.unwrap();
        let raw = &loaded.raw;
        assert_eq!(
            raw.keys().collect::<Vec<_>>(),
            ["base", "default", "dev"],
            "`[profile x]` is not a profile in the credentials file"
        );
        assert_eq!(
            props(raw, "base"),
            kv(&[
                ("aws_access_key_id", "AKIAEXAMPLE"),
                ("aws_secret_access_key", "canary"),
                ("mfa_serial", "arn:aws:iam::1:mfa/me"),
            ]),
            "the credentials file wins over the config file"
        );
        assert_eq!(
            props(raw, "dev"),
            kv(&[
                ("region", "eu-west-1"),
                ("role_arn", "arn:aws:iam::111111111111:role/Dev"),
                ("services", "local"),
                ("source_profile", "base"),
            ])
        );
        assert_eq!(loaded.config_path, f.dir.path().join(".aws/config"));
        assert_eq!(
            loaded.credentials_path,
            f.dir.path().join(".aws/credentials")
        );
        let debug = format!("{loaded:?}");
        assert!(!debug.contains("canary"), "{debug}");
        assert!(debug.contains("aws_secret_access_key"), "{debug}");
    }

    #[tokio::test]
    async fn sso_session_sections_are_kept_under_their_own_key() {
        let f = Files::new(
            Some(
                "[sso-session work]\nsso_start_url = https://d-1.awsapps.com/start\n\
                 sso_region = eu-west-1\nsso_registration_scopes = sso:account:access\n\
                 [profile dev]\nsso_session = work\nsso_account_id = 111122223333\n\
                 sso_role_name = ReadOnly\n",
            ),
            None,
        );
        let raw = load_profiles(&f.env()).await.unwrap().raw;
        assert_eq!(raw.keys().collect::<Vec<_>>(), ["dev", "sso-session work"]);
        assert_eq!(
            props(&raw, "sso-session work"),
            kv(&[
                ("sso_region", "eu-west-1"),
                ("sso_registration_scopes", "sso:account:access"),
                ("sso_start_url", "https://d-1.awsapps.com/start"),
            ])
        );
        let plans = credd_core::profile::resolve_all(&raw);
        assert_eq!(plans.keys().collect::<Vec<_>>(), ["dev"]);
        assert!(plans["dev"].is_ok(), "{:?}", plans["dev"]);
    }

    #[tokio::test]
    async fn settings_carry_no_credentials_and_copy_the_services_section() {
        let f = Files::new(
            Some(
                "[default]\nregion = us-east-1\n\
                 [profile dev] # mine\nrole_arn = arn:aws:iam::1:role/dev\nsource_profile = base\n\
                 region = eu-west-1\nservices = local\nretry_mode = adaptive\n\
                 s3 =\n  addressing_style = path\n\
                 [services other]\nsts =\n  endpoint_url = http://other\n\
                 [ services  local ] ; the one\n# a comment\nsts =\n  endpoint_url = http://127.0.0.1:1\n\
                 [profile base]\nregion = x\n",
            ),
            Some("[dev]\naws_access_key_id = AKIA\naws_secret_access_key = canary\nmax_attempts = 7\n"),
        );
        let s = profile_settings(&f.env(), "dev").await.unwrap().unwrap();
        assert_eq!(
            s.settings.keys().collect::<Vec<_>>(),
            ["max_attempts", "region", "retry_mode", "s3", "services"]
        );
        assert_eq!(s.settings["s3"], "\naddressing_style = path");
        assert_eq!(
            s.services.as_deref(),
            Some("[ services  local ] ; the one\n# a comment\nsts =\n  endpoint_url = http://127.0.0.1:1\n")
        );
        assert!(profile_settings(&f.env(), "nope").await.unwrap().is_none());
        // The overlay built from them parses back, with the same settings.
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("overlay"), s.overlay("dev", &[])).unwrap();
        fs::write(dir.path().join("empty"), "").unwrap();
        let env = ProfileEnv {
            home: None,
            config_file: Some(dir.path().join("overlay")),
            credentials_file: Some(dir.path().join("empty")),
        };
        let back = profile_settings(&env, "default").await.unwrap().unwrap();
        assert_eq!(back, s);
        let raw = load_profiles(&env).await.unwrap().raw;
        assert!(raw
            .values()
            .all(|p| !p.contains_key("aws_access_key_id") && !p.contains_key("role_arn")));
        let (config, creds) = load_each_file(&f.env()).await.unwrap();
        assert!(
            config["dev"].contains_key("role_arn")
                && !config["dev"].contains_key("aws_access_key_id")
        );
        assert!(creds["dev"].contains_key("aws_access_key_id"));
    }

    #[tokio::test]
    async fn missing_files_are_empty() {
        let f = Files::new(None, None);
        let loaded = load_profiles(&f.env()).await.unwrap();
        assert!(loaded.raw.is_empty());

        let mut env = f.env();
        env.config_file = Some(f.dir.path().join("nope/config"));
        assert!(load_profiles(&env).await.unwrap().raw.is_empty());
    }

    #[tokio::test]
    async fn aws_config_file_is_honoured() {
        let f = Files::new(Some("[profile home]\nregion = a\n"), None);
        fs::write(
            f.dir.path().join("other-config"),
            "[profile other]\nregion = b\n",
        )
        .unwrap();
        fs::write(
            f.dir.path().join("other-creds"),
            "[k]\naws_access_key_id = AKIA\n",
        )
        .unwrap();
        let env = ProfileEnv {
            home: Some(f.dir.path().to_path_buf()),
            config_file: Some("~/other-config".into()),
            credentials_file: Some(f.dir.path().join("other-creds")),
        };
        let loaded = load_profiles(&env).await.unwrap();
        assert_eq!(loaded.raw.keys().collect::<Vec<_>>(), ["k", "other"]);
        assert_eq!(loaded.config_path, f.dir.path().join("other-config"));
        assert_eq!(loaded.credentials_path, f.dir.path().join("other-creds"));
    }

    #[tokio::test]
    async fn parse_error_names_file_and_line_and_the_fix() {
        let f = Files::new(
            Some("# my config\n[default]\nregion = x\n[profile dev\nregion = y\n"),
            None,
        );
        let err = load_profiles(&f.env()).await.unwrap_err();
        match &err {
            ProfileLoadError::Parse { path, line, .. } => {
                assert_eq!(path, &f.dir.path().join(".aws/config"));
                assert_eq!(*line, 4);
            }
            other => panic!("{other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(".aws/config, line 4:"), "{msg}");
        assert!(msg.contains("`[profile dev]`"), "{msg}");
    }

    #[tokio::test]
    async fn parse_error_in_credentials_never_quotes_the_line() {
        let f = Files::new(
            None,
            Some("[default]\naws_access_key_id = AKIA\ncanary-secret-without-equals\n"),
        );
        let msg = load_profiles(&f.env()).await.unwrap_err().to_string();
        assert!(msg.contains(".aws/credentials, line 3:"), "{msg}");
        assert!(msg.contains("`key = value`"), "{msg}");
        assert!(!msg.contains("canary"), "{msg}");
    }

    #[tokio::test]
    async fn settings_before_any_section_are_explained() {
        let f = Files::new(Some("region = x\n"), None);
        let msg = load_profiles(&f.env()).await.unwrap_err().to_string();
        assert!(msg.contains("line 1:"), "{msg}");
        assert!(msg.contains("add `[profile NAME]`"), "{msg}");
    }

    #[tokio::test]
    async fn an_unreadable_file_is_an_error_not_empty() {
        let f = Files::new(None, None);
        // A directory where the file should be fails to read even as root.
        fs::create_dir(f.dir.path().join(".aws/config")).unwrap();
        let err = load_profiles(&f.env()).await.unwrap_err();
        assert!(matches!(err, ProfileLoadError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains(".aws/config"), "{err}");
    }

    #[test]
    fn loading_can_run_on_any_worker_thread() {
        fn assert_send<T: Send>(_: &T) {}
        let env = ProfileEnv::default();
        assert_send(&load_profiles(&env));
    }

    #[test]
    fn paths_follow_the_sdk_rules() {
        let env = ProfileEnv {
            home: Some("/home/u".into()),
            ..Default::default()
        };
        assert_eq!(env.config_path(), Path::new("/home/u/.aws/config"));
        assert_eq!(
            env.credentials_path(),
            Path::new("/home/u/.aws/credentials")
        );
        let env = ProfileEnv {
            home: None,
            config_file: Some("/etc/aws/config".into()),
            credentials_file: Some("~/creds".into()),
        };
        assert_eq!(env.config_path(), Path::new("/etc/aws/config"));
        assert_eq!(env.credentials_path(), Path::new("~/creds"));
    }

    #[test]
    fn an_unexpected_sdk_message_still_makes_an_error() {
        let e = parse_error("something new\n  entirely");
        assert_eq!(
            e.to_string(),
            "the AWS config files could not be parsed: something new entirely"
        );
    }
}
