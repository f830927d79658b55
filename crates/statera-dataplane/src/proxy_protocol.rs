//! The PROXY protocol header (HAProxy's spec, versions 1 and 2) that members
//! of PROXY / PROXYV2 pools expect before any other byte on a connection.
//!
//! It carries what the full proxy's source NAT hides from the member: the
//! client's address and port, and the address and port it connected to (the
//! VIP and the listener's port). Only the `PROXY` command over TCP is written:
//! no TLVs, no `LOCAL` health-check connections.

use std::net::{IpAddr, SocketAddr};

/// The 12 bytes every version 2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Version 2 (high nibble), command PROXY (low nibble).
const V2_VERSION_PROXY: u8 = 0x21;
/// Address family (high nibble) and transport (low nibble): TCP over IPv4.
const V2_TCP4: u8 = 0x11;
/// TCP over IPv6.
const V2_TCP6: u8 = 0x21;
/// Unspecified family: the receiver uses the connection's own endpoints.
const V2_UNSPEC: u8 = 0x00;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// The header for a connection from `source` (the client) to `destination`
/// (VIP : listener port).
///
/// IPv4-mapped IPv6 addresses (a v4 client on a dual-stack socket) are sent
/// as IPv4. When the two ends are of different families, which a header
/// cannot describe, v1 says `UNKNOWN` and v2 sends an unspecified family, as
/// the spec prescribes.
pub fn header(version: Version, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let source = SocketAddr::new(source.ip().to_canonical(), source.port());
    let destination = SocketAddr::new(destination.ip().to_canonical(), destination.port());
    match version {
        Version::V1 => v1(source, destination),
        Version::V2 => v2(source, destination),
    }
}

fn v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let family = match (source.ip(), destination.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => "TCP4",
        (IpAddr::V6(_), IpAddr::V6(_)) => "TCP6",
        _ => return b"PROXY UNKNOWN\r\n".to_vec(),
    };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

fn v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(V2_VERSION_PROXY);
    let mut addresses = Vec::with_capacity(36);
    let family = match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            addresses.extend_from_slice(&s.octets());
            addresses.extend_from_slice(&d.octets());
            V2_TCP4
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            addresses.extend_from_slice(&s.octets());
            addresses.extend_from_slice(&d.octets());
            V2_TCP6
        }
        _ => V2_UNSPEC,
    };
    if family != V2_UNSPEC {
        addresses.extend_from_slice(&source.port().to_be_bytes());
        addresses.extend_from_slice(&destination.port().to_be_bytes());
    }
    out.push(family);
    // At most 36 bytes of addresses: always fits in the u16 length.
    out.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    out.extend_from_slice(&addresses);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_lines() {
        let table = [
            (
                "192.0.2.10:51234",
                "198.51.100.1:80",
                "PROXY TCP4 192.0.2.10 198.51.100.1 51234 80\r\n",
            ),
            (
                "[2001:db8::10]:1",
                "[2001:db8::1]:65535",
                "PROXY TCP6 2001:db8::10 2001:db8::1 1 65535\r\n",
            ),
            // A v4 client seen through a dual-stack socket is still TCP4.
            (
                "[::ffff:10.0.0.7]:4000",
                "10.0.0.1:443",
                "PROXY TCP4 10.0.0.7 10.0.0.1 4000 443\r\n",
            ),
            ("10.0.0.7:4000", "[2001:db8::1]:443", "PROXY UNKNOWN\r\n"),
        ];
        for (source, destination, expected) in table {
            let got = header(Version::V1, addr(source), addr(destination));
            assert_eq!(String::from_utf8(got).unwrap(), expected, "{source}");
        }
    }

    #[test]
    fn v2_ipv4_bytes() {
        let got = header(
            Version::V2,
            addr("192.0.2.10:51234"),
            addr("198.51.100.1:80"),
        );
        let expected: Vec<u8> = [
            &b"\r\n\r\n\0\r\nQUIT\n"[..],
            &[0x21, 0x11, 0x00, 12],
            &[192, 0, 2, 10],
            &[198, 51, 100, 1],
            &51234u16.to_be_bytes(),
            &[0x00, 80],
        ]
        .concat();
        assert_eq!(got, expected);
        assert_eq!(got.len(), 16 + 12);
    }

    #[test]
    fn v2_ipv6_bytes() {
        let got = header(Version::V2, addr("[2001:db8::10]:1"), addr("[::1]:8443"));
        let mut expected = vec![
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x21,
            0x00, 36,
        ];
        expected.extend_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ]);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0x00, 0x01, 0x20, 0xfb]);
        assert_eq!(got, expected);
        assert_eq!(got.len(), 16 + 36);
    }

    #[test]
    fn v2_mixed_families_are_unspecified() {
        let got = header(
            Version::V2,
            addr("10.0.0.7:4000"),
            addr("[2001:db8::1]:443"),
        );
        let expected: Vec<u8> = [&V2_SIGNATURE[..], &[0x21, 0x00, 0x00, 0x00]].concat();
        assert_eq!(got, expected);
        // A v4-mapped client to a v4 VIP is plain TCP over IPv4.
        let mapped = header(
            Version::V2,
            addr("[::ffff:10.0.0.7]:4000"),
            addr("10.0.0.1:80"),
        );
        assert_eq!(mapped[13], 0x11);
    }
}
