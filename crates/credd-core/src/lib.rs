//! credd-core: domain types and pure policy for credd.
//!
//! Invariant: nothing in this crate performs I/O, reads a clock or spawns a task;
//! every input (time, randomness, profile text) is passed in, so all of it is
//! testable without sleeping or touching the file system. The one exception
//! is [`regular_file`], the careful open every other crate reads user and
//! state files with.

pub mod child_env;
pub mod credentials;
pub mod duration;
pub mod loader;
pub mod overlay;
pub mod profile;
pub mod regular_file;
pub mod schedule;
pub mod sso;
pub mod token;
pub mod upstream;

pub use credentials::{format_expiration, LongTermKeys, SecretString, TemporaryCredentials};
pub use loader::{LoadedPlans, Plans, ProfileLoader};
pub use upstream::{Upstream, UpstreamError, UpstreamErrorKind};
