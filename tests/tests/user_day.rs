//! The user's day (issue 14, `docs/user-day.md`), against the real upstream
//! code and the sandbox: the daemon's own `run` in this process on a
//! `ManualClock`, `credd-aws`'s `AwsUpstream` (the one `credd serve` uses)
//! pointed at an in-process `credd-sandbox` (STS and Identity Center) whose
//! clock moves in step, and consumers that are real HTTP clients on the
//! daemon's loopback container endpoint, each holding one URI and one token
//! for the whole day.
//!
//! The day: 09:00 to 21:00 in 5-minute steps; an Identity Center session of
//! 8 hours with refresh tokens (the sandbox ends it 8 h after the sign-in)
//! and three profiles on it; an MFA session of 12 hours (GetSessionToken)
//! and three role profiles on it; a "container" and an "IDE" fetching all
//! six every step. The simulated user acts only on what credd tells them
//! through the daemon's notifier seam: a sign-in when told the session ended
//! or when its last warning comes before the end of their day, an MFA code
//! when told one is needed (or, likewise, at the last warning when the
//! session would end before the day does).
//!
//! Not on the injected clock: the sandbox's clock is the real clock plus an
//! offset, so it runs ahead of the daemon's by the test's own running time
//! (seconds); the AWS SDK signs requests with the real time, which the
//! sandbox does not check.
//!
//! Run it with `cargo test -p credd-e2e --test user_day -- --nocapture` to
//! see the table.

mod support;

use credd_aws::sso::{PollOutcome, SsoClient};
use credd_aws::sso_cache::FileTokenStore;
use credd_aws::{AwsProfileLoader, ProfileEnv};
use credd_core::sso::{RegistrationRequest, SignIn, SsoSession, SsoToken, TokenStore};
use credd_daemon::clock::{Clock, ManualClock};
use credd_daemon::control::{self, Request};
use credd_daemon::protocol::{StatusReply, TokenIssued};
use credd_daemon::{Listeners, Notifier, Services, SignInStore};
use credd_sandbox::{Sandbox, SandboxConfig, DEMO_ACCESS_KEY_ID};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};
use tokio_util::sync::CancellationToken;

const START_URL: &str = "https://d-1234567890.awsapps.com/start";
const SERIAL: &str = "arn:aws:iam::111122223333:mfa/day-user";
const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const SSO_PROFILES: [&str; 3] = ["sso-dev", "sso-admin", "sso-ro"];
const MFA_PROFILES: [&str; 3] = ["mfa-a", "mfa-b", "mfa-c"];

