//! A stand-in browser: what plays the user at a sign-in page in `credd
//! demo` and in tests. It ships with the sandbox, not the daemon: nothing
//! in the daemon ever follows a redirect. Loopback and plain http only.

/// A stand-in browser for `credd demo` and tests: GETs `url` and follows
/// redirects (plain http on loopback only, at most 5), returning the final
/// status and body. It plays the user who clicks "Allow" on a sign-in page
/// that approves automatically.
pub async fn visit(url: &str) -> Result<(u16, String), String> {
    fetch(url, &[]).await
}

/// [`visit`] with extra request headers (e.g. `Authorization` for the
/// demo's self-check of the container endpoint).
pub async fn fetch(url: &str, headers: &[(&str, &str)]) -> Result<(u16, String), String> {
    use http_body_util::{BodyExt, Empty};
    let mut url = url.to_string();
    for _ in 0..5 {
        let uri: ::http::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("only http URLs on loopback can be visited: {url}"));
        }
        let host = uri.host().unwrap_or_default();
        let ip: std::net::IpAddr = host
            .parse()
            .map_err(|_| format!("only loopback addresses can be visited: {url}"))?;
        if !ip.is_loopback() {
            return Err(format!("only loopback addresses can be visited: {url}"));
        }
        let addr = std::net::SocketAddr::new(ip, uri.port_u16().unwrap_or(80));
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        // The connection is driven in this task, beside the exchange (no task of
        // its own): it ends when the exchange is done and it is dropped.
        let exchange = async {
            let mut req = ::http::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
                .header(::http::header::HOST, addr.to_string());
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = req
                .body(Empty::<bytes::Bytes>::new())
                .map_err(|e| e.to_string())?;
            let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let location = resp
                .headers()
                .get(::http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            Ok::<_, String>((status, location, body))
        };
        tokio::pin!(exchange);
        let (status, location, body) = tokio::select! {
            biased;
            r = &mut exchange => r?,
            r = conn => match r {
                // Closed after answering: what it sent is buffered; finish reading it.
                Ok(()) => exchange.await?,
                Err(e) => return Err(e.to_string()),
            },
        };
        match (status.is_redirection(), location) {
            (true, Some(next)) => url = next,
            _ => return Ok((status.as_u16(), body)),
        }
    }
    Err("too many redirects".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot server that answers one request with `response`.
    async fn once(response: String) -> std::net::SocketAddr {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let at = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(response.as_bytes()).await.unwrap();
        });
        at
    }

    #[tokio::test]
    async fn a_redirect_is_followed_to_the_final_page() {
        let page = once(
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nSigned in".into(),
        )
        .await;
        let start = once(format!(
            "HTTP/1.1 302 Found\r\nLocation: http://{page}/done?code=abc\r\nContent-Length: 0\r\n\r\n"
        ))
        .await;
        let (status, body) = visit(&format!("http://{start}/authorize")).await.unwrap();
        assert_eq!((status, body.as_str()), (200, "Signed in"));
    }

    #[tokio::test]
    async fn only_plain_http_on_loopback_is_visited() {
        assert!(visit("http://example.com/").await.is_err());
        assert!(visit("https://127.0.0.1/").await.is_err());
        assert!(visit("http://10.0.0.1/").await.is_err());
    }
}
