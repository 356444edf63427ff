//! The local credential sources: `credential_process`, `mfa_process` and
//! `credd_saml_process` commands (the last parsed in [`crate::saml`]), and
//! the daemon's own `AWS_*` environment variables.
//!
//! Commands are split into words the way the AWS CLI splits them (POSIX shell
//! quoting) and run without a shell, with stdin closed, a time limit and the
//! daemon's own AWS keys removed from their environment. What they print on
//! stdout is a secret: it is parsed field by field and never quoted in an
//! error; only the first line of stderr is.

use crate::classify::short;
use aws_types::os_shim_internal::Env;
use credd_core::credentials::parse_timestamp;
use credd_core::upstream::SourceCredentials;
use credd_core::{
    LongTermKeys, SecretString, TemporaryCredentials, UpstreamError, UpstreamErrorKind,
};
use serde_json::{Map, Value};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use zeroize::{Zeroize, Zeroizing};

/// How long `credential_process` and `mfa_process` may run. Generous because
/// an `mfa_process` may wait for a touch on a hardware key.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// More than any credential document; a command printing more is broken and
/// must not make the daemon buffer without bound.
const STDOUT_LIMIT: usize = 1 << 20;
const STDERR_LIMIT: usize = 64 << 10;

/// Runs `credential_process` and parses its Version 1 JSON document.
pub(crate) async fn credential_process(
    profile: &str,
    command: &str,
    timeout: Duration,
) -> Result<SourceCredentials, UpstreamError> {
    let what = format!("credential_process of profile '{profile}'");
    let out = run(&what, command, timeout).await?;
    parse_process_output(&out.stdout).map_err(|problem| {
        UpstreamError::new(
            UpstreamErrorKind::Source,
            format!("{what} (`{}`): {problem}", out.program),
        )
    })
}

/// Runs an `mfa_process` command and takes the code it printed.
pub(crate) async fn mfa_code(
    command: &str,
    timeout: Duration,
) -> Result<SecretString, UpstreamError> {
    let out = run("mfa_process", command, timeout).await?;
    parse_mfa_code(&out.stdout).ok_or_else(|| {
        UpstreamError::new(
            UpstreamErrorKind::Source,
            format!(
                "mfa_process (`{}`) did not print an MFA code (4 to 10 digits)",
                out.program
            ),
        )
    })
}

/// `credential_source = Environment`: the daemon's own variables.
pub(crate) fn environment(env: &Env) -> Result<SourceCredentials, UpstreamError> {
    from_environment(env).map_err(|problem| {
        UpstreamError::new(
            UpstreamErrorKind::Source,
            format!("credential_source = Environment: {problem}"),
        )
    })
}

pub(crate) struct Output {
    pub(crate) program: String,
    pub(crate) stdout: Zeroizing<Vec<u8>>,
}

/// Runs `command` without a shell, stdin closed, within `timeout`, its
/// environment scrubbed; `what` names it in errors, which quote the first
/// line of its stderr and never its stdout.
pub(crate) async fn run(
    what: &str,
    command: &str,
    timeout: Duration,
) -> Result<Output, UpstreamError> {
    let source_err = |msg: String| UpstreamError::new(UpstreamErrorKind::Source, msg);
    let argv = shlex::split(command).ok_or_else(|| {
        UpstreamError::new(
            UpstreamErrorKind::Config,
            format!("{what}: the command has an unbalanced quote or a trailing backslash"),
        )
    })?;
    let Some((program, args)) = argv.split_first() else {
        return Err(UpstreamError::new(
            UpstreamErrorKind::Config,
            format!("{what}: the command is empty"),
        ));
    };
    let mut child = child_command(program, args).spawn().map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (is it installed and on credd's PATH?)"
        } else {
            ""
        };
        source_err(format!("{what}: cannot run `{program}`: {e}{hint}"))
    })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        unreachable!("both streams were configured as pipes");
    };
    let finished = async {
        tokio::join!(
            read_capped(stdout, STDOUT_LIMIT),
            read_capped(stderr, STDERR_LIMIT),
            child.wait()
        )
    };
    let (stdout, stderr, status) = match tokio::time::timeout(timeout, finished).await {
        Ok(done) => done,
        Err(_) => {
            // kill_on_drop would do this too; doing it here makes it certain
            // the command is gone before the error is reported.
            let _ = child.kill().await;
            return Err(source_err(format!(
                "{what}: `{program}` did not finish within {} s",
                timeout.as_secs_f32()
            )));
        }
    };
    let io_err = |e: std::io::Error| source_err(format!("{what}: reading from `{program}`: {e}"));
    let (stdout, stdout_overflow) = stdout.map_err(io_err)?;
    let (stderr, _) = stderr.map_err(io_err)?;
    let status: ExitStatus = status.map_err(io_err)?;
    if !status.success() {
        return Err(source_err(format!(
            "{what}: `{program}` failed ({status}){}",
            stderr_hint(&stderr)
        )));
    }
    if stdout_overflow {
        return Err(source_err(format!(
            "{what}: `{program}` printed more than {} bytes",
            STDOUT_LIMIT
        )));
    }
    Ok(Output {
        program: program.clone(),
        stdout,
    })
}

