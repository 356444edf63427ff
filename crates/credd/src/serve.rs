//! The daemon's wiring to `~/.aws`: the [`credd_daemon::ProfileLoader`]
//! that reads profiles with the AWS SDK's parser, used by `credd serve` and
//! `credd demo`.
//!
//! Layering: a leaf; it imports nothing from this crate.

/// Reads profiles with the AWS SDK's parser (credd-aws) and resolves them.
/// A file that cannot be used now is replaced by its last good version
/// (credd-aws keeps it), and said so in `stale`.
pub struct AwsProfiles {
    pub env: credd_aws::profiles::ProfileEnv,
}

impl credd_daemon::ProfileLoader for AwsProfiles {
    fn load(&self) -> credd_daemon::BoxFuture<'_, Result<credd_daemon::LoadedPlans, String>> {
        Box::pin(async move {
            let loaded = credd_aws::profiles::load_profiles(&self.env)
                .await
                .map_err(|e| e.to_string())?;
            Ok(credd_daemon::LoadedPlans {
                plans: credd_core::profile::resolve_all(&loaded.raw),
                stale: loaded.stale,
                notes: loaded.notes,
            })
        })
    }
    fn watched_files(&self) -> Vec<std::path::PathBuf> {
        vec![self.env.config_path(), self.env.credentials_path()]
    }
    fn settings(
        &self,
        profile: &str,
    ) -> credd_daemon::BoxFuture<'_, Result<Option<credd_core::overlay::ProfileSettings>, String>>
    {
        let profile = profile.to_string();
        Box::pin(async move {
            credd_aws::profiles::profile_settings(&self.env, &profile)
                .await
                .map_err(|e| e.to_string())
        })
    }
    fn findings(
        &self,
    ) -> credd_daemon::BoxFuture<'_, Result<credd_core::overlay::Findings, String>> {
        Box::pin(async move {
            let (config, creds) = credd_aws::profiles::load_each_file(&self.env)
                .await
                .map_err(|e| e.to_string())?;
            let (cp, kp) = (
                self.env.config_path().display().to_string(),
                self.env.credentials_path().display().to_string(),
            );
            Ok(credd_core::overlay::Findings {
                shadows: credd_core::overlay::find_shadows(&config, &creds, &cp, &kp),
                credentials_sections: credd_core::overlay::sections_with_credentials(&creds),
                credentials_file: kp,
            })
        })
    }
}
