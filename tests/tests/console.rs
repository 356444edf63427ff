//! `credd console` end to end: the real binary against the credd sandbox's
//! STS and federation endpoint (`AWS_ENDPOINT_URL_SIGNIN`). A role profile
//! goes to `getSigninToken` with the daemon's credentials; an IAM user's
//! bare keys go through `GetFederationToken` first; the printed URL, opened
//! by a stand-in browser, signs in once and redirects to the console page
//! asked for; without `--print` the browser (a fake `BROWSER` that records
//! its argv) gets a private page's path, never the sign-in token.

mod support;

use credd_sandbox::{Sandbox, SandboxConfig, SandboxHandle, DEMO_ACCESS_KEY_ID};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use support::*;

struct Console {
    env: Env,
    sandbox: SandboxHandle,
    _rt: tokio::runtime::Runtime,
}

const SECRET: &str = "canaryCONSOLEsecretwJalrXUtnFEMIK7MDENG";

fn console() -> Console {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sandbox = rt
        .block_on(Sandbox::start(SandboxConfig::default()))
        .unwrap();
    let url = sandbox.url();
    let config = format!(
        "[profile user]\n\
aws_access_key_id = {DEMO_ACCESS_KEY_ID}\n\
aws_secret_access_key = {SECRET}\n\
region = us-east-1\n\n\
[profile admin]\n\
role_arn = arn:aws:iam::111122223333:role/Admin\n\
source_profile = user\n\
region = eu-west-1\n"
    );
    let mut env = Env::with_moto(&config, Moto::external(url.clone()));
    env.vars = vec![
        ("AWS_ENDPOINT_URL_SIGNIN".into(), url),
        ("USER".into(), "jane".into()),
    ];
    Console {
        env,
        sandbox,
        _rt: rt,
    }
}

/// A GET of `url` (the sandbox, plain http) as a browser would send it:
/// the status and the `Location` header.
fn browse(url: &str) -> (u16, Option<String>) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let location = out
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or(l.strip_prefix("Location: "))
        })
        .map(str::to_string);
    (status, location)
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

#[test]
fn a_role_profile_signs_in_with_the_daemons_credentials() {
    let c = console();
    let d = c.env.serve(&[]);
    let o = c.env.credd(&["-vv", "console", "admin", "--print"]);
    let (url, err) = (stdout_of(&o), stderr_of(&o));
    assert!(o.status.success(), "{url}{err}");
    let url = url.trim();
    assert!(
        url.starts_with(&format!(
            "{}/federation?Action=login&Issuer=credd&",
            c.sandbox.url()
        )),
        "{url}"
    );
    assert_eq!(
        query_param(url, "Destination").as_deref(),
        Some(
            "https%3A%2F%2Feu-west-1.console.aws.amazon.com%2Fconsole%2Fhome%3Fregion%3Deu-west-1"
        ),
        "the profile's region's console home"
    );
    assert_eq!(c.sandbox.count("GetSigninToken"), 1);
    assert_eq!(
        c.sandbox.count("GetFederationToken"),
        0,
        "role credentials go to the federation endpoint as they are"
    );
    assert_eq!(
        c.sandbox.count("AssumeRole"),
        1,
        "the daemon's role credentials"
    );

    // The token and the credentials are in no log, even at trace level.
    let token = query_param(url, "SigninToken").unwrap();
    assert!(token.len() > 16, "{token}");
    assert!(
        !err.contains(&token),
        "the sign-in token reached the CLI's log"
    );
    assert!(
        !err.contains("SigninToken"),
        "the URL reached the CLI's log"
    );
    assert!(
        !err.contains("sessionKey"),
        "the Session parameter reached the CLI's log"
    );
    assert!(!d.logs().contains(&token));

    // The stand-in browser: the sandbox's login redirects to the console,
    // once.
    let (status, location) = browse(url);
    assert_eq!(status, 302);
    assert_eq!(
        location.as_deref(),
        Some("https://eu-west-1.console.aws.amazon.com/console/home?region=eu-west-1")
    );
    assert_eq!(c.sandbox.count("FederationLogin"), 1);
    assert_eq!(browse(url).0, 400, "a sign-in token works once");
}

