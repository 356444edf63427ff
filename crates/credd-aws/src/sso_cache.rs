//! [`FileTokenStore`]: credd-core's [`TokenStore`] over `~/.aws/sso/cache`,
//! the directory the AWS CLI v2 and every SDK share.
//!
//! Files are written as the CLI writes them (one line of JSON, no trailing
//! newline, mode 0600) but atomically, through a temporary file in the same
//! directory, so that a CLI or SDK reading at the same moment never sees a
//! torn file. A file that cannot be parsed is reported, never removed or
//! rewritten by a read: it may be a newer CLI's, or the user's to inspect.

use credd_core::sso::{
    CacheParseError, ClientRegistration, FileStamp, Loaded, SsoSession, SsoToken, StoreError,
    TokenStore,
};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Cache files are a few hundred bytes; anything far larger is not read.
const MAX_CACHE_FILE: u64 = 64 * 1024;

/// The SSO token cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTokenStore {
    dir: PathBuf,
}

impl FileTokenStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `HOME/.aws/sso/cache`. The AWS CLI and SDKs put it there whatever
    /// `AWS_CONFIG_FILE` says, so credd does too.
    pub fn default_dir(home: &Path) -> PathBuf {
        home.join(".aws").join("sso").join("cache")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn token_file(&self, session: &SsoSession) -> PathBuf {
        self.dir.join(session.token_file_name())
    }

    /// Reads and parses one file; the stamp is taken from the same open file
    /// as the bytes, so it describes exactly the version that was read.
    fn load<T>(
        path: &Path,
        parse: impl FnOnce(&[u8]) -> Result<T, CacheParseError>,
    ) -> Result<Loaded<T>, StoreError> {
        // Opened without blocking: a FIFO planted here must not hang the
        // daemon (threat-model row 23); it is refused just below.
        let mut file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Missing),
            Err(e) => return Err(store_error(path, &e)),
        };
        let meta = file.metadata().map_err(|e| store_error(path, &e))?;
        let stamp = stamp_of(&meta);
        // A token file planted by someone else (or a device, or a huge file)
        // is not read: it is reported like a corrupt one, and left alone.
        let untrusted = if !meta.is_file() {
            Some("it is not a regular file")
        } else if meta.uid() != rustix::process::geteuid().as_raw() {
            Some("it belongs to another user")
        } else if meta.len() > MAX_CACHE_FILE {
            Some("it is larger than 64 KiB, far more than a token")
        } else {
            None
        };
        if let Some(why) = untrusted {
            return Ok(Loaded::Corrupt(CacheParseError::Untrusted(why), stamp));
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| store_error(path, &e))?;
        Ok(match parse(&bytes) {
            Ok(v) => Loaded::Found(v, stamp),
            Err(e) => Loaded::Corrupt(e, stamp),
        })
    }

    /// Replaces `path` with `contents` atomically, mode 0600, with
    /// [`crate::userfile`]: under a lock against other credd processes (the
    /// daemon and `credd login`), leaving no temporary copy behind, never
    /// through a symlink. A missing directory is created 0700; an existing
    /// one is the user's (or the AWS CLI's) and its mode is left alone. If
    /// another program (`aws sso login`) rewrites the file while credd
    /// writes it, theirs is kept and this is an error: the daemon keeps its
    /// token in memory and reads theirs at its next sync.
    fn write(&self, path: &Path, contents: &str) -> Result<FileStamp, StoreError> {
        crate::userfile::replace(
            path,
            &crate::userfile::Options::private_file(),
            contents.as_bytes(),
        )
        .map_err(|e| StoreError {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let metadata = fs::symlink_metadata(path).map_err(|e| store_error(path, &e))?;
        Ok(stamp_of(&metadata))
    }
}

fn stamp_of(m: &fs::Metadata) -> FileStamp {
    FileStamp {
        modified_nanos: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        len: m.len(),
        inode: m.ino(),
    }
}

fn store_error(path: &Path, e: &io::Error) -> StoreError {
    StoreError {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl TokenStore for FileTokenStore {
    fn load_token(&self, session: &SsoSession) -> Result<Loaded<SsoToken>, StoreError> {
        Self::load(&self.token_file(session), SsoToken::from_json)
    }

    fn save_token(&self, session: &SsoSession, token: &SsoToken) -> Result<FileStamp, StoreError> {
        self.write(&self.token_file(session), &token.to_json())
    }

    /// Removes the token file only, as `aws sso logout` does: the client
    /// registration stays for the next login.
    fn remove_token(&self, session: &SsoSession) -> Result<bool, StoreError> {
        let path = self.token_file(session);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(store_error(&path, &e)),
        }
    }

    fn token_stamp(&self, session: &SsoSession) -> Option<FileStamp> {
        fs::metadata(self.token_file(session))
            .ok()
            .map(|m| stamp_of(&m))
    }

    fn load_registration(
        &self,
        session: &SsoSession,
    ) -> Result<Loaded<ClientRegistration>, StoreError> {
        match session.registration_file_name() {
            Some(name) => Self::load(&self.dir.join(name), ClientRegistration::from_json),
            // Legacy sessions register afresh at each login.
            None => Ok(Loaded::Missing),
        }
    }

    fn save_registration(
        &self,
        session: &SsoSession,
        registration: &ClientRegistration,
    ) -> Result<(), StoreError> {
        match session.registration_file_name() {
            Some(name) => self
                .write(&self.dir.join(name), &registration.to_json())
                .map(drop),
            None => Ok(()),
        }
    }

    fn token_path(&self, session: &SsoSession) -> String {
        self.token_file(session).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credd_core::SecretString;
    use std::fs::Permissions;
    use std::os::unix::fs::PermissionsExt;
    use time::macros::datetime;

    fn work() -> SsoSession {
        SsoSession {
            name: Some("work".into()),
            start_url: "https://d-1234567890.awsapps.com/start".into(),
            region: "eu-west-1".into(),
            scopes: None,
            session_length: None,
        }
    }

    fn token() -> SsoToken {
        SsoToken::from_json(
            br#"{"startUrl": "https://d-1234567890.awsapps.com/start", "region": "eu-west-1", "accessToken": "at", "expiresAt": "2026-11-23T12:00:00Z", "clientId": "cid", "clientSecret": "cs", "registrationExpiresAt": "2027-02-21T12:00:00Z", "refreshToken": "rt"}"#,
        )
        .unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn files_that_are_not_the_users_own_small_regular_files_are_not_read() {
        let home = tempfile::tempdir().unwrap();
        let store = FileTokenStore::new(FileTokenStore::default_dir(home.path()));
        let path = store.dir().join(work().token_file_name());
        fs::create_dir_all(store.dir()).unwrap();
        let untrusted = |why: &str| match store.load_token(&work()).unwrap() {
            Loaded::Corrupt(CacheParseError::Untrusted(w), _) => assert_eq!(w, why),
            other => panic!("{other:?}"),
        };
        // A directory where the file should be.
        fs::create_dir(&path).unwrap();
        untrusted("it is not a regular file");
        fs::remove_dir(&path).unwrap();
        // Far too large to be a token.
        let mut big = token().to_json().into_bytes();
        big.resize(65 * 1024, b' ');
        fs::write(&path, &big).unwrap();
        untrusted("it is larger than 64 KiB, far more than a token");
        // Another user's file (the tests run as root in CI; elsewhere the
        // chown is not permitted and this part is covered there).
        fs::write(&path, token().to_json()).unwrap();
        let other = rustix::process::geteuid().as_raw() + 1;
        if std::os::unix::fs::chown(&path, Some(other), None).is_ok() {
            untrusted("it belongs to another user");
            assert_eq!(fs::read(&path).unwrap(), token().to_json().into_bytes());
        }
    }

    #[test]
    fn a_fifo_in_the_cache_is_refused_without_blocking() {
        let home = tempfile::tempdir().unwrap();
        let store = FileTokenStore::new(FileTokenStore::default_dir(home.path()));
        let path = store.dir().join(work().token_file_name());
        fs::create_dir_all(store.dir()).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        match store.load_token(&work()).unwrap() {
            Loaded::Corrupt(CacheParseError::Untrusted(w), _) => {
                assert_eq!(w, "it is not a regular file")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tokens_round_trip_as_one_line_without_newline_and_0600() {
        let home = tempfile::tempdir().unwrap();
        let store = FileTokenStore::new(FileTokenStore::default_dir(home.path()));
        assert!(matches!(
            store.load_token(&work()).unwrap(),
            Loaded::Missing
        ));
        assert_eq!(store.token_stamp(&work()), None);

        let stamp = store.save_token(&work(), &token()).unwrap();
        let path = home
            .path()
            .join(".aws/sso/cache/e274eeff768c6396088ec6eb091f4bf4d47ab1e0.json");
        assert_eq!(store.token_path(&work()), path.display().to_string());
        assert_eq!(fs::read_to_string(&path).unwrap(), token().to_json());
        assert!(!token().to_json().contains('\n'));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(store.token_stamp(&work()), Some(stamp));
        match store.load_token(&work()).unwrap() {
            Loaded::Found(t, s) => {
                assert!(t == token());
                assert_eq!(s, stamp);
            }
            other => panic!("{other:?}"),
        }
        // Only the token file is there: no temporary file (and no lock
        // file) is left behind.
        let names: Vec<String> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["e274eeff768c6396088ec6eb091f4bf4d47ab1e0.json"]);
    }

    #[test]
    fn a_missing_directory_is_created_private_but_an_existing_one_is_left_alone() {
        let home = tempfile::tempdir().unwrap();
        let dir = FileTokenStore::default_dir(home.path());
        FileTokenStore::new(&dir)
            .save_token(&work(), &token())
            .unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&home.path().join(".aws/sso")), 0o700);

        let mine = home.path().join("mine");
        fs::create_dir(&mine).unwrap();
        fs::set_permissions(&mine, Permissions::from_mode(0o755)).unwrap();
        FileTokenStore::new(&mine)
            .save_token(&work(), &token())
            .unwrap();
        assert_eq!(mode(&mine), 0o755);
    }

    #[test]
    fn corrupt_and_truncated_files_are_reported_and_left_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileTokenStore::new(dir.path());
        let path = dir.path().join(work().token_file_name());
        let full = token().to_json();
        for bad in [
            &full[..full.len() / 2],
            "",
            "not json",
            r#"{"startUrl": "u", "region": "r"}"#,
        ] {
            fs::write(&path, bad).unwrap();
            let loaded = store.load_token(&work()).unwrap();
            let Loaded::Corrupt(e, stamp) = loaded else {
                panic!("{bad:?}: {loaded:?}");
            };
            assert!(!e.to_string().contains("rt"), "{e}");
            assert_eq!(stamp.len, bad.len() as u64);
            assert_eq!(fs::read_to_string(&path).unwrap(), bad);
        }
    }

    #[test]
    fn saving_over_a_file_keeps_fields_credd_does_not_know() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileTokenStore::new(dir.path());
        let path = dir.path().join(work().token_file_name());
        let with_extra = token()
            .to_json()
            .replace('}', r#", "futureField": [1, 2]}"#);
        fs::write(&path, &with_extra).unwrap();
        let Loaded::Found(mut t, old) = store.load_token(&work()).unwrap() else {
            panic!("not found");
        };
        t.access_token = SecretString::new("at2");
        let new = store.save_token(&work(), &t).unwrap();
        assert_ne!(new, old);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""accessToken": "at2""#), "{text}");
        assert!(text.ends_with(r#", "futureField": [1, 2]}"#), "{text}");
    }

    #[test]
    fn remove_takes_the_token_and_leaves_the_registration() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileTokenStore::new(dir.path());
        let registration = ClientRegistration {
            client_id: "cid".into(),
            client_secret: SecretString::new("cs"),
            expires_at: datetime!(2027-02-21 12:00 UTC),
            scopes: Some(vec!["sso:account:access".into()]),
            grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        };
        store.save_registration(&work(), &registration).unwrap();
        let reg_path = dir.path().join(work().registration_file_name().unwrap());
        assert_eq!(
            fs::read_to_string(&reg_path).unwrap(),
            registration.to_json()
        );
        assert_eq!(mode(&reg_path), 0o600);
        match store.load_registration(&work()).unwrap() {
            Loaded::Found(r, _) => assert_eq!(r, registration),
            other => panic!("{other:?}"),
        }

        store.save_token(&work(), &token()).unwrap();
        assert!(store.remove_token(&work()).unwrap());
        assert!(!store.remove_token(&work()).unwrap());
        assert!(matches!(
            store.load_token(&work()).unwrap(),
            Loaded::Missing
        ));
        assert!(reg_path.exists());

        let legacy = SsoSession {
            name: None,
            ..work()
        };
        assert!(matches!(
            store.load_registration(&legacy).unwrap(),
            Loaded::Missing
        ));
    }

    #[test]
    fn io_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        // A token file that cannot be opened (no permission to search the
        // directory): an error other than NotFound, naming the file.
        let store = FileTokenStore::new(dir.path().join("file-not-dir"));
        fs::write(dir.path().join("file-not-dir"), b"").unwrap();
        let path = dir
            .path()
            .join("file-not-dir")
            .join(work().token_file_name());
        let err = match store.load_token(&work()) {
            Err(e) => e,
            Ok(other) => panic!("{other:?}"),
        };
        assert_eq!(err.path, path.display().to_string());
        // And a directory where the token file should be cannot be replaced.
        let dir2 = tempfile::tempdir().unwrap();
        fs::create_dir(dir2.path().join(work().token_file_name())).unwrap();
        let store2 = FileTokenStore::new(dir2.path());
        assert!(store2.save_token(&work(), &token()).is_err());
    }
}
