//! One user's view of a machine with a docker engine, for the real-engine
//! tests of the Go and Python SDKs, compose and refreshes (`docker_sdks`,
//! `docker_python`, `docker_compose`, `docker_refresh`): a private engine
//! ([`super::dockerd`]), moto reachable from its containers
//! ([`super::images::moto_for_containers_with`]), and the ways a user
//! starts a container with credd: `credd docker run PROFILE ...` and
//! `docker run $(credd docker args PROFILE) ...` (through a shell, as
//! typed), both against that engine (`DOCKER_HOST`).

use super::dockerd::Dockerd;
use super::images::moto_for_containers_with;
use super::{credd_bin, stderr_of, stdout_of, Daemon, Env, CONFIG};
use std::path::Path;
use std::process::Output;

/// The ARN STS returns for `dev`'s role (`CONFIG`), which every test asserts.
pub const DEV_ARN: &str = "arn:aws:sts::123456789012:assumed-role/dev/credd-dev";

pub struct World {
    pub dk: Dockerd,
    pub env: Env,
    pub daemon: Option<Daemon>,
    /// The STS endpoint as containers reach it (moto, through the bridge).
    pub sts: String,
}

impl World {
    /// An engine with `credd docker setup` run and `credd serve` listening
    /// where its DNAT sends containers; `moto_vars` go to moto.
    pub fn new(moto_vars: &[(&str, &str)]) -> World {
        let w = World::bare(moto_vars);
        w.setup();
        World {
            daemon: Some(w.dk.serve(&w.env)),
            ..w
        }
    }

    /// An engine and moto, no setup and no daemon yet.
    pub fn bare(moto_vars: &[(&str, &str)]) -> World {
        let dk = Dockerd::start(&[]);
        let (moto, sts) = moto_for_containers_with(&dk, moto_vars);
        let env = Env::with_moto(CONFIG, moto);
        World {
            dk,
            env,
            daemon: None,
            sts,
        }
    }

    /// `credd docker setup` on the engine's host (what the boot unit runs).
    pub fn setup(&self) {
        let o = self
            .dk
            .host_cmd(&self.env, credd_bin())
            .args(["docker", "setup"])
            .output()
            .unwrap();
        assert!(o.status.success(), "credd docker setup: {}", stderr_of(&o));
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.dk.socket().display())
    }

    /// `credd docker run PROFILE ARGS...`, as a user types it.
    pub fn credd_run(&self, profile: &str, args: &[&str]) -> Output {
        self.env
            .cmd(credd_bin())
            .args(["docker", "run", profile])
            .args(args)
            .env("DOCKER_HOST", self.docker_host())
            .output()
            .unwrap()
    }

    /// `docker run $(credd docker args PROFILE) ARGS...`, through a shell.
    pub fn args_run(&self, profile: &str, args: &[&str]) -> Output {
        let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        self.env
            .cmd("sh")
            .arg("-c")
            .arg(format!(
                "docker run $(credd docker args {profile}) {}",
                quoted.join(" ")
            ))
            .env("DOCKER_HOST", self.docker_host())
            .env("PATH", path_with_credd())
            .output()
            .unwrap()
    }

    /// `-e AWS_ENDPOINT_URL_STS=...`'s value: the one variable the tests
    /// add to what credd gives a container (moto instead of AWS).
    pub fn sts_env(&self) -> String {
        format!("AWS_ENDPOINT_URL_STS={}", self.sts)
    }

    /// A command run in `dir` with this user's environment, `credd` on
    /// PATH and docker pointed at the engine (`docker-compose`, `credd
    /// token issue`).
    pub fn user_cmd(&self, dir: &Path, program: &str) -> std::process::Command {
        let mut c = self.env.cmd(program);
        c.current_dir(dir)
            .env("DOCKER_HOST", self.docker_host())
            .env("PATH", path_with_credd());
        c
    }
}

/// PATH with the built `credd` first, as after `cargo install`.
pub fn path_with_credd() -> String {
    format!(
        "{}:{}",
        credd_bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

pub fn shell_quote(a: &str) -> String {
    format!("'{}'", a.replace('\'', "'\\''"))
}

/// Asserts a client printed exactly `want` (an ARN) and succeeded.
pub fn assert_arn(o: &Output, want: &str, what: &str) {
    assert!(
        o.status.success() && stdout_of(o) == want,
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout_of(o),
        stderr_of(o)
    );
}
