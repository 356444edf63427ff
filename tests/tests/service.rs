//! credd as a service, against the real binary: the systemd units pass
//! `systemd-analyze verify` with `ExecStart=` at the built credd, the
//! launchd plist parses and holds the keys launchd needs, the listeners
//! handed in through `LISTEN_FDS` are the ones served (systemd's own
//! `systemd-socket-activate` hands them in), readiness reaches
//! `NOTIFY_SOCKET`, and `credd service install | status | uninstall` write,
//! run and remove what they say, with stand-ins for systemctl and launchctl
//! (no user manager runs here). `--print` changes nothing.
//!
//! Needs systemd's tools on PATH: Debian/Ubuntu package `systemd`
//! (`systemd-analyze`, `systemd-socket-activate`).

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::*;

const UNITS: [&str; 3] = ["credd.service", "credd.socket", "credd-control.socket"];

/// A systemd tool on PATH, or a failure that names the package to install.
fn systemd_tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found on PATH: install systemd's tools (Debian/Ubuntu: \
                 `apt-get install systemd`); the service tests need it"
            )
        })
}

/// The built credd, as the binary reports its own path.
fn credd_abs() -> String {
    std::fs::canonicalize(credd_bin())
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

fn private_dir(p: &Path) -> PathBuf {
    std::fs::create_dir_all(p).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)).unwrap();
    p.to_path_buf()
}

/// `systemd-analyze --user verify` on the given unit files; asserts success
/// and that nothing was said about them (an unknown or misspelt directive
/// is only a warning, so the warnings are what catch it).
fn assert_verifies(dir: &Path, files: &[PathBuf]) {
    let runtime = private_dir(&dir.join("xdg-runtime"));
    let out = Command::new(systemd_tool("systemd-analyze"))
        .args(["--user", "verify"])
        .args(files)
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    let said = stderr_of(&out);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{said}"
    );
    assert!(
        !said.contains("credd"),
        "systemd-analyze verify warns about the units:\n{said}"
    );
}

/// A user with an empty HOME and stand-ins for systemctl and launchctl that
/// log their arguments (and answer what credd asks before changing things).
struct ServiceUser {
    dir: tempfile::TempDir,
}

