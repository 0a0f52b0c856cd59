//! PROXY protocol v1 and v2, so the gate can run behind a TCP load balancer (HAProxy, cloud
//! load balancers) and still see the real client address, which the policy needs.
//!
//! The header comes before the banner (SMTP is server-speaks-first, so the gate must not
//! greet until it has read it). Parsing is left to `ppp`; this module only bounds the read.

use ipnet::IpNet;
use ppp::{HeaderResult, PartialResult};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// A v2 header with TLVs can be long; real load balancers send far less than this.
const MAX_HEADER: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("peer {0} is not in server.proxy_trusted_networks")]
    Untrusted(IpAddr),
    #[error("no PROXY header within the timeout")]
    Timeout,
    #[error("connection closed before the PROXY header was complete")]
    Closed,
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
}

/// Whether `ip` may send a PROXY header.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = crate::policy::unmap_ipv4(ip);
    trusted.iter().any(|n| n.contains(&ip))
}

/// What a complete header says: the client's address (or `None` for `LOCAL`/`UNKNOWN`, such as
/// a load balancer's own health check) and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Option<SocketAddr>, usize)>, ProxyError> {
    let result = HeaderResult::parse(buf);
    if result.is_incomplete() {
        return Ok(None);
    }
    match result {
        HeaderResult::V1(Ok(h)) => {
            let addr = match h.addresses {
                ppp::v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Unknown => None,
            };
            Ok(Some((addr, h.header.len())))
        }
        HeaderResult::V2(Ok(h)) => {
            let addr = match (h.command, &h.addresses) {
                (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            };
            Ok(Some((addr, h.len())))
        }
        HeaderResult::V1(Err(e)) => Err(ProxyError::Malformed(format!("{e:?}"))),
        HeaderResult::V2(Err(e)) => Err(ProxyError::Malformed(format!("{e:?}"))),
    }
}

/// Read the header from a trusted peer. Returns the address the policy should see and any bytes
/// read after the header (they belong to the SMTP session).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    trusted: &[IpNet],
    wait: Duration,
) -> Result<(SocketAddr, Vec<u8>), ProxyError> {
    if !is_trusted(peer.ip(), trusted) {
        return Err(ProxyError::Untrusted(peer.ip()));
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = Vec::with_capacity(256);
    loop {
        if !buf.is_empty() {
            if let Some((addr, len)) = parse(&buf)? {
                let rest = buf.split_off(len);
                return Ok((addr.unwrap_or(peer), rest));
            }
        }
        if buf.len() >= MAX_HEADER {
            return Err(ProxyError::Malformed("header too long".into()));
        }
        let mut chunk = [0u8; 512];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return Err(ProxyError::Timeout),
            Ok(Err(_)) | Ok(Ok(0)) => return Err(ProxyError::Closed),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_ipv4(src: [u8; 4], port: u16) -> Vec<u8> {
        let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        h.push(0x21); // version 2, PROXY
        h.push(0x11); // TCP over IPv4
        h.extend_from_slice(&12u16.to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&[192, 0, 2, 1]);
        h.extend_from_slice(&port.to_be_bytes());
        h.extend_from_slice(&25u16.to_be_bytes());
        h
    }

    #[test]
    fn v1_gives_the_source_address_and_its_length() {
        let buf = b"PROXY TCP4 203.0.113.10 192.0.2.1 40000 25\r\nEHLO x\r\n";
        let (addr, len) = parse(buf).unwrap().unwrap();
        assert_eq!(addr, Some("203.0.113.10:40000".parse().unwrap()));
        assert_eq!(&buf[len..], b"EHLO x\r\n");
    }

    #[test]
    fn v1_unknown_keeps_the_real_peer() {
        let (addr, _) = parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap();
        assert_eq!(addr, None);
    }

    #[test]
    fn v2_gives_the_source_address_and_its_length() {
        let mut buf = v2_ipv4([203, 0, 113, 10], 40000);
        let n = buf.len();
        buf.extend_from_slice(b"EHLO");
        let (addr, len) = parse(&buf).unwrap().unwrap();
        assert_eq!(addr, Some("203.0.113.10:40000".parse().unwrap()));
        assert_eq!(len, n);
    }

    #[test]
    fn partial_headers_wait_for_more_and_garbage_is_refused() {
        assert_eq!(parse(b"PROXY TCP4 203.0.").unwrap(), None);
        assert_eq!(parse(&v2_ipv4([1, 2, 3, 4], 1)[..20]).unwrap(), None);
        assert!(parse(b"EHLO client.example\r\n").is_err());
        assert!(parse(b"PROXY TCP4 not-an-address 192.0.2.1 1 2\r\n").is_err());
    }

    #[test]
    fn trust_is_by_network_and_understands_mapped_addresses() {
        let trusted: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        assert!(is_trusted("127.0.0.1".parse().unwrap(), &trusted));
        assert!(is_trusted("::ffff:127.0.0.1".parse().unwrap(), &trusted));
        assert!(!is_trusted("192.0.2.1".parse().unwrap(), &trusted));
    }
}
