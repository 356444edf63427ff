//! credd under a service manager. The systemd user units and the launchd
//! agent are embedded from `systemd/` and `launchd/`, so the files in the
//! repository are the ones installed; `credd service install | uninstall |
//! status` writes, removes and inspects them. `install` carries the settings
//! of the shell it runs in that change what the daemon reads (never a
//! secret) into the unit or plist, and the unit's `ReadWritePaths=` follow
//! them. The daemon's side of the
//! protocol lives here too: listeners handed in through `LISTEN_FDS` (socket
//! activation) and readiness sent to `$NOTIFY_SOCKET`.

use crate::cli::{ServiceArgs, ServiceCommand, ServiceManager};
use anyhow::{bail, Context, Result};
use credd_daemon::control::Request;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

pub const SERVICE_UNIT: &str = include_str!("../../../systemd/credd.service");
pub const SOCKET_UNIT: &str = include_str!("../../../systemd/credd.socket");
pub const CONTROL_SOCKET_UNIT: &str = include_str!("../../../systemd/credd-control.socket");
/// The boot-time system unit that runs `credd docker setup` (docs/docker.md).
pub const DOCKER_SETUP_UNIT: &str = include_str!("../../../systemd/credd-docker-setup.service");
const DOCKER_SETUP_NAME: &str = "credd-docker-setup.service";
pub const LAUNCHD_PLIST: &str = include_str!("../../../launchd/com.credd.daemon.plist");

/// The `ExecStart=` line of the unit in the repository (right for
/// `cargo install`); `install` puts the running binary's path in its place.
const UNIT_EXEC_START: &str = "ExecStart=%h/.cargo/bin/credd serve";
const LAUNCHD_LABEL: &str = "com.credd.daemon";
const UNIT_NAMES: [&str; 3] = ["credd.service", "credd.socket", "credd-control.socket"];

// ---------------------------------------------------------------------------
// The daemon's side: socket activation and readiness.

/// Listening sockets handed in by a service manager, by role.
#[derive(Debug, Default)]
pub struct HandedIn {
    pub endpoint: Option<std::net::TcpListener>,
    pub imds: Option<std::net::TcpListener>,
    pub control: Option<std::os::unix::net::UnixListener>,
}

/// Takes the sockets a service manager passed (sd_listen_fds(3)): only when
/// `LISTEN_PID` is this process, from fd 3 on, told apart by
/// `LISTEN_FDNAMES` ("endpoint", "imds", "control"; systemd's
/// `FileDescriptorName=`). A socket with another name (an unnamed one, or
/// one named after its socket unit) is told apart by its type: a Unix socket
/// is the control socket, a TCP socket the endpoint.
///
/// Every descriptor is marked close-on-exec, so the only processes the
/// daemon starts (credential_process and mfa_process commands) do not
/// inherit them. listenfd removes `LISTEN_PID` and `LISTEN_FDS` from the
/// environment; this runs before the daemon starts any task, so no other
/// thread reads the environment meanwhile. `LISTEN_FDNAMES` stays, which is
/// harmless: a child without `LISTEN_FDS` and with another pid ignores it.
pub fn handed_in_listeners() -> Result<HandedIn> {
    // Variables meant for another process (LISTEN_PID is not ours) are
    // ignored whole, names included, as sd_listen_fds_with_names(3) does.
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if !ours {
        return Ok(HandedIn::default());
    }
    // sd-notify checks LISTEN_PID again, parses LISTEN_FDNAMES and sets
    // FD_CLOEXEC, without touching the environment.
    let named: Vec<(i32, String)> = sd_notify::listen_fds_with_names()
        .context("LISTEN_FDS or LISTEN_FDNAMES is malformed")?
        .collect();
    let mut handed = HandedIn::default();
    if named.is_empty() {
        return Ok(handed);
    }
    // listenfd turns a descriptor into a listener after checking its socket
    // family and type, which credd cannot do itself under forbid(unsafe_code).
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() != named.len() {
        bail!(
            "LISTEN_FDS says {} sockets but {} could be taken",
            named.len(),
            fds.len()
        );
    }
    for (idx, (fd, name)) in named.iter().enumerate() {
        let (fd, name) = (*fd, name.as_str());
        let role = match name {
            "endpoint" => {
                put(
                    &mut handed.endpoint,
                    take_tcp(&mut fds, idx, fd, name)?,
                    name,
                    fd,
                )?;
                "endpoint"
            }
            "imds" => {
                put(
                    &mut handed.imds,
                    take_tcp(&mut fds, idx, fd, name)?,
                    name,
                    fd,
                )?;
                "imds"
            }
            "control" => {
                let l = fds
                    .take_unix_listener(idx)
                    .with_context(|| {
                        format!("fd {fd} (named 'control') is not a listening Unix stream socket")
                    })?
                    .with_context(|| format!("fd {fd} was taken twice"))?;
                put(&mut handed.control, l, name, fd)?;
                "control"
            }
            _ => {
                if let Ok(Some(l)) = fds.take_unix_listener(idx) {
                    put(&mut handed.control, l, "control", fd)?;
                    "control"
                } else {
                    let l = fds
                        .take_tcp_listener(idx)
                        .with_context(|| {
                            format!(
                                "fd {fd} (named '{name}') is neither a TCP nor a Unix stream socket: \
                                 name each socket unit's socket with FileDescriptorName=endpoint, imds or control"
                            )
                        })?
                        .with_context(|| format!("fd {fd} was taken twice"))?;
                    put(&mut handed.endpoint, l, "endpoint", fd)?;
                    "endpoint"
                }
            }
        };
        tracing::info!(fd, name, role, "socket handed in by the service manager");
    }
    Ok(handed)
}

