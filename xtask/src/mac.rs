//! The macOS compile check of `cargo xtask lint`: the macOS Keychain
//! backend (`keyring`'s `apple-native`, issue 15) is only compiled on macOS,
//! and no Mac runs this project's tests, so CI at least type-checks it for
//! `x86_64-apple-darwin`. `cargo check` needs the target's standard
//! library (rustup's `rust-std` component, added here when missing) but no
//! macOS C toolchain, which rules out crates whose build scripts compile C
//! for the target (the AWS SDK's TLS stack: see [`MAC_CRATES`]). This
//! proves that the code compiles there, not that it works there: nothing is
//! run on macOS (docs/security.md, docs/configuration.md).

use crate::util::*;
use crate::{Failure, Result};
use std::process::Command;

pub(crate) const MAC_TARGET: &str = "x86_64-apple-darwin";

/// The crates checked for macOS: the key store, credd-core under it, and
/// the daemon (its macOS paths: the runtime directory, `osascript`
/// notifications and dialogs). `credd-aws` and the binary pull in the AWS
/// SDK's `aws-lc-sys`, whose build script needs a C compiler for the target.
pub(crate) const MAC_CRATES: &[&str] = &["credd-core", "credd-keys", "credd-daemon"];

/// Adds the target when rustup lacks it, then `cargo check`s [`MAC_CRATES`]
/// for it. A rustup that cannot reach its server is a failure that says
/// so, never a silent skip.
pub(crate) fn mac_check() -> Result<()> {
    let root = repo_root();
    header(&format!("macOS: cargo check --target {MAC_TARGET}"));
    let installed = capture(Command::new("rustup").args(["target", "list", "--installed"]))
        .ok_or_else(|| {
            Failure::new(
                "`rustup target list --installed` failed: the macOS check needs rustup \
                 (https://rustup.rs) to add the x86_64-apple-darwin standard library",
            )
        })?;
    if !installed.lines().any(|l| l.trim() == MAC_TARGET) {
        run(
            Command::new("rustup").args(["target", "add", MAC_TARGET]),
            "rustup could not add the macOS standard library (no network to \
             static.rust-lang.org?): run `rustup target add x86_64-apple-darwin` where it \
             can, then `cargo xtask lint` again; the macOS check is part of lint and is not \
             skipped",
        )?;
    }
    let mut cmd = Command::new(cargo());
    cmd.args(["check", "--target", MAC_TARGET]);
    for c in MAC_CRATES {
        cmd.args(["-p", c]);
    }
    run(
        cmd.current_dir(&root),
        "fix the macOS build errors above (code under cfg(target_os = \"macos\"), or a \
         dependency that needs a macOS C toolchain: keep such crates out of MAC_CRATES in \
         xtask/src/mac.rs)",
    )
}