fn child_command(program: &str, args: &[String]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    credd_core::child_env::scrub(cmd.as_std_mut());
    cmd
}

/// Reads to the end, keeping at most `cap` bytes: the rest is drained so the
/// child never blocks on a full pipe.
async fn read_capped(
    mut reader: impl AsyncRead + Unpin,
    cap: usize,
) -> std::io::Result<(Zeroizing<Vec<u8>>, bool)> {
    let mut kept = Zeroizing::new(Vec::new());
    let mut overflow = false;
    let mut chunk = Zeroizing::new([0u8; 8192]);
    loop {
        let n = reader.read(&mut chunk[..]).await?;
        if n == 0 {
            return Ok((kept, overflow));
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
        overflow |= n > room;
    }
}

pub(crate) fn stderr_hint(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| format!(": {}", short(l, 200)))
        .unwrap_or_default()
}

/// Parses the Version 1 document. Problems are described by field name only:
/// serde's own messages can quote values, and these values are secrets.
pub(crate) fn parse_process_output(stdout: &[u8]) -> Result<SourceCredentials, String> {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Err("it printed nothing on stdout".into());
    }
    let doc: Value = serde_json::from_slice(stdout).map_err(|e| {
        format!(
            "its output is not valid JSON (error at line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let Value::Object(mut doc) = doc else {
        return Err("its output is not a JSON object".into());
    };
    match doc.get("Version") {
        Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
        Some(Value::Number(n)) => {
            return Err(format!(
                "it printed \"Version\": {n}; only Version 1 is defined"
            ))
        }
        Some(_) => return Err("\"Version\" must be the number 1".into()),
        None => return Err("its output has no \"Version\": 1".into()),
    }
    let access_key_id =
        take_string(&mut doc, "AccessKeyId")?.ok_or("its output has no \"AccessKeyId\"")?;
    let secret = take_string(&mut doc, "SecretAccessKey")?
        .map(SecretString::new)
        .ok_or("its output has no \"SecretAccessKey\"")?;
    let token = take_string(&mut doc, "SessionToken")?.map(SecretString::new);
    let expiration = take_string(&mut doc, "Expiration")?;
    let account_id = take_string(&mut doc, "AccountId")?;
    let Some(token) = token else {
        return Ok(SourceCredentials::LongTerm(LongTermKeys {
            access_key_id,
            secret_access_key: secret,
        }));
    };
    let expiration = expiration.ok_or(
        "it printed a \"SessionToken\" without \"Expiration\", so credd cannot tell when the credentials end: make it print \"Expiration\"",
    )?;
    // Already-expired credentials are accepted here: whether credentials have
    // enough life left to serve is the broker's decision, made with its clock.
    let expiration = parse_timestamp(&expiration).map_err(|_| {
        "\"Expiration\" is not an RFC 3339 timestamp such as 2026-01-02T03:04:05Z".to_string()
    })?;
    TemporaryCredentials::new(access_key_id, secret, token, expiration, account_id)
        .map(SourceCredentials::Temporary)
        .map_err(|e| e.to_string())
}

/// A string field, moved out of the document (so the secret is not copied);
/// `null` and `""` count as absent.
fn take_string(doc: &mut Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match doc.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("\"{key}\" must be a string")),
    }
}

