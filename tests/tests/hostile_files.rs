//! A messy machine's files (issue 11), against the real `credd` binary: a
//! byte that is not UTF-8 in an AWS file (threat-model row 21: the SDK's
//! warning must never carry the file into the log), a half-saved config
//! (the last good profiles keep being served and renewed), a FIFO or a
//! device where a file should be (row 23: nothing hangs), and `tokens.json`
//! under concurrent issue/revoke and with a mode credd refuses.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Runs `cmd`, killing it after `limit`: `None` means it hung.
fn run_within(mut cmd: Command, limit: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `credd ARGS` that must answer within 5 s.
fn credd_quick(env: &Env, args: &[&str]) -> Output {
    let mut c = env.cmd(credd_bin());
    c.args(args);
    run_within(c, Duration::from_secs(5)).unwrap_or_else(|| panic!("`credd {args:?}` hung for 5 s"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// How the daemon is started: global flags before `serve`, and the log
/// filter variables (none: the default level).
struct Verbosity {
    flags: &'static [&'static str],
    vars: &'static [(&'static str, &'static str)],
}

const VERBOSITIES: &[Verbosity] = &[
    Verbosity {
        flags: &[],
        vars: &[],
    },
    Verbosity {
        flags: &["-v"],
        vars: &[],
    },
    Verbosity {
        flags: &["-vv"],
        vars: &[],
    },
    Verbosity {
        flags: &[],
        vars: &[("RUST_LOG", "trace")],
    },
    Verbosity {
        flags: &[],
        vars: &[("CREDD_LOG", "trace,aws_runtime=trace,aws_config=trace")],
    },
];

/// Starts `credd [FLAGS] serve` with only the given log variables (the
/// harness' own `CREDD_LOG` is left out), failing if it is not ready in 10 s.
fn start(env: &Env, v: &Verbosity, unset: &[&str]) -> Daemon {
    let log = env.path(&format!(
        "serve-{}.log",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let logf = std::fs::File::create(&log).unwrap();
    let mut c = env.cmd(credd_bin());
    for u in unset {
        c.env_remove(u);
    }
    c.args(v.flags)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .envs(v.vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf);
    let child = c.spawn().unwrap();
    Daemon::when_ready(child, log, Duration::from_secs(10), || {
        let mut s = env.cmd(credd_bin());
        s.args(["status", "--json"]);
        run_within(s, Duration::from_secs(3))
    })
}

/// SIGTERM, which must stop the daemon within 8 s.
fn stop_quickly(mut d: Daemon) {
    let _ = Command::new("kill").arg(d.pid().to_string()).status();
    let t0 = Instant::now();
    while d.child_alive() {
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "credd ignored SIGTERM for 8 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn token(env: &Env, profile: &str) -> String {
    let o = credd_quick(env, &["token", "issue", "--profile", profile]);
    assert!(o.status.success(), "{}", text(&o));
    stdout_of(&o)
}

fn fetch(d: &Daemon, profile: &str, token: &str) -> (u16, String) {
    let addr = d.addr();
    get(
        addr,
        &format!("/v1/credentials/{profile}"),
        Some(&addr.to_string()),
        Some(token),
    )
}

/// Every way a log line could render the secret: as text, as the decimal
/// byte array of a `Vec<u8>`'s Debug (with and without spaces), and hex.
fn renderings(secret: &str) -> Vec<String> {
    let dec: Vec<String> = secret.bytes().map(|b| b.to_string()).collect();
    vec![
        secret.to_string(),
        dec.join(", "),
        dec.join(","),
        hex::encode(secret),
        secret.bytes().map(|b| format!("\\x{b:02x}")).collect(),
    ]
}

fn assert_no_secret(log: &str, what: &str) {
    for r in renderings(LONG_TERM_SECRET) {
        assert!(
            !log.contains(&r),
            "{what}: the long-term secret reached the log as {r:.40}…"
        );
    }
}

/// The canary long-term keys (`support::LONG_TERM_SECRET`) as file lines.
fn keys() -> String {
    format!("aws_access_key_id = {LONG_TERM_ID}\naws_secret_access_key = {LONG_TERM_SECRET}\n")
}

const ROLES: &str = "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\n\
source_profile = base\nregion = eu-west-1\n";

/// The AWS files for one case: the keys in `keys_in` ("config" or
/// "credentials"), with a Latin-1 `é` either in a comment or in a value.
fn files_with_latin1(keys_in: &str, in_comment: bool) -> (Vec<u8>, Vec<u8>) {
    let bad: &[u8] = if in_comment {
        b"# Zq9Latin\xe9 (saved by an old editor)\n"
    } else {
        b"region = Zq9Latin\xe9\n"
    };
    let mut section = b"[profile base]\n".to_vec();
    let mut creds = b"[base]\n".to_vec();
    let target = if keys_in == "config" {
        &mut section
    } else {
        &mut creds
    };
    target.extend_from_slice(bad);
    target.extend_from_slice(keys().as_bytes());
    let mut config = ROLES.as_bytes().to_vec();
    config.extend_from_slice(&section);
    config.extend_from_slice(b"region = us-east-1\n");
    (config, creds)
}

#[test]
fn a_non_utf8_byte_never_puts_the_keys_in_the_log_at_any_verbosity() {
    // Row 21. The SDK's warning for such a file printed it whole, as a
    // decimal byte array, at the default level.
    let moto = Moto::start();
    for keys_in in ["config", "credentials"] {
        for in_comment in [true, false] {
            for v in VERBOSITIES {
                let case = format!(
                    "byte in a {} of {keys_in}, flags {:?}, vars {:?}",
                    if in_comment { "comment" } else { "value" },
                    v.flags,
                    v.vars
                );
                let env = Env::with_moto("", Moto::external(moto.url.clone()));
                let (config, creds) = files_with_latin1(keys_in, in_comment);
                std::fs::write(env.home().join(".aws/config"), config).unwrap();
                std::fs::write(env.home().join(".aws/credentials"), creds).unwrap();
                let d = start(&env, v, &["CREDD_LOG"]);
                // Drive every path that reads the files (start, reload,
                // a cold fetch through STS) before looking at the log.
                let status = text(&credd_quick(&env, &["status"]));
                let profiles = text(&credd_quick(&env, &["profiles"]));
                let t = token(&env, "*");
                let (fetched, body) = fetch(&d, "dev", &t);
                let log_path = d.log.clone();
                stop_quickly(d);
                let log = std::fs::read_to_string(&log_path).unwrap();
                assert!(log.contains("credd ready"), "{case}: {log}");
                assert_no_secret(&log, &case);
                assert!(
                    !log.contains("Zq9Latin"),
                    "{case}: the file's text reached the log: {log}"
                );
                for out in [&status, &profiles] {
                    assert_no_secret(out, &case);
                }
                let line = if keys_in == "config" { 6 } else { 2 };
                let column = if in_comment { 11 } else { 18 };
                let place = format!("{keys_in}, line {line}, column {column}");
                if in_comment {
                    // Tolerated: a comment means nothing; said in both views.
                    assert_eq!(fetched, 200, "{case}: {body}");
                    for out in [&status, &profiles] {
                        assert!(out.contains(&place), "{case}: {out}");
                        assert!(out.contains("not UTF-8"), "{case}: {out}");
                    }
                } else {
                    // Refused, by file, line and column, never quoting it.
                    assert_ne!(fetched, 200, "{case}");
                    for out in [&status, &profiles] {
                        assert!(out.contains(&place), "{case}: {out}");
                        assert!(
                            !out.contains("Zq9Latin"),
                            "{case}: the line was quoted: {out}"
                        );
                    }
                }
            }
        }
    }
}

fn config_with_endpoints(dev_endpoint: &str, moto: &str) -> String {
    format!(
        "[profile base]\n{}region = us-east-1\nendpoint_url = {moto}\n\n\
[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n\
endpoint_url = {dev_endpoint}\n\n\
[profile cold]\nrole_arn = arn:aws:iam::123456789012:role/cold\nsource_profile = base\n\
endpoint_url = {moto}\n\n\
[dropped]\nregion = eu-west-1\n",
        keys()
    )
}

fn profile_state(env: &Env, name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&stdout_of(&credd_quick(env, &["status", "--json"]))).unwrap();
    v["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| p["state"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

#[test]
fn a_broken_config_keeps_serving_and_renewing_the_last_good_profiles() {
    let moto = Moto::start();
    let env = Env::with_moto("", Moto::external(moto.url.clone()));
    std::fs::write(
        env.path("credd.toml"),
        "[refresh]\nbackoff_base = \"1s\"\nbackoff_cap = \"2s\"\n",
    )
    .unwrap();
    let config = env.home().join(".aws/config");
    // dev first points at a closed port: its fetch fails and a retry is
    // scheduled by the refresher, with no request behind it.
    std::fs::write(
        &config,
        config_with_endpoints("http://127.0.0.1:9", &moto.url),
    )
    .unwrap();
    let d = start(
        &env,
        &Verbosity {
            flags: &["-v"],
            vars: &[],
        },
        &["CREDD_LOG", "AWS_ENDPOINT_URL_STS"],
    );
    // A section the SDK drops for its name is shown, not only logged.
    let listed = text(&credd_quick(&env, &["profiles"]));
    assert!(listed.contains("[dropped]"), "{listed}");
    let status = text(&credd_quick(&env, &["status"]));
    assert!(status.contains("[dropped]"), "{status}");

    let t = token(&env, "*");
    let (s, body) = fetch(&d, "dev", &t);
    assert_eq!(s, 503, "{body}");
    // The fix lands, then an editor's half-saved file follows it.
    let good = config_with_endpoints(&moto.url, &moto.url);
    std::fs::write(&config, &good).unwrap();
    credd_quick(&env, &["status"]);
    std::fs::write(&config, format!("{good}\n[profile half-saved\nregion")).unwrap();
    let status = text(&credd_quick(&env, &["status"]));
    assert!(status.contains("config, line"), "{status}");
    let listed = text(&credd_quick(&env, &["profiles"]));
    assert!(
        listed.contains("config, line") && listed.contains("serving the profiles"),
        "`credd profiles` says the file is broken and what is served: {listed}"
    );
    // The scheduled retry renews dev with the last good file.
    let t0 = Instant::now();
    while profile_state(&env, "dev") != "fresh" {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "dev was not renewed while the config was broken: {}\n{}",
            text(&credd_quick(&env, &["status"])),
            d.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(moto.count("AssumeRole") >= 1);
    // A profile never fetched before is fetched now.
    let (s, body) = fetch(&d, "cold", &t);
    assert_eq!(s, 200, "{body}");
    let o = credd_quick(&env, &["whoami", "cold"]);
    assert!(o.status.success(), "{}", text(&o));
    stop_quickly(d);
}

fn mkfifo(p: &Path) {
    let _ = std::fs::remove_file(p);
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

#[test]
fn a_fifo_or_device_where_a_file_should_be_hangs_nothing() {
    // Row 23.
    let quiet = Verbosity {
        flags: &["-v"],
        vars: &[],
    };
    let env = Env::new();
    let config = env.home().join(".aws/config");
    let credentials = env.home().join(".aws/credentials");

    // A FIFO at ~/.aws/config from the start: the daemon starts and says so.
    mkfifo(&config);
    let d = start(&env, &quiet, &["CREDD_LOG"]);
    let status = text(&credd_quick(&env, &["status"]));
    assert!(
        status.contains(&config.display().to_string()) && status.contains("FIFO"),
        "{status}"
    );
    let t = token(&env, "*");
    // Replaced by a real file: the automatic reload (no command) picks it up.
    std::fs::remove_file(&config).unwrap();
    std::fs::write(&config, CONFIG).unwrap();
    let t0 = Instant::now();
    loop {
        let (s, _) = fetch(&d, "dev", &t);
        if s == 200 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the automatic reload died: {}",
            d.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // A FIFO swapped in later: cold requests and commands still answer.
    mkfifo(&credentials);
    let (s, body) = fetch(&d, "chained", &t);
    assert_eq!(s, 200, "{body}");
    let status = text(&credd_quick(&env, &["profiles"]));
    assert!(
        status.contains(&credentials.display().to_string()) && status.contains("FIFO"),
        "{status}"
    );
    // A config symlinked to /dev/zero is refused, not read to the end.
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    let status = text(&credd_quick(&env, &["status"]));
    assert!(status.contains("character device"), "{status}");
    let rss_kb: u64 = std::fs::read_to_string(format!("/proc/{}/status", d.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kb < 200_000, "the daemon grew to {rss_kb} kB");
    stop_quickly(d);

    // A FIFO at STATE_DIR/tokens.json: the daemon starts, token commands
    // answer with what is wrong, and the FIFO is left where it is.
    std::fs::remove_file(&config).unwrap();
    std::fs::write(&config, CONFIG).unwrap();
    std::fs::remove_file(&credentials).unwrap();
    let tokens = env.path("state/tokens.json");
    std::fs::create_dir_all(tokens.parent().unwrap()).unwrap();
    std::fs::set_permissions(
        tokens.parent().unwrap(),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    mkfifo(&tokens);
    let d = start(&env, &quiet, &["CREDD_LOG"]);
    let o = credd_quick(&env, &["token", "issue", "--profile", "dev"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("FIFO"), "{}", text(&o));
    assert!(std::fs::symlink_metadata(&tokens)
        .unwrap()
        .file_type()
        .is_fifo_like());
    stop_quickly(d);
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}
impl FifoLike for std::fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

fn token_id(token: &str) -> String {
    token["credd_".len().."credd_".len() + 16].to_string()
}

fn listed_ids(env: &Env) -> Vec<String> {
    let o = credd_quick(env, &["token", "list", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn concurrent_issues_and_revocations_all_survive_a_restart() {
    let env = Env::new();
    let quiet = Verbosity {
        flags: &[],
        vars: &[],
    };
    for round in 0..3 {
        let d = start(&env, &quiet, &["CREDD_LOG"]);
        let old: Vec<String> = (0..30).map(|_| token_id(&token(&env, "dev"))).collect();
        let (revoked, issued) = std::thread::scope(|s| {
            let revokers: Vec<_> = old
                .iter()
                .map(|id| {
                    let env = &env;
                    s.spawn(move || {
                        let o = credd_quick(env, &["token", "revoke", id]);
                        assert!(o.status.success(), "{}", text(&o));
                        id.clone()
                    })
                })
                .collect();
            let issuers: Vec<_> = (0..30)
                .map(|_| {
                    let env = &env;
                    s.spawn(move || token_id(&token(env, "dev")))
                })
                .collect();
            (
                revokers
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .collect::<Vec<_>>(),
                issuers
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .collect::<Vec<_>>(),
            )
        });
        stop_quickly(d);
        let d = start(&env, &quiet, &["CREDD_LOG"]);
        let live = listed_ids(&env);
        for id in &revoked {
            assert!(
                !live.contains(id),
                "round {round}: token {id}, revoked with \"ok\", is back after a restart"
            );
        }
        for id in &issued {
            assert!(
                live.contains(id),
                "round {round}: token {id}, issued with \"ok\", is gone after a restart"
            );
        }
        for id in &issued {
            credd_quick(&env, &["token", "revoke", id]);
        }
        stop_quickly(d);
    }
}

#[test]
fn a_tokens_json_refused_for_its_mode_is_left_alone() {
    let env = Env::new();
    let quiet = Verbosity {
        flags: &[],
        vars: &[],
    };
    let d = start(&env, &quiet, &["CREDD_LOG"]);
    let kept = token(&env, "dev");
    let path = env.path("state/tokens.json");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::read(&path).unwrap();

    let o = credd_quick(&env, &["token", "issue", "--profile", "dev"]);
    assert!(!o.status.success(), "a token was issued: {}", text(&o));
    assert!(text(&o).contains("chmod 600"), "{}", text(&o));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "tokens.json rewritten"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // Tokens issued before keep working.
    let (s, body) = fetch(&d, "dev", &kept);
    assert_eq!(s, 200, "{body}");
    stop_quickly(d);

    // After a restart too: the file is not read, and not replaced.
    let d = start(&env, &quiet, &["CREDD_LOG"]);
    let o = credd_quick(&env, &["token", "issue", "--profile", "dev"]);
    assert!(!o.status.success(), "a token was issued: {}", text(&o));
    assert!(text(&o).contains("chmod 600"), "{}", text(&o));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "tokens.json rewritten"
    );
    // Once fixed as told, the tokens in it are back and new ones are stored.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let newer = token(&env, "dev");
    let live = listed_ids(&env);
    assert!(live.contains(&token_id(&kept)), "{live:?}");
    assert!(live.contains(&token_id(&newer)), "{live:?}");
    stop_quickly(d);
}