fn take_tcp(
    fds: &mut listenfd::ListenFd,
    idx: usize,
    fd: i32,
    name: &str,
) -> Result<std::net::TcpListener> {
    fds.take_tcp_listener(idx)
        .with_context(|| format!("fd {fd} (named '{name}') is not a listening TCP socket"))?
        .with_context(|| format!("fd {fd} was taken twice"))
}

fn put<T>(slot: &mut Option<T>, value: T, role: &str, fd: i32) -> Result<()> {
    if slot.is_some() {
        bail!(
            "more than one '{role}' socket was handed in (the second is fd {fd}): \
             give each socket unit its own FileDescriptorName= (endpoint, imds, control)"
        );
    }
    *slot = Some(value);
    Ok(())
}

/// Tells the service manager (when `$NOTIFY_SOCKET` is set: systemd with
/// `Type=notify`) that the listeners are bound and the profiles loaded. A
/// no-op without it.
pub fn notify_ready(ready: &credd_daemon::Ready) {
    let status = format!(
        "serving http://{}{}/PROFILE; control socket {}",
        ready.container,
        credd_daemon::container::CREDENTIALS_PATH,
        ready.control_socket.display()
    );
    notify(
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ],
        "ready",
    );
}

/// Tells the service manager that credd is shutting down.
pub fn notify_stopping() {
    notify(
        &[
            sd_notify::NotifyState::Stopping,
            sd_notify::NotifyState::Status("stopping"),
        ],
        "stopping",
    );
}

fn notify(states: &[sd_notify::NotifyState], what: &str) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    match sd_notify::notify(states) {
        Ok(()) => tracing::debug!("told the service manager: {what}"),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot tell the service manager that credd is {what} (NOTIFY_SOCKET)"
        ),
    }
}

// ---------------------------------------------------------------------------
// `credd service install | uninstall | status`.

pub async fn run(cmd: ServiceCommand) -> Result<ExitCode> {
    match &cmd {
        ServiceCommand::Install(a) if a.docker_setup => return docker_setup_unit(a, true).await,
        ServiceCommand::Uninstall(a) if a.docker_setup => return docker_setup_unit(a, false).await,
        _ => {}
    }
    match cmd {
        ServiceCommand::Install(a) => install(&a).await,
        ServiceCommand::Uninstall(a) => uninstall(&a).await,
        ServiceCommand::Status(a) => status(&a).await,
    }
}

/// The shipped docker-setup unit with `ExecStart=` at this binary.
pub fn render_docker_setup_unit(exe: &Path) -> Result<String> {
    let shipped = "ExecStart=/usr/local/bin/credd docker setup";
    anyhow::ensure!(
        DOCKER_SETUP_UNIT.contains(shipped),
        "the shipped credd-docker-setup.service has no `{shipped}` line"
    );
    Ok(DOCKER_SETUP_UNIT.replace(
        shipped,
        &format!("ExecStart={} docker setup", systemd_quote(exe)?),
    ))
}

/// Where system units go: `CREDD_SYSTEM_UNIT_DIR` (a packager's
/// /usr/local/lib/systemd/system, or a test's directory), else
/// /etc/systemd/system.
fn system_unit_dir() -> PathBuf {
    std::env::var_os("CREDD_SYSTEM_UNIT_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/etc/systemd/system"))
}

