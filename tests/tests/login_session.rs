//! `aws login` sessions (`login_session` profiles) end to end: the real
//! `credd` binary against the credd sandbox (AWS Sign-In with DPoP and
//! rotating refresh tokens, and STS, on loopback), with the test playing the
//! user at the sign-in page, and unmodified botocore 1.44 (with awscrt)
//! sharing the login cache both ways. Everything goes through the variables
//! a user sets: `AWS_ENDPOINT_URL_SIGNIN`, `AWS_LOGIN_CACHE_DIRECTORY`,
//! `AWS_CONFIG_FILE`.

mod support;

use credd_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::*;

/// The sandbox's default `login_identity`, unless a test sets another.
const IDENTITY: &str = "arn:aws:iam::111122223333:user/demo-user";

/// `console` has no credentials yet: `credd login` adds its login_session,
/// as `aws login --profile console` would. `console-admin` is a role
/// chained on it; `keys` is refused.
const CONFIG: &str = "# my profiles\n\
[profile console]\n\
# where I work\n\
region   =eu-west-1\n\n\
[profile console-admin]\n\
role_arn = arn:aws:iam::444455556666:role/Admin\n\
source_profile = console\n\
region = eu-west-1\n\n\
[profile keys]\n\
aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
aws_secret_access_key = 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\n\
region = eu-west-1\n";

/// A user whose AWS (Sign-In and STS) is a sandbox running in this test.
struct Console {
    env: Env,
    sandbox: SandboxHandle,
    /// `AWS_CONFIG_FILE`: not `~/.aws/config`, so the test sees that every
    /// reader and writer follows the variable.
    config: PathBuf,
    /// `AWS_LOGIN_CACHE_DIRECTORY`.
    cache_dir: PathBuf,
    _rt: tokio::runtime::Runtime,
}

impl Console {
    fn new(cfg: SandboxConfig) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sandbox = rt.block_on(Sandbox::start(cfg)).unwrap();
        let url = sandbox.url();
        let mut env = Env::with_moto("", Moto::external(url.clone()));
        std::fs::remove_file(env.home().join(".aws/config")).unwrap();
        let config = env.path("aws-config");
        std::fs::write(&config, CONFIG).unwrap();
        let cache_dir = env.path("login-cache");
        env.vars = vec![
            ("AWS_ENDPOINT_URL_SIGNIN".into(), url),
            ("AWS_CONFIG_FILE".into(), config.display().to_string()),
            (
                "AWS_LOGIN_CACHE_DIRECTORY".into(),
                cache_dir.display().to_string(),
            ),
        ];
        Console {
            env,
            sandbox,
            config,
            cache_dir,
            _rt: rt,
        }
    }

    /// The cache file of a session: the hex SHA-256 of its ARN, as botocore
    /// names it.
    fn cache_file(&self, arn: &str) -> PathBuf {
        self.cache_dir
            .join(format!("{}.json", hex::encode(Sha256::digest(arn))))
    }

    fn cache(&self, arn: &str) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.cache_file(arn)).unwrap()).unwrap()
    }

    /// `credd login --profile P --no-browser ARGS`, the test as the browser;
    /// asserts success.
    fn login(&self, profile: &str, args: &[&str]) -> String {
        let (ok, out) = self.login_as(profile, args, Stdio::null(), |url| url.to_string());
        assert!(ok, "credd login failed:\n{out}");
        out
    }

    /// `credd login --profile P --no-browser ARGS` with `stdin`: the test
    /// visits `browse(the sign-in URL credd prints)` with the stand-in
    /// browser, which follows the sandbox's redirect to credd's loopback
    /// listener.
    fn login_as(
        &self,
        profile: &str,
        args: &[&str],
        stdin: Stdio,
        browse: impl Fn(&str) -> String,
    ) -> (bool, String) {
        let mut child = self
            .env
            .cmd(credd_bin())
            .args(["login", "--profile", profile, "--no-browser"])
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut seen = String::new();
        let mut visited = false;
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            let t = line.trim();
            if !visited && t.starts_with("http://") && t.contains("/v1/authorize?") {
                let url = browse(t);
                let (status, body) = visit(&url);
                assert_eq!(status, 200, "{url}: {body}\n{seen}");
                visited = true;
            }
        }
        let st = child.wait().unwrap();
        (st.success(), seen)
    }

    /// `credd login --profile P --remote`: the test signs in "on another
    /// device" (the stand-in browser) and pastes the code the page shows
    /// into credd's standard input, as the user would; `paste` may change it.
    fn remote_login(&self, profile: &str, paste: impl Fn(&str) -> String) -> (bool, String) {
        let mut child = self
            .env
            .cmd(credd_bin())
            .args(["login", "--profile", profile, "--remote"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take();
        let mut seen = String::new();
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            let t = line.trim();
            if t.starts_with("http://") && t.contains("/v1/authorize?") {
                assert!(
                    t.contains("devtools%2Fcross-device")
                        && t.contains("%2Fv1%2Fsessions%2Fconfirmation&"),
                    "{t}"
                );
                let (status, page) = visit(t);
                assert_eq!(status, 200, "{page}");
                let code = page
                    .split("<code id=\"verification-code\">")
                    .nth(1)
                    .and_then(|r| r.split("</code>").next())
                    .unwrap_or_else(|| panic!("no code on the page: {page}"));
                if let Some(mut w) = stdin.take() {
                    writeln!(w, "{}", paste(code)).unwrap();
                }
            }
        }
        let st = child.wait().unwrap();
        (st.success(), seen)
    }

    /// Unmodified boto3 in a new process, with `AWS_PROFILE=profile`.
    fn boto3(&self, profile: &str) -> Output {
        self.env
            .client(Client::Boto3)
            .env("AWS_PROFILE", profile)
            .output()
            .unwrap()
    }

    fn count(&self, op: &str) -> u64 {
        self.sandbox.count(op)
    }
}

