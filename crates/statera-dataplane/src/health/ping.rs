//! `PING`: an ICMP echo request, answered by an echo reply within the
//! timeout.
//!
//! The probe first opens an unprivileged ICMP datagram socket (`SOCK_DGRAM`,
//! `IPPROTO_ICMP`/`IPPROTO_ICMPV6`), which Linux allows to the groups in
//! `net.ipv4.ping_group_range` — for every user, root included. When the
//! kernel refuses it (the range is empty, `1 0`, on many distributions), the
//! probe falls back to a raw ICMP socket, which works with `CAP_NET_RAW`
//! (root). When both are refused, PING probes fail (members go down) and
//! one warning says why, once per process.

use super::{Probe, within};
use crate::sockets::{Netns, new_socket};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use statera_config::BoxFuture;
use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::Duration;

/// Payload of our echo requests (replies carry it back).
const PAYLOAD: &[u8; 16] = b"statera-health!!";

#[derive(Debug)]
pub struct PingProbe {
    /// Identifier of our echo requests on raw sockets (a datagram socket's
    /// identifier is chosen by the kernel).
    ident: u16,
    seq: AtomicU16,
}

impl PingProbe {
    pub fn new() -> PingProbe {
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let ident = (std::process::id() as u16) ^ NEXT.fetch_add(0x9e37, Ordering::Relaxed);
        PingProbe {
            ident,
            seq: AtomicU16::new(0),
        }
    }
}

impl Probe for PingProbe {
    fn check(
        &self,
        target: SocketAddr,
        netns: Netns,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), String>> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        Box::pin(within(timeout, async move {
            echo(&netns, target.ip(), self.ident, seq)
                .await
                .map_err(|e| format!("ICMP echo: {e}"))
        }))
    }
}

/// Whether a socket is a datagram ICMP socket (no IP header, identifier set
/// by the kernel) or a raw one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Datagram,
    Raw,
}

fn open(netns: &Netns, ip: IpAddr) -> io::Result<(Socket, Kind)> {
    let (domain, protocol) = match ip {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let refused = |e: &io::Error| {
        matches!(
            e.kind(),
            ErrorKind::PermissionDenied | ErrorKind::Unsupported
        ) || e.raw_os_error() == Some(1) // EPERM
    };
    let dgram_error = match new_socket(netns, domain, Type::DGRAM, Some(protocol)) {
        Ok(socket) => return Ok((socket, Kind::Datagram)),
        Err(e) if refused(&e) => e,
        Err(e) => return Err(e),
    };
    match new_socket(netns, domain, Type::RAW, Some(protocol)) {
        Ok(socket) => Ok((socket, Kind::Raw)),
        Err(raw_error) if refused(&raw_error) => {
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    datagram = %dgram_error,
                    raw = %raw_error,
                    "PING health monitors cannot send ICMP echo requests: the kernel refuses \
                     unprivileged ICMP sockets (net.ipv4.ping_group_range does not include this \
                     process's group) and raw sockets need CAP_NET_RAW; every PING-monitored \
                     member will be reported down"
                );
            }
            Err(io::Error::new(
                ErrorKind::PermissionDenied,
                "ICMP sockets refused (net.ipv4.ping_group_range, CAP_NET_RAW)",
            ))
        }
        Err(e) => Err(e),
    }
}

async fn echo(netns: &Netns, ip: IpAddr, ident: u16, seq: u16) -> io::Result<()> {
    let (socket, kind) = open(netns, ip)?;
    socket.set_nonblocking(true)?;
    socket.connect(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    let v6 = ip.is_ipv6();
    let (request_type, reply_type) = if v6 { (128u8, 129u8) } else { (8u8, 0u8) };
    let mut packet = Vec::with_capacity(8 + PAYLOAD.len());
    packet.extend_from_slice(&[request_type, 0, 0, 0]);
    packet.extend_from_slice(&ident.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(PAYLOAD);
    if !v6 {
        // ICMPv6 checksums include a pseudo-header: the kernel computes them.
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    // tokio's UDP socket is a plain datagram socket underneath: it drives
    // ICMP sockets (datagram or raw) as well, with `send`/`recv` only.
    let socket = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(socket))?;
    socket.send(&packet).await?;
    let mut buf = [0u8; 1500];
    loop {
        let n = socket.recv(&mut buf).await?;
        let mut icmp = &buf[..n];
        if kind == Kind::Raw && !v6 {
            // Raw IPv4 sockets deliver the IP header too.
            let header = usize::from(icmp.first().copied().unwrap_or(0) & 0x0f) * 4;
            icmp = icmp.get(header..).unwrap_or_default();
        }
        if icmp.len() < 8 + PAYLOAD.len() || icmp[0] != reply_type {
            continue;
        }
        let same_ident = kind == Kind::Datagram || icmp[4..6] == ident.to_be_bytes();
        if same_ident
            && icmp[6..8] == seq.to_be_bytes()
            && icmp[8..8 + PAYLOAD.len()] == PAYLOAD[..]
        {
            return Ok(());
        }
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::checksum;

    #[test]
    fn internet_checksum() {
        // An echo request with identifier 1, sequence 1, no payload.
        let packet = [8u8, 0, 0, 0, 0, 1, 0, 1];
        assert_eq!(checksum(&packet), 0xf7fd);
        let mut with_sum = packet;
        with_sum[2..4].copy_from_slice(&0xf7fdu16.to_be_bytes());
        assert_eq!(checksum(&with_sum), 0);
    }
}
