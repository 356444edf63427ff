//! Unit tests of `login_cache.rs`: the CLI's file byte for byte, unknown
//! fields kept, 0600 in a 0700 directory, unsafe directories refused,
//! corrupt files reported without their content, and a rewrite by another
//! program during an update kept.

use super::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use time::macros::datetime;

const ARN: &str = "arn:aws:iam::123456789012:user/dev";

/// A file as the AWS CLI 2.32 writes it (`json.dumps` of its dict).
const CLI_FILE: &str = r#"{"accessToken": {"accessKeyId": "ASIAEXAMPLE", "secretAccessKey": "sk-canary", "sessionToken": "st-canary", "accountId": "123456789012", "expiresAt": "2026-12-03T12:15:00Z"}, "tokenType": "aws_sigv4", "clientId": "arn:aws:signin:::devtools/same-device", "refreshToken": "rt-canary", "idToken": "a.b.c", "dpopKey": "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIDobQY1QyurtyWhlO8uxgk5K9x/yfxbJHMkeLhjoZBsBoAoGCCqGSM49\nAwEHoUQDQgAE/OdtF6yP0bSlDD0VKxepFQhVtMSQsg0ViRQ3Src6Ky31vXbDhS2d\nfD8FiAMAVi+UGMAak2z4DlfIkhtEkHBx1g==\n-----END EC PRIVATE KEY-----\n"}"#;

fn session() -> LoginSession {
    LoginSession::new(ARN)
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn the_clis_file_parses_and_is_written_back_byte_for_byte() {
    let t = LoginToken::from_json(CLI_FILE.as_bytes()).unwrap();
    assert_eq!(t.access_key_id, "ASIAEXAMPLE");
    assert_eq!(t.expires_at, datetime!(2026-12-03 12:15 UTC));
    assert_eq!(t.account_id.as_deref(), Some("123456789012"));
    assert!(t.dpop_key().is_ok());
    assert_eq!(t.to_json(), CLI_FILE);
    let creds = t.credentials().unwrap();
    assert_eq!(creds.session_token().expose(), "st-canary");
    // Debug shows none of the secrets.
    let debug = format!("{t:?}");
    for secret in ["sk-canary", "st-canary", "rt-canary", "MHcC", "a.b.c"] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[test]
fn unknown_fields_and_the_sign_in_region_survive_a_rewrite() {
    let text = CLI_FILE.replacen(
        r#""expiresAt": "2026-12-03T12:15:00Z"}"#,
        r#""expiresAt": "2026-12-03T12:15:00Z", "future": 1}"#,
        1,
    );
    let text = format!(
        "{}, \"signInRegion\": \"eu-west-1\", \"zNewer\": [\"x\", {{\"k\": true}}]}}",
        &text[..text.len() - 1]
    );
    let t = LoginToken::from_json(text.as_bytes()).unwrap();
    assert_eq!(t.sign_in_region.as_deref(), Some("eu-west-1"));
    assert_eq!(t.to_json(), text);
}

#[test]
fn a_new_session_is_the_clis_shape() {
    let key = DpopKey::from_pem(
        LoginToken::from_json(CLI_FILE.as_bytes())
            .unwrap()
            .dpop_key
            .expose(),
    )
    .unwrap();
    use base64::Engine as _;
    let id = format!(
        "h.{}.s",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"{ARN}"}}"#))
    );
    let out = TokenOutput {
        access_key_id: "ASIAEXAMPLE".into(),
        secret_access_key: SecretString::new("sk-canary"),
        session_token: SecretString::new("st-canary"),
        token_type: "aws_sigv4".into(),
        expires_in: 900,
        refresh_token: SecretString::new("rt-canary"),
        id_token: Some(SecretString::new(id.clone())),
    };
    let t = LoginToken::from_output(
        out,
        "arn:aws:signin:::devtools/same-device",
        &key,
        datetime!(2026-12-03 12:00:00.75 UTC),
    );
    // Same as the CLI's file but for the id token; the expiry is truncated
    // to the second as strftime writes it.
    assert_eq!(t.to_json(), CLI_FILE.replace("a.b.c", &id));
}

#[test]
fn save_is_0600_in_a_new_0700_directory_and_load_reads_it() {
    let home = tempfile::tempdir().unwrap();
    let cache = LoginCache::at(home.path().join(".aws/login/cache"));
    assert!(cache.load(&session()).unwrap().is_none());
    assert_eq!(cache.stamp(&session()), None);
    let t = LoginToken::from_json(CLI_FILE.as_bytes()).unwrap();
    cache.save(&session(), &t).unwrap();
    let path = cache.path(&session());
    assert_eq!(
        path,
        home.path().join(
            ".aws/login/cache/893f13863f68a08133e541260597f1d60f5bf9b326625782990032cbad201e26.json"
        )
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), CLI_FILE);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(cache.dir()), 0o700);
    assert_eq!(mode(&home.path().join(".aws/login")), 0o700);
    assert!(cache.load(&session()).unwrap().unwrap() == t);
    assert!(cache.stamp(&session()).is_some());
    // Nothing but the file is left in the directory.
    assert_eq!(fs::read_dir(cache.dir()).unwrap().count(), 1);
}

