//! `credd keys add|import|list|remove|rotate` (issue 15): long-term IAM user keys
//! kept in the OS keychain (or the encrypted file) instead of
//! `~/.aws/credentials`. After each change the daemon is asked to re-read
//! its profiles, so a profile whose keys moved is served from the store at
//! once (and one that failed on a locked keychain is tried again).
//!
//! `import` is ordered so that no step can lose the keys: check both AWS
//! files, back the credentials file up, store the keys and read them back,
//! add credd's `credential_process` line to the config file, remove the two
//! key lines from the credentials file, and only then delete the backup.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::cli::KeysCommand;
use crate::keystore;
use crate::output::table;
use anyhow::{bail, Context, Result};
use credd_aws::profiles::ProfileEnv;
use credd_aws::userfile::{self, Options};
use credd_aws::{iam_rotate, key_import};
use credd_core::{LongTermKeys, SecretString};
use credd_keys::{mask_key_id, KeyStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub async fn run(cmd: KeysCommand) -> Result<()> {
    let settings = keystore::settings(None)?;
    let prompt = true;
    if let KeysCommand::Rotate { name } = cmd {
        let result = rotate(settings, name).await;
        let _ = crate::client::call::<credd_daemon::protocol::Pong>(
            credd_daemon::control::Request::Reload,
        )
        .await;
        return result;
    }
    // The store may block on D-Bus or a file lock (within its timeout):
    // off the async threads.
    let result = tokio::task::spawn_blocking(move || -> Result<bool> {
        let store = keystore::open(&settings, prompt)?;
        match cmd {
            KeysCommand::Add { name, env } => add(&*store, &name, env).map(|_| true),
            KeysCommand::Import { name, all } => import(&*store, name, all).map(|_| true),
            KeysCommand::List(j) => list(&*store, &settings, j.json).map(|_| false),
            KeysCommand::Remove { name } => remove(&*store, &name).map(|_| true),
            KeysCommand::Rotate { .. } => unreachable!("handled above"),
        }
    })
    .await
    .context("the key store task failed")?;
    // Best effort, and whatever the command's outcome (no daemon running is
    // fine): `list` reloads too, so that it is the way to make the daemon
    // read a keychain that was locked again (or see that it still is).
    let reloaded =
        crate::client::call::<credd_daemon::protocol::Pong>(credd_daemon::control::Request::Reload)
            .await;
    if result.as_ref().is_ok_and(|changed| *changed) && reloaded.is_ok() {
        eprintln!("credd: the running daemon re-read its profiles");
    }
    result.map(|_| ())
}

fn what(store: &dyn KeyStore) -> &'static str {
    match store.backend() {
        credd_keys::Backend::Keychain => "the OS keychain",
        credd_keys::Backend::File => "the encrypted key file",
    }
}

fn add(store: &dyn KeyStore, name: &str, from_env: bool) -> Result<()> {
    credd_keys::check_name(name)?;
    let keys = if from_env {
        let id = crate::environment::env_var("AWS_ACCESS_KEY_ID").unwrap_or_default();
        let secret = crate::environment::env_var("AWS_SECRET_ACCESS_KEY").unwrap_or_default();
        if id.is_empty() || secret.is_empty() {
            bail!("--env needs both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set");
        }
        if crate::environment::env_var("AWS_SESSION_TOKEN").is_some_and(|t| !t.is_empty()) {
            bail!("AWS_SESSION_TOKEN is set: those are temporary credentials, not long-term keys; unset it (or it is the wrong shell)");
        }
        LongTermKeys {
            access_key_id: id,
            secret_access_key: SecretString::new(secret),
        }
    } else {
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            bail!("`credd keys add` asks for the keys on a terminal; elsewhere use --env (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
        }
        let id = rpassword::prompt_password("Access key id: ")?;
        let secret = SecretString::new(rpassword::prompt_password("Secret access key: ")?);
        if id.trim().is_empty() || secret.is_empty() {
            bail!("both the access key id and the secret are needed");
        }
        LongTermKeys {
            access_key_id: id.trim().to_string(),
            secret_access_key: secret,
        }
    };
    store.put(name, &keys, crate::clock::now())?;
    println!(
        "stored the keys {} under '{name}' in {}",
        mask_key_id(&keys.access_key_id),
        what(store)
    );
    println!(
        "profile '{name}' uses them when [profile {name}] in ~/.aws/config has `credential_process = {}` \
(`credd keys import {name}` adds it when it moves keys out of ~/.aws/credentials)",
        key_import::own_process(name)
    );
    Ok(())
}

