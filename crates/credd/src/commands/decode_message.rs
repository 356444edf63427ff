//! `credd decode-message PROFILE MESSAGE`: `sts:DecodeAuthorizationMessage`
//! with the profile's credentials (from the daemon; an IAM user's bare keys
//! from the AWS files, as `GetSessionToken` credentials may not call it),
//! the decoded document pretty-printed with the denied action and resource
//! first.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::client::{call, daemon_credentials};
use anyhow::{anyhow, bail, Context, Result};
use credd_aws::{AwsUpstream, ProfileEnv};
use credd_core::upstream::{CallContext, SourceCredentials};
use credd_daemon::control::Request;
use credd_daemon::protocol::EndpointReply;
use serde_json::Value;
use std::io::Read;

pub async fn run(a: crate::cli::DecodeMessageArgs) -> Result<()> {
    let message = if a.message == "-" {
        let mut m = String::new();
        std::io::stdin()
            .read_to_string(&mut m)
            .context("failed to read the message from standard input")?;
        m
    } else {
        a.message
    };
    let message = message.trim();
    if message.is_empty() {
        bail!(
            "the message is empty: pass the encoded message from the error, or `-` and pipe it in"
        );
    }
    let ep: EndpointReply = call(Request::Endpoint {
        profile: Some(a.profile.clone()),
    })
    .await?;
    let profile_env = ProfileEnv::from_process_env();
    let creds = match credd_aws::federation::bare_user_keys(&profile_env, &a.profile).await {
        Some((keys, _)) => SourceCredentials::LongTerm(keys),
        None => SourceCredentials::Temporary(daemon_credentials(&a.profile).await?),
    };
    let upstream = AwsUpstream::new(profile_env);
    let ctx = CallContext {
        profile: a.profile.clone(),
        region: ep.region,
    };
    let decoded = upstream
        .decode_authorization_message(&ctx, &creds, message)
        .await
        .map_err(|e| anyhow!("{}", e.message))
        .with_context(|| format!("failed to decode the message with profile '{}'", a.profile))?;
    println!("{}", pretty(&decoded)?);
    Ok(())
}

/// The decoded document, pretty, as one JSON object: `deniedAction` and
/// `deniedResource` (from its `context`) first, then its own keys in the
/// order STS sent them (which serde_json's `Value` would sort).
fn pretty(decoded: &str) -> Result<String> {
    let doc: Ordered =
        serde_json::from_str(decoded).context("STS returned a decoded message that is not JSON")?;
    let Ordered::Object(fields) = doc else {
        return Ok(serde_json::to_string_pretty(&doc)?);
    };
    let context = fields.iter().find_map(|(k, v)| match v {
        Ordered::Object(c) if k == "context" => Some(c),
        _ => None,
    });
    let mut out = Vec::new();
    for (key, name) in [("action", "deniedAction"), ("resource", "deniedResource")] {
        if let Some((_, v)) = context.and_then(|c| c.iter().find(|(k, _)| k == key)) {
            out.push((name.to_string(), v.clone()));
        }
    }
    out.extend(fields.iter().cloned());
    Ok(serde_json::to_string_pretty(&Ordered::Object(out))?)
}

/// JSON whose objects keep their keys' order (serde_json's `Value` sorts
/// them unless the crate-wide `preserve_order` feature is on, which would
/// change the daemon's wire bytes).
#[derive(Debug, Clone)]
enum Ordered {
    Object(Vec<(String, Ordered)>),
    Array(Vec<Ordered>),
    Scalar(Value),
}

impl serde::Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Ordered::Object(fields) => {
                let mut m = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            Ordered::Array(items) => {
                let mut q = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    q.serialize_element(v)?;
                }
                q.end()
            }
            Ordered::Scalar(v) => v.serialize(s),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Ordered, A::Error> {
                let mut fields = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Ordered>()? {
                    fields.push((k, v));
                }
                Ok(Ordered::Object(fields))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = a.next_element::<Ordered>()? {
                    items.push(v);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(
                    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
                ))
            }
            fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::String(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::String(v)))
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::Null))
            }
        }
        d.deserialize_any(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_denied_action_and_resource_come_first_then_the_document_in_order() {
        let doc = r#"{"allowed":false,"explicitDeny":false,"matchedStatements":{"items":[]},
            "failures":{"items":[]},"context":{"principal":{"id":"AIDA","arn":"arn:aws:iam::1:user/u"},
            "action":"ec2:RunInstances","resource":"arn:aws:ec2:us-east-1:1:instance/*","conditions":{"items":[]}}}"#;
        let out = pretty(doc).unwrap();
        let keys: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("  \""))
            .map(|l| l.trim().split('"').nth(1).unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "deniedAction",
                "deniedResource",
                "allowed",
                "explicitDeny",
                "matchedStatements",
                "failures",
                "context"
            ]
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["deniedAction"], "ec2:RunInstances");
        assert_eq!(v["deniedResource"], "arn:aws:ec2:us-east-1:1:instance/*");
        assert_eq!(v["context"]["principal"]["arn"], "arn:aws:iam::1:user/u");
        // The context's own order is kept too.
        let ctx = &out[out.find("\"context\"").unwrap()..];
        assert!(ctx.find("principal").unwrap() < ctx.find("conditions").unwrap());
    }

    #[test]
    fn a_document_without_context_is_printed_as_it_is() {
        assert_eq!(
            pretty("[1, 2.5, null]").unwrap(),
            "[\n  1,\n  2.5,\n  null\n]"
        );
        assert_eq!(
            pretty(r#"{"b":1,"a":2}"#).unwrap(),
            "{\n  \"b\": 1,\n  \"a\": 2\n}"
        );
        assert!(pretty("not json").is_err());
    }
}
