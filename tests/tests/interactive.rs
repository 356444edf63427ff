//! The commands a person types, as a person types them: `credd exec`,
//! `credd env --static` and `credd write-credentials` on a terminal (a pty
//! from util-linux's `script`) ask for the MFA code moto's device takes,
//! without echo, then go on; without a terminal they fail naming the
//! command and run nothing. `credd exec PROFILE` alone opens a shell;
//! `credd prompt`, "did you mean" and the `--` hint.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::world::shell_quote;
use support::*;

const MFA_ARN: &str = "assumed-role/mfa/credd-mfa";

/// A command run on a terminal of its own (`script -q -e -c CMD /dev/null`:
/// a pty whose input is our pipe), and everything it wrote there.
struct Pty {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    fn spawn(mut cmd: Command, line: &str) -> Pty {
        let mut child = cmd
            .arg("-q")
            .arg("-e")
            .arg("-c")
            .arg(line)
            .arg("/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start script (util-linux)");
        let mut out = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let stdin = child.stdin.take();
        Pty { child, stdin, seen }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).to_string()
    }

    /// Waits until the terminal shows `what`.
    fn expect(&self, what: &str) {
        let start = Instant::now();
        while !self.text().contains(what) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the terminal never showed {what:?}: {}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types a line.
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the command's exit: its status and the whole screen.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // The reader thread drains what is left.
                std::thread::sleep(Duration::from_millis(200));
                drop(self.stdin.take());
                return (st, self.text());
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!("the command did not finish: {}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn on_terminal(env: &Env, args: &[String]) -> Pty {
    let line = std::iter::once(credd_bin().display().to_string())
        .chain(args.iter().cloned())
        .map(|a| shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = env.cmd("script");
    cmd.env("AWS_DEFAULT_REGION", "us-east-1");
    Pty::spawn(cmd, &line)
}

fn boto3_whoami() -> Vec<String> {
    vec![
        python().display().to_string(),
        clients().join("whoami.py").display().to_string(),
    ]
}

#[test]
fn exec_on_a_terminal_asks_for_the_mfa_code_without_echo_then_runs() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let mut args: Vec<String> = ["exec", "mfa", "--"].map(String::from).to_vec();
    args.extend(boto3_whoami());
    let mut pty = on_terminal(&env, &args);
    pty.expect("MFA code for arn:aws:iam::123456789012:mfa/me (profile 'mfa'): ");
    pty.send("987654");
    let (status, screen) = pty.finish();
    assert!(status.success(), "{screen}");
    assert!(
        screen.contains(MFA_ARN),
        "the command ran with the role: {screen}"
    );
    assert!(
        !screen.contains("987654"),
        "the code is not echoed: {screen}"
    );
    assert!(screen.contains("MFA session started"), "{screen}");
    assert_eq!(env.moto.count("GetSessionToken"), 1);
    // The session is the daemon's now: the next exec asks nothing, even
    // without a terminal.
    let again = env.exec_boto3("mfa");
    assert!(
        again.status.success() && stdout_of(&again).contains(MFA_ARN),
        "{}",
        stderr_of(&again)
    );
}

#[test]
fn a_mistyped_code_is_asked_again() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let mut pty = on_terminal(&env, &["env", "mfa", "--static"].map(String::from));
    pty.expect("MFA code for ");
    // Not digits: refused here, before the daemon sees it, and asked again.
    pty.send("12ab");
    pty.expect("digits only");
    let start = Instant::now();
    while pty.text().matches("MFA code for ").count() < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "{}", pty.text());
        std::thread::sleep(Duration::from_millis(20));
    }
    pty.send("123456");
    let (status, screen) = pty.finish();
    assert!(status.success(), "{screen}");
    assert!(screen.contains("export AWS_SECRET_ACCESS_KEY="), "{screen}");
    assert_eq!(env.moto.count("GetSessionToken"), 1);
}

#[test]
fn env_static_and_write_credentials_ask_on_a_terminal() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let mut pty = on_terminal(&env, &["env", "mfa", "--static"].map(String::from));
    pty.expect("MFA code for ");
    pty.send("123456");
    let (status, screen) = pty.finish();
    assert!(status.success(), "{screen}");
    assert!(
        screen.contains("export AWS_SECRET_ACCESS_KEY=")
            && screen.contains("export CREDD_PROFILE=mfa"),
        "{screen}"
    );
    // The MFA session now exists: write-credentials goes straight on.
    env.credd_ok(&["write-credentials", "mfa"]);
    let file = std::fs::read_to_string(env.home().join(".aws/credentials")).unwrap();
    assert!(file.contains("[mfa-temp]"), "{file}");
    assert_eq!(env.moto.count("GetSessionToken"), 1);
}