/// The stand-in browser: GET `url`, following redirects on loopback.
fn visit(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(credd_sandbox::browser::visit(url))
        .unwrap_or_else(|e| panic!("visiting {url}: {e}"))
}

fn ok_stdout(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        o.status,
        stdout_of(o),
        stderr_of(o)
    );
    stdout_of(o)
}

/// The keys of a JSON object in file order (botocore's `json.dumps` keeps
/// insertion order; the CLI's order is the contract).
fn keys_in_order(v: &str) -> Vec<String> {
    // serde_json's `preserve_order` is off in this workspace, so the order is
    // read from the text: each key is a string followed by a colon at depth 1.
    let mut keys = Vec::new();
    let (mut depth, mut i) = (0, 0);
    let b = v.as_bytes();
    while i < b.len() {
        match b[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b'"' => {
                let start = i + 1;
                i += 1;
                while b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                let rest = v[i + 1..].trim_start();
                if depth == 1 && rest.starts_with(':') {
                    keys.push(v[start..i].to_string());
                }
            }
            _ => {}
        }
        i += 1;
    }
    keys
}

#[test]
fn same_device_login_writes_the_clis_cache_and_profile_and_botocore_uses_them() {
    let c = Console::new(SandboxConfig::default());
    let out = c.login("console", &[]);
    assert!(out.contains(&format!("Signed in as {IDENTITY}")), "{out}");
    assert_eq!(c.count("SignInAuthorize"), 1);
    assert_eq!(c.count("CreateOAuth2Token:authorization_code"), 1);

    // The cache file, as the AWS CLI writes it: 0600 in a 0700 directory,
    // botocore's field order, the same-device client, a SEC1 PEM key.
    let path = c.cache_file(IDENTITY);
    let text = std::fs::read_to_string(&path).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&c.cache_dir), 0o700);
    assert_eq!(
        keys_in_order(&text),
        [
            "accessToken",
            "tokenType",
            "clientId",
            "refreshToken",
            "idToken",
            "dpopKey"
        ]
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["clientId"], "arn:aws:signin:::devtools/same-device");
    assert_eq!(v["tokenType"], "aws_sigv4");
    assert_eq!(v["accessToken"]["accountId"], "111122223333");
    let expires = v["accessToken"]["expiresAt"].as_str().unwrap();
    assert!(
        expires.len() == 20 && expires.ends_with('Z') && !expires.contains('.'),
        "{expires}"
    );
    let pem = v["dpopKey"].as_str().unwrap();
    assert!(
        pem.starts_with("-----BEGIN EC PRIVATE KEY-----\n")
            && pem.ends_with("\n-----END EC PRIVATE KEY-----\n"),
        "{pem}"
    );
    assert!(pem.lines().all(|l| l.len() <= 64));
    // What credd login printed holds none of the session's secrets.
    for secret in [
        v["refreshToken"].as_str().unwrap(),
        v["accessToken"]["secretAccessKey"].as_str().unwrap(),
        v["accessToken"]["sessionToken"].as_str().unwrap(),
        v["idToken"].as_str().unwrap(),
        pem.lines().nth(1).unwrap(),
    ] {
        assert!(!out.contains(secret), "a secret in the output:\n{out}");
    }

    // The profile got login_session and nothing else changed; the file the
    // variable names was written, not ~/.aws/config.
    let config = std::fs::read_to_string(&c.config).unwrap();
    assert_eq!(
        config,
        CONFIG.replace(
            "region   =eu-west-1\n",
            &format!("region   =eu-west-1\nlogin_session = {IDENTITY}\n")
        )
    );
    assert!(!c.env.home().join(".aws/config").exists());

    // Unmodified boto3, in a new process, signs with what credd wrote.
    let arn = ok_stdout(&c.boto3("console"), "boto3 with the login_session profile");
    assert_eq!(arn, IDENTITY);

    // Signing in again as the same identity changes nothing in the profile.
    c.login("console", &[]);
    assert_eq!(std::fs::read_to_string(&c.config).unwrap(), config);
    assert_eq!(c.count("CreateOAuth2Token:authorization_code"), 2);
}

