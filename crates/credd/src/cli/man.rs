//! The manual pages, generated from the clap definitions (`clap_mangen`):
//! credd(1) and one page per visible subcommand (credd-exec(1),
//! credd-token-issue(1)...), named and chosen as `clap_mangen::generate_to`
//! does, but rendered in memory, so that `credd man --dir` and `credd
//! service install` (which writes them atomically, and can show them with
//! `--print`) install the very same pages.

use anyhow::{Context, Result};
use clap::CommandFactory;

/// Every page: its file name (`credd-exec.1`) and its roff text.
pub fn pages() -> Result<Vec<(String, String)>> {
    fn walk(cmd: clap::Command, out: &mut Vec<(String, String)>) -> Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, out)?;
        }
        let man = clap_mangen::Man::new(cmd);
        let mut text = Vec::new();
        man.render(&mut text)
            .context("failed to render a manual page")?;
        out.push((
            man.get_filename(),
            String::from_utf8(text).context("a manual page is not UTF-8")?,
        ));
        Ok(())
    }
    // As `generate_to`: no page for `help`, and names with their parents'
    // (`credd-token-issue`), which `build` gives.
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(cmd, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_page_for_credd_and_for_each_command_and_none_for_help() {
        let pages = super::pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "credd.1",
            "credd-exec.1",
            "credd-token-issue.1",
            "credd-service-install.1",
        ] {
            assert!(names.contains(&want), "{want} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.ends_with("-help.1")), "{names:?}");
        let (_, credd) = pages.iter().find(|(n, _)| n == "credd.1").unwrap();
        assert!(credd.starts_with(".ie \\n(.g .ds Aq"), "{}", &credd[..80]);
        assert!(credd.contains(".TH credd 1"), "{credd}");
    }
}