/// The code an `mfa_process` printed: its trimmed stdout, 4 to 10 digits.
pub(crate) fn parse_mfa_code(stdout: &[u8]) -> Option<SecretString> {
    let text = std::str::from_utf8(stdout).ok()?.trim();
    let ok = (4..=10).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| SecretString::new(text))
}

fn from_environment(env: &Env) -> Result<SourceCredentials, String> {
    let get = |name: &str| env.get(name).ok().filter(|v| !v.is_empty());
    let (id, secret) =
        match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => (id, SecretString::new(secret)),
            (None, None) => return Err(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set in credd's environment"
                    .into(),
            ),
            (None, Some(mut secret)) => {
                secret.zeroize();
                return Err("AWS_ACCESS_KEY_ID is not set in credd's environment".into());
            }
            (Some(_), None) => {
                return Err("AWS_SECRET_ACCESS_KEY is not set in credd's environment".into())
            }
        };
    let Some(token) = get("AWS_SESSION_TOKEN").map(SecretString::new) else {
        return Ok(SourceCredentials::LongTerm(LongTermKeys {
            access_key_id: id,
            secret_access_key: secret,
        }));
    };
    let expiration = get("AWS_CREDENTIAL_EXPIRATION").ok_or(
        "AWS_SESSION_TOKEN is set without AWS_CREDENTIAL_EXPIRATION, so credd cannot tell when the credentials end",
    )?;
    let expiration = parse_timestamp(&expiration)
        .map_err(|_| "AWS_CREDENTIAL_EXPIRATION is not an RFC 3339 timestamp".to_string())?;
    TemporaryCredentials::new(id, secret, token, expiration, None)
        .map(SourceCredentials::Temporary)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn parse(json: &str) -> Result<SourceCredentials, String> {
        parse_process_output(json.as_bytes())
    }

    fn temporary(r: Result<SourceCredentials, String>) -> TemporaryCredentials {
        match r {
            Ok(SourceCredentials::Temporary(t)) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_full_document_is_temporary() {
        let t = temporary(parse(
            r#"{"Version": 1, "AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "canary-secret",
                "SessionToken": "canary-token", "Expiration": "2026-11-23T10:00:00Z",
                "AccountId": "123456789012"}"#,
        ));
        assert_eq!(t.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(t.secret_access_key().expose(), "canary-secret");
        assert_eq!(t.session_token().expose(), "canary-token");
        assert_eq!(t.expiration(), datetime!(2026-11-23 10:00 UTC));
        assert_eq!(t.account_id(), Some("123456789012"));
    }

    #[test]
    fn no_session_token_means_long_term_keys() {
        for doc in [
            r#"{"Version": 1, "AccessKeyId": "AKIAEXAMPLE", "SecretAccessKey": "s"}"#,
            r#"{"Version": 1, "AccessKeyId": "AKIAEXAMPLE", "SecretAccessKey": "s", "SessionToken": ""}"#,
            r#"{"Version": 1, "AccessKeyId": "AKIAEXAMPLE", "SecretAccessKey": "s", "SessionToken": null,
                "Expiration": "2026-11-23T10:00:00Z"}"#,
        ] {
            match parse(doc) {
                Ok(SourceCredentials::LongTerm(k)) => {
                    assert_eq!(k.access_key_id, "AKIAEXAMPLE");
                    assert_eq!(k.secret_access_key.expose(), "s");
                }
                other => panic!("{doc}: {other:?}"),
            }
        }
    }

    #[test]
    fn version_must_be_the_number_one() {
        let keys = r#""AccessKeyId": "AKIA", "SecretAccessKey": "s""#;
        let err = |v: &str| parse(&format!("{{{v}{keys}}}")).unwrap_err();
        assert_eq!(err(""), "its output has no \"Version\": 1");
        assert_eq!(
            err(r#""Version": 2, "#),
            "it printed \"Version\": 2; only Version 1 is defined"
        );
        assert_eq!(
            err(r#""Version": "1", "#),
            "\"Version\" must be the number 1"
        );
        assert!(parse(&format!("{{\"Version\": 1, {keys}}}")).is_ok());
    }

    #[test]
    fn timestamps_in_any_rfc3339_shape_and_in_the_past_are_accepted() {
        let doc = |exp: &str| {
            format!(
                r#"{{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": "{exp}"}}"#
            )
        };
        let t = temporary(parse(&doc("2026-11-23T12:00:00.123+02:00")));
        assert_eq!(t.expiration(), datetime!(2026-11-23 10:00:00.123 UTC));
        let t = temporary(parse(&doc("2001-01-01T00:00:00Z")));
        assert_eq!(t.expiration(), datetime!(2001-01-01 0:00 UTC));
        for bad in [
            "2026-11-23 10:00:00",
            "1700000000",
            "tomorrow",
            "2026-11-23",
        ] {
            assert_eq!(
                parse(&doc(bad)).unwrap_err(),
                "\"Expiration\" is not an RFC 3339 timestamp such as 2026-01-02T03:04:05Z",
                "{bad}"
            );
        }
    }

    #[test]
    fn session_token_without_expiration_is_refused() {
        let e = parse(
            r#"{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "s", "SessionToken": "t"}"#,
        )
        .unwrap_err();
        assert!(e.contains("without \"Expiration\""), "{e}");
    }

    #[test]
    fn missing_and_mistyped_fields_are_named_without_values() {
        assert_eq!(
            parse(r#"{"Version": 1, "SecretAccessKey": "canary"}"#).unwrap_err(),
            "its output has no \"AccessKeyId\""
        );
        assert_eq!(
            parse(r#"{"Version": 1, "AccessKeyId": "A"}"#).unwrap_err(),
            "its output has no \"SecretAccessKey\""
        );
        assert_eq!(
            parse(r#"{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": ["canary"]}"#)
                .unwrap_err(),
            "\"SecretAccessKey\" must be a string"
        );
    }

    #[test]
    fn garbage_output_is_not_echoed() {
        for out in [
            "canary-secret-AKIA",
            "{\"Version\": 1, \"SecretAccessKey\": \"canary-secret",
            "\"canary-secret\"",
            "[\"canary-secret\"]",
            "{\"Version\": 1, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"canary\" \"x\"}",
            "   \n",
        ] {
            let e = parse(out).unwrap_err();
            assert!(!e.contains("canary"), "{out}: {e}");
            assert!(
                e.contains("not valid JSON")
                    || e.contains("not a JSON object")
                    || e.contains("printed nothing"),
                "{out}: {e}"
            );
        }
    }

    #[test]
    fn mfa_codes_are_4_to_10_digits() {
        assert_eq!(parse_mfa_code(b"123456\n").unwrap().expose(), "123456");
        assert_eq!(parse_mfa_code(b"  0042  ").unwrap().expose(), "0042");
        for bad in [
            &b""[..],
            b"123",
            b"12345678901",
            b"12 34 56",
            b"abcdef",
            b"123456\n654321",
            b"\xff\xfe1234",
        ] {
            assert!(parse_mfa_code(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn environment_sources() {
        let env = Env::from_slice(&[
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "canary"),
        ]);
        assert!(matches!(
            environment(&env),
            Ok(SourceCredentials::LongTerm(k)) if k.access_key_id == "AKIAENV"
        ));
        let env = Env::from_slice(&[
            ("AWS_ACCESS_KEY_ID", "ASIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "canary"),
            ("AWS_SESSION_TOKEN", "canary-token"),
            ("AWS_CREDENTIAL_EXPIRATION", "2026-11-23T10:00:00Z"),
        ]);
        let t = temporary(environment(&env).map_err(|e| e.message));
        assert_eq!(t.session_token().expose(), "canary-token");
        assert_eq!(t.expiration(), datetime!(2026-11-23 10:00 UTC));

        let env = Env::from_slice(&[
            ("AWS_ACCESS_KEY_ID", "ASIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "canary"),
            ("AWS_SESSION_TOKEN", "canary-token"),
        ]);
        let e = environment(&env).unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::Source);
        assert!(
            e.message.contains("without AWS_CREDENTIAL_EXPIRATION"),
            "{}",
            e.message
        );
        let e = environment(&Env::from_slice(&[])).unwrap_err();
        assert!(e.message.contains("are not set"), "{}", e.message);
        let e = environment(&Env::from_slice(&[("AWS_SECRET_ACCESS_KEY", "canary")])).unwrap_err();
        assert!(!e.message.contains("canary"));
        assert!(e.message.contains("AWS_ACCESS_KEY_ID is not set"));
    }

    #[tokio::test]
    async fn credential_process_runs_without_a_shell_and_parses() {
        let cmd = r#"printf '%s' '{"Version": 1, "AccessKeyId": "ASIA", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": "2026-11-23T10:00:00Z"}'"#;
        let t = temporary(
            credential_process("p", cmd, COMMAND_TIMEOUT)
                .await
                .map_err(|e| e.message),
        );
        assert_eq!(t.access_key_id(), "ASIA");

        // Without a shell, `$HOME` and `;` are passed through literally.
        let e = credential_process("p", "echo $HOME ; true", COMMAND_TIMEOUT)
            .await
            .unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
    }

    #[tokio::test]
    async fn credential_process_failures_show_stderr_not_stdout() {
        let e = credential_process(
            "dev",
            "sh -c 'echo canary-secret; echo \"  \" >&2; echo \"token expired, run: tool login\" >&2; exit 3'",
            COMMAND_TIMEOUT,
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::Source);
        assert_eq!(
            e.message,
            "credential_process of profile 'dev': `sh` failed (exit status: 3): token expired, run: tool login"
        );

        let e = credential_process("dev", "sh -c 'echo canary-secret'", COMMAND_TIMEOUT)
            .await
            .unwrap_err();
        assert!(!e.message.contains("canary"), "{}", e.message);
        assert!(
            e.message.starts_with(
                "credential_process of profile 'dev' (`sh`): its output is not valid JSON"
            ),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn commands_that_cannot_run_are_explained() {
        let e = credential_process("p", "/nonexistent/tool --json", COMMAND_TIMEOUT)
            .await
            .unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::Source);
        assert!(
            e.message.contains("cannot run `/nonexistent/tool`"),
            "{}",
            e.message
        );
        assert!(e.message.contains("PATH"), "{}", e.message);
        let e = credential_process("p", "tool 'unterminated", COMMAND_TIMEOUT)
            .await
            .unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::Config);
        let e = mfa_code("  ", COMMAND_TIMEOUT).await.unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::Config);
    }

    #[tokio::test]
    async fn slow_commands_are_killed() {
        let started = std::time::Instant::now();
        let e = mfa_code("sleep 30", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::Source);
        assert!(
            e.message.contains("did not finish within 0.2 s"),
            "{}",
            e.message
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn children_do_not_inherit_the_daemons_keys() {
        let cmd = child_command("tool", &[]);
        assert_eq!(
            credd_core::child_env::removed_from(cmd.as_std()),
            credd_core::child_env::REMOVED
        );
    }

    #[tokio::test]
    async fn mfa_process_output_is_checked_not_echoed() {
        let e = mfa_code("echo canary-not-a-code", COMMAND_TIMEOUT)
            .await
            .unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::Source);
        assert_eq!(
            e.message,
            "mfa_process (`echo`) did not print an MFA code (4 to 10 digits)"
        );
    }

    #[tokio::test]
    async fn huge_output_is_refused_without_hanging() {
        let e = credential_process("p", "head -c 3000000 /dev/zero", COMMAND_TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            e.message.contains("more than 1048576 bytes"),
            "{}",
            e.message
        );
    }
}
