//! Opens the user's key store (`[keys]` in credd.toml: the OS keychain or
//! the encrypted file, issue 15) for `credd keys` and for `credd serve`,
//! and adapts it to credd-core's `KeySource` seam, through which the
//! daemon's profile loader reads keys without depending on credd-keys.
//!
//! The encrypted file's passphrase comes from `CREDD_KEYS_PASSPHRASE` (the
//! daemon, scripts) or, for a command on a terminal, a prompt without echo.
//!
//! Layering: a leaf; it imports `environment` only.

use crate::environment::{env_var, state_dir};
use anyhow::{bail, Context, Result};
use credd_core::keys::{KeySource, KeySourceError};
use credd_core::loader::{BoxFuture, LoadedPlans, ProfileLoader};
use credd_core::{LongTermKeys, SecretString};
use credd_daemon::config::{self, FileConfig, KeysFile};
use credd_daemon::key_reminders::{KeyAge, KeyAges, RemindersConfig};
use credd_daemon::Notifier;
use credd_keys::file::EncryptedFile;
use credd_keys::keychain::Keychain;
use credd_keys::{KeyError, KeyStore};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `[keys]` settings from the settings file (`config` or the default
/// location).
pub fn settings(config: Option<&Path>) -> Result<KeysFile> {
    let (path, default_location) = match config {
        Some(p) => (p.to_path_buf(), false),
        None => config::config_path(&env_var),
    };
    let file = FileConfig::load(&path, default_location)
        .context("failed to read the settings file (see docs/configuration.md)")?;
    Ok(file.keys)
}

fn timeout(k: &KeysFile) -> Result<Duration> {
    credd_core::duration::parse(&k.timeout)
        .map_err(|e| anyhow::anyhow!("keys.timeout in credd.toml: {e}"))
}

/// The age past which a key is flagged (`keys.max_age`).
pub fn max_age(k: &KeysFile) -> Result<time::Duration> {
    let d = credd_core::duration::parse(&k.max_age)
        .map_err(|e| anyhow::anyhow!("keys.max_age in credd.toml: {e}"))?;
    Ok(time::Duration::seconds(d.as_secs() as i64))
}

fn file_path(k: &KeysFile) -> PathBuf {
    if k.file.is_empty() {
        state_dir().join("keys.enc")
    } else {
        PathBuf::from(&k.file)
    }
}

/// The passphrase of the key file: `CREDD_KEYS_PASSPHRASE`, else a prompt
/// without echo when `prompt` (a command on a terminal).
fn passphrase(path: &Path, prompt: bool) -> Result<SecretString> {
    if let Some(p) = env_var("CREDD_KEYS_PASSPHRASE").filter(|p| !p.is_empty()) {
        return Ok(SecretString::new(p));
    }
    if !prompt || !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!(
            "the key file {} needs its passphrase: set CREDD_KEYS_PASSPHRASE, or run the command on a terminal",
            path.display()
        );
    }
    let p = rpassword::prompt_password(format!("Passphrase for {}: ", path.display()))
        .context("failed to read the passphrase")?;
    if p.is_empty() {
        bail!("an empty passphrase is not accepted");
    }
    Ok(SecretString::new(p))
}

/// Opens the store `[keys] backend` names; `auto` is the keychain when one
/// answers here, else the file. `prompt`: may ask for the file's passphrase.
pub fn open(k: &KeysFile, prompt: bool) -> Result<Box<dyn KeyStore>> {
    let keychain = || {
        Keychain::new("credd", timeout(k).unwrap_or(Duration::from_secs(10)))
            .with_index_lock(state_dir().join("keychain-index.lock"))
    };
    let file = |prompt| -> Result<Box<dyn KeyStore>> {
        let path = file_path(k);
        let pass = passphrase(&path, prompt)?;
        Ok(Box::new(EncryptedFile::new(path, pass)))
    };
    timeout(k)?;
    match k.backend.as_str() {
        "keychain" => Ok(Box::new(keychain())),
        "file" => file(prompt),
        "auto" => {
            let kc = keychain();
            if kc.answers() {
                Ok(Box::new(kc))
            } else {
                file(prompt)
            }
        }
        other => bail!(
            "keys.backend = \"{other}\" in credd.toml is not one of \"auto\", \"keychain\", \"file\""
        ),
    }
}

/// The daemon's view of the store: opened on first use (only a profile
/// that names credd's own credential_process asks), then kept; a failed
/// open is tried again at the next load.
/// A locked keychain is also said once on the desktop (the same
/// notification path as an ended SSO session), again only after the store
/// answered in between.
#[derive(Debug)]
pub struct DaemonKeys {
    settings: KeysFile,
    store: Mutex<Option<Arc<dyn KeyStore>>>,
    notifier: Arc<dyn Notifier>,
    notified: AtomicBool,
    /// Whether a profile's keys were asked for (a profile names credd's
    /// own credential_process): see [`KeyAges::ages`].
    asked: AtomicBool,
}

impl DaemonKeys {
    pub fn new(settings: KeysFile, notifier: Arc<dyn Notifier>) -> Self {
        Self {
            settings,
            store: Mutex::new(None),
            notifier,
            notified: AtomicBool::new(false),
            asked: AtomicBool::new(false),
        }
    }