fn import(store: &dyn KeyStore, name: Option<String>, all: bool) -> Result<()> {
    let env = ProfileEnv::from_process_env();
    let creds = env.credentials_path();
    let text =
        std::fs::read(&creds).with_context(|| format!("failed to read {}", creds.display()))?;
    let names = match (name, all) {
        (Some(n), false) => vec![n],
        (None, true) => key_import::sections_with_keys(&text),
        _ => bail!("name one profile, or --all"),
    };
    if names.is_empty() {
        bail!("{} holds no long-term keys to import", creds.display());
    }
    for n in &names {
        import_one(store, &env, n)?;
    }
    println!(
        "the AWS CLI and SDKs keep working: each profile's credential_process asks credd, which \
serves GetSessionToken credentials made with the stored keys (never the keys themselves); \
`credd serve` must be running"
    );
    Ok(())
}

fn import_one(store: &dyn KeyStore, env: &ProfileEnv, name: &str) -> Result<()> {
    credd_keys::check_name(name)?;
    let (creds, config) = (env.credentials_path(), env.config_path());
    let text =
        std::fs::read(&creds).with_context(|| format!("failed to read {}", creds.display()))?;
    let (_, keys) = key_import::take_keys(&text, name)
        .with_context(|| format!("cannot import '{name}' from {}", creds.display()))?;
    let config_text = match std::fs::read(&config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", config.display())),
    };
    key_import::add_own_process(&config_text, name)
        .with_context(|| format!("cannot import '{name}' ({})", config.display()))?;

    let backup = backup_path(&creds);
    credd_core::atomic_file::write(&backup, ".credd-backup.tmp-", 0o600, &text)
        .with_context(|| format!("failed to back up {}", creds.display()))?;

    store.put(name, &keys, crate::clock::now())?;
    let back = store.get(name)?.map(|s| s.keys);
    if back.as_ref() != Some(&keys) {
        bail!(
            "{} did not give back the keys just stored for '{name}'; {} was not changed (backup: {})",
            what(store),
            creds.display(),
            backup.display()
        );
    }
    userfile::edit(&config, &Options::aws_file(), |cur| -> Result<_> {
        Ok(key_import::add_own_process(cur.unwrap_or_default(), name)?)
    })
    .with_context(|| {
        format!(
            "the keys of '{name}' are in {} but {} could not be changed; {} still holds them (backup: {})",
            what(store),
            config.display(),
            creds.display(),
            backup.display()
        )
    })?;
    userfile::edit(&creds, &Options::aws_file(), |cur| -> Result<_> {
        let cur = cur.unwrap_or_default();
        let (out, now) = key_import::take_keys(cur, name)?;
        if now != keys {
            bail!("the keys of [{name}] changed while they were imported: run `credd keys import {name}` again");
        }
        Ok(Some(out))
    })
    .with_context(|| {
        format!(
            "the keys of '{name}' are in {} but could not be removed from {} (backup: {})",
            what(store),
            creds.display(),
            backup.display()
        )
    })?;
    if let Err(e) = std::fs::remove_file(&backup) {
        eprintln!(
            "credd: warning: could not remove the backup {} ({e}): it holds the keys; delete it",
            backup.display()
        );
    }
    println!(
        "moved the keys {} of [{name}] from {} into {}; [profile {name}] in {} now has \
`credential_process = {}`",
        mask_key_id(&keys.access_key_id),
        creds.display(),
        what(store),
        config.display(),
        key_import::own_process(name)
    );
    Ok(())
}

/// Beside the credentials file (same file system, same directory mode),
/// named by the time so that an earlier backup is never overwritten.
fn backup_path(creds: &Path) -> PathBuf {
    let stamp = crate::clock::now().unix_timestamp_nanos();
    let dir = credd_core::atomic_file::parent_dir(creds);
    dir.join(format!(".credentials.credd-import-backup-{stamp}"))
}

