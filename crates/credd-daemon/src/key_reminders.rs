//! The key-rotation reminder task (issue 15): when a stored long-term key
//! comes within four weeks of `keys.max_age` (or is past it), a desktop
//! notification through the daemon's [`Notifier`] on the rising cadence of
//! `credd_core::keys::reminder_every` (weekly, twice a week, three times a
//! week, daily), each naming `credd keys rotate NAME`.
//!
//! The daemon never depends on the key store: the binary hands in a
//! [`KeyAges`] (names and dates, never a secret), as it hands the profile
//! loader a `KeySource`. When each key was last reminded about is kept in
//! `STATE_DIR/key-reminders.json` (0600, written atomically, read-modified-
//! written under an exclusive `flock` on `key-reminders.json.lock`, in the
//! 0700 state directory the user owns; it holds names and dates only), so a
//! restart neither repeats a reminder nor forgets one that is due.
//!
//! No polling: the task sleeps until the earliest next look of any key
//! (`credd_core::keys::reminder_next`) on the injected [`Clock`], whose
//! `SystemClock` also wakes when the wall clock jumps (suspend/resume), or
//! until it is told the keys may have changed (`changed`: the binary
//! signals it at every profile reload, which every `credd keys` command
//! asks for). With no key within four weeks of its limit, it sleeps until
//! the first one will be; with no keys at all, until a change.

use crate::clock::Clock;
use crate::fsutil;
use crate::sso::Notifier;
use credd_core::credentials::{format_expiration, parse_timestamp};
use credd_core::keys::{reminder_due, reminder_every, reminder_message, reminder_next};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// One stored key as the reminders see it: its name and the date its age
/// counts from (IAM's creation date where known, else when it was added).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAge {
    pub name: String,
    pub since: OffsetDateTime,
}

/// The stored keys' ages, from wherever the binary keeps the keys. Called
/// on a blocking thread (it may wait on D-Bus or a file lock, within the
/// store's own timeout). `Err` says why the store cannot be read now (a
/// locked keychain): the task then waits for the next change.
pub trait KeyAges: Send + Sync + std::fmt::Debug {
    fn ages(&self) -> Result<Vec<KeyAge>, String>;
}

/// What the task needs besides the keys.
#[derive(Debug, Clone)]
pub struct RemindersConfig {
    pub max_age: time::Duration,
    /// `keys.max_age` as the user wrote it, for the message.
    pub max_age_text: String,
    /// `STATE_DIR/key-reminders.json`.
    pub state_file: PathBuf,
}

/// One key's last reminder, and which key it was about (a rotated key has
/// a new date and starts a new cadence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Last {
    since: String,
    reminded: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    keys: BTreeMap<String, Last>,
}

/// What a look found: the reminders to send (title, body), and when to
/// look next (`None`: no key to wait for).
type Looked = (Vec<(String, String)>, Option<OffsetDateTime>);

/// The file is small (a line per key); anything larger is not ours.
const STATE_CAP: u64 = 1 << 20;

/// Reads, steps and writes the state under its lock; returns what to say
/// and when to look next (`None`: no key to wait for).
fn look(
    config: &RemindersConfig,
    keys: &[KeyAge],
    now: OffsetDateTime,
) -> Result<Looked, fsutil::FsError> {
    let path = &config.state_file;
    fsutil::private_dir(credd_core::atomic_file::parent_dir(path))?;
    let _held = lock(path)?;
    let mut state: StateFile = match fsutil::read_private(path, STATE_CAP)? {
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            // Dates only: losing them means at most one reminder early.
            tracing::warn!(path = %path.display(), error = %e, "the key reminders' state is not valid JSON: starting afresh");
            StateFile::default()
        }),
        None => StateFile::default(),
    };
    let before = state.keys.clone();
    let (said, next) = step(config, keys, &mut state.keys, now);
    if state.keys != before {
        let text = serde_json::to_vec_pretty(&state).unwrap_or_default();
        fsutil::write_private(path, &text)?;
    }
    Ok((said, next))
}

/// Holds an exclusive `flock` on `PATH.lock` until dropped. One daemon
/// runs per user (its control socket sees to that), but a second one
/// starting, or a test, must not interleave its read-modify-write.
fn lock(path: &Path) -> Result<std::fs::File, fsutil::FsError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let io = |source| fsutil::FsError::Io {
        path: lock_path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&lock_path)
        .map_err(io)?;
    // Held for a read and a write of a tiny file: waiting is short.
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io(e.into()))?;
    Ok(file)
}

/// The pure part: for each key, a reminder when one is due (recorded in
/// `state`), and the earliest next look. Keys no longer stored are
/// forgotten; a key whose date changed (rotated) starts afresh.
fn step(
    config: &RemindersConfig,
    keys: &[KeyAge],
    state: &mut BTreeMap<String, Last>,
    now: OffsetDateTime,
) -> Looked {
    state.retain(|name, _| keys.iter().any(|k| &k.name == name));
    let mut said = Vec::new();
    let mut next: Option<OffsetDateTime> = None;
    for k in keys {
        let since_text = format_expiration(k.since);
        let last = state
            .get(&k.name)
            .filter(|l| l.since == since_text)
            .and_then(|l| parse_timestamp(&l.reminded).ok());
        let age = now - k.since;
        let mut last = last;
        if reminder_due(age, config.max_age, last.map(|l| now - l)) {
            said.push(reminder_message(
                &k.name,
                age,
                config.max_age,
                &config.max_age_text,
            ));
            state.insert(
                k.name.clone(),
                Last {
                    since: since_text,
                    reminded: format_expiration(now),
                },
            );
            last = Some(now);
        } else if reminder_every(age, config.max_age).is_none() {
            // Not yet in the reminder span: nothing to remember.
            state.remove(&k.name);
        }
        let at = reminder_next(k.since, config.max_age, last, now);
        next = Some(next.map_or(at, |n| n.min(at)));
    }
    (said, next)
}

/// Runs the reminders until `cancel`. `changed`: told when the keys may
/// have changed (a permit is kept, so a change during a look is seen).
pub async fn run(
    source: Arc<dyn KeyAges>,
    changed: Arc<Notify>,
    clock: Arc<dyn Clock>,
    notifier: Arc<dyn Notifier>,
    config: RemindersConfig,
    cancel: CancellationToken,
) {
    loop {
        let (s, c, now) = (source.clone(), config.clone(), clock.now());
        let looked = tokio::task::spawn_blocking(move || {
            let keys = s.ages()?;
            look(&c, &keys, now).map_err(|e| e.to_string())
        })
        .await;
        let next = match looked {
            Ok(Ok((said, next))) => {
                for (title, body) in said {
                    notifier.notify(&title, &body);
                }
                next
            }
            Ok(Err(why)) => {
                tracing::debug!(%why, "cannot read the keys' ages now: waiting for a change");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "the key reminders' look failed");
                None
            }
        };
        let sleep = async {
            match next {
                Some(at) => clock.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = changed.notified() => {}
            _ = sleep => {}
        }
    }
}

#[cfg(test)]
#[path = "key_reminders_tests.rs"]
mod tests;