    fn store(&self) -> Result<Arc<dyn KeyStore>, KeySourceError> {
        let mut held = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = held.as_ref() {
            return Ok(s.clone());
        }
        let opened: Arc<dyn KeyStore> =
            Arc::from(open(&self.settings, false).map_err(|e| KeySourceError(format!("{e:#}")))?);
        *held = Some(opened.clone());
        Ok(opened)
    }
}

impl KeySource for DaemonKeys {
    fn keys(&self, name: &str) -> Result<Option<LongTermKeys>, KeySourceError> {
        self.asked.store(true, Ordering::Relaxed);
        match self.store()?.get(name) {
            Ok(found) => {
                self.notified.store(false, Ordering::Relaxed);
                Ok(found.map(|s| s.keys))
            }
            Err(e) => {
                let message = daemon_message(&e);
                let locked = matches!(e, KeyError::Locked { .. } | KeyError::Timeout { .. });
                if locked && !self.notified.swap(true, Ordering::Relaxed) {
                    self.notifier.notify(
                        "credd: the keychain is locked",
                        &format!("profile '{name}' cannot be served: {message}"),
                    );
                }
                Err(KeySourceError(message))
            }
        }
    }
}

impl KeyAges for DaemonKeys {
    /// The stored keys' dates (the index: no secret is read). With
    /// `backend = "auto"` and no profile using a stored key, the store is
    /// not touched: reading it could start a keyring by D-Bus activation or
    /// raise an unlock prompt for a user who never ran `credd keys`.
    fn ages(&self) -> Result<Vec<KeyAge>, String> {
        if self.settings.backend == "auto" && !self.asked.load(Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        let store = self.store().map_err(|e| e.0)?;
        let keys = store.list().map_err(|e| e.to_string())?;
        Ok(keys
            .into_iter()
            .map(|k| KeyAge {
                name: k.name,
                since: k.added,
            })
            .collect())
    }
}

/// The reminder task's settings: `keys.max_age`, and its state file in
/// the daemon's state directory.
pub fn reminders(k: &KeysFile, state_dir: &Path) -> Result<RemindersConfig> {
    Ok(RemindersConfig {
        max_age: max_age(k)?,
        max_age_text: k.max_age.clone(),
        state_file: state_dir.join("key-reminders.json"),
    })
}

/// The daemon's profile loader, telling `changed` after every load: each
/// `credd keys` command asks the daemon to reload, so the reminder task
/// looks at the keys again after any change to them.
pub struct Reloads<L> {
    inner: L,
    changed: Arc<tokio::sync::Notify>,
}

impl<L> Reloads<L> {
    pub fn new(inner: L, changed: Arc<tokio::sync::Notify>) -> Self {
        Self { inner, changed }
    }
}

impl<L: ProfileLoader> ProfileLoader for Reloads<L> {
    fn load(&self) -> BoxFuture<'_, Result<LoadedPlans, String>> {
        Box::pin(async move {
            let loaded = self.inner.load().await;
            self.changed.notify_one();
            loaded
        })
    }
    fn watched_files(&self) -> Vec<PathBuf> {
        self.inner.watched_files()
    }
    fn settings(
        &self,
        profile: &str,
    ) -> BoxFuture<'_, Result<Option<credd_core::overlay::ProfileSettings>, String>> {
        self.inner.settings(profile)
    }
    fn findings(&self) -> BoxFuture<'_, Result<credd_core::overlay::Findings, String>> {
        self.inner.findings()
    }
}

/// A store error as the daemon reports it for a profile: what to do, and
/// how to make the daemon read the store again afterwards.
fn daemon_message(e: &KeyError) -> String {
    match e {
        KeyError::Locked { .. } | KeyError::Timeout { .. } => {
            format!("{e}; the daemon reads the keys again at the next request after that (at most once every 10 s), or at once on `credd keys list`")
        }
        _ => e.to_string(),
    }
}

/// `credd status`'s lines about key ages: each stored key within four
/// weeks of `keys.max_age` or past it. Best effort and never a prompt: no
/// lines when the store cannot be read without asking (a file without
/// CREDD_KEYS_PASSPHRASE, a locked keychain: then one line saying so).
pub fn age_notes(now: time::OffsetDateTime) -> Vec<String> {
    let Ok(settings) = settings(None) else {
        return Vec::new();
    };
    let Ok(max_age) = max_age(&settings) else {
        return Vec::new();
    };
    if settings.backend == "auto" && !keychain_or_passphrase(&settings) {
        return Vec::new();
    }
    let keys = match open(&settings, false).and_then(|s| Ok(s.list()?)) {
        Ok(k) => k,
        Err(e) => return vec![format!("keys: {e:#}")],
    };
    keys.iter()
        .filter_map(|k| {
            let age = now - k.added;
            credd_core::keys::reminder_every(age, max_age)?;
            let (_, body) =
                credd_core::keys::reminder_message(&k.name, age, max_age, &settings.max_age);
            Some(format!(
                "{} ({})",
                body,
                credd_keys::mask_key_id(&k.access_key_id)
            ))
        })
        .collect()
}

/// With `backend = "auto"`: whether the store can be read without a
/// prompt (a keychain answers, or the file's passphrase is set).
fn keychain_or_passphrase(k: &KeysFile) -> bool {
    Keychain::new("credd", timeout(k).unwrap_or(Duration::from_secs(10))).answers()
        || env_var("CREDD_KEYS_PASSPHRASE").is_some_and(|p| !p.is_empty())
}
