//! The Secret Service backend against a real `gnome-keyring-daemon` in a
//! private D-Bus session (a `dbus-daemon` of its own and a throwaway
//! `$HOME`): round trip, listing without secrets, removal, then the
//! collection locked (over D-Bus, as the screen locker does) gives a clear
//! error within the timeout instead of a hang. Needs the Debian packages
//! `dbus` and `gnome-keyring` (`cargo xtask system-packages`).

use crate::keychain::Keychain;
use crate::{Backend, KeyError, KeyStore};
use credd_core::{LongTermKeys, SecretString};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use time::macros::datetime;

/// A private session bus and an unlocked keyring; both killed on drop.
struct Session {
    bus: Child,
    keyring: Child,
    address: String,
    _home: tempfile::TempDir,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.keyring.kill();
        let _ = self.keyring.wait();
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

fn start() -> Session {
    let home = tempfile::tempdir().unwrap();
    let mut bus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("dbus-daemon (Debian package dbus) is needed: cargo xtask system-packages");
    let mut address = String::new();
    BufReader::new(bus.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    let address = address.trim().to_string();
    let mut keyring = Command::new("gnome-keyring-daemon")
        .args(["--unlock", "--foreground", "--components=secrets"])
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_RUNTIME_DIR", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gnome-keyring-daemon (Debian package gnome-keyring) is needed");
    // The login keyring's password, on stdin as --unlock reads it.
    let mut stdin = keyring.stdin.take().unwrap();
    stdin.write_all(b"test-password").unwrap();
    drop(stdin);
    Session {
        bus,
        keyring,
        address,
        _home: home,
    }
}

/// Whether our keyring owns the Secret Service name, asked of the bus
/// itself: a call to the name before that would make the bus start another
/// (locked) keyring by D-Bus activation.
fn owned(address: &str) -> bool {
    Command::new("dbus-send")
        .args([
            "--session",
            "--dest=org.freedesktop.DBus",
            "--print-reply",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            "string:org.freedesktop.secrets",
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", address)
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
}

fn default_is_login(address: &str) -> bool {
    Command::new("dbus-send")
        .args([
            "--session",
            "--dest=org.freedesktop.secrets",
            "--print-reply",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.ReadAlias",
            "string:default",
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", address)
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("collection/login"))
}

fn lock_all(address: &str) {
    let ok = Command::new("dbus-send")
        .args([
            "--session",
            "--dest=org.freedesktop.secrets",
            "--print-reply",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.Lock",
            "array:objpath:/org/freedesktop/secrets/collection/login",
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", address)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "locking the login collection failed");
}

#[test]
fn keychain_against_gnome_keyring() {
    let session = start();
    // keyring reads the bus address from the environment; this is the only
    // test in the crate that talks to D-Bus.
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &session.address);
    let kc = Keychain::new("credd-test", Duration::from_secs(5));
    // The keyring daemon takes a moment to claim its bus name and make the
    // login keyring the default (before that, a write would try to create
    // a collection, which needs a prompt).
    let start = Instant::now();
    while !owned(&session.address) || !kc.answers() || !default_is_login(&session.address) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "gnome-keyring never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let keys = LongTermKeys {
        access_key_id: "AKIAKEYCHAINTEST0001".into(),
        secret_access_key: SecretString::new("keychain-secret-canary"),
    };
    assert!(kc.get("dev").unwrap().is_none());
    kc.put("dev", &keys, datetime!(2026-03-04 05:06:07 UTC))
        .unwrap();
    let got = kc.get("dev").unwrap().unwrap();
    assert_eq!(got.keys, keys);
    assert_eq!(got.meta.added, datetime!(2026-03-04 05:06:07 UTC));
    assert_eq!(got.meta.backend, Backend::Keychain);
    let listed = kc.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].access_key_id, "AKIAKEYCHAINTEST0001");
    assert!(kc.delete("dev").unwrap());
    assert!(kc.get("dev").unwrap().is_none());
    assert!(kc.list().unwrap().is_empty());

    // Concurrent adds, each through its own store (as separate `credd keys
    // add` processes are) sharing the index lock: every name is listed.
    let state = tempfile::tempdir().unwrap();
    let lock_file = state.path().join("state").join("keychain-index.lock");
    let names: Vec<String> = (0..8).map(|i| format!("many-{i}")).collect();
    std::thread::scope(|scope| {
        for name in &names {
            let (keys, lock_file) = (keys.clone(), lock_file.clone());
            scope.spawn(move || {
                Keychain::new("credd-test", Duration::from_secs(5))
                    .with_index_lock(lock_file)
                    .put(name, &keys, datetime!(2026-03-04 05:06:07 UTC))
                    .unwrap();
            });
        }
    });
    let listed: Vec<String> = kc.list().unwrap().into_iter().map(|k| k.name).collect();
    assert_eq!(listed, names, "an add lost another's index entry");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&lock_file), 0o600);
    assert_eq!(mode(lock_file.parent().unwrap()), 0o700);
    for name in &names {
        assert!(kc.delete(name).unwrap());
    }

    kc.put("dev", &keys, datetime!(2026-03-04 05:06:07 UTC))
        .unwrap();
    lock_all(&session.address);
    let t = Instant::now();
    let e = kc.get("dev").unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "waited {:?}",
        t.elapsed()
    );
    assert!(
        matches!(e, KeyError::Locked { .. } | KeyError::Timeout { .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("unlock"), "{text}");
    assert!(!text.contains("keychain-secret-canary"));
}
