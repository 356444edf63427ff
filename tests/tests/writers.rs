//! The files credd writes for the user (`~/.aws/credentials` by
//! `write-credentials`, `~/.aws/config` by `profiles link` and `sso
//! populate`, token files by `token issue --file`), edited by several credd
//! commands at once, by another tool in the middle of a write, through a
//! symlink, and killed mid-write: nothing acknowledged is lost, no temporary
//! copy is left, no directory credd did not make changes mode. Also `credd
//! token revoke` by value, label and `--all`. Threat-model row 22.
//!
//! "In the middle of a write" is made exact with a test hook of debug builds
//! only: with `CREDD_TEST_PAUSE_WRITES=DIR`, a writer that has written its
//! temporary file (and not yet renamed it into place) creates `DIR/PID`
//! (holding the path it writes) and waits until that file is removed (once
//! per process).

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Names in `dir` other than `keep`: a temporary copy (or a lock file)
/// left behind shows up here.
fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

/// Waits for a paused writer; returns its pid and the path it writes.
fn wait_paused(dir: &Path) -> (u32, PathBuf) {
    let start = Instant::now();
    loop {
        // Only `PID` itself: the hook writes it through a temporary name
        // first, which may be seen before the rename.
        let paused = std::fs::read_dir(dir).unwrap().flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            Some((pid, e))
        });
        if let Some((pid, e)) = paused {
            // The hook writes the file in one go; wait until it has content.
            let target = std::fs::read_to_string(e.path()).unwrap_or_default();
            if !target.is_empty() {
                return (pid, PathBuf::from(target));
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no writer paused in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn resume(dir: &Path, pid: u32) {
    std::fs::remove_file(dir.join(pid.to_string())).unwrap();
}

fn spawn_paused(env: &Env, pause: &Path, args: &[&str]) -> Child {
    env.cmd(credd_bin())
        .args(args)
        .env("CREDD_TEST_PAUSE_WRITES", pause)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sections(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']'))
        .map(str::to_string)
        .collect()
}

#[test]
fn parallel_writers_lose_no_section_and_leave_no_temp_file() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let aws = env.home().join(".aws");
    let creds = aws.join("credentials");
    std::fs::write(&creds, "# mine\n[default]\naws_access_key_id = AKIAMINE\n").unwrap();
    // Warm the cache so that every round races on the file, not on STS.
    env.credd_ok(&["write-credentials", "dev", "--as", "warm"]);
    for round in 0..12 {
        let names: Vec<String> = (0..3).map(|i| format!("r{round}-w{i}")).collect();
        let links: Vec<String> = (0..2).map(|i| format!("r{round}-l{i}")).collect();
        let mut children: Vec<(String, Child)> = names
            .iter()
            .map(|n| {
                let c = env
                    .cmd(credd_bin())
                    .args(["write-credentials", "dev", "--as", n])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (n.clone(), c)
            })
            .collect();
        for n in &links {
            let c = env
                .cmd(credd_bin())
                .args(["profiles", "link", "dev", "--as", n])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            children.push((format!("profile {n}"), c));
        }
        for (n, c) in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{n}: {}", stderr_of(&o));
        }
        let text = std::fs::read_to_string(&creds).unwrap();
        let have = sections(&text);
        for n in &names {
            assert!(
                have.contains(n),
                "round {round}: [{n}] acknowledged but lost:\n{text}"
            );
        }
        let config = std::fs::read_to_string(aws.join("config")).unwrap();
        let have = sections(&config);
        for n in &links {
            assert!(
                have.contains(&format!("profile {n}")),
                "round {round}: [profile {n}] acknowledged but lost"
            );
        }
        assert!(text.starts_with("# mine\n[default]\naws_access_key_id = AKIAMINE\n"));
    }
    assert_eq!(
        leftovers(&aws, &["config", "credentials"]),
        Vec::<String>::new()
    );
}

