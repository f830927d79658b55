//! Creating sockets where a load balancer lives: in this process's network
//! namespace (the `host` network driver) or in the load balancer's own (the
//! `netns` driver). A socket belongs to the namespace it was created in, so
//! only creation goes through the namespace's thread (statera-net); binding,
//! connecting and all I/O then happen on the runtime's threads as usual.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpSocket, TcpStream};

/// The network namespace a load balancer's sockets belong to; `None` =
/// this process's own.
pub type Netns = Option<Arc<str>>;

/// The namespace `config`'s sockets belong to.
pub fn netns_of(config: &statera_config::LbConfig) -> Netns {
    config.vip.namespace.as_deref().map(Arc::from)
}

/// A new socket in `netns`.
pub fn new_socket(
    netns: &Netns,
    domain: Domain,
    ty: Type,
    protocol: Option<Protocol>,
) -> io::Result<Socket> {
    match netns {
        None => Socket::new(domain, ty, protocol),
        Some(ns) => statera_net::netns::exec::socket(
            ns,
            domain.into(),
            ty.into(),
            protocol.map(i32::from).unwrap_or(0),
        )
        .map(Socket::from),
    }
}

/// A TCP connection to `addr`, from `netns`.
pub async fn connect_tcp(netns: &Netns, addr: SocketAddr) -> io::Result<TcpStream> {
    match netns {
        None => TcpStream::connect(addr).await,
        Some(_) => {
            let socket = new_socket(netns, Domain::for_address(addr), Type::STREAM, None)?;
            socket.set_nonblocking(true)?;
            TcpSocket::from_std_stream(socket.into())
                .connect(addr)
                .await
        }
    }
}
