//! IAM Identity Center end to end: the real `credd` binary against the
//! credd sandbox (SSO OIDC, the SSO portal and STS on loopback), with the
//! test playing the browser, and unmodified boto3/botocore sharing the token
//! cache both ways. Also the session-ended path, a corrupt cache file,
//! typos, discovery, populate, logout and the README's `credd demo`.

mod support;

use credd_sandbox::{Account, FaultKind, Sandbox, SandboxConfig, SandboxHandle};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const START_URL: &str = "https://d-1234567890.awsapps.com/start";

fn config(region: &str, start_url: &str) -> String {
    format!(
        "[sso-session work]\n\
sso_start_url = {start_url}\n\
sso_region = {region}\n\
sso_registration_scopes = sso:account:access\n\n\
# my SSO profiles\n\
[profile dev]\n\
sso_session = work\n\
sso_account_id = 111122223333\n\
sso_role_name = PowerUserAccess\n\
region = us-east-1\n\n\
[profile ro]\n\
sso_session = work\n\
sso_account_id = 444455556666\n\
sso_role_name = ReadOnly\n\
region = us-east-1\n\n\
[profile dev-admin]\n\
role_arn = arn:aws:iam::444455556666:role/Admin\n\
source_profile = dev\n\
region = us-east-1\n"
    )
}

/// A user whose AWS endpoints are a sandbox running in this test.
struct Sso {
    env: Env,
    sandbox: SandboxHandle,
    _rt: tokio::runtime::Runtime,
}

impl Sso {
    fn new(cfg: SandboxConfig) -> Self {
        Self::with_config(cfg, &config("eu-west-1", START_URL))
    }
    fn with_config(cfg: SandboxConfig, aws_config: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sandbox = rt.block_on(Sandbox::start(cfg)).unwrap();
        let url = sandbox.url();
        let mut env = Env::with_moto(aws_config, Moto::external(url.clone()));
        env.vars = vec![
            ("AWS_ENDPOINT_URL_SSO".into(), url.clone()),
            ("AWS_ENDPOINT_URL_SSO_OIDC".into(), url),
        ];
        Sso {
            env,
            sandbox,
            _rt: rt,
        }
    }

    fn cache_file(&self) -> std::path::PathBuf {
        // sha1("work"), as the AWS CLI names the file.
        self.env
            .home()
            .join(".aws/sso/cache/e274eeff768c6396088ec6eb091f4bf4d47ab1e0.json")
    }

    /// `credd login ARGS --no-browser`, with the test as the browser: it
    /// reads the URL credd prints and visits it (the sandbox approves).
    fn login(&self, args: &[&str]) -> String {
        let (ok, out) = self.login_as(args, |url| url.to_string());
        assert!(ok, "credd login failed:\n{out}");
        out
    }

    /// `credd login`, with a browser that visits `browse(url)` instead of
    /// the URL credd printed; returns whether the login succeeded.
    fn login_as(&self, args: &[&str], browse: impl Fn(&str) -> String) -> (bool, String) {
        let mut child = self
            .env
            .cmd(credd_bin())
            .arg("login")
            .args(args)
            .arg("--no-browser")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let mut visited = false;
        for line in stderr.lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            let t = line.trim();
            if !visited && t.starts_with("http://") {
                // The device page is printed without the code; the complete
                // URI is what a browser opens. Either approves here.
                let url = if t.contains("/device") && !t.contains("user_code") {
                    continue;
                } else {
                    browse(t)
                };
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let (status, body) = rt
                    .block_on(credd_sandbox::browser::visit(&url))
                    .unwrap_or_else(|e| panic!("visiting {url}: {e}\n{seen}"));
                assert!(status == 200 || status == 400, "{url}: {status} {body}");
                visited = true;
            }
        }
        let st = child.wait().unwrap();
        assert!(visited, "credd login printed no URL:\n{seen}");
        (st.success(), seen)
    }

    fn boto3(&self, profile: &str) -> std::process::Output {
        self.env
            .client(Client::Boto3)
            .env("AWS_PROFILE", profile)
            .output()
            .unwrap()
    }
}

