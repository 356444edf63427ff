//! SAML profiles end to end: the real `credd` against moto and the credd
//! sandbox (both answer `AssumeRoleWithSAML`), with a stand-in SAML helper
//! (a shell script, as saml2aws would be) that prints a base64 SAMLResponse.
//! The profile is served through the container endpoint (boto3) and
//! `credential_process`, a role chains on it, the helper is re-run at each
//! refresh, its failure is reported with its stderr's first line (never its
//! stdout, in no log), and `credd login --profile P` runs it with the user's
//! terminal and gets the daemon going again at once.

mod support;

use credd_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

const SAML_ROLE: &str = "arn:aws:iam::123456789012:role/SamlDev";
const IDP: &str = "arn:aws:iam::123456789012:saml-provider/ExampleIdP";
/// What the failing helper prints on stdout: it must never be seen again.
const STDOUT_CANARY: &str = "canary-SAML-stdout-d41d8cd9";
const STDERR_LINE: &str = "IdP session expired: approve the push on your phone";

/// A SAMLResponse as an IdP posts it, holding what moto and the sandbox read:
/// the role/IdP pair, the session name, the session duration and validity.
fn assertion(duration_secs: u64) -> String {
    format!(
        r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z">
<saml:Issuer>https://idp.example.com/</saml:Issuer>
<saml:Assertion ID="_a1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z">
<saml:Issuer>https://idp.example.com/</saml:Issuer>
<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">dev@example.com</saml:NameID>
<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="2099-01-01T00:00:00Z" Recipient="https://signin.aws.amazon.com/saml"/></saml:SubjectConfirmation></saml:Subject>
<saml:Conditions NotBefore="2020-01-01T00:00:00Z" NotOnOrAfter="2099-01-01T00:00:00Z"/>
<saml:AttributeStatement>
<saml:Attribute Name="https://aws.amazon.com/SAML/Attributes/Role"><saml:AttributeValue>{SAML_ROLE},{IDP}</saml:AttributeValue></saml:Attribute>
<saml:Attribute Name="https://aws.amazon.com/SAML/Attributes/RoleSessionName"><saml:AttributeValue>dev@example.com</saml:AttributeValue></saml:Attribute>
<saml:Attribute Name="https://aws.amazon.com/SAML/Attributes/SessionDuration"><saml:AttributeValue>{duration_secs}</saml:AttributeValue></saml:Attribute>
</saml:AttributeStatement>
</saml:Assertion>
</samlp:Response>
"#
    )
}

/// The stand-in helper. It has an IdP session while `DIR/session` exists;
/// without one it needs the user: run with a terminal (stdin) that answers
/// `approve`, it makes the session; run by the daemon (stdin closed) it
/// fails, printing a canary on stdout and the reason on stderr. Every run
/// is counted in `DIR/runs`.
fn write_helper(env: &Env, duration_secs: u64) -> String {
    let dir = env.path("idp");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("assertion.xml"), assertion(duration_secs)).unwrap();
    std::fs::write(dir.join("session"), "").unwrap();
    let script = dir.join("saml-helper");
    let d = dir.display();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
echo run >> '{d}/runs'\n\
if [ ! -f '{d}/session' ]; then\n\
  if read -r answer && [ \"$answer\" = approve ]; then\n\
    : > '{d}/session'\n\
    echo 'push approved' >&2\n\
  else\n\
    echo '{STDOUT_CANARY}'\n\
    echo '{STDERR_LINE}' >&2\n\
    echo 'second line of stderr' >&2\n\
    exit 1\n\
  fi\n\
fi\n\
exec base64 -w0 '{d}/assertion.xml'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.display().to_string()
}

fn config(helper: &str, extra: &str) -> String {
    format!(
        "[profile saml]\n\
role_arn = {SAML_ROLE}\n\
credd_saml_principal_arn = {IDP}\n\
credd_saml_process = {helper}\n\
region = us-east-1\n\
{extra}\n\
[profile saml-admin]\n\
role_arn = arn:aws:iam::123456789012:role/Admin\n\
source_profile = saml\n\
region = us-east-1\n"
    )
}