/// `credd service install|uninstall --docker-setup`: the boot-time system
/// unit (systemd only: on macOS, Docker Desktop's containers reach credd
/// through the relay, which needs no setup; docs/docker.md).
async fn docker_setup_unit(a: &ServiceArgs, install: bool) -> Result<ExitCode> {
    if a.manager == Some(ServiceManager::Launchd)
        || (a.manager.is_none() && cfg!(target_os = "macos"))
    {
        bail!("--docker-setup is a systemd system unit for Linux docker engines; on macOS (Docker Desktop) containers reach credd through `credd relay`, which needs no boot-time setup (docs/docker.md)");
    }
    let exe = std::env::current_exe()
        .context("failed to find the path of the credd binary (std::env::current_exe)")?;
    let path = system_unit_dir().join(DOCKER_SETUP_NAME);
    let what = if install {
        "credd service install --docker-setup"
    } else {
        "credd service uninstall --docker-setup"
    };
    let plan = if install {
        vec![
            Step::Write {
                path: path.clone(),
                contents: render_docker_setup_unit(&exe)?,
            },
            run_step(&["systemctl", "daemon-reload"]),
            run_step(&["systemctl", "enable", "--now", DOCKER_SETUP_NAME]),
        ]
    } else {
        let mut p = vec![Step::Run {
            argv: ["systemctl", "disable", "--now", DOCKER_SETUP_NAME]
                .map(String::from)
                .to_vec(),
            may_fail: true,
        }];
        if path.exists() {
            p.push(Step::Remove { path: path.clone() });
        }
        p.push(run_step(&["systemctl", "daemon-reload"]));
        p
    };
    let sudo = format!(
        "sudo {} service {} --docker-setup",
        exe.display(),
        if install { "install" } else { "uninstall" }
    );
    if a.print {
        print_plan(what, &plan);
        println!(
            "
# as root: {sudo}"
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !rustix::process::geteuid().is_root() {
        bail!("{DOCKER_SETUP_NAME} is a system unit (it changes network settings at boot, as root): run `{sudo}` (see what it does with --print)");
    }
    execute(&plan).await?;
    if install {
        eprintln!(
            "{DOCKER_SETUP_NAME} runs `{} docker setup` at boot and after every docker start; `credd doctor` checks the result",
            exe.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One change or command, shown by `--print` and carried out otherwise.
#[derive(Debug)]
enum Step {
    /// A directory, created 0700 when `private`.
    Mkdir {
        path: PathBuf,
        private: bool,
    },
    Write {
        path: PathBuf,
        contents: String,
    },
    Remove {
        path: PathBuf,
    },
    /// A command; `may_fail` for those whose failure only means "there was
    /// nothing to undo" (e.g. `launchctl bootout` of an agent not loaded).
    Run {
        argv: Vec<String>,
        may_fail: bool,
    },
}

fn run_step(argv: &[&str]) -> Step {
    Step::Run {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        may_fail: false,
    }
}

/// Paths and names the plans are made from.
#[derive(Debug)]
struct Site {
    manager: ServiceManager,
    home: PathBuf,
    exe: PathBuf,
    uid: u32,
    /// What `install` carries over from this shell.
    carried: Carried,
}

impl Site {
    fn new(a: &ServiceArgs) -> Result<Self> {
        let manager = match a.manager {
            Some(m) => m,
            None if cfg!(target_os = "macos") => ServiceManager::Launchd,
            None if cfg!(target_os = "linux") => ServiceManager::Systemd,
            None => bail!(
                "credd service knows systemd (Linux) and launchd (macOS); on this system, start \
                 `credd serve` from your login scripts instead (docs/service.md)"
            ),
        };
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .context(
                "HOME is not set: credd service installs for the user whose home directory that is",
            )?;
        let exe = std::env::current_exe()
            .context("failed to find the path of the credd binary (std::env::current_exe)")?;
        Ok(Site {
            manager,
            home,
            exe,
            uid: credd_daemon::fsutil::my_uid(),
            carried: Carried::default(),
        })
    }

    /// With the settings of this shell that `install` carries; only
    /// `install` reads them, so a bad one never blocks `uninstall`.
    fn carrying(mut self) -> Result<Self> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| self.home.clone());
        self.carried = Carried::from_env(&crate::serve::env_var, self.manager, &self.home, &cwd)?;
        Ok(self)
    }

    /// `$XDG_CONFIG_HOME/systemd/user`, where the user manager looks first.
    fn unit_dir(&self) -> PathBuf {
        std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| self.home.join(".config"))
            .join("systemd/user")
    }

    fn unit_paths(&self) -> Vec<PathBuf> {
        UNIT_NAMES.iter().map(|n| self.unit_dir().join(n)).collect()
    }

    fn plist_path(&self) -> PathBuf {
        self.home
            .join("Library/LaunchAgents")
            .join(format!("{LAUNCHD_LABEL}.plist"))
    }

    fn launchd_target(&self) -> String {
        format!("gui/{}/{LAUNCHD_LABEL}", self.uid)
    }

    /// Where the installed daemon keeps sessions and tokens (the unit pins
    /// it; launchd agents get the default).
    fn state_dir(&self) -> PathBuf {
        if let Some(d) = &self.carried.state_dir {
            return d.clone();
        }
        match self.manager {
            ServiceManager::Systemd => self.home.join(".local/state/credd"),
            ServiceManager::Launchd => credd_daemon::config::state_dir(&crate::serve::env_var),
        }
    }
}

// ---------------------------------------------------------------------------
// What `install` carries over from the shell it runs in.

/// Variables that change what the daemon reads, carried into the unit or
/// plist so that the service sees the same files as the CLI.
const CARRIED_PATHS: [&str; 3] = [
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "CREDD_CONFIG",
];
/// botocore's override of `~/.aws/login/cache` (`aws login` sessions).
const LOGIN_CACHE_VAR: &str = "AWS_LOGIN_CACHE_DIRECTORY";
/// Secrets a shell may hold; a unit file or plist is readable by anything
/// running as the user and lands in backups, so they are never written
/// there, whatever else is carried.
const SECRET_VARS: [&str; 6] = [
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
const UNIT_STATE_ENV: &str = "Environment=CREDD_STATE_DIR=%h/.local/state/credd";
const UNIT_RUNTIME_ENV: &str = "Environment=CREDD_RUNTIME_DIR=%t/credd";
const UNIT_MKDIR_OWN: &str = "ExecStartPre=+/bin/mkdir -p -m 0700 %h/.local/state/credd %t/credd";
const UNIT_MKDIR_SHARED: &str =
    "ExecStartPre=-+/bin/mkdir -p -m 0700 %h/.aws/sso/cache %h/.aws/login/cache";
const UNIT_RW_OWN: &str = "ReadWritePaths=%h/.local/state/credd %t/credd";
const UNIT_RW_SHARED: &str = "ReadWritePaths=-%h/.aws/sso/cache -%h/.aws/login/cache";

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
fn unit_environment(name: &str, value: &str) -> Result<String> {
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
fn unit_path_word(path: &Path, prefix: &str) -> Result<String> {
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
fn systemd_quote(path: &Path) -> Result<String> {
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

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn utf8_path(p: &Path) -> Result<&str> {
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

fn install_plan(site: &Site) -> Result<Vec<Step>> {
    Ok(match site.manager {
        ServiceManager::Systemd => {
            let dir = site.unit_dir();
            vec![
                Step::Mkdir {
                    path: dir.clone(),
                    private: false,
                },
                Step::Write {
                    path: dir.join("credd.service"),
                    contents: render_service_unit(&site.exe, &site.carried)?,
                },
                Step::Write {
                    path: dir.join("credd.socket"),
                    contents: SOCKET_UNIT.to_string(),
                },
                Step::Write {
                    path: dir.join("credd-control.socket"),
                    contents: CONTROL_SOCKET_UNIT.to_string(),
                },
                run_step(&["systemctl", "--user", "daemon-reload"]),
                // A credd.service already running holds the endpoint (maybe
                // bound by itself, from before the socket units) and runs the
                // old binary: stop it first. It fails when none is loaded.
                Step::Run {
                    argv: ["systemctl", "--user", "stop", "credd.service"]
                        .map(String::from)
                        .to_vec(),
                    may_fail: true,
                },
                run_step(&[
                    "systemctl",
                    "--user",
                    "enable",
                    "--now",
                    "credd.socket",
                    "credd-control.socket",
                ]),
                // Type=notify: returns once credd is ready.
                run_step(&["systemctl", "--user", "enable", "--now", "credd.service"]),
            ]
        }
        ServiceManager::Launchd => {
            let plist = site.plist_path();
            let plist_text = utf8_path(&plist)?.to_string();
            let target = site.launchd_target();
            vec![
                Step::Mkdir {
                    path: plist.parent().expect("has a parent").to_path_buf(),
                    private: false,
                },
                Step::Mkdir {
                    path: site.home.join("Library/Logs/credd"),
                    private: true,
                },
                Step::Write {
                    path: plist,
                    contents: render_plist(&site.exe, &site.home, &site.carried)?,
                },
                Step::Run {
                    argv: vec!["launchctl".into(), "bootout".into(), target.clone()],
                    may_fail: true,
                },
                Step::Run {
                    argv: vec!["launchctl".into(), "enable".into(), target],
                    may_fail: false,
                },
                Step::Run {
                    argv: vec![
                        "launchctl".into(),
                        "bootstrap".into(),
                        format!("gui/{}", site.uid),
                        plist_text,
                    ],
                    may_fail: false,
                },
            ]
        }
    })
}

/// The files `install` wrote that exist, and the steps that undo it.
fn uninstall_plan(site: &Site) -> (Vec<PathBuf>, Vec<Step>) {
    match site.manager {
        ServiceManager::Systemd => {
            let present: Vec<PathBuf> = site
                .unit_paths()
                .into_iter()
                .filter(|p| p.exists())
                .collect();
            if present.is_empty() {
                return (present, Vec::new());
            }
            let mut disable = vec!["systemctl", "--user", "disable", "--now"];
            let names: Vec<String> = present
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            disable.extend(names.iter().map(String::as_str));
            let mut steps = vec![run_step(&disable)];
            steps.extend(present.iter().map(|p| Step::Remove { path: p.clone() }));
            steps.push(run_step(&["systemctl", "--user", "daemon-reload"]));
            (present, steps)
        }
        ServiceManager::Launchd => {
            let plist = site.plist_path();
            if !plist.exists() {
                return (Vec::new(), Vec::new());
            }
            let steps = vec![
                Step::Run {
                    argv: vec!["launchctl".into(), "bootout".into(), site.launchd_target()],
                    may_fail: true,
                },
                Step::Remove {
                    path: plist.clone(),
                },
            ];
            (vec![plist], steps)
        }
    }
}

fn status_commands(site: &Site) -> Vec<Vec<String>> {
    match site.manager {
        ServiceManager::Systemd => vec![[
            "systemctl",
            "--user",
            "status",
            "--no-pager",
            "--lines=5",
            "credd.service",
            "credd.socket",
            "credd-control.socket",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()],
        ServiceManager::Launchd => vec![vec![
            "launchctl".into(),
            "print".into(),
            site.launchd_target(),
        ]],
    }
}

async fn install(a: &ServiceArgs) -> Result<ExitCode> {
    let site = Site::new(a)?.carrying()?;
    let plan = install_plan(&site)?;
    for w in &site.carried.warnings {
        eprintln!("warning: {w}");
    }
    if a.print {
        print_plan("credd service install", &plan);
        return Ok(ExitCode::SUCCESS);
    }
    preflight(&site).await?;
    refuse_foreign_daemon(&site).await?;
    execute(&plan).await?;
    eprintln!(
        "the service runs {}: after rebuilding or moving credd, run `credd service install` again",
        site.exe.display()
    );
    let tries = match site.manager {
        // Type=notify: `systemctl start` returned once credd was ready.
        ServiceManager::Systemd => 1,
        // `launchctl bootstrap` returns before the daemon is up.
        ServiceManager::Launchd => 50,
    };
    match ping(tries).await {
        Ok(v) => eprintln!(
            "credd is running as a service (pid {}), endpoint {}; `credd status` lists its profiles",
            v["daemon"]["pid"],
            v["daemon"]["container_url"].as_str().unwrap_or("?")
        ),
        Err(e) => eprintln!(
            "the service was started, but no daemon answers yet ({e}); see `credd service status`"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

async fn uninstall(a: &ServiceArgs) -> Result<ExitCode> {
    let mut site = Site::new(a)?;
    // Only to name where the sessions are kept: a setting `install` would
    // refuse does not block `uninstall`.
    if let Ok(carried) = Carried::from_env(
        &crate::serve::env_var,
        site.manager,
        &site.home,
        &std::env::current_dir().unwrap_or_else(|_| site.home.clone()),
    ) {
        site.carried = carried;
    }
    let (present, plan) = uninstall_plan(&site);
    if present.is_empty() {
        let looked: Vec<String> = match site.manager {
            ServiceManager::Systemd => site.unit_paths(),
            ServiceManager::Launchd => vec![site.plist_path()],
        }
        .iter()
        .map(|p| p.display().to_string())
        .collect();
        eprintln!(
            "credd is not installed as a service: there is no {}; nothing to do",
            looked.join(", no ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    if a.print {
        print_plan("credd service uninstall", &plan);
        return Ok(ExitCode::SUCCESS);
    }
    preflight(&site).await?;
    execute(&plan).await?;
    eprintln!(
        "credd is no longer installed as a service; its sessions and tokens in {} are kept \
         (delete that directory to forget them)",
        site.state_dir().display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn status(a: &ServiceArgs) -> Result<ExitCode> {
    let site = Site::new(a)?;
    let commands = status_commands(&site);
    if a.print {
        println!("credd service status --print: it would run (and change nothing):");
        for c in &commands {
            println!("# run: {}", shell_words(c));
        }
        println!(
            "# ping: the daemon's control socket {}",
            crate::commands::socket_path().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let installed = match site.manager {
        ServiceManager::Systemd => site.unit_dir().join("credd.service"),
        ServiceManager::Launchd => site.plist_path(),
    };
    match std::fs::read_to_string(&installed) {
        Ok(text) => {
            println!("installed: {}", installed.display());
            let runs_this = match site.manager {
                ServiceManager::Systemd => render_service_unit(&site.exe, &Carried::default())
                    .map(|u| exec_start(&u) == exec_start(&text))
                    .unwrap_or(false),
                ServiceManager::Launchd => text.contains(&xml_escape(utf8_path(&site.exe)?)),
            };
            if !runs_this {
                println!(
                    "  it runs another credd binary than this one ({}); `credd service install` switches it to this one",
                    site.exe.display()
                );
            }
        }
        Err(_) => println!(
            "not installed: no {} (`credd service install` installs it)",
            installed.display()
        ),
    }
    for c in &commands {
        println!("$ {}", shell_words(c));
        match tokio::process::Command::new(&c[0])
            .args(&c[1..])
            .stdin(std::process::Stdio::null())
            .status()
            .await
        {
            // Non-zero only says the unit is stopped or unknown: shown above.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("{} not found on PATH: {}", c[0], missing_tool_hint(&c[0]))
            }
            Err(e) => println!("cannot run {}: {e}", c[0]),
        }
    }
    match ping(1).await {
        Ok(v) => {
            println!(
                "daemon: credd {} (pid {}) answers on {}; endpoint {}",
                v["daemon"]["version"].as_str().unwrap_or("?"),
                v["daemon"]["pid"],
                crate::commands::socket_path().display(),
                v["daemon"]["container_url"].as_str().unwrap_or("?")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("daemon: not answering ({e})");
            Ok(ExitCode::from(crate::exit::NOT_RUNNING))
        }
    }
}

fn exec_start(unit: &str) -> Option<&str> {
    unit.lines().find(|l| l.starts_with("ExecStart="))
}

fn print_plan(what: &str, plan: &[Step]) {
    println!("{what} --print: this is what it would do; nothing was changed.\n");
    for step in plan {
        match step {
            Step::Mkdir { path, private } => println!(
                "# create directory {}{}",
                path.display(),
                if *private { " (0700)" } else { "" }
            ),
            Step::Write { path, contents } => {
                println!("# write {}:", path.display());
                for line in contents.lines() {
                    if line.is_empty() {
                        println!();
                    } else {
                        println!("    {line}");
                    }
                }
            }
            Step::Remove { path } => println!("# remove {}", path.display()),
            Step::Run { argv, may_fail } => println!(
                "# run: {}{}",
                shell_words(argv),
                if *may_fail {
                    "  (a failure is ignored: nothing was running)"
                } else {
                    ""
                }
            ),
        }
    }
}

async fn execute(plan: &[Step]) -> Result<()> {
    for step in plan {
        match step {
            Step::Mkdir { path, private } => {
                let existed = path.is_dir();
                if *private {
                    credd_daemon::fsutil::private_dir(path)
                        .with_context(|| format!("failed to create {}", path.display()))?;
                } else {
                    std::fs::create_dir_all(path)
                        .with_context(|| format!("failed to create {}", path.display()))?;
                }
                if !existed {
                    eprintln!(
                        "created {}{}",
                        path.display(),
                        if *private { " (0700)" } else { "" }
                    );
                }
            }
            Step::Write { path, contents } => {
                let dir = path.parent().context("a file path has a directory")?;
                let mut tmp = tempfile::NamedTempFile::new_in(dir)
                    .with_context(|| format!("failed to write {}", path.display()))?;
                std::io::Write::write_all(&mut tmp, contents.as_bytes())
                    .with_context(|| format!("failed to write {}", path.display()))?;
                {
                    use std::os::unix::fs::PermissionsExt;
                    tmp.as_file()
                        .set_permissions(std::fs::Permissions::from_mode(0o644))
                        .with_context(|| format!("failed to write {}", path.display()))?;
                }
                tmp.persist(path)
                    .with_context(|| format!("failed to write {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            Step::Remove { path } => {
                std::fs::remove_file(path)
                    .with_context(|| format!("failed to remove {}", path.display()))?;
                eprintln!("removed {}", path.display());
            }
            Step::Run { argv, may_fail } => {
                let shown = shell_words(argv);
                let out = tokio::process::Command::new(&argv[0])
                    .args(&argv[1..])
                    .stdin(std::process::Stdio::null())
                    .output()
                    .await;
                let out = match out {
                    Ok(o) => o,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        bail!(
                            "{} not found on PATH: {}",
                            argv[0],
                            missing_tool_hint(&argv[0])
                        )
                    }
                    Err(e) => return Err(e).with_context(|| format!("failed to run `{shown}`")),
                };
                let said = first_line(&out.stderr);
                if out.status.success() {
                    eprintln!("ran `{shown}`");
                } else if *may_fail {
                    eprintln!("ran `{shown}`: it failed ({said}), which only means there was nothing to stop");
                } else {
                    bail!(
                        "`{shown}` failed ({}): {said}\n{}",
                        out.status,
                        failure_hint(&argv[0])
                    );
                }
            }
        }
    }
    Ok(())
}

/// Checks that the service manager is there to talk to, before changing
/// anything.
async fn preflight(site: &Site) -> Result<()> {
    let (program, args): (&str, &[&str]) = match site.manager {
        ServiceManager::Systemd => ("systemctl", &["--user", "show-environment"]),
        ServiceManager::Launchd => ("launchctl", &["version"]),
    };
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) if site.manager == ServiceManager::Systemd => bail!(
            "there is no systemd user manager to talk to (`systemctl --user` said: {}). Log in \
             directly (a desktop or ssh session, not `su` or `sudo -u`) and run this again; from \
             an admin shell, `loginctl enable-linger USER` starts a user manager for USER, then \
             `machinectl shell USER@` gets a session that reaches it",
            first_line(&o.stderr)
        ),
        // `launchctl version` is not on every macOS: only a missing
        // launchctl is fatal here.
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "{program} not found on PATH: {}",
                missing_tool_hint(program)
            )
        }
        Err(e) => Err(e).with_context(|| format!("failed to run {program}")),
    }
}

/// A `credd serve` started by hand holds the endpoint's port and the
/// control socket, so the service could not start: say so before changing
/// anything.
async fn refuse_foreign_daemon(site: &Site) -> Result<()> {
    let Ok(v) = ping(1).await else {
        return Ok(());
    };
    let pid = v["daemon"]["pid"].as_u64().unwrap_or(0);
    let managed = match site.manager {
        ServiceManager::Systemd => {
            tokio::process::Command::new("systemctl")
                .args([
                    "--user",
                    "show",
                    "--property=MainPID",
                    "--value",
                    "credd.service",
                ])
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .ok()
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                == Some(pid)
        }
        // bootout stops an agent launchd runs; one started by hand is
        // reported once the agent fails to bind (see `credd service status`).
        ServiceManager::Launchd => true,
    };
    if !managed {
        bail!(
            "a credd not started by the service manager is already running (pid {pid}, control socket {}); \
             it holds the endpoint's address, so the service could not start. Stop it (`kill {pid}`) \
             and run `credd service install` again",
            crate::commands::socket_path().display()
        );
    }
    Ok(())
}

/// Asks the daemon for its status, `tries` times 100 ms apart.
async fn ping(tries: u32) -> std::result::Result<serde_json::Value, String> {
    let mut last = String::new();
    for i in 0..tries.max(1) {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match crate::commands::call(Request::Status).await {
            Ok(v) => return Ok(v),
            Err(e) => last = format!("{e:#}"),
        }
    }
    Err(last)
}

fn missing_tool_hint(program: &str) -> &'static str {
    match program {
        "systemctl" => {
            "`credd service` manages a systemd user service and this system has no systemd \
             (on macOS, use --manager launchd); otherwise start `credd serve` from your login \
             scripts (docs/service.md)"
        }
        "launchctl" => {
            "launchd is macOS's service manager; on Linux, use --manager systemd (the default)"
        }
        _ => "install it, or start `credd serve` from your login scripts (docs/service.md)",
    }
}

fn failure_hint(program: &str) -> &'static str {
    match program {
        "systemctl" => {
            "See `systemctl --user status credd.service` and `journalctl --user -u credd.service` \
             for why; `credd service status` shows both."
        }
        _ => {
            "See `launchctl print gui/$(id -u)/com.credd.daemon` and \
             ~/Library/Logs/credd/credd.log for why."
        }
    }
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message")
        .to_string()
}

/// A command line as a person would type it.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/:._-+=%@,".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn carried(vars: &[(&str, &str)], manager: ServiceManager) -> Carried {
        Carried::from_env(
            &env_of(vars),
            manager,
            Path::new("/home/me"),
            Path::new("/home/me/src"),
        )
        .unwrap()
    }

    #[test]
    fn the_unit_lets_the_daemon_write_only_its_own_dirs_and_the_shared_caches() {
        let u = render_service_unit(Path::new("/opt/credd"), &Carried::default()).unwrap();
        let rw: Vec<&str> = u
            .lines()
            .filter_map(|l| l.strip_prefix("ReadWritePaths="))
            .flat_map(str::split_whitespace)
            .collect();
        assert_eq!(
            rw,
            [
                "%h/.local/state/credd",
                "%t/credd",
                "-%h/.aws/sso/cache",
                "-%h/.aws/login/cache"
            ]
        );
        assert!(u.contains("\nProtectHome=read-only\n"));
        assert!(u.contains("\nProtectSystem=strict\n"));
        // Every writable directory is made before the sandbox is set up.
        let made: Vec<&str> = u
            .lines()
            .filter_map(|l| l.strip_prefix("ExecStartPre="))
            .flat_map(|l| l.split_whitespace().skip(3))
            .collect();
        for p in &rw {
            assert!(made.contains(&p.trim_start_matches('-')), "{p} is not made");
        }
        // Nothing is carried from an empty shell.
        assert!(!u.contains("Carried"));
    }

    #[test]
    fn install_carries_the_files_the_daemon_reads_and_never_a_secret() {
        let c = carried(
            &[
                ("AWS_CONFIG_FILE", "~/work/aws config"),
                ("AWS_SHARED_CREDENTIALS_FILE", "creds"),
                ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "canary-secret"),
                ("AWS_PROFILE", "dev"),
                ("AWS_ENDPOINT_URL", "http://localhost:4566"),
                ("AWS_LOGIN_CACHE_DIRECTORY", "/srv/me/login 100%"),
                ("CREDD_STATE_DIR", "/srv/me/state"),
            ],
            ServiceManager::Systemd,
        );
        assert_eq!(
            c.vars,
            [
                ("AWS_CONFIG_FILE", "/home/me/work/aws config".to_string()),
                (
                    "AWS_SHARED_CREDENTIALS_FILE",
                    "/home/me/src/creds".to_string()
                ),
                (
                    "AWS_LOGIN_CACHE_DIRECTORY",
                    "/srv/me/login 100%".to_string()
                ),
                ("CREDD_STATE_DIR", "/srv/me/state".to_string()),
            ]
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY are set")),
            "{:?}",
            c.warnings
        );
        let u = render_service_unit(Path::new("/opt/credd"), &c).unwrap();
        assert!(!u.contains("AKIAEXAMPLE") && !u.contains("canary-secret"));
        assert!(!u.contains("AWS_PROFILE") && !u.contains("localhost:4566"));
        assert!(u.contains("\nEnvironment=\"AWS_CONFIG_FILE=/home/me/work/aws config\"\n"));
        assert!(u.contains("\nEnvironment=\"AWS_LOGIN_CACHE_DIRECTORY=/srv/me/login 100%%\"\n"));
        // The writable directories follow the moved ones.
        assert!(
            u.contains("\nEnvironment=CREDD_STATE_DIR=/srv/me/state\n"),
            "{u}"
        );
        assert!(
            u.contains("\nReadWritePaths=/srv/me/state %t/credd\n"),
            "{u}"
        );
        assert!(u.contains("\nReadWritePaths=-%h/.aws/sso/cache \"-/srv/me/login 100%%\"\n"));
        assert!(u.contains(
            "\nExecStartPre=-+/bin/mkdir -p -m 0700 %h/.aws/sso/cache \"/srv/me/login 100%%\"\n"
        ));
        assert!(!u.contains(".local/state"), "{u}");

        let p = render_plist(Path::new("/opt/credd"), Path::new("/Users/me"), &c).unwrap();
        assert!(
            p.contains("<key>AWS_CONFIG_FILE</key>\n\t\t<string>/home/me/work/aws config</string>")
        );
        assert!(!p.contains("AKIAEXAMPLE"));
    }

    #[test]
    fn a_default_state_dir_or_runtime_dir_is_not_carried() {
        let c = carried(
            &[
                ("CREDD_STATE_DIR", "/home/me/.local/state/credd"),
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
                ("CREDD_RUNTIME_DIR", "/run/user/1000/credd"),
            ],
            ServiceManager::Systemd,
        );
        assert_eq!(c, Carried::default());
        let c = carried(
            &[("CREDD_RUNTIME_DIR", "/elsewhere")],
            ServiceManager::Systemd,
        );
        assert!(c.vars.is_empty());
        assert!(c.warnings[0].contains("unset CREDD_RUNTIME_DIR"), "{c:?}");
        let c = carried(
            &[("CREDD_RUNTIME_DIR", "/elsewhere")],
            ServiceManager::Launchd,
        );
        assert_eq!(c.vars, [("CREDD_RUNTIME_DIR", "/elsewhere".to_string())]);
    }

    #[test]
    fn a_credd_toml_the_daemon_could_not_read_is_refused_at_install() {
        let e = Carried::from_env(
            &env_of(&[("CREDD_CONFIG", "/nonexistent/credd.toml")]),
            ServiceManager::Systemd,
            Path::new("/home/me"),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("/nonexistent/credd.toml"),
            "{e:#}"
        );
        let e = Carried::from_env(
            &env_of(&[("AWS_LOGIN_CACHE_DIRECTORY", "$HOME/x")]),
            ServiceManager::Systemd,
            Path::new("/home/me"),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("full path"), "{e:#}");
    }

    #[test]
    fn the_unit_gets_the_binary_path_escaped() {
        let none = Carried::default();
        let u = render_service_unit(Path::new("/opt/credd/bin/credd"), &none).unwrap();
        assert!(u.contains("\nExecStart=/opt/credd/bin/credd serve\n"));
        assert!(!u.contains(UNIT_EXEC_START));
        let u = render_service_unit(Path::new("/home/a b/100%/$x/credd"), &none).unwrap();
        assert!(
            u.contains("\nExecStart=\"/home/a b/100%%/$$x/credd\" serve\n"),
            "{u}"
        );
        assert_eq!(
            systemd_quote(Path::new("/a\"b\\c")).unwrap(),
            "\"/a\\\"b\\\\c\""
        );
        assert!(render_service_unit(Path::new("/a\nb"), &none).is_err());
    }

    #[test]
    fn the_plist_gets_the_binary_and_home_escaped() {
        let p = render_plist(
            Path::new("/Users/a&b/bin/credd"),
            Path::new("/Users/a&b"),
            &Carried::default(),
        )
        .unwrap();
        assert!(!p.contains("EnvironmentVariables"));
        assert!(p.contains("<string>/Users/a&amp;b/bin/credd</string>"));
        assert!(p.contains("<string>/Users/a&amp;b/Library/Logs/credd/credd.log</string>"));
        assert!(!p.contains('@'), "a placeholder was left: {p}");
    }

    #[test]
    fn the_socket_units_name_their_sockets_as_the_daemon_expects() {
        assert!(SOCKET_UNIT.contains("\nFileDescriptorName=endpoint\n"));
        assert!(CONTROL_SOCKET_UNIT.contains("\nFileDescriptorName=control\n"));
        assert!(CONTROL_SOCKET_UNIT.contains("\nListenStream=%t/credd/control.sock\n"));
        assert!(SERVICE_UNIT.contains("\nEnvironment=CREDD_RUNTIME_DIR=%t/credd\n"));
        assert!(SOCKET_UNIT.contains(&format!(
            "\nListenStream={}\n",
            credd_daemon::config::DEFAULT_LISTEN
        )));
    }

    #[test]
    fn commands_are_shown_as_typed() {
        let argv: Vec<String> = ["launchctl", "bootstrap", "gui/501", "/Users/a b/x.plist"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            shell_words(&argv),
            "launchctl bootstrap gui/501 '/Users/a b/x.plist'"
        );
    }
}
