//! Unit tests of [`super`] (profiles.rs), in their own file to keep that one
//! about the code; they see its private items as an inline module would.

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
        config["dev"].contains_key("role_arn") && !config["dev"].contains_key("aws_access_key_id")
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
    assert!(matches!(err, ProfileLoadError::File(_)), "{err:?}");
    assert!(err.to_string().contains("a directory"), "{err}");
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
    let e = parse_error(Path::new("x"), "something new\n  entirely");
    assert_eq!(
        e.to_string(),
        "the AWS config files could not be parsed: something new entirely"
    );
}

#[tokio::test]
async fn a_byte_that_is_not_utf8_is_located_and_tolerated_only_in_comments() {
    let f = Files::new(None, None);
    let config = f.dir.path().join(DEFAULT_CONFIG);
    fs::write(&config, b"[profile dev]\n# caf\xe9\nregion = eu-west-1\n").unwrap();
    let loaded = load_profiles(&f.env()).await.unwrap();
    assert_eq!(props(&loaded.raw, "dev"), kv(&[("region", "eu-west-1")]));
    assert_eq!(loaded.notes.len(), 1, "{:?}", loaded.notes);
    assert!(
        loaded.notes[0].contains("config, line 2, column 6"),
        "{:?}",
        loaded.notes
    );

    fs::write(&config, b"[profile dev]\nregion = caf\xe9\n").unwrap();
    let loaded = load_profiles(&f.env()).await.unwrap();
    assert_eq!(loaded.stale.len(), 1, "the last good version is used");
    let msg = &loaded.stale[0];
    assert!(
        msg.contains("config, line 2, column 13: a byte that is not UTF-8"),
        "{msg}"
    );
    assert!(!msg.contains("caf"), "{msg}");
    assert_eq!(props(&loaded.raw, "dev"), kv(&[("region", "eu-west-1")]));
}

#[tokio::test]
async fn a_broken_file_falls_back_to_its_last_good_version_and_only_then() {
    let f = Files::new(
        Some("[profile dev]\nregion = a\n"),
        Some("[k]\naws_access_key_id = AKIA\n"),
    );
    let config = f.dir.path().join(DEFAULT_CONFIG);
    let creds = f.dir.path().join(DEFAULT_CREDENTIALS);
    load_profiles(&f.env()).await.unwrap();
    // Half saved config, a new credentials file: both used as they can be.
    fs::write(&config, "[profile dev]\nregion = a\n[profile half").unwrap();
    fs::write(&creds, "[k2]\naws_access_key_id = AKIA\n").unwrap();
    let loaded = load_profiles(&f.env()).await.unwrap();
    assert_eq!(loaded.raw.keys().collect::<Vec<_>>(), ["dev", "k2"]);
    assert_eq!(loaded.stale.len(), 1);
    assert!(
        loaded.stale[0].contains("config, line 3"),
        "{:?}",
        loaded.stale
    );
    // The SDK view the STS calls use falls back the same way.
    let set = load_profile_set(&f.env(), Some("dev")).await.unwrap();
    assert!(set.get_profile("dev").is_some());
    // A fresh path with no good version yet is an error.
    let g = Files::new(Some("[profile half"), None);
    assert!(matches!(
        load_profiles(&g.env()).await,
        Err(ProfileLoadError::Parse { line: 1, .. })
    ));
}

#[tokio::test]
async fn a_fifo_is_refused_at_once_and_named() {
    let f = Files::new(Some("[profile dev]\nregion = a\n"), None);
    let creds = f.dir.path().join(DEFAULT_CREDENTIALS);
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &creds,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let err = load_profiles(&f.env()).await.unwrap_err();
    assert!(err.to_string().contains("credentials is a FIFO"), "{err}");
}

