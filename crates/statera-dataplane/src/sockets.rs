//! Creating sockets where a load balancer lives: in this process's network
//! namespace (the `host` network driver) or in the load balancer's own (the
//! `netns` driver). A socket belongs to the namespace it was created in, so
//! only creation goes through the namespace's thread (statera-net); binding,
//! connecting and all I/O then happen on the runtime's threads as usual.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::{TcpSocket, TcpStream};

/// The network namespace a load balancer's sockets belong to; `None` =
/// this process's own.
pub type Netns = Option<Arc<str>>;

/// The namespace `config`'s sockets belong to.
pub fn netns_of(config: &statera_config::LbConfig) -> Netns {
    config.vip.namespace.as_deref().map(Arc::from)
}

/// A listening socket as one process hands it to the next (`statera serve`
/// taking over from a running one): where it lives and what it is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SocketKey {
    /// The network namespace it was made in; `None`: the process's own.
    pub netns: Option<String>,
    pub addr: SocketAddr,
    pub udp: bool,
}

/// Checks that a handed-over socket is of type `ty` and bound to `addr`, so
/// a mixed-up handover never serves one address on another's socket.
pub(crate) fn check_inherited(socket: &Socket, ty: Type, addr: SocketAddr) -> io::Result<()> {
    if socket.r#type()? != ty {
        return Err(io::Error::other("not a socket of the expected type"));
    }
    let local = socket.local_addr()?.as_socket();
    if local != Some(addr) {
        return Err(io::Error::other(format!("bound to {local:?}, not {addr}")));
    }
    Ok(())
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

/// A TCP connection to `addr`, from `netns`, leaving from `source` when
/// given. The source's port is chosen at connect (`IP_BIND_ADDRESS_NO_PORT`),
/// so connections from one source to different members do not share one
/// ephemeral port range. A source that cannot be bound (not, or no longer,
/// an address of this host) leaves the choice to the kernel.
pub async fn connect_tcp_from(
    netns: &Netns,
    source: Option<IpAddr>,
    addr: SocketAddr,
) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return connect_tcp(netns, addr).await;
    };
    let socket = new_socket(netns, Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    let bound = bind_address_no_port(&socket)
        .and_then(|()| socket.bind(&SocketAddr::new(source, 0).into()));
    if let Err(error) = bound {
        tracing::debug!(%source, %error, "member connection not bound to the VIP");
        return connect_tcp(netns, addr).await;
    }
    TcpSocket::from_std_stream(socket.into())
        .connect(addr)
        .await
}

fn bind_address_no_port(socket: &Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt(2) reads `size_of::<c_int>()` bytes from a live
    // c_int on an open socket; no memory is kept.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