#[test]
fn a_redirect_with_another_sign_ins_state_is_refused() {
    let c = Console::new(SandboxConfig::default());
    // A forged redirect straight to credd's listener, with a state of its own.
    let (ok, out) = c.login_as("console", &[], Stdio::null(), |url| {
        let redirect = url
            .split('&')
            .find_map(|kv| kv.strip_prefix("redirect_uri="))
            .expect("the authorize URL names the redirect");
        let redirect = redirect.replace("%3A", ":").replace("%2F", "/");
        format!("{redirect}?code=forged&state=not-the-one-credd-sent")
    });
    assert!(!ok, "{out}");
    assert!(out.contains("another login's state"), "{out}");
    assert_eq!(c.count("CreateOAuth2Token"), 0);
    assert!(!c.cache_file(IDENTITY).exists());
    assert_eq!(std::fs::read_to_string(&c.config).unwrap(), CONFIG);
}

#[test]
fn a_refused_code_exchange_writes_nothing_and_says_to_sign_in_again() {
    let c = Console::new(SandboxConfig::default());
    c.sandbox.inject_fault(credd_sandbox::Fault {
        operation: "CreateOAuth2Token:authorization_code".into(),
        kind: credd_sandbox::FaultKind::Error {
            status: 400,
            code: "AccessDeniedException".into(),
            message: "the authorization code expired".into(),
        },
        times: Some(1),
    });
    let (ok, out) = c.login_as("console", &[], Stdio::null(), |url| url.to_string());
    assert!(!ok, "{out}");
    assert!(
        out.contains("run `credd login --profile console` again"),
        "{out}"
    );
    assert_eq!(c.count("CreateOAuth2Token:authorization_code"), 1);
    assert!(!c.cache_file(IDENTITY).exists());
    assert_eq!(std::fs::read_to_string(&c.config).unwrap(), CONFIG);
}

#[test]
fn remote_login_takes_the_pasted_code() {
    let c = Console::new(SandboxConfig {
        login_identity: "arn:aws:iam::123456789012:user/dev".into(),
        ..Default::default()
    });
    // A code from another sign-in (its state differs) is refused.
    // base64("state=other&code=x")
    let (ok, out) = c.remote_login("console", |_| "c3RhdGU9b3RoZXImY29kZT14".to_string());
    assert!(!ok, "{out}");
    assert!(out.contains("from another sign-in"), "{out}");
    assert_eq!(c.count("CreateOAuth2Token"), 0);
    assert!(!c.cache_dir.exists() || std::fs::read_dir(&c.cache_dir).unwrap().count() == 0);

    let (ok, out) = c.remote_login("console", |code| code.to_string());
    assert!(ok, "{out}");
    let v = c.cache("arn:aws:iam::123456789012:user/dev");
    assert_eq!(v["clientId"], "arn:aws:signin:::devtools/cross-device");
    let arn = ok_stdout(&c.boto3("console"), "boto3 after --remote");
    assert_eq!(arn, "arn:aws:iam::123456789012:user/dev");
}

