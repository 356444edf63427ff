//! The daemon's settings: defaults < `credd.toml` < environment < flags.
//! This module holds the resolved form and the file form; the binary owns
//! the flags and merges them last. Every setting, with its default, is in
//! `docs/configuration.md` and `docs/credd.example.toml` (a test keeps the
//! example in sync with [`FileConfig::default`]).

use credd_core::{duration, schedule::Policy};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9911";

/// `credd.toml` as written by a user. Durations are strings (`35m`, `12h`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Address of the container-credentials endpoint (loopback only unless
    /// `allow_non_loopback` is set).
    pub listen: String,
    /// More container-endpoint addresses, e.g. `169.254.170.2:80` for
    /// containers on a bridge network (after `credd docker setup`).
    pub extra_listen: Vec<String>,
    /// Allow a listener on an address that is not loopback or link-local.
    pub allow_non_loopback: bool,
    /// How the daemon asks for an MFA code a background consumer needs,
    /// when the profile has no `credd_mfa_prompt` (and no `mfa_process`):
    /// `notify`, `dialog` or `terminal` (see `mfa_prompt.rs`).
    pub mfa_prompt: String,
    pub imds: ImdsFile,
    pub refresh: RefreshFile,
    pub limits: LimitsFile,
    pub tokens: TokensFile,
    pub docker: DockerFile,
    pub keys: KeysFile,
    pub warnings: WarningsFile,
    pub sso: SsoFile,
}

/// `[sso]`: IAM Identity Center sessions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SsoFile {
    /// How long the administrator lets a sign-in last (Identity Center
    /// does not tell clients; its default is 8 h, the bounds 1 h to 90 d).
    /// The estimated end of a session is its sign-in plus this; an
    /// `[sso-session]` section's `credd_session_length` overrides it.
    pub session_length: String,
}

impl Default for SsoFile {
    fn default() -> Self {
        Self {
            session_length: "8h".into(),
        }
    }
}

/// `[keys]`: where long-term keys live when they are off the disk (issue
/// 15). The daemon only carries these; the binary opens the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KeysFile {
    /// `auto` (the platform keychain where one answers, else the file),
    /// `keychain` or `file`.
    pub backend: String,
    /// The encrypted file; empty: `STATE_DIR/keys.enc`.
    pub file: String,
    /// Longest wait for the keychain (a locked one may never answer).
    pub timeout: String,
    /// Age past which `credd status` reminds to rotate a key.
    pub max_age: String,
}

impl Default for KeysFile {
    fn default() -> Self {
        Self {
            backend: "auto".into(),
            file: String::new(),
            timeout: "10s".into(),
            max_age: "90d".into(),
        }
    }
}

/// `[warnings]`: warnings ahead of a session that needs the user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WarningsFile {
    /// How long before the end to warn; one warning per window at most.
    pub before: Vec<String>,
    /// Warn before an MFA session ends (`credd mfa`).
    pub mfa: bool,
    /// Warn before an IAM Identity Center session ends (`credd login`).
    pub sso: bool,
    /// Warn before an `aws login` session ends (`credd login --profile`).
    pub login: bool,
}

