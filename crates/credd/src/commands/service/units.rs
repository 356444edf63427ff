//! The unit files and the launchd plist `credd service install` writes,
//! with the settings of the installing shell carried into them ([`Carried`]).

use super::*;

// ---------------------------------------------------------------------------
// What `install` carries over from the shell it runs in.

/// Variables that change what the daemon reads, carried into the unit or
/// plist so that the service sees the same files as the CLI.
pub(super) const CARRIED_PATHS: [&str; 3] = [
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "CREDD_CONFIG",
];
/// botocore's override of `~/.aws/login/cache` (`aws login` sessions).
pub(super) const LOGIN_CACHE_VAR: &str = "AWS_LOGIN_CACHE_DIRECTORY";
/// Secrets a shell may hold; a unit file or plist is readable by anything
/// running as the user and lands in backups, so they are never written
/// there, whatever else is carried.
pub(super) const SECRET_VARS: [&str; 6] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
];

/// The settings `install` carries from the installing shell.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Carried {
    /// `NAME=value` for the service's environment, values absolute paths,
    /// in a fixed order. Never a secret (see [`SECRET_VARS`]).
    pub vars: Vec<(&'static str, String)>,
    /// A state directory other than the service's default.
    pub state_dir: Option<PathBuf>,
    /// An `aws login` cache other than `~/.aws/login/cache`.
    pub login_cache: Option<PathBuf>,
    /// What the user is told on stderr: variables left out, and why.
    pub warnings: Vec<String>,
}

impl Carried {
    /// Reads the settings from `env` (the installing shell), with `~` and
    /// relative paths made absolute against `home` and `cwd`.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        manager: ServiceManager,
        home: &Path,
        cwd: &Path,
    ) -> Result<Self> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        let absolute = |name: &str, v: &str| -> Result<PathBuf> {
            let p = match v.strip_prefix('~') {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                    home.join(rest.trim_start_matches('/'))
                }
                _ => cwd.join(v),
            };
            utf8_path(&p).with_context(|| format!("{name} cannot be carried into the service"))?;
            Ok(p)
        };
        let mut c = Carried::default();
        for name in CARRIED_PATHS {
            let Some(v) = get(name) else { continue };
            let p = absolute(name, &v)?;
            c.vars.push((name, p.to_string_lossy().into_owned()));
        }
        // credd.toml: CREDD_CONFIG, or one found through XDG_CONFIG_HOME,
        // which the service manager may not have.
        let default_toml = home.join(".config/credd/credd.toml");
        let (toml, _) = credd_daemon::config::config_path(&|k: &str| match k {
            "CREDD_CONFIG" => None,
            "HOME" => Some(home.to_string_lossy().into_owned()),
            _ => get(k),
        });
        if get("CREDD_CONFIG").is_none() && toml != default_toml && toml.is_file() {
            let p = absolute("XDG_CONFIG_HOME", &toml.to_string_lossy())?;
            c.vars
                .push(("CREDD_CONFIG", p.to_string_lossy().into_owned()));
        }
        if let Some((_, p)) = c.vars.iter().find(|(k, _)| *k == "CREDD_CONFIG") {
            // The daemon refuses to start on a credd.toml it cannot read:
            // say so now, before anything is installed.
            credd_daemon::config::FileConfig::load(Path::new(p), false).with_context(|| {
                format!(
                    "the service would use {p} as its credd.toml (CREDD_CONFIG or \
                     XDG_CONFIG_HOME in this shell) and cannot: fix it or unset the variable, \
                     then run `credd service install` again"
                )
            })?;
        }
        // The state directory, where the daemon and the CLI must agree
        // (token records, MFA sessions, the audit log).
        let home_s = home.to_string_lossy().into_owned();
        let service_default =
            credd_daemon::config::state_dir(&|k: &str| (k == "HOME").then(|| home_s.clone()));
        let state = credd_daemon::config::state_dir(&|k: &str| match k {
            "HOME" => Some(home_s.clone()),
            _ => get(k),
        });
        if state != service_default {
            let p = absolute("CREDD_STATE_DIR", &state.to_string_lossy())?;
            c.state_dir = Some(p);
        }
        if let Some(v) = get(LOGIN_CACHE_VAR) {
            if v.contains('$') {
                bail!(
                    "{LOGIN_CACHE_VAR}={v} holds a variable, which the service cannot expand the \
                     way your shell did: set it to the directory's full path and run \
                     `credd service install` again"
                );
            }
            let p = absolute(LOGIN_CACHE_VAR, &v)?;
            c.vars
                .push((LOGIN_CACHE_VAR, p.to_string_lossy().into_owned()));
            c.login_cache = Some(p);
        }
        match (manager, get("CREDD_RUNTIME_DIR")) {
            (ServiceManager::Launchd, Some(v)) => {
                let p = absolute("CREDD_RUNTIME_DIR", &v)?;
                c.vars
                    .push(("CREDD_RUNTIME_DIR", p.to_string_lossy().into_owned()));
            }
            (ServiceManager::Systemd, Some(v)) => {
                let service = get("XDG_RUNTIME_DIR").map(|d| Path::new(&d).join("credd"));
                if service.as_deref() != Some(Path::new(&v)) {
                    c.warnings.push(format!(
                        "CREDD_RUNTIME_DIR={v} is not carried: the service's control socket is \
                         %t/credd/control.sock (credd-control.socket), so unset CREDD_RUNTIME_DIR \
                         in your shell for `credd` to reach the service"
                    ));
                }
            }
            (_, None) => {}
        }
        if let Some(state) = &c.state_dir {
            let value = state.to_string_lossy().into_owned();
            c.vars.push(("CREDD_STATE_DIR", value));
        }
        let secrets: Vec<&str> = SECRET_VARS
            .iter()
            .copied()
            .filter(|k| get(k).is_some())
            .collect();
        if !secrets.is_empty() {
            c.warnings.push(format!(
                "{} {} set in this shell and not written to the service's files (a unit file or \
                 plist is no place for a secret); a profile that takes credd's own environment \
                 keys does not work under the service: put long-term keys in \
                 ~/.aws/credentials instead",
                secrets.join(", "),
                if secrets.len() == 1 { "is" } else { "are" }
            ));
        }
        if manager == ServiceManager::Systemd {
            for (name, value) in &c.vars {
                if Path::new(value).starts_with("/tmp") || Path::new(value).starts_with("/var/tmp")
                {
                    c.warnings.push(format!(
                        "{name}={value} is under /tmp, which the service does not see (it has a \
                         /tmp of its own, PrivateTmp=yes): move it"
                    ));
                }
            }
        }
        Ok(c)
    }
}

