//! `TCP`: a TCP connection is established within the timeout, then closed.

use super::{Probe, within};
use crate::sockets::Netns;
use statera_config::BoxFuture;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug)]
pub struct TcpProbe;

impl Probe for TcpProbe {
    fn check(
        &self,
        target: SocketAddr,
        netns: Netns,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(within(timeout, async move {
            crate::sockets::connect_tcp(&netns, target)
                .await
                .map(drop)
                .map_err(|e| format!("connect: {e}"))
        }))
    }
}