#[test]
fn without_a_terminal_nothing_runs_and_the_command_to_run_is_named() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let marker = env.path("ran");
    let o = env
        .cmd(credd_bin())
        .args(["exec", "mfa", "--", "sh", "-c"])
        .arg(format!(
            "touch {}",
            shell_quote(&marker.display().to_string())
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr_of(&o));
    assert!(!marker.exists(), "the command must not run");
    let err = stderr_of(&o);
    assert!(
        err.contains("no terminal to ask on: run `credd mfa mfa`")
            && err.contains("MFA code needed: run `credd mfa mfa`"),
        "{err}"
    );
    for args in [
        &["env", "mfa", "--static"][..],
        &["write-credentials", "mfa"][..],
    ] {
        let o = env.credd(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr_of(&o));
        assert!(
            stderr_of(&o).contains("run `credd mfa mfa`, then this again"),
            "{args:?}: {}",
            stderr_of(&o)
        );
        assert!(stdout_of(&o).is_empty(), "{args:?}");
    }
    assert!(!env.home().join(".aws/credentials").exists());
    assert_eq!(env.moto.count("GetSessionToken"), 0);
}

#[test]
fn exec_without_a_command_opens_the_shell_with_the_profile() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let mut child = env
        .cmd(credd_bin())
        .args(["exec", "dev"])
        .env("SHELL", "/bin/sh")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let script = format!(
        "echo \"profile=$CREDD_PROFILE\"\n{} {}\nexit 7\n",
        shell_quote(&python().display().to_string()),
        shell_quote(&clients().join("whoami.py").display().to_string())
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let o: Output = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(7),
        "the shell's status: {}",
        stderr_of(&o)
    );
    let out = stdout_of(&o);
    assert!(out.contains("profile=dev"), "{out}");
    assert!(out.contains("assumed-role/dev/"), "{out}");
    assert!(stderr_of(&o).contains("a shell with profile 'dev'"));
    // Its token died with it.
    let tokens: serde_json::Value =
        serde_json::from_str(&env.credd_ok(&["token", "list", "--json"])).unwrap();
    assert_eq!(tokens.as_array().map(Vec::len), Some(0), "{tokens}");
}

#[test]
fn typos_get_a_suggestion_and_a_missing_dashdash_a_hint() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let o = env.credd(&["exec", "dve", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr_of(&o).contains("unknown profile 'dve'")
            && stderr_of(&o).contains("did you mean 'dev'?"),
        "{}",
        stderr_of(&o)
    );
    let o = env.credd(&["whoami", "chaned"]);
    assert!(
        stderr_of(&o).contains("did you mean 'chained'?"),
        "{}",
        stderr_of(&o)
    );
    let o = env.credd(&["exec", "dev", "aws", "s3", "ls", "--recursive"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr_of(&o).contains("credd exec dev -- aws s3 ls --recursive"),
        "{}",
        stderr_of(&o)
    );
    // Nothing close: no guess.
    let o = env.credd(&["exec", "zzzzzzzz", "--", "true"]);
    assert!(!stderr_of(&o).contains("did you mean"), "{}", stderr_of(&o));
}

#[test]
fn the_prompt_shows_time_left_and_needs_and_is_silent_without_a_daemon() {
    let env = Env::new();
    let prompt = |vars: &[(&str, &str)]| {
        let o = env
            .cmd(credd_bin())
            .arg("prompt")
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "a prompt never fails: {}",
            stderr_of(&o)
        );
        assert!(o.stderr.is_empty(), "{}", stderr_of(&o));
        stdout_of(&o)
    };
    assert_eq!(
        prompt(&[("CREDD_PROFILE", "dev")]),
        "",
        "no daemon: nothing"
    );
    let d = env.serve(&[]);
    assert_eq!(prompt(&[]), "", "no profile: nothing");
    env.credd_ok(&["credential-process", "dev"]);
    let seg = prompt(&[("CREDD_PROFILE", "dev")]);
    let left: Vec<&str> = seg.split_whitespace().collect();
    assert_eq!(left[0], "dev", "{seg}");
    assert!(
        left.len() == 2 && (left[1].ends_with('m') || left[1].ends_with('h')),
        "dev and its time left: {seg}"
    );
    // AWS_PROFILE when credd did not set CREDD_PROFILE.
    assert!(prompt(&[("AWS_PROFILE", "dev")]).starts_with("dev "));
    let _ = env.credd(&["credential-process", "mfa"]);
    assert_eq!(prompt(&[("CREDD_PROFILE", "mfa")]), "mfa needs MFA");
    drop(d);
    assert_eq!(prompt(&[("CREDD_PROFILE", "dev")]), "");
}

