//! `credd token issue | list | revoke`: bearer tokens for the endpoints.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::cli::TokenCommand;
use crate::client::{call, parse_ttl};
use crate::output::table;
use anyhow::{Context, Result};
use credd_core::token::TokenRecord;
use credd_daemon::control::Request;
use credd_daemon::protocol::{Revoked, TokenIssued, TokenList};
use serde_json::Value;

pub async fn run(t: TokenCommand) -> Result<()> {
    match t {
        TokenCommand::Issue(a) => {
            let ttl = a.ttl.as_deref().map(parse_ttl).transpose()?;
            let v: TokenIssued = call(Request::TokenIssue {
                profiles: a.profiles,
                ttl_secs: ttl,
                label: a.label,
                docker_engine: None,
            })
            .await?;
            let (token, id) = (&v.token, &v.record.id);
            let expires = expires(&v.record);
            match a.file {
                Some(path) => {
                    // Never through a symlink, never changing a directory
                    // credd did not create, refusing one others can write
                    // to; no lock (the directory may be a shared one).
                    let opts = credd_aws::userfile::Options {
                        check_dir: true,
                        merge: true,
                        lock: false,
                        ..credd_aws::userfile::Options::private_file()
                    };
                    credd_aws::userfile::replace(&path, &opts, token.as_bytes()).with_context(
                        || {
                            format!(
                                "failed to write the token file (token {} was issued: revoke it with `credd token revoke {}`)",
                                id, id
                            )
                        },
                    )?;
                    eprintln!(
                        "token {} written to {} (expires {})",
                        id,
                        path.display(),
                        expires
                    );
                }
                None => {
                    println!("{token}");
                    eprintln!(
                        "token id {} (expires {}); revoke with `credd token revoke {}`",
                        id, expires, id,
                    );
                }
            }
        }
        TokenCommand::List(j) => {
            if j.json {
                // The records as the daemon sent them.
                let v: Value = call(Request::TokenList).await?;
                println!("{}", serde_json::to_string_pretty(&v["tokens"])?);
            } else {
                let v: TokenList = call(Request::TokenList).await?;
                let mut t = table(&["ID", "PROFILES", "EXPIRES", "LABEL"]);
                for r in &v.tokens {
                    t.add_row(vec![
                        r.id.clone(),
                        r.profiles.join(","),
                        expires(r),
                        r.label.clone(),
                    ]);
                }
                println!("{t}");
            }
        }
        TokenCommand::Revoke(a) => {
            // A whole token is sent as a value, never as an id (which an
            // error message would repeat).
            let req = match a.id {
                Some(v) if v.trim().starts_with(credd_core::token::PREFIX) => {
                    Request::TokenRevokeBy {
                        token: Some(v),
                        label: None,
                        all: false,
                    }
                }
                Some(id) => Request::TokenRevoke { id },
                None => Request::TokenRevokeBy {
                    token: None,
                    label: a.label,
                    all: a.all,
                },
            };
            let v: Revoked = call(req).await?;
            match v.ids.as_slice() {
                [] => eprintln!("no token to revoke"),
                [one] => eprintln!("token {one} revoked"),
                many => eprintln!("{} tokens revoked: {}", many.len(), many.join(", ")),
            }
        }
    }
    Ok(())
}

/// When a token expires, as the daemon wrote it (RFC 3339), or `never`.
fn expires(r: &TokenRecord) -> String {
    r.expires
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "never".into())
}