impl Default for WarningsFile {
    fn default() -> Self {
        Self {
            before: vec!["1h".into(), "15m".into(), "5m".into()],
            mfa: true,
            sso: true,
            login: true,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ImdsFile {
    /// Address of the IMDSv2 emulation; empty = off.
    pub listen: String,
    /// The one profile it serves.
    pub profile: String,
    /// Answer GETs without an IMDSv2 session token (IMDSv1). Off: only
    /// clients that do the PUT first get anything.
    pub allow_imdsv1: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RefreshFile {
    /// Renew long-lived credentials this long before they expire.
    pub window: String,
    /// Spread renewals by up to this much more.
    pub jitter: String,
    /// Never serve a credential with less than this left.
    pub min_serve_life: String,
    /// First retry delay after a failure; doubles up to `backoff_cap`.
    pub backoff_base: String,
    pub backoff_cap: String,
    /// Renew IAM Identity Center access tokens this long before they expire.
    pub token_window: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsFile {
    /// Open connections per listener; at the cap, the oldest connection
    /// that is not in the middle of a request is closed to make room.
    pub max_connections: usize,
    /// Close a connection that has not sent a full request head in this time.
    pub header_read_timeout: String,
    /// Largest request head in bytes (hyper's minimum is 8192).
    pub max_header_bytes: usize,
    /// Most header lines in a request.
    pub max_headers: usize,
    /// Longest a request waits for a credential that is not cached yet;
    /// past it the answer is a 503 saying when to retry, and the fetch goes
    /// on (SDKs give up after 1-2 s and retry).
    pub cold_wait: String,
    /// Linux: refuse connections to a loopback listener from a socket that
    /// belongs to another user (a stolen token is then worthless to them).
    pub same_user_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TokensFile {
    /// Lifetime of `credd token issue` tokens when `--ttl` is not given.
    pub default_ttl: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DockerFile {
    /// Watch the docker engine and revoke a container's token when the
    /// container is removed. On by default; where no engine answers, credd
    /// keeps trying quietly (`credd status` says why).
    pub watch: bool,
    /// The engine's unix socket; empty: `DOCKER_HOST` (unix:// only), else
    /// /var/run/docker.sock.
    pub socket: String,
    /// A `credd docker args` token that no container has taken by then is
    /// revoked.
    pub claim_within: String,
}

impl Default for DockerFile {
    fn default() -> Self {
        Self {
            watch: true,
            socket: String::new(),
            claim_within: "5m".into(),
        }
    }
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.into(),
            extra_listen: Vec::new(),
            allow_non_loopback: false,
            mfa_prompt: "notify".into(),
            imds: ImdsFile::default(),
            refresh: RefreshFile::default(),
            limits: LimitsFile::default(),
            tokens: TokensFile::default(),
            docker: DockerFile::default(),
            keys: KeysFile::default(),
            warnings: WarningsFile::default(),
            sso: SsoFile::default(),
        }
    }
}
impl Default for RefreshFile {
    fn default() -> Self {
        Self {
            window: "35m".into(),
            jitter: "5m".into(),
            min_serve_life: "1m".into(),
            backoff_base: "5s".into(),
            backoff_cap: "5m".into(),
            token_window: "15m".into(),
        }
    }
}
impl Default for LimitsFile {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: "5s".into(),
            max_header_bytes: 16 * 1024,
            max_headers: 32,
            cold_wait: "1s".into(),
            same_user_only: true,
        }
    }
}
impl Default for TokensFile {
    fn default() -> Self {
        Self {
            default_ttl: "12h".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {err} (create it, or point --config/CREDD_CONFIG elsewhere)")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Value { key: String, message: String },
}

/// The resolved settings the daemon runs with.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub listen: SocketAddr,
    pub extra_listen: Vec<SocketAddr>,
    pub imds: Option<ImdsConfig>,
    pub policy: Policy,
    pub limits: Limits,
    pub default_token_ttl: Duration,
    pub runtime_dir: PathBuf,
    pub state_dir: PathBuf,
    /// The docker watch; `None`: off (`docker.watch = false`).
    pub docker: Option<crate::docker_watch::WatchConfig>,
    /// `[warnings]`.
    pub warnings: crate::WarningsConfig,
    /// `[sso] session_length`.
    pub sso_session_length: time::Duration,
    /// `mfa_prompt`: the default for profiles without `credd_mfa_prompt`.
    pub mfa_prompt: crate::MfaPrompt,
}

#[derive(Debug, Clone)]
pub struct ImdsConfig {
    pub listen: SocketAddr,
    pub profile: String,
    pub allow_imdsv1: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// See [`LimitsFile::cold_wait`].
    pub cold_wait: Duration,
    /// See [`LimitsFile::same_user_only`]; only loopback listeners check it.
    pub same_user_only: bool,
}

impl Default for Limits {
    fn default() -> Self {
        FileConfig::default()
            .limits()
            .expect("the defaults are valid")
    }
}

impl FileConfig {
    /// Reads `path`; a missing file gives the defaults only when
    /// `missing_ok` (the default location), an error otherwise.
    pub fn load(path: &Path, missing_ok: bool) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
            Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(err) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                err,
            }),
        }
    }

    pub fn policy(&self) -> Result<Policy, ConfigError> {
        let r = &self.refresh;
        Ok(Policy {
            window: dur("refresh.window", &r.window)?,
            jitter: dur("refresh.jitter", &r.jitter)?,
            min_serve_life: dur("refresh.min_serve_life", &r.min_serve_life)?,
            backoff_base: dur("refresh.backoff_base", &r.backoff_base)?,
            backoff_cap: dur("refresh.backoff_cap", &r.backoff_cap)?,
            token_window: dur("refresh.token_window", &r.token_window)?,
        })
    }

