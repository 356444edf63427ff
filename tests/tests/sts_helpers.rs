//! The STS helpers end to end with the real binary: `credd decode-message`
//! against the sandbox's `DecodeAuthorizationMessage` (a message encoded by
//! the sandbox, given as an argument and on stdin), and `credd whoami` in
//! its human and `--json` forms against moto.

mod support;

use credd_sandbox::{Sandbox, SandboxConfig, DEMO_ACCESS_KEY_ID};
use std::io::Write;
use std::process::Stdio;
use support::*;

/// What AWS puts in an encoded authorization failure message (the denied
/// action and resource deep inside).
fn denial() -> serde_json::Value {
    serde_json::json!({
        "allowed": false,
        "explicitDeny": false,
        "matchedStatements": {"items": []},
        "failures": {"items": []},
        "context": {
            "principal": {"id": "AROAEXAMPLE:dev", "arn": "arn:aws:sts::111122223333:assumed-role/Admin/dev"},
            "action": "ec2:RunInstances",
            "resource": "arn:aws:ec2:eu-west-1:111122223333:instance/*",
            "conditions": {"items": [{"key": "ec2:InstanceType", "values": {"items": [{"value": "p4d.24xlarge"}]}}]}
        }
    })
}

#[test]
fn decode_message_puts_the_denied_action_and_resource_first() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sandbox = rt
        .block_on(Sandbox::start(SandboxConfig::default()))
        .unwrap();
    let config = format!(
        "[profile user]\n\
aws_access_key_id = {DEMO_ACCESS_KEY_ID}\n\
aws_secret_access_key = canaryDECODEsecret\n\
region = us-east-1\n\n\
[profile admin]\n\
role_arn = arn:aws:iam::111122223333:role/Admin\n\
source_profile = user\n\
region = eu-west-1\n"
    );
    let env = Env::with_moto(&config, Moto::external(sandbox.url()));
    let _d = env.serve(&[]);
    let message = sandbox.encode_message(&denial());

    let out = env.credd_ok(&["decode-message", "admin", &message]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deniedAction"], "ec2:RunInstances");
    assert_eq!(
        v["deniedResource"],
        "arn:aws:ec2:eu-west-1:111122223333:instance/*"
    );
    assert_eq!(v["context"], denial()["context"], "the rest as it came");
    let keys: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("  \""))
        .map(|l| l.trim().split('"').nth(1).unwrap())
        .collect();
    // Then the document's own keys in the order STS sent them (the
    // sandbox sends them sorted; the unit tests check an unsorted order).
    assert_eq!(
        keys,
        [
            "deniedAction",
            "deniedResource",
            "allowed",
            "context",
            "explicitDeny",
            "failures",
            "matchedStatements"
        ],
        "{out}"
    );
    assert_eq!(sandbox.count("DecodeAuthorizationMessage"), 1);

    // `-` reads the message from stdin (a trailing newline and all).
    let mut child = env
        .cmd(credd_bin())
        .args(["decode-message", "admin", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{message}").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o).trim(), out.trim());
    assert_eq!(sandbox.count("DecodeAuthorizationMessage"), 2);

    // An IAM user's bare keys sign the call themselves: the daemon's
    // GetSessionToken credentials may not call DecodeAuthorizationMessage.
    let sessions = sandbox.count("GetSessionToken");
    let by_user = env.credd_ok(&["decode-message", "user", &message]);
    assert_eq!(by_user, out);
    assert_eq!(sandbox.count("DecodeAuthorizationMessage"), 3);
    assert_eq!(
        sandbox.count("GetSessionToken"),
        sessions,
        "the keys were used as they are"
    );

    // A message STS cannot decode: its error, and the command failed.
    let o = env.credd(&["decode-message", "admin", "bm90LWEtbWVzc2FnZQ"]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("DecodeAuthorizationMessage"),
        "{}",
        stderr_of(&o)
    );
}

#[test]
fn whoami_has_a_human_form_and_json() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let human = env.credd_ok(&["whoami", "dev"]);
    let lines: Vec<&str> = human.lines().collect();
    assert_eq!(lines.len(), 3, "{human}");
    assert_eq!(lines[0], "Account:  123456789012");
    assert!(
        lines[1].starts_with("ARN:      arn:aws:sts::123456789012:assumed-role/dev/"),
        "{human}"
    );
    assert!(lines[2].starts_with("User ID:  "), "{human}");
    let json: serde_json::Value =
        serde_json::from_str(&env.credd_ok(&["whoami", "dev", "--json"])).unwrap();
    assert_eq!(json["Account"], "123456789012");
    assert_eq!(json["Arn"].as_str(), lines[1].strip_prefix("ARN:      "));
    // moto makes up the role id's unique part afresh for each call.
    let user_id = json["UserId"].as_str().unwrap();
    assert!(
        user_id.starts_with("AROA") && user_id.ends_with(":credd-dev"),
        "{user_id}"
    );
    assert!(lines[2].ends_with(":credd-dev"), "{human}");
}
