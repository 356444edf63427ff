//! The AWS calls of `credd keys rotate` (issue 15), as `aws-vault rotate`
//! makes them: `iam:CreateAccessKey` signed with the old key, `sts:
//! GetCallerIdentity` with the new one (retried briefly: a new IAM key takes
//! a few seconds to work everywhere), `iam:DeleteAccessKey` of the old key
//! signed with the new one, and a clean-up that deletes the new key again
//! when a later step failed. The binary orders them around the key store;
//! each failure says which key is live. No secret reaches an error.
//!
//! Endpoints by the SDKs' rules: `AWS_ENDPOINT_URL_IAM` / `AWS_ENDPOINT_URL`
//! (and `_STS` for the check), else AWS's own.

use aws_credential_types::Credentials;
use aws_runtime::env_config::EnvConfigValue;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_types::os_shim_internal::Env;
use credd_core::{LongTermKeys, SecretString};
use std::time::Duration;
use time::OffsetDateTime;

/// IAM is global; its endpoint lives in us-east-1.
const IAM_REGION: &str = "us-east-1";

/// A failed call: which one, and AWS's error code and message.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {detail}")]
pub struct RotateError {
    pub operation: &'static str,
    pub detail: String,
}

fn err<E: std::error::Error>(operation: &'static str) -> impl FnOnce(E) -> RotateError {
    move |e| {
        let mut detail = aws_smithy_types::error::display::DisplayErrorContext(&e).to_string();
        detail.truncate(300);
        RotateError { operation, detail }
    }
}

fn endpoint(env: &Env, service: &str) -> Option<String> {
    EnvConfigValue::new()
        .env("AWS_ENDPOINT_URL")
        .service_id(service)
        .load(env, None)
        .map(|(u, _)| u.trim().to_string())
        .filter(|u| !u.is_empty())
}

fn creds(keys: &LongTermKeys) -> Credentials {
    Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.expose(),
        None,
        None,
        "credd-keys-rotate",
    )
}

fn iam(keys: &LongTermKeys) -> aws_sdk_iam::Client {
    let mut b = aws_sdk_iam::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::from_static(IAM_REGION))
        .credentials_provider(creds(keys));
    b.set_endpoint_url(endpoint(&Env::real(), "IAM"));
    aws_sdk_iam::Client::from_conf(b.build())
}

fn sts(keys: &LongTermKeys, region: &str) -> aws_sdk_sts::Client {
    let mut b = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(creds(keys));
    b.set_endpoint_url(endpoint(&Env::real(), "STS"));
    aws_sdk_sts::Client::from_conf(b.build())
}

/// `iam:CreateAccessKey` for the user the old key belongs to.
pub async fn create_key(old: &LongTermKeys) -> Result<LongTermKeys, RotateError> {
    let out = iam(old)
        .create_access_key()
        .send()
        .await
        .map_err(err("iam:CreateAccessKey"))?;
    let key = out.access_key.ok_or_else(|| RotateError {
        operation: "iam:CreateAccessKey",
        detail: "the answer holds no key".into(),
    })?;
    Ok(LongTermKeys {
        access_key_id: key.access_key_id,
        secret_access_key: SecretString::new(key.secret_access_key),
    })
}

/// `sts:GetCallerIdentity` with `keys`, up to `tries` times a second
/// apart; the caller's ARN.
pub async fn verify(keys: &LongTermKeys, region: &str, tries: u32) -> Result<String, RotateError> {
    let client = sts(keys, region);
    let mut last = None;
    for i in 0..tries.max(1) {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match client.get_caller_identity().send().await {
            Ok(out) => return Ok(out.arn.unwrap_or_default()),
            Err(e) => last = Some(err("sts:GetCallerIdentity")(e)),
        }
    }
    Err(last.expect("at least one try"))
}

/// `iam:DeleteAccessKey` of `key_id`, signed with `signer`.
pub async fn delete_key(signer: &LongTermKeys, key_id: &str) -> Result<(), RotateError> {
    iam(signer)
        .delete_access_key()
        .access_key_id(key_id)
        .send()
        .await
        .map_err(err("iam:DeleteAccessKey"))?;
    Ok(())
}

/// When IAM says `keys` was created (`iam:ListAccessKeys`), where allowed.
pub async fn created(keys: &LongTermKeys) -> Result<Option<OffsetDateTime>, RotateError> {
    let out = iam(keys)
        .list_access_keys()
        .send()
        .await
        .map_err(err("iam:ListAccessKeys"))?;
    Ok(out
        .access_key_metadata
        .iter()
        .find(|m| m.access_key_id.as_deref() == Some(&keys.access_key_id))
        .and_then(|m| m.create_date)
        .and_then(|d| OffsetDateTime::from_unix_timestamp(d.secs()).ok()))
}
