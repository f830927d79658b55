//! `UDP-CONNECT`: a datagram to the member; an ICMP port unreachable within
//! the timeout means down, silence (or any answer) means up.
//!
//! This is what Octavia's UDP check does (`nc -uzv -w<timeout>`): nothing
//! better can be known of a UDP service that does not answer arbitrary
//! datagrams. The ICMP error reaches us as `ECONNREFUSED` on the connected
//! socket's receive (or next send). A probe always takes the whole timeout
//! when the member is up.

use super::Probe;
use crate::sockets::Netns;
use statera_config::BoxFuture;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

#[derive(Debug)]
pub struct UdpProbe;

impl Probe for UdpProbe {
    fn check(
        &self,
        target: SocketAddr,
        netns: Netns,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let local: IpAddr = match target {
                SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
            };
            let socket = crate::udp::bind(&netns, SocketAddr::new(local, 0))
                .map_err(|e| format!("bind: {e}"))?;
            socket
                .connect(target)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let refused = |e: std::io::Error| {
                if e.kind() == ErrorKind::ConnectionRefused {
                    "port unreachable".to_string()
                } else {
                    format!("{e}")
                }
            };
            socket
                .send(b"statera-health-check\n")
                .await
                .map_err(refused)?;
            let mut buf = [0u8; 512];
            match tokio::time::timeout(timeout, socket.recv(&mut buf)).await {
                // Silence: nothing said the port is closed.
                Err(_) => Ok(()),
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(refused(e)),
            }
        })
    }
}
