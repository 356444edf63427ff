//! [`AwsProfileLoader`]: credd-core's [`ProfileLoader`] over `~/.aws/config`
//! and `~/.aws/credentials`. It reads with the AWS SDK's parser
//! ([`crate::profiles`]) and resolves with credd-core; a file that cannot be
//! used now is replaced by its last good version (kept by
//! [`crate::profiles`]), and said so in `stale`. The binary only constructs it.
//!
//! With a key source ([`AwsProfileLoader::with_keys`], issue 15), a profile
//! whose keys live in a key store (its `credential_process` is credd's own
//! for its name) gets them in memory, and resolves exactly as if they were
//! in `~/.aws/credentials` (see [`credd_core::keys`]); a store that cannot
//! answer fails that profile (and those chained on it) with its message,
//! and every other profile loads as usual.

use crate::profiles::{self, ProfileEnv};
use credd_core::keys::{self as keyseam, KeySource};
use credd_core::loader::{BoxFuture, LoadedPlans, ProfileLoader};
use credd_core::overlay::{self, Findings, ProfileSettings};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The daemon's profile source in production: the AWS files `env` selects.
#[derive(Debug, Clone)]
pub struct AwsProfileLoader {
    pub env: ProfileEnv,
    keys: Option<Arc<dyn KeySource>>,
}

impl AwsProfileLoader {
    pub fn new(env: ProfileEnv) -> Self {
        Self { env, keys: None }
    }

    /// Also reads long-term keys from `keys` (the user's key store).
    pub fn with_keys(mut self, keys: Arc<dyn KeySource>) -> Self {
        self.keys = Some(keys);
        self
    }
}

/// Asks the key store for each candidate profile, off the async threads
/// (the store may wait on D-Bus or a file lock, within its own timeout).
async fn look_up(
    source: Arc<dyn KeySource>,
    names: Vec<String>,
) -> BTreeMap<String, Result<Option<credd_core::LongTermKeys>, keyseam::KeySourceError>> {
    let joined = tokio::task::spawn_blocking(move || {
        names
            .into_iter()
            .map(|n| {
                let r = source.keys(&n);
                (n, r)
            })
            .collect::<BTreeMap<_, _>>()
    })
    .await;
    joined.unwrap_or_default()
}

impl ProfileLoader for AwsProfileLoader {
    fn load(&self) -> BoxFuture<'_, Result<LoadedPlans, String>> {
        Box::pin(async move {
            let mut loaded = profiles::load_profiles(&self.env)
                .await
                .map_err(|e| e.to_string())?;
            let mut unavailable = BTreeMap::new();
            if let Some(source) = &self.keys {
                let names = keyseam::candidates(&loaded.raw);
                if !names.is_empty() {
                    let found = look_up(source.clone(), names).await;
                    let applied = keyseam::apply(&mut loaded.raw, found);
                    for (name, why) in &applied.unavailable {
                        tracing::warn!(profile = %name, error = %why, "the key store could not give this profile's keys");
                    }
                    unavailable = applied.unavailable;
                }
            }
            let mut plans = credd_core::profile::resolve_all(&loaded.raw);
            keyseam::mark_unavailable(&mut plans, &unavailable);
            Ok(LoadedPlans {
                plans,
                stale: loaded.stale,
                notes: loaded.notes,
            })
        })
    }
    fn watched_files(&self) -> Vec<std::path::PathBuf> {
        vec![self.env.config_path(), self.env.credentials_path()]
    }
    fn settings(&self, profile: &str) -> BoxFuture<'_, Result<Option<ProfileSettings>, String>> {
        let profile = profile.to_string();
        Box::pin(async move {
            profiles::profile_settings(&self.env, &profile)
                .await
                .map_err(|e| e.to_string())
        })
    }
    fn findings(&self) -> BoxFuture<'_, Result<Findings, String>> {
        Box::pin(async move {
            let (config, creds) = profiles::load_each_file(&self.env)
                .await
                .map_err(|e| e.to_string())?;
            let (cp, kp) = (
                self.env.config_path().display().to_string(),
                self.env.credentials_path().display().to_string(),
            );
            Ok(Findings {
                shadows: overlay::find_shadows(&config, &creds, &cp, &kp),
                credentials_sections: overlay::sections_with_credentials(&creds),
                credentials_file: kp,
            })
        })
    }
}
