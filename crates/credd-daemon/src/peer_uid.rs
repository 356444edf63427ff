//! Who owns the other end of a loopback TCP connection: on Linux one
//! `sock_diag` (`inet_diag`) query for the peer's socket by its exact
//! address and port pair, whose answer carries the uid that created it.
//! Threat-model row 20: a token another user collected (by squatting the
//! port while the daemon was down) is then worthless to them.
//!
//! Asked once per accepted connection, never per request. Elsewhere (macOS)
//! there is no such lookup and [`owner`] says so.

use std::net::SocketAddr;

/// Why the owner of a peer socket is not known.
#[derive(Debug, thiserror::Error)]
pub enum PeerUidError {
    /// The kernel has no such socket (the peer already closed), or no
    /// `inet_diag` support.
    #[error("the peer's socket was not found: {0}")]
    NotFound(std::io::Error),
    #[error("sock_diag query failed: {0}")]
    Io(std::io::Error),
    #[error("unexpected sock_diag answer: {0}")]
    Protocol(String),
    #[error("finding a TCP peer's owner is supported on Linux only")]
    Unsupported,
}

/// The uid owning the socket at `peer` that is connected to `local` (both
/// as the accepting side sees them).
#[cfg(target_os = "linux")]
pub fn owner(local: SocketAddr, peer: SocketAddr) -> Result<u32, PeerUidError> {
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
    use netlink_packet_sock_diag::{
        constants::{AF_INET, AF_INET6, IPPROTO_TCP},
        inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
        SockDiagMessage,
    };
    use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr as NlAddr};

    let family = if peer.is_ipv4() { AF_INET } else { AF_INET6 };
    // An exact lookup (no NLM_F_DUMP): the kernel finds the one socket with
    // this 4-tuple. The peer's socket has the peer's address as its source.
    // A cookie of all ones means "any socket with these addresses".
    let socket_id = SocketId {
        source_port: peer.port(),
        destination_port: local.port(),
        source_address: peer.ip(),
        destination_address: local.ip(),
        interface_id: 0,
        cookie: [0xff; 8],
    };
    let mut hdr = NetlinkHeader::default();
    hdr.flags = NLM_F_REQUEST;
    let mut msg = NetlinkMessage::new(
        hdr,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
            socket_id,
        })
        .into(),
    );
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);

    let sock = Socket::new(NETLINK_SOCK_DIAG).map_err(PeerUidError::Io)?;
    sock.connect(&NlAddr::new(0, 0)).map_err(PeerUidError::Io)?;
    sock.send(&buf, 0).map_err(PeerUidError::Io)?;
    let mut rx = vec![0u8; 8192];
    let n = sock.recv(&mut &mut rx[..], 0).map_err(PeerUidError::Io)?;
    let answer = NetlinkMessage::<SockDiagMessage>::deserialize(&rx[..n])
        .map_err(|e| PeerUidError::Protocol(e.to_string()))?;
    match answer.payload {
        NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => Ok(r.header.uid),
        NetlinkPayload::Error(e) => {
            let io = e.to_io();
            Err(if io.kind() == std::io::ErrorKind::NotFound {
                PeerUidError::NotFound(io)
            } else {
                PeerUidError::Io(io)
            })
        }
        other => Err(PeerUidError::Protocol(format!("{other:?}"))),
    }
}

/// Checks at start that the lookup works here (a kernel without
/// `inet_diag`, or a sandbox that forbids netlink, would otherwise refuse
/// every connection): one loopback connection to ourselves, looked up.
pub fn self_check() -> Result<(), PeerUidError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(PeerUidError::Io)?;
    let _c = std::net::TcpStream::connect(l.local_addr().map_err(PeerUidError::Io)?)
        .map_err(PeerUidError::Io)?;
    let (s, peer) = l.accept().map_err(PeerUidError::Io)?;
    let uid = owner(s.local_addr().map_err(PeerUidError::Io)?, peer)?;
    if uid != crate::fsutil::my_uid() {
        return Err(PeerUidError::Protocol(format!(
            "our own connection was reported as uid {uid}"
        )));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn owner(_local: SocketAddr, _peer: SocketAddr) -> Result<u32, PeerUidError> {
    Err(PeerUidError::Unsupported)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn finds_our_own_uid_for_a_loopback_connection_v4_and_v6() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(l) = std::net::TcpListener::bind(bind) else {
                // No IPv6 loopback in this network namespace.
                assert!(bind.contains("::"), "cannot bind {bind}");
                continue;
            };
            let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, peer) = l.accept().unwrap();
            assert_eq!(peer, c.local_addr().unwrap());
            let uid = owner(s.local_addr().unwrap(), peer).unwrap();
            assert_eq!(uid, crate::fsutil::my_uid(), "{bind}");
        }
    }

    #[test]
    fn the_self_check_passes_here() {
        self_check().unwrap();
    }

    #[test]
    fn a_closed_peer_is_not_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = l.local_addr().unwrap();
        // A port pair no socket has.
        let e = owner(local, "127.0.0.1:1".parse().unwrap()).unwrap_err();
        assert!(matches!(e, PeerUidError::NotFound(_)), "{e}");
    }
}
