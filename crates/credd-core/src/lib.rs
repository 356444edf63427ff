//! credd-core: domain types and pure policy for credd.
//!
//! Invariant: nothing in this crate performs I/O, reads a clock or spawns a task;
//! every input (time, randomness, profile text) is passed in, so all of it is
//! testable without sleeping or touching the file system. The exceptions
//! are the two careful file primitives every other crate uses, because
//! credd-aws and credd-daemon must share them and neither depends on the
//! other: [`regular_file`] (how user and state files are opened) and
//! [`atomic_file`] (how they are replaced).

pub mod atomic_file;
pub mod child_env;
pub mod credentials;
pub mod duration;
pub mod keys;
pub mod loader;
pub mod login;
pub mod overlay;
pub mod profile;
pub mod regular_file;
pub mod schedule;
pub mod sso;
pub mod token;
pub mod upstream;
pub mod warnings;

pub use credentials::{format_expiration, LongTermKeys, SecretString, TemporaryCredentials};
pub use loader::{LoadedPlans, Plans, ProfileLoader};
pub use upstream::{Upstream, UpstreamError, UpstreamErrorKind};
