//! JSON the way Python's `json.dumps` writes it, because the AWS CLI's SSO
//! cache files and the name of its client-registration file are Python's
//! output: default separators (`", "`, `": "`), ASCII escaping, keys in
//! the order given. Hand-written: serde_json has no Python-compatible
//! formatter, and the bytes must match the CLI's for the files to be shared.

use serde_json::Value;

/// Python's `json.dumps(..., sort_keys=True)` of the registration key, with
/// its default separators (`", "` and `": "`) and ASCII escaping.
pub(super) fn python_json_key(
    region: &str,
    scopes: Option<&[String]>,
    name: &str,
    start_url: &str,
) -> String {
    let scopes = match scopes {
        None => "null".to_string(),
        Some(s) => format!(
            "[{}]",
            s.iter().map(|x| py_str(x)).collect::<Vec<_>>().join(", ")
        ),
    };
    format!(
        "{{\"region\": {}, \"scopes\": {}, \"session_name\": {}, \"startUrl\": {}, \"tool\": \"botocore\"}}",
        py_str(region),
        scopes,
        py_str(name),
        py_str(start_url)
    )
}

/// A JSON string as Python's `json.dumps` writes it (`ensure_ascii=True`).
pub(super) fn py_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON object as Python's `json.dumps` writes it by default (`", "` and
/// `": "` separators, keys in the order given), which is what the CLI's
/// cache files hold.
pub fn python_style_object(pairs: &[(String, Value)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&py_str(k));
        out.push_str(": ");
        write_py(v, &mut out);
    }
    out.push('}');
    out
}

fn write_py(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&py_str(k));
                out.push_str(": ");
                write_py(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py(v, out);
            }
            out.push(']');
        }
        Value::String(s) => out.push_str(&py_str(s)),
        other => out.push_str(&other.to_string()),
    }
}
