//! The one signal handler of the CLI process. The long-running commands
//! (`serve`, `relay`, `demo`) stop on SIGINT or SIGTERM; `exec` forwards
//! SIGTERM and SIGHUP to its child and lets Ctrl-C reach it through the
//! terminal. All of them read signals through [`Signals`].
//!
//! Layering: a leaf; it imports nothing from this crate.

use tokio::signal::unix::{signal, SignalKind};

/// A signal the CLI acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    Interrupt,
    Terminate,
    Hangup,
}

impl Sig {
    pub fn name(self) -> &'static str {
        match self {
            Sig::Interrupt => "SIGINT",
            Sig::Terminate => "SIGTERM",
            Sig::Hangup => "SIGHUP",
        }
    }
}

/// SIGINT and SIGTERM, and SIGHUP when asked for. Once installed, the
/// default action (dying) no longer applies to them in this process, so
/// SIGHUP is taken only by a command that forwards it (`exec`): the others
/// keep dying of it as before.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// SIGINT and SIGTERM.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: None,
        })
    }

    /// SIGINT, SIGTERM and SIGHUP.
    pub fn with_hangup() -> std::io::Result<Self> {
        let mut s = Self::install()?;
        s.hup = Some(signal(SignalKind::hangup())?);
        Ok(s)
    }

    /// The next signal received (SIGHUP only when installed).
    pub async fn next(&mut self) -> Sig {
        tokio::select! {
            _ = self.int.recv() => Sig::Interrupt,
            _ = self.term.recv() => Sig::Terminate,
            _ = async {
                match &mut self.hup {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => Sig::Hangup,
        }
    }
}