/// Lines of `systemd/credd.service` that [`render_service_unit`] replaces.
pub(super) const UNIT_STATE_ENV: &str = "Environment=CREDD_STATE_DIR=%h/.local/state/credd";
pub(super) const UNIT_RUNTIME_ENV: &str = "Environment=CREDD_RUNTIME_DIR=%t/credd";
pub(super) const UNIT_MKDIR_OWN: &str =
    "ExecStartPre=+/bin/mkdir -p -m 0700 %h/.local/state/credd %t/credd";
pub(super) const UNIT_MKDIR_SHARED: &str =
    "ExecStartPre=-+/bin/mkdir -p -m 0700 %h/.aws/sso/cache %h/.aws/login/cache";
pub(super) const UNIT_RW_OWN: &str = "ReadWritePaths=%h/.local/state/credd %t/credd";
pub(super) const UNIT_RW_SHARED: &str = "ReadWritePaths=-%h/.aws/sso/cache -%h/.aws/login/cache";

/// The shipped unit with `ExecStart=` pointing at `exe` and the carried
/// settings in: `Environment=` lines, and the directories to create and
/// write (`ReadWritePaths=`) following a moved state directory or login
/// cache. The SSO token cache is always `%h/.aws/sso/cache`, where the AWS
/// CLI and SDKs keep it whatever their environment says.
pub fn render_service_unit(exe: &Path, carried: &Carried) -> Result<String> {
    let mut unit = SERVICE_UNIT.to_string();
    let mut replace = |old: &str, new: String| -> Result<()> {
        let line = format!("\n{old}\n");
        if !unit.contains(&line) {
            bail!("systemd/credd.service has no line `{old}` to replace");
        }
        unit = unit.replacen(&line, &format!("\n{new}\n"), 1);
        Ok(())
    };
    replace(
        UNIT_EXEC_START,
        format!("ExecStart={} serve", systemd_quote(exe)?),
    )?;
    let state = carried.state_dir.as_deref();
    let (state_cmd, state_rw) = match state {
        Some(p) => (systemd_quote(p)?, unit_path_word(p, "")?),
        None => (
            "%h/.local/state/credd".to_string(),
            "%h/.local/state/credd".to_string(),
        ),
    };
    let (login_cmd, login_rw) = match &carried.login_cache {
        Some(p) => (systemd_quote(p)?, unit_path_word(p, "-")?),
        None => (
            "%h/.aws/login/cache".to_string(),
            "-%h/.aws/login/cache".to_string(),
        ),
    };
    let mut env_lines = vec![match state {
        Some(p) => unit_environment("CREDD_STATE_DIR", utf8_path(p)?)?,
        None => UNIT_STATE_ENV.to_string(),
    }];
    env_lines.push(UNIT_RUNTIME_ENV.to_string());
    let others: Vec<&(&str, String)> = carried
        .vars
        .iter()
        .filter(|(k, _)| *k != "CREDD_STATE_DIR")
        .collect();
    if !others.is_empty() {
        env_lines.push("# Carried from the shell `credd service install` ran in.".to_string());
        for (k, v) in others {
            env_lines.push(unit_environment(k, v)?);
        }
    }
    replace(
        &format!("{UNIT_STATE_ENV}\n{UNIT_RUNTIME_ENV}"),
        env_lines.join("\n"),
    )?;
    replace(
        UNIT_MKDIR_OWN,
        format!("ExecStartPre=+/bin/mkdir -p -m 0700 {state_cmd} %t/credd"),
    )?;
    replace(
        UNIT_MKDIR_SHARED,
        format!("ExecStartPre=-+/bin/mkdir -p -m 0700 %h/.aws/sso/cache {login_cmd}"),
    )?;
    replace(UNIT_RW_OWN, format!("ReadWritePaths={state_rw} %t/credd"))?;
    replace(
        UNIT_RW_SHARED,
        format!("ReadWritePaths=-%h/.aws/sso/cache {login_rw}"),
    )?;
    Ok(unit)
}

