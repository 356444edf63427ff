//! The checks every request on a listener passes before any handler sees
//! it, applied by the accept path in [`crate::server`] and nowhere else:
//!
//! - the connection's peer socket belongs to this user or root (loopback
//!   listeners on Linux, `limits.same_user_only`; threat-model row 20),
//!   asked once per connection;
//! - an exact `Host` allow-list (DNS rebinding, threat-model row 1);
//! - no `Origin` header on the SDK-facing listeners: SDKs never send one,
//!   web pages do (threat-model row 15).
//!
//! Refusals are [`ApiError`]s, so they are logged and written like every
//! other error.

use crate::api_error::{ApiError, PageError};
use ::http::{header, HeaderValue, Request};
use std::net::SocketAddr;

/// The `Host` values a listener answers to: its literal address and port,
/// `localhost:PORT` on loopback, and the bare address on port 80.
#[derive(Debug, Clone)]
pub struct HostAllowList(Vec<String>);

impl HostAllowList {
    pub fn for_addr(addr: SocketAddr) -> Self {
        let mut set = Vec::new();
        let ip = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        set.push(format!("{ip}:{}", addr.port()));
        if addr.ip().is_loopback() {
            set.push(format!("localhost:{}", addr.port()));
        }
        // The ECS link-local addresses are reached on port 80, directly or
        // through `credd docker setup`'s DNAT to an unprivileged port.
        if crate::config::is_local(&addr) && !addr.ip().is_loopback() {
            set.push(ip.clone());
        }
        if addr.port() == 80 {
            set.push(ip);
            if addr.ip().is_loopback() {
                set.push("localhost".into());
            }
        }
        set.dedup();
        Self(set)
    }

    /// Exactly these names (for tests whose requests say `Host: x`).
    #[cfg(test)]
    pub(crate) fn exactly(names: &[&str]) -> Self {
        Self(names.iter().map(|n| n.to_string()).collect())
    }

    pub fn allows(&self, host: Option<&HeaderValue>) -> bool {
        // At most four lower-case names: a scan beats hashing.
        host.is_some_and(|h| {
            let h = h.as_bytes();
            self.0.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(h))
        })
    }
}

/// Who a listener is for, which decides the checks and how a refusal reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callers {
    /// AWS SDKs and tools (the container endpoint, IMDS, the relay): a
    /// request carrying `Origin` comes from a web page and is refused, and
    /// refusals are JSON.
    Sdks,
    /// A browser sent back by a sign-in page (the login callback): it is a
    /// top-level navigation, so `Origin` is not a sign of a web page here,
    /// and a refusal is a line of text for a person.
    Browser,
}

/// One listener's request guard.
#[derive(Debug, Clone)]
pub struct Guard {
    hosts: HostAllowList,
    callers: Callers,
}

impl Guard {
    pub fn new(hosts: HostAllowList, callers: Callers) -> Self {
        Self { hosts, callers }
    }

    /// The guard of an SDK-facing listener bound to `addr`.
    pub fn sdks(addr: SocketAddr) -> Self {
        Self::new(HostAllowList::for_addr(addr), Callers::Sdks)
    }

    /// The checks every request passes before routing.
    pub fn check<B>(&self, req: &Request<B>) -> Result<(), ApiError> {
        if !self.hosts.allows(req.headers().get(header::HOST)) {
            return Err(match self.callers {
                Callers::Sdks => ApiError::HostNotAllowed,
                Callers::Browser => ApiError::Page(PageError::WrongHost),
            });
        }
        if self.callers == Callers::Sdks && req.headers().contains_key(header::ORIGIN) {
            return Err(ApiError::OriginNotAllowed);
        }
        Ok(())
    }
}

/// Whether the socket at `peer` belongs to this user (or to root); logged
/// when not. `Err` carries the owner's uid when it could be found, for
/// [`ApiError::PeerNotAllowed`], the answer to every request on the
/// connection. Root is let in: it can read the token files and the
/// daemon's memory anyway, and it is who host-network containers of a
/// rootful docker run as (`credd docker run` without `docker setup`).
pub fn same_user(local: SocketAddr, peer: SocketAddr, me: u32) -> Result<(), Option<u32>> {
    match crate::peer_uid::owner(local, peer) {
        Ok(uid) if uid == me || uid == 0 => Ok(()),
        Ok(uid) => {
            tracing::warn!(%peer, uid, "refused a connection from another user's socket");
            Err(Some(uid))
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot tell who owns the peer's socket; refused");
            Err(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_allow_list_is_exact() {
        let l = HostAllowList::for_addr("127.0.0.1:9911".parse().unwrap());
        let ok = |h: &str| l.allows(Some(&HeaderValue::from_str(h).unwrap()));
        assert!(ok("127.0.0.1:9911"));
        assert!(ok("localhost:9911"));
        assert!(ok("LOCALHOST:9911"));
        for bad in [
            "evil.test",
            "evil.test:9911",
            "localhost6:9911",
            "127.0.0.1.nip.io:9911",
            "localhost.:9911",
            "127.0.0.1.:9911",
            "127.0.0.1",
            "127.0.0.1:9912",
            "",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        assert!(!l.allows(None));
        let c = HostAllowList::for_addr("169.254.170.2:80".parse().unwrap());
        assert!(c.allows(Some(&HeaderValue::from_static("169.254.170.2"))));
        let v6 = HostAllowList::for_addr("[::1]:9911".parse().unwrap());
        assert!(v6.allows(Some(&HeaderValue::from_static("[::1]:9911"))));
    }

    fn req(host: &str, origin: Option<&str>) -> Request<()> {
        let mut b = Request::get("/").header("host", host);
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn sdk_listeners_refuse_web_pages_and_browser_listeners_do_not() {
        let addr = "127.0.0.1:4000".parse().unwrap();
        let sdks = Guard::sdks(addr);
        let browser = Guard::new(HostAllowList::for_addr(addr), Callers::Browser);
        let page = req("127.0.0.1:4000", Some("https://evil.test"));
        assert!(matches!(sdks.check(&page), Err(ApiError::OriginNotAllowed)));
        assert!(browser.check(&page).is_ok());
        let plain = req("localhost:4000", None);
        assert!(sdks.check(&plain).is_ok() && browser.check(&plain).is_ok());
        let rebound = req("evil.test:4000", None);
        assert!(matches!(
            sdks.check(&rebound),
            Err(ApiError::HostNotAllowed)
        ));
        assert!(matches!(
            browser.check(&rebound),
            Err(ApiError::Page(PageError::WrongHost))
        ));
    }
}