fn runs(env: &Env) -> usize {
    std::fs::read_to_string(env.path("idp/runs"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn process_json(env: &Env, profile: &str) -> serde_json::Value {
    serde_json::from_str(&env.credd_ok(&["credential-process", profile])).unwrap()
}

/// boto3 through a `credential_process = credd credential-process saml`
/// profile written by `credd profiles link`, as an IDE would use it.
fn boto3_via_credential_process(env: &Env) -> Output {
    env.client(Client::Boto3)
        .env("AWS_PROFILE", "saml-credd")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap()
}

#[test]
fn moto_serves_a_saml_profile_and_a_role_chained_on_it() {
    let env = Env::with_config("");
    let helper = write_helper(&env, 3600);
    std::fs::write(env.home().join(".aws/config"), config(&helper, "")).unwrap();
    let d = env.serve(&[]);

    // The container endpoint, with boto3 under `credd exec`.
    let o = env.exec_boto3("saml");
    assert!(o.status.success(), "{}{}", stdout_of(&o), stderr_of(&o));
    assert!(
        stdout_of(&o).contains(":assumed-role/SamlDev/dev@example.com"),
        "{}",
        stdout_of(&o)
    );
    // credential_process, straight and through a linked profile.
    let doc = process_json(&env, "saml");
    assert_eq!(doc["Version"], 1);
    assert!(doc["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
    env.credd_ok(&["profiles", "link", "saml"]);
    let o = boto3_via_credential_process(&env);
    assert!(o.status.success(), "{}{}", stdout_of(&o), stderr_of(&o));
    assert!(stdout_of(&o).contains(":assumed-role/SamlDev/"));
    assert_eq!(
        env.moto.count("AssumeRoleWithSAML"),
        1,
        "one fetch, then the cache"
    );
    assert_eq!(runs(&env), 1, "the helper ran once for that fetch");

    // A role chained on the SAML session.
    let o = env.exec_boto3("saml-admin");
    assert!(o.status.success(), "{}{}", stdout_of(&o), stderr_of(&o));
    assert!(
        stdout_of(&o).contains(":assumed-role/Admin/"),
        "{}",
        stdout_of(&o)
    );
    assert_eq!(env.moto.count("AssumeRole"), 1);
    assert_eq!(
        env.moto.count("AssumeRoleWithSAML"),
        1,
        "the base was reused"
    );

    let status = env.credd_ok(&["profiles"]);
    assert!(status.contains("saml"), "{status}");
    let logs = d.logs();
    let b64 = String::from_utf8(
        std::process::Command::new("base64")
            .args(["-w0"])
            .arg(env.path("idp/assertion.xml"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(!logs.contains(&b64[..60]), "the assertion reached the log");
}

struct Sandboxed {
    env: Env,
    sandbox: SandboxHandle,
    _rt: tokio::runtime::Runtime,
}

/// A user whose STS is the sandbox, with credentials `duration_secs` long
/// and a daemon that serves them down to their last 2 s; failures back off
/// from 1 s to the default 5 min, so a prompt recovery is the login's doing.
fn sandboxed(duration_secs: u64) -> Sandboxed {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sandbox = rt
        .block_on(Sandbox::start(SandboxConfig::default()))
        .unwrap();
    let env = Env::with_moto("", Moto::external(sandbox.url()));
    let helper = write_helper(&env, duration_secs);
    std::fs::write(env.home().join(".aws/config"), config(&helper, "")).unwrap();
    std::fs::write(
        env.path("credd.toml"),
        "[refresh]\nmin_serve_life = \"2s\"\nbackoff_base = \"1s\"\n",
    )
    .unwrap();
    Sandboxed {
        env,
        sandbox,
        _rt: rt,
    }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_sandbox_helper_is_rerun_at_refresh_and_its_failure_names_stderr_and_login() {
    let s = sandboxed(12);
    let env = &s.env;
    let d = env.serve(&[]);
    let first = process_json(env, "saml");
    assert_eq!(s.sandbox.count("AssumeRoleWithSAML"), 1);
    let chained = process_json(env, "saml-admin");
    assert!(chained["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));

    // 12-second credentials are renewed at half-life, with no request: the
    // helper runs again each time.
    wait_for("a refresh", Duration::from_secs(30), || {
        s.sandbox.count("AssumeRoleWithSAML") >= 3
    });
    assert!(runs(env) >= 3, "runs: {}", runs(env));
    let later = process_json(env, "saml");
    assert_ne!(later["AccessKeyId"], first["AccessKeyId"]);

    // The IdP session ends: the daemon's runs fail (stdin closed, no one to
    // approve), and once the last credentials expire the error says why
    // (the helper's first stderr line) and what to run.
    std::fs::remove_file(env.path("idp/session")).unwrap();
    let failed = Instant::now();
    let err = loop {
        let o = env.credd(&["credential-process", "saml"]);
        if !o.status.success() {
            break stderr_of(&o);
        }
        assert!(
            failed.elapsed() < Duration::from_secs(40),
            "still served: {}",
            stdout_of(&o)
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(err.contains(STDERR_LINE), "{err}");
    assert!(err.contains("credd login --profile saml"), "{err}");
    assert!(!err.contains("second line"), "{err}");
    assert!(!err.contains(STDOUT_CANARY), "{err}");
    let status = env.credd_ok(&["status"]);
    assert!(status.contains(STDERR_LINE), "{status}");

    // `credd login --profile saml`: the helper gets the terminal (here a
    // pipe that approves), then the daemon refreshes at once.
    let before = s.sandbox.count("AssumeRoleWithSAML");
    let mut login = env
        .cmd(credd_bin())
        .args(["login", "--profile", "saml"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    login.stdin.take().unwrap().write_all(b"approve\n").unwrap();
    let o = login.wait_with_output().unwrap();
    let (out, err) = (stdout_of(&o), stderr_of(&o));
    assert!(o.status.success(), "{out}{err}");
    assert!(
        err.contains("push approved"),
        "the helper's stderr is the user's: {err}"
    );
    assert!(err.contains("Signed in"), "{err}");
    assert!(
        !out.contains("PHNhbWxw") && !err.contains("PHNhbWxw"),
        "the assertion was shown"
    );
    assert!(s.sandbox.count("AssumeRoleWithSAML") > before);
    let back = process_json(env, "saml");
    assert!(back["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));

    let logs = d.logs();
    assert!(logs.contains(STDERR_LINE), "the failure is logged");
    assert!(
        !logs.contains(STDOUT_CANARY),
        "the helper's stdout reached the log"
    );
    assert!(!logs.contains("PHNhbWxw"), "the assertion reached the log");
}

#[test]
fn a_helper_that_prints_no_assertion_is_refused_without_echoing_it() {
    let s = sandboxed(3600);
    let env = &s.env;
    // A helper printing a JSON document instead of a SAMLResponse.
    let bogus = env.path("idp/bogus");
    std::fs::write(
        &bogus,
        format!("#!/bin/sh\necho '{{\"x\": \"{STDOUT_CANARY}\"}}'\n"),
    )
    .unwrap();
    std::fs::set_permissions(&bogus, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        env.home().join(".aws/config"),
        config(&bogus.display().to_string(), ""),
    )
    .unwrap();
    let d = env.serve(&[]);
    let o = env.credd(&["credential-process", "saml"]);
    assert!(!o.status.success());
    let err = stderr_of(&o);
    assert!(err.contains("not base64"), "{err}");
    assert!(!err.contains(STDOUT_CANARY), "{err}");
    assert_eq!(s.sandbox.count("AssumeRoleWithSAML"), 0);
    // And `credd login` says the same without echoing it either.
    let o = env
        .cmd(credd_bin())
        .args(["login", "--profile", "saml"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr_of(&o);
    assert!(err.contains("did not print an assertion"), "{err}");
    assert!(!err.contains(STDOUT_CANARY) && !stdout_of(&o).contains(STDOUT_CANARY));
    assert!(!d.logs().contains(STDOUT_CANARY));
}
