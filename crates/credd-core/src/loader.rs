//! The third seam, beside [`crate::Upstream`] and [`crate::sso::TokenStore`]:
//! [`ProfileLoader`], how the daemon gets its profiles without knowing where
//! they come from. credd-aws implements it over `~/.aws/config` and
//! `~/.aws/credentials` (`credd_aws::AwsProfileLoader`); the daemon's tests
//! hand it fixed plans.
//!
//! It is a trait returning boxed futures rather than an `async_trait`, so that
//! the default methods need no allocation story of their own and the trait
//! stays object safe; nothing here runs anything: it only names the shape.

use crate::overlay::{Findings, ProfileSettings};
use crate::profile::{ConfigError as ProfileError, Plan};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

/// Every profile by name, resolved into a plan or the reason it cannot be.
pub type Plans = BTreeMap<String, Result<Plan, ProfileError>>;
/// A boxed, sendable future, as the [`ProfileLoader`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a [`ProfileLoader`] read: the plans to serve, and what the user
/// should hear about the files.
#[derive(Debug, Default)]
pub struct LoadedPlans {
    pub plans: Plans,
    /// Files that could not be used as they are now (half saved, a bad
    /// byte, a FIFO...), each message naming the file, line and fix; the
    /// plans come from the last good version of each such file.
    pub stale: Vec<String>,
    /// What was ignored in the files (sections with names the SDK drops,
    /// bytes that are not UTF-8 in comments), by file and line.
    pub notes: Vec<String>,
}

/// Reads the AWS config and credentials files into plans.
pub trait ProfileLoader: Send + Sync + 'static {
    /// `Err` is a message naming the file and what to fix, when there is
    /// no good version of it to fall back to (the daemon then keeps the
    /// plans it has).
    fn load(&self) -> BoxFuture<'_, Result<LoadedPlans, String>>;
    /// The files `load` reads: the daemon re-reads them when one changes.
    fn watched_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    /// The non-credential settings of `profile` (`None`: no such profile in
    /// the files), for the overlay config of `credd exec`.
    fn settings(&self, _profile: &str) -> BoxFuture<'_, Result<Option<ProfileSettings>, String>> {
        Box::pin(async { Ok(None) })
    }
    /// What in the files would win over credd where no overlay is used.
    fn findings(&self) -> BoxFuture<'_, Result<Findings, String>> {
        Box::pin(async { Ok(Default::default()) })
    }
}
