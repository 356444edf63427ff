//! End to end: the real `credd` binary, moto as STS, and unmodified clients
//! configured only through the environment variables a user would set.

mod support;

use std::process::Command;
use support::*;

const DEV_ARN: &str = "arn:aws:sts::123456789012:assumed-role/dev/credd-dev";

fn assert_ran(o: &std::process::Output, want: &str, what: &str) {
    assert!(
        o.status.success() && stdout_of(o).contains(want),
        "{what}: status {}\nstdout: {}\nstderr: {}",
        o.status,
        stdout_of(o),
        stderr_of(o)
    );
}

#[test]
fn boto3_and_the_aws_cli_through_credd_exec() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let py = env
        .cmd(support::credd_bin())
        .args(["exec", "dev", "--"])
        .arg(python())
        .arg(clients().join("whoami.py"))
        .output()
        .unwrap();
    assert_ran(&py, DEV_ARN, "boto3 via credd exec");
    let cli = env
        .cmd(support::credd_bin())
        .args(["exec", "dev", "--"])
        .arg(aws_cli())
        .args([
            "sts",
            "get-caller-identity",
            "--query",
            "Arn",
            "--output",
            "text",
        ])
        .output()
        .unwrap();
    assert_ran(&cli, DEV_ARN, "AWS CLI via credd exec");
    // The command's token was revoked when it exited.
    let tokens = env.credd_ok(&["token", "list", "--json"]);
    assert_eq!(tokens.trim(), "[]", "{tokens}");
}

#[test]
fn exec_passes_the_status_and_a_clean_environment() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let o = env
        .cmd(support::credd_bin())
        .args([
            "exec",
            "dev",
            "--",
            "sh",
            "-c",
            "env; cat \"$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE\" | wc -c; exit 7",
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIASHOULDGO")
        .env("AWS_SECRET_ACCESS_KEY", "shouldgo")
        .env("AWS_PROFILE", "other")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7));
    let out = stdout_of(&o);
    assert!(
        !out.contains("AKIASHOULDGO")
            && !out.contains("AWS_PROFILE=")
            && !out.contains("AWS_SECRET_ACCESS_KEY="),
        "{out}"
    );
    assert!(
        out.contains("AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("AWS_REGION=eu-west-1") && out.contains("AWS_DEFAULT_REGION=eu-west-1"));
    // The token scoped to the child is in its file and, for clients that
    // read only the variable (the legacy JS container provider), in its
    // environment: the same token, never on a command line.
    let token_line = out
        .lines()
        .find_map(|l| l.strip_prefix("AWS_CONTAINER_AUTHORIZATION_TOKEN="))
        .expect("the token variable");
    assert!(token_line.starts_with("credd_"), "{out}");
    assert!(
        out.lines().last() == Some(&token_line.len().to_string()),
        "the file holds the same token: {out}"
    );
    assert!(out.contains("AWS_CONFIG_FILE=") && out.contains("AWS_SHARED_CREDENTIALS_FILE="));
    let not_found = env.credd(&["exec", "dev", "--", "no-such-command-xyz"]);
    assert_eq!(not_found.status.code(), Some(127));
    let unknown = env.credd(&["exec", "nope", "--", "true"]);
    assert!(!unknown.status.success() && stderr_of(&unknown).contains("unknown profile 'nope'"));
}

#[test]
fn js_sdk_and_rust_sdk_through_the_full_uri() {
    let env = Env::new();
    let d = env.serve(&[]);
    let token_file = env.path("token");
    env.credd_ok(&[
        "token",
        "issue",
        "--profile",
        "dev",
        "--ttl",
        "1h",
        "--file",
        token_file.to_str().unwrap(),
    ]);
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(
        !token.ends_with('\n'),
        "SDKs reject a newline in the header value"
    );
    let uri = format!("{}/dev", d.container_url);
    let with_uri = |mut c: Command| {
        c.env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri)
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file)
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap()
    };
    assert_ran(&with_uri(env.client(Client::JsSdk)), DEV_ARN, "JS SDK v3");
    assert_ran(&with_uri(env.client(Client::RustSdk)), DEV_ARN, "Rust SDK");
    // boto3 too, with the token in the environment variable form.
    let py = env
        .client(Client::Boto3)
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", &token)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    assert_ran(&py, DEV_ARN, "boto3 with AWS_CONTAINER_AUTHORIZATION_TOKEN");
}

