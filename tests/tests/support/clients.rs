//! Every real client the end-to-end matrix runs, and how to start each one.
//!
//! `cargo xtask test` builds the Go SDK v2 and Java SDK v2 clients
//! (`tests/clients/go`, `tests/clients/java`) and says where they are through
//! `CREDD_TEST_GO_WHOAMI` (the binary) and `CREDD_TEST_JAVA_WHOAMI` (the
//! runnable jar); without it, the places xtask builds them in are used. Each
//! client prints sts:GetCallerIdentity's Arn as its only stdout line, and
//! takes everything (credentials, region, the STS endpoint) from its SDK's
//! default chain: nothing about credd is passed in code or in arguments.

use super::{aws_cli, clients, node, python, repo, rust_whoami, tool};
use std::ffi::OsString;
use std::path::PathBuf;

/// The Go SDK v2 client (`tests/clients/go/main.go`: `config.LoadDefaultConfig`, as
/// Terraform's AWS provider loads it).
pub fn go_whoami() -> PathBuf {
    tool(
        "CREDD_TEST_GO_WHOAMI",
        repo().join("tests/clients/go/bin/whoami"),
    )
}

/// The Java SDK v2 client's runnable jar (`tests/clients/java`:
/// `DefaultCredentialsProvider` and `StsClient`, as the JetBrains Toolkit's SDK).
pub fn java_whoami_jar() -> PathBuf {
    tool(
        "CREDD_TEST_JAVA_WHOAMI",
        repo().join("tests/clients/java/target/credd-java-whoami.jar"),
    )
}

/// The `java` launcher: `CREDD_TEST_JAVA`, or `java` on PATH.
pub fn java() -> PathBuf {
    tool("CREDD_TEST_JAVA", PathBuf::from("java"))
}

/// The JVM flags that make the short-lived client start fast; the matrix starts it
/// dozens of times. C1 only (no C2 warm-up for a run this short), the serial GC, no
/// hsperfdata file, and the class-data archive that xtask records next to the jar
/// (AppCDS), when it is there. `-Xshare:auto` falls back to no archive (silently,
/// with `cds` logging off) if the archive does not match this JVM or jar.
pub fn java_args() -> Vec<OsString> {
    let jar = java_whoami_jar();
    let mut args: Vec<OsString> = [
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        "-XX:-UsePerfData",
        "-Xshare:auto",
        "-Xlog:cds=off,cds+dynamic=off",
    ]
    .map(OsString::from)
    .into();
    let archive = jar.with_extension("jsa");
    if archive.exists() {
        let mut flag = OsString::from("-XX:SharedArchiveFile=");
        flag.push(&archive);
        args.push(flag);
    }
    args.push("-jar".into());
    args.push(jar.into());
    args
}

/// One real, unmodified client: the program and arguments that print the caller's ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whoami {
    /// boto3 (`tests/clients/whoami.py`).
    Boto3,
    /// The AWS CLI (v1, botocore): `aws sts get-caller-identity`.
    AwsCli,
    /// The AWS SDK for JavaScript v3, default chain (`tests/clients/whoami.mjs`).
    JsSdk,
    /// The legacy `fromContainerMetadata` of `@smithy/credential-provider-imds`, as the
    /// VS Code AWS Toolkit uses it (`tests/clients/legacy_container.mjs`): container
    /// endpoint only.
    LegacyJsContainer,
    /// The AWS SDK for Rust (`rust-whoami`, built with the tests).
    RustSdk,
    /// The AWS SDK for Go v2 (what Terraform's AWS provider uses).
    GoSdk,
    /// The AWS SDK for Java v2 (what the JetBrains AWS Toolkit uses).
    JavaSdk,
}

impl Whoami {
    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Whoami::Boto3 => "boto3",
            Whoami::AwsCli => "aws-cli",
            Whoami::JsSdk => "js-v3",
            Whoami::LegacyJsContainer => "js-legacy",
            Whoami::RustSdk => "rust",
            Whoami::GoSdk => "go-v2",
            Whoami::JavaSdk => "java-v2",
        }
    }

    /// The program and its arguments.
    pub fn command(self) -> (PathBuf, Vec<OsString>) {
        match self {
            Whoami::Boto3 => (python(), vec![clients().join("whoami.py").into()]),
            Whoami::AwsCli => (
                aws_cli(),
                [
                    "sts",
                    "get-caller-identity",
                    "--query",
                    "Arn",
                    "--output",
                    "text",
                ]
                .map(OsString::from)
                .into(),
            ),
            Whoami::JsSdk => (node(), vec![clients().join("whoami.mjs").into()]),
            Whoami::LegacyJsContainer => {
                (node(), vec![clients().join("legacy_container.mjs").into()])
            }
            Whoami::RustSdk => (rust_whoami(), vec![]),
            Whoami::GoSdk => (go_whoami(), vec![]),
            Whoami::JavaSdk => (java(), java_args()),
        }
    }
}
