//! [`AwsProfileLoader`]: credd-core's [`ProfileLoader`] over `~/.aws/config`
//! and `~/.aws/credentials`. It reads with the AWS SDK's parser
//! ([`crate::profiles`]) and resolves with credd-core; a file that cannot be
//! used now is replaced by its last good version (kept by
//! [`crate::profiles`]), and said so in `stale`. The binary only constructs it.

use crate::profiles::{self, ProfileEnv};
use credd_core::loader::{BoxFuture, LoadedPlans, ProfileLoader};
use credd_core::overlay::{self, Findings, ProfileSettings};

/// The daemon's profile source in production: the AWS files `env` selects.
#[derive(Debug, Clone)]
pub struct AwsProfileLoader {
    pub env: ProfileEnv,
}

impl AwsProfileLoader {
    pub fn new(env: ProfileEnv) -> Self {
        Self { env }
    }
}

impl ProfileLoader for AwsProfileLoader {
    fn load(&self) -> BoxFuture<'_, Result<LoadedPlans, String>> {
        Box::pin(async move {
            let loaded = profiles::load_profiles(&self.env)
                .await
                .map_err(|e| e.to_string())?;
            Ok(LoadedPlans {
                plans: credd_core::profile::resolve_all(&loaded.raw),
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