fn ok_stdout(o: &std::process::Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        o.status,
        stdout_of(o),
        stderr_of(o)
    );
    stdout_of(o)
}

/// The top-level keys of a JSON object, in file order.
fn keys_in_order(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut depth = 0;
    let mut chars = text.char_indices().peekable();
    let mut expect_key = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '{' => {
                depth += 1;
                expect_key = depth == 1;
            }
            '}' => depth -= 1,
            ',' if depth == 1 => expect_key = true,
            '"' => {
                let start = i + 1;
                let mut end = start;
                while let Some((j, d)) = chars.next() {
                    if d == '\\' {
                        chars.next();
                        continue;
                    }
                    if d == '"' {
                        end = j;
                        break;
                    }
                }
                if expect_key {
                    keys.push(text[start..end].to_string());
                    expect_key = false;
                }
            }
            _ => {}
        }
    }
    keys
}

fn is_cli_timestamp(s: &str) -> bool {
    s.len() == 20
        && s.ends_with('Z')
        && time::PrimitiveDateTime::parse(
            s,
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"),
        )
        .is_ok()
}

#[test]
fn pkce_login_writes_the_clis_cache_and_boto3_and_the_daemon_both_use_it() {
    let s = Sso::new(SandboxConfig::default());
    let out = s.login(&["work"]);
    assert!(out.contains("Logged in to SSO session 'work'"), "{out}");
    assert_eq!(s.sandbox.count("CreateToken:authorization_code"), 1);

    // The token file, field by field, as the AWS CLI v2 writes it.
    let text = std::fs::read_to_string(s.cache_file()).unwrap();
    assert!(!text.contains('\n'), "one line, like the CLI: {text:?}");
    assert_eq!(
        keys_in_order(&text),
        [
            "startUrl",
            "region",
            "accessToken",
            "expiresAt",
            "clientId",
            "clientSecret",
            "registrationExpiresAt",
            "refreshToken"
        ]
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["startUrl"], START_URL);
    assert_eq!(v["region"], "eu-west-1");
    assert!(is_cli_timestamp(v["expiresAt"].as_str().unwrap()), "{v}");
    assert!(is_cli_timestamp(
        v["registrationExpiresAt"].as_str().unwrap()
    ));
    let mode = std::fs::metadata(s.cache_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The client registration, under botocore's cache key.
    let reg_files: Vec<_> = std::fs::read_dir(s.env.home().join(".aws/sso/cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != &s.cache_file())
        .collect();
    assert_eq!(reg_files.len(), 1, "{reg_files:?}");
    let reg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&reg_files[0]).unwrap()).unwrap();
    assert_eq!(reg["clientId"], v["clientId"]);
    assert_eq!(
        reg["grantTypes"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );

    // Unmodified boto3 reads the token credd wrote.
    let arn = ok_stdout(&s.boto3("dev"), "boto3 with an SSO profile");
    assert!(
        arn.ends_with(":assumed-role/PowerUserAccess/demo-user"),
        "{arn}"
    );

    // And the daemon serves from it, to boto3 through the endpoint.
    let d = s.env.serve(&[]);
    let arn = ok_stdout(&s.env.exec_boto3("dev"), "credd exec dev");
    assert!(arn.contains(":assumed-role/PowerUserAccess/"), "{arn}");
    let arn = ok_stdout(&s.env.exec_boto3("dev-admin"), "credd exec dev-admin");
    assert!(arn.contains("444455556666:assumed-role/Admin/"), "{arn}");
    // No token or key ever reaches the daemon's log.
    let logs = d.logs();
    assert!(!logs.contains(v["accessToken"].as_str().unwrap()), "{logs}");
    assert!(!logs.contains(v["refreshToken"].as_str().unwrap()));
    assert!(!logs.contains(v["clientSecret"].as_str().unwrap()));
}

#[test]
fn a_redirect_with_another_logins_state_is_refused() {
    let s = Sso::new(SandboxConfig::default());
    // A forged redirect straight to credd's listener, with a state of its own.
    let (ok, out) = s.login_as(&["work"], |url| {
        let redirect = url
            .split('&')
            .find_map(|kv| kv.strip_prefix("redirect_uri="))
            .expect("the authorize URL names the redirect");
        let redirect = redirect.replace("%3A", ":").replace("%2F", "/");
        format!("{redirect}?code=forged&state=not-the-one-credd-sent")
    });
    assert!(!ok, "{out}");
    assert!(out.contains("another login's state"), "{out}");
    assert!(!s.cache_file().exists(), "no token written");
    assert_eq!(s.sandbox.count("CreateToken:authorization_code"), 0);
}

#[test]
fn device_code_login_honours_slow_down() {
    let s = Sso::new(SandboxConfig::default());
    s.sandbox.inject_fault(credd_sandbox::Fault {
        operation: "CreateToken:device_code".into(),
        kind: FaultKind::Throttle,
        times: Some(1),
    });
    let out = s.login(&["work", "--device-code"]);
    assert!(out.contains("check that it shows the code"), "{out}");
    assert!(s.sandbox.count("CreateToken:device_code") >= 2, "{out}");
    assert_eq!(s.sandbox.count("StartDeviceAuthorization"), 1);
    let arn = ok_stdout(&s.boto3("dev"), "boto3 after a device-code login");
    assert!(arn.contains(":assumed-role/PowerUserAccess/"), "{arn}");
}

#[test]
fn credd_serves_from_a_token_that_botocore_refreshed() {
    // Ten-minute tokens: botocore refreshes with fifteen minutes left.
    let s = Sso::new(SandboxConfig {
        access_token_lifetime: Duration::from_secs(600),
        ..Default::default()
    });
    s.login(&["work"]);
    let ours = std::fs::read_to_string(s.cache_file()).unwrap();
    let arn = ok_stdout(&s.boto3("dev"), "boto3");
    assert!(arn.contains("PowerUserAccess"), "{arn}");
    assert_eq!(
        s.sandbox.count("CreateToken:refresh_token"),
        1,
        "botocore refreshed the token credd wrote"
    );
    let theirs = std::fs::read_to_string(s.cache_file()).unwrap();
    assert_ne!(ours, theirs, "botocore wrote the file back");
    // botocore writes the same fields, with the same timestamp format.
    let mut a = keys_in_order(&ours);
    let mut b = keys_in_order(&theirs);
    a.sort();
    b.sort();
    assert_eq!(a, b, "{ours}\n{theirs}");
    let v: serde_json::Value = serde_json::from_str(&theirs).unwrap();
    assert!(
        is_cli_timestamp(v["expiresAt"].as_str().unwrap()),
        "{theirs}"
    );
    // The daemon serves with botocore's token: no login, no refresh of its own.
    let _d = s.env.serve(&[]);
    let arn = ok_stdout(&s.env.exec_boto3("ro"), "credd exec ro");
    assert!(arn.contains("444455556666:assumed-role/ReadOnly/"), "{arn}");
    assert_eq!(s.sandbox.count("CreateToken:refresh_token"), 1);
}

#[test]
fn the_session_ending_gives_a_503_naming_credd_login_a_notification_and_recovers() {
    let s = Sso::new(SandboxConfig::default());
    s.login(&["work"]);
    // A stand-in notify-send records what the desktop would show.
    let (path, record) = s.env.fake_notify_send();
    let d = Daemon::start_with_env(&s.env, &[], false, &[("PATH", &path), ("DISPLAY", ":99")]);
    let token = s
        .env
        .credd_ok(&["token", "issue", "--profile", "ro"])
        .trim()
        .to_string();

    // The Identity Center session ends (e.g. its 8 hours are up).
    assert_eq!(s.sandbox.end_session(), 1);
    let (status, body) = get(
        d.addr(),
        "/v1/credentials/ro",
        Some(&d.addr().to_string()),
        Some(&token),
    );
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "SsoLoginRequired");
    assert_eq!(
        v["message"],
        "SSO session 'work' ended: run `credd login work`"
    );
    let status = s.env.credd_ok(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&status).unwrap();
    let ro = st["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "ro")
        .unwrap();
    assert_eq!(ro["state"], "login required", "{status}");
    assert_eq!(st["sso_sessions"][0]["state"], "ended", "{status}");
    let mut shown = String::new();
    for _ in 0..100 {
        shown = std::fs::read_to_string(&record).unwrap_or_default();
        if !shown.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        shown.contains("SSO session 'work' ended: run `credd login work`"),
        "notification: {shown:?}"
    );
    assert!(d.logs().contains("the IAM Identity Center session ended"));
    // No browser was opened and no login started on the user's behalf.
    assert_eq!(s.sandbox.count("StartDeviceAuthorization"), 0);
    assert_eq!(s.sandbox.count("Authorize"), 1, "only the test's own login");

    // After `credd login`, service resumes without a daemon restart.
    s.login(&["work"]);
    let (status, body) = get(
        d.addr(),
        "/v1/credentials/ro",
        Some(&d.addr().to_string()),
        Some(&token),
    );
    assert_eq!(status, 200, "{body}");
    let notified = std::fs::read_to_string(&record).unwrap();
    assert_eq!(
        notified.matches("ended").count(),
        1,
        "told once: {notified}"
    );
}

#[test]
fn a_corrupt_cache_file_is_a_miss_with_a_clear_message_and_is_left_alone() {
    let s = Sso::new(SandboxConfig::default());
    std::fs::create_dir_all(s.cache_file().parent().unwrap()).unwrap();
    let junk = br#"{"startUrl": "https://d-1234567890.awsapps.com/start", "accessToken": "trunc"#;
    std::fs::write(s.cache_file(), junk).unwrap();
    let mut d = s.env.serve(&[]);
    let o = s.env.credd(&["credential-process", "dev"]);
    assert!(!o.status.success());
    let err = stderr_of(&o);
    assert!(err.contains("cannot be used"), "{err}");
    assert!(err.contains("run `credd login work`"), "{err}");
    assert_eq!(std::fs::read(s.cache_file()).unwrap(), junk.to_vec());
    assert!(d.logs().contains("cannot be used"), "{}", d.logs());
    assert!(d.child_alive(), "the daemon did not crash");
    // A login replaces it, and the daemon uses the new token.
    s.login(&["work"]);
    ok_stdout(&s.env.credd(&["credential-process", "dev"]), "after login");
}

#[test]
fn start_url_and_region_typos_get_clear_errors_before_any_call() {
    let s = Sso::with_config(
        SandboxConfig::default(),
        &config("eu-west1", "d-1234567890.awsapps.com/start"),
    );
    let o = s.env.credd(&["login", "work", "--no-browser"]);
    assert!(!o.status.success());
    let err = stderr_of(&o);
    assert!(
        err.contains("sso_start_url") && err.contains("expected a URL"),
        "{err}"
    );
    let s2 = Sso::with_config(SandboxConfig::default(), &config("eu-west1", START_URL));
    let err = stderr_of(&s2.env.credd(&["login", "work", "--no-browser"]));
    assert!(
        err.contains("'eu-west1'") && err.contains("region"),
        "{err}"
    );
    let err = stderr_of(&s2.env.credd(&["login", "wrok", "--no-browser"]));
    assert!(
        err.contains("no [sso-session wrok]") && err.contains("work"),
        "{err}"
    );
    assert!(s.sandbox.counts().is_empty() && s2.sandbox.counts().is_empty());
}

#[test]
fn sso_accounts_and_populate_write_profiles_that_work_and_keep_the_rest() {
    let accounts: Vec<Account> = (0..5)
        .map(|i| {
            Account::new(
                &format!("10000000000{i}"),
                &format!("team {i}"),
                &["ReadOnly"],
            )
        })
        .chain([Account::new(
            "111122223333",
            "dev",
            &["PowerUserAccess", "ReadOnly"],
        )])
        .collect();
    let s = Sso::new(SandboxConfig::default().with_accounts(accounts));
    let before = std::fs::read_to_string(s.env.home().join(".aws/config")).unwrap();
    let o = s.env.credd(&["sso", "accounts", "work"]);
    assert!(
        stderr_of(&o).contains("run `credd login work`"),
        "{}",
        stderr_of(&o)
    );
    s.login(&["work"]);
    let list = s.env.credd_ok(&["sso", "accounts", "work", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 6, "every page: {list}");
    let dev = v
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["accountId"] == "111122223333")
        .unwrap();
    assert_eq!(
        dev["roles"],
        serde_json::json!(["PowerUserAccess", "ReadOnly"])
    );

    let diff = s.env.credd_ok(&["sso", "populate", "work", "--dry-run"]);
    assert!(diff.contains("+[profile dev-PowerUserAccess]"), "{diff}");
    assert!(diff.contains("+[profile team-0-ReadOnly]"), "{diff}");
    assert_eq!(
        std::fs::read_to_string(s.env.home().join(".aws/config")).unwrap(),
        before,
        "--dry-run changes nothing"
    );
    s.env
        .credd_ok(&["sso", "populate", "work", "--region", "eu-west-1"]);
    let after = std::fs::read_to_string(s.env.home().join(".aws/config")).unwrap();
    assert!(after.starts_with(&before), "everything before is kept");
    assert!(after.contains("# my SSO profiles"));
    assert_eq!(
        std::fs::read_to_string(s.env.home().join(".aws/config.credd-backup")).unwrap(),
        before
    );
    let again = s
        .env
        .credd(&["sso", "populate", "work", "--region", "eu-west-1"]);
    assert!(
        stderr_of(&again).contains("no changes"),
        "{}",
        stderr_of(&again)
    );
    assert_eq!(
        std::fs::read_to_string(s.env.home().join(".aws/config")).unwrap(),
        after
    );
    // A populated profile works with boto3.
    let arn = ok_stdout(
        &s.boto3("team-3-ReadOnly"),
        "boto3 with a populated profile",
    );
    assert!(arn.contains("100000000003:assumed-role/ReadOnly/"), "{arn}");
}

#[test]
fn logout_calls_the_portal_and_removes_the_token() {
    let s = Sso::new(SandboxConfig::default());
    s.login(&["work"]);
    let d = s.env.serve(&[]);
    ok_stdout(&s.env.credd(&["credential-process", "dev"]), "logged in");
    let o = s.env.credd(&["logout", "work"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("Logged out of SSO session 'work'"));
    assert_eq!(s.sandbox.count("Logout"), 1);
    assert!(!s.cache_file().exists());
    // Cached credentials for dev remain until they expire; a profile not
    // fetched yet now needs a login.
    let o = s.env.credd(&["credential-process", "ro"]);
    assert!(
        stderr_of(&o).contains("not logged in: run `credd login work`"),
        "{}",
        stderr_of(&o)
    );
    drop(d);
}

#[test]
fn the_readme_demo_passes_its_self_check() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(credd_bin())
        .args(["demo", "--self-check"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("CREDD_RUNTIME_DIR", dir.path().join("run"))
        .env("CREDD_STATE_DIR", dir.path().join("state"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("self-check passed"), "{err}");
    for want in [
        "demo: arn:aws:sts::111122223333:assumed-role/PowerUserAccess/",
        "demo-admin: arn:aws:sts::444455556666:assumed-role/Admin/",
        "demo-mfa: arn:aws:sts::111122223333:assumed-role/Deploy/",
        "a wrong token gets 401",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // It never touched the (empty) HOME it was given.
    assert!(!dir.path().join(".aws").exists());
}
