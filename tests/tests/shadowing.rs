//! Nothing in a real user's files or environment wins over credd (issue 10,
//! section 1), and the IDE clients get through (section 2: the VS Code
//! Toolkit's legacy container provider, the JetBrains Toolkit's
//! `credential_process`).
//!
//! Each case is a `~/.aws` (or an environment) a real developer has: a
//! `[default]` with keys, with a role, with SSO, with `credential_process`,
//! an exported `AWS_PROFILE`, `AWS_DEFAULT_PROFILE` or keys. In each, boto3,
//! the AWS CLI, the JS SDK v3 and the Rust SDK run under `credd exec dev`
//! and must print dev's assumed-role ARN; `credd env dev` (applied by `sh`,
//! or from its JSON) must do the same for boto3. The clients get no
//! `AWS_ENDPOINT_URL_STS`: they reach STS (moto) only through the
//! `[services]` section named by dev's `services`, so the test also proves
//! the profile's endpoint settings still apply. Cases run on threads.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;
use support::*;

const DEV_ARN: &str = "arn:aws:sts::123456789012:assumed-role/dev/credd-dev";

/// `~/.aws/config` every case starts from; `{moto}` is the STS address.
fn base_config(moto: &str, default: &str) -> String {
    format!(
        "{default}\n\
[profile base]\n\
aws_access_key_id = {LONG_TERM_ID}\n\
aws_secret_access_key = {LONG_TERM_SECRET}\n\
\n\
[profile dev]\n\
role_arn = arn:aws:iam::123456789012:role/dev\n\
source_profile = base\n\
region = eu-west-1\n\
services = local-sts\n\
\n\
[profile other]\n\
aws_access_key_id = AKIAOTHERXEXAMPLE123\n\
aws_secret_access_key = otherSecretOtherSecretOtherSecret000000\n\
services = local-sts\n\
\n\
[profile mfa]\n\
role_arn = arn:aws:iam::123456789012:role/mfa\n\
source_profile = base\n\
mfa_serial = arn:aws:iam::123456789012:mfa/me\n\
region = us-east-1\n\
\n\
[services local-sts]\n\
sts =\n  endpoint_url = {moto}\n"
    )
}

struct Case {
    name: &'static str,
    /// The `[default]` section(s) of the config file (and more sections).
    default: String,
    credentials: Option<&'static str>,
    /// Variables exported in the calling shell.
    vars: Vec<(&'static str, &'static str)>,
}

fn setup(case: &Case, imds: bool) -> (Env, Daemon) {
    let moto = Moto::start();
    let config = base_config(&moto.url, &case.default);
    let env = Env::with_moto(&config, moto);
    if let Some(c) = case.credentials {
        std::fs::write(env.home().join(".aws/credentials"), c).unwrap();
    }
    // `credential_process` for the default profile: other, valid keys.
    let script = env.path("default-process");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKIAPROCESSEXAMPLE12\", \"SecretAccessKey\": \"processSecretprocessSecretprocessSecret0\"}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = if imds {
        env.serve(&["--imds-listen", "127.0.0.1:0", "--imds-profile", "dev"])
    } else {
        env.serve(&[])
    };
    (env, d)
}

fn cases() -> Vec<Case> {
    let sso = "[default]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Admin\n\
               services = local-sts\nregion = us-east-1\n\n\
               [sso-session corp]\nsso_start_url = https://d-1234567890.awsapps.com/start\nsso_region = us-east-1\n";
    vec![
        Case {
            name: "[default] with keys (aws configure)",
            default: "[default]\nregion = us-east-1\nservices = local-sts\n".into(),
            credentials: Some(
                "[default]\naws_access_key_id = AKIADEFAULTEXAMPLE12\naws_secret_access_key = defaultSecretdefaultSecretdefaultSecret0\n",
            ),
            vars: vec![],
        },
        Case {
            name: "[default] with role_arn",
            default: "[default]\nrole_arn = arn:aws:iam::123456789012:role/other\nsource_profile = other\nservices = local-sts\n".into(),
            credentials: None,
            vars: vec![],
        },
        Case {
            name: "[default] with sso_session",
            default: sso.into(),
            credentials: None,
            vars: vec![],
        },
        Case {
            name: "[default] with credential_process",
            default: "[default]\ncredential_process = {PROCESS}\nservices = local-sts\n".into(),
            credentials: None,
            vars: vec![],
        },
        Case {
            name: "AWS_PROFILE exported",
            default: String::new(),
            credentials: None,
            vars: vec![("AWS_PROFILE", "other")],
        },
        Case {
            name: "AWS_DEFAULT_PROFILE exported",
            default: String::new(),
            credentials: None,
            vars: vec![("AWS_DEFAULT_PROFILE", "other")],
        },
        Case {
            name: "keys exported",
            default: String::new(),
            credentials: None,
            vars: vec![
                ("AWS_ACCESS_KEY_ID", "AKIAEXPORTEDEXAMPLE1"),
                ("AWS_SECRET_ACCESS_KEY", "exportedSecretexportedSecretexported000"),
            ],
        },
    ]
}