#[test]
fn boto3_through_the_imds_emulation() {
    let env = Env::new();
    let d = env.serve(&["--imds-listen", "127.0.0.1:0", "--imds-profile", "dev"]);
    let imds = d.imds_url.clone().expect("imds is on");
    // boto3 and the JS SDK take the region from the environment; the Rust
    // SDK reads it from IMDS too.
    for (client, region) in [
        (Client::Boto3, true),
        (Client::RustSdk, false),
        (Client::JsSdk, true),
    ] {
        let mut c = env.client(client);
        c.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds);
        if region {
            c.env("AWS_DEFAULT_REGION", "us-east-1")
                .env("AWS_REGION", "us-east-1");
        }
        assert_ran(
            &c.output().unwrap(),
            DEV_ARN,
            &format!("{client:?} via IMDSv2"),
        );
    }
}

#[test]
fn the_aws_cli_through_a_credential_process_profile() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let bin = support::credd_bin();
    let config = format!(
        "{CONFIG}\n[profile via-credd]\ncredential_process = {} credential-process dev\nregion = us-east-1\n",
        bin.display()
    );
    std::fs::write(env.home().join(".aws/config"), config).unwrap();
    let o = env
        .cmd(aws_cli())
        .args([
            "--profile",
            "via-credd",
            "sts",
            "get-caller-identity",
            "--query",
            "Arn",
            "--output",
            "text",
        ])
        .output()
        .unwrap();
    assert_ran(&o, DEV_ARN, "AWS CLI via credential_process");
    let doc: serde_json::Value =
        serde_json::from_str(&env.credd_ok(&["credential-process", "dev"])).unwrap();
    assert_eq!(doc["Version"], 1);
    assert!(doc["Expiration"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn mfa_profiles_need_credd_mfa_once_and_survive_a_restart() {
    let env = Env::new();
    let d = env.serve(&[]);
    let run = || env.exec_boto3("mfa");
    let before = run();
    assert!(!before.status.success());
    assert!(
        stderr_of(&before).contains("MFA code needed: run `credd mfa mfa`"),
        "{}",
        stderr_of(&before)
    );
    let status = env.credd_ok(&["status"]);
    assert!(status.contains("needs MFA"), "{status}");
    let bad = env.credd(&["mfa", "mfa", "--code", "12a"]);
    assert!(!bad.status.success() && stderr_of(&bad).contains("digits"));
    // The code piped in on standard input, as `ykman ... | credd mfa` does:
    // never on a command line.
    let mut child = env
        .cmd(credd_bin())
        .args(["mfa", "mfa"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"123456\n").unwrap();
    let piped = child.wait_with_output().unwrap();
    assert!(piped.status.success(), "{}", stderr_of(&piped));
    assert_ran(&run(), "assumed-role/mfa/credd-mfa", "after credd mfa");
    assert_eq!(env.moto.count("GetSessionToken"), 1);
    // A restart keeps the MFA session: no new code, no new GetSessionToken.
    assert!(d.stop().success(), "graceful shutdown exits 0");
    assert!(
        !env.path("run/control.sock").exists(),
        "socket removed on shutdown"
    );
    let _d2 = env.serve(&[]);
    assert_ran(&run(), "assumed-role/mfa/credd-mfa", "after a restart");
    assert_eq!(env.moto.count("GetSessionToken"), 1);
}

#[test]
fn a_thousand_concurrent_cold_requests_make_one_assume_role() {
    let env = Env::new();
    let d = env.serve(&[]);
    let token = env
        .credd_ok(&["token", "issue", "--profile", "dev"])
        .trim()
        .to_string();
    let addr = d.addr();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let statuses: Vec<u16> = rt.block_on(async {
        let mut joins = Vec::new();
        for _ in 0..1000 {
            let token = token.clone();
            joins.push(tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                let req = format!("GET /v1/credentials/dev HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {token}\r\nConnection: close\r\n\r\n");
                s.write_all(req.as_bytes()).await.unwrap();
                let mut out = Vec::new();
                s.read_to_end(&mut out).await.unwrap();
                String::from_utf8_lossy(&out).split_whitespace().nth(1).unwrap_or("0").parse().unwrap()
            }));
        }
        let mut v = Vec::new();
        for j in joins {
            v.push(j.await.unwrap());
        }
        v
    });
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    assert_eq!(env.moto.count("AssumeRole"), 1, "counted at the upstream");
    assert_eq!(env.moto.count("GetSessionToken"), 1);
}

#[test]
fn broken_config_gets_clear_errors() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let out = env.credd_ok(&["profiles"]);
    assert!(
        out.contains("typo: role_arn is set but none of source_profile"),
        "{out}"
    );
    assert!(
        out.contains("cycle-a: source_profile cycle: cycle-a -> cycle-b -> cycle-a"),
        "{out}"
    );
    assert!(
        out.contains("Ec2InstanceMetadata is not supported"),
        "{out}"
    );
    let token = env
        .credd_ok(&["token", "issue", "--profile", "typo"])
        .trim()
        .to_string();
    let o = env.credd(&["credential-process", "typo"]);
    assert!(
        stderr_of(&o).contains("profile 'typo' cannot be served"),
        "{}",
        stderr_of(&o)
    );
    let _ = token;
    // A syntax error: the daemon keeps what it had and says where the error is.
    std::fs::write(
        env.home().join(".aws/config"),
        format!("{CONFIG}\n[profile broken\nx = 1\n"),
    )
    .unwrap();
    let status = env.credd_ok(&["status"]);
    assert!(
        status.contains("AWS config problem") && status.contains("line"),
        "{status}"
    );
    assert!(
        status.contains("dev"),
        "the last good profiles are kept: {status}"
    );
    // The daemon not running is its own exit code and message.
    let other = Env::new();
    let o = other.credd(&["status"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr_of(&o).contains("credd is not running"),
        "{}",
        stderr_of(&o)
    );
}

#[test]
fn env_and_write_credentials_print_and_write_what_tools_expect() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let sh = env.credd_ok(&["env", "dev"]);
    assert!(
        sh.contains("export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:"),
        "{sh}"
    );
    assert!(
        sh.contains("export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=")
            && sh.contains("unset AWS_ACCESS_KEY_ID")
    );
    let st = env.credd_ok(&["env", "dev", "--static", "--format", "powershell"]);
    assert!(
        st.contains("$Env:AWS_ACCESS_KEY_ID=\"") && st.contains("$Env:AWS_CREDENTIAL_EXPIRATION="),
        "{st}"
    );
    assert!(
        !st.contains(LONG_TERM_ID),
        "long-term keys are never handed out"
    );
    let creds_path = env.home().join(".aws/credentials");
    let original =
        "# mine\n[default]\naws_access_key_id = AKIAMINE\naws_secret_access_key = keep ; note\n";
    std::fs::write(&creds_path, original).unwrap();
    env.credd_ok(&["write-credentials", "dev", "--as", "dev-temp"]);
    let text = std::fs::read_to_string(&creds_path).unwrap();
    assert!(text.starts_with(original), "{text}");
    assert!(text.contains("[dev-temp]") && text.contains("aws_session_token = "));
    let refused = env.credd(&["write-credentials", "dev", "--as", "default"]);
    assert!(!refused.status.success() && stderr_of(&refused).contains("not written by credd"));
    assert!(std::fs::read_to_string(&creds_path)
        .unwrap()
        .starts_with(original));
    // The written profile works for the AWS CLI.
    let o = env
        .cmd(aws_cli())
        .args([
            "--profile",
            "dev-temp",
            "--region",
            "us-east-1",
            "sts",
            "get-caller-identity",
            "--query",
            "Arn",
            "--output",
            "text",
        ])
        .output()
        .unwrap();
    assert_ran(&o, DEV_ARN, "AWS CLI with written credentials");
    let who = env.credd_ok(&["whoami", "dev"]);
    assert!(who.contains(DEV_ARN), "{who}");
}

