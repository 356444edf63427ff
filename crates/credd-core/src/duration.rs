//! Session durations: parsing (`3600`, `90m`, `12h`) and AWS's bounds.

use std::time::Duration;

/// AWS's limits for `sts:GetSessionToken`.
pub const SESSION_MIN: u64 = 900;
pub const SESSION_MAX: u64 = 129_600;
pub const ROOT_SESSION_MAX: u64 = 3_600;
/// AWS caps a role session assumed with role credentials ("role chaining") at 1 h.
pub const CHAINED_ROLE_MAX: u64 = 3_600;
pub const ROLE_MIN: u64 = 900;
pub const ROLE_MAX: u64 = 43_200;
/// Default MFA / GetSessionToken session: 12 h.
pub const DEFAULT_SESSION: u64 = 43_200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error(
        "'{0}' is not a duration: use seconds (3600) or a number with s, m, h or d (90m, 12h)"
    )]
    Syntax(String),
    #[error("{what} must be between {min} and {max} seconds ({}), got {got}", human(*min, *max))]
    OutOfRange {
        what: &'static str,
        min: u64,
        max: u64,
        got: u64,
    },
}

fn human(min: u64, max: u64) -> String {
    format!("{} to {}", fmt_secs(min), fmt_secs(max))
}

/// `3600` -> `1h`, `5400` -> `1h30m`, `900` -> `15m`.
pub fn fmt_secs(s: u64) -> String {
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    for (v, u) in [(d, "d"), (h, "h"), (m, "m"), (sec, "s")] {
        if v > 0 {
            out.push_str(&format!("{v}{u}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// Parses `3600`, `3600s`, `90m`, `12h`, `7d`, or combinations such as `1h30m`.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(DurationError::Syntax(s.into()));
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mult = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(DurationError::Syntax(s.into())),
        };
        let n: u64 = num.parse().map_err(|_| DurationError::Syntax(s.into()))?;
        total = total
            .checked_add(
                n.checked_mul(mult)
                    .ok_or_else(|| DurationError::Syntax(s.into()))?,
            )
            .ok_or_else(|| DurationError::Syntax(s.into()))?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(DurationError::Syntax(s.into()));
    }
    Ok(Duration::from_secs(total))
}

/// Checks a GetSessionToken duration against AWS's rules before any call.
pub fn check_session(secs: u64, root: bool) -> Result<u64, DurationError> {
    let max = if root { ROOT_SESSION_MAX } else { SESSION_MAX };
    let what = if root {
        "an MFA session duration for the root user"
    } else {
        "an MFA/GetSessionToken session duration"
    };
    range(what, secs, SESSION_MIN, max)
}

/// Checks an AssumeRole duration (the role's own maximum is enforced by AWS).
pub fn check_role(secs: u64) -> Result<u64, DurationError> {
    range("a role session duration", secs, ROLE_MIN, ROLE_MAX)
}

fn range(what: &'static str, got: u64, min: u64, max: u64) -> Result<u64, DurationError> {
    if (min..=max).contains(&got) {
        Ok(got)
    } else {
        Err(DurationError::OutOfRange {
            what,
            min,
            max,
            got,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert_eq!(parse("3600").unwrap().as_secs(), 3600);
        assert_eq!(parse("90m").unwrap().as_secs(), 5400);
        assert_eq!(parse("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse("2d").unwrap().as_secs(), 172_800);
        assert!(parse("12x").is_err());
        assert!(parse("h").is_err());
        assert!(parse("").is_err());
        assert!(parse("12h5").is_err());
    }

    #[test]
    fn session_bounds() {
        assert!(check_session(899, false).is_err());
        assert!(check_session(900, false).is_ok());
        assert!(check_session(129_600, false).is_ok());
        assert!(check_session(129_601, false).is_err());
        assert!(check_session(3600, true).is_ok());
        let e = check_session(3601, true).unwrap_err().to_string();
        assert!(e.contains("root user") && e.contains("15m to 1h"), "{e}");
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_secs(5400), "1h30m");
        assert_eq!(fmt_secs(0), "0s");
    }
}