/// A command as the user's shell would start it: the case's variables
/// exported, no STS endpoint in the environment (only dev's `[services]`).
fn user_cmd(env: &Env, case: &Case, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = env.cmd(program);
    c.env_remove("AWS_ENDPOINT_URL_STS");
    c.envs(case.vars.iter().copied());
    c
}

fn client_argv(client: &str) -> Vec<String> {
    let s = |p: std::path::PathBuf| p.display().to_string();
    match client {
        "boto3" => vec![s(python()), s(clients().join("whoami.py"))],
        "aws-cli" => vec![
            s(aws_cli()),
            "sts".into(),
            "get-caller-identity".into(),
            "--query".into(),
            "Arn".into(),
            "--output".into(),
            "text".into(),
        ],
        "js-sdk" => vec![s(node()), s(clients().join("whoami.mjs"))],
        "js-legacy-container" => vec![s(node()), s(clients().join("legacy_container.mjs"))],
        "rust-sdk" => vec![s(rust_whoami())],
        other => panic!("{other}"),
    }
}

fn check(o: &Output, what: &str) -> Result<(), String> {
    if o.status.success() && stdout_of(o).lines().last() == Some(DEV_ARN) {
        Ok(())
    } else {
        Err(format!(
            "{what}: status {}\nstdout: {}\nstderr: {}",
            o.status,
            stdout_of(o),
            stderr_of(o)
        ))
    }
}

/// Runs every section 1 case through every client; returns the failures.
fn run_case(case: &Case) -> Vec<String> {
    let (env, _d) = setup(case, false);
    // The credential_process path is only known once the env exists.
    let config = std::fs::read_to_string(env.home().join(".aws/config")).unwrap();
    std::fs::write(
        env.home().join(".aws/config"),
        config.replace("{PROCESS}", env.path("default-process").to_str().unwrap()),
    )
    .unwrap();
    let mut failures = Vec::new();
    for client in ["boto3", "aws-cli", "js-sdk", "rust-sdk"] {
        let argv = client_argv(client);
        let o = user_cmd(&env, case, credd_bin())
            .args(["exec", "dev", "--"])
            .args(&argv)
            .output()
            .unwrap();
        if let Err(e) = check(&o, &format!("{}: credd exec dev -- {client}", case.name)) {
            failures.push(e);
        }
    }
    // `eval "$(credd env dev)"`, as a user types it; boto3 has no region
    // unless AWS_DEFAULT_REGION (or the overlay) gives it one.
    let boto = client_argv("boto3");
    let o = user_cmd(&env, case, "sh")
        .arg("-c")
        .arg(format!(
            "eval \"$('{}' env dev)\" && exec '{}' '{}'",
            credd_bin().display(),
            boto[0],
            boto[1]
        ))
        .output()
        .unwrap();
    if let Err(e) = check(
        &o,
        &format!("{}: eval \"$(credd env dev)\"; boto3", case.name),
    ) {
        failures.push(e);
    }
    failures
}

#[test]
fn every_client_gets_credd_whatever_the_files_and_environment_hold() {
    let cases = cases();
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases.iter().map(|c| s.spawn(move || run_case(c))).collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} failures:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The first case's files: `[default]` keys in the credentials file.
fn default_keys() -> Case {
    cases().remove(0)
}