    pub fn limits(&self) -> Result<Limits, ConfigError> {
        let l = &self.limits;
        if l.max_header_bytes < 8192 {
            return Err(ConfigError::Value {
                key: "limits.max_header_bytes".into(),
                message: "must be at least 8192".into(),
            });
        }
        if l.max_connections == 0 || l.max_headers == 0 {
            return Err(ConfigError::Value {
                key: "limits".into(),
                message: "max_connections and max_headers must be above 0".into(),
            });
        }
        Ok(Limits {
            max_connections: l.max_connections,
            header_read_timeout: dur("limits.header_read_timeout", &l.header_read_timeout)?
                .unsigned_abs(),
            max_header_bytes: l.max_header_bytes,
            max_headers: l.max_headers,
            cold_wait: dur("limits.cold_wait", &l.cold_wait)?.unsigned_abs(),
            same_user_only: l.same_user_only,
        })
    }
}

impl FileConfig {
    /// `[warnings]` resolved.
    pub fn warnings(&self) -> Result<crate::WarningsConfig, ConfigError> {
        let w = &self.warnings;
        let leads = w
            .before
            .iter()
            .map(|b| dur("warnings.before", b))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(crate::WarningsConfig {
            cadence: credd_core::warnings::Cadence::new(leads),
            mfa: w.mfa,
            sso: w.sso,
            login: w.login,
        })
    }

    /// `[sso] session_length` resolved.
    pub fn sso_session_length(&self) -> Result<time::Duration, ConfigError> {
        credd_core::sso::parse_session_length(&self.sso.session_length).map_err(|message| {
            ConfigError::Value {
                key: "sso.session_length".into(),
                message,
            }
        })
    }

    /// `mfa_prompt` resolved.
    pub fn mfa_prompt(&self) -> Result<crate::MfaPrompt, ConfigError> {
        self.mfa_prompt
            .parse()
            .map_err(|message| ConfigError::Value {
                key: "mfa_prompt".into(),
                message,
            })
    }

    /// The docker watch's settings; `docker_host` is the `DOCKER_HOST` the
    /// daemon was started with.
    pub fn docker_watch(
        &self,
        docker_host: Option<&str>,
    ) -> Result<Option<crate::docker_watch::WatchConfig>, ConfigError> {
        let d = &self.docker;
        if !d.watch {
            return Ok(None);
        }
        let claim_within = dur("docker.claim_within", &d.claim_within)?.unsigned_abs();
        let socket = if d.socket.is_empty() {
            crate::docker_watch::socket_from_env(docker_host)
        } else {
            Ok(PathBuf::from(
                d.socket.strip_prefix("unix://").unwrap_or(&d.socket),
            ))
        };
        Ok(Some(crate::docker_watch::WatchConfig {
            socket,
            claim_within,
        }))
    }
}

fn dur(key: &str, v: &str) -> Result<time::Duration, ConfigError> {
    let d = duration::parse(v).map_err(|e| ConfigError::Value {
        key: key.into(),
        message: e.to_string(),
    })?;
    Ok(time::Duration::seconds(d.as_secs() as i64))
}

/// Parses a listen address, refusing anything but loopback and the ECS
/// link-local addresses unless explicitly allowed (threat-model row 7).
pub fn listen_addr(
    key: &str,
    v: &str,
    allow_non_loopback: bool,
) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = v.parse().map_err(|_| ConfigError::Value {
        key: key.into(),
        message: format!("'{v}' is not an IP:PORT address (e.g. 127.0.0.1:9911)"),
    })?;
    if !allow_non_loopback && !is_local(&addr) {
        return Err(ConfigError::Value {
            key: key.into(),
            message: format!(
                "{addr} is reachable from other machines; credd listens on loopback (127.0.0.1, ::1) or the ECS link-local addresses (169.254.170.2, 169.254.170.23) only"
            ),
        });
    }
    Ok(addr)
}

/// Loopback, or one of the link-local addresses SDKs accept over plain http.
pub fn is_local(addr: &SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => {
            ip.is_loopback()
                || ip.octets() == [169, 254, 170, 2]
                || ip.octets() == [169, 254, 170, 23]
        }
        std::net::IpAddr::V6(ip) => {
            ip.is_loopback() || ip.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23]
        }
    }
}

