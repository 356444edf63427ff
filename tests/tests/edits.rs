//! A config of hundreds of profiles edited while credd runs (issue 16: the
//! re-read parses only the sections that changed): after each edit, the
//! real `credd` binary serves what the file now says, through
//! `credd credential-process` as an IDE or Terraform calls it, and lists
//! the profiles botocore lists. The edits are the ones people and tools
//! make: a value changed in the middle, a section deleted, a section
//! repeated further down, `[profile default]` added over `[default]`, a
//! half-saved header (the last good profiles are kept), a save in place
//! rather than by rename. The user's machine as it is: a `[default]` with
//! keys in `~/.aws/credentials`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

const PROFILES: usize = 300;

/// `cred.sh NAME`: a `credential_process` whose access key id says which
/// profile's command ran (`ASIA` and NAME upper-cased, letters and digits).
fn write_script(env: &Env) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = env.path("cred.sh");
    std::fs::write(
        &path,
        "#!/bin/sh\n\
         id=$(printf '%s' \"$1\" | tr -dc 'a-z0-9' | tr 'a-z' 'A-Z')\n\
         printf '{\"Version\":1,\"AccessKeyId\":\"ASIA%s\",\"SecretAccessKey\":\"edits-secret\",\"SessionToken\":\"edits-token\",\"Expiration\":\"2099-01-01T00:00:00Z\"}\\n' \"$id\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    path.display().to_string()
}

fn section(name: &str, script: &str, arg: &str) -> String {
    format!("[profile {name}]\ncredential_process = {script} {arg}\nregion = us-east-1\n\n")
}

fn config(script: &str) -> String {
    let mut c = String::from(
        "# many profiles, as `sso populate` leaves them\n[default]\nregion = eu-west-1\n\n",
    );
    for i in 0..PROFILES {
        c.push_str(&section(&format!("p{i}"), script, &format!("p{i}")));
    }
    c
}

/// Saved as editors do: a new file renamed over the old one.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The access key id `credd credential-process PROFILE` gives, or its
/// error text.
fn served(env: &Env, profile: &str) -> Result<String, String> {
    let o = env.credd(&["credential-process", profile]);
    if !o.status.success() {
        return Err(stderr_of(&o));
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    Ok(v["AccessKeyId"].as_str().unwrap().to_string())
}

/// Waits (up to 30 s) until `check` holds of what `profile` is served.
fn until(env: &Env, profile: &str, what: &str, check: impl Fn(&Result<String, String>) -> bool) {
    let start = Instant::now();
    loop {
        let got = served(env, profile);
        if check(&got) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: `credd credential-process {profile}` still gives {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn listed(env: &Env) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&env.credd_ok(&["profiles", "--json"])).unwrap();
    let mut names: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn botocore_lists(env: &Env) -> Vec<String> {
    let o = env
        .cmd(python())
        .args([
            "-c",
            "import botocore.session, json; print(json.dumps(sorted(botocore.session.Session().available_profiles)))",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "botocore: {}", stderr_of(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn region_of(env: &Env, profile: &str) -> Option<String> {
    let v: serde_json::Value =
        serde_json::from_str(&env.credd_ok(&["profiles", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == profile)
        .and_then(|r| r["region"].as_str().map(str::to_string))
}

#[test]
fn each_edit_of_a_large_config_is_served_as_the_file_now_says() {
    let env = Env::with_config("");
    let script = write_script(&env);
    let cfg = env.home().join(".aws/config");
    let mut text = config(&script);
    std::fs::write(&cfg, &text).unwrap();
    std::fs::write(
        env.home().join(".aws/credentials"),
        "[default]\naws_access_key_id = AKIADEFAULTEDITS\naws_secret_access_key = default-secret\n",
    )
    .unwrap();
    let d = env.serve(&[]);
    assert_eq!(served(&env, "p150"), Ok("ASIAP150".into()));

    // A value changed in the middle of the file.
    text = text.replace(&format!("{script} p150\n"), &format!("{script} changed\n"));
    save(&cfg, &text);
    until(&env, "p150", "a changed command", |g| {
        g.as_deref() == Ok("ASIACHANGED")
    });
    assert_eq!(served(&env, "p151"), Ok("ASIAP151".into()));

    // A section deleted.
    text = text.replace(&section("p42", &script, "p42"), "");
    save(&cfg, &text);
    until(&env, "p42", "a deleted section", |g| {
        g.as_ref().is_err_and(|e| e.contains("unknown profile"))
    });
    assert_eq!(served(&env, "p41"), Ok("ASIAP41".into()));

    // A section repeated further down: its keys win over the first one's
    // (the Rust SDK's rule; botocore refuses such a file, so the repeat is
    // taken out again, and the first section serves again).
    let repeat = format!("[profile p7]\ncredential_process = {script} again\n\n");
    text.push_str(&repeat);
    save(&cfg, &text);
    until(&env, "p7", "a repeated section", |g| {
        g.as_deref() == Ok("ASIAAGAIN")
    });
    text = text.replace(&repeat, "");
    save(&cfg, &text);
    until(&env, "p7", "a repeat taken out", |g| {
        g.as_deref() == Ok("ASIAP7")
    });

    // `[profile default]` takes the place of `[default]` (the SDK's rule):
    // its region, not the plain section's.
    assert_eq!(region_of(&env, "default").as_deref(), Some("eu-west-1"));
    text.push_str("[profile default]\nregion = ap-south-1\n\n");
    save(&cfg, &text);
    let start = Instant::now();
    while region_of(&env, "default").as_deref() != Some("ap-south-1") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "[profile default] not taken"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its keys still come from the credentials file (through STS, moto).
    assert!(served(&env, "default").is_ok());

    // A header saved half-way: the last good profiles are kept, and the
    // status names the line.
    let good = text.clone();
    let broken = text.replace("[profile p200]\n", "[profile p200\n");
    let line = broken.lines().position(|l| l == "[profile p200").unwrap() + 1;
    save(
        &cfg,
        &format!("{broken}{}", section("added", &script, "added")),
    );
    let start = Instant::now();
    loop {
        let status: serde_json::Value =
            serde_json::from_str(&env.credd_ok(&["status", "--json"])).unwrap();
        if let Some(e) = status["daemon"]["config_error"].as_str() {
            assert!(e.contains(&format!("line {line}")), "{e}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no config error in {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(served(&env, "p200"), Ok("ASIAP200".into()));
    assert_eq!(served(&env, "p150"), Ok("ASIACHANGED".into()));
    assert!(
        served(&env, "added").is_err(),
        "nothing of the broken version is used"
    );

    // Fixed, and saved in place (truncated and written, as some tools do).
    text = format!("{good}{}", section("added", &script, "added"));
    std::fs::write(&cfg, &text).unwrap();
    until(&env, "added", "a fixed file saved in place", |g| {
        g.as_deref() == Ok("ASIAADDED")
    });

    // What credd lists is what botocore lists, from the same files.
    let ours = listed(&env);
    assert_eq!(
        ours.len(),
        PROFILES + 1,
        "p0..p299 without p42, default, added"
    );
    assert_eq!(ours, botocore_lists(&env));
    drop(d);
}