#[test]
fn directories_others_could_write_to_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("shared");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let cache = LoginCache::at(&dir);
    let t = LoginToken::from_json(CLI_FILE.as_bytes()).unwrap();
    let err = cache.save(&session(), &t).unwrap_err().to_string();
    assert!(err.contains("every user can write"), "{err}");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    // Writable by another group.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).unwrap();
    let other_group = rustix::process::getegid().as_raw() + 1;
    if std::os::unix::fs::chown(&dir, None, Some(other_group)).is_ok() {
        let err = cache.save(&session(), &t).unwrap_err().to_string();
        assert!(err.contains("members of group"), "{err}");
    }
    // Another user's (root runs the tests; elsewhere chown is refused).
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let me = rustix::process::geteuid().as_raw();
    if std::os::unix::fs::chown(&dir, Some(me + 1), None).is_ok() {
        let err = cache.save(&session(), &t).unwrap_err().to_string();
        assert!(err.contains("belongs to uid"), "{err}");
        std::os::unix::fs::chown(&dir, Some(me), None).unwrap();
    }
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    // The user's own group, as `aws login` leaves it under umask 002: fine.
    std::os::unix::fs::chown(&dir, None, Some(rustix::process::getegid().as_raw())).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o775)).unwrap();
    cache.save(&session(), &t).unwrap();
    assert_eq!(mode(&cache.path(&session())), 0o600);
}

#[test]
fn corrupt_files_are_reported_by_path_never_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let cache = LoginCache::at(dir.path());
    let path = cache.path(&session());
    for bad in [
        &CLI_FILE[..CLI_FILE.len() / 2],
        "",
        "[]",
        r#"{"accessToken": {"accessKeyId": "ASIAEXAMPLE"}, "refreshToken": "rt-canary"}"#,
        &CLI_FILE.replace("2026-12-03T12:15:00Z", "soon"),
    ] {
        fs::write(&path, bad).unwrap();
        let err = cache.load(&session()).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("aws login"), "{err}");
        assert!(!err.contains("canary"), "{err}");
        // A read never rewrites it.
        assert_eq!(fs::read_to_string(&path).unwrap(), bad);
    }
}

#[test]
fn from_lookup_follows_botocore() {
    let get = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(
        LoginCache::from_lookup(get(&[("HOME", "/h")]))
            .unwrap()
            .dir(),
        Path::new("/h/.aws/login/cache")
    );
    assert_eq!(
        LoginCache::from_lookup(get(&[
            ("HOME", "/h"),
            ("AWS_LOGIN_CACHE_DIRECTORY", "~/lc")
        ]))
        .unwrap()
        .dir(),
        Path::new("/h/lc")
    );
    assert_eq!(
        LoginCache::from_lookup(get(&[("AWS_LOGIN_CACHE_DIRECTORY", "/x/y")]))
            .unwrap()
            .dir(),
        Path::new("/x/y")
    );
    assert!(LoginCache::from_lookup(get(&[])).is_err());
}

#[test]
fn a_rewrite_by_another_program_during_an_update_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cache = LoginCache::at(dir.path());
    let path = cache.path(&session());
    let t = LoginToken::from_json(CLI_FILE.as_bytes()).unwrap();
    cache.save(&session(), &t).unwrap();
    let theirs = CLI_FILE.replace("rt-canary", "rt-theirs");
    let updated = cache
        .update(&session(), |current| -> Result<_, LoginCacheError> {
            let mut mine = current.unwrap();
            // botocore takes no lock: it rewrites the file (by a rename)
            // after credd read it and before credd's rename.
            let tmp = dir.path().join("botocore.tmp");
            fs::write(&tmp, &theirs).unwrap();
            fs::rename(&tmp, &path).unwrap();
            mine.refresh_token = SecretString::new("rt-mine");
            Ok((Some(mine), "value"))
        })
        .unwrap();
    assert_eq!(updated.value, "value");
    assert!(!updated.written);
    assert_eq!(fs::read_to_string(&path).unwrap(), theirs);

    // Undisturbed, the update is written.
    let updated = cache
        .update(&session(), |current| -> Result<_, LoginCacheError> {
            let mut mine = current.unwrap();
            assert_eq!(mine.refresh_token.expose(), "rt-theirs", "re-read");
            mine.refresh_token = SecretString::new("rt-mine");
            Ok((Some(mine), ()))
        })
        .unwrap();
    assert!(updated.written);
    assert!(fs::read_to_string(&path)
        .unwrap()
        .contains("\"refreshToken\": \"rt-mine\""));
}