#[test]
fn status_shows_the_chain_expiry_and_the_one_hour_cap() {
    let env = Env::new();
    let _d = env.serve(&[]);
    env.credd_ok(&["credential-process", "chained"]);
    let v: serde_json::Value = serde_json::from_str(&env.credd_ok(&["status", "--json"])).unwrap();
    let chained = v["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "chained")
        .unwrap();
    assert_eq!(chained["state"], "fresh");
    assert!(chained["chain"].as_str().unwrap().contains(
        "role arn:aws:iam::123456789012:role/chained <- role arn:aws:iam::123456789012:role/dev"
    ));
    assert!(
        chained["notes"][0]
            .as_str()
            .unwrap()
            .contains("caps chained role sessions at 1h"),
        "{chained}"
    );
    assert!(chained["expires_in_secs"].as_i64().unwrap() > 3000);
    assert!(chained["next_refresh"].is_string());
}

#[test]
fn web_identity_credential_process_and_environment_sources() {
    let env = Env::new();
    let token_file = env.path("web-token");
    std::fs::write(&token_file, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjaSJ9.sig").unwrap();
    let script = env.path("creds.sh");
    // A credential_process that returns long-term keys: credd must exchange
    // them for a session token before serving anything.
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho '{{\"Version\": 1, \"AccessKeyId\": \"{LONG_TERM_ID}\", \"SecretAccessKey\": \"{LONG_TERM_SECRET}\"}}'\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = format!(
        "{CONFIG}\n[profile wi]\nrole_arn = arn:aws:iam::123456789012:role/ci\nweb_identity_token_file = {}\nrole_session_name = ci-run\n\n\
         [profile proc]\ncredential_process = {}\n\n\
         [profile proc-role]\nrole_arn = arn:aws:iam::123456789012:role/fromproc\nsource_profile = proc\n\n\
         [profile from-env]\nrole_arn = arn:aws:iam::123456789012:role/fromenv\ncredential_source = Environment\nexternal_id = ext-1\n",
        token_file.display(),
        script.display()
    );
    std::fs::write(env.home().join(".aws/config"), config).unwrap();
    // The daemon's own environment holds the keys for credential_source = Environment.
    let _d = Daemon::start_with_env(
        &env,
        &[],
        false,
        &[
            ("AWS_ACCESS_KEY_ID", LONG_TERM_ID),
            ("AWS_SECRET_ACCESS_KEY", LONG_TERM_SECRET),
        ],
    );
    let who = |p: &str| env.exec_boto3(p);
    assert_ran(&who("wi"), "assumed-role/ci/ci-run", "web identity");
    assert_ran(
        &who("proc-role"),
        "assumed-role/fromproc/credd-proc-role",
        "role over credential_process",
    );
    assert_ran(
        &who("from-env"),
        "assumed-role/fromenv/credd-from-env",
        "credential_source = Environment",
    );
    let served: serde_json::Value =
        serde_json::from_str(&env.credd_ok(&["credential-process", "proc"])).unwrap();
    assert_ne!(
        served["SecretAccessKey"], LONG_TERM_SECRET,
        "long-term keys are never served"
    );
    assert!(served["SessionToken"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    assert_eq!(env.moto.count("AssumeRoleWithWebIdentity"), 1);
}

#[test]
fn every_vend_is_audited_without_secrets() {
    let env = Env::new();
    let d = env.serve(&["--imds-listen", "127.0.0.1:0", "--imds-profile", "dev"]);
    let token = env
        .credd_ok(&[
            "token",
            "issue",
            "--profile",
            "dev",
            "--label",
            "audit-test",
        ])
        .trim()
        .to_string();
    let list: serde_json::Value =
        serde_json::from_str(&env.credd_ok(&["token", "list", "--json"])).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_string();
    let (s, body) = get(
        d.addr(),
        "/v1/credentials/dev",
        Some(&d.addr().to_string()),
        Some(&token),
    );
    assert_eq!(s, 200);
    let served: serde_json::Value = serde_json::from_str(&body).unwrap();
    let imds = d.imds_url.clone().unwrap();
    assert_ran(
        &env.client(Client::Boto3)
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .unwrap(),
        DEV_ARN,
        "boto3 via IMDS",
    );
    env.credd_ok(&["credential-process", "dev"]);
    // The writer is asynchronous: a clean stop drains it.
    assert!(d.stop().success());
    let lines = env.credd_ok(&["audit", "--json"]);
    let records: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by = |ep: &str| records.iter().filter(|r| r["endpoint"] == ep).count();
    assert!(
        by("container") >= 1 && by("imds") >= 1 && by("control") >= 1,
        "{lines}"
    );
    let c = records
        .iter()
        .find(|r| r["endpoint"] == "container")
        .unwrap();
    assert_eq!(c["profile"], "dev");
    assert_eq!(c["token_id"], id.as_str());
    assert!(c["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    let raw = std::fs::read_to_string(env.path("state/audit.log")).unwrap();
    for secret in [
        served["SecretAccessKey"].as_str().unwrap(),
        served["Token"].as_str().unwrap(),
        token.as_str(),
        LONG_TERM_SECRET,
    ] {
        assert!(!raw.contains(secret), "no secret in the audit log");
    }
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(env.path("state/audit.log"))
            .unwrap()
            .mode()
            & 0o777,
        0o600
    );
    let table = env.credd_ok(&["audit", "--since", "1h"]);
    assert!(
        table.contains("container") && table.contains(&id),
        "{table}"
    );
    let old = env.credd(&["audit", "--since", "0s"]);
    assert!(
        stderr_of(&old).contains("no credentials vended"),
        "{}",
        stderr_of(&old)
    );
}

#[test]
fn profiles_link_serves_ides_through_credential_process() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let config_path = env.home().join(".aws/config");
    let before = std::fs::read_to_string(&config_path).unwrap();
    env.credd_ok(&["profiles", "link", "dev"]);
    let after = std::fs::read_to_string(&config_path).unwrap();
    assert!(after.starts_with(&before), "every other section untouched");
    let bin = support::credd_bin();
    assert!(after.contains(&format!("[profile dev-credd]\n# written by credd profiles link for profile 'dev'\ncredential_process = {} credential-process dev\nregion = eu-west-1\n", bin.display())), "{after}");
    // Linking again replaces our own section, and never a user's.
    env.credd_ok(&["profiles", "link", "dev"]);
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), after);
    let refused = env.credd(&["profiles", "link", "dev", "--as", "base"]);
    assert!(!refused.status.success() && stderr_of(&refused).contains("not written by credd"));
    // The JS SDK's shared-config provider (fromIni, via AWS_PROFILE) and the AWS CLI.
    let js = env
        .client(Client::JsSdk)
        .env("AWS_PROFILE", "dev-credd")
        .output()
        .unwrap();
    assert_ran(&js, DEV_ARN, "JS SDK v3 fromIni with credential_process");
    let cli = env
        .cmd(aws_cli())
        .args([
            "--profile",
            "dev-credd",
            "sts",
            "get-caller-identity",
            "--query",
            "Arn",
            "--output",
            "text",
        ])
        .output()
        .unwrap();
    assert_ran(&cli, DEV_ARN, "AWS CLI with the linked profile");
    let unknown = env.credd(&["profiles", "link", "nope"]);
    assert!(stderr_of(&unknown).contains("unknown profile 'nope'"));
}

#[test]
fn a_profile_added_to_the_config_is_served_without_a_command_or_restart() {
    let env = Env::new();
    let d = env.serve(&[]);
    let token = env
        .credd_ok(&["token", "issue", "--profile", "*"])
        .trim()
        .to_string();
    let host = d.addr().to_string();
    let ask = || get(d.addr(), "/v1/credentials/added", Some(&host), Some(&token));
    assert_eq!(ask().0, 404);
    // The user adds a profile in an editor; nothing tells credd.
    let config = env.home().join(".aws/config");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[profile added]\nrole_arn = arn:aws:iam::123456789012:role/added\nsource_profile = base\n",
    );
    std::fs::write(&config, text).unwrap();
    // The daemon is told of the write (inotify/FSEvents), so the profile is
    // known (no longer a 404) at once; its fallback look is once a minute.
    // The bound is generous (a loaded machine), far enough below the minute
    // that a daemon relying on the fallback look fails here.
    let written = std::time::Instant::now();
    let mut last = ask();
    while last.0 == 404 && written.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(20));
        last = ask();
    }
    assert_ne!(last.0, 404, "not re-read within 20 s of the write");
    for _ in 0..100 {
        if last.0 == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        last = ask();
    }
    assert_eq!(last.0, 200, "{}", last.1);
    let body: serde_json::Value = serde_json::from_str(&last.1).unwrap();
    assert!(body["AccessKeyId"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(env.moto.count("AssumeRole") >= 1);
}

#[test]
fn token_files_left_by_a_killed_cli_are_swept() {
    let env = Env::new();
    let _d = env.serve(&[]);
    // What `credd exec` leaves behind when it is SIGKILLed: the file of a
    // token that is then revoked (here by hand).
    let token = env.credd_ok(&["token", "issue", "--profile", "dev"]);
    // `credd_<16-hex id>_<secret>`
    let id = token.trim()["credd_".len()..]
        .split('_')
        .next()
        .unwrap()
        .to_string();
    let dir = env.path("run/tokens");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&id), "credd_x").unwrap();
    env.credd_ok(&["token", "list"]);
    assert!(dir.join(&id).exists(), "a live token's file is kept");
    env.credd_ok(&["token", "revoke", &id]);
    assert!(!dir.join(&id).exists(), "a revoked token's file is removed");
}
