//! credd under a service manager. The systemd user units and the launchd
//! agent are embedded from `systemd/` and `launchd/`, so the files in the
//! repository are the ones installed; `credd service install | uninstall |
//! status` writes, removes and inspects them. `install` carries the settings
//! of the shell it runs in that change what the daemon reads (never a
//! secret) into the unit or plist, and the unit's `ReadWritePaths=` follow
//! them.
//! The daemon's side (socket activation, readiness) is [`crate::activation`].
//!
//! Split by idea: [`units`] renders the unit files and the plist, [`plan`]
//! is the list of steps `install`/`uninstall` run or print.
//!
//! Layering: a command file. It imports leaves only, never another command.

mod plan;
#[cfg(test)]
mod tests;
mod units;

use crate::cli::{ServiceArgs, ServiceCommand, ServiceManager};
use anyhow::{bail, Context, Result};
use credd_daemon::control::Request;
use credd_daemon::protocol::StatusReply;
use plan::*;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use units::*;

pub const SERVICE_UNIT: &str = include_str!("../../../../../systemd/credd.service");
pub const SOCKET_UNIT: &str = include_str!("../../../../../systemd/credd.socket");
pub const CONTROL_SOCKET_UNIT: &str = include_str!("../../../../../systemd/credd-control.socket");
/// The boot-time system unit that runs `credd docker setup` (docs/docker.md).
pub const DOCKER_SETUP_UNIT: &str =
    include_str!("../../../../../systemd/credd-docker-setup.service");
const DOCKER_SETUP_NAME: &str = "credd-docker-setup.service";
pub const LAUNCHD_PLIST: &str = include_str!("../../../../../launchd/com.credd.daemon.plist");

/// The `ExecStart=` line of the unit in the repository (right for
/// `cargo install`); `install` puts the running binary's path in its place.
const UNIT_EXEC_START: &str = "ExecStart=%h/.cargo/bin/credd serve";
const LAUNCHD_LABEL: &str = "com.credd.daemon";
const UNIT_NAMES: [&str; 3] = ["credd.service", "credd.socket", "credd-control.socket"];

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
        self.carried =
            Carried::from_env(&crate::environment::env_var, self.manager, &self.home, &cwd)?;
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

    /// Where `install` puts the manual pages: the user's own man
    /// directory, on Linux and macOS alike.
    fn man_dir(&self) -> PathBuf {
        self.home.join(".local/share/man/man1")
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
            ServiceManager::Launchd => crate::environment::state_dir(),
        }
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
    eprintln!("{}", man_hint(&site.man_dir()).await);
    let tries = match site.manager {
        // Type=notify: `systemctl start` returned once credd was ready.
        ServiceManager::Systemd => 1,
        // `launchctl bootstrap` returns before the daemon is up.
        ServiceManager::Launchd => 50,
    };
    match ping(tries).await {
        Ok(v) => eprintln!(
            "credd is running as a service (pid {}), endpoint {}; `credd status` lists its profiles",
            v.daemon.pid, v.daemon.container_url
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
        &crate::environment::env_var,
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
            crate::client::socket_path().display()
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
                v.daemon.version,
                v.daemon.pid,
                crate::client::socket_path().display(),
                v.daemon.container_url
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("daemon: not answering ({e})");
            Ok(ExitCode::from(crate::exit::NOT_RUNNING))
        }
    }
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
    let pid = u64::from(v.daemon.pid);
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
            crate::client::socket_path().display()
        );
    }
    Ok(())
}

/// Asks the daemon for its status, `tries` times 100 ms apart.
async fn ping(tries: u32) -> std::result::Result<StatusReply, String> {
    let mut last = String::new();
    for i in 0..tries.max(1) {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match crate::client::call(Request::Status).await {
            Ok(v) => return Ok(v),
            Err(e) => last = format!("{e:#}"),
        }
    }
    Err(last)
}

/// Whether `man credd` finds the pages just installed in `dir`: asks `man
/// -w credd` (as the user's shell would run it); when it names another
/// page or none, says how to put `dir`'s parent on `MANPATH`.
async fn man_hint(dir: &Path) -> String {
    let found = tokio::process::Command::new("man")
        .args(["-w", "credd"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    man_hint_for(dir, found.as_deref())
}

/// [`man_hint`]'s sentence for what `man -w credd` printed (`None`: it
/// failed or there is no `man`).
fn man_hint_for(dir: &Path, found: Option<&str>) -> String {
    let root = dir.parent().unwrap_or(dir);
    match found {
        Some(page) if Path::new(page).starts_with(root) => {
            format!("manual pages installed in {}: `man credd`", dir.display())
        }
        _ => format!(
            "manual pages installed in {}, which `man` does not search here: add \
             `export MANPATH=\"{}:$(manpath)\"` to your shell's profile, then `man credd`",
            dir.display(),
            root.display()
        ),
    }
}