#[test]
fn credd_and_botocore_take_turns_refreshing_without_reusing_a_refresh_token() {
    // Credentials that botocore (which refreshes with 5 minutes left) and
    // credd both refresh whenever they use them.
    let c = Console::new(SandboxConfig {
        login_credential_secs: 120,
        ..Default::default()
    });
    c.login("console", &[]);
    let f0 = c.cache(IDENTITY);

    // credd refreshes, and writes the rotated token back.
    let d = c.env.serve(&[]);
    let cp = ok_stdout(
        &c.env.credd(&["credential-process", "console"]),
        "credential-process",
    );
    let served: serde_json::Value = serde_json::from_str(&cp).unwrap();
    let f1 = c.cache(IDENTITY);
    assert_eq!(c.count("CreateOAuth2Token:refresh_token"), 1);
    assert_ne!(f1["refreshToken"], f0["refreshToken"]);
    assert_eq!(served["AccessKeyId"], f1["accessToken"]["accessKeyId"]);
    assert_eq!(
        f1["dpopKey"], f0["dpopKey"],
        "the key stays with the session"
    );
    d.stop();

    // boto3, in a new process, refreshes from the file credd wrote.
    let arn = ok_stdout(&c.boto3("console"), "boto3 after credd's refresh");
    assert_eq!(arn, IDENTITY);
    let f2 = c.cache(IDENTITY);
    assert_eq!(c.count("CreateOAuth2Token:refresh_token"), 2);
    assert_ne!(f2["refreshToken"], f1["refreshToken"]);

    // And credd goes on from the file botocore wrote.
    let _d = c.env.serve(&[]);
    let arn = ok_stdout(
        &c.env.exec_boto3("console-admin"),
        "credd exec console-admin",
    );
    assert!(arn.contains("444455556666:assumed-role/Admin/"), "{arn}");
    let f3 = c.cache(IDENTITY);
    assert_eq!(c.count("CreateOAuth2Token:refresh_token"), 3);
    assert_ne!(f3["refreshToken"], f2["refreshToken"]);
    assert_eq!(c.count("RefreshTokenReuse"), 0, "{:?}", c.sandbox.counts());
}

#[test]
fn the_endpoint_and_credential_process_serve_the_session_to_an_sdk_that_cannot_read_it() {
    let c = Console::new(SandboxConfig::default());
    c.login("console", &[]);
    // The Rust SDK (aws-config without its login feature) cannot use the
    // profile itself.
    let alone = c
        .env
        .client(Client::RustSdk)
        .env("AWS_PROFILE", "console")
        .output()
        .unwrap();
    assert!(!alone.status.success(), "{}", stdout_of(&alone));

    let d = c.env.serve(&[]);
    // Through the container endpoint (`credd exec`).
    for (profile, want) in [
        ("console", IDENTITY.to_string()),
        (
            "console-admin",
            "444455556666:assumed-role/Admin/".to_string(),
        ),
    ] {
        let o = c
            .env
            .cmd(credd_bin())
            .args(["exec", profile, "--"])
            .arg(rust_whoami())
            .env("AWS_REGION", "eu-west-1")
            .output()
            .unwrap();
        let arn = ok_stdout(&o, &format!("credd exec {profile} -- rust-whoami"));
        assert!(arn.contains(&want), "{profile}: {arn}");
    }
    // Through credential_process (`credd profiles link`).
    for (profile, linked, want) in [
        ("console", "console-cp", IDENTITY),
        (
            "console-admin",
            "admin-cp",
            "444455556666:assumed-role/Admin/",
        ),
    ] {
        c.env
            .credd_ok(&["profiles", "link", profile, "--as", linked]);
        let o = c
            .env
            .client(Client::RustSdk)
            .env("AWS_PROFILE", linked)
            .output()
            .unwrap();
        let arn = ok_stdout(&o, &format!("rust-whoami with {linked}"));
        assert!(arn.contains(want), "{linked}: {arn}");
    }
    // One session upstream for both profiles: one code exchange, and no
    // refresh (the login's credentials are fresh).
    assert_eq!(c.count("CreateOAuth2Token"), 1, "{:?}", c.sandbox.counts());

    // No secret of the session reaches the daemon's log.
    let v = c.cache(IDENTITY);
    let logs = d.logs();
    for secret in [
        v["refreshToken"].as_str().unwrap(),
        v["accessToken"]["secretAccessKey"].as_str().unwrap(),
        v["accessToken"]["sessionToken"].as_str().unwrap(),
        v["dpopKey"].as_str().unwrap().lines().nth(1).unwrap(),
    ] {
        assert!(!logs.contains(secret), "a secret in the log:\n{logs}");
    }
}

