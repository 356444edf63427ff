//! The container-credentials endpoint (the shape of the ECS provider that
//! every SDK speaks via `AWS_CONTAINER_CREDENTIALS_FULL_URI`):
//!
//! - `GET /v1/credentials/{profile}`: the profile's credentials; the raw
//!   token in `Authorization` must be scoped to the profile.
//! - `GET /v1/credentials`: the same for a token scoped to one profile.
//! - `GET /v1/health`: `{"status":"ok"}`, no token needed, nothing secret.
//!
//! The listener's guard has run before any of this ([`crate::server`]).
//! Errors are [`ApiError`]s, `{"code","message"}` JSON: 401 no or bad
//! token, 403 token not valid for this profile, 404 unknown profile, 503
//! with what to do.

use crate::api_error::ApiError;
use crate::audit::{AuditLog, Peer, Vend};
use crate::broker::{Broker, Lookup, ServeError};
use crate::response::{self, Body};
use crate::server;
use crate::tokens::TokenStore;
use ::http::{header, Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;

pub const CREDENTIALS_PATH: &str = "/v1/credentials";

#[derive(Debug)]
pub struct ContainerEndpoint {
    pub broker: Broker,
    pub tokens: Arc<TokenStore>,
    pub audit: Arc<AuditLog>,
    /// `limits.cold_wait`: how long a request waits for an uncached credential.
    pub cold_wait: std::time::Duration,
}

impl server::Handler for ContainerEndpoint {
    async fn handle<B: Send + Sync>(
        &self,
        req: &Request<B>,
        peer: SocketAddr,
    ) -> Result<Response<Body>, ApiError> {
        let path = req.uri().path();
        let profile_part = if path == CREDENTIALS_PATH {
            Some(None)
        } else {
            path.strip_prefix(CREDENTIALS_PATH)
                .and_then(|rest| rest.strip_prefix('/'))
                .filter(|p| !p.is_empty() && !p.contains('/'))
                .map(Some)
        };
        match (req.method(), path, profile_part) {
            (&Method::GET, "/v1/health", _) => {
                Ok(response::json(StatusCode::OK, &br#"{"status":"ok"}"#[..]))
            }
            (&Method::GET, _, Some(segment)) => self.credentials(req, segment, peer).await,
            (_, "/v1/health", _) | (_, _, Some(_)) => Err(ApiError::MethodNotAllowed),
            _ => Err(ApiError::NotFound),
        }
    }
}

impl ContainerEndpoint {
    async fn credentials<B>(
        &self,
        req: &Request<B>,
        segment: Option<&str>,
        peer: SocketAddr,
    ) -> Result<Response<Body>, ApiError> {
        let now = self.broker.now();
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        // Authenticate first (no profile), so that an unauthenticated caller
        // learns nothing about which profiles exist.
        let record = self
            .tokens
            .authorize(auth, None, now)
            .map_err(|error| ApiError::Token {
                error,
                off_loopback: !peer.ip().is_loopback(),
            })?;
        let profile = match segment {
            Some(s) => crate::segment::decode(s).ok_or(ApiError::BadPath)?,
            None => match record.profiles.as_slice() {
                [one] if one != "*" => std::borrow::Cow::Owned(one.clone()),
                _ => return Err(ApiError::ProfileRequired),
            },
        };
        let found = self.broker.lookup(&profile, now);
        if let Lookup::Unknown = found {
            return Err(ServeError::UnknownProfile(profile.into_owned()).into());
        }
        if !record.allows(&profile) {
            return Err(ApiError::TokenNotValidForProfile {
                token: record.id.clone(),
                profile: profile.into_owned(),
            });
        }
        let cached = match found {
            Lookup::Cached(c) => c,
            _ => self.broker.get_within(&profile, self.cold_wait).await?,
        };
        tracing::debug!(%peer, token = %record.id, %profile, "served");
        self.audit.record(Vend {
            at: now,
            token: Some(record),
            endpoint: "container",
            peer: Peer::Tcp(peer),
            profile: &profile,
        });
        Ok(response::json(
            StatusCode::OK,
            cached.container_body.clone(),
        ))
    }
}