/// `Environment=NAME=value` as systemd reads it back: `%` escaped (a
/// specifier otherwise), and quoted, with `\` and `"` escaped, when the
/// value holds a blank, a quote or a backslash. `$` is not special there.
pub(super) fn unit_environment(name: &str, value: &str) -> Result<String> {
    if value.contains(['\n', '\r']) {
        bail!("{name} holds a line break, which a unit file cannot carry: fix it and run the command again");
    }
    let escaped = value.replace('%', "%%");
    if escaped
        .chars()
        .any(|c| c.is_whitespace() || "\"'\\".contains(c))
    {
        Ok(format!(
            "Environment=\"{name}={}\"",
            escaped.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    } else {
        Ok(format!("Environment={name}={escaped}"))
    }
}

/// A path as one word of `ReadWritePaths=`, with its prefix (`-`: skipped
/// when missing), quoted like [`unit_environment`].
pub(super) fn unit_path_word(path: &Path, prefix: &str) -> Result<String> {
    let escaped = utf8_path(path)?.replace('%', "%%");
    if escaped
        .chars()
        .any(|c| c.is_whitespace() || "\"'\\".contains(c))
    {
        Ok(format!(
            "\"{prefix}{}\"",
            escaped.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    } else {
        Ok(format!("{prefix}{escaped}"))
    }
}

/// A path as one word of a systemd command line: specifiers (`%`) and
/// variables (`$`) escaped, quoted when it holds blanks or quotes.
pub(super) fn systemd_quote(path: &Path) -> Result<String> {
    let s = utf8_path(path)?;
    let escaped = s.replace('%', "%%").replace('$', "$$");
    if escaped
        .chars()
        .any(|c| c.is_whitespace() || "\"'\\;".contains(c))
    {
        Ok(format!(
            "\"{}\"",
            escaped.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    } else {
        Ok(escaped)
    }
}

/// The shipped plist with the binary's path and the home directory filled
/// in, and the carried settings as `EnvironmentVariables`.
pub fn render_plist(exe: &Path, home: &Path, carried: &Carried) -> Result<String> {
    let mut plist = LAUNCHD_PLIST
        .replace("@CREDD_BIN@", &xml_escape(utf8_path(exe)?))
        .replace("@HOME@", &xml_escape(utf8_path(home)?));
    if !carried.vars.is_empty() {
        const ANCHOR: &str = "\t<key>RunAtLoad</key>\n";
        if !plist.contains(ANCHOR) {
            bail!("launchd/com.credd.daemon.plist has no RunAtLoad key to put EnvironmentVariables before");
        }
        let mut dict = String::from("\t<key>EnvironmentVariables</key>\n\t<dict>\n");
        for (k, v) in &carried.vars {
            if v.contains(['\n', '\r']) {
                bail!("{k} holds a line break, which the plist cannot carry: fix it and run the command again");
            }
            dict.push_str(&format!(
                "\t\t<key>{k}</key>\n\t\t<string>{}</string>\n",
                xml_escape(v)
            ));
        }
        dict.push_str("\t</dict>\n");
        plist = plist.replacen(ANCHOR, &format!("{dict}{ANCHOR}"), 1);
    }
    Ok(plist)
}

pub(super) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

pub(super) fn utf8_path(p: &Path) -> Result<&str> {
    p.to_str()
        .filter(|s| !s.contains(['\n', '\r']))
        .with_context(|| {
            format!(
                "{} is not a UTF-8 path without line breaks, which a unit file or plist cannot hold: \
                 move it and run the command again",
                p.display()
            )
        })
}
