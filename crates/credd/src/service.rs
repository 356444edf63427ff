//! credd under a service manager. The systemd user units and the launchd
//! agent are embedded from `systemd/` and `launchd/`, so the files in the
//! repository are the ones installed; `credd service install | uninstall |
//! status` writes, removes and inspects them. The daemon's side of the
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
    match cmd {
        ServiceCommand::Install(a) => install(&a).await,
        ServiceCommand::Uninstall(a) => uninstall(&a).await,
        ServiceCommand::Status(a) => status(&a).await,
    }
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
        })
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
        match self.manager {
            ServiceManager::Systemd => self.home.join(".local/state/credd"),
            ServiceManager::Launchd => credd_daemon::config::state_dir(&crate::serve::env_var),
        }
    }
}

/// The shipped unit with `ExecStart=` pointing at `exe`.
pub fn render_service_unit(exe: &Path) -> Result<String> {
    if !SERVICE_UNIT.contains(UNIT_EXEC_START) {
        bail!("systemd/credd.service has no line `{UNIT_EXEC_START}` to replace");
    }
    Ok(SERVICE_UNIT.replacen(
        UNIT_EXEC_START,
        &format!("ExecStart={} serve", systemd_quote(exe)?),
        1,
    ))
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

/// The shipped plist with the binary's path and the home directory filled in.
pub fn render_plist(exe: &Path, home: &Path) -> Result<String> {
    Ok(LAUNCHD_PLIST
        .replace("@CREDD_BIN@", &xml_escape(utf8_path(exe)?))
        .replace("@HOME@", &xml_escape(utf8_path(home)?)))
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
                    contents: render_service_unit(&site.exe)?,
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
                    contents: render_plist(&site.exe, &site.home)?,
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
    let site = Site::new(a)?;
    let plan = install_plan(&site)?;
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
    let site = Site::new(a)?;
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
                ServiceManager::Systemd => render_service_unit(&site.exe)
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

    #[test]
    fn the_unit_gets_the_binary_path_escaped() {
        let u = render_service_unit(Path::new("/opt/credd/bin/credd")).unwrap();
        assert!(u.contains("\nExecStart=/opt/credd/bin/credd serve\n"));
        assert!(!u.contains(UNIT_EXEC_START));
        let u = render_service_unit(Path::new("/home/a b/100%/$x/credd")).unwrap();
        assert!(
            u.contains("\nExecStart=\"/home/a b/100%%/$$x/credd\" serve\n"),
            "{u}"
        );
        assert_eq!(
            systemd_quote(Path::new("/a\"b\\c")).unwrap(),
            "\"/a\\\"b\\\\c\""
        );
        assert!(render_service_unit(Path::new("/a\nb")).is_err());
    }

    #[test]
    fn the_plist_gets_the_binary_and_home_escaped() {
        let p = render_plist(Path::new("/Users/a&b/bin/credd"), Path::new("/Users/a&b")).unwrap();
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
