//! The client matrix: every real client, through every path it can take to
//! credd, on the laptops real users have.
//!
//! Clients: boto3, the AWS CLI, the JS SDK v3, the legacy JS container provider
//! (the VS Code Toolkit's), the Rust SDK, the Go SDK v2 (Terraform's) and the
//! Java SDK v2 (the JetBrains Toolkit's); see `support::clients`.
//!
//! Paths (one test each):
//! - `container`: `credd exec dev -- CLIENT` (the container endpoint);
//! - `imds`: `credd exec --imds dev -- CLIENT` (the IMDSv2 emulation; the daemon
//!   runs with `--imds-listen 127.0.0.1:0 --imds-profile dev`);
//! - `credential_process`: `credd profiles link dev`, then
//!   `AWS_PROFILE=dev-credd CLIENT`.
//!
//! Cases (the home directory and shell each run starts from): a clean `~/.aws`;
//! a `[default]` with keys in `~/.aws/credentials` (what `aws configure` writes),
//! with a role (`role_arn` + `source_profile`), with `credential_process`, with
//! `sso_session`; `AWS_PROFILE=other` exported; `AWS_DEFAULT_PROFILE=other`
//! exported; another user's `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` exported.
//! Every other identity is a different moto user or role, so a client that
//! resolved anything but credd prints another ARN (or fails), and every run
//! must print the assumed role's ARN, `assumed-role/dev/...`, except where the
//! SDK's own documented precedence decides for the user's shell and credd
//! cannot change it (see `expected`): there the test asserts that behaviour.
//!
//! The runs go in parallel (at most `PARALLEL` clients at a time over every
//! test of this file); on failure the test prints a client x case table per
//! path and the output of each failing run.

mod support;

use std::fmt::Write as _;
use std::process::{Command, Output, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};
use support::clients::Whoami;
use support::*;

/// What every run through credd must print: the role the `dev` profile assumes.
const CREDD_ARN: &str = "arn:aws:sts::123456789012:assumed-role/dev/";
/// Clients running at once, over all the tests of this file (2 cores here; the
/// JVM and the AWS CLI are CPU-heavy at start).
const PARALLEL: usize = 4;
/// A client that has not answered by then is stuck (every SDK timeout is shorter).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

// The moto users and the role that stand for "anything but credd".
const DEFAULT_USER: &str = "laptop-default";
const PROCESS_USER: &str = "laptop-process";
const OTHER_USER: &str = "laptop-other";
const ENV_USER: &str = "laptop-env";
const DEFAULT_ROLE: &str = "arn:aws:iam::123456789012:role/laptop-admin";

/// The clients of the container path. The legacy JS provider (the VS Code
/// Toolkit's `fromContainerMetadata`, `tests/clients/legacy_container.mjs`) reads
/// only `AWS_CONTAINER_AUTHORIZATION_TOKEN`, never the token file.
const CONTAINER_CLIENTS: &[Whoami] = &[
    Whoami::Boto3,
    Whoami::AwsCli,
    Whoami::JsSdk,
    Whoami::LegacyJsContainer,
    Whoami::RustSdk,
    Whoami::GoSdk,
    Whoami::JavaSdk,
];

/// The clients of the IMDS and credential_process paths (the legacy JS provider
/// speaks only the container endpoint).
const SDK_CLIENTS: &[Whoami] = &[
    Whoami::Boto3,
    Whoami::AwsCli,
    Whoami::JsSdk,
    Whoami::RustSdk,
    Whoami::GoSdk,
    Whoami::JavaSdk,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Container,
    Imds,
    CredentialProcess,
}