const SSO_CONFIG: &str = "[sso-session work]
sso_start_url = https://d-1234567890.awsapps.com/start
sso_region = eu-west-1
sso_registration_scopes = sso:account:access

[profile dev]
sso_session = work
sso_account_id = 111122223333
sso_role_name = PowerUserAccess
region = us-east-1
";

/// A user of IAM Identity Center (the sandbox) who has not signed in yet.
fn sso_user() -> (Env, credd_sandbox::SandboxHandle, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sandbox = rt
        .block_on(credd_sandbox::Sandbox::start(
            credd_sandbox::SandboxConfig::default(),
        ))
        .unwrap();
    let url = sandbox.url();
    let mut env = Env::with_moto(SSO_CONFIG, Moto::external(url.clone()));
    env.vars = vec![
        ("AWS_ENDPOINT_URL_SSO".into(), url.clone()),
        ("AWS_ENDPOINT_URL_SSO_OIDC".into(), url),
        // A browser that opens nothing: the test visits the printed URL.
        ("BROWSER".into(), "true".into()),
    ];
    (env, sandbox, rt)
}

#[test]
fn exec_on_a_terminal_offers_the_sign_in_runs_it_then_the_command() {
    let (env, _sandbox, rt) = sso_user();
    let _d = env.serve(&[]);
    let mut args: Vec<String> = ["exec", "dev", "--"].map(String::from).to_vec();
    args.extend(boto3_whoami());
    let mut pty = on_terminal(&env, &args);
    pty.expect("Sign in now? [Y/n] ");
    assert!(pty.text().contains("`credd login work`"), "{}", pty.text());
    pty.send("");
    pty.expect("/authorize?");
    let screen = pty.text();
    let url = screen
        .split_whitespace()
        .find(|w| w.starts_with("http://") && w.contains("/authorize?"))
        .unwrap()
        .to_string();
    let (status, body) = rt.block_on(credd_sandbox::browser::visit(&url)).unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, screen) = pty.finish();
    assert!(status.success(), "{screen}");
    assert!(
        screen.contains(":assumed-role/PowerUserAccess/"),
        "the command ran after the sign-in: {screen}"
    );
    assert!(env
        .home()
        .join(".aws/sso/cache/e274eeff768c6396088ec6eb091f4bf4d47ab1e0.json")
        .exists());
}

#[test]
fn declining_the_sign_in_runs_nothing_and_names_the_command() {
    let (env, _sandbox, _rt) = sso_user();
    let _d = env.serve(&[]);
    let marker = env.path("ran");
    let args: Vec<String> = vec![
        "exec".into(),
        "dev".into(),
        "--".into(),
        "touch".into(),
        marker.display().to_string(),
    ];
    let mut pty = on_terminal(&env, &args);
    pty.expect("Sign in now? [Y/n] ");
    pty.send("n");
    let (status, screen) = pty.finish();
    assert_eq!(status.code(), Some(1), "{screen}");
    assert!(
        screen.contains("not signed in: run `credd login work`, then this again"),
        "{screen}"
    );
    assert!(!marker.exists(), "the command must not run");
}

