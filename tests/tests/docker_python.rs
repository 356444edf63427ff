//! Python SDKs inside real containers on a real engine (`support::dockerd`,
//! `support::debian`): a Debian image with the current boto3 and AWS CLI,
//! and botocore 1.31.85, the last before `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`.
//! Each SDK is unmodified and takes everything from the variables and files
//! `credd docker run` / `credd docker args` give the container; STS is moto,
//! reached from the container through the bridge; every test asserts the
//! assumed role's ARN that STS returns. Needs root, `docker.io`,
//! `debootstrap` and PyPI the first time (the image is cached under
//! `target/`); without them the tests fail saying so.

mod support;

use support::debian::{import_debian_image, PY_IMAGE};
use support::images::moto_count;
use support::world::{assert_arn, World, DEV_ARN};
use support::*;

const WHOAMI: &str = "/usr/local/lib/credd/whoami.py";

/// What docs/docker.md tells users of an SDK that reads only
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN`: set it inside the container, from
/// the mounted file, for the one process (never in docker's argv, the
/// container's config or `docker inspect`).
fn token_from_file(cmd: &str) -> String {
    format!(
        "AWS_CONTAINER_AUTHORIZATION_TOKEN=$(cat \"$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE\") exec {cmd}"
    )
}

#[test]
fn boto3_and_the_aws_cli_in_a_debian_container_get_the_roles_arn_every_documented_way() {
    let w = World::new(&[]);
    import_debian_image(&w.dk, PY_IMAGE, None);
    let sts = w.sts_env();
    w.dk.docker_ok(&["network", "create", "credd-py-net"]);
    for (net, name) in [
        (&[][..], "default bridge"),
        (&["--network", "credd-py-net"][..], "user-defined network"),
        (&["--network", "host"][..], "host network"),
    ] {
        let mut args = vec!["--rm", "-e", &sts];
        args.extend_from_slice(net);
        args.push(PY_IMAGE);
        let mut boto3 = args.clone();
        boto3.extend_from_slice(&["python3-sdk", WHOAMI]);
        let mut cli = args.clone();
        cli.extend_from_slice(&[
            "aws",
            "sts",
            "get-caller-identity",
            "--query",
            "Arn",
            "--output",
            "text",
        ]);
        assert_arn(
            &w.credd_run("dev", &boto3),
            DEV_ARN,
            &format!("boto3, credd docker run, {name}"),
        );
        assert_arn(
            &w.args_run("dev", &cli),
            DEV_ARN,
            &format!("AWS CLI, docker run $(credd docker args), {name}"),
        );
        assert_arn(
            &w.credd_run("dev", &cli),
            DEV_ARN,
            &format!("AWS CLI, credd docker run, {name}"),
        );
    }
    // The SDKs' versions are the pinned ones (the image is what the docs say).
    let o = w.dk.docker_ok(&[
        "run",
        "--rm",
        PY_IMAGE,
        "python3-sdk",
        "-c",
        "import boto3,botocore;print(boto3.__version__,botocore.__version__)",
    ]);
    assert_eq!(o.trim(), "1.44.5 1.44.5");
    // Nine containers, one AssumeRole: each SDK fetched through credd.
    assert_eq!(moto_count(&w.dk, &w.env, "AssumeRole"), 1);
    assert_eq!(moto_count(&w.dk, &w.env, "GetCallerIdentity"), 9);

    // A plain `docker run` with the endpoint and no token: boto3 gets the
    // 401, whose body says how a container gets a token, and nothing else.
    let o = w.dk.docker(&[
        "run",
        "--rm",
        "-e",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.2/v1/credentials/dev",
        "-e",
        "AWS_DEFAULT_REGION=eu-west-1",
        "-e",
        &sts,
        PY_IMAGE,
        "python3-sdk",
        WHOAMI,
    ]);
    assert!(!o.status.success(), "no token: {}", stdout_of(&o));
    assert!(!stdout_of(&o).contains("arn:"), "{}", stdout_of(&o));
    let said = stderr_of(&o);
    assert!(
        said.contains("401") && said.contains("credd docker run"),
        "no token: {said}"
    );
    assert_eq!(moto_count(&w.dk, &w.env, "GetCallerIdentity"), 9);

    // Through the DNAT, the container listener keeps its Host allow-list:
    // the bare address passes, any other name is refused.
    let probe = "import urllib.request as u\n\
        for h in ['evil.test', '169.254.170.2']:\n\
        \x20   r = u.Request('http://169.254.170.2/v1/health', headers={'Host': h})\n\
        \x20   try:\n\
        \x20       print(u.urlopen(r, timeout=5).status)\n\
        \x20   except u.HTTPError as e:\n\
        \x20       print(e.code)\n";
    let o =
        w.dk.docker_ok(&["run", "--rm", PY_IMAGE, "python3", "-c", probe]);
    assert_eq!(o.split_whitespace().collect::<Vec<_>>(), ["403", "200"]);
}

#[test]
fn a_botocore_from_before_the_token_file_variable_works_with_the_documented_wrapper() {
    let w = World::new(&[]);
    import_debian_image(&w.dk, PY_IMAGE, None);
    let sts = w.sts_env();
    let old = format!("python3-botocore-1.31 {WHOAMI}");
    // It is the old one: 1.31.85 and no trace of the file variable.
    let o = w.dk.docker_ok(&[
        "run",
        "--rm",
        PY_IMAGE,
        "python3-botocore-1.31",
        "-c",
        "import botocore, inspect, botocore.credentials as c;\
         print(botocore.__version__, 'AUTHORIZATION_TOKEN_FILE' in inspect.getsource(c))",
    ]);
    assert_eq!(o.trim(), "1.31.85 False");

    // As `credd docker run` starts it: the token is in the mounted file
    // only, which this botocore does not read. It asks credd without one,
    // gets a 401 and no credentials.
    let o = w.credd_run("dev", &["--rm", "-e", &sts, PY_IMAGE, "sh", "-c", &old]);
    assert!(!o.status.success(), "{}", stdout_of(&o));
    assert!(!stdout_of(&o).contains("arn:"), "{}", stdout_of(&o));
    assert!(
        stderr_of(&o).contains("CredentialRetrievalError")
            || stderr_of(&o).contains("NoCredentialsError"),
        "{}",
        stderr_of(&o)
    );
    assert_eq!(moto_count(&w.dk, &w.env, "GetCallerIdentity"), 0);

    // With the documented wrapper, both ways: the role's ARN.
    let wrapped = token_from_file(&old);
    let o = w.credd_run("dev", &["--rm", "-e", &sts, PY_IMAGE, "sh", "-c", &wrapped]);
    assert_arn(&o, DEV_ARN, "botocore 1.31.85, credd docker run, wrapper");
    let o = w.args_run("dev", &["--rm", "-e", &sts, PY_IMAGE, "sh", "-c", &wrapped]);
    assert_arn(&o, DEV_ARN, "botocore 1.31.85, docker args, wrapper");

    // The token stays out of what `docker inspect` shows: a detached
    // container running the wrapper, inspected while it runs.
    let o = w.credd_run(
        "dev",
        &[
            "-d",
            "--name",
            "old",
            "-e",
            &sts,
            PY_IMAGE,
            "sh",
            "-c",
            &token_from_file(&format!("sh -c '{old} && sleep 60'")),
        ],
    );
    assert!(o.status.success(), "{}", stderr_of(&o));
    let inspect = w.dk.docker_ok(&["inspect", "old"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let mount = v[0]["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/run/secrets/credd-token")
        .unwrap_or_else(|| panic!("no token mount: {inspect}"));
    let secret = std::fs::read_to_string(mount["Source"].as_str().unwrap()).unwrap();
    let secret = secret.trim();
    assert!(secret.starts_with("credd_"), "the token file: {secret:?}");
    assert!(!inspect.contains(secret), "docker inspect shows the token");
    // ... while the process inside has it, and got the ARN with it.
    let start = std::time::Instant::now();
    loop {
        let logs = w.dk.docker(&["logs", "old"]);
        if stdout_of(&logs) == DEV_ARN {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "detached old botocore: {}{}",
            stdout_of(&logs),
            stderr_of(&logs)
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}
