//! The container-credentials endpoint (the shape of the ECS provider that
//! every SDK speaks via `AWS_CONTAINER_CREDENTIALS_FULL_URI`):
//!
//! - `GET /v1/credentials/{profile}`: the profile's credentials; the raw
//!   token in `Authorization` must be scoped to the profile.
//! - `GET /v1/credentials`: the same for a token scoped to one profile.
//! - `GET /v1/health`: `{"status":"ok"}`, no token needed, nothing secret.
//!
//! Errors are `{"code","message"}` JSON: 401 no or bad token, 403 token not
//! valid for this profile, 404 unknown profile, 503 with what to do.

use crate::audit::{AuditLog, Peer, Vend};
use crate::broker::{Broker, Lookup, ServeError};
use crate::server::{self, Body, HostAllowList};
use crate::tokens::{AuthError, TokenStore};
use ::http::{header, Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;

pub const CREDENTIALS_PATH: &str = "/v1/credentials";

#[derive(Debug)]
pub struct ContainerEndpoint {
    pub broker: Broker,
    pub tokens: Arc<TokenStore>,
    pub hosts: HostAllowList,
    pub audit: Arc<AuditLog>,
    /// `limits.cold_wait`: how long a request waits for an uncached credential.
    pub cold_wait: std::time::Duration,
}

impl server::Handler for ContainerEndpoint {
    async fn handle(
        &self,
        req: Request<hyper::body::Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        self.route(&req, peer).await
    }
}

impl ContainerEndpoint {
    /// Routes one request; generic over the body (never read) so tests can
    /// call it without a socket.
    pub async fn route<B>(&self, req: &Request<B>, peer: SocketAddr) -> Response<Body> {
        if let Err(r) = server::guard(&self.hosts, req) {
            tracing::info!(%peer, status = 403, "refused by guard");
            return r;
        }
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
                server::json(StatusCode::OK, &br#"{"status":"ok"}"#[..])
            }
            (&Method::GET, _, Some(segment)) => self.credentials(req, segment, peer).await,
            (_, "/v1/health", _) | (_, _, Some(_)) => server::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "only GET is served here",
            ),
            _ => server::error(
                StatusCode::NOT_FOUND,
                "NotFound",
                "no such route: credentials are at /v1/credentials/PROFILE",
            ),
        }
    }

    async fn credentials<B>(
        &self,
        req: &Request<B>,
        segment: Option<&str>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let now = self.broker.now();
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        // Authenticate first (no profile), so that an unauthenticated caller
        // learns nothing about which profiles exist.
        let record = match self.tokens.authorize(auth, None, now) {
            Ok(r) => r,
            Err(e) => return auth_error(e, peer),
        };
        let profile =
            match segment {
                Some(s) => match server::percent_decode(s) {
                    Some(p) => p,
                    None => {
                        return server::error(
                            StatusCode::BAD_REQUEST,
                            "BadPath",
                            "malformed profile name",
                        )
                    }
                },
                None => match record.profiles.as_slice() {
                    [one] if one != "*" => std::borrow::Cow::Owned(one.clone()),
                    _ => return server::error(
                        StatusCode::BAD_REQUEST,
                        "ProfileRequired",
                        "this token is valid for several profiles: ask for /v1/credentials/PROFILE",
                    ),
                },
            };
        let found = self.broker.lookup(&profile, now);
        if let Lookup::Unknown = found {
            let e = ServeError::UnknownProfile(profile.into_owned());
            return server::error(StatusCode::NOT_FOUND, e.code(), &e.to_string());
        }
        if !record.allows(&profile) {
            tracing::info!(%peer, token = %record.id, %profile, "token not valid for profile");
            return server::error(
                StatusCode::FORBIDDEN,
                "TokenNotValidForProfile",
                &format!("this token is not valid for profile '{profile}': issue one with `credd token issue --profile {profile}`"),
            );
        }
        let cached = match found {
            Lookup::Cached(c) => Ok(c),
            _ => self.broker.get_within(&profile, self.cold_wait).await,
        };
        match cached {
            Ok(c) => {
                tracing::debug!(%peer, token = %record.id, %profile, "served");
                self.audit.record(Vend {
                    at: now,
                    token: Some(record),
                    endpoint: "container",
                    peer: Peer::Tcp(peer),
                    profile: &profile,
                });
                server::json(StatusCode::OK, c.container_body.clone())
            }
            Err(e) => serve_error(&e),
        }
    }
}

pub fn serve_error(e: &ServeError) -> Response<Body> {
    let status = match e {
        ServeError::UnknownProfile(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut r = server::error(status, e.code(), &e.to_string());
    // SDKs retry on their own; this says when there is something to get.
    let retry_after = match e {
        ServeError::FetchInProgress {
            retry_after_secs, ..
        } => Some(*retry_after_secs),
        ServeError::Stopping(_) => Some(1),
        _ => None,
    };
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, ::http::HeaderValue::from(s));
    }
    r
}

fn auth_error(e: AuthError, peer: SocketAddr) -> Response<Body> {
    tracing::info!(%peer, reason = ?e, "refused: bad or missing token");
    let (status, code, msg) = match e {
        // Off loopback the caller is a container (behind `credd docker
        // setup`'s DNAT): point it at what gives a container its token.
        AuthError::Missing if !peer.ip().is_loopback() => (
            StatusCode::UNAUTHORIZED,
            "TokenRequired",
            "no Authorization header: a container gets its token from `credd docker run PROFILE ...` or `docker run $(credd docker args PROFILE) ...` (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)",
        ),
        AuthError::Missing => (
            StatusCode::UNAUTHORIZED,
            "TokenRequired",
            "no Authorization header: set AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (see `credd env PROFILE`)",
        ),
        AuthError::Invalid => (
            StatusCode::UNAUTHORIZED,
            "TokenInvalid",
            "the token is not valid (unknown, revoked or malformed): issue a new one with `credd token issue`",
        ),
        AuthError::Expired => (
            StatusCode::UNAUTHORIZED,
            "TokenExpired",
            "the token has expired: issue a new one with `credd token issue`",
        ),
        AuthError::Forbidden => (
            StatusCode::FORBIDDEN,
            "TokenNotValidForProfile",
            "this token is not valid for this profile",
        ),
    };
    server::error(status, code, msg)
}