impl ServiceUser {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        private_dir(&dir.path().join("run"));
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for tool in ["systemctl", "launchctl"] {
            let log = dir.path().join(format!("{tool}.log"));
            let script = format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\ncase \"$*\" in\n  *MainPID*) echo 0 ;;\nesac\nexit 0\n",
                log.display()
            );
            std::fs::write(bin.join(tool), script).unwrap();
            std::fs::set_permissions(bin.join(tool), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        ServiceUser { dir }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn home(&self) -> PathBuf {
        self.path("home")
    }
    fn credd(&self, args: &[&str]) -> Output {
        self.credd_with_path(
            args,
            &format!("{}:/usr/bin:/bin", self.path("bin").display()),
        )
    }
    fn credd_with_path(&self, args: &[&str], path: &str) -> Output {
        self.credd_with_env(args, path, &[])
    }
    fn credd_with_env(&self, args: &[&str], path: &str, vars: &[(&str, &str)]) -> Output {
        Command::new(credd_bin())
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.home())
            .env("CREDD_RUNTIME_DIR", self.path("run"))
            .env("LANG", "C.UTF-8")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
    /// The commands a stand-in was asked to run, one per line.
    fn log(&self, tool: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(&format!("{tool}.log")))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
    /// Every file and directory under the user's directory.
    fn tree(&self) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(p).unwrap() {
                let e = e.unwrap().path();
                out.push(e.clone());
                if e.is_dir() {
                    walk(&e, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out.sort();
        out
    }
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}\n{}",
        o.status,
        stderr_of(o),
        String::from_utf8_lossy(&o.stdout)
    );
    stderr_of(o)
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let repo_units = repo().join("systemd");
    let mut files = Vec::new();
    for name in UNITS {
        let text = std::fs::read_to_string(repo_units.join(name)).unwrap();
        // The shipped ExecStart= (right for `cargo install`) pointed at the
        // binary under test, as `credd service install` does.
        let text = text.replace(
            "ExecStart=%h/.cargo/bin/credd serve",
            &format!("ExecStart={} serve", credd_abs()),
        );
        if name == "credd.service" {
            assert!(text.contains(&format!("ExecStart={} serve", credd_abs())));
            for needed in [
                "Type=notify",
                "Restart=on-failure",
                "NoNewPrivileges=yes",
                "ProtectSystem=strict",
                "ProtectHome=read-only",
                "PrivateTmp=yes",
                "UMask=0077",
                "LimitCORE=0",
            ] {
                assert!(
                    text.lines().any(|l| l == needed),
                    "{needed} missing from credd.service"
                );
            }
        }
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        files.push(p);
    }
    assert_verifies(dir.path(), &files);

    // The check is not vacuous: a misspelt directive is reported.
    let bad = dir.path().join("typo.service");
    std::fs::write(
        &bad,
        format!(
            "[Service]\nExecStart={} serve\nProtectSytem=strict\n",
            credd_abs()
        ),
    )
    .unwrap();
    let out = Command::new(systemd_tool("systemd-analyze"))
        .args(["--user", "verify"])
        .arg(&bad)
        .env("XDG_RUNTIME_DIR", dir.path().join("xdg-runtime"))
        .output()
        .unwrap();
    assert!(
        stderr_of(&out).contains("ProtectSytem"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn install_print_shows_the_binary_path_and_changes_nothing() {
    let u = ServiceUser::new();
    let before = u.tree();
    let exe = credd_abs();

    let o = u.credd(&["service", "install", "--print", "--manager", "systemd"]);
    ok(&o, "service install --print");
    let out = stdout_of(&o);
    assert!(out.contains(&format!("    ExecStart={exe} serve")), "{out}");
    let unit_dir = u.home().join(".config/systemd/user");
    for name in UNITS {
        assert!(out.contains(&format!("# write {}:", unit_dir.join(name).display())));
    }
    assert!(out.contains("# run: systemctl --user daemon-reload"));
    assert!(out.contains("# run: systemctl --user enable --now credd.service"));
    assert!(
        out.contains(&format!(
            "# write {} (a manual page, as `credd man` makes it)",
            u.home().join(".local/share/man/man1/credd.1").display()
        )),
        "{out}"
    );

    let o = u.credd(&["service", "install", "--print", "--manager", "launchd"]);
    ok(&o, "service install --print --manager launchd");
    let out = stdout_of(&o);
    assert!(out.contains(&format!("<string>{exe}</string>")), "{out}");
    assert!(out.contains("# run: launchctl bootstrap gui/"));

    for args in [
        ["service", "status", "--print"],
        ["service", "uninstall", "--print"],
    ] {
        ok(&u.credd(&args), &args.join(" "));
    }

    assert_eq!(u.tree(), before, "--print changed files");
    assert!(u.log("systemctl").is_empty(), "--print ran systemctl");
    assert!(u.log("launchctl").is_empty(), "--print ran launchctl");
}

#[test]
fn install_print_shows_the_settings_it_carries_and_never_a_secret() {
    let u = ServiceUser::new();
    let aws = u.path("aws config");
    std::fs::write(&aws, "[profile dev]\nregion = eu-west-1\n").unwrap();
    let toml = u.path("credd.toml");
    std::fs::write(&toml, "# defaults\n").unwrap();
    let vars = [
        ("AWS_CONFIG_FILE", aws.to_str().unwrap()),
        ("CREDD_CONFIG", toml.to_str().unwrap()),
        ("AWS_ACCESS_KEY_ID", LONG_TERM_ID),
        ("AWS_SECRET_ACCESS_KEY", LONG_TERM_SECRET),
    ];
    let path = format!("{}:/usr/bin:/bin", u.path("bin").display());
    let before = u.tree();
    let o = u.credd_with_env(
        &["service", "install", "--print", "--manager", "systemd"],
        &path,
        &vars,
    );
    let said = ok(&o, "service install --print");
    let out = stdout_of(&o);
    assert!(
        out.contains(&format!(
            "    Environment=\"AWS_CONFIG_FILE={}\"\n",
            aws.display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "    Environment=CREDD_CONFIG={}\n",
            toml.display()
        )),
        "{out}"
    );
    assert!(said.contains("warning: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY are set"));
    assert!(!out.contains(LONG_TERM_ID) && !out.contains(LONG_TERM_SECRET));
    assert!(!said.contains(LONG_TERM_ID) && !said.contains(LONG_TERM_SECRET));
    assert_eq!(u.tree(), before, "--print changed files");

    // What is installed carries the same, and systemd reads it.
    ok(
        &u.credd_with_env(
            &["service", "install", "--manager", "systemd"],
            &path,
            &vars,
        ),
        "service install",
    );
    let unit_dir = u.home().join(".config/systemd/user");
    let unit = std::fs::read_to_string(unit_dir.join("credd.service")).unwrap();
    assert!(unit.contains(&format!("\nEnvironment=CREDD_CONFIG={}\n", toml.display())));
    assert!(!unit.contains(LONG_TERM_SECRET));
    let files: Vec<PathBuf> = UNITS.iter().map(|n| unit_dir.join(n)).collect();
    assert_verifies(u.dir.path(), &files);

    // launchd: EnvironmentVariables.
    ok(
        &u.credd_with_env(
            &["service", "install", "--manager", "launchd"],
            &path,
            &vars,
        ),
        "service install --manager launchd",
    );
    let v: plist::Value =
        plist::from_file(u.home().join("Library/LaunchAgents/com.credd.daemon.plist")).unwrap();
    let env = v.as_dictionary().unwrap()["EnvironmentVariables"]
        .as_dictionary()
        .unwrap()
        .clone();
    let keys: Vec<&String> = env.keys().collect();
    assert_eq!(
        keys,
        ["AWS_CONFIG_FILE", "CREDD_CONFIG", "CREDD_RUNTIME_DIR"]
    );
    assert_eq!(env["AWS_CONFIG_FILE"].as_string(), aws.to_str());
}

#[test]
fn install_status_uninstall_with_systemd() {
    let u = ServiceUser::new();
    let exe = credd_abs();
    let unit_dir = u.home().join(".config/systemd/user");

    let said = ok(
        &u.credd(&["service", "install", "--manager", "systemd"]),
        "service install",
    );
    for name in UNITS {
        assert!(
            said.contains(&format!("wrote {}", unit_dir.join(name).display())),
            "{said}"
        );
    }
    assert!(
        said.contains("ran `systemctl --user daemon-reload`"),
        "{said}"
    );
    assert!(said.contains(&format!("the service runs {exe}")), "{said}");
    let unit = std::fs::read_to_string(unit_dir.join("credd.service")).unwrap();
    assert!(unit.contains(&format!("\nExecStart={exe} serve\n")));
    assert_eq!(
        std::fs::read_to_string(unit_dir.join("credd.socket")).unwrap(),
        std::fs::read_to_string(repo().join("systemd/credd.socket")).unwrap(),
        "the installed socket unit is the one in the repository"
    );
    // What was installed is what systemd accepts.
    let files: Vec<PathBuf> = UNITS.iter().map(|n| unit_dir.join(n)).collect();
    assert_verifies(u.dir.path(), &files);
    let log = u.log("systemctl");
    let changes: Vec<&String> = log
        .iter()
        .filter(|l| !l.contains("show-environment") && !l.contains("MainPID"))
        .collect();
    assert_eq!(
        changes,
        [
            "--user daemon-reload",
            "--user stop credd.service",
            "--user enable --now credd.socket credd-control.socket",
            "--user enable --now credd.service",
        ],
        "{log:?}"
    );

    // The manual pages, as `credd man` makes them, in the user's man dir;
    // this `man` (man-db, or none) does not look there: MANPATH is named.
    let man1 = u.home().join(".local/share/man/man1");
    assert_eq!(
        std::fs::read_to_string(man1.join("credd.1"))
            .unwrap()
            .trim_end(),
        {
            let o = u.credd(&["man"]);
            ok(&o, "credd man");
            stdout_of(&o).trim_end().to_string()
        },
        "the installed credd.1 is the page `credd man` prints"
    );
    for page in ["credd.1", "credd-exec.1", "credd-token-issue.1"] {
        assert!(
            said.contains(&format!("wrote {}", man1.join(page).display())),
            "{said}"
        );
    }
    let manpath = format!(
        "export MANPATH=\"{}:$(manpath)\"",
        u.home().join(".local/share/man").display()
    );
    assert!(said.contains(&manpath), "{said}");

    // status: the manager's view, then the daemon (not running here: exit 3).
    let o = u.credd(&["service", "status", "--manager", "systemd"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr_of(&o));
    let out = stdout_of(&o);
    assert!(
        out.contains(&format!(
            "installed: {}",
            unit_dir.join("credd.service").display()
        )),
        "{out}"
    );
    assert!(out.contains("daemon: not answering"), "{out}");
    assert!(u
        .log("systemctl")
        .iter()
        .any(|l| l.starts_with("--user status")));

    // A `man` that finds the page installed: nothing to add to MANPATH.
    std::fs::write(
        u.path("bin/man"),
        format!("#!/bin/sh\necho '{}'\n", man1.join("credd.1").display()),
    )
    .unwrap();
    std::fs::set_permissions(u.path("bin/man"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let said = ok(
        &u.credd(&["service", "install", "--manager", "systemd"]),
        "service install again",
    );
    assert!(!said.contains("MANPATH"), "{said}");
    assert!(
        said.contains(&format!(
            "manual pages installed in {}: `man credd`",
            man1.display()
        )),
        "{said}"
    );

    let said = ok(
        &u.credd(&["service", "uninstall", "--manager", "systemd"]),
        "service uninstall",
    );
    for page in ["credd.1", "credd-exec.1"] {
        assert!(!man1.join(page).exists(), "{page} is left");
        assert!(
            said.contains(&format!("removed {}", man1.join(page).display())),
            "{said}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&man1).unwrap().count(),
        0,
        "every page is removed"
    );
    assert!(
        said.contains(
            "ran `systemctl --user disable --now credd.service credd.socket credd-control.socket`"
        ),
        "{said}"
    );
    for name in UNITS {
        assert!(!unit_dir.join(name).exists());
        assert!(said.contains(&format!("removed {}", unit_dir.join(name).display())));
    }
    let said = ok(
        &u.credd(&["service", "uninstall", "--manager", "systemd"]),
        "second uninstall",
    );
    assert!(said.contains("not installed"), "{said}");
}

#[test]
fn install_says_what_to_do_without_systemctl_or_a_user_manager() {
    let u = ServiceUser::new();
    let o = u.credd_with_path(
        &["service", "install", "--manager", "systemd"],
        "/nonexistent",
    );
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("systemctl not found on PATH")
            && stderr_of(&o).contains("credd serve"),
        "{}",
        stderr_of(&o)
    );

    // A systemctl that cannot reach a user manager, as under `su`.
    std::fs::write(
        u.path("bin/systemctl"),
        "#!/bin/sh\necho 'Failed to connect to bus: No medium found' >&2\nexit 1\n",
    )
    .unwrap();
    let o = u.credd(&["service", "install", "--manager", "systemd"]);
    assert!(!o.status.success());
    let said = stderr_of(&o);
    assert!(
        said.contains("no systemd user manager")
            && said.contains("No medium found")
            && said.contains("loginctl enable-linger"),
        "{said}"
    );
    assert!(
        !u.home().join(".config").exists(),
        "a failed preflight wrote files"
    );
}

#[test]
fn launchd_plist_parses_and_holds_the_keys_launchd_needs() {
    // The template in the repository.
    let template: plist::Value =
        plist::from_file(repo().join("launchd/com.credd.daemon.plist")).unwrap();
    let d = template.as_dictionary().unwrap();
    assert_eq!(d["Label"].as_string(), Some("com.credd.daemon"));
    assert_eq!(d["RunAtLoad"].as_boolean(), Some(true));
    assert!(d.contains_key("KeepAlive"));
    assert_eq!(d["ProcessType"].as_string(), Some("Background"));

    // What `credd service install --manager launchd` writes.
    let u = ServiceUser::new();
    let said = ok(
        &u.credd(&["service", "install", "--manager", "launchd"]),
        "service install --manager launchd",
    );
    let path = u.home().join("Library/LaunchAgents/com.credd.daemon.plist");
    assert!(
        said.contains(&format!("wrote {}", path.display())),
        "{said}"
    );
    let v: plist::Value = plist::from_file(&path).unwrap();
    let d = v.as_dictionary().unwrap();
    assert_eq!(d["Label"].as_string(), Some("com.credd.daemon"));
    let args: Vec<&str> = d["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_string().unwrap())
        .collect();
    assert_eq!(args, [credd_abs().as_str(), "serve"]);
    assert_eq!(d["RunAtLoad"].as_boolean(), Some(true));
    assert!(d.contains_key("KeepAlive"));
    let logs = u.home().join("Library/Logs/credd");
    for key in ["StandardOutPath", "StandardErrorPath"] {
        assert!(
            Path::new(d[key].as_string().unwrap()).starts_with(&logs),
            "{key} outside {}",
            logs.display()
        );
    }
    assert_eq!(
        std::fs::metadata(&logs).unwrap().mode() & 0o777,
        0o700,
        "the log directory is user-private"
    );
    let uid = std::fs::metadata(u.home()).unwrap().uid();
    let log: Vec<String> = u
        .log("launchctl")
        .into_iter()
        .filter(|l| l != "version")
        .collect();
    assert_eq!(
        log,
        [
            format!("bootout gui/{uid}/com.credd.daemon"),
            format!("enable gui/{uid}/com.credd.daemon"),
            format!("bootstrap gui/{uid} {}", path.display()),
        ],
        "{log:?}"
    );
    if let Ok(plutil) = which_plutil() {
        let o = Command::new(plutil)
            .arg("-lint")
            .arg(&path)
            .output()
            .unwrap();
        assert!(o.status.success(), "plutil -lint: {}", stdout_of(&o));
    }

    let said = ok(
        &u.credd(&["service", "uninstall", "--manager", "launchd"]),
        "service uninstall --manager launchd",
    );
    assert!(!path.exists());
    assert!(
        said.contains(&format!("removed {}", path.display())),
        "{said}"
    );
}

fn which_plutil() -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("plutil"))
        .find(|p| p.is_file())
        .ok_or(())
}

/// Receives one datagram from the notify socket, waiting up to 30 s.
fn recv_notify(sock: &UnixDatagram) -> String {
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("no message on NOTIFY_SOCKET within 30 s");
    String::from_utf8_lossy(&buf[..n]).to_string()
}

#[test]
fn socket_activation_serves_the_listeners_handed_in() {
    let env = Env::new();
    let run = private_dir(&env.path("run"));
    let control = run.join("control.sock");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let notify_path = env.path("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let log = env.path("serve.log");
    let logf = std::fs::File::create(&log).unwrap();
    // systemd-socket-activate binds both sockets, waits for the first
    // connection, then execs credd with them as fds 3 and 4, LISTEN_PID
    // set to credd's pid and LISTEN_FDNAMES=endpoint:control. It passes
    // only the variables named with -E.
    let mut sa = env.cmd(systemd_tool("systemd-socket-activate"));
    sa.arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--listen={}", control.display()))
        .arg("--fdname=endpoint:control");
    for var in [
        "HOME",
        "CREDD_RUNTIME_DIR",
        "CREDD_STATE_DIR",
        "CREDD_CONFIG",
        "AWS_ENDPOINT_URL_STS",
        "LANG",
        "CREDD_LOG",
        "NOTIFY_SOCKET",
    ] {
        sa.arg(format!("--setenv={var}"));
    }
    let mut child = sa
        .arg(credd_bin())
        .arg("serve")
        .env("CREDD_LOG", "info,credd=debug")
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let guard = Kill(&mut child);

    // The first connection starts credd (socket-activate waits for it) and
    // is answered by it: the listener was handed over, not re-bound.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut first = None;
    for _ in 0..100 {
        if let Ok(s) = std::net::TcpStream::connect(addr) {
            first = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut first = first.expect("systemd-socket-activate did not listen");
    {
        use std::io::{Read, Write};
        first
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            first,
            "GET /v1/credentials/dev HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = first.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 401"),
            "the queued first request got {answer:?}; log:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
    }
    let ready = recv_notify(&notify);
    assert!(ready.contains("READY=1"), "{ready}");
    assert!(
        ready.contains(&format!(
            "STATUS=serving http://127.0.0.1:{port}/v1/credentials/PROFILE"
        )),
        "{ready}"
    );

    // The control socket handed in answers the CLI.
    let v: serde_json::Value = serde_json::from_str(&env.credd_ok(&["status", "--json"])).unwrap();
    assert_eq!(
        v["daemon"]["pid"], pid,
        "credd runs as the activated process"
    );
    assert_eq!(
        v["daemon"]["container_url"],
        format!("http://127.0.0.1:{port}/v1/credentials")
    );
    // And the endpoint serves credentials through the handed-in listener.
    let token = env
        .credd_ok(&["token", "issue", "--profile", "dev"])
        .trim()
        .to_string();
    let (code, body) = get(
        addr,
        "/v1/credentials/dev",
        Some(&addr.to_string()),
        Some(&token),
    );
    assert_eq!(code, 200, "{body}");
    let creds: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(creds["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("socket handed in by the service manager"),
        "{logs}"
    );

    // SIGTERM: STOPPING=1, a clean exit, and the control socket, which
    // belongs to the service manager, is left in place.
    Command::new("kill").arg(pid.to_string()).status().unwrap();
    let stopping = recv_notify(&notify);
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
    let st = guard.0.wait().unwrap();
    assert!(st.success(), "credd exited with {st}");
    assert!(control.exists(), "credd removed a socket it did not bind");
}

#[test]
fn readiness_reaches_notify_socket_and_foreign_listen_fds_are_ignored() {
    let env = Env::new();
    let notify_path = env.path("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let notify_text = notify_path.to_str().unwrap();
    // LISTEN_* meant for another process (pid 1): credd binds its own
    // listeners instead of taking fd 3.
    let d = Daemon::start_with_env(
        &env,
        &[],
        false,
        &[
            ("NOTIFY_SOCKET", notify_text),
            ("LISTEN_PID", "1"),
            ("LISTEN_FDS", "1"),
            ("LISTEN_FDNAMES", "endpoint"),
        ],
    );
    let ready = recv_notify(&notify);
    assert!(ready.contains("READY=1"), "{ready}");
    assert!(
        ready.contains(&format!("STATUS=serving http://{}", d.addr())),
        "{ready}"
    );
    // Ready means ready: the control socket answers.
    env.credd_ok(&["status"]);
    assert!(!d.logs().contains("socket handed in"), "{}", d.logs());
    let st = d.stop();
    assert!(st.success());
    let stopping = recv_notify(&notify);
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
}

// ---------------------------------------------------------------------------
// The unit's file-system sandbox, reproduced without a user manager.

/// The directives of a unit's `[Service]` section, in file order, with the
/// specifiers the test can expand (`%h`, `%t`, `%%`) expanded.
fn service_directives(unit: &str, home: &Path, runtime: &Path) -> Vec<(String, String)> {
    let mut in_service = false;
    let mut out = Vec::new();
    for line in unit.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        if !in_service || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').expect("a directive is KEY=VALUE");
        let mut value = String::new();
        let mut chars = v.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                value.push(c);
                continue;
            }
            match chars.next() {
                Some('h') => value.push_str(home.to_str().unwrap()),
                Some('t') => value.push_str(runtime.to_str().unwrap()),
                Some('%') => value.push('%'),
                other => panic!("specifier %{other:?} in {line}: teach the test to expand it"),
            }
        }
        out.push((k.to_string(), value));
    }
    out
}

/// systemd's word splitting for the values the test reads: blanks separate,
/// double quotes group, a backslash escapes the next character.
fn unit_words(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut any) = (false, false);
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                word.push(chars.next().expect("a backslash escapes something"));
                any = true;
            }
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    assert!(!quoted, "unbalanced quotes in {value}");
    if any {
        words.push(word);
    }
    words
}

/// One mount point per line of /proc/self/mountinfo, octal escapes decoded.
fn mount_points() -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut out = Vec::new();
    for line in info.lines() {
        let raw = line.split(' ').nth(4).unwrap();
        let mut bytes = Vec::new();
        let b = raw.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' && i + 3 < b.len() {
                bytes.push(u8::from_str_radix(&raw[i + 1..i + 4], 8).unwrap());
                i += 4;
            } else {
                bytes.push(b[i]);
                i += 1;
            }
        }
        out.push(String::from_utf8(bytes).unwrap());
    }
    out.sort();
    out.dedup();
    out
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The file-system sandbox a unit asks for, as a shell script to run as
/// root in a new mount namespace (`unshare --mount`), ending in
/// `exec "$@"`. It reproduces what decides where the daemon can write:
/// `ProtectSystem=strict` (every mount read-only but /proc, /sys and
/// /dev), `ProtectHome=read-only` (applied to the test's HOME, which stands
/// for /home/USER), `ReadWritePaths=` (bound onto themselves and made
/// writable again; a path prefixed with `-` is skipped when missing, any
/// other missing path fails as systemd fails the unit) and `PrivateTmp=yes`
/// (fresh /tmp and /var/tmp). Any other value of these is refused, so a
/// change to the unit cannot go untested.
struct FsSandbox {
    script: String,
}

impl FsSandbox {
    fn from_unit(directives: &[(String, String)], home: &Path) -> Self {
        let get = |k: &str| -> Vec<&str> {
            directives
                .iter()
                .filter(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        let mut script = String::from("set -e\n");
        match get("ProtectHome").last().copied() {
            Some("read-only") => {
                let h = sh_quote(home.to_str().unwrap());
                script.push_str(&format!(
                    "mount --bind {h} {h}\nmount -o remount,bind,ro {h}\n"
                ));
            }
            other => {
                panic!("the test reproduces ProtectHome=read-only only, the unit has {other:?}")
            }
        }
        match get("ProtectSystem").last().copied() {
            Some("strict") => {
                for m in mount_points() {
                    let api = ["/proc", "/sys", "/dev"]
                        .iter()
                        .any(|a| Path::new(&m).starts_with(a));
                    if !api {
                        // Other tests on this kernel come and go with mounts
                        // of their own: one gone meanwhile is no failure.
                        let m = sh_quote(&m);
                        script.push_str(&format!(
                            "mount -o remount,bind,ro {m} || ! mountpoint -q {m}\n"
                        ));
                    }
                }
            }
            other => {
                panic!("the test reproduces ProtectSystem=strict only, the unit has {other:?}")
            }
        }
        for value in get("ReadWritePaths") {
            for word in unit_words(value) {
                let (optional, path) = match word.strip_prefix('-') {
                    Some(p) => (true, p.to_string()),
                    None => (false, word),
                };
                if !Path::new(&path).exists() {
                    assert!(
                        optional,
                        "ReadWritePaths={path} does not exist: systemd would fail the unit (226/NAMESPACE)"
                    );
                    continue;
                }
                let p = sh_quote(&path);
                script.push_str(&format!(
                    "mount --bind {p} {p}\nmount -o remount,bind,rw {p}\n"
                ));
            }
        }
        match get("PrivateTmp").last().copied() {
            Some("yes") => script.push_str(
                "mount -t tmpfs -o mode=1777 tmpfs /tmp\nmount -t tmpfs -o mode=1777 tmpfs /var/tmp\n",
            ),
            None | Some("no") => {}
            other => panic!("PrivateTmp={other:?}"),
        }
        script.push_str("exec \"$@\"\n");
        FsSandbox { script }
    }

    /// `argv` inside the sandbox.
    fn command(&self, argv: &[String]) -> Command {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(&self.script)
            .arg("sh")
            .args(argv);
        c
    }
}

/// `preferred`, unless it is under `/tmp` or `/var/tmp` (which `PrivateTmp=`
/// replaces); then a directory of root's that is not.
fn outside_private_tmp(preferred: &Path) -> PathBuf {
    let hidden = [Path::new("/tmp"), Path::new("/var/tmp")];
    let real = std::fs::canonicalize(preferred).unwrap_or_else(|_| preferred.to_path_buf());
    if !hidden.iter().any(|h| real.starts_with(h)) {
        return preferred.to_path_buf();
    }
    let fallback = PathBuf::from("/var/lib/credd-e2e");
    std::fs::create_dir_all(&fallback).unwrap();
    std::fs::set_permissions(&fallback, std::fs::Permissions::from_mode(0o700)).unwrap();
    fallback
}

/// `ExecStart=`/`ExecStartPre=` as argv, with its prefixes (`+`, `-`, ...).
fn exec_line(value: &str) -> (String, Vec<String>) {
    let prefix: String = value.chars().take_while(|c| "-+!@:".contains(*c)).collect();
    (prefix.clone(), unit_words(&value[prefix.len()..]))
}

#[test]
fn the_service_writes_a_refreshed_sso_token_to_the_shared_cache_under_its_sandbox() {
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| stdout_of(&o).trim() == "0")
            .unwrap_or(false),
        "this test builds a mount namespace and needs root (CI runs as root)"
    );
    // Not under /tmp or /var/tmp: the unit's PrivateTmp=yes hides both, and
    // a clone of the repository (CI's, say) may well live in /tmp.
    let base = outside_private_tmp(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let dir = tempfile::tempdir_in(&base).unwrap();
    let root = dir.path();
    // The service runs the binary that `credd service install` names, so
    // install is run from a copy that the sandbox can see.
    let credd = root.join("exe/credd");
    std::fs::create_dir_all(credd.parent().unwrap()).unwrap();
    std::fs::copy(credd_bin(), &credd).unwrap();
    std::fs::set_permissions(&credd, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = root.join("home");
    let runtime = private_dir(&root.join("xdg-run"));
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("systemctl"),
        "#!/bin/sh\ncase \"$*\" in\n  *MainPID*) echo 0 ;;\nesac\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    // The AWS config and credd.toml are where the installing user's
    // variables say, not in their default places: install must carry them.
    let aws_config = root.join("aws/config");
    std::fs::create_dir_all(aws_config.parent().unwrap()).unwrap();
    std::fs::write(
        &aws_config,
        "[sso-session work]\nsso_start_url = https://d-1234567890.awsapps.com/start\n\
         sso_region = eu-west-1\nsso_registration_scopes = sso:account:access\n\n\
         [profile dev]\nsso_session = work\nsso_account_id = 111122223333\n\
         sso_role_name = PowerUserAccess\nregion = us-east-1\n",
    )
    .unwrap();
    let credd_toml = root.join("cfg/credd.toml");
    std::fs::create_dir_all(credd_toml.parent().unwrap()).unwrap();
    std::fs::write(&credd_toml, "listen = \"127.0.0.1:0\"\n").unwrap();
    std::fs::create_dir_all(&home).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sandbox = rt
        .block_on(credd_sandbox::Sandbox::start(
            credd_sandbox::SandboxConfig {
                auto_approve_device: true,
                ..Default::default()
            },
        ))
        .unwrap();
    let url = sandbox.url();
    // The endpoints of the stand-in for AWS: what a drop-in would set.
    let endpoints = [
        ("AWS_ENDPOINT_URL_SSO", url.as_str()),
        ("AWS_ENDPOINT_URL_SSO_OIDC", url.as_str()),
        ("AWS_ENDPOINT_URL_STS", url.as_str()),
    ];
    // The user's shell.
    let user = |program: &dyn AsRef<std::ffi::OsStr>| {
        let mut c = Command::new(program);
        c.env_clear()
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("AWS_CONFIG_FILE", &aws_config)
            .env("CREDD_CONFIG", &credd_toml)
            .env("LANG", "C.UTF-8")
            .envs(endpoints)
            .stdin(Stdio::null());
        c
    };

    // A login, then the token ages until it is due for refresh (expired,
    // with a refresh token that still works).
    let o = user(&credd)
        .args(["login", "work", "--device-code", "--no-browser"])
        .output()
        .unwrap();
    ok(&o, "credd login");
    let cache = home.join(".aws/sso/cache/e274eeff768c6396088ec6eb091f4bf4d47ab1e0.json");
    let mut token: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    let stale = token["accessToken"].as_str().unwrap().to_string();
    let past = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    token["expiresAt"] = past
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap()
        .into();
    std::fs::write(&cache, token.to_string()).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The unit exactly as `credd service install` writes it.
    let o = user(&credd)
        .args(["service", "install", "--manager", "systemd"])
        .output()
        .unwrap();
    ok(&o, "credd service install");
    let unit = std::fs::read_to_string(home.join(".config/systemd/user/credd.service")).unwrap();
    let directives = service_directives(&unit, &home, &runtime);

    // What the user manager would do: its environment, the unit's
    // Environment= lines, the ExecStartPre= commands, then ExecStart= in
    // the sandbox.
    let mut service_env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME".into(), home.to_str().unwrap().into()),
        ("XDG_RUNTIME_DIR".into(), runtime.to_str().unwrap().into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("CREDD_LOG".into(), "info,credd_daemon=debug".into()),
    ];
    service_env.extend(
        endpoints
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    for (k, v) in &directives {
        if k == "Environment" {
            for assignment in unit_words(v) {
                let (name, value) = assignment.split_once('=').unwrap();
                service_env.push((name.into(), value.into()));
            }
        }
    }
    for (k, v) in &directives {
        if k == "ExecStartPre" {
            let (prefix, argv) = exec_line(v);
            assert!(prefix.contains('+'), "ExecStartPre={v} runs in the sandbox");
            let st = Command::new(&argv[0])
                .args(&argv[1..])
                .env_clear()
                .envs(service_env.iter().map(|(k, v)| (k, v)))
                .status()
                .unwrap();
            assert!(
                st.success() || prefix.contains('-'),
                "ExecStartPre={v}: {st}"
            );
        }
    }
    // systemd sets up the namespace for each command as it runs it: after
    // the ExecStartPre= commands made their directories.
    let sandbox_fs = FsSandbox::from_unit(&directives, &home);
    let exec_start = directives
        .iter()
        .find(|(k, _)| k == "ExecStart")
        .map(|(_, v)| exec_line(v).1)
        .unwrap();
    let in_sandbox = |argv: &[String]| {
        let mut c = sandbox_fs.command(argv);
        c.env_clear()
            .envs(service_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        c
    };

    // The daemon, as the service runs it.
    let log = root.join("serve.log");
    let logf = std::fs::File::create(&log).unwrap();
    let mut daemon = in_sandbox(&exec_start)
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let logs = || std::fs::read_to_string(&log).unwrap();
    let start = std::time::Instant::now();
    let fresh = loop {
        if let Some(st) = daemon.try_wait().unwrap() {
            panic!("credd serve exited under the sandbox ({st}):\n{}", logs());
        }
        let now: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
        if now["accessToken"] != stale.as_str() {
            break now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the daemon did not write a refreshed token to {} (refreshes: {}):\n{}",
            cache.display(),
            sandbox.count("CreateToken:refresh_token"),
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let daemon = Kill(daemon);
    assert_eq!(sandbox.count("CreateToken:refresh_token"), 1);
    let expires = time::PrimitiveDateTime::parse(
        fresh["expiresAt"].as_str().unwrap(),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"),
    )
    .unwrap()
    .assume_utc();
    assert!(expires > time::OffsetDateTime::now_utc() + time::Duration::minutes(30));
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // Unmodified botocore reads the token the service wrote: it would
    // refresh a stale one itself, and it does not.
    let o = user(&python())
        .arg(clients().join("whoami.py"))
        .env("AWS_PROFILE", "dev")
        .output()
        .unwrap();
    ok(&o, "boto3 with the SSO profile");
    let arn = stdout_of(&o);
    assert!(
        arn.trim()
            .ends_with(":assumed-role/PowerUserAccess/demo-user"),
        "{arn}"
    );
    assert_eq!(
        sandbox.count("CreateToken:refresh_token"),
        1,
        "botocore refreshed the token again: it did not read the service's"
    );

    // And the service serves the profile, found through the carried
    // AWS_CONFIG_FILE, to a client through `credd exec`.
    let o = user(&credd)
        .args(["exec", "dev", "--"])
        .arg(python())
        .arg(clients().join("whoami.py"))
        .output()
        .unwrap();
    ok(&o, "credd exec dev against the service");
    assert!(stdout_of(&o).contains(":assumed-role/PowerUserAccess/"));
    let logs = logs();
    assert!(!logs.contains(fresh["accessToken"].as_str().unwrap()));
    assert!(!logs.contains("could not write"), "{logs}");
    drop(daemon);

    // The sandbox is real: the home directory is read-only in it, the
    // token cache writable.
    let touch = |p: &Path| {
        in_sandbox(&["touch".into(), p.to_str().unwrap().into()])
            .output()
            .unwrap()
    };
    let o = touch(&home.join(".aws/elsewhere"));
    assert!(
        !o.status.success() && stderr_of(&o).contains("Read-only file system"),
        "a write elsewhere in HOME got through the sandbox: {} {}",
        o.status,
        stderr_of(&o)
    );
    assert!(!home.join(".aws/elsewhere").exists());
    for (writable, why) in [
        (home.join(".aws/sso/cache/probe"), "the SSO token cache"),
        (home.join(".aws/login/cache/probe"), "the aws login cache"),
    ] {
        let o = touch(&writable);
        assert!(
            o.status.success(),
            "{why} is not writable under the unit's sandbox: {}",
            stderr_of(&o)
        );
        std::fs::remove_file(&writable).unwrap();
    }
}

/// `credd service install --docker-setup`: the boot-time system unit,
/// shown by `--print`, refused without root (with the `sudo` command),
/// installed as root (into CREDD_SYSTEM_UNIT_DIR here, with the stand-in
/// systemctl) with `ExecStart=` at this binary, verified by
/// `systemd-analyze verify` (the system manager's), and removed by
/// `uninstall --docker-setup`.
#[test]
fn the_docker_setup_system_unit_is_installed_shown_and_verified() {
    let u = ServiceUser::new();
    let exe = credd_abs();
    let units = u.path("system-units");
    std::fs::create_dir_all(&units).unwrap();
    let path = format!("{}:/usr/bin:/bin", u.path("bin").display());
    let dir_var = ("CREDD_SYSTEM_UNIT_DIR", units.to_str().unwrap());
    let o = u.credd_with_env(
        &["service", "install", "--docker-setup", "--print"],
        &path,
        &[dir_var],
    );
    ok(&o, "install --docker-setup --print");
    let shown = stdout_of(&o);
    assert!(
        shown.contains(&format!("ExecStart={exe} docker setup"))
            && shown.contains("PartOf=docker.service")
            && shown.contains("# run: systemctl enable --now credd-docker-setup.service")
            && shown.contains(&format!("sudo {exe} service install --docker-setup")),
        "{shown}"
    );
    assert!(
        std::fs::read_dir(&units).unwrap().next().is_none(),
        "--print changes nothing"
    );

    // Not root: refused, saying what to type.
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(credd_bin())
        .args(["service", "install", "--docker-setup"])
        .env_clear()
        .env("PATH", &path)
        .env("HOME", u.home())
        .env(dir_var.0, dir_var.1)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains(&format!("sudo {exe} service install --docker-setup")),
        "{}",
        stderr_of(&o)
    );
    assert!(std::fs::read_dir(&units).unwrap().next().is_none());

    // Root (the tests run as root): written, reloaded, enabled.
    let said = ok(
        &u.credd_with_env(&["service", "install", "--docker-setup"], &path, &[dir_var]),
        "install --docker-setup",
    );
    let file = units.join("credd-docker-setup.service");
    assert!(
        said.contains(&format!("wrote {}", file.display())),
        "{said}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("\nExecStart={exe} docker setup\n")),
        "{text}"
    );
    assert_eq!(
        u.log("systemctl"),
        ["daemon-reload", "enable --now credd-docker-setup.service"]
    );
    let out = Command::new(systemd_tool("systemd-analyze"))
        .arg("verify")
        .arg(&file)
        .output()
        .unwrap();
    let warned = stderr_of(&out);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{warned}"
    );
    assert!(!warned.contains("credd-docker-setup"), "{warned}");

    let said = ok(
        &u.credd_with_env(
            &["service", "uninstall", "--docker-setup"],
            &path,
            &[dir_var],
        ),
        "uninstall --docker-setup",
    );
    assert!(!file.exists() && said.contains("removed"), "{said}");
    assert!(u
        .log("systemctl")
        .iter()
        .any(|l| l == "disable --now credd-docker-setup.service"));
}
