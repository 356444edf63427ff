//! The `credd` binary: parses flags, sets up logging, binds listeners and
//! hands over to credd-daemon; the client commands talk to the daemon over
//! its control socket. Errors are printed with their context chain and a
//! meaningful exit code.

// The layering, checked by `the_command_files_import_no_other_command`
// below: `main` dispatches to `commands::*`; a command file imports leaves
// only; a leaf imports other leaves only. Leaves: `cli` (flags), `exit`
// (the exit-code table), `clock`, `environment`, `signals`, `output`,
// `activation`, `docker_nat`, `keystore`;
// then `client` (the control client), `ask` (asking the user, on `client`), `child_env`, `login_flow` and
// `signin_flow` (which uses `login_flow`'s redirect), `hints` (on `client`
// and `ask`), which import the leaves before them.
mod activation;
mod ask;
mod child_env;
mod cli;
mod client;
mod clock;
mod commands;
mod docker_nat;
mod environment;
mod exit;
mod hints;
mod keystore;
mod login_flow;
mod output;
mod signals;
mod signin_flow;

/// jemalloc on Linux, with the settings in `.cargo/config.toml`: in
/// `credd serve` ([`purge_freed_memory`]) it gives freed pages back to the
/// system within a second, where glibc kept what the start-up read of
/// 10,000 profiles freed (docs/benchmarks.md, "Fourth pass: idle RSS").
/// Other systems keep their own allocator.
#[cfg(target_os = "linux")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// For the daemon only: one jemalloc thread that returns freed pages after
/// the decay set at build time (1 s), sleeping while there is none (without
/// it, decay only advances on allocator calls, which an idle daemon does not
/// make). Not for the short-lived commands: started at every process start
/// (the build-time setting), the thread cost each `credd credential-process`
/// call 1.5 ms of CPU (`perf stat`, docs/benchmarks.md "Fourth pass").
pub(crate) fn purge_freed_memory() {
    #[cfg(target_os = "linux")]
    {
        let on = tikv_jemalloc_ctl::max_background_threads::write(1)
            .and_then(|()| tikv_jemalloc_ctl::background_thread::write(true));
        if let Err(e) = on {
            tracing::debug!(error = %e, "jemalloc's purging thread did not start; freed memory is kept until reused");
        }
    }
}

use clap::Parser;
use cli::Command;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        // What `Cli::parse` does, with the code from the table: help and
        // version on stdout with 0, a usage error on stderr with 2.
        Err(e) => {
            let _ = e.print();
            if e.kind() == clap::error::ErrorKind::UnknownArgument {
                // Lossy: a hint must not panic on an argument that is not UTF-8.
                let args: Vec<String> = std::env::args_os()
                    .skip(1)
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                if let Some(hint) = hints::exec_dashes(&args) {
                    eprintln!("\nhint: {hint}");
                }
            }
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    init_tracing(
        cli.verbose,
        matches!(
            cli.command,
            cli::Command::Serve(_) | cli::Command::Relay { .. } | cli::Command::Demo(_)
        ),
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("credd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        match run(cli.command).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("credd: {e:#}");
                if let Some(hint) = hints::did_you_mean(&e).await {
                    eprintln!("credd: {hint}");
                }
                exit::of_error(&e)
            }
        }
    })
}

/// Runs one command. Commands that only succeed or fail give 0 or an error
/// (mapped to an exit code in `main`); `exec`, `docker run`, `service` and
/// `doctor` pick their own code.
async fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    use commands::*;
    let ok = |r: anyhow::Result<()>| r.map(|_| ExitCode::SUCCESS);
    match cmd {
        Command::Serve(a) => ok(serve::run(a).await),
        Command::Service(s) => service::run(s).await,
        Command::Exec(a) => exec::run(a).await,
        Command::Env(a) => ok(env::run(a).await),
        Command::CredentialProcess(a) => ok(credential_process::run(a).await),
        Command::WriteCredentials(a) => ok(write_credentials::run(a).await),
        Command::Mfa(a) => ok(mfa::run(a).await),
        // A SAML profile's login is its helper's run (`login_saml`); every
        // other is IAM Identity Center's (`login`).
        Command::Login(a) => match login_saml::spec_of(a.profile.as_deref()).await {
            Some(spec) => ok(login_saml::login(spec).await),
            None => ok(login::login(a).await),
        },
        Command::Logout { session } => ok(login::logout(session).await),
        Command::Sso(c) => ok(login::sso(c).await),
        Command::Demo(a) => demo::run(a).await,
        Command::Status(j) => ok(status::status(j).await),
        Command::Profiles(p) => ok(status::profiles(p).await),
        Command::Whoami(a) => ok(whoami::run(a).await),
        Command::Console(a) => ok(console::run(a).await),
        Command::DecodeMessage(a) => ok(decode_message::run(a).await),
        Command::Token(t) => ok(token::run(t).await),
        Command::Audit(a) => ok(audit::run(a)),
        Command::Relay { listen, to } => ok(relay::run(&listen, &to).await),
        Command::Docker(d) => match d {
            cli::DockerCommand::Setup { undo, print } => ok(docker_setup::setup(undo, print)),
            cli::DockerCommand::Args { profile, token_ttl } => {
                ok(docker::args(&profile, &token_ttl).await)
            }
            cli::DockerCommand::Run {
                profile,
                token_ttl,
                docker_args,
            } => docker::run(&profile, &token_ttl, &docker_args).await,
            cli::DockerCommand::Ps { json } => ok(docker::ps(json).await),
        },
        Command::Doctor => doctor::run(),
        Command::Keys(k) => ok(keys::run(k).await),
        Command::Prompt(a) => {
            prompt::run(a).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => ok(completions::completions(shell)),
        Command::Man { dir } => ok(completions::man(dir.as_deref())),
    }
}

