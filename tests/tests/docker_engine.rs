//! Containers on a real Docker engine (`support::dockerd`: Debian's
//! `dockerd` in a network namespace of its own, which is "the host" here),
//! with the real `credd` binary: `credd docker setup` keeps credd's nat
//! rules ahead of docker's, so a container publishing port 80 never
//! receives a request (and its token) meant for credd at 169.254.170.2,
//! whether the request comes from the host, a `--network host` container or
//! a bridged one (the engine runs with `--userland-proxy=false`, where
//! docker's DNAT catches bridged containers too). `credd doctor` sees the
//! shadowing; the boot unit that re-runs setup after docker starts
//! verifies. Needs root, `docker.io` and `busybox-static` (.ci/run
//! installs them); without them the tests fail saying so.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use support::dockerd::{Dockerd, IMAGE};
use support::*;

const ADDR: &str = "169.254.170.2";

/// What the container publishing port 80 has received so far.
fn received(log: &Path) -> String {
    std::fs::read_to_string(log.join("got")).unwrap_or_default()
}

/// A GET of PROFILE's credentials from the engine's host with a token, as
/// an SDK sends it (Host: the bare address, `Authorization: <token>`);
/// short timeout: a shadowing container answers nothing.
fn host_fetch(dk: &Dockerd, env: &Env, token_file: &Path) -> Output {
    let script = format!(
        "import urllib.request,sys\n\
         t=open({tf:?}).read().strip()\n\
         r=urllib.request.Request('http://{ADDR}/v1/credentials/dev',headers={{'Authorization':t}})\n\
         try:\n  print(urllib.request.urlopen(r,timeout=3).read().decode())\n\
         except Exception as e:\n  print('no answer:',e,file=sys.stderr); sys.exit(1)\n",
        tf = token_file.display().to_string()
    );
    dk.host_cmd(env, python())
        .args(["-c", &script])
        .output()
        .unwrap()
}

/// `credd docker run dev [NET...] IMAGE`: the container fetches its
/// credentials the way an SDK does, from the variables credd set
/// (busybox wget stands in for the SDK: no registry here to pull one from).
fn container_fetch(dk: &Dockerd, env: &Env, net: &[&str]) -> Output {
    let mut args = vec!["docker", "run", "dev", "--rm"];
    args.extend_from_slice(net);
    args.extend_from_slice(&[
        IMAGE,
        "sh",
        "-c",
        "timeout 5 wget -O - --header \"Authorization: $(cat $AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)\" \"$AWS_CONTAINER_CREDENTIALS_FULL_URI\"",
    ]);
    env.cmd(credd_bin())
        .args(&args)
        .env("DOCKER_HOST", format!("unix://{}", dk.socket().display()))
        .output()
        .unwrap()
}

fn doctor(dk: &Dockerd, env: &Env) -> Output {
    dk.host_cmd(env, credd_bin())
        .arg("doctor")
        .output()
        .unwrap()
}

fn setup(dk: &Dockerd, env: &Env, args: &[&str]) -> String {
    let o = dk
        .host_cmd(env, credd_bin())
        .args(["docker", "setup"])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "setup {args:?}: {}", stderr_of(&o));
    stdout_of(&o)
}

