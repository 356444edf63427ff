//! Output helpers shared by the commands: tables and lines of text that
//! fit the terminal, durations for people, and environment variables in
//! each shell's export syntax.
//!
//! Width: `COLUMNS` when it is set to a number (as `ls` and most tools
//! honour it, on a terminal or piped), else the terminal's own width when
//! standard output is one. Piped without `COLUMNS`, nothing is wrapped: a
//! row is one line however long, so `grep` and `awk` see whole rows.
//!
//! Layering: a leaf; it imports nothing from this crate but the flag types.

use crate::cli::Shell;
use serde_json::Value;

/// The width to fit output to, `None` for "do not wrap" (see the header).
pub fn width() -> Option<usize> {
    width_from(std::env::var("COLUMNS").ok().as_deref(), || {
        terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| w.0 as usize)
    })
}

/// [`width`] from `COLUMNS`'s value and the terminal's width (asked only
/// when `COLUMNS` says nothing usable). A terminal that reports 0 columns
/// (a pty nobody sized) is no width.
fn width_from(columns: Option<&str>, terminal: impl FnOnce() -> Option<usize>) -> Option<usize> {
    columns
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w > 0)
        .or_else(terminal)
        .filter(|w| *w > 0)
}

/// A table of `header`'s columns fitted to [`width`]: comfy-table's
/// dynamic arrangement, told the width (it would otherwise ask the
/// terminal and never read `COLUMNS`); piped, no arrangement at all.
pub fn table(header: &[&str]) -> comfy_table::Table {
    table_for(header, width())
}

fn table_for(header: &[&str], width: Option<usize>) -> comfy_table::Table {
    use comfy_table::ContentArrangement;
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_header(header.to_vec());
    match width {
        Some(w) => {
            t.set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(w.min(u16::MAX as usize) as u16);
        }
        None => {
            t.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    t
}

/// `text` as lines that fit [`width`], the first after `indent` and the
/// rest two further in (a word wider than the line is broken); as it is
/// when there is no width.
pub fn fit(indent: &str, text: &str) -> String {
    fit_to(width(), indent, text)
}

fn fit_to(width: Option<usize>, indent: &str, text: &str) -> String {
    match width {
        None => format!("{indent}{text}"),
        Some(w) => {
            let more = format!("{indent}  ");
            let options = textwrap::Options::new(w)
                .initial_indent(indent)
                .subsequent_indent(&more);
            textwrap::fill(text, options)
        }
    }
}

pub fn human_secs(s: i64) -> String {
    if s <= 0 {
        return "expired".into();
    }
    credd_core::duration::fmt_secs(s as u64)
}

/// Renders variables in the AWS CLI's export shapes (`None` = unset; `null`
/// in JSON).
pub fn render_env(format: Shell, vars: &[(&str, Option<String>)]) -> String {
    let mut out = String::new();
    if format == Shell::Json {
        let m: serde_json::Map<String, Value> = vars
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.as_ref().map_or(Value::Null, |v| Value::String(v.clone())),
                )
            })
            .collect();
        return serde_json::to_string_pretty(&m).expect("serializes") + "\n";
    }
    for (k, v) in vars {
        let line = match (format, v) {
            (Shell::Sh, Some(v)) => format!("export {k}={}", sh_quote(v)),
            (Shell::Sh, None) => format!("unset {k}"),
            (Shell::Fish, Some(v)) => format!("set -gx {k} {}", sh_quote(v)),
            (Shell::Fish, None) => format!("set -e {k}"),
            (Shell::Powershell, Some(v)) => {
                format!("$Env:{k}=\"{}\"", v.replace('`', "``").replace('"', "`\""))
            }
            (Shell::Powershell, None) => {
                format!("Remove-Item Env:{k} -ErrorAction SilentlyContinue")
            }
            (Shell::Cmd, Some(v)) => format!("set {k}={v}"),
            (Shell::Cmd, None) => format!("set {k}="),
            (Shell::Json, _) => unreachable!(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn sh_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/:._-+=%@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_wins_then_the_terminal_and_piped_is_unwrapped() {
        assert_eq!(width_from(Some("60"), || Some(120)), Some(60));
        assert_eq!(width_from(Some(" 90 "), || None), Some(90));
        assert_eq!(width_from(Some("wide"), || Some(120)), Some(120));
        assert_eq!(width_from(Some("0"), || Some(80)), Some(80));
        assert_eq!(width_from(None, || Some(0)), None);
        assert_eq!(width_from(None, || None), None);
    }

    #[test]
    fn tables_and_lines_fit_the_width_and_piped_they_are_whole() {
        let arn = "arn:aws:iam::123456789012:role/platform/very-long-path/ProductionAdministratorAccessForTheWholeTeam";
        let rows = [
            [
                "platform-team-production-administrator-access",
                "fresh",
                arn,
            ],
            ["dev", "needs MFA", "base -> dev"],
        ];
        for w in [40, 60, 80, 120] {
            let mut t = table_for(&["PROFILE", "STATE", "SOURCE"], Some(w));
            for r in &rows {
                t.add_row(r.to_vec());
            }
            let text = t.to_string();
            for line in text.lines() {
                assert!(line.chars().count() <= w, "{w}: {line:?}\n{text}");
            }
            let lines = fit_to(Some(w), "  ", &format!("dev: the role {arn} was refused"));
            for line in lines.lines() {
                assert!(line.chars().count() <= w, "{w}: {line:?}");
            }
            assert!(lines.lines().count() > 1);
        }
        let mut t = table_for(&["PROFILE", "STATE", "SOURCE"], None);
        for r in &rows {
            t.add_row(r.to_vec());
        }
        assert!(t.to_string().lines().any(|l| l.contains(arn)), "{t}");
        assert_eq!(fit_to(None, "  ", arn), format!("  {arn}"));
    }

    #[test]
    fn export_shapes_match_the_aws_cli() {
        let vars = [
            ("AWS_ACCESS_KEY_ID", Some("ASIA1".to_string())),
            ("AWS_SESSION_TOKEN", Some("a b'c".to_string())),
            ("AWS_PROFILE", None),
        ];
        assert_eq!(
            render_env(Shell::Sh, &vars),
            "export AWS_ACCESS_KEY_ID=ASIA1\nexport AWS_SESSION_TOKEN='a b'\\''c'\nunset AWS_PROFILE\n"
        );
        assert!(
            render_env(Shell::Powershell, &vars).starts_with("$Env:AWS_ACCESS_KEY_ID=\"ASIA1\"\n")
        );
        assert!(render_env(Shell::Cmd, &vars).starts_with("set AWS_ACCESS_KEY_ID=ASIA1\n"));
        assert!(render_env(Shell::Fish, &vars).starts_with("set -gx AWS_ACCESS_KEY_ID ASIA1\n"));
        let j: Value = serde_json::from_str(&render_env(Shell::Json, &vars)).unwrap();
        assert_eq!(j["AWS_ACCESS_KEY_ID"], "ASIA1");
        assert!(j["AWS_PROFILE"].is_null() && j.get("AWS_PROFILE").is_some());
    }
}