/// The container endpoint's 503 for `profile`, as JSON.
fn refusal_503(env: &Env, d: &Daemon, profile: &str) -> serde_json::Value {
    let token = env
        .credd_ok(&["token", "issue", "--profile", profile])
        .trim()
        .to_string();
    let (status, body) = get(
        d.addr(),
        &format!("/v1/credentials/{profile}"),
        Some(&d.addr().to_string()),
        Some(&token),
    );
    assert_eq!(status, 503, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn the_503_body_says_typed_what_the_person_must_do() {
    // An MFA profile with no session yet.
    let env = Env::new();
    let d = env.serve(&[]);
    let v = refusal_503(&env, &d, "mfa");
    assert_eq!(v["code"], "MfaRequired", "{v}");
    assert_eq!(
        v["needs"],
        serde_json::json!({"kind": "mfa", "session": "mfa", "command": "credd mfa mfa"}),
        "{v}"
    );
    // A profile that needs nothing from the person has no `needs`.
    let token = env
        .credd_ok(&["token", "issue", "--profile", "typo"])
        .trim()
        .to_string();
    let (status, body) = get(
        d.addr(),
        "/v1/credentials/typo",
        Some(&d.addr().to_string()),
        Some(&token),
    );
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v.get("needs").is_none(), "{v}");
    drop(d);

    // An Identity Center profile nobody has signed in to.
    let (env, _sandbox, _rt) = sso_user();
    let d = env.serve(&[]);
    let v = refusal_503(&env, &d, "dev");
    assert_eq!(v["code"], "SsoLoginRequired", "{v}");
    assert_eq!(
        v["needs"],
        serde_json::json!({"kind": "sign_in", "session": "work", "command": "credd login work"}),
        "{v}"
    );
}

/// Long profile names and ARNs, and a profile that cannot be served (its
/// reason is a long line under the table).
const WIDE_CONFIG: &str = r#"[profile base]
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = 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
region = us-east-1

[profile platform-team-production-administrator-access-eu-west-1]
role_arn = arn:aws:iam::123456789012:role/platform/very/long/path/ProductionAdministratorAccessForTheWholeTeam
source_profile = base
region = eu-west-1

[profile data-engineering-analytics-readonly-with-a-very-long-name]
role_arn = arn:aws:iam::123456789012:role/data/engineering/AnalyticsReadOnlyAccessForDashboardsAndNotebooks
source_profile = platform-team-production-administrator-access-eu-west-1
region = us-east-1

[profile misconfigured-profile-whose-reason-is-a-long-sentence]
role_arn = arn:aws:iam::123456789012:role/x
source_profile = a-source-profile-that-does-not-exist-anywhere-in-the-files
"#;

/// The lines of `screen` (a terminal's `\r\n`s, and `script`'s own
/// carriage returns, taken off).
fn screen_lines(screen: &str) -> Vec<String> {
    screen
        .split('\n')
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect()
}

#[test]
fn status_and_profiles_fit_the_terminal_and_columns_and_piped_rows_stay_whole() {
    let env = Env::with_config(WIDE_CONFIG);
    let _d = env.serve(&[]);
    // Something fetched, so the rows carry expiries and chains.
    env.credd_ok(&[
        "whoami",
        "platform-team-production-administrator-access-eu-west-1",
    ]);
    for cols in [80, 120] {
        for command in ["status", "profiles"] {
            // `stty` sizes the pty as a terminal window would.
            let line = format!(
                "stty cols {cols} rows 50; {} {command}",
                shell_quote(&credd_bin().display().to_string())
            );
            let mut cmd = env.cmd("script");
            cmd.env("AWS_DEFAULT_REGION", "us-east-1");
            let pty = Pty::spawn(cmd, &line);
            let (status, screen) = pty.finish();
            assert!(status.success(), "{screen}");
            assert!(screen.contains("PROFILE"), "{screen}");
            assert!(screen.contains("misconfigured-profile"), "{screen}");
            let lines = screen_lines(&screen);
            for l in &lines {
                assert!(
                    l.chars().count() <= cols,
                    "`credd {command}` at {cols} columns, a line of {}: {l:?}\n{screen}",
                    l.chars().count()
                );
            }
            // The width is used, not just respected.
            assert!(
                lines.iter().any(|l| l.chars().count() > cols - 20),
                "{cols}: {screen}"
            );
        }
    }
    // Piped with COLUMNS: as on a terminal that wide.
    let o = env
        .cmd(credd_bin())
        .env("COLUMNS", "60")
        .arg("status")
        .output()
        .unwrap();
    let out = stdout_of(&o);
    assert!(o.status.success(), "{out}{}", stderr_of(&o));
    for l in out.lines() {
        assert!(
            l.chars().count() <= 60,
            "COLUMNS=60, a line of {}: {l:?}\n{out}",
            l.chars().count()
        );
    }
    // Piped without it: nothing wrapped, a row is one line.
    let out = env.credd_ok(&["profiles"]);
    assert!(
        out.lines().any(
            |l| l.contains("platform-team-production-administrator-access-eu-west-1")
                && l.contains(
                    "role/platform/very/long/path/ProductionAdministratorAccessForTheWholeTeam"
                )
                || l.contains("data-engineering-analytics-readonly-with-a-very-long-name")
                    && l.contains("platform-team-production-administrator-access-eu-west-1")
        ),
        "{out}"
    );
}
