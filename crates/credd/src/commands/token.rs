//! `credd token issue | list | revoke`: bearer tokens for the endpoints.
//!
//! Layering: a command file. It imports leaves only, never another command.

use crate::cli::TokenCommand;
use crate::client::{call, parse_ttl};
use crate::output::table;
use anyhow::{Context, Result};
use credd_daemon::control::Request;
use serde_json::Value;

pub async fn run(t: TokenCommand) -> Result<()> {
    match t {
        TokenCommand::Issue(a) => {
            let ttl = a.ttl.as_deref().map(parse_ttl).transpose()?;
            let v = call(Request::TokenIssue {
                profiles: a.profiles,
                ttl_secs: ttl,
                label: a.label,
                docker_engine: None,
            })
            .await?;
            let token = v["token"].as_str().context("no token in the answer")?;
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
                                v["record"]["id"].as_str().unwrap_or("?"),
                                v["record"]["id"].as_str().unwrap_or("?")
                            )
                        },
                    )?;
                    eprintln!(
                        "token {} written to {} (expires {})",
                        v["record"]["id"].as_str().unwrap_or("?"),
                        path.display(),
                        v["record"]["expires"].as_str().unwrap_or("never")
                    );
                }
                None => {
                    println!("{token}");
                    eprintln!(
                        "token id {} (expires {}); revoke with `credd token revoke {}`",
                        v["record"]["id"].as_str().unwrap_or("?"),
                        v["record"]["expires"].as_str().unwrap_or("never"),
                        v["record"]["id"].as_str().unwrap_or("?"),
                    );
                }
            }
        }
        TokenCommand::List(j) => {
            let v = call(Request::TokenList).await?;
            if j.json {
                println!("{}", serde_json::to_string_pretty(&v["tokens"])?);
            } else {
                let mut t = table(&["ID", "PROFILES", "EXPIRES", "LABEL"]);
                for r in v["tokens"].as_array().into_iter().flatten() {
                    let profiles: Vec<&str> = r["profiles"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.as_str())
                        .collect();
                    t.add_row(vec![
                        r["id"].as_str().unwrap_or_default().to_string(),
                        profiles.join(","),
                        r["expires"].as_str().unwrap_or("never").to_string(),
                        r["label"].as_str().unwrap_or_default().to_string(),
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
            let v = call(req).await?;
            let ids: Vec<&str> = v["ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match ids.as_slice() {
                [] => eprintln!("no token to revoke"),
                [one] => eprintln!("token {one} revoked"),
                many => eprintln!("{} tokens revoked: {}", many.len(), many.join(", ")),
            }
        }
    }
    Ok(())
}
