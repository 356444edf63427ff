//! The daemon's side of the service managers: listeners handed in through
//! `LISTEN_FDS` (systemd socket activation, launchd sockets) and readiness
//! and stopping sent to `$NOTIFY_SOCKET`. `credd service install` (which
//! writes the units that hand them in) is a command of its own.
//!
//! Layering: a leaf; it imports nothing from this crate.

use anyhow::{bail, Context, Result};

/// Listening sockets handed in by a service manager, by role.
#[derive(Debug, Default)]
pub struct HandedIn {
    pub endpoint: Option<std::net::TcpListener>,
    pub imds: Option<std::net::TcpListener>,
    pub control: Option<std::os::unix::net::UnixListener>,
}

/// Takes the sockets a service manager passed (sd_listen_fds(3)): only when
/// `LISTEN_PID` is this process, from fd 3 on, told apart by
/// `LISTEN_FDNAMES` ("endpoint", "imds", "control"; systemd's
/// `FileDescriptorName=`). A socket with another name (an unnamed one, or
/// one named after its socket unit) is told apart by its type: a Unix socket
/// is the control socket, a TCP socket the endpoint.
///
/// Every descriptor is marked close-on-exec, so the only processes the
/// daemon starts (credential_process and mfa_process commands) do not
/// inherit them. listenfd removes `LISTEN_PID` and `LISTEN_FDS` from the
/// environment; this runs before the daemon starts any task, so no other
/// thread reads the environment meanwhile. `LISTEN_FDNAMES` stays, which is
/// harmless: a child without `LISTEN_FDS` and with another pid ignores it.
pub fn handed_in_listeners() -> Result<HandedIn> {
    // Variables meant for another process (LISTEN_PID is not ours) are
    // ignored whole, names included, as sd_listen_fds_with_names(3) does.
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if !ours {
        return Ok(HandedIn::default());
    }
    // sd-notify checks LISTEN_PID again, parses LISTEN_FDNAMES and sets
    // FD_CLOEXEC, without touching the environment.
    let named: Vec<(i32, String)> = sd_notify::listen_fds_with_names()
        .context("LISTEN_FDS or LISTEN_FDNAMES is malformed")?
        .collect();
    let mut handed = HandedIn::default();
    if named.is_empty() {
        return Ok(handed);
    }
    // listenfd turns a descriptor into a listener after checking its socket
    // family and type, which credd cannot do itself under forbid(unsafe_code).
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() != named.len() {
        bail!(
            "LISTEN_FDS says {} sockets but {} could be taken",
            named.len(),
            fds.len()
        );
    }
    for (idx, (fd, name)) in named.iter().enumerate() {
        let (fd, name) = (*fd, name.as_str());
        let role = match name {
            "endpoint" => {
                put(
                    &mut handed.endpoint,
                    take_tcp(&mut fds, idx, fd, name)?,
                    name,
                    fd,
                )?;
                "endpoint"
            }
            "imds" => {
                put(
                    &mut handed.imds,
                    take_tcp(&mut fds, idx, fd, name)?,
                    name,
                    fd,
                )?;
                "imds"
            }
            "control" => {
                let l = fds
                    .take_unix_listener(idx)
                    .with_context(|| {
                        format!("fd {fd} (named 'control') is not a listening Unix stream socket")
                    })?
                    .with_context(|| format!("fd {fd} was taken twice"))?;
                put(&mut handed.control, l, name, fd)?;
                "control"
            }
            _ => {
                if let Ok(Some(l)) = fds.take_unix_listener(idx) {
                    put(&mut handed.control, l, "control", fd)?;
                    "control"
                } else {
                    let l = fds
                        .take_tcp_listener(idx)
                        .with_context(|| {
                            format!(
                                "fd {fd} (named '{name}') is neither a TCP nor a Unix stream socket: \
                                 name each socket unit's socket with FileDescriptorName=endpoint, imds or control"
                            )
                        })?
                        .with_context(|| format!("fd {fd} was taken twice"))?;
                    put(&mut handed.endpoint, l, "endpoint", fd)?;
                    "endpoint"
                }
            }
        };
        tracing::info!(fd, name, role, "socket handed in by the service manager");
    }
    Ok(handed)
}

fn take_tcp(
    fds: &mut listenfd::ListenFd,
    idx: usize,
    fd: i32,
    name: &str,
) -> Result<std::net::TcpListener> {
    fds.take_tcp_listener(idx)
        .with_context(|| format!("fd {fd} (named '{name}') is not a listening TCP socket"))?
        .with_context(|| format!("fd {fd} was taken twice"))
}

fn put<T>(slot: &mut Option<T>, value: T, role: &str, fd: i32) -> Result<()> {
    if slot.is_some() {
        bail!(
            "more than one '{role}' socket was handed in (the second is fd {fd}): \
             give each socket unit its own FileDescriptorName= (endpoint, imds, control)"
        );
    }
    *slot = Some(value);
    Ok(())
}

/// Tells the service manager (when `$NOTIFY_SOCKET` is set: systemd with
/// `Type=notify`) that the listeners are bound and the profiles loaded. A
/// no-op without it.
pub fn notify_ready(ready: &credd_daemon::Ready) {
    let status = format!(
        "serving http://{}{}/PROFILE; control socket {}",
        ready.container,
        credd_daemon::CREDENTIALS_PATH,
        ready.control_socket.display()
    );
    notify(
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ],
        "ready",
    );
}

/// Tells the service manager that credd is shutting down.
pub fn notify_stopping() {
    notify(
        &[
            sd_notify::NotifyState::Stopping,
            sd_notify::NotifyState::Status("stopping"),
        ],
        "stopping",
    );
}

fn notify(states: &[sd_notify::NotifyState], what: &str) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    match sd_notify::notify(states) {
        Ok(()) => tracing::debug!("told the service manager: {what}"),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot tell the service manager that credd is {what} (NOTIFY_SOCKET)"
        ),
    }
}

// ---------------------------------------------------------------------------
// `credd service install | uninstall | status`.
