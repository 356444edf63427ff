//! The steps of `credd service install | uninstall`: what runs (or, with
//! `--print`, is printed), in order, and the hints when a step fails.

use super::*;

/// One change or command, shown by `--print` and carried out otherwise.
#[derive(Debug)]
pub(super) enum Step {
    /// A directory, created 0700 when `private`.
    Mkdir {
        path: PathBuf,
        private: bool,
    },
    Write {
        path: PathBuf,
        contents: String,
    },
    /// A manual page: written as [`Step::Write`], named (not shown) by
    /// `--print`.
    Page {
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

pub(super) fn run_step(argv: &[&str]) -> Step {
    Step::Run {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        may_fail: false,
    }
}

pub(super) fn install_plan(site: &Site) -> Result<Vec<Step>> {
    let mut plan = service_install_plan(site)?;
    plan.extend(man_install_plan(site)?);
    Ok(plan)
}

/// The manual pages `credd man` makes, into the user's own man directory
/// (`~/.local/share/man/man1`: `/usr/local/share/man` is not the user's).
fn man_install_plan(site: &Site) -> Result<Vec<Step>> {
    let dir = site.man_dir();
    let mut steps = vec![Step::Mkdir {
        path: dir.clone(),
        private: false,
    }];
    for (name, contents) in crate::cli::man::pages()? {
        steps.push(Step::Page {
            path: dir.join(name),
            contents,
        });
    }
    Ok(steps)
}

/// The manual pages `install` wrote that exist (by this binary's names).
fn installed_pages(site: &Site) -> Vec<PathBuf> {
    let dir = site.man_dir();
    crate::cli::man::pages()
        .unwrap_or_default()
        .into_iter()
        .map(|(name, _)| dir.join(name))
        .filter(|p| p.exists())
        .collect()
}

fn service_install_plan(site: &Site) -> Result<Vec<Step>> {
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

/// The files `install` wrote that exist, and the steps that undo it: the
/// service's, then the manual pages'.
pub(super) fn uninstall_plan(site: &Site) -> (Vec<PathBuf>, Vec<Step>) {
    let (mut present, mut steps) = service_uninstall_plan(site);
    for page in installed_pages(site) {
        steps.push(Step::Remove { path: page.clone() });
        present.push(page);
    }
    (present, steps)
}

fn service_uninstall_plan(site: &Site) -> (Vec<PathBuf>, Vec<Step>) {
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

pub(super) fn status_commands(site: &Site) -> Vec<Vec<String>> {
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

pub(super) fn exec_start(unit: &str) -> Option<&str> {
    unit.lines().find(|l| l.starts_with("ExecStart="))
}

pub(super) fn print_plan(what: &str, plan: &[Step]) {
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
            Step::Page { path, .. } => {
                println!(
                    "# write {} (a manual page, as `credd man` makes it)",
                    path.display()
                )
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

pub(super) async fn execute(plan: &[Step]) -> Result<()> {
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
            Step::Write { path, contents } | Step::Page { path, contents } => {
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

pub(super) fn missing_tool_hint(program: &str) -> &'static str {
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

pub(super) fn failure_hint(program: &str) -> &'static str {
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

pub(super) fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message")
        .to_string()
}

/// A command line as a person would type it.
pub(super) fn shell_words(argv: &[String]) -> String {
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
