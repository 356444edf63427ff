//! The CLI's one reader of the wall clock, so that every "now" in a command
//! comes from one place (and a lint can ban the others).
//!
//! Layering: a leaf; it imports nothing from this crate.

/// The current time, in UTC. The CLI's commands are one-shot processes: they
/// read the wall clock here rather than through the daemon's injected `Clock`.
#[allow(clippy::disallowed_methods)]
pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
