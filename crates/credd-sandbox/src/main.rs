//! The `credd-sandbox` binary: starts a sandbox on loopback, prints
//! `SANDBOX_URL=http://127.0.0.1:PORT` on stdout for the process that
//! started it, and runs until SIGINT or SIGTERM.

use credd_sandbox::{Sandbox, SandboxConfig};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

const USAGE: &str = "\
usage: credd-sandbox [--port PORT] [--manual-approve] [--auto-approve-device] [--enforce-slow-down]

Serves fake SSO OIDC, SSO portal, STS, AWS Sign-In (aws login) and console
federation endpoints on 127.0.0.1 and prints
SANDBOX_URL=http://127.0.0.1:PORT. Point AWS_ENDPOINT_URL_SSO,
AWS_ENDPOINT_URL_SSO_OIDC, AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL_SIGNIN
at that URL. Control it over HTTP under /_sandbox/. Stops on SIGINT or
SIGTERM.

  --port PORT            listen on this port (default: a free one)
  --manual-approve       hold /authorize and /v1/authorize until POST /_sandbox/approve
  --auto-approve-device  approve device authorizations at once
  --enforce-slow-down    answer SlowDownException to fast device polling
";

struct Args {
    port: u16,
    config: SandboxConfig,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        config: SandboxConfig::default(),
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--port" => {
                let value = iter.next().ok_or("--port needs a value")?;
                args.port = value
                    .parse()
                    .map_err(|_| format!("invalid port {value:?}"))?;
            }
            "--manual-approve" => args.config.auto_approve = false,
            "--auto-approve-device" => args.config.auto_approve_device = true,
            "--enforce-slow-down" => args.config.enforce_slow_down = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("credd-sandbox: {message}");
            return ExitCode::from(2);
        }
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let sandbox = match Sandbox::start_on(addr, args.config).await {
        Ok(sandbox) => sandbox,
        Err(error) => {
            eprintln!("credd-sandbox: failed to listen on {addr}: {error}");
            return ExitCode::from(1);
        }
    };
    println!("SANDBOX_URL={}", sandbox.url());
    // The parent reads the URL from a pipe; flush so it is not left waiting
    // on a block buffer.
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    if let Err(error) = wait_for_signal().await {
        eprintln!("credd-sandbox: failed to install signal handlers: {error}");
        return ExitCode::from(1);
    }
    sandbox.shutdown().await;
    ExitCode::SUCCESS
}

/// SIGINT or SIGTERM, in this one place.
async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
