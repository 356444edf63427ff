//! End to end, issue 15: long-term keys in a real Secret Service. A private
//! D-Bus session bus and `gnome-keyring-daemon --unlock` (Debian's `dbus`
//! and `gnome-keyring`, installed by `cargo xtask system-packages`) stand
//! for the desktop's keyring; moto is STS. `credd keys import dev` moves
//! the keys out of `~/.aws/credentials` (checked byte for byte), the real
//! `credd serve` reads them from the keyring, `credd exec dev -- aws sts
//! get-caller-identity` and the AWS CLI on its own (through the
//! `credential_process` line import added) still answer, and a locked
//! keyring gives the clear error for that profile while others keep working.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

const SECRET: &str = "keychainCANARYwJalrXUtnFEMIK7MDENGbPxRf";
const KEY_ID: &str = "AKIAKEYCHAINDEV00001";

/// A private session bus with an unlocked login keyring; killed on drop.
struct Keyring {
    bus: Child,
    daemon: Child,
    address: String,
}

impl Drop for Keyring {
    fn drop(&mut self) {
        for c in [&mut self.daemon, &mut self.bus] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Keyring {
    fn start(home: &std::path::Path) -> Self {
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (Debian package dbus): run `cargo xtask system-packages`");
        let mut address = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let address = address.trim().to_string();
        let daemon = Self::spawn_keyring(home, &address);
        let k = Keyring {
            bus,
            daemon,
            address,
        };
        k.wait_ready(home);
        k
    }

    /// `gnome-keyring-daemon --unlock` with the login password on stdin,
    /// as a desktop session starts it at login.
    fn spawn_keyring(home: &std::path::Path, address: &str) -> Child {
        let mut daemon = Command::new("gnome-keyring-daemon")
            .args(["--unlock", "--foreground", "--components=secrets"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DBUS_SESSION_BUS_ADDRESS", address)
            .env("HOME", home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_RUNTIME_DIR", home)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(home.join("gnome-keyring.log")).unwrap())
            .spawn()
            .expect("gnome-keyring-daemon (Debian package gnome-keyring): run `cargo xtask system-packages`");
        let mut stdin = daemon.stdin.take().unwrap();
        stdin.write_all(b"login-password").unwrap();
        drop(stdin);
        daemon
    }

    /// Unlocks the login keyring with its password, as logging back in
    /// does: the Secret Service's own Unlock needs a prompt (a display) this
    /// machine lacks, so the keyring daemon is started again with
    /// `--unlock`, on the same bus and the same keyring file.
    fn unlock(&mut self, home: &std::path::Path) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        self.daemon = Self::spawn_keyring(home, &self.address);
        self.wait_ready(home);
        assert!(
            self.dbus_out(&[
                "/org/freedesktop/secrets/collection/login",
                "org.freedesktop.DBus.Properties.Get",
                "string:org.freedesktop.Secret.Collection",
                "string:Locked",
            ])
            .contains("boolean false"),
            "the login keyring is still locked"
        );
    }

    fn wait_ready(&self, home: &std::path::Path) {
        let k = self;
        // Ready once the login keyring exists (what --unlock makes); then
        // make sure it is the default collection (an early ReadAlias can
        // leave the alias unset, and a client would then try to create a
        // collection, which needs a prompt nobody can answer).
        let start = Instant::now();
        let alias = |name: &str| {
            k.dbus_out(&[
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.ReadAlias",
                &format!("string:{name}"),
            ])
        };
        // Asked first without touching the name itself: a call to
        // org.freedesktop.secrets before our daemon owns it would make the
        // bus start another, locked keyring by D-Bus activation.
        let owned = || {
            Command::new("dbus-send")
                .args([
                    "--session",
                    "--dest=org.freedesktop.DBus",
                    "--print-reply",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .env("DBUS_SESSION_BUS_ADDRESS", &k.address)
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
        };
        while !owned() || !alias("login").contains("collection/login") {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "gnome-keyring never answered; its log:\n{}",
                std::fs::read_to_string(home.join("gnome-keyring.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        if !alias("default").contains("collection/login") {
            assert!(k.dbus(&[
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.SetAlias",
                "string:default",
                "objpath:/org/freedesktop/secrets/collection/login",
            ]));
        }
    }

    fn dbus_out(&self, args: &[&str]) -> String {
        Command::new("dbus-send")
            .args([
                "--session",
                "--dest=org.freedesktop.secrets",
                "--print-reply",
            ])
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn dbus(&self, args: &[&str]) -> bool {
        Command::new("dbus-send")
            .args([
                "--session",
                "--dest=org.freedesktop.secrets",
                "--print-reply",
            ])
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Locks the login collection, as a screen locker does.
    fn lock(&self) {
        assert!(self.dbus(&[
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.Lock",
            "array:objpath:/org/freedesktop/secrets/collection/login",
        ]));
    }
}

const CONFIG: &str = "\
# the user's config
[profile dev]
region = us-east-1

[profile admin]
role_arn = arn:aws:iam::123456789012:role/admin
source_profile = dev
region = us-east-1

[profile filekeys]
region = us-east-1
";

const CREDENTIALS: &str = "\
# keys; keep this comment
[dev]
aws_access_key_id = AKIAKEYCHAINDEV00001
aws_secret_access_key=keychainCANARYwJalrXUtnFEMIK7MDENGbPxRf
\t
; another comment

[filekeys]
aws_access_key_id = AKIAFILEKEYS00000001
aws_secret_access_key = fileSECRETwJalrXUtnFEMIK7MDENGbPxRfiCY
";

fn ran(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        stdout_of(o),
        stderr_of(o)
    )
}

fn aws_via_exec(env: &Env, profile: &str) -> Output {
    env.cmd(credd_bin())
        .args(["exec", profile, "--"])
        .arg(aws_cli())
        .args([
            "sts",
            "get-caller-identity",
            "--query",
            "Arn",
            "--output",
            "text",
        ])
        .output()
        .unwrap()
}

/// `env` as a user whose keys live in `keyring`: its D-Bus session, the
/// keychain backend in `credd.toml`, and `credd` on PATH as for a user who
/// installed it (the AWS CLI runs the credential_process line import writes).
fn on_the_keyring(mut env: Env, keyring: &Keyring) -> Env {
    env.vars
        .push(("DBUS_SESSION_BUS_ADDRESS".into(), keyring.address.clone()));
    let bin_dir = credd_bin().parent().unwrap().to_path_buf();
    env.vars.push((
        "PATH".into(),
        format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    ));
    std::fs::write(
        env.path("credd.toml"),
        "[keys]\nbackend = \"keychain\"\ntimeout = \"5s\"\n",
    )
    .unwrap();
    env
}

#[test]
fn keys_imported_into_gnome_keyring_serve_every_tool_and_a_locked_keyring_is_a_clear_error() {
    let env = Env::with_config(CONFIG);
    let mut keyring = Keyring::start(&env.home());
    let env = on_the_keyring(env, &keyring);
    let creds_path = env.home().join(".aws/credentials");
    std::fs::write(&creds_path, CREDENTIALS).unwrap();

    // Import: the file keeps every byte but the two key lines.
    let out = env.credd_ok(&["keys", "import", "dev"]);
    assert!(
        out.contains("credential_process = credd credential-process dev"),
        "{out}"
    );
    assert!(out.contains("keep working"), "{out}");
    let after = std::fs::read_to_string(&creds_path).unwrap();
    let expected = CREDENTIALS
        .replace("aws_access_key_id = AKIAKEYCHAINDEV00001\n", "")
        .replace(&format!("aws_secret_access_key={SECRET}\n"), "");
    assert_eq!(after, expected);
    assert!(!after.contains(SECRET) && !after.contains(KEY_ID));
    let config = std::fs::read_to_string(env.home().join(".aws/config")).unwrap();
    assert_eq!(
        config,
        CONFIG.replace(
            "[profile dev]\nregion = us-east-1\n",
            "[profile dev]\nregion = us-east-1\ncredential_process = credd credential-process dev\n"
        )
    );
    let leftovers: Vec<_> = std::fs::read_dir(env.home().join(".aws"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("backup") || n.contains("tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "backup or temporary left: {leftovers:?}"
    );

    // Listed masked, never the secret.
    let list = env.credd_ok(&["keys", "list"]);
    assert!(
        list.contains("dev") && list.contains("AKIA************0001"),
        "{list}"
    );
    assert!(list.contains("keychain"), "{list}");
    assert!(!list.contains(SECRET) && !list.contains(KEY_ID), "{list}");

    // The daemon reads the keys from the keyring: GetSessionToken, and a
    // role chained on the profile.
    let d = env.serve(&[]);
    let before = env.moto.count("GetSessionToken");
    let o = aws_via_exec(&env, "dev");
    assert!(
        o.status.success() && stdout_of(&o).contains("arn:aws:"),
        "{}",
        ran(&o)
    );
    assert!(
        env.moto.count("GetSessionToken") > before,
        "not served through GetSessionToken"
    );
    let o = aws_via_exec(&env, "admin");
    assert!(
        o.status.success() && stdout_of(&o).contains("assumed-role/admin"),
        "{}",
        ran(&o)
    );
    // The AWS CLI on its own, through the credential_process line.
    let o = env
        .cmd(aws_cli())
        .args([
            "sts",
            "get-caller-identity",
            "--profile",
            "dev",
            "--query",
            "Arn",
            "--output",
            "text",
        ])
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(
        o.status.success() && stdout_of(&o).contains("arn:aws:"),
        "{}",
        ran(&o)
    );

    // Age reminders: with keys.max_age of a second, the key is past it.
    std::fs::write(
        env.path("credd.toml"),
        "[keys]\nbackend = \"keychain\"\ntimeout = \"5s\"\nmax_age = \"1s\"\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let status = env.credd_ok(&["status"]);
    assert!(
        status.contains("the key 'dev' is")
            && status.contains("past keys.max_age")
            && status.contains("`credd keys rotate dev` (AKIA************0001)"),
        "{status}"
    );
    let list = env.credd_ok(&["keys", "list"]);
    assert!(list.contains("rotate it"), "{list}");

    // Locked: `keys list` says so (and makes the daemon read the store
    // again); the profile gets the clear error, within the timeout, and a
    // profile with keys in the file keeps working.
    keyring.lock();
    let t = Instant::now();
    let o = env.credd(&["keys", "list"]);
    assert!(!o.status.success(), "{}", ran(&o));
    assert!(
        stderr_of(&o).contains("locked") || stderr_of(&o).contains("did not answer"),
        "{}",
        ran(&o)
    );
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    let o = env.credd(&["credential-process", "dev"]);
    assert!(!o.status.success(), "{}", ran(&o));
    let err = stderr_of(&o);
    assert!(
        err.contains("key store") && err.contains("unlock"),
        "{}",
        ran(&o)
    );
    let o = aws_via_exec(&env, "filekeys");
    assert!(
        o.status.success() && stdout_of(&o).contains("arn:aws:"),
        "{}",
        ran(&o)
    );

    // Unlocked again (the user logs back in): with no `credd keys` command
    // and no change to the AWS files, a request for the profile has the
    // daemon read the store again in the background (at most every 10 s;
    // the request itself gets its fast error), and the next one is served.
    keyring.unlock(&env.home());
    let t = Instant::now();
    loop {
        let o = env.credd(&["credential-process", "dev"]);
        if o.status.success() {
            assert!(stdout_of(&o).contains("\"SessionToken\""), "{}", ran(&o));
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "still failing 40 s after the unlock: {}",
            ran(&o)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        d.logs().contains("reading the profiles again"),
        "the retry is not in the daemon's log"
    );

    // No secret in the daemon's log.
    let logs = d.logs();
    assert!(!logs.contains(SECRET), "the secret is in the daemon's log");
}

/// The AWS CLI against moto's IAM, as an administrator would call it.
fn iam(env: &Env, args: &[&str]) -> serde_json::Value {
    let o = env
        .cmd(aws_cli())
        .arg("iam")
        .args(args)
        .args(["--output", "json"])
        .env("AWS_ENDPOINT_URL", &env.moto.url)
        .env("AWS_ACCESS_KEY_ID", "AKIAADMIN00000000000")
        .env("AWS_SECRET_ACCESS_KEY", "admin")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(o.status.success(), "aws iam {args:?}: {}", ran(&o));
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

fn iam_key_ids(env: &Env) -> Vec<String> {
    let v = iam(env, &["list-access-keys", "--user-name", "dev"]);
    v["AccessKeyMetadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["AccessKeyId"].as_str().unwrap().to_string())
        .collect()
}

fn mask(id: &str) -> String {
    format!(
        "{}{}{}",
        &id[..4],
        "*".repeat(id.len() - 8),
        &id[id.len() - 4..]
    )
}

#[test]
fn rotate_against_motos_iam_keeps_a_working_key_when_a_step_after_create_access_key_fails() {
    let mut env = Env::with_config(
        "[profile dev]\nregion = us-east-1\ncredential_process = credd credential-process dev\n",
    );
    // The encrypted file this time (no keychain needed), with the
    // passphrase the daemon and scripts use.
    std::fs::write(env.path("credd.toml"), "[keys]\nbackend = \"file\"\n").unwrap();
    env.vars
        .push(("CREDD_KEYS_PASSPHRASE".into(), "correct horse".into()));
    env.vars
        .push(("AWS_ENDPOINT_URL_IAM".into(), env.moto.url.clone()));
    iam(&env, &["create-user", "--user-name", "dev"]);
    let created = iam(&env, &["create-access-key", "--user-name", "dev"]);
    let old_id = created["AccessKey"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let old_secret = created["AccessKey"]["SecretAccessKey"]
        .as_str()
        .unwrap()
        .to_string();
    let o = env
        .cmd(credd_bin())
        .args(["keys", "add", "dev", "--env"])
        .env("AWS_ACCESS_KEY_ID", &old_id)
        .env("AWS_SECRET_ACCESS_KEY", &old_secret)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", ran(&o));
    assert!(!std::fs::read_to_string(env.path("state/keys.enc"))
        .unwrap()
        .contains(&old_secret));

    // A failure after CreateAccessKey: STS (the new key's check) is down.
    let o = env
        .cmd(credd_bin())
        .args(["keys", "rotate", "dev"])
        .env("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", ran(&o));
    let err = stderr_of(&o);
    assert!(
        err.contains("did not work") && err.contains("deleted again"),
        "{}",
        ran(&o)
    );
    assert!(
        err.contains(&mask(&old_id)) && err.contains("still stored"),
        "{}",
        ran(&o)
    );
    assert!(!err.contains(&old_secret));
    assert_eq!(
        iam_key_ids(&env),
        std::slice::from_ref(&old_id),
        "the new key was left in IAM"
    );
    let list = env.credd_ok(&["keys", "list"]);
    assert!(list.contains(&mask(&old_id)), "{list}");

    // The real thing: one key in IAM afterwards, the new one, stored.
    let out = env.credd_ok(&["keys", "rotate", "dev"]);
    assert!(out.contains("rotated 'dev'"), "{out}");
    let ids = iam_key_ids(&env);
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_ne!(ids[0], old_id);
    let list = env.credd_ok(&["keys", "list"]);
    assert!(
        list.contains(&mask(&ids[0])) && list.contains("file"),
        "{list}"
    );

    // The daemon serves the profile from the file (moto does not check
    // which key signed GetSessionToken, so this shows the file backend in
    // the daemon, not which key it used; the store holds only the new one).
    let _d = env.serve(&[]);
    let o = aws_via_exec(&env, "dev");
    assert!(
        o.status.success() && stdout_of(&o).contains("arn:aws:sts::"),
        "{}",
        ran(&o)
    );
}

#[test]
fn a_key_past_max_age_is_reminded_on_the_desktop_once_and_a_restart_does_not_repeat_it() {
    use std::os::unix::fs::PermissionsExt;
    let mut env = Env::with_config(CONFIG);
    env.vars.push((
        "CREDD_KEYS_PASSPHRASE".into(),
        "reminder-test-passphrase".into(),
    ));
    // The encrypted file, and a key past a one-second keys.max_age as soon
    // as it is stored: the cadence is then daily.
    std::fs::write(
        env.path("credd.toml"),
        "[keys]\nbackend = \"file\"\nmax_age = \"1s\"\n",
    )
    .unwrap();
    let o = env
        .cmd(credd_bin())
        .args(["keys", "add", "dev", "--env"])
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", ran(&o));
    std::thread::sleep(Duration::from_millis(1100));
    let (path, record) = env.fake_notify_send();
    let vars = [("PATH", path.as_str()), ("DISPLAY", ":99")];
    let reminders = || {
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .matches("credd keys rotate dev")
            .count()
    };

    let d = Daemon::start_with_env(&env, &[], false, &vars);
    let t = Instant::now();
    while reminders() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no reminder on the desktop; the daemon's log:\n{}",
            d.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(text.contains("credd: rotate the key 'dev'"), "{text}");
    assert!(text.contains("past keys.max_age (1s)"), "{text}");
    assert!(!text.contains(SECRET) && !text.contains(KEY_ID), "{text}");
    // Once: a reload (what every `credd keys` command asks for) looks
    // again, and says nothing new.
    env.credd_ok(&["keys", "list"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        reminders(),
        1,
        "{}",
        std::fs::read_to_string(&record).unwrap()
    );
    d.stop();

    // The state: names and dates, 0600 in the 0700 state directory.
    let state = env.path("state").join("key-reminders.json");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o600);
    assert_eq!(mode(&env.path("state")), 0o700);
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(
        saved.contains("\"dev\"") && !saved.contains(SECRET) && !saved.contains(KEY_ID),
        "{saved}"
    );

    // A restart within the day: not again.
    let d = Daemon::start_with_env(&env, &[], false, &vars);
    env.credd_ok(&["keys", "list"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(reminders(), 1, "a restart repeated the reminder");
    assert!(
        !d.logs().contains(SECRET),
        "the secret is in the daemon's log"
    );
    d.stop();
}

const DEFAULT_SECRET: &str = "defaultCANARYwJalrXUtnFEMIK7MDENGbPxRfi";
const OPS_SECRET: &str = "opsCANARYwJalrXUtnFEMIK7MDENGbPxRfiCYab";

/// A laptop's files: keys in `[default]` and `[dev]`, `AWS_PROFILE=dev`
/// exported in the shell. `keys import --all` moves both; `[default]` in
/// the config gets credd's credential_process like any other profile, so
/// a tool run with no profile at all is served through credd too. Then
/// `keys import ops` while another tool (`aws configure set`) rewrites
/// `~/.aws/credentials` between credd's read and its rename: the other
/// tool's edit is kept and only the two key lines go.
#[test]
fn import_all_on_a_laptop_with_keys_in_default_and_aws_profile_exported_loses_nothing() {
    let env = Env::with_config("[default]\nregion = us-east-1\n\n[profile dev]\nregion = us-east-1\n\n[profile ops]\nregion = us-east-1\ncredential_process = credd credential-process ops\n");
    let keyring = Keyring::start(&env.home());
    let mut env = on_the_keyring(env, &keyring);
    env.vars.push(("AWS_PROFILE".into(), "dev".into()));
    let creds = env.home().join(".aws/credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = AKIADEFAULT000000001\naws_secret_access_key = {DEFAULT_SECRET}\n\n\
[dev]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
        ),
    )
    .unwrap();

    let out = env.credd_ok(&["keys", "import", "--all"]);
    assert!(out.contains("[default]") && out.contains("[dev]"), "{out}");
    let text = std::fs::read_to_string(&creds).unwrap();
    assert_eq!(text, "[default]\n\n[dev]\n");
    let config = std::fs::read_to_string(env.home().join(".aws/config")).unwrap();
    assert!(
        config.starts_with(
            "[default]\nregion = us-east-1\ncredential_process = credd credential-process default\n"
        ),
        "{config}"
    );
    assert!(
        config.contains("[profile dev]\nregion = us-east-1\ncredential_process = credd credential-process dev\n"),
        "{config}"
    );
    let list = env.credd_ok(&["keys", "list"]);
    assert!(list.contains("default") && list.contains("dev"), "{list}");

    // Another tool rewrites the credentials file while `keys import ops`
    // is between its read and its rename (the config already has the line,
    // so the credentials edit is the command's first write: the one the
    // test hook pauses).
    std::fs::write(
        &creds,
        format!("{text}\n[ops]\naws_access_key_id = AKIAOPS0000000000001\naws_secret_access_key = {OPS_SECRET}\n"),
    )
    .unwrap();
    let pause = env.path("pause");
    std::fs::create_dir(&pause).unwrap();
    let child = env
        .cmd(credd_bin())
        .args(["keys", "import", "ops"])
        .env("CREDD_TEST_PAUSE_WRITES", &pause)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let pid = loop {
        let paused = std::fs::read_dir(&pause)
            .unwrap()
            .flatten()
            .find_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok());
        if let Some(pid) = paused {
            break pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the import never paused"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let o = env
        .cmd(aws_cli())
        .args(["configure", "set", "aws_access_key_id", "AKIAOTHERTOOL"])
        .args(["--profile", "other"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", ran(&o));
    std::fs::remove_file(pause.join(pid.to_string())).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", ran(&o));
    let text = std::fs::read_to_string(&creds).unwrap();
    assert!(
        text.contains("[other]") && text.contains("AKIAOTHERTOOL"),
        "the other tool's edit is lost:\n{text}"
    );
    assert!(text.contains("[ops]"), "{text}");
    for secret in [SECRET, DEFAULT_SECRET, OPS_SECRET] {
        assert!(!text.contains(secret), "a secret is left:\n{text}");
    }

    // Served: the AWS CLI with the exported AWS_PROFILE (dev), with
    // `--profile default`, and with `--profile ops`, each through credd.
    let d = env.serve(&[]);
    for profile in [None, Some("default"), Some("ops")] {
        let mut c = env.cmd(aws_cli());
        c.args([
            "sts",
            "get-caller-identity",
            "--query",
            "Arn",
            "--output",
            "text",
        ]);
        if let Some(p) = profile {
            c.args(["--profile", p]);
        }
        let o = c.output().unwrap();
        assert!(
            o.status.success() && stdout_of(&o).contains("arn:aws:"),
            "{profile:?}: {}",
            ran(&o)
        );
    }
    let logs = d.logs();
    for secret in [SECRET, DEFAULT_SECRET, OPS_SECRET] {
        assert!(!logs.contains(secret), "a secret is in the daemon's log");
    }
}