#[test]
fn an_edit_by_another_tool_during_a_write_is_kept() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let aws = env.home().join(".aws");
    let creds = aws.join("credentials");
    std::fs::write(&creds, "[default]\naws_access_key_id = AKIAMINE\n").unwrap();
    let pause = env.path("pause");
    std::fs::create_dir(&pause).unwrap();

    // write-credentials, and `aws configure set` rewriting the file in place
    // while credd is between reading it and renaming its copy into place.
    let child = spawn_paused(&env, &pause, &["write-credentials", "dev", "--as", "tmp"]);
    let (pid, target) = wait_paused(&pause);
    assert_eq!(target, creds);
    let o = env
        .cmd(aws_cli())
        .args(["configure", "set", "aws_access_key_id", "AKIAOTHERTOOL"])
        .args(["--profile", "other"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    resume(&pause, pid);
    let o = child.wait_with_output().unwrap();
    let text = std::fs::read_to_string(&creds).unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        text.contains("[other]") && text.contains("AKIAOTHERTOOL"),
        "the other tool's edit is lost:\n{text}"
    );
    assert!(
        text.contains("[tmp]") && text.contains("[default]"),
        "{text}"
    );

    // The same for `profiles link` and the config file.
    let config = aws.join("config");
    let child = spawn_paused(&env, &pause, &["profiles", "link", "dev", "--as", "ide"]);
    let (pid, target) = wait_paused(&pause);
    assert_eq!(target, config);
    let o = env
        .cmd(aws_cli())
        .args([
            "configure",
            "set",
            "region",
            "ap-south-1",
            "--profile",
            "edited",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    resume(&pause, pid);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("[profile edited]") && text.contains("ap-south-1"),
        "the other tool's edit is lost:\n{text}"
    );
    assert!(text.contains("[profile ide]") && text.contains("[profile dev]"));
    assert_eq!(
        leftovers(&aws, &["config", "credentials"]),
        Vec::<String>::new()
    );
}

#[test]
fn kill_9_mid_write_leaves_no_temp_copy_after_the_next_run() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let aws = env.home().join(".aws");
    let creds = aws.join("credentials");
    let original = "[default]\naws_access_key_id = AKIAMINE\naws_secret_access_key = MINE\n";
    std::fs::write(&creds, original).unwrap();
    let pause = env.path("pause");
    std::fs::create_dir(&pause).unwrap();
    let mut child = spawn_paused(&env, &pause, &["write-credentials", "dev", "--as", "tmp"]);
    let (pid, _) = wait_paused(&pause);
    // A copy with keys inside is on disk now: kill -9 the writer there.
    assert_eq!(leftovers(&aws, &["config", "credentials"]).len(), 1);
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    std::fs::remove_file(pause.join(pid.to_string())).unwrap();
    assert_eq!(std::fs::read_to_string(&creds).unwrap(), original);

    // The next run (the lock died with the killed writer) removes it.
    let start = Instant::now();
    env.credd_ok(&["write-credentials", "dev", "--as", "tmp"]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "waited for a dead lock"
    );
    assert_eq!(
        leftovers(&aws, &["config", "credentials"]),
        Vec::<String>::new()
    );
    let text = std::fs::read_to_string(&creds).unwrap();
    assert!(
        text.starts_with(original) && text.contains("[tmp]"),
        "{text}"
    );
}

#[test]
fn symlinked_credentials_and_config_are_written_through() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let aws = env.home().join(".aws");
    let dotfiles = env.home().join("dotfiles/aws");
    std::fs::create_dir_all(&dotfiles).unwrap();
    std::fs::write(dotfiles.join("credentials"), "[default]\nx = 1\n").unwrap();
    std::fs::set_permissions(
        dotfiles.join("credentials"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::rename(aws.join("config"), dotfiles.join("config")).unwrap();
    // One relative link, one absolute.
    std::os::unix::fs::symlink("../dotfiles/aws/credentials", aws.join("credentials")).unwrap();
    std::os::unix::fs::symlink(dotfiles.join("config"), aws.join("config")).unwrap();

    env.credd_ok(&["write-credentials", "dev", "--as", "tmp"]);
    env.credd_ok(&["profiles", "link", "dev", "--as", "ide"]);
    for (name, section) in [("credentials", "[tmp]"), ("config", "[profile ide]")] {
        let link = aws.join(name);
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "~/.aws/{name} is no longer a symlink"
        );
        let target = std::fs::read_to_string(dotfiles.join(name)).unwrap();
        assert!(
            target.contains(section),
            "{name}'s target is stale:\n{target}"
        );
    }
    assert_eq!(
        std::fs::metadata(dotfiles.join("credentials"))
            .unwrap()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        leftovers(&aws, &["config", "credentials"]),
        Vec::<String>::new()
    );
    assert_eq!(
        leftovers(&dotfiles, &["config", "credentials"]),
        Vec::<String>::new()
    );
}