#[test]
fn env_json_exports_and_unsets_what_exec_sets() {
    let case = Case {
        vars: vec![("AWS_PROFILE", "other")],
        ..default_keys()
    };
    let (env, _d) = setup(&case, false);
    let v: serde_json::Value = serde_json::from_str(
        &String::from_utf8(
            user_cmd(&env, &case, credd_bin())
                .args(["env", "dev", "--format", "json"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap(),
    )
    .unwrap();
    let m = v.as_object().expect("an object");
    assert_eq!(m["AWS_DEFAULT_REGION"], "eu-west-1", "{v}");
    assert_eq!(m["AWS_REGION"], "eu-west-1", "{v}");
    assert!(m["AWS_PROFILE"].is_null(), "unset, as null: {v}");
    let overlay = std::fs::read_to_string(m["AWS_CONFIG_FILE"].as_str().unwrap()).unwrap();
    assert!(
        overlay.contains("region = eu-west-1") && !overlay.contains("role_arn"),
        "{overlay}"
    );
    assert_eq!(
        std::fs::read(m["AWS_SHARED_CREDENTIALS_FILE"].as_str().unwrap()).unwrap(),
        b""
    );
    // Applied as a tool would apply it.
    let boto = client_argv("boto3");
    let mut c = user_cmd(&env, &case, &boto[0]);
    c.arg(&boto[1]);
    for (k, val) in m {
        match val.as_str() {
            Some(s) => c.env(k, s),
            None => c.env_remove(k),
        };
    }
    check(&c.output().unwrap(), "boto3 with credd env --format json").unwrap();
    // The opt-out does what it says: the user's files are seen again, and
    // their [default] wins (with a warning).
    let o = user_cmd(&env, &case, credd_bin())
        .args(["exec", "--keep-aws-config", "dev", "--"])
        .args(&boto)
        .output()
        .unwrap();
    assert!(
        o.status.success() && stdout_of(&o) != DEV_ARN && !stdout_of(&o).is_empty(),
        "{}\n{}",
        stdout_of(&o),
        stderr_of(&o)
    );
    assert!(
        stderr_of(&o).contains("--keep-aws-config") && stderr_of(&o).contains("[default] in"),
        "{}",
        stderr_of(&o)
    );
    // Every shell format unsets the same and sets AWS_DEFAULT_REGION.
    for (format, unset, set) in [
        (
            "sh",
            "unset AWS_PROFILE",
            "export AWS_DEFAULT_REGION=eu-west-1",
        ),
        (
            "fish",
            "set -e AWS_PROFILE",
            "set -gx AWS_DEFAULT_REGION eu-west-1",
        ),
        (
            "powershell",
            "Remove-Item Env:AWS_PROFILE",
            "$Env:AWS_DEFAULT_REGION=\"eu-west-1\"",
        ),
        (
            "cmd",
            "set AWS_PROFILE=",
            "set AWS_DEFAULT_REGION=eu-west-1",
        ),
    ] {
        let out = env.credd_ok(&["env", "dev", "--format", format]);
        assert!(out.contains(unset) && out.contains(set), "{format}: {out}");
        assert!(out.contains("AWS_CONFIG_FILE"), "{format}: {out}");
    }
}

#[test]
fn imds_mode_and_the_legacy_js_container_provider() {
    let case = Case {
        vars: vec![("AWS_PROFILE", "other")],
        ..default_keys()
    };
    let (env, _d) = setup(&case, true);
    // botocore gives IMDS one second: the first AssumeRole on a loaded
    // machine can take longer, so the cache is filled first (as a running
    // daemon's is).
    env.credd_ok(&["credential-process", "dev"]);
    let mut failures = Vec::new();
    for client in ["boto3", "aws-cli", "js-sdk", "rust-sdk"] {
        let o = user_cmd(&env, &case, credd_bin())
            .args(["exec", "--imds", "dev", "--"])
            .args(client_argv(client))
            .output()
            .unwrap();
        if let Err(e) = check(&o, &format!("credd exec --imds dev -- {client}")) {
            failures.push(e);
        }
    }
    // The VS Code AWS Toolkit's provider: fromContainerMetadata, which
    // reads only AWS_CONTAINER_AUTHORIZATION_TOKEN.
    let o = user_cmd(&env, &case, credd_bin())
        .args(["exec", "dev", "--"])
        .args(client_argv("js-legacy-container"))
        .output()
        .unwrap();
    if let Err(e) = check(&o, "credd exec dev -- fromContainerMetadata") {
        failures.push(e);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Another profile than the one IMDS serves is refused, saying why.
    let o = env.credd(&["exec", "--imds", "other", "--", "true"]);
    assert!(
        !o.status.success() && stderr_of(&o).contains("serves profile 'dev', not 'other'"),
        "{}",
        stderr_of(&o)
    );
}

#[test]
fn imds_mode_needs_the_emulation() {
    let env = Env::new();
    let _d = env.serve(&[]);
    for args in [
        &["exec", "--imds", "dev", "--", "true"][..],
        &["env", "--imds", "dev"][..],
    ] {
        let o = env.credd(args);
        assert!(!o.status.success() && o.stdout.is_empty(), "{args:?}");
        assert!(
            stderr_of(&o).contains("does not run the IMDS emulation")
                && stderr_of(&o).contains("--imds-listen"),
            "{args:?}: {}",
            stderr_of(&o)
        );
    }
}

#[test]
fn docker_flags_mount_the_overlay_and_docker_gets_no_aws_profile() {
    let case = default_keys();
    let (env, _d) = setup(&case, false);
    let out = env.credd_ok(&["docker", "args", "dev"]);
    let words: Vec<&str> = out.split_whitespace().collect();
    let flag = |f: &str, suffix: &str| -> Option<String> {
        words
            .windows(2)
            .find(|w| w[0] == f && w[1].ends_with(suffix))
            .map(|w| w[1].to_string())
    };
    assert!(
        flag("-e", "AWS_CONFIG_FILE=/run/secrets/credd-aws-config").is_some(),
        "{out}"
    );
    assert!(
        flag(
            "-e",
            "AWS_SHARED_CREDENTIALS_FILE=/run/secrets/credd-aws-credentials"
        )
        .is_some(),
        "{out}"
    );
    let mount = flag("-v", ":/run/secrets/credd-aws-config:ro").expect(&out);
    let overlay = std::fs::read_to_string(mount.split(':').next().unwrap()).unwrap();
    assert!(
        overlay.contains("[default]\nregion = eu-west-1\nservices = local-sts\n"),
        "{overlay}"
    );
    assert!(
        overlay.contains("[services local-sts]\nsts =\n  endpoint_url = http://"),
        "{overlay}"
    );
    for secret in [
        "aws_access_key_id",
        "role_arn",
        "source_profile",
        LONG_TERM_SECRET,
    ] {
        assert!(!overlay.contains(secret), "{secret} in {overlay}");
    }
    let creds = flag("-v", ":/run/secrets/credd-aws-credentials:ro").expect(&out);
    assert_eq!(
        std::fs::read(creds.split(':').next().unwrap()).unwrap(),
        b""
    );
    assert!(
        !out.contains("credd_"),
        "the token stays off docker's argv: {out}"
    );

    // `credd docker run`: a stand-in docker records its argv and env.
    let fake = env.path("docker");
    let record = env.path("docker-record");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n{{ printf '%s\\n' \"$@\"; echo ENV; env; }} > {}\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = env
        .cmd(credd_bin())
        .args([
            "docker",
            "run",
            "dev",
            "-e",
            "AWS_PROFILE",
            "-v",
            "/root/.aws:/root/.aws",
            "img",
        ])
        .env("CREDD_DOCKER", &fake)
        .env("AWS_PROFILE", "other")
        .env("AWS_ACCESS_KEY_ID", "AKIAEXPORTEDEXAMPLE1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let rec = std::fs::read_to_string(&record).unwrap();
    let (args, envs) = rec.split_once("ENV\n").unwrap();
    assert!(
        args.contains("AWS_CONFIG_FILE=/run/secrets/credd-aws-config"),
        "{args}"
    );
    assert!(
        !envs.contains("AWS_PROFILE=") && !envs.contains("AWS_ACCESS_KEY_ID="),
        "docker's own environment passes nothing through: {envs}"
    );
}

#[test]
fn link_carries_settings_and_refuses_a_shadowing_credentials_section() {
    let case = Case {
        credentials: Some(
            "[dev-credd]\naws_access_key_id = AKIASHADOWEXAMPLE123\naws_secret_access_key = shadowSecretshadowSecretshadowSecret000\n",
        ),
        ..default_keys()
    };
    let (env, _d) = setup(&case, false);
    let config_path = env.home().join(".aws/config");
    let before = std::fs::read_to_string(&config_path).unwrap();
    let o = env.credd(&["profiles", "link", "dev"]);
    assert!(!o.status.success(), "{}", stderr_of(&o));
    let err = stderr_of(&o);
    assert!(
        err.contains("[dev-credd]") && err.contains(".aws/credentials") && err.contains("--as"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&config_path).unwrap(),
        before,
        "nothing written"
    );

    env.credd_ok(&["profiles", "link", "dev", "--as", "dev-linked"]);
    let after = std::fs::read_to_string(&config_path).unwrap();
    let section = after.split("[profile dev-linked]").nth(1).unwrap();
    assert!(
        section.contains("region = eu-west-1") && section.contains("services = local-sts"),
        "{section}"
    );
    // The AWS CLI through it, with no STS endpoint but the profile's own.
    let argv = client_argv("aws-cli");
    let o = user_cmd(&env, &case, &argv[0])
        .args(["--profile", "dev-linked"])
        .args(&argv[1..])
        .output()
        .unwrap();
    check(&o, "aws --profile dev-linked").unwrap();
}

#[test]
fn status_and_profiles_warn_about_what_shadows_credd() {
    let case = default_keys();
    let (env, _d) = setup(&case, false);
    let creds = env.home().join(".aws/credentials");
    let want = format!("[default] in {} holds credentials", creds.display());
    for args in [&["status"][..], &["profiles"][..]] {
        let out = env.credd_ok(args);
        assert!(
            out.contains("warning:") && out.contains(&want),
            "{args:?}: {out}"
        );
        assert_eq!(out.matches(&want).count(), 1, "said once: {out}");
        assert!(out.contains("named profile"), "says what to do: {out}");
    }
    let v: serde_json::Value = serde_json::from_str(&env.credd_ok(&["status", "--json"])).unwrap();
    let s = &v["files"]["shadows"][0];
    assert_eq!(s["file"], creds.display().to_string(), "{v}");
    assert_eq!(s["section"], "default");
    assert_eq!(s["keys"][0], "aws_access_key_id");
    let o = env.credd(&["profiles", "--json"]);
    assert!(stderr_of(&o).contains(&want), "{}", stderr_of(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(list.is_array(), "the document keeps its shape");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("defaultSecret"));

    // A clean ~/.aws: no warning.
    let clean = Env::new();
    let _d2 = clean.serve(&[]);
    assert!(!clean.credd_ok(&["status"]).contains("warning:"));
}

#[test]
fn credential_process_never_prompts_fails_naming_credd_mfa_and_notifies() {
    // An SSO profile with no sign-in yet: no token in the cache, so nothing
    // to call upstream with.
    let env = Env::with_config(&format!(
        "{CONFIG}\n[profile sso]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Admin\n\n\
         [sso-session corp]\nsso_start_url = https://d-1234567890.awsapps.com/start\nsso_region = us-east-1\n"
    ));
    let (path, record) = env.fake_notify_send();
    let _d = Daemon::start_with_env(&env, &[], false, &[("PATH", &path), ("DISPLAY", ":99")]);
    // As the JetBrains Toolkit runs it: no terminal, stdin closed.
    let o = env
        .cmd(credd_bin())
        .args(["credential-process", "mfa"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr_of(&o));
    assert!(
        o.stdout.is_empty(),
        "nothing an SDK could take for credentials"
    );
    assert!(
        stderr_of(&o).contains("MFA code needed: run `credd mfa mfa`"),
        "{}",
        stderr_of(&o)
    );
    for action in ["GetSessionToken", "AssumeRole"] {
        assert_eq!(env.moto.count(action), 0, "no upstream call for {action}");
    }
    let mut shown = String::new();
    for _ in 0..100 {
        shown = std::fs::read_to_string(&record).unwrap_or_default();
        if !shown.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        shown.contains("run `credd mfa mfa`"),
        "notification: {shown:?}"
    );
    // Told once, not once per retry of the IDE.
    let again = env
        .cmd(credd_bin())
        .args(["credential-process", "mfa"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    // A sign-in needed: the same, naming `credd login`.
    let o = env
        .cmd(credd_bin())
        .args(["credential-process", "sso"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("run `credd login corp`"),
        "{}",
        stderr_of(&o)
    );
    for _ in 0..100 {
        shown = std::fs::read_to_string(&record).unwrap_or_default();
        if shown.contains("credd login corp") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        shown.contains("run `credd login corp`"),
        "notification: {shown:?}"
    );
    assert_eq!(
        shown.matches("credd mfa mfa").count(),
        1,
        "told once: {shown}"
    );
    for action in ["GetSessionToken", "AssumeRole"] {
        assert_eq!(env.moto.count(action), 0, "no upstream call for {action}");
    }
}
