//! The IMDSv2 emulation, for clients that only know the EC2 instance
//! metadata provider (`AWS_EC2_METADATA_SERVICE_ENDPOINT`). Off unless
//! configured, on its own listener, serving one profile.
//!
//! Session tokens come only from `PUT /latest/api/token` (TTL 1..21600, the
//! TTL header echoed; a PUT carrying `X-Forwarded-For` is refused), are held
//! as digests and required on every GET (401 otherwise) unless IMDSv1 is
//! explicitly allowed. Threat-model row 2.
//!
//! The listener's guard has run before any of this ([`crate::server`]).
//! Refusals are IMDS's own plain text ([`ImdsError`]); a credential that
//! cannot be served is the container endpoint's JSON error.

use crate::api_error::{ApiError, ImdsError};
use crate::audit::{AuditLog, Peer, Vend};
use crate::broker::Broker;
use crate::response::{text, Body};
use crate::server;
use ::http::{HeaderValue, Method, Request, Response, StatusCode};
use credd_core::format_expiration;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use time::OffsetDateTime;

const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug)]
pub struct ImdsEndpoint {
    pub broker: Broker,
    pub profile: String,
    pub allow_imdsv1: bool,
    /// `limits.cold_wait`: how long a request waits for an uncached credential.
    pub cold_wait: std::time::Duration,
    audit: std::sync::Arc<AuditLog>,
    sessions: Mutex<HashMap<[u8; 32], OffsetDateTime>>,
}

impl server::Handler for ImdsEndpoint {
    async fn handle<B: Send + Sync>(
        &self,
        req: &Request<B>,
        peer: SocketAddr,
    ) -> Result<Response<Body>, ApiError> {
        let path = req.uri().path();
        let trimmed = path.trim_end_matches('/');
        match *req.method() {
            Method::PUT if trimmed == "/latest/api/token" => self.put_token(req),
            Method::GET => {
                self.check_session(req)?;
                self.get(trimmed, peer).await
            }
            _ => Err(ImdsError::MethodNotAllowed.into()),
        }
    }
}

impl ImdsEndpoint {
    pub fn new(
        broker: Broker,
        profile: String,
        allow_imdsv1: bool,
        audit: std::sync::Arc<AuditLog>,
    ) -> Self {
        Self {
            audit,
            broker,
            profile,
            allow_imdsv1,
            cold_wait: crate::config::Limits::default().cold_wait,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn put_token<B>(&self, req: &Request<B>) -> Result<Response<Body>, ApiError> {
        if req.headers().contains_key("x-forwarded-for") {
            return Err(ImdsError::Forbidden.into());
        }
        let ttl = req
            .headers()
            .get(TTL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|t| (1..=21_600).contains(t));
        let Some(ttl) = ttl else {
            return Err(ImdsError::BadRequest.into());
        };
        let mut raw = [0u8; 32];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut raw[..]);
        let token = hex::encode(raw);
        let now = self.broker.now();
        {
            let mut s = self.sessions.lock().unwrap();
            if s.len() >= MAX_SESSIONS {
                s.retain(|_, exp| *exp > now);
            }
            if s.len() >= MAX_SESSIONS {
                // Still full of live sessions: drop the one closest to expiry.
                if let Some(k) = s.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) {
                    s.remove(&k);
                }
            }
            s.insert(
                Sha256::digest(token.as_bytes()).into(),
                now + time::Duration::seconds(ttl),
            );
        }
        let mut r = text(StatusCode::OK, token);
        r.headers_mut().insert(TTL_HEADER, HeaderValue::from(ttl));
        Ok(r)
    }

    fn check_session<B>(&self, req: &Request<B>) -> Result<(), ApiError> {
        let unauthorized = || ApiError::Imds(ImdsError::Unauthorized);
        let Some(tok) = req.headers().get(TOKEN_HEADER) else {
            return if self.allow_imdsv1 {
                Ok(())
            } else {
                Err(unauthorized())
            };
        };
        let digest: [u8; 32] = Sha256::digest(tok.as_bytes()).into();
        let now = self.broker.now();
        match self.sessions.lock().unwrap().get(&digest) {
            Some(exp) if *exp > now => Ok(()),
            _ => Err(unauthorized()),
        }
    }

    fn region(&self) -> String {
        self.broker
            .region(&self.profile)
            .unwrap_or_else(|| "us-east-1".into())
    }

    async fn get(&self, path: &str, peer: SocketAddr) -> Result<Response<Body>, ApiError> {
        const CREDS: &str = "/latest/meta-data/iam/security-credentials";
        const CREDS_EXT: &str = "/latest/meta-data/iam/security-credentials-extended";
        match path {
            CREDS | CREDS_EXT => Ok(text(StatusCode::OK, self.profile.clone())),
            p if p
                .strip_prefix(CREDS_EXT)
                .or_else(|| p.strip_prefix(CREDS))
                .and_then(|r| r.strip_prefix('/'))
                .is_some() =>
            {
                // Exactly one segment after the listing, naming our profile.
                let name = p
                    .strip_prefix(CREDS_EXT)
                    .or_else(|| p.strip_prefix(CREDS))
                    .and_then(|r| r.strip_prefix('/'))
                    .unwrap_or_default();
                if name != self.profile {
                    return Err(ImdsError::NotFound.into());
                }
                let c = self
                    .broker
                    .get_within(&self.profile, self.cold_wait)
                    .await?;
                self.audit.record(Vend {
                    at: self.broker.now(),
                    profile: &self.profile,
                    token: None,
                    endpoint: "imds",
                    peer: Peer::Tcp(peer),
                });
                Ok(text(
                    StatusCode::OK,
                    serde_json::to_vec_pretty(&c.imds_json()).expect("serializes"),
                ))
            }
            "/latest/meta-data/iam/info" => {
                let account = self.account().await;
                let body = serde_json::json!({
                    "Code": "Success",
                    "LastUpdated": format_expiration(self.broker.now()),
                    "InstanceProfileArn": format!("arn:aws:iam::{account}:instance-profile/{}", self.profile),
                    "InstanceProfileId": "AIPACREDDLOCAL000000",
                });
                Ok(text(
                    StatusCode::OK,
                    serde_json::to_vec_pretty(&body).expect("serializes"),
                ))
            }
            "/latest/meta-data/placement/region" => Ok(text(StatusCode::OK, self.region())),
            "/latest/meta-data/placement/availability-zone" => {
                Ok(text(StatusCode::OK, format!("{}a", self.region())))
            }
            "/latest/meta-data/instance-id" => Ok(text(StatusCode::OK, "i-0000000000c4edd00")),
            "/latest/dynamic/instance-identity/document" => {
                let region = self.region();
                let body = serde_json::json!({
                    "accountId": self.account().await,
                    "architecture": std::env::consts::ARCH,
                    "availabilityZone": format!("{region}a"),
                    "imageId": "ami-00000000000000000",
                    "instanceId": "i-0000000000c4edd00",
                    "instanceType": "t3.micro",
                    "pendingTime": "2026-01-01T00:00:00Z",
                    "privateIp": "127.0.0.1",
                    "region": region,
                    "version": "2017-09-30",
                });
                Ok(text(
                    StatusCode::OK,
                    serde_json::to_vec_pretty(&body).expect("serializes"),
                ))
            }
            _ => Err(ImdsError::NotFound.into()),
        }
    }

    async fn account(&self) -> String {
        match self.broker.cached(&self.profile) {
            Some(c) => c.creds.account_id().unwrap_or("000000000000").to_string(),
            None => "000000000000".into(),
        }
    }
}
