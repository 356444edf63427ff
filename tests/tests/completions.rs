//! `credd completions SHELL` and `credd man`, from the real binary: every
//! shell's script is produced and knows the commands, bash's parses
//! (`bash -n`), and the manual page is roff that names them.

mod support;

use support::*;

/// Commands every generated artefact must know about.
const COMMANDS: &[&str] = &[
    "exec",
    "env",
    "mfa",
    "status",
    "prompt",
    "completions",
    "login",
];

#[test]
fn every_shell_gets_a_script_that_knows_the_commands() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = env.credd_ok(&["completions", shell]);
        for c in COMMANDS {
            assert!(script.contains(c), "{shell}'s script does not mention {c}");
        }
        // The flags of a command are there too.
        assert!(script.contains("keep-aws-config"), "{shell}: exec's flags");
    }
    let bad = env.credd(&["completions", "tcsh"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn the_bash_script_parses_and_completes_a_command() {
    let env = Env::new();
    let path = env.path("credd.bash");
    std::fs::write(&path, env.credd_ok(&["completions", "bash"])).unwrap();
    let o = env.cmd("bash").arg("-n").arg(&path).output().unwrap();
    assert!(o.status.success(), "bash -n: {}", stderr_of(&o));
    // Load it and ask for the completions of `credd pro`, as bash would on Tab.
    let o = env
        .cmd("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(credd pro); COMP_CWORD=1; COMP_LINE='credd pro'; COMP_POINT=9; _credd credd pro credd; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            path.display()
        ))
        .output()
        .unwrap();
    let words = stdout_of(&o);
    assert!(
        words.lines().any(|w| w == "profiles") && words.lines().any(|w| w == "prompt"),
        "completions of `credd pro`: {words:?} {}",
        stderr_of(&o)
    );
}

#[test]
fn the_manual_page_is_roff_naming_the_commands() {
    let env = Env::new();
    let page = env.credd_ok(&["man"]);
    assert!(page.contains(".TH credd 1"), "a section-1 page: {page}");
    for c in COMMANDS {
        assert!(
            page.contains(&format!("credd\\-{c}")) || page.contains(c),
            "{c}"
        );
    }
    let dir = env.path("man1");
    env.credd_ok(&["man", "--dir", dir.to_str().unwrap()]);
    for f in [
        "credd.1",
        "credd-exec.1",
        "credd-prompt.1",
        "credd-token-issue.1",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(text.contains(".TH"), "{f}");
    }
    // One generator: the page on stdout is the credd.1 written (and the one
    // `credd service install` installs), with no page for `help`.
    assert_eq!(
        std::fs::read_to_string(dir.join("credd.1")).unwrap(),
        page,
        "`credd man` and `credd man --dir` differ"
    );
    assert!(!dir.join("credd-help.1").exists());
}
