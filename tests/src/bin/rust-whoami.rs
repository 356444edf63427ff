//! Print the caller's ARN, as the AWS SDK for Rust sees it.
//!
//! An unmodified Rust SDK client for credd's end-to-end tests: credentials, region and
//! the STS endpoint all come from `aws-config`'s default chain, i.e. from the
//! environment the test sets (`AWS_CONTAINER_CREDENTIALS_FULL_URI` +
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL_STS`, ...). Nothing is passed in code.
//!
//! Usage: `rust-whoami` (no arguments).
//! Output: the ARN from `sts:GetCallerIdentity` as the single line on stdout; exit 0.
//! On error: the error and its sources on stderr; exit 1.

use std::process::ExitCode;

use aws_config::BehaviorVersion;
use aws_sdk_sts::error::DisplayErrorContext;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if std::env::args_os().len() > 1 {
        eprintln!("rust-whoami: takes no arguments; configure it through the environment");
        return ExitCode::from(2);
    }
    let conf = aws_config::load_defaults(BehaviorVersion::latest()).await;
    match aws_sdk_sts::Client::new(&conf)
        .get_caller_identity()
        .send()
        .await
    {
        Ok(out) => match out.arn() {
            Some(arn) => {
                println!("{arn}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("rust-whoami: GetCallerIdentity returned no Arn");
                ExitCode::FAILURE
            }
        },
        Err(err) => {
            eprintln!("rust-whoami: {}", DisplayErrorContext(&err));
            ExitCode::FAILURE
        }
    }
}
