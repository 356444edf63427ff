//! Warnings ahead of a session that needs the user (an MFA session, an IAM
//! Identity Center session that cannot be refreshed, an `aws login`
//! session): pure policy, with the times given, so that which warning is
//! due when is tested without a clock. The daemon's `warnings.rs` schedules
//! them as deadlines and says them (a notification and a log line).
//!
//! A cadence is a list of leads before the end (default 1 h, 15 min,
//! 5 min). They cut the time before the end into windows: window `i` runs
//! from `end - lead[i]` to the next lead (the last one to the end). At most
//! one warning is given per window, and a daemon that starts (or a session
//! that begins) inside a late window warns once for that window, never for
//! the earlier ones it missed.

use time::{Duration, OffsetDateTime};

/// The kinds of session a person keeps alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionKind {
    /// An MFA session (`GetSessionToken` with a code): a new code renews it.
    Mfa,
    /// An IAM Identity Center session: a new sign-in renews it.
    Sso,
    /// An `aws login` session: a new sign-in renews it.
    Login,
}

impl SessionKind {
    /// As it appears in `credd status --json` and `credd.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Mfa => "mfa",
            SessionKind::Sso => "sso",
            SessionKind::Login => "login",
        }
    }
}

/// When to warn: leads before the end, longest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cadence {
    leads: Vec<Duration>,
}

impl Default for Cadence {
    fn default() -> Self {
        Self::new(vec![
            Duration::hours(1),
            Duration::minutes(15),
            Duration::minutes(5),
        ])
    }
}

impl Cadence {
    /// Leads in any order; zero or negative ones and duplicates are dropped.
    pub fn new(mut leads: Vec<Duration>) -> Self {
        leads.retain(|d| d.is_positive());
        leads.sort_by(|a, b| b.cmp(a));
        leads.dedup();
        Self { leads }
    }

    pub fn leads(&self) -> &[Duration] {
        &self.leads
    }

    /// The window `now` is in, for a session ending at `end`: `None` before
    /// the first lead and once the session has ended.
    pub fn window(&self, end: OffsetDateTime, now: OffsetDateTime) -> Option<usize> {
        if now >= end {
            return None;
        }
        self.leads.iter().rposition(|lead| now >= end - *lead)
    }

    /// The warning due at `now`, if any: the current window, when no
    /// warning was given in it or a later one (`warned`: the window of the
    /// last warning for this same end).
    pub fn due(
        &self,
        end: OffsetDateTime,
        now: OffsetDateTime,
        warned: Option<usize>,
    ) -> Option<usize> {
        let w = self.window(end, now)?;
        warned.is_none_or(|last| w > last).then_some(w)
    }

    /// When the next warning falls due after `now` (the deadline to sleep
    /// until): `now` itself when one is due, else the start of the first
    /// window after `warned` still ahead, else `None`.
    pub fn next_at(
        &self,
        end: OffsetDateTime,
        now: OffsetDateTime,
        warned: Option<usize>,
    ) -> Option<OffsetDateTime> {
        if self.due(end, now, warned).is_some() {
            return Some(now);
        }
        self.leads
            .iter()
            .enumerate()
            .filter(|(i, _)| warned.is_none_or(|last| *i > last))
            .map(|(_, lead)| end - *lead)
            .find(|at| *at > now)
    }
}

/// The text of a warning: what ends, when, and the one command that renews
/// it. Never holds a secret (names and commands only).
pub fn message(kind: SessionKind, name: &str, left: Duration, command: &str) -> (String, String) {
    let what = match kind {
        SessionKind::Mfa => "MFA session",
        SessionKind::Sso => "IAM Identity Center session",
        SessionKind::Login => "AWS sign-in session",
    };
    let mins = (left.whole_seconds().max(0) + 59) / 60;
    let left = if mins >= 60 && mins % 60 == 0 {
        format!("{} h", mins / 60)
    } else {
        format!("{mins} min")
    };
    (
        format!("credd: {what} ends in {left}"),
        format!("The {what} {name} ends in {left}: run `{command}` to renew it."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const END: OffsetDateTime = datetime!(2026-11-23 21:00 UTC);

    #[test]
    fn windows_follow_the_leads() {
        let c = Cadence::default();
        assert_eq!(c.window(END, END - Duration::hours(2)), None);
        assert_eq!(c.window(END, END - Duration::hours(1)), Some(0));
        assert_eq!(c.window(END, END - Duration::minutes(16)), Some(0));
        assert_eq!(c.window(END, END - Duration::minutes(15)), Some(1));
        assert_eq!(c.window(END, END - Duration::minutes(4)), Some(2));
        assert_eq!(c.window(END, END), None, "ended: nothing to warn of");
    }

    #[test]
    fn one_warning_per_window_and_none_for_missed_windows() {
        let c = Cadence::default();
        let at = |m: i64| END - Duration::minutes(m);
        assert_eq!(c.due(END, at(90), None), None);
        assert_eq!(c.due(END, at(59), None), Some(0));
        assert_eq!(c.due(END, at(30), Some(0)), None, "already warned");
        assert_eq!(c.due(END, at(14), Some(0)), Some(1));
        // Started 10 min before the end: one warning, for window 1 only.
        assert_eq!(c.due(END, at(10), None), Some(1));
        assert_eq!(c.due(END, at(6), Some(1)), None);
        assert_eq!(c.due(END, at(5), Some(1)), Some(2));
    }

    #[test]
    fn the_next_deadline_is_the_next_window_start() {
        let c = Cadence::default();
        let twelve = END - Duration::hours(12);
        assert_eq!(c.next_at(END, twelve, None), Some(END - Duration::hours(1)));
        let in_first = END - Duration::minutes(50);
        assert_eq!(c.next_at(END, in_first, None), Some(in_first), "due now");
        assert_eq!(
            c.next_at(END, in_first, Some(0)),
            Some(END - Duration::minutes(15))
        );
        assert_eq!(c.next_at(END, END - Duration::minutes(1), Some(2)), None);
        assert_eq!(Cadence::new(vec![]).next_at(END, twelve, None), None);
    }

    #[test]
    fn a_day_of_one_minute_steps_warns_exactly_three_times() {
        let c = Cadence::default();
        let mut warned = None;
        let mut times = vec![];
        let mut now = END - Duration::hours(12);
        while now < END + Duration::minutes(5) {
            if let Some(w) = c.due(END, now, warned) {
                warned = Some(w);
                times.push((END - now).whole_minutes());
            }
            now += Duration::minutes(1);
        }
        assert_eq!(times, vec![60, 15, 5]);
    }

    #[test]
    fn leads_are_sorted_and_cleaned() {
        let c = Cadence::new(vec![
            Duration::minutes(5),
            Duration::hours(1),
            Duration::ZERO,
            Duration::minutes(5),
        ]);
        assert_eq!(c.leads(), &[Duration::hours(1), Duration::minutes(5)]);
    }

    #[test]
    fn messages_name_the_command() {
        let (title, body) = message(
            SessionKind::Mfa,
            "dev",
            Duration::minutes(15),
            "credd mfa dev",
        );
        assert_eq!(title, "credd: MFA session ends in 15 min");
        assert!(body.contains("run `credd mfa dev`"), "{body}");
        let (title, _) = message(
            SessionKind::Sso,
            "work",
            Duration::hours(1),
            "credd login work",
        );
        assert_eq!(title, "credd: IAM Identity Center session ends in 1 h");
    }
}
