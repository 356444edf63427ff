//! `credd relay`: a forwarder for networks that cannot reach the host's
//! loopback (docker compose, Docker Desktop). It listens where SDKs accept
//! plain http (169.254.170.2 on the compose network) and passes each
//! credentials request, token included, to the credd daemon on the host.
//!
//! It holds no credentials and no token of its own: the daemon still checks
//! every request's token and scope. It forwards only `GET /v1/...` and sets
//! the `Host` the daemon expects; its listener has its own Host allow-list
//! and Origin refusal, applied before this handler ([`crate::server`];
//! threat-model rows 1 and 6).

use crate::api_error::ApiError;
use crate::response::Body;
use crate::server;
use ::http::{header, Method, Request, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug)]
pub struct Relay {
    /// `host:port` of the daemon, resolved at each request (it may be a
    /// name such as `host.docker.internal`).
    pub target: String,
    /// The `Host` the daemon allows (its own literal address).
    pub target_host: String,
}

impl server::Handler for Relay {
    async fn handle<B: Send + Sync>(
        &self,
        req: &Request<B>,
        _peer: SocketAddr,
    ) -> Result<Response<Body>, ApiError> {
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        if req.method() != Method::GET || !path.starts_with("/v1/") {
            return Err(ApiError::RelayRoute);
        }
        match tokio::time::timeout(Duration::from_secs(5), self.forward(req, path)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(source)) => Err(ApiError::RelayUnreachable {
                target: self.target.clone(),
                source,
            }),
            Err(_) => Err(ApiError::RelayTimeout {
                target: self.target.clone(),
            }),
        }
    }
}

impl Relay {
    /// One request to the daemon on a fresh connection. The connection is
    /// driven in this task, beside the exchange, rather than in a task of
    /// its own: it lives exactly as long as the one request, and dropping
    /// the sender at the end of the exchange lets it finish.
    async fn forward<B>(&self, req: &Request<B>, path: &str) -> std::io::Result<Response<Body>> {
        let stream = tokio::net::TcpStream::connect(&self.target).await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        let mut out = Request::get(path).header(header::HOST, &self.target_host);
        if let Some(a) = req.headers().get(header::AUTHORIZATION) {
            out = out.header(header::AUTHORIZATION, a);
        }
        let out = out
            .body(Empty::<Bytes>::new())
            .map_err(std::io::Error::other)?;
        let exchange = async move {
            let resp = send
                .send_request(out)
                .await
                .map_err(std::io::Error::other)?;
            let status = resp.status();
            let ct = resp.headers().get(header::CONTENT_TYPE).cloned();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(std::io::Error::other)?
                .to_bytes();
            let mut r = Response::new(http_body_util::Full::new(body));
            *r.status_mut() = status;
            if let Some(ct) = ct {
                r.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            Ok(r)
        };
        // The connection's own error, if any, shows in the exchange's.
        let (r, _) = tokio::join!(exchange, conn);
        r
    }
}

/// Parses `--to`: `http://HOST:PORT` (path ignored) into the address to
/// dial and the `Host` header to send.
pub fn parse_target(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("'{url}': the relay target must be http://HOST:PORT (the daemon's endpoint)")
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || !authority.contains(':') {
        return Err(format!(
            "'{url}': give the daemon's port too, e.g. http://host.docker.internal:9911"
        ));
    }
    // The daemon only answers to its literal address or localhost.
    let host_header = match authority.rsplit_once(':') {
        Some((h, port)) if h.parse::<std::net::IpAddr>().is_ok() || h.starts_with('[') => {
            format!("{h}:{port}")
        }
        Some((_, port)) => format!("localhost:{port}"),
        None => unreachable!("checked above"),
    };
    Ok((authority.to_string(), host_header))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::Guard;
    use crate::server::{serve, Endpoint, Handler};
    use http_body_util::BodyExt;
    use std::sync::Arc;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    /// A stand-in daemon: answers what it was sent (path, Host,
    /// Authorization) as JSON with a 418, so a copy is told from a
    /// relay's own answer.
    struct Echo;

    impl Handler for Echo {
        async fn handle<B: Send + Sync>(
            &self,
            req: &Request<B>,
            _peer: SocketAddr,
        ) -> Result<Response<Body>, ApiError> {
            let get = |h| {
                req.headers()
                    .get(h)
                    .map(|v| v.to_str().unwrap().to_string())
            };
            let body = serde_json::json!({
                "path": req.uri().to_string(),
                "host": get(header::HOST),
                "auth": get(header::AUTHORIZATION),
            });
            Ok(crate::response::json(
                ::http::StatusCode::IM_A_TEAPOT,
                body.to_string(),
            ))
        }
    }

    /// Starts the stand-in daemon behind its own guard, as the real one.
    async fn daemon(cancel: &CancellationToken) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let tasks = TaskTracker::new();
        let ep = Arc::new(Endpoint::new(Guard::sdks(addr), Echo));
        let limits = crate::config::Limits::default();
        tasks.spawn(serve(l, ep, limits, cancel.clone(), tasks.clone()));
        addr
    }

