//! `cargo xtask lint`: formatting, clippy, [`crate::tidy`]'s rules, and the
//! macOS compile check ([`crate::mac`]).

use crate::util::*;
use crate::Result;
use std::process::Command;

pub(crate) fn lint() -> Result<()> {
    let root = repo_root();
    header("Format: cargo fmt --all -- --check");
    run(
        Command::new(cargo())
            .args(["fmt", "--all", "--", "--check"])
            .current_dir(&root),
        "run `cargo fmt --all` to format the code (if cargo fmt itself is missing: \
         `rustup component add rustfmt`)",
    )?;
    header("Lint: cargo clippy --workspace --all-targets -- -D warnings");
    run(
        Command::new(cargo())
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
            .current_dir(&root),
        "fix the clippy findings above (if cargo clippy itself is missing: \
         `rustup component add clippy`)",
    )?;
    crate::tidy::tidy()?;
    crate::mac::mac_check()?;
    header("Lint passed");
    Ok(())
}
