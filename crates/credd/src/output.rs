//! Output helpers shared by the commands: tables, durations for people,
//! and environment variables in each shell's export syntax.
//!
//! Layering: a leaf; it imports nothing from this crate but the flag types.

use crate::cli::Shell;
use serde_json::Value;

pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
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
