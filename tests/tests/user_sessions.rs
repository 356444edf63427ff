//! Issue 14, the daemon side, end to end: the real `credd` binary with moto
//! as STS. Sessions are first-class in `credd status --json`, and an MFA
//! code a background consumer needs is asked for in a dialog the daemon
//! raises (a fake `zenity` on PATH stands in for the desktop's), with the
//! consumer never waiting on it.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use support::*;

fn status(env: &Env) -> serde_json::Value {
    serde_json::from_str(&env.credd_ok(&["status", "--json"])).unwrap()
}

fn profile_state(s: &serde_json::Value, name: &str) -> String {
    s["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn mfa_session(s: &serde_json::Value) -> serde_json::Value {
    s["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no sessions in {s}"))
        .iter()
        .find(|r| r["kind"] == "mfa")
        .cloned()
        .unwrap_or_else(|| panic!("no MFA session in {s}"))
}

#[test]
fn after_credd_mfa_status_lists_the_session_and_the_profile_is_fresh_without_a_request() {
    let env = Env::new();
    let _d = env.serve(&[]);
    let before = env.credd(&["credential-process", "mfa"]);
    assert!(!before.status.success());
    let s = status(&env);
    assert_eq!(profile_state(&s, "mfa"), "needs MFA");
    let row = mfa_session(&s);
    assert_eq!(row["state"], "needs MFA", "{row}");
    assert_eq!(row["name"], "mfa");
    assert_eq!(row["serial"], "arn:aws:iam::123456789012:mfa/me");
    assert_eq!(row["profiles"], serde_json::json!(["mfa"]));
    assert_eq!(row["needed_then"], "a new MFA code: `credd mfa mfa`");

    env.credd_ok(&["mfa", "mfa", "--code", "123456"]);
    // No request since `credd mfa`: the profile was re-checked when its
    // session changed.
    let s = status(&env);
    let row = mfa_session(&s);
    assert_eq!(row["state"], "active", "{row}");
    assert!(row["ends_in_secs"].as_i64().unwrap() > 11 * 3600, "{row}");
    assert_ne!(profile_state(&s, "mfa"), "needs MFA", "{s}");
    let text = env.credd_ok(&["status"]);
    assert!(
        text.contains("then needs a new MFA code: `credd mfa mfa`"),
        "{text}"
    );
}

#[test]
fn a_background_consumer_needing_mfa_raises_the_dialog_and_never_waits_on_it() {
    let env = Env::new();
    std::fs::write(env.path("credd.toml"), "mfa_prompt = \"dialog\"\n").unwrap();
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let asked = env.path("asked");
    std::fs::write(
        bin.join("zenity"),
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> {}\nsleep 1\necho 907531\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("zenity"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let d = Daemon::start_with_env(&env, &[], false, &[("PATH", &path), ("DISPLAY", ":99")]);

    // The IDE's credential_process: a fast failure naming the command,
    // while the dialog is up.
    let t = Instant::now();
    let first = env.credd(&["credential-process", "mfa"]);
    assert!(!first.status.success());
    assert!(
        stderr_of(&first).contains("credd mfa mfa"),
        "{}",
        stderr_of(&first)
    );
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );

    // The code typed into the dialog started the session.
    let deadline = Instant::now() + Duration::from_secs(20);
    while mfa_session(&status(&env))["state"] != "active" {
        assert!(Instant::now() < deadline, "{}", d.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    let doc: serde_json::Value =
        serde_json::from_str(&env.credd_ok(&["credential-process", "mfa"])).unwrap();
    assert_eq!(doc["Version"], 1);
    assert_eq!(env.moto.count("GetSessionToken"), 1);
    let text = std::fs::read_to_string(&asked).unwrap();
    assert!(text.contains("--hide-text"), "{text}");
    assert_eq!(text.matches("--entry").count(), 1, "one dialog: {text}");
    let logs = d.logs();
    let leak: Vec<_> = logs.lines().filter(|l| l.contains("907531")).collect();
    assert!(leak.is_empty(), "the code is never logged: {leak:?}");
}