    fn relay(to: &str) -> Endpoint<Relay> {
        let (target, target_host) = parse_target(to).unwrap();
        Endpoint::new(
            Guard::sdks("127.0.0.1:8080".parse().unwrap()),
            Relay {
                target,
                target_host,
            },
        )
    }

    async fn ask(
        relay: &Endpoint<Relay>,
        method: Method,
        path: &str,
        auth: Option<&str>,
    ) -> (u16, String, String) {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "127.0.0.1:8080");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        let peer = "127.0.0.1:40000".parse().unwrap();
        // Far below the relay's own 5 s: the forwarded connection must not
        // outlive its one request.
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            relay.answer(&b.body(()).unwrap(), peer),
        )
        .await
        .expect("the relay answered in time");
        let status = r.status().as_u16();
        let ct = r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn forwards_get_v1_with_the_token_and_the_daemons_host() {
        let cancel = CancellationToken::new();
        let addr = daemon(&cancel).await;
        let relay = relay(&format!("http://{addr}"));
        let (status, ct, body) = ask(
            &relay,
            Method::GET,
            "/v1/credentials/dev",
            Some("credd_x_y"),
        )
        .await;
        assert_eq!((status, ct.as_str()), (418, "application/json"), "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["path"], "/v1/credentials/dev");
        assert_eq!(v["host"], addr.to_string());
        assert_eq!(v["auth"], "credd_x_y");
        // Without a token, none is made up.
        let (_, _, body) = ask(&relay, Method::GET, "/v1/credentials/dev", None).await;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["auth"],
            serde_json::Value::Null
        );
        cancel.cancel();
    }

    #[tokio::test]
    async fn refuses_other_routes_and_says_when_the_daemon_is_unreachable() {
        let cancel = CancellationToken::new();
        let addr = daemon(&cancel).await;
        let relay_ok = relay(&format!("http://{addr}"));
        for (method, path) in [
            (Method::POST, "/v1/credentials/dev"),
            (Method::GET, "/latest/meta-data/"),
        ] {
            let (status, _, body) = ask(&relay_ok, method, path, None).await;
            assert_eq!(status, 404, "{path}");
            assert!(
                body.contains("the relay forwards GET /v1/credentials/PROFILE only"),
                "{body}"
            );
        }
        cancel.cancel();
        // A port nothing listens on any more.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let gone = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let (status, _, body) = ask(
            &relay(&format!("http://{gone}")),
            Method::GET,
            "/v1/credentials/dev",
            None,
        )
        .await;
        assert_eq!(status, 502, "{body}");
        assert!(body.contains("RelayUpstreamUnreachable"), "{body}");
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("http://127.0.0.1:9911").unwrap(),
            ("127.0.0.1:9911".into(), "127.0.0.1:9911".into())
        );
        assert_eq!(
            parse_target("http://host.docker.internal:9911/v1/credentials").unwrap(),
            ("host.docker.internal:9911".into(), "localhost:9911".into())
        );
        assert!(parse_target("https://x:1").is_err());
        assert!(parse_target("http://x").is_err());
    }
}