#[test]
fn the_session_ending_gives_a_503_naming_the_login_and_a_new_login_recovers_without_restart() {
    // Short credentials, so that the daemon must refresh when asked.
    let c = Console::new(SandboxConfig {
        login_credential_secs: 120,
        ..Default::default()
    });
    c.login("console", &[]);
    let d = c.env.serve(&[]);
    let token = c
        .env
        .credd_ok(&["token", "issue", "--profile", "console"])
        .trim()
        .to_string();

    // The session ends (12 hours are up, or it was revoked).
    assert_eq!(c.sandbox.end_session(), 1);
    let fetch = || {
        get(
            d.addr(),
            "/v1/credentials/console",
            Some(&d.addr().to_string()),
            Some(&token),
        )
    };
    let (status, body) = fetch();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("credd login --profile console") && body.contains("aws login"),
        "{body}"
    );
    let status = c.env.credd_ok(&["status"]);
    let row = status
        .lines()
        .find(|l| l.trim_start().starts_with(IDENTITY))
        .unwrap_or_else(|| panic!("no login session row in:\n{status}"));
    assert!(row.contains("login required"), "{row}");
    // The daemon started no sign-in of its own.
    assert_eq!(c.count("SignInAuthorize"), 1);

    // A new sign-in; the same daemon serves again.
    c.login("console", &[]);
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = fetch();
        if last.0 == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(last.0, 200, "{}", last.1);
    let v: serde_json::Value = serde_json::from_str(&last.1).unwrap();
    assert_eq!(
        v["AccessKeyId"],
        c.cache(IDENTITY)["accessToken"]["accessKeyId"]
    );
}

#[test]
fn status_and_profiles_show_the_login_session_and_its_expiry() {
    let c = Console::new(SandboxConfig::default());
    c.login("console", &[]);
    let _d = c.env.serve(&[]);
    ok_stdout(&c.env.credd(&["credential-process", "console"]), "fetch");
    let expires = c.cache(IDENTITY)["accessToken"]["expiresAt"]
        .as_str()
        .unwrap()
        .to_string();

    // The document: the session's ARN as the source, the file's expiry.
    let json: serde_json::Value =
        serde_json::from_str(&c.env.credd_ok(&["status", "--json"])).unwrap();
    let row = |name: &str| {
        json["profiles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {json}"))
            .clone()
    };
    let console = row("console");
    assert_eq!(console["chain"], format!("aws login session {IDENTITY}"));
    assert_eq!(console["state"], "fresh");
    assert_eq!(console["expires"], expires.as_str(), "{console}");
    let admin = row("console-admin");
    assert!(
        admin["chain"]
            .as_str()
            .unwrap()
            .ends_with(&format!("<- aws login session {IDENTITY}")),
        "{admin}"
    );
    // And the session itself, once, with the profiles on it.
    let sessions = json["login_sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{json}");
    let session = &sessions[0];
    assert_eq!(session["session"], IDENTITY);
    assert_eq!(session["state"], "active");
    assert_eq!(session["credentials_expire"], expires.as_str());
    assert_eq!(
        session["profiles"],
        serde_json::json!(["console", "console-admin"])
    );

    // The tables people read.
    let status = c.env.credd_ok(&["status"]);
    let line = status
        .lines()
        .find(|l| l.trim_start().starts_with("console "))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(line.contains(IDENTITY) && line.contains("fresh"), "{line}");
    // 15-minute credentials: 14m and some seconds left.
    assert!(line.contains(" 14m"), "{line}");
    let profiles = c.env.credd_ok(&["profiles"]);
    assert!(
        profiles
            .lines()
            .any(|l| l.trim_start().starts_with("console ") && l.contains(IDENTITY)),
        "{profiles}"
    );
    for table in [&status, &profiles] {
        let line = table
            .lines()
            .find(|l| l.trim_start().starts_with(IDENTITY))
            .unwrap_or_else(|| panic!("no login session row in:\n{table}"));
        assert!(
            line.contains("active")
                && line.contains(" 14m")
                && line.contains("console, console-admin"),
            "{line}"
        );
    }
}