#[test]
fn token_file_leaves_the_directory_alone_and_refuses_an_unsafe_one() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    // A shared sticky directory (like /tmp) and a project directory.
    for (dir, m) in [("shared", 0o1777), ("project", 0o755)] {
        let dir = env.path(dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m)).unwrap();
        let file = dir.join("aws-token");
        let f = file.to_str().unwrap();
        env.credd_ok(&["token", "issue", "--profile", "dev", "--file", f]);
        assert_eq!(mode(&dir), m, "{} changed mode", dir.display());
        assert_eq!(mode(&file), 0o600);
        assert!(std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("credd_"));
        assert_eq!(leftovers(&dir, &["aws-token"]), Vec::<String>::new());
    }
    // A missing directory is created, private.
    let fresh = env.path("fresh/sub");
    let f = fresh.join("t");
    env.credd_ok(&[
        "token",
        "issue",
        "--profile",
        "dev",
        "--file",
        f.to_str().unwrap(),
    ]);
    assert_eq!(mode(&fresh), 0o700);
    // World-writable without the sticky bit: anyone could swap the file.
    let open = env.path("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let f = open.join("t");
    let o = env.credd(&[
        "token",
        "issue",
        "--profile",
        "dev",
        "--file",
        f.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr_of(&o);
    assert!(
        err.contains("other users can write") && !err.contains("credd_"),
        "{err}"
    );
    assert_eq!(mode(&open), 0o777);
    assert!(!f.exists());
}

#[test]
fn revoke_by_value_label_and_all_never_echoes_the_secret() {
    let env = Env::new();
    let d = env.serve(&[]);
    let host = d.addr().to_string();
    let works = |t: &str| get(d.addr(), "/v1/credentials/dev", Some(&host), Some(t)).0 == 200;
    let issue = |label: &str| {
        env.credd_ok(&["token", "issue", "--profile", "dev", "--label", label])
            .trim()
            .to_string()
    };
    let t = issue("by-value");
    assert!(works(&t));
    let secret = t.rsplit('_').next().unwrap().to_string();
    let o = env.credd(&["token", "revoke", &t]);
    let err = stderr_of(&o);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains(&secret), "the secret is echoed: {err}");
    assert!(!works(&t), "revoked by value, still valid");
    // Revoking it again: an error, still without the secret.
    let o = env.credd(&["token", "revoke", &t]);
    assert!(!o.status.success() && !stderr_of(&o).contains(&secret));
    // The secret alone is not an id, and is not echoed either.
    let o = env.credd(&["token", "revoke", &secret]);
    assert!(!o.status.success() && !stderr_of(&o).contains(&secret));
    // A value whose secret is wrong revokes nothing.
    let t2 = issue("ci");
    let forged = format!("{}_{}", &t2[..t2.rfind('_').unwrap()], "0".repeat(64));
    let o = env.credd(&["token", "revoke", &forged]);
    assert!(!o.status.success() && works(&t2));

    let t3 = issue("ci");
    let other = issue("keep");
    env.credd_ok(&["token", "revoke", "--label", "ci"]);
    assert!(!works(&t2) && !works(&t3) && works(&other));
    let o = env.credd(&["token", "revoke", "--label", "nothing"]);
    assert!(!o.status.success(), "no token has that label");
    env.credd_ok(&["token", "revoke", "--all"]);
    assert!(!works(&other));
    let list = env.credd_ok(&["token", "list", "--json"]);
    assert_eq!(list.trim(), "[]");
}

/// `credd sso populate` with the AWS CLI editing the config while credd is
/// between its write and its rename: both edits are kept, and the backup is
/// the version that was replaced. Needs a signed-in session: the sandbox
/// stands in for IAM Identity Center, the test plays the browser.
#[test]
fn sso_populate_keeps_an_edit_made_during_its_write() {
    use credd_sandbox::{Account, Sandbox, SandboxConfig};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let accounts = vec![Account::new("111122223333", "dev", &["ReadOnly"])];
    let sandbox = rt
        .block_on(Sandbox::start(
            SandboxConfig::default().with_accounts(accounts),
        ))
        .unwrap();
    let url = sandbox.url();
    let config = "[sso-session work]\nsso_start_url = https://d-1234567890.awsapps.com/start\n\
                  sso_region = eu-west-1\nsso_registration_scopes = sso:account:access\n";
    let mut env = Env::with_moto(config, Moto::external(url.clone()));
    env.vars = vec![
        ("AWS_ENDPOINT_URL_SSO".into(), url.clone()),
        ("AWS_ENDPOINT_URL_SSO_OIDC".into(), url),
    ];
    // `credd login work`, visiting the URL it prints (the sandbox approves).
    let mut login = env
        .cmd(credd_bin())
        .args(["login", "work", "--no-browser"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(login.stderr.take().unwrap());
    let mut seen = String::new();
    let mut visited = false;
    // Read to the end: closing the pipe early would fail credd's last message.
    for line in std::io::BufRead::lines(stderr) {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        let t = line.trim();
        if !visited
            && t.starts_with("http://")
            // The device page without the code is not what a browser opens.
            && (!t.contains("/device") || t.contains("user_code"))
        {
            visited = true;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(credd_sandbox::browser::visit(t)).unwrap();
        }
    }
    assert!(
        login.wait().unwrap().success(),
        "credd login failed:\n{seen}"
    );

    let path = env.home().join(".aws/config");
    let pause = env.path("pause");
    std::fs::create_dir(&pause).unwrap();
    let child = spawn_paused(&env, &pause, &["sso", "populate", "work"]);
    let (pid, target) = wait_paused(&pause);
    assert_eq!(target, path);
    let o = env
        .cmd(aws_cli())
        .args([
            "configure",
            "set",
            "region",
            "ap-south-1",
            "--profile",
            "edited",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    resume(&pause, pid);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("[profile edited]") && text.contains("ap-south-1"),
        "the other tool's edit is lost:\n{text}"
    );
    assert!(text.contains("[profile dev-ReadOnly]"), "{text}");
    let backup = std::fs::read_to_string(env.home().join(".aws/config.credd-backup")).unwrap();
    assert!(
        backup.starts_with(config) && backup.contains("[profile edited]"),
        "the backup is not the version replaced:\n{backup}"
    );
    assert_eq!(
        leftovers(
            &env.home().join(".aws"),
            &["config", "config.credd-backup", "sso"]
        ),
        Vec::<String>::new()
    );
}
