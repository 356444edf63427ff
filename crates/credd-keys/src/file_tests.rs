//! Unit tests of the encrypted-file backend: round trip, file mode, wrong
//! passphrase, truncation, an altered file, concurrent writers, a held lock,
//! an unsafe directory.

use crate::file::EncryptedFile;
use crate::{Backend, KeyError, KeyStore};
use credd_core::{LongTermKeys, SecretString};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use time::macros::datetime;

fn keys(id: &str) -> LongTermKeys {
    LongTermKeys {
        access_key_id: id.into(),
        secret_access_key: SecretString::new(format!("secret-of-{id}")),
    }
}

fn store(path: &Path, pass: &str) -> EncryptedFile {
    EncryptedFile::new(path.to_path_buf(), SecretString::new(pass)).with_cost(64, 1)
}

#[test]
fn round_trip_is_private_and_sealed() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("sub/keys.enc");
    let s = store(&p, "pass one");
    assert!(s.get("dev").unwrap().is_none());
    s.put(
        "dev",
        &keys("AKIADEV0000000000001"),
        datetime!(2026-01-02 03:04:05 UTC),
    )
    .unwrap();
    s.put(
        "ops",
        &keys("AKIAOPS0000000000002"),
        datetime!(2026-02-02 00:00:00 UTC),
    )
    .unwrap();
    let got = s.get("dev").unwrap().unwrap();
    assert_eq!(got.keys, keys("AKIADEV0000000000001"));
    assert_eq!(got.meta.added, datetime!(2026-01-02 03:04:05 UTC));
    assert_eq!(got.meta.backend, Backend::File);
    let names: Vec<_> = s.list().unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["dev", "ops"]);
    // Sealed: neither the secret nor the key id is in the bytes.
    let raw = std::fs::read_to_string(&p).unwrap();
    assert!(!raw.contains("secret-of-"), "{raw}");
    assert!(!raw.contains("AKIADEV"), "{raw}");
    assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(p.parent().unwrap()).unwrap().mode() & 0o777,
        0o700
    );
    assert!(s.delete("dev").unwrap());
    assert!(!s.delete("dev").unwrap());
    assert!(s.get("dev").unwrap().is_none());
    assert!(s.get("ops").unwrap().is_some());
}

#[test]
fn a_wrong_passphrase_is_named_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("keys.enc");
    store(&p, "right")
        .put("dev", &keys("AKIA1"), datetime!(2026-01-01 0:00 UTC))
        .unwrap();
    let before = std::fs::read(&p).unwrap();
    let wrong = store(&p, "wrong");
    let e = wrong.get("dev").unwrap_err();
    assert!(matches!(e, KeyError::WrongPassphrase { .. }), "{e:?}");
    assert!(e.to_string().contains("wrong passphrase"), "{e}");
    let e = wrong
        .put("other", &keys("AKIA2"), datetime!(2026-01-01 0:00 UTC))
        .unwrap_err();
    assert!(matches!(e, KeyError::WrongPassphrase { .. }), "{e:?}");
    assert_eq!(
        std::fs::read(&p).unwrap(),
        before,
        "a wrong passphrase rewrote the file"
    );
    assert!(store(&p, "right").get("dev").unwrap().is_some());
}

#[test]
fn a_truncated_file_is_refused_and_kept() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("keys.enc");
    store(&p, "pw")
        .put("dev", &keys("AKIA1"), datetime!(2026-01-01 0:00 UTC))
        .unwrap();
    let whole = std::fs::read(&p).unwrap();
    for cut in [whole.len() / 2, whole.len() - 3] {
        std::fs::write(&p, &whole[..cut]).unwrap();
        let s = store(&p, "pw");
        let e = s.get("dev").unwrap_err();
        assert!(matches!(e, KeyError::Corrupt { .. }), "{e:?}");
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = s
            .put("x", &keys("AKIA2"), datetime!(2026-01-01 0:00 UTC))
            .unwrap_err();
        assert!(matches!(e, KeyError::Corrupt { .. }), "{e:?}");
        assert_eq!(
            std::fs::read(&p).unwrap(),
            &whole[..cut],
            "the damaged file was overwritten"
        );
    }
    // An altered ciphertext (same length) fails authentication.
    let mut altered = String::from_utf8(whole).unwrap();
    let at = altered.find("\"ciphertext\": \"").unwrap() + 16;
    let c = if &altered[at..at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    altered.replace_range(at..at + 1, c);
    std::fs::write(&p, &altered).unwrap();
    assert!(matches!(
        store(&p, "pw").get("dev").unwrap_err(),
        KeyError::WrongPassphrase { .. }
    ));
}

#[test]
fn concurrent_writers_lose_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("keys.enc");
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let p = p.clone();
            std::thread::spawn(move || {
                store(&p, "pw")
                    .put(
                        &format!("k{i}"),
                        &keys(&format!("AKIA{i}")),
                        datetime!(2026-01-01 0:00 UTC),
                    )
                    .unwrap()
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let names: Vec<_> = store(&p, "pw")
        .list()
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["k0", "k1", "k2", "k3", "k4", "k5"]);
}

#[test]
fn a_held_lock_is_a_clear_busy_error() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("keys.enc");
    let lock = std::fs::File::create(d.path().join("keys.enc.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let s = store(&p, "pw").with_lock_timeout(std::time::Duration::from_millis(200));
    let e = s
        .put("dev", &keys("AKIA1"), datetime!(2026-01-01 0:00 UTC))
        .unwrap_err();
    assert!(matches!(e, KeyError::Busy { .. }), "{e:?}");
    assert!(!p.exists());
}

#[test]
fn a_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("open");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = store(&dir.join("keys.enc"), "pw")
        .put("dev", &keys("AKIA1"), datetime!(2026-01-01 0:00 UTC))
        .unwrap_err();
    assert!(matches!(e, KeyError::Unsafe { .. }), "{e:?}");
}