impl Path {
    fn title(self) -> &'static str {
        match self {
            Path::Container => "container endpoint: credd exec dev -- CLIENT",
            Path::Imds => "IMDS emulation: credd exec --imds dev -- CLIENT",
            Path::CredentialProcess => {
                "credential_process: credd profiles link dev; AWS_PROFILE=dev-credd CLIENT"
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Clean,
    DefaultKeys,
    DefaultRole,
    DefaultProcess,
    DefaultSso,
    ProfileExported,
    DefaultProfileExported,
    EnvKeysExported,
}

const CASES: &[Case] = &[
    Case::Clean,
    Case::DefaultKeys,
    Case::DefaultRole,
    Case::DefaultProcess,
    Case::DefaultSso,
    Case::ProfileExported,
    Case::DefaultProfileExported,
    Case::EnvKeysExported,
];

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Clean => "clean",
            Case::DefaultKeys => "dflt-keys",
            Case::DefaultRole => "dflt-role",
            Case::DefaultProcess => "dflt-process",
            Case::DefaultSso => "dflt-sso",
            Case::ProfileExported => "AWS_PROFILE",
            Case::DefaultProfileExported => "AWS_DEFAULT_PROFILE",
            Case::EnvKeysExported => "env-keys",
        }
    }
}

/// What a run must print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// credd's identity: `assumed-role/dev/...`.
    Credd,
    /// This moto user's ARN, by the SDK's own documented precedence.
    User(&'static str),
}

impl Expect {
    fn holds(self, arn: &str) -> bool {
        match self {
            Expect::Credd => arn.starts_with(CREDD_ARN),
            Expect::User(name) => arn == format!("arn:aws:iam::123456789012:user/{name}"),
        }
    }
}

/// The expected identity. Everywhere credd: except in the credential_process path,
/// where the user's own shell runs the client and credd is only one profile among
/// the user's settings, so two of the SDKs' documented precedences decide:
fn expected(path: Path, sdk: Whoami, case: Case) -> Expect {
    match (path, case, sdk) {
        // Keys exported in the shell beat a profile named by AWS_PROFILE in every SDK
        // but the JS SDK v3:
        // - botocore (boto3, the AWS CLI v1) keeps its environment provider first
        //   when the profile comes from AWS_PROFILE, and drops it only for a profile
        //   given in code or with `--profile` (botocore/credentials.py,
        //   create_credential_resolver: "An explicitly provided profile will negate
        //   an EnvProvider ... the explicit credentials will take precedence");
        // - the Go SDK v2 lets only a profile set in code beat them
        //   (config/resolve_credentials.go, resolveCredentialChain:
        //   `case sharedProfileSet` comes from the programmatic sources alone, then
        //   `case envConfig.Credentials.HasKeys()`);
        // - the Java SDK v2's DefaultCredentialsProvider asks
        //   EnvironmentVariableCredentialsProvider before ProfileCredentialsProvider
        //   (auth/credentials/DefaultCredentialsProvider.java, createChain: system
        //   properties, environment, web identity, profile, container, instance);
        // - the Rust SDK's DefaultCredentialsChain tries "Environment" first
        //   (aws-config default_provider/credentials.rs, Builder::build);
        // - the JS SDK v3 skips fromEnv whenever AWS_PROFILE is set
        //   (@aws-sdk/credential-provider-node defaultProvider: "AWS_PROFILE is set,
        //   skipping fromEnv provider"), so it reaches credd.
        (Path::CredentialProcess, Case::EnvKeysExported, Whoami::JsSdk) => Expect::Credd,
        (Path::CredentialProcess, Case::EnvKeysExported, _) => Expect::User(ENV_USER),
        // botocore reads AWS_DEFAULT_PROFILE before AWS_PROFILE (botocore
        // configprovider.py: 'profile': (None, ['AWS_DEFAULT_PROFILE', 'AWS_PROFILE'],
        // ...)), so an exported AWS_DEFAULT_PROFILE beats `AWS_PROFILE=dev-credd` for
        // boto3 and the AWS CLI. The Go SDK v2 reads AWS_PROFILE first
        // (config/env_config.go, profileEnvKeys); Java, JS and Rust read only AWS_PROFILE.
        (Path::CredentialProcess, Case::DefaultProfileExported, Whoami::Boto3 | Whoami::AwsCli) => {
            Expect::User(OTHER_USER)
        }
        _ => Expect::Credd,
    }
}