#[test]
fn sections_the_sdk_drops_are_named() {
    let p = Path::new("/h/.aws/config");
    let notes = ignored_sections(
        p,
        EnvConfigFileKind::Config,
        "[default]\n[dev]\n[profile ok]\n[profile b@d!]\n[sso-session s]\n[profile default] # x\n",
    );
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(
        notes[0].contains("line 2: section [dev] ignored"),
        "{notes:?}"
    );
    assert!(
        notes[1].contains("line 4: section [profile b@d!] ignored"),
        "{notes:?}"
    );
    assert!(
        notes[2].contains("line 1: section [default] ignored"),
        "{notes:?}"
    );
    let notes = ignored_sections(
        Path::new("/h/.aws/credentials"),
        EnvConfigFileKind::Credentials,
        "[k]\n[profile k2]\n",
    );
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("line 2: section [profile k2]"),
        "{notes:?}"
    );
}

thread_local! {
    /// How many times the SDK's parser ran on this thread (`sdk_parse`
    /// counts): the tests run on a current-thread runtime, so a test sees
    /// its own parses only.
    pub(super) static PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

pub(super) fn parses() -> usize {
    PARSES.with(|n| n.get())
}

/// The SDK's own merge of both files, reduced to [`KNOWN_KEYS`] and the
/// sso-session sections as `load_profiles` reports them: what the merge
/// from each file's parse must equal.
async fn sdk_merged(env: &ProfileEnv) -> RawProfiles {
    let set = load_profile_set(env, None).await.unwrap();
    let mut raw: RawProfiles = set
        .profiles()
        .filter_map(|name| set.get_profile(name))
        .map(|p| {
            let props = KNOWN_KEYS
                .iter()
                .filter_map(|k| p.get(k).map(|v| (k.to_string(), v.to_string())))
                .collect();
            (p.name().to_string(), props)
        })
        .collect();
    for name in set.sso_sessions() {
        let s = set.sso_session(name).unwrap();
        let props = SSO_SESSION_KEYS
            .iter()
            .filter_map(|k| s.get(k).map(|v| (k.to_string(), v.to_string())))
            .collect();
        raw.insert(sso_session_key(name), props);
    }
    raw
}

#[tokio::test]
async fn the_merge_of_each_files_parse_is_the_sdks_merge() {
    let f = Files::new(
        Some(
            "[default]\nregion = from-plain-default\noutput = json\n\
             [profile default]\nregion = from-profile-default\n\
             [profile both]\nregion = config\nrole_arn = arn:aws:iam::1:role/C\n\
             source_profile = base\n\
             [profile both]\nmfa_serial = arn:aws:iam::1:mfa/second-section\n\
             [profile only-config]\ncredential_process = /bin/true\n\
             [profile   spaced  ]\nregion = x\n\
             [profile sub]\ns3 =\n  addressing_style = path\nregion = y\n\
             [not-prefixed]\nregion = ignored\n\
             [sso-session corp]\nsso_start_url = https://x.awsapps.com/start\nsso_region = eu-west-1\n\
             [services local]\nsts =\n  endpoint_url = http://127.0.0.1:1\n",
        ),
        Some(
            "[default]\naws_access_key_id = AKIADEFAULT\n\
             [both]\nrole_arn = arn:aws:iam::1:role/FromCredentials\naws_access_key_id = AKIABOTH\n\
             [only-creds]\naws_access_key_id = AKIAONLY\naws_secret_access_key = s\n\
             [profile refused]\naws_access_key_id = x\n",
        ),
    );
    let ours = load_profiles(&f.env()).await.unwrap().raw;
    assert_eq!(ours, sdk_merged(&f.env()).await);
    // The cases the comparison is about are there to compare.
    assert_eq!(ours["default"]["region"], "from-profile-default");
    assert_eq!(ours["default"]["aws_access_key_id"], "AKIADEFAULT");
    assert_eq!(
        ours["both"]["role_arn"], "arn:aws:iam::1:role/FromCredentials",
        "the credentials file wins key by key"
    );
    assert_eq!(ours["both"]["source_profile"], "base");
    assert!(ours["both"].contains_key("mfa_serial"));
    assert!(ours.contains_key("only-creds") && ours.contains_key("only-config"));
    assert!(ours.contains_key(&sso_session_key("corp")));
    assert!(!ours.contains_key("refused") && !ours.contains_key("not-prefixed"));
}

#[tokio::test]
async fn each_file_is_parsed_once_for_the_findings_and_the_profiles() {
    let mut config = String::new();
    for i in 0..50 {
        config.push_str(&format!("[profile p{i}]\ncredential_process = /bin/true\n"));
    }
    let f = Files::new(
        Some(&config),
        Some("[p1]\naws_access_key_id = AKIA1\naws_secret_access_key = s\n"),
    );
    // The daemon's order on every read: the findings, then the profiles.
    let before = parses();
    let (cfg, creds) = load_each_file(&f.env()).await.unwrap();
    assert_eq!(
        parses() - before,
        2,
        "the config file and the credentials file"
    );
    assert_eq!(cfg.len(), 50);
    assert!(creds["p1"].contains_key("aws_access_key_id"));
    let loaded = load_profiles(&f.env()).await.unwrap();
    assert_eq!(parses() - before, 2, "the load uses the findings' parse");
    assert_eq!(loaded.raw.len(), 50);
    // The parse is let go after the load: a read of the same bytes builds
    // it again from what each section gave, with no SDK parse, and gives
    // the same profiles.
    load_each_file(&f.env()).await.unwrap();
    assert_eq!(load_profiles(&f.env()).await.unwrap(), loaded);
    assert_eq!(parses() - before, 2);
    // A change is seen by both; only the changed section is parsed.
    config.push_str("[profile added]\nregion = eu-west-1\n");
    fs::write(f.dir.path().join(DEFAULT_CONFIG), &config).unwrap();
    let (cfg, _) = load_each_file(&f.env()).await.unwrap();
    assert!(cfg.contains_key("added"));
    assert!(load_profiles(&f.env())
        .await
        .unwrap()
        .raw
        .contains_key("added"));
    assert_eq!(parses() - before, 3);
    // A broken file still falls back to the last good version, for both.
    fs::write(f.dir.path().join(DEFAULT_CONFIG), "[profile broken\n").unwrap();
    assert!(load_each_file(&f.env())
        .await
        .unwrap()
        .0
        .contains_key("added"));
    let stale = load_profiles(&f.env()).await.unwrap();
    assert_eq!(stale.stale.len(), 1, "{:?}", stale.stale);
    assert!(stale.raw.contains_key("added"));
}

/// Asking only the keys the text holds gives what asking every known key
/// gives, on text with odd case, tabs, odd white space, sub-properties,
/// comments and keys only in a comment.
#[tokio::test]
async fn asking_only_the_keys_in_the_text_gives_what_asking_every_key_gives() {
    use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
    let text = "# role_arn = arn:aws:iam::1:role/commented\n\
        [default]\nRegion = eu-west-1\nRole_Session_Name = me\nOUTPUT\t= json\n\
        [profile a]\nrole_arn=arn:aws:iam::1:role/a\nsource_profile = default\n\
        s3 =\n  max_concurrent_requests = 10\n\
        [profile b]\n\u{a0}mfa_serial = arn:aws:iam::1:mfa/b\nexternal_id\u{2003}= x\nregion = us-east-1 ; inline\n\
        [profile c] ; comment\ncredential_process = /bin/true --x=y\n\
        [sso-session s]\nsso_region = eu-west-1\n";
    for kind in [EnvConfigFileKind::Config, EnvConfigFileKind::Credentials] {
        let parsed = parse_one(text, kind).await.unwrap();
        let files = EnvConfigFiles::builder().with_contents(kind, text).build();
        let set = sdk_parse(&files, None).await.unwrap();
        let every: RawProfiles = set
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
        assert_eq!(*parsed.profiles, every, "{kind:?}");
        // (A credentials file drops `[profile NAME]` sections: only the
        // config file's parse has many keys to compare.)
        if matches!(kind, EnvConfigFileKind::Config) {
            assert!(
                every.values().map(|p| p.len()).sum::<usize>() >= 5,
                "the text gives keys to compare: {every:?}"
            );
        }
    }
}

#[test]
fn credential_keys_are_known_keys() {
    for k in CREDENTIAL_KEYS {
        assert!(KNOWN_KEYS.contains(k), "{k} is read for the findings only");
    }
}