fn config_text() -> String {
    let mut t = format!(
        "[sso-session work]\nsso_start_url = {START_URL}\nsso_region = us-east-1\n\
sso_registration_scopes = sso:account:access\n\n\
[profile sso-dev]\nsso_session = work\nsso_account_id = 111122223333\n\
sso_role_name = PowerUserAccess\nregion = us-east-1\n\n\
[profile sso-admin]\nrole_arn = arn:aws:iam::444455556666:role/Admin\nsource_profile = sso-dev\nregion = us-east-1\n\n\
[profile sso-ro]\nrole_arn = arn:aws:iam::444455556666:role/ReadOnly\nsource_profile = sso-dev\nregion = us-east-1\n\n"
    );
    for (p, role) in MFA_PROFILES.iter().zip(["A", "B", "C"]) {
        t.push_str(&format!(
            "[profile {p}]\nrole_arn = arn:aws:iam::111122223333:role/{role}\nsource_profile = keys\n\
mfa_serial = {SERIAL}\nregion = us-east-1\n\n"
        ));
    }
    t
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// What credd told the user (the daemon's notifier seam, as a desktop
/// notification would show it).
#[derive(Debug, Default)]
struct Told(Mutex<Vec<(String, String)>>);

impl Notifier for Told {
    fn notify(&self, title: &str, body: &str) {
        self.0
            .lock()
            .unwrap()
            .push((title.to_string(), body.to_string()));
    }
}

/// A consumer: one URI and one token, held all day (a container's
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI` and its token). Needing a new one is
/// a container restart.
struct Consumer {
    name: &'static str,
    uri: String,
    token: String,
    restarts: u32,
}

struct Day {
    sandbox: credd_sandbox::SandboxHandle,
    clock: Arc<ManualClock>,
    socket: PathBuf,
    state_dir: PathBuf,
    store: FileTokenStore,
    client: SsoClient,
    session: SsoSession,
    told: Arc<Told>,
}

impl Day {
    /// Moves both clocks by `d`, then lets the daemon work (its refreshes go
    /// over real loopback HTTP to the sandbox).
    async fn advance(&self, d: Duration) {
        self.sandbox.advance_clock(d.unsigned_abs());
        self.clock.advance(d);
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    }

    /// `credd login work --device-code`, as the CLI does it, at the day's
    /// time: register, device authorization (the sandbox approves it), the
    /// token into the shared cache, the sign-in time into credd's state,
    /// then the reload that tells the daemon.
    async fn sign_in(&self) {
        let reg = self
            .client
            .register_client(
                &self.session,
                &RegistrationRequest::device_code(&self.session),
            )
            .await
            .unwrap();
        self.store.save_registration(&self.session, &reg).unwrap();
        let auth = self
            .client
            .start_device_authorization(&self.session, &reg)
            .await
            .unwrap();
        let grant = loop {
            match self
                .client
                .poll_device_token(&self.session, &reg, &auth)
                .await
                .unwrap()
            {
                PollOutcome::Granted(g) => break g,
                _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        };
        let now = self.clock.now();
        let token = SsoToken::from_grant(&self.session, grant, Some(&reg), now);
        self.store.save_token(&self.session, &token).unwrap();
        SignInStore::new(&self.state_dir)
            .record(
                self.session.cache_key(),
                SignIn {
                    at: now,
                    token_expires: Some(token.expires_at),
                },
            )
            .unwrap();
        control::call(&self.socket, &Request::Reload).await.unwrap();
    }

    /// `credd mfa mfa-a CODE`, with the code the user's phone shows.
    async fn type_mfa_code(&self) {
        let code =
            credd_sandbox::totp_code(TOTP_SECRET, self.sandbox.now().unix_timestamp() as u64)
                .unwrap();
        control::call(
            &self.socket,
            &Request::Mfa {
                profile: "mfa-a".into(),
                code,
            },
        )
        .await
        .unwrap();
    }

    async fn new_token(&self, label: &str) -> String {
        let issued: TokenIssued = control::call_as(
            &self.socket,
            &Request::TokenIssue {
                profiles: SSO_PROFILES
                    .iter()
                    .chain(MFA_PROFILES.iter())
                    .map(|p| p.to_string())
                    .collect(),
                ttl_secs: Some(24 * 3600),
                label: label.into(),
                docker_engine: None,
            },
        )
        .await
        .unwrap();
        issued.token
    }

    async fn status(&self) -> StatusReply {
        control::call_as(&self.socket, &Request::Status)
            .await
            .unwrap()
    }
}

/// One fetch by a consumer over real HTTP: the status.
async fn fetch(addr: SocketAddr, uri: &str, token: &str, profile: &str) -> (u16, String) {
    let path = format!(
        "{}/{profile}",
        uri.trim_start_matches(&format!("http://{addr}"))
    );
    let token = token.to_string();
    // The Host an SDK sends for this URI.
    tokio::task::spawn_blocking(move || {
        support::get(addr, &path, Some(&addr.to_string()), Some(&token))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_day_against_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();

    // The sandbox: an 8 h Identity Center session with refresh tokens,
    // 1 h access tokens and role credentials, the user's MFA device.
    let mut sandbox_config = SandboxConfig::default().with_totp(SERIAL, TOTP_SECRET);
    sandbox_config.session_lifetime = std::time::Duration::from_secs(8 * 3600);
    sandbox_config.access_token_lifetime = std::time::Duration::from_secs(3600);
    sandbox_config.role_credentials_lifetime = std::time::Duration::from_secs(3600);
    sandbox_config.auto_approve_device = true;
    sandbox_config.enforce_slow_down = false;
    let sandbox = Sandbox::start(sandbox_config).await.unwrap();
    let url = sandbox.url();
    let vars: Vec<(&str, &str)> = vec![
        ("AWS_ENDPOINT_URL_SSO", url.as_str()),
        ("AWS_ENDPOINT_URL_SSO_OIDC", url.as_str()),
        ("AWS_ENDPOINT_URL_STS", url.as_str()),
    ];

    let aws = home.join(".aws");
    write_private(&aws.join("config"), &config_text());
    write_private(
        &aws.join("credentials"),
        &format!(
            "[keys]\naws_access_key_id = {DEMO_ACCESS_KEY_ID}\naws_secret_access_key = sandbox-only-not-a-real-secret\n"
        ),
    );
    let profile_env = ProfileEnv {
        home: Some(home.clone()),
        config_file: Some(aws.join("config")),
        credentials_file: Some(aws.join("credentials")),
    };

    // The daemon's clock starts where the sandbox's is: 09:00 of the day.
    // (In whole seconds, as the sign-in record keeps them.)
    let clock = Arc::new(ManualClock::new(
        sandbox.now().replace_nanosecond(0).unwrap(),
    ));
    let start: OffsetDateTime = clock.now();
    let told = Arc::new(Told::default());
    let state_dir = home.join("state");
    let config = credd_daemon::config::DaemonConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        extra_listen: vec![],
        imds: None,
        policy: Default::default(),
        limits: Default::default(),
        default_token_ttl: std::time::Duration::from_secs(12 * 3600),
        runtime_dir: home.join("run"),
        state_dir: state_dir.clone(),
        docker: None,
        warnings: Default::default(),
        sso_session_length: credd_core::sso::DEFAULT_SESSION_LENGTH,
        mfa_prompt: Default::default(),
    };
    let store = FileTokenStore::new(FileTokenStore::default_dir(&home));
    let services = Services {
        upstream: Arc::new(credd_aws::sts::AwsUpstream::with_vars(
            profile_env.clone(),
            &vars,
        )),
        profiles: Arc::new(AwsProfileLoader::new(profile_env.clone())),
        clock: clock.clone(),
        sso_store: Arc::new(FileTokenStore::new(FileTokenStore::default_dir(&home))),
        notifier: told.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let daemon = tokio::spawn(credd_daemon::run(
        config,
        services,
        Listeners {
            container: listener,
            extra: vec![],
            imds: None,
            control: None,
        },
        shutdown.clone(),
        move |r| {
            let _ = ready_tx.send(r.control_socket.clone());
        },
    ));
    let socket = ready_rx.await.unwrap();
    let day = Day {
        sandbox,
        clock: clock.clone(),
        socket,
        state_dir,
        store,
        client: SsoClient::with_vars(&vars),
        session: SsoSession {
            name: Some("work".into()),
            start_url: START_URL.into(),
            region: "us-east-1".into(),
            scopes: Some(vec!["sso:account:access".into()]),
            session_length: None,
        },
        told: told.clone(),
    };

    // 09:00: the user signs in and types one code, as the README says.
    let (mut sign_ins, mut codes) = (vec![start], vec![start]);
    day.sign_in().await;
    day.type_mfa_code().await;
    let base = format!("http://{addr}{}", credd_daemon::CREDENTIALS_PATH);
    let mut consumers = vec![];
    for name in ["container", "IDE"] {
        consumers.push(Consumer {
            name,
            uri: base.clone(),
            token: day.new_token(name).await,
            restarts: 0,
        });
    }

    // The status right after: the SSO session's end is an estimate.
    let status = day.status().await;
    let sso_row = status.sessions.iter().find(|s| s.kind == "sso").unwrap();
    assert!(sso_row.ends_estimated, "{sso_row:?}");
    assert_eq!(
        sso_row.ends_in_secs,
        Some(8 * 3600),
        "sign-in + 8 h: {sso_row:?}"
    );

    let end_of_day = start + Duration::hours(12);
    let mut sso_started = start;
    let mfa_started = start;
    let (mut fetches, mut failed, mut failed_while_valid) = (0u32, 0u32, 0u32);
    let mut failures: Vec<String> = vec![];
    let mut handled = 0;
    let (mut sso_warnings, mut mfa_warnings) = (vec![], vec![]);
    while clock.now() < end_of_day {
        let now = clock.now();
        // Identity Center's own end (the sandbox's) and the MFA session's.
        let sso_valid = now < sso_started + Duration::hours(8);
        let mfa_valid = now < mfa_started + Duration::hours(12);
        for c in consumers.iter_mut() {
            for p in SSO_PROFILES.iter().chain(MFA_PROFILES.iter()) {
                fetches += 1;
                let (status, body) = fetch(addr, &c.uri, &c.token, p).await;
                if status == 200 && body.contains("AccessKeyId") {
                    continue;
                }
                failed += 1;
                let valid = if p.starts_with("sso") {
                    sso_valid
                } else {
                    mfa_valid
                };
                if valid {
                    failed_while_valid += 1;
                }
                failures.push(format!("{} {} {p}: {status}", hhmm(start, now), c.name));
                // A token or URI that stopped working: the container has to
                // be restarted with a new one.
                if status == 401 || status == 403 || status == 0 {
                    c.restarts += 1;
                    c.token = day.new_token(c.name).await;
                }
            }
        }
        // The user reads what credd told them and does what it names.
        let sent = day.told.0.lock().unwrap().clone();
        for (title, body) in &sent[handled..] {
            let at = hhmm(start, now);
            if title.contains("IAM Identity Center session ends in") {
                sso_warnings.push(format!("{at} ({})", title.rsplit("in ").next().unwrap()));
                assert!(body.contains("`credd login work`"), "{body}");
                // The last warning, and the session would end before the
                // day does: sign in again now.
                if title.ends_with(" 5 min") && sso_started + Duration::hours(8) < end_of_day {
                    day.sign_in().await;
                    sign_ins.push(now);
                    sso_started = now;
                }
            } else if title.contains("MFA session ends in") {
                mfa_warnings.push(format!("{at} ({})", title.rsplit("in ").next().unwrap()));
                assert!(body.contains("`credd mfa mfa-a`"), "{body}");
                if title.ends_with(" 5 min") && mfa_started + Duration::hours(12) < end_of_day {
                    day.type_mfa_code().await;
                    codes.push(now);
                }
            } else if body.contains("run `credd login work`") {
                day.sign_in().await;
                sign_ins.push(now);
                sso_started = now;
            } else if body.contains("credd mfa") {
                day.type_mfa_code().await;
                codes.push(now);
            }
        }
        handled = sent.len();
        day.advance(Duration::minutes(5)).await;
    }

    let restarts: u32 = consumers.iter().map(|c| c.restarts).sum();
    let at = |v: &[OffsetDateTime]| {
        v.iter()
            .map(|t| hhmm(start, *t))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("\nThe user's day against the sandbox (09:00 to 21:00, 5-minute steps)\n");
    println!("| | credd (measured) |\n|---|---|");
    println!("| fetches (2 consumers x 6 profiles x 144 steps) | {fetches} |");
    println!("| failed fetches while a valid session existed | {failed_while_valid} |");
    println!("| failed fetches at all | {failed} |");
    println!("| container restarts (a new token or URI needed) | {restarts} |");
    println!("| sign-ins | {} ({}) |", sign_ins.len(), at(&sign_ins));
    println!("| MFA codes typed | {} ({}) |", codes.len(), at(&codes));
    println!(
        "| warnings before the Identity Center session's end | {} ({}) |",
        sso_warnings.len(),
        sso_warnings.join(", ")
    );
    println!(
        "| warnings before the MFA session's end | {} ({}) |",
        mfa_warnings.len(),
        mfa_warnings.join(", ")
    );
    println!(
        "| sandbox calls | GetRoleCredentials {}, CreateToken {}, AssumeRole {}, GetSessionToken {} |",
        day.sandbox.count("GetRoleCredentials"),
        day.sandbox.count("CreateToken"),
        day.sandbox.count("AssumeRole"),
        day.sandbox.count("GetSessionToken"),
    );
    if !failures.is_empty() {
        println!(
            "\nfirst failures: {:?}",
            &failures[..failures.len().min(12)]
        );
    }
    println!("notifications: {:?}", day.told.0.lock().unwrap());

    assert_eq!(fetches, 2 * 6 * 144);
    let first = &failures[..failures.len().min(12)];
    assert_eq!(failed_while_valid, 0, "{first:?}");
    assert_eq!(failed, 0, "{first:?}");
    assert_eq!(restarts, 0);
    assert_eq!(codes.len(), 1, "one MFA code for the day");
    // The 8 h session ends at 17:00: warned at 16:00, 16:45 and 16:55, and
    // the user signs in again at the last warning, before anything fails.
    assert_eq!(
        sso_warnings,
        ["16:00 (1 h)", "16:45 (15 min)", "16:55 (5 min)"]
    );
    assert_eq!(at(&sign_ins), "09:00, 16:55");
    assert_eq!(
        mfa_warnings,
        ["20:00 (1 h)", "20:45 (15 min)", "20:55 (5 min)"]
    );
    // The sandbox did the work: every refresh went through the real upstream.
    assert!(day.sandbox.count("GetRoleCredentials") >= 8);
    assert!(day.sandbox.count("GetSessionToken") >= 1);

    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}

/// The time of day of `t`, the day starting at 09:00 at `start`.
fn hhmm(start: OffsetDateTime, t: OffsetDateTime) -> String {
    let mins = 9 * 60 + (t - start).whole_minutes();
    format!("{:02}:{:02}", mins / 60, mins % 60)
}
