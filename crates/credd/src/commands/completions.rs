//! `credd completions SHELL` and `credd man`: the shell completion scripts
//! (`clap_complete`) and the manual pages (`clap_mangen`), generated from the
//! clap definitions themselves, so they cannot drift from the commands.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::cli::Cli;
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::io::Write;
use std::path::Path;

pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut Cli::command(), "credd", &mut out);
    out.flush().context("failed to write the completion script")
}

/// credd(1) on stdout, or with `dir`, every page (credd.1, credd-exec.1,
/// credd-token-issue.1...) written there: the pages `credd service
/// install` installs (`cli::man`).
pub fn man(dir: Option<&Path>) -> Result<()> {
    match dir {
        None => {
            let (_, page) = crate::cli::man::pages()?
                .into_iter()
                .find(|(name, _)| name == "credd.1")
                .context("no credd.1 among the manual pages")?;
            let mut out = std::io::stdout().lock();
            out.write_all(page.as_bytes())
                .and_then(|()| out.flush())
                .context("failed to write the manual page")
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
            for (name, text) in crate::cli::man::pages()? {
                std::fs::write(dir.join(&name), text).with_context(|| {
                    format!("failed to write the manual pages to {}", dir.display())
                })?;
            }
            eprintln!(
                "wrote credd.1 and a page per command to {} (`man credd` finds them when it is on MANPATH, e.g. ~/.local/share/man/man1; `credd service install` installs them there)",
                dir.display()
            );
            Ok(())
        }
    }
}