#[test]
fn bare_long_term_keys_go_through_get_federation_token() {
    let c = console();
    let _d = c.env.serve(&[]);
    let o = c.env.credd(&[
        "console",
        "user",
        "--print",
        "--service",
        "s3",
        "--region",
        "ap-south-1",
        "--duration",
        "2h",
    ]);
    let (url, err) = (stdout_of(&o), stderr_of(&o));
    assert!(o.status.success(), "{url}{err}");
    assert_eq!(c.sandbox.count("GetFederationToken"), 1);
    assert_eq!(
        c.sandbox.count("GetSessionToken"),
        0,
        "the daemon's GetSessionToken credentials would be refused"
    );
    assert_eq!(c.sandbox.count("GetSigninToken"), 1);
    let (status, location) = browse(url.trim());
    assert_eq!(status, 302);
    assert_eq!(
        location.as_deref(),
        Some("https://ap-south-1.console.aws.amazon.com/s3/home?region=ap-south-1")
    );
    assert!(!err.contains(SECRET));
}

#[test]
fn the_browser_gets_a_private_page_not_the_url() {
    let c = console();
    let _d = c.env.serve(&[]);
    // A browser that records its argv and what it was given to open, and
    // the page's mode, as a real one would read it.
    let record = c.env.path("browser");
    std::fs::create_dir_all(&record).unwrap();
    let script = record.join("fake-browser");
    let r = record.display();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
printf '%s\\n' \"$@\" > '{r}/argv'\n\
page=\"${{1#file://}}\"\n\
cp \"$page\" '{r}/page'\n\
stat -c %a \"$page\" > '{r}/mode'\n\
stat -c %a \"$(dirname \"$page\")\" > '{r}/dirmode'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = c
        .env
        .cmd(credd_bin())
        .args(["console", "admin"])
        .env("BROWSER", &script)
        .output()
        .unwrap();
    let (out, err) = (stdout_of(&o), stderr_of(&o));
    assert!(o.status.success(), "{out}{err}");
    assert!(
        !out.contains("SigninToken") && !err.contains("SigninToken"),
        "{out}{err}"
    );
    let argv = std::fs::read_to_string(record.join("argv")).unwrap();
    assert!(argv.starts_with("file:///"), "{argv}");
    assert!(
        !argv.contains("SigninToken"),
        "the URL is on the browser's argv: {argv}"
    );
    assert_eq!(
        std::fs::read_to_string(record.join("mode")).unwrap().trim(),
        "600"
    );
    assert_eq!(
        std::fs::read_to_string(record.join("dirmode"))
            .unwrap()
            .trim(),
        "700"
    );
    // The page redirects to the sign-in URL, which works.
    let page = std::fs::read_to_string(record.join("page")).unwrap();
    let start = page.find("location.replace(\"").unwrap() + "location.replace(\"".len();
    let url = &page[start..start + page[start..].find('"').unwrap()];
    assert!(url.contains("SigninToken="), "{page}");
    assert_eq!(browse(url).0, 302);
    // And it is gone once credd has returned.
    let path = argv.trim().trim_start_matches("file://");
    assert!(
        !std::path::Path::new(path).exists(),
        "{path} was left behind"
    );
}

#[test]
fn a_refused_sign_in_says_so_without_the_credentials() {
    let c = console();
    let _d = c.env.serve(&[]);
    // An endpoint that is not there.
    let o = c
        .env
        .cmd(credd_bin())
        .args(["console", "admin", "--print"])
        .env("AWS_ENDPOINT_URL_SIGNIN", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr_of(&o);
    assert!(err.contains("federation endpoint at 127.0.0.1:9"), "{err}");
    assert!(
        !err.contains("sessionKey") && !err.contains(SECRET),
        "{err}"
    );
    assert!(stdout_of(&o).is_empty());
}
