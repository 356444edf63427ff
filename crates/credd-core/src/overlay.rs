//! What a child of `credd exec`/`credd env`/`credd docker` sees of the AWS
//! files: an overlay config holding only the chosen profile's
//! non-credential settings (region, endpoints, retries...), so that nothing
//! in the user's files can win over credd, and the checks that find what in
//! those files would win over credd where no overlay is used ("shadows").
//!
//! The settings carried are an allow-list, not "everything but credential
//! keys": the SDK's parsed profile offers lookup by key only, and an
//! allow-list cannot carry a credential setting an SDK adds tomorrow.

use crate::profile::RawProfiles;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The profile settings the overlay carries: the shared-config settings the
/// AWS SDKs and the AWS CLI read that are not about credentials. The IMDS
/// endpoint settings are left out on purpose (`credd exec --imds` sets the
/// endpoint itself).
pub const CARRIED_KEYS: &[&str] = &[
    "region",
    "output",
    "endpoint_url",
    "ignore_configured_endpoint_urls",
    "services",
    "sts_regional_endpoints",
    "s3",
    "s3_use_arn_region",
    "s3_disable_multiregion_access_points",
    "s3_disable_express_session_auth",
    "s3_us_east_1_regional_endpoint",
    "api_versions",
    "retry_mode",
    "max_attempts",
    "ca_bundle",
    "use_fips_endpoint",
    "use_dualstack_endpoint",
    "defaults_mode",
    "account_id_endpoint_mode",
    "auth_scheme_preference",
    "sigv4a_signing_region_set",
    "disable_request_compression",
    "request_min_compression_size_bytes",
    "request_checksum_calculation",
    "response_checksum_validation",
    "endpoint_discovery_enabled",
    "sdk_ua_app_id",
    "parameter_validation",
    "tcp_keepalive",
    "metadata_service_timeout",
    "metadata_service_num_attempts",
    "cli_pager",
    "cli_timestamp_format",
    "cli_binary_format",
    "cli_auto_prompt",
    "cli_follow_urlparam",
    "cli_history",
];

/// Settings that name a file on this machine: meaningless in a container.
pub const HOST_PATH_KEYS: &[&str] = &["ca_bundle"];

/// Keys that make an SDK take credentials from a profile instead of looking
/// further down its chain (where the container endpoint and IMDS are).
pub const CREDENTIAL_KEYS: &[&str] = &[
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "role_arn",
    "credential_source",
    "web_identity_token_file",
    "credential_process",
    "sso_session",
    "sso_start_url",
    "sso_account_id",
    "sso_role_name",
    "login_session",
];

/// A profile's non-credential settings, as the daemon read them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileSettings {
    /// [`CARRIED_KEYS`] present in the profile (config and credentials file
    /// merged, as SDKs merge them). A nested value (`s3 =` followed by
    /// indented lines) keeps its lines, each after a `\n`.
    pub settings: BTreeMap<String, String>,
    /// The `[services NAME]` section(s) the profile's `services` names,
    /// verbatim from the config file (headers included).
    #[serde(default)]
    pub services: Option<String>,
}

impl ProfileSettings {
    /// The settings as `key = value` lines, nested values indented.
    pub fn lines(&self, omit: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in &self.settings {
            if omit.contains(&k.as_str()) {
                continue;
            }
            let mut parts = v.split('\n');
            let first = parts.next().unwrap_or_default();
            out.push(if first.is_empty() {
                format!("{k} =")
            } else {
                format!("{k} = {first}")
            });
            for sub in parts.filter(|s| !s.trim().is_empty()) {
                out.push(format!("  {}", sub.trim()));
            }
        }
        out
    }

    /// The overlay config file: the settings as `[default]` (and as
    /// `[profile NAME]`, so that `--profile NAME` inside the child finds the
    /// same settings), then the services section.
    pub fn overlay(&self, profile: &str, omit: &[&str]) -> String {
        let lines = self.lines(omit);
        let mut out = String::from(
            "# written by credd: the settings of one profile and no credentials, so that\n\
             # SDKs take credentials from credd (docs/configuration.md, \"What the child sees\").\n",
        );
        let mut section = |header: &str| {
            out.push_str(&format!("[{header}]\n"));
            for l in &lines {
                out.push_str(l);
                out.push('\n');
            }
            out.push('\n');
        };
        section("default");
        if profile != "default" {
            section(&format!("profile {profile}"));
        }
        if let Some(s) = &self.services {
            out.push_str(s);
            if !s.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }
}

/// Something in the user's files that wins over credd wherever credd's
/// overlay is not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shadow {
    /// The file, as the daemon read it.
    pub file: String,
    /// The section as written in that file (`default`, `profile default`...).
    pub section: String,
    /// The credential keys found there (names only, never values).
    pub keys: Vec<String>,
    /// What it shadows and what to do, for a person.
    pub message: String,
}

fn credential_keys(props: &BTreeMap<String, String>) -> Vec<String> {
    CREDENTIAL_KEYS
        .iter()
        .filter(|k| props.get(**k).is_some_and(|v| !v.trim().is_empty()))
        .map(|k| k.to_string())
        .collect()
}

/// Whether a `credential_process` runs credd (a `credd profiles link`).
fn runs_credd(command: &str) -> bool {
    command.contains("credential-process")
        && command
            .split_whitespace()
            .next()
            .is_some_and(|p| p.trim_matches('"').ends_with("credd"))
}