/// A request from the host while credd is shadowed: credd must not answer,
/// and what the publishing container received is returned. Tried a few
/// times: between two connections its `nc` loop is briefly not listening.
fn leak(dk: &Dockerd, env: &Env, token: &Path, log: &Path) -> String {
    for _ in 0..5 {
        let o = host_fetch(dk, env, token);
        assert!(
            !o.status.success(),
            "credd answered while shadowed: {}",
            stdout_of(&o)
        );
        if received(log).contains("Authorization") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    received(log)
}

/// The same from containers, bridged and host-network: every caller's
/// token reaches the publishing container while credd is shadowed.
fn leak_from_containers(dk: &Dockerd, env: &Env, log: &Path) {
    for net in [&[][..], &["--network", "host"][..]] {
        std::fs::write(log.join("got"), "").unwrap();
        for _ in 0..5 {
            let o = container_fetch(dk, env, net);
            assert!(
                !stdout_of(&o).contains("AccessKeyId"),
                "credd answered container {net:?} while shadowed"
            );
            if received(log).contains("Authorization") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        assert!(
            received(log).contains("Authorization: credd_"),
            "container {net:?}: the publishing container should have received the token: {:?}",
            received(log)
        );
    }
    std::fs::write(log.join("got"), "").unwrap();
}

/// All three callers get credd's answer; the publishing container nothing.
fn assert_credd_answers_everyone(dk: &Dockerd, env: &Env, token: &Path, log: &Path, when: &str) {
    let o = host_fetch(dk, env, token);
    assert!(
        o.status.success() && stdout_of(&o).contains("AccessKeyId"),
        "{when}: from the host: {}{}\nthe container publishing port 80 received: {:?}",
        stdout_of(&o),
        stderr_of(&o),
        received(log)
    );
    // An unmodified SDK on the host, through to STS (moto) with them.
    let o = dk
        .host_cmd(env, python())
        .arg(clients().join("whoami.py"))
        .env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("http://{ADDR}/v1/credentials/dev"),
        )
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(
        o.status.success() && stdout_of(&o).contains("assumed-role/dev/credd-dev"),
        "{when}: boto3 on the host: {}",
        stderr_of(&o)
    );
    for net in [&["--network", "host"][..], &[][..]] {
        let o = container_fetch(dk, env, net);
        assert!(
            o.status.success() && stdout_of(&o).contains("AccessKeyId"),
            "{when}: container {net:?}: {:?} {}{}",
            o.status,
            stdout_of(&o),
            stderr_of(&o)
        );
    }
    assert_eq!(
        received(log),
        "",
        "{when}: the container publishing port 80 received a request meant for credd"
    );
}

#[test]
fn a_container_publishing_port_80_never_receives_a_request_meant_for_credd() {
    let mut dk = Dockerd::start(&["--userland-proxy=false"]);
    let env = Env::with_moto(CONFIG, dk.moto());
    // 1. setup before the publishing container starts (and before credd
    // listens: its address comes from setup).
    setup(&dk, &env, &[]);
    let _d = dk.serve(&env);
    let token = env.path("host-token");
    env.credd_ok(&[
        "token",
        "issue",
        "--profile",
        "dev",
        "--file",
        token.to_str().unwrap(),
    ]);
    let log = env.path("publisher");
    std::fs::create_dir_all(&log).unwrap();
    dk.docker_ok(&[
        "run",
        "-d",
        "--name",
        "publisher",
        "--restart",
        "always",
        "-p",
        "80:80",
        "-v",
        &format!("{}:/log", log.display()),
        IMAGE,
        "sh",
        "-c",
        "while true; do nc -l -p 80 >> /log/got; done",
    ]);
    let nat = dk.nat();
    assert!(
        nat.contains("--dport 80 -j DNAT --to-destination 172.17."),
        "docker publishes port 80: {nat}"
    );
    assert_credd_answers_everyone(&dk, &env, &token, &log, "setup, then the container");
    let o = doctor(&dk, &env);
    assert!(
        o.status.success() && stdout_of(&o).contains("all checks passed"),
        "{}",
        stdout_of(&o)
    );

    // A container without a token (plain `docker run`) gets nothing, and
    // is told how a container gets one.
    let o = dk.docker(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        // stdin stays open a while: busybox nc may stop at its EOF before
        // the answer arrives.
        "{ printf 'GET /v1/credentials/dev HTTP/1.0\\r\\nHost: 169.254.170.2\\r\\n\\r\\n'; sleep 2; } | timeout 10 nc 169.254.170.2 80",
    ]);
    let said = stdout_of(&o);
    assert!(
        said.starts_with("HTTP/1.0 401") || said.starts_with("HTTP/1.1 401"),
        "{said}{}",
        stderr_of(&o)
    );
    assert!(
        said.contains("credd docker run PROFILE") && !said.contains("AccessKeyId"),
        "{said}"
    );

    // 2. The layout of older versions (DNAT appended after docker's jump,
    // 169.254.170.23 added): the leak is real, doctor sees it, setup
    // replaces it.
    setup(&dk, &env, &["--undo"]);
    for hook in ["PREROUTING", "OUTPUT"] {
        let o = dk
            .host_cmd(&env, "iptables")
            .args([
                "-t",
                "nat",
                "-A",
                hook,
                "-d",
                "169.254.170.2/32",
                "-p",
                "tcp",
            ])
            .args([
                "--dport",
                "80",
                "-j",
                "DNAT",
                "--to-destination",
                "169.254.170.2:9913",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr_of(&o));
    }
    for a in ["169.254.170.2/32", "169.254.170.23/32"] {
        dk.host_cmd(&env, "ip")
            .args(["addr", "add", a, "dev", "lo"])
            .output()
            .unwrap();
    }
    let leaked = leak(&dk, &env, &token, &log);
    assert!(
        leaked.contains("Authorization: credd_"),
        "with the old rules the publishing container receives the token: {leaked:?}"
    );
    // With --userland-proxy=false, bridged containers leak too.
    leak_from_containers(&dk, &env, &log);
    std::fs::write(log.join("got"), "").unwrap();
    // (Again when the probe hit the gap in the publisher's nc loop.)
    let mut o = doctor(&dk, &env);
    for _ in 0..5 {
        if received(&log).contains("GET /v1/health") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        o = doctor(&dk, &env);
    }
    let said = stdout_of(&o);
    assert!(!o.status.success(), "{said}");
    // doctor's probe reached the container too, and carried no token.
    let probe = received(&log);
    assert!(
        probe.contains("GET /v1/health") && !probe.contains("Authorization"),
        "{probe:?}"
    );
    std::fs::write(log.join("got"), "").unwrap();
    assert!(
        said.contains("FAIL  nat PREROUTING: no jump to CREDD")
            && said.contains("older credd's DNAT rule")
            && said.contains("FAIL  http://169.254.170.2/ (port 80) from this host"),
        "{said}"
    );
    let s = setup(&dk, &env, &[]);
    assert!(
        s.contains("removed: an older credd's DNAT rule in PREROUTING")
            && s.contains("note:    169.254.170.23/32 is on lo; credd no longer uses it"),
        "{s}"
    );
    assert_credd_answers_everyone(&dk, &env, &token, &log, "setup over the old rules");

    // 3. dockerd restarts (the publisher comes back: --restart always).
    dk.restart();
    let nat = dk.nat();
    assert!(
        nat.contains("--to-destination 172.17."),
        "publisher back: {nat}"
    );
    let first = |hook: &str| {
        nat.lines()
            .find(|l| l.starts_with(&format!("-A {hook} ")))
            .unwrap_or_default()
            .to_string()
    };
    if first("PREROUTING") != "-A PREROUTING -j CREDD" {
        // This engine put its rules on top: doctor says so until setup
        // (the boot unit) runs again.
        assert!(!doctor(&dk, &env).status.success());
        std::fs::write(log.join("got"), "").unwrap();
    }
    // What credd-docker-setup.service does after docker starts.
    let s = setup(&dk, &env, &[]);
    assert!(
        s.contains("present: nat chain CREDD"),
        "the rules survive: {s}"
    );
    assert_credd_answers_everyone(&dk, &env, &token, &log, "after a dockerd restart");

    // 4. Docker's jump (or any other) put above credd's, as engines that
    // re-insert their jumps on start and firewall reloads do: doctor
    // reports the shadowing, setup repairs the order.
    for (hook, rule) in [
        ("PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER"),
        (
            "OUTPUT",
            "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER",
        ),
    ] {
        let o = dk
            .host_cmd(&env, "iptables")
            .args(["-t", "nat", "-I", hook, "1"])
            .args(rule.split_whitespace())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr_of(&o));
    }
    let leaked = leak(&dk, &env, &token, &log);
    assert!(
        leaked.contains("Authorization: credd_"),
        "shadowed again: {leaked:?}"
    );
    std::fs::write(log.join("got"), "").unwrap();
    // Without root doctor cannot read the nat table, says so, and still
    // sees the shadowing from the host through port 80.
    let o = dk
        .host_cmd(&env, "setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(credd_bin())
        .arg("doctor")
        .output()
        .unwrap();
    let said = stdout_of(&o);
    assert!(
        !o.status.success()
            && said.contains("skip  nat PREROUTING/OUTPUT order: reading iptables needs root")
            && said.contains("FAIL  http://169.254.170.2/ (port 80) from this host"),
        "{said}{}",
        stderr_of(&o)
    );
    let o = doctor(&dk, &env);
    std::fs::write(log.join("got"), "").unwrap();
    let said = stdout_of(&o);
    assert!(
        !o.status.success()
            && said.contains(
                "FAIL  nat PREROUTING: `-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER` comes before credd's jump"
            )
            && said.contains("sudo credd docker setup"),
        "{said}"
    );
    let s = setup(&dk, &env, &[]);
    assert!(
        s.contains("done:    jump to CREDD first in nat PREROUTING"),
        "{s}"
    );
    assert!(s.contains("removed: a later copy"), "{s}");
    let nat = dk.nat();
    assert_eq!(
        first_rule(&nat, "PREROUTING"),
        "-A PREROUTING -j CREDD",
        "{nat}"
    );
    assert_eq!(first_rule(&nat, "OUTPUT"), "-A OUTPUT -j CREDD", "{nat}");
    assert_eq!(nat.matches("-j CREDD").count(), 2, "one jump each: {nat}");
    assert_credd_answers_everyone(&dk, &env, &token, &log, "after setup repaired the order");
    assert!(doctor(&dk, &env).status.success());

    // 5. --undo takes credd's part away and leaves docker's.
    setup(&dk, &env, &["--undo"]);
    let nat = dk.nat();
    assert!(!nat.contains("CREDD") && !nat.contains("9913"), "{nat}");
    assert!(nat.contains("-j DOCKER"), "docker's rules stay: {nat}");
    let o = dk
        .host_cmd(&env, "ip")
        .args(["-o", "addr", "show", "dev", "lo"])
        .output()
        .unwrap();
    assert!(!stdout_of(&o).contains("169.254.170."), "{}", stdout_of(&o));
}

fn first_rule(nat: &str, hook: &str) -> String {
    nat.lines()
        .find(|l| l.starts_with(&format!("-A {hook} ")))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_docker_setup_unit_reruns_setup_after_every_docker_start() {
    let unit = std::fs::read_to_string(repo().join("systemd/credd-docker-setup.service")).unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for want in [
        "Type=oneshot",
        "RemainAfterExit=yes",
        "PartOf=docker.service",
        "WantedBy=docker.service multi-user.target",
        "ExecStart=/usr/local/bin/credd docker setup",
    ] {
        assert!(lines.contains(&want), "{want} missing:\n{unit}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("After=") && l.split(['=', ' ']).any(|w| w == "docker.service")),
        "After=docker.service missing"
    );
    // systemd-analyze verify (system manager), ExecStart= at the built credd.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credd-docker-setup.service");
    std::fs::write(
        &file,
        unit.replace(
            "ExecStart=/usr/local/bin/credd",
            &format!("ExecStart={}", credd_bin().display()),
        ),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze: {e}: install systemd (.ci/run does)"));
    let said = stderr_of(&o);
    assert!(o.status.success(), "systemd-analyze verify failed:\n{said}");
    assert!(
        !said.contains("credd-docker-setup"),
        "systemd-analyze verify warns about the unit:\n{said}"
    );
}

#[test]
fn detach_is_read_from_dockers_own_options_on_a_real_engine() {
    let dk = Dockerd::start(&[]);
    let env = Env::with_moto(CONFIG, dk.moto());
    setup(&dk, &env, &[]);
    let _d = dk.serve(&env);
    let tokens = || -> usize {
        let v: serde_json::Value =
            serde_json::from_str(&env.credd_ok(&["token", "list", "--json"])).unwrap();
        v.as_array().unwrap().len()
    };
    let run = |args: &[&str]| {
        let o = env
            .cmd(credd_bin())
            .args(["docker", "run", "dev"])
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", dk.socket().display()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr_of(&o));
        o
    };
    // `-d` in the container's own command: a foreground run, revoked on return.
    let o = run(&["--rm", IMAGE, "ls", "-d", "/"]);
    assert_eq!(stdout_of(&o).trim(), "/");
    assert_eq!(tokens(), 0, "the foreground container's token is revoked");
    // `--detach=true`: the container outlives `docker run`, so does its token,
    // and it gets credentials after `credd docker run` returned. (`echo`:
    // docker logs a line only once it ends.)
    run(&[
        "--detach=true",
        "--name",
        "det",
        IMAGE,
        "sh",
        "-c",
        "sleep 2; timeout 10 wget -O - --header \"Authorization: $(cat $AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)\" \"$AWS_CONTAINER_CREDENTIALS_FULL_URI\"; echo; sleep 60",
    ]);
    assert_eq!(tokens(), 1, "the detached container's token lives");
    let start = std::time::Instant::now();
    loop {
        let logs = dk.docker(&["logs", "det"]);
        if stdout_of(&logs).contains("AccessKeyId") {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "the detached container got no credentials: {}{}",
            stdout_of(&logs),
            stderr_of(&logs)
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}