/// The keys of the moto users, made once per test binary in one moto.
struct Upstream {
    moto: Moto,
    keys: std::collections::HashMap<String, (String, String)>,
}

impl Upstream {
    fn key(&self, user: &str) -> &(String, String) {
        &self.keys[user]
    }
}

fn upstream() -> &'static Upstream {
    static UPSTREAM: OnceLock<Upstream> = OnceLock::new();
    UPSTREAM.get_or_init(|| {
        // moto exits when this test binary does (its stdin closes).
        let moto = Moto::start();
        let script = r#"
import json, sys
import boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x")
keys = {}
for name in sys.argv[2:]:
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    keys[name] = [key["AccessKeyId"], key["SecretAccessKey"]]
print(json.dumps(keys))
"#;
        let out = Command::new(python())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .arg("-c")
            .arg(script)
            .arg(&moto.url)
            .args([DEFAULT_USER, PROCESS_USER, OTHER_USER, ENV_USER])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "creating the moto users failed: {}",
            stderr_of(&out)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let keys = v
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, k)| {
                let k = k.as_array().unwrap();
                (
                    name.clone(),
                    (
                        k[0].as_str().unwrap().to_string(),
                        k[1].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect();
        Upstream { moto, keys }
    })
}

/// One user's home for `case`: the files real developers have, on top of the
/// profiles credd serves (`support::CONFIG`, where `dev` assumes `role/dev`).
fn case_env(case: Case, up: &Upstream) -> Env {
    let keys_section = |name: &str, user: &str| {
        let (id, secret) = up.key(user);
        format!("[{name}]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n")
    };
    let mut config = CONFIG.to_string();
    let mut credentials = String::new();
    let env = Env::with_moto("", Moto::external(up.moto.url.clone()));
    match case {
        Case::Clean | Case::EnvKeysExported => {}
        Case::DefaultKeys => {
            // What `aws configure` writes.
            credentials.push_str(&keys_section("default", DEFAULT_USER));
            config.push_str("\n[default]\nregion = us-east-1\n");
        }
        Case::DefaultRole => {
            credentials.push_str(&keys_section("laptop", DEFAULT_USER));
            config.push_str(&format!(
                "\n[default]\nrole_arn = {DEFAULT_ROLE}\nsource_profile = laptop\nregion = us-east-1\n"
            ));
        }
        Case::DefaultProcess => {
            let (id, secret) = up.key(PROCESS_USER);
            let script = env.path("laptop-credential-process");
            std::fs::write(
                &script,
                format!(
                    "#!/bin/sh\nprintf '%s\\n' '{{\"Version\": 1, \"AccessKeyId\": \"{id}\", \"SecretAccessKey\": \"{secret}\"}}'\n"
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
            config.push_str(&format!(
                "\n[default]\ncredential_process = {}\nregion = us-east-1\n",
                script.display()
            ));
        }
        Case::DefaultSso => {
            // No token is cached for this session, so an SDK that picks it fails
            // offline (and the SSO endpoints point at moto besides: see `run`).
            config.push_str(
                "\n[default]\nsso_session = laptop\nsso_account_id = 123456789012\n\
                 sso_role_name = LaptopAdmin\nregion = us-east-1\n\n\
                 [sso-session laptop]\nsso_start_url = https://credd-test.invalid/start\n\
                 sso_region = us-east-1\nsso_registration_scopes = sso:account:access\n",
            );
        }
        Case::ProfileExported | Case::DefaultProfileExported => {
            credentials.push_str(&keys_section("other", OTHER_USER));
            config.push_str("\n[profile other]\nregion = us-east-1\n");
        }
    }
    std::fs::write(env.home().join(".aws/config"), config).unwrap();
    if !credentials.is_empty() {
        std::fs::write(env.home().join(".aws/credentials"), credentials).unwrap();
    }
    env
}

/// The variables the calling shell has exported in `case`.
fn case_vars(case: Case, up: &Upstream) -> Vec<(&'static str, String)> {
    match case {
        Case::ProfileExported => vec![("AWS_PROFILE", "other".into())],
        Case::DefaultProfileExported => vec![("AWS_DEFAULT_PROFILE", "other".into())],
        Case::EnvKeysExported => {
            let (id, secret) = up.key(ENV_USER);
            vec![
                ("AWS_ACCESS_KEY_ID", id.clone()),
                ("AWS_SECRET_ACCESS_KEY", secret.clone()),
            ]
        }
        _ => vec![],
    }
}

/// A bound on the clients running at once across the tests of this binary.
struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Slots {
    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        let mut free = self
            .cv
            .wait_while(self.free.lock().unwrap(), |n| *n == 0)
            .unwrap();
        *free -= 1;
        drop(free);
        let out = f();
        *self.free.lock().unwrap() += 1;
        self.cv.notify_one();
        out
    }
}

static SLOTS: Slots = Slots {
    free: Mutex::new(PARALLEL),
    cv: Condvar::new(),
};

/// Runs `cmd` to its end, killing it after `RUN_TIMEOUT`.
fn output_within(mut cmd: Command) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let status = child.wait().unwrap();
            let mut stderr = std::fs::read(&err).unwrap();
            stderr.extend_from_slice(b"\n[killed after the matrix's run timeout]");
            return Output {
                status,
                stdout: std::fs::read(&out).unwrap(),
                stderr,
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

/// One client, one path, one case: the command a user would type, run.
fn run(env: &Env, path: Path, sdk: Whoami, case: Case, up: &Upstream) -> Output {
    let (program, args) = sdk.command();
    let mut cmd = match path {
        Path::Container | Path::Imds => {
            let mut c = env.cmd(credd_bin());
            c.arg("exec");
            if path == Path::Imds {
                c.arg("--imds");
            }
            c.args(["dev", "--"]).arg(&program).args(&args);
            c
        }
        Path::CredentialProcess => {
            let mut c = env.cmd(&program);
            c.args(&args);
            c
        }
    };
    // No test may reach AWS: an SDK that picks the [default] SSO profile talks to moto.
    cmd.env("AWS_ENDPOINT_URL_SSO", &up.moto.url)
        .env("AWS_ENDPOINT_URL_SSO_OIDC", &up.moto.url);
    cmd.envs(case_vars(case, up));
    if path == Path::CredentialProcess {
        // `AWS_PROFILE=dev-credd CLIENT` in the user's shell: over any exported AWS_PROFILE.
        cmd.env("AWS_PROFILE", "dev-credd");
    }
    SLOTS.with(|| output_within(cmd))
}

struct Cell {
    sdk: Whoami,
    case: Case,
    expect: Expect,
    output: Output,
}

impl Cell {
    fn arn(&self) -> String {
        stdout_of(&self.output)
    }
    fn passed(&self) -> bool {
        self.output.status.success() && self.expect.holds(&self.arn())
    }
    /// What the table shows: `ok`, `ok*` (the SDK's documented precedence, not
    /// credd), or what came instead.
    fn text(&self) -> String {
        if self.passed() {
            return match self.expect {
                Expect::Credd => "ok".into(),
                Expect::User(_) => "ok*".into(),
            };
        }
        if !self.output.status.success() {
            return match self.output.status.code() {
                Some(code) => format!("FAIL exit {code}"),
                None => "FAIL killed".into(),
            };
        }
        let arn = self.arn();
        let who = arn.rsplit(':').next().unwrap_or(&arn);
        format!(
            "FAIL {}",
            who.split('/').take(2).collect::<Vec<_>>().join("/")
        )
    }
}

/// The client x case table of one path.
fn table(path: Path, clients: &[Whoami], cells: &[Cell]) -> String {
    let mut rows: Vec<Vec<String>> = vec![std::iter::once("client".to_string())
        .chain(CASES.iter().map(|c| c.name().to_string()))
        .collect()];
    for sdk in clients {
        let mut row = vec![sdk.name().to_string()];
        for case in CASES {
            let cell = cells
                .iter()
                .find(|c| c.sdk == *sdk && c.case == *case)
                .unwrap();
            row.push(cell.text());
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap())
        .collect();
    let mut out = format!("\n{}\n", path.title());
    for row in &rows {
        for (text, width) in row.iter().zip(&widths) {
            let _ = write!(out, "{text:<width$}  ");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out.push_str(
        "(ok: assumed-role/dev from credd; ok*: the identity the SDK's documented \
         precedence picks, asserted; FAIL: what the client printed instead)\n",
    );
    out
}

/// The lines of a failed run's stderr that say what went wrong: those naming an
/// error (up to three), else the last three.
fn gist(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.to_ascii_lowercase().contains("error"))
        .take(3)
        .collect();
    let chosen = if errors.is_empty() {
        &lines[lines.len().saturating_sub(3)..]
    } else {
        &errors[..]
    };
    chosen.join("\n    ")
}

/// Runs every client of `path` in every case, and fails with the table if any
/// run printed something else than expected.
fn matrix(path: Path, clients: &[Whoami]) {
    let up = upstream();
    // One home per case, each with its own daemon, as each laptop would have.
    let homes: Vec<(Case, Env, Daemon)> = CASES
        .iter()
        .map(|case| {
            let env = case_env(*case, up);
            let daemon = match path {
                Path::Imds => env.serve(&["--imds-listen", "127.0.0.1:0", "--imds-profile", "dev"]),
                _ => env.serve(&[]),
            };
            if path == Path::CredentialProcess {
                env.credd_ok(&["profiles", "link", "dev"]);
            }
            (*case, env, daemon)
        })
        .collect();
    let jobs: Vec<(Whoami, usize)> = clients
        .iter()
        .flat_map(|sdk| (0..homes.len()).map(move |i| (*sdk, i)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((sdk, home)) = jobs.get(i).copied() else {
                    break;
                };
                let (case, env, _) = &homes[home];
                let output = run(env, path, sdk, *case, up);
                done.lock().unwrap().push(Cell {
                    sdk,
                    case: *case,
                    expect: expected(path, sdk, *case),
                    output,
                });
            });
        }
    });
    let cells = done.into_inner().unwrap();
    let report = table(path, clients, &cells);
    let failed: Vec<&Cell> = cells.iter().filter(|c| !c.passed()).collect();
    if failed.is_empty() {
        println!("{report}");
        return;
    }
    let mut details = String::new();
    for c in &failed {
        let want = match c.expect {
            Expect::Credd => format!("{CREDD_ARN}..."),
            Expect::User(u) => format!("arn:aws:iam::123456789012:user/{u}"),
        };
        let _ = write!(
            details,
            "\n{} / {}: want {want}, got {} (stdout {:?})\n",
            c.sdk.name(),
            c.case.name(),
            c.output.status,
            c.arn(),
        );
        let stderr = gist(&stderr_of(&c.output));
        if !stderr.is_empty() {
            let _ = writeln!(details, "    {stderr}");
        }
    }
    panic!(
        "{} of {} runs did not resolve as expected:\n{report}{details}",
        failed.len(),
        cells.len()
    );
}

#[test]
fn every_client_through_the_container_endpoint() {
    matrix(Path::Container, CONTAINER_CLIENTS);
}

#[test]
fn every_client_through_the_imds_emulation() {
    matrix(Path::Imds, SDK_CLIENTS);
}

#[test]
fn every_client_through_a_linked_credential_process_profile() {
    matrix(Path::CredentialProcess, SDK_CLIENTS);
}