/// What the daemon found in the user's files, for `credd status`,
/// `credd profiles` and `credd profiles link`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    pub shadows: Vec<Shadow>,
    /// Sections of the credentials file that hold credentials (names only).
    pub credentials_sections: Vec<String>,
    /// The credentials file, as the daemon read it.
    pub credentials_file: String,
}

/// What in the two files (each parsed on its own) would win over credd:
/// a `[default]` profile with credentials, which every SDK run without a
/// profile uses before the container endpoint or IMDS; and keys in the
/// credentials file under the name of a profile that gets its credentials
/// from credd through `credential_process` (static keys win over it).
pub fn find_shadows(
    config: &RawProfiles,
    credentials: &RawProfiles,
    config_path: &str,
    credentials_path: &str,
) -> Vec<Shadow> {
    let mut out = Vec::new();
    let default_fix = "SDKs and tools run without a profile use these before credd's endpoint \
         (`credd exec` and `credd env` hide them, but `AWS_CONTAINER_CREDENTIALS_FULL_URI` set by hand, \
         the IMDS emulation and `credential_process` profiles do not): move them to a named profile, \
         e.g. rename the section to [base] and use `source_profile = base`";
    for (file, raw, header) in [
        (credentials_path, credentials, "default"),
        (config_path, config, "default"),
    ] {
        if let Some(props) = raw.get("default") {
            let keys = credential_keys(props);
            if !keys.is_empty() {
                out.push(Shadow {
                    file: file.to_string(),
                    section: header.to_string(),
                    message: format!(
                        "[{header}] in {file} holds credentials ({}): {default_fix}",
                        keys.join(", ")
                    ),
                    keys,
                });
            }
        }
    }
    for (name, props) in config {
        let Some(cmd) = props.get("credential_process") else {
            continue;
        };
        if !runs_credd(cmd) {
            continue;
        }
        let Some(c) = credentials.get(name) else {
            continue;
        };
        let keys = credential_keys(c);
        if keys.is_empty() {
            continue;
        }
        out.push(Shadow {
            file: credentials_path.to_string(),
            section: name.clone(),
            message: format!(
                "[{name}] in {credentials_path} holds credentials ({}) that SDKs use instead of \
                 `[profile {name}]`'s credential_process (credd): remove that section from {credentials_path}",
                keys.join(", ")
            ),
            keys,
        });
    }
    out
}

/// The names of the sections of a (credentials) file that hold credentials.
pub fn sections_with_credentials(raw: &RawProfiles) -> Vec<String> {
    raw.iter()
        .filter(|(_, p)| !credential_keys(p).is_empty())
        .map(|(n, _)| n.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(sections: &[(&str, &[(&str, &str)])]) -> RawProfiles {
        sections
            .iter()
            .map(|(n, kv)| {
                (
                    n.to_string(),
                    kv.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn the_overlay_has_settings_and_no_credentials() {
        let s = ProfileSettings {
            settings: [
                ("region", "eu-west-1"),
                ("services", "local"),
                (
                    "s3",
                    "\naddressing_style = path\nuse_accelerate_endpoint = false",
                ),
                ("ca_bundle", "/etc/corp.pem"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            services: Some("[services local]\nsts =\n  endpoint_url = http://127.0.0.1:1\n".into()),
        };
        let o = s.overlay("dev", &[]);
        assert!(o.contains("[default]\nca_bundle = /etc/corp.pem\nregion = eu-west-1\ns3 =\n  addressing_style = path\n  use_accelerate_endpoint = false\nservices = local\n\n[profile dev]\n"), "{o}");
        assert!(o.ends_with("[services local]\nsts =\n  endpoint_url = http://127.0.0.1:1\n"));
        assert!(!s.overlay("dev", HOST_PATH_KEYS).contains("ca_bundle"));
        assert!(!s.overlay("default", &[]).contains("[profile default]"));
    }

    #[test]
    fn defaults_with_credentials_and_shadowed_links_are_found() {
        let config = raw(&[
            (
                "default",
                &[("region", "us-east-1"), ("sso_session", "corp")],
            ),
            (
                "dev-credd",
                &[(
                    "credential_process",
                    "/usr/bin/credd credential-process dev",
                )],
            ),
            ("other", &[("credential_process", "tool get")]),
        ]);
        let creds = raw(&[
            (
                "default",
                &[
                    ("aws_access_key_id", "AKIA"),
                    ("aws_secret_access_key", "canary"),
                ],
            ),
            ("dev-credd", &[("aws_access_key_id", "AKIA2")]),
            ("other", &[("aws_access_key_id", "AKIA3")]),
        ]);
        let s = find_shadows(&config, &creds, "/h/.aws/config", "/h/.aws/credentials");
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(s[0].file, "/h/.aws/credentials");
        assert_eq!(s[0].keys, ["aws_access_key_id", "aws_secret_access_key"]);
        assert!(s[0].message.contains("[default] in /h/.aws/credentials"));
        assert_eq!(
            (s[1].file.as_str(), s[1].keys.clone()),
            ("/h/.aws/config", vec!["sso_session".to_string()])
        );
        assert_eq!(s[2].section, "dev-credd");
        assert!(s.iter().all(|x| !x.message.contains("canary")));
        assert!(find_shadows(
            &raw(&[("default", &[("region", "x")])]),
            &raw(&[]),
            "c",
            "k"
        )
        .is_empty());
        assert_eq!(
            sections_with_credentials(&creds),
            ["default", "dev-credd", "other"]
        );
    }
}