/// Where the control socket and token files live: `CREDD_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR/credd`, else (macOS) `~/Library/Caches/credd/run`, else
/// `run` under the state directory (`~/.local/state/credd/run`).
///
/// Never a fixed name in a shared directory such as `/tmp`: another user
/// could create it first and answer in the daemon's place (threat-model
/// row 19). The daemon and the CLI both call this, so they agree.
pub fn runtime_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(d) = env("CREDD_RUNTIME_DIR").filter(|s| !s.is_empty()) {
        return d.into();
    }
    if let Some(d) = env("XDG_RUNTIME_DIR").filter(|s| !s.is_empty()) {
        return Path::new(&d).join("credd");
    }
    if cfg!(target_os = "macos") {
        if let Some(h) = env("HOME") {
            return Path::new(&h).join("Library/Caches/credd/run");
        }
    }
    state_dir(env).join("run")
}

/// Where MFA sessions and token records persist: `CREDD_STATE_DIR`, else
/// `$XDG_STATE_HOME/credd`, else `~/.local/state/credd`.
pub fn state_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(d) = env("CREDD_STATE_DIR").filter(|s| !s.is_empty()) {
        return d.into();
    }
    if let Some(d) = env("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        return Path::new(&d).join("credd");
    }
    let home = env("HOME").unwrap_or_else(|| ".".into());
    if cfg!(target_os = "macos") {
        return Path::new(&home).join("Library/Application Support/credd");
    }
    Path::new(&home).join(".local/state/credd")
}

/// `CREDD_CONFIG`, else `~/.config/credd/credd.toml` (or `$XDG_CONFIG_HOME`).
pub fn config_path(env: &dyn Fn(&str) -> Option<String>) -> (PathBuf, bool) {
    if let Some(p) = env("CREDD_CONFIG").filter(|s| !s.is_empty()) {
        return (p.into(), false);
    }
    let base = env("XDG_CONFIG_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&env("HOME").unwrap_or_else(|| ".".into())).join(".config"));
    (base.join("credd/credd.toml"), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/credd.example.toml");
        let text = std::fs::read_to_string(&path).expect("docs/credd.example.toml exists");
        let parsed: FileConfig = toml::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            FileConfig::default(),
            "docs/credd.example.toml drifted from the defaults; regenerate it with:\n{}",
            toml::to_string_pretty(&FileConfig::default()).unwrap()
        );
        // Every key of the defaults appears in the example (commented or not).
        let defaults = toml::to_string_pretty(&FileConfig::default()).unwrap();
        for line in defaults.lines().filter(|l| l.contains(" = ")) {
            let key = line.split(" = ").next().unwrap();
            assert!(text.contains(key), "{key} missing from the example");
        }
        assert!(FileConfig::default().policy().is_ok());
        assert_eq!(
            FileConfig::default().sso_session_length().unwrap(),
            time::Duration::hours(8)
        );
        assert!(FileConfig::default().limits().is_ok());
        assert!(FileConfig::default().docker_watch(None).unwrap().is_some());
        assert_eq!(
            FileConfig::default().warnings().unwrap(),
            crate::WarningsConfig::default()
        );
        assert_eq!(
            FileConfig::default().mfa_prompt().unwrap(),
            crate::MfaPrompt::Notify
        );
    }

    #[test]
    fn runtime_dir_falls_back_under_the_users_home_not_the_temp_dir() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let only_home = env(&[("HOME", "/home/me")]);
        let d = runtime_dir(&only_home);
        assert!(d.starts_with("/home/me"), "{}", d.display());
        assert!(!d.starts_with(std::env::temp_dir()), "{}", d.display());
        let xdg = env(&[("HOME", "/home/me"), ("XDG_RUNTIME_DIR", "/run/user/7")]);
        assert_eq!(runtime_dir(&xdg), Path::new("/run/user/7/credd"));
        let own = env(&[("CREDD_RUNTIME_DIR", "/x"), ("XDG_RUNTIME_DIR", "/y")]);
        assert_eq!(runtime_dir(&own), Path::new("/x"));
    }

    #[test]
    fn refuses_non_local_listeners_and_typos() {
        assert!(listen_addr("listen", "0.0.0.0:9911", false).is_err());
        assert!(listen_addr("listen", "192.168.1.2:9911", false).is_err());
        assert!(listen_addr("listen", "127.0.0.1:9911", false).is_ok());
        assert!(listen_addr("listen", "169.254.170.2:80", false).is_ok());
        assert!(listen_addr("listen", "[::1]:9911", false).is_ok());
        assert!(listen_addr("listen", "0.0.0.0:9911", true).is_ok());
        let e = toml::from_str::<FileConfig>("lisen = \"x\"").unwrap_err();
        assert!(e.to_string().contains("lisen"));
    }
}