fn list(store: &dyn KeyStore, settings: &credd_daemon::config::KeysFile, json: bool) -> Result<()> {
    let max_age = keystore::max_age(settings)?;
    let now = crate::clock::now();
    let keys = store.list()?;
    if json {
        let v: Vec<_> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "name": k.name,
                    "access_key_id": mask_key_id(&k.access_key_id),
                    "added": k.added.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                    "age_days": (now - k.added).whole_days(),
                    "backend": k.backend.name(),
                    "rotate": now - k.added > max_age,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if keys.is_empty() {
        println!(
            "no keys in {} (add some with `credd keys add NAME` or `credd keys import NAME`)",
            what(store)
        );
        return Ok(());
    }
    let mut t = table(&["NAME", "KEY ID", "AGE", "BACKEND", ""]);
    for k in &keys {
        let age = (now - k.added).whole_days();
        let note = if now - k.added > max_age {
            format!("older than {}: rotate it", settings.max_age)
        } else {
            String::new()
        };
        t.add_row(vec![
            k.name.clone(),
            mask_key_id(&k.access_key_id),
            format!("{age}d"),
            k.backend.name().to_string(),
            note,
        ]);
    }
    println!("{t}");
    Ok(())
}

fn remove(store: &dyn KeyStore, name: &str) -> Result<()> {
    if !store.delete(name)? {
        bail!(
            "no keys named '{name}' in {} (see `credd keys list`)",
            what(store)
        );
    }
    println!("removed the keys of '{name}' from {}", what(store));
    println!(
        "a profile whose credential_process is `{}` now fails until you add keys again \
(`credd keys add {name}`) or remove that line from ~/.aws/config",
        key_import::own_process(name)
    );
    Ok(())
}

/// Runs a store call off the async threads.
async fn blocking<T: Send + 'static>(
    store: &Arc<dyn KeyStore>,
    f: impl FnOnce(&dyn KeyStore) -> Result<T, credd_keys::KeyError> + Send + 'static,
) -> Result<T> {
    let store = store.clone();
    Ok(tokio::task::spawn_blocking(move || f(&*store))
        .await
        .context("the key store task failed")??)
}

/// `credd keys rotate NAME`: see the command's help. The order keeps a
/// working key in the store at every step; each failure says which keys
/// IAM holds and what to delete by hand, if anything.
async fn rotate(settings: credd_daemon::config::KeysFile, name: String) -> Result<()> {
    credd_keys::check_name(&name)?;
    let store: Arc<dyn KeyStore> =
        tokio::task::spawn_blocking(move || keystore::open(&settings, true).map(Arc::from))
            .await
            .context("the key store task failed")??;
    let n = name.clone();
    let Some(old) = blocking(&store, move |s| s.get(&n)).await? else {
        bail!("no keys named '{name}' (see `credd keys list`)");
    };
    let old = old.keys;
    let old_id = mask_key_id(&old.access_key_id);
    let region = crate::environment::env_var("AWS_REGION")
        .or_else(|| crate::environment::env_var("AWS_DEFAULT_REGION"))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "us-east-1".into());

    let new = iam_rotate::create_key(&old).await.with_context(|| {
        format!("nothing changed: the key {old_id} is still stored under '{name}' and active")
    })?;
    let new_id = new.access_key_id.clone();
    // From here on a failure must not leave the new key behind unknown.
    let undo = |why: String| {
        let (old, new_id, name, old_id) =
            (old.clone(), new_id.clone(), name.clone(), old_id.clone());
        async move {
            match iam_rotate::delete_key(&old, &new_id).await {
                Ok(()) => anyhow::anyhow!(
                    "{why}; the new key was deleted again: the key {old_id} is still stored under '{name}' and active"
                ),
                Err(e) => anyhow::anyhow!(
                    "{why}; deleting the new key failed too ({e}): the key {old_id} is still stored under '{name}' and active; \
delete the new one with `aws iam delete-access-key --access-key-id {new_id}`"
                ),
            }
        }
    };
    if let Err(e) = iam_rotate::verify(&new, &region, 5).await {
        return Err(undo(format!(
            "the new key {} did not work ({e})",
            mask_key_id(&new_id)
        ))
        .await);
    }
    let added = iam_rotate::created(&new)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(crate::clock::now);
    let (n, k) = (name.clone(), new.clone());
    if let Err(e) = blocking(&store, move |s| s.put(&n, &k, added)).await {
        return Err(undo(format!("the new key could not be stored ({e:#})")).await);
    }
    if let Err(e) = iam_rotate::delete_key(&new, &old.access_key_id).await {
        bail!(
            "the new key {} is stored under '{name}' and in use, but the old key is still active ({e}): \
delete it with `aws iam delete-access-key --access-key-id {}`",
            mask_key_id(&new_id),
            old.access_key_id
        );
    }
    println!(
        "rotated '{name}': {} replaces {old_id}, which is deleted in IAM",
        mask_key_id(&new_id)
    );
    Ok(())
}