/// Targets whose events may carry what they read from `~/.aws/config` or
/// `~/.aws/credentials`: the SDK's profile-file code warns with a file it
/// cannot decode (as a byte array, keys included) and traces the values it
/// looks up. credd-aws never lets them run with a subscriber while parsing,
/// and this drops them for good measure, whatever `-v` or `RUST_LOG` ask
/// (threat-model row 21).
const FILE_READING_TARGETS: &[&str] = &["aws_runtime::env_config", "aws_config::profile"];

fn from_aws_files(target: &str) -> bool {
    FILE_READING_TARGETS.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

fn init_tracing(verbose: u8, daemon: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let default = match (verbose, daemon) {
        (0, true) => "info",
        (0, false) => "warn",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("CREDD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    // A filter of its own rather than a directive appended to the user's:
    // no directive the user writes can turn these targets back on.
    let never = tracing_subscriber::filter::filter_fn(|m| !from_aws_files(m.target()));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour only for a person at a terminal; journald and log files get plain text.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false)
                .with_filter(never),
        )
        .with(filter)
        .init();
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The module a source file belongs to, as the layering sees it: a
    /// top-level file is a leaf (`client`), a file under `commands/` is its
    /// command (`commands::service` for `commands/service/plan.rs`).
    fn module_of(rel: &Path) -> String {
        let parts: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        match parts.as_slice() {
            [c, name, ..] if c == "commands" && name != "mod" => format!("commands::{name}"),
            [c, ..] if c == "commands" => "commands".into(),
            [one] => one.clone(),
            _ => parts.join("::"),
        }
    }

    /// Every `crate::a` and `crate::commands::b` a file names.
    fn uses_of(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let word = |s: &str| -> String {
                s.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            };
            let first = word(rest);
            let name = if first == "commands" {
                let sub = word(rest.strip_prefix("commands::").unwrap_or(""));
                if sub.is_empty() {
                    first
                } else {
                    format!("commands::{sub}")
                }
            } else {
                first
            };
            if modules.contains(&name) {
                out.insert(name);
            }
        }
        out
    }

    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        let mut dirs = vec![src.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
        let modules: BTreeSet<String> = files
            .iter()
            .map(|f| module_of(f.strip_prefix(&src).unwrap()))
            .collect();
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in &files {
            let m = module_of(f.strip_prefix(&src).unwrap());
            let text = std::fs::read_to_string(f).unwrap();
            let uses = uses_of(&text, &modules);
            g.entry(m.clone())
                .or_default()
                .extend(uses.into_iter().filter(|u| *u != m));
        }
        g
    }

    #[test]
    fn the_command_files_import_no_other_command() {
        let g = graph();
        assert!(g.len() > 20, "the source tree was not read: {g:?}");
        for (m, uses) in &g {
            if m == "main" {
                continue;
            }
            let commands: Vec<_> = uses.iter().filter(|u| u.starts_with("commands")).collect();
            assert!(
                commands.is_empty(),
                "{m} imports the command file(s) {commands:?}: only main.rs dispatches to commands"
            );
        }
    }

    /// The modules left in a cycle (empty: the imports form a DAG), by
    /// Kahn's algorithm: peel off modules that import nothing left.
    fn cycle(mut g: BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
        loop {
            let free: Vec<String> = g
                .iter()
                .filter(|(_, uses)| uses.iter().all(|u| !g.contains_key(u)))
                .map(|(m, _)| m.clone())
                .collect();
            if free.is_empty() {
                return g.into_keys().collect();
            }
            for m in free {
                g.remove(&m);
            }
        }
    }

    #[test]
    fn the_modules_import_each_other_without_a_cycle() {
        assert_eq!(cycle(graph()), Vec::<String>::new());
    }

    #[test]
    fn the_checks_see_a_cycle_and_a_command_import() {
        let text = "use crate::client::call;\nuse crate::commands::exec::run;\n";
        let modules: BTreeSet<String> = ["client", "commands::exec", "output"]
            .map(String::from)
            .into();
        assert_eq!(
            uses_of(text, &modules),
            ["client", "commands::exec"].map(String::from).into()
        );
        let g: BTreeMap<String, BTreeSet<String>> = [
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec!["a"]),
            ("d", vec!["a"]),
            ("e", vec![]),
        ]
        .into_iter()
        .map(|(m, u)| (m.to_string(), u.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(cycle(g), ["a", "b", "c", "d"].map(String::from));
    }

    #[test]
    fn the_aws_file_targets_and_only_they_are_dropped() {
        for t in [
            "aws_runtime::env_config",
            "aws_runtime::env_config::source",
            "aws_runtime::env_config::normalize",
            "aws_config::profile::credentials",
        ] {
            assert!(super::from_aws_files(t), "{t}");
        }
        for t in [
            "aws_runtime::env_configx",
            "aws_config::sts",
            "credd_aws::profiles",
        ] {
            assert!(!super::from_aws_files(t), "{t}");
        }
    }
}
