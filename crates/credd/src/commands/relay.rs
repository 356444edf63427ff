//! `credd relay --listen ADDR --to URL`: runs the forwarder of
//! [`credd_daemon::relay`] in the foreground until SIGINT/SIGTERM.
//!
//! Layering: a command file. It imports leaves only, never another command.

use anyhow::{Context, Result};
use credd_daemon::config::{self, Limits};
use credd_daemon::guard::Guard;
use credd_daemon::relay::{parse_target, Relay};
use credd_daemon::server::{self, Endpoint};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub async fn run(listen: &str, to: &str) -> Result<()> {
    let addr = config::listen_addr("--listen", listen, false)?;
    let (target, target_host) = parse_target(to).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("failed to listen on {addr} (port 80 needs root or CAP_NET_BIND_SERVICE)")
    })?;
    let bound = listener.local_addr()?;
    let relay = Arc::new(Endpoint::new(
        Guard::sdks(bound),
        Relay {
            target: target.clone(),
            target_host,
        },
    ));
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    let c = cancel.clone();
    tasks.spawn(async move {
        let Ok(mut signals) = crate::signals::Signals::install() else {
            return;
        };
        tokio::select! {
            _ = signals.next() => {}
            _ = c.cancelled() => {}
        }
        c.cancel();
    });
    tracing::info!(listen = %bound, to = %target, "credd relay ready");
    server::serve(
        listener,
        relay,
        Limits::default(),
        cancel.clone(),
        tasks.clone(),
    )
    .await;
    cancel.cancel();
    tasks.close();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tasks.wait()).await;
    Ok(())
}
