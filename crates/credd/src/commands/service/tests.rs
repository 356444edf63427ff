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
    assert!(p.contains("<key>AWS_CONFIG_FILE</key>\n\t\t<string>/home/me/work/aws config</string>"));
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

fn site_in(home: &Path, manager: ServiceManager) -> Site {
    Site {
        manager,
        home: home.to_path_buf(),
        exe: PathBuf::from("/opt/credd"),
        uid: 1000,
        carried: Carried::default(),
    }
}

#[test]
fn install_writes_the_manual_pages_to_the_users_man_dir_and_uninstall_removes_them() {
    let home = tempfile::tempdir().unwrap();
    for manager in [ServiceManager::Systemd, ServiceManager::Launchd] {
        let site = site_in(home.path(), manager);
        let man1 = home.path().join(".local/share/man/man1");
        let plan = install_plan(&site).unwrap();
        let pages: Vec<(&PathBuf, &String)> = plan
            .iter()
            .filter_map(|s| match s {
                Step::Page { path, contents } => Some((path, contents)),
                _ => None,
            })
            .collect();
        let want = crate::cli::man::pages().unwrap();
        assert_eq!(pages.len(), want.len(), "{manager:?}");
        for ((path, contents), (name, text)) in pages.iter().zip(&want) {
            assert_eq!(**path, man1.join(name));
            assert_eq!(*contents, text, "the page `credd man` makes");
        }
        assert!(plan
            .iter()
            .any(|s| matches!(s, Step::Mkdir { path, private: false } if *path == man1)));
        // Nothing installed yet: nothing for uninstall to remove.
        assert!(uninstall_plan(&site).0.is_empty(), "{manager:?}");
    }

    // Pages present (the service's files not): uninstall removes exactly them.
    let site = site_in(home.path(), ServiceManager::Systemd);
    let man1 = home.path().join(".local/share/man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    std::fs::write(man1.join("credd.1"), "x").unwrap();
    std::fs::write(man1.join("credd-exec.1"), "x").unwrap();
    std::fs::write(man1.join("git.1"), "not ours").unwrap();
    let (present, steps) = uninstall_plan(&site);
    let mut present: Vec<PathBuf> = present;
    present.sort();
    assert_eq!(present, [man1.join("credd-exec.1"), man1.join("credd.1")]);
    assert_eq!(steps.len(), 2);
    assert!(steps
        .iter()
        .all(|s| matches!(s, Step::Remove { path } if path.starts_with(&man1))));
}

#[test]
fn the_man_hint_names_manpath_only_when_man_would_not_find_the_pages() {
    let dir = Path::new("/home/me/.local/share/man/man1");
    let found = man_hint_for(dir, Some("/home/me/.local/share/man/man1/credd.1"));
    assert!(!found.contains("MANPATH"), "{found}");
    assert!(found.contains("`man credd`"), "{found}");
    for other in [None, Some("/usr/share/man/man1/credd.1.gz")] {
        let hint = man_hint_for(dir, other);
        assert!(
            hint.contains("export MANPATH=\"/home/me/.local/share/man:$(manpath)\""),
            "{hint}"
        );
    }
}
