//! `cargo xtask test`: installs what the tests need, then builds and runs
//! every test in the workspace, counting the results.

use crate::clients::setup;
use crate::util::*;
use crate::{Failure, Result};
use std::io::{self, Write};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

pub(crate) fn test(extra: &[String]) -> Result<()> {
    let clients = setup()?;
    let root = repo_root();

    header("Test environment");
    for (name, value) in &clients.vars {
        note(&format!("{name}={value}"));
    }
    let with_env = |cmd: &mut Command| {
        for (name, value) in &clients.vars {
            cmd.env(name, value);
        }
        cmd.current_dir(&root);
    };

    header("Build: cargo build --workspace --all-targets");
    let mut build = Command::new(cargo());
    build.args(["build", "--workspace", "--all-targets"]);
    with_env(&mut build);
    run(&mut build, "fix the build errors above")?;

    let mut totals = TestTotals::default();
    if extra.is_empty() {
        header("Doctests: cargo test --workspace --doc");
        let mut doc = Command::new(cargo());
        doc.args(["test", "--workspace", "--doc"]);
        with_env(&mut doc);
        run_tests(&mut doc, &mut totals)?;
    }

    let shown_extra = if extra.is_empty() {
        String::new()
    } else {
        format!(" {}", extra.join(" "))
    };
    // `--workspace` wins over `-p` in cargo: leave it out when ARGS pick packages.
    let scope = if selects_packages(extra) {
        ""
    } else {
        " --workspace"
    };
    header(&format!(
        "Tests: cargo test{scope} --all-targets{shown_extra}"
    ));
    let mut tests = Command::new(cargo());
    tests.arg("test");
    if !scope.is_empty() {
        tests.arg("--workspace");
    }
    tests.arg("--all-targets").args(extra);
    with_env(&mut tests);
    let outcome = run_tests(&mut tests, &mut totals);

    header("Summary");
    // One plain closing line, summed over every test binary that ran.
    println!(
        "tests: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    let _ = io::stdout().flush();
    outcome
}

/// Whether cargo-test ARGS (before any `--`) name packages with `-p`/`--package`.
pub(crate) fn selects_packages(extra: &[String]) -> bool {
    extra.iter().take_while(|arg| *arg != "--").any(|arg| {
        arg == "-p"
            || arg == "--package"
            || arg.starts_with("--package=")
            || (arg.starts_with("-p") && !arg.starts_with("--"))
    })
}

#[derive(Debug, Default)]
pub(crate) struct TestTotals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestTotals {
    /// Adds one libtest closing line:
    /// `test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ...`
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match kind {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

/// Runs `cargo test`, passing its stdout through line by line while counting results.
pub(crate) fn run_tests(cmd: &mut Command, totals: &mut TestTotals) -> Result<()> {
    let shown = describe(cmd);
    note(&format!("$ {shown}"));
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|err| spawn_failure(&shown, &err))?;
    if let Some(stdout) = child.stdout.take() {
        let mut reader = BufReader::new(stdout);
        let mut out = io::stdout();
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let _ = out.write_all(&line);
                    let _ = out.flush();
                    totals.add_line(&String::from_utf8_lossy(&line));
                }
            }
        }
    }
    let status = child
        .wait()
        .map_err(|err| Failure::new(format!("waiting for `{shown}`: {err}")))?;
    if status.success() {
        return Ok(());
    }
    Err(Failure {
        message: format!(
            "`{shown}` failed ({status}): see the failing tests above; re-run one with \
             `cargo xtask test -- -p PACKAGE TEST_NAME`"
        ),
        code: exit_code_of(status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_libtest_closing_lines() {
        let mut totals = TestTotals::default();
        totals.add_line(
            "test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; \
             finished in 0.01s\n",
        );
        totals.add_line("test result: FAILED. 2 passed; 3 failed; 0 ignored; 0 measured");
        totals.add_line("running 7 tests");
        assert_eq!((totals.passed, totals.failed, totals.ignored), (7, 3, 1));
    }

    #[test]
    fn package_selection_drops_workspace() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(selects_packages(&args(&["-p", "credd-core"])));
        assert!(selects_packages(&args(&["--package=credd-core", "x"])));
        assert!(selects_packages(&args(&["-pcredd-core"])));
        assert!(!selects_packages(&args(&["single_flight", "--", "-p"])));
        assert!(!selects_packages(&args(&["--test", "e2e"])));
    }
}