#[test]
fn other_credentials_are_refused_and_another_identity_is_replaced_only_when_confirmed() {
    let c = Console::new(SandboxConfig::default());
    // As `aws login` refuses it, before any call.
    let o = c.env.credd(&["login", "--profile", "keys", "--no-browser"]);
    assert!(!o.status.success());
    let err = stderr_of(&o);
    assert!(
        err.contains("already configured with Access Key credentials")
            && err.contains("credd login --profile NEW-NAME"),
        "{err}"
    );
    assert!(c.sandbox.counts().is_empty(), "{:?}", c.sandbox.counts());

    // The profile names another identity: without an answer, nothing is
    // written; with --yes it is replaced.
    let other = "arn:aws:iam::111122223333:user/someone-else";
    let config = CONFIG.replace(
        "region   =eu-west-1\n",
        &format!("region   =eu-west-1\nlogin_session = {other}\n"),
    );
    std::fs::write(&c.config, &config).unwrap();
    let (ok, out) = c.login_as("console", &[], Stdio::null(), |url| url.to_string());
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("configured to use session {other}")),
        "{out}"
    );
    assert!(out.contains("--yes"), "{out}");
    assert_eq!(std::fs::read_to_string(&c.config).unwrap(), config);
    assert!(!c.cache_file(IDENTITY).exists());

    c.login("console", &["--yes"]);
    assert_eq!(
        std::fs::read_to_string(&c.config).unwrap(),
        config.replace(other, IDENTITY)
    );
    assert!(c.cache_file(IDENTITY).exists());

    // Signed in as yet another identity, the user answers the question.
    let third = "arn:aws:iam::111122223333:user/third";
    c.sandbox.update(|cfg| cfg.login_identity = third.into());
    let answer = c.env.path("answer");
    std::fs::write(&answer, "y\n").unwrap();
    let (ok, out) = c.login_as(
        "console",
        &[],
        Stdio::from(std::fs::File::open(&answer).unwrap()),
        |url| url.to_string(),
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("configured to use session {IDENTITY}")),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(&c.config).unwrap(),
        config.replace(other, third)
    );
    assert!(c.cache_file(third).exists());
}

#[test]
fn a_new_profile_is_added_with_the_region_it_was_signed_in_with() {
    let c = Console::new(SandboxConfig::default());
    // No region anywhere: stopped before any call, with the fix.
    let o = c
        .env
        .credd(&["login", "--profile", "fresh", "--no-browser"]);
    assert!(!o.status.success());
    let err = stderr_of(&o);
    assert!(
        err.contains("credd login --profile fresh --region REGION"),
        "{err}"
    );
    assert!(c.sandbox.counts().is_empty(), "{:?}", c.sandbox.counts());

    c.login("fresh", &["--region", "eu-central-1"]);
    let config = std::fs::read_to_string(&c.config).unwrap();
    assert_eq!(
        config,
        format!("{CONFIG}\n[profile fresh]\nlogin_session = {IDENTITY}\nregion = eu-central-1\n")
    );
    let arn = ok_stdout(&c.boto3("fresh"), "boto3 with the new profile");
    assert_eq!(arn, IDENTITY);
}

#[test]
fn the_demo_serves_a_login_session_next_to_the_sso_one() {
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
    assert!(
        err.contains(&format!("demo-console: {IDENTITY}")),
        "no login session in:\n{err}"
    );
    assert!(
        err.contains("demo: arn:aws:sts::111122223333:assumed-role/PowerUserAccess/"),
        "{err}"
    );
    assert!(!dir.path().join(".aws").exists());
}
