//! `TCP`: a TCP connection is established within the timeout, then closed.

use super::{Probe, within};
use statera_config::BoxFuture;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct TcpProbe;

impl Probe for TcpProbe {
    fn check(&self, target: SocketAddr, timeout: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(within(timeout, async move {
            TcpStream::connect(target)
                .await
                .map(drop)
                .map_err(|e| format!("connect: {e}"))
        }))
    }
}
